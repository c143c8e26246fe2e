package wal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A new log may be given its identity: the log_id and first index of a
// history that continues a database.
func TestOpenNewLogWithIdentity(t *testing.T) {
	id := strings.Repeat("ab", logIDSize)
	l := MustOpenLog(t, Options{LogID: id, FirstIndex: 501})
	if l.ID() != id || l.FirstIndex() != 501 || l.LastIndex() != 500 {
		t.Fatalf("id %s, bounds %d..%d", l.ID(), l.FirstIndex(), l.LastIndex())
	}
	if err := l.Append([]*Entry{testEntry(501, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]*Entry{testEntry(1, 1)}); err == nil {
		t.Fatal("an append at index 1 of a log that starts at 501 was taken")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "log.db"), Options{LogID: "zz"}); err == nil {
		t.Fatal("a malformed log_id was taken")
	}
}

// Restart replaces every segment with an empty log of another log_id,
// wakes the waiters, and what it leaves opens again as that log.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.db")
	l, err := Open(path, Options{SegmentBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	for i := uint64(1); i <= 300; i++ { // several segments
		if err := l.Append([]*Entry{testEntry(i, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if l.Segments() < 3 {
		t.Fatalf("%d segments; the test wants several", l.Segments())
	}
	woke := make(chan error, 1)
	go func() { woke <- l.Wait(context.Background(), 300) }()
	id := strings.Repeat("cd", logIDSize)
	if err := l.Restart(id, 302); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiter on the old log did not wake")
	}
	if l.ID() != id || l.FirstIndex() != 302 || l.LastIndex() != 301 || l.Segments() != 1 || l.LastEpoch() != 0 {
		t.Fatalf("after restart: %s %d..%d, %d segments, last epoch %d", l.ID(), l.FirstIndex(), l.LastIndex(), l.Segments(), l.LastEpoch())
	}
	if _, err := l.Read(300, 10, 0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("an old entry read: %v", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 1 || names[0] != path {
		t.Fatalf("files left: %v", names)
	}
	if err := l.Append([]*Entry{testEntry(302, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A Restart cut before its rename leaves log.db.new: the old log opens.
	if err := os.WriteFile(path+restartSuffix, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.ID() != id || l.FirstIndex() != 302 || l.LastIndex() != 302 {
		t.Fatalf("reopened: %s %d..%d", l.ID(), l.FirstIndex(), l.LastIndex())
	}
	if _, err := os.Stat(path + restartSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the leftover stays: %v", err)
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
}
