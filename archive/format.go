package archive

// This file is the one place that defines an archive's files: their names
// and the JSON descriptions beside them. Changing anything here changes
// the format of every existing archive: add a new Format instead.
//
//	DIR/walship-archive.json                the archive's identity (marker)
//	DIR/lock                                held by the one master that writes
//	DIR/<log_id>/                           one history (32 hex characters)
//	DIR/<log_id>/log-<first>.db             a sealed log segment, as the master sealed it
//	DIR/<log_id>/log-<first>.json           its description (SegmentInfo)
//	DIR/<log_id>/snapshot-<index>.sqlite.zst  a snapshot, as the master took it (zstd)
//	DIR/<log_id>/snapshot-<index>.json      its description (SnapshotInfo)
//	*.tmp                                   being written
//
// Indexes in names are 20 digits, zero-padded, so that name order is
// index order. A file is written to its .tmp name, fsynced, renamed, and
// the directory fsynced; its description is written the same way after
// it. A description therefore always names a whole file; a file without
// a description is a copy a crash cut short, removed when the archive
// opens for writing; a description is removed before its file.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/durable"
)

// Format is the version of the descriptions this package writes and reads.
const Format = 1

// Names of the files of an archive.
const (
	markerName = "walship-archive.json"
	lockName   = "lock"
	tmpSuffix  = ".tmp"

	segmentPrefix  = "log-"
	segmentExt     = ".db"
	snapshotPrefix = "snapshot-"
	snapshotExt    = ".sqlite.zst"
	descExt        = ".json"
)

// marker is the content of walship-archive.json: what makes a directory
// an archive, and which one (an unmounted volume's empty mount point is
// not the archive the master opened).
type marker struct {
	Format  int       `json:"format"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// SegmentInfo describes one archived log segment.
type SegmentInfo struct {
	Format int    `json:"format"`
	LogID  string `json:"log_id"`
	// First and Last are the indexes of its first and last entries.
	First uint64 `json:"first_index"`
	Last  uint64 `json:"last_index"`
	// FirstTime and LastTime are the times of its first and last
	// entries, MaxTime the latest time of any of its entries (a master's
	// clock set back makes them differ), to the millisecond.
	FirstTime time.Time `json:"first_time"`
	LastTime  time.Time `json:"last_time"`
	MaxTime   time.Time `json:"max_time"`
	// Size and SHA256 (hex) are the file's.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Archived is when the copy was made.
	Archived time.Time `json:"archived"`
}

// SnapshotInfo describes one archived snapshot: the master's snapshot
// (snapshot.Info) and what the archive adds.
type SnapshotInfo struct {
	Format int `json:"format"`
	// LogID is the history the snapshot belongs to. The database's own
	// _walship row says the same, except at index 0 (an empty database,
	// before it followed any log), where it says "".
	LogID string `json:"log_id"`
	Index uint64 `json:"index"`
	// SHA256 and Size are the database file's, uncompressed (as
	// snapshot.Info says); Compressed and FileSHA256 the stored file's.
	SHA256     string `json:"sha256"`
	Size       int64  `json:"size"`
	Compressed int64  `json:"compressed"`
	FileSHA256 string `json:"file_sha256"`
	// Created is when the master took it; EntryTime the time of the
	// entry at Index (zero when unknown: index 0, or an entry the master's
	// log no longer held).
	Created   time.Time `json:"created"`
	EntryTime time.Time `json:"entry_time,omitzero"`
	Archived  time.Time `json:"archived"`
}

// validLogID reports whether id is a log_id: 32 lowercase hex characters.
func validLogID(id string) bool {
	if len(id) != 32 || strings.ToLower(id) != id {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func validSHA256(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// Validate checks what a description must hold.
func (s *SegmentInfo) Validate() error {
	switch {
	case s.Format != Format:
		return fmt.Errorf("format %d, want %d", s.Format, Format)
	case !validLogID(s.LogID):
		return fmt.Errorf("log_id %q", s.LogID)
	case s.First == 0 || s.Last < s.First:
		return fmt.Errorf("indexes %d..%d", s.First, s.Last)
	case s.Size <= 0 || !validSHA256(s.SHA256):
		return fmt.Errorf("size %d, sha256 %q", s.Size, s.SHA256)
	}
	return nil
}

// Validate checks what a description must hold.
func (s *SnapshotInfo) Validate() error {
	switch {
	case s.Format != Format:
		return fmt.Errorf("format %d, want %d", s.Format, Format)
	case !validLogID(s.LogID):
		return fmt.Errorf("log_id %q", s.LogID)
	case s.Size <= 0 || s.Compressed <= 0 || !validSHA256(s.SHA256) || !validSHA256(s.FileSHA256):
		return fmt.Errorf("sizes %d and %d, sha256 %q and %q", s.Size, s.Compressed, s.SHA256, s.FileSHA256)
	}
	return nil
}

// historyDir is the directory of history logID.
func historyDir(dir, logID string) string { return filepath.Join(dir, logID) }

func segmentPath(dir, logID string, first uint64) string {
	return filepath.Join(dir, logID, fmt.Sprintf("%s%020d%s", segmentPrefix, first, segmentExt))
}

func snapshotPath(dir, logID string, index uint64) string {
	return filepath.Join(dir, logID, fmt.Sprintf("%s%020d%s", snapshotPrefix, index, snapshotExt))
}

// descPath is the description of the file at path.
func descPath(path string) string {
	switch {
	case strings.HasSuffix(path, snapshotExt):
		return strings.TrimSuffix(path, snapshotExt) + descExt
	case strings.HasSuffix(path, segmentExt):
		return strings.TrimSuffix(path, segmentExt) + descExt
	}
	return path + descExt
}

// fileKind tells what a name in a history directory is: a segment or a
// snapshot, its file or its description, and its index.
type fileKind struct {
	segment bool // else a snapshot
	desc    bool // else the data file
	index   uint64
}

func parseName(name string) (fileKind, bool) {
	var k fileKind
	var rest string
	switch {
	case strings.HasPrefix(name, segmentPrefix):
		k.segment, rest = true, strings.TrimPrefix(name, segmentPrefix)
	case strings.HasPrefix(name, snapshotPrefix):
		rest = strings.TrimPrefix(name, snapshotPrefix)
	default:
		return k, false
	}
	if len(rest) < 20 {
		return k, false
	}
	digits, ext := rest[:20], rest[20:]
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return k, false
	}
	k.index = n
	switch {
	case ext == descExt:
		k.desc = true
	case k.segment && ext == segmentExt, !k.segment && ext == snapshotExt:
	default:
		return k, false
	}
	return k, true
}

// writeJSON writes v to path durably: a temporary file, fsynced, renamed,
// the directory fsynced.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

// readJSON reads the description at path into v and validates it.
func readJSON(path string, v interface{ Validate() error }) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return nil
}

// errNoMarker is returned by readMarker when the file is missing.
var errNoMarker = errors.New("no " + markerName)

func readMarker(dir string) (marker, error) {
	var m marker
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if errors.Is(err, os.ErrNotExist) {
		return m, errNoMarker
	} else if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Format != Format || m.ID == "" {
		return m, fmt.Errorf("%w: %s: not a walship archive's marker (format %d, %v)",
			ErrDamaged, filepath.Join(dir, markerName), m.Format, err)
	}
	return m, nil
}
