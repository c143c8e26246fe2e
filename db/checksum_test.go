package db

import (
	"context"
	"testing"
)

func TestChecksum(t *testing.T) {
	a := mustOpenDB(t)
	m := newMaster(t, a)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v, r)", "CREATE TABLE w (k TEXT PRIMARY KEY, n) WITHOUT ROWID",
		"CREATE INDEX t_v ON t (v)")
	m.exec(pinnedMS, 2, "INSERT INTO t (v, r) VALUES ('a', random()), (1, randomblob(4)), (1.0, NULL)", "INSERT INTO w VALUES ('x', 1), ('y', 2)")
	ctx := context.Background()
	sa, err := a.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := m.replica()
	sb, err := b.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Sum == "" || sa.Sum != sb.Sum || sa.Index != a.AppliedIndex() || sb.Index != sa.Index || len(sa.Tables) != 2 {
		t.Fatalf("master %+v, replica %+v", sa, sb)
	}
	// The storage class counts: 1 and 1.0 and '1' differ.
	m.exec(pinnedMS, 3, "UPDATE t SET v = '1' WHERE id = 2")
	sa2, err := a.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sa2.Sum == sa.Sum || sa2.Tables["t"] == sa.Tables["t"] || sa2.Tables["w"] != sa.Tables["w"] || sa2.Index != sa.Index+1 {
		t.Fatalf("after an update of t: %+v, before %+v", sa2, sa)
	}
	// A schema change alone changes the sum.
	m.exec(pinnedMS, 4, "CREATE INDEX w_n ON w (n)")
	sa3, _ := a.Checksum(ctx)
	if sa3.Sum == sa2.Sum || sa3.Tables["t"] != sa2.Tables["t"] {
		t.Fatalf("after CREATE INDEX: %+v", sa3)
	}
	// Rowids count: the same values under other rowids differ.
	c := mustOpenDB(t)
	mc := newMaster(t, c)
	mc.exec(pinnedMS, 1, "CREATE TABLE t (v)", "INSERT INTO t VALUES ('a')")
	d := mustOpenDB(t)
	md := newMaster(t, d)
	md.exec(pinnedMS, 1, "CREATE TABLE t (v)", "INSERT INTO t (rowid, v) VALUES (7, 'a')")
	sc, _ := c.Checksum(ctx)
	sd, _ := d.Checksum(ctx)
	if sc.Sum == sd.Sum {
		t.Fatal("rows under other rowids give the same checksum")
	}
}
