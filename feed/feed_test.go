package feed_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/feed"
	"github.com/walship/walship/wal"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func openLog(t *testing.T, dir string) *wal.Log {
	t.Helper()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	if err := lg.Append([]*wal.Entry{{Index: 1, Epoch: 1, Statements: []wal.Statement{{SQL: "CREATE TABLE t (v)"}}}}); err != nil {
		t.Fatal(err)
	}
	return lg
}

func ask(t *testing.T, f *feed.Feed, id, url string) error {
	t.Helper()
	_, err := f.Serve(context.Background(), feed.Request{From: 1, SlaveID: id, SlaveURL: url, Applied: 0})
	return err
}

func state(f *feed.Feed, id string) string {
	for _, fl := range f.Followers() {
		if fl.ID == id {
			return fl.State
		}
	}
	return "absent"
}

// A second live follower with the same id is refused, naming the first;
// once the first is silent, the id is free again.
func TestDuplicateID(t *testing.T) {
	c := &clock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	var logs syncBuffer
	f := feed.New(openLog(t, t.TempDir()), feed.Config{Now: c.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := ask(t, f, "1", "http://a"); err != nil {
		t.Fatal(err)
	}
	err := ask(t, f, "1", "http://b")
	var ce *feed.ConflictError
	if !errors.Is(err, feed.ErrDuplicateID) || !errors.As(err, &ce) || !strings.Contains(ce.Msg, "taken by http://a") {
		t.Fatalf("a second slave with id 1: %v", err)
	}
	if !strings.Contains(logs.String(), "another one uses its id") {
		t.Fatalf("the refusal is not logged:\n%s", logs.String())
	}
	if err := ask(t, f, "1", "http://a"); err != nil {
		t.Fatalf("the first one again: %v", err)
	}
	c.add(5 * time.Second)
	if err := ask(t, f, "1", "http://b"); err != nil {
		t.Fatalf("once the first is silent, the id is free: %v", err)
	}
}

// A follower silent for LostAfter is lost, logged once, and back with how
// long it was away; the followers known survive a restart of the node as
// unknown until heard from; Remove forgets one.
func TestFollowersLostRememberedRemoved(t *testing.T) {
	dir := t.TempDir()
	lg := openLog(t, dir)
	c := &clock{now: time.Now()}
	var logs syncBuffer
	f := feed.New(lg, feed.Config{Now: c.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, id := range []string{"1", "2"} {
		if err := ask(t, f, id, "http://"+id); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Watch(ctx); close(done) }()
	c.add(feed.LostAfter + time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), "slave disconnected") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no loss logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond) // ok: poll interval
	}
	if got := state(f, "1"); got != feed.FollowerLost {
		t.Fatalf("state %q, want lost", got)
	}
	if err := ask(t, f, "1", "http://1"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "slave reconnected") || state(f, "1") != feed.FollowerLive {
		t.Fatalf("the return is not logged, or the state not live (%s):\n%s", state(f, "1"), logs.String())
	}
	cancel()
	<-done // Watch saves the followers as it stops
	if n := strings.Count(logs.String(), "slave disconnected"); n != 2 {
		t.Fatalf("%d losses logged, want one per slave", n)
	}
	// The node restarts: it knows both, unheard from.
	again := feed.New(lg, feed.Config{})
	if s1, s2 := state(again, "1"), state(again, "2"); s1 != feed.FollowerUnknown || s2 != feed.FollowerUnknown {
		t.Fatalf("after a restart: %q %q, want both unknown since restart", s1, s2)
	}
	if err := again.Remove("2"); err != nil {
		t.Fatal(err)
	}
	if err := again.Remove("2"); !errors.Is(err, feed.ErrUnknownFollower) {
		t.Fatalf("removing it twice: %v", err)
	}
	if again2 := feed.New(lg, feed.Config{}); state(again2, "2") != "absent" || state(again2, "1") != feed.FollowerUnknown {
		t.Fatalf("a removed slave came back after a restart: %+v", again2.Followers())
	}
}
