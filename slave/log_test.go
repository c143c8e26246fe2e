package slave_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/db"
	"github.com/walship/walship/retention"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// servedSlave is a slave that keeps a log, served by an api.Server so that
// other slaves can follow it.
type servedSlave struct {
	*testSlave
	log  *wal.Log
	srv  *api.Server
	once sync.Once
}

// mustServeSlave starts a slave with its own log in dir and serves it.
// Cleanup (or close) closes the server, the slave, its database and its
// log, and checks the log.
func mustServeSlave(tb testing.TB, dir string, cfg slave.Config, opts ...wal.Options) *servedSlave {
	tb.Helper()
	o := wal.Options{NoSync: true}
	if len(opts) > 0 {
		o = opts[0]
	}
	lg, err := wal.Open(filepath.Join(dir, "log.db"), o)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Log = lg
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := slave.Open(d, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := &api.Server{Addr: "127.0.0.1:0", ID: cfg.ID, Slave: s, Logger: quietLogger(), Snapshots: cfg.Snapshots}
	if err := srv.Open(); err != nil {
		tb.Fatal(err)
	}
	ss := &servedSlave{testSlave: &testSlave{s: s, db: d}, log: lg, srv: srv}
	tb.Cleanup(func() { ss.close(tb) })
	return ss
}

// close stops the slave and closes its files; a second call does nothing.
func (ss *servedSlave) close(tb testing.TB) {
	ss.once.Do(func() {
		ss.srv.Close()
		ss.testSlave.close(tb)
		if err := ss.log.Check(); err != nil {
			tb.Errorf("check the slave's log: %v", err)
		}
		ss.log.Close()
	})
}

// sameLog fails the test unless got holds exactly want's entries, byte for
// byte.
func sameLog(tb testing.TB, want, got *wal.Log) {
	tb.Helper()
	if got.ID() != want.ID() || got.LastIndex() != want.LastIndex() {
		tb.Fatalf("log %s ends at %d, want log %s ending at %d", got.ID(), got.LastIndex(), want.ID(), want.LastIndex())
	}
	for i := got.FirstIndex(); i <= got.LastIndex(); i++ {
		w, err := want.ReadEncoded(i, 1, 0)
		if err != nil {
			tb.Fatal(err)
		}
		g, err := got.ReadEncoded(i, 1, 0)
		if err != nil {
			tb.Fatal(err)
		}
		if !bytes.Equal(w[0], g[0]) {
			tb.Fatalf("entry %d differs from the master's", i)
		}
	}
}

// A slave keeps the entries it applies in its own log, the master's byte
// for byte, and serves them: a slave whose master is that slave (a chain)
// ends with the master's content, and each hop knows its follower's
// progress, durably received included.
func TestSlaveKeepsLogAndFeedsAnother(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, r REAL DEFAULT (random()))")
	first := mustServeSlave(t, t.TempDir(), slave.Config{ID: "1", URL: "http://first", MasterURL: m.url()})
	m.insertMany(t, 0, 300)
	second := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "2", URL: "http://second", MasterURL: first.srv.URL()})
	m.insertMany(t, 300, 300)
	last := m.log.LastIndex()
	waitState(t, second, "streaming", last)
	waitState(t, first.testSlave, "streaming", last)
	sameContent(t, m, first.testSlave)
	sameContent(t, m, second)
	sameLog(t, m.log, first.log)
	if c := count(t, second.db, "SELECT count(*) FROM t"); c != 600 {
		t.Fatalf("the second slave holds %d rows, want 600", c)
	}
	// Each hop lists its own follower: the master the first slave, the
	// first slave the second.
	waitFor(t, "the master to know the first slave's progress", func() bool {
		sl := m.m.Slaves()
		return len(sl) == 1 && sl[0].ID == "1" && sl[0].Received == last && sl[0].Applied == last
	})
	waitFor(t, "the first slave to know the second's progress", func() bool {
		f := first.s.FeedServer().Followers()
		return len(f) == 1 && f[0].ID == "2" && f[0].Applied == last
	})
	if n := m.m.WaitReplicas(context.Background(), last, 1, false); n != 1 {
		t.Fatalf("WaitReplicas durable: %d, want 1", n)
	}
}

// Entries the slave's log holds beyond its database (a crash between the
// log's fsync and SQLite's commit) are applied when it opens, before it asks
// the master for anything.
func TestSlaveAppliesItsLogAtOpen(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
	m.insertMany(t, 0, 50)
	dir := t.TempDir()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true, LogID: m.log.ID()})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := m.log.Read(1, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Append(entries); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer lg.Close()
	// No master to ask: what it holds comes from its log alone.
	s, err := slave.Open(d, slave.Config{ID: "1", MasterURL: "http://" + freeAddr(t), Log: lg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := d.AppliedIndex(), m.log.LastIndex(); got != want || d.LogID() != m.log.ID() {
		t.Fatalf("after open the slave applied %d of log %s, want %d of %s", got, d.LogID(), want, m.log.ID())
	}
	if c := count(t, d, "SELECT count(*) FROM t"); c != 50 {
		t.Fatalf("%d rows, want 50", c)
	}
}

// A slave whose log does not cover its database (one kept before by
// another history, or none) starts its log again after its applied index,
// and then keeps the entries that follow.
func TestSlaveRestartsLogThatDoesNotCoverItsDatabase(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
	m.insertMany(t, 0, 20)
	dir := t.TempDir()
	// A slave without a log follows the master first.
	ts := mustOpenSlave(t, filepath.Join(dir, "db.sqlite"), slave.Config{ID: "1", MasterURL: m.url()})
	waitState(t, ts, "streaming", m.log.LastIndex())
	ts.close(t)
	applied := m.log.LastIndex()
	// Then it keeps one: a new log file, of another log_id.
	ss := mustServeSlave(t, dir, slave.Config{ID: "1", MasterURL: m.url()})
	if ss.log.ID() != m.log.ID() || ss.log.FirstIndex() != applied+1 || ss.log.LastIndex() != applied {
		t.Fatalf("the slave's log is %s [%d, %d], want %s starting at %d", ss.log.ID(), ss.log.FirstIndex(), ss.log.LastIndex(), m.log.ID(), applied+1)
	}
	m.insertMany(t, 20, 20)
	waitState(t, ss.testSlave, "streaming", m.log.LastIndex())
	if got := ss.log.LastIndex(); got != m.log.LastIndex() {
		t.Fatalf("the slave's log ends at %d, want %d", got, m.log.LastIndex())
	}
	sameContent(t, m, ss.testSlave)
}

// A slave bounds its log by its retention, as the master does: segments
// beyond it go once a snapshot of the slave covers them, and a slave that
// follows it from before its log's first index bootstraps from that
// snapshot and ends with the master's content.
func TestSlaveCompactsItsLog(t *testing.T) {
	m := mustStartMaster(t, t.TempDir(), "127.0.0.1:0")
	m.exec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad TEXT DEFAULT (hex(randomblob(64))))")
	dir := t.TempDir()
	snaps, err := snapshot.Open(filepath.Join(dir, "snapshots"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	first := mustServeSlave(t, dir, slave.Config{ID: "1", MasterURL: m.url(), Snapshots: snaps,
		Retention: retention.Policy{Entries: 100}, CompactEvery: time.Hour}, wal.Options{NoSync: true, SegmentBytes: 16 << 10})
	m.insertMany(t, 0, 800)
	waitState(t, first.testSlave, "streaming", m.log.LastIndex())
	res, err := first.s.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed == 0 || first.log.FirstIndex() < 2 || first.log.LastIndex()-first.log.FirstIndex() < 100 {
		t.Fatalf("compaction %+v left the log at [%d, %d]; want old segments gone and the newest 100 entries kept",
			res, first.log.FirstIndex(), first.log.LastIndex())
	}
	second := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "2", MasterURL: first.srv.URL()})
	m.insertMany(t, 800, 50)
	waitState(t, second, "streaming", m.log.LastIndex())
	sameContent(t, m, second)
}

// A slave that bootstrapped (its log starts again after the snapshot it
// installed) while its own store holds an older snapshot does not send a
// follower to that one: its log does not follow it. The follower gets a
// snapshot taken anew, and ends with the master's content.
func TestSlaveServesSnapshotItsLogFollows(t *testing.T) {
	m, murl := compactingMaster(t)
	if r := m.Execute(context.Background(), db.Request{Txn: true, Statements: []wal.Statement{{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"}}}); r.Err != nil || r.Outcome.Err != nil {
		t.Fatal(r.Err, r.Outcome.Err)
	}
	insert(t, m, 50)
	dir := t.TempDir()
	snaps, err := snapshot.Open(filepath.Join(dir, "snapshots"), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	a := mustServeSlave(t, dir, slave.Config{ID: "a", MasterURL: murl, Snapshots: snaps})
	waitState(t, a.testSlave, "streaming", m.Log().LastIndex())
	old, err := snaps.Make(context.Background(), a.db)
	if err != nil {
		t.Fatal(err)
	}
	a.close(t)
	insert(t, m, 1500)
	if _, err := m.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if first := m.Log().FirstIndex(); first <= old.Index+1 {
		t.Fatalf("the master's log starts at %d: not compacted past the slave's %d", first, old.Index)
	}
	a = mustServeSlave(t, dir, slave.Config{ID: "a", MasterURL: murl, Snapshots: snaps})
	waitState(t, a.testSlave, "streaming", m.Log().LastIndex())
	if first := a.log.FirstIndex(); first <= old.Index+1 {
		t.Fatalf("the slave did not bootstrap: its log starts at %d", first)
	}
	b := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "b", MasterURL: a.srv.URL()})
	waitState(t, b, "streaming", m.Log().LastIndex())
	if got, want := count(t, b.db, "SELECT count(*) FROM t"), count(t, m.DB(), "SELECT count(*) FROM t"); got != want || want != 1550 {
		t.Fatalf("the follower of the slave holds %d rows, the master %d (want 1550)", got, want)
	}
}

// A --master that answers the feed with 404 (a node that keeps no log to
// serve) is said as such, not as an unreachable master.
func TestSlaveSaysMasterServesNoLog(t *testing.T) {
	nolog := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"this node is not the master"}`))
	}))
	defer nolog.Close()
	var logs syncLog
	ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "1", MasterURL: nolog.URL,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "the slave to say why it cannot follow", func() bool {
		return strings.Contains(logs.String(), "serves no log to follow")
	})
	if strings.Contains(logs.String(), "master unreachable") {
		t.Fatalf("a 404 is logged as an unreachable master:\n%s", logs.String())
	}
	if st := ts.s.Status(); st.State != "disconnected" || !strings.Contains(st.Err, "not the master") {
		t.Fatalf("status %+v", st)
	}
}

// syncLog collects log lines from several goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
