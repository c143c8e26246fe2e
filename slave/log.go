package slave

import (
	"context"
	"fmt"
	"time"

	"github.com/walship/walship/feed"
	"github.com/walship/walship/retention"
	"github.com/walship/walship/wal"
)

// The slave's own log (Config.Log) holds what its database holds and at
// most a few entries more: every entry is appended to it, fsynced, before
// SQLite applies it. Entries the log holds beyond the database (a crash
// or a failed apply in between) are applied at Open, or skipped when the
// feed sends them again.

// openLog brings the log and the database in line at Open: a log that
// does not cover the database (none before, another history, a gap) starts
// again after the database's applied index; entries it holds beyond it are
// applied.
func (s *Slave) openLog() error {
	lg := s.log
	logID, applied := s.db.LogID(), s.db.AppliedIndex()
	if logID == "" {
		if applied == 0 && lg.FirstIndex() == 1 && lg.LastIndex() >= 1 {
			return s.replayLog(lg.ID())
		}
		return nil // the first entries or the bootstrap set its history
	}
	if lg.ID() != logID || lg.LastIndex() < applied || lg.FirstIndex() > applied+1 {
		if lg.LastIndex() >= lg.FirstIndex() {
			s.cfg.Logger.Warn("the slave's log does not cover its database; it starts again after the applied index",
				"log_id", lg.ID(), "first_index", lg.FirstIndex(), "last_index", lg.LastIndex(),
				"database_log_id", logID, "applied_index", applied)
		}
		if err := lg.Restart(logID, applied+1); err != nil {
			return fmt.Errorf("slave: start its log after index %d: %w", applied, err)
		}
		return nil
	}
	if err := s.replayLog(logID); err != nil {
		return err
	}
	// The epoch of the last entry applied, from the log: the first feed
	// request carries it, so that a node whose history differs (a master
	// that was replaced, and restarted as its slave) is told at once.
	applied = s.db.AppliedIndex()
	if epoch, err := lg.EntryEpoch(applied); err == nil && applied > 0 {
		s.appliedIndex, s.lastEpoch, s.knowsEpoch = applied, epoch, true
	}
	return nil
}

// replayLog applies the log's entries after the database's applied index.
func (s *Slave) replayLog(logID string) error {
	last := s.log.LastIndex()
	for next := s.db.AppliedIndex() + 1; next <= last; {
		entries, err := s.log.Read(next, 1000, 16<<20)
		if err != nil {
			return fmt.Errorf("slave: apply its log: %w", err)
		}
		if err := s.db.Apply(logID, entries); err != nil {
			return fmt.Errorf("slave: apply its log from %d: %w", next, err)
		}
		next = entries[len(entries)-1].Index + 1
	}
	if last > 0 {
		s.cfg.Logger.Info("applied the entries its log held", "applied_index", s.db.AppliedIndex())
	}
	return nil
}

// keep appends entries of log logID to the slave's log, fsynced, before
// they are applied. Entries it holds already (sent again after a failed
// apply) are skipped when they are the same; a log of another history, or
// with a gap, starts again at the first entry.
func (s *Slave) keep(logID string, entries []*wal.Entry) error {
	lg := s.log
	if lg == nil {
		return nil
	}
	first := entries[0].Index
	restart := lg.ID() != logID || first > lg.LastIndex()+1 || first < lg.FirstIndex()
	if !restart && first <= lg.LastIndex() {
		// Held already: the same entries, unless another master sent
		// them (a promotion). The log's tail beyond the database was
		// never applied, so it may go.
		n := int(min(lg.LastIndex()-first+1, uint64(len(entries))))
		epoch, err := lg.EntryEpoch(entries[n-1].Index)
		if err != nil {
			return fmt.Errorf("slave: its log: %w", err)
		}
		if epoch != entries[n-1].Epoch {
			restart = true
		} else {
			entries = entries[n:]
		}
	}
	if restart {
		if err := lg.Restart(logID, first); err != nil {
			return fmt.Errorf("slave: start its log at %d: %w", first, err)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	if err := lg.Append(entries); err != nil {
		return fmt.Errorf("slave: append to its log: %w", err)
	}
	if e := entries[len(entries)-1].Epoch; e > lg.Epoch() {
		if err := lg.SetEpoch(e); err != nil {
			return fmt.Errorf("slave: its log: %w", err)
		}
	}
	return nil
}

// received is the last index the slave holds fsynced in its log, 0
// without one.
func (s *Slave) received() uint64 {
	if s.log == nil {
		return 0
	}
	return s.log.LastIndex()
}

// FeedServer returns the feed of the slave's log, nil when it keeps none.
func (s *Slave) FeedServer() *feed.Feed { return s.feed }

// Log returns the slave's log, nil when it keeps none.
func (s *Slave) Log() *wal.Log { return s.log }

// Retention returns the bounds the slave keeps its log within; the zero
// Policy when it does not bound it (no log, no cap, or no snapshots).
func (s *Slave) Retention() retention.Policy {
	if s.log == nil || s.cfg.Snapshots == nil || !s.cfg.Retention.Bounds() {
		return retention.Policy{}
	}
	return s.cfg.Retention
}

// compactLoop bounds the slave's log by Config.Retention every
// CompactEvery, until Close.
func (s *Slave) compactLoop() {
	t := time.NewTicker(s.cfg.CompactEvery)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		res, err := s.Compact(s.ctx)
		switch {
		case err != nil && err.Error() != lastErr:
			s.cfg.Logger.Warn("log compaction failed; retrying", "err", err)
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
			if res.Removed > 0 {
				s.cfg.Logger.Info("log compacted", "first_index", res.First, "removed_segments", res.Removed,
					"snapshot_index", res.Snapshot)
			}
		}
	}
}

// Compact removes the oldest segments of the slave's log beyond its
// retention, once a snapshot of its database covers them (one is taken
// when needed): a slave that follows this one and still needs them
// bootstraps from that snapshot.
func (s *Slave) Compact(ctx context.Context) (retention.Result, error) {
	if s.log == nil {
		return retention.Result{}, nil
	}
	return s.cfg.Retention.Compact(ctx, s.log, s.db, s.cfg.Snapshots, s.cfg.Now(), nil)
}
