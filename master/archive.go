package master

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/walship/walship/snapshot"
)

// Defaults of the archive's settings (Config).
const (
	// DefaultArchiveEvery bounds how long an entry may wait in the log's
	// active segment before it is sealed and archived.
	DefaultArchiveEvery = time.Minute
	// DefaultArchiveSnapshotEntries is how far (in entries) the archive's
	// newest snapshot may lag the applied index before the master takes
	// one for it: a restore replays at most about this many entries (a
	// few seconds: a node replays some 400,000 entries a second,
	// BENCHMARKS.md), and a snapshot is taken no more often than writes
	// make this many.
	DefaultArchiveSnapshotEntries = 1_000_000
)

// ArchiveStatus is where the master's archive stands.
type ArchiveStatus struct {
	Dir string
	// Index: the log's entries up to it are in the archive (or before
	// the archive's oldest snapshot of this log); compaction removes
	// nothing after it. 0 until the first copy.
	Index uint64
	// SnapshotIndex is the index of the archive's newest snapshot of the
	// master's log; HasSnapshot says whether it has one.
	SnapshotIndex uint64
	HasSnapshot   bool
	// Err is why the last round failed, nil when it worked; FailingSince
	// is when the failures began.
	Err          error
	FailingSince time.Time
	// LastOK is when a round last worked.
	LastOK time.Time
}

// ArchiveStatus returns where the archive stands; false without one.
func (m *Master) ArchiveStatus() (ArchiveStatus, bool) {
	if m.cfg.Archive == nil {
		return ArchiveStatus{}, false
	}
	m.archMu.Lock()
	defer m.archMu.Unlock()
	return m.archive, true
}

// archivedThrough returns the index up to which the log's entries may be
// removed: they are archived or covered by an archived snapshot.
func (m *Master) archivedThrough() uint64 {
	m.archMu.Lock()
	defer m.archMu.Unlock()
	return m.archive.Index
}

// archiveTick is how often the archive loop runs a round.
func (m *Master) archiveTick() time.Duration {
	return min(max(m.cfg.ArchiveEvery/4, 10*time.Millisecond), 15*time.Second)
}

// archiveLoop runs an archive round at once and then every archiveTick,
// until Close.
func (m *Master) archiveLoop() {
	t := time.NewTicker(m.archiveTick())
	defer t.Stop()
	for {
		_ = m.Archive(m.ctx)
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Archive runs one archive round (see archiveRound); compaction waits
// meanwhile. Its failure is also recorded in ArchiveStatus and logged.
func (m *Master) Archive(ctx context.Context) error {
	if m.cfg.Archive == nil {
		return nil
	}
	m.maintain.Lock()
	defer m.maintain.Unlock()
	return m.archiveRound(ctx)
}

// archiveRound brings the archive up to date with the log, under
// maintain: it seals the active segment once its oldest entry is
// ArchiveEvery old; gives the archive a snapshot its entries can follow
// when it has none of this log reaching the log's first index (a new
// archive, or one that lost its files), then the store's latest snapshot
// when newer, and one more when the newest lags by ArchiveSnapshotEntries
// (or half the archive's RetainFor); copies every sealed segment not yet
// archived, in order; applies the archive's retention. The first failure
// stops the round: what was copied before it counts.
func (m *Master) archiveRound(ctx context.Context) error {
	a := m.cfg.Archive
	logID := m.log.ID()
	err := func() error {
		if err := a.Check(); err != nil {
			return err
		}
		if err := m.sealOld(); err != nil {
			return err
		}
		h, err := a.History(logID)
		if err != nil {
			return err
		}
		first := m.log.FirstIndex()
		reach, connected := uint64(0), false
		for _, r := range h.Ranges() {
			if r.Last+1 >= first && r.Last <= m.log.LastIndex() {
				reach, connected = max(reach, r.Last), true
			}
		}
		newest, have := uint64(0), false
		var newestAt time.Time
		for _, s := range h.Snapshots {
			if !have || s.Index >= newest {
				newest, newestAt, have = s.Index, s.Created, true
			}
		}
		record := func() {
			m.archMu.Lock()
			m.archive.Index, m.archive.SnapshotIndex, m.archive.HasSnapshot = reach, newest, have
			m.archMu.Unlock()
		}
		add := func(info snapshot.Info) error {
			if err := m.archiveSnapshot(ctx, info); err != nil {
				return err
			}
			if !have || info.Index > newest {
				newest, newestAt, have = info.Index, info.Created, true
			}
			if !connected {
				reach, connected = info.Index, true
			}
			record()
			return nil
		}
		if !connected {
			info, err := m.snapshotFrom(ctx, first)
			if err != nil {
				return err
			}
			if err := add(info); err != nil {
				return err
			}
		}
		if info, err := m.cfg.Snapshots.Latest(); err == nil && info.LogID == logID && (!have || info.Index > newest) {
			// A newer one may have replaced it meanwhile (GET
			// /db/snapshot?fresh): the next round copies that one.
			if err := add(info); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		applied := m.db.AppliedIndex()
		stale := applied-min(newest, applied) >= m.cfg.ArchiveSnapshotEntries
		if d := a.RetainFor; d > 0 && applied > newest && m.cfg.Now().Sub(newestAt) > d/2 {
			stale = true
		}
		if stale {
			info, err := m.cfg.Snapshots.Make(ctx, m.db)
			if err != nil {
				return err
			}
			if err := add(info); err != nil {
				return err
			}
		}
		// A snapshot may stand beyond the segments archived so far (it
		// was due while their segment was still active): the segments
		// after those are copied all the same, or the indexes between
		// would not restore.
		if end, ok := h.SegmentsEnd(first, m.log.LastIndex()); ok && end < reach {
			reach = end
		}
		for _, s := range m.log.Sealed() {
			if s.Last <= reach {
				continue
			}
			if _, err := a.AddSegment(ctx, logID, s.Path, s.First, s.Last); err != nil {
				return err
			}
			reach = s.Last
			record()
		}
		record()
		if _, err := a.Prune(m.cfg.Now(), logID); err != nil {
			return err
		}
		return nil
	}()
	m.archMu.Lock()
	defer m.archMu.Unlock()
	st := &m.archive
	if err != nil {
		if st.Err == nil {
			st.FailingSince = m.cfg.Now()
		}
		st.Err = err
		if ctx.Err() == nil {
			m.failures.Log(m.cfg.Logger, slog.LevelWarn, "archive",
				"archiving failed; the log keeps what is not archived (compaction waits), retrying",
				"archive", a.Dir(), "err", err, "archived_index", st.Index, "failing_since", st.FailingSince.Format(time.RFC3339))
		}
		return fmt.Errorf("archive: %w", err)
	}
	if st.Err != nil {
		m.cfg.Logger.Info("archiving works again", "archive", a.Dir(), "archived_index", st.Index,
			"failed_for", m.cfg.Now().Sub(st.FailingSince).Round(time.Second))
	}
	st.Err, st.FailingSince, st.LastOK = nil, time.Time{}, m.cfg.Now()
	return nil
}

// sealOld seals the log's active segment when its oldest entry is
// ArchiveEvery old: sealed segments are what the archive copies.
func (m *Master) sealOld() error {
	from, last := m.log.ActiveFirstIndex(), m.log.LastIndex()
	if last < from {
		return nil
	}
	entries, err := m.log.Read(from, 1, 0)
	if err != nil || len(entries) == 0 {
		return nil // sealed or removed meanwhile: the next round sees it
	}
	if m.cfg.Now().Sub(time.UnixMilli(entries[0].Time)) < m.cfg.ArchiveEvery {
		return nil
	}
	_, err = m.log.Seal()
	return err
}

// snapshotFrom returns a snapshot the log's entries from first follow:
// the store's latest if it is one (compaction keeps the log starting at
// most one past it), else a new one.
func (m *Master) snapshotFrom(ctx context.Context, first uint64) (snapshot.Info, error) {
	info, err := m.cfg.Snapshots.Latest()
	if err == nil && info.Index+1 >= first && info.Index <= m.log.LastIndex() &&
		(info.LogID == m.log.ID() || (info.Index == 0 && info.LogID == "")) {
		return info, nil
	}
	if err != nil && !errors.Is(err, snapshot.ErrNone) {
		return info, err
	}
	return m.cfg.Snapshots.Make(ctx, m.db)
}

// archiveSnapshot copies the store's snapshot info to the archive, with
// the time of its entry when the log still holds it.
func (m *Master) archiveSnapshot(ctx context.Context, info snapshot.Info) error {
	f, err := m.cfg.Snapshots.Open(info)
	if err != nil {
		return fmt.Errorf("open the snapshot at %d: %w", info.Index, err)
	}
	defer f.Close()
	var at time.Time
	if info.Index >= m.log.FirstIndex() && info.Index <= m.log.LastIndex() && info.Index > 0 {
		if es, err := m.log.Read(info.Index, 1, 0); err == nil && len(es) == 1 {
			at = time.UnixMilli(es[0].Time)
		}
	}
	_, err = m.cfg.Archive.AddSnapshot(ctx, m.log.ID(), info, at, f)
	return err
}
