package master

// This file is the master's side of replica verification (issue 11): it
// appends check entries (wal.Check) to the log, a marker at K and, once
// its content at K is hashed, the result entry with the sums, which every
// slave compares with its own.
//
// Hashing a large database takes seconds, so neither the writer nor a
// slave's apply loop waits for it. The verifier goroutine takes a read
// connection, asks the writer to append a marker and to begin a read
// transaction on that connection before anything else commits (so it
// reads the content at exactly K), hashes in that transaction while the
// writer goes on, and asks the writer to append the result. One check
// runs at a time: a marker that falls due meanwhile is skipped, an
// on-demand one (Verify) waits for its turn.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/pace"
	"github.com/walship/walship/wal"
)

// ErrNoCheck is returned by WaitVerified for an index that is not the
// marker of a check this master knows of (it keeps the latest few).
var ErrNoCheck = errors.New("no such check")

// keptChecks is how many ended checks the master keeps for WaitVerified.
const keptChecks = 16

// verifier is the master's verification state. The writer alone writes
// lastMarker; the fields under mu are shared.
type verifier struct {
	// due wakes the verifier goroutine for a marker that fell due (the
	// writer sends without waiting); asks carries on-demand requests.
	due  chan struct{}
	asks chan chan askAnswer
	// toWriter carries the check entries the verifier asks the writer to
	// append.
	toWriter chan *checkAppend
	// busy is set while a check runs, from its marker's request to its
	// result.
	busy atomic.Bool
	// pending is set when a marker fell due while busy: it runs once the
	// verifier is free.
	pending atomic.Bool
	// lastMarker is the index from which the next marker is counted:
	// written by the writer, read by the verifier too.
	lastMarker atomic.Uint64
	// hashHook, if set (tests), runs after a marker is appended, before
	// its content is hashed.
	hashHook func(marker uint64)

	mu      sync.Mutex
	running uint64           // the marker of the check that runs; 0 if none
	ended   []db.CheckResult // the latest checks that ended, oldest first
	changed chan struct{}    // closed and replaced when a check ends
	status  db.Verification
}

// askAnswer is the answer to an on-demand request: the marker's index.
type askAnswer struct {
	index uint64
	err   error
}

// checkAppend asks the writer to append a check entry; with rt, the
// writer begins rt right after it commits the entry. done receives the
// entry's index.
type checkAppend struct {
	check *wal.Check
	rt    *db.ReadTx
	// logID, for a result, is the history its marker is in: a load since
	// then started another, where the result means nothing.
	logID string
	done  chan askAnswer
}

func (v *verifier) init(last uint64) {
	v.due = make(chan struct{}, 1)
	v.asks = make(chan chan askAnswer)
	v.toWriter = make(chan *checkAppend)
	v.changed = make(chan struct{})
	v.lastMarker.Store(last)
}

// Verify asks for a check of the content now: a marker is appended as
// soon as no other check runs. It returns the marker's index; the check's
// result follows (WaitVerified).
func (m *Master) Verify(ctx context.Context) (uint64, error) {
	ch := make(chan askAnswer, 1)
	select {
	case m.v.asks <- ch:
	case <-m.done:
		return 0, ErrStopped
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case a := <-ch:
		return a.index, a.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// WaitVerified waits until the check of the marker at index has ended and
// returns it, with the master's sums when it was recorded. The error
// wraps ErrNoCheck when the master knows no such check.
func (m *Master) WaitVerified(ctx context.Context, index uint64) (db.CheckResult, error) {
	for {
		m.v.mu.Lock()
		ch, running := m.v.changed, m.v.running
		for _, r := range m.v.ended {
			if r.Index == index {
				m.v.mu.Unlock()
				if r.Outcome != db.CheckRecorded {
					return r, fmt.Errorf("the check at index %d %s: %s", index, r.Outcome, r.Err)
				}
				return r, nil
			}
		}
		m.v.mu.Unlock()
		if running != index {
			return db.CheckResult{}, fmt.Errorf("%w: index %d is not the marker of a running or recent check", ErrNoCheck, index)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return db.CheckResult{}, fmt.Errorf("the check at index %d is still running: %w", index, ctx.Err())
		}
	}
}

// Verification returns the master's latest check and its counts.
func (m *Master) Verification() db.Verification {
	m.v.mu.Lock()
	defer m.v.mu.Unlock()
	out := m.v.status
	if out.Last != nil {
		last := *out.Last
		out.Last = &last
	}
	return out
}

// markerDue is called by the writer after each commit: it wakes the
// verifier when VerifyEvery entries were appended since the last marker,
// and skips the marker when a check still runs.
func (m *Master) markerDue() {
	every := m.cfg.VerifyEvery
	last := m.log.LastIndex()
	if every == 0 || last < m.v.lastMarker.Load()+every {
		return
	}
	if m.v.busy.Load() {
		// The verifier runs one check at a time, and rests after one:
		// it takes this marker once it is free.
		if !m.v.pending.Swap(true) {
			m.cfg.Logger.Debug("verification: a marker is due, but a check still runs or the verifier rests; it follows", "index", last)
			m.v.mu.Lock()
			m.v.status.Record(db.CheckResult{Index: last, Outcome: db.CheckSkipped, Time: m.cfg.Now(),
				Err: "a check was still running"})
			m.v.mu.Unlock()
		}
		return
	}
	m.v.lastMarker.Store(last)
	select {
	case m.v.due <- struct{}{}:
	default:
	}
}

// appendCheck appends one check entry for the writer, alone, and begins
// a.rt right after it committed, before anything else can. A failure of
// SQLite's commit halts the master, as it does for writes.
func (m *Master) appendCheck(a *checkAppend) {
	if err := m.Err(); err != nil {
		a.done <- askAnswer{err: m.haltedErr()}
		return
	}
	if a.logID != "" && a.logID != m.log.ID() {
		a.done <- askAnswer{err: fmt.Errorf("a load started a new history (log %s) since the marker: the check is dropped", m.log.ID())}
		return
	}
	tx, err := m.db.Begin()
	if err != nil {
		a.done <- askAnswer{err: fmt.Errorf("begin: %w", err)}
		return
	}
	index := m.log.LastIndex() + 1
	e := &wal.Entry{Index: index, Epoch: m.log.Epoch(), Time: m.cfg.Now().UnixMilli(), Check: a.check}
	if err := m.log.Append([]*wal.Entry{e}); err != nil {
		_ = tx.Rollback()
		m.failures.Log(m.cfg.Logger, slog.LevelError, "append", "log append of a check entry failed", "err", err)
		a.done <- askAnswer{err: fmt.Errorf("%w: %w", ErrAppend, err)}
		return
	}
	if err := tx.Commit(m.log.ID(), index); err != nil {
		m.publish()
		m.halt(fmt.Errorf("commit SQLite after the log append of check entry %d: %w", index, err))
		a.done <- askAnswer{err: m.haltedErr()}
		return
	}
	if a.check.IsMarker() {
		m.v.lastMarker.Store(index)
	}
	var perr error
	if a.rt != nil {
		// Nothing commits between the marker and this: the writer is here.
		pos, err := a.rt.Begin()
		switch {
		case err != nil:
			perr = err
		case pos.Index != index:
			perr = fmt.Errorf("the read transaction is at index %d, the marker at %d", pos.Index, index)
		}
	}
	m.publish()
	a.done <- askAnswer{index: index, err: perr}
}

// verifyLoop is the verifier goroutine: it runs one check at a time, when
// a marker falls due or is asked for, until the master stops.
func (m *Master) verifyLoop() {
	var asked []chan askAnswer // asked for while the verifier rested
	for {
		if len(asked) == 0 {
			select {
			case <-m.ctx.Done():
				return
			case <-m.done:
				return
			case <-m.v.due:
			case ch := <-m.v.asks:
				asked = append(asked, ch)
			}
		}
		m.v.busy.Store(true)
		// Every request that came meanwhile gets the same marker.
	more:
		for {
			select {
			case ch := <-m.v.asks:
				asked = append(asked, ch)
			default:
				break more
			}
		}
		started := time.Now()
		m.runCheck(asked)
		asked = nil
		// Automatic checks take at most a quarter of the time: after one,
		// the verifier rests three times as long as it took (markers due
		// meanwhile are skipped), so that with a large database and many
		// writes they do not run back to back. An asked-for check runs at
		// once.
		rest := time.NewTimer(3 * time.Since(started))
		select {
		case <-m.ctx.Done():
			rest.Stop()
			return
		case <-m.done:
			rest.Stop()
			return
		case <-rest.C:
		case ch := <-m.v.asks:
			rest.Stop()
			asked = append(asked, ch)
		}
		// A marker signalled before now is stale; one that fell due while
		// the verifier was busy runs now.
		select {
		case <-m.v.due:
		default:
		}
		m.v.busy.Store(false)
		// Counted from the marker of the check just done.
		if m.v.pending.Swap(false) && m.cfg.VerifyEvery > 0 && m.log.LastIndex() >= m.v.lastMarker.Load()+m.cfg.VerifyEvery {
			select {
			case m.v.due <- struct{}{}:
			default:
			}
		}
	}
}

// VerifyBusy reports whether a replica check runs, or is due and waits
// for the verifier's rest to end.
func (m *Master) VerifyBusy() bool { return m.v.busy.Load() || m.v.pending.Load() }

// runCheck runs one check: marker, hash, result. It answers the on-demand
// requests once the marker is appended.
func (m *Master) runCheck(asked []chan askAnswer) {
	answer := func(a askAnswer) {
		for _, ch := range asked {
			ch <- a
		}
	}
	rt, err := m.db.ReadTx(m.ctx)
	if err == nil {
		rt.Pace = pace.New(m.cfg.CheckCPU).Pace
	}
	if err != nil {
		answer(askAnswer{err: fmt.Errorf("verify: %w", err)})
		return
	}
	defer rt.Close()
	logID := m.log.ID()
	marker, err := m.toWriter(&wal.Check{}, rt, "")
	if err != nil {
		if marker != 0 {
			m.ended(db.CheckResult{Index: marker, Outcome: db.CheckFailed, Time: m.cfg.Now(), Err: err.Error()})
		}
		m.cfg.Logger.Warn("verification: appending a marker failed", "err", err)
		answer(askAnswer{err: fmt.Errorf("verify: %w", err)})
		return
	}
	m.v.mu.Lock()
	m.v.running = marker
	m.v.mu.Unlock()
	answer(askAnswer{index: marker})
	if m.v.hashHook != nil {
		m.v.hashHook(marker)
	}
	started := time.Now()
	sum, err := rt.Checksum(m.ctx)
	_ = rt.Close() // let the WAL be checkpointed past the marker
	var parts []wal.Part
	if err == nil {
		parts, err = sum.Parts()
	}
	if err != nil {
		if m.ctx.Err() == nil {
			m.cfg.Logger.Warn("verification: hashing the content failed", "index", marker, "err", err)
		}
		m.ended(db.CheckResult{Index: marker, Outcome: db.CheckFailed, Time: m.cfg.Now(), Err: err.Error()})
		return
	}
	result, err := m.toWriter(&wal.Check{Of: marker, Parts: parts}, nil, logID)
	if err != nil {
		if m.ctx.Err() == nil {
			m.cfg.Logger.Warn("verification: appending the result failed", "index", marker, "err", err)
		}
		m.ended(db.CheckResult{Index: marker, Outcome: db.CheckFailed, Time: m.cfg.Now(), Err: err.Error()})
		return
	}
	m.cfg.Logger.Info("verification: content hashed", "index", marker, "result_index", result, "parts", len(parts),
		"took", time.Since(started).Round(time.Millisecond))
	m.ended(db.CheckResult{Index: marker, ResultIndex: result, Outcome: db.CheckRecorded, Parts: parts, Time: m.cfg.Now()})
}

// toWriter asks the writer to append a check entry and returns its index.
func (m *Master) toWriter(c *wal.Check, rt *db.ReadTx, logID string) (uint64, error) {
	a := &checkAppend{check: c, rt: rt, logID: logID, done: make(chan askAnswer, 1)}
	select {
	case m.v.toWriter <- a:
	case <-m.done:
		return 0, ErrStopped
	case <-m.ctx.Done():
		return 0, ErrStopped
	}
	r := <-a.done // the writer always answers what it took
	return r.index, r.err
}

// ended records a check that ended and wakes WaitVerified.
func (m *Master) ended(r db.CheckResult) {
	m.v.mu.Lock()
	defer m.v.mu.Unlock()
	if m.v.running == r.Index {
		m.v.running = 0
	}
	m.v.ended = append(m.v.ended, r)
	if len(m.v.ended) > keptChecks {
		m.v.ended = m.v.ended[1:]
	}
	m.v.status.Record(r)
	close(m.v.changed)
	m.v.changed = make(chan struct{})
}
