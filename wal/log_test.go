package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// MustOpenLog opens a new log in a temporary directory. Its cleanup closes
// the log, reopens the file and runs Check, so every test also verifies that
// what it left on disk is a valid, contiguous log.
func MustOpenLog(tb testing.TB, opts ...Options) *Log {
	tb.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	path := filepath.Join(tb.TempDir(), "log.db")
	l, err := Open(path, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
		MustCheckFile(tb, path)
	})
	return l
}

// MustCheckFile opens the log at path, runs Check and closes it.
func MustCheckFile(tb testing.TB, path string) {
	tb.Helper()
	l, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		tb.Errorf("reopen for check: %v", err)
		return
	}
	defer l.Close()
	if err := l.Check(); err != nil {
		tb.Errorf("check: %v", err)
	}
}

// testEntry returns a deterministic entry for index, so that readers can
// verify what they read.
func testEntry(index, epoch uint64) *Entry {
	return &Entry{
		Index: index,
		Epoch: epoch,
		Time:  1764000000000 + int64(index),
		Seed:  index * 0x9e3779b97f4a7c15,
		Txn:   index%2 == 0,
		Statements: []Statement{{
			SQL:    "INSERT INTO t(i, s, b) VALUES (?, ?, ?)",
			Pos:    uint32(index % 3),
			Params: []Param{{Value: Integer(int64(index))}, {Value: Text(fmt.Sprint("row ", index))}, {Value: Blob([]byte{byte(index)})}},
		}},
	}
}

// testEntries returns entries from..to (inclusive) of epoch.
func testEntries(from, to, epoch uint64) []*Entry {
	var out []*Entry
	for i := from; i <= to; i++ {
		out = append(out, testEntry(i, epoch))
	}
	return out
}

// mustAppend appends entries from..to of epoch.
func mustAppend(tb testing.TB, l *Log, from, to, epoch uint64) {
	tb.Helper()
	if err := l.Append(testEntries(from, to, epoch)); err != nil {
		tb.Fatal(err)
	}
}

// checkEntries fails unless got are the test entries from index from, in
// order, of epoch.
func checkEntries(tb testing.TB, got []*Entry, from, epoch uint64) {
	tb.Helper()
	for i, e := range got {
		if d := diffEntry(testEntry(from+uint64(i), epoch), e); d != "" {
			tb.Fatalf("entry %d: %s", from+uint64(i), d)
		}
	}
}

// checkBounds fails unless the log's bounds are first, last and lastEpoch.
func checkBounds(tb testing.TB, l *Log, first, last, lastEpoch uint64) {
	tb.Helper()
	if f, la, le := l.FirstIndex(), l.LastIndex(), l.LastEpoch(); f != first || la != last || le != lastEpoch {
		tb.Fatalf("first, last, last epoch = %d, %d, %d, want %d, %d, %d", f, la, le, first, last, lastEpoch)
	}
}

// within fails the test unless ch is ready before a generous deadline.
func within[T any](tb testing.TB, ch <-chan T, what string) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		tb.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestOpenNew(t *testing.T) {
	l := MustOpenLog(t)
	checkBounds(t, l, 1, 0, 0)
	if l.Epoch() != 1 {
		t.Errorf("Epoch() = %d, want 1", l.Epoch())
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(l.ID()) {
		t.Errorf("ID() = %q, want 32 lowercase hex characters", l.ID())
	}
	if l.Path() == "" || filepath.Base(l.Path()) != "log.db" {
		t.Errorf("Path() = %q", l.Path())
	}
	if l.Size() <= 0 {
		t.Errorf("Size() = %d", l.Size())
	}
	if ep, err := l.EntryEpoch(0); err != nil || ep != 0 {
		t.Errorf("EntryEpoch(0) = %d, %v, want 0, nil", ep, err)
	}
	if got, err := l.Read(1, 10, 0); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Read(1) of an empty log = %v, %v, want an empty slice", got, err)
	}
	if err := l.Append(nil); err != nil {
		t.Errorf("Append(nil) = %v", err)
	}
	checkBounds(t, l, 1, 0, 0)

	// Two logs never share an ID.
	if other := MustOpenLog(t); other.ID() == l.ID() {
		t.Error("two new logs have the same ID")
	}
}

func TestOpenEpoch(t *testing.T) {
	l := MustOpenLog(t, Options{Epoch: 5})
	if l.Epoch() != 5 {
		t.Fatalf("Epoch() = %d, want 5", l.Epoch())
	}
	checkBounds(t, l, 1, 0, 0)
}

func TestAppendRead(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	mustAppend(t, l, 1, 1, 1)
	mustAppend(t, l, 2, 10, 1)
	mustAppend(t, l, 11, 20, 2)
	checkBounds(t, l, 1, 20, 2)

	got, err := l.Read(1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("Read(1) returned %d entries, want 20", len(got))
	}
	checkEntries(t, got[:10], 1, 1)
	checkEntries(t, got[10:], 11, 2)

	got, err = l.Read(15, 0, 0)
	if err != nil || len(got) != 6 || got[0].Index != 15 {
		t.Fatalf("Read(15) = %d entries, %v", len(got), err)
	}
	got, err = l.Read(21, 0, 0)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Read(last+1) = %v, %v, want an empty slice", got, err)
	}

	// ReadEncoded gives the same entries, encoded.
	enc, err := l.ReadEncoded(3, 0, 0)
	if err != nil || len(enc) != 18 {
		t.Fatalf("ReadEncoded(3) = %d entries, %v, want 18", len(enc), err)
	}
	for i, b := range enc {
		var e Entry
		if err := e.UnmarshalBinary(b); err != nil || e.Index != uint64(i+3) {
			t.Fatalf("ReadEncoded(3)[%d]: index %d, %v", i, e.Index, err)
		}
		again, _ := e.MarshalBinary()
		if !bytes.Equal(again, b) {
			t.Fatalf("ReadEncoded(3)[%d] is not the entry's encoding", i)
		}
	}
	if enc, err := l.ReadEncoded(21, 0, 0); err != nil || enc == nil || len(enc) != 0 {
		t.Fatalf("ReadEncoded(last+1) = %v, %v, want an empty slice", enc, err)
	}
	if _, err := l.ReadEncoded(22, 0, 0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("ReadEncoded(last+2): err = %v, want ErrOutOfRange", err)
	}

	for _, c := range []struct{ index, epoch uint64 }{{0, 0}, {1, 1}, {10, 1}, {11, 2}, {20, 2}} {
		if ep, err := l.EntryEpoch(c.index); err != nil || ep != c.epoch {
			t.Errorf("EntryEpoch(%d) = %d, %v, want %d", c.index, ep, err, c.epoch)
		}
	}
	if _, err := l.EntryEpoch(21); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("EntryEpoch(21) err = %v, want ErrOutOfRange", err)
	}
}

func TestReadLimits(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	mustAppend(t, l, 1, 10, 1)
	size := func(e *Entry) int {
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	one := size(testEntry(1, 1))

	for _, c := range []struct {
		name                string
		from                uint64
		maxEntries, maxByte int
		want                int
	}{
		{"maxEntries", 1, 3, 0, 3},
		{"maxEntries 1", 4, 1, 0, 1},
		{"maxEntries beyond end", 8, 100, 0, 3},
		{"tiny maxBytes gives one", 1, 0, 1, 1},
		{"tiny maxBytes and maxEntries", 5, 5, 1, 1},
		{"maxBytes for two", 1, 0, 2*one + one/2, 2},
		{"maxBytes exactly three", 1, 0, 3 * one, 3},
		{"both, entries first", 1, 2, 100 * one, 2},
		{"both, bytes first", 1, 9, 4 * one, 4},
		{"no limits", 1, 0, 0, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := l.Read(c.from, c.maxEntries, c.maxByte)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.want {
				t.Fatalf("got %d entries, want %d", len(got), c.want)
			}
			checkEntries(t, got, c.from, 1)
			enc, err := l.ReadEncoded(c.from, c.maxEntries, c.maxByte)
			if err != nil || len(enc) != c.want {
				t.Fatalf("ReadEncoded: %d entries, %v, want %d", len(enc), err, c.want)
			}
		})
	}

	// An entry larger than maxBytes still comes, alone.
	big := &Entry{Index: 11, Epoch: 1, Statements: []Statement{{SQL: "x", Params: []Param{{Value: Blob(make([]byte, 1<<20))}}}}}
	if err := l.Append([]*Entry{big}); err != nil {
		t.Fatal(err)
	}
	got, err := l.Read(11, 10, 1024)
	if err != nil || len(got) != 1 || len(got[0].Statements[0].Params[0].Value.Blob) != 1<<20 {
		t.Fatalf("Read of a large entry = %d entries, %v", len(got), err)
	}
	got, err = l.Read(10, 10, 1024)
	if err != nil || len(got) != 1 || got[0].Index != 10 {
		t.Fatalf("Read(10) before a large entry = %d entries, %v, want entry 10 alone", len(got), err)
	}
}

func TestReadOutOfRange(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	if _, err := l.Read(0, 0, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Read(0) on an empty log: err = %v, want ErrOutOfRange", err)
	}
	if _, err := l.Read(2, 0, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Read(2) on an empty log: err = %v, want ErrOutOfRange", err)
	}
	mustAppend(t, l, 1, 5, 1)
	for _, from := range []uint64{0, 7, 100, ^uint64(0)} {
		if got, err := l.Read(from, 0, 0); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("Read(%d): %d entries, err = %v, want ErrOutOfRange", from, len(got), err)
		}
	}
	_, err := l.Read(7, 0, 0)
	if want := "read from 7, log holds 1..5"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
	if _, err := l.EntryEpoch(6); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("EntryEpoch(6): err = %v, want ErrOutOfRange", err)
	}
}

func TestReopen(t *testing.T) {
	l := MustOpenLog(t, Options{Epoch: 7})
	mustAppend(t, l, 1, 4, 7)
	mustAppend(t, l, 5, 9, 8)
	id, path := l.ID(), l.Path()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The stored epoch wins over Options.Epoch.
	l2, err := Open(path, Options{Epoch: 99})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l2.Close() })
	if l2.ID() != id || l2.Epoch() != 7 {
		t.Fatalf("reopened ID, epoch = %s, %d, want %s, 7", l2.ID(), l2.Epoch(), id)
	}
	checkBounds(t, l2, 1, 9, 8)
	got, err := l2.Read(1, 0, 0)
	if err != nil || len(got) != 9 {
		t.Fatalf("Read = %d entries, %v", len(got), err)
	}
	checkEntries(t, got[:4], 1, 7)
	checkEntries(t, got[4:], 5, 8)
	mustAppend(t, l2, 10, 10, 8)
	checkBounds(t, l2, 1, 10, 8)
}

func TestAppendNotContiguous(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	mustAppend(t, l, 1, 3, 2)
	for _, c := range []struct {
		name    string
		entries []*Entry
	}{
		{"gap", testEntries(5, 6, 2)},
		{"repeat last", testEntries(3, 4, 2)},
		{"from zero", testEntries(0, 1, 2)},
		{"not consecutive", []*Entry{testEntry(4, 2), testEntry(6, 2)}},
		{"duplicate in batch", []*Entry{testEntry(4, 2), testEntry(4, 2)}},
		{"epoch below last", testEntries(4, 5, 1)},
		{"epoch decreasing", []*Entry{testEntry(4, 3), testEntry(5, 2)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := l.Append(c.entries); !errors.Is(err, ErrNotContiguous) {
				t.Fatalf("err = %v, want ErrNotContiguous", err)
			}
			checkBounds(t, l, 1, 3, 2)
			if got, err := l.Read(4, 0, 0); err != nil || len(got) != 0 {
				t.Fatalf("Read(4) = %d entries, %v", len(got), err)
			}
		})
	}
	if err := l.Append([]*Entry{testEntry(4, 2), nil}); err == nil {
		t.Error("Append with a nil entry: no error")
	}
	bad := testEntry(4, 2)
	bad.Statements[0].Params[0].Value.Kind = 42
	if err := l.Append([]*Entry{bad}); err == nil {
		t.Error("Append with an unknown value kind: no error")
	}
	checkBounds(t, l, 1, 3, 2)
	mustAppend(t, l, 4, 4, 3) // a higher epoch is fine
	checkBounds(t, l, 1, 4, 3)
}

func TestAppendBeforeCommitFails(t *testing.T) {
	errBoom := errors.New("boom")
	var fail bool
	var seen []uint64
	l := MustOpenLog(t, Options{BeforeCommit: func(entries []*Entry) error {
		seen = append(seen, entries[0].Index)
		if fail {
			return errBoom
		}
		return nil
	}})
	mustAppend(t, l, 1, 2, 1)
	notify := l.Notify()

	fail = true
	if err := l.Append(testEntries(3, 5, 1)); !errors.Is(err, errBoom) {
		t.Fatalf("err = %v, want it to wrap the failpoint's error", err)
	}
	checkBounds(t, l, 1, 2, 1)
	if got, err := l.Read(3, 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("Read(3) after a failed append = %d entries, %v", len(got), err)
	}
	select {
	case <-notify:
		t.Fatal("a failed append closed the Notify channel")
	default:
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}

	fail = false
	mustAppend(t, l, 3, 5, 1)
	checkBounds(t, l, 1, 5, 1)
	if want := []uint64{1, 3, 3}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("BeforeCommit saw first indexes %v, want %v", seen, want)
	}
}

func TestAppendAfterCommit(t *testing.T) {
	var events []string
	var l *Log
	l = MustOpenLog(t, Options{
		BeforeCommit: func(entries []*Entry) error {
			events = append(events, fmt.Sprint("before ", entries[len(entries)-1].Index))
			return nil
		},
		AfterCommit: func(last uint64) {
			events = append(events, fmt.Sprint("after ", last))
			if l.LastIndex() != last {
				t.Errorf("in AfterCommit, LastIndex() = %d, want %d", l.LastIndex(), last)
			}
			// The hook may use the log: the entries are readable.
			if got, err := l.Read(last, 0, 0); err != nil || len(got) != 1 || got[0].Index != last {
				t.Errorf("in AfterCommit, Read(%d) = %d entries, %v", last, len(got), err)
			}
		},
	})
	mustAppend(t, l, 1, 3, 1)
	events = append(events, "returned")
	mustAppend(t, l, 4, 4, 1)
	events = append(events, "returned")
	// A failed append does not call it.
	if err := l.Append(testEntries(9, 9, 1)); err == nil {
		t.Fatal("no error")
	}
	want := "[before 3 after 3 returned before 4 after 4 returned]"
	if got := fmt.Sprint(events); got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
}

func TestWait(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	ctx := context.Background()
	mustAppend(t, l, 1, 2, 1)

	// Already satisfied.
	if err := l.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx, 2) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v before an append", err)
	default:
	}
	mustAppend(t, l, 3, 3, 1)
	if err := within(t, done, "Wait to wake"); err != nil {
		t.Fatal(err)
	}

	// Wakes only past its index.
	go func() { done <- l.Wait(ctx, 4) }()
	mustAppend(t, l, 4, 4, 1)
	mustAppend(t, l, 5, 5, 1)
	if err := within(t, done, "Wait to wake"); err != nil {
		t.Fatal(err)
	}
	if l.LastIndex() <= 4 {
		t.Fatalf("Wait(4) returned at LastIndex %d", l.LastIndex())
	}

	// Honours its context.
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- l.Wait(cctx, 100) }()
	cancel()
	if err := within(t, done, "Wait to see its context end"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := l.Wait(tctx, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}

	// Close wakes it.
	go func() { done <- l.Wait(ctx, 100) }()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, done, "Wait to see Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

func TestNotify(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	ch := l.Notify()
	select {
	case <-ch:
		t.Fatal("Notify channel closed before an append")
	default:
	}
	mustAppend(t, l, 1, 1, 1)
	within(t, ch, "the Notify channel to close")
	next := l.Notify()
	select {
	case <-next:
		t.Fatal("the channel after an append is already closed")
	default:
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	within(t, next, "Close to close the Notify channel")
	within(t, l.Notify(), "Notify after Close to be closed")
}

func TestClose(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	mustAppend(t, l, 1, 3, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := l.Append(testEntries(4, 4, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append: %v", err)
	}
	if _, err := l.Read(1, 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Read: %v", err)
	}
	if _, err := l.EntryEpoch(1); !errors.Is(err, ErrClosed) {
		t.Errorf("EntryEpoch: %v", err)
	}
	if err := l.Check(); !errors.Is(err, ErrClosed) {
		t.Errorf("Check: %v", err)
	}
	if err := l.Wait(context.Background(), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait: %v", err)
	}
	if l.Size() != 0 {
		t.Errorf("Size after Close = %d", l.Size())
	}
	// The cached identity stays readable.
	if len(l.ID()) != 32 || l.LastIndex() != 3 {
		t.Errorf("ID, LastIndex after Close = %q, %d", l.ID(), l.LastIndex())
	}
}

// TestConcurrentReadersDuringAppends runs readers that follow the log while
// one appender writes to it (run with -race).
func TestConcurrentReadersDuringAppends(t *testing.T) {
	const total = 600
	l := MustOpenLog(t, Options{NoSync: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 6 {
		wg.Go(func() {
			next := uint64(1)
			for next <= total {
				// Take the channel before reading, so that an append
				// between the read and the wait is not missed.
				notify := l.Notify()
				got, err := l.Read(next, 1+r, 0)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					// Caught up: half the readers wait with Wait, half
					// with Notify.
					if r%2 == 0 {
						err = l.Wait(ctx, next-1)
					} else {
						select {
						case <-notify:
						case <-ctx.Done():
							err = ctx.Err()
						}
					}
					if err != nil {
						errs <- err
						return
					}
					continue
				}
				for _, e := range got {
					if d := diffEntry(testEntry(next, 1), e); d != "" {
						errs <- fmt.Errorf("reader %d: entry %d: %s", r, next, d)
						return
					}
					next++
				}
				if _, err := l.EntryEpoch(next - 1); err != nil {
					errs <- err
					return
				}
				_ = l.LastIndex()
				_ = l.Size()
			}
		})
	}
	for i := uint64(1); i <= total; {
		n := 1 + i%5
		if i+n-1 > total {
			n = total - i + 1
		}
		if err := l.Append(testEntries(i, i+n-1, 1)); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// createLog creates a log file at a new path with entries 1..n (epoch 1)
// and closes it.
func createLog(tb testing.TB, n uint64, payload int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "log.db")
	l, err := Open(path, Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	for i := uint64(1); i <= n; i++ {
		e := testEntry(i, 1)
		e.Statements[0].SQL += strings.Repeat(" ", payload)
		if err := l.Append([]*Entry{e}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// editBolt changes the log's file with bbolt directly, as damage would.
func editBolt(tb testing.TB, path string, fn func(tx *bolt.Tx) error) {
	tb.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		tb.Fatal(err)
	}
}

func TestCorruptEntry(t *testing.T) {
	path := createLog(t, 5, 0)
	editBolt(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		v := bytes.Clone(b.Get(encodeKey(3)))
		v[len(v)/2] ^= 0x40
		return b.Put(encodeKey(3), v)
	})

	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	checkBounds(t, l, 1, 5, 1)

	for _, from := range []uint64{1, 3} {
		got, err := l.Read(from, 0, 0)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Read(%d): %d entries, err = %v, want ErrCorrupt", from, len(got), err)
		}
		if !strings.Contains(err.Error(), "entry 3:") || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Fatalf("err = %v, want it to name entry 3 and the checksum", err)
		}
	}
	// The entries before it are readable; the reader stops at it.
	if got, err := l.Read(1, 2, 0); err != nil || len(got) != 2 {
		t.Fatalf("Read(1, 2) = %d entries, %v", len(got), err)
	}
	// ReadEncoded passes bytes on undecoded, but checked all the same.
	if enc, err := l.ReadEncoded(2, 0, 0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry 3:") {
		t.Fatalf("ReadEncoded(2): %d entries, err = %v, want ErrCorrupt naming entry 3", len(enc), err)
	}
	if enc, err := l.ReadEncoded(1, 2, 0); err != nil || len(enc) != 2 {
		t.Fatalf("ReadEncoded(1, 2) = %d entries, %v", len(enc), err)
	}
	if _, err := l.EntryEpoch(3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("EntryEpoch(3): err = %v, want ErrCorrupt", err)
	}
	if err := l.Check(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "entry 3:") {
		t.Fatalf("Check: err = %v, want ErrCorrupt naming entry 3", err)
	}
}

// TestCorruptLayout damages the meta bucket and the keys: Open, Read or
// Check must say so.
func TestCorruptLayout(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(tx *bolt.Tx) error
		want string // in Open's error; "" if Open succeeds and Check fails
	}{
		{"last entry corrupt", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			v := bytes.Clone(b.Get(encodeKey(5)))
			v[0] = 9
			return b.Put(encodeKey(5), v)
		}, "entry 5: checksum mismatch"},
		{"last_index missing", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Delete(keyLastIndex)
		}, "meta last_index missing"},
		{"first_index short", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyFirstIndex, []byte{1})
		}, "meta first_index: value of 1 bytes"},
		{"log_id short", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyLogID, []byte{1, 2, 3})
		}, "meta log_id: 3 bytes"},
		{"epoch zero", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyEpoch, encodeUint64(0))
		}, "epoch is 0"},
		{"last below first", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyFirstIndex, encodeUint64(9))
		}, "first_index 9, last_index 5"},
		{"last_index behind keys", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyLastIndex, encodeUint64(4))
		}, "last key is 0000000000000005, meta last_index is 4"},
		{"meta bucket missing", func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketMeta)
		}, `bucket "meta" missing`},
		{"entry under wrong key", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			v, _ := testEntry(2, 1).MarshalBinary()
			return b.Put(encodeKey(3), v)
		}, ""},
		{"gap", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEntries).Delete(encodeKey(2))
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := createLog(t, 5, 0)
			editBolt(t, path, c.edit)
			l, err := Open(path, Options{})
			if c.want != "" {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open: err = %v, want ErrCorrupt saying %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Check(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check: err = %v, want ErrCorrupt", err)
			}
			if _, err := l.Read(1, 0, 0); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read: err = %v, want ErrCorrupt", err)
			}
			if _, err := l.ReadEncoded(1, 0, 0); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadEncoded: err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenTruncated(t *testing.T) {
	path := createLog(t, 300, 1000)
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	used := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(os.Getpagesize())
	for _, size := range []int64{used / 2, used - ps, 3 * ps, ps + 100, 100, 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			if err := os.WriteFile(path, orig[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			l, err := Open(path, Options{})
			if err == nil {
				l.Close()
				t.Fatal("Open of a truncated file succeeded")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want ErrCorrupt naming the file", err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("Open took %v", d)
			}
			t.Log(err)
			// Open must not have "repaired" the file.
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != size {
				t.Fatalf("file size after Open = %d, want %d", fi.Size(), size)
			}
		})
	}
	// A half file says how much is missing.
	if err := os.WriteFile(path, orig[:used/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if want := fmt.Sprintf("is truncated: %d bytes, needs %d", used/2, used); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to say %q", err, want)
	}
}

// TestReadFaultRecovered shrinks the file under an open log: bbolt's mapping
// then points past the end of the file, and reading it faults. The log must
// turn that into ErrCorrupt instead of dying of SIGBUS.
func TestReadFaultRecovered(t *testing.T) {
	path := createLog(t, 300, 1000)
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := os.Truncate(path, 2*int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	_, err = l.Read(100, 0, 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "memory fault") {
		t.Fatalf("err = %v, want ErrCorrupt from a memory fault", err)
	}
	t.Log(err)
	if _, err := l.EntryEpoch(50); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("EntryEpoch: err = %v, want ErrCorrupt", err)
	}
}

func TestOpenGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{10, 4096, 64 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log.db")
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(path, Options{})
			if err == nil {
				l.Close()
				t.Fatal("Open of garbage succeeded")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not a valid bbolt file") {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenForeignBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	editBolt(t, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("other"))
		return err
	})
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not a walship log") {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

// TestOpenEmptyFile: an empty file (created but never written) becomes a
// new log.
func TestOpenEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	checkBounds(t, l, 1, 0, 0)
	mustAppend(t, l, 1, 1, 1)
}

func TestOpenLocked(t *testing.T) {
	l := MustOpenLog(t)
	start := time.Now()
	const timeout = 200 * time.Millisecond
	l2, err := Open(l.Path(), Options{Timeout: timeout})
	if err == nil {
		l2.Close()
		t.Fatal("second Open of an open log succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("err = %v, want bbolt's timeout", err)
	}
	// bbolt polls the lock every 50ms and gives up one poll early.
	if d := time.Since(start); d < timeout-50*time.Millisecond || d > 5*time.Second {
		t.Errorf("second Open returned after %v", d)
	}
}

func BenchmarkAppend(b *testing.B) {
	l := MustOpenLog(b)
	i := uint64(1)
	for b.Loop() {
		if err := l.Append([]*Entry{testEntry(i, 1)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAppendBatch1000(b *testing.B) {
	l := MustOpenLog(b)
	i := uint64(1)
	for b.Loop() {
		if err := l.Append(testEntries(i, i+999, 1)); err != nil {
			b.Fatal(err)
		}
		i += 1000
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i-1), "ns/entry")
}

func BenchmarkRead(b *testing.B) {
	const n, batch = 10000, 100
	l := MustOpenLog(b, Options{NoSync: true})
	for i := uint64(1); i <= n; i += 1000 {
		mustAppend(b, l, i, i+999, 1)
	}
	from := uint64(1)
	for b.Loop() {
		got, err := l.Read(from, batch, 0)
		if err != nil || len(got) != batch {
			b.Fatalf("Read(%d) = %d entries, %v", from, len(got), err)
		}
		from += batch
		if from > n {
			from = 1
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
}

// SetEpoch raises the log's epoch durably: it survives a reopen and a seal,
// a lower one is refused, and the log's check accepts the result.
func TestSetEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.db")
	l, err := Open(path, Options{NoSync: true, SegmentBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, 1, 3, 1)
	if err := l.SetEpoch(4); err != nil {
		t.Fatal(err)
	}
	if err := l.SetEpoch(3); err == nil {
		t.Fatal("SetEpoch(3) after 4: no error")
	}
	if err := l.SetEpoch(4); err != nil {
		t.Fatalf("SetEpoch to the same epoch: %v", err)
	}
	mustAppend(t, l, 4, 4, 4) // seals the segment first (SegmentBytes 1)
	if l.Segments() < 2 || l.Epoch() != 4 {
		t.Fatalf("%d segments, epoch %d; want a sealed segment and epoch 4", l.Segments(), l.Epoch())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Epoch() != 4 || l.LastEpoch() != 4 || l.LastIndex() != 4 {
		t.Fatalf("reopened: epoch %d, last entry's epoch %d, last index %d; want 4, 4, 4", l.Epoch(), l.LastEpoch(), l.LastIndex())
	}
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
}

// EpochStart finds where each epoch begins, and says when none has begun.
func TestEpochStart(t *testing.T) {
	l := MustOpenLog(t, Options{NoSync: true})
	if _, ok, err := l.EpochStart(1); ok || err != nil {
		t.Fatalf("empty log: ok %v, %v", ok, err)
	}
	mustAppend(t, l, 1, 10, 1)
	mustAppend(t, l, 11, 11, 3)
	mustAppend(t, l, 12, 40, 4)
	for _, c := range []struct {
		epoch, want uint64
		ok          bool
	}{{0, 1, true}, {1, 1, true}, {2, 11, true}, {3, 11, true}, {4, 12, true}, {5, 0, false}} {
		got, ok, err := l.EpochStart(c.epoch)
		if err != nil || ok != c.ok || got != c.want {
			t.Fatalf("EpochStart(%d) = %d, %v, %v; want %d, %v", c.epoch, got, ok, err, c.want, c.ok)
		}
	}
}
