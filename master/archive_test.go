package master

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/archive"
	"github.com/walship/walship/db"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// archivedNode is a master with a small retention and an archive, on real
// files; its archive loop runs only its first round (ArchiveEvery is long:
// the tests run the rounds).
type archivedNode struct {
	testNode
	arch       *archive.Archive
	archiveDir string
	sums       map[uint64]string

	mu  sync.Mutex
	now time.Time
}

func openArchived(t *testing.T, cfg Config) *archivedNode {
	t.Helper()
	dir := t.TempDir()
	n := &archivedNode{testNode: testNode{dir: dir}, archiveDir: filepath.Join(dir, "archive"), sums: map[uint64]string{},
		now: time.Date(2026, 11, 25, 16, 0, 0, 0, time.UTC)}
	var err error
	if n.log, err = wal.Open(filepath.Join(dir, "log.db"), wal.Options{SegmentBytes: 40 << 10, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if n.db, err = db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
	if cfg.Snapshots, err = snapshot.Open(filepath.Join(dir, "snapshots"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	if n.arch, err = archive.Open(n.archiveDir, quietLogger()); err != nil {
		t.Fatal(err)
	}
	cfg.Archive, cfg.Logger, cfg.CompactEvery = n.arch, quietLogger(), time.Hour
	if cfg.ArchiveEvery == 0 {
		cfg.ArchiveEvery = time.Hour
	}
	cfg.Now = n.clock
	if n.m, err = Open(n.log, n.db, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.close()
		n.arch.Close()
	})
	// The loop's first round, at once: the tests run the next ones.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st, _ := n.m.ArchiveStatus(); !st.LastOK.IsZero() || st.Err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the archive's first round did not end")
		}
		time.Sleep(time.Millisecond) // ok: poll interval
	}
	n.sums[0] = n.checksum(t)
	return n
}

func (n *archivedNode) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

func (n *archivedNode) advance(d time.Duration) {
	n.mu.Lock()
	n.now = n.now.Add(d)
	n.mu.Unlock()
}

func (n *archivedNode) checksum(t *testing.T) string {
	t.Helper()
	c, err := n.db.Checksum(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.Sum
}

// write runs count writes, one second apart on the master's clock,
// recording the content's checksum at each index (the test is the only
// writer).
func (n *archivedNode) write(t *testing.T, count int) {
	t.Helper()
	for range count {
		i := n.log.LastIndex() + 1
		sql := fmt.Sprintf("INSERT INTO t (v, r) VALUES ('row %d', random())", i)
		if i == 1 {
			sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, v, r, ts DEFAULT CURRENT_TIMESTAMP)"
		}
		if r := n.mustExec(t, sql); r.Index != i {
			t.Fatalf("write %d got index %d", i, r.Index)
		}
		n.sums[i] = n.checksum(t)
		n.advance(time.Second)
	}
}

// restore restores the archive to index i and checks the content against
// what the master had at i.
func (n *archivedNode) restore(t *testing.T, i uint64) {
	t.Helper()
	r, err := archive.OpenReadOnly(n.archiveDir)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := r.Plan(context.Background(), archive.Target{Index: i})
	if err != nil {
		t.Fatalf("plan the restore to %d: %v", i, err)
	}
	path := filepath.Join(t.TempDir(), "db.sqlite")
	if err := r.Restore(context.Background(), plan, path, nil); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(path, db.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := d.Checksum(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Index != i || c.Sum != n.sums[i] {
		t.Fatalf("restored to %d: index %d, checksum %s; the master had %s", i, c.Index, c.Sum, n.sums[i])
	}
}

// Compaction never removes a segment the archive does not hold: while the
// archive is unavailable (its volume unmounted: an empty mount point), the
// log keeps everything after what was archived and the status says why;
// once it is back, the archive catches up and compaction goes on, and
// every index the log let go restores from the archive.
func TestCompactionWaitsForTheArchive(t *testing.T) {
	n := openArchived(t, Config{RetainEntries: 100})
	n.write(t, 400)
	if err := n.m.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := n.m.ArchiveStatus()
	if st.Err != nil || !st.HasSnapshot || n.log.FirstIndex() == 1 || st.Index+1 < n.log.FirstIndex() {
		t.Fatalf("after a compaction: first index %d, archive %+v", n.log.FirstIndex(), st)
	}

	away := n.archiveDir + ".away"
	if err := os.Rename(n.archiveDir, away); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(n.archiveDir, 0o755); err != nil {
		t.Fatal(err)
	}
	archived := st.Index
	first := n.log.FirstIndex()
	n.write(t, 400)
	if _, err := n.m.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ = n.m.ArchiveStatus()
	if !errors.Is(st.Err, archive.ErrUnavailable) || st.FailingSince.IsZero() || st.Index != archived {
		t.Fatalf("with the archive unmounted: %+v", st)
	}
	if got := n.log.FirstIndex(); got > archived+1 || got < first {
		t.Fatalf("with the archive unmounted the log starts at %d; %d was archived", got, archived)
	}
	if entries, _ := os.ReadDir(n.archiveDir); len(entries) != 0 {
		t.Fatalf("the copies went to the empty mount point: %v", entries)
	}

	if err := os.Remove(n.archiveDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(away, n.archiveDir); err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ = n.m.ArchiveStatus()
	if st.Err != nil || st.Index <= archived || n.log.FirstIndex() <= first || st.Index+1 < n.log.FirstIndex() {
		t.Fatalf("with the archive back: first index %d, archive %+v", n.log.FirstIndex(), st)
	}
	for _, i := range []uint64{0, 1, archived, archived + 1, n.log.FirstIndex() - 1, st.Index} {
		n.restore(t, i)
	}
}

// The active segment is sealed and archived once its oldest entry is
// ArchiveEvery old (and not before); the archive gets a snapshot once its
// newest lags ArchiveSnapshotEntries.
func TestArchiveEveryAndSnapshots(t *testing.T) {
	n := openArchived(t, Config{ArchiveEvery: time.Minute, ArchiveSnapshotEntries: 50})
	n.write(t, 10)
	n.advance(30 * time.Second)
	if err := n.m.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.m.ArchiveStatus(); st.Index != 0 || n.log.Segments() != 1 {
		t.Fatalf("40 s after the first entry: %d segments, archive %+v", n.log.Segments(), st)
	}
	n.advance(21 * time.Second)
	if err := n.m.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := n.m.ArchiveStatus(); st.Index != 10 || n.log.Segments() != 2 {
		t.Fatalf("61 s after the first entry: %d segments, archive %+v", n.log.Segments(), st)
	}
	n.write(t, 70)
	n.advance(time.Minute)
	if err := n.m.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := n.m.ArchiveStatus()
	if !st.HasSnapshot || st.SnapshotIndex != 80 || st.Index != 80 {
		t.Fatalf("after 80 writes (sealed on time, a snapshot every 50): archive %+v", st)
	}
	for _, i := range []uint64{5, 10, 11, 79, 80} {
		n.restore(t, i)
	}
	// Nothing new: a round changes nothing.
	if err := n.m.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again, _ := n.m.ArchiveStatus(); again.Index != st.Index || again.SnapshotIndex != st.SnapshotIndex {
		t.Fatalf("an idle round: %+v, before %+v", again, st)
	}
}

// A master that seals on time at a low write rate keeps small segments:
// at most MaxSealedSegments of them stay, the oldest (archived, and
// covered by a snapshot) go even within the retention.
func TestSealedSegmentsCapped(t *testing.T) {
	n := openArchived(t, Config{RetainEntries: 1_000_000})
	extra := 20
	for range MaxSealedSegments + extra {
		n.write(t, 1)
		if _, err := n.log.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(n.log.Sealed()); got < MaxSealedSegments+extra {
		t.Fatalf("%d sealed segments; the test wants more than the cap", got)
	}
	if err := n.m.Archive(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := n.m.Compact(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := n.m.ArchiveStatus()
	if got := len(n.log.Sealed()); got > MaxSealedSegments || res.Removed < extra || st.Index+1 < n.log.FirstIndex() {
		t.Fatalf("after a compaction: %d sealed segments, %d removed, first index %d, archived through %d", got, res.Removed,
			n.log.FirstIndex(), st.Index)
	}
}

// A snapshot archived beyond the segments archived so far (the active
// segment not sealed yet when the archive's newest snapshot was due) does
// not make the archive skip that segment once it is sealed: every index
// before the snapshot restores.
func TestArchiveKeepsSegmentBeforeNewerSnapshot(t *testing.T) {
	n := openArchived(t, Config{ArchiveSnapshotEntries: 30})
	n.write(t, 10)
	if _, err := n.log.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := n.m.archiveRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 40 more in the active segment: the round gives the archive a
	// snapshot at 50, and cannot copy the segment yet.
	n.write(t, 40)
	if err := n.m.archiveRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.log.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := n.m.archiveRound(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{11, 30, 49, 50} {
		n.restore(t, i)
	}
}
