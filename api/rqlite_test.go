package api_test

// Conformance tests of the rqlite-compatible HTTP API (/db/execute,
// /db/query, /db/request, /status, /nodes, /readyz) against
// rqlite's HTTP API as its clients use it: exact response bytes (§1.3), parse errors
// (§1.2), status codes (§1.6), flags (§1.1), queued writes (§1.4) and a
// slave's forwarding, redirects and read levels (§1.5).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/master"
)

// rqResp is one answer of the rqlite API: status, headers and the exact
// body bytes, and the request that produced it (for messages).
type rqResp struct {
	Req    string
	Status int
	Header http.Header
	Body   string
}

// rqHTTP never follows redirects, so a 301 is seen as it is.
var rqHTTP = &http.Client{
	Timeout:       waitTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// rqCall sends one request. ctype "" sends no Content-Type.
func rqCall(tb testing.TB, method, url, ctype, body string) rqResp {
	tb.Helper()
	var r io.Reader
	if body != "" || method == http.MethodPost {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		tb.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := rqHTTP.Do(req)
	if err != nil {
		tb.Fatalf("%s %s %s: %v", method, url, body, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return rqResp{Req: method + " " + url + " " + body, Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// rqPost sends a JSON body with POST.
func rqPost(tb testing.TB, url, body string) rqResp {
	tb.Helper()
	return rqCall(tb, http.MethodPost, url, "application/json", body)
}

// rqGet sends a GET without a body.
func rqGet(tb testing.TB, url string) rqResp {
	tb.Helper()
	return rqCall(tb, http.MethodGet, url, "", "")
}

// body returns the body without one trailing newline: the exact-bytes
// comparisons ignore it, TestRqliteNoTrailingNewline checks it.
func (r rqResp) body() string { return strings.TrimSuffix(r.Body, "\n") }

// rqWant fails the test (and goes on) unless r is status with exactly
// the body want.
func rqWant(tb testing.TB, r rqResp, status int, want string) bool {
	tb.Helper()
	if r.Status != status || r.body() != want {
		tb.Errorf("%s\n got %d %s\nwant %d %s", r.Req, r.Status, r.Body, status, want)
		return false
	}
	return true
}

// rqOK is rqWant with status 200.
func rqOK(tb testing.TB, r rqResp, want string) bool {
	tb.Helper()
	return rqWant(tb, r, http.StatusOK, want)
}

// rqMatch fails the test unless r is 200 and its body matches re.
func rqMatch(tb testing.TB, r rqResp, re string) []string {
	tb.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(r.body())
	if r.Status != http.StatusOK || m == nil {
		tb.Errorf("%s\n got %d %s\nwant 200 matching %s", r.Req, r.Status, r.Body, re)
	}
	return m
}

// rqTop is the decoded top level of a /db/* answer; each result keeps
// its raw keys.
type rqTop struct {
	Results        []map[string]json.RawMessage `json:"results"`
	Error          string                       `json:"error"`
	Time           float64                      `json:"time"`
	SequenceNumber int64                        `json:"sequence_number"`
	RaftIndex      uint64                       `json:"raft_index"`
	keys           map[string]json.RawMessage
}

// rqDecode decodes a 200 /db/* answer, failing the test when it is not
// one.
func rqDecode(tb testing.TB, r rqResp) rqTop {
	tb.Helper()
	if r.Status != http.StatusOK {
		tb.Fatalf("%s\n got %d %s, want 200", r.Req, r.Status, r.Body)
	}
	var top rqTop
	if err := json.Unmarshal([]byte(r.Body), &top); err != nil {
		tb.Fatalf("%s: decode %s: %v", r.Req, r.Body, err)
	}
	if err := json.Unmarshal([]byte(r.Body), &top.keys); err != nil {
		tb.Fatalf("%s: decode %s: %v", r.Req, r.Body, err)
	}
	if _, ok := top.keys["results"]; !ok {
		tb.Errorf("%s: no \"results\" key in %s", r.Req, r.Body)
	}
	return top
}

// resultError returns the "error" of one result, "" when it has none.
func resultError(tb testing.TB, res map[string]json.RawMessage) string {
	tb.Helper()
	raw, ok := res["error"]
	if !ok {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		tb.Fatalf("result error %s is not a string", raw)
	}
	return s
}

// rqCount returns the single integer a query answers on the node at url,
// read locally (level=none).
func rqCount(tb testing.TB, url, sql string) int64 {
	tb.Helper()
	b, err := json.Marshal([]string{sql})
	if err != nil {
		tb.Fatal(err)
	}
	r := rqPost(tb, url+"/db/query?level=none", string(b))
	var top struct {
		Results []struct {
			Values [][]json.Number `json:"values"`
			Error  string          `json:"error"`
		} `json:"results"`
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &top) != nil ||
		len(top.Results) != 1 || len(top.Results[0].Values) != 1 || len(top.Results[0].Values[0]) != 1 {
		tb.Fatalf("%s: got %d %s, want one integer", r.Req, r.Status, r.Body)
	}
	n, err := top.Results[0].Values[0][0].Int64()
	if err != nil {
		tb.Fatalf("%s: %s: %v", r.Req, r.Body, err)
	}
	return n
}

// rqNotServed fails the test when r is a successful answer: a read or a
// write that a slave could not hand to its master must be a non-200
// status, or a 200 that carries only errors (a top-level "error", or an
// error in every result), never rows or write results.
func rqNotServed(tb testing.TB, r rqResp) {
	tb.Helper()
	if r.Status != http.StatusOK {
		return
	}
	var top rqTop
	if err := json.Unmarshal([]byte(r.Body), &top); err != nil {
		tb.Errorf("%s: 200 with a body that is not JSON: %s", r.Req, r.Body)
		return
	}
	if top.Error != "" && len(top.Results) == 0 {
		return
	}
	for _, res := range top.Results {
		if resultError(tb, res) == "" {
			tb.Errorf("%s: answered as served: 200 %s", r.Req, r.Body)
			return
		}
	}
	if len(top.Results) == 0 {
		tb.Errorf("%s: 200 without results or error: %s", r.Req, r.Body)
	}
}

// indent4 is what ?pretty answers for the compact JSON s.
func indent4(tb testing.TB, s string) string {
	tb.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "    "); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// errV2 is the "error_v2" member rqlite 10.6 and later add beside
// "error": the message (JSON-escaped as given) and SQLite's codes.
func errV2(msg string, code, extended int) string {
	return fmt.Sprintf(`,"error_v2":{"message":"%s","sqlite":{"code":%d,"extended_code":%d}}`, msg, code, extended)
}

// floatRE matches a Go-formatted positive float64 (a time in seconds).
const floatRE = `[0-9]+(\.[0-9]+)?(e-[0-9]+)?`

// Every row of RQLITE_API.md §1.3, byte for byte, in order on one master.
func TestRqliteExactJSON(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	for _, tc := range []struct {
		path, body, want string
	}{
		{"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`, `{"results":[{}]}`},
		{"/db/execute", `["INSERT INTO foo(name) VALUES('fiona')"]`, `{"results":[{"last_insert_id":1,"rows_affected":1}]}`},
		{"/db/execute", `["INSERT INTO bar(name) VALUES('fiona')"]`, `{"results":[{"error":"no such table: bar"` + errV2("no such table: bar", 1, 1) + `}]}`},
		{"/db/execute", `["blah"]`, `{"results":[{"error":"near \"blah\": syntax error"` + errV2(`near \"blah\": syntax error`, 1, 1) + `}]}`},
		{"/db/execute", `[["INSERT INTO foo(name) VALUES(?)", "declan"]]`, `{"results":[{"last_insert_id":2,"rows_affected":1}]}`},
		{"/db/query", `["SELECT * FROM foo"]`, `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"],[2,"declan"]]}]}`},
		// A one-element array is a statement without parameters.
		{"/db/query", `[["SELECT * FROM foo"]]`, `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"],[2,"declan"]]}]}`},
		{"/db/query", `["SELECT * FROM foo WHERE id > 100"]`, `{"results":[{"columns":["id","name"],"types":["integer","text"]}]}`},
		{"/db/query?associative", `["SELECT * FROM foo"]`, `{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":"fiona"},{"id":2,"name":"declan"}]}]}`},
		{"/db/query?associative", `["SELECT name FROM foo WHERE id > 100"]`, `{"results":[{"types":{"name":"text"},"rows":[]}]}`},
		{"/db/query", `[["SELECT name FROM foo WHERE id = ?", 1], "SELECT id FROM foo WHERE name = 'declan'"]`,
			`{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]},{"columns":["id"],"types":["integer"],"values":[[2]]}]}`},
		{"/db/query", `["SELECT * FROM nope"]`, `{"results":[{"error":"no such table: nope"` + errV2("no such table: nope", 1, 1) + `}]}`},
		{"/db/execute?associative", `["INSERT INTO foo(id, name) VALUES(99, 'zed')"]`, `{"results":[{"last_insert_id":99,"rows_affected":1,"rows":null}]}`},
		{"/db/execute", `["INSERT INTO foo(id, name) VALUES(3, 'eve') RETURNING *"]`, `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[3,"eve"]]}]}`},
		{"/db/execute?associative", `["INSERT INTO foo(id, name) VALUES(4, 'fay') RETURNING id, name"]`, `{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":4,"name":"fay"}]}]}`},
		{"/db/execute", `["UPDATE foo SET name = 'Fiona' WHERE id = 1 RETURNING name"]`, `{"results":[{"columns":["name"],"types":["text"],"values":[["Fiona"]]}]}`},
		{"/db/execute", `["DELETE FROM foo WHERE id > 90"]`, `{"results":[{"rows_affected":1}]}`},
		// walship's own answer: the DROP carries nothing over from the
		// INSERT before it, in another request or in the same one.
		{"/db/execute", `["CREATE TABLE tmp (x)"]`, `{"results":[{}]}`},
		{"/db/execute", `["INSERT INTO tmp VALUES (1)"]`, `{"results":[{"last_insert_id":1,"rows_affected":1}]}`},
		{"/db/execute", `["DROP TABLE tmp"]`, `{"results":[{}]}`},
		{"/db/execute", `["CREATE TABLE tmp (x)", "INSERT INTO tmp VALUES (1)", "DROP TABLE tmp"]`, `{"results":[{},{"last_insert_id":1,"rows_affected":1},{}]}`},
		// <, > and & are not escaped.
		{"/db/execute", `["INSERT INTO foo(id, name) VALUES(5, 'a<b>&c')"]`, `{"results":[{"last_insert_id":5,"rows_affected":1}]}`},
		{"/db/query", `["SELECT name FROM foo WHERE id = 5"]`, `{"results":[{"columns":["name"],"types":["text"],"values":[["a<b>&c"]]}]}`},
		{"/db/query", `["SELECT name AS \"<x>\" FROM foo WHERE id = 5"]`, `{"results":[{"columns":["<x>"],"types":["text"],"values":[["a<b>&c"]]}]}`},
		// The unified endpoint: each statement a write result or rows.
		{"/db/request", `["INSERT INTO foo(id, name) VALUES(6, 'gus')", "SELECT id, name FROM foo WHERE id >= 5"]`,
			`{"results":[{"last_insert_id":6,"rows_affected":1},{"columns":["id","name"],"types":["integer","text"],"values":[[5,"a<b>&c"],[6,"gus"]]}]}`},
		{"/db/request?associative", `["INSERT INTO foo(id, name) VALUES(7, 'hal')", "SELECT name FROM foo WHERE id = 7"]`,
			`{"results":[{"last_insert_id":7,"rows_affected":1,"rows":null},{"types":{"name":"text"},"rows":[{"name":"hal"}]}]}`},
		{"/db/request", `["SELECT * FROM nope", "INSERT INTO nope VALUES (1)"]`, `{"results":[{"error":"no such table: nope"` + errV2("no such table: nope", 1, 1) + `},{"error":"no such table: nope"` + errV2("no such table: nope", 1, 1) + `}]}`},
	} {
		rqOK(t, rqPost(t, u+tc.path, tc.body), tc.want)
	}
}

// ?timings adds "time" to every result and to the top level.
func TestRqliteTimings(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`), `{"results":[{}]}`)
	rqMatch(t, rqPost(t, u+"/db/execute?timings", `["INSERT INTO foo(name) VALUES('fiona')"]`),
		`^\{"results":\[\{"last_insert_id":1,"rows_affected":1,"time":`+floatRE+`\}\],"time":`+floatRE+`\}$`)
	rqMatch(t, rqPost(t, u+"/db/query?timings", `["SELECT * FROM foo"]`),
		`^\{"results":\[\{"columns":\["id","name"\],"types":\["integer","text"\],"values":\[\[1,"fiona"\]\],"time":`+floatRE+`\}\],"time":`+floatRE+`\}$`)
	rqMatch(t, rqPost(t, u+"/db/query?timings&associative", `["SELECT name FROM foo"]`),
		`^\{"results":\[\{"types":\{"name":"text"\},"rows":\[\{"name":"fiona"\}\],"time":`+floatRE+`\}\],"time":`+floatRE+`\}$`)
	rqMatch(t, rqPost(t, u+"/db/request?timings", `["SELECT name FROM foo", "INSERT INTO nope VALUES (1)"]`),
		`^\{"results":\[\{"columns":\["name"\],"types":\["text"\],"values":\[\["fiona"\]\],"time":`+floatRE+`\},\{"error":"no such table: nope","error_v2":\{"message":"no such table: nope","sqlite":\{"code":1,"extended_code":1\}\}(,"time":`+floatRE+`)?\}\],"time":`+floatRE+`\}$`)
	// Flags are present-means-true, whatever their value.
	rqMatch(t, rqPost(t, u+"/db/query?timings=false", `["SELECT name FROM foo"]`),
		`^\{"results":\[\{"columns":\["name"\],"types":\["text"\],"values":\[\["fiona"\]\],"time":`+floatRE+`\}\],"time":`+floatRE+`\}$`)
	rqOK(t, rqPost(t, u+"/db/query?associative=0", `["SELECT name FROM foo"]`), `{"results":[{"types":{"name":"text"},"rows":[{"name":"fiona"}]}]}`)
	// Unknown and ignored parameters are tolerated (gorqlite sends level on
	// /db/execute; norwrandom and norwtime need no rewriting here).
	rqOK(t, rqPost(t, u+"/db/execute?level=weak&norwrandom&norwtime&noparse&transaction&bypass", `["INSERT INTO foo(name) VALUES('declan')"]`),
		`{"results":[{"last_insert_id":2,"rows_affected":1}]}`)
}

// ?pretty indents with 4 spaces.
func TestRqlitePretty(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute?pretty", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES('a<b>&c')"]`),
		indent4(t, `{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`))
	rqOK(t, rqPost(t, u+"/db/query?pretty", `["SELECT * FROM foo"]`),
		indent4(t, `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"a<b>&c"]]}]}`))
	rqOK(t, rqPost(t, u+"/db/query?pretty&associative", `["SELECT * FROM foo"]`),
		indent4(t, `{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":"a<b>&c"}]}]}`))
	// The literal bytes of one, to pin the indentation itself.
	rqOK(t, rqPost(t, u+"/db/execute?pretty", `["DELETE FROM foo"]`),
		"{\n    \"results\": [\n        {\n            \"rows_affected\": 1\n        }\n    ]\n}")
}

// rqlite's bodies end at the closing brace, without a newline.
func TestRqliteNoTrailingNewline(t *testing.T) {
	srv, _ := mustRunMaster(t)
	for _, r := range []rqResp{
		rqPost(t, srv.URL()+"/db/execute", `["CREATE TABLE foo (x)"]`),
		rqPost(t, srv.URL()+"/db/query", `["SELECT 1 AS one"]`),
		rqPost(t, srv.URL()+"/db/query?pretty", `["SELECT 1 AS one"]`),
		rqPost(t, srv.URL()+"/db/request", `["SELECT 1 AS one"]`),
	} {
		if r.Status != http.StatusOK || !strings.HasSuffix(r.Body, "}") {
			t.Errorf("%s: got %d %q, want 200 ending in '}' (no newline)", r.Req, r.Status, r.Body)
		}
	}
}

// Statements walship refuses get a per-statement error with HTTP 200,
// never rqlite's request-level {"results":[],"error":…}, and write
// nothing.
func TestRqliteRefusedStatements(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`), `{"results":[{}]}`)
	last := srv.Master.Log().LastIndex()
	for _, tc := range []struct{ path, sql string }{
		{"/db/execute", "PRAGMA journal_mode=DELETE"},
		{"/db/execute", "PRAGMA wal_checkpoint(TRUNCATE)"},
		{"/db/execute", "PRAGMA synchronous=OFF"},
		{"/db/execute", "PRAGMA foreign_keys=ON"},
		{"/db/query", "PRAGMA journal_mode=DELETE"},
		{"/db/query", "PRAGMA query_only=0"},
		{"/db/request", "PRAGMA journal_mode=DELETE"},
		{"/db/execute", "ATTACH DATABASE 'other.db' AS other"},
		{"/db/execute", "DETACH DATABASE other"},
		{"/db/execute", "BEGIN"},
		{"/db/execute", "COMMIT"},
		{"/db/execute", "SAVEPOINT s"},
		{"/db/execute", "VACUUM"},
		{"/db/execute", "VACUUM INTO 'copy.db'"},
		{"/db/execute", "SELECT load_extension('x')"},
		{"/db/query", "SELECT load_extension('x')"},
		{"/db/execute", "CREATE TEMP TABLE t (x)"},
		{"/db/execute", "CREATE TEMPORARY TABLE t (x)"},
		{"/db/execute", "DELETE FROM _walship"},
		{"/db/execute", "UPDATE _walship SET applied_index = 0"},
		{"/db/request", "DELETE FROM _walship"},
	} {
		b, _ := json.Marshal([]string{tc.sql})
		r := rqPost(t, u+tc.path, string(b))
		top := rqDecode(t, r)
		if top.Error != "" || len(top.keys) != 1 || len(top.Results) != 1 || len(top.Results[0]) != 2 || resultError(t, top.Results[0]) == "" {
			t.Errorf("%s\n got %d %s\nwant 200 {\"results\":[{\"error\":\"…\",\"error_v2\":{…}}]}", r.Req, r.Status, r.Body)
		}
	}
	if got := srv.Master.Log().LastIndex(); got != last {
		t.Errorf("refused statements moved the log from %d to %d", last, got)
	}
	// One result per statement, the refused one with its error.
	r := rqPost(t, u+"/db/execute", `["INSERT INTO foo(name) VALUES('a')", "VACUUM", "INSERT INTO foo(name) VALUES('b')"]`)
	if top := rqDecode(t, r); top.Error != "" || len(top.Results) != 3 || resultError(t, top.Results[1]) == "" {
		t.Errorf("%s\n got %d %s\nwant 200 with 3 results, the second an error", r.Req, r.Status, r.Body)
	}
	// The read-only connection keeps its settings.
	rqOK(t, rqPost(t, u+"/db/query", `["PRAGMA journal_mode"]`), `{"results":[{"columns":["journal_mode"],"types":["text"],"values":[["wal"]]}]}`)
}

// Parse errors of §1.2: 400 with rqlite's text; empty statements are
// skipped.
func TestRqliteParseErrors(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`), `{"results":[{}]}`)
	last := srv.Master.Log().LastIndex()
	for _, path := range []string{"/db/execute", "/db/query", "/db/request"} {
		for _, tc := range []struct{ body, want string }{
			{`not json`, "invalid JSON body"},
			{`["SELECT 1"`, "invalid JSON body"},
			{`{"a": 1}`, "invalid request"},
			{`"SELECT 1"`, "invalid request"},
			{`[1]`, "invalid request"},
			{`[{"q": "SELECT 1"}]`, "invalid request"},
			{`[[1, "SELECT 1"]]`, "invalid request"},
			{`[]`, "no statements"},
		} {
			r := rqPost(t, u+path, tc.body)
			if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, tc.want) {
				t.Errorf("%s\n got %d %q\nwant 400 %q", r.Req, r.Status, r.Body, tc.want)
			}
		}
	}
	// Empty statements give no result entry.
	rqOK(t, rqPost(t, u+"/db/execute", `[""]`), `{"results":[]}`)
	rqOK(t, rqPost(t, u+"/db/execute", `["", "INSERT INTO foo(name) VALUES('fiona')", ""]`), `{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	rqOK(t, rqPost(t, u+"/db/query", `["", "SELECT name FROM foo"]`), `{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`)
	rqOK(t, rqPost(t, u+"/db/query", `[[""], "SELECT name FROM foo"]`), `{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`)
	// text/plain: the whole body is SQL; an empty one runs nothing.
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/execute", "text/plain", ""), `{"results":[]}`)
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/query", "text/plain", ""), `{"results":[]}`)
	if got := srv.Master.Log().LastIndex(); got != last+1 {
		t.Errorf("log moved from %d to %d, want one entry (the insert)", last, got)
	}
}

// Content-Type: text/plain takes the body as SQL on /db/execute and
// /db/query; anything else, including no Content-Type, is JSON.
func TestRqliteTextPlain(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/execute", "text/plain", "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"), `{"results":[{}]}`)
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/execute", "text/plain; charset=utf-8", "INSERT INTO foo(name) VALUES('fiona')"), `{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/query", "text/plain", "SELECT * FROM foo"), `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}`)
	// Several statements in one text body all run.
	r := rqCall(t, http.MethodPost, u+"/db/execute", "text/plain", "INSERT INTO foo(name) VALUES('a'); INSERT INTO foo(name) VALUES('b')")
	if top := rqDecode(t, r); top.Error != "" || len(top.Results) == 0 {
		t.Errorf("%s: got %d %s", r.Req, r.Status, r.Body)
	}
	if n := rqCount(t, u, "SELECT count(*) FROM foo"); n != 3 {
		t.Errorf("after the text/plain batch: %d rows, want 3", n)
	}
	// No Content-Type, or another one: JSON.
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/query", "", `["SELECT name FROM foo WHERE id = 1"]`), `{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`)
	rqOK(t, rqCall(t, http.MethodPost, u+"/db/query", "application/x-www-form-urlencoded", `["SELECT name FROM foo WHERE id = 1"]`), `{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`)
}

// Parameter conversions of §1.2.
func TestRqliteParams(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE p (v)"]`), `{"results":[{}]}`)
	const probe = `["SELECT typeof(v) AS t, quote(v) AS q FROM p"]`
	for _, tc := range []struct{ insert, t, q string }{
		{`[["INSERT INTO p VALUES(?)", 7]]`, "integer", "7"},
		{`[["INSERT INTO p VALUES(?)", -3]]`, "integer", "-3"},
		{`[["INSERT INTO p VALUES(?)", 9007199254740993]]`, "integer", "9007199254740993"},
		{`[["INSERT INTO p VALUES(?)", 2.0]]`, "real", "2.0"},
		{`[["INSERT INTO p VALUES(?)", 2.5]]`, "real", "2.5"},
		{`[["INSERT INTO p VALUES(?)", 1e3]]`, "real", "1000.0"},
		{`[["INSERT INTO p VALUES(?)", "hello"]]`, "text", "'hello'"},
		{`[["INSERT INTO p VALUES(?)", "x'0102'"]]`, "blob", "X'0102'"},
		{`[["INSERT INTO p VALUES(?)", "X'0aFF'"]]`, "blob", "X'0AFF'"},
		{`[["INSERT INTO p VALUES(?)", [1, 2, 255]]]`, "blob", "X'0102FF'"},
		{`[["INSERT INTO p VALUES(?)", true]]`, "integer", "1"},
		{`[["INSERT INTO p VALUES(?)", false]]`, "integer", "0"},
		{`[["INSERT INTO p VALUES(?)", null]]`, "null", "NULL"},
		{`[["INSERT INTO p VALUES(:a)", {"a": 5}]]`, "integer", "5"},
		{`[["INSERT INTO p VALUES(@a)", {"a": "at"}]]`, "text", "'at'"},
		{`[["INSERT INTO p VALUES($a)", {"a": 1.5}]]`, "real", "1.5"},
		{`[["INSERT INTO p VALUES(:a || $b)", {"b": "y", "a": "x"}]]`, "text", "'xy'"},
		{`[["INSERT INTO p VALUES(:a)", {"a": "x'ff'"}]]`, "blob", "X'FF'"},
		{`[["INSERT INTO p VALUES(:a)", {"a": [0, 255]}]]`, "blob", "X'00FF'"},
	} {
		want := rqDeleteAnswer(t, u)
		rqOK(t, rqPost(t, u+"/db/execute", `["DELETE FROM p"]`), want)
		if !rqOK(t, rqPost(t, u+"/db/execute", tc.insert), `{"results":[{"last_insert_id":1,"rows_affected":1}]}`) {
			continue
		}
		rqOK(t, rqPost(t, u+"/db/query", probe), fmt.Sprintf(`{"results":[{"columns":["t","q"],"types":["text","text"],"values":[[%q,%q]]}]}`, tc.t, tc.q))
	}
	// Parameters on reads, and plain and parameterized statements mixed.
	// (A BLOB in a column without declared type is a raw string typed
	// "text", as rqlite's normalizeRowValues runs before
	// populateEmptyTypes.)
	rqOK(t, rqPost(t, u+"/db/query", `[["SELECT ? AS b, ? AS i, ? AS r, ? AS s, ? AS n, typeof(?) AS tb", "x'6869'", 7, 2.5, "x", null, "x'0102'"]]`),
		`{"results":[{"columns":["b","i","r","s","n","tb"],"types":["text","integer","real","text","","text"],"values":[["hi",7,2.5,"x",null,"blob"]]}]}`)
	rqOK(t, rqPost(t, u+"/db/execute", `["DELETE FROM p", ["INSERT INTO p VALUES(?)", 1], "INSERT INTO p VALUES(2)"]`),
		`{"results":[{"rows_affected":1},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`)
	last := srv.Master.Log().LastIndex()
	for _, body := range []string{
		`[["INSERT INTO p VALUES(:a)", {"a": {"b": 1}}]]`,
		`[["INSERT INTO p VALUES(?)", [1.5, 2]]]`,
		`[["INSERT INTO p VALUES(?)", ["a", "b"]]]`,
		`[["INSERT INTO p VALUES(?)", [[1]]]]`,
	} {
		r := rqPost(t, u+"/db/execute", body)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "unsupported type") {
			t.Errorf("%s\n got %d %q\nwant 400 \"unsupported type …\"", r.Req, r.Status, r.Body)
		}
	}
	if got := srv.Master.Log().LastIndex(); got != last {
		t.Errorf("rejected parameters moved the log from %d to %d", last, got)
	}
}

// rqDeleteAnswer is the answer of "DELETE FROM p" for the rows p holds.
func rqDeleteAnswer(tb testing.TB, u string) string {
	tb.Helper()
	if n := rqCount(tb, u, "SELECT count(*) FROM p"); n != 0 {
		return fmt.Sprintf(`{"results":[{"rows_affected":%d}]}`, n)
	}
	return `{"results":[{}]}`
}

// Value typing of §1.3: declared types, dates and times as RFC3339 UTC,
// booleans, blobs, expression types from the first row.
func TestRqliteValueTyping(t *testing.T) {
	at := time.Date(2026, 11, 25, 16, 55, 48, 123e6, time.UTC)
	srv, _ := mustRunMasterConfig(t, master.Config{Now: func() time.Time { return at }})
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE ty (id INTEGER PRIMARY KEY, dt DATETIME DEFAULT CURRENT_TIMESTAMP, ts TIMESTAMP, d DATE, b BOOLEAN, bl BLOB, tx TEXT, vc VARCHAR(10), n)"]`),
		`{"results":[{}]}`)
	rqOK(t, rqPost(t, u+"/db/execute", `[
		["INSERT INTO ty (id, ts, d, b, bl, tx, vc, n) VALUES (1, ?, '2024-01-02', 1, x'0102', 'plain', 'v', 1)", 1706842979630],
		["INSERT INTO ty (id, dt, ts, d, b, bl, tx, vc, n) VALUES (2, '2024-01-01 10:00:00.5', ?, '2024-01-02T03:04:05Z', 0, 'hello', x'6869', x'6869', 'two')", 1700000000],
		"INSERT INTO ty (id, dt, ts, d, b, bl, tx, vc, n) VALUES (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
		"INSERT INTO ty (id, dt) VALUES (4, 'garbage')"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1},{"last_insert_id":3,"rows_affected":1},{"last_insert_id":4,"rows_affected":1}]}`)
	for _, tc := range []struct{ path, body, want string }{
		// DEFAULT CURRENT_TIMESTAMP from the pinned clock, text with a
		// fraction, and text that is no time at all.
		{"/db/query", `["SELECT id, dt FROM ty ORDER BY id"]`,
			`{"results":[{"columns":["id","dt"],"types":["integer","datetime"],"values":[[1,"2026-11-25T16:55:48Z"],[2,"2024-01-01T10:00:00.5Z"],[3,null],[4,"0001-01-01T00:00:00Z"]]}]}`},
		// Integers: milliseconds above 1e12, seconds below.
		{"/db/query", `["SELECT ts FROM ty WHERE id IN (1, 2, 3) ORDER BY id"]`,
			`{"results":[{"columns":["ts"],"types":["timestamp"],"values":[["2024-02-02T03:02:59.63Z"],["2023-11-14T22:13:20Z"],[null]]}]}`},
		{"/db/query", `["SELECT d FROM ty WHERE id IN (1, 2) ORDER BY id"]`,
			`{"results":[{"columns":["d"],"types":["date"],"values":[["2024-01-02T00:00:00Z"],["2024-01-02T03:04:05Z"]]}]}`},
		{"/db/query", `["SELECT b FROM ty WHERE id IN (1, 2, 3) ORDER BY id"]`,
			`{"results":[{"columns":["b"],"types":["boolean"],"values":[[true],[false],[null]]}]}`},
		// A BLOB is base64; text in a BLOB column stays a string.
		{"/db/query", `["SELECT bl FROM ty WHERE id IN (1, 2, 3) ORDER BY id"]`,
			`{"results":[{"columns":["bl"],"types":["blob"],"values":[["AQI="],["hello"],[null]]}]}`},
		{"/db/query?blob_array", `["SELECT bl FROM ty WHERE id IN (1, 2, 3) ORDER BY id"]`,
			`{"results":[{"columns":["bl"],"types":["blob"],"values":[[[1,2]],["hello"],[null]]}]}`},
		// A BLOB in a text-like column is a raw string.
		{"/db/query", `["SELECT tx, vc FROM ty WHERE id IN (1, 2) ORDER BY id"]`,
			`{"results":[{"columns":["tx","vc"],"types":["text","varchar(10)"],"values":[["plain","v"],["hi","hi"]]}]}`},
		{"/db/query?associative", `["SELECT b, bl, ts FROM ty WHERE id = 1"]`,
			`{"results":[{"types":{"b":"boolean","bl":"blob","ts":"timestamp"},"rows":[{"b":true,"bl":"AQI=","ts":"2024-02-02T03:02:59.63Z"}]}]}`},
		{"/db/query?associative&blob_array", `["SELECT bl FROM ty WHERE id = 1"]`,
			`{"results":[{"types":{"bl":"blob"},"rows":[{"bl":[1,2]}]}]}`},
		// Expressions and undeclared columns take the first row's type. A
		// BLOB there is a raw string typed "text" (rqlite converts the
		// first row before it fills in the empty types), blob_array or not.
		{"/db/query", `["SELECT 1 AS a, 2.5 AS b, 'x' AS c, x'6869' AS d, NULL AS e, 5.0 AS f"]`,
			`{"results":[{"columns":["a","b","c","d","e","f"],"types":["integer","real","text","text","","real"],"values":[[1,2.5,"x","hi",null,5]]}]}`},
		{"/db/query?blob_array", `["SELECT x'0102' AS d"]`,
			`{"results":[{"columns":["d"],"types":["text"],"values":[["\u0001\u0002"]]}]}`},
		{"/db/query", `["SELECT n FROM ty WHERE id IN (1, 2) ORDER BY id"]`,
			`{"results":[{"columns":["n"],"types":["integer"],"values":[[1],["two"]]}]}`},
		{"/db/query", `["SELECT n FROM ty WHERE id IN (1, 2) ORDER BY id DESC"]`,
			`{"results":[{"columns":["n"],"types":["text"],"values":[["two"],[1]]}]}`},
		{"/db/query", `["SELECT count(*) AS c, max(id) AS m FROM ty"]`,
			`{"results":[{"columns":["c","m"],"types":["integer","integer"],"values":[[4,4]]}]}`},
		{"/db/query", `["SELECT n FROM ty WHERE id > 100"]`,
			`{"results":[{"columns":["n"],"types":[""]}]}`},
		// The same typing on /db/execute with RETURNING and on /db/request.
		{"/db/execute", `["UPDATE ty SET b = 0 WHERE id = 1 RETURNING b, ts"]`,
			`{"results":[{"columns":["b","ts"],"types":["boolean","timestamp"],"values":[[false,"2024-02-02T03:02:59.63Z"]]}]}`},
		{"/db/request", `["SELECT dt, b FROM ty WHERE id = 1"]`,
			`{"results":[{"columns":["dt","b"],"types":["datetime","boolean"],"values":[["2026-11-25T16:55:48Z",false]]}]}`},
	} {
		rqOK(t, rqPost(t, u+tc.path, tc.body), tc.want)
	}
	// Declared types are lowercased as written.
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE dt2 (a Int, b REAL, c Varchar(3), d Json)", "INSERT INTO dt2 VALUES (1, 2, 'c', '{}')"]`),
		`{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
	rqOK(t, rqPost(t, u+"/db/query", `["SELECT * FROM dt2"]`),
		`{"results":[{"columns":["a","b","c","d"],"types":["int","real","varchar(3)","json"],"values":[[1,2,"c","{}"]]}]}`)
}

// ?transaction stops at the first error and rolls back; without it each
// statement stands alone.
func TestRqliteTransaction(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT UNIQUE)"]`), `{"results":[{}]}`)
	batch := `["INSERT INTO foo(name) VALUES('a')", "INSERT INTO nope VALUES(1)", "INSERT INTO foo(name) VALUES('b')"]`
	last := srv.Master.Log().LastIndex()
	rqOK(t, rqPost(t, u+"/db/execute?transaction", batch),
		`{"results":[{"last_insert_id":1,"rows_affected":1},{"error":"no such table: nope"`+errV2("no such table: nope", 1, 1)+`}]}`)
	if n := rqCount(t, u, "SELECT count(*) FROM foo"); n != 0 {
		t.Errorf("after a failed transaction: %d rows, want 0", n)
	}
	if got := srv.Master.Log().LastIndex(); got != last {
		t.Errorf("a failed transaction moved the log from %d to %d", last, got)
	}
	// The failure may be a constraint, and the first statement.
	rqOK(t, rqPost(t, u+"/db/execute?transaction", `["INSERT INTO nope VALUES(1)", "INSERT INTO foo(name) VALUES('a')"]`),
		`{"results":[{"error":"no such table: nope"`+errV2("no such table: nope", 1, 1)+`}]}`)
	rqOK(t, rqPost(t, u+"/db/request?transaction", `["INSERT INTO foo(name) VALUES('a')", "INSERT INTO foo(name) VALUES('a')", "SELECT * FROM foo"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1},{"error":"UNIQUE constraint failed: foo.name"`+errV2("UNIQUE constraint failed: foo.name", 19, 2067)+`}]}`)
	if n := rqCount(t, u, "SELECT count(*) FROM foo"); n != 0 {
		t.Errorf("after failed transactions: %d rows, want 0", n)
	}
	// Without transaction: per-statement errors, the others persist.
	rqOK(t, rqPost(t, u+"/db/execute", batch),
		`{"results":[{"last_insert_id":1,"rows_affected":1},{"error":"no such table: nope"`+errV2("no such table: nope", 1, 1)+`},{"last_insert_id":2,"rows_affected":1}]}`)
	rqOK(t, rqPost(t, u+"/db/execute", `["INSERT INTO foo(name) VALUES('c')", "INSERT INTO foo(name) VALUES('a')", "INSERT INTO foo(name) VALUES('d')"]`),
		`{"results":[{"last_insert_id":3,"rows_affected":1},{"error":"UNIQUE constraint failed: foo.name"`+errV2("UNIQUE constraint failed: foo.name", 19, 2067)+`},{"last_insert_id":4,"rows_affected":1}]}`)
	rqOK(t, rqPost(t, u+"/db/query", `["SELECT name FROM foo ORDER BY id"]`),
		`{"results":[{"columns":["name"],"types":["text"],"values":[["a"],["b"],["c"],["d"]]}]}`)
	// A successful transaction persists everything.
	rqOK(t, rqPost(t, u+"/db/execute?transaction", `["UPDATE foo SET name = upper(name) WHERE name IN ('a', 'd')", "INSERT INTO foo(name) VALUES('e')"]`),
		`{"results":[{"rows_affected":2},{"last_insert_id":5,"rows_affected":1}]}`)
	rqOK(t, rqPost(t, u+"/db/query?transaction", `["SELECT name FROM foo ORDER BY id"]`),
		`{"results":[{"columns":["name"],"types":["text"],"values":[["A"],["b"],["c"],["D"],["e"]]}]}`)
}

// /db/query runs on a read-only connection: a write is a per-result error
// with HTTP 200, and nothing changes.
func TestRqliteQueryRefusesWrites(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES('fiona')"]`),
		`{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
	last := srv.Master.Log().LastIndex()
	for _, body := range []string{
		`["INSERT INTO foo(name) VALUES('x')"]`,
		`["DELETE FROM foo"]`,
		`["UPDATE foo SET name = 'y'"]`,
		`["CREATE TABLE bar (x)"]`,
		`["DROP TABLE foo"]`,
		`["INSERT INTO foo(name) VALUES('x') RETURNING id"]`,
	} {
		r := rqPost(t, u+"/db/query", body)
		top := rqDecode(t, r)
		if top.Error != "" || len(top.Results) != 1 || len(top.Results[0]) != 2 || resultError(t, top.Results[0]) == "" {
			t.Errorf("%s\n got %d %s\nwant 200 {\"results\":[{\"error\":\"…\",\"error_v2\":{…}}]}", r.Req, r.Status, r.Body)
		}
	}
	// A read and a write: one result each, the write's an error.
	r := rqPost(t, u+"/db/query", `["SELECT name FROM foo", "DELETE FROM foo"]`)
	if top := rqDecode(t, r); len(top.Results) != 2 || resultError(t, top.Results[1]) == "" {
		t.Errorf("%s\n got %d %s\nwant 200 with 2 results, the second an error", r.Req, r.Status, r.Body)
	}
	if got := srv.Master.Log().LastIndex(); got != last {
		t.Errorf("writes on /db/query moved the log from %d to %d", last, got)
	}
	rqOK(t, rqPost(t, u+"/db/query", `["SELECT * FROM foo"]`), `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}`)
}

// GET /db/query?q=…, and the 400s of query-parameter validation.
func TestRqliteQueryParams(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)", "INSERT INTO foo(name) VALUES('fiona')"]`),
		`{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
	rqOK(t, rqGet(t, u+"/db/query?q=SELECT%20*%20FROM%20foo"), `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}`)
	rqOK(t, rqGet(t, u+"/db/query?q=SELECT+name+FROM+foo+WHERE+name+%3D+%27fiona%27&associative"), `{"results":[{"types":{"name":"text"},"rows":[{"name":"fiona"}]}]}`)
	rqOK(t, rqGet(t, u+"/db/query?level=none&q=SELECT%201%20AS%20one"), `{"results":[{"columns":["one"],"types":["integer"],"values":[[1]]}]}`)
	for _, tc := range []struct{ method, path, want string }{
		{http.MethodGet, "/db/query?q=", "query parameter not set"},
		{http.MethodPost, "/db/query?timeout=abc", "timeout is not a valid duration"},
		{http.MethodPost, "/db/execute?timeout=abc", "timeout is not a valid duration"},
		{http.MethodPost, "/db/request?timeout=10", "timeout is not a valid duration"},
		{http.MethodPost, "/db/query?level=none&freshness=abc", "freshness is not a valid duration"},
		{http.MethodPost, "/db/query?db_timeout=abc", "db_timeout is not a valid duration"},
		{http.MethodPost, "/db/execute?db_timeout=abc", "db_timeout is not a valid duration"},
		{http.MethodPost, "/db/query?linearizable_timeout=abc", "linearizable_timeout is not a valid duration"},
		{http.MethodPost, "/db/query?retries=abc", "retries is not a valid integer"},
		{http.MethodPost, "/db/query?level=none&freshness_strict", "freshness_strict requires freshness"},
	} {
		body := ""
		if tc.method == http.MethodPost {
			body = `["SELECT 1"]`
		}
		r := rqCall(t, tc.method, u+tc.path, "application/json", body)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, tc.want) {
			t.Errorf("%s\n got %d %q\nwant 400 %q", r.Req, r.Status, r.Body, tc.want)
		}
	}
	// Valid values are accepted.
	rqOK(t, rqPost(t, u+"/db/query?timeout=5s&db_timeout=5s&linearizable_timeout=1s&retries=2&level=none&freshness=1s&freshness_strict", `["SELECT name FROM foo"]`),
		`{"results":[{"columns":["name"],"types":["text"],"values":[["fiona"]]}]}`)
	rqOK(t, rqPost(t, u+"/db/execute?timeout=5s&db_timeout=5s", `["INSERT INTO foo(name) VALUES('declan')"]`),
		`{"results":[{"last_insert_id":2,"rows_affected":1}]}`)
	// level is case-insensitive; an unknown level is weak.
	for _, level := range []string{"none", "NONE", "weak", "Weak", "linearizable", "strong", "auto", "bogus"} {
		rqOK(t, rqPost(t, u+"/db/query?level="+level, `["SELECT count(*) AS n FROM foo"]`), `{"results":[{"columns":["n"],"types":["integer"],"values":[[2]]}]}`)
	}
}

// ?raft_index gives the master's log index of the write.
func TestRqliteRaftIndex(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	r := rqPost(t, u+"/db/execute?raft_index", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`)
	rqOK(t, r, fmt.Sprintf(`{"results":[{}],"raft_index":%d}`, srv.Master.Log().LastIndex()))
	for i := 1; i <= 3; i++ {
		r := rqPost(t, u+"/db/execute?raft_index", `["INSERT INTO foo(name) VALUES('x')"]`)
		rqOK(t, r, fmt.Sprintf(`{"results":[{"last_insert_id":%d,"rows_affected":1}],"raft_index":%d}`, i, srv.Master.Log().LastIndex()))
	}
	r = rqPost(t, u+"/db/request?raft_index", `["INSERT INTO foo(name) VALUES('y')", "SELECT count(*) AS n FROM foo"]`)
	rqOK(t, r, fmt.Sprintf(`{"results":[{"last_insert_id":4,"rows_affected":1},{"columns":["n"],"types":["integer"],"values":[[4]]}],"raft_index":%d}`, srv.Master.Log().LastIndex()))
	// With timings, time comes before raft_index.
	next := srv.Master.Log().LastIndex() + 1
	rqMatch(t, rqPost(t, u+"/db/execute?raft_index&timings", `["INSERT INTO foo(name) VALUES('z')"]`),
		`^\{"results":\[\{"last_insert_id":5,"rows_affected":1,"time":`+floatRE+`\}\],"time":`+floatRE+fmt.Sprintf(`,"raft_index":%d\}$`, next))
	if got := rqCount(t, u, "SELECT count(*) FROM foo"); got != 5 {
		t.Errorf("%d rows, want 5", got)
	}
}

// ?queue answers {"results":[],"sequence_number":N} at once, N increasing;
// the write lands; with wait the answer comes after it applied.
func TestRqliteQueue(t *testing.T) {
	msrv, _ := mustRunMaster(t)
	rqOK(t, rqPost(t, msrv.URL()+"/db/execute", `["CREATE TABLE q (id INTEGER PRIMARY KEY, v TEXT)"]`), `{"results":[{}]}`)
	ssrv, _ := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	const seqRE = `^\{"results":\[\],"sequence_number":([1-9][0-9]*)\}$`
	for _, node := range []struct{ name, url string }{{"master", msrv.URL()}, {"slave", ssrv.URL()}} {
		t.Run(node.name, func(t *testing.T) {
			before := rqCount(t, msrv.URL(), "SELECT count(*) FROM q")
			var prev int64
			for i := 0; i < 5; i++ {
				m := rqMatch(t, rqPost(t, node.url+"/db/execute?queue", fmt.Sprintf(`[["INSERT INTO q(v) VALUES(?)", "%s-%d"]]`, node.name, i)), seqRE)
				if m == nil {
					return
				}
				var seq int64
				if _, err := fmt.Sscan(m[1], &seq); err != nil {
					t.Fatal(err)
				}
				if seq <= prev {
					t.Errorf("sequence number %d after %d, want increasing", seq, prev)
				}
				prev = seq
			}
			// The transaction flag is ignored; timings add a top-level time.
			rqMatch(t, rqPost(t, node.url+"/db/execute?queue&transaction&timings", fmt.Sprintf(`["INSERT INTO q(v) VALUES('%s-t')"]`, node.name)),
				`^\{"results":\[\],"time":`+floatRE+`,"sequence_number":[1-9][0-9]*\}$`)
			waitFor(t, "the queued writes to land on the master", func() bool {
				return rqCount(t, msrv.URL(), "SELECT count(*) FROM q") == before+6
			})
			waitFor(t, "the queued writes to reach the slave", func() bool {
				return rqCount(t, ssrv.URL(), "SELECT count(*) FROM q") == before+6
			})
			// queue&wait answers once the node it was sent to applied it.
			m := rqMatch(t, rqPost(t, node.url+"/db/execute?queue&wait", fmt.Sprintf(`["INSERT INTO q(v) VALUES('%s-w')"]`, node.name)), seqRE)
			if m != nil {
				if n := rqCount(t, node.url, fmt.Sprintf("SELECT count(*) FROM q WHERE v = '%s-w'", node.name)); n != 1 {
					t.Errorf("after queue&wait on the %s: %d rows, want 1", node.name, n)
				}
			}
		})
	}
	rqOK(t, rqPost(t, msrv.URL()+"/db/query", `["SELECT v FROM q WHERE v LIKE 'master-%' ORDER BY id"]`),
		`{"results":[{"columns":["v"],"types":["text"],"values":[["master-0"],["master-1"],["master-2"],["master-3"],["master-4"],["master-t"],["master-w"]]}]}`)
}

// ?db_timeout interrupts a statement that runs too long: a per-result
// error, HTTP 200, nothing written.
func TestRqliteDBTimeout(t *testing.T) {
	srv, _ := mustRunMaster(t)
	u := srv.URL()
	rqOK(t, rqPost(t, u+"/db/execute", `["CREATE TABLE n (v)"]`), `{"results":[{}]}`)
	const slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000000) SELECT count(*) FROM c"
	for _, tc := range []struct{ path, sql, want string }{
		{"/db/query?db_timeout=50ms", slow, "query timeout"},
		{"/db/execute?db_timeout=50ms", "INSERT INTO n " + slow, "execute timeout"},
	} {
		b, _ := json.Marshal([]string{tc.sql})
		start := time.Now()
		r := rqPost(t, u+tc.path, string(b))
		top := rqDecode(t, r)
		if len(top.Results) != 1 || !strings.Contains(resultError(t, top.Results[0]), "timeout") {
			t.Errorf("%s\n got %d %s after %v\nwant 200 {\"results\":[{\"error\":%q}]}", tc.path, r.Status, r.Body, time.Since(start), tc.want)
		}
	}
	if n := rqCount(t, u, "SELECT count(*) FROM n"); n != 0 {
		t.Errorf("an interrupted insert left %d rows", n)
	}
}

// Every response carries X-RQLITE-VERSION; OPTIONS answers 200 without a
// body; a wrong method is 405; JSON answers are application/json.
func TestRqliteHeadersAndMethods(t *testing.T) {
	msrv, _ := mustRunMaster(t)
	rqOK(t, rqPost(t, msrv.URL()+"/db/execute", `["CREATE TABLE foo (x)"]`), `{"results":[{}]}`)
	ssrv, _ := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	for _, u := range []string{msrv.URL(), ssrv.URL()} {
		var all []rqResp
		for _, r := range []rqResp{
			rqPost(t, u+"/db/execute", `["INSERT INTO foo VALUES (1)"]`),
			rqPost(t, u+"/db/query", `["SELECT * FROM foo"]`),
			rqPost(t, u+"/db/query?level=none", `["SELECT * FROM foo"]`),
			rqGet(t, u+"/db/query?q=SELECT%201"),
			rqPost(t, u+"/db/request", `["SELECT * FROM foo"]`),
			rqGet(t, u+"/status"),
			rqGet(t, u+"/nodes"),
		} {
			if r.Status != http.StatusOK {
				t.Errorf("%s: got %d %s, want 200", r.Req, r.Status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("%s: Content-Type %q, want \"application/json; charset=utf-8\"", r.Req, ct)
			}
			all = append(all, r)
		}
		ready := rqGet(t, u+"/readyz")
		if ready.Status != http.StatusOK || !strings.HasPrefix(ready.Body, "[+]node ok") {
			t.Errorf("%s: got %d %q, want 200 [+]node ok…", ready.Req, ready.Status, ready.Body)
		}
		all = append(all, ready, rqPost(t, u+"/db/execute", `not json`), rqGet(t, u+"/db/query?q="))
		for _, path := range []string{"/db/execute", "/db/query", "/db/request", "/status", "/nodes", "/readyz"} {
			r := rqCall(t, http.MethodOptions, u+path, "", "")
			if r.Status != http.StatusOK || r.Body != "" {
				t.Errorf("%s: got %d %q, want 200 with no body", r.Req, r.Status, r.Body)
			}
			all = append(all, r)
		}
		for _, tc := range []struct{ method, path string }{
			{http.MethodGet, "/db/execute"},
			{http.MethodGet, "/db/request"},
			{http.MethodDelete, "/db/query"},
			{http.MethodPut, "/db/execute"},
			{http.MethodPost, "/status"},
			{http.MethodPost, "/nodes"},
		} {
			r := rqCall(t, tc.method, u+tc.path, "", "")
			if r.Status != http.StatusMethodNotAllowed || r.Body != "" {
				t.Errorf("%s: got %d %q, want 405 with an empty body", r.Req, r.Status, r.Body)
			}
			all = append(all, r)
		}
		for _, r := range all {
			if r.Header.Get("X-RQLITE-VERSION") == "" {
				t.Errorf("%s: no X-RQLITE-VERSION header (status %d)", r.Req, r.Status)
			}
		}
	}
}

// rqNode is one member in /nodes.
type rqNode struct {
	ID        string `json:"id"`
	APIAddr   string `json:"api_addr"`
	Addr      string `json:"addr"`
	Reachable bool   `json:"reachable"`
	Leader    bool   `json:"leader"`
}

// /nodes lists every node in the legacy map form (the master as leader,
// api_addr a full URL), ?ver=2 as {"nodes":[…]}; /status names the
// leader; on the master and on a slave.
func TestRqliteNodesStatus(t *testing.T) {
	msrv, _ := mustRunMaster(t)
	ssrv, _ := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	for _, u := range []string{msrv.URL(), ssrv.URL()} {
		var nodes map[string]rqNode
		var last rqResp
		waitFor(t, "/nodes to list the master and the slave", func() bool {
			last = rqGet(t, u+"/nodes")
			nodes = nil
			return last.Status == http.StatusOK && json.Unmarshal([]byte(last.Body), &nodes) == nil && len(nodes) >= 2
		})
		leaders := 0
		var leaderID string
		urls := map[string]bool{}
		for id, n := range nodes {
			if n.ID != id {
				t.Errorf("GET %s/nodes: key %q holds id %q: %s", u, id, n.ID, last.Body)
			}
			if !n.Reachable || n.Addr == "" {
				t.Errorf("GET %s/nodes: node %q not reachable or without addr: %s", u, id, last.Body)
			}
			if n.Leader {
				leaders++
				leaderID = id
				if n.APIAddr != msrv.URL() {
					t.Errorf("GET %s/nodes: leader api_addr %q, want the master's %q", u, n.APIAddr, msrv.URL())
				}
			}
			urls[n.APIAddr] = true
		}
		if leaders != 1 || len(nodes) != 2 || !urls[msrv.URL()] || !urls[ssrv.URL()] {
			t.Errorf("GET %s/nodes: %s\nwant the master %s (leader) and the slave %s", u, last.Body, msrv.URL(), ssrv.URL())
		}
		if n, ok := nodes["1"]; !ok || n.APIAddr != ssrv.URL() || n.Leader {
			t.Errorf("GET %s/nodes: slave \"1\" is %+v, want api_addr %s, not leader", u, n, ssrv.URL())
		}
		// ?ver=2: the same nodes in a list sorted by id.
		r := rqGet(t, u+"/nodes?ver=2")
		var v2 struct {
			Nodes []rqNode `json:"nodes"`
		}
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &v2) != nil || len(v2.Nodes) != 2 ||
			v2.Nodes[0].ID > v2.Nodes[1].ID || nodes[v2.Nodes[0].ID] != v2.Nodes[0] || nodes[v2.Nodes[1].ID] != v2.Nodes[1] {
			t.Errorf("%s: got %d %s\nwant {\"nodes\":[…]} holding %s sorted by id", r.Req, r.Status, r.Body, last.Body)
		}
		// /status: store.leader.node_id is the leader of /nodes.
		r = rqGet(t, u+"/status")
		var st struct {
			Store *struct {
				Leader *struct {
					NodeID *string `json:"node_id"`
					Addr   string  `json:"addr"`
				} `json:"leader"`
			} `json:"store"`
		}
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &st) != nil || st.Store == nil || st.Store.Leader == nil || st.Store.Leader.NodeID == nil {
			t.Errorf("%s: got %d %s, want store.leader.node_id", r.Req, r.Status, r.Body)
		} else if *st.Store.Leader.NodeID != leaderID {
			t.Errorf("%s: store.leader.node_id %q, /nodes names %q as leader", r.Req, *st.Store.Leader.NodeID, leaderID)
		}
		for _, path := range []string{"/status?pretty", "/status?key=store.leader", "/nodes?pretty", "/nodes?nonvoters", "/readyz?noleader"} {
			if r := rqGet(t, u+path); r.Status != http.StatusOK {
				t.Errorf("%s: got %d %s, want 200", r.Req, r.Status, r.Body)
			}
		}
	}
}

// A slave forwards writes (schema statements too) and default-level reads
// to the master, answers after it applied the write, and answers 301 with
// ?redirect.
func TestRqliteSlaveForwards(t *testing.T) {
	msrv, _ := mustRunMaster(t)
	ssrv, _ := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	m, s := msrv.URL(), ssrv.URL()
	// Schema on a slave's /db/execute: forwarded and applied everywhere.
	rqOK(t, rqPost(t, s+"/db/execute", `["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`), `{"results":[{}]}`)
	rqOK(t, rqPost(t, s+"/db/query?level=none", `["SELECT name FROM sqlite_schema WHERE name = 'foo'"]`),
		`{"results":[{"columns":["name"],"types":["text"],"values":[["foo"]]}]}`)
	rqOK(t, rqPost(t, m+"/db/query", `["SELECT name FROM sqlite_schema WHERE name = 'foo'"]`),
		`{"results":[{"columns":["name"],"types":["text"],"values":[["foo"]]}]}`)
	// Writes: the master's answer, read back at once on the slave.
	rqOK(t, rqPost(t, s+"/db/execute", `[["INSERT INTO foo(name) VALUES(?)", "fiona"], "INSERT INTO foo(name) VALUES('declan')"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`)
	rqOK(t, rqPost(t, s+"/db/query?level=none", `["SELECT * FROM foo"]`),
		`{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"],[2,"declan"]]}]}`)
	rqOK(t, rqPost(t, s+"/db/execute?raft_index", `["INSERT INTO foo(name) VALUES('eve')"]`),
		fmt.Sprintf(`{"results":[{"last_insert_id":3,"rows_affected":1}],"raft_index":%d}`, msrv.Master.Log().LastIndex()))
	rqOK(t, rqPost(t, s+"/db/execute?transaction", `["INSERT INTO foo(name) VALUES('x')", "INSERT INTO nope VALUES(1)"]`),
		`{"results":[{"last_insert_id":4,"rows_affected":1},{"error":"no such table: nope"`+errV2("no such table: nope", 1, 1)+`}]}`)
	rqOK(t, rqPost(t, s+"/db/execute", `["INSERT INTO nope VALUES(1)", "UPDATE foo SET name = upper(name) WHERE id = 3"]`),
		`{"results":[{"error":"no such table: nope"`+errV2("no such table: nope", 1, 1)+`},{"rows_affected":1}]}`)
	rqOK(t, rqPost(t, s+"/db/request", `["INSERT INTO foo(name) VALUES('gus')", "SELECT name FROM foo ORDER BY id"]`),
		`{"results":[{"last_insert_id":4,"rows_affected":1},{"columns":["name"],"types":["text"],"values":[["fiona"],["declan"],["EVE"],["gus"]]}]}`)
	rqOK(t, rqCall(t, http.MethodPost, s+"/db/execute", "text/plain", "DELETE FROM foo WHERE id = 4"), `{"results":[{"rows_affected":1}]}`)
	// Reads at every level answer the same on the slave.
	for _, level := range []string{"", "?level=none", "?level=auto", "?level=weak", "?level=linearizable", "?level=strong", "?level=STRONG"} {
		rqOK(t, rqPost(t, s+"/db/query"+level, `["SELECT count(*) AS n FROM foo"]`), `{"results":[{"columns":["n"],"types":["integer"],"values":[[3]]}]}`)
	}
	rqOK(t, rqGet(t, s+"/db/query?q=SELECT%20count(*)%20AS%20n%20FROM%20foo"), `{"results":[{"columns":["n"],"types":["integer"],"values":[[3]]}]}`)
	if got, want := rqCount(t, s, "SELECT count(*) FROM foo"), rqCount(t, m, "SELECT count(*) FROM foo"); got != want {
		t.Errorf("slave %d rows, master %d", got, want)
	}
	// ?redirect: 301 to the master, same path and query, nothing done.
	last := msrv.Master.Log().LastIndex()
	for _, tc := range []struct{ method, pathQuery, body string }{
		{http.MethodPost, "/db/execute?redirect", `["INSERT INTO foo(name) VALUES('r')"]`},
		{http.MethodPost, "/db/execute?timings&redirect&transaction", `["INSERT INTO foo(name) VALUES('r')"]`},
		{http.MethodPost, "/db/query?redirect", `["SELECT * FROM foo"]`},
		{http.MethodPost, "/db/query?level=strong&redirect", `["SELECT * FROM foo"]`},
		{http.MethodPost, "/db/request?redirect&associative", `["INSERT INTO foo(name) VALUES('r')"]`},
		{http.MethodGet, "/db/query?q=SELECT%201&redirect", ""},
	} {
		r := rqCall(t, tc.method, s+tc.pathQuery, "application/json", tc.body)
		if want := m + tc.pathQuery; r.Status != http.StatusMovedPermanently || r.Header.Get("Location") != want {
			t.Errorf("%s\n got %d Location %q\nwant 301 Location %q", r.Req, r.Status, r.Header.Get("Location"), want)
		}
	}
	if got := msrv.Master.Log().LastIndex(); got != last {
		t.Errorf("redirected writes moved the log from %d to %d", last, got)
	}
	// A local read is served, redirect or not; the master ignores redirect.
	rqOK(t, rqPost(t, s+"/db/query?level=none&redirect", `["SELECT count(*) AS n FROM foo"]`), `{"results":[{"columns":["n"],"types":["integer"],"values":[[3]]}]}`)
	rqOK(t, rqPost(t, m+"/db/query?redirect", `["SELECT count(*) AS n FROM foo"]`), `{"results":[{"columns":["n"],"types":["integer"],"values":[[3]]}]}`)
	rqOK(t, rqPost(t, m+"/db/execute?redirect", `["DELETE FROM foo WHERE id = 1"]`), `{"results":[{"rows_affected":1}]}`)
}

// On a slave, level=none and auto read locally, freshness refuses stale
// reads with "stale read", and what needs the master fails while it is
// gone.
func TestRqliteSlaveLevels(t *testing.T) {
	msrv, _ := mustRunMaster(t)
	rqOK(t, rqPost(t, msrv.URL()+"/db/execute", `["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "INSERT INTO t(v) VALUES('one')"]`),
		`{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
	ssrv, _ := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	s := ssrv.URL()
	const body = `["SELECT v FROM t"]`
	const rows = `{"results":[{"columns":["v"],"types":["text"],"values":[["one"]]}]}`
	const stale = `{"results":[],"error":"stale read"}`
	rqOK(t, rqPost(t, s+"/db/query?level=none&freshness=1h", body), rows)
	rqOK(t, rqPost(t, s+"/db/query?level=none&freshness=1ns", body), stale)
	// The master ignores freshness.
	rqOK(t, rqPost(t, msrv.URL()+"/db/query?level=none&freshness=1ns", body), rows)

	// The master goes away.
	if err := msrv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"?level=none", "?level=auto", "?level=NONE", "?level=none&freshness=1h"} {
		rqOK(t, rqPost(t, s+"/db/query"+q, body), rows)
	}
	rqOK(t, rqGet(t, s+"/db/query?level=none&q=SELECT%20v%20FROM%20t"), rows)
	var last rqResp
	waitFor(t, "a 200ms freshness to refuse the slave's reads", func() bool {
		last = rqPost(t, s+"/db/query?level=none&freshness=200ms", body)
		return last.Status == http.StatusOK && last.body() == stale
	})
	rqOK(t, rqPost(t, s+"/db/query?level=none&freshness=200ms&associative&timings", body), stale)
	rqOK(t, rqPost(t, s+"/db/query?level=none&freshness=1h", body), rows)
	// What the master must answer fails visibly, never as served.
	for _, q := range []string{"", "?level=weak", "?level=linearizable", "?level=strong", "?level=bogus"} {
		rqNotServed(t, rqPost(t, s+"/db/query"+q, body))
	}
	rqNotServed(t, rqPost(t, s+"/db/execute", `["INSERT INTO t(v) VALUES('two')"]`))
	rqNotServed(t, rqPost(t, s+"/db/request", `["INSERT INTO t(v) VALUES('two')"]`))
	if r := rqPost(t, s+"/db/execute?redirect", `["INSERT INTO t(v) VALUES('two')"]`); r.Status != http.StatusMovedPermanently {
		t.Errorf("%s: got %d %s, want 301 (the slave knows its master's URL)", r.Req, r.Status, r.Body)
	}
	if n := rqCount(t, s, "SELECT count(*) FROM t"); n != 1 {
		t.Errorf("slave holds %d rows, want 1", n)
	}
}
