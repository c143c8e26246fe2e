package wal

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/walship/walship/durable"
)

// Defaults of Options.
const (
	// DefaultEpoch is the epoch of a new log when Options.Epoch is 0.
	DefaultEpoch = 1
	// DefaultTimeout is how long Open waits for the file lock when
	// Options.Timeout is 0.
	DefaultTimeout = time.Second
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Epoch is the epoch of a NEW log. 0 means DefaultEpoch (1). It is
	// ignored when the log already exists: its stored epoch is kept.
	Epoch uint64

	// Timeout is how long Open waits for the exclusive file lock, which
	// another process (or another Log in this one) may hold. 0 means
	// DefaultTimeout (1s).
	Timeout time.Duration

	// NoSync skips the fsync of each commit. Only for tests and benchmarks:
	// with it, an acknowledged append can be lost in a power failure.
	NoSync bool

	// BeforeCommit, if set, is a failpoint called inside Append's
	// transaction after the entries are written and before the commit. An
	// error aborts the append: nothing is written, and Append returns an
	// error that wraps it. It runs under the log's write lock: it may call
	// the accessors (LastIndex, Epoch, …) but no other method of the Log.
	BeforeCommit func(entries []*Entry) error

	// AfterCommit, if set, is called with the new last index after Append's
	// commit (and its fsync) returned and LastIndex() shows it, before
	// Append returns. It runs outside the log's locks.
	AfterCommit func(last uint64)

	// LogID and FirstIndex are the identity of a NEW log: its log_id (32
	// hexadecimal characters; "" means a fresh random one) and the index
	// of its first entry (0 means 1), for a log that continues a database
	// already at FirstIndex-1 (a new history: see Restart). Both are
	// ignored when the log exists.
	LogID      string
	FirstIndex uint64

	// SegmentBytes starts a new segment file once the active one (log.db)
	// holds this many bytes: the full one is sealed under the name of its
	// first index, and Truncate deletes sealed segments whole, which gives
	// their space back (bbolt keeps freed pages in its file). 0 means no
	// limit: one file.
	SegmentBytes int64
}

// Log represents the sequenced write-ahead log, stored in bbolt files: the
// active segment (log.db), which Append writes, and the sealed segments
// before it (log-<first index>.db), read-only, which Truncate deletes whole.
// See the package documentation for its invariants.
//
// A Log is safe for concurrent use: Append calls are serialised, and any
// number of goroutines may read while one appends.
type Log struct {
	path string // the active segment's file
	opts Options
	id   string // log_id, 32 lowercase hex characters; set by Open and Restart, under mu

	// appendMu serialises Append, Truncate and Check. It is taken after
	// closeMu, before segMu.
	appendMu sync.Mutex

	// closeMu is held (read) by every operation that uses the files, and
	// (write) by Close, which so waits for them to finish.
	closeMu sync.RWMutex

	// segMu is held (read) while the segments are read, and (write) while
	// the list changes (a segment is sealed or deleted).
	segMu  sync.RWMutex
	active *segment   // log.db
	sealed []*segment // oldest first, contiguous, ending where active starts

	// mu guards the fields below: the bounds of the whole log, the epoch
	// and the last entry's epoch. They change only after a commit.
	mu        sync.RWMutex
	closed    bool
	epoch     uint64
	first     uint64 // invariant: first >= 1
	last      uint64 // invariant: last >= first-1; last == first-1 when empty
	lastEpoch uint64 // epoch of the entry at last; 0 when empty
	// activeSize is the active file's size after the last commit.
	activeSize int64
	// notify is closed at the next successful Append (and at Close) and
	// then replaced. Once the Log is closed, it stays closed.
	notify chan struct{}
}

// segment is one bbolt file of the log.
type segment struct {
	path string
	db   *bolt.DB
	// first and last are the segment's meta bounds; last is fixed for a
	// sealed segment (the Log's last is the active one's).
	first, last uint64
	epoch       uint64 // the meta epoch
	lastEpoch   uint64 // the epoch of the entry at last, 0 when empty
}

// identity is what a new active segment inherits: the log's id, epoch and
// bounds.
type identity struct {
	id          []byte
	epoch       uint64
	first, last uint64
}

// Open opens the log whose active segment is at path, with the sealed
// segments beside it, creating it if there is none: a new log has a fresh
// random log_id, epoch opts.Epoch, first index 1 and last index 0. A
// missing or empty active file next to sealed segments (a crash while a
// segment was sealed) is created anew, continuing them.
//
// Every existing file is checked before bbolt maps it, and its metadata
// after: a truncated, damaged or foreign file, or segments that do not
// follow each other, give an error wrapping ErrCorrupt that names the file.
// Open fails with bbolt's timeout error when a file stays locked by
// another Log for opts.Timeout.
func Open(path string, opts Options) (*Log, error) {
	if opts.Epoch == 0 {
		opts.Epoch = DefaultEpoch
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	l := &Log{path: path, opts: opts, notify: make(chan struct{})}
	if err := l.openSealed(); err != nil {
		l.closeFiles()
		return nil, err
	}
	// What a Restart cut by a crash left: the old log is still whole.
	_ = os.Remove(path + restartSuffix)
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := checkBoltFile(path); err != nil {
		l.closeFiles()
		return nil, err
	}
	db, err := openBolt(path, &bolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	l.active = &segment{path: path, db: db}
	if err := l.load(); err != nil {
		l.closeFiles()
		return nil, err
	}
	if created && !opts.NoSync {
		// The new file's directory entry must survive a crash too.
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("wal: open %s: sync directory: %w", path, err)
		}
	}
	return l, nil
}

// sealedPath is the name of the sealed segment whose first index is first.
func (l *Log) sealedPath(first uint64) string {
	ext := filepath.Ext(l.path)
	return fmt.Sprintf("%s-%020d%s", strings.TrimSuffix(l.path, ext), first, ext)
}

// openSealed opens the sealed segments beside the active file, read-only,
// and checks that they belong together.
func (l *Log) openSealed() error {
	ext := filepath.Ext(l.path)
	prefix := strings.TrimSuffix(l.path, ext) + "-"
	names, err := filepath.Glob(prefix + strings.Repeat("[0-9]", 20) + ext)
	if err != nil {
		return fmt.Errorf("wal: open %s: %w", l.path, err)
	}
	sort.Strings(names) // the index is zero-padded: name order is index order
	var id []byte
	for _, name := range names {
		if err := checkBoltFile(name); err != nil {
			return err
		}
		db, err := openBolt(name, &bolt.Options{Timeout: l.opts.Timeout, ReadOnly: true})
		if err != nil {
			return fmt.Errorf("wal: open %s: %w", name, err)
		}
		s := &segment{path: name, db: db}
		l.sealed = append(l.sealed, s)
		var sid []byte
		err = s.view(func(tx *bolt.Tx) error {
			var err error
			sid, err = s.loadMeta(tx)
			return err
		})
		if err != nil {
			return err
		}
		if name != l.sealedPath(s.first) {
			return corruptf("%s: holds entries from %d, its name says otherwise", name, s.first)
		}
		if s.last < s.first {
			return corruptf("%s: a sealed segment without entries", name)
		}
		if id != nil && !bytes.Equal(id, sid) {
			return corruptf("%s: belongs to log %x, the segments before it to %x", name, sid, id)
		}
		id = sid
		if n := len(l.sealed); n > 1 && l.sealed[n-2].last+1 != s.first {
			return corruptf("%s: starts at %d, but the segment before it ends at %d (a segment is missing)", name, s.first, l.sealed[n-2].last)
		}
	}
	if id != nil {
		l.id = hex.EncodeToString(id)
	}
	return nil
}

// closeFiles closes every open segment (Open's failure path).
func (l *Log) closeFiles() {
	for _, s := range l.sealed {
		_ = s.db.Close()
	}
	if l.active != nil && l.active.db != nil {
		_ = l.active.db.Close()
	}
}

// load reads the active segment's meta into memory, initialising it in a
// file that has no buckets yet, and checks it against its entries and the
// sealed segments before it.
func (l *Log) load() error {
	a := l.active
	var empty bool
	var id []byte
	err := a.view(func(tx *bolt.Tx) error {
		meta, entries := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		if meta == nil && entries == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return corruptf("%s is not a walship log: it holds bucket %q", a.path, k)
			}
			empty = true
			return nil
		}
		var err error
		id, err = a.loadMeta(tx)
		return err
	})
	if err != nil {
		return err
	}
	var prev *segment
	if n := len(l.sealed); n > 0 {
		prev = l.sealed[n-1]
	}
	if empty {
		// A new file (or one whose creation was cut short before its
		// buckets were committed): a new log, or the continuation of the
		// sealed segments.
		ident := identity{epoch: l.opts.Epoch, first: max(l.opts.FirstIndex, 1)}
		ident.last = ident.first - 1
		if prev != nil {
			ident = identity{id: mustDecodeHex(l.id), epoch: prev.epoch, first: prev.last + 1, last: prev.last}
		} else if l.opts.LogID != "" {
			id, err := hex.DecodeString(l.opts.LogID)
			if err != nil || len(id) != logIDSize {
				return fmt.Errorf("wal: open %s: log_id %q is not %d hexadecimal bytes", a.path, l.opts.LogID, logIDSize)
			}
			ident.id = id
		} else {
			ident.id = make([]byte, logIDSize)
			if _, err := rand.Read(ident.id); err != nil {
				return fmt.Errorf("wal: open %s: generate log_id: %w", a.path, err)
			}
		}
		if err := a.initialise(ident); err != nil {
			return err
		}
		id = ident.id
	} else if prev != nil {
		if hex.EncodeToString(id) != l.id {
			return corruptf("%s: belongs to log %x, the sealed segments to %s", a.path, id, l.id)
		}
		if a.first != prev.last+1 {
			return corruptf("%s: starts at %d, but the sealed segment before it ends at %d", a.path, a.first, prev.last)
		}
	}
	l.id = hex.EncodeToString(id)
	l.epoch, l.last, l.lastEpoch = a.epoch, a.last, a.lastEpoch
	l.first = a.first
	if len(l.sealed) > 0 {
		l.first = l.sealed[0].first
		if a.last < a.first {
			l.lastEpoch = prev.lastEpoch
		}
	}
	return a.view(func(tx *bolt.Tx) error {
		l.activeSize = tx.Size()
		return nil
	})
}

func mustDecodeHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// initialise writes the buckets and the meta of a new segment.
func (s *segment) initialise(ident identity) error {
	err := s.update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(bucketEntries); err != nil {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, kv := range []struct{ k, v []byte }{
			{keyLogID, ident.id},
			{keyEpoch, encodeUint64(ident.epoch)},
			{keyFirstIndex, encodeUint64(ident.first)},
			{keyLastIndex, encodeUint64(ident.last)},
		} {
			if err := meta.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wal: create %s: %w", s.path, err)
	}
	s.epoch, s.first, s.last, s.lastEpoch = ident.epoch, ident.first, ident.last, 0
	return nil
}

// loadMeta reads and checks the meta bucket in tx and the entries at its
// bounds, sets the segment's bounds, and returns the log_id it names.
func (s *segment) loadMeta(tx *bolt.Tx) ([]byte, error) {
	meta, entries := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
	if meta == nil {
		return nil, corruptf("%s: bucket %q missing", s.path, bucketMeta)
	}
	if entries == nil {
		return nil, corruptf("%s: bucket %q missing", s.path, bucketEntries)
	}
	id := meta.Get(keyLogID)
	if len(id) != logIDSize {
		return nil, corruptf("%s: meta %s: %d bytes, want %d", s.path, keyLogID, len(id), logIDSize)
	}
	var vals [3]uint64
	for i, k := range [][]byte{keyEpoch, keyFirstIndex, keyLastIndex} {
		v := meta.Get(k)
		if v == nil {
			return nil, corruptf("%s: meta %s missing", s.path, k)
		}
		n, err := decodeUint64(v)
		if err != nil {
			return nil, corruptf("%s: meta %s: %v", s.path, k, err)
		}
		vals[i] = n
	}
	epoch, first, last := vals[0], vals[1], vals[2]
	if epoch == 0 {
		return nil, corruptf("%s: meta epoch is 0", s.path)
	}
	if first == 0 || last < first-1 {
		return nil, corruptf("%s: meta bounds are impossible: first_index %d, last_index %d", s.path, first, last)
	}
	// The entries must span exactly [first, last]: check both ends.
	c := entries.Cursor()
	k, _ := c.First()
	var lastEpoch uint64
	if last < first {
		if k != nil {
			return nil, corruptf("%s: meta says the log is empty (first_index %d) but it holds key %x", s.path, first, k)
		}
	} else {
		if !bytes.Equal(k, encodeKey(first)) {
			return nil, corruptf("%s: first key is %x, meta first_index is %d", s.path, k, first)
		}
		k, v := c.Last()
		if !bytes.Equal(k, encodeKey(last)) {
			return nil, corruptf("%s: last key is %x, meta last_index is %d", s.path, k, last)
		}
		var e Entry
		if err := decodeEntry(&e, v, nil); err != nil {
			return nil, corruptf("%s: entry %d: %v", s.path, last, err)
		}
		if e.Index != last {
			return nil, corruptf("%s: entry %d: stored under key %d", s.path, e.Index, last)
		}
		lastEpoch = e.Epoch
	}
	s.epoch, s.first, s.last, s.lastEpoch = epoch, first, last, lastEpoch
	return bytes.Clone(id), nil
}

// ID returns the log_id: 32 lowercase hexadecimal characters.
func (l *Log) ID() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.id
}

// Path returns the path of the log's active file (log.db).
func (l *Log) Path() string { return l.path }

// Epoch returns the log's epoch (master generation).
func (l *Log) Epoch() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epoch
}

// SetEpoch raises the log's epoch to epoch (a promotion: the entries a
// new master appends carry it; a slave records the highest epoch it has
// seen, and refuses a master of a lower one). It is stored in the active
// segment's meta and fsynced before SetEpoch returns; a lower epoch than
// the log's is refused, the same one does nothing.
func (l *Log) SetEpoch(epoch uint64) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return ErrClosed
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	cur := l.Epoch()
	if epoch == cur {
		return nil
	}
	if epoch < cur {
		return fmt.Errorf("wal: set epoch %d: below the log's epoch %d", epoch, cur)
	}
	if l.active == nil {
		return fmt.Errorf("wal: set epoch: %w", errNoActive)
	}
	a := l.active
	err := a.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return corruptf("%s: buckets missing", a.path)
		}
		return meta.Put(keyEpoch, encodeUint64(epoch))
	})
	if err != nil {
		return fmt.Errorf("wal: set epoch %d: %w", epoch, err)
	}
	a.epoch = epoch
	l.mu.Lock()
	l.epoch = epoch
	l.mu.Unlock()
	return nil
}

// FirstIndex returns the index of the first entry the log holds, or would
// hold when empty.
func (l *Log) FirstIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first
}

// LastIndex returns the index of the last entry; FirstIndex()-1 when the
// log is empty.
func (l *Log) LastIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last
}

// LastEpoch returns the epoch of the last entry; 0 when the log is empty.
func (l *Log) LastEpoch() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastEpoch
}

// Segments returns how many files the log is kept in.
func (l *Log) Segments() int {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return len(l.sealed) + 1
}

// bounds returns first, last and whether the log is closed.
func (l *Log) bounds() (first, last uint64, closed bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first, l.last, l.closed
}

// Append appends entries to the log in one bbolt transaction (one fsync).
// entries[0].Index must be LastIndex()+1, the indices consecutive, and the
// epochs non-decreasing from LastEpoch(); otherwise Append returns an error
// wrapping ErrNotContiguous. Appending no entries does nothing. When the
// active segment has reached Options.SegmentBytes, it is sealed first and a
// new one started.
//
// When Append returns nil the entries are durable (unless Options.NoSync),
// LastIndex() covers them, and every Notify channel taken before is closed.
// On error nothing was appended. Append keeps no reference to entries.
func (l *Log) Append(entries []*Entry) error {
	last, err := l.append(entries)
	if err != nil || len(entries) == 0 {
		return err
	}
	// Outside the log's locks, so that the hook may use the log.
	if l.opts.AfterCommit != nil {
		l.opts.AfterCommit(last)
	}
	return nil
}

// append does the work of Append and returns the new last index.
func (l *Log) append(entries []*Entry) (uint64, error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return 0, ErrClosed
	}
	if len(entries) == 0 {
		return 0, nil
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()

	// No other Append runs, so the bounds cannot change under us.
	_, last, _ := l.bounds()
	prevEpoch := l.LastEpoch()
	values := make([][]byte, len(entries))
	for i, e := range entries {
		if e == nil {
			return 0, fmt.Errorf("wal: append: entry %d of %d is nil", i, len(entries))
		}
		if want := last + 1 + uint64(i); e.Index != want {
			return 0, fmt.Errorf("%w: append: entry %d of %d has index %d, want %d (last index %d)",
				ErrNotContiguous, i, len(entries), e.Index, want, last)
		}
		if e.Epoch < prevEpoch {
			return 0, fmt.Errorf("%w: append: entry %d has epoch %d, below the epoch %d before it",
				ErrNotContiguous, e.Index, e.Epoch, prevEpoch)
		}
		prevEpoch = e.Epoch
		v, err := e.MarshalBinary()
		if err != nil {
			return 0, err
		}
		values[i] = v
	}
	newLast := last + uint64(len(entries))
	if l.active == nil {
		return 0, fmt.Errorf("wal: append: %w", errNoActive)
	}
	if lim := l.opts.SegmentBytes; lim > 0 && l.activeSize >= lim && l.active.last >= l.active.first {
		if err := l.seal(); err != nil {
			return 0, fmt.Errorf("wal: append %d..%d: start a new segment: %w", last+1, newLast, err)
		}
	}
	a := l.active
	var size int64
	err := a.update(func(tx *bolt.Tx) error {
		b, meta := tx.Bucket(bucketEntries), tx.Bucket(bucketMeta)
		if b == nil || meta == nil {
			return corruptf("%s: buckets missing", a.path)
		}
		if stored, err := decodeUint64(meta.Get(keyLastIndex)); err != nil || stored != last {
			return corruptf("%s: meta last_index is %x, the log expects %d", a.path, meta.Get(keyLastIndex), last)
		}
		// Keys only grow: fill pages completely instead of splitting them
		// in half.
		b.FillPercent = 1.0
		for i, v := range values {
			if err := b.Put(encodeKey(last+1+uint64(i)), v); err != nil {
				return err
			}
		}
		if err := meta.Put(keyLastIndex, encodeUint64(newLast)); err != nil {
			return err
		}
		if l.opts.BeforeCommit != nil {
			if err := l.opts.BeforeCommit(entries); err != nil {
				return fmt.Errorf("before commit: %w", err)
			}
		}
		size = tx.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("wal: append %d..%d: %w", last+1, newLast, err)
	}
	a.last, a.lastEpoch = newLast, prevEpoch

	l.mu.Lock()
	l.last = newLast
	l.lastEpoch = prevEpoch
	l.activeSize = size
	if !l.closed { // Close closed notify already
		close(l.notify)
		l.notify = make(chan struct{})
	}
	l.mu.Unlock()
	return newLast, nil
}

// errNoActive is the error of a log whose active segment could not be
// started again after it was sealed: reopening the log recovers it.
var errNoActive = errors.New("no active segment (a seal failed; reopen the log)")

// seal renames the active segment to its sealed name, opens it read-only,
// and starts a new active segment after it. Called under appendMu. A crash
// at any step leaves files that Open recovers: a sealed segment without an
// active one after it gets a new one.
func (l *Log) seal() error {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	old := l.active
	sealedPath := l.sealedPath(old.first)
	if err := old.db.Close(); err != nil {
		return fmt.Errorf("close %s: %w", old.path, err)
	}
	l.active = nil
	if err := os.Rename(old.path, sealedPath); err != nil {
		return err
	}
	if err := durable.SyncDir(filepath.Dir(l.path)); err != nil {
		return err
	}
	db, err := openBolt(sealedPath, &bolt.Options{Timeout: l.opts.Timeout, ReadOnly: true})
	if err != nil {
		return err
	}
	sealed := &segment{path: sealedPath, db: db, first: old.first, last: old.last, epoch: old.epoch, lastEpoch: old.lastEpoch}
	l.sealed = append(l.sealed, sealed)
	db, err = openBolt(l.path, &bolt.Options{Timeout: l.opts.Timeout, NoSync: l.opts.NoSync})
	if err != nil {
		return err
	}
	a := &segment{path: l.path, db: db}
	if err := a.initialise(identity{id: mustDecodeHex(l.id), epoch: old.epoch, first: old.last + 1, last: old.last}); err != nil {
		_ = db.Close()
		return err
	}
	if err := durable.SyncDir(filepath.Dir(l.path)); err != nil {
		_ = db.Close()
		return err
	}
	l.active = a
	var size int64
	_ = a.view(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	l.mu.Lock()
	l.activeSize = size
	l.mu.Unlock()
	return nil
}

// Seal seals the active segment now, as Append does once it is full, and
// starts a new one, if the active segment holds entries; it reports whether
// it sealed. An archive copies sealed segments only: sealing bounds how old
// an entry can be and still not be archived. It waits for an Append in
// progress, and Append waits for it.
func (l *Log) Seal() (bool, error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return false, ErrClosed
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.active == nil {
		return false, fmt.Errorf("wal: seal: %w", errNoActive)
	}
	if l.active.last < l.active.first {
		return false, nil
	}
	if err := l.seal(); err != nil {
		return false, fmt.Errorf("wal: seal %s: %w", l.path, err)
	}
	return true, nil
}

// ActiveFirstIndex returns the index of the active segment's first entry
// (or of the entry it will take first when it holds none).
func (l *Log) ActiveFirstIndex() uint64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if n := len(l.sealed); n > 0 {
		return l.sealed[n-1].last + 1
	}
	return l.FirstIndex()
}

// Truncate deletes the sealed segments that hold only entries before index
// keep, oldest first, giving their space back, and returns the new first
// index (at most keep: entries before keep that share a segment with keep
// stay). The active segment is never deleted. A crash part way leaves the
// segments after the deleted ones, which still follow each other.
func (l *Log) Truncate(keep uint64) (uint64, error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return 0, ErrClosed
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	deleted := 0
	var err error
	for len(l.sealed) > 0 && l.sealed[0].last < keep {
		s := l.sealed[0]
		if err = s.db.Close(); err != nil {
			err = fmt.Errorf("wal: truncate: close %s: %w", s.path, err)
			break
		}
		if err = os.Remove(s.path); err != nil {
			err = fmt.Errorf("wal: truncate: %w", err)
			break
		}
		l.sealed = l.sealed[1:]
		deleted++
	}
	first := l.active.first
	if len(l.sealed) > 0 {
		first = l.sealed[0].first
	}
	l.mu.Lock()
	l.first = first
	l.mu.Unlock()
	if deleted > 0 && !l.opts.NoSync {
		if serr := durable.SyncDir(filepath.Dir(l.path)); serr != nil && err == nil {
			err = fmt.Errorf("wal: truncate: sync directory: %w", serr)
		}
	}
	return first, err
}

// restartSuffix names the new active file Restart prepares beside log.db.
const restartSuffix = ".new"

// Restart replaces the whole log with an empty one of log_id id whose
// first entry will be first: a new history, which continues a database
// that was replaced (a load, a restore) at index first-1. Every segment is
// deleted. The new active file is made whole and fsynced first, the
// sealed segments are deleted oldest first, and the new file renamed over
// log.db last: a crash at any point leaves the old log (or a suffix of it)
// or the new one. Reads of the old entries fail with ErrOutOfRange from
// then on, and Wait and Notify wake.
func (l *Log) Restart(id string, first uint64) error {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != logIDSize {
		return fmt.Errorf("wal: restart: log_id %q is not %d hexadecimal bytes", id, logIDSize)
	}
	if first < 1 {
		return fmt.Errorf("wal: restart: first index %d", first)
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return ErrClosed
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.segMu.Lock()
	defer l.segMu.Unlock()
	next := l.path + restartSuffix
	_ = os.Remove(next)
	db, err := openBolt(next, &bolt.Options{Timeout: l.opts.Timeout, NoSync: l.opts.NoSync})
	if err != nil {
		return fmt.Errorf("wal: restart: %w", err)
	}
	a := &segment{path: l.path, db: db}
	err = a.initialise(identity{id: raw, epoch: l.Epoch(), first: first, last: first - 1})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(next)
		return fmt.Errorf("wal: restart: %w", err)
	}
	// From here the old log goes: a failure leaves the Log closed to
	// writes (the caller stops; Open finds a consistent state).
	for len(l.sealed) > 0 {
		sg := l.sealed[0]
		_ = sg.db.Close()
		if err := os.Remove(sg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wal: restart: %w", err)
		}
		l.sealed = l.sealed[1:]
	}
	_ = l.active.db.Close()
	if err := os.Rename(next, l.path); err != nil {
		return fmt.Errorf("wal: restart: %w", err)
	}
	if !l.opts.NoSync {
		if err := durable.SyncDir(filepath.Dir(l.path)); err != nil {
			return fmt.Errorf("wal: restart: sync directory: %w", err)
		}
	}
	if a.db, err = openBolt(l.path, &bolt.Options{Timeout: l.opts.Timeout, NoSync: l.opts.NoSync}); err != nil {
		return fmt.Errorf("wal: restart: %w", err)
	}
	l.active = a
	var size int64
	_ = a.view(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	l.mu.Lock()
	l.id = id
	l.first, l.last, l.lastEpoch, l.activeSize = first, first-1, 0, size
	ch := l.notify
	l.notify = make(chan struct{})
	l.mu.Unlock()
	close(ch)
	return nil
}

// Read returns the entries from index from on, in order: at most maxEntries
// entries and at most maxBytes bytes of encoded entries, but always at least
// one entry when one exists at from, however large. maxEntries <= 0 and
// maxBytes <= 0 mean no limit.
//
// from == LastIndex()+1 gives no entries and no error. from == 0, from below
// FirstIndex() or from beyond LastIndex()+1 gives an error wrapping
// ErrOutOfRange. A corrupt entry gives an error wrapping ErrCorrupt that
// names its index; it is never skipped.
//
// The entries are decoded in short read transactions and share no memory
// with the files.
func (l *Log) Read(from uint64, maxEntries int, maxBytes int) ([]*Entry, error) {
	var out []*Entry
	err := l.scan(from, maxEntries, maxBytes, func(s *segment, k, v []byte, want uint64) (uint64, error) {
		e, err := s.decodeAt(k, v, want)
		if err != nil {
			return 0, err
		}
		if out == nil {
			out = make([]*Entry, 0, 64)
		}
		out = append(out, e)
		return e.Epoch, nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []*Entry{}
	}
	return out, nil
}

// ReadEncoded is Read without decoding: it returns the entries' encodings
// (format.go), as a feed sends them on. Each is checked as Read checks it
// (checksum, version, index, epoch order) but not decoded; the encodings
// share one buffer, none with the files.
func (l *Log) ReadEncoded(from uint64, maxEntries int, maxBytes int) ([][]byte, error) {
	var out [][]byte
	var buf []byte
	err := l.scan(from, maxEntries, maxBytes, func(s *segment, k, v []byte, want uint64) (uint64, error) {
		idx, err := s.checkKey(k, want)
		if err != nil {
			return 0, err
		}
		index, epoch, err := checkEncoded(v)
		if err != nil {
			return 0, corruptf("%s: entry %d: %v", s.path, idx, err)
		}
		if index != idx {
			return 0, corruptf("%s: entry %d: stored under key %d", s.path, index, idx)
		}
		if cap(buf)-len(buf) < len(v) {
			// Room for the entries that remain if they are the size of
			// this one, within the bounds: one allocation when entries
			// are alike. The old buffer stays with the slices cut from it.
			n := int(min(l.LastIndex()-want+1, 1<<20))
			if maxEntries > 0 {
				n = min(n, maxEntries-len(out))
			}
			size := n * len(v)
			if maxBytes > 0 {
				size = min(size, maxBytes)
			}
			buf = make([]byte, 0, max(size, len(v), 4096))
		}
		start := len(buf)
		buf = append(buf, v...)
		out = append(out, buf[start:len(buf):len(buf)])
		return epoch, nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = [][]byte{}
	}
	return out, nil
}

// scan calls fn with each stored entry from index from, within the bounds
// Read documents, segment by segment, in one read transaction each. fn
// checks the entry of segment s stored under key k, which must be index
// want, and returns its epoch; v is valid only during the call.
func (l *Log) scan(from uint64, maxEntries int, maxBytes int, fn func(s *segment, k, v []byte, want uint64) (uint64, error)) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	first, last, closed := l.bounds()
	if closed {
		return ErrClosed
	}
	if from == 0 || from < first || from > last+1 {
		return fmt.Errorf("%w: read from %d, log holds %d..%d", ErrOutOfRange, from, first, last)
	}
	if from == last+1 {
		return nil
	}
	if l.active == nil {
		return fmt.Errorf("wal: read: %w", errNoActive)
	}
	size, n := 0, 0
	var prevEpoch uint64
	want := from
	for _, s := range append(l.sealed[:len(l.sealed):len(l.sealed)], l.active) {
		// Stop at the last index read above: a commit that the snapshot
		// holds but LastIndex() does not show yet stays invisible, so
		// readers never see past LastIndex().
		// The active segment's own last is Append's, written without
		// l.mu: read only a sealed segment's, which never changes.
		end := last
		if s != l.active {
			end = min(s.last, last)
		}
		if want > end {
			continue
		}
		full := false
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			if b == nil {
				return corruptf("%s: bucket %q missing", s.path, bucketEntries)
			}
			c := b.Cursor()
			for k, v := c.Seek(encodeKey(want)); k != nil && want <= end; k, v = c.Next() {
				if (maxEntries > 0 && n >= maxEntries) || (maxBytes > 0 && n > 0 && size+len(v) > maxBytes) {
					full = true
					return nil
				}
				epoch, err := fn(s, k, v, want)
				if err != nil {
					return err
				}
				if n > 0 && epoch < prevEpoch {
					return corruptf("%s: entry %d: epoch %d is below the epoch %d before it",
						s.path, want, epoch, prevEpoch)
				}
				prevEpoch = epoch
				n++
				size += len(v)
				want++
			}
			// The segment ended early: it holds [first, last] as they
			// were before the transaction began.
			if want <= end {
				return corruptf("%s: entry %d missing (meta last_index %d)", s.path, want, end)
			}
			return nil
		})
		if err != nil || full || want > last {
			return err
		}
	}
	return nil
}

// segmentOf returns the segment that holds index, under segMu.
func (l *Log) segmentOf(index uint64) *segment {
	for _, s := range l.sealed {
		if index >= s.first && index <= s.last {
			return s
		}
	}
	return l.active
}

// checkKey checks that k is the key of index want.
func (s *segment) checkKey(k []byte, want uint64) (uint64, error) {
	idx, err := decodeKey(k)
	if err != nil {
		return 0, corruptf("%s: entry %d: %v", s.path, want, err)
	}
	if idx != want {
		return 0, corruptf("%s: entry %d missing (next key is %d)", s.path, want, idx)
	}
	return idx, nil
}

// decodeAt decodes the value v stored under key k, which must be the key of
// index want.
func (s *segment) decodeAt(k, v []byte, want uint64) (*Entry, error) {
	idx, err := s.checkKey(k, want)
	if err != nil {
		return nil, err
	}
	e := new(Entry)
	if err := decodeEntry(e, v, nil); err != nil {
		return nil, corruptf("%s: entry %d: %v", s.path, idx, err)
	}
	if e.Index != idx {
		return nil, corruptf("%s: entry %d: stored under key %d", s.path, e.Index, idx)
	}
	return e, nil
}

// EntryEpoch returns the epoch of the entry at index: 0 for index 0, an
// error wrapping ErrOutOfRange when the log does not hold index.
func (l *Log) EntryEpoch(index uint64) (uint64, error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	first, last, closed := l.bounds()
	if closed {
		return 0, ErrClosed
	}
	if index == 0 {
		return 0, nil
	}
	if index < first || index > last {
		return 0, fmt.Errorf("%w: entry %d, log holds %d..%d", ErrOutOfRange, index, first, last)
	}
	if index == last {
		return l.LastEpoch(), nil
	}
	s := l.segmentOf(index)
	if s == nil {
		return 0, fmt.Errorf("wal: entry %d: %w", index, errNoActive)
	}
	var epoch uint64
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return corruptf("%s: bucket %q missing", s.path, bucketEntries)
		}
		k := encodeKey(index)
		v := b.Get(k)
		if v == nil {
			return corruptf("%s: entry %d missing", s.path, index)
		}
		e, err := s.decodeAt(k, v, index)
		if err != nil {
			return err
		}
		epoch = e.Epoch
		return nil
	})
	return epoch, err
}

// EpochStart returns the index of the first entry the log holds whose
// epoch is at least epoch: where that master generation (or a later one)
// began. ok is false when no entry of the log has such an epoch. Epochs
// never decrease along the log, so it is a binary search.
func (l *Log) EpochStart(epoch uint64) (index uint64, ok bool, err error) {
	first, last, _ := l.bounds()
	if last < first || l.LastEpoch() < epoch {
		return 0, false, nil
	}
	lo, hi := first, last // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := l.EntryEpoch(mid)
		if err != nil {
			return 0, false, err
		}
		if e >= epoch {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, true, nil
}

// Notify returns a channel that is closed at the next successful Append, or
// when the log is closed. Take a new channel after each wake-up.
func (l *Log) Notify() <-chan struct{} {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.notify
}

// Wait returns nil as soon as LastIndex() > after, ctx.Err() when ctx ends
// first, and ErrClosed when the log is (or gets) closed.
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		l.mu.RLock()
		closed, last, ch := l.closed, l.last, l.notify
		l.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		if last > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Size returns the bytes the log takes on disk: the active file as bbolt
// sees it (its high-water mark times its page size) and the sealed ones;
// 0 when the log is closed.
func (l *Log) Size() int64 {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return 0
	}
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var size int64
	for _, s := range l.sealed {
		if fi, err := os.Stat(s.path); err == nil {
			size += fi.Size()
		}
	}
	if l.active != nil {
		_ = l.active.view(func(tx *bolt.Tx) error {
			size += tx.Size()
			return nil
		})
	}
	return size
}

// Check verifies the whole log: each segment's meta matches what the log
// holds, the entries run without gaps from the first index to the last
// across the segments, each one decodes with a valid checksum and holds the
// index of its key, the epochs never decrease, and bbolt's own page
// structure of each file is consistent. It reads every entry and blocks
// Append meanwhile. Errors wrap ErrCorrupt.
func (l *Log) Check() error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return ErrClosed
	}
	// bbolt's check is not safe beside a writer on a read transaction.
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if l.active == nil {
		return fmt.Errorf("wal: check: %w", errNoActive)
	}
	first, last, _ := l.bounds()
	epoch, lastEpoch := l.Epoch(), l.LastEpoch()
	want := first
	var prevEpoch uint64
	for _, s := range append(l.sealed[:len(l.sealed):len(l.sealed)], l.active) {
		segLast, segEpoch := s.last, s.epoch
		if s == l.active {
			segLast, segEpoch = last, epoch
		}
		if s.first != want {
			return corruptf("%s: starts at %d, the log expects %d", s.path, s.first, want)
		}
		err := s.view(func(tx *bolt.Tx) error {
			meta, entries := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
			if meta == nil || entries == nil {
				return corruptf("%s: buckets missing", s.path)
			}
			if id := meta.Get(keyLogID); hex.EncodeToString(id) != l.id {
				return corruptf("%s: meta log_id is %x, the log was opened with %s", s.path, id, l.id)
			}
			for _, kv := range []struct {
				k    []byte
				want uint64
			}{{keyEpoch, segEpoch}, {keyFirstIndex, s.first}, {keyLastIndex, segLast}} {
				if got, err := decodeUint64(meta.Get(kv.k)); err != nil || got != kv.want {
					return corruptf("%s: meta %s is %x, want %d", s.path, kv.k, meta.Get(kv.k), kv.want)
				}
			}
			c := entries.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if want > segLast {
					return corruptf("%s: key %x beyond meta last_index %d", s.path, k, segLast)
				}
				e, err := s.decodeAt(k, v, want)
				if err != nil {
					return err
				}
				if e.Epoch < prevEpoch {
					return corruptf("%s: entry %d: epoch %d is below the epoch %d before it", s.path, e.Index, e.Epoch, prevEpoch)
				}
				prevEpoch = e.Epoch
				want++
			}
			if want <= segLast {
				return corruptf("%s: entry %d missing (meta last_index %d)", s.path, want, segLast)
			}
			var errs []error
			for err := range tx.Check() {
				errs = append(errs, err) // drain: the checker goroutine sends until done
			}
			if len(errs) > 0 {
				if len(errs) > 10 {
					errs = append(errs[:10], fmt.Errorf("… and %d more", len(errs)-10))
				}
				return corruptf("%s: bbolt check: %s", s.path, joinErrors(errs))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if want != last+1 {
		return corruptf("%s: the segments end at %d, the log at %d", l.path, want-1, last)
	}
	if prevEpoch != lastEpoch {
		return corruptf("%s: last entry has epoch %d, the log expects %d", l.path, prevEpoch, lastEpoch)
	}
	return nil
}

// Close closes the log, after the operations in progress. It wakes every
// Wait and Notify channel. Later calls of other methods return ErrClosed;
// later calls of Close return nil.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.notify)
	l.mu.Unlock()

	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	var first error
	for _, s := range l.sealed {
		if err := s.db.Close(); err != nil && first == nil {
			first = fmt.Errorf("wal: close %s: %w", s.path, err)
		}
	}
	if l.active != nil {
		if err := l.active.db.Close(); err != nil && first == nil {
			first = fmt.Errorf("wal: close %s: %w", l.active.path, err)
		}
	}
	return first
}

// view runs fn in a read transaction, turning a memory fault on the mapped
// file into an error (see guard).
func (s *segment) view(fn func(*bolt.Tx) error) (err error) {
	defer guard(s.path, &err, true)()
	return s.db.View(fn)
}

// update runs fn in a write transaction, turning a memory fault into an
// error. Other panics go on: a write path that panics has a bug to see.
func (s *segment) update(fn func(*bolt.Tx) error) (err error) {
	defer guard(s.path, &err, false)()
	return s.db.Update(fn)
}

// guard is the second line of defence behind checkBoltFile: bbolt reads a
// file through a memory map, and a page that vanished (the file shrank
// under us) or a damaged page that bbolt trips over would otherwise kill the
// process. Use as `defer guard(path, &err)()`: it makes faults panic in this
// goroutine, and turns that panic into an error wrapping ErrCorrupt. With
// anyPanic, it does the same with any other panic, such as bbolt's on a
// damaged page. bbolt's View and Update roll their transaction back before
// the panic reaches us.
func guard(path string, err *error, anyPanic bool) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		r := recover()
		debug.SetPanicOnFault(old)
		if r == nil {
			return
		}
		if fault, ok := r.(interface{ Addr() uintptr }); ok {
			*err = corruptf("%s: memory fault at %#x reading the mapped file (truncated or damaged?): %v",
				path, fault.Addr(), r)
			return
		}
		if !anyPanic {
			panic(r)
		}
		*err = corruptf("%s: panic reading the file (damaged page?): %v", path, r)
	}
}

// openBolt opens path with bbolt. bbolt reads the meta and freelist pages
// as it opens the file, and panics (or faults) on some damage that
// checkBoltFile cannot see: that becomes an error wrapping ErrCorrupt
// instead of a crash. The damaged file then stays open and locked until the
// process exits, which it should: the log cannot be used.
func openBolt(path string, opts *bolt.Options) (db *bolt.DB, err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			db, err = nil, corruptf("%s: bbolt cannot open the file (damaged page?): %v", path, r)
		}
	}()
	return bolt.Open(path, 0o600, opts)
}

// SegmentInfo describes one sealed segment.
type SegmentInfo struct {
	First, Last uint64
	Size        int64  // bytes on disk
	Path        string // the file; read-only, until Truncate deletes it
}

// Sealed returns the sealed segments, oldest first: what Truncate may
// delete.
func (l *Log) Sealed() []SegmentInfo {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	out := make([]SegmentInfo, 0, len(l.sealed))
	for _, s := range l.sealed {
		info := SegmentInfo{First: s.first, Last: s.last, Path: s.path}
		if fi, err := os.Stat(s.path); err == nil {
			info.Size = fi.Size()
		}
		out = append(out, info)
	}
	return out
}
