package master

import (
	"context"
	"time"

	"github.com/walship/walship/retention"
)

// MaxSealedSegments caps the log's sealed segment files
// (retention.MaxSealedSegments).
const MaxSealedSegments = retention.MaxSealedSegments

// policy is the master's log retention.
func (m *Master) policy() retention.Policy {
	return retention.Policy{Entries: m.cfg.RetainEntries, Bytes: m.cfg.RetainBytes, For: m.cfg.RetainFor}
}

// compacts reports whether the master bounds its log.
func (m *Master) compacts() bool {
	return m.cfg.Snapshots != nil && m.policy().Bounds()
}

// Retention returns the bounds the master keeps its log within; the zero
// Policy when it does not bound it (no cap, or no snapshots to cover what
// it would remove).
func (m *Master) Retention() retention.Policy {
	if !m.compacts() {
		return retention.Policy{}
	}
	return m.policy()
}

// compactLoop checks the log against the retention every CompactEvery,
// until Close.
func (m *Master) compactLoop() {
	t := time.NewTicker(m.cfg.CompactEvery)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		res, err := m.Compact(m.ctx)
		switch {
		case err != nil && err.Error() != lastErr:
			// Once per kind of failure, not at every tick.
			m.cfg.Logger.Warn("log compaction failed; retrying", "err", err)
			lastErr = err.Error()
		case err == nil:
			lastErr = ""
			if res.Removed > 0 {
				m.cfg.Logger.Info("log compacted", "first_index", res.First, "removed_segments", res.Removed,
					"snapshot_index", res.Snapshot)
			}
		}
	}
}

// CompactResult is what a compaction did.
type CompactResult = retention.Result

// Compact removes the oldest sealed log segments whose entries are all
// beyond the retention (Config.RetainEntries, RetainBytes, RetainFor),
// taking a snapshot first when the latest does not cover them: a snapshot
// at the master's applied index, so that what is removed never goes past
// what SQLite holds. With an archive, it runs an archive round first and
// removes only what the archive holds.
func (m *Master) Compact(ctx context.Context) (CompactResult, error) {
	m.maintain.Lock()
	defer m.maintain.Unlock()
	var limit func(uint64) uint64
	if m.cfg.Archive != nil {
		// Archive first, then remove: a segment leaves the log only once
		// the archive holds it (or a snapshot after it). A failing
		// archive is recorded and logged by the round; the cut waits.
		limit = func(uint64) uint64 {
			_ = m.archiveRound(ctx)
			return m.archivedThrough() + 1
		}
	}
	return m.policy().Compact(ctx, m.log, m.db, m.cfg.Snapshots, m.cfg.Now(), limit)
}
