package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
)

// sqliteFile returns the bytes of a SQLite file made by plain SQLite with
// the given statements.
func sqliteFile(tb testing.TB, stmts ...string) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "f.sqlite")
	h, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := h.Exec(s); err != nil {
			tb.Fatal(err)
		}
	}
	h.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func checksumOf(tb testing.TB, url string) *client.Checksum {
	tb.Helper()
	sum, err := client.New(url).Checksum(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

// POST /db/load with a SQLite file replaces the master's database as a new
// history: the slave bootstraps to it (not diverged) and both hold the
// file's content; writes go on. A slave refuses a load with the master's
// URL; a body that is neither a database nor valid SQL, and a damaged
// database, are 400 and change nothing.
func TestLoadEndpoint(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	mustExec(t, mc, "CREATE TABLE old (v)")
	mustExec(t, mc, "INSERT INTO old VALUES (1)")
	sl, _ := mustRunSlave(t, srv.URL(), "s1")
	waitApplied(t, sl, 2)
	file := sqliteFile(t, "CREATE TABLE fresh (id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO fresh (v) VALUES ('a'), ('b'), ('c')", "CREATE INDEX fresh_v ON fresh (v)")

	status, _, body := do(t, http.MethodPost, sl.URL()+"/db/load", file)
	if eb := errorBody(t, body); status != 403 || eb.Master != srv.URL() {
		t.Fatalf("load on a slave: %d %s", status, body)
	}
	before := checksumOf(t, srv.URL())
	damaged := append([]byte(nil), file...)
	for i := 100; i < len(damaged); i += 7 {
		damaged[i] ^= 0x5a
	}
	for name, b := range map[string][]byte{
		"not SQL":   []byte("\x00\x01 this is not SQL at all"),
		"damaged":   damaged,
		"truncated": file[:len(file)/2+100],
		"empty":     nil,
		"bad dump":  []byte("CREATE TABLE x (v); INSERT INTO nowhere VALUES (1);"),
	} {
		status, _, body := do(t, http.MethodPost, srv.URL()+"/db/load", b)
		if status != 400 {
			t.Errorf("%s: %d %s", name, status, body)
		}
		if after := checksumOf(t, srv.URL()); after.Checksum != before.Checksum || after.Index != before.Index {
			t.Fatalf("%s changed the database: %+v", name, after)
		}
	}

	status, h, body := do(t, http.MethodPost, srv.URL()+"/db/load", file)
	if status != 200 || string(body) != `{"results":[]}` || h.Get(client.HeaderIndex) != "3" {
		t.Fatalf("load: %d %v %s", status, h, body)
	}
	mustExec(t, mc, "INSERT INTO fresh (v) VALUES ('after')")
	waitFor(t, "the slave to follow the new history", func() bool {
		return sl.Slave.DB().AppliedIndex() >= 4
	})
	m, s := checksumOf(t, srv.URL()), checksumOf(t, sl.URL())
	if m.Index != 4 || m.Checksum != s.Checksum || s.Index != 4 || len(m.Tables) != 1 {
		t.Fatalf("master %+v, slave %+v", m, s)
	}
	st, err := client.New(sl.URL()).LogStatus(context.Background())
	if err != nil || st.State == client.StateDiverged || st.LogID != srv.Master.Log().ID() {
		t.Fatalf("slave after the load: %+v %v", st, err)
	}

	// A SQL dump runs as one transaction on the current database.
	status, h, body = do(t, http.MethodPost, srv.URL()+"/db/load",
		[]byte("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE d (v);\nINSERT INTO d VALUES ('x');\nINSERT INTO fresh (v) VALUES ('dumped');\nCOMMIT;\n"))
	if status != 200 || h.Get(client.HeaderIndex) != "5" || !bytes.Contains(body, []byte(`"results"`)) {
		t.Fatalf("dump: %d %v %s", status, h, body)
	}
	if got := dump(t, mc, "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM fresh)"); !strings.Contains(got, "[1,5]") {
		t.Fatalf("after the dump: %s", got)
	}
}
