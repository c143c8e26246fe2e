package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/walship/walship/feed"
)

func (s *Server) registerRemoveRoutes(r *mux.Router) {
	r.HandleFunc("/remove", s.handleRemove).Methods(http.MethodDelete)
}

// handleRemove serves rqlite's DELETE /remove with {"id": "<slave id>"}:
// the node forgets a slave it feeds (one taken out of service; one that
// still runs comes back at its next request). A slave that does not feed
// that id forwards the request to its master, as rqlite's followers do.
func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	body, err := readBodyLimit(w, r, 64<<10)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		ID *string `json:"id"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.ID == nil || *req.ID == "" {
		s.writeError(w, r, fmt.Errorf(`%w: the body must be exactly {"id":"<slave id>"}`, ErrBadRequest))
		return
	}
	fd := s.feed()
	err = feed.ErrUnknownFollower
	if fd != nil {
		err = fd.Remove(*req.ID)
	}
	if rl := s.roles(); errors.Is(err, feed.ErrUnknownFollower) && rl.sl != nil {
		p, perr := parseRqParams(r)
		if perr != nil {
			s.writeRqError(w, r, perr)
			return
		}
		s.forwardRq(w, r, p, body, false)
		return
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
