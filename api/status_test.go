package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// /status and /log/status indent their JSON by four spaces with ?pretty
// (as rqlite), and answer one line without; both hold the same object.
func TestStatusPretty(t *testing.T) {
	srv, c := mustRunMaster(t)
	mustExec(t, c, "CREATE TABLE t (v)")
	for _, path := range []string{"/status", "/log/status"} {
		status, h, plain := do(t, http.MethodGet, srv.URL()+path, nil)
		if status != http.StatusOK || bytes.Count(plain, []byte("\n")) != 1 {
			t.Fatalf("%s: %d, want 200 and one line: %s", path, status, plain)
		}
		if ct := h.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Fatalf("%s: Content-Type %q", path, ct)
		}
		status, _, pretty := do(t, http.MethodGet, srv.URL()+path+"?pretty", nil)
		if status != http.StatusOK || !strings.HasPrefix(string(pretty), "{\n    \"") {
			t.Fatalf("%s?pretty: %d, want 200 and four-space indented JSON: %s", path, status, pretty)
		}
		var a, b map[string]any
		if err := json.Unmarshal(plain, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(pretty, &b); err != nil {
			t.Fatalf("%s?pretty is not JSON: %v", path, err)
		}
		var ca, cb bytes.Buffer
		if err := json.Compact(&ca, plain); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&cb, pretty); err != nil {
			t.Fatal(err)
		}
		if path == "/log/status" && ca.String() != cb.String() {
			t.Fatalf("%s: ?pretty holds another object:\n%s\n%s", path, ca.String(), cb.String())
		}
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%s: keys %d plain, %d pretty", path, len(a), len(b))
		}
	}
}
