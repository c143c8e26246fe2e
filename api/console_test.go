package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/auth"
	"github.com/walship/walship/master"
)

func TestConsoleFiles(t *testing.T) {
	srv, _ := mustRunMaster(t)
	base := srv.URL()
	req, _ := http.NewRequest(http.MethodGet, base+"/console", nil)
	resp, err := http.DefaultTransport.RoundTrip(req) // not following the redirect
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d to %q, want 301 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}
	status, h, body := do(t, http.MethodGet, base+"/console/", nil)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "<title>walship console</title>") {
		t.Errorf("GET /console/: %d %s: %.200s", status, h.Get("Content-Type"), body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for file, ctype := range map[string]string{"app.js": "text/javascript", "style.css": "text/css"} {
		status, h, body := do(t, http.MethodGet, base+"/console/"+file, nil)
		if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), ctype) || len(body) < 1000 {
			t.Errorf("GET /console/%s: %d %s, %d bytes", file, status, h.Get("Content-Type"), len(body))
		}
	}
	if status, _, _ := do(t, http.MethodGet, base+"/console/nope.js", nil); status != http.StatusNotFound {
		t.Errorf("GET /console/nope.js: %d, want 404", status)
	}
	if status, _, _ := do(t, http.MethodPost, base+"/console/", []byte("{}")); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /console/: %d, want 405", status)
	}
}

// writeUsers writes a credentials file with plain passwords.
func writeUsers(t *testing.T, users string) *auth.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := auth.OpenFile(path, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConsoleAuth(t *testing.T) {
	users := writeUsers(t, `[{"username":"ops","password":"ops-pw","perms":["status"]},
		{"username":"reader","password":"reader-pw","perms":["query"]}]`)
	srv, _ := mustRunMasterConfig(t, master.Config{}, func(s *api.Server) { s.Auth = users })
	base := srv.URL()

	// The page loads without credentials, and without a challenge that
	// would open the browser's own dialog.
	status, h, _ := do(t, http.MethodGet, base+"/console/", nil)
	if status != http.StatusOK || h.Get("WWW-Authenticate") != "" {
		t.Errorf("GET /console/ without credentials: %d, WWW-Authenticate %q; want 200 without a challenge", status, h.Get("WWW-Authenticate"))
	}
	// What it asks for is checked: status is needed.
	for _, path := range []string{"/log/cluster", "/log/recent"} {
		if status, _, _ := do(t, http.MethodGet, base+path, nil); status != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d, want 401", path, status)
		}
		c := client.New(base)
		c.User, c.Password = "reader", "reader-pw"
		var err error
		if path == "/log/cluster" {
			_, err = c.Cluster(context.Background())
		} else {
			_, err = c.Recent(context.Background(), 0, 0)
		}
		var se *client.StatusError
		if !errors.As(err, &se) || se.Status != http.StatusForbidden || !strings.Contains(se.Msg, `lacks the "status" permission`) {
			t.Errorf("GET %s as reader: %v, want 403 naming the status permission", path, err)
		}
		c.User, c.Password = "ops", "ops-pw"
		if path == "/log/cluster" {
			_, err = c.Cluster(context.Background())
		} else {
			_, err = c.Recent(context.Background(), 0, 0)
		}
		if err != nil {
			t.Errorf("GET %s as ops: %v", path, err)
		}
	}
}

func TestRecent(t *testing.T) {
	srv, mc := mustRunMaster(t)
	ctx := context.Background()
	mustExec(t, mc, "CREATE TABLE t (a, b, c, d, e)")
	mustExec(t, mc, "INSERT INTO t VALUES (?, ?, ?, ?, ?)", 7, 1.5, "héllo", nil, []byte{0xca, 0xfe})
	if _, err := mc.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "INSERT INTO t (a, b) VALUES (:x, :y)", Named: map[string]any{"x": 1, "y": "two"}}); err != nil {
		t.Fatal(err)
	}
	long := "INSERT INTO t (a) VALUES ('" + strings.Repeat("é", client.RecentMaxSQL) + "')"
	var many []client.Statement
	for range client.RecentMaxStatements + 10 {
		many = append(many, client.Statement{SQL: "INSERT INTO t (a) VALUES (1)"})
	}
	if _, err := mc.DBExecute(ctx, client.DBOptions{Transaction: true}, append([]client.Statement{{SQL: long}}, many...)...); err != nil {
		t.Fatal(err)
	}

	rec, err := mc.Recent(ctx, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Role != "master" || rec.FirstIndex != 1 || rec.LastIndex != 4 || len(rec.Entries) != 3 || rec.Entries[0].Index != 2 || rec.Entries[2].Index != 4 {
		t.Fatalf("recent 3: role %s, %d–%d, %d entries from %d", rec.Role, rec.FirstIndex, rec.LastIndex, len(rec.Entries), rec.Entries[0].Index)
	}
	if rec.LogBytes <= 0 || rec.LogSegments != 1 || rec.LogID == "" || rec.Epoch == 0 {
		t.Errorf("log info: %+v", rec)
	}
	params := func(e client.RecentEntry) string {
		b, err := json.Marshal(e.Statements[0].Params)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := params(rec.Entries[0]); got != `[7,1.5,"héllo",null,"x'CAFE'"]` {
		t.Errorf("positional params %s", got)
	}
	if got := params(rec.Entries[1]); got != `{"x":1,"y":"two"}` {
		t.Errorf("named params %s", got)
	}
	big := rec.Entries[2]
	if big.StatementCount != client.RecentMaxStatements+11 || len(big.Statements) != client.RecentMaxStatements || !big.Txn {
		t.Errorf("a large entry: %d statements of %d shown, txn %v", len(big.Statements), big.StatementCount, big.Txn)
	}
	if s := big.Statements[0]; !s.SQLTruncated || len(s.SQL) > client.RecentMaxSQL || !strings.HasPrefix(long, s.SQL) || !strings.HasSuffix(s.SQL, "é") {
		t.Errorf("a long statement: truncated %v, %d bytes", s.SQLTruncated, len(s.SQL))
	}

	// from: the entries from there on.
	if rec, err = mc.Recent(ctx, 1, 1); err != nil || len(rec.Entries) != 1 || rec.Entries[0].Statements[0].SQL != "CREATE TABLE t (a, b, c, d, e)" {
		t.Errorf("from 1: %+v, %v", rec, err)
	}
	if rec, err = mc.Recent(ctx, 5, 10); err != nil || len(rec.Entries) != 0 {
		t.Errorf("from past the end: %+v, %v", rec, err)
	}
	for _, q := range []string{"n=0", "n=1001", "n=x", "from=0", "from=-1"} {
		status, _, body := do(t, http.MethodGet, srv.URL()+"/log/recent?"+q, nil)
		if status != http.StatusBadRequest || !strings.Contains(errorBody(t, body).Error, "bad request") {
			t.Errorf("?%s: %d %s, want 400", q, status, body)
		}
	}

	// A slave serves the copy of the log it keeps.
	ssrv, sc := mustRunSlave(t, srv.URL(), "1")
	waitApplied(t, ssrv, 4)
	if rec, err = sc.Recent(ctx, 0, 0); err != nil || rec.Role != "slave" || len(rec.Entries) != 4 || params(rec.Entries[1]) != `[7,1.5,"héllo",null,"x'CAFE'"]` {
		t.Errorf("a slave's recent entries: %+v, %v", rec, err)
	}
}

func TestCluster(t *testing.T) {
	srv, mc := mustRunMaster(t)
	ctx := context.Background()
	s1, c1 := mustRunSlave(t, srv.URL(), "1")
	s2, _ := mustRunSlave(t, srv.URL(), "2")
	mustExec(t, mc, "CREATE TABLE t (v)")
	waitApplied(t, s1, 1)
	waitApplied(t, s2, 1)
	waitFor(t, "the master to list both slaves", func() bool {
		st, err := mc.LogStatus(ctx)
		return err == nil && len(st.Slaves) == 2
	})

	check := func(cs *client.ClusterStatus, self string) {
		t.Helper()
		if cs.Master != srv.URL() || cs.LastIndex != 1 || len(cs.Nodes) != 3 {
			t.Fatalf("cluster: master %s, last index %d, %d nodes: %+v", cs.Master, cs.LastIndex, len(cs.Nodes), cs)
		}
		want := []struct{ id, role, url, state string }{
			{"master", "master", srv.URL(), "ok"}, {"1", "slave", s1.URL(), client.StateStreaming}, {"2", "slave", s2.URL(), client.StateStreaming},
		}
		for i, w := range want {
			n := cs.Nodes[i]
			if n.ID != w.id || n.Role != w.role || n.URL != w.url || n.State != w.state || n.AppliedIndex != 1 || n.Self != (n.URL == self) {
				t.Errorf("node %d: %+v, want %+v (self %v)", i, n, w, n.URL == self)
			}
			if n.LagEntries == nil || *n.LagEntries != 0 || n.BehindSeconds == nil || *n.BehindSeconds != 0 {
				t.Errorf("node %d: lag %v, behind %v; want 0 and 0", i, n.LagEntries, n.BehindSeconds)
			}
			if w.role == "slave" && (n.Upstream != srv.URL() || n.LastSeenSeconds == nil) {
				t.Errorf("node %d: upstream %q, seen %v", i, n.Upstream, n.LastSeenSeconds)
			}
		}
	}
	cs, err := mc.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(cs, srv.URL())
	// From a slave: the same cluster, the master first.
	if cs, err = c1.Cluster(ctx); err != nil {
		t.Fatal(err)
	}
	check(cs, s1.URL())

	// Slave 2 stopped: unreachable, its lag and how far behind it is from
	// the master's view of it and the master's log.
	s2.Close()
	s2.Slave.Close()
	for range 3 {
		mustExec(t, mc, "INSERT INTO t VALUES (1)")
	}
	waitApplied(t, s1, 4)
	if cs, err = mc.Cluster(ctx); err != nil {
		t.Fatal(err)
	}
	n := cs.Nodes[2]
	if n.ID != "2" || n.Role != "slave" || n.State != "unreachable" || !strings.Contains(n.Error, "connection refused") || n.AppliedIndex != 1 {
		t.Errorf("a stopped slave: %+v", n)
	}
	if n.LagEntries == nil || *n.LagEntries != 3 || n.BehindSeconds == nil || *n.BehindSeconds < 0 || *n.BehindSeconds > 60 {
		t.Errorf("a stopped slave: lag %v, behind %v; want 3 entries and the age of entry 2", n.LagEntries, n.BehindSeconds)
	}
	if cs.Nodes[1].State != client.StateStreaming || *cs.Nodes[1].LagEntries != 0 {
		t.Errorf("slave 1: %+v", cs.Nodes[1])
	}
	for _, q := range []string{"timeout=0s", "timeout=31s", "timeout=x"} {
		if status, _, _ := do(t, http.MethodGet, srv.URL()+"/log/cluster?"+q, nil); status != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", q, status)
		}
	}
}

// /status says whether the node checks credentials, as rqlite's does.
func TestStatusSaysAuth(t *testing.T) {
	users := writeUsers(t, `[{"username":"ops","password":"ops-pw","perms":["status"]}]`)
	for _, tc := range []struct {
		users *auth.File
		want  string
	}{{nil, `"auth":"disabled"`}, {users, `"auth":"enabled"`}} {
		srv, _ := mustRunMasterConfig(t, master.Config{}, func(s *api.Server) { s.Auth = tc.users })
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/status", nil)
		req.SetBasicAuth("ops", "ops-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("/status: %d %s, want %s", resp.StatusCode, body, tc.want)
		}
	}
}
