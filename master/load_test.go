package master

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// plainDB writes a SQLite file with plain SQLite (not walship) holding n
// rows in table loaded.
func plainDB(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "plain.sqlite")
	h, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Exec("CREATE TABLE loaded (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if _, err := h.Exec("INSERT INTO loaded (v) VALUES (?)", i); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

// Load installs the file as a new history: a new log_id, the log's next
// index, the old log gone; writes go on after it, a feed request of the
// old history is told where the new one is, and all of it holds across a
// restart.
func TestLoadStartsNewHistory(t *testing.T) {
	dir := t.TempDir()
	n := mustOpen(t, dir, wal.Options{NoSync: true})
	n.mustExec(t, "CREATE TABLE t (v)")
	n.mustExec(t, "INSERT INTO t VALUES (1)")
	oldID := n.log.ID()
	index, err := n.m.Load(context.Background(), plainDB(t, 7))
	if err != nil {
		t.Fatal(err)
	}
	if index != 3 || n.db.AppliedIndex() != 3 || n.db.LogID() == oldID || n.log.ID() != n.db.LogID() ||
		n.log.FirstIndex() != 4 || n.log.LastIndex() != 3 {
		t.Fatalf("loaded at %d: db %s@%d, log %s %d..%d (old %s)", index, n.db.LogID(), n.db.AppliedIndex(),
			n.log.ID(), n.log.FirstIndex(), n.log.LastIndex(), oldID)
	}
	if got := n.count(t, "loaded"); got != 7 {
		t.Fatalf("%d rows loaded", got)
	}
	if _, err := n.db.Query(context.Background(), []wal.Statement{{SQL: "SELECT * FROM t"}}); err == nil {
		t.Fatal("the old table is still there")
	}
	if r := n.mustExec(t, "INSERT INTO loaded (v) VALUES ('after')"); r.Index != 4 {
		t.Fatalf("the first write after the load is at %d", r.Index)
	}
	step, ok := n.db.Left(oldID)
	if !ok || step.To != n.log.ID() || step.Index != 3 || step.Reason != "load" {
		t.Fatalf("history: %+v %v", step, ok)
	}
	_, err = n.m.Feed(context.Background(), FeedRequest{From: 3, LogID: oldID, Applied: 2})
	var ce *CompactedError
	if !errors.As(err, &ce) || ce.NewLogID != n.log.ID() || ce.Left.Index != 3 {
		t.Fatalf("feed of the old history: %v", err)
	}
	if _, err := n.m.Feed(context.Background(), FeedRequest{From: 3, LogID: "0123456789abcdef0123456789abcdef"}); !errors.Is(err, ErrLogConflict) {
		t.Fatalf("feed of a stranger: %v", err)
	}
	newID := n.log.ID()
	n.close()
	n = mustOpen(t, dir, wal.Options{NoSync: true})
	if n.log.ID() != newID || n.db.LogID() != newID || n.db.AppliedIndex() != 4 || n.count(t, "loaded") != 8 {
		t.Fatalf("after a restart: log %s db %s@%d", n.log.ID(), n.db.LogID(), n.db.AppliedIndex())
	}
}

// A crash between the database's install and the log's restart leaves the
// new database beside the old log: the master restarts the log when it
// opens. A restored data directory (a fresh database, no log) starts a
// log of its history.
func TestLoadCutShortIsFinishedAtOpen(t *testing.T) {
	dir := t.TempDir()
	n := mustOpen(t, dir, wal.Options{NoSync: true})
	n.mustExec(t, "CREATE TABLE t (v)")
	oldID := n.log.ID()
	file := plainDB(t, 3)
	step := db.HistoryStep{From: oldID, To: "00112233445566778899aabbccddeeff", Index: 2, Reason: "load"}
	if err := db.StartHistory(file, step, nil); err != nil {
		t.Fatal(err)
	}
	n.m.Close()
	if err := n.db.Install(file); err != nil { // and the log is not restarted: a crash
		t.Fatal(err)
	}
	n.db.Close()
	n.log.Close()
	n.m = nil
	n = mustOpen(t, dir, wal.Options{NoSync: true})
	if n.log.ID() != step.To || n.log.FirstIndex() != 3 || n.count(t, "loaded") != 3 {
		t.Fatalf("log %s from %d", n.log.ID(), n.log.FirstIndex())
	}
	n.mustExec(t, "INSERT INTO loaded (v) VALUES ('x')")

	// A restored directory: only the database, at the start of a history.
	dir2 := t.TempDir()
	file = plainDB(t, 2)
	step = db.HistoryStep{From: oldID, To: "ffeeddccbbaa99887766554433221100", Index: 40, Reason: "restore"}
	if err := db.StartHistory(file, step, nil); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(file, filepath.Join(dir2, "db.sqlite")); err != nil {
		t.Fatal(err)
	}
	n2 := mustOpen(t, dir2, wal.Options{NoSync: true})
	if n2.log.ID() != step.To || n2.log.FirstIndex() != 41 {
		t.Fatalf("restored: log %s from %d", n2.log.ID(), n2.log.FirstIndex())
	}
	if r := n2.mustExec(t, "INSERT INTO loaded (v) VALUES ('x')"); r.Index != 41 {
		t.Fatalf("first write at %d", r.Index)
	}
	// Once it wrote, the database is not fresh: without its log it is
	// refused, as any database ahead of its log.
	n2.close()
	for _, name := range []string{"log.db"} {
		if err := removeFile(filepath.Join(dir2, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := open(dir2, wal.Options{NoSync: true}); err == nil {
		t.Fatal("a database that wrote in its history started without its log")
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

func removeFile(path string) error { return os.Remove(path) }
