package tests

// This file is scenario 3 of RELIABILITY.md: concurrent clients write and
// read a handful of keys while the master is killed and restarted, slaves
// are cut off and client connections are reset; the history of writes,
// master reads and strong reads through slaves is checked for
// linearizability with porcupine against a register per key, and the local
// reads at slaves (stale by design) for read-your-writes and monotonic
// reads per client session.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The table of scenario 3: a register per key, and the order in which
// writes were applied (hist's rowid grows with the log, as nothing is ever
// deleted from it). Values are unique per write, so a value names its
// write.
const (
	linSchema = `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE hist (k TEXT NOT NULL, v INTEGER NOT NULL);
CREATE TRIGGER kv_hist AFTER INSERT ON kv BEGIN INSERT INTO hist (k, v) VALUES (NEW.k, NEW.v); END`
	linWrite = `INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)`
	linRead  = `SELECT v FROM kv WHERE k = ?`
)

// kvInput is an operation on one key: a write of Value, or a read.
type kvInput struct {
	Write bool
	Key   string
	Value int64
}

// kvModel is a register per key, partitioned by key; 0 is a key never
// written. A read's output is the int64 it returned.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.Write {
			return true, in.Value
		}
		return output.(int64) == state.(int64), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.Write {
			return fmt.Sprintf("put(%s, %d)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) → %d", in.Key, output)
	},
	DescribeState: func(state any) string { return fmt.Sprint(state) },
}

// opKind is what a recorded operation did.
type opKind int

const (
	opWrite     opKind = iota
	opRead             // at the master, or strong through a slave: checked for linearizability
	opLocalRead        // level none at the client's home slave: checked per session
)

// outcome is what a client knows of its operation.
type outcome int

const (
	outOK      outcome = iota
	outFailed          // definitely without effect: the connection was refused, nothing was sent
	outUnknown         // it may or may not have taken effect (a crash, a reset, a timeout)
)

// linOp is one recorded operation of a client.
type linOp struct {
	client  int
	kind    opKind
	via     string // where it was sent
	key     string
	value   int64  // written, or read (0: no row)
	index   uint64 // a write's log index, a local read's applied index
	call    int64  // ns since the run started
	ret     int64
	outcome outcome
	status  int // the HTTP status of an error answer of the node itself
	err     error
}

func (o linOp) String() string {
	kind := map[opKind]string{opWrite: "write", opRead: "read", opLocalRead: "local read"}[o.kind]
	return fmt.Sprintf("client %d %s %s=%d via %s (index %d, [%d, %d] ns)", o.client, kind, o.key, o.value, o.via, o.index, o.call, o.ret)
}

// linFigures are the counts of one or more runs.
type linFigures struct {
	runs, ops, unknown, failed, dropped, violations int
	localReads, sessionViolations                   int
	masterKills, masterPauses, partitions, resets   int
	slow                                            int
}

// TestChaosLinearizable is scenario 3 of RELIABILITY.md. Each run starts a
// cluster (a master, two slaves pulling through proxies, and a proxy in
// front of the master for some of the clients), and 8 clients write and
// read 5 keys while the master is SIGKILLed and restarted or SIGSTOPped
// for a while, and the slaves' and clients' connections are cut,
// blackholed, reset and slowed down. Writes go to the
// master (directly or through the proxy) or through a slave; reads go to
// the master or, with level=strong, through a slave. Porcupine must find
// the history linearizable; local reads at each client's home slave must
// show its own writes once the slave applied them and never go back.
func TestChaosLinearizable(t *testing.T) {
	cfg := chaosMode(t)
	rng := chaosRand(t)
	var total linFigures
	for run := 1; run <= cfg.LinRuns; run++ {
		ok := t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) {
			f := linearizabilityRun(t, rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), run, cfg)
			total.runs++
			total.ops += f.ops
			total.unknown += f.unknown
			total.failed += f.failed
			total.dropped += f.dropped
			total.violations += f.violations
			total.localReads += f.localReads
			total.sessionViolations += f.sessionViolations
			total.masterKills += f.masterKills
			total.partitions += f.partitions
			total.resets += f.resets
			total.slow += f.slow
			total.masterPauses += f.masterPauses
		})
		if !ok {
			break
		}
	}
	t.Logf("%d master kills, %d master pauses, %d slave partitions, %d client connection resets, %d slow links; %d writes of unknown outcome, %d failed before they were sent, %d failed reads left out",
		total.masterKills, total.masterPauses, total.partitions, total.resets, total.slow, total.unknown, total.failed, total.dropped)
	figure(t, "linearizability", "runs %d, operations checked %d, violations %d; session reads checked %d, session violations %d",
		total.runs, total.ops, total.violations, total.localReads, total.sessionViolations)
}

// linearizabilityRun is one run of scenario 3.
func linearizabilityRun(t *testing.T, rng *rand.Rand, run int, cfg chaosSettings) (f linFigures) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	sp := []*Proxy{c.NewProxy("slave-1→master", m), c.NewProxy("slave-2→master", m)}
	slaves := []*Node{c.MustRunSlave(1, m, Via(sp[0])), c.MustRunSlave(2, m, Via(sp[1]))}
	cp := c.NewProxy("clients→master", m)
	m.MustExec(linSchema)
	c.WaitConverged(m)

	const clients = 8
	keys := []string{"a", "b", "c", "d", "e"}
	start := time.Now()
	now := func() int64 { return time.Since(start).Nanoseconds() }
	var (
		stop = make(chan struct{})
		wg   sync.WaitGroup
		ops  = make([][]linOp, clients)
	)
	for cl := range clients {
		r := rand.New(rand.NewPCG(rng.Uint64(), uint64(cl)))
		home := slaves[cl%len(slaves)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(1); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				op := linClientOp(r, cl, seq, run, keys, m, cp, slaves, home, now)
				ops[cl] = append(ops[cl], op)
				if op.outcome != outOK {
					time.Sleep(20 * time.Millisecond) // ok: backoff after a failure
				}
			}
		}()
	}

	// The nemesis: master kills at random moments of the run, and in
	// between, faults of the proxies.
	end := start.Add(cfg.LinRunFor)
	var kills []time.Time
	for range cfg.LinMasterKills {
		kills = append(kills, start.Add(time.Duration(float64(cfg.LinRunFor)*(0.1+0.7*rng.Float64()))))
	}
	sort.Slice(kills, func(i, j int) bool { return kills[i].Before(kills[j]) })
	for time.Now().Before(end) {
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond) // ok: time between faults
		hold := time.Duration(100+rng.IntN(400)) * time.Millisecond
		switch {
		case len(kills) > 0 && time.Now().After(kills[0]):
			kills = kills[1:]
			m.Kill()
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond) // ok: the master stays down a random while
			m.Start()
			f.masterKills++
		case rng.IntN(8) == 0:
			// A paused master (a long GC pause, a frozen VM): requests
			// hang until the clients give up, or until it goes on.
			m.Stop()
			time.Sleep(hold) // ok: the fault lasts a while
			m.Cont()
			f.masterPauses++
		case rng.IntN(3) == 0:
			cp.ResetPeer(time.Duration(rng.IntN(5)) * time.Millisecond)
			time.Sleep(hold) // ok: the fault lasts a while
			cp.Heal()
			f.resets++
		case rng.IntN(4) == 0:
			// Slow links widen the windows in which operations overlap.
			p := append([]*Proxy{cp}, sp...)[rng.IntN(1+len(sp))]
			p.Latency(time.Duration(5+rng.IntN(40))*time.Millisecond, 5*time.Millisecond)
			time.Sleep(hold) // ok: the fault lasts a while
			p.Heal()
			f.slow++
		default:
			p := sp[rng.IntN(len(sp))]
			if rng.IntN(2) == 0 {
				p.Cut()
			} else {
				p.Blackhole()
			}
			time.Sleep(hold) // ok: the fault lasts a while
			p.Heal()
			f.partitions++
		}
	}
	close(stop)
	wg.Wait()

	// Once all is quiet, the last word on each key, from the master.
	c.WaitConverged(m)
	var final []linOp
	for _, k := range keys {
		call := now()
		r, err := m.Query(linRead, k)
		if err != nil {
			t.Fatalf("final read of %s: %v", k, err)
		}
		final = append(final, linOp{client: clients, kind: opRead, via: "master", key: k, value: readValue(t, r.Values), index: r.Index, call: call, ret: now()})
	}
	ops = append(ops, final)
	if d := checkChecksums(t, c, m); d > 0 {
		f.violations++
	}

	// The order of the applied writes, from hist.
	versions := map[int64]int64{} // value → its position in the log's order
	for _, row := range m.MustQuery(`SELECT rowid, k, v FROM hist ORDER BY rowid`).Values {
		rowid, v := jsonInt(t, row[0]), jsonInt(t, row[2])
		if _, dup := versions[v]; dup {
			t.Errorf("the write of %d was applied twice (hist rowid %d)", v, rowid)
			f.violations++
		}
		versions[v] = rowid
	}

	var history []porcupine.Operation
	var unknown []int // positions in history of writes of unknown outcome
	var last int64
	for _, cops := range ops {
		for _, o := range cops {
			last = max(last, o.ret)
		}
	}
	for _, cops := range ops {
		for _, o := range cops {
			switch {
			case o.kind == opLocalRead:
				continue
			case o.kind == opRead && o.outcome != outOK:
				f.dropped++
				continue
			case o.kind == opWrite && o.outcome == outFailed:
				f.failed++
				if _, applied := versions[o.value]; applied {
					t.Errorf("%v: refused before it was sent (%v), yet applied", o, o.err)
					f.violations++
				}
				continue
			case o.kind == opWrite && o.outcome == outOK:
				if _, applied := versions[o.value]; !applied {
					t.Errorf("%v: acknowledged, but not in the master's hist", o)
					f.violations++
				}
			case o.kind == opWrite && o.status != 0 && o.via == "master":
				if _, applied := versions[o.value]; applied {
					t.Errorf("%v: the master answered an error (%v), yet the write was applied", o, o.err)
					f.violations++
				}
			}
			op := porcupine.Operation{ClientId: o.client, Input: kvInput{Write: o.kind == opWrite, Key: o.key, Value: o.value},
				Call: o.call, Output: o.value, Return: o.ret, Metadata: o.via}
			if o.kind == opWrite {
				op.Output = nil
				if o.outcome == outUnknown {
					// Porcupine's convention: an operation that never
					// returned returns at the end of the history.
					op.Return = last + 1
					f.unknown++
					unknown = append(unknown, len(history))
				}
			}
			history = append(history, op)
		}
	}
	f.ops = len(history)

	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, 2*time.Minute)
	checkTook := time.Since(checkStart)
	if res != porcupine.Ok {
		f.violations++
		path := filepath.Join(os.TempDir(), fmt.Sprintf("walship-porcupine-%d-run%d.html", chaosSeed(t), run))
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			t.Logf("visualization: %v", err)
		}
		t.Errorf("porcupine: %s for %d operations (%d of unknown outcome); the history is drawn in %s", res, len(history), len(unknown), path)
	}

	checked, bad := checkSessions(t, ops, versions)
	f.localReads += checked
	f.sessionViolations += bad
	t.Logf("run %d: %d operations checked in %v (%d writes of unknown outcome, %d failed before sending, %d failed reads left out): %s; %d local reads checked per session, %d violations; %d master kills, %d pauses, %d partitions, %d resets, %d slow links",
		run, len(history), checkTook.Round(time.Millisecond), f.unknown, f.failed, f.dropped, res, checked, bad, f.masterKills, f.masterPauses, f.partitions, f.resets, f.slow)
	return f
}

// linClientOp runs one random operation of client cl and records it.
func linClientOp(r *rand.Rand, cl int, seq int64, run int, keys []string, m *Node, cp *Proxy, slaves []*Node, home *Node, now func() int64) linOp {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o := linOp{client: cl, key: keys[r.IntN(len(keys))]}
	x := r.IntN(100)
	switch {
	case x < 40: // a write
		o.kind = opWrite
		o.value = (int64(run)*100+int64(cl))*10_000_000 + seq
		var (
			res *Result
			err error
		)
		req := Request{Command: "exec", Query: linWrite, Params: []any{o.key, o.value}}
		o.call = now()
		switch y := r.IntN(100); {
		case y < 70:
			o.via = "master"
			res, err = m.DoAt(ctx, m.URL(), req)
		case y < 85:
			o.via = "proxy"
			res, err = m.DoAt(ctx, cp.URL(), req)
		default:
			o.via = home.Name()
			res, err = home.DoAt(ctx, home.URL(), req)
		}
		o.ret = now()
		if err == nil {
			o.index = res.Index
		}
		o.outcome, o.status, o.err = classify(err)
	case x < 60: // a read at the master
		o.kind = opRead
		base := m.URL()
		o.via = "master"
		if r.IntN(4) == 0 {
			base, o.via = cp.URL(), "proxy"
		}
		o.call = now()
		res, err := m.DoAt(ctx, base, Request{Command: "query", Query: linRead, Params: []any{o.key}})
		o.ret = now()
		if err == nil {
			o.value, err = readValueErr(res.Values)
		}
		o.outcome, o.status, o.err = classify(err)
	case x < 80: // a strong read through a slave
		o.kind = opRead
		s := slaves[r.IntN(len(slaves))]
		o.via = s.Name() + " (strong)"
		o.call = now()
		rows, err := s.DBQuery(ctx, "level=strong", linRead, o.key)
		o.ret = now()
		if err == nil {
			o.value, err = readValueErr(rows)
		}
		o.outcome, o.status, o.err = classify(err)
	default: // a local read at the home slave
		o.kind = opLocalRead
		o.via = home.Name()
		o.call = now()
		res, err := home.DoAt(ctx, home.URL(), Request{Command: "query", Query: linRead, Params: []any{o.key}})
		o.ret = now()
		if err == nil {
			o.index = res.Index
			o.value, err = readValueErr(res.Values)
		}
		o.outcome, o.status, o.err = classify(err)
	}
	return o
}

// classify tells what an error says of an operation's effect: none when
// the connection was refused (nothing was sent), unknown otherwise. It
// returns the HTTP status of an error answer.
func classify(err error) (outcome, int, error) {
	if err == nil {
		return outOK, 0, nil
	}
	var se *StatusError
	if errors.As(err, &se) {
		return outUnknown, se.Status, err
	}
	if isRefused(err) {
		return outFailed, 0, err
	}
	return outUnknown, 0, err
}

// readValueErr returns the single value of a read of kv, or 0 for no row.
func readValueErr(values [][]any) (int64, error) {
	switch len(values) {
	case 0:
		return 0, nil
	case 1:
		if len(values[0]) == 1 {
			if n, ok := values[0][0].(json.Number); ok {
				return n.Int64()
			}
		}
	}
	return 0, fmt.Errorf("want one integer or no row, got %v", values)
}

func readValue(t testing.TB, values [][]any) int64 {
	t.Helper()
	v, err := readValueErr(values)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func jsonInt(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("want an integer, got %v", v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// checkSessions checks the local reads of each client's session (ops[c],
// in the order the client ran them) against versions, the position of each
// applied value in the log's order:
//   - a value read exists (0, no row, is position 0);
//   - read-your-writes: a read at an applied index at or past one of the
//     session's acknowledged writes sees that write or a later one;
//   - monotonic reads: the session's reads of a key never go back.
//
// It returns how many reads it checked and how many broke a rule, and
// reports each of those.
func checkSessions(t testing.TB, ops [][]linOp, versions map[int64]int64) (checked, violations int) {
	t.Helper()
	report := func(format string, args ...any) {
		violations++
		if violations <= 20 {
			t.Errorf(format, args...)
		}
	}
	version := func(v int64) (int64, bool) {
		if v == 0 {
			return 0, true
		}
		p, ok := versions[v]
		return p, ok
	}
	for _, cops := range ops {
		type written struct {
			version int64
			index   uint64
			op      linOp
		}
		writes := map[string][]written{}
		seen := map[string]int64{}
		seenBy := map[string]linOp{}
		for _, o := range cops {
			switch {
			case o.kind == opWrite && o.outcome == outOK:
				v, ok := version(o.value)
				if !ok {
					continue // reported as a lost write
				}
				writes[o.key] = append(writes[o.key], written{v, o.index, o})
			case o.kind == opLocalRead && o.outcome == outOK:
				checked++
				v, ok := version(o.value)
				if !ok {
					report("%v: read a value that was never applied", o)
					continue
				}
				for _, w := range writes[o.key] {
					if o.index >= w.index && v < w.version {
						report("read-your-writes: %v, at applied index %d, does not see the session's own %v (hist position %d, it read position %d)",
							o, o.index, w.op, w.version, v)
					}
				}
				if prev, ok := seen[o.key]; ok && v < prev {
					report("monotonic reads: %v (hist position %d) goes back from the session's %v (hist position %d)", o, v, seenBy[o.key], prev)
				}
				if v >= seen[o.key] {
					seen[o.key], seenBy[o.key] = v, o
				}
			}
		}
	}
	return checked, violations
}

// TestLinearizabilityChecker shows that the checks of scenario 3 can fail:
// porcupine rejects a stale read and a lost acknowledged write, and
// accepts a write of unknown outcome seen late; the session check catches
// a read that misses the session's own write and one that goes back.
func TestLinearizabilityChecker(t *testing.T) {
	w := func(c int, v int64, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvInput{Write: true, Key: "a", Value: v}, Call: call, Return: ret}
	}
	r := func(c int, v int64, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvInput{Key: "a"}, Output: v, Call: call, Return: ret}
	}
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{"sequential", []porcupine.Operation{w(0, 1, 0, 10), r(1, 1, 20, 30), w(0, 2, 40, 50), r(1, 2, 60, 70)}, true},
		{"stale read", []porcupine.Operation{w(0, 1, 0, 10), w(0, 2, 20, 30), r(1, 1, 40, 50)}, false},
		{"lost write", []porcupine.Operation{w(0, 1, 0, 10), r(1, 0, 20, 30)}, false},
		{"concurrent read sees either", []porcupine.Operation{w(0, 1, 0, 10), w(0, 2, 20, 40), r(1, 1, 25, 30), r(2, 2, 26, 31)}, true},
		{"unknown write seen late", []porcupine.Operation{w(0, 1, 0, 1<<40), r(1, 0, 20, 30), r(1, 1, 40, 50)}, true},
		{"unknown write seen, then gone", []porcupine.Operation{w(0, 1, 0, 1<<40), r(1, 1, 20, 30), r(1, 0, 40, 50)}, false},
	} {
		if got := porcupine.CheckOperations(kvModel, tc.history); got != tc.want {
			t.Errorf("%s: linearizable %v, want %v", tc.name, got, tc.want)
		}
	}

	versions := map[int64]int64{11: 1, 12: 2, 13: 3}
	for _, tc := range []struct {
		name string
		ops  []linOp
		want int
	}{
		{"fine", []linOp{
			{kind: opWrite, key: "a", value: 12, index: 7},
			{kind: opLocalRead, key: "a", value: 11, index: 6},
			{kind: opLocalRead, key: "a", value: 12, index: 7},
			{kind: opLocalRead, key: "a", value: 13, index: 9},
		}, 0},
		{"misses its own write", []linOp{
			{kind: opWrite, key: "a", value: 12, index: 7},
			{kind: opLocalRead, key: "a", value: 11, index: 7},
		}, 1},
		{"goes back", []linOp{
			{kind: opLocalRead, key: "a", value: 13, index: 9},
			{kind: opLocalRead, key: "a", value: 12, index: 9},
		}, 1},
		{"reads a value never applied", []linOp{
			{kind: opLocalRead, key: "a", value: 99, index: 9},
		}, 1},
	} {
		ft := &fakeTB{TB: t}
		if _, got := checkSessions(ft, [][]linOp{tc.ops}, versions); got != tc.want || len(ft.errs) != tc.want {
			t.Errorf("%s: %d violations (%q), want %d", tc.name, got, ft.errs, tc.want)
		}
	}
}

// fakeTB records errors instead of failing, to test a checker.
type fakeTB struct {
	testing.TB
	errs []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
