package api

import (
	"net/http"
	"strings"

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
	leaderErr, storeErr := s.readiness(rl)
	state := "Leader"
	if rl.sl != nil {
		state = "Follower"
	}
	writeJSONPretty(w, r, http.StatusOK, map[string]any{
		"node":  map[string]any{"id": s.ID, "role": s.role(), "api_addr": s.Advertise},
		"build": map[string]any{"version": Version},
		"store": map[string]any{
			"node_id":          s.ID,
			"addr":             hostOf(s.Advertise),
			"leader":           map[string]any{"node_id": leaderID, "addr": hostOf(leaderAddr), "api_addr": leaderAddr},
			"ready":            leaderErr == nil && storeErr == nil,
			"db_path":          s.db().Path(),
			"db_applied_index": ls.AppliedIndex,
			"raft":             map[string]any{"state": state, "applied_index": ls.AppliedIndex, "commit_index": ls.LastIndex},
		},
		"http": map[string]any{
			"auth":  authState(s.Auth != nil),
			"queue": map[string]any{"_default": map[string]any{"sequence_number": s.queue.lastSeq.Load()}},
		},
		"log": ls,
	})
}

// handleReadyz serves GET /readyz, in rqlite's shape: one line per check
// ("[+]node ok", "[+]leader ok", "[+]store ok"), a failing one "[-]" with
// its reason, and 503 if any fails. Ready means the node can serve what it
// promises: a master, that it can write (it leads, is not halted, its disk
// is not low, its log takes appends); a slave, that it follows its master
// (heard within ReadyHeard) and is within ReadyLag entries of it, neither
// diverged, stalled nor bootstrapping. ?noleader skips the leader check:
// a master then answers on its store alone, a slave 200 as long as it
// runs.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	_, noLeader := r.URL.Query()["noleader"]
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if rl.sl != nil && noLeader {
		_, _ = w.Write([]byte("[+]node ok\n"))
		return
	}
	leader, store := s.readiness(rl)
	if noLeader {
		leader = nil
	}
	var b strings.Builder
	b.WriteString("[+]node ok\n")
	line := func(name string, err error) {
		if err != nil {
			b.WriteString("[-]" + name + " " + err.Error() + "\n")
		} else {
			b.WriteString("[+]" + name + " ok\n")
		}
	}
	if !noLeader {
		line("leader", leader)
	}
	line("store", store)
	if leader != nil || store != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(b.String()))
}

// readiness returns the node's readiness checks (masterReady,
// slaveReady).
func (s *Server) readiness(rl roles) (leader, store error) {
	if rl.m != nil {
		return s.masterReady(rl.m)
	}
	return s.slaveReady(rl.sl)
}

// authState is /status's http.auth, as rqlite says it.
func authState(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}
