package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/api/client"
)

// contentQueries read every table of testdata/books.sql exactly (quote()
// keeps each value's storage class), and what SQLite keeps beside.
var contentQueries = []string{
	"SELECT quote(rowid), quote(id), quote(name), quote(born) FROM author ORDER BY rowid",
	"SELECT quote(rowid), quote(id), quote(author_id), quote(title), quote(price), quote(cover), quote(meta) FROM book ORDER BY rowid",
	"SELECT quote(book_id), quote(tag) FROM tag ORDER BY book_id, tag",
	"SELECT quote(rowid), quote(at), quote(what) FROM audit ORDER BY rowid",
	"SELECT quote(tbl), quote(idx), quote(stat) FROM sqlite_stat1 WHERE tbl NOT LIKE '\\_walship%' ESCAPE '\\' ORDER BY 1, 2",
	"SELECT quote(name), quote(seq) FROM sqlite_sequence",
	"SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE '\\_walship%' ESCAPE '\\' ORDER BY type, name",
	"SELECT title, price FROM cheap ORDER BY title",
}

// nodeRows runs q on the node at u and returns its rows as JSON.
func nodeRows(t *testing.T, u, q string) []string {
	t.Helper()
	resp, err := client.New(u).Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var out []string
	for _, row := range resp.Values {
		b, _ := json.Marshal(row)
		out = append(out, string(b))
	}
	return out
}

// referenceRows loads the dump into a plain SQLite database, as the sqlite3
// shell's .read does, and returns the rows of each content query.
func referenceRows(t *testing.T, dump string) [][]string {
	t.Helper()
	ref, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "ref.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	ref.SetMaxOpenConns(1)
	if _, err := ref.Exec(dump); err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, q := range contentQueries {
		rows, err := ref.Query(q)
		if err != nil {
			t.Fatalf("reference: %s: %v", q, err)
		}
		cols, _ := rows.Columns()
		var lines []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			b, _ := json.Marshal(vals)
			lines = append(lines, string(b))
		}
		rows.Close()
		out = append(out, lines)
	}
	return out
}

// A dump written by the sqlite3 shell (.dump; testdata/books.sql, with its
// PRAGMA foreign_keys=OFF, BEGIN TRANSACTION … COMMIT, sqlite_stat1 and
// sqlite_sequence rows) loads in chunks, and every node then holds what the
// same dump gives a plain SQLite database.
func TestLoadDump(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	dump, err := os.ReadFile("testdata/books.sql")
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	// Chunks of 7: the dump's child rows come before their parents' table
	// in some chunks, as sqlite3 writes it.
	if err := Run(context.Background(), []string{"load", "--node", m.URL(), "--chunk", "7", "testdata/books.sql"}, &out, &errOut); err != nil {
		t.Fatalf("load: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "loaded 32 statements of testdata/books.sql in 5 chunks") ||
		!strings.Contains(errOut.String(), "loading: 32/32 statements (100%), log index 5") {
		t.Fatalf("output: %s\nprogress: %s", out.String(), errOut.String())
	}
	want := referenceRows(t, string(dump))
	st, err := client.New(m.URL()).LogStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, m.URL(), slaves, st.LastIndex)
	for _, u := range []string{m.URL(), slaves[0].URL()} {
		for i, q := range contentQueries {
			if got := nodeRows(t, u, q); strings.Join(got, "\n") != strings.Join(want[i], "\n") {
				t.Fatalf("%s: %s:\n got %v\nwant %v", u, q, got, want[i])
			}
		}
	}
	// Foreign keys are enforced again after the load.
	if _, err := client.New(m.URL()).Exec(context.Background(), "INSERT INTO book (author_id, title) VALUES (99, 'orphan')"); err == nil ||
		!strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Fatalf("an orphan after the load: %v", err)
	}
}

// A file that fails halfway says which statement failed, where, and what
// was committed before it; --from resumes.
func TestLoadFailsHalfway(t *testing.T) {
	m, _ := mustStartCluster(t, 0)
	file := filepath.Join(t.TempDir(), "bad.sql")
	text := "CREATE TABLE t (v UNIQUE);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n" +
		"INSERT INTO t VALUES (3);\n\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (5);\n"
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := Run(context.Background(), []string{"load", "--node", m.URL(), "--chunk", "3", file}, &out, &errOut)
	if err == nil {
		t.Fatal("the load succeeded")
	}
	for _, want := range []string{"statement 5 (line 6) failed: UNIQUE constraint failed: t.v", "INSERT INTO t VALUES (2)",
		"statements up to 3 are committed (log index 1); resume with --from 4", "nothing of its chunk was applied"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q lacks %q", err, want)
		}
	}
	if got := nodeRows(t, m.URL(), "SELECT group_concat(v) FROM t"); got[0] != `["1,2"]` {
		t.Fatalf("after the failed load t holds %v", got)
	}
	// Mend the file and resume.
	if err := os.WriteFile(file, []byte(strings.Replace(text, "(2);\nINSERT INTO t VALUES (5)", "(4);\nINSERT INTO t VALUES (5)", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), []string{"load", "--node", m.URL(), "--from", "4", file}, &out, &errOut); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := nodeRows(t, m.URL(), "SELECT group_concat(v) FROM (SELECT v FROM t ORDER BY v)"); got[0] != `["1,2,3,4,5"]` {
		t.Fatalf("after resuming t holds %v", got)
	}
}

// The shell's .read loads a file as walship load does.
func TestShellRead(t *testing.T) {
	m, _ := mustStartCluster(t, 0)
	var out, errOut bytes.Buffer
	err := runShell(context.Background(), []string{"--history", "", m.URL()},
		strings.NewReader(".read testdata/books.sql\nSELECT count(*) AS n FROM book;\n.read nosuch.sql\n"), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "nosuch.sql") {
		t.Fatalf("a missing file: %v", err)
	}
	if !strings.Contains(out.String(), "loaded 32 statements of testdata/books.sql in 1 chunk") || !strings.Contains(out.String(), " n\n---\n 4\n") {
		t.Fatalf("output:\n%s\n%s", out.String(), errOut.String())
	}
}
