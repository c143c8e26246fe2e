package db

// This file is walship's binding to SQLite: modernc.org/sqlite's C API
// (modernc.org/sqlite/lib), used directly instead of through database/sql.
// database/sql hides what the state machine must control: values exactly as
// SQLite stores them (the driver turns TEXT in DATE/TIMESTAMP columns into
// time.Time), prepare tails, sqlite3_stmt_readonly, sqlite3_get_autocommit,
// sqlite3_set_last_insert_rowid, and per-connection function state.
//
// A conn is not safe for concurrent use: its owner (the writer, or whoever
// took it from the reader pool) is the only goroutine that touches it.

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	_ "modernc.org/sqlite" // registers the library's process-wide setup
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/walship/walship/wal"
)

// conn is one SQLite connection.
type conn struct {
	tls *libc.TLS
	db  uintptr
	id  uintptr // key of this conn in the callback registry
	// pace, if set, spreads a long read of the node's own (each).
	pace func(context.Context) error

	// auth is the policy and the recorder of the statement being prepared.
	auth authState
	// clock and rng are read by the deterministic functions (funcs.go).
	clock clock
	// eval is a plain in-memory connection that evaluates SQLite's own date
	// and time functions for the overrides of this conn; nil until needed.
	eval *conn
	// callCtx is the sqlite3_context of the override running now, 0
	// between calls.
	callCtx uintptr
	// evalStmts caches the evaluator's prepared statements by SQL.
	evalStmts map[string]*stmt
	// ctl caches the node's own prepared statements (BEGIN, SAVEPOINT …).
	ctl map[string]*stmt
	// stmts caches client statements by policy and text, lru orders them
	// (stmtcache.go).
	stmts map[string]*prepared
	lru   *list.List
	// canceled stops the running statement at its next progress check
	// (watchCancel); it may be set from any goroutine.
	canceled atomic.Bool
	// deadline (Unix nanoseconds, 0 for none) stops the running statement
	// at its next progress check once passed: a write's db_timeout.
	deadline atomic.Int64
	// preparing is set while prepare compiles a statement of the caller's,
	// stepping holds the statement being stepped (0 when none): the
	// authorizer judges only what SQLite compiles for that statement
	// (authorize, clientParse).
	preparing bool
	stepping  uintptr
	// va is C memory for the arguments of sqlite3_test_control (seedPRNG).
	va uintptr
	// vtabKey and vtab cache hasVirtualTables for one schema version.
	vtabKey   [2]int32
	vtab      bool
	vtabKnown bool
}

var (
	connSeq  atomic.Uintptr
	registry sync.Map // uintptr → *conn, for the authorizer and function trampolines
)

// vfs is SQLite's VFS for every connection: "unix-excl" takes a lock that
// keeps other processes out of the database (only this node may touch its
// files; the data directory's lock says so too) and keeps the WAL index in
// this process's memory instead of a shared -shm file, so that a
// transaction takes no file locks (fcntl) on the wal-index, which cost more
// than a one-row insert.
const vfs = "unix-excl"

// openConn opens path with the given sqlite3_open_v2 flags.
func openConn(path string, flags int32) (*conn, error) {
	tls := libc.NewTLS()
	c := &conn{tls: tls, id: connSeq.Add(1)}
	cpath, err := c.cstring(path)
	if err != nil {
		tls.Close()
		return nil, err
	}
	defer c.free(cpath)
	pp, err := c.malloc(int(unsafe.Sizeof(uintptr(0))))
	if err != nil {
		tls.Close()
		return nil, err
	}
	defer c.free(pp)
	*(*uintptr)(ptr(pp)) = 0
	cvfs, err := c.cstring(vfs)
	if err != nil {
		tls.Close()
		return nil, err
	}
	defer c.free(cvfs)
	rc := sqlite3.Xsqlite3_open_v2(tls, cpath, pp, flags|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_EXRESCODE, cvfs)
	c.db = *(*uintptr)(ptr(pp))
	if rc != sqlite3.SQLITE_OK {
		err := c.errorf(rc, "open %s", path)
		if c.db != 0 {
			sqlite3.Xsqlite3_close_v2(tls, c.db)
		}
		tls.Close()
		return nil, err
	}
	registry.Store(c.id, c)
	if rc := sqlite3.Xsqlite3_set_authorizer(tls, c.db, cFuncPointer(authTrampoline), c.id); rc != sqlite3.SQLITE_OK {
		err := c.errorf(rc, "set authorizer")
		c.close()
		return nil, err
	}
	sqlite3.Xsqlite3_busy_timeout(tls, c.db, 5000)
	return c, nil
}

// close closes the connection and its evaluator.
func (c *conn) close() error {
	if c.db == 0 {
		return nil
	}
	c.free(c.va)
	c.va = 0
	for _, s := range c.evalStmts {
		s.finalize()
	}
	for _, s := range c.ctl {
		s.finalize()
	}
	c.dropStmts()
	c.ctl = nil
	c.evalStmts = nil
	if c.eval != nil {
		c.eval.close()
		c.eval = nil
	}
	rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	registry.Delete(c.id)
	c.db = 0
	c.tls.Close()
	if rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("close sqlite: rc %d", rc)
	}
	return nil
}

// Error is an error reported by SQLite.
type Error struct {
	Code int32  // extended result code
	Msg  string // SQLite's message
}

func (e *Error) Error() string { return e.Msg }

// Primary returns the primary result code (SQLITE_CONSTRAINT, …).
func (e *Error) Primary() int32 { return e.Code & 0xff }

// DiskFull reports whether SQLite ran out of room (SQLITE_FULL): the disk,
// or the file's size limit.
func (e *Error) DiskFull() bool { return e.Primary() == sqlite3.SQLITE_FULL }

// IsClientError reports whether the error comes from the statement itself
// (syntax, constraint, type, authorization …) rather than from the node
// (I/O, disk full, corruption, out of memory).
func (e *Error) IsClientError() bool {
	switch e.Primary() {
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOMEM,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
		sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_INTERNAL:
		return false
	}
	return true
}

// errorf returns the connection's current error for rc.
func (c *conn) errorf(rc int32, op string, args ...any) error {
	msg := ""
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
		if ext := sqlite3.Xsqlite3_extended_errcode(c.tls, c.db); ext&0xff == rc&0xff {
			rc = ext
		}
	}
	if msg == "" {
		msg = libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	}
	_ = op
	_ = args
	return &Error{Code: rc, Msg: msg}
}

func (c *conn) malloc(n int) (uintptr, error) {
	if n == 0 {
		n = 1
	}
	p := libc.Xmalloc(c.tls, types.Size_t(n))
	if p == 0 {
		return 0, errors.New("sqlite: out of memory")
	}
	return p, nil
}

func (c *conn) free(p uintptr) {
	if p != 0 {
		libc.Xfree(c.tls, p)
	}
}

// cstring copies s into C memory with a terminating NUL.
func (c *conn) cstring(s string) (uintptr, error) {
	p, err := c.malloc(len(s) + 1)
	if err != nil {
		return 0, err
	}
	b := unsafe.Slice((*byte)(ptr(p)), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return p, nil
}

// cbytes copies b into C memory.
func (c *conn) cbytes(b []byte) (uintptr, error) {
	p, err := c.malloc(len(b))
	if err != nil {
		return 0, err
	}
	copy(unsafe.Slice((*byte)(ptr(p)), len(b)), b)
	return p, nil
}

// exec runs SQL without parameters or results (connection setup and the
// node's own control statements), statement by statement.
func (c *conn) exec(sql string) error {
	for sql != "" {
		s, tail, err := c.prepare(sql)
		if err != nil {
			return err
		}
		sql = tail
		if s == nil {
			continue
		}
		for {
			row, err := s.step()
			if err != nil {
				s.finalize()
				return err
			}
			if !row {
				break
			}
		}
		s.finalize()
	}
	return nil
}

// stmt is one prepared statement.
type stmt struct {
	c *conn
	p uintptr
}

// prepare compiles the first statement of sql. It returns a nil stmt when sql
// holds only white space and comments, and the text after the statement.
func (c *conn) prepare(sql string) (*stmt, string, error) {
	if len(sql) > math.MaxInt32-1 {
		return nil, "", &Error{Code: sqlite3.SQLITE_TOOBIG, Msg: "statement too long"}
	}
	z, err := c.cstring(sql)
	if err != nil {
		return nil, "", err
	}
	defer c.free(z)
	pp, err := c.malloc(2 * int(unsafe.Sizeof(uintptr(0))))
	if err != nil {
		return nil, "", err
	}
	defer c.free(pp)
	ppStmt, ppTail := pp, pp+unsafe.Sizeof(uintptr(0))
	*(*uintptr)(ptr(ppStmt)) = 0
	*(*uintptr)(ptr(ppTail)) = 0
	c.preparing = true
	rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, z, int32(len(sql)+1), ppStmt, ppTail)
	c.preparing = false
	p := *(*uintptr)(ptr(ppStmt))
	if rc != sqlite3.SQLITE_OK {
		if p != 0 {
			sqlite3.Xsqlite3_finalize(c.tls, p)
		}
		return nil, "", c.errorf(rc, "prepare")
	}
	tail := ""
	if t := *(*uintptr)(ptr(ppTail)); t != 0 && t >= z && t < z+uintptr(len(sql)) {
		tail = sql[t-z:]
	}
	if p == 0 {
		return nil, tail, nil
	}
	return &stmt{c: c, p: p}, tail, nil
}

func (s *stmt) finalize() {
	if s != nil && s.p != 0 {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
		s.p = 0
	}
}

// readonly reports whether the statement makes no direct change to the
// database file (sqlite3_stmt_readonly).
func (s *stmt) readonly() bool { return sqlite3.Xsqlite3_stmt_readonly(s.c.tls, s.p) != 0 }

// reprepares counts how often SQLite compiled the statement again since it
// was prepared, because the schema changed (SQLITE_STMTSTATUS_REPREPARE).
func (s *stmt) reprepares() int32 {
	return sqlite3.Xsqlite3_stmt_status(s.c.tls, s.p, sqlite3.SQLITE_STMTSTATUS_REPREPARE, 0)
}

func (s *stmt) paramCount() int { return int(sqlite3.Xsqlite3_bind_parameter_count(s.c.tls, s.p)) }

// bind binds params: positional ones in order to ?1, ?2 …, named ones to
// :name, @name or $name, whichever the statement uses. Every parameter of
// the statement must be given exactly once: a missing one is an error, not
// a NULL.
func (s *stmt) bind(params []wal.Param) error {
	n := s.paramCount()
	bound := make([]bool, n+1)
	pos := 0
	for _, prm := range params {
		var idx int32
		if prm.Name == "" {
			pos++
			if pos > n {
				return fmt.Errorf("%w: %d given, the statement takes %d", ErrParams, len(params), n)
			}
			idx = int32(pos)
		} else {
			for _, prefix := range [...]string{":", "@", "$"} {
				z, err := s.c.cstring(prefix + prm.Name)
				if err != nil {
					return err
				}
				idx = sqlite3.Xsqlite3_bind_parameter_index(s.c.tls, s.p, z)
				s.c.free(z)
				if idx > 0 {
					break
				}
			}
			if idx <= 0 || int(idx) > n {
				return fmt.Errorf("%w: no parameter named %q in the statement", ErrParams, prm.Name)
			}
		}
		if bound[idx] {
			return fmt.Errorf("%w: parameter %s given twice", ErrParams, s.paramName(idx))
		}
		bound[idx] = true
		if err := s.bindValue(idx, prm.Value); err != nil {
			return err
		}
	}
	for i := 1; i <= n; i++ {
		if !bound[i] {
			return fmt.Errorf("%w: %d given, the statement takes %d; %s is missing", ErrParams, len(params), n, s.paramName(int32(i)))
		}
	}
	return nil
}

// paramName is the name of parameter idx as the statement writes it
// (":a", "?3"), or "?idx" for a nameless one.
func (s *stmt) paramName(idx int32) string {
	if p := sqlite3.Xsqlite3_bind_parameter_name(s.c.tls, s.p, idx); p != 0 {
		return libc.GoString(p)
	}
	return fmt.Sprintf("?%d", idx)
}

func (s *stmt) bindValue(idx int32, v wal.Value) error {
	tls, p := s.c.tls, s.p
	var rc int32
	switch v.Kind {
	case wal.KindNull:
		rc = sqlite3.Xsqlite3_bind_null(tls, p, idx)
	case wal.KindInteger:
		rc = sqlite3.Xsqlite3_bind_int64(tls, p, idx, v.Int)
	case wal.KindReal:
		rc = sqlite3.Xsqlite3_bind_double(tls, p, idx, v.Real)
	case wal.KindText:
		if len(v.Text) > math.MaxInt32 {
			return &Error{Code: sqlite3.SQLITE_TOOBIG, Msg: "string or blob too big"}
		}
		z, err := s.c.cstring(v.Text)
		if err != nil {
			return err
		}
		rc = sqlite3.Xsqlite3_bind_text(tls, p, idx, z, int32(len(v.Text)), sqlite3.SQLITE_TRANSIENT)
		s.c.free(z)
	case wal.KindBlob:
		if len(v.Blob) > math.MaxInt32 {
			return &Error{Code: sqlite3.SQLITE_TOOBIG, Msg: "string or blob too big"}
		}
		if len(v.Blob) == 0 {
			rc = sqlite3.Xsqlite3_bind_zeroblob(tls, p, idx, 0)
			break
		}
		z, err := s.c.cbytes(v.Blob)
		if err != nil {
			return err
		}
		rc = sqlite3.Xsqlite3_bind_blob(tls, p, idx, z, int32(len(v.Blob)), sqlite3.SQLITE_TRANSIENT)
		s.c.free(z)
	default:
		return fmt.Errorf("%w: unknown value kind %d", ErrParams, v.Kind)
	}
	if rc != sqlite3.SQLITE_OK {
		return s.c.errorf(rc, "bind")
	}
	return nil
}

// step advances the statement: true when a row is ready.
func (s *stmt) step() (bool, error) {
	s.c.stepping = s.p
	rc := sqlite3.Xsqlite3_step(s.c.tls, s.p)
	s.c.stepping = 0
	switch rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.errorf(rc, "step")
	}
}

func (s *stmt) columnCount() int { return int(sqlite3.Xsqlite3_column_count(s.c.tls, s.p)) }

func (s *stmt) columnName(i int) string {
	return libc.GoString(sqlite3.Xsqlite3_column_name(s.c.tls, s.p, int32(i)))
}

// columnDecltype is the column's declared type as written, "" for an
// expression.
func (s *stmt) columnDecltype(i int) string {
	p := sqlite3.Xsqlite3_column_decltype(s.c.tls, s.p, int32(i))
	if p == 0 {
		return ""
	}
	return libc.GoString(p)
}

// column returns the value of column i of the current row exactly as SQLite
// holds it.
func (s *stmt) column(i int) wal.Value {
	tls, p, col := s.c.tls, s.p, int32(i)
	switch sqlite3.Xsqlite3_column_type(tls, p, col) {
	case sqlite3.SQLITE_INTEGER:
		return wal.Integer(sqlite3.Xsqlite3_column_int64(tls, p, col))
	case sqlite3.SQLITE_FLOAT:
		return wal.Real(sqlite3.Xsqlite3_column_double(tls, p, col))
	case sqlite3.SQLITE_TEXT:
		z := sqlite3.Xsqlite3_column_text(tls, p, col)
		n := sqlite3.Xsqlite3_column_bytes(tls, p, col)
		if z == 0 || n == 0 {
			return wal.Text("")
		}
		return wal.Text(string(unsafe.Slice((*byte)(ptr(z)), n)))
	case sqlite3.SQLITE_BLOB:
		z := sqlite3.Xsqlite3_column_blob(tls, p, col)
		n := sqlite3.Xsqlite3_column_bytes(tls, p, col)
		b := make([]byte, n)
		if z != 0 && n > 0 {
			copy(b, unsafe.Slice((*byte)(ptr(z)), n))
		}
		return wal.Blob(b)
	default:
		return wal.Null()
	}
}

func (c *conn) changes() int64      { return sqlite3.Xsqlite3_changes64(c.tls, c.db) }
func (c *conn) lastInsertID() int64 { return sqlite3.Xsqlite3_last_insert_rowid(c.tls, c.db) }
func (c *conn) setLastInsertID(v int64) {
	sqlite3.Xsqlite3_set_last_insert_rowid(c.tls, c.db, v)
}

// setChanges sets what changes() and sqlite3_changes64 report next. SQLite
// has no API for it (sqlite3_set_last_insert_rowid has no sibling), so the
// field is written the way SQLite's own sqlite3VdbeSetChanges writes it.
// Call it only between statements.
func (c *conn) setChanges(n int64) {
	(*sqlite3.Tsqlite3)(ptr(c.db)).FnChange = n
}

// deferredViolations reports whether the open transaction leaves foreign
// key constraints violated that SQLite checks only at COMMIT: DEFERRABLE
// INITIALLY DEFERRED ones (sqlite3_db_status, SQLITE_DBSTATUS_DEFERRED_FKS).
func (c *conn) deferredViolations() bool {
	bp := c.tls.Alloc(8)
	defer c.tls.Free(8)
	*(*int32)(ptr(bp)), *(*int32)(ptr(bp + 4)) = 0, 0
	sqlite3.Xsqlite3_db_status(c.tls, c.db, sqlite3.SQLITE_DBSTATUS_DEFERRED_FKS, bp, bp+4, 0)
	return *(*int32)(ptr(bp)) != 0
}

// errDeferredFK is SQLite's own error for a deferred foreign key left
// violated at COMMIT.
func errDeferredFK() error {
	return &Error{Code: sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY, Msg: "FOREIGN KEY constraint failed"}
}

// seedPRNG makes SQLite's own randomness (sqlite3_randomness: the rowid
// it picks once a table holds the largest one, the names of temporary
// files) a stream seeded by x, for every connection of the process, until
// it is called again; 0 gives SQLite's seeding from the operating system
// back. SQLite's internal PRNG is process-wide, and SQLITE_TESTCTRL_PRNG_SEED
// is its one way to seed it.
func (c *conn) seedPRNG(x uint32) {
	if c.va == 0 {
		va, err := c.malloc(16)
		if err != nil {
			return
		}
		c.va = va
	}
	// The variadic arguments (int x, sqlite3 *db), 8 bytes each, as
	// modernc's libc reads a va_list.
	*(*int64)(ptr(c.va)) = int64(int32(x))
	*(*uintptr)(ptr(c.va + 8)) = 0
	sqlite3.Xsqlite3_test_control(c.tls, sqlite3.SQLITE_TESTCTRL_PRNG_SEED, c.va)
}

// hasVirtualTables reports whether the schema holds a virtual table: its
// module may keep data in memory until a savepoint opens or ends (FTS5),
// so entries are applied with the master's savepoints then. The answer is
// kept for the schema version it was read at.
func (c *conn) hasVirtualTables() (bool, error) {
	key := func() ([2]int32, bool) {
		db := (*sqlite3.Tsqlite3)(ptr(c.db))
		sch := (*sqlite3.TSchema)(ptr((*sqlite3.TDb)(ptr(db.FaDb)).FpSchema))
		return [2]int32{sch.Fschema_cookie, sch.FiGeneration}, sch.FschemaFlags&sqlite3.DB_SchemaLoaded != 0
	}
	if k, loaded := key(); loaded && c.vtabKnown && k == c.vtabKey {
		return c.vtab, nil
	}
	res, _, err := c.run(wal.Statement{SQL: "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%')"},
		policyInternal, false, 0, 0)
	if err != nil {
		return false, err
	}
	c.vtab = len(res.Rows) == 1 && res.Rows[0][0].Int != 0
	c.vtabKey, c.vtabKnown = key()
	return c.vtab, nil
}

// vacuums reports whether the compiled statement runs VACUUM (or VACUUM
// INTO): it is the one write that names nothing to the authorizer, so its
// program is read.
func (s *stmt) vacuums() bool {
	v := (*sqlite3.TVdbe)(ptr(s.p))
	for i := int32(0); i < v.FnOp; i++ {
		op := (*sqlite3.TVdbeOp)(ptr(v.FaOp + uintptr(i)*unsafe.Sizeof(sqlite3.TVdbeOp{})))
		if op.Fopcode == sqlite3.OP_Vacuum {
			return true
		}
	}
	return false
}

// inTxn reports whether a transaction is open (autocommit is off).
func (c *conn) inTxn() bool { return sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0 }

// interrupt makes the running statement fail with SQLITE_INTERRUPT. It is
// the one method that may be called from another goroutine.
func (c *conn) interrupt() { sqlite3.Xsqlite3_interrupt(c.tls, c.db) }

// cancelOn makes c's statements fail once ctx ends (the progress handler,
// watchCancel, sees the mark; sqlite3_interrupt alone is lost when it
// comes before a statement starts). The returned stop waits for a
// cancellation in progress, so that c can go back to its pool only once
// it cannot reach a later statement.
func (c *conn) cancelOn(ctx context.Context) (stop func()) {
	fired := make(chan struct{})
	after := context.AfterFunc(ctx, func() {
		defer close(fired)
		c.canceled.Store(true)
		c.interrupt()
	})
	return func() {
		if !after() {
			<-fired
		}
	}
}

// watchCancel makes the statements of c fail with SQLITE_INTERRUPT, within
// a thousand virtual machine steps, once c.canceled is set.
func (c *conn) watchCancel() {
	sqlite3.Xsqlite3_progress_handler(c.tls, c.db, 1000, cFuncPointer(progressTrampoline), c.id)
}

// progressTrampoline is SQLite's progress handler for the conns that
// watchCancel: non-zero stops the statement.
func progressTrampoline(_ *libc.TLS, id uintptr) int32 {
	v, ok := registry.Load(id)
	if !ok {
		return 1
	}
	c := v.(*conn)
	if c.canceled.Load() {
		return 1
	}
	if d := c.deadline.Load(); d != 0 && time.Now().UnixNano() > d {
		return 1
	}
	return 0
}

// cFuncPointer converts a top-level function to the pointer the C library
// calls. The representation is described in https://golang.org/s/go11func;
// modernc.org/sqlite uses the same conversion for its own callbacks. It must
// not be used on closures.
func cFuncPointer[T any](f T) uintptr {
	return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f}))
}

// ptr converts the address of C memory (allocated by the C library, never
// moved or freed by the Go collector) to a pointer.
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func goString(p uintptr) string {
	if p == 0 {
		return ""
	}
	return libc.GoString(p)
}

// authTrampoline is SQLite's authorizer callback for every conn.
func authTrampoline(_ *libc.TLS, id uintptr, action int32, z1, z2, z3, z4 uintptr) int32 {
	v, ok := registry.Load(id)
	if !ok {
		return sqlite3.SQLITE_DENY
	}
	return v.(*conn).authorize(action, goString(z1), goString(z2), goString(z3), goString(z4))
}
