package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/walship/walship/master"
)

// A read token (min_index, the index a write was answered with) makes a
// read at a slave wait until the slave applied that write: the reader sees
// its own writes on any node. A token the node does not reach in time is
// a 504 that says where the node stands; a malformed one is a 400.
func TestReadToken(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{})
	mustExec(t, mc, "CREATE TABLE t (v)")
	sl, _ := mustRunSlave(t, srv.URL(), "s1")
	for i := range 20 {
		resp := mustExec(t, mc, "INSERT INTO t VALUES (?)", i)
		// At once, through the rqlite API and through POST /.
		q := url.Values{"q": {"SELECT count(*) FROM t"}, "min_index": {fmt.Sprint(resp.Index)}}
		status, _, body := do(t, http.MethodGet, sl.URL()+"/db/query?"+q.Encode(), nil)
		if status != 200 || !strings.Contains(string(body), fmt.Sprintf("[[%d]]", i+1)) {
			t.Fatalf("read with token %d at the slave: %d %s", resp.Index, status, body)
		}
		seed, _ := json.Marshal(map[string]any{"command": "query", "query": "SELECT count(*) FROM t", "min_index": resp.Index})
		status, body = post(t, sl.URL(), seed)
		if status != 200 || !strings.Contains(string(body), fmt.Sprintf("[[%d]]", i+1)) {
			t.Fatalf("seed read with token %d at the slave: %d %s", resp.Index, status, body)
		}
	}
	for _, node := range []string{sl.URL(), srv.URL()} {
		status, _, body := do(t, http.MethodGet, node+"/db/query?q=SELECT+1&min_index=100000&timeout=100ms", nil)
		if status != http.StatusGatewayTimeout || !strings.Contains(string(body), "has applied 21, not 100000") {
			t.Fatalf("a token not reached at %s: %d %s", node, status, body)
		}
	}
	if status, _, _ := do(t, http.MethodGet, sl.URL()+"/db/query?q=SELECT+1&min_index=x", nil); status != 400 {
		t.Fatalf("a malformed token: %d", status)
	}
}
