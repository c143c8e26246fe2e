package master

import (
	"context"
	"fmt"
	"time"
)

// MaxSealedSegments caps the log's sealed segment files: each is an open
// file and a memory mapping, and a master that seals on time (--archive
// --archive-every) at a low write rate would otherwise keep one small file
// a minute for as long as its retention lasts, until it ran out of file
// descriptors or mappings. The oldest beyond the cap go as if beyond the
// retention (once a snapshot covers them, and the archive holds them).
const MaxSealedSegments = 512

// compacts reports whether the master bounds its log.
func (m *Master) compacts() bool {
	c := m.cfg
	return c.Snapshots != nil && (c.RetainEntries > 0 || c.RetainBytes > 0 || c.RetainFor > 0)
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
type CompactResult struct {
	First    uint64 // the log's first index after it
	Removed  int    // segments removed
	Snapshot uint64 // the snapshot that covers what was removed
}

// Compact removes the oldest sealed log segments whose entries are all
// beyond the retention (Config.RetainEntries, RetainBytes, RetainFor),
// taking a snapshot first when the latest does not cover them: a snapshot
// at the master's applied index, so that what is removed never goes past
// what SQLite holds. With an archive, it runs an archive round first and
// removes only what the archive holds.
func (m *Master) Compact(ctx context.Context) (CompactResult, error) {
	m.maintain.Lock()
	defer m.maintain.Unlock()
	res := CompactResult{First: m.log.FirstIndex()}
	if !m.compacts() {
		return res, nil
	}
	segs := m.log.Sealed()
	if len(segs) == 0 {
		return res, nil
	}
	last := m.log.LastIndex()
	total := m.log.Size()
	var cut uint64 // remove the segments that end before it
	now := m.cfg.Now()
	for i, s := range segs {
		beyond := false
		if len(segs)-i > MaxSealedSegments {
			beyond = true // too many files: see MaxSealedSegments
		}
		if n := m.cfg.RetainEntries; n > 0 && last-s.Last >= n {
			beyond = true // all its entries are older than the newest n
		}
		if b := m.cfg.RetainBytes; b > 0 && total-s.Size >= b {
			beyond = true // the newer files alone hold the bytes to keep
		}
		if d := m.cfg.RetainFor; d > 0 {
			entries, err := m.log.Read(s.Last, 1, 0)
			if err != nil {
				return res, fmt.Errorf("compact: %w", err)
			}
			if len(entries) == 1 && now.Sub(time.UnixMilli(entries[0].Time)) > d {
				beyond = true
			}
		}
		if !beyond {
			break
		}
		cut = s.Last + 1
		total -= s.Size
	}
	if cut == 0 {
		return res, nil
	}
	info, err := m.cfg.Snapshots.Latest()
	if err != nil || info.LogID != m.log.ID() || info.Index+1 < cut {
		if info, err = m.cfg.Snapshots.Make(ctx, m.db); err != nil {
			return res, fmt.Errorf("compact: %w", err)
		}
	}
	res.Snapshot = info.Index
	cut = min(cut, info.Index+1)
	if m.cfg.Archive != nil {
		// Archive first, then remove: a segment leaves the log only once
		// the archive holds it (or a snapshot after it). A failing
		// archive is recorded and logged by the round; the cut waits.
		_ = m.archiveRound(ctx)
		cut = min(cut, m.archivedThrough()+1)
	}
	before := len(segs)
	first, err := m.log.Truncate(cut)
	res.First, res.Removed = first, before-len(m.log.Sealed())
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	return res, nil
}
