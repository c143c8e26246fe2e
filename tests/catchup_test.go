package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	eventsSchema = `CREATE TABLE events (n INTEGER, note TEXT)` // no unique constraint: duplicates stay visible
	insertEvent  = `INSERT INTO events (n, note) VALUES (?, ?)`
	eventRows    = 1000
)

// eventNote is the note of event i. Big notes make the log big, so a slave
// needs several feed answers to catch up, and a kill can land in between.
func eventNote(i, size int) string {
	return strings.Repeat(fmt.Sprintf("event %06d ", i), size/13+1)[:size]
}

// checkEvents checks that n holds events 0..count-1, each exactly once.
func checkEvents(t *testing.T, n *Node, count int) {
	t.Helper()
	if dup := n.MustQuery(`SELECT n, count(*) FROM events GROUP BY n HAVING count(*) > 1`); len(dup.Values) != 0 {
		t.Errorf("%s: duplicated events: %s", n, dup.Body)
	}
	got := n.MustQuery(`SELECT count(*), count(DISTINCT n), min(n), max(n) FROM events`)
	want := fmt.Sprintf("[[%d,%d,0,%d]]", count, count, count-1)
	if v := valuesJSON(t, got); v != want {
		t.Errorf("%s: count(*), count(DISTINCT n), min(n), max(n) = %s, want %s", n, v, want)
	}
}

// TestSlaveKilledWhileCatchingUp kills a slave, writes 1,000 rows, restarts
// it, kills it again in the middle of catching up, and restarts it: it ends
// with every row exactly once.
func TestSlaveKilledWhileCatchingUp(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)

	m.MustExec(eventsSchema)
	start := c.WaitConverged(m)
	s.Kill()

	writeConcurrently(t, m, eventRows, 4, func(i int) (string, []any) {
		return insertEvent, []any{i, eventNote(i, 16<<10)}
	})
	end := m.MustLogStatus().LastIndex
	if end != start+eventRows {
		t.Fatalf("master's last_index is %d after %d writes from %d", end, eventRows, start)
	}

	// Restart the slave and kill it as soon as it has applied part of the
	// log, but not all of it.
	s.StartNoWait()
	deadline := time.Now().Add(waitTimeout)
	var seen []uint64
	for {
		st, err := s.LogStatus()
		if err == nil && (len(seen) == 0 || seen[len(seen)-1] != st.AppliedIndex) {
			seen = append(seen, st.AppliedIndex)
		}
		if err == nil && st.AppliedIndex > start && st.AppliedIndex < end {
			s.Kill()
			t.Logf("killed the slave at applied_index %d (from %d to %d)", st.AppliedIndex, start, end)
			break
		}
		if err == nil && st.AppliedIndex >= end {
			// A feed answer is bounded in bytes (DESIGN, Replication feed),
			// so 16 MiB of log takes several answers, each its own commit.
			t.Fatalf("the slave caught up in one step (applied_index %v): no point in between to kill it at", seen)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slave did not start catching up in %v: applied_index %v, last error %v", waitTimeout, seen, err)
		}
		time.Sleep(time.Millisecond) // ok: poll interval
	}

	s.Start()
	s.WaitForApplied(end, waitTimeout)
	checkEvents(t, s, eventRows)
	const q = `SELECT rowid, n, length(note), substr(note, 1, 13) FROM events ORDER BY rowid`
	if got, want := s.Dump(q), m.Dump(q); got != want {
		t.Errorf("the slave's events differ from the master's:\nmaster: %.2000s\nslave:  %.2000s", want, got)
	}
}

// TestLateSlaveCatchesUp starts a slave after 1,000 writes: it catches up
// from index 1 and holds the master's content.
func TestLateSlaveCatchesUp(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(eventsSchema)
	writeConcurrently(t, m, eventRows, 4, func(i int) (string, []any) {
		return insertEvent, []any{i, eventNote(i, 100)}
	})
	last := m.MustLogStatus().LastIndex
	if last != eventRows+1 {
		t.Fatalf("master's last_index is %d after %d writes and a CREATE TABLE", last, eventRows)
	}

	s := c.MustRunSlave(1, m)
	st := s.WaitFor("streaming at the master's last index", waitTimeout, func(s *LogStatus) bool {
		return s.AppliedIndex >= last && s.State == "streaming"
	})
	if st.FirstIndex != 1 || st.AppliedIndex != last {
		t.Errorf("slave status: want first_index 1 and applied_index %d, got %s", last, st.Body)
	}
	checkEvents(t, s, eventRows)
	const q = `SELECT rowid, * FROM events ORDER BY rowid`
	if got, want := s.Dump(q), m.Dump(q); got != want {
		t.Errorf("the slave's events differ from the master's:\nmaster: %.2000s\nslave:  %.2000s", want, got)
	}
}
