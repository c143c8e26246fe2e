package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// writeBehindTheLog changes a node's database directly, as a bug or a hand
// on the file would: the change is in no log entry.
func writeBehindTheLog(t *testing.T, n *Node, sql string) {
	t.Helper()
	tx, err := n.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	// The writer is held from here on: the applied index cannot move.
	logID, applied := n.db.LogID(), n.db.AppliedIndex()
	out := tx.Run(db.Request{Statements: []wal.Statement{{SQL: sql}}, Txn: true}, time.Now().UnixMilli(), 1)
	if out.Err != nil {
		tx.Rollback()
		t.Fatalf("%s: %v", sql, out.Err)
	}
	if err := tx.Commit(logID, applied); err != nil {
		t.Fatal(err)
	}
}

// show finds identical nodes identical (exit 0), and marks the table, the
// node and the row where one slave differs (exit 1).
func TestShow(t *testing.T) {
	m, slaves := mustStartCluster(t, 2)
	mustExec(t, m.URL(), "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL, pic BLOB)")
	mustExec(t, m.URL(), "CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID")
	mustExec(t, m.URL(), "INSERT INTO users (name, score, pic) VALUES ('ana', 1, x'00ff'), ('ben', NULL, NULL), ('it''s', 2.5, NULL)")
	last := mustExec(t, m.URL(), "INSERT INTO kv VALUES ('a', 1), ('b', 'one')")
	waitApplied(t, m.URL(), slaves, last.Index)
	ctx := context.Background()
	show := func(args ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := Run(ctx, append([]string{"show"}, args...), &out, &errOut)
		if errOut.Len() > 0 {
			t.Fatalf("stderr: %s", errOut.String())
		}
		return out.String(), err
	}

	out, err := show("--master", m.URL())
	if err != nil {
		t.Fatalf("identical nodes: %v\n%s", err, out)
	}
	for _, want := range []string{
		" master  | " + m.URL() + " | applied index 4\n",
		" slave 1 | " + slaves[0].URL() + " | applied index 4\n",
		" slave 2 | " + slaves[1].URL() + " | applied index 4\n",
		"= kv: the same on 3 nodes\n",
		"= users: the same on 3 nodes\n",
		"  1 | 'ana'   |   1.0 | X'00FF'", // values as SQL literals: the REAL 1.0 is no INTEGER 1
		" 'b' | 'one'",
		"= all 3 nodes hold the same 2 tables\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "≠") {
		t.Fatalf("identical nodes marked as differing:\n%s", out)
	}

	writeBehindTheLog(t, slaves[1], "INSERT INTO users (id, name) VALUES (10, 'rogue')")
	out, err = show("--master", m.URL())
	if err == nil || err.Error() != "nodes differ in 1 table: users" {
		t.Fatalf("err %v, want nodes differ in users\n%s", err, out)
	}
	for _, want := range []string{
		"= kv: the same on 3 nodes\n",
		"≠ users: differs from master on slave 2 (rows)\n",
		"≠ nodes differ in 1 table of 2: users\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	var rogue string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "'rogue'") {
			rogue = l
		}
	}
	if !strings.HasPrefix(rogue, "  ≠ ") {
		t.Fatalf("the differing row is not marked: %q\n%s", rogue, out)
	}
	sums := checksumsOf(t, out, "users")
	if len(sums) != 3 || sums[0] != sums[1] || sums[1] == sums[2] {
		t.Fatalf("users checksums %q: want master = slave 1 ≠ slave 2", sums)
	}

	// The same with the nodes named, only counts and checksums, one table.
	out, err = show("--nodes", m.URL()+","+slaves[1].URL(), "--rows", "0", "users")
	if err == nil || !strings.Contains(out, "≠ users: differs from master on slave 2 (rows)\n") || strings.Contains(out, "'rogue'") || strings.Contains(out, "kv") {
		t.Fatalf("--nodes --rows 0 users: %v\n%s", err, out)
	}
	if out, err = show("--nodes", m.URL()+","+slaves[0].URL(), "kv", "users"); err != nil {
		t.Fatalf("master and slave 1 are identical: %v\n%s", err, out)
	}

	if out, err = show("--nodes", m.URL(), "kv", "nope"); err == nil || err.Error() != "no table nope on any node" {
		t.Fatalf("a table no node has: %v\n%s", err, out)
	}

	// A row one node lacks, a table only one node has, a node that cannot
	// be read; the first node given is the one the others are compared with.
	writeBehindTheLog(t, slaves[0], "DELETE FROM kv WHERE k = 'b'")
	writeBehindTheLog(t, slaves[0], "CREATE TABLE extra (a)")
	out, err = show("--nodes", slaves[0].URL()+", "+m.URL()+",http://127.0.0.1:1", "kv", "extra")
	if err == nil || !strings.Contains(err.Error(), "nodes differ in 2 tables: extra, kv; could not read 127.0.0.1:1: cannot reach") {
		t.Fatalf("err %v\n%s", err, out)
	}
	for _, want := range []string{
		"≠ extra: differs from slave 1 on master (missing)\n",
		"≠ kv: differs from slave 1 on master (rows)\n",
		"not read: cannot reach http://127.0.0.1:1",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	var gap string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "'one'") {
			gap = l
		}
	}
	if !strings.HasPrefix(gap, "  ≠ ") || strings.Count(gap, "'b'") != 1 {
		t.Fatalf("the row slave 1 lacks is not marked, or not shown only on the master: %q\n%s", gap, out)
	}
}

// checksumsOf returns the checksum line's values of a table in show's
// output.
func checksumsOf(t *testing.T, out, table string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(out, " "+table+": ")
	if !ok {
		t.Fatalf("no table %s in:\n%s", table, out)
	}
	for _, l := range strings.Split(rest, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "checksum" {
			return f[1:]
		}
	}
	t.Fatalf("no checksum line for %s in:\n%s", table, out)
	return nil
}

// The checksum keeps every value's type and every field's bounds.
func TestTableChecksum(t *testing.T) {
	cols := []string{"v"}
	sums := map[string]string{}
	for name, rows := range map[string][][]string{
		"integer 1":  {{"1"}},
		"real 1.0":   {{"1.0"}},
		"text '1'":   {{"'1'"}},
		"blob X'31'": {{"X'31'"}},
		"null":       {{"NULL"}},
		"no rows":    nil,
		"two rows":   {{"1"}, {"1"}},
	} {
		sum := tableChecksum(cols, nil, rows)
		if len(sum) != checksumLen {
			t.Fatalf("%s: checksum %q", name, sum)
		}
		if other, ok := sums[sum]; ok {
			t.Fatalf("%s and %s have the same checksum", name, other)
		}
		sums[sum] = name
	}
	if tableChecksum([]string{"a", "b"}, nil, [][]string{{"'x'", "'y'"}}) == tableChecksum([]string{"a", "b"}, nil, [][]string{{"'x''", "y'"}}) {
		t.Fatal("fields that shift their bounds have the same checksum")
	}
	if tableChecksum(cols, []int64{1}, [][]string{{"1"}}) == tableChecksum(cols, []int64{2}, [][]string{{"1"}}) {
		t.Fatal("rows under other rowids have the same checksum")
	}
	if tableChecksum([]string{"a"}, nil, [][]string{{"1"}}) == tableChecksum([]string{"b"}, nil, [][]string{{"1"}}) {
		t.Fatal("other column names have the same checksum")
	}
}

// A BLOB prints one way everywhere people read it: as SQLite's literal in
// the tables of query and the shell, and in show.
func TestBlobsShownOneWay(t *testing.T) {
	m, _ := mustStartCluster(t, 0)
	mustExec(t, m.URL(), "CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB)")
	mustExec(t, m.URL(), "INSERT INTO b VALUES (1, x'00ff10'), (2, NULL)")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := Run(ctx, []string{"query", "--node", m.URL(), "--format", "table", "SELECT data FROM b ORDER BY id"}, &out, &errOut); err != nil ||
		out.String() != " data\n-----------\n X'00FF10'\n NULL\n(2 rows)\n" {
		t.Fatalf("query: %v\n%q", err, out.String())
	}
	out.Reset()
	if err := runShell(ctx, []string{"--history", "", m.URL()}, strings.NewReader("SELECT data FROM b WHERE id = 1;\n"), &out, &errOut); err != nil ||
		out.String() != " data\n-----------\n X'00FF10'\n(1 row)\n" {
		t.Fatalf("shell: %v\n%q", err, out.String())
	}
	out.Reset()
	if err := Run(ctx, []string{"show", "--nodes", m.URL(), "b"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "X'00FF10'") {
		t.Fatalf("show: %v\n%s", err, out.String())
	}
}
