package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/slave"
)

// DefaultReadyHeard is how long a slave may go without an answer from its
// master and still be ready: the master answers every long-poll within
// its heartbeat (250ms), so this is a few heartbeats.
const DefaultReadyHeard = 2 * time.Second

// DefaultReadyLag is how many entries a slave may lack of its master's
// log and still be ready.
const DefaultReadyLag = 1000

// Node states reported by walship_node_state: a slave's replication state
// (client.State*), or a master's ("master" while nothing stops its writes).
const stateMaster = "master"

// nodeStates are the values of walship_node_state's label, each reported
// (1 for the node's current state, 0 for the others) so that an alert can
// name one.
var nodeStates = []string{
	client.StateStreaming, client.StateCatchingUp, client.StateDisconnected, client.StateDiverged,
	client.StateStalled, client.StateBootstrapping,
	stateMaster, client.StateHalted, client.StateFenced, client.StateDiskLow,
}

// nodeState returns the node's state: the slave's, or the master's (fenced,
// halted and disk_low before "master", as /log/status says them).
func (s *Server) nodeState() string {
	rl := s.roles()
	if rl.sl != nil {
		return rl.sl.Status().State
	}
	switch {
	case rl.m.Fenced() != nil:
		return client.StateFenced
	case rl.m.Err() != nil:
		return client.StateHalted
	case rl.m.DiskLow() != nil:
		return client.StateDiskLow
	}
	return stateMaster
}

// appendState remembers the master's last failed log append, as seen in
// the answers to writes: the master cannot write while its log refuses
// appends (a full disk, an I/O error), and says so at /readyz until an
// append works again.
type appendState struct {
	mu    sync.Mutex
	err   error
	at    time.Time
	logID string
	last  uint64 // the log's last index when the append failed
}

// execute runs a write on the master and counts the answers whose log
// append failed. Every write the API takes goes through it.
func (s *Server) execute(ctx context.Context, m *master.Master, req db.Request) master.Result {
	res := m.Execute(ctx, req)
	switch {
	case errors.Is(res.Err, master.ErrAppend):
		if s.Metrics != nil {
			s.Metrics.appendFailures.Inc()
		}
		lg := m.Log()
		s.appends.mu.Lock()
		s.appends.err, s.appends.at, s.appends.logID, s.appends.last = res.Err, time.Now(), lg.ID(), lg.LastIndex()
		s.appends.mu.Unlock()
	case res.Err == nil && len(res.Logged) > 0:
		s.appends.mu.Lock()
		s.appends.err = nil
		s.appends.mu.Unlock()
	}
	return res
}

// appendFailure returns why m's last log append failed, nil once an
// append worked since (the log grew: a write, a check marker) or there
// was no failure.
func (s *Server) appendFailure(m *master.Master) error {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	if s.appends.err == nil {
		return nil
	}
	lg := m.Log()
	if lg.ID() != s.appends.logID || lg.LastIndex() > s.appends.last {
		s.appends.err = nil
		return nil
	}
	return fmt.Errorf("the last log append (%s ago) failed: %w", time.Since(s.appends.at).Round(time.Millisecond), s.appends.err)
}

// masterReady says whether the master can write: leader is why it does
// not lead (fenced, or without the failover lease), store why it cannot
// write (halted, disk low, the log refusing appends); nil when it can.
func (s *Server) masterReady(m *master.Master) (leader, store error) {
	leader = m.Leads()
	switch {
	case m.Err() != nil:
		store = fmt.Errorf("%w: %w", master.ErrHalted, m.Err())
	case m.DiskLow() != nil:
		store = m.DiskLow()
	default:
		store = s.appendFailure(m)
	}
	return leader, store
}

// slaveReady says whether the slave serves what it promises: leader is
// why it is not following its master (never heard, or not within
// ReadyHeard), store why its data are not fit to read (diverged, stalled,
// bootstrapping, more than ReadyLag entries behind); nil when it is.
func (s *Server) slaveReady(sl *slave.Slave) (leader, store error) {
	st := sl.Status()
	silent := s.ReadyHeard > 0 && (st.LastHeard.IsZero() || time.Since(st.LastHeard) > s.ReadyHeard)
	switch {
	case !st.Heard && st.Err != "":
		leader = fmt.Errorf("not contacted yet: the master %s does not answer: %s", sl.MasterURL(), st.Err)
	case !st.Heard:
		leader = fmt.Errorf("not contacted yet: no answer from the master %s yet", sl.MasterURL())
	case silent && st.Err != "":
		leader = fmt.Errorf("not contactable: no answer from the master %s for %s%s: %s", sl.MasterURL(),
			time.Since(st.LastHeard).Round(100*time.Millisecond), lastCaughtUp(st), st.Err)
	case silent:
		leader = fmt.Errorf("not contactable: no answer from the master %s for %s%s", sl.MasterURL(),
			time.Since(st.LastHeard).Round(100*time.Millisecond), lastCaughtUp(st))
	}
	applied := sl.DB().AppliedIndex()
	switch st.State {
	case client.StateDiverged:
		return leader, fmt.Errorf("diverged from the master: %s", st.Err)
	case client.StateStalled:
		return leader, fmt.Errorf("stalled: cannot apply the master's entries: %s", st.Err)
	case client.StateBootstrapping:
		return leader, fmt.Errorf("bootstrapping from the master's snapshot (%d of %d bytes)", st.BootstrapDone, st.BootstrapTotal)
	}
	if s.ReadyLag > 0 && st.MasterLast > applied && st.MasterLast-applied > uint64(s.ReadyLag) {
		store = fmt.Errorf("%d entries behind the master (applied %d of %d; ready within %d)",
			st.MasterLast-applied, applied, st.MasterLast, s.ReadyLag)
	}
	return leader, store
}

// lastCaughtUp says when the slave last had all its master had.
func lastCaughtUp(st slave.Status) string {
	if st.LastCaughtUp.IsZero() {
		return " (this slave was never caught up)"
	}
	return " (last caught up " + time.Since(st.LastCaughtUp).Round(100*time.Millisecond).String() + " ago)"
}
