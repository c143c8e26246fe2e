package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
)

// verify checks every slave against the master, one line per node and
// part, asked at the master or at a slave; a slave that cannot be asked is
// "not checked", and the exit status says so.
func TestVerify(t *testing.T) {
	m, slaves := mustStartCluster(t, 2)
	mustExec(t, m.URL(), "CREATE TABLE t (v)")
	mustExec(t, m.URL(), "CREATE TABLE u (v)")
	last := mustExec(t, m.URL(), "INSERT INTO t VALUES (1)")
	waitApplied(t, m.URL(), slaves, last.Index)
	ctx := context.Background()
	verify := func(args ...string) (string, string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := Run(ctx, append([]string{"verify"}, args...), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	out, progress, err := verify("--node", m.URL())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(progress, "asking the master "+m.URL()) {
		t.Fatalf("progress: %q", progress)
	}
	if !strings.HasPrefix(out, "checked the content at index 4 of master "+m.URL()+" (its sums are entry 5), 2 slaves\n") {
		t.Fatalf("header:\n%s", out)
	}
	rows := verifyRows(out)
	// Three nodes, four parts each: t, u, sqlite_header, sqlite_schema.
	if len(rows) != 12 {
		t.Fatalf("%d rows:\n%s", len(rows), out)
	}
	for _, node := range []string{"master", "slave 1", "slave 2"} {
		for _, part := range []string{"t", "u", "sqlite_header", "sqlite_schema"} {
			if got := rows[node+" "+part]; got != "4 ok" {
				t.Fatalf("%s, %s: %q\n%s", node, part, got, out)
			}
		}
	}

	// Asked at a slave, as JSON.
	out, _, err = verify(slaves[1].URL(), "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Master != m.URL() || rep.Index != 6 || rep.ResultIndex != 7 || len(rep.Rows) != 12 || rep.Rows[11].Node != "slave 2" {
		t.Fatalf("at a slave:\n%s", out)
	}

	// A slave that went away cannot be checked.
	slaves[0].Close()
	out, _, err = verify("--node", m.URL(), "--timeout", "3s")
	if err == nil || !strings.Contains(err.Error(), "not checked: slave 1") {
		t.Fatalf("err %v\n%s", err, out)
	}
	rows = verifyRows(out)
	if rows["slave 1 -"] != "8 not checked" || rows["slave 2 t"] != "8 ok" || len(rows) != 9 ||
		!strings.Contains(out, "\nslave 1: ") {
		t.Fatalf("with slave 1 gone:\n%s", out)
	}
}

// verifyRows returns the rows of verify's table: "INDEX RESULT" by "NODE
// PART".
func verifyRows(out string) map[string]string {
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) != 4 {
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if cells[0] != "NODE" {
			rows[cells[0]+" "+cells[2]] = cells[1] + " " + cells[3]
		}
	}
	return rows
}

func TestVerifyHelpAndBadArguments(t *testing.T) {
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := Run(ctx, []string{"verify", "--help"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(errOut.String(), "Usage: walship verify") || !strings.Contains(errOut.String(), "DIFFERS") {
		t.Fatalf("verify --help: err %v, output %q", err, errOut.String())
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"verify", "a", "b"}, "unexpected arguments"},
		{[]string{"verify", "--timeout", "0s"}, "--timeout"},
		{[]string{"verify", "--node", "127.0.0.1:1"}, "cannot reach"},
	} {
		err := Run(ctx, tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%v: err %v, want one saying %q", tc.args, err, tc.says)
		}
	}
}
