package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
)

// A write with a write concern (w=N&applied) is answered once N slaves
// have applied it: right after the answer, a read at each of them sees
// it. Asking more slaves than there are is answered 200 when the wait
// runs out, the write committed, the shortfall said in the body and a
// header and counted in /metrics. Plain w=N (durably received, which needs
// slaves that keep the log) is refused.
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
	for _, q := range []string{"?w=2", "?w=x&applied", "?w=-1&applied"} {
		if status, _, _ := do(t, http.MethodPost, srv.URL()+"/db/execute"+q, []byte(`["INSERT INTO t VALUES (9)"]`)); status != 400 {
			t.Fatalf("%s: %d", q, status)
		}
	}
	if status, body := post(t, srv.URL(), []byte(`{"command":"exec","query":"INSERT INTO t VALUES (9)","w":2}`)); status != 400 || !strings.Contains(string(body), "applied") {
		t.Fatalf("seed w=2 without applied: %d %s", status, body)
	}
}
