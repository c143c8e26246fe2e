package tests

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rqlite/gorqlite"
)

// authUsers are the users of the matrix: one per permission, an admin whose
// password is a bcrypt hash, and the anonymous user, who may ask /readyz.
var authUsers = []struct {
	name, password string
	perms          []string
}{
	{"admin", "admin-pw", []string{"all"}},
	{"repl", "repl-pw", []string{"replicate"}},
	{"writer", "writer-pw", []string{"execute"}},
	{"reader", "reader-pw", []string{"query"}},
	{"both", "both-pw", []string{"execute", "query"}},
	{"backup", "backup-pw", []string{"backup"}},
	{"loader", "loader-pw", []string{"load"}},
	{"ops", "ops-pw", []string{"status"}},
}

// writeAuthFile writes a credentials file: the admin's password hashed with
// walship passwd, the others plain; extra changes a user's perms.
func writeAuthFile(t *testing.T, extra map[string][]string) string {
	t.Helper()
	cmd := exec.Command(walshipBin, "passwd")
	cmd.Stdin = strings.NewReader("admin-pw\n")
	out, err := cmd.Output()
	hash := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(hash, "$2") {
		t.Fatalf("walship passwd: %v: %q", err, out)
	}
	var entries []map[string]any
	for _, u := range authUsers {
		pw, perms := u.password, u.perms
		if u.name == "admin" {
			pw = hash
		}
		if p, ok := extra[u.name]; ok {
			perms = p
		}
		entries = append(entries, map[string]any{"username": u.name, "password": pw, "perms": perms})
	}
	entries = append(entries, map[string]any{"username": "*", "perms": []string{"ready"}})
	b, _ := json.Marshal(entries)
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// authCase is one endpoint of the matrix, the user that holds its
// permission and one that does not.
type authCase struct {
	method, path string
	body         string
	holder, lack string
}

var authCases = []authCase{
	{"POST", "/", `{"command":"exec","query":"INSERT INTO t (v) VALUES (1)"}`, "writer", "reader"},
	{"POST", "/", `{"command":"query","query":"SELECT count(*) FROM t"}`, "reader", "writer"},
	{"POST", "/db/execute", `["INSERT INTO t (v) VALUES (2)"]`, "writer", "reader"},
	{"GET", "/db/query?q=SELECT+count(*)+FROM+t", "", "reader", "writer"},
	{"POST", "/db/request", `["SELECT 1"]`, "both", "reader"},
	{"GET", "/db/backup", "", "backup", "reader"},
	{"POST", "/db/load", "CREATE TABLE IF NOT EXISTS loaded (a);", "loader", "writer"},
	{"GET", "/db/snapshot", "", "repl", "reader"},
	{"GET", "/log/entries?from=1", "", "repl", "reader"},
	{"GET", "/log/status", "", "ops", "reader"},
	{"GET", "/status", "", "ops", "reader"},
	{"GET", "/nodes", "", "ops", "reader"},
	{"GET", "/metrics", "", "ops", "reader"},
	{"GET", "/db/checksum", "", "ops", "reader"},
	{"POST", "/db/verify", "", "ops", "reader"},
}

// authDo sends one request with the given credentials (user "" for none)
// and returns its status.
func authDo(t *testing.T, n *Node, c authCase, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(c.method, n.URL()+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(c.body, "{") || strings.HasPrefix(c.body, "[") {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	} else {
		req.Header.Set("Authorization", "") // the harness adds none
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	body := readAll(resp)
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s %s: 401 without WWW-Authenticate", c.method, c.path)
	}
	if resp.StatusCode == http.StatusForbidden && !bytes.Contains(body, []byte("lacks")) && !bytes.Contains(body, []byte("permission")) {
		t.Errorf("%s %s as %s: 403 that names no permission: %s", c.method, c.path, user, body)
	}
	return resp.StatusCode
}

func password(user string) string {
	for _, u := range authUsers {
		if u.name == user {
			return u.password
		}
	}
	return ""
}

// The permission × endpoint matrix, with real processes: every endpoint of
// both APIs, the feed, status, metrics, backup, load and verify, asked with
// no credentials, a wrong password, a user lacking the permission and one
// holding it: 401 (with a Basic challenge), 401, 403 naming the
// permission, 2xx; a refused request changes nothing. A slave pulls the
// feed with its own user (replicate); a write it forwards is judged at the
// master by the client's credentials, not the slave's; a slave whose user
// lacks replicate gets nothing.
func TestAuthMatrix(t *testing.T) {
	c := NewCluster(t)
	file := writeAuthFile(t, nil)
	m := c.MustRunMaster(WithArgs("--auth", file), WithCredentials("admin", "admin-pw"))
	// The slave's own file lets reader write: the master does not.
	slaveFile := writeAuthFile(t, map[string][]string{"reader": {"query", "execute"}})
	s := c.MustRunSlave(1, m, WithArgs("--auth", slaveFile, "--master-user", "repl"),
		WithEnv("WALSHIP_MASTER_PASSWORD", "repl-pw"), WithCredentials("admin", "admin-pw"))
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	c.WaitConverged(m)

	for _, node := range []*Node{m, s} {
		for _, tc := range authCases {
			if node == s && (tc.path == "/db/load" || tc.path == "/log/entries?from=1") {
				continue // the master's alone
			}
			name := fmt.Sprintf("%s %s %s %.20s", node.Name(), tc.method, tc.path, tc.body)
			before, err := m.Checksum()
			if err != nil {
				t.Fatal(err)
			}
			for _, cred := range []struct{ user, pw, what string }{
				{"", "", "no credentials"}, {"admin", "wrong-pass-7f3a", "a wrong password"}, {"nobody", "x", "an unknown user"},
				{tc.lack, password(tc.lack), "a user lacking the permission"},
			} {
				want := http.StatusUnauthorized
				if cred.user == tc.lack {
					want = http.StatusForbidden
				}
				if got := authDo(t, node, tc, cred.user, cred.pw); got != want {
					t.Errorf("%s with %s: %d, want %d", name, cred.what, got, want)
				}
			}
			// (Content, not the index: a replica check asked for before
			// logs its result when its hash is done.)
			if after, err := m.Checksum(); err != nil || after.Checksum != before.Checksum {
				t.Fatalf("%s: refused requests changed the database: %v", name, err)
			}
			if got := authDo(t, node, tc, tc.holder, password(tc.holder)); got/100 != 2 {
				t.Errorf("%s as %s, who holds the permission: %d", name, tc.holder, got)
			}
		}
	}
	// Failed attempts are logged, never with the password.
	for _, n := range []*Node{m, s} {
		if out := n.Output(); !strings.Contains(out, "authentication failed") || strings.Contains(out, "wrong-pass-7f3a") {
			t.Errorf("%s's log: a failed attempt not logged, or logged with its password", n)
		}
	}
	// /readyz: anonymous holds ready; a wrong password is still refused.
	ready := authCase{method: "GET", path: "/readyz"}
	if got := authDo(t, m, ready, "", ""); got != 200 {
		t.Errorf("/readyz without credentials: %d", got)
	}
	if got := authDo(t, m, ready, "admin", "wrong"); got != 401 {
		t.Errorf("/readyz with a wrong password: %d", got)
	}
	// A write forwarded by the slave is judged by the client's credentials
	// at the master: the slave's file lets reader write, the master's not.
	before, _ := m.Checksum()
	fwd := authCase{"POST", "/db/execute", `["INSERT INTO t (v) VALUES ('forwarded')"]`, "", ""}
	if got := authDo(t, s, fwd, "reader", "reader-pw"); got != http.StatusForbidden {
		t.Errorf("a write forwarded for reader: %d, want the master's 403", got)
	}
	seed := authCase{"POST", "/", `{"command":"exec","query":"INSERT INTO t (v) VALUES ('forwarded')"}`, "", ""}
	if got := authDo(t, s, seed, "reader", "reader-pw"); got != http.StatusForbidden {
		t.Errorf("a seed write forwarded for reader: %d, want the master's 403", got)
	}
	if after, _ := m.Checksum(); after.Checksum != before.Checksum {
		t.Fatal("a refused forwarded write changed the database")
	}
	// A slave whose user lacks replicate gets nothing.
	// (Started without waiting for /readyz: a slave that never hears from
	// its master is not ready.)
	s2 := c.newNode(RoleSlave, 2, "slave-2", []Option{WithArgs("--master-user", "reader"), WithEnv("WALSHIP_MASTER_PASSWORD", "reader-pw")})
	s2.Master, s2.MasterURL, s2.Addr = m, m.URL(), freeAddr(t)
	if err := s2.start(); err != nil {
		t.Fatal(err)
	}
	m.MustExec("INSERT INTO t (v) VALUES ('after')")
	st := s2.WaitFor("the feed refused", waitTimeout, func(st *LogStatus) bool {
		return strings.Contains(string(st.Body), "403") || strings.Contains(string(st.Body), "replicate")
	})
	if st.AppliedIndex != 0 {
		t.Fatalf("a slave without replicate applied %d entries: %s", st.AppliedIndex, st.Body)
	}
}

// rqlite's Go client and its database/sql driver, with basic auth in the
// URL as they take it, through the master and a slave (a write at the
// slave is forwarded with the client's credentials); a wrong password is
// refused.
func TestAuthGorqlite(t *testing.T) {
	c := NewCluster(t)
	file := writeAuthFile(t, nil)
	m := c.MustRunMaster(WithArgs("--auth", file), WithCredentials("admin", "admin-pw"))
	s := c.MustRunSlave(1, m, WithArgs("--auth", file, "--master-user", "repl"),
		WithEnv("WALSHIP_MASTER_PASSWORD", "repl-pw"), WithCredentials("admin", "admin-pw"))
	m.MustExec("CREATE TABLE g (id INTEGER PRIMARY KEY, v TEXT)")
	c.WaitConverged(m)
	withUser := func(n *Node, user, pw string) string {
		return "http://" + user + ":" + pw + "@" + n.Addr + "/?disableClusterDiscovery=true"
	}
	for _, n := range []*Node{m, s} {
		conn := gorqliteOpen(t, withUser(n, "both", "both-pw"))
		if _, err := conn.WriteOneParameterized(gorqlite.ParameterizedStatement{Query: "INSERT INTO g (v) VALUES (?)", Arguments: []any{n.Name()}}); err != nil {
			t.Fatalf("gorqlite write through %s: %v", n, err)
		}
		db, err := sql.Open("rqlite", withUser(n, "both", "both-pw"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec("INSERT INTO g (v) VALUES (?)", "sql "+n.Name()); err != nil {
			t.Fatalf("database/sql write through %s: %v", n, err)
		}
		var count int
		if err := db.QueryRow("SELECT count(*) FROM g").Scan(&count); err != nil || count < 2 {
			t.Fatalf("database/sql read through %s: %d, %v", n, count, err)
		}
		bad, err := sql.Open("rqlite", withUser(n, "both", "wrong"))
		if err == nil {
			_, err = bad.Exec("INSERT INTO g (v) VALUES ('no')")
			bad.Close()
		}
		if err == nil {
			t.Fatalf("a wrong password wrote through %s", n)
		}
	}
	if got := m.Count("SELECT count(*) FROM g WHERE v <> 'no'"); got != 4 {
		t.Fatalf("%d rows written", got)
	}
}

// The credentials file is re-read on SIGHUP: a user added is let in, a
// user removed is shut out; a file that no longer parses is logged and
// the one before stays; a bad file at start is a clear error.
func TestAuthReloadOnSIGHUP(t *testing.T) {
	c := NewCluster(t)
	file := writeAuthFile(t, nil)
	m := c.MustRunMaster(WithArgs("--auth", file), WithCredentials("admin", "admin-pw"))
	status := authCase{method: "GET", path: "/log/status"}
	if got := authDo(t, m, status, "newbie", "newbie-pw"); got != 401 {
		t.Fatalf("an unknown user: %d", got)
	}
	b, _ := os.ReadFile(file)
	var entries []map[string]any
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	kept := entries[:0]
	for _, e := range entries {
		if e["username"] != "ops" {
			kept = append(kept, e)
		}
	}
	kept = append(kept, map[string]any{"username": "newbie", "password": "newbie-pw", "perms": []string{"status"}})
	b, _ = json.Marshal(kept)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(m.pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	hup()
	deadline := time.Now().Add(waitTimeout)
	for authDo(t, m, status, "newbie", "newbie-pw") != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("the added user is not let in after SIGHUP\n%s", m.Output())
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
	if got := authDo(t, m, status, "ops", "ops-pw"); got != 401 {
		t.Fatalf("a removed user after SIGHUP: %d", got)
	}
	if err := os.WriteFile(file, []byte(`[{"username": "x", "password": "y", "perms": ["nonsense"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	hup()
	deadline = time.Now().Add(waitTimeout)
	for !strings.Contains(m.Output(), "nonsense") {
		if time.Now().After(deadline) {
			t.Fatalf("a bad file on SIGHUP is not logged\n%s", m.Output())
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
	if got := authDo(t, m, status, "newbie", "newbie-pw"); got != 200 {
		t.Fatalf("after a bad file the old one should stay: %d", got)
	}
	// A bad file at start stops the node with an error naming it.
	m.Kill()
	code, out := m.StartExpectExit(startTimeout)
	if code == 0 || !strings.Contains(out, "users.json") || !strings.Contains(out, "nonsense") {
		t.Fatalf("a bad credentials file at start: exit %d\n%s", code, out)
	}
}

// The command line carries credentials: --user NAME with WALSHIP_PASSWORD,
// or NAME:PASSWORD; without them a node with --auth says 401.
func TestAuthCommandLine(t *testing.T) {
	c := NewCluster(t)
	file := writeAuthFile(t, nil)
	m := c.MustRunMaster(WithArgs("--auth", file), WithCredentials("admin", "admin-pw"))
	s := c.MustRunSlave(1, m, WithArgs("--auth", file, "--master-user", "repl"),
		WithEnv("WALSHIP_MASTER_PASSWORD", "repl-pw"), WithCredentials("admin", "admin-pw"))
	m.MustExec("CREATE TABLE cli (v)")
	run := func(env string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(walshipBin, args...)
		cmd.Env = append(os.Environ(), env)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("", "exec", "--node", m.URL(), "INSERT INTO cli VALUES (1)"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("exec without credentials: %v\n%s", err, out)
	}
	if out, err := run("WALSHIP_PASSWORD=writer-pw", "exec", "--node", s.URL(), "--user", "writer", "INSERT INTO cli VALUES (1)"); err != nil {
		t.Fatalf("exec --user writer through the slave: %v\n%s", err, out)
	}
	if out, err := run("", "query", "--node", s.URL(), "--user", "reader:reader-pw", "SELECT count(*) AS n FROM cli"); err != nil || !strings.Contains(out, "1") {
		t.Fatalf("query --user reader:…: %v\n%s", err, out)
	}
	if out, err := run("", "status", m.URL(), "--user", "ops:ops-pw"); err != nil || !strings.Contains(out, "slave-1") && !strings.Contains(out, s.URL()) {
		t.Fatalf("status --user ops: %v\n%s", err, out)
	}
	if out, err := run("", "exec", "--node", m.URL(), "--user", "reader", "INSERT INTO cli VALUES (2)"); err == nil || !strings.Contains(out, "WALSHIP_PASSWORD") {
		t.Fatalf("--user without a password: %v\n%s", err, out)
	}
}
