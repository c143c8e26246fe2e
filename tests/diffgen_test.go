package tests

// The workload generator of the differential test (differential_test.go):
// seeded random requests that mix schema changes, writes, reads and
// disruptions. It keeps a model of the schema, read back from the
// reference database after every request, so that most statements name
// what exists; those that fail must fail alike on the cluster and on the
// reference.
//
// Naming carries what may be compared with the reference: values that are
// pinned per entry (the time, random()) differ from the reference's own, so
// they live only in columns and tables whose names start with "v", and a
// table whose name starts with "r" holds the largest rowid (SQLite then
// picks rowids at random). Such values are compared between nodes, never
// against the reference; no write reads them.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// gStmt is one generated statement and what the comparison needs to know
// of it.
type gStmt struct {
	SQL string
	// Kind is 's' for a schema statement, 'w' for INSERT, UPDATE or
	// DELETE, 'r' for a read, 'o' for another write (ANALYZE, PRAGMA …).
	Kind byte
	// Rows is set when the statement returns rows (a read, RETURNING).
	Rows bool
	// Insert is set for an INSERT (its last_insert_id is compared).
	Insert bool
	// Volatile is set when the statement's answer may hold pinned values
	// or random rowids: compared between nodes only.
	Volatile bool
	// Endless is set for a statement that runs until it is stopped
	// (db_timeout requests): the reference does not run it.
	Endless bool
}

// gRequest is one step of a workload: a request over one API to one node,
// or a disruption.
type gRequest struct {
	// API is "seed" (POST / exec, all-or-nothing), "rq" (/db/execute),
	// "rqtx" (/db/execute?transaction), "queue" (/db/execute?queue, then
	// a flush), "timeout" (/db/execute with db_timeout), "dump" (POST /
	// with a dump's framing), "qseed" (POST / query), "qrq"
	// (/db/query?level=none), "cache" (POST / exec of 140 distinct
	// reads, which pushes the statement cache), or "" for a disruption.
	API string
	// Target is the node: 0 the master, 1 and 2 the slaves.
	Target int
	Stmts  []gStmt
	// Txn is set for rqtx and timeout requests that are transactions.
	Txn bool
	// Disrupt is "restart-master", "restart-slave", "pause-slave" or
	// "resume-slave" (Target names the slave).
	Disrupt string
}

func (r gRequest) String() string {
	if r.Disrupt != "" {
		return fmt.Sprintf("%s %d", r.Disrupt, r.Target)
	}
	var sqls []string
	for _, s := range r.Stmts {
		sqls = append(sqls, s.SQL)
	}
	txn := ""
	if r.Txn {
		txn = " txn"
	}
	return fmt.Sprintf("%s@%d%s %q", r.API, r.Target, txn, sqls)
}

// mCol and mTable are the model of the reference's schema.
type mCol struct {
	name, decl  string
	pk, notNull bool
	generated   bool
	volatile    bool
}

type mTable struct {
	name         string
	kind         byte // 't' plain, 'v' volatile, 'r' largest rowid, 'f' FTS5
	cols         []mCol
	withoutRowid bool
	strict       bool
}

// valueCols are the plain columns a copied value may go to: not a rowid
// alias, which could receive the largest rowid.
func (t *mTable) valueCols() []mCol {
	var out []mCol
	for _, c := range t.plainCols() {
		if !(c.pk && strings.EqualFold(c.decl, "INTEGER")) {
			out = append(out, c)
		}
	}
	return out
}

// plainCols are the columns a write may set and a read may compare.
func (t *mTable) plainCols() []mCol {
	var out []mCol
	for _, c := range t.cols {
		if !c.volatile && !c.generated {
			out = append(out, c)
		}
	}
	return out
}

type model struct {
	tables   []*mTable
	views    []string
	triggers []string
	indexes  []string
}

// gen generates one workload.
type gen struct {
	rng    *rand.Rand
	m      model
	n      int  // names made so far
	paused int  // the paused slave, 0 for none
	slaves bool // the cluster has slaves
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, 0x5eed)), slaves: true}
}

func (g *gen) name(prefix string) string {
	g.n++
	return fmt.Sprintf("%s%d", prefix, g.n)
}

func (g *gen) pick(n int) int        { return g.rng.IntN(n) }
func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

func pickOne[T any](g *gen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// tablesOf returns the model's tables of the given kinds.
func (g *gen) tablesOf(kinds string) []*mTable {
	var out []*mTable
	for _, t := range g.m.tables {
		if strings.IndexByte(kinds, t.kind) >= 0 {
			out = append(out, t)
		}
	}
	return out
}

// next returns the next step of the workload.
func (g *gen) next() gRequest {
	if g.paused != 0 && g.chance(0.1) {
		s := g.paused
		g.paused = 0
		return gRequest{Disrupt: "resume-slave", Target: s}
	}
	switch p := g.rng.Float64(); {
	case p < 0.015:
		return gRequest{Disrupt: "restart-master"}
	case p < 0.03 && g.slaves && g.paused == 0:
		return gRequest{Disrupt: "restart-slave", Target: 1 + g.pick(2)}
	case p < 0.045 && g.slaves && g.paused == 0:
		g.paused = 1 + g.pick(2)
		return gRequest{Disrupt: "pause-slave", Target: g.paused}
	case p < 0.055:
		return gRequest{API: "cache"}
	case p < 0.3:
		return g.read()
	}
	return g.write()
}

// target picks a running node; schema statements on the seed API go to
// the master (a slave refuses them there with 403, by design).
func (g *gen) target(master bool) int {
	if master || !g.slaves || g.chance(0.5) {
		return 0
	}
	for {
		t := 1 + g.pick(2)
		if t != g.paused {
			return t
		}
	}
}

func (g *gen) read() gRequest {
	api := "qseed"
	if g.chance(0.5) {
		api = "qrq"
	}
	r := gRequest{API: api, Target: g.target(false)}
	n := 1
	if api == "qrq" && g.chance(0.3) {
		n = 2
	}
	for range n {
		r.Stmts = append(r.Stmts, g.selectStmt())
	}
	return r
}

func (g *gen) write() gRequest {
	n := 1 + g.pick(3)
	if g.chance(0.1) {
		n = 4 + g.pick(5)
	}
	var stmts []gStmt
	schema := false
	for range n {
		s := g.writeStmt()
		schema = schema || s.Kind == 's'
		stmts = append(stmts, s)
	}
	switch p := g.rng.Float64(); {
	case p < 0.3:
		return gRequest{API: "seed", Target: g.target(schema), Stmts: stmts}
	case p < 0.6:
		return gRequest{API: "rq", Target: g.target(false), Stmts: stmts}
	case p < 0.78:
		return gRequest{API: "rqtx", Target: g.target(false), Stmts: stmts, Txn: true}
	case p < 0.86:
		return gRequest{API: "queue", Target: g.target(false), Stmts: stmts}
	case p < 0.92 && len(g.tablesOf("t")) > 0:
		at := g.pick(len(stmts) + 1)
		endless := gStmt{SQL: g.endless(), Kind: 'w', Endless: true}
		stmts = slices.Insert(stmts, at, endless)
		return gRequest{API: "timeout", Target: g.target(false), Stmts: stmts, Txn: g.chance(0.3)}
	default:
		return gRequest{API: "dump", Target: g.target(true), Stmts: stmts}
	}
}

// endless is a write that runs until its db_timeout stops it.
func (g *gen) endless() string {
	t := pickOne(g, g.tablesOf("t"))
	cols := t.plainCols()
	if len(cols) == 0 {
		return "INSERT INTO " + t.name + " DEFAULT VALUES"
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT i FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT i FROM c WHERE i < 0)",
		t.name, cols[0].name)
}

// writeStmt returns a schema statement or a write.
func (g *gen) writeStmt() gStmt {
	if len(g.m.tables) < 2 || g.chance(0.22) {
		return g.schemaStmt()
	}
	switch p := g.rng.Float64(); {
	case p < 0.35:
		return g.insertStmt()
	case p < 0.5:
		return g.updateStmt()
	case p < 0.6:
		return g.deleteStmt()
	case p < 0.7:
		return g.ftsWrite()
	case p < 0.76:
		return g.rmaxWrite()
	case p < 0.8:
		return gStmt{SQL: pickOne(g, []string{"ANALYZE", "REINDEX", "PRAGMA user_version = " + fmt.Sprint(g.pick(100))}), Kind: 'o'}
	case p < 0.84:
		return g.insertSelect()
	case p < 0.87:
		return g.upsert()
	case p < 0.9 && len(g.tablesOf("t")) > 0:
		// A statement that ends the whole transaction.
		t := pickOne(g, g.tablesOf("t"))
		return gStmt{SQL: fmt.Sprintf("INSERT OR ROLLBACK INTO %s (rowid) VALUES ((SELECT max(rowid) FROM %s))", t.name, t.name), Kind: 'w', Insert: true}
	}
	return g.insertStmt()
}

// colLiteral returns a constant for column c. A rowid alias never gets the
// largest rowid: SQLite then picks rowids at random, which only tables
// named r… may do.
func (g *gen) colLiteral(c mCol) string {
	for {
		v := g.literal(c.decl)
		if !(c.pk && strings.EqualFold(c.decl, "INTEGER")) || v != "9223372036854775807" {
			return v
		}
	}
}

// literal returns a constant fitting decl (mostly).
func (g *gen) literal(decl string) string {
	decl = strings.ToUpper(decl)
	kind := g.pick(6)
	switch {
	case g.chance(0.8) && strings.Contains(decl, "INT"):
		kind = 0
	case g.chance(0.8) && strings.Contains(decl, "TEXT"):
		kind = 2
	case g.chance(0.8) && strings.Contains(decl, "REAL"):
		kind = 1
	case g.chance(0.8) && strings.Contains(decl, "BLOB"):
		kind = 3
	}
	switch kind {
	case 0:
		return pickOne(g, []string{"0", "1", "-1", "2", "7", "13", "42", "100", "-100", "1000", "2147483648", "9007199254740993",
			"9223372036854775807", "-9223372036854775808", fmt.Sprint(g.pick(50))})
	case 1:
		return pickOne(g, []string{"0.0", "1.5", "-2.25", "1e10", "3.14159", "1e-5", "0.1", "2.0"})
	case 2:
		return pickOne(g, []string{"''", "'a'", "'abc'", "'O''Brien'", "'ünïcödé'", "'日本'", "'x y z'", "'Hello'", "'hello'", "'10'"})
	case 3:
		// Not x'': database/sql reads an empty BLOB as NULL, so the
		// reference's reads could not tell (tables compare it exactly).
		return pickOne(g, []string{"x'00'", "x'00ff'", "x'deadbeef'", "x'41'"})
	case 4:
		return "NULL"
	}
	return fmt.Sprint(g.pick(20))
}

// expr returns a deterministic expression over the columns of t.
func (g *gen) expr(t *mTable) string {
	cols := t.plainCols()
	if len(cols) == 0 || g.chance(0.3) {
		return g.literal("")
	}
	c := pickOne(g, cols).name
	return pickOne(g, []string{
		c, c + " + 1", "upper(" + c + ")", "length(" + c + ")", "abs(" + c + ")", "coalesce(" + c + ", 0)",
		"substr(" + c + ", 1, 2)", c + " || 'x'", "CASE WHEN " + c + " > 0 THEN 1 ELSE 0 END", "json_object('k', " + c + ")",
		"hex(" + c + ")", "typeof(" + c + ")", "round(" + c + ", 1)", "-" + c, c + " * 2", "printf('%.3s', " + c + ")",
	})
}

// volatileExpr returns a value pinned per entry.
func (g *gen) volatileExpr() string {
	return pickOne(g, []string{"random()", "randomblob(4)", "CURRENT_TIMESTAMP", "datetime('now')", "strftime('%s', 'now')",
		"julianday('now')", "date('now', '+1 day')", "unixepoch()", "abs(random()) % 100"})
}

// where returns a WHERE clause over t, or "".
func (g *gen) where(t *mTable) string {
	cols := t.plainCols()
	if len(cols) == 0 || g.chance(0.2) {
		return ""
	}
	c := pickOne(g, cols).name
	switch g.pick(6) {
	case 0:
		return fmt.Sprintf(" WHERE %s > %s", c, g.literal(""))
	case 1:
		return fmt.Sprintf(" WHERE %s IS NULL", c)
	case 2:
		if o := g.tablesOf("t"); len(o) > 0 {
			u := pickOne(g, o)
			if uc := u.plainCols(); len(uc) > 0 {
				return fmt.Sprintf(" WHERE %s IN (SELECT %s FROM %s)", c, pickOne(g, uc).name, u.name)
			}
		}
		return fmt.Sprintf(" WHERE %s <> %s", c, g.literal(""))
	case 3:
		if !t.withoutRowid && t.kind != 'f' {
			return fmt.Sprintf(" WHERE rowid %% 3 = %d", g.pick(3))
		}
	case 4:
		return fmt.Sprintf(" WHERE %s = %s", c, g.literal(""))
	}
	return fmt.Sprintf(" WHERE %s BETWEEN %s AND %s", c, g.literal("INT"), g.literal("INT"))
}

func (g *gen) returning(t *mTable) (string, bool) {
	if g.chance(0.85) {
		return "", false
	}
	cols := t.plainCols()
	if len(cols) == 0 {
		return "", false
	}
	return " RETURNING " + pickOne(g, cols).name, true
}

func (g *gen) insertStmt() gStmt {
	ts := g.tablesOf("tv")
	if len(ts) == 0 {
		return g.schemaStmt()
	}
	t := pickOne(g, ts)
	var names, vals []string
	for _, c := range t.cols {
		if c.generated || g.chance(0.3) {
			continue
		}
		names = append(names, c.name)
		if c.volatile {
			vals = append(vals, g.volatileExpr())
		} else {
			vals = append(vals, g.colLiteral(c))
		}
	}
	or := pickOne(g, []string{"", "", "", "OR REPLACE ", "OR IGNORE ", "OR FAIL ", "OR ABORT ", "OR ROLLBACK "})
	rows := "(" + strings.Join(vals, ", ") + ")"
	if len(names) == 0 {
		ret, r := g.returning(t)
		return gStmt{SQL: fmt.Sprintf("INSERT %sINTO %s DEFAULT VALUES%s", or, t.name, ret), Kind: 'w', Insert: true, Rows: r, Volatile: t.kind == 'v'}
	}
	if g.chance(0.3) {
		// Several rows.
		for range 1 + g.pick(3) {
			var more []string
			for _, n := range names {
				c := colOf(t, n)
				if c.volatile {
					more = append(more, g.volatileExpr())
				} else {
					more = append(more, g.colLiteral(c))
				}
			}
			rows += ", (" + strings.Join(more, ", ") + ")"
		}
	}
	ret, r := g.returning(t)
	return gStmt{SQL: fmt.Sprintf("INSERT %sINTO %s (%s) VALUES %s%s", or, t.name, strings.Join(names, ", "), rows, ret),
		Kind: 'w', Insert: true, Rows: r, Volatile: t.kind == 'v'}
}

func colOf(t *mTable, name string) mCol {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	return mCol{name: name}
}

func (g *gen) insertSelect() gStmt {
	ts := g.tablesOf("t")
	if len(ts) < 1 {
		return g.insertStmt()
	}
	dst, src := pickOne(g, ts), pickOne(g, ts)
	dc, sc := dst.valueCols(), src.plainCols()
	if len(dc) == 0 || len(sc) == 0 {
		return g.insertStmt()
	}
	order := ""
	if !src.withoutRowid {
		order = " ORDER BY rowid"
	}
	return gStmt{SQL: fmt.Sprintf("INSERT OR IGNORE INTO %s (%s) SELECT %s FROM %s%s%s LIMIT 5", dst.name, pickOne(g, dc).name,
		g.expr(src), src.name, g.where(src), order), Kind: 'w', Insert: true}
}

func (g *gen) upsert() gStmt {
	ts := g.tablesOf("t")
	if len(ts) == 0 {
		return g.insertStmt()
	}
	t := pickOne(g, ts)
	var pk []mCol
	for _, c := range t.cols {
		if c.pk {
			pk = append(pk, c)
		}
	}
	cols := t.plainCols()
	if len(pk) != 1 || len(cols) < 2 {
		return g.insertStmt()
	}
	other := cols[g.pick(len(cols))]
	if other.name == pk[0].name {
		return g.insertStmt()
	}
	action := fmt.Sprintf("DO UPDATE SET %s = excluded.%s", other.name, other.name)
	if g.chance(0.3) {
		action = "DO NOTHING"
	}
	return gStmt{SQL: fmt.Sprintf("INSERT INTO %s (%s, %s) VALUES (%s, %s) ON CONFLICT (%s) %s", t.name, pk[0].name, other.name,
		g.colLiteral(pk[0]), g.literal(other.decl), pk[0].name, action), Kind: 'w', Insert: true}
}

func (g *gen) updateStmt() gStmt {
	ts := g.tablesOf("tv")
	if len(ts) == 0 {
		return g.insertStmt()
	}
	t := pickOne(g, ts)
	var sets []string
	for _, c := range t.cols {
		if c.generated || !g.chance(0.4) {
			continue
		}
		switch {
		case c.volatile:
			sets = append(sets, c.name+" = "+g.volatileExpr())
		case c.pk:
			sets = append(sets, c.name+" = "+g.colLiteral(c))
		default:
			sets = append(sets, c.name+" = "+g.expr(t))
		}
	}
	if len(sets) == 0 {
		cols := t.plainCols()
		if len(cols) == 0 {
			return g.insertStmt()
		}
		c := pickOne(g, cols).name
		sets = append(sets, c+" = "+c)
	}
	or := pickOne(g, []string{"", "", "OR REPLACE ", "OR IGNORE ", "OR FAIL ", "OR ROLLBACK "})
	ret, r := g.returning(t)
	return gStmt{SQL: fmt.Sprintf("UPDATE %s%s SET %s%s%s", or, t.name, strings.Join(sets, ", "), g.where(t), ret), Kind: 'w', Rows: r,
		Volatile: t.kind == 'v'}
}

func (g *gen) deleteStmt() gStmt {
	ts := g.tablesOf("tv")
	if len(ts) == 0 {
		return g.insertStmt()
	}
	t := pickOne(g, ts)
	ret, r := g.returning(t)
	return gStmt{SQL: fmt.Sprintf("DELETE FROM %s%s%s", t.name, g.where(t), ret), Kind: 'w', Rows: r, Volatile: t.kind == 'v'}
}

var words = []string{"alpha", "beta", "gamma", "delta", "walship", "log", "replica", "sqlite", "fts", "quick", "brown", "fox"}

func (g *gen) phrase() string {
	var w []string
	for range 1 + g.pick(4) {
		w = append(w, pickOne(g, words))
	}
	return strings.Join(w, " ")
}

func (g *gen) ftsWrite() gStmt {
	fs := g.tablesOf("f")
	if len(fs) == 0 {
		return gStmt{SQL: fmt.Sprintf("CREATE VIRTUAL TABLE %s USING fts5(a, b)", g.name("f")), Kind: 's'}
	}
	f := pickOne(g, fs).name
	switch g.pick(6) {
	case 0:
		return gStmt{SQL: fmt.Sprintf("DELETE FROM %s WHERE rowid = %d", f, 1+g.pick(8)), Kind: 'w'}
	case 1:
		return gStmt{SQL: fmt.Sprintf("UPDATE %s SET a = '%s' WHERE rowid = %d", f, g.phrase(), 1+g.pick(8)), Kind: 'w'}
	case 2:
		return gStmt{SQL: fmt.Sprintf("INSERT INTO %s (%s) VALUES ('%s')", f, f, pickOne(g, []string{"optimize", "integrity-check"})), Kind: 'w', Insert: true}
	}
	return gStmt{SQL: fmt.Sprintf("INSERT INTO %s (a, b) VALUES ('%s', '%s')", f, g.phrase(), g.phrase()), Kind: 'w', Insert: true}
}

func (g *gen) rmaxWrite() gStmt {
	rs := g.tablesOf("r")
	if len(rs) == 0 {
		name := g.name("r")
		return gStmt{SQL: fmt.Sprintf("CREATE TABLE %s (x, y)", name), Kind: 's'}
	}
	r := pickOne(g, rs).name
	if g.chance(0.3) {
		return gStmt{SQL: fmt.Sprintf("INSERT OR IGNORE INTO %s (rowid, x) VALUES (9223372036854775807, %s)", r, g.literal("")), Kind: 'w', Insert: true, Volatile: true}
	}
	return gStmt{SQL: fmt.Sprintf("INSERT INTO %s (x, y) VALUES (%s, %s)", r, g.literal(""), g.literal("")), Kind: 'w', Insert: true, Volatile: true}
}

func (g *gen) schemaStmt() gStmt {
	p := g.rng.Float64()
	switch {
	case p < 0.3 || len(g.m.tables) < 2:
		return g.createTable()
	case p < 0.42:
		return g.createIndex()
	case p < 0.5:
		return g.createTrigger()
	case p < 0.56:
		return g.createView()
	case p < 0.7:
		return g.alter()
	case p < 0.8:
		return g.drop()
	case p < 0.85:
		return gStmt{SQL: fmt.Sprintf("CREATE VIRTUAL TABLE %s USING fts5(a, b)", g.name("f")), Kind: 's'}
	case p < 0.9:
		return gStmt{SQL: fmt.Sprintf("CREATE TABLE %s AS SELECT name, rootpage FROM sqlite_schema", g.name("v")), Kind: 's'}
	}
	// A no-op schema statement.
	return gStmt{SQL: pickOne(g, []string{"DROP TABLE IF EXISTS nosuch", "DROP INDEX IF EXISTS nosuch", "DROP VIEW IF EXISTS nosuch",
		"DROP TRIGGER IF EXISTS nosuch", "CREATE TABLE IF NOT EXISTS " + pickOne(g, g.m.tables).name + " (x)"}), Kind: 's'}
}

var declTypes = []string{"INTEGER", "TEXT", "REAL", "BLOB", "NUMERIC", "", "INT", "VARCHAR(10)"}

func (g *gen) createTable() gStmt {
	kind := "t"
	if g.chance(0.15) {
		kind = "v"
	}
	name := g.name(kind)
	strict := g.chance(0.15)
	var cols []string
	var colNames []string
	var pk string
	withoutRowid := false
	switch g.pick(4) {
	case 0:
		pk = "id INTEGER PRIMARY KEY"
		if g.chance(0.4) {
			pk += " AUTOINCREMENT"
		}
		cols = append(cols, pk)
		colNames = append(colNames, "id")
	case 1:
		cols = append(cols, "k TEXT PRIMARY KEY")
		colNames = append(colNames, "k")
		withoutRowid = g.chance(0.6)
	}
	for i := range 1 + g.pick(4) {
		cname := fmt.Sprintf("c%d", i)
		decl := pickOne(g, declTypes)
		if strict {
			decl = pickOne(g, []string{"INTEGER", "TEXT", "REAL", "BLOB", "ANY", "INT"})
		}
		col := cname + " " + decl
		switch g.pick(9) {
		case 0:
			col += " NOT NULL DEFAULT " + g.literal(decl)
		case 1:
			col += " UNIQUE"
		case 2:
			col += " CHECK (" + cname + " IS NULL OR length(" + cname + ") < 12)"
		case 3:
			col += " DEFAULT " + g.literal(decl)
		case 4:
			col += " DEFAULT (" + g.literal("INT") + " + 1)"
		case 5:
			if ps := g.tablesOf("t"); len(ps) > 0 {
				p := pickOne(g, ps)
				for _, c := range p.cols {
					if c.pk {
						col += fmt.Sprintf(" REFERENCES %s (%s)", p.name, c.name)
						col += pickOne(g, []string{"", " ON DELETE CASCADE", " ON DELETE SET NULL", " DEFERRABLE INITIALLY DEFERRED"})
						break
					}
				}
			}
		case 6:
			col += " COLLATE NOCASE"
		}
		cols = append(cols, col)
		colNames = append(colNames, cname)
	}
	if g.chance(0.25) && len(colNames) > 0 {
		// A generated column over a plain one.
		src := colNames[len(colNames)-1]
		cols = append(cols, fmt.Sprintf("g%d AS (%s || '') %s", len(colNames), src, pickOne(g, []string{"VIRTUAL", "STORED"})))
	}
	if kind == "v" || g.chance(0.2) {
		cols = append(cols, "v1 "+pickOne(g, []string{"DEFAULT CURRENT_TIMESTAMP", "DEFAULT (random())", "DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))", ""}))
	}
	opts := []string{}
	if withoutRowid {
		opts = append(opts, "WITHOUT ROWID")
	}
	if strict {
		opts = append(opts, "STRICT")
	}
	return gStmt{SQL: fmt.Sprintf("CREATE TABLE %s (%s)%s", name, strings.Join(cols, ", "), " "+strings.Join(opts, ", ")), Kind: 's'}
}

func (g *gen) createIndex() gStmt {
	ts := g.tablesOf("t")
	if len(ts) == 0 {
		return g.createTable()
	}
	t := pickOne(g, ts)
	cols := t.plainCols()
	if len(cols) == 0 {
		return g.createTable()
	}
	c := pickOne(g, cols).name
	on := c
	switch g.pick(4) {
	case 0:
		on = "lower(" + c + ")"
	case 1:
		if len(cols) > 1 {
			on = c + ", " + pickOne(g, cols).name
		}
	}
	unique := ""
	if g.chance(0.2) {
		unique = "UNIQUE "
	}
	where := ""
	if g.chance(0.2) {
		where = " WHERE " + c + " IS NOT NULL"
	}
	return gStmt{SQL: fmt.Sprintf("CREATE %sINDEX IF NOT EXISTS %s ON %s (%s)%s", unique, g.name("i"), t.name, on, where), Kind: 's'}
}

func (g *gen) createTrigger() gStmt {
	ts := g.tablesOf("t")
	if len(ts) < 1 {
		return g.createTable()
	}
	t, dst := pickOne(g, ts), pickOne(g, ts)
	tc, dc := t.plainCols(), dst.valueCols()
	if len(tc) == 0 || len(dc) == 0 {
		return g.createTable()
	}
	ev := pickOne(g, []string{"INSERT", "UPDATE", "DELETE"})
	row := "NEW"
	if ev == "DELETE" {
		row = "OLD"
	}
	c := pickOne(g, tc).name
	var body string
	switch g.pick(4) {
	case 0:
		body = fmt.Sprintf("SELECT RAISE(%s, 'refused by trigger') WHERE %s.%s = 13;", pickOne(g, []string{"ABORT", "ROLLBACK", "IGNORE", "FAIL"}), row, c)
	default:
		if dst.name == t.name && ev == "INSERT" {
			body = fmt.Sprintf("UPDATE %s SET %s = %s WHERE rowid = -1;", dst.name, pickOne(g, dc).name, g.literal(""))
		} else {
			body = fmt.Sprintf("INSERT OR IGNORE INTO %s (%s) VALUES (%s.%s);", dst.name, pickOne(g, dc).name, row, c)
		}
	}
	when := pickOne(g, []string{"AFTER", "BEFORE"})
	return gStmt{SQL: fmt.Sprintf("CREATE TRIGGER %s %s %s ON %s BEGIN %s END", g.name("tr"), when, ev, t.name, body), Kind: 's'}
}

func (g *gen) createView() gStmt {
	ts := g.tablesOf("t")
	if len(ts) == 0 {
		return g.createTable()
	}
	t := pickOne(g, ts)
	return gStmt{SQL: fmt.Sprintf("CREATE VIEW %s AS SELECT %s AS e FROM %s%s", g.name("w"), g.expr(t), t.name, g.where(t)), Kind: 's'}
}

func (g *gen) alter() gStmt {
	ts := g.tablesOf("tv")
	if len(ts) == 0 {
		return g.createTable()
	}
	t := pickOne(g, ts)
	switch g.pick(5) {
	case 0:
		return gStmt{SQL: fmt.Sprintf("ALTER TABLE %s RENAME TO %s", t.name, g.name(string(t.kind))), Kind: 's'}
	case 1:
		if cols := t.plainCols(); len(cols) > 0 {
			return gStmt{SQL: fmt.Sprintf("ALTER TABLE %s RENAME COLUMN %s TO %s", t.name, pickOne(g, cols).name, g.name("c")), Kind: 's'}
		}
	case 2:
		if cols := t.plainCols(); len(cols) > 1 {
			return gStmt{SQL: fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s", t.name, pickOne(g, cols).name), Kind: 's'}
		}
	case 3:
		return gStmt{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s INTEGER NOT NULL", t.name, g.name("c")), Kind: 's'}
	}
	decl := pickOne(g, declTypes)
	return gStmt{SQL: fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s DEFAULT %s", t.name, g.name("c"), decl, g.literal(decl)), Kind: 's'}
}

func (g *gen) drop() gStmt {
	switch g.pick(4) {
	case 0:
		if len(g.m.indexes) > 0 {
			return gStmt{SQL: "DROP INDEX " + pickOne(g, g.m.indexes), Kind: 's'}
		}
	case 1:
		if len(g.m.views) > 0 {
			return gStmt{SQL: "DROP VIEW " + pickOne(g, g.m.views), Kind: 's'}
		}
	case 2:
		if len(g.m.triggers) > 0 {
			return gStmt{SQL: "DROP TRIGGER " + pickOne(g, g.m.triggers), Kind: 's'}
		}
	}
	if len(g.m.tables) > 3 {
		return gStmt{SQL: "DROP TABLE " + pickOne(g, g.m.tables).name, Kind: 's'}
	}
	return g.createTable()
}

// selectStmt returns a read whose rows are compared as a multiset.
func (g *gen) selectStmt() gStmt {
	ts := g.tablesOf("tvrf")
	if len(ts) == 0 {
		return gStmt{SQL: "SELECT 1 AS one, typeof(1.5) AS t", Kind: 'r', Rows: true}
	}
	t := pickOne(g, ts)
	read := func(sql string, volatile bool) gStmt {
		return gStmt{SQL: sql, Kind: 'r', Rows: true, Volatile: volatile}
	}
	switch t.kind {
	case 'f':
		w := pickOne(g, words)
		switch g.pick(3) {
		case 0:
			return read(fmt.Sprintf("SELECT rowid, a, b FROM %s WHERE %s MATCH '%s'", t.name, t.name, w), false)
		case 1:
			return read(fmt.Sprintf("SELECT rowid, highlight(%s, 0, '[', ']'), round(bm25(%s), 6) FROM %s WHERE %s MATCH '%s OR %s'", t.name, t.name, t.name, t.name, w, pickOne(g, words)), false)
		}
		return read(fmt.Sprintf("SELECT count(*), sum(length(a)) FROM %s", t.name), false)
	case 'r':
		return read(fmt.Sprintf("SELECT x, y, typeof(x) FROM %s", t.name), false)
	case 'v':
		return read(fmt.Sprintf("SELECT * FROM %s", t.name), true)
	}
	cols := t.plainCols()
	if len(cols) == 0 {
		return read(fmt.Sprintf("SELECT count(*) FROM %s", t.name), false)
	}
	c := pickOne(g, cols).name
	rowid := "rowid"
	if t.withoutRowid {
		rowid = cols[0].name
	}
	switch g.pick(12) {
	case 0:
		var names []string
		for _, c := range t.plainCols() {
			names = append(names, c.name)
		}
		return read(fmt.Sprintf("SELECT %s FROM %s%s", strings.Join(names, ", "), t.name, g.where(t)), false)
	case 1:
		return read(fmt.Sprintf("SELECT typeof(%s), %s, quote(%s) FROM %s", c, c, c, t.name), false)
	case 2:
		return read(fmt.Sprintf("SELECT count(*), sum(length(%s)), total(abs(%s)), min(%s), max(%s) FROM %s", c, c, c, c, t.name), false)
	case 3:
		return read(fmt.Sprintf("SELECT %s, count(*) FROM %s GROUP BY %s", c, t.name, c), false)
	case 4:
		return read(fmt.Sprintf("SELECT %s, row_number() OVER (ORDER BY %s), sum(length(%s)) OVER (ORDER BY %s) FROM %s", c, rowid, c, rowid, t.name), false)
	case 5:
		return read(fmt.Sprintf("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT i, (SELECT count(*) FROM %s WHERE length(%s) > i) FROM n", t.name, c), false)
	case 6:
		return read(fmt.Sprintf("SELECT json_group_array(%s ORDER BY %s), json_object('n', count(*)) FROM %s", c, rowid, t.name), false)
	case 7:
		if o := g.tablesOf("t"); len(o) > 0 {
			u := pickOne(g, o)
			if uc := u.plainCols(); len(uc) > 0 {
				return read(fmt.Sprintf("SELECT a.%s, b.%s FROM %s AS a JOIN %s AS b ON a.%s = b.%s", c, uc[0].name, t.name, u.name, c, uc[0].name), false)
			}
		}
	case 8:
		if len(g.m.views) > 0 {
			return read("SELECT * FROM "+pickOne(g, g.m.views), false)
		}
	case 9:
		return read("SELECT name, seq FROM sqlite_sequence", false)
	case 10:
		return read("SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl NOT LIKE 'v%' AND "+notShadow, false)
	}
	return read(fmt.Sprintf("SELECT * FROM %s%s", t.name, g.where(t)), false)
}
