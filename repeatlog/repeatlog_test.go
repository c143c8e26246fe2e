package repeatlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The first line of a kind is logged, the next ones within the interval are
// counted, and the line after it says how many were left out; kinds are
// apart.
func TestLog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Unix(0, 0)
	l := &Logger{Interval: 10 * time.Second, Now: func() time.Time { return now }}
	for range 1000 {
		l.Log(logger, slog.LevelWarn, "disk", "write failed", "err", "disk full")
		now = now.Add(5 * time.Millisecond)
	}
	l.Log(logger, slog.LevelWarn, "other", "something else")
	now = now.Add(10 * time.Second)
	l.Log(logger, slog.LevelWarn, "disk", "write failed", "err", "disk full")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || strings.Contains(lines[0], "repeated") || !strings.Contains(lines[1], "something else") ||
		!strings.Contains(lines[2], "repeated=999") {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
}
