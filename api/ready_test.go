package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
	"github.com/walship/walship/wal"
)

// readyz returns the status and body of GET /readyz (with query q) of
// the node at u.
func readyz(tb testing.TB, u, q string) (int, string) {
	tb.Helper()
	status, _, body := do(tb, http.MethodGet, u+"/readyz"+q, nil)
	return status, string(body)
}

// metric returns the value of series (a name with its labels, exactly as
// /metrics writes them) in the node at u's /metrics, and whether it is
// there.
func metric(tb testing.TB, u, series string) (float64, bool) {
	tb.Helper()
	_, _, body := do(tb, http.MethodGet, u+"/metrics", nil)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				tb.Fatalf("%s: %v", line, err)
			}
			return v, true
		}
	}
	return 0, false
}

// wantMetric fails the test unless series has value want at u.
func wantMetric(tb testing.TB, u, series string, want float64) {
	tb.Helper()
	if got, ok := metric(tb, u, series); !ok || got != want {
		tb.Fatalf("%s = %v (present: %v), want %v", series, got, ok, want)
	}
}

// wantState fails the test unless walship_node_state is 1 for state and
// 0 for every other.
func wantState(tb testing.TB, u, state string) {
	tb.Helper()
	for _, st := range []string{"streaming", "catching_up", "disconnected", "diverged", "stalled", "bootstrapping",
		"master", "halted", "fenced", "disk_low"} {
		want := 0.0
		if st == state {
			want = 1
		}
		wantMetric(tb, u, `walship_node_state{state="`+st+`"}`, want)
	}
}

const readyBody = "[+]node ok\n[+]leader ok\n[+]store ok\n"

// A slave whose master went away answers /readyz 503 once it has not
// heard from it within ReadyHeard, naming the master and why; ?noleader
// still answers 200, /status says it is not ready, and /metrics says it
// is disconnected.
func TestReadyzSlaveMasterGone(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	mustExec(t, mc, "CREATE TABLE t (v)")
	const bound = time.Second
	ssrv, _ := mustRunSlave(t, msrv.URL(), "s1", func(s *api.Server) { s.ReadyHeard = bound })
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	waitFor(t, "the slave to be ready", func() bool {
		status, body := readyz(t, ssrv.URL(), "")
		return status == http.StatusOK && body == readyBody
	})
	wantState(t, ssrv.URL(), "streaming")
	if _, ok := metric(t, ssrv.URL(), "walship_master_can_write"); ok {
		t.Fatal("a slave reports walship_master_can_write")
	}
	wantState(t, msrv.URL(), "master")
	wantMetric(t, msrv.URL(), "walship_master_can_write", 1)
	if status, body := readyz(t, msrv.URL(), ""); status != http.StatusOK || body != readyBody {
		t.Fatalf("master /readyz: %d %q, want 200 %q", status, body, readyBody)
	}

	if err := msrv.Close(); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	var status int
	var body string
	waitFor(t, "the slave to say it is not ready", func() bool {
		status, body = readyz(t, ssrv.URL(), "")
		return status != http.StatusOK
	})
	took := time.Since(gone)
	t.Logf("503 %s after the master went away:\n%s", took.Round(time.Millisecond), body)
	if took > bound+time.Second {
		t.Errorf("503 came %s after the master went away, the bound is %s", took, bound)
	}
	if status != http.StatusServiceUnavailable || !strings.HasPrefix(body, "[+]node ok\n[-]leader not contactable: ") ||
		!strings.Contains(body, msrv.URL()) || !strings.Contains(body, "last caught up") {
		t.Fatalf("got %d %q, want 503 [-]leader not contactable naming the master and when it was last caught up", status, body)
	}
	if status, body := readyz(t, ssrv.URL(), "?noleader"); status != http.StatusOK || body != "[+]node ok\n" {
		t.Fatalf("?noleader: %d %q, want 200 [+]node ok", status, body)
	}
	_, _, st := do(t, http.MethodGet, ssrv.URL()+"/status", nil)
	var s struct {
		Store struct {
			Ready *bool `json:"ready"`
		} `json:"store"`
	}
	if err := json.Unmarshal(st, &s); err != nil || s.Store.Ready == nil || *s.Store.Ready {
		t.Fatalf("/status store.ready: %s, want false", st)
	}
	waitFor(t, "the slave's state to be disconnected", func() bool {
		v, _ := metric(t, ssrv.URL(), `walship_node_state{state="disconnected"}`)
		return v == 1
	})
	wantState(t, ssrv.URL(), "disconnected")
}

// A slave that never reached its master is not ready, and says why.
func TestReadyzSlaveNeverHeard(t *testing.T) {
	nowhere := "http://" + freeAddr(t)
	ssrv, _ := mustRunSlave(t, nowhere, "orphan")
	var status int
	var body string
	waitFor(t, "the slave to say why it is not ready", func() bool {
		status, body = readyz(t, ssrv.URL(), "")
		return strings.Contains(body, "connection refused")
	})
	if want := "[+]node ok\n[-]leader not contacted yet: the master " + nowhere + " does not answer: "; status != http.StatusServiceUnavailable ||
		!strings.HasPrefix(body, want) || !strings.HasSuffix(body, "\n[+]store ok\n") {
		t.Fatalf("got %d %q, want 503 %q…", status, body, want)
	}
	if status, body := readyz(t, ssrv.URL(), "?noleader"); status != http.StatusOK || body != "[+]node ok\n" {
		t.Fatalf("?noleader: %d %q", status, body)
	}
	wantState(t, ssrv.URL(), "disconnected")
}

// gatedFeed is a real proxy in front of a master that lets through the
// first feed answer, each of at most five entries, and holds the next
// ones until release is closed: a slave behind it stays behind.
func gatedFeed(t *testing.T, masterURL string, release <-chan struct{}) string {
	t.Helper()
	target, err := url.Parse(masterURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // the slave's requests cut at its close
	var feeds atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/log/entries" {
			q := r.URL.Query()
			q.Set(client.FeedMax, "5")
			r.URL.RawQuery = q.Encode()
			if feeds.Add(1) > 1 {
				select {
				case <-release:
				case <-r.Context().Done():
					http.Error(w, "held", http.StatusBadGateway)
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A slave more than ReadyLag entries behind its master answers /readyz 503
// with how far behind it is, and 200 once it caught up.
func TestReadyzSlaveBehind(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	mustExec(t, mc, "CREATE TABLE t (v)")
	for i := range 40 {
		mustExec(t, mc, "INSERT INTO t VALUES (?)", i)
	}
	last := msrv.Master.Log().LastIndex()
	release := make(chan struct{})
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	feed := gatedFeed(t, msrv.URL(), release)
	ssrv, sc := mustRunSlave(t, feed, "behind", func(s *api.Server) { s.ReadyLag = 10 })
	waitApplied(t, ssrv, 5)
	status, body := readyz(t, ssrv.URL(), "")
	want := fmt.Sprintf("[-]store %d entries behind the master (applied 5 of %d; ready within 10)\n", last-5, last)
	if status != http.StatusServiceUnavailable || !strings.HasSuffix(body, want) {
		t.Fatalf("a slave 5 entries in of %d: %d %q, want 503 ending %q", last, status, body, want)
	}
	if got := ssrv.Slave.DB().AppliedIndex(); got != 5 {
		t.Fatalf("the slave applied %d entries past the gate", got)
	}
	wantState(t, ssrv.URL(), "catching_up")
	wantMetric(t, ssrv.URL(), "walship_lag_entries", float64(last-5))
	close(release)
	released = true
	waitFor(t, "the slave to be ready once caught up", func() bool {
		status, body := readyz(t, ssrv.URL(), "")
		return status == http.StatusOK && body == readyBody
	})
	if got := dump(t, sc, "SELECT count(*) FROM t"); got != "[[40]]" {
		t.Fatalf("the ready slave holds %s rows, want 40", got)
	}
}

// A master that cannot write answers /readyz 503 naming why: fenced, not
// holding the failover lease (leader checks, which ?noleader skips),
// halted, disk low, its last log append failed (store checks); /metrics
// says its state and walship_master_can_write 0.
func TestReadyzMasterCannotWrite(t *testing.T) {
	t.Run("fenced", func(t *testing.T) {
		srv, c := mustRunMaster(t)
		mustExec(t, c, "CREATE TABLE t (v)")
		if _, err := srv.Master.Fence(context.Background(), srv.Master.Log().Epoch()+1); err != nil {
			t.Fatal(err)
		}
		wantUnready(t, srv.URL(), "[+]node ok\n[-]leader fenced: a master of a higher epoch replaced this one", "[+]store ok\n")
		if status, body := readyz(t, srv.URL(), "?noleader"); status != http.StatusOK || body != "[+]node ok\n[+]store ok\n" {
			t.Fatalf("?noleader: %d %q, want 200 without the leader check", status, body)
		}
		wantState(t, srv.URL(), "fenced")
		wantMetric(t, srv.URL(), "walship_master_can_write", 0)
	})
	t.Run("not leading", func(t *testing.T) {
		var leads atomic.Bool
		leads.Store(true)
		srv, c := mustRunMasterConfig(t, master.Config{Gate: func() error {
			if !leads.Load() {
				return errors.New("etcd unreachable")
			}
			return nil
		}})
		mustExec(t, c, "CREATE TABLE t (v)")
		leads.Store(false)
		wantUnready(t, srv.URL(), "[-]leader "+master.ErrNotLeading.Error()+": etcd unreachable\n", "[+]store ok\n")
		wantMetric(t, srv.URL(), "walship_master_can_write", 0)
		if status, _ := readyz(t, srv.URL(), "?noleader"); status != http.StatusOK {
			t.Fatalf("?noleader: %d, want 200", status)
		}
		leads.Store(true)
		if status, body := readyz(t, srv.URL(), ""); status != http.StatusOK || body != readyBody {
			t.Fatalf("leading again: %d %q", status, body)
		}
	})
	t.Run("halted", func(t *testing.T) {
		dir := t.TempDir()
		lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := lg.Append([]*wal.Entry{{Index: 1, Epoch: lg.Epoch(), Time: 1, Txn: true,
			Statements: []wal.Statement{{SQL: "INSERT INTO nosuch VALUES (1)"}}}}); err != nil {
			t.Fatal(err)
		}
		if err := lg.Close(); err != nil {
			t.Fatal(err)
		}
		srv, _ := mustRunMasterIn(t, dir, wal.Options{NoSync: true}, master.Config{})
		body := wantUnready(t, srv.URL(), "[+]leader ok\n[-]store writes are stopped: ", "no such table: nosuch\n")
		if !strings.Contains(body, "entry 1") {
			t.Fatalf("the reason does not name the entry: %q", body)
		}
		if status, _ := readyz(t, srv.URL(), "?noleader"); status != http.StatusServiceUnavailable {
			t.Fatalf("?noleader on a halted master: %d, want 503 (the store check stays)", status)
		}
		wantState(t, srv.URL(), "halted")
		wantMetric(t, srv.URL(), "walship_master_can_write", 0)
	})
	t.Run("disk low", func(t *testing.T) {
		srv, c := mustRunMasterConfig(t, master.Config{MinFreeBytes: 1 << 62})
		if _, err := c.Exec(context.Background(), "CREATE TABLE t (v)"); err == nil {
			t.Fatal("a write was taken below --min-free-space")
		}
		wantUnready(t, srv.URL(), "[+]leader ok\n[-]store disk almost full: writes are refused: ", "below 4611686018427387904\n")
		wantState(t, srv.URL(), "disk_low")
		wantMetric(t, srv.URL(), "walship_master_can_write", 0)
	})
	t.Run("append fails", func(t *testing.T) {
		var failing atomic.Bool
		boom := errors.New("injected: I/O error")
		srv, c := mustRunMasterIn(t, t.TempDir(), wal.Options{NoSync: true, BeforeCommit: func([]*wal.Entry) error {
			if failing.Load() {
				return boom
			}
			return nil
		}}, master.Config{})
		mustExec(t, c, "CREATE TABLE t (v)")
		wantMetric(t, srv.URL(), "walship_log_append_failures_total", 0)
		failing.Store(true)
		for range 3 {
			status, body := post(t, srv.URL(), seedJSON(t, "exec", "INSERT INTO t VALUES (1)"))
			if status != http.StatusServiceUnavailable || !strings.Contains(string(body), boom.Error()) {
				t.Fatalf("a write whose append fails: %d %s", status, body)
			}
		}
		body := wantUnready(t, srv.URL(), "[+]leader ok\n[-]store the last log append (", boom.Error()+"\n")
		if !strings.Contains(body, "failed: "+master.ErrAppend.Error()) {
			t.Fatalf("the reason does not say the append failed: %q", body)
		}
		wantState(t, srv.URL(), "master")
		wantMetric(t, srv.URL(), "walship_master_can_write", 0)
		wantMetric(t, srv.URL(), "walship_log_append_failures_total", 3)
		failing.Store(false)
		mustExec(t, c, "INSERT INTO t VALUES (2)")
		if status, body := readyz(t, srv.URL(), ""); status != http.StatusOK || body != readyBody {
			t.Fatalf("appends work again: %d %q", status, body)
		}
		wantMetric(t, srv.URL(), "walship_master_can_write", 1)
	})
}

// wantUnready fails the test unless the node at u answers /readyz 503
// with a body that starts with prefix and ends with suffix; it returns the
// body.
func wantUnready(tb testing.TB, u, prefix, suffix string) string {
	tb.Helper()
	status, body := readyz(tb, u, "")
	if !strings.HasPrefix(prefix, "[+]node ok\n") {
		prefix = "[+]node ok\n" + prefix
	}
	if status != http.StatusServiceUnavailable || !strings.HasPrefix(body, prefix) || !strings.HasSuffix(body, suffix) {
		tb.Fatalf("/readyz: %d %q, want 503 %q … %q", status, body, prefix, suffix)
	}
	return body
}

// The feed's failed requests are counted; a read of /readyz does not
// count as one.
func TestFeedFailuresCounted(t *testing.T) {
	srv, _ := mustRunMaster(t)
	wantMetric(t, srv.URL(), "walship_feed_failures_total", 0)
	for _, q := range []string{"from=0", "from=x", "from=1&max=0"} {
		status, _, body := do(t, http.MethodGet, srv.URL()+"/log/entries?"+q, nil)
		if status != http.StatusBadRequest {
			t.Fatalf("feed ?%s: %d %s", q, status, body)
		}
	}
	status, _, _ := do(t, http.MethodGet, srv.URL()+"/log/entries?from=1&wait=0s", nil)
	if status != http.StatusOK {
		t.Fatalf("a good feed request: %d", status)
	}
	wantMetric(t, srv.URL(), "walship_feed_failures_total", 3)
	// The hook of failed applies counts what it is given.
	srv.Metrics.ObserveApplyFailure(io.ErrUnexpectedEOF)
	wantMetric(t, srv.URL(), "walship_apply_failures_total", 1)
}
