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
