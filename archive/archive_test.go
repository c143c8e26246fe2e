package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/wal"
)

// A history archived as a master archives it (a snapshot of the empty
// database, the sealed segments, snapshots on the way) restores to every
// index it holds, from the nearest snapshot, with the content the database
// had at that index: schema changes, a trigger, random() and
// CURRENT_TIMESTAMP replay exactly.
func TestRestoreEveryIndex(t *testing.T) {
	h := newTestHistory(t, 40<<10)
	a := mustOpen(t)
	h.snapshot(a) // index 0
	// The writer's history is cached from now on.
	if _, err := a.History(h.log.ID()); err != nil {
		t.Fatal(err)
	}
	h.write(250)
	s250 := h.snapshot(a)
	h.write(250)
	s500 := h.snapshot(a)
	h.write(150)
	h.archiveSegments(a)
	sameAsOnDisk(t, a, h.log.ID())
	hist, err := a.History(h.log.ID())
	if err != nil {
		t.Fatal(err)
	}
	if len(hist.Snapshots) != 3 || len(hist.Segments) < 4 {
		t.Fatalf("%d snapshots, %d segments", len(hist.Snapshots), len(hist.Segments))
	}
	last := hist.Segments[len(hist.Segments)-1].Last
	rs := hist.Ranges()
	if len(rs) != 1 || rs[0].First != 0 || rs[0].Last != last || !rs[0].LastTime.Equal(h.timeOf(last)) {
		t.Fatalf("ranges %+v, want 0..%d", rs, last)
	}
	for n := uint64(0); n <= last; n++ {
		// Every index near a snapshot or a segment's bounds, and every 7th.
		near := n%7 == 0 || n == last
		for _, b := range []uint64{s250.Index, s500.Index} {
			near = near || (n+1 >= b && n <= b+1)
		}
		for _, s := range hist.Segments {
			near = near || n == s.First || n == s.Last
		}
		if !near {
			continue
		}
		plan, sum, err := restoreSum(t, a, Target{Index: n})
		if err != nil {
			t.Fatalf("restore to %d: %v", n, err)
		}
		if sum != h.sums[n] {
			t.Fatalf("restored to %d (from the snapshot at %d): checksum %s, the database had %s", n, plan.Snapshot.Index, sum, h.sums[n])
		}
		want := uint64(0)
		for _, s := range []uint64{s250.Index, s500.Index} {
			if s <= n {
				want = s
			}
		}
		if plan.Snapshot.Index != want {
			t.Fatalf("restore to %d starts from the snapshot at %d, want the nearest, %d", n, plan.Snapshot.Index, want)
		}
	}

	// By time: the last entry at or before it.
	for _, n := range []uint64{1, s250.Index, 333, last} {
		at := h.timeOf(n).Add(500 * time.Millisecond)
		if n == last {
			at = h.timeOf(n).Add(-500 * time.Millisecond)
			n--
		}
		plan, sum, err := restoreSum(t, a, AtTime(at))
		if err != nil || plan.Index != n || sum != h.sums[n] {
			t.Fatalf("restore to %s: index %d (%v), want %d; checksum equal: %v", at, plan.Index, err, n, sum == h.sums[n])
		}
	}
	// The exact time of an entry includes it.
	if plan, _, err := restoreSum(t, a, AtTime(h.timeOf(100))); err != nil || plan.Index != 100 {
		t.Fatalf("restore to the time of entry 100: index %d, %v", plan.Index, err)
	}
}

// A point beyond the archive is refused with an error that names the
// first and last index it holds; a time at or after the last archived
// entry, or before the oldest point, is refused too.
func TestRestoreNotHeld(t *testing.T) {
	h := newTestHistory(t, 40<<10)
	a := mustOpen(t)
	h.write(100)
	s := h.snapshot(a)
	h.write(300)
	h.archiveSegments(a)
	hist, _ := a.History(h.log.ID())
	last := hist.LastIndex()
	for _, n := range []uint64{last + 1, last + 1000, s.Index - 1, 0} {
		_, err := a.Plan(context.Background(), Target{Index: n})
		if !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), fmt.Sprintf("indexes %d to %d", s.Index, last)) {
			t.Fatalf("restore to %d: %v", n, err)
		}
	}
	_, err := a.Plan(context.Background(), AtTime(h.timeOf(last)))
	if !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), fmt.Sprintf("index %d", last)) {
		t.Fatalf("restore to the last entry's time: %v", err)
	}
	_, err = a.Plan(context.Background(), AtTime(h.timeOf(s.Index-10)))
	if !errors.Is(err, ErrNotHeld) || !strings.Contains(err.Error(), "before the oldest point") {
		t.Fatalf("restore to a time before the oldest snapshot: %v", err)
	}
	if _, err := a.Plan(context.Background(), AtTime(time.Time{})); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("restore to the zero time: %v", err)
	}
	if _, err := a.Plan(context.Background(), Target{Index: 5, LogID: strings.Repeat("ab", 16)}); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("restore of a log the archive does not hold: %v", err)
	}
}

// Two histories that both hold an index: the restore asks which; with
// the log_id it restores that one's.
func TestRestoreSeveralHistories(t *testing.T) {
	a := mustOpen(t)
	h1 := newTestHistory(t, 40<<10)
	h1.snapshot(a)
	h1.write(200)
	h1.archiveSegments(a)
	h2 := newTestHistory(t, 40<<10)
	h2.write(50)
	h2.snapshot(a)
	h2.write(200)
	h2.archiveSegments(a)
	_, err := a.Plan(context.Background(), Target{Index: 60})
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), h1.log.ID()) || !strings.Contains(err.Error(), h2.log.ID()) {
		t.Fatalf("an index both hold: %v", err)
	}
	for _, h := range []*testHistory{h1, h2} {
		plan, sum, err := restoreSum(t, a, Target{Index: 60, LogID: h.log.ID()})
		if err != nil || plan.LogID != h.log.ID() || sum != h.sums[60] {
			t.Fatalf("restore to 60 of %s: %+v, %v", h.log.ID(), plan, err)
		}
	}
	// Only the first holds 10: no log_id needed.
	if plan, sum, err := restoreSum(t, a, Target{Index: 10}); err != nil || plan.LogID != h1.log.ID() || sum != h1.sums[10] {
		t.Fatalf("restore to 10: %+v, %v", plan, err)
	}
	hs, err := a.List()
	if err != nil || len(hs) != 2 {
		t.Fatalf("List: %d histories, %v", len(hs), err)
	}
}

// Copies are checked and idempotent: a segment or snapshot added again is
// not copied again; one with other bounds or content is a conflict; a
// snapshot that does not match its checksum is refused and leaves nothing.
func TestAddChecks(t *testing.T) {
	h := newTestHistory(t, 40<<10)
	a := mustOpen(t)
	h.write(200)
	info, err := h.store.Make(context.Background(), h.db)
	if err != nil {
		t.Fatal(err)
	}
	s1 := h.addSnapshot(a, info)
	if s2 := h.addSnapshot(a, info); s2 != s1 {
		t.Fatalf("added again: %+v, first %+v", s2, s1)
	}
	bad := info
	bad.SHA256 = strings.Repeat("0", 64)
	f, _ := h.store.Open(info)
	if _, err := a.AddSnapshot(context.Background(), h.log.ID(), bad, time.Time{}, f); !errors.Is(err, ErrConflict) {
		t.Fatalf("another snapshot at the same index: %v", err)
	}
	f.Close()
	bad.Index++
	f, _ = h.store.Open(info)
	if _, err := a.AddSnapshot(context.Background(), h.log.ID(), bad, time.Time{}, f); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a snapshot that does not match its checksum: %v", err)
	}
	f.Close()
	if _, err := os.Stat(a.SnapshotPath(h.log.ID(), bad.Index)); !os.IsNotExist(err) {
		t.Fatalf("the refused snapshot left a file: %v", err)
	}
	seg := h.log.Sealed()[0]
	first, err := a.AddSegment(context.Background(), h.log.ID(), seg.Path, seg.First, seg.Last)
	if err != nil || first.First != seg.First || first.Last != seg.Last || first.Size != seg.Size ||
		!first.FirstTime.Equal(h.timeOf(seg.First)) || !first.LastTime.Equal(h.timeOf(seg.Last)) || !first.MaxTime.Equal(first.LastTime) {
		t.Fatalf("AddSegment: %+v, %v (segment %+v)", first, err, seg)
	}
	if again, err := a.AddSegment(context.Background(), h.log.ID(), seg.Path, seg.First, seg.Last); err != nil || again != first {
		t.Fatalf("added again: %+v, %v", again, err)
	}
	if _, err := a.AddSegment(context.Background(), h.log.ID(), seg.Path, seg.First, seg.Last+1); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same first index with another last: %v", err)
	}
	seg2 := h.log.Sealed()[1]
	if _, err := a.AddSegment(context.Background(), h.log.ID(), seg2.Path, seg2.First, seg2.Last+1); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a segment that does not hold what it is said to: %v", err)
	}
	if _, err := a.AddSegment(context.Background(), strings.Repeat("ab", 16), seg2.Path, seg2.First, seg2.Last); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a segment of another log: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(a.Dir(), "*", "*"))
	for _, f := range left {
		if k, ok := parseName(filepath.Base(f)); !ok || (k.segment && k.index != seg.First) || (!k.segment && k.index != info.Index) {
			t.Fatalf("left in the archive: %s", f)
		}
	}
}

// What a crash leaves while the archive writes (a copy in progress, a
// copy without its description) is removed when it opens for writing; a
// reader neither sees nor removes it; the described files stay.
func TestCrashLeftovers(t *testing.T) {
	h := newTestHistory(t, 40<<10)
	dir := filepath.Join(t.TempDir(), "archive")
	a, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	h.snapshot(a)
	h.write(200)
	h.archiveSegments(a)
	hdir := historyDir(dir, h.log.ID())
	segs := h.log.Sealed()
	b, _ := os.ReadFile(segs[0].Path)
	leftovers := []string{
		filepath.Join(hdir, fmt.Sprintf("log-%020d.db.tmp", 9999)),     // a copy in progress
		filepath.Join(hdir, fmt.Sprintf("log-%020d.db", 5000)),         // copied, not described
		filepath.Join(hdir, fmt.Sprintf("snapshot-%020d.json.tmp", 7)), // a description in progress
	}
	for _, f := range leftovers {
		if err := os.WriteFile(f, b[:len(b)/3], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before, err := a.History(h.log.ID())
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if seen, _ := r.History(h.log.ID()); len(seen.Segments) != len(before.Segments) {
		t.Fatalf("a reader sees %d segments, want %d", len(seen.Segments), len(before.Segments))
	}
	for _, f := range leftovers {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("a reader removed %s: %v", f, err)
		}
	}
	a, err = Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, f := range leftovers {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Fatalf("%s still there after the archive opened: %v", filepath.Base(f), err)
		}
	}
	after, _ := a.History(h.log.ID())
	if len(after.Segments) != len(before.Segments) || len(after.Snapshots) != 1 {
		t.Fatalf("after the cleaning: %d segments, %d snapshots; before %d", len(after.Segments), len(after.Snapshots), len(before.Segments))
	}
	if err := a.Verify(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

// A truncated or corrupt archive file is refused by its checksum, naming
// the file, by a restore (which leaves nothing behind) and by Verify; the
// files that match are reported as such.
func TestDamagedFiles(t *testing.T) {
	h := newTestHistory(t, 40<<10)
	a := mustOpen(t)
	h.snapshot(a)
	h.write(300)
	h.archiveSegments(a)
	hist, _ := a.History(h.log.ID())
	seg := hist.Segments[1]
	segFile := a.SegmentPath(h.log.ID(), seg.First)
	snapFile := a.SnapshotPath(h.log.ID(), 0)

	damage := func(path string, truncate bool) (undo func()) {
		t.Helper()
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b := append([]byte(nil), orig...)
		if truncate {
			b = b[:len(b)*3/4]
		} else {
			b[len(b)/2] ^= 0x40
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.WriteFile(path, orig, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		file     string
		truncate bool
		target   uint64
	}{
		{segFile, true, seg.Last},
		{segFile, false, seg.First},
		{snapFile, true, 5},
		{snapFile, false, 5},
	} {
		undo := damage(c.file, c.truncate)
		_, _, err := restoreSum(t, a, Target{Index: c.target})
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), c.file) {
			t.Fatalf("restore through %s (truncated %v): %v", filepath.Base(c.file), c.truncate, err)
		}
		var bad []string
		good := 0
		verr := a.Verify(context.Background(), func(path string, err error) {
			if err != nil {
				bad = append(bad, path)
			} else {
				good++
			}
		})
		if !errors.Is(verr, ErrDamaged) || len(bad) != 1 || bad[0] != c.file || good != len(hist.Segments) {
			t.Fatalf("Verify with %s damaged: %v, bad %v, %d good", filepath.Base(c.file), verr, bad, good)
		}
		undo()
	}
	if _, sum, err := restoreSum(t, a, Target{Index: seg.Last}); err != nil || sum != h.sums[seg.Last] {
		t.Fatalf("restore once mended: %v", err)
	}
}

// The retention keeps the newest snapshots (by count or by age) and every
// segment after the oldest one kept, so what it keeps restores to every
// index from that snapshot on without a gap; a history without a kept
// snapshot goes whole; the master's history before its first snapshot
// stays.
func TestRetention(t *testing.T) {
	a := mustOpen(t)
	now := time.Now()
	// A history whose snapshot is older than every one of h.
	old := newTestHistory(t, 40<<10)
	oldInfo, err := old.store.Make(context.Background(), old.db)
	if err != nil {
		t.Fatal(err)
	}
	oldInfo.Created = now.Add(-10 * time.Hour)
	old.addSnapshot(a, oldInfo)
	old.write(100)
	old.archiveSegments(a)
	h := newTestHistory(t, 40<<10)
	var snaps []SnapshotInfo
	for i := range 4 {
		info, err := h.store.Make(context.Background(), h.db)
		if err != nil {
			t.Fatal(err)
		}
		info.Created = now.Add(time.Duration(i-4) * time.Hour) // 4h, 3h, 2h, 1h ago
		snaps = append(snaps, h.addSnapshot(a, info))
		h.write(120)
	}
	h.archiveSegments(a)
	last := h.log.Sealed()[len(h.log.Sealed())-1].Last

	// No caps: nothing goes.
	if res, err := a.Prune(now, h.log.ID()); err != nil || res != (PruneResult{}) {
		t.Fatalf("Prune without caps: %+v, %v", res, err)
	}
	check := func(what string, oldest SnapshotInfo) {
		t.Helper()
		sameAsOnDisk(t, a, h.log.ID())
		hist, err := a.History(h.log.ID())
		if err != nil {
			t.Fatal(err)
		}
		rs := hist.Ranges()
		if len(rs) != 1 || rs[0].First != oldest.Index || rs[0].Last != last {
			t.Fatalf("%s: ranges %+v, want %d..%d", what, rs, oldest.Index, last)
		}
		if hist.Snapshots[0].Index != oldest.Index {
			t.Fatalf("%s: the oldest snapshot is at %d, want %d", what, hist.Snapshots[0].Index, oldest.Index)
		}
		for _, s := range hist.Segments {
			if s.Last <= oldest.Index {
				t.Fatalf("%s: segment %d..%d ends before the oldest snapshot %d, but stays", what, s.First, s.Last, oldest.Index)
			}
		}
		for _, n := range []uint64{oldest.Index, oldest.Index + 1, (oldest.Index + last) / 2, last} {
			if _, sum, err := restoreSum(t, a, Target{Index: n, LogID: h.log.ID()}); err != nil || sum != h.sums[n] {
				t.Fatalf("%s: restore to %d: %v", what, n, err)
			}
		}
		if n := oldest.Index - 1; oldest.Index > 0 {
			if _, err := a.Plan(context.Background(), Target{Index: n, LogID: h.log.ID()}); !errors.Is(err, ErrNotHeld) {
				t.Fatalf("%s: restore to %d, before the oldest snapshot: %v", what, n, err)
			}
		}
	}
	// By age: the snapshots of the last 2.5h, and the one before them.
	a.RetainFor = 150 * time.Minute
	res, err := a.Prune(now, h.log.ID())
	if err != nil || res.Snapshots != 1+1 || res.Histories != 1 {
		t.Fatalf("Prune by age: %+v, %v", res, err)
	}
	if _, err := os.Stat(historyDir(a.Dir(), old.log.ID())); !os.IsNotExist(err) {
		t.Fatalf("the old history is still there: %v", err)
	}
	check("by age", snaps[1])
	// By count: the newest 2.
	a.RetainFor, a.RetainSnapshots = 0, 2
	if res, err := a.Prune(now, h.log.ID()); err != nil || res.Snapshots != 1 || res.Segments == 0 {
		t.Fatalf("Prune by count: %+v, %v", res, err)
	}
	check("by count", snaps[2])
	if res, err := a.Prune(now, h.log.ID()); err != nil || res != (PruneResult{}) {
		t.Fatalf("Prune again: %+v, %v", res, err)
	}
	// Both: what either keeps stays; the newest always stays.
	a.RetainFor, a.RetainSnapshots = time.Minute, 1
	if _, err := a.Prune(now.Add(24*time.Hour), h.log.ID()); err != nil {
		t.Fatal(err)
	}
	check("the newest", snaps[3])

	// The master's history before its first snapshot is archived stays.
	fresh := newTestHistory(t, 40<<10)
	fresh.write(150)
	fresh.archiveSegments(a)
	if _, err := a.Prune(now, fresh.log.ID()); err != nil {
		t.Fatal(err)
	}
	if hist, _ := a.History(fresh.log.ID()); len(hist.Segments) == 0 {
		t.Fatal("the current history's segments went before its first snapshot")
	}
}

// A directory that is neither empty nor an archive is refused; a second
// writer is refused while the first holds the archive; an archive whose
// marker vanished (an unmounted volume) is unavailable.
func TestOpenRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, quiet); !errors.Is(err, ErrNotArchive) {
		t.Fatalf("a directory with other files: %v", err)
	}
	if _, err := OpenReadOnly(dir); !errors.Is(err, ErrNotArchive) {
		t.Fatalf("read-only, a directory with other files: %v", err)
	}
	a := mustOpen(t)
	if _, err := Open(a.Dir(), quiet); !errors.Is(err, ErrInUse) {
		t.Fatalf("a second writer: %v", err)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	away := a.Dir() + ".away"
	if err := os.Rename(a.Dir(), away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(a.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the mount point without its volume: %v", err)
	}
	if err := os.Remove(a.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, a.Dir()); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(); err != nil {
		t.Fatalf("once back: %v", err)
	}
}

// A segment file copied into the archive reads back entry for entry.
func TestSegmentCopyReads(t *testing.T) {
	h := newTestHistory(t, 40<<10)
	a := mustOpen(t)
	h.write(100)
	seg := h.log.Sealed()[0]
	if _, err := a.AddSegment(context.Background(), h.log.ID(), seg.Path, seg.First, seg.Last); err != nil {
		t.Fatal(err)
	}
	want, err := h.log.Read(seg.First, int(seg.Last-seg.First+1), 0)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	err = wal.ReadSegmentFile(a.SegmentPath(h.log.ID(), seg.First), seg.First, func(e *wal.Entry) error {
		if e.Index != want[i].Index || e.Time != want[i].Time || e.Seed != want[i].Seed || e.Statements[0].SQL != want[i].Statements[0].SQL {
			t.Fatalf("entry %d differs", e.Index)
		}
		i++
		return nil
	})
	if err != nil || i != len(want) {
		t.Fatalf("read %d of %d: %v", i, len(want), err)
	}
}
