package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"

	"github.com/walship/walship/api/client"
)

// forwardRq sends a /db/* request a slave does not serve itself to the
// master, unchanged, and relays the answer (rqlite's followers forward to
// the leader the same way). For a write, the slave answers once it has
// applied the write itself. With ?redirect it answers 301 instead.
func (s *Server) forwardRq(w http.ResponseWriter, r *http.Request, p *rqParams, body []byte, write bool) {
	rl := s.roles()
	target := rl.sl.MasterURL() + r.URL.Path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	if p.redirect {
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(body))
	if err != nil {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	for _, h := range []string{"Content-Type", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		if s.clientClosed(w, r, nil) {
			return
		}
		s.logger.Warn("forwarding to the master failed", "master", rl.sl.MasterURL(), "path", r.URL.Path, "err", err)
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	if write && resp.StatusCode == http.StatusOK {
		if idx, err := strconv.ParseUint(resp.Header.Get(client.HeaderIndex), 10, 64); err == nil {
			// A committed write is answered 200 even when the wait runs out.
			rl.sl.WaitApplied(r.Context(), idx)
		}
	}
	for _, h := range []string{"Content-Type", client.HeaderIndex} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
}
