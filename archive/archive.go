// Package archive keeps a master's continuous archive: a copy of every
// sealed log segment and of every snapshot it takes, in a directory (a
// local disk or a mounted volume), each file checksummed, organised by
// history (log_id), with a retention of its own. From it, Restore rebuilds
// a database at any index it holds: the nearest snapshot at or before the
// index, plus the archived entries up to it, applied as the master applied
// them (point-in-time restore).
//
// format.go defines the files. The archive never holds a file that claims
// more than it has: every file is written to a temporary name, fsynced and
// renamed before its description (size, SHA-256, what it holds) is, and
// the leftovers of a crash are removed when it opens for writing. One
// process writes an archive at a time (a lock file); any number may read
// it meanwhile (OpenReadOnly), seeing only described files.
//
// An Archive starts no goroutines: the master calls it from its own.
package archive

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/walship/walship/durable"
	"github.com/walship/walship/pace"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// The errors of the package; the ones returned wrap them with the detail
// (and the file), so compare with errors.Is.
var (
	// ErrNotArchive is returned when a directory is not a walship archive.
	ErrNotArchive = errors.New("not a walship archive")
	// ErrInUse is returned when another process writes the archive.
	ErrInUse = errors.New("archive in use by another process")
	// ErrUnavailable is returned when the archive's directory is no longer
	// the archive that was opened: removed, or a volume unmounted.
	ErrUnavailable = errors.New("archive unavailable")
	// ErrDamaged is returned when a file does not match its description
	// (size, SHA-256, content), or a description does not parse.
	ErrDamaged = errors.New("archive file damaged")
	// ErrConflict is returned when a segment or snapshot is added that
	// the archive holds with another content.
	ErrConflict = errors.New("archive holds another file under that name")
	// ErrNotHeld is returned when a restore asks for a point the archive
	// does not hold.
	ErrNotHeld = errors.New("the archive does not hold that point")
	// ErrAmbiguous is returned when several histories hold the point a
	// restore asks for.
	ErrAmbiguous = errors.New("several histories hold that point")
	// ErrReadOnly is returned when an archive opened read-only is written.
	ErrReadOnly = errors.New("archive opened read-only")
)

// Archive is one archive directory.
type Archive struct {
	// CPUShare is the share of one core a copy may take (as
	// snapshot.Store's); 0 or 1: no limit. Set it before use.
	CPUShare float64
	// RetainFor and RetainSnapshots are the retention Prune applies; 0
	// sets no cap (see Prune).
	RetainFor       time.Duration
	RetainSnapshots int

	dir      string
	logger   *slog.Logger
	writable bool
	lock     *os.File
	id       string

	mu sync.Mutex // one write at a time; guards cache
	// cache holds, for an archive open for writing, the histories read
	// so far, kept up to date by the writes: the master looks at its
	// history at every round, and one process writes the archive. Check
	// empties it when the directory is not the archive any more.
	cache map[string]*History
}

// Open opens the archive in dir for writing, creating it when dir is
// missing or empty: it takes the archive's lock (ErrInUse when another
// process holds it) and removes what a crash left (temporary files, files
// without a description). A directory that is neither empty nor an
// archive is refused (ErrNotArchive).
func Open(dir string, logger *slog.Logger) (*Archive, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	a := &Archive{dir: dir, logger: logger, writable: true}
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrInUse, dir, err)
	}
	a.lock = f
	if err := a.openMarker(); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.clean(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// openMarker reads the archive's marker, or creates it in an empty
// directory.
func (a *Archive) openMarker() error {
	m, err := readMarker(a.dir)
	if err == nil {
		a.id = m.ID
		return nil
	}
	if !errors.Is(err, errNoMarker) {
		return fmt.Errorf("archive: %w", err)
	}
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	for _, e := range entries {
		if e.Name() != lockName && e.Name() != markerName+tmpSuffix {
			return fmt.Errorf("%w: %s is not empty (it holds %s) and has no %s", ErrNotArchive, a.dir, e.Name(), markerName)
		}
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	m = marker{Format: Format, ID: hex.EncodeToString(b), Created: time.Now().UTC()}
	if err := writeJSON(filepath.Join(a.dir, markerName), m); err != nil {
		return fmt.Errorf("archive: create %s: %w", markerName, err)
	}
	a.id = m.ID
	a.logger.Info("archive created", "dir", a.dir)
	return nil
}

// OpenReadOnly opens the archive in dir to read it (List, Restore,
// Verify), beside the process that may be writing it: it takes no lock
// and removes nothing; files being written are not described yet, so it
// does not see them.
func OpenReadOnly(dir string) (*Archive, error) {
	m, err := readMarker(dir)
	if errors.Is(err, errNoMarker) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("archive: %w", serr)
		}
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotArchive, dir, markerName)
	} else if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &Archive{dir: dir, logger: slog.New(slog.DiscardHandler), id: m.ID}, nil
}

// Dir returns the archive's directory.
func (a *Archive) Dir() string { return a.dir }

// Close releases the archive's lock.
func (a *Archive) Close() error {
	if a.lock == nil {
		return nil
	}
	err := a.lock.Close()
	a.lock = nil
	return err
}

// Check returns an error wrapping ErrUnavailable when the directory is no
// longer the archive that was opened (removed, or its volume unmounted,
// leaving the empty mount point): a copy must not go to the wrong disk.
func (a *Archive) Check() error {
	m, err := readMarker(a.dir)
	if err == nil && m.ID != a.id {
		err = fmt.Errorf("%s is another archive now (id %s, opened as %s; was another volume mounted?)", a.dir, m.ID, a.id)
	} else if err != nil {
		err = fmt.Errorf("%s: %v (was its volume unmounted?)", a.dir, err)
	}
	if err != nil {
		a.mu.Lock()
		a.cache = nil // what it held may have changed meanwhile
		a.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// clean removes what a crash left in the archive: temporary files, files
// without their description, and descriptions without their file (which
// the order of writes and removals never leaves, but a description must
// never claim a file it does not have).
func (a *Archive) clean() error {
	_ = os.Remove(filepath.Join(a.dir, markerName+tmpSuffix))
	ids, err := a.historyIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		hdir := historyDir(a.dir, id)
		entries, err := os.ReadDir(hdir)
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		names := make(map[string]bool, len(entries))
		for _, e := range entries {
			names[e.Name()] = true
		}
		removed := false
		remove := func(name, why string) {
			if err := os.Remove(filepath.Join(hdir, name)); err == nil {
				a.logger.Warn("archive: removed what a crash left", "file", filepath.Join(hdir, name), "why", why)
				removed = true
			}
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasSuffix(name, tmpSuffix) {
				remove(name, "a copy in progress")
				continue
			}
			k, ok := parseName(name)
			if !ok {
				continue
			}
			data, desc := dataName(k), descName(k)
			if !k.desc && !names[desc] {
				remove(name, "a copy without its description")
			} else if k.desc && !names[data] {
				remove(name, "a description without its file")
			}
		}
		if removed {
			if err := durable.SyncDir(hdir); err != nil {
				return fmt.Errorf("archive: %w", err)
			}
		}
	}
	return nil
}

func dataName(k fileKind) string {
	if k.segment {
		return fmt.Sprintf("%s%020d%s", segmentPrefix, k.index, segmentExt)
	}
	return fmt.Sprintf("%s%020d%s", snapshotPrefix, k.index, snapshotExt)
}

func descName(k fileKind) string {
	if k.segment {
		return fmt.Sprintf("%s%020d%s", segmentPrefix, k.index, descExt)
	}
	return fmt.Sprintf("%s%020d%s", snapshotPrefix, k.index, descExt)
}

// historyIDs returns the log_ids the archive has a directory for.
func (a *Archive) historyIDs() ([]string, error) {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && validLogID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// History is what the archive holds of one history (log_id): its
// snapshots and its segments, oldest first.
type History struct {
	LogID     string
	Snapshots []SnapshotInfo
	Segments  []SegmentInfo
}

// SnapshotPath and SegmentPath return the files of the archive's
// snapshot at index and segment from first of history logID.
func (a *Archive) SnapshotPath(logID string, index uint64) string {
	return snapshotPath(a.dir, logID, index)
}

// SegmentPath returns the file of the segment of history logID that
// starts at first.
func (a *Archive) SegmentPath(logID string, first uint64) string {
	return segmentPath(a.dir, logID, first)
}

// List returns every history the archive holds, the oldest first (by its
// oldest file). A description that does not parse is skipped (Verify
// reports it).
func (a *Archive) List() ([]History, error) {
	if a.writable {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	return a.list()
}

func (a *Archive) list() ([]History, error) {
	ids, err := a.historyIDs()
	if err != nil {
		return nil, err
	}
	var out []History
	for _, id := range ids {
		h, err := a.history(id)
		if err != nil {
			return nil, err
		}
		if len(h.Snapshots)+len(h.Segments) > 0 {
			out = append(out, h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].oldest().Before(out[j].oldest()) })
	return out, nil
}

// oldest is when the history's oldest file was made.
func (h *History) oldest() time.Time {
	var t time.Time
	for _, s := range h.Snapshots {
		if t.IsZero() || s.Created.Before(t) {
			t = s.Created
		}
	}
	for _, s := range h.Segments {
		if t.IsZero() || (!s.FirstTime.IsZero() && s.FirstTime.Before(t)) {
			t = s.FirstTime
		}
	}
	return t
}

// History returns what the archive holds of history logID (nothing when
// it holds none).
func (a *Archive) History(logID string) (History, error) {
	if a.writable {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	return a.history(logID)
}

// history is History; an archive open for writing answers from its cache.
func (a *Archive) history(logID string) (History, error) {
	if !a.writable {
		return a.readHistory(logID)
	}
	if h, ok := a.cache[logID]; ok {
		return h.clone(), nil
	}
	h, err := a.readHistory(logID)
	if err != nil {
		return h, err
	}
	if a.cache == nil {
		a.cache = make(map[string]*History)
	}
	c := h.clone()
	a.cache[logID] = &c
	return h, nil
}

func (h *History) clone() History {
	return History{LogID: h.LogID, Snapshots: append([]SnapshotInfo(nil), h.Snapshots...),
		Segments: append([]SegmentInfo(nil), h.Segments...)}
}

// cached applies fn to the cached history logID, if it is cached.
func (a *Archive) cached(logID string, fn func(h *History)) {
	if h, ok := a.cache[logID]; ok {
		fn(h)
	}
}

// readHistory reads history logID from its directory.
func (a *Archive) readHistory(logID string) (History, error) {
	h := History{LogID: logID}
	if !validLogID(logID) {
		return h, fmt.Errorf("archive: %q is not a log_id (32 hex characters)", logID)
	}
	hdir := historyDir(a.dir, logID)
	entries, err := os.ReadDir(hdir)
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	} else if err != nil {
		return h, fmt.Errorf("archive: %w", err)
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		k, ok := parseName(e.Name())
		if !ok || !k.desc || !names[dataName(k)] {
			continue
		}
		path := filepath.Join(hdir, e.Name())
		if k.segment {
			var s SegmentInfo
			if err := readJSON(path, &s); err != nil {
				a.logger.Warn("archive: skipping a segment", "err", err)
				continue
			}
			if s.LogID != logID || s.First != k.index {
				a.logger.Warn("archive: skipping a segment whose description does not match its name", "file", path)
				continue
			}
			h.Segments = append(h.Segments, s)
		} else {
			var s SnapshotInfo
			if err := readJSON(path, &s); err != nil {
				a.logger.Warn("archive: skipping a snapshot", "err", err)
				continue
			}
			if s.LogID != logID || s.Index != k.index {
				a.logger.Warn("archive: skipping a snapshot whose description does not match its name", "file", path)
				continue
			}
			h.Snapshots = append(h.Snapshots, s)
		}
	}
	// Names sort by index.
	return h, nil
}

// segment returns the described segment of logID that starts at first.
func (a *Archive) segment(logID string, first uint64) (SegmentInfo, bool, error) {
	var s SegmentInfo
	err := readJSON(descPath(segmentPath(a.dir, logID, first)), &s)
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	return s, err == nil, err
}

// snapshotInfo returns the described snapshot of logID at index.
func (a *Archive) snapshotInfo(logID string, index uint64) (SnapshotInfo, bool, error) {
	var s SnapshotInfo
	err := readJSON(descPath(snapshotPath(a.dir, logID, index)), &s)
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	return s, err == nil, err
}

// mkHistory creates the directory of history logID.
func (a *Archive) mkHistory(logID string) error {
	hdir := historyDir(a.dir, logID)
	if _, err := os.Stat(hdir); err == nil {
		return nil
	}
	if err := os.Mkdir(hdir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return durable.SyncDir(a.dir)
}

// AddSegment copies the sealed segment file src, which holds entries
// first..last of log logID, to the archive and describes it. The copy is
// checked before it is described: its SHA-256 computed as it is written,
// then opened as a segment file (log_id, bounds, every entry's checksum),
// which also gives its entries' times. A segment the archive already holds
// is not copied again; one it holds with other bounds gives ErrConflict.
func (a *Archive) AddSegment(ctx context.Context, logID, src string, first, last uint64) (SegmentInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.writable {
		return SegmentInfo{}, ErrReadOnly
	}
	if !validLogID(logID) || first == 0 || last < first {
		return SegmentInfo{}, fmt.Errorf("archive: add segment %s %d..%d: not a log_id and bounds", logID, first, last)
	}
	dst := segmentPath(a.dir, logID, first)
	if have, ok, err := a.segment(logID, first); err != nil {
		return SegmentInfo{}, fmt.Errorf("archive: %w", err)
	} else if ok {
		if have.Last != last {
			return have, fmt.Errorf("%w: %s holds entries %d..%d, the segment to add %d..%d", ErrConflict, dst, have.First, have.Last, first, last)
		}
		return have, nil
	}
	if err := a.mkHistory(logID); err != nil {
		return SegmentInfo{}, fmt.Errorf("archive: %w", err)
	}
	tmp := dst + tmpSuffix
	p := pace.New(a.CPUShare)
	size, sum, err := copyFile(ctx, src, tmp, p)
	if err != nil {
		_ = os.Remove(tmp)
		return SegmentInfo{}, fmt.Errorf("archive: copy %s: %w", src, err)
	}
	info := SegmentInfo{Format: Format, LogID: logID, First: first, Last: last, Size: size, SHA256: sum}
	if err := scanSegment(ctx, tmp, &info, p); err != nil {
		_ = os.Remove(tmp)
		return SegmentInfo{}, fmt.Errorf("archive: check the copy of %s: %w", src, err)
	}
	info.Archived = time.Now().UTC()
	if err := a.commit(tmp, dst, &info); err != nil {
		return SegmentInfo{}, err
	}
	a.cached(logID, func(h *History) {
		h.Segments = append(h.Segments, info)
		sort.Slice(h.Segments, func(i, j int) bool { return h.Segments[i].First < h.Segments[j].First })
	})
	return info, nil
}

// commit renames the checked copy tmp to dst and writes its description.
func (a *Archive) commit(tmp, dst string, desc any) error {
	err := os.Rename(tmp, dst)
	if err == nil {
		err = durable.SyncDir(filepath.Dir(dst))
	}
	if err == nil {
		err = writeJSON(descPath(dst), desc)
	}
	if err != nil {
		_ = os.Remove(tmp)
		_ = os.Remove(dst)
		return fmt.Errorf("archive: %s: %w", dst, err)
	}
	return nil
}

// scanSegment checks the segment file at path against info's log_id and
// bounds, and reads its entries' times into info.
func scanSegment(ctx context.Context, path string, info *SegmentInfo, p *pace.Pacer) error {
	f, err := wal.OpenSegmentFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.LogID() != info.LogID || f.First() != info.First || f.Last() != info.Last {
		return fmt.Errorf("%w: it holds entries %d..%d of log %s, not %d..%d of log %s",
			ErrDamaged, f.First(), f.Last(), f.LogID(), info.First, info.Last, info.LogID)
	}
	var maxMS int64
	return f.Times(func(index uint64, ms int64) error {
		t := time.UnixMilli(ms).UTC()
		if index == info.First {
			info.FirstTime, maxMS = t, ms
		}
		if ms > maxMS {
			maxMS = ms
		}
		if index == info.Last {
			info.LastTime, info.MaxTime = t, time.UnixMilli(maxMS).UTC()
		}
		if index%4096 == 0 {
			return p.Pace(ctx)
		}
		return nil
	})
}

// copyChunk is the unit of a copy between two paces.
const copyChunk = 1 << 20

// copyFile copies src to a new file dst, fsynced, and returns its size
// and SHA-256.
func copyFile(ctx context.Context, src, dst string, p *pace.Pacer) (int64, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, "", err
	}
	defer out.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), &pacedReader{ctx: ctx, r: in, p: p})
	if err != nil {
		return 0, "", err
	}
	if err := out.Sync(); err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), out.Close()
}

// pacedReader calls its pacer after every copyChunk bytes read.
type pacedReader struct {
	ctx  context.Context
	r    io.Reader
	p    *pace.Pacer
	read int
}

func (r *pacedReader) Read(b []byte) (int, error) {
	if r.read >= copyChunk {
		r.read = 0
		if err := r.p.Pace(r.ctx); err != nil {
			return 0, err
		}
	}
	if len(b) > copyChunk {
		b = b[:copyChunk]
	}
	n, err := r.r.Read(b)
	r.read += n
	return n, err
}

// AddSnapshot copies the snapshot info of history logID, whose compressed
// file r reads, to the archive and describes it; entryTime is the time of
// the entry at info.Index (zero if unknown). The copy is checked before it
// is described: it decompresses to the database file info names (size and
// SHA-256). A snapshot the archive already holds is not copied again.
func (a *Archive) AddSnapshot(ctx context.Context, logID string, info snapshot.Info, entryTime time.Time, r io.Reader) (SnapshotInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.writable {
		return SnapshotInfo{}, ErrReadOnly
	}
	if !validLogID(logID) || (info.LogID != logID && (info.Index != 0 || info.LogID != "")) {
		return SnapshotInfo{}, fmt.Errorf("archive: add snapshot: the snapshot at %d follows log %q, not %q", info.Index, info.LogID, logID)
	}
	dst := snapshotPath(a.dir, logID, info.Index)
	if have, ok, err := a.snapshotInfo(logID, info.Index); err != nil {
		return SnapshotInfo{}, fmt.Errorf("archive: %w", err)
	} else if ok {
		if have.SHA256 != info.SHA256 {
			return have, fmt.Errorf("%w: %s holds a database with SHA-256 %s, the snapshot to add %s", ErrConflict, dst, have.SHA256, info.SHA256)
		}
		return have, nil
	}
	if err := a.mkHistory(logID); err != nil {
		return SnapshotInfo{}, fmt.Errorf("archive: %w", err)
	}
	tmp := dst + tmpSuffix
	desc := SnapshotInfo{Format: Format, LogID: logID, Index: info.Index, SHA256: info.SHA256, Size: info.Size,
		Created: info.Created.UTC(), EntryTime: entryTime.UTC()}
	if entryTime.IsZero() {
		desc.EntryTime = time.Time{}
	}
	if err := copySnapshot(ctx, r, tmp, &desc, pace.New(a.CPUShare)); err != nil {
		_ = os.Remove(tmp)
		return SnapshotInfo{}, fmt.Errorf("archive: copy the snapshot at %d: %w", info.Index, err)
	}
	if info.Compressed > 0 && desc.Compressed != info.Compressed {
		_ = os.Remove(tmp)
		return SnapshotInfo{}, fmt.Errorf("archive: copy the snapshot at %d: %w: %d compressed bytes, the snapshot has %d",
			info.Index, ErrDamaged, desc.Compressed, info.Compressed)
	}
	desc.Archived = time.Now().UTC()
	if err := a.commit(tmp, dst, &desc); err != nil {
		return SnapshotInfo{}, err
	}
	a.cached(logID, func(h *History) {
		h.Snapshots = append(h.Snapshots, desc)
		sort.Slice(h.Snapshots, func(i, j int) bool { return h.Snapshots[i].Index < h.Snapshots[j].Index })
	})
	return desc, nil
}

// copySnapshot writes the compressed snapshot r reads to a new file dst,
// fsynced, decompressing it on the way to check it against desc's size and
// SHA-256, and sets desc's Compressed and FileSHA256.
func copySnapshot(ctx context.Context, r io.Reader, dst string, desc *SnapshotInfo, p *pace.Pacer) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	tee := io.TeeReader(&pacedReader{ctx: ctx, r: r, p: p}, cw)
	n, sum, err := snapshot.Decompress(tee, io.Discard)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	// The decoder may stop before the end of the file: copy the rest.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if n != desc.Size || sum != desc.SHA256 {
		return fmt.Errorf("%w: it decompresses to %d bytes with SHA-256 %s, the snapshot says %d bytes with %s",
			ErrDamaged, n, sum, desc.Size, desc.SHA256)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	desc.Compressed, desc.FileSHA256 = cw.n, hex.EncodeToString(h.Sum(nil))
	return out.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// checkFile returns an error wrapping ErrDamaged, naming path, when the
// file's size or SHA-256 is not the one given.
func checkFile(ctx context.Context, path string, size int64, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
	if err != nil {
		return fmt.Errorf("archive: read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return fmt.Errorf("%w: %s: %d bytes with SHA-256 %s, its description says %d bytes with %s (truncated or corrupt)",
			ErrDamaged, path, n, got, size, sum)
	}
	return nil
}

// ctxReader stops a read once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(b)
}

// CheckSegment and CheckSnapshot check an archived file against its
// description: size and SHA-256 (ErrDamaged naming the file).
func (a *Archive) CheckSegment(ctx context.Context, s SegmentInfo) error {
	return checkFile(ctx, segmentPath(a.dir, s.LogID, s.First), s.Size, s.SHA256)
}

// CheckSnapshot checks an archived snapshot's file against its
// description.
func (a *Archive) CheckSnapshot(ctx context.Context, s SnapshotInfo) error {
	return checkFile(ctx, snapshotPath(a.dir, s.LogID, s.Index), s.Compressed, s.FileSHA256)
}

// Verify checks every described file of the archive against its
// description, calling fn with each file and its error (nil when it
// matches), and every description that does not parse. It returns an
// error wrapping ErrDamaged when any file failed.
func (a *Archive) Verify(ctx context.Context, fn func(path string, err error)) error {
	ids, err := a.historyIDs()
	if err != nil {
		return err
	}
	bad, files := 0, 0
	report := func(path string, err error) {
		files++
		if err != nil {
			bad++
		}
		if fn != nil {
			fn(path, err)
		}
	}
	for _, id := range ids {
		hdir := historyDir(a.dir, id)
		entries, err := os.ReadDir(hdir)
		if err != nil {
			return fmt.Errorf("archive: %w", err)
		}
		for _, e := range entries {
			k, ok := parseName(e.Name())
			if !ok || !k.desc {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			path := filepath.Join(hdir, e.Name())
			if k.segment {
				var s SegmentInfo
				if err := readJSON(path, &s); err != nil {
					report(path, err)
					continue
				}
				report(segmentPath(a.dir, id, k.index), a.CheckSegment(ctx, s))
			} else {
				var s SnapshotInfo
				if err := readJSON(path, &s); err != nil {
					report(path, err)
					continue
				}
				report(snapshotPath(a.dir, id, k.index), a.CheckSnapshot(ctx, s))
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%w: %d of %d files do not match their description", ErrDamaged, bad, files)
	}
	return nil
}
