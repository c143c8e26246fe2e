package db

// Deterministic replay (DESIGN.md): while an entry is applied, "now" is the
// entry's time and every random value comes from a PRNG seeded by the
// entry's seed and the statement's position. The functions below override
// SQLite's built-ins on every connection of a DB. The date and time
// functions delegate to SQLite's own implementation, evaluated on a plain
// in-memory connection, with 'now' replaced by the pinned time and the
// 'localtime' and 'utc' modifiers removed, so that they behave as UTC on
// every node whatever its TZ.

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/walship/walship/wal"
)

// clock is the time and randomness the functions of one conn see.
type clock struct {
	nowMS int64 // "now" in Unix milliseconds
	pcg   rand.PCG
	rng   *rand.Rand
}

// pin makes the next statement see "now" as ms and draw random values from
// the stream of (seed, pos).
func (c *conn) pin(ms int64, seed uint64, pos uint32) {
	c.clock.nowMS = ms
	c.clock.pcg.Seed(seed, uint64(pos))
	if c.clock.rng == nil {
		c.clock.rng = rand.New(&c.clock.pcg)
	}
}

// unpin gives the next statement (a read) the real clock and fresh
// randomness.
func (c *conn) unpin() {
	var b [16]byte
	_, _ = crand.Read(b[:])
	c.pin(time.Now().UnixMilli(), binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint32(b[8:]))
}

type funcDef struct {
	name  string
	nArg  int32
	flags int32
	impl  func(c *conn, args []wal.Value, ints []int64) (wal.Value, error)
}

const pureFlags = sqlite3.SQLITE_UTF8 | sqlite3.SQLITE_DETERMINISTIC | sqlite3.SQLITE_INNOCUOUS

var funcDefs = []funcDef{
	{"current_timestamp", 0, pureFlags, func(c *conn, _ []wal.Value, _ []int64) (wal.Value, error) {
		if err := c.notPure("current_timestamp"); err != nil {
			return wal.Value{}, err
		}
		return wal.Text(c.now().Format("2006-01-02 15:04:05")), nil
	}},
	{"current_date", 0, pureFlags, func(c *conn, _ []wal.Value, _ []int64) (wal.Value, error) {
		if err := c.notPure("current_date"); err != nil {
			return wal.Value{}, err
		}
		return wal.Text(c.now().Format("2006-01-02")), nil
	}},
	{"current_time", 0, pureFlags, func(c *conn, _ []wal.Value, _ []int64) (wal.Value, error) {
		if err := c.notPure("current_time"); err != nil {
			return wal.Value{}, err
		}
		return wal.Text(c.now().Format("15:04:05")), nil
	}},
	{"random", 0, sqlite3.SQLITE_UTF8 | sqlite3.SQLITE_INNOCUOUS, func(c *conn, _ []wal.Value, _ []int64) (wal.Value, error) {
		return wal.Integer(int64(c.clock.rng.Uint64())), nil
	}},
	{"randomblob", 1, sqlite3.SQLITE_UTF8 | sqlite3.SQLITE_INNOCUOUS, func(c *conn, _ []wal.Value, ints []int64) (wal.Value, error) {
		n := ints[0]
		if n < 1 {
			n = 1
		}
		if n > 1<<30 {
			return wal.Value{}, fmt.Errorf("string or blob too big")
		}
		b := make([]byte, n)
		for i := 0; i < len(b); i += 8 {
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], c.clock.rng.Uint64())
			copy(b[i:], w[:])
		}
		return wal.Blob(b), nil
	}},
	dateFunc("date", 0, -1),
	dateFunc("time", 0, -1),
	dateFunc("datetime", 0, -1),
	dateFunc("julianday", 0, -1),
	dateFunc("unixepoch", 0, -1),
	dateFunc("strftime", 1, -1),
	dateFunc("timediff", 0, 2),
}

func (c *conn) now() time.Time { return time.UnixMilli(c.clock.nowMS).UTC() }

// dateFunc overrides SQLite's date function name, whose time value is the
// argument at position tv (timediff takes two time values and no
// modifiers), with nArg arguments as SQLite registers it (-1: any number).
func dateFunc(name string, tv int, nArg int32) funcDef {
	return funcDef{name, nArg, pureFlags, func(c *conn, args []wal.Value, _ []int64) (wal.Value, error) {
		nowText := wal.Text(c.now().Format("2006-01-02 15:04:05.000"))
		out := make([]wal.Value, 0, len(args)+1)
		impure := false // 'now', 'localtime' or 'utc' is used
		if len(args) == tv {
			// No time value: SQLite means 'now'. (strftime() without
			// even a format is NULL, as SQLite has it.)
			out = append(out, args...)
			out = append(out, nowText)
			impure = true
		} else {
			for i, a := range args {
				isTime := i == tv || (name == "timediff" && i <= 1)
				isText := a.Kind == wal.KindText
				switch {
				case isTime && isText && strings.EqualFold(a.Text, "now"):
					out = append(out, nowText)
					impure = true
				case !isTime && i > tv && name != "timediff" && isText &&
					(strings.EqualFold(a.Text, "localtime") || strings.EqualFold(a.Text, "utc")):
					// every node keeps time in UTC
					impure = true
				default:
					out = append(out, a)
				}
			}
		}
		if impure {
			if err := c.notPure(name); err != nil {
				return wal.Value{}, err
			}
		}
		return c.evalBuiltin(name, out)
	}}
}

// notPure refuses 'now' (and the 'localtime' and 'utc' modifiers) where
// SQLite requires a function's result to depend on its arguments only: in a
// CHECK constraint, a generated column or an index. SQLite's own date
// functions refuse it there (sqlite3NotPureFunc) with the same message; the
// overrides are registered as deterministic, so that SQLite lets them into
// those places at all, and must refuse it themselves. Otherwise an index
// on datetime('now') would keep the time of each write, and a query would
// read those stale values as the current time.
func (c *conn) notPure(name string) error {
	if where := pureContext(c.callCtx); where != "" {
		return fmt.Errorf("non-deterministic use of %s() in %s", name, where)
	}
	return nil
}

// pureContext tells where the function call ctx runs, when SQLite runs it
// as a pure function (OP_PureFunc): "a CHECK constraint", "a generated
// column" or "an index"; "" anywhere else. It reads SQLite's structures the
// way sqlite3NotPureFunc does: the C API has no call for it.
func pureContext(ctx uintptr) string {
	if ctx == 0 {
		return ""
	}
	pc := (*sqlite3.Tsqlite3_context)(ptr(ctx))
	if pc.FpVdbe == 0 {
		return ""
	}
	op := (*sqlite3.TVdbeOp)(ptr((*sqlite3.TVdbe)(ptr(pc.FpVdbe)).FaOp + uintptr(pc.FiOp)*unsafe.Sizeof(sqlite3.TVdbeOp{})))
	if op.Fopcode != sqlite3.OP_PureFunc {
		return ""
	}
	switch {
	case op.Fp5&sqlite3.NC_IsCheck != 0:
		return "a CHECK constraint"
	case op.Fp5&sqlite3.NC_GenCol != 0:
		return "a generated column"
	}
	return "an index"
}

// evalBuiltin evaluates SQLite's own function name on the evaluator.
func (c *conn) evalBuiltin(name string, args []wal.Value) (wal.Value, error) {
	if c.eval == nil {
		e, err := openConn(":memory:", sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE)
		if err != nil {
			return wal.Value{}, fmt.Errorf("open date evaluator: %w", err)
		}
		c.eval = e
		c.evalStmts = make(map[string]*stmt)
	}
	var sb strings.Builder
	sb.WriteString("SELECT ")
	sb.WriteString(name)
	sb.WriteByte('(')
	for i := range args {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('?')
	}
	sb.WriteByte(')')
	q := sb.String()
	s := c.evalStmts[q]
	if s == nil {
		var err error
		s, _, err = c.eval.prepare(q)
		if err != nil {
			return wal.Value{}, err
		}
		c.evalStmts[q] = s
	}
	defer s.reset()
	params := make([]wal.Param, len(args))
	for i, a := range args {
		params[i] = wal.Param{Value: a}
	}
	if err := s.bind(params); err != nil {
		return wal.Value{}, err
	}
	row, err := s.step()
	if err != nil {
		return wal.Value{}, err
	}
	if !row {
		return wal.Null(), nil
	}
	return s.column(0), nil
}

// reset makes a prepared statement ready to run again, without bindings.
func (s *stmt) reset() {
	sqlite3.Xsqlite3_reset(s.c.tls, s.p)
	sqlite3.Xsqlite3_clear_bindings(s.c.tls, s.p)
}

// registerFuncs installs the overrides on c.
func (c *conn) registerFuncs() error {
	for i, f := range funcDefs {
		z, err := c.cstring(f.name)
		if err != nil {
			return err
		}
		rc := sqlite3.Xsqlite3_create_function_v2(c.tls, c.db, z, f.nArg, f.flags,
			c.id<<8|uintptr(i), cFuncPointer(funcTrampoline), 0, 0, 0)
		c.free(z)
		if rc != sqlite3.SQLITE_OK {
			return fmt.Errorf("register %s(): %w", f.name, c.errorf(rc, "create function"))
		}
	}
	return nil
}

const valuePtrSize = unsafe.Sizeof(uintptr(0))

// funcTrampoline is the C entry point of every override.
func funcTrampoline(tls *libc.TLS, ctx uintptr, argc int32, argv uintptr) {
	app := sqlite3.Xsqlite3_user_data(tls, ctx)
	v, ok := registry.Load(app >> 8)
	idx := int(app & 0xff)
	if !ok || idx >= len(funcDefs) {
		resultError(tls, ctx, "walship: function called on an unknown connection")
		return
	}
	c := v.(*conn)
	args := make([]wal.Value, argc)
	ints := make([]int64, argc)
	for i := range args {
		p := *(*uintptr)(ptr(argv + uintptr(i)*valuePtrSize))
		ints[i] = sqlite3.Xsqlite3_value_int64(tls, p)
		switch sqlite3.Xsqlite3_value_type(tls, p) {
		case sqlite3.SQLITE_INTEGER:
			args[i] = wal.Integer(ints[i])
		case sqlite3.SQLITE_FLOAT:
			args[i] = wal.Real(sqlite3.Xsqlite3_value_double(tls, p))
		case sqlite3.SQLITE_TEXT:
			z := sqlite3.Xsqlite3_value_text(tls, p)
			n := sqlite3.Xsqlite3_value_bytes(tls, p)
			if z == 0 || n == 0 {
				args[i] = wal.Text("")
			} else {
				args[i] = wal.Text(string(unsafe.Slice((*byte)(ptr(z)), n)))
			}
		case sqlite3.SQLITE_BLOB:
			z := sqlite3.Xsqlite3_value_blob(tls, p)
			n := sqlite3.Xsqlite3_value_bytes(tls, p)
			b := make([]byte, n)
			if z != 0 && n > 0 {
				copy(b, unsafe.Slice((*byte)(ptr(z)), n))
			}
			args[i] = wal.Blob(b)
		default:
			args[i] = wal.Null()
		}
	}
	c.callCtx = ctx
	res, err := funcDefs[idx].impl(c, args, ints)
	c.callCtx = 0
	if err != nil {
		resultError(tls, ctx, err.Error())
		return
	}
	switch res.Kind {
	case wal.KindInteger:
		sqlite3.Xsqlite3_result_int64(tls, ctx, res.Int)
	case wal.KindReal:
		sqlite3.Xsqlite3_result_double(tls, ctx, res.Real)
	case wal.KindText:
		resultBytes(tls, ctx, []byte(res.Text), true)
	case wal.KindBlob:
		resultBytes(tls, ctx, res.Blob, false)
	default:
		sqlite3.Xsqlite3_result_null(tls, ctx)
	}
}

func resultBytes(tls *libc.TLS, ctx uintptr, b []byte, text bool) {
	if len(b) > math.MaxInt32 {
		resultError(tls, ctx, "string or blob too big")
		return
	}
	p := libc.Xmalloc(tls, types.Size_t(1+len(b)))
	if p == 0 {
		sqlite3.Xsqlite3_result_error_nomem(tls, ctx)
		return
	}
	defer libc.Xfree(tls, p)
	copy(unsafe.Slice((*byte)(ptr(p)), len(b)), b)
	if text {
		sqlite3.Xsqlite3_result_text(tls, ctx, p, int32(len(b)), sqlite3.SQLITE_TRANSIENT)
	} else {
		sqlite3.Xsqlite3_result_blob(tls, ctx, p, int32(len(b)), sqlite3.SQLITE_TRANSIENT)
	}
}

func resultError(tls *libc.TLS, ctx uintptr, msg string) {
	p := libc.Xmalloc(tls, types.Size_t(1+len(msg)))
	if p == 0 {
		sqlite3.Xsqlite3_result_error_nomem(tls, ctx)
		return
	}
	defer libc.Xfree(tls, p)
	copy(unsafe.Slice((*byte)(ptr(p)), len(msg)), msg)
	sqlite3.Xsqlite3_result_error(tls, ctx, p, int32(len(msg)))
}
