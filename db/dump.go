package db

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/walship/walship/wal"
)

var (
	// ErrNoTable is returned by Dump when none of the names it is given
	// matches a table or view.
	ErrNoTable = errors.New("no table or view matches")
	// ErrNotDumpable is returned by Dump when a table's content cannot be
	// written as SQL: a contentless FTS5 table keeps only its index, not
	// the text it indexed.
	ErrNotDumpable = errors.New("cannot be dumped as SQL")
)

// Dump writes the database as SQL text to w, in the format of the sqlite3
// shell's .dump, and returns the position it is of. It reads in one read
// transaction on a read connection, so the dump is of one applied index
// while the writer goes on. The text is written row by row (through a
// buffer): neither the dump nor a table is held in memory. ctx stops the
// dump between rows or inside a query; a Write to w that blocks is its
// owner's to end (a connection's deadline).
//
// tables, if not empty, are LIKE patterns (ESCAPE '\', as the shell's .dump
// TABLE takes): only the tables and views whose names match are dumped,
// with the indexes and triggers on them, and their rows (and their shadow
// tables') of sqlite_sequence and sqlite_stat1. ErrNoTable when nothing
// matches, before anything is written.
//
// The text:
//
//   - PRAGMA foreign_keys=OFF; BEGIN TRANSACTION; … COMMIT;, the framing
//     walship (Frame) and sqlite3 load as one transaction without foreign
//     key checks. A dump cut short (an error, ctx) has no COMMIT: it loads
//     nothing.
//   - PRAGMA user_version and application_id, when not 0 (whole dumps).
//   - Each table's CREATE statement and its rows, INSERT INTO "t"
//     VALUES(…), in the order of sqlite_schema. Generated columns are left
//     out (they are computed again). A rowid table whose rowid is not an
//     INTEGER PRIMARY KEY keeps its rowids, as .dump --preserve-rowids
//     does: INSERT INTO "t"(rowid,"a",…), with _rowid_ or oid where a
//     column is named rowid (none when all three are column names).
//   - Virtual tables: CREATE VIRTUAL TABLE, and the rows inserted through
//     the table with their rowids (a logical dump: the shadow tables are
//     not written, so their layout after a load may differ, their content
//     does not). FTS5's settings (pgsz, automerge, rank …) are set with
//     its special INSERT; an FTS5 table with external content is rebuilt
//     from it at the end; a contentless one is ErrNotDumpable. A virtual
//     table without shadow tables (fts5vocab) holds no rows of its own.
//   - sqlite_stat1 as the shell writes it (ANALYZE sqlite_schema, then its
//     rows); sqlite_sequence as DELETE FROM sqlite_sequence and its rows,
//     when a table dumped has AUTOINCREMENT (which makes it on a load).
//     sqlite_stat4 is left out: sqlite3 builds without SQLITE_ENABLE_STAT4
//     (Debian's) have no such table; ANALYZE computes it again.
//   - Indexes, views, the rebuilds of external-content FTS5 tables, then
//     triggers (an INSTEAD OF trigger needs its view; SQLite resolves the
//     names a view or a trigger body uses when they run, not when they are
//     created).
//
// Values keep their storage class and bits: integers in decimal; reals with
// 17 significant digits, integral ones as N.0, -0.0 with its sign, ±Inf as
// ±1e999, and those below 1e-250 in magnitude as a quotient by exact powers
// of two (sqlite3 3.40, Debian 12's, reads such literals a bit off); text as a
// quoted literal, newlines and carriage returns written as the shell does
// (replace('…\n…','\n',char(10))) so that a row is one line, and text that
// holds a NUL or is not valid UTF-8 as CAST(X'…' AS TEXT) (a literal
// cannot hold it: SQLite reads SQL text up to a NUL, and walship's JSON
// clients would change invalid UTF-8); blobs as X'…'. walship's own tables
// are not dumped.
func (d *DB) Dump(ctx context.Context, w io.Writer, tables []string) (Position, error) {
	return d.DumpStart(ctx, w, tables, nil)
}

// DumpStart is Dump that calls start, if not nil, with the position the
// dump holds once everything that can fail before a byte is written has
// passed, and before the first byte: a server sends its headers then.
// An error of start stops the dump.
func (d *DB) DumpStart(ctx context.Context, w io.Writer, tables []string, start func(Position) error) (Position, error) {
	c, err := d.reader(ctx)
	if err != nil {
		return Position{}, err
	}
	defer d.putReader(c)
	c.auth.reset(policyInternal)
	if err := c.exec("BEGIN"); err != nil {
		return Position{}, fmt.Errorf("dump: %w", err)
	}
	// As in Query: ctx stops the running statement, and the reader goes
	// back to the pool only once that is over.
	c.canceled.Store(false)
	stop := c.cancelOn(ctx)
	defer func() {
		stop()
		c.canceled.Store(false)
		c.auth.reset(policyInternal)
		if err := c.exec("COMMIT"); err != nil || c.inTxn() {
			_ = c.exec("ROLLBACK")
		}
	}()
	dp := &dumper{ctx: ctx, c: c, w: bufio.NewWriterSize(w, 64<<10), start: start}
	pos, err := dp.dump(tables)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return Position{}, fmt.Errorf("dump: %w", err)
	}
	return pos, nil
}

// dumper writes one dump.
type dumper struct {
	ctx   context.Context
	start func(Position) error // see DumpStart
	c     *conn
	w     *bufio.Writer
	buf   []byte // the row being written

	objs     []*schemaObject // sqlite_schema in rowid order, walship's own left out
	kinds    map[string]bool // every table by lower-case name (pragma_table_list)
	whole    bool            // no patterns: the whole database
	selected map[string]bool // the tables and views dumped, by lower-case name
	owned    []string        // the selected tables and their shadow tables
	vtabs    map[*schemaObject]*virtualTable
}

// schemaObject is a row of sqlite_schema, with what pragma_table_list says
// of a table.
type schemaObject struct {
	typ, name, tbl, sql string
	kind                string // table, virtual or shadow (tables only)
	withoutRowid        bool
}

// virtualTable is what a CREATE VIRTUAL TABLE statement says.
type virtualTable struct {
	module string
	args   []string
}

func (dp *dumper) dump(patterns []string) (Position, error) {
	pos, err := dp.query("SELECT log_id, applied_index FROM _walship WHERE id = 1")
	if err != nil {
		return Position{}, err
	}
	if len(pos) != 1 {
		return Position{}, errors.New("_walship has no row")
	}
	// Everything that can fail before a byte is written does.
	if err := dp.readSchema(); err != nil {
		return Position{}, err
	}
	if err := dp.selectObjects(patterns); err != nil {
		return Position{}, err
	}
	if err := dp.readVirtualTables(); err != nil {
		return Position{}, err
	}
	if dp.start != nil {
		if err := dp.start(Position{LogID: pos[0][0].Text, Index: uint64(pos[0][1].Int)}); err != nil {
			return Position{}, err
		}
	}
	dp.printf("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
	if dp.whole {
		hdr, err := dp.query("SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id)")
		if err != nil {
			return Position{}, err
		}
		if v := hdr[0][0].Int; v != 0 {
			dp.printf("PRAGMA user_version=%d;\n", v)
		}
		if v := hdr[0][1].Int; v != 0 {
			dp.printf("PRAGMA application_id=%d;\n", v)
		}
	}
	var rebuild []string // external-content FTS5 tables
	for _, o := range dp.objs {
		if o.typ != "table" || !dp.selected[strings.ToLower(o.name)] {
			continue
		}
		dp.printf("%s;\n", o.sql)
		if vt := dp.vtabs[o]; vt != nil {
			external, err := dp.virtualRows(o, vt)
			if err != nil {
				return Position{}, err
			}
			if external {
				rebuild = append(rebuild, o.name)
			}
			continue
		}
		if err := dp.tableRows(o); err != nil {
			return Position{}, err
		}
	}
	if err := dp.internalTables(); err != nil {
		return Position{}, err
	}
	for _, typ := range []string{"index", "view", "rebuild", "trigger"} {
		if typ == "rebuild" {
			for _, name := range rebuild {
				q := quoteIdent(name)
				dp.printf("INSERT INTO %s(%s) VALUES('rebuild');\n", q, q)
			}
			continue
		}
		for _, o := range dp.objs {
			if o.typ != typ {
				continue
			}
			if (typ == "view" && dp.selected[strings.ToLower(o.name)]) || (typ != "view" && dp.selected[strings.ToLower(o.tbl)]) {
				dp.printf("%s;\n", o.sql)
			}
		}
	}
	dp.printf("COMMIT;\n")
	if err := dp.w.Flush(); err != nil {
		return Position{}, err
	}
	return Position{LogID: pos[0][0].Text, Index: uint64(pos[0][1].Int)}, nil
}

// readSchema reads sqlite_schema and which tables are virtual, shadow or
// WITHOUT ROWID.
func (dp *dumper) readSchema() error {
	rows, err := dp.query("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY rowid")
	if err != nil {
		return err
	}
	kinds, err := dp.query("SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main'")
	if err != nil {
		return err
	}
	kindOf := map[string][]wal.Value{}
	dp.kinds = map[string]bool{}
	for _, k := range kinds {
		kindOf[strings.ToLower(k[0].Text)] = k
		dp.kinds[strings.ToLower(k[0].Text)] = true
	}
	for _, r := range rows {
		o := &schemaObject{typ: r[0].Text, name: r[1].Text, tbl: r[2].Text, sql: r[3].Text}
		if isInternalName(o.name) || isInternalName(o.tbl) {
			continue
		}
		if k, ok := kindOf[strings.ToLower(o.name)]; ok && o.typ == "table" {
			o.kind, o.withoutRowid = k[1].Text, k[2].Int != 0
		}
		dp.objs = append(dp.objs, o)
	}
	return nil
}

// exists says the database has a table of that name.
func (dp *dumper) exists(name string) bool { return dp.kinds[strings.ToLower(name)] }

// selectObjects picks the tables and views to dump: all of them, or those
// the patterns match.
func (dp *dumper) selectObjects(patterns []string) error {
	user := func(o *schemaObject) bool {
		return (o.typ == "table" && o.kind != "shadow" && !isSQLiteName(o.name)) || o.typ == "view"
	}
	dp.whole = len(patterns) == 0
	dp.selected = map[string]bool{}
	names := map[string]bool{}
	if !dp.whole {
		conds := make([]string, len(patterns))
		params := make([]wal.Param, len(patterns))
		for i, p := range patterns {
			conds[i] = fmt.Sprintf(`name LIKE ?%d ESCAPE '\'`, i+1)
			params[i] = wal.Param{Value: wal.Text(p)}
		}
		matched, err := dp.query("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND ("+strings.Join(conds, " OR ")+")", params...)
		if err != nil {
			return err
		}
		for _, m := range matched {
			names[strings.ToLower(m[0].Text)] = true
		}
	}
	for _, o := range dp.objs {
		if user(o) && (dp.whole || names[strings.ToLower(o.name)]) {
			dp.selected[strings.ToLower(o.name)] = true
		}
	}
	if !dp.whole && len(dp.selected) == 0 {
		return fmt.Errorf("%w %s", ErrNoTable, strings.Join(patterns, ", "))
	}
	for _, o := range dp.objs {
		if o.typ == "table" && dp.selected[strings.ToLower(o.name)] {
			dp.owned = append(dp.owned, o.name)
		}
	}
	for _, o := range dp.objs {
		if o.kind != "shadow" {
			continue
		}
		// A shadow table is named after its virtual table (the longest
		// name that fits: f_g_data is f_g's, not f's).
		owner := ""
		for _, v := range dp.objs {
			if v.kind == "virtual" && len(v.name) > len(owner) && strings.HasPrefix(strings.ToLower(o.name), strings.ToLower(v.name)+"_") {
				owner = v.name
			}
		}
		if owner != "" && dp.selected[strings.ToLower(owner)] {
			dp.owned = append(dp.owned, o.name)
		}
	}
	return nil
}

// readVirtualTables reads the module and arguments of each virtual table
// dumped: one that cannot be dumped fails the dump, before it starts.
func (dp *dumper) readVirtualTables() error {
	dp.vtabs = map[*schemaObject]*virtualTable{}
	for _, o := range dp.objs {
		if o.kind != "virtual" || !dp.selected[strings.ToLower(o.name)] {
			continue
		}
		vt, err := parseVirtualTable(o.sql)
		if err != nil {
			return fmt.Errorf("virtual table %s: %w", o.name, err)
		}
		if vt.module == "fts5" && vt.contentless() {
			return fmt.Errorf("the FTS5 table %s is contentless (content=''): it keeps no text to write, only its index; %w (a backup as a SQLite file holds it)", o.name, ErrNotDumpable)
		}
		dp.vtabs[o] = vt
	}
	return nil
}

// internalTables writes sqlite_stat1 and sqlite_sequence: all their rows
// in a whole dump, with their rowids; the rows of the tables dumped
// otherwise.
func (dp *dumper) internalTables() error {
	owned := func(col string) string {
		if dp.whole {
			return col + ` NOT LIKE '\_walship%' ESCAPE '\'`
		}
		q := make([]string, len(dp.owned))
		for i, t := range dp.owned {
			q[i] = sqlString(t)
		}
		return col + " IN (" + strings.Join(q, ", ") + ")"
	}
	if dp.exists("sqlite_stat1") {
		n, err := dp.count("SELECT count(*) FROM sqlite_stat1 WHERE " + owned("tbl"))
		if err != nil {
			return err
		}
		if dp.whole || n > 0 {
			dp.printf("ANALYZE sqlite_schema;\n")
			if err := dp.internalRows("sqlite_stat1", []string{"tbl", "idx", "stat"}, owned("tbl")); err != nil {
				return err
			}
		}
	}
	// sqlite_sequence exists once a table with AUTOINCREMENT was made,
	// and stays when they are dropped: it is written when the dump makes
	// it.
	autoinc := false
	for _, o := range dp.objs {
		autoinc = autoinc || (o.typ == "table" && dp.selected[strings.ToLower(o.name)] && hasAutoincrement(o.sql))
	}
	if !dp.exists("sqlite_sequence") || !autoinc {
		return nil
	}
	if dp.whole {
		dp.printf("DELETE FROM sqlite_sequence;\n")
	} else {
		n, err := dp.count("SELECT count(*) FROM sqlite_sequence WHERE " + owned("name"))
		if err != nil {
			return err
		}
		if n > 0 {
			dp.printf("DELETE FROM sqlite_sequence WHERE %s;\n", owned("name"))
		}
	}
	return dp.internalRows("sqlite_sequence", []string{"name", "seq"}, owned("name"))
}

// tableRows writes the rows of a (not virtual) table.
func (dp *dumper) tableRows(o *schemaObject) error {
	cols, err := dp.query("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid", wal.Param{Value: wal.Text(o.name)})
	if err != nil {
		return err
	}
	var names []string
	all, hidden := map[string]bool{}, false
	pks, ipk := 0, false
	for _, col := range cols {
		all[strings.ToLower(col[0].Text)] = true
		if col[2].Int > 0 {
			pks++
			ipk = strings.EqualFold(col[1].Text, "INTEGER")
		}
		if col[3].Int != 0 {
			hidden = true // generated
			continue
		}
		names = append(names, col[0].Text)
	}
	rowid := ""
	if !o.withoutRowid {
		alias := false
		if pks == 1 && ipk {
			// An INTEGER PRIMARY KEY is the rowid, unless it is
			// declared DESC: then it has an index of its own (as
			// the shell tells).
			idx, err := dp.query("SELECT 1 FROM pragma_index_list(?1) WHERE origin = 'pk'", wal.Param{Value: wal.Text(o.name)})
			if err != nil {
				return err
			}
			alias = len(idx) == 0
		}
		if !alias {
			rowid = rowidName(all)
		}
	}
	return dp.rows(o.name, names, rowid, hidden || rowid != "", "")
}

// rowidName is the name that reads a table's rowid, "" when its columns
// take all three.
func rowidName(columns map[string]bool) string {
	for _, n := range []string{"rowid", "_rowid_", "oid"} {
		if !columns[n] {
			return n
		}
	}
	return ""
}

// virtualRows writes the settings and rows of a virtual table; external
// says it is an FTS5 table with external content, rebuilt at the end.
func (dp *dumper) virtualRows(o *schemaObject, vt *virtualTable) (external bool, err error) {
	shadows, err := dp.count(`SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow' AND name LIKE ?1 ESCAPE '\'`,
		wal.Param{Value: wal.Text(likeEscape(o.name) + `\_%`)})
	if err != nil {
		return false, err
	}
	if shadows == 0 {
		return false, nil // no content of its own (fts5vocab …)
	}
	q := quoteIdent(o.name)
	if vt.module == "fts5" {
		if dp.exists(o.name + "_config") {
			// INSERT INTO f(f, rank) VALUES('pgsz', 4072) sets one.
			err := dp.inserts("INSERT INTO "+q+"("+q+", rank) VALUES(",
				"SELECT k, v FROM "+quoteIdent(o.name+"_config")+" WHERE k <> 'version' ORDER BY k")
			if err != nil {
				return false, err
			}
		}
		if vt.externalContent() {
			return true, nil
		}
	}
	cols, err := dp.query("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 ORDER BY cid", wal.Param{Value: wal.Text(o.name)})
	if err != nil {
		return false, err
	}
	names := make([]string, len(cols))
	all := map[string]bool{}
	for i, col := range cols {
		names[i] = col[0].Text
		all[strings.ToLower(col[0].Text)] = true
	}
	rowid := ""
	if vt.module != "rtree" && vt.module != "rtree_i32" {
		// An R*Tree's first column is its rowid.
		rowid = rowidName(all)
	}
	return false, dp.rows(o.name, names, rowid, true, "")
}

// internalRows writes the rows of sqlite_stat1 or sqlite_sequence that
// where selects; with their rowids in a whole dump (in a dump of some
// tables they would collide with the rows the database loading it has).
func (dp *dumper) internalRows(table string, names []string, where string) error {
	if dp.whole {
		return dp.rows(table, names, "rowid", true, where)
	}
	return dp.rows(table, names, "", false, where)
}

// rows writes an INSERT for each row of table: the columns names, after
// the rowid read as rowid when it is not "". list says the INSERT names
// its columns.
func (dp *dumper) rows(table string, names []string, rowid string, list bool, where string) error {
	sel := make([]string, 0, len(names)+1)
	if rowid != "" {
		sel = append(sel, rowid)
	}
	for _, n := range names {
		sel = append(sel, quoteIdent(n))
	}
	prefix := "INSERT INTO " + quoteIdent(table)
	if list {
		prefix += "(" + strings.Join(sel, ",") + ")"
	}
	prefix += " VALUES("
	sql := "SELECT " + strings.Join(sel, ", ") + " FROM " + quoteIdent(table)
	if where != "" {
		sql += " WHERE " + where
	}
	if rowid != "" {
		sql += " ORDER BY " + rowid
	}
	return dp.inserts(prefix, sql)
}

// inserts writes prefix, then the values of a row of query, then ");" for
// each row.
func (dp *dumper) inserts(prefix, query string) error {
	return dp.each(query, func(vals []wal.Value) error {
		dp.buf = append(dp.buf[:0], prefix...)
		for i, v := range vals {
			if i > 0 {
				dp.buf = append(dp.buf, ',')
			}
			dp.buf = appendValue(dp.buf, v)
		}
		dp.buf = append(dp.buf, ");\n"...)
		_, err := dp.w.Write(dp.buf)
		return err
	})
}

// each runs sql and calls fn with each row, one at a time.
func (dp *dumper) each(sql string, fn func([]wal.Value) error) error {
	if err := dp.ctx.Err(); err != nil {
		return err
	}
	c := dp.c
	c.auth.reset(policyInternal)
	s, _, err := c.prepare(sql)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	if s == nil {
		return nil
	}
	defer s.finalize()
	var vals []wal.Value
	for {
		row, err := s.step()
		if err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		if !row {
			return nil
		}
		n := s.columnCount()
		vals = vals[:0]
		for i := 0; i < n; i++ {
			vals = append(vals, s.column(i))
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
}

// query runs sql (a small read) and returns its rows.
func (dp *dumper) query(sql string, params ...wal.Param) ([][]wal.Value, error) {
	if err := dp.ctx.Err(); err != nil {
		return nil, err
	}
	res, _, err := dp.c.run(wal.Statement{SQL: sql, Params: params}, policyInternal, false, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sql, err)
	}
	return res.Rows, nil
}

// count runs a query of one integer.
func (dp *dumper) count(sql string, params ...wal.Param) (int64, error) {
	rows, err := dp.query(sql, params...)
	if err != nil {
		return 0, err
	}
	return rows[0][0].Int, nil
}

// printf writes to the dump; a write error stays in dp.w, and Flush
// returns it.
func (dp *dumper) printf(format string, args ...any) { fmt.Fprintf(dp.w, format, args...) }

// quoteIdent quotes an identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// likeEscape escapes LIKE's wildcards (with ESCAPE '\') in s.
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// appendValue appends v as an SQL literal that SQLite reads back as the
// same value of the same storage class.
func appendValue(b []byte, v wal.Value) []byte {
	switch v.Kind {
	case wal.KindInteger:
		return strconv.AppendInt(b, v.Int, 10)
	case wal.KindReal:
		return appendReal(b, v.Real)
	case wal.KindText:
		return appendText(b, v.Text)
	case wal.KindBlob:
		b = append(b, "X'"...)
		b = hex.AppendEncode(b, v.Blob)
		return append(b, '\'')
	}
	return append(b, "NULL"...)
}

// tinyReal bounds the reals written as a quotient: sqlite3 3.40 (Debian
// 12's) reads a literal below about 1e-291 a bit off, so they
// are written as x/2^62/2^62/2^62/2^62, with x = f·2^248 a literal it
// reads exactly, and divisions that are exact.
const tinyReal = 1e-250

// appendReal appends f so that SQLite reads the same 64 bits as a REAL.
func appendReal(b []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(b, "1e999"...)
	case math.IsInf(f, -1):
		return append(b, "-1e999"...)
	case math.IsNaN(f):
		return append(b, "NULL"...) // SQLite stores none: NaN is NULL
	case f == math.Trunc(f) && math.Abs(f) < 1e17:
		// Integral: N.0 (a literal without a point is an INTEGER).
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
		return append(b, ".0"...)
	case f != 0 && math.Abs(f) < tinyReal:
		b = append(b, '(')
		b = appendReal17(b, math.Ldexp(f, 248))
		for range 4 {
			b = append(b, "/4611686018427387904"...)
		}
		return append(b, ')')
	}
	return appendReal17(b, f)
}

// appendReal17 appends f with 17 significant digits, which name one double
// (strconv drops trailing zeros).
func appendReal17(b []byte, f float64) []byte {
	start := len(b)
	b = strconv.AppendFloat(b, f, 'g', 17, 64)
	if bytes.IndexAny(b[start:], ".e") < 0 {
		b = append(b, ".0"...) // a literal without them is an INTEGER
	}
	return b
}

// appendText appends s as an SQL expression of type TEXT with the same
// bytes.
func appendText(b []byte, s string) []byte {
	if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		b = append(b, "CAST(X'"...)
		b = hex.AppendEncode(b, []byte(s))
		return append(b, "' AS TEXT)"...)
	}
	nl, cr := strings.IndexByte(s, '\n') >= 0, strings.IndexByte(s, '\r') >= 0
	if !nl && !cr {
		return appendQuoted(b, s)
	}
	// As the sqlite3 shell: each newline (carriage return) is written as a
	// marker that s does not hold, and put back with replace().
	var nlMark, crMark string
	if nl {
		nlMark = unusedMarker(s, `\n`, `\012`)
		b = append(b, "replace("...)
	}
	if cr {
		crMark = unusedMarker(s, `\r`, `\015`)
		b = append(b, "replace("...)
	}
	t := s
	if nl {
		t = strings.ReplaceAll(t, "\n", nlMark)
	}
	if cr {
		t = strings.ReplaceAll(t, "\r", crMark)
	}
	b = appendQuoted(b, t)
	if cr {
		b = append(b, ',')
		b = appendQuoted(b, crMark)
		b = append(b, ",char(13))"...)
	}
	if nl {
		b = append(b, ',')
		b = appendQuoted(b, nlMark)
		b = append(b, ",char(10))"...)
	}
	return b
}

// unusedMarker returns a or b if s does not hold it, else the first of
// (a0), (a1) … that s does not hold (the shell's unused_string).
func unusedMarker(s, a, b string) string {
	if !strings.Contains(s, a) {
		return a
	}
	if !strings.Contains(s, b) {
		return b
	}
	for i := 0; ; i++ {
		m := "(" + a + strconv.Itoa(i) + ")"
		if !strings.Contains(s, m) {
			return m
		}
	}
}

func appendQuoted(b []byte, s string) []byte {
	b = append(b, '\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			b = append(b, '\'')
		}
		b = append(b, s[i])
	}
	return append(b, '\'')
}

// parseVirtualTable reads the module and arguments of a CREATE VIRTUAL
// TABLE statement as sqlite_schema holds it:
// CREATE VIRTUAL TABLE name [. name] USING module [( arguments )].
func parseVirtualTable(sql string) (*virtualTable, error) {
	toks, ok := sqlTokens(sql, 9)
	bad := fmt.Errorf("cannot read %q", sql)
	if !ok || len(toks) < 6 {
		return nil, bad
	}
	for i, kw := range []string{"CREATE", "VIRTUAL", "TABLE"} {
		if !strings.EqualFold(toks[i].text, kw) {
			return nil, bad
		}
	}
	i := 4
	if toks[i].text == "." {
		i += 2
	}
	if i+1 >= len(toks) || !strings.EqualFold(toks[i].text, "USING") {
		return nil, bad
	}
	vt := &virtualTable{module: strings.ToLower(dequote(toks[i+1].text))}
	if i+2 >= len(toks) {
		return vt, nil
	}
	if toks[i+2].text != "(" {
		return nil, bad
	}
	args, ok := splitArgs(sql[toks[i+2].pos+1:])
	if !ok {
		return nil, fmt.Errorf("cannot read the arguments of %q", sql)
	}
	vt.args = args
	return vt, nil
}

// option returns the value of FTS5's key=value argument key.
func (vt *virtualTable) option(key string) (string, bool) {
	for _, a := range vt.args {
		k, v, ok := strings.Cut(a, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), key) {
			return dequote(strings.TrimSpace(v)), true
		}
	}
	return "", false
}

// contentless says an FTS5 table keeps no content: its content option is
// an empty string.
func (vt *virtualTable) contentless() bool {
	v, ok := vt.option("content")
	return ok && v == ""
}

// externalContent says an FTS5 table reads its content from another table.
func (vt *virtualTable) externalContent() bool {
	v, ok := vt.option("content")
	return ok && v != ""
}

// hasAutoincrement says a CREATE TABLE statement has the keyword
// AUTOINCREMENT.
func hasAutoincrement(sql string) bool {
	toks, _ := sqlTokens(sql, -1)
	for _, t := range toks {
		if strings.EqualFold(t.text, "AUTOINCREMENT") {
			return true
		}
	}
	return false
}

// token is a token of SQL text and where it starts.
type token struct {
	text string
	pos  int
}

// sqlTokens returns up to max tokens of sql (all when max < 0), comments
// and white space left out; ok is false when a quote or comment is not
// closed.
func sqlTokens(sql string, max int) (toks []token, ok bool) {
	i := 0
	for max < 0 || len(toks) < max {
		for i < len(sql) {
			if ch := sql[i]; ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' {
				i++
			} else if strings.HasPrefix(sql[i:], "--") {
				j := strings.IndexByte(sql[i:], '\n')
				if j < 0 {
					j = len(sql) - i - 1
				}
				i += j + 1
			} else if strings.HasPrefix(sql[i:], "/*") {
				j := strings.Index(sql[i+2:], "*/")
				if j < 0 {
					return nil, false
				}
				i += j + 4
			} else {
				break
			}
		}
		if i >= len(sql) {
			break
		}
		j := i + 1
		switch ch := sql[i]; {
		case ch == '"' || ch == '\'' || ch == '`':
			for {
				k := strings.IndexByte(sql[j:], ch)
				if k < 0 {
					return nil, false
				}
				j += k + 1
				if j < len(sql) && sql[j] == ch {
					j++ // a doubled quote
					continue
				}
				break
			}
		case ch == '[':
			k := strings.IndexByte(sql[j:], ']')
			if k < 0 {
				return nil, false
			}
			j += k + 1
		case idChar(ch):
			for j < len(sql) && idChar(sql[j]) {
				j++
			}
		}
		toks = append(toks, token{text: sql[i:j], pos: i})
		i = j
	}
	return toks, true
}

// splitArgs splits the text after a module's "(" at the commas outside
// quotes and parentheses, up to the ")" that closes it.
func splitArgs(s string) ([]string, bool) {
	var args []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '\'', '"', '`':
			k := i + 1
			for {
				j := strings.IndexByte(s[k:], ch)
				if j < 0 {
					return nil, false
				}
				k += j + 1
				if k < len(s) && s[k] == ch {
					k++
					continue
				}
				break
			}
			i = k - 1
		case '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, false
			}
			i += j
		case '(':
			depth++
		case ')':
			if depth == 0 {
				if a := strings.TrimSpace(s[start:i]); a != "" || len(args) > 0 {
					args = append(args, a)
				}
				return args, true
			}
			depth--
		case ',':
			if depth == 0 {
				args = append(args, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return nil, false
}

// dequote removes SQL quotes from an identifier or string.
func dequote(s string) string {
	if len(s) < 2 {
		return s
	}
	switch q := s[0]; q {
	case '"', '\'', '`':
		if s[len(s)-1] == q {
			return strings.ReplaceAll(s[1:len(s)-1], string([]byte{q, q}), string(q))
		}
	case '[':
		if s[len(s)-1] == ']' {
			return s[1 : len(s)-1]
		}
	}
	return s
}
