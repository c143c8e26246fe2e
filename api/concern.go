package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/walship/walship/api/client"
)

// HeaderReplicas names, on a write answered with a write concern, how many
// slaves had applied it when it was answered.
const HeaderReplicas = "X-Walship-Replicas"

// parseConcern reads a write concern: w=N with applied (the master answers
// once N slaves have applied the write). Plain w=N, which counts slaves
// that durably received it, needs slaves that keep the log, which walship
// does not build yet: refused, rather than given a weaker meaning.
func parseConcern(w int, applied bool) error {
	switch {
	case w < 0:
		return badRequest("w is not a valid number of replicas")
	case w > 0 && !applied:
		return badRequest("w=N counts slaves that durably received the write, which needs slaves that keep the log (not built yet); w=N&applied waits until N slaves applied it")
	}
	return nil
}

// awaitReplicas waits, at most wait, until w slaves have applied index, and
// says how it went: nil when w is 0. A write that falls short is still
// committed; the answer says so (and /metrics counts it).
func (s *Server) awaitReplicas(ctx context.Context, h http.Header, index uint64, w int, wait time.Duration) *client.Replicas {
	if w <= 0 || s.Master == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	got := s.Master.WaitReplicas(ctx, index, w, true)
	h.Set(HeaderReplicas, strconv.Itoa(got))
	r := &client.Replicas{Wanted: w, Applied: got}
	if got < w {
		r.Shortfall = fmt.Sprintf("committed, but %d of the %d slaves asked for had applied it within %s", got, w, wait)
		s.Metrics.concernShortfalls.Inc()
	}
	return r
}
