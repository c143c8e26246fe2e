package tests

// Regression tests for what the chaos scenarios found (RELIABILITY.md,
// "Bugs found"), and the smaller checks they rely on.

import (
	"context"
	"strings"
	"testing"
	"time"
)

// heartbeatsToNotice is how long a slave may take to notice that the
// master went silent: the master answers every feed request at least
// every heartbeat (250 ms, DESIGN.md "Replication feed"), so 5 s is 20
// heartbeats missed.
const heartbeatsToNotice = 5 * time.Second

// A slave whose feed is blackholed (a partition: the connection stays open,
// nothing arrives, no error) says so in /log/status within a few missed
// heartbeats, as a slave whose connection is refused does at once.
func TestChaosSilentMasterSlaveDisconnected(t *testing.T) {
	// Regression: the slave kept reporting streaming for 30 s, until its
	// HTTP client's timeout ended the long-poll; the feed now gives up when
	// the answer's headers are 2 s late.
	for _, silence := range []string{"blackhole", "SIGSTOP"} {
		t.Run(silence, func(t *testing.T) {
			c := NewCluster(t)
			m := c.MustRunMaster()
			p := c.NewProxy("slave-1→master", m)
			s := c.MustRunSlave(1, m, Via(p))
			m.MustExec(acksSchema)
			c.WaitConverged(m)
			s.WaitFor("streaming", waitTimeout, func(st *LogStatus) bool { return st.State == "streaming" })
			if silence == "blackhole" {
				p.Blackhole()
			} else {
				m.Stop()
				defer m.Cont()
			}
			start := time.Now()
			s.WaitFor("disconnected from the silent master", heartbeatsToNotice, func(st *LogStatus) bool { return st.State == "disconnected" })
			t.Logf("the slave noticed after %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// A slave cut off from its master by a blackhole refuses a read with
// freshness once it has not been caught up for that long, and serves it
// again once the partition heals: freshness does not trust the state.
func TestChaosBlackholedSlaveRefusesStaleReads(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	p := c.NewProxy("slave-1→master", m)
	s := c.MustRunSlave(1, m, Via(p))
	m.MustExec(acksSchema)
	m.MustExec(`INSERT INTO acks (w, k) VALUES (1, 1)`)
	c.WaitConverged(m)
	ctx := context.Background()
	const fresh = "level=none&freshness=1s"
	waitRead := func(what string, ok func(err error) bool) {
		t.Helper()
		deadline := time.Now().Add(waitTimeout)
		for {
			_, err := s.DBQuery(ctx, fresh, `SELECT count(*) FROM acks`)
			if ok(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("a read with freshness=1s at %s: %s not seen after %v; last error %v", s, what, waitTimeout, err)
			}
			time.Sleep(pollInterval) // ok: poll interval
		}
	}
	waitRead("served", func(err error) bool { return err == nil })

	p.Blackhole()
	cut := time.Now()
	waitRead("refused as stale", func(err error) bool { return err != nil && strings.Contains(err.Error(), "stale read") })
	if d := time.Since(cut); d > heartbeatsToNotice {
		t.Errorf("the stale read was refused only %v after the partition", d)
	}
	// A local read without freshness is still served from what it has.
	if n := s.Count(`SELECT count(*) FROM acks`); n != 1 {
		t.Errorf("the cut-off slave holds %d rows, want 1", n)
	}
	p.Heal()
	waitRead("served again after the partition healed", func(err error) bool { return err == nil })
}
