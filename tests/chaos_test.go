package tests

// This file holds the chaos tests' settings (short or long mode, the seed
// of their random choices) and the first two scenarios of RELIABILITY.md:
// the master SIGKILLed under 32 writers, and slaves killed, paused and cut
// off under load. The third, linearizability, is in
// linearizability_test.go.
//
// `go test ./tests` runs a short version of each. WALSHIP_CHAOS=long runs
// the long one. Every run logs its seed; -chaos.seed=N (or
// WALSHIP_CHAOS_SEED=N) replays the same random choices, though not the
// same timing: the processes and the network still race as they like.

import (
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var chaosSeedFlag = flag.Uint64("chaos.seed", 0, "seed of the chaos tests' random choices; 0 means WALSHIP_CHAOS_SEED, else the clock")

// chaosSettings are the sizes of the chaos scenarios in one mode.
type chaosSettings struct {
	Long bool
	// Scenario 1: master kills, each after this many acknowledged writes
	// (at least; a random number up to twice that).
	MasterKills   int
	AcksPerKill   int
	MasterWriters int
	// Scenario 2: slave events (kill, stop, cut, blackhole, slow).
	SlaveEvents int
	// Scenario 3: porcupine runs, each of this length, with this many
	// master kills in each.
	LinRuns        int
	LinRunFor      time.Duration
	LinMasterKills int
}

func chaosMode(t testing.TB) chaosSettings {
	t.Helper()
	switch mode := os.Getenv("WALSHIP_CHAOS"); mode {
	case "", "short":
		return chaosSettings{MasterKills: 5, AcksPerKill: 150, MasterWriters: 32, SlaveEvents: 15,
			LinRuns: 2, LinRunFor: 5 * time.Second, LinMasterKills: 2}
	case "long":
		return chaosSettings{Long: true, MasterKills: 100, AcksPerKill: 200, MasterWriters: 32, SlaveEvents: 200,
			LinRuns: 10, LinRunFor: 20 * time.Second, LinMasterKills: 3}
	default:
		t.Fatalf("WALSHIP_CHAOS=%q: want short (or empty) or long", mode)
		return chaosSettings{}
	}
}

var (
	chaosSeedOnce sync.Once
	chaosSeedVal  uint64
)

// chaosSeed is the seed of this test process: -chaos.seed, else
// WALSHIP_CHAOS_SEED, else the clock.
func chaosSeed(t testing.TB) uint64 {
	t.Helper()
	chaosSeedOnce.Do(func() {
		chaosSeedVal = *chaosSeedFlag
		if chaosSeedVal == 0 {
			if s := os.Getenv("WALSHIP_CHAOS_SEED"); s != "" {
				v, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					panic(fmt.Sprintf("WALSHIP_CHAOS_SEED=%q: %v", s, err))
				}
				chaosSeedVal = v
			}
		}
		if chaosSeedVal == 0 {
			chaosSeedVal = uint64(time.Now().UnixNano())%1_000_000_000 + 1
		}
	})
	return chaosSeedVal
}

// chaosRand returns the random source of test t: the process's seed mixed
// with the test's name, so that each test replays on its own. It logs the
// seed and the mode.
func chaosRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := chaosSeed(t)
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	mode := "short"
	if chaosMode(t).Long {
		mode = "long"
	}
	t.Logf("chaos seed %d, mode %s (replay: go test ./tests -run '^%s$' -chaos.seed=%d, or WALSHIP_CHAOS_SEED=%d)", seed, mode, t.Name(), seed, seed)
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// figure logs one result line of a scenario, the line RELIABILITY.md
// quotes.
func figure(t testing.TB, scenario, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: %s", scenario, fmt.Sprintf(format, args...))
}

// ackLoad is writers that each insert (w, k) rows into table acks, k
// counting up, each (w, k) sent once whatever the answer, and remember
// which were acknowledged and at what index.
type ackLoad struct {
	targets []*Node // writer w writes to targets[w]
	stop    chan struct{}
	wg      sync.WaitGroup

	// acked[w] and failed[w] are owned by writer w until Stop.
	acked   [][]ackedWrite
	failed  []int
	total   atomic.Int64
	pending atomic.Int64
	maxIdx  atomic.Uint64 // the highest index acknowledged
}

type ackedWrite struct {
	k     int
	index uint64
}

const acksSchema = `CREATE TABLE acks (w INTEGER NOT NULL, k INTEGER NOT NULL)` // no unique constraint: duplicates stay visible

// startAckLoad starts one writer per target.
func startAckLoad(targets []*Node) *ackLoad {
	l := &ackLoad{targets: targets, stop: make(chan struct{}), acked: make([][]ackedWrite, len(targets)), failed: make([]int, len(targets))}
	for w := range targets {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for k := 0; ; k++ {
				select {
				case <-l.stop:
					return
				default:
				}
				r, err := targets[w].Exec(`INSERT INTO acks (w, k) VALUES (?, ?)`, w, k)
				if err != nil {
					l.failed[w]++
					time.Sleep(5 * time.Millisecond) // ok: backoff while the node is down
					continue
				}
				if r.Pending {
					l.pending.Add(1)
				}
				l.acked[w] = append(l.acked[w], ackedWrite{k: k, index: r.Index})
				for {
					m := l.maxIdx.Load()
					if r.Index <= m || l.maxIdx.CompareAndSwap(m, r.Index) {
						break
					}
				}
				l.total.Add(1)
			}
		}()
	}
	return l
}

// waitAcks waits until n writes were acknowledged in all.
func (l *ackLoad) waitAcks(t testing.TB, n int64, when string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for l.total.Load() < n {
		if time.Now().After(deadline) {
			l.Stop()
			t.Fatalf("%s: only %d of %d writes acknowledged after %v; failures per writer %v", when, l.total.Load(), n, waitTimeout, l.failed)
		}
		time.Sleep(time.Millisecond) // ok: poll interval
	}
}

// Stop stops the writers and waits for them.
func (l *ackLoad) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// check compares the rows of acks on n with what was acknowledged, after
// Stop: every acknowledged write must be there exactly once, no write may
// be there twice, and no two acknowledged writes may share a log index.
// It returns the counts and reports each problem.
func (l *ackLoad) check(t testing.TB, n *Node) (acknowledged, lost, duplicated, unackedPresent int) {
	t.Helper()
	counts := map[[2]int]int{}
	for _, row := range n.MustQuery(`SELECT w, k, count(*) FROM acks GROUP BY w, k`).Values {
		var key [2]int
		var c int
		for i, p := range []*int{&key[0], &key[1], &c} {
			num, _ := row[i].(json.Number)
			v, err := num.Int64()
			if err != nil {
				t.Fatalf("row %v: %v", row, err)
			}
			*p = int(v)
		}
		counts[key] = c
		if c > 1 {
			duplicated++
			if duplicated <= 10 {
				t.Errorf("write w=%d k=%d is on %s %d times", key[0], key[1], n.Name(), c)
			}
		}
	}
	byIndex := map[uint64][2]int{}
	seen := map[[2]int]bool{}
	for w, acks := range l.acked {
		for _, a := range acks {
			acknowledged++
			key := [2]int{w, a.k}
			seen[key] = true
			if counts[key] == 0 {
				lost++
				if lost <= 10 {
					t.Errorf("acknowledged write w=%d k=%d (index %d, via %s) is not on %s", w, a.k, a.index, l.targets[w].Name(), n.Name())
				}
			}
			if o, dup := byIndex[a.index]; dup {
				t.Errorf("writes w=%d k=%d and w=%d k=%d were both acknowledged at index %d", o[0], o[1], w, a.k, a.index)
			}
			byIndex[a.index] = key
		}
	}
	for key := range counts {
		if !seen[key] {
			unackedPresent++
		}
	}
	if lost > 0 || duplicated > 0 {
		t.Errorf("%d acknowledged writes lost, %d writes duplicated on %s", lost, duplicated, n.Name())
	}
	return acknowledged, lost, duplicated, unackedPresent
}

// checkChecksums fetches /db/checksum from the master and every running
// slave of c that follows it, once they all applied the master's last
// index, and reports every slave whose content differs. It returns the
// number of slaves that differ.
func checkChecksums(t testing.TB, c *Cluster, m *Node) (divergent int) {
	t.Helper()
	// The master may still log the result of a replica check after the
	// clients stopped (an entry that changes no content): the nodes are
	// compared once they all stand at the same index.
	deadline := time.Now().Add(waitTimeout)
	for {
		last := c.WaitConverged(m)
		want, err := m.Checksum()
		if err != nil {
			t.Fatal(err)
		}
		if want.Index != last {
			if time.Now().After(deadline) {
				t.Fatalf("the master's checksum is at index %d, its last index is %d (no writes should be running)", want.Index, last)
			}
			continue
		}
		var moved bool
		divergent = 0
		var diffs []string
		for _, n := range c.Nodes() {
			if n.Role != RoleSlave || n.Master != m || n.Exited() {
				continue
			}
			got, err := n.Checksum()
			if err != nil {
				t.Fatal(err)
			}
			if got.Index != want.Index {
				moved = true
				break
			}
			if got.Checksum != want.Checksum {
				divergent++
				diffs = append(diffs, fmt.Sprintf("%s differs from the master: checksum %s at index %d, the master's %s at %d\n%s: %s\nmaster: %s",
					n, got.Checksum, got.Index, want.Checksum, want.Index, n.Name(), got.Body, want.Body))
			}
		}
		if moved && time.Now().Before(deadline) {
			continue
		}
		if moved {
			t.Fatalf("the nodes never stood at one index for %v", waitTimeout)
		}
		for _, d := range diffs {
			t.Error(d)
		}
		return divergent
	}
}

// TestChaosMasterKill is scenario 1 of RELIABILITY.md: the master is
// SIGKILLed while 32 writers write (28 to the master, 4 through the two
// slaves, which pull through proxies, one of them now and then slowed to a
// trickle), and restarted on the same address and data, again and again.
// After each restart its log holds every index acknowledged so far; at the
// end every acknowledged write is on the master exactly once, no write is
// there twice, and both slaves hold exactly the master's content
// (/db/checksum).
func TestChaosMasterKill(t *testing.T) { chaosMasterKill(t, "master-kill", 0) }

// TestChaosMasterKillSmallRetention is scenario 1 with a master that keeps
// 100 entries and compacts every 20 ms: the kills land in snapshots and
// compactions (8 MiB of random rows make each snapshot last), and a slow
// slave falls behind the log and bootstraps.
func TestChaosMasterKillSmallRetention(t *testing.T) {
	chaosMasterKill(t, "master-kill-small-retention", 8,
		WithArgs("--log-retain-entries", "100", "--log-segment-size", "64KiB", "--log-compact-every", "20ms"))
}

// chaosMasterKill runs scenario 1 on a master started with opts, whose
// database first gets bigMiB rows of 1 MiB.
func chaosMasterKill(t *testing.T, scenario string, bigMiB int, opts ...Option) {
	cfg := chaosMode(t)
	rng := chaosRand(t)
	c := NewCluster(t)
	m := c.MustRunMaster(opts...)
	proxies := []*Proxy{c.NewProxy("slave-1→master", m), c.NewProxy("slave-2→master", m)}
	s1 := c.MustRunSlave(1, m, Via(proxies[0]))
	s2 := c.MustRunSlave(2, m, Via(proxies[1]))
	m.MustExec(acksSchema)
	if bigMiB > 0 {
		bigRows(t, m, bigMiB)
	}
	c.WaitConverged(m)

	targets := make([]*Node, cfg.MasterWriters)
	for w := range targets {
		switch w % 16 {
		case 7:
			targets[w] = s1
		case 15:
			targets[w] = s2
		default:
			targets[w] = m
		}
	}
	load := startAckLoad(targets)
	defer load.Stop()

	var (
		downtime     time.Duration
		midSnapshots int
	)
	for cycle := 1; cycle <= cfg.MasterKills; cycle++ {
		// Now and then a slave's feed is slow, so that the kill cuts an
		// answer in the middle of an entry.
		slow := proxies[rng.IntN(len(proxies))]
		if rng.IntN(3) == 0 {
			slow.Bandwidth(int64(8 + rng.IntN(64)))
		}
		load.waitAcks(t, load.total.Load()+int64(cfg.AcksPerKill+rng.IntN(cfg.AcksPerKill+1)), fmt.Sprintf("cycle %d, before the kill", cycle))
		m.Kill()
		killed := time.Now()
		if snapshotInProgress(m) {
			midSnapshots++
		}
		if pause := time.Duration(rng.IntN(200)) * time.Millisecond; pause > 0 {
			time.Sleep(pause) // ok: the master stays down a random while
		}
		m.Start()
		downtime += time.Since(killed)
		slow.Heal()
		acked := load.maxIdx.Load()
		if last := m.MustLogStatus().LastIndex; last < acked {
			t.Fatalf("cycle %d: after the restart the master's last index is %d, but index %d was acknowledged", cycle, last, acked)
		}
	}
	load.waitAcks(t, load.total.Load()+int64(cfg.AcksPerKill), "after the last restart")
	load.Stop()

	acknowledged, lost, duplicated, unacked := load.check(t, m)
	divergent := checkChecksums(t, c, m)
	failed := 0
	for _, f := range load.failed {
		failed += f
	}
	t.Logf("%d writers, %d kills, the master down %v in all; %d writes failed (during the kills), %d of them are in the database all the same; %d answered pending by a slave",
		len(targets), cfg.MasterKills, downtime.Round(time.Millisecond), failed, unacked, load.pending.Load())
	figure(t, scenario, "cycles %d (%d during a snapshot), acknowledged writes %d, lost %d, duplicated %d, slaves differing %d; compactions %d, bootstraps %d",
		cfg.MasterKills, midSnapshots, acknowledged, lost, duplicated, divergent, strings.Count(string(m.allOutput()), "log compacted"), bootstraps(s1, s2))
}

// snapshotInProgress says whether node n's data directory holds a snapshot
// being written: after a kill, that the kill landed in the middle of one.
func snapshotInProgress(n *Node) bool {
	names, _ := filepath.Glob(filepath.Join(n.DataDir, "snapshots", "*.tmp"))
	return len(names) > 0
}

// bootstraps counts the snapshots the slaves installed, from their output.
func bootstraps(slaves ...*Node) int {
	n := 0
	for _, s := range slaves {
		n += strings.Count(string(s.allOutput()), "bootstrapped: installed the master's snapshot")
	}
	return n
}

// slaveEvent is one fault of scenario 2.
type slaveEvent string

const (
	eventKill      slaveEvent = "kill"      // SIGKILL, restart
	eventStop      slaveEvent = "stop"      // SIGSTOP, SIGCONT
	eventCut       slaveEvent = "cut"       // the proxy to the master refuses and closes connections
	eventBlackhole slaveEvent = "blackhole" // the proxy drops every byte, connections stay open
	eventSlow      slaveEvent = "slow"      // the proxy adds latency and limits bandwidth
)

var slaveEvents = []slaveEvent{eventKill, eventStop, eventCut, eventBlackhole, eventSlow}

// TestChaosSlaveFaults is scenario 2 of RELIABILITY.md: three slaves pull
// through proxies while 8 writers write to the master, and at random one
// slave is SIGKILLed, SIGSTOPped, cut off, blackholed or slowed down. While
// a slave is out, the master's /log/status shows its lag growing and its
// applied index standing still; a cut-off slave's own /log/status says
// disconnected, and it still serves local reads. Faults overlap (up to two
// slaves out at once). After each fault ends the slave catches up; at the
// end all hold the master's content.
func TestChaosSlaveFaults(t *testing.T) { chaosSlaveFaults(t, "slave-faults") }

// TestChaosSlaveFaultsSmallRetention is scenario 2 with a master that keeps
// 300 entries and compacts every 50 ms: a slave out for a while falls
// behind the log and bootstraps from a snapshot. (Kills in the middle of a
// bootstrap are TestSlaveKilledInBootstrap's.)
func TestChaosSlaveFaultsSmallRetention(t *testing.T) {
	chaosSlaveFaults(t, "slave-faults-small-retention", smallRetention)
}

func chaosSlaveFaults(t *testing.T, scenario string, opts ...Option) {
	cfg := chaosMode(t)
	rng := chaosRand(t)
	c := NewCluster(t)
	m := c.MustRunMaster(opts...)
	var (
		slaves  []*Node
		proxies []*Proxy
	)
	for id := 1; id <= 3; id++ {
		p := c.NewProxy(fmt.Sprintf("slave-%d→master", id), m)
		slaves = append(slaves, c.MustRunSlave(id, m, Via(p)))
		proxies = append(proxies, p)
	}
	m.MustExec(acksSchema)
	c.WaitConverged(m)

	targets := make([]*Node, 8)
	for w := range targets {
		targets[w] = m
	}
	load := startAckLoad(targets)
	defer load.Stop()
	load.waitAcks(t, 50, "before the first event")

	counts := map[slaveEvent]int{}
	order := slices.Clone(slaveEvents)
	var (
		lagged, lagExpected int
		maxLag              uint64
		active              = map[int]slaveEvent{} // slave index → its fault in force
		ev                  int
	)
	// heal ends the fault of slave i and waits until it caught up.
	heal := func(i int) {
		s, p := slaves[i], proxies[i]
		switch active[i] {
		case eventKill:
			s.Start()
		case eventStop:
			s.Cont()
		default:
			p.Heal()
		}
		delete(active, i)
		s.WaitForApplied(m.MustLogStatus().LastIndex, waitTimeout)
	}
	// Faults overlap: at each step, either a fault in force ends or a new
	// one starts on a slave without one, at most two slaves out at once.
	for ev < cfg.SlaveEvents {
		if len(active) == 2 || (len(active) == 1 && rng.IntN(2) == 0) {
			out := slices.Sorted(maps.Keys(active))
			heal(out[rng.IntN(len(out))])
			continue
		}
		// Every kind comes up equally often: a round of them in random
		// order, then the next round.
		if ev%len(order) == 0 {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		kind := order[ev%len(order)]
		ev++
		i := rng.IntN(len(slaves))
		for active[i] != "" {
			i = rng.IntN(len(slaves))
		}
		s, p := slaves[i], proxies[i]
		counts[kind]++
		active[i] = kind
		what := fmt.Sprintf("event %d (%s %s)", ev, kind, s.Name())

		switch kind {
		case eventKill:
			s.Kill()
		case eventStop:
			s.Stop()
		case eventCut:
			p.Cut()
		case eventBlackhole:
			p.Blackhole()
		case eventSlow:
			p.Latency(time.Duration(5+rng.IntN(30))*time.Millisecond, 5*time.Millisecond)
			p.Bandwidth(int64(64 + rng.IntN(512)))
		}
		if kind != eventSlow {
			lagExpected++
			lag := waitLagGrows(t, m, s.ID, what)
			lagged++
			maxLag = max(maxLag, lag)
		}
		switch kind {
		case eventCut:
			s.WaitFor("disconnected while cut off ("+what+")", waitTimeout, func(st *LogStatus) bool {
				return st.State == "disconnected"
			})
			fallthrough
		case eventBlackhole:
			if _, err := s.Query(`SELECT count(*) FROM acks`); err != nil {
				t.Errorf("%s: a local read at the cut-off slave failed: %v", what, err)
			}
		}
		if hold := time.Duration(rng.IntN(300)) * time.Millisecond; hold > 0 {
			time.Sleep(hold) // ok: the faults last a random while
		}
	}
	for _, i := range slices.Sorted(maps.Keys(active)) {
		heal(i)
	}
	load.Stop()

	acknowledged, lost, duplicated, _ := load.check(t, m)
	divergent := checkChecksums(t, c, m)
	for _, s := range slaves {
		if st := s.MustLogStatus(); st.State != "streaming" {
			t.Errorf("%s is %s after the events, want streaming: %s", s, st.State, st.Body)
		}
	}
	var kinds []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, counts[k]))
	}
	t.Logf("%d acknowledged writes, %d lost, %d duplicated", acknowledged, lost, duplicated)
	figure(t, scenario, "events %d (%v), lag reported growing %d of %d (max %d entries), divergence %d; bootstraps %d",
		cfg.SlaveEvents, kinds, lagged, lagExpected, maxLag, divergent, bootstraps(slaves...))
}

// waitLagGrows polls the master's /log/status until it reports slave id's
// applied index standing still while its lag grows by at least 10 entries,
// and returns the lag. It fails the test after waitTimeout.
func waitLagGrows(t testing.TB, m *Node, id int, what string) uint64 {
	t.Helper()
	var base *SlaveStatus
	var lag uint64
	m.WaitFor(fmt.Sprintf("reporting slave %d's lag growing (%s)", id, what), waitTimeout, func(st *LogStatus) bool {
		sl := st.Slave(id)
		if sl == nil {
			t.Fatalf("%s: the master does not list slave %d: %s", what, id, st.Body)
		}
		if base == nil || sl.AppliedIndex != base.AppliedIndex {
			// The first sample, or a request sent before the fault
			// reported progress: measure from here.
			base = sl
			return false
		}
		lag = sl.LagEntries
		return sl.LagEntries >= base.LagEntries+10
	})
	return lag
}
