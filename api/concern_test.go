package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
)

// A write with a write concern (w=N&applied) is answered once N slaves
// have applied it: right after the answer, a read at each of them sees
// it. Asking more slaves than there are is answered 200 when the wait
// runs out, the write committed, the shortfall said in the body and a
// header and counted in /metrics. applied without w, and w that is not a
// count, are refused.
func TestWriteConcernApplied(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{})
	mustExec(t, mc, "CREATE TABLE t (v)")
	s1, _ := mustRunSlave(t, srv.URL(), "s1")
	s2, _ := mustRunSlave(t, srv.URL(), "s2")
	waitApplied(t, s1, 1)
	waitApplied(t, s2, 1)
	for i := range 10 {
		status, h, body := do(t, http.MethodPost, srv.URL()+"/db/execute?w=2&applied", []byte(`["INSERT INTO t VALUES (1)"]`))
		var resp struct {
			Replicas *client.Replicas `json:"replicas"`
		}
		if err := json.Unmarshal(body, &resp); status != 200 || err != nil || resp.Replicas == nil || resp.Replicas.Applied != 2 || h.Get("X-Walship-Replicas") != "2" {
			t.Fatalf("w=2&applied: %d %v %s", status, h, body)
		}
		index := uint64(i + 2)
		if a1, a2 := s1.Slave.DB().AppliedIndex(), s2.Slave.DB().AppliedIndex(); a1 < index || a2 < index {
			t.Fatalf("answered before both slaves applied %d: %d, %d", index, a1, a2)
		}
	}
	// Through a slave (forwarded) and the seed's POST /.
	status, _, body := do(t, http.MethodPost, s1.URL()+"/db/execute?w=2&applied", []byte(`["INSERT INTO t VALUES (2)"]`))
	if status != 200 || !strings.Contains(string(body), `"replicas":{"wanted":2,"applied":2}`) {
		t.Fatalf("w=2&applied through a slave: %d %s", status, body)
	}
	status, body = post(t, srv.URL(), []byte(`{"command":"exec","query":"INSERT INTO t VALUES (3)","w":2,"applied":true}`))
	if status != 200 || !strings.Contains(string(body), `"replicas":{"wanted":2,"applied":2}`) {
		t.Fatalf("seed w=2: %d %s", status, body)
	}
	// More than there are: committed, the shortfall said and counted.
	status, h, body := do(t, http.MethodPost, srv.URL()+"/db/execute?w=3&applied&timeout=200ms", []byte(`["INSERT INTO t VALUES (4)"]`))
	if status != 200 || h.Get("X-Walship-Replicas") != "2" || !strings.Contains(string(body), `"shortfall":"committed, but 2 of the 3`) {
		t.Fatalf("w=3 with 2 slaves: %d %v %s", status, h, body)
	}
	if got := dump(t, mc, "SELECT count(*) FROM t WHERE v = 4"); !strings.Contains(got, "[1]") {
		t.Fatalf("the write that fell short is not committed: %s", got)
	}
	_, _, metrics := do(t, http.MethodGet, srv.URL()+"/metrics", nil)
	if !strings.Contains(string(metrics), "walship_write_concern_shortfalls_total 1") {
		t.Fatal("the shortfall is not counted in /metrics")
	}
	for _, q := range []string{"?applied", "?w=x&applied", "?w=-1&applied", "?w=1.5"} {
		if status, _, _ := do(t, http.MethodPost, srv.URL()+"/db/execute"+q, []byte(`["INSERT INTO t VALUES (9)"]`)); status != 400 {
			t.Fatalf("%s: %d", q, status)
		}
	}
	if status, body := post(t, srv.URL(), []byte(`{"command":"exec","query":"INSERT INTO t VALUES (9)","applied":true}`)); status != 400 || !strings.Contains(string(body), "needs w") {
		t.Fatalf("seed applied without w: %d %s", status, body)
	}
}

// Plain w=N is answered once N slaves hold the write fsynced in their own
// log: right after the answer, each slave's log has it. The master's
// default (--min-replicas) applies to writes that name no w, and w=0
// opts out of it.
func TestWriteConcernReceived(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, func(s *api.Server) { s.MinReplicas = 2 })
	s1, _ := mustRunSlave(t, srv.URL(), "s1")
	s2, _ := mustRunSlave(t, srv.URL(), "s2")
	mustExec(t, mc, "CREATE TABLE t (v)")
	for i, q := range []string{"?w=2", "", "?w=1"} {
		status, h, body := do(t, http.MethodPost, srv.URL()+"/db/execute"+q, []byte(`["INSERT INTO t VALUES (1)"]`))
		var resp struct {
			Results  []struct{}       `json:"results"`
			Replicas *client.Replicas `json:"replicas"`
		}
		want := 2
		if q == "?w=1" {
			want = 1
		}
		if err := json.Unmarshal(body, &resp); status != 200 || err != nil || resp.Replicas == nil || resp.Replicas.Received != want ||
			resp.Replicas.Shortfall != "" || h.Get("X-Walship-Replicas") != strconv.Itoa(want) {
			t.Fatalf("%q: %d %v %s", q, status, h, body)
		}
		index := uint64(i + 2)
		held := 0
		for _, s := range []*api.Server{s1, s2} {
			if s.Slave.Log().LastIndex() >= index {
				held++
			}
		}
		if held < want {
			t.Fatalf("%q: answered when %d slave logs held %d, want %d", q, held, index, want)
		}
	}
	// w=0 does not wait, even for the default, and says nothing.
	status, h, body := do(t, http.MethodPost, srv.URL()+"/db/execute?w=0", []byte(`["INSERT INTO t VALUES (2)"]`))
	if status != 200 || h.Get("X-Walship-Replicas") != "" || strings.Contains(string(body), "replicas") {
		t.Fatalf("w=0: %d %v %s", status, h, body)
	}
	// The seed's POST / takes the same concern, and says the default's.
	status, body = post(t, srv.URL(), []byte(`{"command":"exec","query":"INSERT INTO t VALUES (3)"}`))
	if status != 200 || !strings.Contains(string(body), `"replicas":{"wanted":2,"received":2}`) {
		t.Fatalf("seed with the default concern: %d %s", status, body)
	}
}

// With ReadReplicas, a strong read at the master is answered only once a
// slave holds every write it may have seen: without one, 503 (a failover
// could lose those writes); with one, the read's answer. Reads at other
// levels are not held.
func TestStrongReadWaitsForReplicas(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, func(s *api.Server) { s.ReadReplicas = 1 })
	mustExec(t, mc, "CREATE TABLE t (v)")
	mustExec(t, mc, "INSERT INTO t VALUES (7)")
	q := "/db/query?q=" + url.QueryEscape("SELECT v FROM t")
	status, _, body := do(t, http.MethodGet, srv.URL()+q+"&level=strong&timeout=200ms", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "not replicated yet") {
		t.Fatalf("strong read with no slave: %d %s", status, body)
	}
	if status, _, body := do(t, http.MethodGet, srv.URL()+q+"&level=weak", nil); status != 200 || !strings.Contains(string(body), "[7]") {
		t.Fatalf("weak read: %d %s", status, body)
	}
	s1, _ := mustRunSlave(t, srv.URL(), "s1")
	waitApplied(t, s1, 2)
	status, _, body = do(t, http.MethodGet, srv.URL()+q+"&level=strong&timeout=5s", nil)
	if status != 200 || !strings.Contains(string(body), "[7]") {
		t.Fatalf("strong read with a slave holding the write: %d %s", status, body)
	}
}
