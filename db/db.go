package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/walship/walship/wal"
)

// Options configures a DB.
type Options struct {
	// Readers is the number of read-only connections. Zero means 4.
	Readers int
	// Logger receives the DB's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// DB represents a node's SQLite database: the state machine that the log's
// entries are applied to, and the reads served from it.
//
// One writer connection applies entries and runs the master's requests; it
// is held by one Tx at a time. Reads run on a pool of read-only connections
// (SQLITE_OPEN_READONLY and query_only), so that no statement hidden in a
// read can change the database.
type DB struct {
	path   string
	logger *slog.Logger

	wmu sync.Mutex // held by the open Tx
	w   *conn

	readers chan *conn
	nread   int

	logID   atomic.Value // string
	history atomic.Value // []HistoryStep
	applied atomic.Uint64
	closed  atomic.Bool
}

// Open opens (creating if needed) the SQLite database at path, pins its
// connection settings, and reads the log_id and applied index it follows.
func Open(path string, opts Options) (*DB, error) {
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := checkFileSize(path); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	d := &DB{path: path, logger: opts.Logger, readers: make(chan *conn, opts.Readers)}
	w, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	d.w = w
	if err := d.setupWriter(); err != nil {
		d.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	for i := 0; i < opts.Readers; i++ {
		r, err := openReader(path)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("open sqlite %s for reading: %w", path, err)
		}
		d.nread++
		d.readers <- r
	}
	return d, nil
}

// openReader opens a read-only connection: SQLITE_OPEN_READONLY and
// query_only, stopped by its cancel mark.
func openReader(path string) (*conn, error) {
	r, err := openConn(path, sqlite3.SQLITE_OPEN_READONLY)
	if err != nil {
		return nil, err
	}
	if err := setupConn(r, "PRAGMA query_only=1;"); err != nil {
		r.close()
		return nil, err
	}
	r.watchCancel()
	return r, nil
}

// checkFileSize refuses a database file that is not a whole number of
// pages. SQLite finds a file cut by whole pages when it opens it, but reads
// a page cut short as if its missing bytes were zeros: the rows stored
// there would be served and changed silently damaged. A missing or empty
// file passes: SQLite creates the database, and the node rebuilds it.
//
// SQLite writes whole pages, but a crash while a checkpoint extends the
// file may tear the last one; the WAL then still holds it and SQLite
// writes it again. So with a WAL file that holds frames the check is
// skipped.
func checkFileSize(path string) error {
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	var hdr [100]byte
	if _, err := f.ReadAt(hdr[:], 0); errors.Is(err, io.EOF) {
		return nil // shorter than a header: SQLite says what it is
	} else if err != nil {
		return err
	}
	if string(hdr[:16]) != "SQLite format 3\x00" {
		return nil // not a database: SQLite says so
	}
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return nil // a damaged header: SQLite says so
	}
	if fi.Size()%pageSize != 0 {
		return fmt.Errorf("the file is truncated or damaged: %d bytes is not a whole number of %d-byte pages; "+
			"move it away to rebuild it (a master replays its log, a slave pulls its master's)", fi.Size(), pageSize)
	}
	return nil
}

// connSettings are pinned on every connection, the same on every node; no
// client can change them (PRAGMAs that set are refused).
const connSettings = "PRAGMA foreign_keys=ON; PRAGMA recursive_triggers=OFF; PRAGMA trusted_schema=ON; PRAGMA cell_size_check=ON;"

func setupConn(c *conn, extra string) error {
	if err := c.exec(connSettings + extra); err != nil {
		return err
	}
	return c.registerFuncs()
}

// walshipSchema is walship's position in the log it follows.
const walshipSchema = `CREATE TABLE IF NOT EXISTS _walship (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	log_id TEXT NOT NULL,
	applied_index INTEGER NOT NULL)`

func (d *DB) setupWriter() error {
	if err := setupConn(d.w, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); err != nil {
		return err
	}
	d.w.watchCancel()
	err := d.w.exec(walshipSchema + `;
INSERT OR IGNORE INTO _walship (id, log_id, applied_index) VALUES (1, '', 0);`)
	if err != nil {
		return err
	}
	if err := d.loadHistory(); err != nil {
		return err
	}
	s, _, err := d.w.prepare("SELECT log_id, applied_index FROM _walship WHERE id = 1")
	if err != nil {
		return err
	}
	defer s.finalize()
	row, err := s.step()
	if err != nil {
		return err
	}
	if !row {
		return errors.New("_walship has no row")
	}
	d.logID.Store(s.column(0).Text)
	d.applied.Store(uint64(s.column(1).Int))
	return nil
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// LogID returns the log_id of the history the database follows, "" for a
// database that has applied nothing yet.
func (d *DB) LogID() string { return d.logID.Load().(string) }

// AppliedIndex returns the index of the last entry applied.
func (d *DB) AppliedIndex() uint64 { return d.applied.Load() }

// Close closes every connection.
func (d *DB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	var first error
	for i := 0; i < d.nread; i++ {
		if err := (<-d.readers).close(); err != nil && first == nil {
			first = err
		}
	}
	// Every reader is back and closed: a reader call still waiting
	// for one gets ErrClosed.
	close(d.readers)
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.w != nil {
		if err := d.w.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Result is the outcome of one statement.
type Result struct {
	Columns []string // result columns; none for a statement without rows
	Types   []string // declared types, lower case, "" for an expression
	Rows    [][]wal.Value
	// RowsAffected counts the rows the statement itself inserted, updated
	// or deleted; 0 for any other statement.
	RowsAffected int64
	// LastInsertID is the rowid of the last row an INSERT inserted; 0 for
	// any other statement.
	LastInsertID int64
	// Changed is set when the statement is not read-only: it was logged.
	Changed bool
	// Time is how long the statement took to prepare and run.
	Time time.Duration
	// Err is the statement's error, if it failed.
	Err error
}

// run prepares, binds and runs one statement on c under policy p, with the
// clock and SQLite's randomness pinned (writes) or real (reads).
func (c *conn) run(st wal.Statement, p policy, pinned bool, ms int64, seed uint64) (res Result, changed bool, err error) {
	start := time.Now()
	pr, err := c.prepareCached(st.SQL, p)
	if err != nil || pr == nil {
		return res, false, err
	}
	s := pr.s
	defer c.release(pr)
	// An allow-listed PRAGMA (journal_mode) may look like a write to
	// SQLite: on a read-only, query_only connection it cannot be one.
	if p == policyRead && !pr.ro && !pr.pragma {
		return res, false, ErrWriteInQuery
	}
	if p == policyWrite && !pr.ro && pr.refusal != "" {
		return res, false, refused(pr.refusal)
	}
	if pinned && pr.analyze {
		// ANALYZE and REINDEX visit tables and indexes in the order of
		// SQLite's in-memory schema, which depends on the connection's
		// history (a rolled-back schema change reloads it, a restart
		// too): loaded afresh from the file, it is the same on every node.
		if err := c.resetSchema(); err != nil {
			return res, false, err
		}
	}
	c.auth.reset(p) // SQLite may prepare the statement again as it runs
	if pinned {
		c.pin(ms, seed, st.Pos)
		c.seedPRNG(prngSeed(seed, st.Pos))
		defer c.seedPRNG(0)
	} else {
		c.unpin()
	}
	if len(st.Params) > 0 || s.paramCount() > 0 {
		if err := s.bind(st.Params); err != nil {
			return res, false, err
		}
	}
	compiled := s.reprepares()
	ncol := -1 // known after the first step: SQLite may compile it again then
	for {
		row, err := s.step()
		if err != nil {
			if c.auth.refused != "" {
				return Result{}, false, refused(c.auth.refused)
			}
			return Result{}, false, err
		}
		if ncol < 0 {
			ncol = s.columnCount()
			if ncol > 0 {
				res.Columns = make([]string, ncol)
				res.Types = make([]string, ncol)
				for i := range res.Columns {
					res.Columns[i] = s.columnName(i)
					res.Types[i] = strings.ToLower(s.columnDecltype(i))
				}
			}
		}
		if !row {
			break
		}
		if ncol > 0 {
			vals := make([]wal.Value, ncol)
			for i := range vals {
				vals[i] = s.column(i)
			}
			res.Rows = append(res.Rows, vals)
		}
	}
	// SQLite compiled the cached statement again because the schema
	// changed (a trigger was added on its table …), asking the authorizer
	// anew: what it saw now counts, not what the cache remembered. The
	// caller rolls back what a refused statement did.
	if s.reprepares() != compiled {
		pr.recompiled(c)
		if p == policyRead && !pr.ro && !pr.pragma {
			return Result{}, false, ErrWriteInQuery
		}
		if p == policyWrite && !pr.ro && pr.refusal != "" {
			return Result{}, false, refused(pr.refusal)
		}
	}
	if pr.schema {
		// A schema statement returns no rows; the columns SQLite reports
		// for it belong to checks it compiled in (ALTER TABLE … ADD
		// COLUMN … NOT NULL reads the table through a SELECT raise()).
		res.Columns, res.Types = nil, nil
	}
	if pr.dml && !pr.schema {
		// DROP TABLE asks to delete the table's rows: a schema
		// statement reports none.
		res.RowsAffected = c.changes()
	}
	if pr.insert {
		res.LastInsertID = c.lastInsertID()
	}
	if pinned && pr.analyze {
		// ANALYZE also measured walship's own table; its statistics are
		// none of the client's business (plain SQLite has no such table).
		c.auth.reset(policyInternal)
		_ = c.exec(`DELETE FROM sqlite_stat1 WHERE tbl LIKE '\_walship%' ESCAPE '\'`) // fails only without sqlite_stat1
	}
	if pinned && pr.statWrite {
		// The query planner reads sqlite_stat* only when SQLite loads
		// the schema: load it now, as every node does after this
		// statement, so that later statements are planned alike.
		if err := c.resetSchema(); err != nil {
			return Result{}, false, err
		}
	}
	res.Changed = !pr.ro
	res.Time = time.Since(start)
	return res, !pr.ro, nil
}

// resetSchema makes SQLite load the connection's schema afresh from the
// database file before its next statement (PRAGMA writable_schema=RESET),
// so that what SQLite keeps in memory is what any node loads from the same
// file, whatever the connection did before.
//
// Virtual tables lose their connection to SQLite's schema: FTS5 keeps the
// terms it has not written yet in memory until a savepoint or commit, so a
// savepoint writes them first. The reset must not forget that the open
// transaction changed the schema (DBFLAG_SchemaChange): a later rollback
// must then load the schema again.
func (c *conn) resetSchema() error {
	c.auth.reset(policyInternal)
	if c.inTxn() {
		if err := c.execCached("SAVEPOINT walship_flush"); err != nil {
			return err
		}
		if err := c.execCached("RELEASE walship_flush"); err != nil {
			return err
		}
	}
	changed := (*sqlite3.Tsqlite3)(ptr(c.db)).FmDbFlags & sqlite3.DBFLAG_SchemaChange
	err := c.exec("PRAGMA writable_schema=RESET")
	(*sqlite3.Tsqlite3)(ptr(c.db)).FmDbFlags |= changed
	return err
}

// prngSeed is the seed of SQLite's own randomness for the statement at pos
// of an entry seeded by seed: never 0, which would mean "from the system".
func prngSeed(seed uint64, pos uint32) uint32 {
	x := seed ^ (uint64(pos)+1)*0x9e3779b97f4a7c15
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	if v := uint32(x) ^ uint32(x>>32); v != 0 {
		return v
	}
	return 1
}

// Query runs read-only statements on a read connection, with the real clock.
// It stops at the first statement that fails and returns the results before
// it with the error.
func (d *DB) Query(ctx context.Context, stmts []wal.Statement) ([]Result, error) {
	c, err := d.reader(ctx)
	if err != nil {
		return nil, err
	}
	defer d.putReader(c)
	// The progress handler (watchCancel) stops the statement when ctx
	// ends: sqlite3_interrupt alone is lost when it comes before the
	// statement starts. The reader goes back to the pool only once the
	// cancellation is over, so that it cannot reach a later query.
	c.canceled.Store(false)
	defer c.cancelOn(ctx)()
	out := make([]Result, 0, len(stmts))
	for _, st := range stmts {
		if ctx.Err() != nil {
			return out, fmt.Errorf("query: %w", ctx.Err())
		}
		res, _, err := c.run(st, policyRead, false, 0, 0)
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("query: %w", ctx.Err())
			}
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

func (d *DB) reader(ctx context.Context) (*conn, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	select {
	case c, ok := <-d.readers:
		if !ok {
			return nil, ErrClosed
		}
		// A query stopped by its context leaves the mark set (Query
		// waits until its cancellation is over): it must not stop
		// whatever runs next on this connection.
		c.canceled.Store(false)
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *DB) putReader(c *conn) { d.readers <- c }

// Class is what a statement does, as SQLite's authorizer and
// sqlite3_stmt_readonly tell while it is compiled.
type Class struct {
	Write   bool   // it would change the database
	Schema  bool   // it creates, alters or drops a table, index, view or trigger
	Refused string // why walship would refuse it in a write; "" if it would not
}

// Classify compiles sql (one statement) against the current schema without
// running it. A statement that does not compile returns its error, with
// what the authorizer saw before the error (a CREATE TABLE of a table that
// exists is still a schema statement).
func (d *DB) Classify(ctx context.Context, sql string) (Class, error) {
	c, err := d.reader(ctx)
	if err != nil {
		return Class{}, err
	}
	defer d.putReader(c)
	c.auth.reset(policyClassify)
	s, _, err := c.prepare(sql)
	cl := Class{Schema: c.auth.schema, Refused: c.auth.refused, Write: c.auth.writes}
	if err != nil {
		return cl, err
	}
	if s != nil {
		cl.Write = cl.Write || !s.readonly()
		if !s.readonly() && cl.Refused == "" {
			cl.Refused = c.auth.writeRefusal(s.vacuums())
		}
		s.finalize()
	}
	return cl, nil
}
