package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/durable"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// Progress is where a restore stands: Phase "check" (the files against
// their checksums), "extract" (the snapshot) or "apply" (the entries, Done
// of Total).
type Progress struct {
	Phase       string
	Done, Total uint64
}

// Bounds of one batch of entries a restore applies in one SQLite
// transaction.
const (
	restoreBatchEntries = 1000
	restoreBatchBytes   = 16 << 20
)

// Restore rebuilds the database of plan at path, which must not exist:
// the plan's snapshot, checked by its SHA-256, and its entries up to
// plan.Index read from the archived segments (each file checked against
// its SHA-256 before any is used), applied as the master applied them,
// with their pinned time and seed. The database is built beside path and
// renamed to it once whole, its directory fsynced. A file that does not
// match its description gives an error wrapping ErrDamaged that names it;
// nothing is left at path then. progress, if not nil, is called as it
// goes.
func (a *Archive) Restore(ctx context.Context, plan Plan, path string, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %s exists", path)
	}
	progress(Progress{Phase: "check", Total: uint64(len(plan.Segments) + 1)})
	if err := a.CheckSnapshot(ctx, plan.Snapshot); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for i, s := range plan.Segments {
		if err := a.CheckSegment(ctx, s); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		progress(Progress{Phase: "check", Done: uint64(i + 2), Total: uint64(len(plan.Segments) + 1)})
	}
	tmp := path + tmpSuffix
	removeDB := func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			_ = os.Remove(tmp + suffix)
		}
	}
	removeDB()
	progress(Progress{Phase: "extract"})
	if err := a.extract(plan.Snapshot, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	err := a.apply(ctx, plan, tmp, progress)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		removeDB()
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// extract writes the database of archived snapshot s to path.
func (a *Archive) extract(s SnapshotInfo, path string) error {
	file := snapshotPath(a.dir, s.LogID, s.Index)
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := snapshot.Extract(f, path, s.SHA256, s.Size); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// apply opens the extracted database at path and applies the plan's
// entries to it.
func (a *Archive) apply(ctx context.Context, plan Plan, path string, progress func(Progress)) (err error) {
	d, err := db.Open(path, db.Options{Readers: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := d.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	s := plan.Snapshot
	if d.AppliedIndex() != s.Index || (d.LogID() != plan.LogID && (s.Index != 0 || d.LogID() != "")) {
		return fmt.Errorf("%w: %s: its database is at index %d of log %q, its description says %d of %s",
			ErrDamaged, snapshotPath(a.dir, s.LogID, s.Index), d.AppliedIndex(), d.LogID(), s.Index, plan.LogID)
	}
	total := plan.Entries()
	var batch []*wal.Entry
	size := 0
	last := time.Now()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.Apply(plan.LogID, batch); err != nil {
			return err
		}
		batch, size = batch[:0], 0
		if time.Since(last) >= 100*time.Millisecond {
			progress(Progress{Phase: "apply", Done: d.AppliedIndex() - s.Index, Total: total})
			last = time.Now()
		}
		return nil
	}
	done := errors.New("done")
	for _, seg := range plan.Segments {
		from := max(seg.First, s.Index+1)
		if from > plan.Index {
			break
		}
		file := segmentPath(a.dir, seg.LogID, seg.First)
		f, err := wal.OpenSegmentFile(file)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		if f.LogID() != plan.LogID || f.First() != seg.First || f.Last() != seg.Last {
			f.Close()
			return fmt.Errorf("%w: %s holds entries %d..%d of log %s, its description says %d..%d of %s",
				ErrDamaged, file, f.First(), f.Last(), f.LogID(), seg.First, seg.Last, plan.LogID)
		}
		err = f.Read(from, func(e *wal.Entry) error {
			if e.Index > plan.Index {
				return done
			}
			batch = append(batch, e)
			size += entrySize(e)
			if len(batch) >= restoreBatchEntries || size >= restoreBatchBytes {
				return flush()
			}
			return nil
		})
		f.Close()
		if err != nil && !errors.Is(err, done) {
			if errors.Is(err, wal.ErrCorrupt) {
				return fmt.Errorf("%w: %w", ErrDamaged, err)
			}
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if got := d.AppliedIndex(); got != plan.Index {
		return fmt.Errorf("%w: the archive's entries end at %d, the plan needs them up to %d", ErrDamaged, got, plan.Index)
	}
	progress(Progress{Phase: "apply", Done: total, Total: total})
	return nil
}

// entrySize is about the memory entry e takes.
func entrySize(e *wal.Entry) int {
	n := 64
	for _, st := range e.Statements {
		n += len(st.SQL) + 32
		for _, p := range st.Params {
			n += len(p.Name) + len(p.Value.Text) + len(p.Value.Blob) + 16
		}
	}
	return n
}
