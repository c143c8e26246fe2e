// Package repeatlog logs failures that repeat without flooding the log:
// the first of a kind at once, then, at most once an interval, one line
// with how many more came. A disk that stays full fails every request;
// the log says so a few times a minute, not tens of thousands of times.
package repeatlog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is Logger.Interval's default.
const DefaultInterval = 10 * time.Second

// maxKinds bounds the kinds a Logger remembers; past it, every line is
// logged (a bug that makes many kinds is not hidden).
const maxKinds = 1024

// Logger rate-limits the lines of each kind. The zero value is ready to use.
type Logger struct {
	// Interval is the least time between two lines of one kind. Zero
	// means DefaultInterval.
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	kinds map[string]*kind
}

type kind struct {
	last       time.Time
	suppressed int
}

// Log logs msg with args on logger at level, unless a line of the same kind
// was logged less than Interval ago: then it only counts it, and the next
// line of that kind says how many were left out ("repeated").
func (l *Logger) Log(logger *slog.Logger, level slog.Level, kindKey, msg string, args ...any) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	interval := l.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	l.mu.Lock()
	if l.kinds == nil {
		l.kinds = make(map[string]*kind)
	}
	k := l.kinds[kindKey]
	if k == nil && len(l.kinds) < maxKinds {
		k = &kind{}
		l.kinds[kindKey] = k
	}
	if k != nil && !k.last.IsZero() && now.Sub(k.last) < interval {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	repeated := 0
	if k != nil {
		repeated, k.suppressed, k.last = k.suppressed, 0, now
	}
	l.mu.Unlock()
	if repeated > 0 {
		args = append(args, "repeated", repeated)
	}
	logger.Log(context.Background(), level, msg, args...)
}
