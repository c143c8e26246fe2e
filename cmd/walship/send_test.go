package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// exec and query print JSON for scripts (standard output is no terminal
// here), and a table or CSV when asked; flags may follow the arguments of
// every command.
func TestSendFormats(t *testing.T) {
	m, _ := mustStartCluster(t, 0)
	ctx := context.Background()
	send := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := Run(ctx, args, &out, &errOut)
		return out.String(), err
	}
	if out, err := send("exec", "--node", m.URL(), "CREATE TABLE t (id INTEGER PRIMARY KEY, v)"); err != nil || !strings.Contains(out, `"index": 1`) {
		t.Fatalf("exec: %v\n%s", err, out)
	}
	// A node given without a scheme; parameters typed as JSON, else text.
	host := strings.TrimPrefix(m.URL(), "http://")
	if out, err := send("exec", "--node", host, "--format", "table", "INSERT INTO t (v) VALUES (?), (?), (?)", "1.5", "text", "null"); err != nil ||
		out != "OK: 3 rows affected, last insert id 3, index 2\n" {
		t.Fatalf("exec --format table: %v\n%s", err, out)
	}
	if out, err := send("query", "--node", m.URL(), "SELECT id, v, typeof(v) AS type FROM t ORDER BY id"); err != nil || !strings.Contains(out, `"columns": [`) {
		t.Fatalf("query: %v\n%s", err, out)
	}
	if out, err := send("query", "--node", m.URL(), "--format", "table", "SELECT id, v, typeof(v) AS type FROM t ORDER BY id"); err != nil ||
		out != " id | v    | type\n----+------+------\n  1 | 1.5  | real\n  2 | text | text\n  3 | NULL | null\n(3 rows)\n" {
		t.Fatalf("query --format table: %v\n%q", err, out)
	}
	if out, err := send("query", "--node", m.URL(), "--format", "csv", "SELECT id FROM t WHERE id > ?", "1"); err != nil || out != "id\n2\n3\n" {
		t.Fatalf("query --format csv: %v\n%q", err, out)
	}
	if out, err := send("query", "--node", m.URL(), "--format", "table", "--json", "SELECT 1"); err != nil || !strings.HasPrefix(out, "{") {
		t.Fatalf("--json wins: %v\n%s", err, out)
	}
	// Flags may follow the SQL and its parameters; "--" ends them, so a
	// parameter may start with '-'; a negative number needs no "--".
	if out, err := send("query", "SELECT id FROM t WHERE id > ? ORDER BY id", "1", "--format", "csv", "--node", m.URL()); err != nil || out != "id\n2\n3\n" {
		t.Fatalf("query SQL P --format csv --node URL: %v\n%q", err, out)
	}
	if out, err := send("exec", "INSERT INTO t (v) VALUES (?), (?), (?)", "--node", m.URL(), "-5", "--format=table", "--", "-x", "--json"); err != nil ||
		out != "OK: 3 rows affected, last insert id 6, index 3\n" {
		t.Fatalf("exec with parameters after --: %v\n%s", err, out)
	}
	if out, err := send("query", "--node", m.URL(), "SELECT v, typeof(v) AS type FROM t WHERE id > 3 ORDER BY id", "--format", "csv"); err != nil ||
		out != "v,type\n-5,integer\n-x,text\n--json,text\n" {
		t.Fatalf("the parameters after --: %v\n%q", err, out)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"query", "--node", m.URL(), "--format", "xml", "SELECT 1"}, "unknown output mode"},
		{[]string{"query", "--node", m.URL(), "SELECT * FROM nope"}, "400 Bad Request: no such table: nope"},
		{[]string{"query", "--node", m.URL(), "SELECT ?", "-x"}, "flag provided but not defined: -x"},
		{[]string{"query", "SELECT 1", "--node"}, "flag needs an argument: -node"},
		{[]string{"query", "--node", "http://127.0.0.1:1", "SELECT 1"}, "cannot reach http://127.0.0.1:1: connect: connection refused"},
		{[]string{"shell", "a", "b"}, "unexpected arguments: b"},
		{[]string{"shell", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"show", "--rows", "-1"}, "--rows must be 0 or more"},
		{[]string{"show", "--nodes", ","}, "--nodes names no node"},
		{[]string{"show", "--master", "http://127.0.0.1:1"}, "cannot reach http://127.0.0.1:1"},
	} {
		var out, errOut bytes.Buffer
		err := Run(ctx, tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%v: err %v, want one line saying %q", tc.args, err, tc.says)
		}
	}
}

func TestHelpOfNewCommands(t *testing.T) {
	for _, tc := range []struct{ cmd, says string }{
		{"shell", "exit status 1"},
		{"status", "Exit status 0 when"},
		{"show", "Exit status: 0 when"},
		{"query", "--format"},
	} {
		var out, errOut bytes.Buffer
		err := Run(context.Background(), []string{tc.cmd, "--help"}, &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "Usage: walship "+tc.cmd) || !strings.Contains(errOut.String(), tc.says) {
			t.Fatalf("%s --help: err %v, output %q", tc.cmd, err, errOut.String())
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"shell", "status", "show"} {
		if !strings.Contains(out.String(), "walship "+cmd+" ") {
			t.Fatalf("usage lacks %s:\n%s", cmd, out.String())
		}
	}
}

func TestParseFlagsAnywhere(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	j := fs.Bool("json", false, "")
	n := fs.Int("rows", 0, "")
	pos, err := parseFlagsAnywhere(fs, []string{"a", "--json", "b", "--rows", "3", "--", "--c"})
	if err != nil || !*j || *n != 3 || strings.Join(pos, " ") != "a b --c" {
		t.Fatalf("pos %q json %v rows %d err %v", pos, *j, *n, err)
	}
	// A negative number is an argument, unless it is a flag's value.
	*j = false
	pos, err = parseFlagsAnywhere(fs, []string{"-1", "--rows", "-2", "-2.5e3", "-", "--json=true", "x"})
	if err != nil || !*j || *n != -2 || strings.Join(pos, " ") != "-1 -2.5e3 - x" {
		t.Fatalf("pos %q json %v rows %d err %v", pos, *j, *n, err)
	}
	if _, err := parseFlagsAnywhere(fs, []string{"a", "--nope"}); err == nil || err.Error() != "flag provided but not defined: -nope" {
		t.Fatalf("an unknown flag: %v", err)
	}
	if _, err := parseFlagsAnywhere(fs, []string{"a", "-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h after an argument: %v", err)
	}
}
