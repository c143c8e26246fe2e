package api_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/wal"
)

// failingLog is a log failpoint: while fail is set, every append fails
// before its commit, as a failing write or fsync of log.db would; while hold
// is set, every append waits in it until released, as a slow fsync would.
type failingLog struct {
	fail    atomic.Bool
	appends atomic.Int64 // failed appends
	mu      sync.Mutex
	hold    chan struct{} // non-nil: appends wait for it to close
	holding chan struct{} // gets a value when an append waits
}

var errInjected = errors.New("injected: fsync failed")

func (f *failingLog) beforeCommit([]*wal.Entry) error {
	f.mu.Lock()
	hold, holding := f.hold, f.holding
	f.mu.Unlock()
	if hold != nil {
		holding <- struct{}{}
		<-hold
	}
	if f.fail.Load() {
		f.appends.Add(1)
		return errInjected
	}
	return nil
}

// mustRunFailingMaster is mustRunMaster with the failpoint f in its log.
func mustRunFailingMaster(tb testing.TB, f *failingLog) (*api.Server, *client.Client) {
	tb.Helper()
	dir := tb.TempDir()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true, BeforeCommit: f.beforeCommit})
	if err != nil {
		tb.Fatal(err)
	}
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		lg.Close()
		tb.Fatal(err)
	}
	m, err := master.Open(lg, d, master.Config{Logger: quietLogger()})
	if err != nil {
		d.Close()
		lg.Close()
		tb.Fatal(err)
	}
	srv := &api.Server{Addr: "127.0.0.1:0", ID: "master", Master: m, Logger: quietLogger()}
	if err := srv.Open(); err != nil {
		m.Close()
		d.Close()
		lg.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		f.fail.Store(false)
		f.mu.Lock()
		if f.hold != nil {
			close(f.hold)
			f.hold = nil
		}
		f.mu.Unlock()
		// Connections send dialed but never used stay "new" to the
		// server, which waits 5s for them on Close.
		sendTransport.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			tb.Errorf("close master server: %v", err)
		}
		m.Close()
		if err := lg.Check(); err != nil {
			tb.Errorf("check master log: %v", err)
		}
		d.Close()
		lg.Close()
	})
	return srv, client.New(srv.URL())
}

// position is what a node holds: its content checksum and its log's last
// and applied index.
type position struct {
	sum           string
	last, applied uint64
}

func positionOf(tb testing.TB, c *client.Client) position {
	tb.Helper()
	ctx := context.Background()
	sum, err := c.Checksum(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := c.LogStatus(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return position{sum: sum.Checksum, last: st.LastIndex, applied: st.AppliedIndex}
}

// TestAppendFailureAnswers503 makes every log append fail (a failing write
// or fsync of log.db) and sends writes through every endpoint that takes
// them: each is answered 503 with a JSON error saying the append failed,
// none is acknowledged, SQLite keeps nothing of them, the log does not
// grow, and a slave applies nothing. Reads keep working meanwhile, and
// once the log works again the next write takes the next index.
func TestAppendFailureAnswers503(t *testing.T) {
	f := &failingLog{}
	msrv, mc := mustRunFailingMaster(t, f)
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, mc, "INSERT INTO t (v) VALUES ('before')")
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	before := positionOf(t, mc)
	waitApplied(t, ssrv, before.last)
	const content = "SELECT id, v FROM t ORDER BY id"
	want := dump(t, mc, content)

	f.fail.Store(true)
	ins := `INSERT INTO t (v) VALUES ('lost')`
	cases := []struct {
		name, method, path, ctype, body string
	}{
		{"POST / exec", http.MethodPost, "/", "application/json", `{"command":"exec","query":"` + ins + `"}`},
		{"POST / exec of two statements", http.MethodPost, "/", "application/json", `{"command":"exec","query":"` + ins + `; ` + ins + `"}`},
		{"POST / exec with parameters", http.MethodPost, "/", "application/json", `{"command":"exec","query":"INSERT INTO t (v) VALUES (?)","params":["p"]}`},
		{"/db/execute", http.MethodPost, "/db/execute", "application/json", `["` + ins + `"]`},
		{"/db/execute?transaction", http.MethodPost, "/db/execute?transaction", "application/json", `["` + ins + `", "` + ins + `"]`},
		{"/db/execute text/plain", http.MethodPost, "/db/execute", "text/plain", ins},
		{"/db/request", http.MethodPost, "/db/request", "application/json", `["` + ins + `"]`},
		{"/db/execute on the slave", http.MethodPost, "/db/execute", "application/json", `["` + ins + `"]`},
		{"POST / exec on the slave", http.MethodPost, "/", "application/json", `{"command":"exec","query":"` + ins + `"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := msrv.URL()
			if strings.HasSuffix(tc.name, "on the slave") {
				url = ssrv.URL()
			}
			failed := f.appends.Load()
			status, body := send(t, tc.method, url+tc.path, tc.ctype, tc.body)
			if status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", status, body)
			}
			er := errorBody(t, body)
			if !strings.Contains(er.Error, "log append failed") || !strings.Contains(er.Error, errInjected.Error()) {
				t.Errorf("error %q does not say the log append failed and why", er.Error)
			}
			if f.appends.Load() == failed {
				t.Error("no append was tried: the failpoint proves nothing")
			}
		})
	}

	// Many at once, so that they fail together in group commits.
	var wg sync.WaitGroup
	statuses := make([]int, 32)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = send(t, http.MethodPost, msrv.URL()+"/", "application/json", `{"command":"exec","query":"`+ins+`"}`)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Errorf("concurrent write %d: status %d, want 503", i, s)
		}
	}

	// Reads work meanwhile, and nothing of the failed writes shows.
	if got := dump(t, mc, content); got != want {
		t.Fatalf("content during the failures: %s, want %s", got, want)
	}
	if got := positionOf(t, mc); got != before {
		t.Fatalf("after failed appends the master is at %+v, was %+v", got, before)
	}
	if got := positionOf(t, sc); got.sum != before.sum || got.applied != before.last {
		t.Fatalf("after failed appends the slave is at %+v, the master was %+v", got, before)
	}

	f.fail.Store(false)
	resp := mustExec(t, mc, "INSERT INTO t (v) VALUES ('after')")
	if resp.Index != before.last+1 {
		t.Fatalf("the first write after the failures has index %d, want %d", resp.Index, before.last+1)
	}
	waitApplied(t, ssrv, resp.Index)
	if got, want := dump(t, sc, content), `[[1,"before"],[2,"after"]]`; got != want {
		t.Fatalf("slave content %s, want %s", got, want)
	}
}

// TestNothingVisibleBeforeLogCommit holds the log's commit (as a slow fsync
// would) while writes wait for it, over HTTP: no write is answered, no
// read on the master shows it, no slave gets it; released, each is answered
// with its index and shows everywhere.
func TestNothingVisibleBeforeLogCommit(t *testing.T) {
	f := &failingLog{}
	msrv, mc := mustRunFailingMaster(t, f)
	mustExec(t, mc, "CREATE TABLE t (v)")
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	before := positionOf(t, mc)
	waitApplied(t, ssrv, before.last)

	hold := make(chan struct{})
	f.mu.Lock()
	f.hold, f.holding = hold, make(chan struct{}, 64)
	holding := f.holding
	f.mu.Unlock()
	answered := make(chan int, 8)
	for range cap(answered) {
		go func() {
			status, _ := send(t, http.MethodPost, msrv.URL()+"/", "application/json", `{"command":"exec","query":"INSERT INTO t VALUES (1)"}`)
			answered <- status
		}()
	}
	select {
	case <-holding:
	case <-time.After(waitTimeout):
		t.Fatal("no append reached the log's commit")
	}
	for _, c := range []*client.Client{mc, sc} {
		if got := dump(t, c, "SELECT count(*) FROM t"); got != "[[0]]" {
			t.Fatalf("%s shows %s rows while the log commit is held", c.URL, got)
		}
	}
	if got := positionOf(t, mc); got != before {
		t.Fatalf("the master moved to %+v while its log commit is held (was %+v)", got, before)
	}
	select {
	case s := <-answered:
		t.Fatalf("a write was answered %d before its log commit", s)
	case <-time.After(200 * time.Millisecond): // ok: proving the absence of an answer
	}

	f.mu.Lock()
	f.hold = nil
	f.mu.Unlock()
	close(hold)
	for range cap(answered) {
		if s := <-answered; s != http.StatusOK {
			t.Fatalf("a held write was answered %d, want 200", s)
		}
	}
	last := msrv.Master.Log().LastIndex()
	waitApplied(t, ssrv, last)
	for _, c := range []*client.Client{mc, sc} {
		if got := dump(t, c, "SELECT count(*) FROM t"); got != "[[8]]" {
			t.Fatalf("%s shows %s rows after the release, want 8", c.URL, got)
		}
	}
}

// sendTransport carries the requests of send.
var sendTransport = client.NewTransport()

// send sends one request with a content type and returns the status and
// body.
func send(tb testing.TB, method, url, ctype, body string) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		tb.Error(err)
		return 0, nil
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := (&http.Client{Timeout: waitTimeout, Transport: sendTransport}).Do(req)
	if err != nil {
		tb.Errorf("%s %s: %v", method, url, err)
		return 0, nil
	}
	defer resp.Body.Close()
	b := new(strings.Builder)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, []byte(b.String())
}
