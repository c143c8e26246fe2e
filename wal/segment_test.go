package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fill appends entries up to index to, in batches of 50, with epoch 1 up to
// half of them and 2 after.
func fill(tb testing.TB, l *Log, to uint64) {
	tb.Helper()
	for from := l.LastIndex() + 1; from <= to; from += 50 {
		end := min(from+49, to)
		var batch []*Entry
		for i := from; i <= end; i++ {
			batch = append(batch, testEntry(i, epochOf(i, to)))
		}
		if err := l.Append(batch); err != nil {
			tb.Fatal(err)
		}
	}
}

func epochOf(i, total uint64) uint64 {
	if i > total/2 {
		return 2
	}
	return 1
}

// readAll reads the whole log in reads of max entries and checks them.
func readAll(tb testing.TB, l *Log, max int, total uint64) {
	tb.Helper()
	next := l.FirstIndex()
	for next <= l.LastIndex() {
		got, err := l.Read(next, max, 0)
		if err != nil {
			tb.Fatal(err)
		}
		enc, err := l.ReadEncoded(next, max, 0)
		if err != nil || len(enc) != len(got) {
			tb.Fatalf("ReadEncoded from %d: %d entries, %v; Read gave %d", next, len(enc), err, len(got))
		}
		for i, e := range got {
			if d := diffEntry(testEntry(next+uint64(i), epochOf(next+uint64(i), total)), e); d != "" {
				tb.Fatalf("entry %d: %s", next+uint64(i), d)
			}
		}
		next += uint64(len(got))
	}
}

// Once the active file reaches SegmentBytes, it is sealed under the name of
// its first index and a new one started; reads, epochs and Check go across
// the files, and a reopened log finds them all.
func TestSegments(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.db")
	l, err := Open(path, Options{SegmentBytes: 64 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const total = 3000
	fill(t, l, total)
	if n := l.Segments(); n < 4 {
		t.Fatalf("%d segments", n)
	}
	for _, max := range []int{1, 7, 1000, 0} {
		readAll(t, l, max, total)
	}
	for _, i := range []uint64{1, 777, total / 2, total/2 + 1, total} {
		if e, err := l.EntryEpoch(i); err != nil || e != epochOf(i, total) {
			t.Fatalf("EntryEpoch(%d) = %d, %v", i, e, err)
		}
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	id, segs := l.ID(), l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "log-*.db"))
	if len(names) != segs-1 || !strings.HasSuffix(names[0], "log-00000000000000000001.db") {
		t.Fatalf("sealed files %v", names)
	}
	l, err = Open(path, Options{SegmentBytes: 64 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.ID() != id || l.FirstIndex() != 1 || l.LastIndex() != total || l.LastEpoch() != 2 || l.Segments() != segs {
		t.Fatalf("reopened: %s %d..%d epoch %d, %d segments", l.ID(), l.FirstIndex(), l.LastIndex(), l.LastEpoch(), l.Segments())
	}
	readAll(t, l, 333, total)
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
}

// Truncate deletes whole sealed segments before the index to keep, giving
// their space back; the log then starts at the first one that stays.
func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log.db")
	l, err := Open(path, Options{SegmentBytes: 64 << 10, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const total = 3000
	fill(t, l, total)
	before, segs := l.Size(), l.Segments()
	first, err := l.Truncate(2000)
	if err != nil {
		t.Fatal(err)
	}
	if first > 2000 || first <= 1 || l.FirstIndex() != first || l.Segments() >= segs || l.Size() >= before {
		t.Fatalf("first %d (log says %d), %d of %d segments, size %d of %d", first, l.FirstIndex(), l.Segments(), segs, l.Size(), before)
	}
	if _, err := l.Read(first-1, 1, 0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read below the first index: %v", err)
	}
	if _, err := l.EntryEpoch(first - 1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("epoch below the first index: %v", err)
	}
	readAll(t, l, 500, total)
	// The active segment stays, whatever the index.
	fill(t, l, total+10)
	if _, err := l.Truncate(total + 100); err != nil || l.Segments() != 1 || l.LastIndex() != total+10 {
		t.Fatalf("truncate all: %v, %d segments, last %d", err, l.Segments(), l.LastIndex())
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.FirstIndex() != l.FirstIndex() || l2.LastIndex() != total+10 {
		t.Fatalf("reopened: %d..%d", l2.FirstIndex(), l2.LastIndex())
	}
}

// A crash while a segment is sealed leaves the sealed file without an
// active one after it, or with an empty one: Open starts a new active
// segment that continues the log, with its log_id.
func TestSealInterrupted(t *testing.T) {
	for name, damage := range map[string]func(path string){
		"active missing": func(path string) { _ = os.Remove(path) },
		"active empty":   func(path string) { _ = os.WriteFile(path, nil, 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "log.db")
			l, err := Open(path, Options{SegmentBytes: 32 << 10, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			fill(t, l, 1000)
			id := l.ID()
			l.Close()
			// The state right after a seal renamed log.db: the entries of
			// the active file after the last sealed one are gone too.
			names, _ := filepath.Glob(filepath.Join(dir, "log-*.db"))
			if len(names) == 0 {
				t.Fatal("no sealed segment")
			}
			damage(path)
			l, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			last := l.LastIndex()
			if l.ID() != id || last == 0 || last >= 1000 || l.FirstIndex() != 1 || l.LastEpoch() != epochOf(last, 1000) {
				t.Fatalf("reopened: %s (want %s) %d..%d epoch %d", l.ID(), id, l.FirstIndex(), last, l.LastEpoch())
			}
			if err := l.Append(testEntries(last+1, last+5, 2)); err != nil {
				t.Fatal(err)
			}
			if err := l.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Segments that do not belong together are refused.
func TestSegmentsRefused(t *testing.T) {
	make3 := func(t *testing.T) (string, []string) {
		dir := t.TempDir()
		path := filepath.Join(dir, "log.db")
		l, err := Open(path, Options{SegmentBytes: 32 << 10, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, 1500)
		l.Close()
		names, _ := filepath.Glob(filepath.Join(dir, "log-*.db"))
		if len(names) < 3 {
			t.Fatalf("%d sealed segments", len(names))
		}
		return path, names
	}
	t.Run("a segment missing", func(t *testing.T) {
		path, names := make3(t)
		_ = os.Remove(names[1])
		if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("a segment of another log", func(t *testing.T) {
		path, names := make3(t)
		other := filepath.Join(t.TempDir(), "log.db")
		l, err := Open(other, Options{SegmentBytes: 32 << 10, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		fill(t, l, 1500)
		l.Close()
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(other), filepath.Base(names[1])))
		if err := os.WriteFile(names[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "belongs to log") {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("a segment renamed", func(t *testing.T) {
		path, names := make3(t)
		if err := os.Rename(names[1], filepath.Join(filepath.Dir(path), "log-00000000000000000002.db")); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: %v", err)
		}
	})
}
