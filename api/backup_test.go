package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
)

// sqlite3CLI returns the path of the sqlite3 command line: SQLite itself
// is the judge of a backup file. .ci/run installs it (Debian's sqlite3).
func sqlite3CLI(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("sqlite3")
	if err != nil {
		tb.Fatalf("these tests need the sqlite3 command line (apt-get install sqlite3; .ci/run installs it): %v", err)
	}
	return p
}

// sqlite3Run runs SQL with the sqlite3 command line on file and returns
// its output.
func sqlite3Run(tb testing.TB, file, sql string) string {
	tb.Helper()
	out, err := exec.Command(sqlite3CLI(tb), "-bail", file, sql).CombinedOutput()
	if err != nil {
		tb.Fatalf("sqlite3 %s %q: %v: %s", file, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// GET /db/backup gives a SQLite file that plain sqlite3 opens, checks and
// reads, at the index it names, on the master and on a slave; gzipped and
// vacuumed when asked; bad parameters get 400.
func TestBackupEndpoint(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v, pad)")
	mustExec(t, mc, "CREATE INDEX t_v ON t (v)")
	for i := range 20 {
		mustExec(t, mc, "INSERT INTO t (v, pad) VALUES (?, randomblob(5000))", fmt.Sprintf("row %d", i))
	}
	mustExec(t, mc, "DELETE FROM t WHERE id % 3 = 0") // free pages, for vacuum
	sl, _ := mustRunSlave(t, srv.URL(), "s1")
	waitApplied(t, sl, srv.Master.Log().LastIndex())
	for _, node := range []string{srv.URL(), sl.URL()} {
		for _, q := range []string{"", "?compress", "?vacuum", "?fmt=delete&compress&vacuum"} {
			status, h, body := do(t, http.MethodGet, node+"/db/backup"+q, nil)
			if status != 200 || h.Get(client.HeaderIndex) != "23" || h.Get(client.HeaderLogID) != srv.Master.Log().ID() {
				t.Fatalf("%s%s: %d %v %s", node, q, status, h, body)
			}
			if strings.Contains(q, "compress") {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			} else if h.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Fatalf("%s: content-length %s, body %d bytes", q, h.Get("Content-Length"), len(body))
			}
			file := filepath.Join(t.TempDir(), "b.sqlite")
			if err := os.WriteFile(file, body, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := sqlite3Run(t, file, "PRAGMA integrity_check"); got != "ok" {
				t.Fatalf("%s%s: integrity_check: %s", node, q, got)
			}
			if got := sqlite3Run(t, file, "PRAGMA journal_mode; SELECT count(*), min(id), max(id) FROM t; SELECT applied_index FROM _walship"); got != "delete\n14|1|20\n23" {
				t.Fatalf("%s%s: the backup holds %q", node, q, got)
			}
			if got := sqlite3Run(t, file, "PRAGMA freelist_count"); strings.Contains(q, "vacuum") != (got == "0") {
				t.Fatalf("%s%s: %s free pages", node, q, got)
			}
		}
	}
	for _, q := range []string{"?fmt=xml", "?fmt=sql&vacuum", "?tables=t"} {
		if status, _, body := do(t, http.MethodGet, srv.URL()+"/db/backup"+q, nil); status != 400 || errorBody(t, body).Error == "" {
			t.Fatalf("%s: %d %s", q, status, body)
		}
	}
	if status, _, _ := do(t, http.MethodPost, srv.URL()+"/db/backup", nil); status != 405 {
		t.Fatalf("POST /db/backup: %d", status)
	}
}

// A backup taken while clients write is the database at exactly the index
// it names: each write adds one row, so the rows it holds equal its index
// less the schema's entry.
func TestBackupWhileWriting(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := mc.Exec(ctx, "INSERT INTO t (v) VALUES (randomblob(500))"); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
		// A connection the writers dialled for a request they then
		// cancelled stays open and unused: the server's shutdown waits 5 s
		// for such new connections.
		mc.HTTP.CloseIdleConnections()
	}()
	seen := map[string]bool{}
	for len(seen) < 3 {
		status, h, body := do(t, http.MethodGet, srv.URL()+"/db/backup", nil)
		if status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		file := filepath.Join(t.TempDir(), "b.sqlite")
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		index, _ := strconv.Atoi(h.Get(client.HeaderIndex))
		if got := sqlite3Run(t, file, "PRAGMA integrity_check; SELECT count(*) FROM t"); got != "ok\n"+strconv.Itoa(index-1) {
			t.Fatalf("backup at index %d holds %q", index, got)
		}
		seen[h.Get(client.HeaderIndex)] = true
	}
}

// GET /db/backup?fmt=sql is a dump that sqlite3 loads and that loads into
// another walship cluster (POST /db/load) with every table's content
// equal; tables= limits it; the dump of an empty database loads too.
func TestBackupSQLDump(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	for _, q := range []string{
		"CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT, r REAL, b BLOB)",
		"CREATE TABLE b (k TEXT PRIMARY KEY, n) WITHOUT ROWID",
		"CREATE INDEX a_v ON a (v)",
		"CREATE VIEW av AS SELECT v FROM a",
		"CREATE TRIGGER a_ins AFTER INSERT ON a BEGIN INSERT OR REPLACE INTO b VALUES (new.v, new.id); END",
	} {
		mustExec(t, mc, q)
	}
	for i := range 30 {
		mustExec(t, mc, "INSERT INTO a (v, r, b) VALUES (?, ?, randomblob(?))", fmt.Sprintf("it's %d\nline", i), float64(i)/7, i)
	}
	mustExec(t, mc, "DELETE FROM a WHERE id % 4 = 0")
	status, h, body := do(t, http.MethodGet, srv.URL()+"/db/backup?fmt=sql", nil)
	if status != 200 || h.Get("Content-Type") != "application/sql" || h.Get(client.HeaderIndex) != "36" ||
		!bytes.HasPrefix(body, []byte("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")) || !bytes.HasSuffix(body, []byte("COMMIT;\n")) {
		t.Fatalf("%d %v\n%s", status, h, body)
	}
	// sqlite3 loads it.
	file := filepath.Join(t.TempDir(), "from-dump.sqlite")
	cmd := exec.Command(sqlite3CLI(t), "-bail", file)
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 < dump: %v\n%s", err, out)
	}
	if got := sqlite3Run(t, file, "SELECT count(*), sum(length(b)) FROM a; SELECT count(*) FROM b; SELECT seq FROM sqlite_sequence"); got != "23|331\n30\n30" {
		t.Fatalf("sqlite3 loaded %q", got)
	}
	// Another walship master loads it, table for table the same.
	other, _ := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	if status, _, out := do(t, http.MethodPost, other.URL()+"/db/load", body); status != 200 {
		t.Fatalf("load the dump: %d %s", status, out)
	}
	want, got := checksumOf(t, srv.URL()), checksumOf(t, other.URL())
	for name, sum := range want.Tables {
		if got.Tables[name] != sum {
			t.Errorf("table %s differs after the dump was loaded: %s, want %s", name, got.Tables[name], sum)
		}
	}
	if len(got.Tables) != len(want.Tables) {
		t.Errorf("tables %v, want %v", got.Tables, want.Tables)
	}
	// Some tables, gzipped.
	status, _, body = do(t, http.MethodGet, srv.URL()+"/db/backup?fmt=sql&tables=b&compress", nil)
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if status != 200 || err != nil {
		t.Fatalf("%d %v", status, err)
	}
	text, _ := io.ReadAll(zr)
	if !bytes.Contains(text, []byte(`CREATE TABLE b `)) || bytes.Contains(text, []byte(`CREATE TABLE a `)) {
		t.Fatalf("tables=b gave\n%s", text)
	}
	if status, _, _ := do(t, http.MethodGet, srv.URL()+"/db/backup?fmt=sql&tables=nothing", nil); status != 400 {
		t.Fatalf("tables matching nothing: %d", status)
	}
	// The dump of an empty database loads (into a database that has it all).
	empty, _ := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	_, _, body = do(t, http.MethodGet, empty.URL()+"/db/backup?fmt=sql", nil)
	if status, _, out := do(t, http.MethodPost, other.URL()+"/db/load", body); status != 200 {
		t.Fatalf("load the dump of an empty database %q: %d %s", body, status, out)
	}
}

// A client that goes away in the middle of a backup ends it: the node's
// read connection comes back (more cut backups than the node has read
// connections, then a read and a whole backup are served).
func TestBackupCut(t *testing.T) {
	srv, mc := mustRunMasterConfig(t, master.Config{}, withSnapshots(t))
	mustExec(t, mc, "CREATE TABLE t (b)")
	for range 40 { // 20 MB: more than loopback's socket buffers hold
		mustExec(t, mc, "INSERT INTO t VALUES (randomblob(500000))")
	}
	for range 6 {
		resp, err := http.Get(srv.URL() + "/db/backup")
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10000)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // cut
	}
	if got := dump(t, mc, "SELECT count(*) FROM t"); !strings.Contains(got, "[40]") {
		t.Fatalf("a read after cut backups: %s", got)
	}
	status, h, body := do(t, http.MethodGet, srv.URL()+"/db/backup", nil)
	if status != 200 || h.Get("Content-Length") != strconv.Itoa(len(body)) || len(body) < 20_000_000 {
		t.Fatalf("a whole backup after cut ones: %d, %d bytes, %v", status, len(body), h)
	}
}
