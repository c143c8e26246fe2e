package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/walship/walship/durable"
	"github.com/walship/walship/wal"
)

// Position is where a database stands in the log it follows.
type Position struct {
	LogID string
	Index uint64
}

// Backup writes a copy of the database to path (which must not exist), at
// one applied index, and returns that position. The copy is page for page
// (SQLite's backup API, not VACUUM INTO): the same root pages and free
// pages as this node's file, so that a node started from it lays out what
// it writes later exactly as this one does. It is read in one read
// transaction on a read connection: the writer goes on meanwhile (in WAL
// mode readers do not block it), and the copy holds walship's own row with
// the index and log_id it is at. pace, if not nil, is called after each
// step of 1024 pages; it may wait, to spread the copy's work, and its
// error stops the copy.
func (d *DB) Backup(ctx context.Context, path string, pace func(context.Context) error) (Position, error) {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return Position{}, fmt.Errorf("backup: %s exists", path)
	}
	c, err := d.reader(ctx)
	if err != nil {
		return Position{}, err
	}
	defer d.putReader(c)
	c.auth.reset(policyInternal)
	if err := c.exec("BEGIN"); err != nil {
		return Position{}, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		c.auth.reset(policyInternal)
		_ = c.exec("COMMIT")
	}()
	res, _, err := c.run(wal.Statement{SQL: "SELECT log_id, applied_index FROM _walship WHERE id = 1"}, policyInternal, false, 0, 0)
	if err != nil || len(res.Rows) != 1 {
		return Position{}, fmt.Errorf("backup: read the position: %v", err)
	}
	pos := Position{LogID: res.Rows[0][0].Text, Index: uint64(res.Rows[0][1].Int)}
	dst, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE)
	if err != nil {
		return Position{}, fmt.Errorf("backup: %w", err)
	}
	// The copy is checked and fsynced by its user: no journal, no syncs.
	err = dst.exec("PRAGMA journal_mode=OFF")
	if err == nil {
		err = dst.exec("PRAGMA synchronous=OFF")
	}
	if err == nil {
		err = dst.copyFrom(ctx, c, pace)
	}
	if cerr := dst.close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return Position{}, fmt.Errorf("backup: %w", err)
	}
	return pos, nil
}

// backupStepHook, if set (tests), runs after each step of a backup.
var backupStepHook func()

// copyFrom copies every page of src's main database into c's, in steps so
// that ctx can stop it, within src's open read transaction (so the copy is
// of one moment).
func (c *conn) copyFrom(ctx context.Context, src *conn, pace func(context.Context) error) error {
	main, err := c.cstring("main")
	if err != nil {
		return err
	}
	defer c.free(main)
	b := sqlite3.Xsqlite3_backup_init(c.tls, c.db, main, src.db, main)
	if b == 0 {
		return c.errorf(sqlite3.Xsqlite3_errcode(c.tls, c.db), "backup init")
	}
	for {
		if err := ctx.Err(); err != nil {
			sqlite3.Xsqlite3_backup_finish(c.tls, b)
			return err
		}
		rc := sqlite3.Xsqlite3_backup_step(c.tls, b, 1024)
		if rc == sqlite3.SQLITE_DONE {
			break
		}
		if backupStepHook != nil {
			backupStepHook()
		}
		if rc != sqlite3.SQLITE_OK {
			sqlite3.Xsqlite3_backup_finish(c.tls, b)
			return c.errorf(rc, "backup step")
		}
		if pace != nil {
			if err := pace(ctx); err != nil {
				sqlite3.Xsqlite3_backup_finish(c.tls, b)
				return err
			}
		}
	}
	if rc := sqlite3.Xsqlite3_backup_finish(c.tls, b); rc != sqlite3.SQLITE_OK {
		return c.errorf(rc, "backup finish")
	}
	return nil
}

// Install replaces the database with the SQLite file at path (a snapshot
// that was checked), atomically: the file is fsynced and renamed over the
// database's, so that a crash at any point leaves either the old database
// or the new one, never a mix. Reads and the writer wait meanwhile; the
// connections are opened again on the new file.
func (d *DB) Install(path string) error {
	if d.closed.Load() {
		return ErrClosed
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	// Take every reader back: the queries running end first.
	readers := make([]*conn, 0, d.nread)
	for range d.nread {
		c, ok := <-d.readers
		if !ok {
			return ErrClosed
		}
		readers = append(readers, c)
	}
	put := func() {
		for _, c := range readers {
			d.readers <- c
		}
	}
	for _, c := range readers {
		_ = c.close()
	}
	// The writer closes last: it checkpoints and removes the WAL file.
	if err := d.w.close(); err != nil {
		d.logger.Warn("install: closing the old database", "err", err)
	}
	rerr := os.Rename(path, d.path)
	if rerr == nil {
		rerr = durable.SyncDir(filepath.Dir(d.path))
	}
	// Open again, on the new file or (when the rename failed) the old one.
	w, err := openConn(d.path, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE)
	if err != nil {
		return fmt.Errorf("install: reopen: %w", err)
	}
	d.w = w
	if err := d.setupWriter(); err != nil {
		return fmt.Errorf("install: reopen: %w", err)
	}
	for i := range readers {
		r, err := openReader(d.path)
		if err != nil {
			return fmt.Errorf("install: reopen: %w", err)
		}
		readers[i] = r
	}
	put()
	if rerr != nil {
		return fmt.Errorf("install: %w", rerr)
	}
	return nil
}

// BackupOptions shapes a backup file (BackupFile).
type BackupOptions struct {
	// Vacuum rebuilds the copy with VACUUM: smaller, but its pages are laid
	// out anew.
	Vacuum bool
	// Pace, if not nil, is called between steps of the copy (see Backup).
	Pace func(context.Context) error
}

// BackupFile writes a backup of the database to path (which must not
// exist) as a standalone SQLite file: the copy of Backup, switched to the
// rollback journal (so that it is one file that plain sqlite3 opens even
// on read-only media), vacuumed if asked. It returns the position it holds.
func (d *DB) BackupFile(ctx context.Context, path string, opts BackupOptions) (Position, error) {
	pos, err := d.Backup(ctx, path, opts.Pace)
	if err != nil {
		return Position{}, err
	}
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE)
	if err == nil {
		c.auth.reset(policyInternal)
		err = c.exec("PRAGMA journal_mode=DELETE")
		if err == nil && opts.Vacuum {
			err = c.exec("VACUUM")
		}
		if cerr := c.close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(path)
		return Position{}, fmt.Errorf("backup: %w", err)
	}
	return pos, nil
}

// Stream is a backup read page by page from a read transaction: the
// database file as of one applied index, without a copy on disk. Open one
// with StreamBackup, write it with WriteTo, and Close it.
type Stream struct {
	// Position is the point the backup holds; Size its length in bytes.
	Position Position
	Size     int64
	// Pace, if set, is called every 256 pages; it may wait, to spread the
	// work, and its error stops it.
	Pace func(context.Context) error

	rt *ReadTx
}

// StreamBackup begins a read transaction for a backup (waiting for a read
// connection until ctx is done) and returns the backup it sees. The
// writer goes on meanwhile (WAL mode), but the WAL cannot be checkpointed
// past the transaction until Close.
func (d *DB) StreamBackup(ctx context.Context) (*Stream, error) {
	rt, err := d.ReadTx(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	pos, err := rt.Begin()
	if err != nil {
		_ = rt.Close()
		return nil, fmt.Errorf("backup: %w", err)
	}
	var pages, size int64
	err = rt.c.each(ctx, "SELECT (SELECT page_count FROM pragma_page_count), (SELECT page_size FROM pragma_page_size)", func(row []wal.Value) {
		pages, size = row[0].Int, row[1].Int
	})
	if err != nil {
		_ = rt.Close()
		return nil, fmt.Errorf("backup: %w", err)
	}
	return &Stream{Position: pos, Size: pages * size, rt: rt}, nil
}

// WriteTo writes the database file to w: every page, in order, as the
// read transaction sees it (SQLite's sqlite_dbpage), the header switched
// to the rollback journal, so that the file is one that plain sqlite3
// opens, even read-only. ctx stops it.
func (s *Stream) WriteTo(ctx context.Context, w io.Writer) (int64, error) {
	if s.rt == nil || s.rt.c == nil {
		return 0, errors.New("backup: the stream is closed")
	}
	c := s.rt.c
	defer c.cancelOn(ctx)()
	var n int64
	var werr error
	pages := 0
	err := c.each(ctx, "SELECT data FROM sqlite_dbpage('main')", func(row []wal.Value) {
		if werr != nil {
			return
		}
		page := row[0].Blob
		if pages == 0 && len(page) >= 100 {
			page[18], page[19] = 1, 1 // the rollback journal: no -wal file needed
		}
		k, err := w.Write(page)
		n += int64(k)
		if err != nil {
			werr = err
			c.interrupt()
			return
		}
		pages++
		if s.Pace != nil && pages%256 == 0 {
			if err := s.Pace(ctx); err != nil {
				werr = err
				c.interrupt()
			}
		}
	})
	if werr != nil {
		return n, fmt.Errorf("backup: %w", werr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return n, fmt.Errorf("backup: %w", ctx.Err())
		}
		return n, fmt.Errorf("backup: %w", err)
	}
	if n != s.Size {
		return n, fmt.Errorf("backup: wrote %d bytes of %d", n, s.Size)
	}
	return n, nil
}

// Close ends the read transaction.
func (s *Stream) Close() error {
	if s.rt == nil {
		return nil
	}
	err := s.rt.Close()
	s.rt = nil
	return err
}
