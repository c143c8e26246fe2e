package snapshot_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/walship/walship/db"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// write applies one entry to d, as a master would have logged it.
func write(t *testing.T, d *db.DB, sql string) {
	t.Helper()
	next := d.AppliedIndex() + 1
	err := d.Apply("0123456789abcdef0123456789abcdef", []*wal.Entry{{Index: next, Epoch: 1, Time: 1, Seed: next,
		Statements: []wal.Statement{{SQL: sql}}}})
	if err != nil {
		t.Fatal(err)
	}
}

// A snapshot is a plain SQLite file once decompressed, that another SQLite
// opens, with walship's row saying where it is; its checksum is checked;
// a newer one replaces it, and a reopened store finds the latest.
func TestMakeAndOpen(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, err := snapshot.Open(filepath.Join(dir, "snapshots"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Latest(); !errors.Is(err, snapshot.ErrNone) {
		t.Fatalf("an empty store's latest: %v", err)
	}
	write(t, d, "CREATE TABLE t (v)")
	write(t, d, "INSERT INTO t VALUES ('one')")
	first, err := st.Make(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if first.Index != 2 || first.LogID != d.LogID() || first.Size == 0 || first.Compressed == 0 || first.Compressed >= first.Size {
		t.Fatalf("info %+v", first)
	}
	// Nothing applied since: the same snapshot.
	if again, _ := st.Make(context.Background(), d); again != first {
		t.Fatalf("a second Make without writes: %+v", again)
	}
	file := filepath.Join(t.TempDir(), "restored.sqlite")
	sum := decompress(t, st, first, file)
	if sum != first.SHA256 {
		t.Fatalf("checksum %s, the snapshot says %s", sum, first.SHA256)
	}
	plain, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	var applied int64
	if err := plain.QueryRow("SELECT v, (SELECT applied_index FROM _walship) FROM t").Scan(&v, &applied); err != nil || v != "one" || applied != 2 {
		t.Fatalf("the restored file: %q %d %v", v, applied, err)
	}
	plain.Close()
	write(t, d, "INSERT INTO t VALUES ('two')")
	second, err := st.Make(context.Background(), d)
	if err != nil || second.Index != 3 {
		t.Fatalf("second snapshot %+v %v", second, err)
	}
	if _, err := st.Open(first); !os.IsNotExist(err) {
		t.Fatalf("the older snapshot is still there: %v", err)
	}
	// What an interrupted Make leaves is removed; the latest is found.
	if err := os.WriteFile(filepath.Join(dir, "snapshots", "snapshot-00000000000000000009.sqlite.zst.tmp"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	st2, err := snapshot.Open(filepath.Join(dir, "snapshots"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if l, err := st2.Latest(); err != nil || l != second {
		t.Fatalf("reopened: %+v %v", l, err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*.tmp")); len(m) != 0 {
		t.Fatalf("left behind: %v", m)
	}
}

// A damaged or cut snapshot does not decompress to its checksum.
func TestDamagedSnapshot(t *testing.T) {
	dir := t.TempDir()
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	st, _ := snapshot.Open(filepath.Join(dir, "snapshots"), quiet())
	write(t, d, "CREATE TABLE t (v)")
	info, err := st.Make(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := st.Open(info)
	data, _ := io.ReadAll(f)
	f.Close()
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x40
	for name, b := range map[string][]byte{"flipped": flipped, "cut": data[:len(data)/2]} {
		_, sum, err := snapshot.Decompress(bytes.NewReader(b), io.Discard)
		if err == nil && sum == info.SHA256 {
			t.Errorf("%s snapshot passes its checksum", name)
		}
	}
}

func decompress(t *testing.T, st *snapshot.Store, info snapshot.Info, path string) string {
	t.Helper()
	f, err := st.Open(info)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	n, sum, err := snapshot.Decompress(f, out)
	if err != nil || n != info.Size {
		t.Fatalf("decompress: %d bytes, %v", n, err)
	}
	return sum
}
