package db

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A backup is the database at one applied index, page for page, while the
// writer goes on: writes commit between its steps, and reads run.
func TestBackupWhileWriting(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "CREATE VIRTUAL TABLE f USING fts5(a)")
	for i := range 20 {
		m.exec(pinnedMS, uint64(2+i), fmt.Sprintf("INSERT INTO t (v) WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 500) SELECT randomblob(1000 + %d) FROM n", i),
			"INSERT INTO f VALUES ('alpha beta')")
	}
	at := d.AppliedIndex()
	steps, during := 0, 0
	backupStepHook = func() {
		steps++
		// The writer commits while the backup holds its read transaction,
		// and a read runs.
		done := make(chan struct{})
		go func() {
			defer close(done)
			m.exec(pinnedMS, uint64(100+steps), "INSERT INTO t (v) VALUES ('during')")
			mustQuery(t, d, "SELECT count(*) FROM t")
		}()
		select {
		case <-done:
			during++
		case <-time.After(10 * time.Second):
			t.Error("a write waited for the backup")
		}
	}
	t.Cleanup(func() { backupStepHook = nil })
	path := filepath.Join(t.TempDir(), "copy.sqlite")
	pos, err := d.Backup(context.Background(), path, nil)
	backupStepHook = nil
	if err != nil {
		t.Fatal(err)
	}
	if pos.Index != at || pos.LogID != testLogID || steps < 2 || during != steps {
		t.Fatalf("position %+v (want index %d), %d steps, %d writes during them", pos, at, steps, during)
	}
	// The copy is a replica at that index: the same checksum, root pages
	// and FTS5 shadow tables included.
	c := mustOpenDBAt(t, path)
	got, err := c.Checksum(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := mustOpenDB(t)
	if err := r.Apply(testLogID, m.entries[:at]); err != nil {
		t.Fatal(err)
	}
	want, _ := r.Checksum(context.Background())
	if got.Index != at || got.Sum != want.Sum {
		t.Fatalf("copy at %d: %s, a replica at %d: %s", got.Index, got.Sum, want.Index, want.Sum)
	}
	// A node goes on from it: the entries after the copy apply.
	if err := c.Apply(testLogID, m.entries[at:]); err != nil {
		t.Fatal(err)
	}
	a, _ := d.Checksum(context.Background())
	b, _ := c.Checksum(context.Background())
	if a.Sum != b.Sum {
		t.Fatal("the copy, brought up to date from the log, differs from the master")
	}
	if _, err := d.Backup(context.Background(), path, nil); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a backup over an existing file: %v", err)
	}
}

// Install puts a copy in the place of a database, which then follows the
// log from the copy's index; its connections, reads included, work on the
// new file.
func TestInstall(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (v)", "CREATE VIRTUAL TABLE f USING fts5(a)")
	m.exec(pinnedMS, 2, "INSERT INTO t VALUES ('a')", "INSERT INTO f VALUES ('alpha')")
	copyPath := filepath.Join(t.TempDir(), "copy.sqlite")
	pos, err := d.Backup(context.Background(), copyPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.exec(pinnedMS, 3, "INSERT INTO t VALUES ('b')", "INSERT INTO f VALUES ('beta')")
	// A slave holding something else entirely, with cached statements.
	s := mustOpenDB(t)
	ms := newMaster(t, s)
	ms.exec(pinnedMS, 9, "CREATE TABLE other (x)", "INSERT INTO other VALUES (1)")
	mustQuery(t, s, "SELECT * FROM other")
	if err := s.Install(copyPath); err != nil {
		t.Fatal(err)
	}
	if s.AppliedIndex() != pos.Index || s.LogID() != pos.LogID {
		t.Fatalf("installed at %d %s, the copy is at %+v", s.AppliedIndex(), s.LogID(), pos)
	}
	if _, err := s.Query(context.Background(), stmts("SELECT * FROM other")); err == nil {
		t.Fatal("the old database's table is still there")
	}
	if err := s.Apply(testLogID, m.entries[pos.Index:]); err != nil {
		t.Fatal(err)
	}
	a, _ := d.Checksum(context.Background())
	b, _ := s.Checksum(context.Background())
	if a.Sum != b.Sum || len(mustQuery(t, s, "SELECT * FROM t")) != 2 {
		t.Fatal("installed and brought up to date, the database differs from the master")
	}
	if _, err := os.Stat(copyPath); !os.IsNotExist(err) {
		t.Fatalf("the installed file is still at its old path: %v", err)
	}
}
