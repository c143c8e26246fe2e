package db

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/wal"
)

// TestOtherProcessLockedOut: a node's database belongs to its process.
// Another process cannot read it while the node has it open (SQLite's
// unix-excl VFS), connections of the same process share it, and the
// WAL index lives in memory, not in a -shm file.
func TestOtherProcessLockedOut(t *testing.T) {
	if path := os.Getenv("WALSHIP_DB_HELPER"); path != "" {
		// The other process: open the database and read it.
		d, err := Open(path, Options{})
		if err == nil {
			_, err = d.Query(context.Background(), []wal.Statement{{SQL: "SELECT count(*) FROM t"}})
			d.Close()
		}
		if err != nil {
			os.Stdout.WriteString("refused: " + err.Error())
			os.Exit(3)
		}
		os.Stdout.WriteString("read it")
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "db.sqlite")
	other := func() (string, int) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOtherProcessLockedOut$")
		cmd.Env = append(os.Environ(), "WALSHIP_DB_HELPER="+path)
		out, _ := cmd.Output()
		return string(out), cmd.ProcessState.ExitCode()
	}
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE t (v)"), entry(2, "INSERT INTO t VALUES (1)")}); err != nil {
		t.Fatal(err)
	}
	// Same process: another connection reads it.
	res, err := d.Query(context.Background(), []wal.Statement{{SQL: "SELECT count(*) FROM t"}})
	if err != nil || res[0].Rows[0][0].Int != 1 {
		t.Fatalf("read connection: %+v, %v", res, err)
	}
	if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
		t.Fatalf("a -shm file exists (%v): the WAL index should be in memory", err)
	}
	if out, code := other(); code != 3 || !strings.Contains(out, "locked") {
		t.Fatalf("another process while the database is open: exit %d, %q; want it refused as locked", code, out)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if out, code := other(); code != 0 || out != "read it" {
		t.Fatalf("another process after close: exit %d, %q", code, out)
	}
}
