package slave_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/wal"
)

// A slave started after 500 writes catches up with all of them, in several
// feed answers, and then streams.
func TestCatchUp(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, at TEXT DEFAULT CURRENT_TIMESTAMP, r INTEGER DEFAULT (random()))")
	m.insertMany(t, 1, 499)
	last := m.log.LastIndex()
	if last != 500 {
		t.Fatalf("master's last index %d, want 500", last)
	}
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"),
		slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: m.url(), MaxEntries: 64})
	waitState(t, ts, client.StateStreaming, last)
	sameContent(t, m, ts)
	if got := ts.db.LogID(); got != m.log.ID() {
		t.Fatalf("slave follows log %q, master's is %q", got, m.log.ID())
	}
	st := ts.s.Status()
	if !st.Heard || st.MasterFirst != 1 || st.MasterLast != last || st.Err != "" || st.LastCaughtUp.IsZero() {
		t.Fatalf("status %+v", st)
	}
	// And it keeps following.
	r := m.exec(t, "UPDATE t SET v = -v WHERE v % 7 = 0")
	waitState(t, ts, client.StateStreaming, r.Index)
	sameContent(t, m, ts)
}

// Step makes one feed request and applies its answer: the slave's
// synchronous core, stepped by hand once its loop is closed.
func TestStep(t *testing.T) {
	addr := freeAddr(t)
	at := time.Date(2026, 11, 25, 16, 55, 48, 0, time.UTC)
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "7", URL: "http://slave-7.example",
		MasterURL: "http://" + addr, MaxEntries: 10, Wait: 100 * time.Millisecond, Now: func() time.Time { return at }})
	// No master serves yet, so the loop applied nothing before it stops.
	if err := ts.s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := ts.s.Step(ctx); err == nil || errors.Is(err, slave.ErrDiverged) {
		t.Fatalf("step without a master: %v, want a connection error", err)
	}
	if ts.db.AppliedIndex() != 0 {
		t.Fatalf("applied %d without a master", ts.db.AppliedIndex())
	}

	m := mustStartMaster(t, t.TempDir(), addr)
	m.exec(t, "CREATE TABLE t (v INTEGER)")
	m.insertMany(t, 1, 24)
	for _, want := range []struct {
		applied uint64
		state   string
	}{{10, client.StateCatchingUp}, {20, client.StateCatchingUp}, {25, client.StateStreaming}} {
		if err := ts.s.Step(ctx); err != nil {
			t.Fatalf("step to %d: %v", want.applied, err)
		}
		st := ts.s.Status()
		if got := ts.db.AppliedIndex(); got != want.applied || st.State != want.state || st.MasterLast != 25 || st.MasterFirst != 1 || !st.Heard {
			t.Fatalf("after a step: applied %d, status %+v; want applied %d, %s", got, st, want.applied, want.state)
		}
		if want.state == client.StateStreaming && !st.LastCaughtUp.Equal(at) {
			t.Fatalf("caught up at %s, want the slave's clock %s", st.LastCaughtUp, at)
		}
	}
	sameContent(t, m, ts)
	// Caught up: a step is the heartbeat, with nothing to apply.
	start := time.Now()
	if err := ts.s.Step(ctx); err != nil || ts.db.AppliedIndex() != 25 || ts.s.Status().State != client.StateStreaming {
		t.Fatalf("caught-up step: %v, applied %d, %+v", err, ts.db.AppliedIndex(), ts.s.Status())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("caught-up step took %s", took)
	}
	// Every step told the master where the slave is.
	sl := m.m.Slaves()
	if len(sl) != 1 || sl[0].ID != "7" || sl[0].URL != "http://slave-7.example" || sl[0].Applied != 25 || sl[0].Lag != 0 {
		t.Fatalf("the master sees %+v", sl)
	}
}

// A slave restarted on its files resumes after its applied index: no entry
// is applied twice.
func TestResumeAfterRestart(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (v INTEGER)") // no unique constraint: a replayed entry would add a row
	m.insertMany(t, 1, 30)
	path := filepath.Join(t.TempDir(), "db.sqlite")
	cfg := slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: m.url(), MaxEntries: 7}
	ts := mustOpenSlave(t, path, cfg)
	waitState(t, ts, client.StateStreaming, 31)
	ts.close(t)

	m.insertMany(t, 31, 20)
	ts = mustOpenSlave(t, path, cfg)
	if got := ts.db.AppliedIndex(); got != 31 {
		t.Fatalf("reopened at applied index %d, want 31", got)
	}
	waitState(t, ts, client.StateStreaming, 51)
	if n, d, sum := count(t, ts.db, "SELECT count(*) FROM t"), count(t, ts.db, "SELECT count(DISTINCT v) FROM t"),
		count(t, ts.db, "SELECT sum(v) FROM t"); n != 50 || d != 50 || sum != 50*51/2 {
		t.Fatalf("after the restart: %d rows, %d distinct, sum %d; want 50, 50, 1275", n, d, sum)
	}
	sameContent(t, m, ts)
}

// A slave pointed at another master (another log_id) diverges and applies
// nothing of that history.
func TestDivergesFromAnotherLog(t *testing.T) {
	a := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	a.exec(t, "CREATE TABLE t (v INTEGER)")
	a.insertMany(t, 1, 5)
	path := filepath.Join(t.TempDir(), "db.sqlite")
	ts := mustOpenSlave(t, path, slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: a.url()})
	waitState(t, ts, client.StateStreaming, 6)
	ts.close(t)

	b := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	b.exec(t, "CREATE TABLE t (v INTEGER)")
	b.insertMany(t, 100, 20) // a longer log: index 7 onwards exists on b
	ts = mustOpenSlave(t, path, slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: b.url()})
	waitFor(t, "the slave to diverge", func() bool { return ts.s.Status().State == client.StateDiverged })
	st := ts.s.Status()
	if !strings.Contains(st.Err, a.log.ID()) || !strings.Contains(st.Err, b.log.ID()) {
		t.Fatalf("diverged with %q, want both log ids named", st.Err)
	}
	// A direct step says so too, and applies nothing.
	if err := ts.s.Step(context.Background()); !errors.Is(err, slave.ErrDiverged) {
		t.Fatalf("step: %v, want ErrDiverged", err)
	}
	if got := ts.db.AppliedIndex(); got != 6 || ts.db.LogID() != a.log.ID() {
		t.Fatalf("applied %d of log %s; want 6 of %s", got, ts.db.LogID(), a.log.ID())
	}
	if n := count(t, ts.db, "SELECT count(*) FROM t"); n != 5 {
		t.Fatalf("%d rows, want the 5 of the first master", n)
	}
	if n := count(t, ts.db, "SELECT count(*) FROM t WHERE v >= 100"); n != 0 {
		t.Fatalf("%d rows of the second master", n)
	}
	// It stays diverged: nothing resets the state.
	if got := ts.s.Status().State; got != client.StateDiverged {
		t.Fatalf("state %s", got)
	}
}

// An entry that fails to apply means divergence: ApplyBatch applies nothing
// of its batch.
func TestApplyBatchFailure(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (v INTEGER)")
	m.exec(t, "INSERT INTO t (v) VALUES (1)")
	// The slave's loop pulls from an address where nothing serves, and is
	// stopped: the test applies by hand.
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"),
		slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: "http://" + freeAddr(t)})
	if err := ts.s.Close(); err != nil {
		t.Fatal(err)
	}
	logID := m.log.ID()
	entries, err := m.log.Read(1, 10, 1<<20)
	if err != nil || len(entries) != 2 {
		t.Fatalf("read the master's log: %d entries, %v", len(entries), err)
	}
	if err := ts.s.ApplyBatch(logID, entries); err != nil {
		t.Fatalf("apply the master's entries: %v", err)
	}
	if ts.db.AppliedIndex() != 2 || ts.db.LogID() != logID {
		t.Fatalf("applied %d of %q", ts.db.AppliedIndex(), ts.db.LogID())
	}
	sameContent(t, m, ts)
	if !ts.s.WaitApplied(context.Background(), 2) {
		t.Fatal("WaitApplied(2) after ApplyBatch = false")
	}

	entry := func(index uint64, sql string) *wal.Entry {
		return &wal.Entry{Index: index, Epoch: 1, Time: 1764089748000, Seed: 42, Txn: true, Statements: []wal.Statement{{SQL: sql}}}
	}
	err = ts.s.ApplyBatch(logID, []*wal.Entry{
		entry(3, "INSERT INTO t (v) VALUES (3)"),
		entry(4, "INSERT INTO nosuch (v) VALUES (4)"),
		entry(5, "INSERT INTO t (v) VALUES (5)"),
	})
	var ae *db.ApplyError
	if !errors.Is(err, slave.ErrDiverged) || !errors.As(err, &ae) || ae.Index != 4 || ae.Pos != 0 || !strings.Contains(err.Error(), "no such table: nosuch") {
		t.Fatalf("ApplyBatch: %v, want ErrDiverged with entry 4's error", err)
	}
	if got, n := ts.db.AppliedIndex(), count(t, ts.db, "SELECT count(*) FROM t"); got != 2 || n != 1 {
		t.Fatalf("after the failed batch: applied %d, %d rows; want 2 and 1", got, n)
	}
	if st := ts.s.Status(); st.State != client.StateDiverged || !strings.Contains(st.Err, "no such table") {
		t.Fatalf("status %+v, want diverged naming the error", st)
	}
	// A gap and another log are divergence too.
	if err := ts.s.ApplyBatch(logID, []*wal.Entry{entry(4, "INSERT INTO t (v) VALUES (4)")}); !errors.Is(err, slave.ErrDiverged) || !errors.Is(err, db.ErrGap) {
		t.Fatalf("gap: %v, want ErrDiverged and db.ErrGap", err)
	}
	if err := ts.s.ApplyBatch(strings.Repeat("0", 32), []*wal.Entry{entry(3, "INSERT INTO t (v) VALUES (3)")}); !errors.Is(err, slave.ErrDiverged) || !errors.Is(err, db.ErrOtherLog) {
		t.Fatalf("other log: %v, want ErrDiverged and db.ErrOtherLog", err)
	}
	if got, n := ts.db.AppliedIndex(), count(t, ts.db, "SELECT count(*) FROM t"); got != 2 || n != 1 {
		t.Fatalf("after the refused batches: applied %d, %d rows; want 2 and 1", got, n)
	}
	if err := ts.s.ApplyBatch(logID, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

// WaitApplied reports false once ApplyWait has passed without the index,
// true as soon as it is applied.
func TestWaitApplied(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (v INTEGER)")
	const applyWait = 300 * time.Millisecond
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"),
		slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: m.url(), ApplyWait: applyWait})
	waitState(t, ts, client.StateStreaming, 1)
	ctx := context.Background()

	start := time.Now()
	if !ts.s.WaitApplied(ctx, 1) || time.Since(start) > applyWait {
		t.Fatal("WaitApplied of an applied index did not answer true at once")
	}
	start = time.Now()
	if ts.s.WaitApplied(ctx, 1000) {
		t.Fatal("WaitApplied(1000) = true; the master's log ends at 1")
	}
	if took := time.Since(start); took < applyWait || took > applyWait+10*time.Second {
		t.Fatalf("WaitApplied gave up after %s, want ApplyWait %s", took, applyWait)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if ts.s.WaitApplied(cctx, 1000) {
		t.Fatal("WaitApplied with a cancelled context = true")
	}

	got := make(chan bool, 1)
	go func() { got <- ts.s.WaitApplied(ctx, 2) }()
	r := m.exec(t, "INSERT INTO t (v) VALUES (1)")
	if r.Index != 2 || !<-got {
		t.Fatalf("WaitApplied(2) did not see entry %d arrive", r.Index)
	}
}

// While the master is down the slave is disconnected; when a master on the
// same files and address is back, it streams again.
func TestReconnect(t *testing.T) {
	dir := t.TempDir()
	m := mustStartMaster(t, dir, "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (v INTEGER)")
	m.exec(t, "INSERT INTO t (v) VALUES (1)")
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "1", URL: "http://127.0.0.1:1", MasterURL: m.url()})
	waitState(t, ts, client.StateStreaming, 2)

	m.close(t)
	waitFor(t, "the slave to be disconnected", func() bool {
		st := ts.s.Status()
		return st.State == client.StateDisconnected && st.Err != ""
	})
	if got := ts.db.AppliedIndex(); got != 2 || count(t, ts.db, "SELECT count(*) FROM t") != 1 {
		t.Fatalf("disconnected slave: applied %d", got)
	}

	m2 := mustStartMaster(t, dir, m.addr)
	if m2.url() != m.url() || m2.log.ID() != m.log.ID() {
		t.Fatalf("restarted master at %s with log %s; want %s, %s", m2.url(), m2.log.ID(), m.url(), m.log.ID())
	}
	waitState(t, ts, client.StateStreaming, 2)
	r := m2.exec(t, "INSERT INTO t (v) VALUES (2)")
	waitState(t, ts, client.StateStreaming, r.Index)
	if st := ts.s.Status(); st.Err != "" {
		t.Fatalf("streaming again with error %q", st.Err)
	}
	sameContent(t, m2, ts)
}
