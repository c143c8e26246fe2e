package tests

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestEtcdFailovers kills the master again and again under load, with
// automatic failover on etcd: WALSHIP_FAILOVERS failovers in a row (3
// unless set; RELIABILITY.md reports 100). Each time the master is
// SIGKILLed, a slave is elected, and the killed node is started again and
// follows it. Writers ask w=1 (none of theirs may be lost) and w=0 (the
// documented risk: those lost are counted), and clients write and read a
// few keys (w=1 writes, strong reads) for porcupine, which must find the
// history linearizable. Every replica ends equal.
func TestEtcdFailovers(t *testing.T) {
	rounds := 3
	if v := os.Getenv("WALSHIP_FAILOVERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("WALSHIP_FAILOVERS=%q: give a number of failovers", v)
		}
		rounds = n
	}
	etcd := startEtcd(t)
	c := NewCluster(t)
	m := c.MustRunMaster(withEtcd(etcd.URL()))
	s1 := c.MustRunSlave(1, m, withEtcd(etcd.URL()))
	s2 := c.MustRunSlave(2, m, withEtcd(etcd.URL()))
	nodes := []*Node{m, s1, s2}
	waitMaster(t, m)
	m.MustExec("CREATE TABLE w (id INTEGER PRIMARY KEY, v INTEGER)")
	for _, st := range []string{"CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"} {
		m.MustExec(st)
	}
	w1, w0 := &writer{w: 1}, &writer{w: 0}
	for id := range 12 {
		w1.run(id, nodes...)
	}
	for id := range 4 {
		w0.run(100+id, nodes...)
	}
	lin := &linClients{start: time.Now()}
	for cl := range 4 {
		lin.run(cl, nodes)
	}
	var took []time.Duration
	for round := range rounds {
		w1.waitAcked(t, 100)
		master := waitMaster(t, nodes...)
		killed := time.Now()
		master.Kill()
		var others []*Node
		for _, n := range nodes {
			if n != master {
				others = append(others, n)
			}
		}
		nm := waitMaster(t, others...)
		took = append(took, time.Since(killed))
		master.StartNoWait()
		master.WaitFor("following the new master", waitTimeout, func(s *LogStatus) bool {
			return s.Role == "slave" && s.Master == nm.URL() && s.State == "streaming"
		})
		if (round+1)%10 == 0 {
			t.Logf("%d failovers", round+1)
		}
	}
	w1.waitAcked(t, 100)
	w1.halt()
	w0.halt()
	lin.halt()
	final := waitMaster(t, nodes...)
	var rest []*Node
	for _, n := range nodes {
		if n != final {
			rest = append(rest, n)
		}
	}
	sameContent(t, final, rest...)
	w1.checkAcked(t, final)
	lost0 := lostOf(t, final, w0.acked)
	res, info := porcupine.CheckOperationsVerbose(kvModel, lin.history(), 5*time.Minute)
	if res != porcupine.Ok {
		// Kept after the test (outside its directory), to be looked at.
		path := filepath.Join(os.TempDir(), fmt.Sprintf("walship-failovers-%d.html", time.Now().Unix()))
		if f, err := os.Create(path); err == nil {
			_ = porcupine.Visualize(kvModel, info, f)
			f.Close()
		}
		t.Fatalf("porcupine: %v (%d operations; visualisation %s)", res, len(lin.history()), path)
	}
	slices.Sort(took)
	p := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	t.Logf("%d failovers (--failover-timeout %s): new master after %s p50, %s p99, %s max; w=1: %d acknowledged, 0 lost; w=0: %d acknowledged, %d lost; linearizability: %d operations, 0 violations",
		rounds, failoverTimeout, p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
		len(w1.acked), len(w0.acked), lost0, len(lin.history()))
}

// lostOf counts the values of acked missing from n's table w.
func lostOf(t *testing.T, n *Node, acked []int) int {
	t.Helper()
	rows, err := n.DBQuery(t.Context(), "", "SELECT v FROM w")
	if err != nil {
		t.Fatal(err)
	}
	present := map[int]bool{}
	for _, r := range rows {
		v, _ := r[0].(json.Number).Int64()
		present[int(v)] = true
	}
	lost := 0
	for _, v := range acked {
		if !present[v] {
			lost++
		}
	}
	return lost
}

// linClients write (w=1) and read (strong) a few keys through any node,
// and record the history for porcupine. A write answered 200 with w=1 met
// took effect; any other answer to a write may or may not have (its
// return is unknown); a read that failed is left out (it changed nothing).
type linClients struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	stop  atomic.Bool
	wg    sync.WaitGroup
	next  atomic.Int64
}

func (lc *linClients) now() int64 { return int64(time.Since(lc.start)) }

func (lc *linClients) record(op porcupine.Operation) {
	lc.mu.Lock()
	lc.ops = append(lc.ops, op)
	lc.mu.Unlock()
}

// history returns the operations for porcupine. A write whose outcome is
// unknown and whose value no read returned is left out: whether it took
// effect or not, no linearization of the others depends on it (a write
// shows only through reads), and porcupine's search grows with every
// operation that may or may not have happened.
func (lc *linClients) history() []porcupine.Operation {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	seen := map[int64]bool{}
	for _, op := range lc.ops {
		if !op.Input.(kvInput).Write {
			seen[op.Output.(int64)] = true
		}
	}
	out := make([]porcupine.Operation, 0, len(lc.ops))
	for _, op := range lc.ops {
		if in := op.Input.(kvInput); in.Write && op.Return == unknownReturn && !seen[in.Value] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// unknownReturn is the return time of an operation whose outcome is not
// known: it may take effect at any time after its call, or never.
const unknownReturn = 1 << 62

func (lc *linClients) halt() {
	lc.stop.Store(true)
	lc.wg.Wait()
}

func (lc *linClients) run(cl int, nodes []*Node) {
	lc.wg.Add(1)
	go func() {
		defer lc.wg.Done()
		r := rand.New(rand.NewPCG(uint64(cl), 7))
		keys := []string{"a", "b", "c", "d", "e"}
		for !lc.stop.Load() {
			n := nodes[r.IntN(len(nodes))]
			key := keys[r.IntN(len(keys))]
			if r.IntN(2) == 0 {
				v := lc.next.Add(1)
				call := lc.now()
				_, ok, err := concernWrite(n, 1, fmt.Sprintf(`[["INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", %q, %d]]`, key, v))
				ok = ok && err == nil
				ret := lc.now()
				if !ok {
					ret = unknownReturn
					time.Sleep(20 * time.Millisecond) // ok: a client's pause after a failure
				}
				lc.record(porcupine.Operation{ClientId: cl, Input: kvInput{Write: true, Key: key, Value: v}, Call: call, Output: int64(0), Return: ret})
				continue
			}
			call := lc.now()
			q := url.Values{"level": {"strong"}, "q": {"SELECT v FROM kv WHERE k = '" + key + "'"}}
			resp, err := httpClient.Get(n.URL() + "/db/query?" + q.Encode())
			if err != nil {
				time.Sleep(20 * time.Millisecond) // ok: a client's pause after a failure
				continue
			}
			b := readAll(resp)
			var out struct {
				Results []struct {
					Values [][]json.Number `json:"values"`
					Error  string          `json:"error"`
				} `json:"results"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 || out.Results[0].Error != "" {
				time.Sleep(20 * time.Millisecond) // ok: a client's pause after a failure
				continue
			}
			var v int64
			if len(out.Results[0].Values) == 1 {
				v, _ = out.Results[0].Values[0][0].Int64()
			}
			lc.record(porcupine.Operation{ClientId: cl, Input: kvInput{Key: key}, Call: call, Output: v, Return: lc.now()})
		}
	}()
}
