package tests

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	kvSchema = `CREATE TABLE kv (k TEXT, v TEXT)`
	insertKV = `INSERT INTO kv (k, v) VALUES (?, ?)`
)

// TestWipedMasterDivergesSlave wipes the master's data directory and
// restarts it on the same port: it is a new log (a new log_id), so the
// slave enters state diverged and applies nothing of the new history, even
// where the new history's indexes overlap and pass its own.
func TestWipedMasterDivergesSlave(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)

	m.MustExec(kvSchema)
	for _, k := range []string{"a", "b", "c"} {
		m.MustExec(insertKV, k, "old")
	}
	applied := c.WaitConverged(m)
	oldLog := m.MustLogStatus().LogID
	const q = `SELECT * FROM kv ORDER BY rowid`
	before := s.Dump(q)
	tablesBefore := tables(s)

	m.Kill()
	s.WaitFor("disconnected from the killed master", waitTimeout, func(st *LogStatus) bool { return st.State == "disconnected" })
	if err := os.RemoveAll(m.DataDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(m.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	m.Start()
	newLog := m.MustLogStatus().LogID
	if newLog == "" || newLog == oldLog {
		t.Fatalf("the wiped master's log_id is %q, the old one %q: want a new one", newLog, oldLog)
	}

	s.WaitFor("diverged", waitTimeout, func(st *LogStatus) bool { return st.State == "diverged" })

	// A new history longer than the slave's: indexes 1..11 against its 1..4.
	m.MustExec(kvSchema)
	for i := range 10 {
		m.MustExec(insertKV, "new", i)
	}
	mlast := m.MustLogStatus().LastIndex

	// The slave keeps pulling (or not) for a while; it must never apply.
	observe(t, 2*time.Second, func() {
		st := s.MustLogStatus()
		if st.State != "diverged" || st.AppliedIndex != applied || st.LogID != oldLog {
			t.Fatalf("after the master's wipe (new log %s, last index %d) the slave should stay diverged at index %d of log %s, got %s",
				newLog, mlast, applied, oldLog, st.Body)
		}
	})
	if got := s.Dump(q); got != before {
		t.Errorf("the diverged slave's kv changed:\nbefore: %s\nafter:  %s", before, got)
	}
	if got := tables(s); got != tablesBefore {
		t.Errorf("the diverged slave's schema changed:\nbefore: %s\nafter:  %s", tablesBefore, got)
	}
}

// TestMasterRefusesOlderLog puts back an older copy of the master's own
// log.db: its database is ahead of its log, and it must refuse to start.
func TestMasterRefusesOlderLog(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(kvSchema)
	for i := range 5 {
		m.MustExec(insertKV, "before", i)
	}

	// Copy log.db while the master is stopped, so the copy is consistent.
	logDB := filepath.Join(m.DataDir, "log.db")
	aside := filepath.Join(t.TempDir(), "log.db")
	m.Stop()
	copyFile(t, logDB, aside)
	m.Cont()

	for i := range 3 {
		m.MustExec(insertKV, "after", i)
	}
	m.Kill()
	copyFile(t, aside, logDB)

	code, out := m.StartExpectExit(startTimeout)
	if crash := crashIn(out); crash != "" {
		t.Errorf("the master with an older log.db crashed instead of refusing to start: %s", crash)
	}
	if code == 0 {
		t.Errorf("the master with an older log.db exited with status 0; output:\n%s", out)
	}
	if lo := strings.ToLower(out); !strings.Contains(lo, "ahead") {
		t.Errorf("the master with an older log.db exited (status %d) without saying its database is ahead of its log:\n%s", code, tail([]byte(out), 2000))
	}
}

// TestMasterRefusesOtherLog gives a master the log.db of another master
// with as many entries: the database follows another log_id, and the
// master must refuse to start.
func TestMasterRefusesOtherLog(t *testing.T) {
	c := NewCluster(t)
	a := c.MustRunMaster()
	b := c.MustRunMaster()
	for _, m := range []*Node{a, b} {
		m.MustExec(kvSchema)
		m.MustExec(insertKV, "k", "v")
	}
	aLog, bLog := a.MustLogStatus().LogID, b.MustLogStatus().LogID
	a.Kill()
	b.Kill()
	copyFile(t, filepath.Join(b.DataDir, "log.db"), filepath.Join(a.DataDir, "log.db"))

	code, out := a.StartExpectExit(startTimeout)
	if crash := crashIn(out); crash != "" {
		t.Errorf("the master on another master's log.db crashed instead of refusing to start: %s", crash)
	}
	if code == 0 {
		t.Errorf("the master on another master's log.db exited with status 0; output:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "log") {
		t.Errorf("the master on another master's log.db (%s, its own %s) exited (status %d) without naming the log:\n%s", bLog, aLog, code, tail([]byte(out), 2000))
	}
	if !t.Failed() {
		t.Logf("refused with status %d:\n%s", code, out)
	}
}

// observe runs check every poll interval for d: a condition that must hold
// for a while, as "never applies" can only be checked over a window.
func observe(t *testing.T, d time.Duration, check func()) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		check()
		time.Sleep(50 * time.Millisecond) // ok: poll interval
	}
	check()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
