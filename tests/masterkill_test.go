package tests

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMasterKilledUnderLoad kills the master while 8 writers write (6 to
// the master, one through each slave) and restarts it on the same address
// and data while they go on. Every acknowledged write is there exactly
// once, no write is there twice, and both slaves hold the master's content.
func TestMasterKilledUnderLoad(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)

	m.MustExec(`CREATE TABLE acks (w INTEGER NOT NULL, k INTEGER NOT NULL)`) // no unique constraint: duplicates stay visible
	c.WaitConverged(m)

	const writers = 8
	targets := [writers]*Node{m, m, m, m, m, m, s1, s2}
	var (
		acked   [writers][]int // writer w's acknowledged k values; owned by w until wg.Wait
		failed  [writers]int
		pending atomic.Int64
		total   atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				r, err := targets[w].Exec(`INSERT INTO acks (w, k) VALUES (?, ?)`, w, k)
				if err != nil {
					failed[w]++
					time.Sleep(5 * time.Millisecond) // ok: poll interval (backoff while the master is down)
					continue
				}
				if r.Pending {
					pending.Add(1)
				}
				acked[w] = append(acked[w], k)
				total.Add(1)
			}
		}()
	}

	// waitAcks waits until n writes were acknowledged in all.
	waitAcks := func(n int64, when string) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for total.Load() < n {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: only %d of %d writes acknowledged after %v; failures per writer %v", when, total.Load(), n, waitTimeout, failed)
			}
			time.Sleep(time.Millisecond) // ok: poll interval
		}
	}

	// Kill the master once the load is well under way, and restart it
	// while the writers go on.
	waitAcks(300, "before the kill")
	m.Kill()
	killedAt := total.Load()
	m.Start()
	restartedAt := total.Load()
	waitAcks(restartedAt+200, "after the restart")
	close(stop)
	wg.Wait()
	t.Logf("killed the master after %d acknowledged writes, restarted it after %d; %d in all (%d pending); failures per writer %v",
		killedAt, restartedAt, total.Load(), pending.Load(), failed)

	counts := map[[2]int]int{}
	for _, row := range m.MustQuery(`SELECT w, k, count(*) FROM acks GROUP BY w, k`).Values {
		var key [2]int
		var n int
		for i, p := range []*int{&key[0], &key[1], &n} {
			num, _ := row[i].(json.Number)
			v, err := num.Int64()
			if err != nil {
				t.Fatalf("row %v: %v", row, err)
			}
			*p = int(v)
		}
		counts[key] = n
		if n > 1 {
			t.Errorf("write w=%d k=%d is on the master %d times", key[0], key[1], n)
		}
	}
	lost := 0
	for w := range writers {
		for _, k := range acked[w] {
			if counts[[2]int{w, k}] != 1 {
				lost++
				if lost <= 10 {
					t.Errorf("acknowledged write w=%d k=%d (via %s) is on the master %d times", w, k, targets[w].Name(), counts[[2]int{w, k}])
				}
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes are not on the master exactly once", lost)
	}

	last := c.WaitConverged(m)
	const q = `SELECT rowid, w, k FROM acks ORDER BY rowid`
	want := m.Dump(q)
	for _, s := range []*Node{s1, s2} {
		if got := s.Dump(q); got != want {
			t.Errorf("%s differs from the master at index %d:\nmaster: %.3000s\n%s: %.3000s", s, last, want, s.Name(), got)
		}
	}
	mst := m.MustLogStatus()
	for _, s := range []*Node{s1, s2} {
		if st := s.MustLogStatus(); st.LogID != mst.LogID {
			t.Errorf("%s follows log %s, the master's is %s", s, st.LogID, mst.LogID)
		}
	}
}
