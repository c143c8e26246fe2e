package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Seal seals the active segment whenever it holds entries, beside
// concurrent appends: the log stays whole and contiguous, and sealing an
// empty active segment does nothing.
func TestSeal(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "log.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if sealed, err := l.Seal(); sealed || err != nil {
		t.Fatalf("Seal of an empty log: %v, %v", sealed, err)
	}
	const total = 2000
	appended := make(chan error, 1)
	go func() {
		var err error
		for i := uint64(1); i <= total && err == nil; i += 10 {
			err = l.Append(testEntries(i, i+9, 1))
		}
		appended <- err
	}()
	seals := 0
	var appendErr error
	for running := true; running; {
		select {
		case appendErr = <-appended:
			running = false
			continue
		default:
		}
		if l.ActiveFirstIndex() > l.LastIndex() {
			continue
		}
		sealed, err := l.Seal()
		if err != nil {
			t.Fatal(err)
		}
		if sealed {
			seals++
		}
	}
	if appendErr != nil {
		t.Fatal(appendErr)
	}
	if seals == 0 || l.Segments() != len(l.Sealed())+1 {
		t.Fatalf("%d seals, %d segments, %d sealed", seals, l.Segments(), len(l.Sealed()))
	}
	if sealed, err := l.Seal(); err != nil || sealed != (l.ActiveFirstIndex() <= total) {
		t.Fatalf("last Seal: %v, %v", sealed, err)
	}
	if sealed, err := l.Seal(); sealed || err != nil {
		t.Fatalf("Seal of an empty active segment: %v, %v", sealed, err)
	}
	if got := l.ActiveFirstIndex(); got != total+1 {
		t.Fatalf("ActiveFirstIndex %d, want %d", got, total+1)
	}
	got, err := l.Read(1, 0, 0)
	if err != nil || len(got) != total {
		t.Fatalf("read %d entries: %v", len(got), err)
	}
	for i, e := range got {
		if d := diffEntry(testEntry(uint64(i+1), 1), e); d != "" {
			t.Fatalf("entry %d: %s", i+1, d)
		}
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	for _, s := range l.Sealed() {
		if s.First != next || s.Path != l.sealedPath(s.First) {
			t.Fatalf("segment %+v, want first %d", s, next)
		}
		next = s.Last + 1
	}
}

// A sealed segment file, copied away from its log, reads on its own: its
// log_id, bounds, entries and times; a read from inside it starts there.
func TestSegmentFile(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "log.db"), Options{SegmentBytes: 64 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const total = 1500
	fill(t, l, total)
	segs := l.Sealed()
	if len(segs) < 2 {
		t.Fatalf("%d sealed segments", len(segs))
	}
	s := segs[1]
	cp := filepath.Join(t.TempDir(), "copy.db")
	b, err := os.ReadFile(s.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenSegmentFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	if f.LogID() != l.ID() || f.First() != s.First || f.Last() != s.Last {
		t.Fatalf("file %s %d..%d, segment %s %d..%d", f.LogID(), f.First(), f.Last(), l.ID(), s.First, s.Last)
	}
	next := s.First
	err = f.Times(func(index uint64, ms int64) error {
		if index != next || ms != testEntry(index, 1).Time {
			t.Fatalf("Times: %d at %d, want %d at %d", index, ms, next, testEntry(next, 1).Time)
		}
		next++
		return nil
	})
	if err != nil || next != s.Last+1 {
		t.Fatalf("Times ended at %d: %v", next, err)
	}
	from := s.First + 3
	next = from
	err = f.Read(from, func(e *Entry) error {
		if d := diffEntry(testEntry(next, epochOf(next, total)), e); d != "" {
			t.Fatalf("entry %d: %s", next, d)
		}
		next++
		return nil
	})
	if err != nil || next != s.Last+1 {
		t.Fatalf("Read ended at %d: %v", next, err)
	}
	stop := errors.New("stop")
	if err := f.Read(s.First, func(*Entry) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Read whose fn fails: %v", err)
	}
	if err := f.Read(s.Last+1, func(*Entry) error { return nil }); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("Read beyond the segment: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := ReadSegmentFile(cp, s.Last, func(*Entry) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("ReadSegmentFile from the last entry: %d entries, %v", n, err)
	}

	// A truncated copy is refused before bbolt maps it, naming the file.
	short := filepath.Join(t.TempDir(), "short.db")
	if err := os.WriteFile(short, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSegmentFile(short); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), short) {
		t.Fatalf("a truncated segment file: %v", err)
	}
	// A log file without entries is no segment file.
	emptyPath := filepath.Join(t.TempDir(), "log.db")
	empty, err := Open(emptyPath, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSegmentFile(emptyPath); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "without entries") {
		t.Fatalf("a segment file without entries: %v", err)
	}
}
