package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
)

// The seed-compatible POST / answers in the seed's exact shape.
func TestSeedExactJSON(t *testing.T) {
	srv, _ := mustRunMaster(t)
	for _, tc := range []struct {
		command, sql string
		want         string
	}{
		{"exec", "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT)", `{"rows_affected":0,"last_insert_id":0,"index":1}`},
		{"exec", "INSERT INTO users (username) VALUES ('ana')", `{"rows_affected":1,"last_insert_id":1,"index":2}`},
		{"query", "SELECT id, username FROM users", `{"columns":["id","username"],"types":["integer","text"],"values":[[1,"ana"]],"index":2}`},
		// A query with no row keeps its columns and types.
		{"query", "SELECT id, username FROM users WHERE id = 99", `{"columns":["id","username"],"types":["integer","text"],"index":2}`},
		// A write statement is logged even when it matches no row.
		{"exec", "DELETE FROM users WHERE id = 99", `{"rows_affected":0,"last_insert_id":0,"index":3}`},
		// A read sent as exec writes nothing and is not logged.
		{"exec", "SELECT count(*) AS n FROM users", `{"rows_affected":0,"last_insert_id":0,"columns":["n"],"types":["integer"],"values":[[1]],"index":3}`},
		{"exec", "INSERT INTO users (username) VALUES ('bo') RETURNING id, username", `{"rows_affected":1,"last_insert_id":2,"columns":["id","username"],"types":["integer","text"],"values":[[2,"bo"]],"index":4}`},
		// Several statements: rows affected add up, the last insert id is the last one's.
		{"exec", "INSERT INTO users (username) VALUES ('cy'); UPDATE users SET username = upper(username)", `{"rows_affected":4,"last_insert_id":3,"index":5}`},
		{"query", "SELECT username FROM users ORDER BY id", `{"columns":["username"],"types":["text"],"values":[["ANA"],["BO"],["CY"]],"index":5}`},
	} {
		status, body := post(t, srv.URL(), seedJSON(t, tc.command, tc.sql))
		if status != http.StatusOK || string(body) != tc.want+"\n" {
			t.Fatalf("%s %q:\n got %d %s\nwant 200 %s", tc.command, tc.sql, status, body, tc.want)
		}
	}
}

// Parameters keep their JSON type: an integral number is an INTEGER, another
// number a REAL, a string TEXT, null NULL, a boolean 1/0, an array of bytes a
// BLOB, which comes back as base64.
func TestSeedTypedParams(t *testing.T) {
	srv, c := mustRunMaster(t)
	mustExec(t, c, "CREATE TABLE p (i, r, s, n, b, bl)")
	status, body := post(t, srv.URL(), []byte(`{"command":"exec","query":"INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)",`+
		`"params":[9007199254740993, 2.0, "héllo \"q\"", null, true, [0, 1, 254, 255]]}`))
	if want := `{"rows_affected":1,"last_insert_id":1,"index":2}` + "\n"; status != http.StatusOK || string(body) != want {
		t.Fatalf("insert: %d %s, want %s", status, body, want)
	}
	status, body = post(t, srv.URL(), []byte(`{"command":"exec","query":"INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)",`+
		`"params":[-7, 1e300, "", null, false, []]}`))
	if want := `{"rows_affected":1,"last_insert_id":2,"index":3}` + "\n"; status != http.StatusOK || string(body) != want {
		t.Fatalf("insert: %d %s, want %s", status, body, want)
	}
	status, body = post(t, srv.URL(), seedJSON(t, "query",
		"SELECT i, typeof(i), r, typeof(r), s, typeof(s), n, typeof(n), b, typeof(b), bl, typeof(bl) FROM p ORDER BY rowid"))
	// Expression columns (typeof) get the first row's storage class; the
	// columns of p have no declared type either.
	want := `{"columns":["i","typeof(i)","r","typeof(r)","s","typeof(s)","n","typeof(n)","b","typeof(b)","bl","typeof(bl)"],` +
		`"types":["integer","text","real","text","text","text","","text","integer","text","blob","text"],` +
		`"values":[[9007199254740993,"integer",2,"real","héllo \"q\"","text",null,"null",1,"integer","AAH+/w==","blob"],` +
		`[-7,"integer",1e+300,"real","","text",null,"null",0,"integer","","blob"]],"index":3}` + "\n"
	if status != http.StatusOK || string(body) != want {
		t.Fatalf("query:\n got %d %s\nwant 200 %s", status, body, want)
	}
}

// A TIMESTAMP column filled by DEFAULT CURRENT_TIMESTAMP comes back as the
// text SQLite stores, from the master's pinned clock.
func TestSeedTimestampAsStored(t *testing.T) {
	at := time.Date(2026, 11, 25, 16, 55, 48, 123e6, time.UTC)
	srv, c := mustRunMasterConfig(t, master.Config{Now: func() time.Time { return at }})
	mustExec(t, c, "CREATE TABLE ev (id INTEGER PRIMARY KEY, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, d DATE DEFAULT (date('now')))")
	mustExec(t, c, "INSERT INTO ev (id) VALUES (1)")
	status, body := post(t, srv.URL(), seedJSON(t, "query", "SELECT at, typeof(at), d FROM ev"))
	want := `{"columns":["at","typeof(at)","d"],"types":["timestamp","text","date"],"values":[["2026-11-25 16:55:48","text","2026-11-25"]],"index":2}` + "\n"
	if status != http.StatusOK || string(body) != want {
		t.Fatalf("query:\n got %d %s\nwant 200 %s", status, body, want)
	}
}

// An expression column has no declared type: it takes the storage class of
// the first row's value, and stays "" when that value is NULL.
func TestSeedExpressionTypes(t *testing.T) {
	srv, c := mustRunMaster(t)
	mustExec(t, c, "CREATE TABLE v (x)")
	mustExec(t, c, "INSERT INTO v VALUES (1), ('two'), (3.5)")
	for _, tc := range []struct{ sql, want string }{
		{"SELECT 1+1 AS a, 'x'||'y' AS b, 1.5*2 AS c, x'00ff' AS d, NULL AS e",
			`{"columns":["a","b","c","d","e"],"types":["integer","text","real","blob",""],"values":[[2,"xy",3,"AP8=",null]],"index":2}`},
		// The type is the first row's, even when later rows differ.
		{"SELECT x FROM v ORDER BY rowid", `{"columns":["x"],"types":["integer"],"values":[[1],["two"],[3.5]],"index":2}`},
		{"SELECT x FROM v ORDER BY rowid DESC", `{"columns":["x"],"types":["real"],"values":[[3.5],["two"],[1]],"index":2}`},
		{"SELECT max(rowid) AS m, count(*) AS n FROM v", `{"columns":["m","n"],"types":["integer","integer"],"values":[[3,3]],"index":2}`},
	} {
		status, body := post(t, srv.URL(), seedJSON(t, "query", tc.sql))
		if status != http.StatusOK || string(body) != tc.want+"\n" {
			t.Fatalf("%q:\n got %d %s\nwant 200 %s", tc.sql, status, body, tc.want)
		}
	}
	// The Go client decodes the same answer.
	resp, err := c.Query(context.Background(), "SELECT x FROM v WHERE x = ?", "two")
	if err != nil || len(resp.Values) != 1 || resp.Values[0][0] != "two" || resp.Index != 2 {
		t.Fatalf("client query: %+v, %v", resp, err)
	}
}

// The Go client's params take Go values; a []byte must arrive as a BLOB, as
// the wire format's array of bytes does.
func TestClientBlobParam(t *testing.T) {
	_, c := mustRunMaster(t)
	mustExec(t, c, "CREATE TABLE b (v)")
	mustExec(t, c, "INSERT INTO b VALUES (?)", []any{json.Number("1"), json.Number("2"), json.Number("255")})
	resp, err := c.Query(context.Background(), "SELECT typeof(v), hex(v) FROM b")
	if err != nil || len(resp.Values) != 1 || resp.Values[0][0] != "blob" || resp.Values[0][1] != "0102FF" {
		t.Fatalf("array of bytes: %+v, %v", resp, err)
	}
	t.Run("[]byte", func(t *testing.T) {
		mustExec(t, c, "DELETE FROM b")
		mustExec(t, c, "INSERT INTO b VALUES (?)", []byte{1, 2, 255})
		resp, err := c.Query(context.Background(), "SELECT typeof(v), hex(v) FROM b")
		if err != nil || len(resp.Values) != 1 || resp.Values[0][0] != "blob" || resp.Values[0][1] != "0102FF" {
			t.Fatalf("[]byte param stored as %v, want blob 0102FF (err %v)", resp.Values, err)
		}
	})
}

// A named-parameter object binds :name, @name and $name, as rqlite's
// named parameters do (a key may carry the prefix too); the Go client
// sends one, and a slave forwards it. A "params" that is neither an array
// nor an object, a name the statement lacks, one parameter named twice
// are refused with 400 saying what is expected.
func TestSeedNamedParams(t *testing.T) {
	srv, c := mustRunMaster(t)
	ssrv, sc := mustRunSlave(t, srv.URL(), "s1")
	mustExec(t, c, "CREATE TABLE foo (name TEXT, age INTEGER, b BLOB)")
	for _, body := range []string{
		`{"command":"exec","query":"INSERT INTO foo (name, age, b) VALUES (:name, @age, $b)","params":{"name":"fiona","age":20,"b":[1,2,3]}}`,
		`{"command":"exec","query":"INSERT INTO foo (name, age, b) VALUES (:name, @age, $b)","params":{":name":"gus","@age":30,"$b":null}}`,
	} {
		if status, resp := post(t, srv.URL(), []byte(body)); status != http.StatusOK || !strings.Contains(string(resp), `"rows_affected":1`) {
			t.Fatalf("%s: %d %s", body, status, resp)
		}
	}
	status, resp := post(t, srv.URL(), []byte(`{"command":"query","query":"SELECT name, age, b FROM foo WHERE age > :min ORDER BY age","params":{"min":10}}`))
	if want := `"values":[["fiona",20,"AQID"],["gus",30,null]]`; status != http.StatusOK || !strings.Contains(string(resp), want) {
		t.Fatalf("named query: %d %s, want %s", status, resp, want)
	}
	// Through the Go client, at a slave: forwarded to the master.
	if _, err := sc.Seed(context.Background(), client.SeedRequest{Command: "exec",
		Query: "INSERT INTO foo (name, age, b) VALUES (:name, :age, :b)",
		Named: map[string]any{"name": "hal", "age": 40, "b": []byte{9, 8}}}); err != nil {
		t.Fatalf("named exec at the slave: %v", err)
	}
	waitApplied(t, ssrv, srv.Master.Log().LastIndex())
	for _, cl := range []*client.Client{c, sc} {
		resp, err := cl.Seed(context.Background(), client.SeedRequest{Command: "query",
			Query: "SELECT age, b FROM foo WHERE name = $who", Named: map[string]any{"who": "hal"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := json.Marshal(resp.Values); string(got) != `[[40,"CQg="]]` {
			t.Fatalf("the forwarded named write reads %s", got)
		}
	}
	for _, tc := range []struct{ params, want string }{
		{`"fiona"`, `"params" must be an array of values, for ? and ?NNN, or an object of named values, {"name": value}, for :name, @name or $name, not a string`},
		{`20`, `not a number`},
		{`{"name":"x","age":1,"b":null,"nosuch":1}`, `no parameter named "nosuch"`},
		{`{"name":"x","age":1}`, `$b is missing`},
		{`{"name":"x",":name":"y","age":1,"b":null}`, `parameters ":name" and "name" name the same parameter`},
		{`{"name":{"x":1},"age":1,"b":null}`, `parameter "name": unsupported parameter type`},
		{`{"":1}`, `parameter name ""`},
	} {
		body := `{"command":"exec","query":"INSERT INTO foo (name, age, b) VALUES (:name, @age, $b)","params":` + tc.params + `}`
		status, resp := post(t, srv.URL(), []byte(body))
		if status != http.StatusBadRequest {
			t.Fatalf("params %s: %d %s, want 400", tc.params, status, resp)
		}
		if er := errorBody(t, resp); !strings.Contains(er.Error, tc.want) {
			t.Fatalf("params %s: %q, want it to say %q", tc.params, er.Error, tc.want)
		}
	}
	if got := dump(t, c, "SELECT count(*) FROM foo"); got != "[[3]]" {
		t.Fatalf("refused writes were applied: %s rows", got)
	}
}

// "blob_array" on POST / returns a BLOB as the array of its bytes, told
// apart from text whatever the column's type; without it, base64 text.
func TestSeedBlobArray(t *testing.T) {
	srv, _ := mustRunMasterConfig(t, master.Config{})
	for body, want := range map[string]string{
		`{"command":"query","query":"SELECT x'00ff', 'AP8='","blob_array":true}`: `"values":[[[0,255],"AP8="]]`,
		`{"command":"query","query":"SELECT x'00ff', 'AP8='"}`:                   `"values":[["AP8=","AP8="]]`,
		`{"command":"exec","query":"SELECT x''","blob_array":true}`:              `"values":[[[]]]`,
	} {
		status, got := post(t, srv.URL(), []byte(body))
		if status != 200 || !strings.Contains(string(got), want) {
			t.Errorf("%s: %d %s, want %s", body, status, got, want)
		}
	}
}
