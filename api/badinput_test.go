package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
)

// badInput is one request that POST / must refuse.
type badInput struct {
	name   string
	body   []byte
	status int
	// says holds what the error message must mention, lower case: the
	// problem, named.
	says string
}

// bugs are cases every node gets wrong, by name: known product bugs.
var bugs = map[string]string{}

// slaveBugs are cases a slave gets wrong, by name: known product bugs.
var slaveBugs = map[string]string{}

func badInputs(t *testing.T) []badInput {
	exec := func(sql string, params ...any) []byte { return seedJSON(t, "exec", sql, params...) }
	query := func(sql string, params ...any) []byte { return seedJSON(t, "query", sql, params...) }
	raw := func(s string) []byte { return []byte(s) }
	// Just over the 16 MiB limit, built in memory.
	huge := make([]byte, 0, api.DefaultMaxBody+64)
	huge = append(huge, `{"command":"exec","query":"INSERT INTO t (v) VALUES ('`...)
	huge = append(huge, strings.Repeat("x", api.DefaultMaxBody)...)
	huge = append(huge, `')"}`...)
	return []badInput{
		{"malformed JSON", raw(`{"command":"exec","query":`), 400, "malformed json"},
		{"not an object", raw(`["exec","SELECT 1"]`), 400, "malformed json"},
		{"closing bracket after the value", raw(`{"command":"query","query":"SELECT 1"}]`), 400, "json"},
		{"two JSON values", raw(`{"command":"query","query":"SELECT 1"} {"command":"query","query":"SELECT 2"}`), 400, "more than one json value"},
		{"unknown command", raw(`{"command":"drop","query":"SELECT 1"}`), 400, `unknown command "drop"`},
		{"no command", raw(`{"query":"SELECT 1"}`), 400, `unknown command ""`},
		{"empty body", raw(""), 400, "empty body"},
		{"white space body", raw(" \n\t"), 400, "empty body"},
		{"no SQL", exec("  ;; -- nothing"), 400, "no sql statement"},
		{"body over 16 MiB", huge, 413, "limit is 16777216 bytes"},
		{"syntax error", exec("INSERT INTO t VALUS (1)"), 400, "syntax error"},
		{"syntax error in query", query("SELEC 1"), 400, "syntax error"},
		{"incomplete SQL", exec("INSERT INTO t (v) VALUES ('unterminated)"), 400, "unterminated quoted string"},
		{"UNIQUE violation", exec("INSERT INTO t (v) VALUES ('a')"), 400, "unique constraint failed: t.v"},
		{"too many parameters", exec("INSERT INTO t (v) VALUES (?)", "x", "y"), 400, "the statement takes 1"},
		{"missing parameter", exec("INSERT INTO t (v) VALUES (?)"), 400, "the statement takes 1"},
		{"object parameter", raw(`{"command":"exec","query":"INSERT INTO t (v) VALUES (?)","params":[{"a":1}]}`), 400, "parameter 1: unsupported parameter type"},
		{"nested array parameter", raw(`{"command":"exec","query":"INSERT INTO t (v) VALUES (?)","params":[[[1]]]}`), 400, "parameter 1: an array parameter must hold byte values"},
		{"byte out of range", raw(`{"command":"exec","query":"INSERT INTO t (v) VALUES (?)","params":[[256]]}`), 400, "byte values 0..255"},
		{"parameters with two statements", exec("INSERT INTO t (v) VALUES (?); INSERT INTO t (v) VALUES (?)", "x", "y"), 400, "only with a single statement"},
		{"write hidden behind a read", query("SELECT 1; DELETE FROM t"), 400, "may not change the database"},
		{"CTE that deletes, as query", query("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)"), 400, "may not change the database"},
		{"INSERT as query", query("INSERT INTO t (v) VALUES ('q')"), 400, "may not change the database"},
		{"BEGIN", exec("BEGIN"), 400, "transaction control"},
		{"BEGIN without COMMIT", exec("BEGIN; INSERT INTO t (v) VALUES ('b')"), 400, "transaction control"},
		{"COMMIT without BEGIN", exec("INSERT INTO t (v) VALUES ('commit-less'); COMMIT"), 400, "transaction control"},
		{"BEGIN and COMMIT around nothing", exec("BEGIN; COMMIT"), 400, "transaction control"},
		{"COMMIT", exec("COMMIT"), 400, "transaction control"},
		{"SAVEPOINT", exec("SAVEPOINT s1"), 400, "transaction control"},
		{"ATTACH", exec("ATTACH DATABASE 'other.db' AS other"), 400, "attach is not allowed"},
		{"DETACH", exec("DETACH DATABASE other"), 400, "detach is not allowed"},
		{"VACUUM", exec("VACUUM"), 400, "vacuum is not allowed"},
		{"VACUUM INTO", exec("VACUUM INTO '" + t.TempDir() + "/copy.db'"), 400, "vacuum is not allowed"},
		{"load_extension", exec("SELECT load_extension('/tmp/evil.so')"), 400, "load_extension() is not allowed"},
		{"load_extension in a query", query("SELECT load_extension('/tmp/evil.so')"), 400, "load_extension() is not allowed"},
		{"CREATE TEMP TABLE", exec("CREATE TEMP TABLE tt (x)"), 400, "temporary objects are not allowed"},
		{"PRAGMA foreign_keys=OFF", exec("PRAGMA foreign_keys=OFF"), 400, "pragma foreign_keys is not allowed"},
		{"PRAGMA writable_schema=1", exec("PRAGMA writable_schema=1"), 400, "pragma writable_schema is not allowed"},
		{"INSERT into _walship", exec("INSERT INTO _walship (id, log_id, applied_index) VALUES (2, 'x', 0)"), 400, "_walship is walship's own table"},
		{"UPDATE _walship", exec("UPDATE _walship SET applied_index = 0"), 400, "_walship is walship's own table"},
		{"DELETE from _walship", exec("DELETE FROM _walship"), 400, "_walship is walship's own table"},
		{"DROP TABLE _walship", exec("DROP TABLE _walship"), 400, "_walship is walship's own table"},
		{"total_changes() in a write", exec("INSERT INTO t (v) VALUES (total_changes())"), 400, "total_changes() is not allowed"},
		{"second statement fails", exec("INSERT INTO t (v) VALUES ('half'); INSERT INTO nosuch VALUES (1)"), 400, "no such table: nosuch"},
		{"second statement violates UNIQUE", exec("INSERT INTO t (v) VALUES ('half'); INSERT INTO t (v) VALUES ('a')"), 400, "unique constraint failed"},
		{"is_master", raw(`{"command":"exec","query":"INSERT INTO t (v) VALUES ('m')","is_master":true}`), 403, "is_master"},
	}
}

// Bad input on POST / is refused with the fitting status and a message that
// names the problem, on a master and on a slave, and leaves nothing behind.
func TestSeedBadInput(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
	mustExec(t, mc, "INSERT INTO t (v) VALUES ('a'), ('b')")
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	last := msrv.Master.Log().LastIndex()
	waitApplied(t, ssrv, last)
	const content = "SELECT id, v FROM t ORDER BY id"
	want := dump(t, mc, content)
	if want != `[[1,"a"],[2,"b"]]` {
		t.Fatalf("content %s", want)
	}
	cases := badInputs(t)
	for _, node := range []struct {
		name string
		srv  *api.Server
	}{{"master", msrv}, {"slave", ssrv}} {
		t.Run(node.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					if bug := bugs[tc.name]; bug != "" {
						t.Skip(bug)
					}
					if bug := slaveBugs[tc.name]; node.srv.Slave != nil && bug != "" {
						t.Skip(bug)
					}
					status, body := post(t, node.srv.URL(), tc.body)
					if status != tc.status {
						t.Fatalf("status %d, want %d: %.300s", status, tc.status, body)
					}
					er := errorBody(t, body)
					t.Logf("%d %s", status, er.Error)
					if msg := strings.ToLower(er.Error); !strings.Contains(msg, tc.says) {
						t.Errorf("error %q does not say %q", er.Error, tc.says)
					}
					if strings.Contains(string(body), "goroutine ") || strings.Contains(string(body), ".go:") {
						t.Errorf("the answer shows a stack trace: %s", body)
					}
					if er.Master != "" {
						t.Errorf("a refusal names a master: %s", body)
					}
				})
			}
		})
	}
	// The nodes still answer, and nothing was written, not even half of a
	// request.
	if got := msrv.Master.Log().LastIndex(); got != last {
		t.Fatalf("the master's last index moved from %d to %d", last, got)
	}
	if got := dump(t, mc, content); got != want {
		t.Fatalf("master content %s, want %s", got, want)
	}
	if got := dump(t, sc, content); got != want {
		t.Fatalf("slave content %s, want %s", got, want)
	}
	if got := ssrv.Slave.DB().AppliedIndex(); got != last {
		t.Fatalf("slave applied %d, want %d", got, last)
	}
	resp := mustExec(t, sc, "INSERT INTO t (v) VALUES ('c')")
	if resp.Index != last+1 || *resp.RowsAffected != 1 || *resp.LastInsertID != 3 {
		t.Fatalf("a good write after the bad ones: %+v", resp)
	}
}

// Unknown paths and methods answer JSON errors too.
func TestUnknownPathAndMethod(t *testing.T) {
	srv, _ := mustRunMaster(t)
	for _, tc := range []struct {
		method, path string
		status       int
		want         string
	}{
		{http.MethodGet, "/nope", 404, `{"error":"no such endpoint: GET /nope"}`},
		{http.MethodPost, "/db/nope", 404, `{"error":"no such endpoint: POST /db/nope"}`},
		{http.MethodGet, "/", 405, `{"error":"method GET not allowed on /"}`},
		{http.MethodDelete, "/", 405, `{"error":"method DELETE not allowed on /"}`},
		{http.MethodPost, "/log/status", 405, `{"error":"method POST not allowed on /log/status"}`},
	} {
		status, h, body := do(t, tc.method, srv.URL()+tc.path, nil)
		if status != tc.status || string(body) != tc.want+"\n" || h.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("%s %s: %d %s %q, want %d %s application/json", tc.method, tc.path, status, h.Get("Content-Type"), body, tc.status, tc.want)
		}
	}
	if _, err := client.New(srv.URL()+"/nope").Query(context.Background(), "SELECT 1"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("client on an unknown path: %v, want ErrNotFound", err)
	}
}
