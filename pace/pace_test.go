package pace

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A pacer waits so that the work takes its share of the time.
func TestRest(t *testing.T) {
	for _, c := range []struct {
		share  float64
		worked time.Duration
		want   time.Duration
	}{
		{0.25, 10 * time.Millisecond, 30 * time.Millisecond},
		{0.5, 10 * time.Millisecond, 10 * time.Millisecond},
		{0.1, 10 * time.Millisecond, 90 * time.Millisecond},
		{1, 10 * time.Millisecond, 0},
		{0, 10 * time.Millisecond, 0},
	} {
		p := &Pacer{Share: c.share}
		if got := p.Rest(c.worked); got < c.want-time.Microsecond || got > c.want+time.Microsecond {
			t.Errorf("share %v, worked %v: rest %v, want %v", c.share, c.worked, got, c.want)
		}
	}
}

// Pace returns the context's error once it ended, and does not wait
// without a share.
func TestPaceContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(0.25).Pace(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Pace on a cancelled context: %v", err)
	}
	start := time.Now()
	if err := New(1).Pace(context.Background()); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("Pace without a share: %v after %v", err, time.Since(start))
	}
}
