package tests

import (
	"strings"
	"testing"
	"time"
)

// The master and its slaves as an operator sees them: a second slave
// started with a taken --id is refused while the first lives, naming it;
// a slave that stops is shown lost, and logged once; a restarted master
// remembers the slaves it knew, shown unknown until heard from; walship
// remove forgets one, which comes back if it still runs.
func TestSlavesKnownAndRemoved(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	m.MustExec("CREATE TABLE t (v)")
	dup := c.newNode(RoleSlave, 1, "slave-1-again", nil)
	dup.Master, dup.MasterURL, dup.Addr = m, m.URL(), freeAddr(t)
	dup.StartNoWait()
	st := dup.WaitFor("refused for its id", waitTimeout, func(s *LogStatus) bool {
		return s.State == "disconnected" && strings.Contains(s.Error, "taken by "+s1.URL())
	})
	if ms := m.MustLogStatus(); len(ms.Slaves) != 1 || ms.Slaves[0].URL != s1.URL() {
		t.Fatalf("the master lists %+v, want slave 1 at %s alone (the duplicate said %s)", ms.Slaves, s1.URL(), st.Error)
	}
	if !strings.Contains(m.Output(), "another one uses its id") {
		t.Fatalf("the master does not log the refusal:\n%s", m.Output())
	}
	dup.Kill()
	// Slave 1 stops: lost, logged once.
	s1.Kill()
	m.WaitFor("slave 1 lost", waitTimeout, func(s *LogStatus) bool {
		return len(s.Slaves) == 1 && s.Slaves[0].State == "lost"
	})
	waitOutput(t, m, "slave disconnected")
	time.Sleep(2 * time.Second) // ok: checking that the loss is not logged again meanwhile
	if n := strings.Count(m.Output(), "slave disconnected"); n != 1 {
		t.Fatalf("the loss is logged %d times, want once:\n%s", n, m.Output())
	}
	// The master restarts: it remembers slave 1.
	m.Restart()
	if ms := m.MustLogStatus(); len(ms.Slaves) != 1 || ms.Slaves[0].ID != "1" || ms.Slaves[0].State != "unknown since restart" {
		t.Fatalf("after a restart the master lists %s", ms.Body)
	}
	out, err := walship(t, "remove", "--node", m.URL(), "1")
	if err != nil || !strings.Contains(out, "removed slave 1") {
		t.Fatalf("walship remove: %v\n%s", err, out)
	}
	if ms := m.MustLogStatus(); len(ms.Slaves) != 0 {
		t.Fatalf("slave 1 still listed after walship remove: %s", ms.Body)
	}
	if out, err := walship(t, "remove", "--node", m.URL(), "1"); err == nil || !strings.Contains(out, "404") {
		t.Fatalf("removing an unknown slave: %v\n%s", err, out)
	}
	// It still runs? It comes back.
	s1.Start()
	m.WaitFor("slave 1 back", waitTimeout, func(s *LogStatus) bool {
		return len(s.Slaves) == 1 && s.Slaves[0].State == "live"
	})
	// The slave's side: the loss of the master and its return, once each.
	m.Kill()
	waitOutput(t, s1, "lost the master")
	m.Start()
	waitOutput(t, s1, "reconnected to the master")
	if n := strings.Count(s1.Output(), "lost the master"); n != 1 {
		t.Fatalf("slave 1 logged the loss %d times, want once:\n%s", n, s1.Output())
	}
}
