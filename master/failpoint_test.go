package master

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/walship/walship/wal"
)

// TestAppendFailuresAmongWrites runs concurrent writes while every third
// log append fails (a failing write or fsync of log.db): each write is
// either acknowledged, and then in the log and in SQLite, or answered
// ErrAppend, and then in neither. Reopened from its files, the node holds
// exactly the acknowledged writes, and its log checks.
func TestAppendFailuresAmongWrites(t *testing.T) {
	dir := t.TempDir()
	var calls, failed atomic.Int64
	boom := errors.New("injected: fsync failed")
	opts := wal.Options{BeforeCommit: func([]*wal.Entry) error {
		if calls.Add(1)%3 == 0 {
			failed.Add(1)
			return boom
		}
		return nil
	}}
	n := mustOpen(t, dir, opts)
	n.mustExec(t, "CREATE TABLE t (v INTEGER PRIMARY KEY)")

	const writes, workers = 300, 16
	var (
		mu    sync.Mutex
		acked []int
		lost  []int
		wg    sync.WaitGroup
		next  = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// Every other request also holds a statement that fails,
				// so that batches mix failed, good and lost requests.
				sqls := []string{fmt.Sprintf("INSERT INTO t VALUES (%d)", i)}
				if i%2 == 0 {
					sqls = append(sqls, "INSERT INTO nosuch VALUES (1)")
				}
				req := stmts(sqls...)
				req.Txn = i%2 == 1
				r := n.m.Execute(context.Background(), req)
				mu.Lock()
				switch {
				case r.Err == nil && r.Outcome.Err == nil:
					acked = append(acked, i)
				case errors.Is(r.Err, ErrAppend) && errors.Is(r.Err, boom):
					lost = append(lost, i)
				default:
					t.Errorf("write %d: %+v", i, r)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range writes {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(acked) == 0 || len(lost) == 0 || failed.Load() == 0 {
		t.Fatalf("%d acknowledged, %d lost, %d appends failed: the failpoint proves nothing", len(acked), len(lost), failed.Load())
	}
	t.Logf("%d writes acknowledged, %d answered ErrAppend, %d of %d appends failed", len(acked), len(lost), failed.Load(), calls.Load())
	sort.Ints(acked)
	want := fmt.Sprint(acked)

	check := func(n *testNode, when string) {
		t.Helper()
		res, err := n.db.Query(context.Background(), []wal.Statement{{SQL: "SELECT v FROM t ORDER BY v"}})
		if err != nil {
			t.Fatal(err)
		}
		var rows []int
		for _, r := range res[0].Rows {
			rows = append(rows, int(r[0].Int))
		}
		if got := fmt.Sprint(rows); got != want {
			t.Fatalf("%s: SQLite holds %s, the acknowledged writes are %s", when, got, want)
		}
		entries, err := n.log.Read(1, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		var logged []int
		for _, e := range entries[1:] { // entry 1 is the CREATE TABLE
			var v int
			if _, err := fmt.Sscanf(e.Statements[0].SQL, "INSERT INTO t VALUES (%d)", &v); err != nil {
				t.Fatalf("%s: entry %d: %q", when, e.Index, e.Statements[0].SQL)
			}
			logged = append(logged, v)
		}
		sort.Ints(logged)
		if got := fmt.Sprint(logged); got != want {
			t.Fatalf("%s: the log holds %s, the acknowledged writes are %s", when, got, want)
		}
		if n.db.AppliedIndex() != n.log.LastIndex() || n.log.LastIndex() != uint64(len(acked))+1 {
			t.Fatalf("%s: applied %d, last %d, want %d", when, n.db.AppliedIndex(), n.log.LastIndex(), len(acked)+1)
		}
		if err := n.log.Check(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check(n, "running")
	n.close()
	check(mustOpen(t, dir, wal.Options{}), "reopened")
}

// TestSQLiteCommitsAfterLogCommit holds a batch inside the log's commit,
// before its fsync: SQLite has run the batch's statements but committed
// nothing, so no reader sees them and none is answered; a failing commit
// then leaves nothing anywhere.
func TestSQLiteCommitsAfterLogCommit(t *testing.T) {
	inCommit := make(chan struct{})
	release := make(chan error)
	var holding atomic.Bool
	n := mustOpen(t, t.TempDir(), wal.Options{BeforeCommit: func([]*wal.Entry) error {
		if !holding.Load() {
			return nil
		}
		inCommit <- struct{}{}
		return <-release
	}})
	n.mustExec(t, "CREATE TABLE t (v)")
	holding.Store(true)
	for _, fail := range []bool{false, true} {
		answered := make(chan Result, 1)
		go func() { answered <- n.m.Execute(context.Background(), stmts("INSERT INTO t VALUES (1)")) }()
		<-inCommit
		if got := n.count(t, "t"); got != int64(map[bool]int{false: 0, true: 1}[fail]) {
			t.Fatalf("a reader sees %d rows while the log commit of the next one is held", got)
		}
		select {
		case r := <-answered:
			t.Fatalf("answered %+v inside the log's commit", r)
		default:
		}
		var err error
		if fail {
			err = errors.New("injected: fsync failed")
		}
		release <- err
		r := <-answered
		if fail {
			if !errors.Is(r.Err, ErrAppend) || !strings.Contains(r.Err.Error(), "fsync failed") {
				t.Fatalf("a failed commit answered %+v", r)
			}
		} else if r.Err != nil || r.Outcome.Err != nil || r.Index != 2 {
			t.Fatalf("answer %+v", r)
		}
	}
	if got := n.count(t, "t"); got != 1 || n.log.LastIndex() != 2 || n.db.AppliedIndex() != 2 {
		t.Fatalf("rows %d, last %d, applied %d; want 1, 2, 2", got, n.log.LastIndex(), n.db.AppliedIndex())
	}
}
