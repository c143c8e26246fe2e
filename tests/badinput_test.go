package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBadInput sends bad requests to POST / of a master and of a slave.
// Each is answered 4xx with a JSON error; afterwards both nodes still
// serve, and nothing was written, not even half of a request.
func TestBadInput(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)

	m.MustExec(`CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)`)
	m.MustExec(`INSERT INTO t (name) VALUES ('a')`)
	last := c.WaitConverged(m)
	const content = `SELECT * FROM t ORDER BY id`
	want := m.Dump(content)
	schema := tables(m)
	files := t.TempDir()
	attached := filepath.Join(files, "attached.db")
	vacuumed := filepath.Join(files, "vacuumed.db")
	vacuumedQ := filepath.Join(files, "vacuumed-by-query.db")

	body := func(cmd, sql string, params ...any) []byte {
		b, err := json.Marshal(Request{Command: cmd, Query: sql, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	exec := func(sql string, params ...any) []byte { return body("exec", sql, params...) }
	query := func(sql string, params ...any) []byte { return body("query", sql, params...) }
	huge := exec(`INSERT INTO t (name) VALUES ('` + strings.Repeat("x", 17<<20) + `')`)

	cases := []struct {
		name  string
		body  []byte
		want  int
		slave []int // the statuses a slave may answer, when not want
	}{
		{"malformed JSON", []byte(`{"command":"exec","query":`), 400, nil},
		{"not an object", []byte(`["exec","DELETE FROM t"]`), 400, nil},
		{"unknown command", []byte(`{"command":"drop","query":"DELETE FROM t"}`), 400, nil},
		{"no command", []byte(`{"query":"DELETE FROM t"}`), 400, nil},
		{"empty body", nil, 400, nil},
		{"empty query", exec(""), 400, nil},
		{"body over 16 MiB", huge, 413, nil},
		{"syntax error", exec(`INSERT INTO t (name) VALUES (`), 400, nil},
		{"UNIQUE violation", exec(`INSERT INTO t (name) VALUES ('a')`), 400, nil},
		{"too many parameters", exec(`INSERT INTO t (name) VALUES (?)`, "x", "y"), 400, nil},
		{"too few parameters", exec(`INSERT INTO t (id, name) VALUES (?, ?)`, 5), 400, nil},
		{"parameters of an object", []byte(`{"command":"exec","query":"INSERT INTO t (name) VALUES (?)","params":[{"x":1}]}`), 400, nil},
		{"params not an array", []byte(`{"command":"exec","query":"INSERT INTO t (name) VALUES (?)","params":"x"}`), 400, nil},
		{"parameters with two statements", exec(`INSERT INTO t (name) VALUES (?); INSERT INTO t (name) VALUES (?)`, "x", "y"), 400, nil},
		{"second statement fails", exec(`INSERT INTO t (name) VALUES ('zz'); INSERT INTO t (name) VALUES ('a')`), 400, nil},
		{"second statement is a syntax error", exec(`INSERT INTO t (name) VALUES ('zz'); INSERT INTO`), 400, nil},
		{"query hiding a write", query(`SELECT 1; DELETE FROM t`), 400, nil},
		{"query of a write", query(`DELETE FROM t`), 400, nil},
		{"query of an INSERT RETURNING", query(`INSERT INTO t (name) VALUES ('q') RETURNING id`), 400, nil},
		{"BEGIN", exec(`BEGIN`), 400, nil},
		{"BEGIN without COMMIT", exec(`BEGIN; INSERT INTO t (name) VALUES ('zz')`), 400, nil},
		{"COMMIT", exec(`COMMIT`), 400, nil},
		{"SAVEPOINT", exec(`SAVEPOINT sp`), 400, nil},
		{"ATTACH", exec(`ATTACH DATABASE '` + attached + `' AS other`), 400, nil},
		{"VACUUM INTO", exec(`VACUUM INTO '` + vacuumed + `'`), 400, nil},
		{"VACUUM INTO as query", query(`VACUUM INTO '` + vacuumedQ + `'`), 400, nil},
		{"VACUUM", exec(`VACUUM`), 400, nil},
		{"load_extension", exec(`SELECT load_extension('/nonexistent/walship-ext')`), 400, nil},
		{"load_extension as query", query(`SELECT load_extension('/nonexistent/walship-ext')`), 400, nil},
		{"CREATE TEMP TABLE", exec(`CREATE TEMP TABLE tmp (a)`), 400, []int{403}},
		{"PRAGMA foreign_keys=OFF", exec(`PRAGMA foreign_keys=OFF`), 400, nil},
		{"PRAGMA writable_schema", exec(`PRAGMA writable_schema=ON`), 400, nil},
		{"INSERT INTO _walship", exec(`INSERT INTO _walship DEFAULT VALUES`), 400, nil},
		{"DELETE FROM _walship", exec(`DELETE FROM _walship`), 400, nil},
		{"is_master", []byte(`{"command":"exec","query":"INSERT INTO t (name) VALUES ('m')","is_master":true}`), 403, nil},
	}

	for _, n := range []*Node{m, s} {
		for _, tc := range cases {
			t.Run(n.Name()+"/"+tc.name, func(t *testing.T) {
				status, b, err := n.Post(tc.body)
				if err != nil {
					t.Fatalf("POST / %.200s: %v", tc.body, err)
				}
				ok := status == tc.want || (n.Role == RoleSlave && slices.Contains(tc.slave, status))
				if !ok {
					t.Errorf("POST / %.200s: want %d, got %d: %.500s", tc.body, tc.want, status, b)
				}
				var e struct {
					Error *string `json:"error"`
				}
				if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || *e.Error == "" {
					t.Errorf("POST / %.200s: want a JSON error message, got %d %.500s", tc.body, status, b)
				}
			})
		}
	}

	for _, n := range []*Node{m, s} {
		if err := n.waitReady(startTimeout); err != nil {
			t.Errorf("%s no longer serves: %v", n, err)
		}
		if got := n.Dump(content); got != want {
			t.Errorf("%s: t changed:\nbefore: %s\nafter:  %s", n, want, got)
		}
		if got := tables(n); got != schema {
			t.Errorf("%s: sqlite_master changed:\nbefore: %s\nafter:  %s", n, schema, got)
		}
	}
	if got := m.MustLogStatus().LastIndex; got != last {
		t.Errorf("the master's last_index went from %d to %d", last, got)
	}
	for _, f := range []string{attached, vacuumed, vacuumedQ} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was created", f)
		}
	}

	// Good writes still work, at both nodes, and replicate.
	m.MustExec(`INSERT INTO t (name) VALUES ('b')`)
	s.MustExec(`INSERT INTO t (name) VALUES ('c')`)
	c.WaitConverged(m)
	if got, want := s.Dump(content), m.Dump(content); got != want || !strings.Contains(got, `"c"`) {
		t.Errorf("after the bad input: slave %s, master %s", got, want)
	}
}
