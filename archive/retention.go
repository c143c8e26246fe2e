package archive

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/walship/walship/durable"
)

// PruneResult is what Prune removed.
type PruneResult struct {
	Snapshots, Segments, Histories int
}

// Prune applies the archive's retention at now. An archived snapshot is
// kept when it is among the newest RetainSnapshots of the archive, or
// needed to restore to a point within RetainFor (taken since now −
// RetainFor, or the newest taken before then in a history that goes on
// past it); the newest snapshot of the archive and of history current
// (the master's, "" for none) are always kept. Of each history, the
// segments that end at or before its oldest kept snapshot go, so the
// snapshots kept and the segments after them never leave a gap; a history
// without a kept snapshot goes whole. With neither cap set, nothing goes.
//
// Snapshots go before segments, oldest first, each description before its
// file: a crash part way leaves files that a later Prune removes, never a
// snapshot whose following segments are missing.
func (a *Archive) Prune(now time.Time, current string) (PruneResult, error) {
	var res PruneResult
	if a.RetainFor <= 0 && a.RetainSnapshots <= 0 {
		return res, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.writable {
		return res, ErrReadOnly
	}
	hs, err := a.list()
	if err != nil {
		return res, err
	}
	type ref struct{ h, i int }
	var all []ref
	keep := make([][]bool, len(hs))
	for hi, h := range hs {
		keep[hi] = make([]bool, len(h.Snapshots))
		for si := range h.Snapshots {
			all = append(all, ref{hi, si})
		}
		if h.LogID == current && len(h.Snapshots) > 0 {
			keep[hi][len(h.Snapshots)-1] = true
		}
	}
	created := func(r ref) time.Time { return hs[r.h].Snapshots[r.i].Created }
	sort.SliceStable(all, func(i, j int) bool { return created(all[i]).After(created(all[j])) })
	for i, r := range all {
		if i < max(a.RetainSnapshots, 1) {
			keep[r.h][r.i] = true
		}
	}
	if d := a.RetainFor; d > 0 {
		cutoff := now.Add(-d)
		for hi, h := range hs {
			base := -1 // the newest snapshot taken at or before the cutoff
			within := false
			for si, s := range h.Snapshots {
				if s.Created.After(cutoff) {
					keep[hi][si], within = true, true
				} else {
					base = si
				}
			}
			for _, s := range h.Segments {
				within = within || s.MaxTime.After(cutoff)
			}
			if base >= 0 && (within || h.LogID == current) {
				keep[hi][base] = true
			}
		}
	}
	for hi, h := range hs {
		oldest := -1
		for si := range h.Snapshots {
			if keep[hi][si] {
				oldest = si
				break
			}
		}
		if oldest < 0 && len(h.Snapshots) == 0 && h.LogID == current {
			continue // the master's history before its first snapshot is archived
		}
		before := res
		var err error
		if oldest < 0 {
			err = a.removeHistory(h, &res)
		} else {
			err = a.removeBefore(h, h.Snapshots[oldest].Index, oldest, &res)
		}
		if res != before || err != nil {
			delete(a.cache, h.LogID) // read again when next asked
		}
		if err != nil {
			return res, err
		}
	}
	if res != (PruneResult{}) {
		a.logger.Info("archive pruned", "snapshots", res.Snapshots, "segments", res.Segments, "histories", res.Histories)
	}
	return res, nil
}

// removeBefore removes h's first n snapshots and its segments that end at
// or before index s.
func (a *Archive) removeBefore(h History, s uint64, n int, res *PruneResult) error {
	hdir := historyDir(a.dir, h.LogID)
	removed := false
	for _, snap := range h.Snapshots[:n] {
		if err := removePair(snapshotPath(a.dir, h.LogID, snap.Index)); err != nil {
			return err
		}
		res.Snapshots++
		removed = true
	}
	for _, seg := range h.Segments {
		if seg.Last > s {
			continue
		}
		if err := removePair(segmentPath(a.dir, h.LogID, seg.First)); err != nil {
			return err
		}
		res.Segments++
		removed = true
	}
	if removed {
		if err := durable.SyncDir(hdir); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	return nil
}

// removeHistory removes every file of h, then its directory.
func (a *Archive) removeHistory(h History, res *PruneResult) error {
	if err := a.removeBefore(h, ^uint64(0), len(h.Snapshots), res); err != nil {
		return err
	}
	hdir := historyDir(a.dir, h.LogID)
	entries, err := os.ReadDir(hdir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if len(entries) > 0 {
		return nil // files it does not know: left alone
	}
	if err := os.Remove(hdir); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	res.Histories++
	return durable.SyncDir(a.dir)
}

// removePair removes the description of the file at path, then the file.
func removePair(path string) error {
	if err := os.Remove(descPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("archive: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("archive: %w", err)
	}
	return nil
}
