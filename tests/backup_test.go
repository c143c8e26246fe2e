package tests

import (
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// walship runs the walship command line and returns its output and error.
func walship(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(walshipBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// sqlite3 runs SQL with the sqlite3 command line (SQLite itself, the
// judge of a backup) on file; .ci/run installs it.
func sqlite3(t *testing.T, file, sql string) string {
	t.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("this test needs the sqlite3 command line (apt-get install sqlite3; .ci/run installs it): %v", err)
	}
	out, err := exec.Command(bin, "-bail", file, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s %q: %v: %s", file, sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

// A backup taken from a slave with 'walship backup' opens with sqlite3,
// passes its integrity check and holds the data; after a bad DELETE,
// 'walship restore' of it on the master brings the data back on every
// node (the slave bootstraps to the new history, it does not diverge),
// writes go on; a restore sent to a slave names the master; a damaged
// backup is refused and changes nothing.
func TestBackupAndRestoreCommands(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v, at TEXT DEFAULT CURRENT_TIMESTAMP, r DEFAULT (random()))")
	for i := range 50 {
		m.MustExec("INSERT INTO t (v) VALUES (?)", fmt.Sprintf("row %d", i))
	}
	c.WaitConverged(m)
	want, err := m.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.sqlite")
	out, err := walship(t, "backup", "--node", s.URL(), file)
	if err != nil || !strings.Contains(out, "at log index 51") {
		t.Fatalf("walship backup: %v\n%s", err, out)
	}
	if got := sqlite3(t, file, "PRAGMA integrity_check; SELECT count(*), max(v) FROM t"); got != "ok\n50|row 9" {
		t.Fatalf("the backup holds %q", got)
	}
	// As SQL: plain sqlite3 reads it into the same rows.
	dump := filepath.Join(t.TempDir(), "backup.sql")
	if out, err := walship(t, "backup", "--sql", "--node", m.URL(), dump); err != nil || !strings.Contains(out, "SQL dump") {
		t.Fatalf("walship backup --sql: %v\n%s", err, out)
	}
	fromDump := filepath.Join(t.TempDir(), "from-dump.sqlite")
	sqlite3(t, fromDump, ".read "+dump)
	if got, want := sqlite3(t, fromDump, "SELECT count(*), max(v), total(r), max(at) FROM t"), sqlite3(t, file, "SELECT count(*), max(v), total(r), max(at) FROM t"); got != want {
		t.Fatalf("the dump loaded into sqlite3 holds %q, the backup %q", got, want)
	}
	if out, err := walship(t, "backup", "--node", s.URL(), file); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("a backup over an existing file: %v\n%s", err, out)
	}

	m.MustExec("DELETE FROM t") // the mistake
	if out, err := walship(t, "restore", "--node", s.URL(), file); err == nil || !strings.Contains(out, m.URL()) {
		t.Fatalf("restore sent to a slave: %v\n%s", err, out)
	}
	damaged := filepath.Join(t.TempDir(), "damaged.sqlite")
	b, _ := os.ReadFile(file)
	if err := os.WriteFile(damaged, b[:len(b)-4096+10], 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := walship(t, "restore", "--node", m.URL(), damaged); err == nil || !strings.Contains(out, "damaged.sqlite") {
		t.Fatalf("a damaged backup: %v\n%s", err, out)
	}
	if n := m.Count("SELECT count(*) FROM t"); n != 0 {
		t.Fatalf("a refused restore changed the database: %d rows", n)
	}
	// A value changed in the file (SQLite's check cannot see it) is found
	// by the checksum walship backup wrote beside it.
	tampered := filepath.Join(t.TempDir(), "tampered.sqlite")
	sum, err := os.ReadFile(file + ".sha256")
	if err != nil || !strings.HasSuffix(string(sum), "  backup.sqlite\n") {
		t.Fatalf("backup.sqlite.sha256: %q %v", sum, err)
	}
	if err := os.WriteFile(tampered+".sha256", []byte(strings.Replace(string(sum), "backup.sqlite", "tampered.sqlite", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, bytes.Replace(b, []byte("row 9"), []byte("row X"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := sqlite3(t, tampered, "PRAGMA integrity_check"); got != "ok" {
		t.Fatalf("the tampered copy fails SQLite's check (%s): the test wants a change only a checksum sees", got)
	}
	if out, err := walship(t, "restore", "--node", m.URL(), tampered); err == nil || !strings.Contains(out, "tampered.sqlite does not match its checksum") {
		t.Fatalf("a tampered backup: %v\n%s", err, out)
	}
	out, err = walship(t, "restore", "--node", m.URL(), file)
	if err != nil || !strings.Contains(out, "at log index 53") {
		t.Fatalf("walship restore: %v\n%s", err, out)
	}
	got, err := m.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if got.Checksum != want.Checksum {
		t.Fatalf("restored content differs from the backup's:\n%s\n%s", got.Body, want.Body)
	}
	m.MustExec("INSERT INTO t (v) VALUES ('after')")
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatal("the slave differs after the restore")
	}
	if st := s.MustLogStatus(); st.State == "diverged" || st.LogID != m.MustLogStatus().LogID {
		t.Fatalf("the slave after the restore: %s", st.Body)
	}
	// The replica check agrees, in the new history.
	if out, err := walship(t, "verify", "--node", m.URL()); err != nil || !strings.Contains(out, " t ") {
		t.Fatalf("walship verify after the restore: %v\n%s", err, out)
	}
}

// bigSQLite writes a SQLite file with plain SQLite: rows of size bytes.
func bigSQLite(t *testing.T, rows, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.sqlite")
	h, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Exec("CREATE TABLE loaded (id INTEGER PRIMARY KEY, b BLOB)"); err != nil {
		t.Fatal(err)
	}
	for range rows {
		if _, err := h.Exec("INSERT INTO loaded (b) VALUES (randomblob(?))", size); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// The master SIGKILLed at random moments of a load (receiving the file,
// checking it, installing it, restarting its log) restarts on either its
// old database or the loaded one, whole, never a mix, with a log that
// follows it, no temporary file left; the slave ends equal to it.
func TestMasterKilledDuringLoad(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE old (v)")
	m.MustExec("INSERT INTO old VALUES (1)")
	big := bigSQLite(t, 40, 1<<20)
	body, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	// How long a whole load takes here: the kills land across it.
	start := time.Now()
	if resp, err := http.Post(m.URL()+"/db/load", "application/octet-stream", bytes.NewReader(body)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("load: %v %v", resp, err)
	}
	span := time.Since(start)
	m.MustExec("DROP TABLE loaded")
	m.MustExec("CREATE TABLE old (v)")
	m.MustExec("INSERT INTO old VALUES (1)")
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(11, seed))
	outcomes := map[string]int{}
	for cycle := 1; cycle <= 6; cycle++ {
		done := make(chan int, 1)
		go func() {
			resp, err := http.Post(m.URL()+"/db/load", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		// The kill lands at a random moment of the load's span.
		time.Sleep(time.Duration(rng.Int64N(int64(span)))) // ok: the kill's timing, not a wait for readiness
		m.Kill()
		status := <-done
		m.Start()
		names, _ := filepath.Glob(filepath.Join(m.DataDir, "snapshots", "load-*.tmp"))
		if len(names) > 0 {
			t.Fatalf("cycle %d: temporary files left: %v", cycle, names)
		}
		st := m.MustLogStatus()
		hasOld, hasNew := m.Count("SELECT count(*) FROM sqlite_schema WHERE name = 'old'"), m.Count("SELECT count(*) FROM sqlite_schema WHERE name = 'loaded'")
		switch {
		case hasOld == 1 && hasNew == 0:
			outcomes["old"]++
		case hasOld == 0 && hasNew == 1 && m.Count("SELECT count(*) FROM loaded WHERE length(b) = 1048576") == 40:
			outcomes["loaded"]++
		default:
			t.Fatalf("cycle %d (answer %d): a mix: old %d, loaded %d\n%s", cycle, status, hasOld, hasNew, st.Body)
		}
		if divergent := checkChecksums(t, c, m); divergent != 0 {
			t.Fatalf("cycle %d: the slave differs", cycle)
		}
		if hasNew == 1 { // back to the old content for the next cycle
			m.MustExec("DROP TABLE loaded")
			m.MustExec("CREATE TABLE old (v)")
			m.MustExec("INSERT INTO old VALUES (1)")
		}
	}
	t.Logf("a load takes %v; outcomes of the kills: %v (seed %d); %s", span, outcomes, seed, s)
}
