package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
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

// tableRows reads an aligned table's rows by their first cell.
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
		rows[cells[0]] = cells
	}
	return rows
}
