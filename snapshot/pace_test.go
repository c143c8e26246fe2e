package snapshot

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// A paced snapshot holds what an unpaced one holds, and a paced one whose
// context ends stops, leaving nothing behind.
func TestPacedMake(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	apply := func(index uint64, sql string) {
		t.Helper()
		if err := d.Apply(d.LogID(), []*wal.Entry{{Index: index, Epoch: 1, Txn: true, Statements: []wal.Statement{{SQL: sql}}}}); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, "CREATE TABLE t (v)")
	apply(2, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) INSERT INTO t SELECT randomblob(1000) FROM n")
	unpaced, err := Open(filepath.Join(dir, "a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	paced, err := Open(filepath.Join(dir, "b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	paced.CPUShare = 0.5
	a, err := unpaced.Make(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	b, err := paced.Make(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 != b.SHA256 || a.Size != b.Size || a.Index != b.Index {
		t.Fatalf("paced %+v, unpaced %+v", b, a)
	}
	apply(3, "INSERT INTO t VALUES (1)")
	paced.CPUShare = 0.01
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := paced.Make(ctx, d); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a paced Make past its deadline: %v", err)
	}
	if l, err := paced.Latest(); err != nil || l != b {
		t.Fatalf("after the stopped Make the latest is %+v (%v), want %+v", l, err, b)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "b", "*"))
	for _, f := range left {
		if strings.HasSuffix(f, ".tmp") {
			t.Fatalf("left behind: %v", left)
		}
	}
}
