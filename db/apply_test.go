package db

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/wal"
)

func entry(index uint64, sqls ...string) *wal.Entry {
	return &wal.Entry{Index: index, Epoch: 1, Time: pinnedMS + int64(index), Seed: index, Statements: stmts(sqls...)}
}

func TestApplyOrder(t *testing.T) {
	d := mustOpenDB(t)
	if d.LogID() != "" || d.AppliedIndex() != 0 {
		t.Fatalf("new database follows %q at %d", d.LogID(), d.AppliedIndex())
	}
	if err := d.Apply(testLogID, nil); err != nil {
		t.Fatalf("Apply of nothing: %v", err)
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(2, "CREATE TABLE t (a)")}); !errors.Is(err, ErrGap) {
		t.Fatalf("Apply from index 2 on an empty database: %v, want ErrGap", err)
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE t (a)"), entry(2, "INSERT INTO t VALUES (2)")}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, d)
	for name, es := range map[string][]*wal.Entry{
		"gap":                 {entry(4, "INSERT INTO t VALUES (4)")},
		"again":               {entry(2, "INSERT INTO t VALUES (2)")},
		"gap inside the list": {entry(3, "INSERT INTO t VALUES (3)"), entry(5, "INSERT INTO t VALUES (5)")},
		"duplicate in list":   {entry(3, "INSERT INTO t VALUES (3)"), entry(3, "INSERT INTO t VALUES (3)")},
	} {
		if err := d.Apply(testLogID, es); !errors.Is(err, ErrGap) {
			t.Errorf("%s: %v, want ErrGap", name, err)
		}
	}
	if err := d.Apply("another-log", []*wal.Entry{entry(3, "INSERT INTO t VALUES (3)")}); !errors.Is(err, ErrOtherLog) {
		t.Errorf("entries of another log: %v, want ErrOtherLog", err)
	}
	if after := dump(t, d); after != before || d.AppliedIndex() != 2 || d.LogID() != testLogID {
		t.Fatalf("refused entries changed the database (applied %d, log %q): %s", d.AppliedIndex(), d.LogID(), diffLines(before, after))
	}
}

func TestApplyFailureAppliesNothing(t *testing.T) {
	d := mustOpenDB(t)
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE t (a UNIQUE)", "INSERT INTO t VALUES (1)")}); err != nil {
		t.Fatal(err)
	}
	before := dump(t, d)
	err := d.Apply(testLogID, []*wal.Entry{
		entry(2, "INSERT INTO t VALUES (2)", "CREATE TABLE u (b)"),
		entry(3, "INSERT INTO t VALUES (3)", "INSERT INTO u VALUES (3)", "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (4)"),
		entry(4, "INSERT INTO t VALUES (5)"),
	})
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("Apply: %v, want an *ApplyError", err)
	}
	if ae.Index != 3 || ae.Pos != 2 || !strings.Contains(ae.Error(), "entry 3, statement 2") {
		t.Errorf("ApplyError at entry %d, statement %d (%q); want 3, 2", ae.Index, ae.Pos, ae.Error())
	}
	var sqlErr *Error
	if !errors.As(err, &sqlErr) || sqlErr.Primary() != 19 /* SQLITE_CONSTRAINT */ {
		t.Errorf("ApplyError wraps %v, want the constraint error", ae.Err)
	}
	if after := dump(t, d); after != before || d.AppliedIndex() != 1 {
		t.Fatalf("a failed Apply left a trace (applied index %d): %s", d.AppliedIndex(), diffLines(before, after))
	}
	// The database is still usable, from the same index.
	if err := d.Apply(testLogID, []*wal.Entry{entry(2, "INSERT INTO t VALUES (2)")}); err != nil {
		t.Fatal(err)
	}
	if d.AppliedIndex() != 2 {
		t.Fatalf("applied index %d, want 2", d.AppliedIndex())
	}
}

func TestReopenKeepsPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sqlite")
	d, err := Open(path, Options{Readers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE t (a)"), entry(2, "INSERT INTO t VALUES (datetime('now'))")}); err != nil {
		t.Fatal(err)
	}
	m := newMaster(t, d)
	m.exec(pinnedMS, 3, "INSERT INTO t VALUES (random())")
	want := dump(t, d)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Begin(); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close: %v, want ErrClosed", err)
	}
	if _, err := d.Query(t.Context(), stmts("SELECT 1")); !errors.Is(err, ErrClosed) {
		t.Errorf("Query after Close: %v, want ErrClosed", err)
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(4, "SELECT 1")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close: %v, want ErrClosed", err)
	}

	d = mustOpenDBAt(t, path)
	if d.LogID() != testLogID || d.AppliedIndex() != 3 {
		t.Fatalf("reopened database follows %q at %d; want %q at 3", d.LogID(), d.AppliedIndex(), testLogID)
	}
	if got := dump(t, d); got != want {
		t.Fatalf("content changed across reopen: %s", diffLines(want, got))
	}
	if err := d.Apply("another-log", []*wal.Entry{entry(4, "SELECT 1")}); !errors.Is(err, ErrOtherLog) {
		t.Fatalf("after reopen, entries of another log: %v, want ErrOtherLog", err)
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(4, "INSERT INTO t VALUES (4)")}); err != nil || d.AppliedIndex() != 4 {
		t.Fatalf("after reopen, Apply of the next entry: %v, applied %d", err, d.AppliedIndex())
	}
}

// TestOpenErrors checks that a path that cannot hold a database, or a file
// that is not one, is an error.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing", "db.sqlite"), Options{}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	garbage := filepath.Join(dir, "garbage.sqlite")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(garbage, Options{})
	var sqlErr *Error
	if !errors.As(err, &sqlErr) || sqlErr.IsClientError() {
		t.Errorf("Open of a file that is no database: %v; want a node-side SQLite error", err)
	}
	d := mustOpenDB(t)
	if filepath.Base(d.Path()) != "db.sqlite" {
		t.Errorf("Path() = %q", d.Path())
	}
}
