package master

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// testNode is a master on real files in a temp dir.
type testNode struct {
	dir string
	log *wal.Log
	db  *db.DB
	m   *Master
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustOpen(tb testing.TB, dir string, opts wal.Options) *testNode {
	tb.Helper()
	n, err := open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.close() })
	return n
}

func open(dir string, opts wal.Options) (*testNode, error) {
	n := &testNode{dir: dir}
	var err error
	if n.log, err = wal.Open(filepath.Join(dir, "log.db"), opts); err != nil {
		return nil, err
	}
	if n.db, err = db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()}); err != nil {
		n.log.Close()
		return nil, err
	}
	if n.m, err = Open(n.log, n.db, Config{Logger: quietLogger()}); err != nil {
		n.db.Close()
		n.log.Close()
		return nil, err
	}
	return n, nil
}

func (n *testNode) close() {
	if n.m != nil {
		n.m.Close()
		n.db.Close()
		n.log.Close()
		n.m = nil
	}
}

func stmts(sqls ...string) db.Request {
	r := db.Request{Txn: true}
	for i, s := range sqls {
		r.Statements = append(r.Statements, wal.Statement{SQL: s, Pos: uint32(i)})
	}
	return r
}

func (n *testNode) mustExec(tb testing.TB, sqls ...string) Result {
	tb.Helper()
	r := n.m.Execute(context.Background(), stmts(sqls...))
	if r.Err != nil || r.Outcome.Err != nil {
		tb.Fatalf("exec %q: %v / %v", sqls, r.Err, r.Outcome.Err)
	}
	return r
}

func (n *testNode) count(tb testing.TB, table string) int64 {
	tb.Helper()
	res, err := n.db.Query(context.Background(), []wal.Statement{{SQL: "SELECT count(*) FROM " + table}})
	if err != nil {
		tb.Fatal(err)
	}
	return res[0].Rows[0][0].Int
}

func TestExecuteAppendsAndApplies(t *testing.T) {
	n := mustOpen(t, t.TempDir(), wal.Options{})
	n.mustExec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	r := n.mustExec(t, "INSERT INTO t (v) VALUES ('a')", "INSERT INTO t (v) VALUES ('b')")
	if r.Index != 2 || n.log.LastIndex() != 2 || n.db.AppliedIndex() != 2 {
		t.Fatalf("index %d, log last %d, applied %d; want 2", r.Index, n.log.LastIndex(), n.db.AppliedIndex())
	}
	entries, err := n.log.Read(2, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries[0].Statements) != 2 || entries[0].Statements[1].Pos != 1 || !entries[0].Txn {
		t.Fatalf("entry 2 = %+v", entries[0])
	}
	if got := n.count(t, "t"); got != 2 {
		t.Fatalf("%d rows, want 2", got)
	}
	// A failed request writes nothing and appends nothing.
	bad := n.m.Execute(context.Background(), stmts("INSERT INTO t (v) VALUES ('c')", "INSERT INTO nosuch VALUES (1)"))
	if bad.Outcome.Err == nil || n.log.LastIndex() != 2 || n.count(t, "t") != 2 {
		t.Fatalf("failed request: err %v, last %d, rows %d", bad.Outcome.Err, n.log.LastIndex(), n.count(t, "t"))
	}
}

// A log append that fails acknowledges nothing, and SQLite keeps none of it.
func TestAppendFailureAcknowledgesNothing(t *testing.T) {
	var fail sync.Mutex
	failing := false
	boom := errors.New("injected: disk gone")
	n := mustOpen(t, t.TempDir(), wal.Options{BeforeCommit: func([]*wal.Entry) error {
		fail.Lock()
		defer fail.Unlock()
		if failing {
			return boom
		}
		return nil
	}})
	n.mustExec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	fail.Lock()
	failing = true
	fail.Unlock()
	var wg sync.WaitGroup
	results := make([]Result, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = n.m.Execute(context.Background(), stmts("INSERT INTO t (v) VALUES ('x')"))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if !errors.Is(r.Err, ErrAppend) || !errors.Is(r.Err, boom) {
			t.Fatalf("request %d answered %+v, want ErrAppend", i, r)
		}
	}
	if got := n.count(t, "t"); got != 0 {
		t.Fatalf("SQLite holds %d rows of writes whose append failed", got)
	}
	if n.log.LastIndex() != 1 || n.db.AppliedIndex() != 1 {
		t.Fatalf("last %d applied %d, want 1", n.log.LastIndex(), n.db.AppliedIndex())
	}
	// The master keeps serving once the log works again.
	fail.Lock()
	failing = false
	fail.Unlock()
	if r := n.mustExec(t, "INSERT INTO t (v) VALUES ('y')"); r.Index != 2 || n.count(t, "t") != 1 {
		t.Fatalf("after recovery: index %d rows %d", r.Index, n.count(t, "t"))
	}
}

// A request is answered only after its entry's commit (bbolt's fsync)
// returned.
func TestAnswerAfterFsync(t *testing.T) {
	release := make(chan struct{})
	committed := make(chan uint64, 10)
	var gate sync.Once
	n := mustOpen(t, t.TempDir(), wal.Options{AfterCommit: func(last uint64) {
		committed <- last
		if last == 2 {
			<-release
		}
	}})
	defer gate.Do(func() { close(release) })
	n.mustExec(t, "CREATE TABLE t (v)")
	<-committed
	answered := make(chan Result, 1)
	go func() { answered <- n.m.Execute(context.Background(), stmts("INSERT INTO t VALUES (1)")) }()
	if got := <-committed; got != 2 {
		t.Fatalf("committed %d, want 2", got)
	}
	select {
	case r := <-answered:
		t.Fatalf("answered %+v before the log commit returned", r)
	case <-time.After(100 * time.Millisecond): // ok: proving the absence of an answer
	}
	gate.Do(func() { close(release) })
	if r := <-answered; r.Err != nil || r.Index != 2 {
		t.Fatalf("answer %+v", r)
	}
}

// A batch in which one request ends the transaction (INSERT OR ROLLBACK
// hitting a conflict) loses no other request's write.
func TestBatchSurvivesRollback(t *testing.T) {
	hold := make(chan struct{})
	var once sync.Once
	n := mustOpen(t, t.TempDir(), wal.Options{AfterCommit: func(last uint64) {
		if last == 2 {
			<-hold // keep the writer busy so that the next requests form one batch
		}
	}})
	defer once.Do(func() { close(hold) })
	n.mustExec(t, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, r INTEGER, at TEXT)")
	first := make(chan Result, 1)
	go func() { first <- n.m.Execute(context.Background(), stmts("INSERT INTO t (v) VALUES ('taken')")) }()
	for n.log.LastIndex() < 2 {
		time.Sleep(time.Millisecond) // ok: poll interval
	}
	reqs := []db.Request{
		stmts("INSERT INTO t (v, r, at) VALUES ('a', random(), strftime('%f','now'))"),
		stmts("INSERT OR ROLLBACK INTO t (v) VALUES ('taken')"),
		stmts("INSERT INTO t (v, r, at) VALUES ('b', random(), datetime('now'))"),
		{Statements: []wal.Statement{{SQL: "INSERT INTO t (v) VALUES ('c')"}, {SQL: "INSERT INTO t (v) VALUES ('taken')", Pos: 1}, {SQL: "INSERT INTO t (v) VALUES ('d')", Pos: 2}}},
	}
	results := make([]chan Result, len(reqs))
	for i, r := range reqs {
		results[i] = make(chan Result, 1)
		go func() { results[i] <- n.m.Execute(context.Background(), r) }()
	}
	for len(n.m.queue) < len(reqs) {
		time.Sleep(time.Millisecond) // ok: poll interval
	}
	once.Do(func() { close(hold) })
	<-first
	got := make([]Result, len(reqs))
	for i := range reqs {
		got[i] = <-results[i]
	}
	if got[1].Outcome.Err == nil || !got[1].TxnLost {
		t.Fatalf("OR ROLLBACK request: %+v, want failed with TxnLost", got[1])
	}
	for _, i := range []int{0, 2} {
		if got[i].Err != nil || got[i].Outcome.Err != nil || got[i].Index == 0 {
			t.Fatalf("request %d lost: %+v", i, got[i])
		}
	}
	// The non-transactional request kept its two good statements.
	if got[3].Outcome.Err != nil || got[3].Results[1].Err == nil || len(got[3].Logged) != 2 {
		t.Fatalf("request 3: %+v", got[3])
	}
	rows := func(d *db.DB) string {
		res, err := d.Query(context.Background(), []wal.Statement{{SQL: "SELECT id, v, r, at FROM t ORDER BY id"}})
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for _, row := range res[0].Rows {
			for _, v := range row {
				sb.WriteString(v.Kind.String() + ":" + v.Text + "|")
				sb.WriteString(strings.Repeat("#", int(v.Int%7+7)))
			}
			sb.WriteString("\n")
		}
		return sb.String()
	}
	want := rows(n.db)
	for _, v := range []string{"'a'", "'b'", "'c'", "'d'"} {
		if !strings.Contains(want, "text:"+strings.Trim(v, "'")+"|") {
			t.Fatalf("row %s missing:\n%s", v, want)
		}
	}
	// The log and SQLite agree: replaying the log on a fresh database gives
	// the same content.
	if got := rows(n.replica(t)); got != want {
		t.Fatalf("replica differs:\n%s\nmaster:\n%s", got, want)
	}
}

// At start, the master applies the log entries its database lacks.
func TestReplayAtStart(t *testing.T) {
	dir := t.TempDir()
	n := mustOpen(t, dir, wal.Options{})
	n.mustExec(t, "CREATE TABLE t (v)")
	n.mustExec(t, "INSERT INTO t VALUES (1)")
	logID := n.log.ID()
	n.close()
	// An entry that reached the log but not SQLite (a crash between the
	// append and the commit).
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Append([]*wal.Entry{{Index: 3, Epoch: 1, Time: 1, Statements: []wal.Statement{{SQL: "INSERT INTO t VALUES (2)"}}}}); err != nil {
		t.Fatal(err)
	}
	lg.Close()
	n2 := mustOpen(t, dir, wal.Options{})
	if n2.log.ID() != logID || n2.db.AppliedIndex() != 3 || n2.count(t, "t") != 2 {
		t.Fatalf("after replay: applied %d, rows %d", n2.db.AppliedIndex(), n2.count(t, "t"))
	}
}

// A master refuses to start when its database is ahead of its log or
// follows another log.
func TestRefuseToStart(t *testing.T) {
	dir := t.TempDir()
	n := mustOpen(t, dir, wal.Options{})
	n.mustExec(t, "CREATE TABLE t (v)")
	n.close()
	old, err := os.ReadFile(filepath.Join(dir, "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	n = mustOpen(t, dir, wal.Options{})
	n.mustExec(t, "INSERT INTO t VALUES (1)")
	n.close()
	if err := os.WriteFile(filepath.Join(dir, "log.db"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := open(dir, wal.Options{}); err == nil || !strings.Contains(err.Error(), "ahead of its log") {
		t.Fatalf("database ahead of log: err %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "log.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := open(dir, wal.Options{}); err == nil || !strings.Contains(err.Error(), "another history") {
		t.Fatalf("database of another log: err %v", err)
	}
}

// decodeIndex decodes an entry the feed gave and returns its index.
func decodeIndex(t *testing.T, b []byte) uint64 {
	t.Helper()
	var e wal.Entry
	if err := e.UnmarshalBinary(b); err != nil {
		t.Fatalf("feed entry: %v", err)
	}
	return e.Index
}

func TestFeed(t *testing.T) {
	n := mustOpen(t, t.TempDir(), wal.Options{})
	n.mustExec(t, "CREATE TABLE t (v)")
	n.mustExec(t, "INSERT INTO t VALUES (1)")
	ctx := context.Background()
	es, err := n.m.Feed(ctx, FeedRequest{From: 1, Max: 10, SlaveID: "1", SlaveURL: "http://s1", Applied: 0})
	if err != nil || len(es) != 2 || decodeIndex(t, es[1]) != 2 {
		t.Fatalf("feed: %v %v", es, err)
	}
	if sl := n.m.Slaves(); len(sl) != 1 || sl[0].ID != "1" || sl[0].Lag != 2 {
		t.Fatalf("slaves %+v", sl)
	}
	// Caught up: the heartbeat answers with nothing.
	start := time.Now()
	es, err = n.m.Feed(ctx, FeedRequest{From: 3, Wait: time.Hour, SlaveID: "1", SlaveURL: "http://s1", LogID: n.log.ID(), Applied: 2, LastEpoch: 1, KnowsEpoch: true})
	if err != nil || len(es) != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("heartbeat: %v %v after %s", es, err, time.Since(start))
	}
	if sl := n.m.Slaves(); sl[0].Lag != 0 {
		t.Fatalf("lag %d, want 0", sl[0].Lag)
	}
	// A long-poll wakes on a new entry.
	got := make(chan [][]byte, 1)
	go func() {
		es, _ := n.m.Feed(ctx, FeedRequest{From: 3, Wait: 10 * time.Second, LogID: n.log.ID()})
		got <- es
	}()
	n.mustExec(t, "INSERT INTO t VALUES (2)")
	for es := range got {
		if len(es) == 0 {
			// the heartbeat came first; the next poll has it
			es, _ = n.m.Feed(ctx, FeedRequest{From: 3, LogID: n.log.ID()})
		}
		if len(es) != 1 || decodeIndex(t, es[0]) != 3 {
			t.Fatalf("long-poll got %v", es)
		}
		break
	}
	for _, bad := range []FeedRequest{
		{From: 1, LogID: "00000000000000000000000000000000"},
		{From: 5},
		{From: 3, Applied: 2, LastEpoch: 7, KnowsEpoch: true},
	} {
		if _, err := n.m.Feed(ctx, bad); !errors.Is(err, ErrLogConflict) {
			t.Fatalf("feed %+v: err %v, want ErrLogConflict", bad, err)
		}
	}
}

// TestFeedWakesOnWrite: a long-poll that waits for new entries returns a
// write's entry once the writer answered it, not at the heartbeat (an hour
// here).
func TestFeedWakesOnWrite(t *testing.T) {
	dir := t.TempDir()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	m, err := Open(lg, d, Config{Logger: quietLogger(), Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if r := m.Execute(ctx, stmts("CREATE TABLE t (v)")); r.Err != nil || r.Outcome.Err != nil {
		t.Fatal(r.Err, r.Outcome.Err)
	}
	for i := uint64(2); i <= 21; i++ {
		got := make(chan [][]byte, 1)
		go func() {
			es, _ := m.Feed(ctx, FeedRequest{From: i, Wait: time.Hour, LogID: lg.ID()})
			got <- es
		}()
		if r := m.Execute(ctx, stmts("INSERT INTO t VALUES (1)")); r.Err != nil || r.Outcome.Err != nil || r.Index != i {
			t.Fatalf("write %d: index %d, %v %v", i, r.Index, r.Err, r.Outcome.Err)
		}
		select {
		case es := <-got:
			if len(es) != 1 || decodeIndex(t, es[0]) != i {
				t.Fatalf("long-poll from %d got %d entries", i, len(es))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the long-poll from %d was not woken by the write", i)
		}
	}
}
