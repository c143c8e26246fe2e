package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// smallRetention makes a master compact its log early and often.
var smallRetention = WithArgs("--log-retain-entries", "300", "--log-segment-size", "64KiB", "--log-compact-every", "50ms")

// waitCompacted waits until the master's log no longer starts at 1.
func waitCompacted(t *testing.T, m *Node, beyond uint64) *LogStatus {
	t.Helper()
	return m.WaitFor(fmt.Sprintf("compacted beyond %d", beyond), waitTimeout, func(s *LogStatus) bool {
		return s.FirstIndex > beyond
	})
}

// A master with a small retention keeps its log bounded; a slave that
// joins late, and one that was stopped while the master compacted, get
// 410 from the feed, bootstrap from the master's snapshot, and end equal
// to the master.
func TestBootstrapFromSnapshot(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(smallRetention)
	early := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, r)")
	m.MustExec("CREATE VIRTUAL TABLE f USING fts5(a)")
	write := func(n int) {
		writeConcurrently(t, m, n, 8, func(i int) (string, []any) {
			return fmt.Sprintf("INSERT INTO t (v, r) VALUES ('%d %s', randomblob(16)); INSERT INTO f VALUES ('word%d')", i, time.Now(), i%7), nil
		})
	}
	write(400)
	c.WaitConverged(m)
	early.Stop()
	write(1500)
	st := waitCompacted(t, m, 500)
	if st.SnapshotIndex == nil || *st.SnapshotIndex+1 < st.FirstIndex || st.LogSegments == 0 || st.LogSegments > 10 {
		t.Fatalf("after compaction: %s", st.Body)
	}
	late := c.MustRunSlave(2, m)
	early.Cont()
	write(100)
	last := c.WaitConverged(m)
	want, err := m.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Node{early, late} {
		got, err := s.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		if got.Checksum != want.Checksum || got.Index != last {
			t.Fatalf("%s at %d: %s, the master at %d: %s", s, got.Index, got.Checksum, want.Index, want.Checksum)
		}
		if st := s.MustLogStatus(); st.State != "streaming" {
			t.Fatalf("%s: %s", s, st.Body)
		}
	}
	for _, s := range []*Node{early, late} {
		if out := s.Output(); !strings.Contains(out, "bootstrapped: installed the master's snapshot") {
			t.Fatalf("%s did not bootstrap:\n%s", s, out)
		}
	}
	// Restarted, the bootstrapped slave goes on from its database.
	late.Restart()
	write(50)
	c.WaitConverged(m)
}

// An empty slave joining a master whose log starts at 1 replays it, unless
// the master holds a snapshot at least --join-from-snapshot entries in:
// then it starts from the snapshot and replays only what follows. Either
// way it ends equal to the master.
func TestEmptySlaveJoinsFromSnapshot(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v)")
	writeConcurrently(t, m, 300, 8, func(i int) (string, []any) {
		return "INSERT INTO t (v) VALUES (?)", []any{i}
	})
	resp, err := httpClient.Get(m.URL() + "/db/snapshot?fresh")
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	snap := resp.Header.Get("X-Walship-Index")
	m.MustExec("INSERT INTO t (v) VALUES ('after the snapshot')")
	if st := m.MustLogStatus(); st.FirstIndex != 1 || st.SnapshotIndex == nil || fmt.Sprint(*st.SnapshotIndex) != snap {
		t.Fatalf("the master before the slaves join (snapshot at %s): %s", snap, st.Body)
	}
	joins := c.MustRunSlave(1, m, WithArgs("--join-from-snapshot", "100"))
	replays := c.MustRunSlave(2, m, WithArgs("--join-from-snapshot", snap+"1")) // ten times more than the snapshot holds
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatalf("%d slaves differ from the master", divergent)
	}
	if out := joins.Output(); !strings.Contains(out, "joining from the master's snapshot") || !strings.Contains(out, "bootstrapped: installed the master's snapshot") {
		t.Fatalf("%s did not join from the snapshot:\n%s", joins, out)
	}
	if out := replays.Output(); strings.Contains(out, "bootstrap") {
		t.Fatalf("%s did not replay:\n%s", replays, out)
	}
}
