package api_test

// The exactness issue's cases on both APIs, at the master and through a
// slave: SQLite's error codes, statements ending the transaction, no-op
// writes, header PRAGMAs, a dump's framing, deferred foreign keys.

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A failed statement carries SQLite's codes: error_v2 on /db/*,
// sqlite_code and sqlite_extended_code on POST /, at the master and
// through a slave (which forwards), byte for byte.
func TestSQLiteErrorCodes(t *testing.T) {
	srv, mc := mustRunMaster(t)
	sl, _ := mustRunSlave(t, srv.URL(), "1")
	mustExec(t, mc, "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n NOT NULL, c CHECK (c > 0))")
	mustExec(t, mc, "CREATE TABLE p (id INTEGER PRIMARY KEY)")
	mustExec(t, mc, "CREATE TABLE ch (pid REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
	mustExec(t, mc, "INSERT INTO u VALUES (1, 'a', 1, 1)")
	for _, node := range []string{srv.URL(), sl.URL()} {
		for _, tc := range []struct{ body, want string }{
			{`["INSERT INTO u VALUES (1, 'b', 1, 1)"]`, `{"results":[{"error":"UNIQUE constraint failed: u.id"` + errV2("UNIQUE constraint failed: u.id", 19, 1555) + `}]}`},
			{`["INSERT INTO u VALUES (2, 'a', 1, 1)"]`, `{"results":[{"error":"UNIQUE constraint failed: u.name"` + errV2("UNIQUE constraint failed: u.name", 19, 2067) + `}]}`},
			{`["INSERT INTO u VALUES (3, 'c', NULL, 1)"]`, `{"results":[{"error":"NOT NULL constraint failed: u.n"` + errV2("NOT NULL constraint failed: u.n", 19, 1299) + `}]}`},
			{`["INSERT INTO u VALUES (4, 'd', 1, -1)"]`, `{"results":[{"error":"CHECK constraint failed: c > 0"` + errV2("CHECK constraint failed: c > 0", 19, 275) + `}]}`},
			{`["INSERT INTO ch VALUES (9)"]`, `{"results":[{"error":"FOREIGN KEY constraint failed"` + errV2("FOREIGN KEY constraint failed", 19, 787) + `}]}`},
			{`["PRAGMA cache_size = 10"]`, ``},
		} {
			r := rqPost(t, node+"/db/execute", tc.body)
			if tc.want == "" {
				// walship's own refusal: error_v2 with the message, no codes.
				if !strings.Contains(r.Body, `"error_v2":{"message":"statement not allowed: PRAGMA cache_size`) || strings.Contains(r.Body, `"sqlite"`) {
					t.Errorf("%s: %s", r.Req, r.Body)
				}
				continue
			}
			rqOK(t, r, tc.want)
		}
		status, b := post(t, node, seedJSON(t, "exec", "INSERT INTO u VALUES (1, 'z', 1, 1)"))
		var e struct {
			Error    string `json:"error"`
			Code     int    `json:"sqlite_code"`
			Extended int    `json:"sqlite_extended_code"`
		}
		if err := json.Unmarshal(b, &e); err != nil || status != 400 || e.Code != 19 || e.Extended != 1555 || e.Error != "UNIQUE constraint failed: u.id" {
			t.Errorf("POST / at %s: %d %s", node, status, b)
		}
	}
}

// A statement that ends the whole transaction fails alone, on every API;
// every statement answered as done is applied on every node.
func TestStatementEndingTransactionOnBothAPIs(t *testing.T) {
	srv, mc := mustRunMaster(t)
	sl, sc := mustRunSlave(t, srv.URL(), "1")
	mustExec(t, mc, "CREATE TABLE a (x)")
	mustExec(t, mc, "CREATE TABLE u (id INTEGER PRIMARY KEY)")
	mustExec(t, mc, "INSERT INTO u VALUES (1)")
	for i, node := range []string{srv.URL(), sl.URL()} {
		x := i * 10
		body := `["INSERT INTO a VALUES (` + itoa(x+1) + `)", "INSERT OR ROLLBACK INTO u VALUES (1)", "INSERT INTO a VALUES (` + itoa(x+2) + `)"]`
		r := rqPost(t, node+"/db/execute", body)
		top := rqDecode(t, r)
		if len(top.Results) != 3 || resultError(t, top.Results[0]) != "" || resultError(t, top.Results[1]) != "UNIQUE constraint failed: u.id" ||
			resultError(t, top.Results[2]) != "" {
			t.Fatalf("%s: %s", r.Req, r.Body)
		}
		// With ?transaction: nothing of it, and results up to the error.
		rqOK(t, rqPost(t, node+"/db/execute?transaction", `["INSERT INTO a VALUES (99)", "INSERT OR ROLLBACK INTO u VALUES (1)", "INSERT INTO a VALUES (98)"]`),
			`{"results":[{"last_insert_id":`+itoa(2*i+3)+`,"rows_affected":1},{"error":"UNIQUE constraint failed: u.id"`+errV2("UNIQUE constraint failed: u.id", 19, 1555)+`}]}`)
		// POST / is all-or-nothing.
		if status, b := post(t, node, seedJSON(t, "exec", "INSERT INTO a VALUES (97); INSERT OR ROLLBACK INTO u VALUES (1)")); status != 400 {
			t.Fatalf("POST / at %s: %d %s", node, status, b)
		}
	}
	st, _ := mc.LogStatus(context.Background())
	waitApplied(t, sl, st.LastIndex)
	for _, c := range []string{dump(t, mc, "SELECT x FROM a ORDER BY x"), dump(t, sc, "SELECT x FROM a ORDER BY x")} {
		if c != "[[1],[2],[11],[12]]" {
			t.Fatalf("a holds %s, want 1, 2, 11, 12", c)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// No-op writes SQLite accepts succeed on every endpoint, master and slave.
func TestNoOpWritesOnBothAPIs(t *testing.T) {
	srv, mc := mustRunMaster(t)
	sl, _ := mustRunSlave(t, srv.URL(), "1")
	mustExec(t, mc, "CREATE TABLE t (a)")
	mustExec(t, mc, "CREATE INDEX ti ON t (a)")
	for _, node := range []string{srv.URL(), sl.URL()} {
		for _, sql := range []string{"DROP TABLE IF EXISTS nosuch", "DROP INDEX IF EXISTS nosuch", "DROP VIEW IF EXISTS nosuch",
			"CREATE INDEX IF NOT EXISTS ti ON t (a)", "DELETE FROM t WHERE a = 1"} {
			b, _ := json.Marshal([]string{sql})
			rqOK(t, rqPost(t, node+"/db/execute", string(b)), `{"results":[{}]}`)
			q := sql
			if node == srv.URL() {
				q = "CREATE TABLE IF NOT EXISTS t (a); " + sql // a slave's POST / takes no schema statement
			}
			if status, body := post(t, node, seedJSON(t, "exec", q)); status != http.StatusOK {
				t.Errorf("POST / %s at %s: %d %s", sql, node, status, body)
			}
		}
	}
	// A migration script in one request.
	if status, body := post(t, srv.URL(), seedJSON(t, "exec", "CREATE TABLE IF NOT EXISTS t (a); DROP TABLE IF EXISTS old; PRAGMA user_version = 2")); status != 200 {
		t.Fatalf("migration: %d %s", status, body)
	}
	if got := dump(t, mc, "PRAGMA user_version"); got != "[[2]]" {
		t.Fatalf("user_version %s", got)
	}
}

// A dump's framing is accepted on POST / and /db/execute, as elements or as
// one text; its PRAGMA foreign_keys=OFF holds for that request only.
func TestDumpFraming(t *testing.T) {
	srv, mc := mustRunMaster(t)
	sl, sc := mustRunSlave(t, srv.URL(), "1")
	dumpText := "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE c (pid REFERENCES p (id));\nINSERT INTO c VALUES (1);\n" +
		"CREATE TABLE p (id INTEGER PRIMARY KEY);\nINSERT INTO p VALUES (1);\nINSERT INTO c VALUES (7);\nCOMMIT;\n"
	if status, b := post(t, srv.URL(), seedJSON(t, "exec", dumpText)); status != 200 {
		t.Fatalf("POST / of a dump: %d %s", status, b)
	}
	// As rqlite elements through a slave: one result per element, {} for
	// the framing.
	rqOK(t, rqPost(t, sl.URL()+"/db/execute", `["PRAGMA foreign_keys=OFF", "BEGIN", "INSERT INTO c VALUES (8)", "COMMIT"]`),
		`{"results":[{},{},{"last_insert_id":3,"rows_affected":1},{}]}`)
	// Enforcement is back for other requests.
	rqOK(t, rqPost(t, sl.URL()+"/db/execute", `["INSERT INTO c VALUES (9)"]`),
		`{"results":[{"error":"FOREIGN KEY constraint failed"`+errV2("FOREIGN KEY constraint failed", 19, 787)+`}]}`)
	// A framed request is one transaction: a failure undoes all of it.
	r := rqPost(t, srv.URL()+"/db/execute", `["BEGIN", "INSERT INTO p VALUES (2)", "INSERT INTO p VALUES (2)", "COMMIT"]`)
	if !strings.Contains(r.Body, "UNIQUE constraint failed") || dump(t, mc, "SELECT count(*) FROM p") != "[[1]]" {
		t.Fatalf("a failing framed request: %s", r.Body)
	}
	st, _ := mc.LogStatus(context.Background())
	waitApplied(t, sl, st.LastIndex)
	if got, want := dump(t, sc, "SELECT pid FROM c ORDER BY rowid"), "[[1],[7],[8]]"; got != want || dump(t, mc, "SELECT pid FROM c ORDER BY rowid") != want {
		t.Fatalf("c holds %s on the slave, want %s", got, want)
	}
	// Framing around nothing, or a BEGIN without its COMMIT, stays refused.
	for _, q := range []string{"BEGIN; COMMIT", "BEGIN; INSERT INTO p VALUES (3)", "PRAGMA foreign_keys=OFF"} {
		if status, b := post(t, srv.URL(), seedJSON(t, "exec", q)); status != 400 {
			t.Errorf("%q: %d %s", q, status, b)
		}
	}
}

// ALTER TABLE … ADD COLUMN … NOT NULL answers no stray column on either API.
func TestAlterAnswersNoColumns(t *testing.T) {
	srv, _ := mustRunMaster(t)
	rqOK(t, rqPost(t, srv.URL()+"/db/execute", `["CREATE TABLE t (a)", "ALTER TABLE t ADD COLUMN b INTEGER NOT NULL"]`), `{"results":[{},{}]}`)
	status, b := post(t, srv.URL(), seedJSON(t, "exec", "ALTER TABLE t ADD COLUMN c INTEGER NOT NULL"))
	if status != 200 || strings.Contains(string(b), "columns") {
		t.Fatalf("POST /: %d %s", status, b)
	}
}

// 60 queued single-row writes, two of them ending the transaction (OR
// ROLLBACK with a NULL into a NOT NULL column): the queue runs them as one
// request, and the 58 good rows are all applied.
func TestQueuedWritesSurviveStatementsEndingTheTransaction(t *testing.T) {
	srv, mc := mustRunMaster(t)
	// 60 requests at once make the client dial connections it may not
	// use; the server's Close would wait 5 s for such a connection to
	// send a request. Closed first (cleanups run last-in first-out).
	t.Cleanup(rqHTTP.CloseIdleConnections)
	mustExec(t, mc, "CREATE TABLE q (v NOT NULL)")
	done := make(chan rqResp, 60)
	for i := range 60 {
		go func() {
			sql := "INSERT INTO q VALUES (" + itoa(i) + ")"
			if i == 17 || i == 41 {
				sql = "INSERT OR ROLLBACK INTO q VALUES (NULL)"
			}
			b, _ := json.Marshal([]string{sql})
			done <- rqPost(t, srv.URL()+"/db/execute?queue", string(b))
		}()
	}
	for range 60 {
		if r := <-done; r.Status != 200 || !strings.Contains(r.Body, `"sequence_number":`) {
			t.Fatalf("%s: %d %s", r.Req, r.Status, r.Body)
		}
	}
	if r := rqPost(t, srv.URL()+"/db/execute?queue&wait", ""); r.Status != 200 {
		t.Fatalf("flush: %d %s", r.Status, r.Body)
	}
	if got := dump(t, mc, "SELECT count(*), sum(v) FROM q"); got != "[[58,1712]]" {
		t.Fatalf("q holds %s, want 58 rows summing to 1712", got)
	}
}

// After a schema change, every read on every node answers what a freshly
// prepared statement does, on both APIs, however many read connections
// cached the old one; user_version may be set and is replicated.
func TestReadsFollowSchemaChanges(t *testing.T) {
	srv, mc := mustRunMaster(t)
	sl, sc := mustRunSlave(t, srv.URL(), "1")
	rqOK(t, rqPost(t, srv.URL()+"/db/execute", `["CREATE TABLE t (a, b)", "INSERT INTO t VALUES (1, 2)"]`), `{"results":[{},{"last_insert_id":1,"rows_affected":1}]}`)
	st, _ := mc.LogStatus(context.Background())
	waitApplied(t, sl, st.LastIndex)
	for _, node := range []string{srv.URL(), sl.URL()} {
		for range 12 {
			rqPost(t, node+"/db/query?level=none", `["SELECT * FROM t"]`)
			post(t, node, seedJSON(t, "query", "SELECT * FROM t"))
		}
	}
	rqOK(t, rqPost(t, sl.URL()+"/db/execute", `["DROP TABLE t", "CREATE TABLE t (p, q, r)", "INSERT INTO t VALUES (7, 8, 9)", "PRAGMA user_version = 7"]`),
		`{"results":[{},{},{"last_insert_id":1,"rows_affected":1},{}]}`)
	for _, c := range []struct {
		url  string
		seed func() string
	}{{srv.URL(), func() string { return dump(t, mc, "SELECT * FROM t") }}, {sl.URL(), func() string { return dump(t, sc, "SELECT * FROM t") }}} {
		for range 12 {
			rqOK(t, rqPost(t, c.url+"/db/query?level=none", `["SELECT * FROM t", "PRAGMA user_version"]`),
				`{"results":[{"columns":["p","q","r"],"types":["integer","integer","integer"],"values":[[7,8,9]]},{"columns":["user_version"],"types":["integer"],"values":[[7]]}]}`)
			if got := c.seed(); got != "[[7,8,9]]" {
				t.Fatalf("POST / at %s: %s", c.url, got)
			}
		}
	}
}
