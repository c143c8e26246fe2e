package slave_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// compactingMaster is a master with snapshots whose log is cut after every
// few hundred entries, compacted on demand (Compact), behind a server.
func compactingMaster(tb testing.TB) (*master.Master, string) {
	tb.Helper()
	dir := tb.TempDir()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true, SegmentBytes: 32 << 10})
	if err != nil {
		tb.Fatal(err)
	}
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := snapshot.Open(filepath.Join(dir, "snapshots"), quietLogger())
	if err != nil {
		tb.Fatal(err)
	}
	m, err := master.Open(lg, d, master.Config{Logger: quietLogger(), RetainEntries: 100, Snapshots: st,
		CompactEvery: 1 << 40})
	if err != nil {
		tb.Fatal(err)
	}
	srv := &api.Server{Addr: "127.0.0.1:0", ID: "master", Master: m, Logger: quietLogger(), Snapshots: st}
	if err := srv.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		srv.Close()
		m.Close()
		d.Close()
		lg.Close()
	})
	return m, srv.URL()
}

func insert(tb testing.TB, m *master.Master, n int) {
	tb.Helper()
	for i := range n {
		r := m.Execute(context.Background(), db.Request{Txn: true, Statements: []wal.Statement{
			{SQL: "INSERT INTO t (v) VALUES (?)", Params: []wal.Param{{Value: wal.Text(strings.Repeat("x", 50+i%50))}}}}})
		if r.Err != nil || r.Outcome.Err != nil {
			tb.Fatalf("insert: %v / %v", r.Err, r.Outcome.Err)
		}
	}
}

// damagingProxy stands between a slave and its master: it damages the
// first snapshot it passes (damage), then passes everything as it is, and
// records the Range headers of snapshot requests.
type damagingProxy struct {
	mu     sync.Mutex
	damage func(w http.ResponseWriter, body []byte)
	ranges []string
	proxy  *httputil.ReverseProxy
	target string
}

func (p *damagingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/db/snapshot" {
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.ranges = append(p.ranges, r.Header.Get("Range"))
	damage := p.damage
	p.damage = nil
	p.mu.Unlock()
	if damage == nil {
		p.proxy.ServeHTTP(w, r)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	damage(w, body)
}

// A slave whose entries were compacted away bootstraps from the master's
// snapshot, and never installs a damaged one: a flipped byte is thrown
// away, a cut download resumes where it stopped (Range), and the slave ends
// equal to the master.
func TestBootstrapDamagedSnapshot(t *testing.T) {
	for name, damage := range map[string]func(w http.ResponseWriter, body []byte){
		"flipped byte": func(w http.ResponseWriter, body []byte) {
			b := bytes.Clone(body)
			b[len(b)/2] ^= 0x10
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(b)
		},
		"cut": func(w http.ResponseWriter, body []byte) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(body[:len(body)/2])
			// The handler returns early: the client sees the body end
			// before its Content-Length.
			panic(http.ErrAbortHandler)
		},
	} {
		t.Run(name, func(t *testing.T) {
			m, murl := compactingMaster(t)
			mustCreateAndCompact(t, m)
			target, _ := url.Parse(murl)
			p := &damagingProxy{damage: damage, proxy: httputil.NewSingleHostReverseProxy(target), target: murl}
			front := httptest.NewServer(p)
			defer front.Close()
			ts := mustOpenSlave(t, filepath.Join(t.TempDir(), "db.sqlite"), slave.Config{ID: "1", MasterURL: front.URL})
			waitFor(t, "the slave to bootstrap and catch up", func() bool {
				return ts.db.AppliedIndex() == m.Log().LastIndex() && ts.s.Status().State == client.StateStreaming
			})
			a, _ := m.DB().Checksum(context.Background())
			b, _ := ts.db.Checksum(context.Background())
			if a.Sum != b.Sum {
				t.Fatal("the bootstrapped slave differs from the master")
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if len(p.ranges) < 2 {
				t.Fatalf("snapshot requests: %q", p.ranges)
			}
			if name == "cut" && !strings.HasPrefix(p.ranges[1], "bytes=") {
				t.Fatalf("the cut download did not resume: %q", p.ranges)
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(ts.db.Path()), "bootstrap*"))
			if len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

// A slave of another log diverges even when the entries are compacted
// away: the feed refuses it before any snapshot.
func TestBootstrapOtherLog(t *testing.T) {
	m, murl := compactingMaster(t)
	mustCreateAndCompact(t, m)
	path := filepath.Join(t.TempDir(), "db.sqlite")
	d, err := db.Open(path, db.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(strings.Repeat("ab", 16), []*wal.Entry{{Index: 1, Epoch: 1, Statements: []wal.Statement{{SQL: "CREATE TABLE mine (x)"}}}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	ts := mustOpenSlave(t, path, slave.Config{ID: "1", MasterURL: murl})
	waitFor(t, "the slave to diverge", func() bool { return ts.s.Status().State == client.StateDiverged })
	if len(rows(t, ts.db, "SELECT * FROM mine")) != 0 || ts.db.AppliedIndex() != 1 {
		t.Fatal("the diverged slave's database changed")
	}
}

// A snapshot of another log than the slave follows is refused, even when
// the feed sent the slave to it (a master replaced in between): the slave
// diverges and keeps its database.
func TestBootstrapSnapshotOfOtherLog(t *testing.T) {
	a, aurl := compactingMaster(t)
	mustCreateAndCompact(t, a)
	b, burl := compactingMaster(t)
	mustCreateAndCompact(t, b)
	// The slave follows a's log, at index 1; the snapshots come from b.
	path := filepath.Join(t.TempDir(), "db.sqlite")
	d, err := db.Open(path, db.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(a.Log().ID(), []*wal.Entry{{Index: 1, Epoch: 1, Statements: []wal.Statement{{SQL: "CREATE TABLE mine (x)"}}}}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	atarget, _ := url.Parse(aurl)
	btarget, _ := url.Parse(burl)
	toA, toB := httputil.NewSingleHostReverseProxy(atarget), httputil.NewSingleHostReverseProxy(btarget)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/db/snapshot" {
			toB.ServeHTTP(w, r)
			return
		}
		toA.ServeHTTP(w, r)
	}))
	defer front.Close()
	ts := mustOpenSlave(t, path, slave.Config{ID: "1", MasterURL: front.URL})
	waitFor(t, "the slave to diverge", func() bool { return ts.s.Status().State == client.StateDiverged })
	if st := ts.s.Status(); !strings.Contains(st.Err, "snapshot is of log "+b.Log().ID()) {
		t.Fatalf("diverged for another reason: %s", st.Err)
	}
	if len(rows(t, ts.db, "SELECT * FROM mine")) != 0 || ts.db.AppliedIndex() != 1 || ts.db.LogID() != a.Log().ID() {
		t.Fatal("the diverged slave's database changed")
	}
}

// mustCreateAndCompact writes a table of 2000 rows on m and compacts its
// log, so that it no longer starts at 1.
func mustCreateAndCompact(t *testing.T, m *master.Master) {
	t.Helper()
	r := m.Execute(context.Background(), db.Request{Txn: true, Statements: []wal.Statement{{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v)"}}})
	if r.Err != nil || r.Outcome.Err != nil {
		t.Fatal(r.Err, r.Outcome.Err)
	}
	insert(t, m, 2000)
	res, err := m.Compact(context.Background())
	if err != nil || res.Removed == 0 || res.First <= 1 {
		t.Fatalf("compact: %+v %v", res, err)
	}
}

// A feed request from the first index while the master compacts its log
// gets its entries or 410 (bootstrap), never a conflict (diverged): the
// log may be cut between the request's check and its read.
func TestFeedWhileCompacting(t *testing.T) {
	m, _ := compactingMaster(t)
	mustCreateAndCompact(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var served, gone atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				from := m.Log().FirstIndex()
				_, err := m.Feed(ctx, master.FeedRequest{From: from, Max: 1, SlaveID: "1", LogID: m.Log().ID()})
				switch {
				case err == nil:
					served.Add(1)
				case errors.Is(err, master.ErrCompacted):
					gone.Add(1)
				case ctx.Err() == nil:
					t.Errorf("feed from %d (first index now %d): %v", from, m.Log().FirstIndex(), err)
					cancel()
				}
			}
		}()
	}
	compactions := 0
	for compactions < 100 && ctx.Err() == nil {
		insert(t, m, 20)
		res, err := m.Compact(ctx)
		if err != nil {
			t.Fatalf("compact: %v", err)
		}
		if res.Removed > 0 {
			compactions++
		}
	}
	cancel()
	wg.Wait()
	t.Logf("%d compactions; %d answers with entries, %d 410", compactions, served.Load(), gone.Load())
}
