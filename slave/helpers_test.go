package slave_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/wal"
)

// waitTimeout bounds every wait on replication; a healthy slave needs
// milliseconds (or the backoff's 2s at most), so it only decides how long a
// broken one takes to fail.
const waitTimeout = 30 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testMaster is a master on real files behind an api.Server.
type testMaster struct {
	dir  string
	addr string // host:port, kept across restarts
	log  *wal.Log
	db   *db.DB
	m    *master.Master
	srv  *api.Server
	once sync.Once
}

// mustStartMaster opens the master whose files are in dir and serves it on
// addr ("127.0.0.1:0" for a free port), with cfg if given. Cleanup closes
// the server, the master, the database and the log, in that order.
func mustStartMaster(tb testing.TB, dir, addr string, cfg ...master.Config) *testMaster {
	tb.Helper()
	n := &testMaster{dir: dir}
	var err error
	if n.log, err = wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true}); err != nil {
		tb.Fatal(err)
	}
	if n.db, err = db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()}); err != nil {
		n.log.Close()
		tb.Fatal(err)
	}
	var mc master.Config
	if len(cfg) > 0 {
		mc = cfg[0]
	}
	mc.Logger = quietLogger()
	if n.m, err = master.Open(n.log, n.db, mc); err != nil {
		n.db.Close()
		n.log.Close()
		tb.Fatal(err)
	}
	n.srv = &api.Server{Addr: addr, ID: "master", Master: n.m, Logger: quietLogger()}
	if err := n.srv.Open(); err != nil {
		n.m.Close()
		n.db.Close()
		n.log.Close()
		tb.Fatal(err)
	}
	n.addr = n.srv.URL()[len("http://"):]
	tb.Cleanup(func() { n.close(tb) })
	return n
}

func (n *testMaster) url() string { return n.srv.URL() }

// close stops the master and closes its files; a second call does nothing.
func (n *testMaster) close(tb testing.TB) {
	n.once.Do(func() {
		if err := n.srv.Close(); err != nil {
			tb.Errorf("close master server: %v", err)
		}
		n.m.Close()
		// The log the test leaves is contiguous and every entry checks.
		if err := n.log.Check(); err != nil {
			tb.Errorf("check master log: %v", err)
		}
		if err := n.db.Close(); err != nil {
			tb.Errorf("close master db: %v", err)
		}
		if err := n.log.Close(); err != nil {
			tb.Errorf("close master log: %v", err)
		}
	})
}

// exec runs one statement on the master and fails the test unless it was
// written.
func (n *testMaster) exec(tb testing.TB, sql string, params ...wal.Value) master.Result {
	tb.Helper()
	st := wal.Statement{SQL: sql}
	for _, p := range params {
		st.Params = append(st.Params, wal.Param{Value: p})
	}
	r := n.m.Execute(context.Background(), db.Request{Statements: []wal.Statement{st}, Txn: true})
	if r.Err != nil || r.Outcome.Err != nil {
		tb.Fatalf("exec %q on the master: %v / %v", sql, r.Err, r.Outcome.Err)
	}
	return r
}

// insertMany inserts the values from..from+count-1 into t(v), one entry each, from a few
// goroutines (so that group commit batches them).
func (n *testMaster) insertMany(tb testing.TB, from, count int) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := range next {
				r := n.m.Execute(context.Background(), db.Request{Txn: true, Statements: []wal.Statement{
					{SQL: "INSERT INTO t (v) VALUES (?)", Params: []wal.Param{{Value: wal.Integer(int64(v))}}}}})
				if r.Err != nil || r.Outcome.Err != nil {
					errs <- r.Err
				}
			}
		}()
	}
	for v := from; v < from+count; v++ {
		next <- v
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("insert on the master: %v", err)
	}
}

// testSlave is a slave on a real database file.
type testSlave struct {
	s    *slave.Slave
	db   *db.DB
	once sync.Once
}

// mustOpenSlave opens the database at path and starts a slave on it.
// Cleanup closes the slave, then the database.
func mustOpenSlave(tb testing.TB, path string, cfg slave.Config) *testSlave {
	tb.Helper()
	d, err := db.Open(path, db.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := slave.Open(d, cfg)
	if err != nil {
		d.Close()
		tb.Fatal(err)
	}
	ts := &testSlave{s: s, db: d}
	tb.Cleanup(func() { ts.close(tb) })
	return ts
}

// close stops the slave and closes its database; a second call does
// nothing.
func (ts *testSlave) close(tb testing.TB) {
	ts.once.Do(func() {
		if err := ts.s.Close(); err != nil {
			tb.Errorf("close slave: %v", err)
		}
		if err := ts.db.Close(); err != nil {
			tb.Errorf("close slave db: %v", err)
		}
	})
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond) // ok: poll interval
	}
}

// waitState waits until the slave is in state with applied index.
func waitState(tb testing.TB, ts *testSlave, state string, applied uint64) {
	tb.Helper()
	waitFor(tb, "state "+state, func() bool {
		return ts.s.Status().State == state && ts.db.AppliedIndex() == applied
	})
}

// rows returns the result rows of sql on d.
func rows(tb testing.TB, d *db.DB, sql string) [][]wal.Value {
	tb.Helper()
	res, err := d.Query(context.Background(), []wal.Statement{{SQL: sql}})
	if err != nil {
		tb.Fatalf("query %q: %v", sql, err)
	}
	return res[0].Rows
}

// count returns the single integer sql selects.
func count(tb testing.TB, d *db.DB, sql string) int64 {
	tb.Helper()
	r := rows(tb, d, sql)
	if len(r) != 1 || len(r[0]) != 1 || r[0][0].Kind != wal.KindInteger {
		tb.Fatalf("%q: %v, want one integer", sql, r)
	}
	return r[0][0].Int
}

// sameContent fails the test unless the master's and the slave's table t
// hold the same rows.
func sameContent(tb testing.TB, m *testMaster, ts *testSlave) {
	tb.Helper()
	const q = "SELECT rowid, * FROM t ORDER BY rowid"
	want, got := rows(tb, m.db, q), rows(tb, ts.db, q)
	if len(want) == 0 || !reflect.DeepEqual(got, want) {
		tb.Fatalf("slave holds %d rows, master %d; they differ (or are empty)", len(got), len(want))
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
