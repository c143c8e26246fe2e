package tests

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// superseded is what /log/status says a node dropped for a new master's
// history.
type superseded struct {
	From, To, Epoch uint64
	NewEpoch        uint64 `json:"new_epoch"`
}

// sameContent fails the test unless every node's checksum is want's, all
// at want's index.
func sameContent(t *testing.T, want *Node, nodes ...*Node) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		w, err := want.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		diff := ""
		for _, n := range nodes {
			got, err := n.Checksum()
			if err != nil {
				t.Fatal(err)
			}
			if got.Index != w.Index || got.Checksum != w.Checksum {
				diff = fmt.Sprintf("%s at index %d has checksum %s; %s at %d has %s", n, got.Index, got.Checksum, want, w.Index, w.Checksum)
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(diff)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// A planned switchover: walship promote on a slave fences the running
// master, catches up with it, and becomes the master of epoch 2; the old
// master steps down to follow it, the other slave re-points to it without
// bootstrapping, writes go on at the new master (and through the old one,
// now a slave that forwards them), and every node ends with the same
// content, nothing lost.
func TestPromoteSwitchover(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)
	m.MustExec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
	for i := range 100 {
		m.MustExec("INSERT INTO kv VALUES (?, ?)", i, fmt.Sprint("before ", i))
	}
	before := m.MustLogStatus().LastIndex
	out, err := walship(t, "promote", "--node", s1.URL())
	if err != nil || !strings.Contains(out, "is the master of epoch 2") || !strings.Contains(out, fmt.Sprintf("fenced at index %d", before)) {
		t.Fatalf("walship promote: %v\n%s", err, out)
	}
	st := s1.MustLogStatus()
	if st.Role != "master" || st.Epoch != 2 || st.LastIndex != before+1 {
		t.Fatalf("the promoted slave: %s", st.Body)
	}
	m.WaitFor("a slave of the new master", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == s1.URL() && s.State == "streaming"
	})
	s2.WaitFor("re-pointed to the new master", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == s1.URL() && s.State == "streaming"
	})
	for i := 100; i < 150; i++ {
		s1.MustExec("INSERT INTO kv VALUES (?, ?)", i, fmt.Sprint("after ", i))
	}
	// Through the old master, a slave now: forwarded to the new one.
	m.MustExec("INSERT INTO kv VALUES (?, ?)", 150, "through the old master")
	sameContent(t, s1, m, s2)
	if got := s2.Count("SELECT count(*) FROM kv"); got != 151 {
		t.Fatalf("%d rows, want 151", got)
	}
	// Nobody bootstrapped: the logs are continuous from index 1.
	for _, n := range []*Node{m, s2} {
		if strings.Contains(n.Output(), "bootstrapping") || strings.Contains(n.Output(), "dropping entries") {
			t.Fatalf("%s bootstrapped or dropped entries in a switchover:\n%s", n, n.Output())
		}
	}
	// The old master is refused as the master now: promoting it again
	// makes it the master of epoch 3, not 2.
	out, err = walship(t, "promote", "--node", m.URL())
	if err != nil || !strings.Contains(out, "epoch 3") {
		t.Fatalf("promote the old master back: %v\n%s", err, out)
	}
	s1.WaitFor("a slave again", waitTimeout, func(s *LogStatus) bool { return s.Role == "slave" && s.Master == m.URL() })
	s2.WaitFor("re-pointed again", waitTimeout, func(s *LogStatus) bool { return s.Role == "slave" && s.Master == m.URL() })
	m.MustExec("INSERT INTO kv VALUES (?, ?)", 151, "epoch 3")
	sameContent(t, m, s1, s2)
}

// A failover: the master is lost (SIGKILL) after it acknowledged writes
// (w=0) that no slave had received; a slave is promoted with what it has,
// the other slave finds it (its --master list names it), and writes go on.
// When the old master comes back as a master, the new one tells it: it
// steps down, drops the entries the new master lacks, reports their
// indexes, rebuilds from the new master's snapshot, and every node ends
// with the new master's content. A node of the old epoch is refused.
func TestFailoverOldMasterRejoins(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m, WithArgs("--master", m.URL()+","+s1.URL()))
	m.MustExec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
	for i := range 50 {
		m.MustExec("INSERT INTO kv VALUES (?, ?)", i, "both")
	}
	shared := m.MustLogStatus().LastIndex
	s1.WaitForApplied(shared, waitTimeout)
	s2.WaitForApplied(shared, waitTimeout)
	// The slaves stop hearing; the master acknowledges 20 more alone.
	s1.Stop()
	s2.Stop()
	for i := 50; i < 70; i++ {
		m.MustExec("INSERT INTO kv VALUES (?, ?)", i, "only on the old master")
	}
	oldLast := m.MustLogStatus().LastIndex
	m.Kill()
	s1.Cont()
	s2.Cont()
	out, err := walship(t, "promote", "--node", s1.URL())
	if err != nil || !strings.Contains(out, "epoch 2") || !strings.Contains(out, "did not answer") {
		t.Fatalf("walship promote: %v\n%s", err, out)
	}
	// The new epoch starts after what the promoted slave held: the
	// shared entries, and any of the others it had read before it
	// stopped.
	var url string
	var epoch, start uint64
	if _, err := fmt.Sscanf(out, "%s is the master of epoch %d from index %d", &url, &epoch, &start); err != nil || start <= shared {
		t.Fatalf("walship promote: %v\n%s", err, out)
	}
	kept := s1.Count("SELECT count(*) FROM kv")
	s2.WaitFor("following the new master", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == s1.URL() && s.State == "streaming"
	})
	for i := 100; i < 130; i++ {
		s1.MustExec("INSERT INTO kv VALUES (?, ?)", i, "new master")
	}
	// The old master comes back, as a master, knowing nothing.
	m.StartNoWait()
	st := m.WaitFor("stepped down and rebuilt", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == s1.URL() && s.State == "streaming"
	})
	var sup struct {
		Superseded *superseded `json:"superseded"`
	}
	if err := json.Unmarshal(st.Body, &sup); err != nil || sup.Superseded == nil ||
		sup.Superseded.From != start || sup.Superseded.To != oldLast || sup.Superseded.Epoch != 1 || sup.Superseded.NewEpoch != 2 {
		t.Fatalf("the old master does not report the entries %d..%d it dropped: %s", start, oldLast, st.Body)
	}
	if !strings.Contains(m.Output(), "dropping entries the new master does not have") {
		t.Fatalf("the old master does not log what it dropped:\n%s", m.Output())
	}
	sameContent(t, s1, m, s2)
	if got, want := m.Count("SELECT count(*) FROM kv WHERE v = 'only on the old master'"), kept-50; got != want {
		t.Fatalf("%d rows of the lost history remain, want the %d the new master had", got, want)
	}
	if got := m.Count("SELECT count(*) FROM kv"); got != kept+30 {
		t.Fatalf("%d rows, want %d", got, kept+30)
	}
	// A feed request of the old epoch is refused by the new master: 409.
	resp, err := httpClient.Get(s1.URL() + "/log/entries?from=1&known_epoch=1")
	if err != nil {
		t.Fatal(err)
	}
	readAll(resp)
	if resp.StatusCode != 200 {
		t.Fatalf("a follower of epoch 1 asking: %d (it knows less, it is served)", resp.StatusCode)
	}
	resp, err = httpClient.Get(m.URL() + "/log/entries?from=1&known_epoch=3")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(resp); resp.StatusCode != 409 || !strings.Contains(string(b), `"fenced":true`) {
		t.Fatalf("a node of epoch 2 asked by one that knows epoch 3: %d %s, want 409 fenced", resp.StatusCode, b)
	}
}

// A slave takes the write path's flags for when it is promoted: with
// --min-replicas 1 on every node, the new master's writes still wait for a
// slave.
func TestPromotedSlaveKeepsMinReplicas(t *testing.T) {
	c := NewCluster(t)
	min1 := WithArgs("--min-replicas", "1")
	m := c.MustRunMaster(min1)
	s1 := c.MustRunSlave(1, m, min1)
	c.MustRunSlave(2, m, min1)
	m.MustExec("CREATE TABLE t (v)")
	if out, err := walship(t, "promote", "--node", s1.URL()); err != nil {
		t.Fatalf("walship promote: %v\n%s", err, out)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		status, body, err := s1.Post([]byte(`{"command":"exec","query":"INSERT INTO t VALUES (1)"}`))
		if err == nil && status == 200 && strings.Contains(string(body), `"replicas":{"wanted":1,"received":1}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a write at the promoted master: %d %s %v, want it answered once a slave held it", status, body, err)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}
