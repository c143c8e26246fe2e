// Package pace spreads background work over time, so that it takes at
// most a share of one core: a snapshot, an archive copy. The writer of a
// small machine keeps the rest.
package pace

import (
	"context"
	"time"
)

// Pacer is called between two pieces of work; it waits so that the work
// takes at most Share of the time since the last call. Share 0 or 1 and
// above: no waits. A Pacer is used by one goroutine.
type Pacer struct {
	// Share is the share of the time the work may take (0.25: it works a
	// quarter of the time and waits the rest).
	Share float64
	last  time.Time // when the last wait ended
}

// New returns a Pacer for work that starts now.
func New(share float64) *Pacer { return &Pacer{Share: share, last: time.Now()} }

// Rest is how long to wait after working for worked.
func (p *Pacer) Rest(worked time.Duration) time.Duration {
	if p.Share <= 0 || p.Share >= 1 {
		return 0
	}
	return time.Duration(float64(worked) * (1/p.Share - 1))
}

// Pace waits as long as the work since the last call asks (Rest), or
// until ctx ends, whose error it returns.
func (p *Pacer) Pace(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.last.IsZero() {
		p.last = time.Now()
	}
	rest := p.Rest(time.Since(p.last))
	if rest <= 0 {
		return nil
	}
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.last = time.Now()
	return nil
}
