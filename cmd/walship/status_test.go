package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api/client"
)

// status shows the master and its slaves with their applied index, lag and
// state; a slave leads to its master; a slave that went away is reported,
// with how far behind it is, and the exit status says so.
func TestStatus(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	mustExec(t, m.URL(), "CREATE TABLE t (v)")
	last := mustExec(t, m.URL(), "INSERT INTO t VALUES (1)")
	waitApplied(t, m.URL(), slaves, last.Index)
	ctx := context.Background()
	status := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := Run(ctx, append([]string{"status"}, args...), &out, &errOut)
		if errOut.Len() > 0 {
			t.Fatalf("stderr: %s", errOut.String())
		}
		return out.String(), err
	}

	out, err := status("--master", m.URL())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rows := tableRows(out)
	if !strings.HasPrefix(out, "master "+m.URL()+", log ") || !strings.Contains(out, ", last index 2, 1 slave\n") {
		t.Fatalf("header:\n%s", out)
	}
	want := map[string][]string{
		"master":  {"master", m.URL(), "2", "-", "-", "-", "ok"},
		"slave 1": {"slave 1", slaves[0].URL(), "2", "0", "0s", "", "streaming"},
	}
	for name, w := range want {
		got := rows[name]
		if len(got) != len(w) {
			t.Fatalf("row %s: %q\n%s", name, got, out)
		}
		for i := range w {
			if w[i] != "" && got[i] != w[i] {
				t.Fatalf("row %s: %q, want %q\n%s", name, got, w, out)
			}
		}
	}
	if seen := rows["slave 1"][5]; !strings.HasSuffix(seen, " ago") {
		t.Fatalf("slave 1 seen %q", seen)
	}

	// Asked at the slave, as JSON.
	out, err = status(slaves[0].URL(), "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var cs clusterStatus
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if cs.Master != m.URL() || cs.LastIndex != 2 || len(cs.Nodes) != 2 || cs.Nodes[1].State != "streaming" ||
		cs.Nodes[1].Applied != 2 || *cs.Nodes[1].Lag != 0 || *cs.Nodes[1].Behind != 0 || cs.Nodes[1].Seen == nil {
		t.Fatalf("status at the slave:\n%s", out)
	}

	// The slave stops; the master takes two more writes.
	slaves[0].Close()
	mustExec(t, m.URL(), "INSERT INTO t VALUES (2)")
	mustExec(t, m.URL(), "INSERT INTO t VALUES (3)")
	out, err = status("--master", m.URL(), "--json")
	if err == nil || err.Error() != "cluster not healthy: slave 1 unreachable" {
		t.Fatalf("err %v\n%s", err, out)
	}
	cs = clusterStatus{}
	if err := json.Unmarshal([]byte(out), &cs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s := cs.Nodes[1]
	if s.State != "unreachable" || !strings.Contains(s.Error, "cannot reach "+slaves[0].URL()) || s.Applied != 2 || *s.Lag != 2 ||
		s.Behind == nil || *s.Behind <= 0 || *s.Behind > testWait.Seconds() {
		t.Fatalf("a stopped slave:\n%s", out)
	}
	out, _ = status("--master", m.URL())
	if r := tableRows(out)["slave 1"]; len(r) != 7 || r[3] != "2" || r[4] == "0s" || r[4] == "?" || r[6] != "unreachable" ||
		!strings.Contains(out, "\nslave 1: cannot reach "+slaves[0].URL()) {
		t.Fatalf("a stopped slave:\n%s", out)
	}

	if _, err := status("http://127.0.0.1:1"); err == nil || err.Error() != "cannot reach http://127.0.0.1:1: connect: connection refused" {
		t.Fatalf("no master: %v", err)
	}
}

// statusOf runs 'walship status' with args; stderr must stay empty.
func statusOf(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), append([]string{"status"}, args...), &out, &errOut)
	if errOut.Len() > 0 {
		t.Fatalf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

// mustStartSlave starts a slave in this process that follows the node at
// upstream, and waits until it is ready.
func mustStartSlave(t *testing.T, id, upstream string) *Node {
	t.Helper()
	s, err := StartNode(NodeConfig{Role: "slave", ID: id, Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), Data: t.TempDir(),
		MasterURL: upstream, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := waitReady(context.Background(), client.New(s.URL()).Ready, testWait); err != nil {
		t.Fatalf("slave %s not ready: %v", id, err)
	}
	return s
}

// statusWhen polls 'walship status --json' at u until ok accepts the
// cluster it reports, and returns that.
func statusWhen(t *testing.T, u string, ok func(*clusterStatus) bool) *clusterStatus {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for {
		out, _ := statusOf(t, u, "--json")
		var cs clusterStatus
		if err := json.Unmarshal([]byte(out), &cs); err == nil && ok(&cs) {
			return &cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("status at %s never as expected:\n%s", u, out)
		}
		time.Sleep(10 * time.Millisecond) // ok: poll interval
	}
}

// allStreaming says whether the cluster has n slaves, each streaming.
func allStreaming(n int) func(*clusterStatus) bool {
	return func(cs *clusterStatus) bool {
		if len(cs.Nodes) != n+1 {
			return false
		}
		for _, r := range cs.Nodes[1:] {
			if r.State != client.StateStreaming {
				return false
			}
		}
		return true
	}
}

// treeRows returns the table's rows of out, in order, each as its cells
// with the NODE cell's branches kept and its padding removed.
func treeRows(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, " | ") || strings.HasPrefix(l, " NODE ") {
			continue
		}
		cells := strings.Split(l, "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		cells[0] = strings.TrimRight(strings.Split(l, "|")[0], " ")
		rows = append(rows, cells)
	}
	return rows
}

// status of a chain, master → slave 1 → slave 2: slave 2 is drawn under
// slave 1 with slave 1 as its upstream; asked at slave 2, or at the master
// under another name, the tree is the same; once slave 2 stops, the
// command says so and exits 1.
func TestStatusTree(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	s1 := slaves[0]
	s2 := mustStartSlave(t, "2", s1.URL())
	mustExec(t, m.URL(), "CREATE TABLE t (v)")
	last := mustExec(t, m.URL(), "INSERT INTO t VALUES (1)")
	waitApplied(t, m.URL(), []*Node{s1}, last.Index)
	waitApplied(t, s1.URL(), []*Node{s2}, last.Index)
	statusWhen(t, m.URL(), allStreaming(2))

	out, err := statusOf(t, m.URL())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "master "+m.URL()+", log ") || !strings.Contains(out, ", last index 2, 2 slaves\n") ||
		!strings.Contains(out, "\n NODE          | URL ") || !strings.Contains(out, "| STATE     | UPSTREAM\n") {
		t.Fatalf("header:\n%s", out)
	}
	want := [][]string{
		// NODE, URL, APPLIED, LAG, BEHIND, (SEEN), STATE, UPSTREAM
		{" master", m.URL(), "2", "-", "-", "-", "ok", ""},
		{" └─ slave 1", s1.URL(), "2", "0", "0s", "", "streaming", ""},
		{"    └─ slave 2", s2.URL(), "2", "0", "0s", "", "streaming", s1.URL()},
	}
	rows := treeRows(out)
	if len(rows) != len(want) {
		t.Fatalf("rows %q\n%s", rows, out)
	}
	for i, w := range want {
		for j := range w {
			if w[j] != "" && rows[i][j] != w[j] || w[j] == "" && j != 5 && rows[i][j] != "" {
				t.Fatalf("row %d: %q, want %q\n%s", i, rows[i], w, out)
			}
		}
	}
	for _, r := range rows[1:] {
		if !strings.HasSuffix(r[5], " ago") {
			t.Fatalf("seen %q\n%s", r[5], out)
		}
	}

	// JSON: each node's depth and the node it pulls from.
	js, err := statusOf(t, m.URL(), "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	var cs clusterStatus
	if err := json.Unmarshal([]byte(js), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs.Nodes) != 3 || cs.Nodes[0].Depth != 0 || cs.Nodes[0].Upstream != "" ||
		cs.Nodes[1].Node != "1" || cs.Nodes[1].Depth != 1 || cs.Nodes[1].Upstream != m.URL() ||
		cs.Nodes[2].Node != "2" || cs.Nodes[2].Depth != 2 || cs.Nodes[2].Upstream != s1.URL() || *cs.Nodes[2].Lag != 0 {
		t.Fatalf("json:\n%s", js)
	}
	for _, n := range cs.Nodes {
		if len(n.Problems) > 0 || n.Error != "" {
			t.Fatalf("json:\n%s", js)
		}
	}

	// The same tree asked at slave 2 (it leads to slave 1, then to the
	// master), and at the master under another name than its slaves use.
	tree := func(out string) string {
		var b strings.Builder
		for _, r := range treeRows(out) {
			b.WriteString(strings.Join(append(r[:5:5], r[6:]...), "|") + "\n")
		}
		return b.String()
	}
	o, err := statusOf(t, "--node", s2.URL())
	header, _, _ := strings.Cut(out, "\n")
	if err != nil || !strings.HasPrefix(o, header+"\n") || tree(o) != tree(out) {
		t.Fatalf("at slave 2: %v\n%s\nat the master:\n%s", err, o, out)
	}
	mu, _ := url.Parse(m.URL())
	local := "http://localhost:" + mu.Port()
	o, err = statusOf(t, local)
	if err != nil || !strings.HasPrefix(o, "master "+local+", ") || len(treeRows(o)) != 3 || treeRows(o)[2][0] != "    └─ slave 2" ||
		strings.Contains(o, "!") {
		t.Fatalf("at %s: %v\n%s", local, err, o)
	}

	// Slave 2 stops: slave 1 still lists it. (--master on the command
	// line wins over a --node from the environment.)
	s2.Close()
	t.Setenv("WALSHIP_NODE", "http://127.0.0.1:1")
	out, err = statusOf(t, "--master", m.URL())
	if err == nil || err.Error() != "cluster not healthy: slave 2 unreachable" {
		t.Fatalf("err %v\n%s", err, out)
	}
	rows = treeRows(out)
	if len(rows) != 3 || rows[2][0] != "    └─ slave 2" || rows[2][1] != s2.URL() || rows[2][6] != "unreachable" || rows[2][7] != s1.URL() ||
		rows[1][6] != "streaming" || !strings.Contains(out, "\nslave 2: cannot reach "+s2.URL()+": ") {
		t.Fatalf("slave 2 stopped:\n%s", out)
	}
}

// A slave that a node lists as its follower but that follows another (it
// was re-pointed) is drawn under the node it follows, flagged, and the
// command exits 1 saying why.
func TestStatusFollowerElsewhere(t *testing.T) {
	m, slaves := mustStartCluster(t, 2)
	s1, s2 := slaves[0], slaves[1]
	last := mustExec(t, m.URL(), "CREATE TABLE t (v)")
	waitApplied(t, m.URL(), slaves, last.Index)
	st, err := client.New(m.URL()).LogStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Follow(context.Background(), s1.URL(), st.Epoch); err != nil {
		t.Fatal(err)
	}
	// The master still lists slave 2, which now pulls from slave 1.
	cs := statusWhen(t, m.URL(), func(cs *clusterStatus) bool {
		return len(cs.Nodes) == 3 && cs.Nodes[2].Node == "2" && cs.Nodes[2].Depth == 2 && cs.Nodes[2].State == client.StateStreaming
	})
	wantProblem := "is listed as a follower by master (" + m.URL() + ") but follows " + s1.URL()
	if len(cs.Nodes[2].Problems) != 1 || cs.Nodes[2].Problems[0] != wantProblem || cs.Nodes[2].Upstream != s1.URL() ||
		cs.Nodes[1].Problems != nil || cs.Nodes[0].Problems != nil {
		t.Fatalf("%+v", cs.Nodes)
	}
	out, err := statusOf(t, m.URL())
	if err == nil || err.Error() != "cluster not healthy: slave 2 "+wantProblem {
		t.Fatalf("err %v\n%s", err, out)
	}
	rows := treeRows(out)
	if len(rows) != 3 || rows[1][0] != " └─ slave 1" || rows[2][0] != "    └─ slave 2" || rows[2][6] != "streaming !" ||
		rows[2][7] != s1.URL() || !strings.Contains(out, "\nslave 2: "+wantProblem+"\n") {
		t.Fatalf("status:\n%s", out)
	}
}

// tableRows reads an aligned table's rows by their first cell, without
// the branches that draw a tree in it.
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, " | ") {
			continue
		}
		cells := strings.Split(l, "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		cells[0] = strings.TrimLeft(cells[0], "│├└─ ")
		rows[cells[0]] = cells
	}
	return rows
}

// status pointed at something that is not a walship node says so, and
// what answered, without printing its page.
func TestStatusNotWalship(t *testing.T) {
	page := "<!DOCTYPE html>\n<html><head><title>\n  Welcome to nginx!\n</title></head><body><h1>Welcome</h1>" + strings.Repeat("<p>text</p>", 100) + "</body></html>\n"
	serve := func(h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	web := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})
	missing := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "<html><head><title>404 Not Found</title></head><body>"+strings.Repeat("x", 500)+"</body></html>")
	})
	otherJSON := serve(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"node":{"start_time":"2024-01-01T00:00:00Z"},"store":{}}`)
	})
	jsonEverywhere := serve(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	text := serve(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\nworld\n") })
	for _, tc := range []struct{ url, want string }{
		{web, "not a walship node: " + web + ` answers GET /status with an HTML page titled "Welcome to nginx!" (200 OK)`},
		{missing, "not a walship node: " + missing + ` answers GET /status with an HTML page titled "404 Not Found" (404 Not Found)`},
		{otherJSON, "not a walship node: " + otherJSON + " answers GET /status with JSON without walship's fields (node, log), and GET /log/status with text \"404 page not found\" (404 Not Found)"},
		{jsonEverywhere, "not a walship node: " + jsonEverywhere + " answers GET /status with JSON that names no walship role (master or slave)"},
		{text, "not a walship node: " + text + ` answers GET /status with text "hello" (200 OK)`},
	} {
		out, err := statusOf(t, tc.url)
		if err == nil || err.Error() != tc.want {
			t.Errorf("status %s: %v\nwant %s", tc.url, err, tc.want)
		}
		if out != "" || strings.Contains(fmt.Sprint(err), "<") {
			t.Errorf("status %s printed the page: %q %v", tc.url, out, err)
		}
	}
}

// Every node named on the command line is shown and counts: a slave of
// another master, named after this cluster's master, makes status list
// it and exit 1, where the master alone is healthy.
func TestStatusNamedNodes(t *testing.T) {
	m, _ := mustStartCluster(t, 1)
	other, others := mustStartCluster(t, 1)
	stray := others[0]
	statusWhen(t, m.URL(), allStreaming(1))
	statusWhen(t, other.URL(), allStreaming(1))
	if out, err := statusOf(t, m.URL()); err != nil {
		t.Fatalf("the cluster alone: %v\n%s", err, out)
	}
	out, err := statusOf(t, m.URL(), stray.URL())
	if err == nil || !strings.Contains(out, stray.URL()) || !strings.Contains(out, other.URL()) {
		t.Fatalf("a slave of another master named: %v\n%s", err, out)
	}
}
