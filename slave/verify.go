package slave

// This file is the slave's side of replica verification (issue 11). When
// it applies a marker at K (wal.Check), the slave commits its batch at K,
// begins a read transaction there before it applies anything more, and
// hashes that content on a goroutine of its own while it goes on
// applying. When it reaches the result entry of K, it compares the
// master's sums with its own (waiting for its hash if that still runs)
// before it applies the result: on a difference it stops applying and
// enters diverged, naming the parts that differ. A slave without sums of
// its own at K (it restarted or installed a snapshot after K, or could
// not hash) skips the check and counts it.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/durable"
	"github.com/walship/walship/pace"
	"github.com/walship/walship/wal"
)

// MismatchError is the error of a replica check whose sums differ: the
// slave's content at Index is not the master's.
type MismatchError struct {
	// Index is the marker's index: the content compared.
	Index uint64
	// Result is the index of the result entry that carried the master's
	// sums; the slave stopped before it.
	Result uint64
	// Parts names the parts that differ: tables, db.PartSchema,
	// db.PartHeader.
	Parts []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("replica check at index %d (the master's sums are entry %d): this slave's content differs from the master's in %s",
		e.Index, e.Result, strings.Join(e.Parts, ", "))
}

// readTxWait bounds how long applying a marker waits for a read
// connection to hash on; without one the check is skipped.
const readTxWait = 5 * time.Second

// ownCheck is the slave's hash of its content at a marker.
type ownCheck struct {
	index  uint64
	logID  string
	cancel context.CancelFunc
	done   chan struct{} // closed when parts or err is set
	parts  []wal.Part
	err    error
}

// Verification returns the slave's latest replica check and its counts.
func (s *Slave) Verification() db.Verification {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.verification
	if out.Last != nil {
		last := *out.Last
		out.Last = &last
	}
	return out
}

// applyChecked applies entries as db.Apply does, splitting them at check
// entries: a marker ends a SQLite transaction, and its content is hashed
// (startCheck); a result is compared (compare) before it is applied.
func (s *Slave) applyChecked(logID string, entries []*wal.Entry) error {
	s.mu.Lock()
	if oc := s.check; oc != nil && (s.db.AppliedIndex() != s.checkThrough || s.db.LogID() != oc.logID) {
		// The database was replaced (a snapshot installed): the sums of
		// the old one say nothing of it.
		oc.cancel()
		s.check = nil
	}
	s.mu.Unlock()
	for len(entries) > 0 {
		first := entries[0]
		if first.Check != nil && !first.Check.IsMarker() {
			if err := s.compare(first); err != nil {
				return err
			}
		}
		// The run up to the next check entry: a marker ends it, a result
		// starts the next one.
		n := 1
		for !entries[n-1].Check.IsMarker() && n < len(entries) {
			if c := entries[n].Check; c != nil && !c.IsMarker() {
				break
			}
			n++
		}
		if err := s.db.Apply(logID, entries[:n]); err != nil {
			return err
		}
		last := entries[n-1]
		s.mu.Lock()
		s.checkThrough = last.Index
		s.mu.Unlock()
		if last.Check.IsMarker() {
			s.startCheck(last.Index)
		}
		entries = entries[n:]
	}
	return nil
}

// startCheck begins a read transaction at the marker just applied and
// hashes it in the background. A check of an earlier marker that still
// runs is stopped: its result can no longer come (the master appends a
// marker only after the result of the one before, if any).
func (s *Slave) startCheck(index uint64) {
	s.mu.Lock()
	if s.check != nil {
		s.check.cancel()
		s.check = nil
	}
	s.mu.Unlock()
	wctx, wcancel := context.WithTimeout(s.ctx, readTxWait)
	rt, err := s.db.ReadTx(wctx)
	wcancel()
	if err != nil {
		s.cfg.Logger.Warn("verification: no read connection to hash the content at a marker; its check is skipped", "index", index, "err", err)
		return
	}
	rt.Pace = pace.New(s.cfg.CheckCPU).Pace
	pos, err := rt.Begin()
	if err == nil && pos.Index != index {
		err = fmt.Errorf("the read transaction is at index %d", pos.Index)
	}
	if err != nil {
		_ = rt.Close()
		s.cfg.Logger.Warn("verification: cannot hash the content at a marker; its check is skipped", "index", index, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	oc := &ownCheck{index: index, logID: pos.LogID, cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.check = oc
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(oc.done)
		defer cancel()
		sum, err := rt.Checksum(ctx)
		if cerr := rt.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			oc.parts, err = sum.Parts()
		}
		oc.err = err
	}()
}

// compare compares the master's sums in result entry e with the slave's
// own at the same marker, and records the check. A difference is an error
// wrapping ErrDiverged and a *MismatchError; the slave enters diverged.
func (s *Slave) compare(e *wal.Entry) error {
	of := e.Check.Of
	s.mu.Lock()
	oc := s.check
	if oc != nil && oc.index == of {
		s.check = nil
	}
	s.mu.Unlock()
	r := db.CheckResult{Index: of, ResultIndex: e.Index}
	switch {
	case oc == nil || oc.index != of:
		r.Outcome, r.Err = db.CheckSkipped, "no sums of this slave's own at the marker (it restarted, or installed a snapshot, after it)"
	default:
		select {
		case <-oc.done:
		case <-s.ctx.Done():
			oc.cancel()
			return s.ctx.Err()
		}
		if oc.err != nil {
			r.Outcome, r.Err = db.CheckSkipped, "hashing this slave's content failed: "+oc.err.Error()
			break
		}
		if r.Differs = db.DiffParts(e.Check.Parts, oc.parts); len(r.Differs) == 0 {
			r.Outcome = db.CheckOK
		} else {
			r.Outcome = db.CheckMismatch
		}
	}
	r.Time = s.cfg.Now()
	s.mu.Lock()
	s.verification.Record(r)
	s.mu.Unlock()
	switch r.Outcome {
	case db.CheckOK:
		s.cfg.Logger.Info("verification: the content at the marker is the master's", "index", of, "parts", len(oc.parts))
	case db.CheckSkipped:
		s.cfg.Logger.Info("verification: check skipped", "index", of, "reason", r.Err)
	case db.CheckMismatch:
		err := &MismatchError{Index: of, Result: e.Index, Parts: r.Differs}
		s.setState(client.StateDiverged, err)
		// Kept across a restart: the log still matches, so a restarted
		// slave would apply on, over content that differs.
		if werr := markDiverged(filepath.Dir(s.db.Path()), err); werr != nil {
			s.cfg.Logger.Error("verification: could not record the mismatch in the data directory", "err", werr)
		}
		return fmt.Errorf("%w: %w", ErrDiverged, err)
	}
	return nil
}

// divergedFile, in a slave's data directory, records a replica check that
// found its content different from the master's: the slave stays diverged
// across restarts until it is rebuilt (its data directory emptied).
const divergedFile = "diverged.txt"

// markDiverged records err in dir's divergedFile, durably.
func markDiverged(dir string, err error) error {
	path := filepath.Join(dir, divergedFile)
	msg := fmt.Sprintf("%s: %v\n", time.Now().UTC().Format(time.RFC3339), err)
	return durable.WriteFile(path, []byte(msg), 0o644)
}

// diverged returns the mismatch recorded in dir, nil when there is none.
func diverged(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, divergedFile))
	if err != nil {
		return nil
	}
	return fmt.Errorf("%w: %s (recorded in %s; rebuild this slave: stop it, empty its data directory, start it)",
		ErrDiverged, strings.TrimSpace(string(b)), filepath.Join(dir, divergedFile))
}
