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
// slaves held it (or had applied it) when it was answered.
const HeaderReplicas = "X-Walship-Replicas"

// DefaultMinReplicasWait is how long a write waits for the master's
// default write concern (--min-replicas) when Server.MinReplicasWait is 0.
const DefaultMinReplicasWait = 5 * time.Second

// concern is a write's write concern: how many slaves must hold it (W)
// before the master answers, fsynced in their log or, with Applied,
// applied. Set is false when the request named none: the master's default
// (Server.MinReplicas) holds.
type concern struct {
	W       int
	Set     bool
	Applied bool
}

// parseConcern reads a write concern: w=N, with or without applied.
func parseConcern(w *int, applied bool) (concern, error) {
	c := concern{Applied: applied}
	if w != nil {
		c.W, c.Set = *w, true
	}
	switch {
	case c.W < 0:
		return c, badRequest("w is not a valid number of replicas")
	case applied && !c.Set:
		return c, badRequest("applied needs w=N: the number of slaves that must have applied the write")
	}
	return c, nil
}

// awaitReplicas waits, at most wait, until the slaves c asks for hold
// index, and says how it went: nil when none are asked for. A write that
// falls short is still committed; the answer says so (and /metrics counts
// it). Without a concern of its own, a write waits for the master's
// default, Server.MinReplicas, at most Server.MinReplicasWait.
func (s *Server) awaitReplicas(ctx context.Context, h http.Header, index uint64, c concern, wait time.Duration) *client.Replicas {
	rl := s.roles()
	if !c.Set {
		c.W, wait = s.MinReplicas, s.MinReplicasWait
		if wait <= 0 {
			wait = DefaultMinReplicasWait
		}
	}
	if c.W <= 0 || rl.m == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	got := rl.m.WaitReplicas(ctx, index, c.W, c.Applied)
	h.Set(HeaderReplicas, strconv.Itoa(got))
	r := &client.Replicas{Wanted: c.W}
	what := "held it in their log"
	if c.Applied {
		r.Applied, what = got, "applied it"
	} else {
		r.Received = got
	}
	if got < c.W {
		r.Shortfall = fmt.Sprintf("committed, but %d of the %d slaves asked for had %s within %s", got, c.W, what, wait)
		s.Metrics.concernShortfalls.Inc()
	}
	return r
}
