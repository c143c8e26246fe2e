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
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
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
}

// Log represents the sequenced write-ahead log stored in one bbolt file
// (log.db). See the package documentation for its invariants.
//
// A Log is safe for concurrent use: Append calls are serialised, and any
// number of goroutines may read while one appends.
type Log struct {
	path string
	opts Options
	db   *bolt.DB
	id   string // log_id, 32 lowercase hex characters; set once by Open

	// appendMu serialises Append (and Check, which must not run beside a
	// writer). It is taken after closeMu.
	appendMu sync.Mutex

	// closeMu is held (read) by every operation that uses db, and (write)
	// by Close, which so waits for them to finish.
	closeMu sync.RWMutex

	// mu guards the fields below, the in-memory copy of the meta bucket
	// and of the last entry's epoch. They change only after a commit.
	mu        sync.RWMutex
	closed    bool
	epoch     uint64
	first     uint64 // invariant: first >= 1
	last      uint64 // invariant: last >= first-1; last == first-1 when empty
	lastEpoch uint64 // epoch of the entry at last; 0 when empty
	// notify is closed at the next successful Append (and at Close) and
	// then replaced. Once the Log is closed, it stays closed.
	notify chan struct{}
}

// Open opens the log stored at path, creating it if the file is missing or
// empty: a new log has a fresh random log_id, epoch opts.Epoch, first index
// 1 and last index 0.
//
// An existing file is checked before bbolt maps it, and its metadata after:
// a truncated, damaged or foreign file gives an error wrapping ErrCorrupt
// that names the file. Open fails with bbolt's timeout error when the file
// stays locked by another Log for opts.Timeout.
func Open(path string, opts Options) (*Log, error) {
	if opts.Epoch == 0 {
		opts.Epoch = DefaultEpoch
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := checkBoltFile(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, &bolt.Options{
		Timeout: opts.Timeout,
		NoSync:  opts.NoSync,
	})
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	l := &Log{
		path:   path,
		opts:   opts,
		db:     db,
		notify: make(chan struct{}),
	}
	if err := l.load(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if created && !opts.NoSync {
		// The new file's directory entry must survive a crash too.
		if err := syncDir(filepath.Dir(path)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("wal: open %s: sync directory: %w", path, err)
		}
	}
	return l, nil
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

// load reads the meta bucket into memory, initialising it in a file that
// has no buckets yet, and checks it against the entries it describes.
func (l *Log) load() error {
	var empty bool
	err := l.view(func(tx *bolt.Tx) error {
		meta, entries := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		if meta == nil && entries == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return corruptf("%s is not a walship log: it holds bucket %q", l.path, k)
			}
			empty = true
			return nil
		}
		return l.loadMeta(tx)
	})
	if err != nil || !empty {
		return err
	}
	// A new file (or one whose creation was cut short before its buckets
	// were committed): initialise it.
	var id [logIDSize]byte
	if _, err := rand.Read(id[:]); err != nil {
		return fmt.Errorf("wal: open %s: generate log_id: %w", l.path, err)
	}
	err = l.update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucket(bucketEntries); err != nil {
			return err
		}
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, kv := range []struct{ k, v []byte }{
			{keyLogID, id[:]},
			{keyEpoch, encodeUint64(l.opts.Epoch)},
			{keyFirstIndex, encodeUint64(1)},
			{keyLastIndex, encodeUint64(0)},
		} {
			if err := meta.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("wal: create %s: %w", l.path, err)
	}
	l.id = hex.EncodeToString(id[:])
	l.epoch, l.first, l.last, l.lastEpoch = l.opts.Epoch, 1, 0, 0
	return nil
}

// loadMeta reads and checks the meta bucket in tx and the entries at its
// bounds, and sets the in-memory copy. Called by Open only.
func (l *Log) loadMeta(tx *bolt.Tx) error {
	meta, entries := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
	if meta == nil {
		return corruptf("%s: bucket %q missing", l.path, bucketMeta)
	}
	if entries == nil {
		return corruptf("%s: bucket %q missing", l.path, bucketEntries)
	}
	id := meta.Get(keyLogID)
	if len(id) != logIDSize {
		return corruptf("%s: meta %s: %d bytes, want %d", l.path, keyLogID, len(id), logIDSize)
	}
	var vals [3]uint64
	for i, k := range [][]byte{keyEpoch, keyFirstIndex, keyLastIndex} {
		v := meta.Get(k)
		if v == nil {
			return corruptf("%s: meta %s missing", l.path, k)
		}
		n, err := decodeUint64(v)
		if err != nil {
			return corruptf("%s: meta %s: %v", l.path, k, err)
		}
		vals[i] = n
	}
	epoch, first, last := vals[0], vals[1], vals[2]
	if epoch == 0 {
		return corruptf("%s: meta epoch is 0", l.path)
	}
	if first == 0 || last < first-1 {
		return corruptf("%s: meta bounds are impossible: first_index %d, last_index %d", l.path, first, last)
	}
	// The entries must span exactly [first, last]: check both ends.
	c := entries.Cursor()
	k, _ := c.First()
	var lastEpoch uint64
	if last < first {
		if k != nil {
			return corruptf("%s: meta says the log is empty (first_index %d) but it holds key %x", l.path, first, k)
		}
	} else {
		if !bytes.Equal(k, encodeKey(first)) {
			return corruptf("%s: first key is %x, meta first_index is %d", l.path, k, first)
		}
		k, v := c.Last()
		if !bytes.Equal(k, encodeKey(last)) {
			return corruptf("%s: last key is %x, meta last_index is %d", l.path, k, last)
		}
		var e Entry
		if err := decodeEntry(&e, v, nil); err != nil {
			return corruptf("%s: entry %d: %v", l.path, last, err)
		}
		if e.Index != last {
			return corruptf("%s: entry %d: stored under key %d", l.path, e.Index, last)
		}
		lastEpoch = e.Epoch
	}
	l.id = hex.EncodeToString(id)
	l.epoch, l.first, l.last, l.lastEpoch = epoch, first, last, lastEpoch
	return nil
}

// ID returns the log_id: 32 lowercase hexadecimal characters.
func (l *Log) ID() string { return l.id }

// Path returns the path of the log's file.
func (l *Log) Path() string { return l.path }

// Epoch returns the log's epoch (master generation).
func (l *Log) Epoch() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epoch
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

// bounds returns first, last and whether the log is closed.
func (l *Log) bounds() (first, last uint64, closed bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.first, l.last, l.closed
}

// Append appends entries to the log in one bbolt transaction (one fsync).
// entries[0].Index must be LastIndex()+1, the indices consecutive, and the
// epochs non-decreasing from LastEpoch(); otherwise Append returns an error
// wrapping ErrNotContiguous. Appending no entries does nothing.
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

	err := l.update(func(tx *bolt.Tx) error {
		b, meta := tx.Bucket(bucketEntries), tx.Bucket(bucketMeta)
		if b == nil || meta == nil {
			return corruptf("%s: buckets missing", l.path)
		}
		if stored, err := decodeUint64(meta.Get(keyLastIndex)); err != nil || stored != last {
			return corruptf("%s: meta last_index is %x, the log expects %d", l.path, meta.Get(keyLastIndex), last)
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
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("wal: append %d..%d: %w", last+1, newLast, err)
	}

	l.mu.Lock()
	l.last = newLast
	l.lastEpoch = prevEpoch
	if !l.closed { // Close closed notify already
		close(l.notify)
		l.notify = make(chan struct{})
	}
	l.mu.Unlock()
	return newLast, nil
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
// The entries are decoded in a short read transaction and share no memory
// with the file.
func (l *Log) Read(from uint64, maxEntries int, maxBytes int) ([]*Entry, error) {
	var out []*Entry
	err := l.scan(from, maxEntries, maxBytes, func(k, v []byte, want uint64) (uint64, error) {
		e, err := l.decodeAt(k, v, want)
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
// share one buffer, none with the file.
func (l *Log) ReadEncoded(from uint64, maxEntries int, maxBytes int) ([][]byte, error) {
	var out [][]byte
	var buf []byte
	err := l.scan(from, maxEntries, maxBytes, func(k, v []byte, want uint64) (uint64, error) {
		idx, err := l.checkKey(k, want)
		if err != nil {
			return 0, err
		}
		index, epoch, err := checkEncoded(v)
		if err != nil {
			return 0, corruptf("%s: entry %d: %v", l.path, idx, err)
		}
		if index != idx {
			return 0, corruptf("%s: entry %d: stored under key %d", l.path, index, idx)
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
// Read documents, in one read transaction. fn checks the entry stored
// under key k, which must be index want, and returns its epoch; v is valid
// only during the call.
func (l *Log) scan(from uint64, maxEntries int, maxBytes int, fn func(k, v []byte, want uint64) (uint64, error)) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
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
	return l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return corruptf("%s: bucket %q missing", l.path, bucketEntries)
		}
		c := b.Cursor()
		size, n := 0, 0
		var prevEpoch uint64
		want := from
		k, v := c.Seek(encodeKey(from))
		// Stop at the last index read above: a commit that the snapshot
		// holds but LastIndex() does not show yet stays invisible, so
		// readers never see past LastIndex().
		for ; k != nil && want <= last; k, v = c.Next() {
			if maxEntries > 0 && n >= maxEntries {
				return nil
			}
			if maxBytes > 0 && n > 0 && size+len(v) > maxBytes {
				return nil
			}
			epoch, err := fn(k, v, want)
			if err != nil {
				return err
			}
			if n > 0 && epoch < prevEpoch {
				return corruptf("%s: entry %d: epoch %d is below the epoch %d before it",
					l.path, want, epoch, prevEpoch)
			}
			prevEpoch = epoch
			n++
			size += len(v)
			want++
		}
		// The log ended early: the snapshot holds at least [first, last]
		// as they were before it began.
		if want <= last {
			return corruptf("%s: entry %d missing (meta last_index %d)", l.path, want, last)
		}
		return nil
	})
}

// checkKey checks that k is the key of index want.
func (l *Log) checkKey(k []byte, want uint64) (uint64, error) {
	idx, err := decodeKey(k)
	if err != nil {
		return 0, corruptf("%s: entry %d: %v", l.path, want, err)
	}
	if idx != want {
		return 0, corruptf("%s: entry %d missing (next key is %d)", l.path, want, idx)
	}
	return idx, nil
}

// decodeAt decodes the value v stored under key k, which must be the key of
// index want.
func (l *Log) decodeAt(k, v []byte, want uint64) (*Entry, error) {
	idx, err := l.checkKey(k, want)
	if err != nil {
		return nil, err
	}
	e := new(Entry)
	if err := decodeEntry(e, v, nil); err != nil {
		return nil, corruptf("%s: entry %d: %v", l.path, idx, err)
	}
	if e.Index != idx {
		return nil, corruptf("%s: entry %d: stored under key %d", l.path, e.Index, idx)
	}
	return e, nil
}

// EntryEpoch returns the epoch of the entry at index: 0 for index 0, an
// error wrapping ErrOutOfRange when the log does not hold index.
func (l *Log) EntryEpoch(index uint64) (uint64, error) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
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
	var epoch uint64
	err := l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return corruptf("%s: bucket %q missing", l.path, bucketEntries)
		}
		k := encodeKey(index)
		v := b.Get(k)
		if v == nil {
			return corruptf("%s: entry %d missing", l.path, index)
		}
		e, err := l.decodeAt(k, v, index)
		if err != nil {
			return err
		}
		epoch = e.Epoch
		return nil
	})
	return epoch, err
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

// Size returns the size of the log's file in bytes as bbolt sees it (its
// high-water mark times its page size), or 0 when the log is closed.
func (l *Log) Size() int64 {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return 0
	}
	var size int64
	_ = l.view(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	})
	return size
}

// Check verifies the whole log: the meta bucket matches the in-memory state,
// the entries run without gaps from the first index to the last, each one
// decodes with a valid checksum and holds the index of its key, the epochs
// never decrease, and bbolt's own page structure is consistent. It reads
// every entry and blocks Append meanwhile. Errors wrap ErrCorrupt.
func (l *Log) Check() error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if _, _, closed := l.bounds(); closed {
		return ErrClosed
	}
	// bbolt's check is not safe beside a writer on a read transaction.
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	first, last, _ := l.bounds()
	epoch, lastEpoch := l.Epoch(), l.LastEpoch()

	return l.view(func(tx *bolt.Tx) error {
		meta, entries := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		if meta == nil || entries == nil {
			return corruptf("%s: buckets missing", l.path)
		}
		if id := meta.Get(keyLogID); hex.EncodeToString(id) != l.id {
			return corruptf("%s: meta log_id is %x, the log was opened with %s", l.path, id, l.id)
		}
		for _, kv := range []struct {
			k    []byte
			want uint64
		}{{keyEpoch, epoch}, {keyFirstIndex, first}, {keyLastIndex, last}} {
			if got, err := decodeUint64(meta.Get(kv.k)); err != nil || got != kv.want {
				return corruptf("%s: meta %s is %x, want %d", l.path, kv.k, meta.Get(kv.k), kv.want)
			}
		}

		want := first
		var prevEpoch uint64
		c := entries.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if want > last {
				return corruptf("%s: key %x beyond meta last_index %d", l.path, k, last)
			}
			e, err := l.decodeAt(k, v, want)
			if err != nil {
				return err
			}
			if e.Epoch < prevEpoch {
				return corruptf("%s: entry %d: epoch %d is below the epoch %d before it", l.path, e.Index, e.Epoch, prevEpoch)
			}
			prevEpoch = e.Epoch
			want++
		}
		if want <= last {
			return corruptf("%s: entry %d missing (meta last_index %d)", l.path, want, last)
		}
		if prevEpoch != lastEpoch {
			return corruptf("%s: last entry has epoch %d, the log expects %d", l.path, prevEpoch, lastEpoch)
		}

		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err) // drain: the checker goroutine sends until done
		}
		if len(errs) > 0 {
			if len(errs) > 10 {
				errs = append(errs[:10], fmt.Errorf("… and %d more", len(errs)-10))
			}
			return corruptf("%s: bbolt check: %s", l.path, joinErrors(errs))
		}
		return nil
	})
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
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("wal: close %s: %w", l.path, err)
	}
	return nil
}

// view runs fn in a read transaction, turning a memory fault on the mapped
// file into an error (see guard).
func (l *Log) view(fn func(*bolt.Tx) error) (err error) {
	defer l.guard(&err, true)()
	return l.db.View(fn)
}

// update runs fn in a write transaction, turning a memory fault into an
// error. Other panics go on: a write path that panics has a bug to see.
func (l *Log) update(fn func(*bolt.Tx) error) (err error) {
	defer l.guard(&err, false)()
	return l.db.Update(fn)
}

// guard is the second line of defence behind checkBoltFile: bbolt reads the
// file through a memory map, and a page that vanished (the file shrank
// under us) or a damaged page that bbolt trips over would otherwise kill the
// process. Use as `defer l.guard(&err)()`: it makes faults panic in this
// goroutine, and turns that panic into an error wrapping ErrCorrupt. With
// anyPanic, it does the same with any other panic, such as bbolt's on a
// damaged page. bbolt's View and Update roll their transaction back before
// the panic reaches us.
func (l *Log) guard(err *error, anyPanic bool) func() {
	old := debug.SetPanicOnFault(true)
	return func() {
		r := recover()
		debug.SetPanicOnFault(old)
		if r == nil {
			return
		}
		if fault, ok := r.(interface{ Addr() uintptr }); ok {
			*err = corruptf("%s: memory fault at %#x reading the mapped file (truncated or damaged?): %v",
				l.path, fault.Addr(), r)
			return
		}
		if !anyPanic {
			panic(r)
		}
		*err = corruptf("%s: panic reading the file (damaged page?): %v", l.path, r)
	}
}

// syncDir fsyncs the directory dir, so that a file created in it survives a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
