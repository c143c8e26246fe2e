package tests

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/snapshot"
)

// bigRows adds n rows of 1 MiB of random bytes to table big on m, so that
// a snapshot of the database takes a while: long enough for a kill to land
// in the middle of one.
func bigRows(t *testing.T, m *Node, n int) {
	t.Helper()
	m.MustExec("CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, b BLOB)")
	for range n {
		m.MustExec("INSERT INTO big (b) VALUES (randomblob(1048576))")
	}
}

// killWhen polls every millisecond until cond holds, then SIGKILLs n; it
// fails the test after waitTimeout.
func killWhen(t *testing.T, n *Node, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s after %v\n%s", n, what, waitTimeout, n.Output())
		}
		time.Sleep(time.Millisecond) // ok: poll interval, fine enough to land inside a snapshot
	}
	n.Kill()
}

// The master SIGKILLed while it writes the snapshot of a compaction, under
// 8 writers, again and again: each time it restarts on a log that opens
// and a database that matches it (its applied index is its last index, no
// acknowledged write is missing), the half-written snapshot is thrown
// away, and at the end the slave holds exactly the master's content and
// the master's snapshot is whole.
func TestMasterKilledInSnapshotAndCompaction(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(smallRetention)
	s := c.MustRunSlave(1, m)
	m.MustExec(acksSchema)
	bigRows(t, m, 24)
	load := startAckLoad([]*Node{m, m, m, m, m, m, m, m})
	defer load.Stop()
	for cycle := 1; cycle <= 3; cycle++ {
		load.waitAcks(t, load.total.Load()+400, fmt.Sprintf("cycle %d, before the kill", cycle))
		killWhen(t, m, "writing a snapshot", func() bool { return snapshotInProgress(m) })
		halfDone, _ := filepath.Glob(filepath.Join(m.DataDir, "snapshots", "backup-*.tmp"))
		if len(halfDone) == 0 {
			t.Fatalf("cycle %d: the killed master left no snapshot in progress", cycle)
		}
		m.Start()
		for _, name := range halfDone {
			if _, err := os.Stat(name); !os.IsNotExist(err) {
				t.Fatalf("cycle %d: the half-written %s is still there after the restart: %v", cycle, filepath.Base(name), err)
			}
		}
		acked := load.maxIdx.Load() // before the status: the writers go on
		st := m.MustLogStatus()
		if st.LastIndex < acked {
			t.Fatalf("cycle %d: after the restart the master's last index is %d, but %d was acknowledged", cycle, st.LastIndex, acked)
		}
		// The master applies what its log holds: wait for it, then its
		// database is at its last index.
		m.WaitForApplied(st.LastIndex, waitTimeout)
	}
	load.Stop()
	acknowledged, lost, duplicated, _ := load.check(t, m)
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatalf("%d slaves differ", divergent)
	}
	st := waitCompacted(t, m, 1)
	if st.SnapshotIndex == nil {
		t.Fatalf("no snapshot after compactions: %s", st.Body)
	}
	checkSnapshot(t, m)
	t.Logf("%d acknowledged writes, %d lost, %d duplicated; %s bootstrapped %d times", acknowledged, lost, duplicated, s, bootstraps(s))
}

// checkSnapshot downloads n's latest snapshot and checks it against the
// checksum n sends with it.
func checkSnapshot(t *testing.T, n *Node) {
	t.Helper()
	resp, err := httpClient.Get(n.URL() + "/db/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	file := filepath.Join(t.TempDir(), "snap.sqlite")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	size, sum, err := snapshot.Decompress(resp.Body, out)
	if err != nil || resp.StatusCode != 200 || sum != resp.Header.Get("X-Walship-Snapshot-Sha256") || fmt.Sprint(size) != resp.Header.Get("X-Walship-Snapshot-Size") {
		t.Fatalf("%s's snapshot: %d, %d bytes with SHA-256 %s (%v), headers %v", n, resp.StatusCode, size, sum, err, resp.Header)
	}
}

// A slave SIGKILLed while it downloads a snapshot, and again while it
// extracts and installs one, restarts cleanly: its database is its old
// one until a whole, checked snapshot is installed, and it ends equal to
// the master.
func TestSlaveKilledInBootstrap(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(smallRetention)
	p := c.NewProxy("slave-1→master", m)
	s := c.MustRunSlave(1, m, Via(p))
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	bigRows(t, m, 24)
	c.WaitConverged(m)
	old := s.MustLogStatus().AppliedIndex

	// behind puts the slave behind the master's log: killed, it misses
	// more writes than the master keeps.
	behind := func() {
		s.Kill()
		writeConcurrently(t, m, 1000, 8, func(i int) (string, []any) {
			return "INSERT INTO t (v) VALUES (?)", []any{i}
		})
		waitCompacted(t, m, appliedOffline(t, s)+1)
	}

	// Killed while downloading: a slow link makes the download last.
	behind()
	p.Bandwidth(2048) // KB/s: 24 MiB of random bytes take seconds
	s.StartNoWait()
	killWhen(t, s, "downloading the snapshot", func() bool {
		fi, err := os.Stat(filepath.Join(s.DataDir, "bootstrap.sqlite.zst.part"))
		return err == nil && fi.Size() > 1<<20
	})
	p.Heal()
	if got := appliedOffline(t, s); got != old {
		t.Fatalf("after a kill in the download the slave's database is at index %d, want its old %d", got, old)
	}

	// Killed while extracting or installing: the download is fast now,
	// the file the snapshot is extracted to is the sign.
	s.StartNoWait()
	killWhen(t, s, "extracting the snapshot", func() bool {
		fi, err := os.Stat(filepath.Join(s.DataDir, "bootstrap.sqlite.tmp"))
		return err == nil && fi.Size() > 0
	})
	if got := appliedOffline(t, s); got != old && got < m.MustLogStatus().FirstIndex-1 {
		t.Fatalf("after a kill in the install the slave's database is at index %d: neither its old %d nor the snapshot's", got, old)
	}

	s.Start()
	m.MustExec("INSERT INTO t (v) VALUES ('after')")
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatalf("the slave differs from the master")
	}
	if st := s.MustLogStatus(); st.State != "streaming" {
		t.Fatalf("%s: %s", s, st.Body)
	}
	if out := s.Output(); !strings.Contains(out, "bootstrapped: installed the master's snapshot") {
		t.Fatalf("%s did not bootstrap:\n%s", s, out)
	}
	for _, name := range []string{"bootstrap.sqlite.zst.part", "bootstrap.sqlite.tmp"} {
		if _, err := os.Stat(filepath.Join(s.DataDir, name)); !os.IsNotExist(err) {
			t.Errorf("%s is left in the slave's data directory: %v", name, err)
		}
	}
}

// appliedOffline reads the applied index in the database of node n, which
// must not be running, with plain SQLite.
func appliedOffline(t *testing.T, n *Node) uint64 {
	t.Helper()
	if !n.Exited() {
		t.Fatalf("%s is running", n)
	}
	db, err := sql.Open("sqlite", filepath.Join(n.DataDir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied uint64
	if err := db.QueryRow("SELECT applied_index FROM _walship WHERE id = 1").Scan(&applied); err != nil {
		t.Fatalf("%s's database: %v", n, err)
	}
	return applied
}
