package master

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// nonTxn is a request without Txn: each statement on its own.
func nonTxn(sqls ...string) db.Request {
	r := stmts(sqls...)
	r.Txn = false
	return r
}

// replica applies the master's whole log to a new database, closed when
// the test ends.
func (n *testNode) replica(tb testing.TB) *db.DB {
	tb.Helper()
	r, err := db.Open(filepath.Join(tb.TempDir(), "replica.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	entries, err := n.log.Read(1, 100000, 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.Apply(n.log.ID(), entries); err != nil {
		tb.Fatal(err)
	}
	return r
}

// replicaSum returns the checksum of a replica of the master's log and the
// master's.
func (n *testNode) replicaSum(tb testing.TB) (master, replica string) {
	tb.Helper()
	r := n.replica(tb)
	a, err := n.db.Checksum(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := r.Checksum(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return a.Sum, b.Sum
}

// A statement that ends the whole SQLite transaction (OR ROLLBACK) in a
// request without Txn fails alone: the statements before and after it are
// applied and answered, and so are the other requests of the batch.
func TestStatementEndingTheTransactionFailsAlone(t *testing.T) {
	n := mustOpen(t, t.TempDir(), wal.Options{})
	n.mustExec(t, "CREATE TABLE a (x)", "CREATE TABLE u (id INTEGER PRIMARY KEY)", "INSERT INTO u VALUES (1)",
		"CREATE TABLE q (v NOT NULL)")
	r := n.m.Execute(context.Background(), nonTxn("INSERT INTO a VALUES (1)", "INSERT OR ROLLBACK INTO u VALUES (1)", "INSERT INTO a VALUES (2)"))
	if r.Err != nil || len(r.Results) != 3 || r.Results[0].Err != nil || r.Results[2].Err != nil ||
		r.Results[1].Err == nil || !strings.Contains(r.Results[1].Err.Error(), "UNIQUE") {
		t.Fatalf("results %+v, err %v", r.Results, r.Err)
	}
	if got := n.count(t, "a"); got != 2 {
		t.Fatalf("a holds %d rows, want 2", got)
	}
	// 60 concurrent single-row writes, two of them ending the transaction:
	// the 58 others are applied.
	var wg sync.WaitGroup
	errs := make([]error, 60)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sql := fmt.Sprintf("INSERT INTO q VALUES (%d)", i)
			if i == 17 || i == 41 {
				sql = "INSERT OR ROLLBACK INTO q VALUES (NULL)"
			}
			res := n.m.Execute(context.Background(), nonTxn(sql))
			if res.Err != nil {
				errs[i] = res.Err
			} else {
				errs[i] = res.Results[0].Err
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == 17 || i == 41) {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got := n.count(t, "q"); got != 58 {
		t.Fatalf("q holds %d rows, want 58", got)
	}
	// rows_affected stays SQLite's changes() of each statement in batches
	// that run again after a statement ended the transaction.
	n.mustExec(t, "CREATE TABLE w (a INTEGER PRIMARY KEY, c UNIQUE, d)", "INSERT INTO w VALUES (1, 1, 0), (2, 2, 0), (3, 3, 0)",
		"CREATE TABLE s (x)", "INSERT INTO s VALUES (1), (2)")
	results := make([]Result, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				results[i] = n.m.Execute(context.Background(), nonTxn("UPDATE OR FAIL w SET c = c WHERE a IN (SELECT x FROM s)",
					"INSERT OR ROLLBACK INTO u VALUES (1)", "UPDATE w SET d = d + 1 WHERE a = 3"))
			case 1:
				results[i] = n.m.Execute(context.Background(), nonTxn("UPDATE OR ROLLBACK w SET d = d + 1 WHERE a IN (SELECT x FROM s WHERE x = 1)"))
			default:
				results[i] = n.m.Execute(context.Background(), nonTxn("UPDATE w SET d = d WHERE a > 0", "INSERT OR ROLLBACK INTO q VALUES (NULL)"))
			}
		}()
	}
	wg.Wait()
	for i, r := range results {
		var want []int64
		switch i % 4 {
		case 0:
			want = []int64{2, -1, 1}
		case 1:
			want = []int64{1}
		default:
			want = []int64{3, -1}
		}
		for k, w := range want {
			res := r.Results[k]
			if (w < 0) != (res.Err != nil) || (w >= 0 && res.RowsAffected != w) {
				t.Fatalf("request %d statement %d: %+v, want rows affected %d", i, k, res, w)
			}
		}
	}
	// With Txn the request fails whole, and nothing of it stays.
	r = n.m.Execute(context.Background(), stmts("INSERT INTO a VALUES (3)", "INSERT OR ROLLBACK INTO u VALUES (1)"))
	if r.Outcome.Err == nil || n.count(t, "a") != 2 {
		t.Fatalf("txn request: %v, a holds %d", r.Outcome.Err, n.count(t, "a"))
	}
	if m, s := n.replicaSum(t); m != s {
		t.Fatal("a replica of the log differs")
	}
}

// A statement stopped by its time limit fails alone: the statements before
// it stay.
func TestTimeoutFailsTheStatementAlone(t *testing.T) {
	n := mustOpen(t, t.TempDir(), wal.Options{})
	n.mustExec(t, "CREATE TABLE a (x)")
	req := nonTxn("INSERT INTO a VALUES (1)",
		"INSERT INTO a WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT i FROM c",
		"INSERT INTO a VALUES (3)")
	req.Timeout = 100 * time.Millisecond
	r := n.m.Execute(context.Background(), req)
	if r.Err != nil || !errors.Is(r.Results[1].Err, db.ErrTimeout) || r.Results[0].Err != nil || r.Results[2].Err != nil {
		t.Fatalf("results %+v, err %v", r.Results, r.Err)
	}
	if got := n.count(t, "a"); got != 2 {
		t.Fatalf("a holds %d rows, want 2", got)
	}
}

// A SQLite COMMIT that fails after the log append halts the master: writes
// are refused with the reason, reads go on, and once applying the log
// works again the master resumes by itself with nothing lost.
func TestCommitFailureHalts(t *testing.T) {
	n := mustOpen(t, t.TempDir(), wal.Options{})
	n.mustExec(t, "CREATE TABLE t (v)")
	var mu sync.Mutex
	failing := true
	n.m.mu.Lock()
	n.m.commitHook = func() error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("injected: disk I/O error")
		}
		return nil
	}
	n.m.mu.Unlock()
	r := n.m.Execute(context.Background(), stmts("INSERT INTO t VALUES (1)"))
	if r.Err != nil || r.Index != 2 {
		t.Fatalf("the appended write: %+v", r)
	}
	if err := n.m.Err(); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("Err() = %v, want the commit's error", err)
	}
	r = n.m.Execute(context.Background(), stmts("INSERT INTO t VALUES (2)"))
	if !errors.Is(r.Err, ErrHalted) || !strings.Contains(r.Err.Error(), "injected") {
		t.Fatalf("a write while halted: %v, want ErrHalted with the reason", r.Err)
	}
	if got := n.count(t, "t"); got != 0 {
		t.Fatalf("reads: %d rows before the retry", got)
	}
	// Applying works again (the hook only fails commits of the writer's
	// batches; the retry applies from the log), while writes keep coming
	// and are refused.
	deadline := time.Now().Add(10 * time.Second)
	for n.m.Err() != nil || n.db.AppliedIndex() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("still halted: %v, applied %d", n.m.Err(), n.db.AppliedIndex())
		}
		if r := n.m.Execute(context.Background(), stmts("INSERT INTO t VALUES (9)")); r.Err == nil && n.db.AppliedIndex() < 2 {
			t.Fatal("a write was taken while halted")
		}
		time.Sleep(10 * time.Millisecond) // ok: polling the retry with a deadline
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	n.mustExec(t, "INSERT INTO t VALUES (3)")
	if got := n.count(t, "t WHERE v <> 9"); got != 2 {
		t.Fatalf("%d rows after resuming, want 2", got)
	}
}

// An entry that SQLite cannot apply does not keep the master from
// starting: it starts halted, serves reads, and refuses writes saying why.
func TestUnapplicableEntryHaltsAtStart(t *testing.T) {
	dir := t.TempDir()
	n := mustOpen(t, dir, wal.Options{})
	n.mustExec(t, "CREATE TABLE t (v)")
	n.mustExec(t, "INSERT INTO t VALUES (1)")
	n.close()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Append([]*wal.Entry{{Index: 3, Epoch: 1, Time: 1, Txn: true,
		Statements: []wal.Statement{{SQL: "INSERT INTO nosuch VALUES (2)"}}}}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	n2 := mustOpen(t, dir, wal.Options{})
	if err := n2.m.Err(); err == nil || !strings.Contains(err.Error(), "entry 3") || !strings.Contains(err.Error(), "no such table: nosuch") {
		t.Fatalf("Err() = %v, want the entry and SQLite's error", err)
	}
	if got := n2.count(t, "t"); got != 1 {
		t.Fatalf("reads while halted: %d rows, want 1", got)
	}
	if r := n2.m.Execute(context.Background(), stmts("INSERT INTO t VALUES (3)")); !errors.Is(r.Err, ErrHalted) {
		t.Fatalf("write while halted: %v", r.Err)
	}
}

// A request without foreign key enforcement runs in a transaction of its
// own, between batches, and a replica applies it the same way.
func TestNoForeignKeysRequest(t *testing.T) {
	n := mustOpen(t, t.TempDir(), wal.Options{})
	n.mustExec(t, "CREATE TABLE p (id INTEGER PRIMARY KEY)", "CREATE TABLE c (pid REFERENCES p (id))")
	var wg sync.WaitGroup
	results := make([]Result, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := stmts(fmt.Sprintf("INSERT INTO c VALUES (%d)", 100+i))
			req.NoForeignKeys = i%5 == 0
			results[i] = n.m.Execute(context.Background(), req)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if failed := r.Err != nil || r.Outcome.Err != nil; failed != (i%5 != 0) {
			t.Errorf("write %d (foreign keys off: %v): %v / %v", i, i%5 == 0, r.Err, r.Outcome.Err)
		}
	}
	if got := n.count(t, "c"); got != 4 {
		t.Fatalf("c holds %d rows, want 4", got)
	}
	// Enforcement is back on for what follows.
	if r := n.m.Execute(context.Background(), stmts("INSERT INTO c VALUES (999)")); r.Outcome.Err == nil {
		t.Fatal("foreign keys stayed off")
	}
	entries, err := n.log.Read(2, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.NoForeignKeys {
			t.Fatalf("entry %d logged without its flag", e.Index)
		}
	}
	if m, s := n.replicaSum(t); m != s {
		t.Fatal("a replica of the log differs")
	}
}
