package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
)

func (s *Server) registerStatusRoutes(r *mux.Router) {
	r.HandleFunc("/status", s.handleStatus).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.handleReadyz).Methods(http.MethodGet)
	r.HandleFunc("/db/checksum", s.handleChecksum).Methods(http.MethodGet)
}

// handleChecksum serves GET /db/checksum: the content hash at a consistent
// applied index, to compare replicas.
func (s *Server) handleChecksum(w http.ResponseWriter, r *http.Request) {
	sum, err := s.db().Checksum(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.Checksum{Index: sum.Index, Checksum: sum.Sum, Tables: sum.Tables})
}

// handleStatus serves GET /status: the node, its role, and who leads (in
// rqlite's shape, where the leader is the master).
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	leaderID, leaderAddr := s.ID, s.Advertise
	if rl.sl != nil {
		leaderID, leaderAddr = "master", rl.sl.MasterURL()
	}
	ls := s.logStatus()
	state := "Leader"
	if rl.sl != nil {
		state = "Follower"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node":  map[string]any{"id": s.ID, "role": s.role(), "api_addr": s.Advertise},
		"build": map[string]any{"version": Version},
		"store": map[string]any{
			"node_id":          s.ID,
			"addr":             hostOf(s.Advertise),
			"leader":           map[string]any{"node_id": leaderID, "addr": hostOf(leaderAddr), "api_addr": leaderAddr},
			"ready":            true,
			"db_path":          s.db().Path(),
			"db_applied_index": ls.AppliedIndex,
			"raft":             map[string]any{"state": state, "applied_index": ls.AppliedIndex, "commit_index": ls.LastIndex},
		},
		"http": map[string]any{
			"auth":  "disabled",
			"queue": map[string]any{"_default": map[string]any{"sequence_number": s.queue.lastSeq.Load()}},
		},
		"log": ls,
	})
}

// handleReadyz serves GET /readyz: 200 when the node serves. A slave is
// ready once it has heard from the master and has not diverged; ?noleader
// skips that check.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if rl.m != nil {
		err := rl.m.Err()
		if err == nil {
			err = rl.m.DiskLow()
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("[+]node ok\n[-]store writes stopped: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("[+]node ok\n[+]leader ok\n[+]store ok\n"))
		return
	}
	if _, ok := r.URL.Query()["noleader"]; ok {
		_, _ = w.Write([]byte("[+]node ok\n"))
		return
	}
	st := rl.sl.Status()
	switch {
	case st.State == client.StateDiverged:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("[+]node ok\n[-]diverged from the master: " + st.Err + "\n"))
	case !st.Heard:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("[+]node ok\n[-]leader not contacted yet\n"))
	default:
		_, _ = w.Write([]byte("[+]node ok\n[+]leader ok (last caught up " + st.LastCaughtUp.UTC().Format(time.RFC3339) + ")\n[+]store ok\n"))
	}
}
