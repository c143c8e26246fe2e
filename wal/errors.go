package wal

import (
	"errors"
	"fmt"
)

// The sentinel errors of the package. Errors returned by a Log wrap them with
// context (the file, the index, the detail), so compare with errors.Is.
var (
	// ErrCorrupt is returned when a stored entry fails its checksum or does
	// not decode, when the log's metadata does not match its entries, or when
	// log.db is damaged or truncated. A corrupt entry stops the reader: it is
	// never skipped.
	ErrCorrupt = errors.New("wal: corrupt")

	// ErrOutOfRange is returned when Read or EntryEpoch asks for an index the
	// log does not hold: below the first index, or (for Read) beyond the last
	// index + 1.
	ErrOutOfRange = errors.New("wal: index out of range")

	// ErrNotContiguous is returned when Append is given entries that would not
	// continue the log: the first index is not LastIndex()+1, the indices are
	// not consecutive, or an epoch is lower than the epoch before it.
	ErrNotContiguous = errors.New("wal: entries not contiguous")

	// ErrClosed is returned when a method is called on a closed Log, and by
	// Wait when the Log is closed while it waits.
	ErrClosed = errors.New("wal: log closed")
)

// corruptf returns an error that wraps ErrCorrupt with a detail:
// "wal: corrupt: entry 5: checksum mismatch …".
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
