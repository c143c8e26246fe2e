package archive

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// testHistory is a master's history built without a master: a real log in
// small segments, a real database the entries are applied to one by one
// (as the master applies them: pinned time and seed), the content's
// checksum after each entry, and a real snapshot store.
type testHistory struct {
	t     *testing.T
	dir   string
	log   *wal.Log
	db    *db.DB
	store *snapshot.Store
	sums  map[uint64]string // index → db.Checksum's Sum
	base  time.Time         // the time of entry i is base + i seconds
}

func newTestHistory(t *testing.T, segmentBytes int64) *testHistory {
	t.Helper()
	dir := t.TempDir()
	l, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{SegmentBytes: segmentBytes, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	store, err := snapshot.Open(filepath.Join(dir, "snapshots"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	h := &testHistory{t: t, dir: dir, log: l, db: d, store: store, sums: map[uint64]string{},
		base: time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)}
	h.sums[0] = h.checksum()
	return h
}

var quiet = slog.New(slog.DiscardHandler)

func (h *testHistory) checksum() string {
	h.t.Helper()
	c, err := h.db.Checksum(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return c.Sum
}

// timeOf is the time of entry i.
func (h *testHistory) timeOf(i uint64) time.Time { return h.base.Add(time.Duration(i) * time.Second) }

// statement is the write of entry i: schema changes, a trigger, random()
// and CURRENT_TIMESTAMP, inserts, updates and deletes.
func statement(i uint64) string {
	switch {
	case i == 1:
		return "CREATE TABLE t (id INTEGER PRIMARY KEY, v, r, ts DEFAULT CURRENT_TIMESTAMP)"
	case i == 2:
		return "CREATE TABLE audit (id INTEGER PRIMARY KEY, tid, at, rnd)"
	case i == 3:
		return "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO audit (tid, at, rnd) VALUES (new.id, datetime('now'), random()); END"
	case i%50 == 0:
		return fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d DEFAULT %d", i, i)
	case i%37 == 0:
		return fmt.Sprintf("CREATE TABLE x%d (a DEFAULT (random()), b DEFAULT CURRENT_TIMESTAMP)", i)
	case i%37 == 5 && i > 37:
		return fmt.Sprintf("DROP TABLE x%d", i-5)
	case i%7 == 0:
		return fmt.Sprintf("UPDATE t SET v = hex(randomblob(8)), r = random() WHERE id %% 5 = %d", i%5)
	case i%11 == 0:
		return fmt.Sprintf("DELETE FROM t WHERE id %% 13 = %d AND random() %% 2 = 0", i%13)
	}
	return fmt.Sprintf("INSERT INTO t (v, r) VALUES ('row %d', random())", i)
}

// write appends n entries to the log and applies each, recording the
// checksum after it.
func (h *testHistory) write(n int) {
	h.t.Helper()
	for range n {
		i := h.log.LastIndex() + 1
		e := &wal.Entry{Index: i, Epoch: 1, Time: h.timeOf(i).UnixMilli(), Seed: i * 0x9e3779b97f4a7c15, Txn: true,
			Statements: []wal.Statement{{SQL: statement(i)}}}
		if err := h.log.Append([]*wal.Entry{e}); err != nil {
			h.t.Fatal(err)
		}
		if err := h.db.Apply(h.log.ID(), []*wal.Entry{e}); err != nil {
			h.t.Fatalf("entry %d (%s): %v", i, statement(i), err)
		}
		h.sums[i] = h.checksum()
	}
}

// snapshot takes a snapshot now and adds it to a.
func (h *testHistory) snapshot(a *Archive) SnapshotInfo {
	h.t.Helper()
	info, err := h.store.Make(context.Background(), h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.addSnapshot(a, info)
}

func (h *testHistory) addSnapshot(a *Archive, info snapshot.Info) SnapshotInfo {
	h.t.Helper()
	f, err := h.store.Open(info)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	var at time.Time
	if info.Index > 0 {
		at = h.timeOf(info.Index)
	}
	s, err := a.AddSnapshot(context.Background(), h.log.ID(), info, at, f)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// archiveSegments adds every sealed segment to a.
func (h *testHistory) archiveSegments(a *Archive) {
	h.t.Helper()
	for _, s := range h.log.Sealed() {
		if _, err := a.AddSegment(context.Background(), h.log.ID(), s.Path, s.First, s.Last); err != nil {
			h.t.Fatal(err)
		}
	}
}

// mustOpen opens a new archive in a temporary directory.
func mustOpen(t *testing.T) *Archive {
	t.Helper()
	a, err := Open(filepath.Join(t.TempDir(), "archive"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// restoreSum restores a to t in a new file and returns the plan and the
// restored database's checksum and position.
func restoreSum(t *testing.T, a *Archive, target Target) (Plan, string, error) {
	t.Helper()
	plan, err := a.Plan(context.Background(), target)
	if err != nil {
		return plan, "", err
	}
	path := filepath.Join(t.TempDir(), "db.sqlite")
	if err := a.Restore(context.Background(), plan, path, nil); err != nil {
		return plan, "", err
	}
	for _, suffix := range []string{"-wal", "-shm", ".tmp"} {
		if _, err := os.Stat(path + suffix); err == nil {
			t.Fatalf("restore left %s", filepath.Base(path+suffix))
		}
	}
	d, err := db.Open(path, db.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.AppliedIndex() != plan.Index || (d.LogID() != plan.LogID && plan.Index != 0) {
		t.Fatalf("restored database at %d of %q, plan %d of %s", d.AppliedIndex(), d.LogID(), plan.Index, plan.LogID)
	}
	c, err := d.Checksum(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return plan, c.Sum, nil
}

// sameAsOnDisk checks that what the writer a says of history logID (from
// its cache) is what a reader finds in the directory.
func sameAsOnDisk(t *testing.T, a *Archive, logID string) {
	t.Helper()
	cached, err := a.History(logID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	disk, err := r.History(logID)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cached) != fmt.Sprint(disk) {
		t.Fatalf("the writer's history of %s:\n%+v\nthe directory's:\n%+v", logID, cached, disk)
	}
}
