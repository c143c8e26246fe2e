package api

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

// The bounds of POST /db/verify?wait: the default wait, and the longest a
// request may ask for (below the server's WriteTimeout).
const (
	DefaultVerifyWait = 60 * time.Second
	MaxVerifyWait     = 100 * time.Second
)

func (s *Server) registerVerifyRoutes(r *mux.Router) {
	r.HandleFunc("/db/verify", s.handleVerify).Methods(http.MethodPost)
}

// handleVerify serves POST /db/verify: the master appends the marker of a
// replica check now (after the check that runs, if one does) and answers
// its index; with ?wait, or ?timeout=D, it waits (60s, or D, at most 100s)
// until its content is hashed and the sums are logged, and answers them.
// A slave forwards the request to its master.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	q := r.URL.Query()
	_, wait := q["wait"]
	timeout := DefaultVerifyWait
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxVerifyWait {
			s.writeError(w, r, fmt.Errorf("%w: timeout must be a duration above 0 and at most %s, got %q", ErrBadRequest, MaxVerifyWait, v))
			return
		}
		timeout, wait = d, true
	}
	if rl.sl != nil {
		s.forwardVerify(w, r, timeout)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	index, err := rl.m.Verify(ctx)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("verify: %w", err))
		return
	}
	if !wait {
		writeJSON(w, http.StatusOK, client.VerifyResponse{Index: index})
		return
	}
	res, err := rl.m.WaitVerified(ctx, index)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("verify: %w (the check's result will show in /log/status)", err))
		return
	}
	out := client.VerifyResponse{Index: index, ResultIndex: res.ResultIndex, Sums: make(map[string]string, len(res.Parts))}
	for _, p := range res.Parts {
		out.Sums[p.Name] = hex.EncodeToString(p.Sum[:])
	}
	writeJSON(w, http.StatusOK, out)
}

// forwardVerify sends a slave's POST /db/verify to the master and relays
// the answer.
func (s *Server) forwardVerify(w http.ResponseWriter, r *http.Request, timeout time.Duration) {
	rl := s.roles()
	target := rl.sl.MasterURL() + r.URL.Path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	// The master answers within timeout; the margin is the network's.
	ctx, cancel := context.WithTimeout(r.Context(), timeout+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: %w", ErrMasterUnreachable, err))
		return
	}
	if v := r.Header.Get("Authorization"); v != "" {
		req.Header.Set("Authorization", v)
	}
	resp, err := s.fwd.Do(req)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		s.writeError(w, r, fmt.Errorf("%w: %s: %w", ErrMasterUnreachable, rl.sl.MasterURL(), err))
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("%w: reading its answer: %w", ErrMasterUnreachable, err))
		return
	}
	if v := resp.Header.Get("Content-Type"); v != "" {
		w.Header().Set("Content-Type", v)
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// verification returns the node's latest replica check and its counts.
func (s *Server) verification() db.Verification {
	rl := s.roles()
	if rl.m != nil {
		return rl.m.Verification()
	}
	return rl.sl.Verification()
}

// lastCheck is the node's latest replica check as /log/status shows it;
// nil before the first.
func (s *Server) lastCheck() *client.CheckStatus {
	last := s.verification().Last
	if last == nil {
		return nil
	}
	return &client.CheckStatus{Index: last.Index, ResultIndex: last.ResultIndex, Result: last.Outcome,
		Differs: last.Differs, Time: last.Time.UTC().Format(time.RFC3339Nano), Error: last.Err}
}

// registerVerifyMetrics adds the counters of replica checks.
func (s *Server) registerVerifyMetrics(m *Metrics) {
	counter := func(name, help string, f func(db.Verification) uint64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f(s.verification())) }))
	}
	counter("walship_verify_checks_total", "Replica checks done: on the master, content hashes logged; on a slave, its sums compared with the master's.",
		func(v db.Verification) uint64 { return v.Checks })
	counter("walship_verify_mismatches_total", "Replica checks whose sums differed from the master's (the slave stopped applying).",
		func(v db.Verification) uint64 { return v.Mismatches })
	counter("walship_verify_skipped_total", "Replica checks not done: a slave without sums of its own at the marker, a marker the master skipped while a check ran, a hash that failed.",
		func(v db.Verification) uint64 { return v.Skipped })
}
