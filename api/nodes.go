package api

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
)

func (s *Server) registerNodeRoutes(r *mux.Router) {
	r.HandleFunc("/nodes", s.handleNodes).Methods(http.MethodGet)
}

// handleNodes serves GET /nodes in rqlite's shape: a map of nodes by id
// (?ver=2: {"nodes":[…]}), the master marked leader. The master checks that
// every slave it knows answers; a slave asks the master.
func (s *Server) handleNodes(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	if rl.sl != nil {
		p, err := parseRqParams(r)
		if err != nil {
			s.writeRqError(w, r, err)
			return
		}
		s.forwardRq(w, r, p, nil, false)
		return
	}
	timeout := 5 * time.Second
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			http.Error(w, "timeout is not a valid duration", http.StatusBadRequest)
			return
		}
		timeout = d
	}
	nodes := []client.Node{{ID: s.ID, APIAddr: s.Advertise, Addr: hostOf(s.Advertise), Voter: true,
		Reachable: true, Leader: true, Role: "master"}}
	slaves := rl.m.Slaves()
	checked := make([]client.Node, len(slaves))
	var wg sync.WaitGroup
	for i, sl := range slaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checked[i] = s.checkNode(r.Context(), sl.ID, sl.URL, timeout, r.Header.Get("Authorization"))
		}()
	}
	wg.Wait()
	nodes = append(nodes, checked...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	if r.URL.Query().Get("ver") == "2" {
		writeJSON(w, http.StatusOK, map[string]any{"nodes": nodes})
		return
	}
	byID := make(map[string]client.Node, len(nodes))
	for _, n := range nodes {
		byID[n.ID] = n
	}
	writeJSON(w, http.StatusOK, byID)
}

// checkNode asks a slave whether it serves, with the credentials of the
// request that asked (authorization).
func (s *Server) checkNode(ctx context.Context, id, apiURL string, timeout time.Duration, authorization string) client.Node {
	n := client.Node{ID: id, APIAddr: apiURL, Addr: hostOf(apiURL), Role: "slave"}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/readyz?noleader", nil)
	if err == nil {
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		var resp *http.Response
		if resp, err = s.fwd.Do(req); err == nil {
			resp.Body.Close()
			n.Reachable = resp.StatusCode == http.StatusOK
		}
	}
	d := time.Since(start)
	n.Time, n.TimeS = d.Seconds(), d.String()
	if err != nil {
		n.Error = err.Error()
	}
	return n
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
}
