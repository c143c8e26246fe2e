package db

import (
	"context"
	"slices"
	"testing"

	"github.com/walship/walship/wal"
)

// A check entry runs no SQL: the applied index passes it, the content
// stays as it was, alone or among writes, in one transaction or several.
func TestApplyCheckEntries(t *testing.T) {
	d := mustOpenDB(t)
	ctx := context.Background()
	marker := func(i uint64) *wal.Entry { return &wal.Entry{Index: i, Epoch: 1, Check: &wal.Check{}} }
	result := func(i, of uint64, parts ...wal.Part) *wal.Entry {
		return &wal.Entry{Index: i, Epoch: 1, Check: &wal.Check{Of: of, Parts: parts}}
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE t (a)", "INSERT INTO t VALUES (1)"), marker(2)}); err != nil {
		t.Fatal(err)
	}
	at2, err := d.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at2.Index != 2 || d.AppliedIndex() != 2 || d.LogID() != testLogID {
		t.Fatalf("after a marker at 2: checksum index %d, applied %d, log %q", at2.Index, d.AppliedIndex(), d.LogID())
	}
	parts, err := at2.Parts()
	if err != nil {
		t.Fatal(err)
	}
	// A result, whatever its sums say, changes nothing either: comparing is
	// the slave's job.
	if err := d.Apply(testLogID, []*wal.Entry{result(3, 2, parts...), result(4, 2, wal.Part{Name: "t"})}); err != nil {
		t.Fatal(err)
	}
	at4, err := d.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at4.Index != 4 || at4.Sum != at2.Sum {
		t.Fatalf("check entries changed the content: %+v, before %+v", at4, at2)
	}
	if err := d.Apply(testLogID, []*wal.Entry{entry(5, "INSERT INTO t VALUES (5)"), marker(6), entry(7, "INSERT INTO t VALUES (7)")}); err != nil {
		t.Fatal(err)
	}
	if got := mustQuery(t, d, "SELECT group_concat(a) FROM t"); showRow(got[0]) != `text:"1,5,7"` || d.AppliedIndex() != 7 {
		t.Fatalf("after writes around a marker: t holds %s, applied %d", showRow(got[0]), d.AppliedIndex())
	}
	// Replayed on another database, the content is the same at every index.
	b := mustOpenDB(t)
	if err := b.Apply(testLogID, []*wal.Entry{entry(1, "CREATE TABLE t (a)", "INSERT INTO t VALUES (1)"), marker(2), result(3, 2, parts...)}); err != nil {
		t.Fatal(err)
	}
	if sb, _ := b.Checksum(ctx); sb.Sum != at2.Sum || sb.Index != 3 {
		t.Fatalf("replica at 3: %+v, master at 2: %+v", sb, at2)
	}
}

// A ReadTx reads the content at the index it began at while the writer
// commits more; its checksum is the one DB.Checksum gave there.
func TestReadTxPinsContent(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	ctx := context.Background()
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "INSERT INTO t (v) VALUES ('a'), ('b')")
	want, err := d.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := d.ReadTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.Checksum(ctx); err == nil {
		t.Fatal("Checksum before Begin: no error")
	}
	pos, err := rt.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if pos.Index != d.AppliedIndex() || pos.LogID != testLogID {
		t.Fatalf("Begin at %+v, the database is at %d", pos, d.AppliedIndex())
	}
	m.exec(pinnedMS, 2, "INSERT INTO t (v) VALUES ('c')", "CREATE TABLE u (x)")
	m.exec(pinnedMS, 3, "UPDATE t SET v = 'z'")
	got, err := rt.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != pos.Index || got.Sum != want.Sum || got.Schema != want.Schema || !equalMaps(got.Tables, want.Tables) {
		t.Fatalf("pinned checksum %+v, want %+v", got, want)
	}
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	now, err := d.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now.Sum == want.Sum || now.Index != pos.Index+2 {
		t.Fatalf("after the writes: %+v", now)
	}
	// A canceled checksum stops, and the connection serves again.
	rt2, err := d.ReadTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt2.Begin(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rt2.Checksum(cctx); err == nil {
		t.Fatal("Checksum with a canceled context: no error")
	}
	if err := rt2.Close(); err != nil {
		t.Fatal(err)
	}
	for range 8 { // every reader of the pool
		if _, err := d.Checksum(ctx); err != nil {
			t.Fatalf("a checksum after a canceled one: %v", err)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Parts names the header, the schema and each table, and DiffParts names
// exactly the parts that differ.
func TestChecksumParts(t *testing.T) {
	a := mustOpenDB(t)
	m := newMaster(t, a)
	ctx := context.Background()
	m.exec(pinnedMS, 1, "CREATE TABLE t (a)", "CREATE TABLE u (b)", "INSERT INTO t VALUES (1)", "INSERT INTO u VALUES (2)")
	b := m.replica()
	sa, _ := a.Checksum(ctx)
	pa, err := sa.Parts()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pa {
		names = append(names, p.Name)
	}
	if want := []string{PartHeader, PartSchema, "t", "u"}; !slices.Equal(names, want) {
		t.Fatalf("parts %v, want %v", names, want)
	}
	diff := func(x, y *DB) []string {
		t.Helper()
		sx, err := x.Checksum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sy, err := y.Checksum(ctx)
		if err != nil {
			t.Fatal(err)
		}
		px, _ := sx.Parts()
		py, _ := sy.Parts()
		return DiffParts(px, py)
	}
	if d := diff(a, b); len(d) != 0 {
		t.Fatalf("a replica differs in %v", d)
	}
	// A row changed behind the log's back: only its table.
	apply(t, b, "UPDATE u SET b = 3")
	if d := diff(a, b); !slices.Equal(d, []string{"u"}) {
		t.Fatalf("after changing u: %v", d)
	}
	// The header alone, then a table only one side has (and the schema).
	c := m.replica()
	apply(t, c, "PRAGMA user_version = 7")
	if d := diff(a, c); !slices.Equal(d, []string{PartHeader}) {
		t.Fatalf("after user_version: %v", d)
	}
	e := m.replica()
	apply(t, e, "CREATE TABLE extra (x)")
	if d := diff(a, e); !slices.Equal(d, []string{"extra", PartSchema}) {
		t.Fatalf("after a table of its own: %v", d)
	}
	if d := diff(e, a); !slices.Equal(d, []string{"extra", PartSchema}) {
		t.Fatalf("the other way round: %v", d)
	}
	// No client's table can take the name of a part that is no table.
	for _, name := range []string{PartHeader, PartSchema, "SQLITE_HEADER"} {
		tx, err := a.Begin()
		if err != nil {
			t.Fatal(err)
		}
		out := tx.Run(req(true, `CREATE TABLE "`+name+`" (x)`), pinnedMS, 9)
		_ = tx.Rollback()
		if out.Err == nil {
			t.Fatalf("CREATE TABLE %s was accepted", name)
		}
	}
}

// apply changes d outside the log, as an operator's sqlite3 would: on the
// writer, under the node's own policy.
func apply(t *testing.T, d *DB, sql string) {
	t.Helper()
	tx, err := d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	d.w.auth.reset(policyInternal)
	if err := d.w.exec(sql); err != nil {
		_ = tx.Rollback()
		t.Fatalf("%s: %v", sql, err)
	}
	if err := tx.Commit(d.LogID(), d.AppliedIndex()); err != nil {
		t.Fatal(err)
	}
}
