// Package retention bounds a node's log: the master's, and the copy a
// slave keeps. The oldest sealed segments beyond the policy are removed
// once a snapshot covers them (one is taken when needed), so that a
// follower that still needs them bootstraps from the snapshot.
package retention

import (
	"context"
	"fmt"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// MaxSealedSegments caps the log's sealed segment files: each is an open
// file and a memory mapping, and a master that seals on time (--archive
// --archive-every) at a low write rate would otherwise keep one small file
// a minute for as long as its retention lasts, until it ran out of file
// descriptors or mappings. The oldest beyond the cap go as if beyond the
// retention (once a snapshot covers them, and the archive holds them).
const MaxSealedSegments = 512

// Policy is how much log a node keeps: Entries caps how many entries stay,
// Bytes how many bytes of log files, For how old they may be; 0 sets no
// cap. An entry beyond any cap is removed, with the whole segment it is
// in, once a snapshot covers it. Entries within every cap stay, even when
// every follower has them. With no cap the log only grows.
type Policy struct {
	Entries uint64
	Bytes   int64
	For     time.Duration
}

// Bounds reports whether the policy sets any cap.
func (p Policy) Bounds() bool { return p.Entries > 0 || p.Bytes > 0 || p.For > 0 }

// Result is what a compaction did.
type Result struct {
	First    uint64 // the log's first index after it
	Removed  int    // segments removed
	Snapshot uint64 // the snapshot that covers what was removed
}

// Compact removes the oldest sealed segments of lg whose entries are all
// beyond the policy, taking a snapshot of database first (at its applied
// index) when the latest in snaps does not cover them: what is removed
// never goes past what SQLite holds. limit, if set, may lower the index
// before which segments go (the master's archive keeps what it has not
// copied yet).
func (p Policy) Compact(ctx context.Context, lg *wal.Log, database *db.DB, snaps *snapshot.Store, now time.Time,
	limit func(cut uint64) uint64) (Result, error) {
	res := Result{First: lg.FirstIndex()}
	if snaps == nil || !p.Bounds() {
		return res, nil
	}
	cut, err := p.cut(lg, now)
	if err != nil || cut == 0 {
		return res, err
	}
	info, err := snaps.Latest()
	if err != nil || info.LogID != lg.ID() || info.Index+1 < cut {
		if info, err = snaps.Make(ctx, database); err != nil {
			return res, fmt.Errorf("compact: %w", err)
		}
	}
	res.Snapshot = info.Index
	cut = min(cut, info.Index+1)
	if limit != nil {
		cut = min(cut, limit(cut))
	}
	before := len(lg.Sealed())
	first, err := lg.Truncate(cut)
	res.First, res.Removed = first, before-len(lg.Sealed())
	if err != nil {
		return res, fmt.Errorf("compact: %w", err)
	}
	return res, nil
}

// cut is the index before which the sealed segments are beyond the policy
// (or beyond MaxSealedSegments); 0 when none is.
func (p Policy) cut(lg *wal.Log, now time.Time) (uint64, error) {
	segs := lg.Sealed()
	if len(segs) == 0 {
		return 0, nil
	}
	last := lg.LastIndex()
	total := lg.Size()
	var cut uint64
	for i, s := range segs {
		beyond := false
		if len(segs)-i > MaxSealedSegments {
			beyond = true // too many files: see MaxSealedSegments
		}
		if p.Entries > 0 && last-s.Last >= p.Entries {
			beyond = true // all its entries are older than the newest n
		}
		if p.Bytes > 0 && total-s.Size >= p.Bytes {
			beyond = true // the newer files alone hold the bytes to keep
		}
		if p.For > 0 {
			entries, err := lg.Read(s.Last, 1, 0)
			if err != nil {
				return 0, fmt.Errorf("compact: %w", err)
			}
			if len(entries) == 1 && now.Sub(time.UnixMilli(entries[0].Time)) > p.For {
				beyond = true
			}
		}
		if !beyond {
			break
		}
		cut = s.Last + 1
		total -= s.Size
	}
	return cut, nil
}
