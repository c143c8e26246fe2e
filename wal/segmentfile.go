package wal

import (
	"encoding/hex"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SegmentFile is one sealed segment file read on its own, read-only: a
// copy in an archive, apart from the log it was sealed in. Its file is
// checked as Open checks a log's (size against its bbolt meta pages, the
// meta against its entries), and each entry as Read checks it.
type SegmentFile struct {
	seg   *segment
	logID string
}

// OpenSegmentFile opens the segment file at path read-only. A damaged,
// truncated or foreign file, or one without entries, gives an error
// wrapping ErrCorrupt that names it.
func OpenSegmentFile(path string) (*SegmentFile, error) {
	if err := checkBoltFile(path); err != nil {
		return nil, err
	}
	db, err := openBolt(path, &bolt.Options{Timeout: DefaultTimeout, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", path, err)
	}
	f := &SegmentFile{seg: &segment{path: path, db: db}}
	var id []byte
	err = f.seg.view(func(tx *bolt.Tx) error {
		var err error
		id, err = f.seg.loadMeta(tx)
		return err
	})
	if err == nil && f.seg.last < f.seg.first {
		err = corruptf("%s: a segment without entries", path)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	f.logID = hex.EncodeToString(id)
	return f, nil
}

// LogID returns the log_id of the log the segment belongs to.
func (f *SegmentFile) LogID() string { return f.logID }

// First and Last return the indexes of the segment's first and last
// entries.
func (f *SegmentFile) First() uint64 { return f.seg.first }

// Last returns the index of the segment's last entry.
func (f *SegmentFile) Last() uint64 { return f.seg.last }

// Close closes the file.
func (f *SegmentFile) Close() error { return f.seg.db.Close() }

// Read calls fn with each entry from index from to the segment's last, in
// order, decoded and checked; fn's error stops it and is returned. from
// outside the segment gives an error wrapping ErrOutOfRange.
func (f *SegmentFile) Read(from uint64, fn func(*Entry) error) error {
	return f.scan(from, func(k, v []byte, want uint64) (uint64, error) {
		e, err := f.seg.decodeAt(k, v, want)
		if err != nil {
			return 0, err
		}
		return e.Epoch, fn(e)
	})
}

// Times calls fn with the index and time (Unix ms) of each entry, in
// order, checking each entry's checksum but decoding only its header.
func (f *SegmentFile) Times(fn func(index uint64, ms int64) error) error {
	return f.scan(f.seg.first, func(k, v []byte, want uint64) (uint64, error) {
		idx, err := f.seg.checkKey(k, want)
		if err != nil {
			return 0, err
		}
		index, epoch, err := checkEncoded(v)
		if err != nil {
			return 0, corruptf("%s: entry %d: %v", f.seg.path, idx, err)
		}
		if index != idx {
			return 0, corruptf("%s: entry %d: stored under key %d", f.seg.path, index, idx)
		}
		return epoch, fn(index, encodedTime(v))
	})
}

// scan is Log.scan for one file: fn checks the entry stored under key k,
// which must be index want, and returns its epoch.
func (f *SegmentFile) scan(from uint64, fn func(k, v []byte, want uint64) (uint64, error)) error {
	s := f.seg
	if from < s.first || from > s.last {
		return fmt.Errorf("%w: read %s from %d, it holds %d..%d", ErrOutOfRange, s.path, from, s.first, s.last)
	}
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		if b == nil {
			return corruptf("%s: bucket %q missing", s.path, bucketEntries)
		}
		want := from
		var prevEpoch uint64
		c := b.Cursor()
		for k, v := c.Seek(encodeKey(want)); k != nil && want <= s.last; k, v = c.Next() {
			epoch, err := fn(k, v, want)
			if err != nil {
				return err
			}
			if want > from && epoch < prevEpoch {
				return corruptf("%s: entry %d: epoch %d is below the epoch %d before it", s.path, want, epoch, prevEpoch)
			}
			prevEpoch = epoch
			want++
		}
		if want <= s.last {
			return corruptf("%s: entry %d missing (meta last_index %d)", s.path, want, s.last)
		}
		return nil
	})
}

// ReadSegmentFile reads the segment file at path from index from to its
// end, calling fn with each entry (OpenSegmentFile, Read, Close).
func ReadSegmentFile(path string, from uint64, fn func(*Entry) error) error {
	f, err := OpenSegmentFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Read(from, fn)
}
