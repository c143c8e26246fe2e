package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/archive"
	"github.com/walship/walship/db"
	"github.com/walship/walship/durable"
)

const restoreArchiveSynopsis = `walship restore --archive DIR (--to-index N | --to-time T) --data NEWDIR [--force] [--log-id ID]

Rebuilds a data directory from a master's archive (walship master
--archive DIR) at exactly one point of its history: index N, or the last
entry whose time is at most T (entries are read in order up to the first one
after T). It starts from the archive's nearest snapshot at or before that
point and applies the archived entries after it, with their pinned time and
seed, so the database is the one the master had there. Every file it uses
is checked against its SHA-256 first. The result is NEWDIR/db.sqlite, the
start of a new history (a new log_id, recorded with the one it was restored
from): 'walship master --data NEWDIR' starts on it and its log goes on from
the index after.

NEWDIR must be empty (or new) unless --force, which replaces its database
and removes its log and snapshots once the restored database is whole.
An archive that holds several histories (a load or a restore starts a new
one) is searched for the one that holds the point; --log-id chooses when
several do. T is RFC 3339 (2026-11-25T16:55:48.250Z) or UTC as SQLite
shows it (2026-11-25 16:55:48).`

// hasArchiveFlag reports whether args ask for a restore from an archive
// (--archive): the restore command dispatches to runRestoreArchive then.
func hasArchiveFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && (name == "archive" || strings.HasPrefix(name, "archive=")) {
			return true
		}
	}
	return false
}

// runRestoreArchive runs 'walship restore --archive DIR …'.
func runRestoreArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", restoreArchiveSynopsis, stderr)
	dir := fs.String("archive", "", "the archive's directory (a master's --archive)")
	toIndex := fs.String("to-index", "", "restore to this index of the history")
	toTime := fs.String("to-time", "", "restore to the last entry at or before this time (RFC 3339, or 2006-01-02 15:04:05 in UTC)")
	data := fs.String("data", "", "the data directory to create (NEWDIR/db.sqlite)")
	force := fs.Bool("force", false, "restore into a data directory that is not empty, replacing its database and removing its log and snapshots")
	logID := fs.String("log-id", "", "the history (log_id) to restore, when several hold the point")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *dir == "" || *data == "" {
		fs.Usage()
		return errors.New("restore from an archive needs --archive DIR and --data NEWDIR")
	}
	var target archive.Target
	switch {
	case (*toIndex == "") == (*toTime == ""):
		fs.Usage()
		return errors.New("give exactly one of --to-index N and --to-time T")
	case *toIndex != "":
		n, err := strconv.ParseUint(*toIndex, 10, 64)
		if err != nil {
			return fmt.Errorf("--to-index %q: give an index, a non-negative integer", *toIndex)
		}
		target.Index = n
	default:
		t, err := parseRestoreTime(*toTime)
		if err != nil {
			return err
		}
		target = archive.AtTime(t)
	}
	target.LogID = strings.ToLower(strings.TrimSpace(*logID))
	if err := checkRestoreDir(*data, *force); err != nil {
		return err
	}
	a, err := archive.OpenReadOnly(*dir)
	if err != nil {
		return err
	}
	start := time.Now()
	plan, err := a.Plan(ctx, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "restoring %s: index %d of log %s, from the snapshot at %d and %d entries of %d archived segments\n",
		target, plan.Index, plan.LogID, plan.Snapshot.Index, plan.Entries(), len(plan.Segments))
	if err := os.MkdirAll(*data, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	lock, err := lockDir(*data)
	if err != nil {
		return err
	}
	defer lock.Close()
	built := filepath.Join(*data, "db.sqlite.restored")
	_ = os.Remove(built)
	if err := a.Restore(ctx, plan, built, restoreProgress(stderr, plan)); err != nil {
		return err
	}
	path := filepath.Join(*data, "db.sqlite")
	if err := replaceNodeFiles(*data, built, path); err != nil {
		return err
	}
	newID, err := startNewHistory(path, plan.LogID, plan.Index, "restore to "+target.String())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s at index %d of log %s (snapshot %d + %d entries) in %s\n",
		path, plan.Index, plan.LogID, plan.Snapshot.Index, plan.Entries(), time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, "a master started on %s begins a new history, log %s, from index %d: walship master --data %s\n",
		*data, newID, plan.Index+1, *data)
	return nil
}

// startNewHistory makes the restored database at path (at index of log
// from) the start of a new history, so that a master can start on it: a
// new log_id, recorded with the step in the database's _walship_history.
// A master started there creates the log of that history (master.reconcile);
// slaves of the old history that follow it bootstrap to it.
func startNewHistory(path, from string, index uint64, reason string) (string, error) {
	to, err := db.NewLogID()
	if err != nil {
		return "", err
	}
	step := db.HistoryStep{From: from, To: to, Index: index, Time: time.Now().UTC(), Reason: reason}
	if err := db.ContinueHistory(path, step); err != nil {
		return "", err
	}
	return to, nil
}

// parseRestoreTime reads --to-time: RFC 3339, or a UTC time as SQLite's
// CURRENT_TIMESTAMP shows it, to the millisecond.
func parseRestoreTime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--to-time %q: give a time such as 2026-11-25T16:55:48.250Z or 2026-11-25 16:55:48 (UTC)", v)
}

// checkRestoreDir refuses a data directory that holds anything, unless
// force.
func checkRestoreDir(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	var names []string
	for _, e := range entries {
		switch e.Name() {
		case "lock", "db.sqlite.restored", "db.sqlite.restored.tmp":
			continue // what a restore that failed left
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 || force {
		return nil
	}
	if len(names) > 5 {
		names = append(names[:5], "…")
	}
	return fmt.Errorf("data directory %s is not empty (it holds %s): give a new or empty directory, or --force to replace its database and remove its log and snapshots",
		dir, strings.Join(names, ", "))
}

// replaceNodeFiles makes the database built the data directory's
// database: it removes what a node kept there (the database's WAL files,
// the log, snapshots, a bootstrap's leftovers), then renames built to
// path, fsyncing the directory.
func replaceNodeFiles(dir, built, path string) error {
	var remove []string
	for _, pattern := range []string{"db.sqlite", "db.sqlite-*", "log.db", "log-*.db", "bootstrap*", "snapshots"} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		remove = append(remove, m...)
	}
	for _, f := range remove {
		if f == built {
			continue
		}
		if err := os.RemoveAll(f); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	if err := os.Rename(built, path); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return durable.SyncDir(dir)
}

// restoreProgress prints where a restore stands on w: the phases, and the
// entries applied every 2 s.
func restoreProgress(w io.Writer, plan archive.Plan) func(archive.Progress) {
	var phase string
	var last time.Time
	return func(p archive.Progress) {
		if p.Phase != phase {
			phase = p.Phase
			switch phase {
			case "check":
				fmt.Fprintf(w, "checking %d archived files against their SHA-256\n", len(plan.Segments)+1)
			case "extract":
				fmt.Fprintf(w, "extracting the snapshot at %d (%s)\n", plan.Snapshot.Index, humanize.IBytes(uint64(plan.Snapshot.Size)))
			case "apply":
				fmt.Fprintf(w, "applying %d entries\n", p.Total)
			}
			last = time.Now()
			return
		}
		if p.Phase == "apply" && time.Since(last) >= 2*time.Second && p.Total > 0 {
			fmt.Fprintf(w, "applied %d of %d entries (%d%%)\n", p.Done, p.Total, p.Done*100/p.Total)
			last = time.Now()
		}
	}
}
