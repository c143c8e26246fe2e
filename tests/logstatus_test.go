package tests

import (
	"testing"
	"time"
)

// TestLogStatus checks /log/status on the master and a slave: indexes after
// a known number of writes, the slaves as the master sees them, and a
// paused slave's lag growing and coming back to 0.
func TestLogStatus(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)

	const writes = 21 // a CREATE TABLE and 20 inserts: one entry each
	m.MustExec(kvSchema)
	for i := range writes - 1 {
		r := m.MustExec(insertKV, "k", i)
		if r.Index != uint64(i+2) {
			t.Errorf("insert %d answered index %d, want %d", i, r.Index, i+2)
		}
	}

	caughtUp := func(st *LogStatus, want uint64) bool {
		for _, id := range []int{1, 2} {
			if sl := st.Slave(id); sl == nil || sl.AppliedIndex != want || sl.LagEntries != 0 {
				return false
			}
		}
		return true
	}
	st := m.WaitFor("reporting both slaves caught up", waitTimeout, func(st *LogStatus) bool { return caughtUp(st, writes) })
	if st.Role != "master" || st.FirstIndex != 1 || st.LastIndex != writes || st.AppliedIndex != writes || st.LogID == "" || st.Epoch != 1 {
		t.Errorf("master status: want role master, a log_id, epoch 1, first_index 1, last_index and applied_index %d; got %s", writes, st.Body)
	}
	if len(st.Slaves) != 2 {
		t.Errorf("master status: want 2 slaves, got %s", st.Body)
	}
	for _, s := range []*Node{s1, s2} {
		sl := st.Slave(s.ID)
		if trimURL(sl.URL) != s.URL() {
			t.Errorf("master status: slave %d has url %q, want %q", s.ID, sl.URL, s.URL())
		}
		seen, err := time.Parse(time.RFC3339, sl.LastSeen)
		if err != nil {
			t.Errorf("master status: slave %d last_seen %q is not RFC 3339: %v", s.ID, sl.LastSeen, err)
		} else if d := time.Since(seen); d < -time.Minute || d > time.Minute {
			t.Errorf("master status: slave %d last_seen %s is %v ago", s.ID, sl.LastSeen, d)
		}
	}

	ss := s1.WaitFor("streaming", waitTimeout, func(st *LogStatus) bool { return st.State == "streaming" })
	if ss.Role != "slave" || ss.ID != "1" || trimURL(ss.Master) != m.URL() || ss.LogID != st.LogID ||
		ss.FirstIndex != 1 || ss.LastIndex != writes || ss.AppliedIndex != writes ||
		ss.MasterLastIndex == nil || *ss.MasterLastIndex != writes || ss.LagEntries == nil || *ss.LagEntries != 0 {
		t.Errorf("slave status: want role slave, id 1, master %s, log_id %s, state streaming, first_index 1, last_index, applied_index and master_last_index %d, lag_entries 0; got %s",
			m.URL(), st.LogID, writes, ss.Body)
	}

	// Pause slave 2: the master sees its lag grow, then shrink back to 0.
	s2.Stop()
	for i := range 5 {
		m.MustExec(insertKV, "paused", i)
	}
	lagging := m.WaitFor("reporting slave 2 lagging", waitTimeout, func(st *LogStatus) bool {
		sl := st.Slave(2)
		return sl != nil && sl.LagEntries > 0
	})
	if sl := lagging.Slave(1); sl == nil {
		t.Errorf("slave 1 vanished from the master's status: %s", lagging.Body)
	}
	s2.Cont()
	last := uint64(writes + 5)
	m.WaitFor("reporting both slaves caught up after the pause", waitTimeout, func(st *LogStatus) bool { return caughtUp(st, last) })
	s2.WaitFor("streaming with lag 0", waitTimeout, func(st *LogStatus) bool {
		return st.State == "streaming" && st.AppliedIndex == last && st.LagEntries != nil && *st.LagEntries == 0
	})
}
