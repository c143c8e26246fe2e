package db

import (
	"errors"
	"reflect"
	"testing"

	"github.com/walship/walship/wal"
)

func TestRunNonTxnFailureLeavesNoTrace(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
	out := m.batch(timed{req(false,
		"INSERT INTO t (id, v) VALUES (1, 'a')",
		// OR FAIL keeps the rows it wrote before the conflict, unless its
		// savepoint is rolled back.
		"INSERT OR FAIL INTO t (id, v) VALUES (10, 'x'), (11, 'y'), (12, 'a'), (13, 'z')",
		"INSERT INTO t (id, v) VALUES (2, 'b')",
	), pinnedMS, 2})[0]
	if out.Err != nil || out.TxnLost {
		t.Fatalf("a request without txn has no request error: Err %v, TxnLost %v", out.Err, out.TxnLost)
	}
	if len(out.Results) != 3 {
		t.Fatalf("%d results, want 3", len(out.Results))
	}
	var sqlErr *Error
	if err := out.Results[1].Err; !errors.As(err, &sqlErr) || sqlErr.Primary() != 19 /* SQLITE_CONSTRAINT */ || !sqlErr.IsClientError() {
		t.Fatalf("failed statement's error = %v, want a constraint error", err)
	}
	if out.Results[0].Err != nil || out.Results[2].Err != nil || out.Results[0].RowsAffected != 1 || out.Results[2].LastInsertID != 2 {
		t.Fatalf("results of the statements that succeeded: %+v", out.Results)
	}
	if len(out.Logged) != 2 || out.Logged[0].Pos != 0 || out.Logged[1].Pos != 2 {
		t.Fatalf("logged %+v, want the statements at positions 0 and 2", out.Logged)
	}
	rows := mustQuery(t, d, "SELECT id, v FROM t ORDER BY id")
	if got := len(rows); got != 2 || showRow(rows[0]) != `int:1 | text:"a"` || showRow(rows[1]) != `int:2 | text:"b"` {
		t.Fatalf("rows after the request: %v; want (1,a), (2,b) only", rows)
	}
}

func TestRunTxnFailureLeavesNothing(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)", "INSERT INTO t VALUES (1, 'a')")
	before := dump(t, d)
	outs := m.batch(
		timed{req(true,
			"INSERT INTO t (id, v) VALUES (2, 'b')",
			"CREATE TABLE u (x)",
			"UPDATE t SET v = 'c' WHERE id = 1",
			"INSERT INTO t (id, v) VALUES (3, 'b')", // UNIQUE conflict
			"INSERT INTO t (id, v) VALUES (4, 'd')",
		), pinnedMS, 2},
		timed{req(true, "SELECT 1", "SELECT * FROM t"), pinnedMS, 3}, // read only: nothing to log
	)
	out := outs[0]
	if out.Err == nil || out.TxnLost {
		t.Fatalf("Err %v, TxnLost %v; want the constraint error, transaction kept", out.Err, out.TxnLost)
	}
	if len(out.Logged) != 0 {
		t.Fatalf("a failed txn request logged %+v", out.Logged)
	}
	if len(out.Results) != 4 || out.Results[3].Err == nil || !errors.Is(out.Err, out.Results[3].Err) {
		t.Fatalf("results %+v: want 4, the last one failed with the request's error", out.Results)
	}
	if outs[1].Err != nil || len(outs[1].Logged) != 0 || len(outs[1].Results) != 2 || len(outs[1].Results[1].Rows) != 1 {
		t.Fatalf("read-only request: %+v", outs[1])
	}
	if after := dump(t, d); after != before {
		t.Fatalf("the failed transaction left a trace: %s", diffLines(before, after))
	}
	if len(m.entries) != 1 {
		t.Fatalf("%d entries, want only the schema's", len(m.entries))
	}
}

// runBatchLikeMaster runs reqs the way the master's writer does: when a
// request loses the transaction, it fails, the Tx is rolled back and the
// others run again with the same time and seed in a new Tx. It returns the
// outcome of each request, and the index of the lost ones.
func runBatchLikeMaster(t *testing.T, m *master, reqs []timed) (map[int]Outcome, []int) {
	t.Helper()
	todo := make([]int, len(reqs))
	for i := range todo {
		todo[i] = i
	}
	final := map[int]Outcome{}
	var lost []int
	for len(todo) > 0 {
		tx, err := m.d.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var run []timed
		var outs []Outcome
		lostAt := -1
		for k, i := range todo {
			o := tx.Run(reqs[i].Request, reqs[i].ms, reqs[i].seed)
			if o.TxnLost {
				lostAt = k
				final[i] = o
				break
			}
			run = append(run, reqs[i])
			outs = append(outs, o)
		}
		if lostAt >= 0 {
			if err := tx.Rollback(); err != nil {
				t.Fatalf("rollback after a lost transaction: %v", err)
			}
			lost = append(lost, todo[lostAt])
			todo = append(todo[:lostAt:lostAt], todo[lostAt+1:]...)
			continue
		}
		for k, i := range todo {
			final[i] = outs[k]
		}
		m.commit(tx, run, outs)
		todo = nil
	}
	return final, lost
}

func TestRunTxnLost(t *testing.T) {
	schema := []string{
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, r INTEGER DEFAULT (random()), at TEXT DEFAULT CURRENT_TIMESTAMP)",
		"CREATE TABLE guarded (x)",
		"CREATE TRIGGER guard BEFORE INSERT ON guarded WHEN new.x < 0 BEGIN SELECT RAISE(ROLLBACK, 'x'); END",
		"INSERT INTO t (id, v) VALUES (1, 'taken')",
	}
	for _, tc := range []struct {
		name string
		lose Request
	}{
		{"INSERT OR ROLLBACK", req(false, "INSERT INTO t (v) VALUES ('fine')", "INSERT OR ROLLBACK INTO t (v) VALUES ('taken')")},
		{"RAISE(ROLLBACK)", req(true, "INSERT INTO guarded VALUES (1)", "INSERT INTO guarded VALUES (-1)")},
		{"RAISE(ROLLBACK) without txn", req(false, "INSERT INTO guarded VALUES (-1)")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustOpenDB(t)
			m := newMaster(t, d)
			m.exec(pinnedMS-1000, 1, schema...)
			reqs := []timed{
				{req(false, "INSERT INTO t (v) VALUES ('one') RETURNING r, at", "INSERT INTO guarded VALUES (abs(random() / 2))"), pinnedMS, 11},
				{tc.lose, pinnedMS + 1, 22},
				{req(true, "INSERT INTO t (v, r) VALUES ('three', random()) RETURNING id, r", "UPDATE t SET at = datetime('now', '+1 day') WHERE v = 'one'"), pinnedMS + 2, 33},
			}
			// The first attempt, up to the loss, gives the results that
			// the second attempt must repeat.
			tx, err := d.Begin()
			if err != nil {
				t.Fatal(err)
			}
			first := tx.Run(reqs[0].Request, reqs[0].ms, reqs[0].seed)
			if first.Err != nil || first.TxnLost {
				t.Fatalf("request 0: %+v", first)
			}
			lostOut := tx.Run(reqs[1].Request, reqs[1].ms, reqs[1].seed)
			if !lostOut.TxnLost || lostOut.Err == nil || len(lostOut.Logged) != 0 {
				t.Fatalf("outcome of the request that ends the transaction: TxnLost %v, Err %v, Logged %v; want lost, error, nothing logged",
					lostOut.TxnLost, lostOut.Err, lostOut.Logged)
			}
			// A request run after the loss fails the same way, and runs
			// nothing.
			if o := tx.Run(reqs[2].Request, reqs[2].ms, reqs[2].seed); !o.TxnLost || o.Err == nil || len(o.Results) != 0 {
				t.Fatalf("request run after the loss: %+v; want TxnLost and nothing run", o)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if o := tx.Run(reqs[2].Request, reqs[2].ms, reqs[2].seed); !errors.Is(o.Err, ErrClosed) || len(o.Results) != 0 {
				t.Fatalf("request run after Rollback: %+v; want ErrClosed and nothing run", o)
			}
			// No request's change survived the loss.
			if rows := mustQuery(t, d, "SELECT count(*) FROM t"); rows[0][0].Int != 1 {
				t.Fatalf("after the loss t has %d rows, want 1", rows[0][0].Int)
			}

			final, lost := runBatchLikeMaster(t, m, reqs)
			if !reflect.DeepEqual(lost, []int{1}) {
				t.Fatalf("lost requests %v, want [1]", lost)
			}
			for _, i := range []int{0, 2} {
				if final[i].Err != nil || final[i].TxnLost || len(final[i].Logged) != 2 {
					t.Fatalf("re-run request %d: %+v", i, final[i])
				}
			}
			if !reflect.DeepEqual(untimed(final[0].Results), untimed(first.Results)) {
				t.Fatalf("request 0 gave other results when run again:\n%+v\n%+v", first.Results, final[0].Results)
			}
			if got := showRow(final[0].Results[0].Rows[0]); got != showRow(first.Results[0].Rows[0]) || first.Results[0].Rows[0][1].Text != "2025-11-25 16:55:48" {
				t.Fatalf("RETURNING r, at = %s", got)
			}

			fresh := mustOpenDB(t)
			if err := fresh.Apply(testLogID, m.entries); err != nil {
				t.Fatal(err)
			}
			if want, got := dump(t, d), dump(t, fresh); got != want {
				t.Fatalf("applying the logged statements gives other content: %s\n%s\n%s", diffLines(want, got), want, got)
			}
			if fresh.AppliedIndex() != 3 || d.AppliedIndex() != 3 {
				t.Fatalf("applied index: master %d, fresh %d; want 3 (schema, requests 0 and 2)", d.AppliedIndex(), fresh.AppliedIndex())
			}
		})
	}
}

// TestTxRollbackUndoesEverything checks Rollback after successful requests,
// and that a Tx can neither commit twice nor commit after Rollback.
func TestTxRollbackUndoesEverything(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (x)")
	before := dump(t, d)
	tx, err := d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if o := tx.Run(req(false, "INSERT INTO t VALUES (1)", "CREATE TABLE u (y)"), pinnedMS, 2); o.Err != nil || len(o.Logged) != 2 {
		t.Fatalf("%+v", o)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(testLogID, 9); !errors.Is(err, ErrClosed) {
		t.Fatalf("Commit after Rollback: %v, want ErrClosed", err)
	}
	if after := dump(t, d); after != before || d.AppliedIndex() != 1 {
		t.Fatalf("rollback left a trace (applied index %d): %s", d.AppliedIndex(), diffLines(before, after))
	}
	// The writer is free again.
	tx, err = d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(testLogID, 2); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(testLogID, 3); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Commit: %v, want ErrClosed", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("Rollback after Commit: %v, want nil", err)
	}
	if d.AppliedIndex() != 2 {
		t.Fatalf("applied index %d, want 2", d.AppliedIndex())
	}
}

// TestRunResults checks RowsAffected, LastInsertID and rows of writes.
func TestRunResults(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	out := m.exec(pinnedMS, 1,
		"CREATE TABLE t (id INTEGER PRIMARY KEY, v)",
		"CREATE TABLE log (x)",
		"CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.v); INSERT INTO log VALUES (new.v); END",
		"INSERT INTO t (v) VALUES ('a'), ('b'), ('c')",
		"UPDATE t SET v = v || v WHERE id < 3",
		"DELETE FROM t WHERE id = 3 RETURNING v",
		"SELECT count(*) FROM log",
	)
	type ra struct{ affected, lastID int64 }
	want := []ra{{0, 0}, {0, 0}, {0, 0}, {3, 3}, {2, 0}, {1, 0}, {0, 0}}
	for i, r := range out.Results {
		if got := (ra{r.RowsAffected, r.LastInsertID}); got != want[i] {
			t.Errorf("statement %d: RowsAffected, LastInsertID = %v, want %v", i, got, want[i])
		}
	}
	if got := showRow(out.Results[5].Rows[0]); got != `text:"c"` || out.Results[5].Columns[0] != "v" {
		t.Errorf("RETURNING gave %v %s", out.Results[5].Columns, got)
	}
	if got := showRow(out.Results[6].Rows[0]); got != "int:6" {
		t.Errorf("count(*) FROM log = %s, want 6", got)
	}
	if len(out.Logged) != 6 {
		t.Errorf("logged %d statements, want 6 (all but the SELECT)", len(out.Logged))
	}
}

// TestRunMultipleInOneStatement checks that a Statement holding two
// statements is refused, not half run.
func TestRunMultipleInOneStatement(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (x)")
	out := m.batch(timed{Request{Statements: []wal.Statement{{SQL: "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"}}}, pinnedMS, 2})[0]
	if !errors.Is(out.Results[0].Err, ErrMultiple) {
		t.Fatalf("error %v, want ErrMultiple", out.Results[0].Err)
	}
	if rows := mustQuery(t, d, "SELECT count(*) FROM t"); rows[0][0].Int != 0 {
		t.Fatalf("%d rows inserted", rows[0][0].Int)
	}
	// White space and a comment after the statement are fine.
	out = m.batch(timed{Request{Statements: []wal.Statement{{SQL: "INSERT INTO t VALUES (1); -- done\n"}}}, pinnedMS, 3})[0]
	if out.Results[0].Err != nil || len(out.Logged) != 1 {
		t.Fatalf("%+v", out)
	}
}

// untimed returns results without their durations, which differ by run.
func untimed(rs []Result) []Result {
	out := append([]Result(nil), rs...)
	for i := range out {
		out[i].Time = 0
	}
	return out
}
