package master

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// mustOpenVerifying opens a master with VerifyEvery set; hook, if not
// nil, runs before each check's hash.
func mustOpenVerifying(tb testing.TB, every uint64, hook func(uint64)) *testNode {
	tb.Helper()
	dir := tb.TempDir()
	n := &testNode{dir: dir}
	var err error
	if n.log, err = wal.Open(filepath.Join(dir, "log.db"), wal.Options{}); err != nil {
		tb.Fatal(err)
	}
	if n.db, err = db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()}); err != nil {
		tb.Fatal(err)
	}
	if n.m, err = Open(n.log, n.db, Config{Logger: quietLogger(), VerifyEvery: every}); err != nil {
		tb.Fatal(err)
	}
	n.m.v.hashHook = hook
	tb.Cleanup(n.close)
	return n
}

// sumsAt returns the checksum's parts of a new database given the
// master's log up to index k: what the master held at k.
func (n *testNode) sumsAt(tb testing.TB, k uint64) []wal.Part {
	tb.Helper()
	r, err := db.Open(filepath.Join(tb.TempDir(), "at.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	entries, err := n.log.Read(1, int(k), 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.Apply(n.log.ID(), entries[:k]); err != nil {
		tb.Fatal(err)
	}
	sum, err := r.Checksum(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if sum.Index != k {
		tb.Fatalf("replica at %d, want %d", sum.Index, k)
	}
	parts, err := sum.Parts()
	if err != nil {
		tb.Fatal(err)
	}
	return parts
}

// waitIdle waits until no check runs and none is due.
func (n *testNode) waitIdle(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.m.v.busy.Load() || len(n.m.v.due) > 0 {
		if time.Now().After(deadline) {
			tb.Fatal("a check still runs after 10s")
		}
		time.Sleep(time.Millisecond) // ok: poll interval
	}
}

// checks returns the log's markers and results (by the index of their
// marker).
func (n *testNode) checks(tb testing.TB) (markers []uint64, results map[uint64]*wal.Entry) {
	tb.Helper()
	entries, err := n.log.Read(1, 1<<20, 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	results = map[uint64]*wal.Entry{}
	for _, e := range entries {
		switch {
		case e.Check.IsMarker():
			markers = append(markers, e.Index)
		case e.Check != nil:
			if results[e.Check.Of] != nil {
				tb.Fatalf("two results of the marker at %d", e.Check.Of)
			}
			results[e.Check.Of] = e
		}
	}
	return markers, results
}

// With VerifyEvery, the writer appends a marker every N entries; each
// result, appended while writes go on, holds exactly the sums of the
// content at its marker.
func TestVerifyEvery(t *testing.T) {
	const every = 10
	n := mustOpenVerifying(t, every, nil)
	n.mustExec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "CREATE TABLE u (k TEXT PRIMARY KEY, n) WITHOUT ROWID")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				r := n.m.Execute(context.Background(), stmts(fmt.Sprintf("INSERT INTO t (v) VALUES ('%d-%d')", w, i),
					fmt.Sprintf("INSERT OR REPLACE INTO u VALUES ('%d', %d)", i%5, i)))
				if r.Err != nil || r.Outcome.Err != nil {
					t.Errorf("write: %v / %v", r.Err, r.Outcome.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n.waitIdle(t)
	markers, results := n.checks(t)
	if len(markers) < 2 {
		t.Fatalf("markers at %v after %d entries, every %d", markers, n.log.LastIndex(), every)
	}
	prev := uint64(1)
	for _, k := range markers {
		if k < prev+every {
			t.Errorf("marker at %d, only %d entries after %d", k, k-prev, prev)
		}
		prev = k
		r := results[k]
		if r == nil {
			t.Errorf("no result of the marker at %d", k)
			continue
		}
		if r.Index <= k {
			t.Errorf("the result of %d at %d", k, r.Index)
		}
		if want := n.sumsAt(t, k); !slices.Equal(r.Check.Parts, want) {
			t.Errorf("the result of %d holds %v, the content at %d sums to %v", k, r.Check.Parts, k, want)
		}
	}
	v := n.m.Verification()
	if v.Checks != uint64(len(markers)) || v.Mismatches != 0 || v.Last == nil || v.Last.Outcome == "" {
		t.Fatalf("verification %+v, last %+v; %d markers", v, v.Last, len(markers))
	}
	// The database is what the log says: the check entries changed nothing.
	if a, b := n.replicaSum(t); a != b {
		t.Fatalf("master %s, replica %s", a, b)
	}
}

// Verify appends a marker now; WaitVerified returns the sums of the
// content at it, even though writes went on meanwhile.
func TestVerifyOnDemand(t *testing.T) {
	release := make(chan struct{})
	hooked := make(chan uint64, 1)
	n := mustOpenVerifying(t, 0, func(k uint64) {
		hooked <- k
		<-release
	})
	ctx := context.Background()
	n.mustExec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "INSERT INTO t (v) VALUES ('a')")
	k, err := n.m.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k != 2 || <-hooked != k {
		t.Fatalf("marker at %d, want 2", k)
	}
	// Writes while the check waits to hash: it still hashes the content at k.
	n.mustExec(t, "INSERT INTO t (v) VALUES ('b')")
	n.mustExec(t, "UPDATE t SET v = 'z'", "CREATE TABLE later (x)")
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := n.m.WaitVerified(short, k); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitVerified while the check runs: %v", err)
	}
	cancel()
	close(release)
	r, err := n.m.WaitVerified(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if want := n.sumsAt(t, k); r.Outcome != db.CheckRecorded || !slices.Equal(r.Parts, want) || r.ResultIndex <= k+2 {
		t.Fatalf("check %+v, want the sums %v at %d", r, want, k)
	}
	entries, err := n.log.Read(r.ResultIndex, 1, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c := entries[0].Check; c == nil || c.Of != k || !slices.Equal(c.Parts, r.Parts) || len(entries[0].Statements) != 0 {
		t.Fatalf("entry %d: %+v", r.ResultIndex, entries[0])
	}
	if _, err := n.m.WaitVerified(ctx, k+1); !errors.Is(err, ErrNoCheck) {
		t.Fatalf("WaitVerified of an index that is no marker: %v", err)
	}
	// The sums name each table and the parts that are no table.
	var names []string
	for _, p := range r.Parts {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{db.PartHeader, db.PartSchema, "t"}) {
		t.Fatalf("parts %v", names)
	}
}

// A marker that falls due while a check runs is skipped, and counted.
func TestVerifySkipsWhileBusy(t *testing.T) {
	release := make(chan struct{})
	hooked := make(chan uint64, 4)
	n := mustOpenVerifying(t, 3, func(k uint64) {
		hooked <- k
		<-release
	})
	n.mustExec(t, "CREATE TABLE t (v)")
	for range 2 {
		n.mustExec(t, "INSERT INTO t VALUES (1)")
	}
	first := <-hooked // the marker after 3 entries, stuck before its hash
	for range 6 {
		n.mustExec(t, "INSERT INTO t VALUES (2)")
	}
	if v := n.m.Verification(); v.Skipped == 0 || v.Last == nil || v.Last.Outcome != db.CheckSkipped {
		t.Fatalf("while a check runs: %+v", v)
	}
	close(release)
	if _, err := n.m.WaitVerified(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	n.waitIdle(t)
	markers, results := n.checks(t)
	if markers[0] != first || results[first] == nil {
		t.Fatalf("markers %v, first %d", markers, first)
	}
	for _, k := range markers[1:] {
		if k < results[first].Index {
			t.Fatalf("a marker at %d while the check of %d ran (its result at %d)", k, first, results[first].Index)
		}
	}
}
