// Package wal is walship's sequenced write-ahead log: the source of truth
// from which every node's SQLite database is derived.
//
// # Entries
//
// An Entry is one accepted write request, the unit that every node applies
// atomically and in index order. It carries its index, the epoch (master
// generation) that appended it, the pinned time and random seed of its
// application, and its statements with typed parameters. Its encoding is
// defined in format.go and nowhere else: a version byte, fixed-width
// big-endian and minimal varint fields, and a CRC-32C over the whole, with
// MarshalBinary and UnmarshalBinary. The package knows nothing of SQLite.
//
// A check entry (Entry.Check) is no write: it has no statements and
// changes no content. A marker asks every node to hash its content at the
// marker's index; a result carries the master's sums of that content, one
// per part, for every slave to compare with its own (replica
// verification).
//
// # Files
//
// A Log lives in bbolt files, its segments: the active one, DATA/log.db,
// which Append writes, and the sealed ones before it,
// DATA/log-<first index, 20 digits>.db, read-only. Each file holds
//
//	bucket "entries": key = index as 8 bytes big-endian, value = encoded entry
//	bucket "meta":    log_id (16 random bytes), epoch, first_index,
//	                  last_index (8 bytes big-endian each) of this file
//
// Once log.db reaches Options.SegmentBytes, Append seals it (renames it to
// its sealed name) and starts a new log.db that continues it. Truncate
// deletes sealed segments whole, oldest first: bbolt keeps the pages it
// frees inside its file, so deleting files is how a bounded log gives its
// space back. A log that never reached the limit is one file, log.db, as
// it always was.
//
// The log_id names the history: a node never applies entries from a log
// with another log_id. ID returns it as 32 lowercase hex characters. Every
// segment carries it, and Open refuses segments that do not follow each
// other or belong to another log.
//
// # Invariants
//
//   - Entries run from first_index to last_index without gaps, across the
//     segments; each is stored under the key of its own Index.
//   - A crash while a segment is sealed leaves a sealed file without a
//     log.db after it, or with an empty one: Open starts a new log.db that
//     continues the sealed ones, with their log_id.
//   - An empty log has last_index = first_index - 1. The bounds are read
//     from meta, never derived from an empty cursor; index 0 has epoch 0.
//   - An entry's epoch is never lower than the epoch of the entry before it.
//   - Append writes its entries and the new last_index in one bbolt
//     transaction, so one fsync makes a whole batch durable, and a failed
//     Append leaves nothing behind.
//   - A corrupt entry (bad checksum, bad encoding, wrong index) is an error
//     wrapping ErrCorrupt that names its index. Readers stop at it; nothing
//     ever skips it.
//   - Open checks an existing file's size against its bbolt meta pages
//     before bbolt maps it, so a truncated log.db gives an ErrCorrupt error
//     instead of a SIGBUS. Reads also turn a memory fault on the mapped file
//     into ErrCorrupt (debug.SetPanicOnFault), as a second line of defence.
//
// # Concurrency
//
// A Log is safe for concurrent use. Append calls are serialised (the log
// has one appender, the master's writer); any number of goroutines may Read
// meanwhile. Each Read runs in a short read-only transaction and copies the
// entries out, so a slow consumer never holds the file. The in-memory bounds
// (FirstIndex, LastIndex, LastEpoch) change only after a commit, so a reader
// that sees LastIndex() = n can Read up to n.
//
// Readers wait for new entries with Wait, or with Notify: a channel that
// the next successful Append closes and replaces, so no slow subscriber can
// block the appender. Close waits for the operations in progress, wakes all
// waiters, and makes later calls return ErrClosed.
//
// The log starts no goroutines.
package wal
