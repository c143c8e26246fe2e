package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/wal"
)

// The insert that stopped the master for good: a deferred foreign key left
// violated failed at SQLite's COMMIT, after the log append, and every
// restart failed replaying it. Now it fails as a request, before the log,
// and the master goes on, restarts, and its slave holds what it holds.
func TestDeferredForeignKeyDoesNotStopTheMaster(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE p (id INTEGER PRIMARY KEY)")
	m.MustExec("CREATE TABLE c (pid REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED)")
	_, err := m.Exec("INSERT INTO c VALUES (1)")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 400 || !strings.Contains(se.Msg, "FOREIGN KEY constraint failed") {
		t.Fatalf("the insert: %v, want 400 FOREIGN KEY constraint failed", err)
	}
	if st := m.MustLogStatus(); st.LastIndex != 2 {
		t.Fatalf("the log holds %d entries, want 2", st.LastIndex)
	}
	m.MustExec("INSERT INTO p VALUES (1)")
	m.MustExec("INSERT INTO c VALUES (1)")
	m.Restart()
	m.MustExec("INSERT INTO c VALUES (1)")
	last := c.WaitConverged(m)
	a, b := m.Dump("SELECT pid FROM c"), s.Dump("SELECT pid FROM c")
	if a != b || !strings.Contains(a, `"values":[[1],[1]]`) || last != 5 {
		t.Fatalf("master %s, slave %s, last index %d", a, b, last)
	}
}

// FTS5 compiles PRAGMA data_version of its own after a schema change; the
// slaves applied the master's entry, then refused it as the client's
// statement and stopped replicating. The sequence, with a restart
// of the master in between.
func TestModuleStatementsDoNotStopReplication(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1, s2 := c.MustRunSlave(1, m), c.MustRunSlave(2, m)
	m.MustExec("CREATE VIRTUAL TABLE f USING fts5(a)")
	m.MustExec("CREATE TABLE t2 (a)")
	m.MustExec("INSERT INTO f VALUES ('p q')")
	m.Restart()
	m.MustExec("ALTER TABLE t2 RENAME TO t3")
	m.MustExec("INSERT INTO f VALUES ('p q')")
	m.MustExec("DELETE FROM f WHERE rowid = 2")
	m.MustExec("ALTER TABLE t3 RENAME TO t4")
	m.MustExec("DELETE FROM f WHERE rowid = 1")
	c.WaitConverged(m)
	want, err := m.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Node{s1, s2} {
		st := s.MustLogStatus()
		got, err := s.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		if st.State != "streaming" || got.Checksum != want.Checksum || len(got.Tables) != len(want.Tables) {
			t.Fatalf("%s: state %s, checksum %s, the master's %s (%d tables, FTS5's shadow tables included)", s, st.State, got.Checksum, want.Checksum, len(want.Tables))
		}
	}
}

// An entry SQLite cannot apply does not keep the master from starting: it
// starts halted, serves reads, refuses writes with the reason, and says so
// in /log/status.
func TestMasterHaltsOnAnEntryItCannotApply(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec("CREATE TABLE t (v)")
	m.MustExec("INSERT INTO t VALUES (1)")
	m.Kill()
	lg, err := wal.Open(filepath.Join(m.DataDir, "log.db"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = lg.Append([]*wal.Entry{{Index: 3, Epoch: lg.Epoch(), Time: time.Now().UnixMilli(), Txn: true,
		Statements: []wal.Statement{{SQL: "INSERT INTO nosuch VALUES (1)"}}}})
	lg.Close()
	if err != nil {
		t.Fatal(err)
	}
	m.StartNoWait()
	st := m.WaitFor("halted", startTimeout, func(s *LogStatus) bool { return s.State == "halted" })
	if !strings.Contains(string(st.Body), "entry 3") || !strings.Contains(string(st.Body), "no such table: nosuch") || st.AppliedIndex != 2 {
		t.Fatalf("/log/status: %s", st.Body)
	}
	if got := m.Count("SELECT count(*) FROM t"); got != 1 {
		t.Fatalf("reads while halted: %d rows", got)
	}
	_, err = m.Exec("INSERT INTO t VALUES (2)")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || !strings.Contains(se.Msg, "no such table: nosuch") {
		t.Fatalf("a write while halted: %v, want 503 with the reason", err)
	}
}

// Past the largest rowid SQLite picks one at random, from a PRNG walship
// seeds per entry: the slaves pick the master's.
func TestRandomRowidEqualOnSlaves(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE r (x)")
	m.MustExec("INSERT INTO r (rowid, x) VALUES (9223372036854775807, 1)")
	for i := range 5 {
		m.MustExec("INSERT INTO r (x) VALUES (?)", i+2)
	}
	s.MustExec("INSERT INTO r (x) VALUES (7), (8)") // forwarded
	c.WaitConverged(m)
	a, b := m.Dump("SELECT rowid, x FROM r ORDER BY x"), s.Dump("SELECT rowid, x FROM r ORDER BY x")
	if a != b || strings.Count(a, "],[") != 7 {
		t.Fatalf("master %s\nslave  %s", a, b)
	}
}

// ANALYZE after schema requests that failed (and were rolled back on the
// master only, which reloads SQLite's schema there) stores the same
// sqlite_stat1 on every node, row for row. Creates, drops, renames and
// failing requests are mixed by a fixed seed (one that made the master and the slave differ before).
func TestAnalyzeAfterFailedSchemaRequests(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	rng := rand.New(rand.NewPCG(1, 1))
	var live []string
	for n := 0; n < 40; n++ {
		switch k := rng.IntN(10); {
		case k < 5 || len(live) == 0:
			name := fmt.Sprintf("t%d", n)
			m.MustExec("CREATE TABLE " + name + " (x, y); CREATE INDEX " + name + "_x ON " + name + " (x); INSERT INTO " + name + " VALUES (1, 2), (1, 3)")
			live = append(live, name)
		case k < 7:
			i := rng.IntN(len(live))
			m.MustExec("DROP TABLE " + live[i])
			live = append(live[:i], live[i+1:]...)
		case k < 8:
			i := rng.IntN(len(live))
			name := fmt.Sprintf("t%d", n)
			m.MustExec("ALTER TABLE " + live[i] + " RENAME TO " + name)
			live[i] = name
		default:
			if _, err := m.Exec("CREATE TABLE z (x); INSERT INTO nosuch VALUES (1)"); err == nil {
				t.Fatal("the failing request succeeded")
			}
		}
	}
	m.MustExec("ANALYZE; CREATE TABLE s AS SELECT rowid AS r, tbl, idx, stat FROM sqlite_stat1")
	c.WaitConverged(m)
	if a, b := m.Dump("SELECT * FROM s ORDER BY r"), s.Dump("SELECT * FROM s ORDER BY r"); a != b {
		t.Fatalf("master %s\nslave  %s", a, b)
	}
	want, _ := m.Checksum()
	if got, _ := s.Checksum(); got.Checksum != want.Checksum {
		t.Fatalf("checksums differ: %v / %v", got.Tables, want.Tables)
	}
}
