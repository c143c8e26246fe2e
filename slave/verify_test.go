package slave_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/wal"
)

// verify asks the master for a check and waits for its result.
func verify(tb testing.TB, m *testMaster) db.CheckResult {
	tb.Helper()
	k, err := m.m.Verify(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	r, err := m.m.WaitVerified(context.Background(), k)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// waitCheck waits until the slave has done the check of the marker at
// index, and returns its verification.
func waitCheck(tb testing.TB, ts *testSlave, index uint64) db.Verification {
	tb.Helper()
	var v db.Verification
	waitFor(tb, "the check at index "+itoa(index), func() bool {
		v = ts.s.Verification()
		return v.Last != nil && v.Last.Index >= index
	})
	return v
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// editBehindTheLog changes the slave's database file with a plain SQLite
// connection, as an operator's sqlite3 would, while the slave is stopped.
func editBehindTheLog(tb testing.TB, path, stmt string) {
	tb.Helper()
	conn, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Exec(stmt)
	if err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		tb.Fatalf("%s changed %d rows, want 1", stmt, n)
	}
}

// A slave whose content differs from the master's at a marker stops at the
// marker's result, enters diverged and names the table that differs; the
// same slave unchanged passes the check.
func TestVerifyMismatchDiverges(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	m.exec(t, "CREATE TABLE u (id INTEGER PRIMARY KEY, v)")
	for i := range 5 {
		m.exec(t, "INSERT INTO t (v) VALUES (?)", wal.Integer(int64(i)))
		m.exec(t, "INSERT INTO u (v) VALUES (?)", wal.Integer(int64(i)))
	}
	path := filepath.Join(t.TempDir(), "db.sqlite")
	cfg := slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: m.url()}
	ts := mustOpenSlave(t, path, cfg)
	first := verify(t, m)
	if v := waitCheck(t, ts, first.Index); v.Last.Outcome != db.CheckOK || v.Checks != 1 || v.Mismatches != 0 || v.Last.ResultIndex != first.ResultIndex {
		t.Fatalf("the check of an unchanged slave: %+v, %+v", v, v.Last)
	}

	waitState(t, ts, client.StateStreaming, m.log.LastIndex())
	ts.close(t)
	editBehindTheLog(t, path, "UPDATE t SET v = 'changed by hand' WHERE id = 3")
	ts = mustOpenSlave(t, path, cfg)
	m.exec(t, "INSERT INTO u (v) VALUES ('after the edit')")
	second := verify(t, m)
	m.exec(t, "INSERT INTO u (v) VALUES ('after the check')")

	waitFor(t, "diverged", func() bool { return ts.s.Status().State == client.StateDiverged })
	v := waitCheck(t, ts, second.Index)
	if v.Last.Outcome != db.CheckMismatch || !slices.Equal(v.Last.Differs, []string{"t"}) || v.Mismatches != 1 || v.Last.Index != second.Index {
		t.Fatalf("after a row changed by hand: %+v, last %+v", v, v.Last)
	}
	st := ts.s.Status()
	for _, want := range []string{"index " + itoa(second.Index), "differs from the master's in t"} {
		if !strings.Contains(st.Err, want) {
			t.Errorf("the slave's error %q does not say %q", st.Err, want)
		}
	}
	// It stopped before the result: nothing after it is applied.
	if got := ts.db.AppliedIndex(); got != second.ResultIndex-1 {
		t.Fatalf("the diverged slave applied through %d, the result is at %d", got, second.ResultIndex)
	}
	if n := count(t, ts.db, "SELECT count(*) FROM u WHERE v = 'after the check'"); n != 0 {
		t.Fatal("the diverged slave applied a write after the check")
	}
	// Restarted, it is still diverged (its log still matches the master's,
	// so without the record it would apply on over wrong content), serves
	// reads, and applies nothing; rebuilt (an empty data directory), it
	// follows again.
	applied := ts.db.AppliedIndex()
	ts.close(t)
	ts = mustOpenSlave(t, path, cfg)
	m.exec(t, "INSERT INTO u (v) VALUES ('after the restart')")
	if st := ts.s.Status(); st.State != client.StateDiverged || !strings.Contains(st.Err, "differs from the master's in t") ||
		!strings.Contains(st.Err, "rebuild") {
		t.Fatalf("a diverged slave after a restart: %+v", st)
	}
	if got := count(t, ts.db, "SELECT count(*) FROM t"); got != 5 || ts.db.AppliedIndex() != applied {
		t.Fatalf("a diverged slave after a restart: %d rows, applied %d (was %d)", got, ts.db.AppliedIndex(), applied)
	}
	fresh := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), cfg)
	waitState(t, fresh, client.StateStreaming, m.log.LastIndex())
}

// Entries applied by hand: a check whose marker the slave applied before a
// restart, or before a snapshot replaced its database, is skipped; a marker
// applied by the same slave is compared.
func TestVerifySkippedWithoutOwnSums(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	m.exec(t, "INSERT INTO t (v) VALUES (1)")
	r1 := verify(t, m) // marker 3, result 4
	m.exec(t, "INSERT INTO t (v) VALUES (2)")
	r2 := verify(t, m) // marker 6, result 7
	m.exec(t, "INSERT INTO t (v) VALUES (3)")
	entries, err := m.log.Read(1, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	at := func(i uint64) []*wal.Entry { return entries[:i] }
	between := func(from, to uint64) []*wal.Entry { return entries[from-1 : to] }
	logID := m.log.ID()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	// The slave's loop pulls from an address where nothing serves: the
	// test applies by hand.
	cfg := slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: "http://" + freeAddr(t)}
	ts := mustOpenSlave(t, path, cfg)
	if err := ts.s.ApplyBatch(logID, at(r1.Index)); err != nil {
		t.Fatal(err)
	}
	ts.close(t) // a restart between the marker and its result
	ts = mustOpenSlave(t, path, cfg)
	if err := ts.s.ApplyBatch(logID, between(r1.Index+1, r1.ResultIndex)); err != nil {
		t.Fatal(err)
	}
	v := ts.s.Verification()
	if v.Last == nil || v.Last.Outcome != db.CheckSkipped || v.Skipped != 1 || v.Checks != 0 || v.Last.Index != r1.Index {
		t.Fatalf("after a restart: %+v, last %+v", v, v.Last)
	}
	// The marker at r2 is applied by this slave, in a batch with what
	// follows it, and compared.
	if err := ts.s.ApplyBatch(logID, between(r1.ResultIndex+1, r2.ResultIndex+1)); err != nil {
		t.Fatal(err)
	}
	if v := ts.s.Verification(); v.Last.Outcome != db.CheckOK || v.Checks != 1 || v.Last.Index != r2.Index {
		t.Fatalf("a marker applied by the slave: %+v, last %+v", v, v.Last)
	}
	if got := ts.db.AppliedIndex(); got != r2.ResultIndex+1 {
		t.Fatalf("applied %d, want %d", got, r2.ResultIndex+1)
	}

	// Another slave hashes the marker at r2; then, before the result, a
	// snapshot taken after the marker replaces its database (as a
	// bootstrap does): its own sums are of the old database, and the check
	// is skipped.
	ts2 := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), cfg)
	if err := ts2.s.ApplyBatch(logID, at(r2.Index)); err != nil {
		t.Fatal(err)
	}
	k := r2.Index
	write := &wal.Entry{Index: k + 1, Epoch: entries[0].Epoch, Time: entries[0].Time, Txn: true,
		Statements: []wal.Statement{{SQL: "INSERT INTO t (v) VALUES (9)"}}}
	rep, err := db.Open(filepath.Join(t.TempDir(), "at.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Apply(logID, append(slices.Clone(at(k)), write)); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(t.TempDir(), "snap.sqlite")
	if _, err := rep.Backup(context.Background(), snap, nil); err != nil {
		t.Fatal(err)
	}
	rep.Close()
	if err := ts2.db.Install(snap); err != nil {
		t.Fatal(err)
	}
	result := &wal.Entry{Index: k + 2, Epoch: entries[0].Epoch, Check: &wal.Check{Of: k, Parts: r2.Parts}}
	if err := ts2.s.ApplyBatch(logID, []*wal.Entry{result}); err != nil {
		t.Fatal(err)
	}
	if v := ts2.s.Verification(); v.Last == nil || v.Last.Outcome != db.CheckSkipped || v.Last.Index != k || v.Skipped != 1 {
		t.Fatalf("after a snapshot between the marker and its result: %+v, last %+v", v, v.Last)
	}
	if st := ts2.s.Status(); st.State == client.StateDiverged {
		t.Fatalf("a skipped check made the slave diverge: %+v", st)
	}
}

// A slave that catches up a long log applies markers and results in its
// batches: every check is done, none skipped, none differs.
func TestVerifyWhileCatchingUp(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0", master.Config{VerifyEvery: 40})
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	m.insertMany(t, 0, 400)
	// Checks rest between runs: the master gets to two, and is done.
	waitFor(t, "two checks on the master", func() bool {
		return m.m.Verification().Checks >= 2 && !m.m.VerifyBusy()
	})
	m.exec(t, "INSERT INTO t (v) VALUES ('end')")
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"),
		slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: m.url(), MaxEntries: 97})
	// A check that fell due while the verifier rested may still come:
	// the slave catches up with whatever the log holds.
	waitFor(t, "the slave to stream at the master's last index", func() bool {
		return ts.s.Status().State == client.StateStreaming && ts.db.AppliedIndex() == m.log.LastIndex() && !m.m.VerifyBusy()
	})
	sameContent(t, m, ts)
	v := ts.s.Verification()
	entries, err := m.log.Read(1, 10000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	results := 0
	for _, e := range entries {
		if e.Check != nil && !e.Check.IsMarker() {
			results++
		}
	}
	if v.Checks != uint64(results) || v.Skipped != 0 || v.Mismatches != 0 || results < 2 {
		t.Fatalf("the slave's verification %+v after %d results in the log", v, results)
	}
}
