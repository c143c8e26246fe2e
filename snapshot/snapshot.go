// Package snapshot keeps a node's snapshots: consistent copies of its
// SQLite database at one applied index, compressed with zstd, checksummed,
// in a directory of the node's data directory.
//
// A snapshot is two files: snapshot-<index>.sqlite.zst, the database file
// (a plain SQLite file once decompressed, that sqlite3 opens; walship's own
// _walship row in it says the index and log_id), and snapshot-<index>.json,
// what it is (Info). Both are written to temporary names, fsynced, and
// renamed, the description last: a snapshot with a description is whole.
package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/klauspost/compress/zstd"

	"github.com/walship/walship/db"
	"github.com/walship/walship/durable"
	"github.com/walship/walship/pace"
)

// ErrNone is returned when the store holds no snapshot.
var ErrNone = errors.New("no snapshot")

// ErrNoSpace is returned by Make when the volume has no room for the
// snapshot: it does not start, rather than fill the volume and fail.
var ErrNoSpace = errors.New("not enough free space for a snapshot")

// Info describes one snapshot.
type Info struct {
	// Index and LogID are the position the database is at.
	Index uint64 `json:"index"`
	LogID string `json:"log_id"`
	// SHA256 is the hex SHA-256 of the database file, uncompressed.
	SHA256 string `json:"sha256"`
	// Size is the database file's size, Compressed the stored file's.
	Size       int64 `json:"size"`
	Compressed int64 `json:"compressed"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
}

// Store is the snapshots of one node, in one directory.
type Store struct {
	// CPUShare is the share of one core a snapshot may take while it is
	// made (0.25: it works a quarter of the time and waits the rest), so
	// that the writer keeps most of the machine; 0 or 1 and above: no
	// limit. Set it before the store is used.
	CPUShare float64

	dir    string
	logger *slog.Logger

	mu     sync.Mutex // one Make at a time
	latest *Info
}

// Open returns the store in dir, creating the directory, removing what an
// interrupted Make left behind.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	s := &Store{dir: dir, logger: logger}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	infos, err := s.list()
	if err != nil {
		return nil, err
	}
	if len(infos) > 0 {
		s.latest = &infos[len(infos)-1]
	}
	return s, nil
}

// TempPath returns a path in the store's directory for a temporary file
// of another kind (a backup being served): the store removes what such a
// file left behind when it opens.
func (s *Store) TempPath(prefix string) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%d.tmp", prefix, time.Now().UnixNano()))
}

func (s *Store) dataPath(index uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("snapshot-%020d.sqlite.zst", index))
}

func (s *Store) infoPath(index uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("snapshot-%020d.json", index))
}

// list returns the whole snapshots, oldest first.
func (s *Store) list() ([]Info, error) {
	names, err := filepath.Glob(filepath.Join(s.dir, "snapshot-*.json"))
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("snapshot store: %w", err)
		}
		var info Info
		if err := json.Unmarshal(b, &info); err != nil {
			s.logger.Warn("ignoring a damaged snapshot description", "file", name, "err", err)
			continue
		}
		if _, err := os.Stat(s.dataPath(info.Index)); err != nil {
			s.logger.Warn("ignoring a snapshot without its data", "file", name, "err", err)
			continue
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// Latest returns the newest snapshot, or ErrNone.
func (s *Store) Latest() (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return Info{}, ErrNone
	}
	return *s.latest, nil
}

// Make takes a snapshot of d now and keeps it as the latest, removing the
// ones before it. The writer of d goes on meanwhile.
func (s *Store) Make(ctx context.Context, d *db.DB) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.latest; l != nil && l.Index == d.AppliedIndex() && l.LogID == d.LogID() {
		return *l, nil // nothing was applied since
	}
	if err := s.checkSpace(d); err != nil {
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	start := time.Now()
	raw := filepath.Join(s.dir, fmt.Sprintf("backup-%d.tmp", start.UnixNano()))
	defer os.Remove(raw)
	p := pace.New(s.CPUShare)
	pos, err := d.Backup(ctx, raw, p.Pace)
	if err != nil {
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	if l := s.latest; l != nil && l.Index == pos.Index && l.LogID == pos.LogID {
		return *l, nil
	}
	info := Info{Index: pos.Index, LogID: pos.LogID, Created: start.UTC()}
	zpath := s.dataPath(pos.Index) + ".tmp"
	if err := compressFile(ctx, raw, zpath, &info, p.Pace); err != nil {
		_ = os.Remove(zpath)
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(zpath, s.dataPath(pos.Index)); err != nil {
		_ = os.Remove(zpath)
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := durable.WriteFile(s.infoPath(pos.Index), b, 0o644); err != nil {
		return Info{}, fmt.Errorf("snapshot: %w", err)
	}
	old := s.latest
	s.latest = &info
	if old != nil && old.Index != info.Index {
		_ = os.Remove(s.infoPath(old.Index))
		_ = os.Remove(s.dataPath(old.Index))
	}
	s.logger.Info("snapshot taken", "index", info.Index, "size", info.Size, "compressed", info.Compressed,
		"took", time.Since(start).Round(time.Millisecond))
	return info, nil
}

// checkSpace refuses a snapshot of d that the volume cannot hold: it needs
// about the database's size for the copy, and for the compressed file
// what the latest one took (the database's size again when there is
// none). A snapshot that would fail anyway would first take the space the
// writer needs.
func (s *Store) checkSpace(d *db.DB) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return nil // unknown: the copy finds out
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(d.Path() + suffix); err == nil {
			size += fi.Size()
		}
	}
	compressed := size
	if s.latest != nil {
		compressed = s.latest.Compressed
	}
	if need := size + compressed; free < need {
		return fmt.Errorf("%w: it needs about %d bytes, %d are free", ErrNoSpace, need, free)
	}
	return nil
}

// Open opens the compressed data of snapshot info.
func (s *Store) Open(info Info) (*os.File, error) {
	return os.Open(s.dataPath(info.Index))
}

// compressFile writes src compressed to dst (fsynced), filling the sizes
// and the checksum of info, calling pace after every MiB.
func compressFile(ctx context.Context, src, dst string, info *Info, pace func(context.Context) error) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	// One goroutine: a snapshot takes at most one core.
	enc, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, rerr := io.ReadFull(in, buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, err := enc.Write(buf[:k]); err != nil {
				enc.Close()
				return err
			}
			n += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			enc.Close()
			return rerr
		}
		if err := pace(ctx); err != nil {
			enc.Close()
			return err
		}
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	fi, err := out.Stat()
	if err != nil {
		return err
	}
	info.Size, info.Compressed, info.SHA256 = n, fi.Size(), hex.EncodeToString(h.Sum(nil))
	return out.Close()
}

// Decompress writes the database file of a compressed snapshot read from r
// to w, and returns its size and hex SHA-256, for checking against the
// snapshot's Info. The hash is computed beside the writes, in a second
// goroutine, so that a bootstrap costs little more than the copy.
func Decompress(r io.Reader, w io.Writer) (int64, string, error) {
	dec, err := zstd.NewReader(r)
	if err != nil {
		return 0, "", err
	}
	defer dec.Close()
	const chunks, chunkSize = 4, 1 << 20
	free := make(chan []byte, chunks)
	for range chunks {
		free <- make([]byte, chunkSize)
	}
	toHash := make(chan []byte, chunks)
	h := sha256.New()
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for b := range toHash {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	var n int64
	for err == nil {
		b := <-free
		k := 0
		for k < len(b) && err == nil {
			var m int
			m, err = dec.Read(b[k:])
			k += m
		}
		if k > 0 {
			if _, werr := w.Write(b[:k]); werr != nil {
				err = werr
			}
			n += int64(k)
		}
		toHash <- b[:k]
	}
	close(toHash)
	<-hashed
	if err != io.EOF {
		return n, "", fmt.Errorf("decompress snapshot: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// ErrDamaged is returned when a snapshot does not decompress to the
// database file its checksum names.
var ErrDamaged = errors.New("snapshot damaged")

// Restore writes the database file of the stored snapshot info to path
// (which must not exist), fsynced, checking it against info's checksum and
// size; a damaged one is removed and gives an error wrapping ErrDamaged.
func (s *Store) Restore(info Info, path string) error {
	f, err := s.Open(info)
	if err != nil {
		return err
	}
	defer f.Close()
	return Extract(f, path, info.SHA256, info.Size)
}

// Extract decompresses a snapshot read from r into a new file at path,
// fsynced, and checks it against the SHA-256 (hex) and size it must have; a
// file that does not match is removed and the error wraps ErrDamaged.
func Extract(r io.Reader, path, sha string, size int64) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, sum, err := Decompress(r, out)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && (sum != sha || (size >= 0 && n != size)) {
		err = fmt.Errorf("%w: %d bytes with SHA-256 %s, want %d bytes with %s", ErrDamaged, n, sum, size, sha)
	} else if err != nil {
		err = fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if err != nil {
		_ = os.Remove(path)
	}
	return err
}
