package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/etcdembed"
)

// failoverTimeout is the nodes' --failover-timeout in these tests: etcd's
// least lease.
const failoverTimeout = 2 * time.Second

// startEtcd runs a single-member etcd in the test process (the walship
// nodes are processes of their own) and returns its URL.
func startEtcd(t *testing.T) *etcdembed.Server {
	t.Helper()
	srv, err := etcdembed.Start(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// withEtcd gives a node automatic failover on etcd at u.
func withEtcd(u string) Option {
	return WithArgs("--etcd", u, "--failover-timeout", failoverTimeout.String())
}

// waitMaster waits until one of nodes is the master that leads (it takes a
// write), and returns it.
func waitMaster(t *testing.T, nodes ...*Node) *Node {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		for _, n := range nodes {
			if n.Exited() {
				continue
			}
			st, err := n.LogStatus()
			if err != nil || st.Role != "master" || st.State != "" {
				continue
			}
			if _, err := n.Exec("SELECT 1 WHERE 0"); err == nil {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no master leads after %s", waitTimeout)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// A master SIGKILLed under 32 writers asking w=1: etcd's lease of the lost
// master expires, the slave whose log is ahead is elected and promotes
// itself, the other follows it; every write acknowledged with its slave
// is there, none twice. The old master, started again, follows the new
// one (its epoch is fenced), and every replica ends equal.
func TestEtcdFailoverMasterKilled(t *testing.T) {
	etcd := startEtcd(t)
	c := NewCluster(t)
	m := c.MustRunMaster(withEtcd(etcd.URL()))
	s1 := c.MustRunSlave(1, m, withEtcd(etcd.URL()))
	s2 := c.MustRunSlave(2, m, withEtcd(etcd.URL()))
	if got := waitMaster(t, m); got != m {
		t.Fatalf("%s leads, want the master", got)
	}
	m.MustExec("CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)")
	wr := &writer{w: 1}
	for id := range 32 {
		wr.run(id, s1, s2) // through the slaves, which forward to the master
	}
	wr.waitAcked(t, 300)
	killed := time.Now()
	m.Kill()
	newMaster := waitMaster(t, s1, s2)
	elected := time.Since(killed)
	wr.waitAcked(t, 300)
	wr.halt()
	t.Logf("new master %s elected %.2fs after the kill (--failover-timeout %s); %d acknowledged with w=1, %d refused",
		newMaster, elected.Seconds(), failoverTimeout, len(wr.acked), wr.failed.Load())
	other := s1
	if newMaster == s1 {
		other = s2
	}
	st := other.WaitFor("following the new master", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == newMaster.URL() && s.State == "streaming"
	})
	if st.Epoch != 2 {
		t.Fatalf("the other slave knows epoch %d, want 2: %s", st.Epoch, st.Body)
	}
	// The old master comes back: the election tells it to follow.
	m.StartNoWait()
	m.WaitFor("a slave of the new master", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == newMaster.URL() && s.State == "streaming"
	})
	sameContent(t, newMaster, other, m)
	wr.checkAcked(t, newMaster)
	if !strings.Contains(newMaster.Output(), "elected: this node is the master") {
		t.Fatalf("the new master does not say it was elected:\n%s", newMaster.Output())
	}
}

// writer sends writes with w=1 to its nodes until stopped, and keeps the
// values acknowledged with a slave (200, w=1 met), apart from those
// answered 200 with a shortfall (committed at the master alone: the
// documented risk) and those refused.
type writer struct {
	// w is the write concern asked: 1, or 0 (every 200 counts).
	w      int
	mu     sync.Mutex
	acked  []int
	short  []int
	failed atomic.Int64
	stop   atomic.Bool
	wg     sync.WaitGroup
}

func (wr *writer) run(id int, nodes ...*Node) {
	wr.wg.Add(1)
	go func() {
		defer wr.wg.Done()
		for i := 0; !wr.stop.Load(); i++ {
			v := id*1_000_000 + i
			n := nodes[i%len(nodes)]
			ok, met, err := concernWrite(n, wr.w, fmt.Sprintf(`["INSERT INTO w (v) VALUES (%d)"]`, v))
			if err != nil || !ok {
				wr.failed.Add(1)
				time.Sleep(20 * time.Millisecond) // ok: a writer's pause after a failed write
				continue
			}
			wr.mu.Lock()
			if !met {
				wr.short = append(wr.short, v)
			} else {
				wr.acked = append(wr.acked, v)
			}
			wr.mu.Unlock()
		}
	}()
}

// concernWrite sends a write to n with write concern w (and a 1s wait):
// ok when it was committed (200, no statement error), met when, besides,
// w slaves held it (always, for w=0).
func concernWrite(n *Node, w int, body string) (ok, met bool, err error) {
	resp, err := httpClient.Post(fmt.Sprintf("%s/db/execute?w=%d&timeout=1s", n.URL(), w), "application/json", bytes.NewBufferString(body))
	if err != nil {
		return false, false, err
	}
	b := readAll(resp)
	var out struct {
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
		Replicas *struct {
			Received  int    `json:"received"`
			Shortfall string `json:"shortfall"`
		} `json:"replicas"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 || out.Results[0].Error != "" {
		return false, false, nil
	}
	met = w == 0 || (out.Replicas != nil && out.Replicas.Shortfall == "" && out.Replicas.Received >= w)
	return true, met, nil
}

func (wr *writer) count() int {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return len(wr.acked)
}

// waitAcked waits until n writes more than now were acknowledged.
func (wr *writer) waitAcked(t *testing.T, n int) {
	t.Helper()
	want := wr.count() + n
	deadline := time.Now().Add(waitTimeout)
	for wr.count() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes acknowledged, want %d (%d refused)", wr.count(), want, wr.failed.Load())
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

func (wr *writer) halt() {
	wr.stop.Store(true)
	wr.wg.Wait()
}

// checkAcked fails the test if a value acknowledged with w=1 is missing
// from n's table w, or any value is there twice. It returns how many of the
// writes answered with a shortfall are missing (lost with the master).
func (wr *writer) checkAcked(t *testing.T, n *Node) (shortLost int) {
	t.Helper()
	rows, err := n.DBQuery(t.Context(), "", "SELECT v FROM w")
	if err != nil {
		t.Fatal(err)
	}
	present := map[int]int{}
	for _, r := range rows {
		v, _ := r[0].(json.Number).Int64()
		present[int(v)]++
	}
	lost, dup := 0, 0
	for _, v := range wr.acked {
		if present[v] == 0 {
			lost++
		}
	}
	for _, k := range present {
		if k > 1 {
			dup++
		}
	}
	for _, v := range wr.short {
		if present[v] == 0 {
			shortLost++
		}
	}
	if lost > 0 || dup > 0 {
		t.Fatalf("%d of %d writes acknowledged with w=1 are lost, %d values are there twice", lost, len(wr.acked), dup)
	}
	return shortLost
}

// The master cut off (a network partition: no error, no answer) from etcd
// and from its slaves, clients still reaching it: it stops taking writes
// once its lease may be gone, a slave is elected, and writes go on there.
// Healed, the old master follows the new one and drops what it wrote
// alone; no write answered with w=1 met is lost.
func TestEtcdFailoverMasterPartitioned(t *testing.T) {
	etcd := startEtcd(t)
	etcdAddr := strings.TrimPrefix(etcd.URL(), "http://")
	c := NewCluster(t)
	pe := NewProxy(t, "master-etcd", etcdAddr)
	m := c.MustRunMaster(withEtcd(pe.URL()))
	p1, p2 := c.NewProxy("feed-1", m), c.NewProxy("feed-2", m)
	s1 := c.MustRunSlave(1, m, Via(p1), withEtcd(etcd.URL()))
	s2 := c.MustRunSlave(2, m, Via(p2), withEtcd(etcd.URL()))
	waitMaster(t, m)
	m.MustExec("CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)")
	wr := &writer{w: 1}
	for id := range 8 {
		wr.run(id, m)          // clients on the master's side
		wr.run(100+id, s1, s2) // clients on the slaves' side
	}
	wr.waitAcked(t, 200)
	cut := time.Now()
	pe.Blackhole()
	p1.Blackhole()
	p2.Blackhole()
	// The old master refuses writes, saying why, once its lease is
	// uncertain.
	deadline := time.Now().Add(waitTimeout)
	for probe := -1; ; probe-- { // a value of its own each, apart from the writers'
		status, body, err := m.Post([]byte(fmt.Sprintf(`{"command":"exec","query":"INSERT INTO w (v) VALUES (%d)"}`, probe)))
		if err == nil && status == http.StatusServiceUnavailable && strings.Contains(string(body), "failover lease") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cut-off master still takes writes: %d %s %v", status, body, err)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
	refused := time.Since(cut)
	nm := waitMaster(t, s1, s2)
	elected := time.Since(cut)
	wr.waitAcked(t, 200)
	pe.Heal()
	p1.Heal()
	p2.Heal()
	m.WaitFor("a slave of the new master", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == nm.URL() && s.State == "streaming"
	})
	wr.waitAcked(t, 100)
	wr.halt()
	other := s1
	if nm == s1 {
		other = s2
	}
	sameContent(t, nm, other, m)
	shortLost := wr.checkAcked(t, nm)
	t.Logf("cut off: the old master refused writes %.2fs after, %s was elected %.2fs after (--failover-timeout %s); %d acknowledged with w=1, none lost; %d answered with a shortfall, %d of them lost",
		refused.Seconds(), nm, elected.Seconds(), failoverTimeout, len(wr.acked), len(wr.short), shortLost)
	if refused >= elected {
		t.Fatalf("the old master took writes until %.2fs, after the new one was elected at %.2fs", refused.Seconds(), elected.Seconds())
	}
}

// etcd lost (its connections refused) and back: the master keeps writing
// while its lease is certainly valid, then refuses writes clearly; reads
// go on everywhere; no other master is elected meanwhile; once etcd is
// back, the master is elected again, with its own epoch, and writes
// resume.
func TestEtcdUnavailable(t *testing.T) {
	etcd := startEtcd(t)
	pe := NewProxy(t, "etcd", strings.TrimPrefix(etcd.URL(), "http://"))
	c := NewCluster(t)
	m := c.MustRunMaster(withEtcd(pe.URL()))
	s1 := c.MustRunSlave(1, m, withEtcd(pe.URL()))
	waitMaster(t, m)
	m.MustExec("CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)")
	m.MustExec("INSERT INTO w (v) VALUES (1)")
	pe.Cut()
	deadline := time.Now().Add(waitTimeout)
	for probe := -1; ; probe-- {
		status, body, err := m.Post([]byte(fmt.Sprintf(`{"command":"exec","query":"INSERT INTO w (v) VALUES (%d)"}`, probe)))
		if err == nil && status == http.StatusServiceUnavailable && strings.Contains(string(body), "failover lease") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without etcd the master still takes writes: %d %s %v", status, body, err)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
	for _, n := range []*Node{m, s1} {
		if got := n.Count("SELECT count(*) FROM w WHERE v = 1"); got != 1 {
			t.Fatalf("%s: a read without etcd: %d", n, got)
		}
	}
	if st := s1.MustLogStatus(); st.Role != "slave" {
		t.Fatalf("a slave became %s without etcd", st.Role)
	}
	pe.Heal()
	if got := waitMaster(t, m, s1); got != m {
		t.Fatalf("%s leads after etcd came back, want the master", got)
	}
	m.MustExec("INSERT INTO w (v) VALUES (3)")
	if st := m.MustLogStatus(); st.Epoch != 1 {
		t.Fatalf("the master's epoch is %d after etcd came back, want 1 (the same master)", st.Epoch)
	}
	sameContent(t, m, s1)
}

// In a new cluster whose slave starts before the master, the slave does
// not campaign (no master was ever elected, its log is empty): it would
// become a master without the master's data, and the master would drop
// its history to follow it. The master, started later, is elected and
// the slave follows it.
func TestEtcdSlaveFirstDoesNotCampaign(t *testing.T) {
	etcd := startEtcd(t)
	c := NewCluster(t)
	m := c.newNode(RoleMaster, 0, "master", []Option{withEtcd(etcd.URL())})
	m.Addr = freeAddr(t)
	s := c.newNode(RoleSlave, 1, "slave-1", []Option{withEtcd(etcd.URL())})
	s.Master, s.MasterURL, s.Addr = m, m.URL(), freeAddr(t)
	s.StartNoWait()
	s.WaitFor("serving", waitTimeout, func(*LogStatus) bool { return true })
	// Three leases' time: the slave had every chance to campaign.
	time.Sleep(3 * failoverTimeout) // ok: checking that nothing happens meanwhile
	if st := s.MustLogStatus(); st.Role != "slave" {
		t.Fatalf("the slave became %s before any master was elected: %s", st.Role, st.Body)
	}
	m.Start()
	if got := waitMaster(t, m, s); got != m {
		t.Fatalf("%s leads, want the master", got)
	}
	m.MustExec("CREATE TABLE t (v)")
	idx := m.MustExec("INSERT INTO t VALUES (1)").Index
	s.WaitForApplied(idx, waitTimeout)
	if st := m.MustLogStatus(); st.Epoch != 1 {
		t.Fatalf("the master's epoch is %d, want 1", st.Epoch)
	}
}
