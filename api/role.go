package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
)

// RoleSwitch changes a node's role at run time: the node that owns the
// files (the log, the database) and both roles' settings implements it
// and calls Server.SetRole.
type RoleSwitch interface {
	// Promote turns the slave into the master of the next epoch; the
	// current master, if it answers, is fenced first, and the slave
	// catches up with it.
	Promote(ctx context.Context, force bool) (client.PromoteResult, error)
	// Fence stops a master taking writes for good: epoch, above its own,
	// is being started elsewhere. It returns the log's last index.
	Fence(ctx context.Context, epoch uint64) (uint64, error)
	// Follow makes the node a slave of the master at url, of epoch: a
	// slave re-points, a master of a lower epoch steps down.
	Follow(ctx context.Context, url string, epoch uint64) error
}

// ErrRoleSwitch is returned for a promotion, a fence or a re-pointing
// that the node's state refuses (already the master, diverged, an older
// epoch than the node knows …): 409.
var ErrRoleSwitch = errors.New("refused")

// ErrNoRoleSwitch is returned when the node cannot change role (no
// RoleSwitch, as in a node embedded without one): 404.
var ErrNoRoleSwitch = errors.New("this node cannot change role")

func (s *Server) registerRoleRoutes(r *mux.Router) {
	r.HandleFunc("/node/promote", s.handlePromote).Methods(http.MethodPost)
	r.HandleFunc("/node/fence", s.handleFence).Methods(http.MethodPost)
	r.HandleFunc("/node/master", s.handleFollow).Methods(http.MethodPost)
}

// handlePromote serves POST /node/promote[?force]: walship promote.
func (s *Server) handlePromote(w http.ResponseWriter, r *http.Request) {
	if s.Roles == nil {
		s.writeError(w, r, ErrNoRoleSwitch)
		return
	}
	_, force := r.URL.Query()["force"]
	res, err := s.Roles.Promote(r.Context(), force)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleFence serves POST /node/fence with {"epoch": E}.
func (s *Server) handleFence(w http.ResponseWriter, r *http.Request) {
	if s.Roles == nil {
		s.writeError(w, r, ErrNoRoleSwitch)
		return
	}
	var req client.FenceRequest
	if err := s.decodeSmall(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Epoch == 0 {
		s.writeError(w, r, fmt.Errorf("%w: epoch is required", ErrBadRequest))
		return
	}
	last, err := s.Roles.Fence(r.Context(), req.Epoch)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.FenceResult{LastIndex: last})
}

// handleFollow serves POST /node/master with {"url": U, "epoch": E}.
func (s *Server) handleFollow(w http.ResponseWriter, r *http.Request) {
	if s.Roles == nil {
		s.writeError(w, r, ErrNoRoleSwitch)
		return
	}
	var req client.FollowRequest
	if err := s.decodeSmall(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := strings.TrimRight(req.URL, "/")
	if req.Epoch == 0 || !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) {
		s.writeError(w, r, fmt.Errorf(`%w: give {"url": "http(s)://host:port", "epoch": N}`, ErrBadRequest))
		return
	}
	if u == s.URL() {
		s.writeError(w, r, fmt.Errorf("%w: %s is this node's own URL", ErrRoleSwitch, u))
		return
	}
	if err := s.Roles.Follow(r.Context(), u, req.Epoch); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"role": "slave", "master": u, "epoch": req.Epoch})
}

// decodeSmall reads a small JSON body into v: 400 for anything else.
func (s *Server) decodeSmall(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBodyLimit(w, r, 64<<10)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: the body must be a JSON object: %v", ErrBadRequest, err)
	}
	return nil
}
