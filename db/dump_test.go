package db

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/walship/walship/wal"
)

// sqlite3Command returns the sqlite3 command line, the reference a dump
// must load into. Its absence fails the test: it is no reason to skip one.
func sqlite3Command(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("sqlite3")
	if err != nil {
		tb.Fatalf("the sqlite3 command line is not on PATH (%v): install Debian's sqlite3 package (apt-get install sqlite3)", err)
	}
	return p
}

// runSQLite3 runs the sqlite3 command line on file with stdin; anything it
// says on stderr fails the test (-bail stops at the first error).
func runSQLite3(tb testing.TB, file, stdin string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(sqlite3Command(tb), append([]string{"-bail", file}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		tb.Fatalf("sqlite3 %s %v: %v: %s", filepath.Base(file), args, err, errb.String())
	}
	return out.String()
}

// dumpOf dumps d, failing the test on an error.
func dumpOf(tb testing.TB, d *DB, tables ...string) (string, Position) {
	tb.Helper()
	var b strings.Builder
	pos, err := d.Dump(context.Background(), &b, tables)
	if err != nil {
		tb.Fatalf("dump %v: %v", tables, err)
	}
	return b.String(), pos
}

// loadWalship runs a dump on d the way a write request holding it runs
// (POST /db/execute with the dump as text/plain, walship load): split,
// its framing taken out (Frame), one request without foreign key checks,
// committed as one entry. The text goes through JSON first, as walship
// load sends it: JSON changes what is not UTF-8.
func loadWalship(d *DB, text string) error {
	js, err := json.Marshal(text)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(js, &text); err != nil {
		return err
	}
	texts, err := Split(text)
	if err != nil {
		return err
	}
	f := Frame(texts)
	var sts []wal.Statement
	for i, s := range texts {
		if !f.Skip[i] {
			sts = append(sts, wal.Statement{SQL: s, Pos: uint32(len(sts))})
		}
	}
	tx, err := d.BeginOptions(f.NoForeignKeys)
	if err != nil {
		return err
	}
	out := tx.Run(Request{Statements: sts, Txn: f.Txn, NoForeignKeys: f.NoForeignKeys}, pinnedMS, 1)
	if out.Err == nil {
		for _, r := range out.Results {
			if r.Err != nil {
				out.Err = r.Err
			}
		}
	}
	if out.Err != nil {
		_ = tx.Rollback()
		n := len(out.Results) - 1
		if n >= 0 && n < len(sts) {
			return fmt.Errorf("statement %d %.300q: %w", n, sts[n].SQL, out.Err)
		}
		return out.Err
	}
	return tx.Commit(testLogID, d.AppliedIndex()+1)
}

// mustLoadWalship loads text into a new DB.
func mustLoadWalship(tb testing.TB, text string) *DB {
	tb.Helper()
	d := mustOpenDB(tb)
	if err := loadWalship(d, text); err != nil {
		tb.Fatalf("walship does not load the dump: %v", err)
	}
	return d
}

// mustLoadCLI loads text with the sqlite3 command line into a new file, and
// opens that.
func mustLoadCLI(tb testing.TB, text string) *DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "cli.sqlite")
	runSQLite3(tb, path, text)
	return mustOpenDBAt(tb, path)
}

// shellReference dumps d with the sqlite3 shell's own .dump
// --preserve-rowids (from a backup copy: the node's file is locked) and
// loads that into a new file: what SQLite itself makes of the database.
func shellReference(tb testing.TB, d *DB) *DB {
	tb.Helper()
	dir := tb.TempDir()
	cp := filepath.Join(dir, "copy.sqlite")
	if _, err := d.Backup(context.Background(), cp, nil); err != nil {
		tb.Fatal(err)
	}
	text := runSQLite3(tb, cp, "", ".dump --preserve-rowids")
	// Two things the shell writes that it cannot load: Debian's sqlite3
	// has no sqlite_stat4 (SQLITE_ENABLE_STAT4), whose rows its .dump
	// writes all the same, and DELETE FROM sqlite_sequence is written
	// when the table is there but no table with AUTOINCREMENT is left
	// to make it. Both are left out, as Dump does.
	autoinc := strings.Contains(strings.ToUpper(text), "AUTOINCREMENT")
	var keep []string
	for _, l := range strings.SplitAfter(text, "\n") {
		if !strings.HasPrefix(l, "INSERT INTO sqlite_stat4") && (autoinc || l != "DELETE FROM sqlite_sequence;\n") {
			keep = append(keep, l)
		}
	}
	text = strings.Join(keep, "")
	path := filepath.Join(dir, "ref.sqlite")
	runSQLite3(tb, path, text)
	return mustOpenDBAt(tb, path)
}

// content is what a comparison reads of a database.
type content struct {
	schema []string          // type, name, tbl_name and sql of each object
	header string            // user_version, application_id
	tables map[string]string // a hash of each table's rows, by name
	kinds  map[string]string // pragma_table_list's type, by name
}

// contentOf reads d's content: Checksum's hash of each table, except the
// shadow tables that hold a virtual table's layout, which a logical load
// may change (the virtual table's rows are hashed instead, and fts5vocab's
// show the index), and sqlite_stat4 (not dumped). An empty sqlite_sequence
// counts as none.
func contentOf(tb testing.TB, d *DB) content {
	tb.Helper()
	sum, err := d.Checksum(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	c := content{tables: map[string]string{}, kinds: map[string]string{}}
	for _, r := range mustQuery(tb, d, `SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND name NOT LIKE '\_walship%' ESCAPE '\'`) {
		c.kinds[r[0].Text] = r[1].Text
	}
	for _, r := range mustQuery(tb, d, `SELECT type, name, tbl_name, sql FROM sqlite_schema
		WHERE name NOT LIKE '\_walship%' ESCAPE '\' AND name NOT IN ('sqlite_stat4', 'sqlite_sequence') ORDER BY type, name`) {
		c.schema = append(c.schema, showRow(r))
	}
	c.header = showRow(mustQuery(tb, d, "SELECT (SELECT user_version FROM pragma_user_version), (SELECT application_id FROM pragma_application_id)")[0])
	for name, h := range sum.Tables {
		switch {
		case c.kinds[name] == "shadow" && !logicalShadow(name), name == "sqlite_stat4":
		case name == "sqlite_sequence" && len(mustQuery(tb, d, "SELECT 1 FROM sqlite_sequence")) == 0:
		default:
			c.tables[name] = h
		}
	}
	for name, kind := range c.kinds {
		if kind == "virtual" {
			h := sha256.New()
			for _, r := range rowsOf(tb, d, name, kind) {
				hashValues(h, r)
			}
			c.tables[name] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return c
}

// logicalShadow says a shadow table holds what a logical load makes the
// same: FTS5's settings, content and sizes (its %_data and %_idx are its
// index's layout; R*Tree's are all layout).
func logicalShadow(name string) bool {
	return strings.HasSuffix(name, "_config") || strings.HasSuffix(name, "_content") || strings.HasSuffix(name, "_docsize")
}

// rowsOf returns the rows of a table in a fixed order: rowid (or primary
// key) order with the rowid first, as Checksum reads them; a virtual
// table's rows sorted.
func rowsOf(tb testing.TB, d *DB, name, kind string) [][]wal.Value {
	tb.Helper()
	q := quoteIdent(name)
	if kind == "virtual" {
		var cols []string
		for _, c := range mustQuery(tb, d, "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0", wal.Param{Value: wal.Text(name)}) {
			cols = append(cols, quoteIdent(c[0].Text))
		}
		rows := mustQuery(tb, d, "SELECT rowid, "+strings.Join(cols, ", ")+" FROM "+q)
		sort.Slice(rows, func(i, j int) bool { return showRow(rows[i]) < showRow(rows[j]) })
		return rows
	}
	if len(mustQuery(tb, d, "SELECT 1 FROM pragma_table_list WHERE schema = 'main' AND name = ?1 AND wr", wal.Param{Value: wal.Text(name)})) == 1 {
		var pk []string
		for _, c := range mustQuery(tb, d, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk", wal.Param{Value: wal.Text(name)}) {
			pk = append(pk, quoteIdent(c[0].Text))
		}
		return mustQuery(tb, d, "SELECT * FROM "+q+" ORDER BY "+strings.Join(pk, ", "))
	}
	return mustQuery(tb, d, "SELECT rowid, * FROM "+q+" ORDER BY rowid")
}

// firstDiff describes the first row where two tables differ.
func firstDiff(tb testing.TB, a, b *DB, name, kind string) string {
	tb.Helper()
	ra, rb := rowsOf(tb, a, name, kind), rowsOf(tb, b, name, kind)
	for i := 0; i < len(ra) || i < len(rb); i++ {
		if i >= len(ra) || i >= len(rb) {
			return fmt.Sprintf("row %d: %d rows and %d", i, len(ra), len(rb))
		}
		if x, y := showRow(ra[i]), showRow(rb[i]); x != y {
			return fmt.Sprintf("row %d (of %d and %d):\n  %s\n  %s%s", i, len(ra), len(rb), trunc(x), trunc(y), columnDiff(ra[i], rb[i]))
		}
	}
	return "the rows are the same; the hashes differ"
}

// columnDiff names the first column where two rows differ.
func columnDiff(a, b []wal.Value) string {
	for j := range min(len(a), len(b)) {
		if show(a[j]) != show(b[j]) {
			return fmt.Sprintf("\n  column %d: %s and %s", j, trunc(show(a[j])), trunc(show(b[j])))
		}
	}
	return ""
}

// mustEqualContent fails the test unless got holds what want holds: the
// schema, the header, and each table's rows, naming the table and its
// first differing row.
func mustEqualContent(tb testing.TB, what string, want, got *DB) {
	tb.Helper()
	cw, cg := contentOf(tb, want), contentOf(tb, got)
	if a, b := strings.Join(cw.schema, "\n"), strings.Join(cg.schema, "\n"); a != b {
		tb.Fatalf("%s: the schema differs: %s", what, diffLines(a, b))
	}
	if cw.header != cg.header {
		tb.Fatalf("%s: user_version, application_id %s, want %s", what, cg.header, cw.header)
	}
	for _, name := range sortedKeys(cw.tables, cg.tables) {
		if cw.tables[name] != cg.tables[name] {
			tb.Fatalf("%s: table %q differs at %s", what, name, firstDiff(tb, want, got, name, cw.kinds[name]))
		}
	}
}

func sortedKeys(ms ...map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// shellLoses reports whether the sqlite3 shell's .dump (3.40, Debian 12's)
// does not carry v over exactly: -0.0 becomes 0.0, text stops at its first
// NUL, and reals below about 1e-291 are read back a bit off.
func shellLoses(v wal.Value) bool {
	switch v.Kind {
	case wal.KindReal:
		return math.Signbit(v.Real) && v.Real == 0 || v.Real != 0 && math.Abs(v.Real) < tinyReal
	case wal.KindText:
		return strings.IndexByte(v.Text, 0) >= 0
	}
	return false
}

// mustMatchShell compares the database loaded from our dump with the one
// loaded from the sqlite3 shell's own dump: every table, row by row, the
// same, except rows with a value the shell is known to lose (shellLoses),
// where ours hold the original's (mustEqualContent checks that).
func mustMatchShell(tb testing.TB, ours, ref *DB) {
	tb.Helper()
	co, cr := contentOf(tb, ours), contentOf(tb, ref)
	if a, b := strings.Join(co.schema, "\n"), strings.Join(cr.schema, "\n"); a != b {
		tb.Fatalf("the schema differs from the sqlite3 shell's dump loaded: %s", diffLines(a, b))
	}
	for _, name := range sortedKeys(co.tables, cr.tables) {
		if co.tables[name] == cr.tables[name] {
			continue
		}
		ro, rr := rowsOf(tb, ours, name, co.kinds[name]), rowsOf(tb, ref, name, co.kinds[name])
		if len(ro) != len(rr) {
			tb.Fatalf("table %q: %d rows, the sqlite3 shell's dump gives %d: %s", name, len(ro), len(rr), firstDiff(tb, ours, ref, name, co.kinds[name]))
		}
		// As multisets: a value the shell lost may move its row (a
		// column named rowid orders the rows).
		left := map[string]int{}
		for _, r := range rr {
			left[showRow(r)]++
		}
		for i, r := range ro {
			if left[showRow(r)] > 0 {
				left[showRow(r)]--
				continue
			}
			lost := false
			for _, v := range r {
				lost = lost || shellLoses(v)
			}
			if !lost {
				tb.Fatalf("table %q: row %d is not in the sqlite3 shell's dump loaded, and holds no value the shell loses:\n  %s\n%s",
					name, i, trunc(showRow(r)), firstDiff(tb, ours, ref, name, co.kinds[name]))
			}
		}
	}
}

// dumpSeeds is how many random databases TestDumpGenerated makes:
// WALSHIP_DUMP_SEEDS for long runs.
func dumpSeeds(tb testing.TB) int {
	if s := os.Getenv("WALSHIP_DUMP_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			tb.Fatalf("WALSHIP_DUMP_SEEDS=%q: want a positive number", s)
		}
		return n
	}
	return 100
}

// TestDumpGenerated dumps random databases (every kind of table, every
// storage class with its edge values, indexes, views, triggers, FTS5 and
// R*Tree tables, sqlite_sequence, sqlite_stat1) built through walship's
// writer, and loads each dump with the sqlite3 command line and with
// walship: both hold what the original holds, table by table and row by
// row, and what the sqlite3 shell's own dump gives, but for the values it
// loses. A dump of a loaded database is the same text. Replay one seed
// with -run 'TestDumpGenerated/seed=N$'.
func TestDumpGenerated(t *testing.T) {
	sqlite3Command(t)
	for seed := range dumpSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			d := mustOpenDB(t)
			g := newDBGen(t, d, uint64(seed))
			g.build()
			text, pos := dumpOf(t, d)
			if pos.Index != d.AppliedIndex() || pos.LogID != testLogID {
				t.Fatalf("position %+v, the database is at %d", pos, d.AppliedIndex())
			}
			if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 {
				t.Fatal("the dump is not UTF-8 text without NUL")
			}
			cli := mustLoadCLI(t, text)
			mustEqualContent(t, "loaded by sqlite3", d, cli)
			ws := mustLoadWalship(t, text)
			mustEqualContent(t, "loaded by walship", d, ws)
			mustMatchShell(t, ws, shellReference(t, d))
			for name, db := range map[string]*DB{"sqlite3": cli, "walship": ws} {
				if again, _ := dumpOf(t, db); again != text {
					t.Fatalf("the dump of the database %s loaded differs: %s", name, diffLines(text, again))
				}
			}
		})
	}
}

// dbGen builds a random database through walship's writer.
type dbGen struct {
	tb     testing.TB
	r      *rand.Rand
	m      *master
	seed   uint64 // the next request's seed
	used   map[string]bool
	tables []*genTable
	// externals are the FTS5 tables with external content, rebuilt at
	// the end (their content changes after they are made).
	externals []string
}

// genTable is a table the generator made, and how to insert into it.
type genTable struct {
	name       string
	cols       []genCol // the columns an INSERT gives (generated ones left out)
	strict     bool
	rowid      string // the name that sets its rowid, "" when none can
	counter    string // a column that takes a new integer in each row (a primary key), "" if none
	parent     *genTable
	fkCol      string // the column that references parent's counter
	referenced bool   // something depends on it: not dropped
	autoinc    bool
	plain      bool // made by table()
	fts, rtree bool // a virtual table of either module
	next       int64
}

type genCol struct {
	name, decl string
}

func newDBGen(tb testing.TB, d *DB, seed uint64) *dbGen {
	return &dbGen{tb: tb, r: rand.New(rand.NewPCG(seed, 0x6475_6d70)), m: newMaster(tb, d), seed: 1, used: map[string]bool{}}
}

// exec runs sqls as one request and fails the test if one fails.
func (g *dbGen) exec(sqls ...string) {
	g.tb.Helper()
	g.run(stmts(sqls...))
}

func (g *dbGen) run(sts []wal.Statement) {
	g.tb.Helper()
	g.seed++
	out := g.m.batch(timed{Request{Statements: sts, Txn: true}, pinnedMS + int64(g.seed), g.seed})[0]
	if out.Err != nil {
		n := len(out.Results) - 1
		g.tb.Fatalf("generating: statement %q %v: %v", sts[n].SQL, sts[n].Params, out.Err)
	}
}

func (g *dbGen) pick(opts ...string) string { return opts[g.r.IntN(len(opts))] }

// name returns a new name, odd ones among them: quotes, spaces,
// keywords, letters outside ASCII.
func (g *dbGen) name(prefix string) string {
	for {
		var n string
		switch g.r.IntN(8) {
		case 0:
			n = g.pick("select", "order", "group", "table", "index", "values", "default", "from")
		case 1:
			n = fmt.Sprintf("%s %d", prefix, len(g.used))
		case 2:
			n = fmt.Sprintf(`%s"q"%d`, prefix, len(g.used))
		case 3:
			n = fmt.Sprintf(`%s'a'%d`, prefix, len(g.used))
		case 4:
			n = fmt.Sprintf("%sünï✓%d", prefix, len(g.used))
		case 5:
			n = fmt.Sprintf("%s[%d]", prefix, len(g.used))
		default:
			n = fmt.Sprintf("%s%d", prefix, len(g.used))
		}
		if !g.used[strings.ToLower(n)] {
			g.used[strings.ToLower(n)] = true
			return n
		}
	}
}

// value returns a value of a random storage class, edge values often.
func (g *dbGen) value() wal.Value {
	switch g.r.IntN(5) {
	case 0:
		return wal.Null()
	case 1:
		return wal.Integer(g.integer())
	case 2:
		return wal.Real(g.real())
	case 3:
		return wal.Text(g.text())
	}
	return wal.Blob(g.blob())
}

func (g *dbGen) integer() int64 {
	switch g.r.IntN(4) {
	case 0:
		return []int64{0, 1, -1, math.MinInt64, math.MaxInt64, 1 << 53, -(1 << 53) - 1, math.MaxInt32}[g.r.IntN(8)]
	case 1:
		return int64(g.r.Uint64())
	}
	return g.r.Int64N(2000) - 1000
}

func (g *dbGen) real() float64 {
	switch g.r.IntN(6) {
	case 0:
		edges := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 0.5, 1e15, 1e15 + 0.5, 1e17, 1e17 + 16, -1e16, 1 << 63, -(1 << 63),
			9007199254740993, math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64,
			2.2250738585072014e-308, 1e-300, -1e-291, tinyReal, math.Nextafter(tinyReal, 0), math.Nextafter(tinyReal, 1),
			math.Inf(1), math.Inf(-1), math.NaN(), math.Pi, 1e300, 123456.0, -0.25}
		return edges[g.r.IntN(len(edges))]
	case 1:
		for {
			f := math.Float64frombits(g.r.Uint64())
			if !math.IsNaN(f) {
				return f
			}
		}
	case 2:
		return float64(g.r.Int64N(1 << 40)) // integral
	case 3:
		return float64(g.r.Int64N(2_000_000)-1_000_000) / math.Pow(10, float64(g.r.IntN(8))) // a short decimal
	}
	return g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(80)-40))
}

func (g *dbGen) text() string {
	switch g.r.IntN(4) {
	case 0:
		edges := []string{"", "hello", "it's", `say "hi"`, "a\nb", "a\r\nb", "\r", "\n\n", `back\nslash`, `\012 and \n` + "\n",
			`(\n0)\n\012` + "\n", `\r\015(\r0)` + "\r\n", "ünïcödé ✓ 😀", "a\x00b", "\x00", "\xff\xfe", "bad \xc3 utf8\n", "x'y\"z",
			"CAST(X'00' AS TEXT)", "replace('a','b','c')", "--", "/*", ";", "\t", "BEGIN", "COMMIT;", "12", "1.5", " 7 ",
			strings.Repeat("long ", 2000)}
		return edges[g.r.IntN(len(edges))]
	case 1:
		b := make([]byte, g.r.IntN(12))
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		return string(b)
	}
	return g.words()
}

// words returns a few words, for full-text search.
func (g *dbGen) words() string {
	n := 1 + g.r.IntN(5)
	w := make([]string, n)
	for i := range w {
		w[i] = g.pick("alpha", "beta", "gamma", "delta", "Épée", "naïve", "running", "runs", "x1", "don't", "zeta")
	}
	return strings.Join(w, " ")
}

func (g *dbGen) blob() []byte {
	if g.r.IntN(3) == 0 {
		return [][]byte{{}, {0}, {0, 0, 0}, []byte("text\x00"), bytes.Repeat([]byte{0xab}, 3000)}[g.r.IntN(5)]
	}
	b := make([]byte, g.r.IntN(20))
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

// strictValue returns a value a STRICT column of type decl takes.
func (g *dbGen) strictValue(decl string) wal.Value {
	if g.r.IntN(6) == 0 {
		return wal.Null()
	}
	switch decl {
	case "INTEGER", "INT":
		return wal.Integer(g.integer())
	case "REAL":
		return wal.Real(g.real())
	case "TEXT":
		return wal.Text(g.text())
	case "BLOB":
		return wal.Blob(g.blob())
	}
	return g.value()
}

// build makes the database.
func (g *dbGen) build() {
	g.tb.Helper()
	g.exec(`CREATE TABLE "log" (id INTEGER PRIMARY KEY, what, at)`)
	g.used["log"] = true
	for range 2 + g.r.IntN(6) {
		switch g.r.IntN(12) {
		case 0, 1, 2, 3, 4:
			g.table()
		case 5:
			g.fkTable()
		case 6, 7:
			g.fts5()
		case 8:
			g.external()
		case 9:
			g.rtree()
		case 10:
			g.strictTable()
		case 11:
			g.withoutRowid()
		}
	}
	for _, t := range g.tables {
		if g.r.IntN(3) == 0 {
			g.trigger(t)
		}
		g.rows(t, g.r.IntN(14))
		if g.r.IntN(3) == 0 {
			g.index(t)
		}
	}
	g.views3()
	g.changes()
	if g.r.IntN(2) == 0 {
		g.exec(fmt.Sprintf("PRAGMA user_version = %d", int32(g.r.Uint32())))
	}
	if g.r.IntN(3) == 0 {
		g.exec(fmt.Sprintf("PRAGMA application_id = %d", int32(g.r.Uint32())))
	}
	for _, f := range g.externals {
		g.exec(fmt.Sprintf("INSERT INTO %s(%s) VALUES('rebuild')", quoteIdent(f), quoteIdent(f)))
	}
	if g.r.IntN(2) == 0 {
		g.exec("ANALYZE")
	}
}

// table makes a rowid table: without a primary key, with an INTEGER
// PRIMARY KEY (AUTOINCREMENT or not), an INTEGER PRIMARY KEY DESC or INT
// PRIMARY KEY (no rowid aliases), columns named rowid, _rowid_, oid, and
// generated columns.
func (g *dbGen) table() {
	t := &genTable{name: g.name("t"), plain: true}
	var defs []string
	switch g.r.IntN(5) {
	case 0:
		t.autoinc = g.r.IntN(2) == 0
		auto := map[bool]string{true: " AUTOINCREMENT"}[t.autoinc]
		t.counter = "id"
		defs = append(defs, "id INTEGER PRIMARY KEY"+auto)
		t.cols = append(t.cols, genCol{"id", "INTEGER"})
	case 1:
		t.counter = "k"
		defs = append(defs, "k "+g.pick("INTEGER PRIMARY KEY DESC", "INT PRIMARY KEY", "INTEGER UNIQUE"))
		t.cols = append(t.cols, genCol{"k", "INTEGER"})
	}
	shadow := g.r.IntN(4) == 0 // columns named like the rowid
	for i := range 1 + g.r.IntN(4) {
		name := fmt.Sprintf("c%d", i)
		if shadow && i < 3 {
			name = []string{"rowid", "_rowid_", "OID"}[i]
		} else if g.r.IntN(5) == 0 {
			name = g.name("col ")
		}
		decl := g.pick("", "INTEGER", "INT", "REAL", "TEXT", "BLOB", "NUMERIC", "VARCHAR(10)", "DOUBLE PRECISION", "DATETIME", "ANY")
		t.cols = append(t.cols, genCol{name, decl})
		defs = append(defs, quoteIdent(name)+" "+decl)
	}
	if g.r.IntN(3) == 0 {
		src := quoteIdent(t.cols[len(t.cols)-1].name)
		// Loaded by sqlite3 3.40, generated columns are computed again
		// by it: nothing that turns a REAL into text (it writes other
		// digits than 3.54) or counts the characters of text that is
		// not UTF-8 (it counts otherwise).
		defs = append(defs, fmt.Sprintf("g1 AS (typeof(%s)) VIRTUAL", src),
			fmt.Sprintf("g2 AS (length(CAST(iif(typeof(%s) = 'real', NULL, %s) AS BLOB)) + 1) STORED", src, src))
	}
	all := map[string]bool{"g1": true, "g2": true}
	for _, c := range t.cols {
		all[strings.ToLower(c.name)] = true
	}
	t.rowid = rowidName(all)
	if t.counter == "id" {
		t.rowid = "" // the id is the rowid
	}
	g.exec(fmt.Sprintf("CREATE TABLE %s (%s)", quoteIdent(t.name), strings.Join(defs, ", ")))
	g.tables = append(g.tables, t)
}

// fkTable makes a child of a table with an integer key.
func (g *dbGen) fkTable() {
	var parent *genTable
	for _, t := range g.tables {
		if t.counter != "" && t.plain {
			parent = t
		}
	}
	if parent == nil {
		g.table()
		return
	}
	parent.referenced = true
	t := &genTable{name: g.name("child"), parent: parent, fkCol: "pid", rowid: "rowid"}
	t.cols = []genCol{{"pid", "INTEGER"}, {"w", ""}}
	g.exec(fmt.Sprintf("CREATE TABLE %s (pid INTEGER REFERENCES %s (%s) ON DELETE CASCADE, w)",
		quoteIdent(t.name), quoteIdent(parent.name), quoteIdent(parent.counter)))
	g.tables = append(g.tables, t)
}

func (g *dbGen) strictTable() {
	t := &genTable{name: g.name("s"), strict: true, rowid: "rowid"}
	defs := []string{}
	if g.r.IntN(2) == 0 {
		t.counter, t.rowid = "id", ""
		defs = append(defs, "id INTEGER PRIMARY KEY")
		t.cols = append(t.cols, genCol{"id", "INTEGER"})
	}
	for i, decl := range []string{"INTEGER", "REAL", "TEXT", "BLOB", "ANY"} {
		if g.r.IntN(3) > 0 {
			n := fmt.Sprintf("s%d", i)
			t.cols = append(t.cols, genCol{n, decl})
			defs = append(defs, n+" "+decl)
		}
	}
	if len(t.cols) == 0 || t.cols[len(t.cols)-1].name == "id" {
		t.cols = append(t.cols, genCol{"s9", "ANY"})
		defs = append(defs, "s9 ANY")
	}
	if g.r.IntN(2) == 0 {
		defs = append(defs, fmt.Sprintf("g TEXT AS (typeof(%s)) STORED", t.cols[len(t.cols)-1].name))
	}
	g.exec(fmt.Sprintf("CREATE TABLE %s (%s) STRICT", quoteIdent(t.name), strings.Join(defs, ", ")))
	g.tables = append(g.tables, t)
}

func (g *dbGen) withoutRowid() {
	t := &genTable{name: g.name("w"), counter: "k"}
	t.cols = []genCol{{"k", "INTEGER"}, {"v", ""}, {"x", "TEXT"}}
	pk := g.pick("k", "k DESC", "k, v")
	gen := ""
	if g.r.IntN(2) == 0 {
		gen = ", g AS (quote(x)) VIRTUAL"
	}
	if pk == "k, v" {
		t.cols[1].decl = "NOT NULL"
	}
	g.exec(fmt.Sprintf("CREATE TABLE %s (k INTEGER, v %s, x TEXT%s, PRIMARY KEY (%s)) WITHOUT ROWID", quoteIdent(t.name), t.cols[1].decl, gen, pk))
	g.tables = append(g.tables, t)
}

// fts5 makes an FTS5 table, with options and settings, and maybe an
// fts5vocab table on it.
func (g *dbGen) fts5() {
	t := &genTable{name: g.name("f"), rowid: "rowid", fts: true}
	t.cols = []genCol{{"a", "fts"}, {"b", "fts"}, {"c", "fts"}}
	opts := ""
	if g.r.IntN(2) == 0 {
		opts += ", prefix='2 3'"
	}
	if g.r.IntN(3) == 0 {
		opts += ", tokenize=" + g.pick("'porter ascii'", "'unicode61 remove_diacritics 2'", "trigram")
	}
	if g.r.IntN(3) == 0 {
		opts += ", detail=" + g.pick("column", "none", "full")
	}
	if g.r.IntN(4) == 0 {
		opts += ", columnsize=0"
	}
	g.exec(fmt.Sprintf("CREATE VIRTUAL TABLE %s USING fts5(a, b, c UNINDEXED%s)", quoteIdent(t.name), opts))
	q := quoteIdent(t.name)
	var set []string
	for _, s := range []string{"'pgsz', 512", "'automerge', 2", "'crisismerge', 4", "'usermerge', 3", "'rank', 'bm25(10.0, 5.0)'"} {
		if g.r.IntN(3) == 0 {
			set = append(set, fmt.Sprintf("INSERT INTO %s(%s, rank) VALUES(%s)", q, q, s))
		}
	}
	if len(set) > 0 {
		g.exec(set...)
	}
	g.tables = append(g.tables, t)
	if g.r.IntN(2) == 0 {
		g.exec(fmt.Sprintf("CREATE VIRTUAL TABLE %s USING fts5vocab(%s, %s)", quoteIdent(g.name("fv")), sqlString(t.name), g.pick("'row'", "'col'")))
	}
}

// external makes an FTS5 table whose content is a table's, rebuilt from it.
func (g *dbGen) external() {
	c := &genTable{name: g.name("content"), counter: "id", referenced: true}
	c.cols = []genCol{{"id", "INTEGER"}, {"x", "fts"}, {"y", "fts"}}
	g.exec(fmt.Sprintf("CREATE TABLE %s (id INTEGER PRIMARY KEY, x, y)", quoteIdent(c.name)))
	g.tables = append(g.tables, c)
	g.rows(c, 1+g.r.IntN(8))
	f := g.name("fe")
	g.exec(fmt.Sprintf("CREATE VIRTUAL TABLE %s USING fts5(x, y, content=%s, content_rowid='id')", quoteIdent(f), sqlString(c.name)),
		fmt.Sprintf("INSERT INTO %s(%s) VALUES('rebuild')", quoteIdent(f), quoteIdent(f)))
	g.exec(fmt.Sprintf("CREATE VIRTUAL TABLE %s USING fts5vocab(%s, 'row')", quoteIdent(g.name("fv")), sqlString(f)))
	g.externals = append(g.externals, f)
}

func (g *dbGen) rtree() {
	t := &genTable{name: g.name("r"), counter: "id", rtree: true}
	mod := g.pick("rtree", "rtree_i32")
	aux := ""
	if g.r.IntN(2) == 0 {
		aux = ", +aux"
	}
	g.exec(fmt.Sprintf("CREATE VIRTUAL TABLE %s USING %s(id, x0, x1, y0, y1%s)", quoteIdent(t.name), mod, aux))
	t.cols = []genCol{{"id", "INTEGER"}, {"x0", "rtree"}, {"x1", "rtree"}, {"y0", "rtree"}, {"y1", "rtree"}}
	if aux != "" {
		t.cols = append(t.cols, genCol{"aux", ""})
	}
	g.tables = append(g.tables, t)
}

// rows inserts n rows into t, with parameters: every value exactly as
// generated.
func (g *dbGen) rows(t *genTable, n int) {
	g.tb.Helper()
	if n == 0 {
		return
	}
	var parents []int64
	if t.parent != nil {
		for _, r := range mustQuery(g.tb, g.m.d, fmt.Sprintf("SELECT %s FROM %s", quoteIdent(t.parent.counter), quoteIdent(t.parent.name))) {
			parents = append(parents, r[0].Int)
		}
	}
	var sts []wal.Statement
	for range n {
		var names, marks []string
		var params []wal.Param
		add := func(name string, v wal.Value) {
			names = append(names, quoteIdent(name))
			marks = append(marks, "?")
			params = append(params, wal.Param{Value: v})
		}
		if t.rowid != "" && g.r.IntN(3) == 0 {
			add(t.rowid, wal.Integer(g.integer()))
		}
		var lo float64
		for _, c := range t.cols {
			switch {
			case c.name == t.counter:
				t.next += 1 + g.r.Int64N(3)
				if t.autoinc && g.r.IntN(2) == 0 {
					add(c.name, wal.Null()) // the next of the sequence
					continue
				}
				add(c.name, wal.Integer(t.next))
			case c.name == t.fkCol:
				if len(parents) == 0 || g.r.IntN(4) == 0 {
					add(c.name, wal.Null())
				} else {
					add(c.name, wal.Integer(parents[g.r.IntN(len(parents))]))
				}
			case c.decl == "fts":
				// Not a REAL nor bytes that are not UTF-8: how FTS5
				// tokenizes them depends on SQLite's version (3.40's
				// and 3.54's differ), and sqlite3 indexes again what
				// it loads.
				if v := g.value(); g.r.IntN(5) == 0 && v.Kind != wal.KindReal && utf8.ValidString(v.Text) && utf8.Valid(v.Blob) {
					add(c.name, v)
				} else {
					add(c.name, wal.Text(g.words()))
				}
			case c.decl == "rtree":
				v := float64(g.r.IntN(2000)-1000) + float64(g.r.IntN(4))/4
				if c.name == "x1" || c.name == "y1" {
					v = lo + float64(g.r.IntN(50))
				}
				lo = v
				add(c.name, wal.Real(v))
			case c.decl == "NOT NULL":
				add(c.name, wal.Text(g.words()))
			case t.strict:
				add(c.name, g.strictValue(c.decl))
			default:
				add(c.name, g.value())
			}
		}
		// OR IGNORE: a random rowid may be taken.
		sql := fmt.Sprintf("INSERT OR IGNORE INTO %s (%s) VALUES (%s)", quoteIdent(t.name), strings.Join(names, ", "), strings.Join(marks, ", "))
		if t.rtree || t.fts {
			sql = strings.Replace(sql, "OR IGNORE ", "", 1) // virtual tables take no conflict clause
		}
		sts = append(sts, wal.Statement{SQL: sql, Params: params, Pos: uint32(len(sts))})
	}
	if t.fts {
		// FTS5 refuses a rowid taken: draw them apart.
		for i := range sts {
			if sts[i].Params != nil && strings.Contains(sts[i].SQL, `("rowid"`) {
				sts[i].Params[0] = wal.Param{Value: wal.Integer(int64(g.r.Uint64()>>8) + int64(i))}
			}
		}
	}
	g.run(sts)
}

// trigger makes an AFTER INSERT trigger on t that logs (fired while the
// rows go in, not while a dump loads).
func (g *dbGen) trigger(t *genTable) {
	if t.fts || t.rtree {
		return
	}
	g.exec(fmt.Sprintf(`CREATE TRIGGER %s AFTER INSERT ON %s BEGIN INSERT INTO "log" (what, at) VALUES ('insert into ' || %s || ';', CURRENT_TIMESTAMP); END`,
		quoteIdent(g.name("tr")), quoteIdent(t.name), sqlString(t.name)))
}

func (g *dbGen) index(t *genTable) {
	if t.fts || t.rtree {
		return
	}
	c := quoteIdent(t.cols[g.r.IntN(len(t.cols))].name)
	def := g.pick("(%s)", "(%s DESC)", "(%s) WHERE %s IS NOT NULL", "(typeof(%s))", "(%s COLLATE NOCASE)")
	g.exec(fmt.Sprintf("CREATE INDEX %s ON %s "+strings.ReplaceAll(def, "%s", c), quoteIdent(g.name("ix")), quoteIdent(t.name)))
	if t.counter != "" && g.r.IntN(2) == 0 {
		g.exec(fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", quoteIdent(g.name("ux")), quoteIdent(t.name), quoteIdent(t.counter)))
	}
}

// views3 makes views on tables, a view on a view created before the view
// it reads (dropped and created again), and an INSTEAD OF trigger on a
// view.
func (g *dbGen) views3() {
	if len(g.tables) > 0 {
		t := g.tables[g.r.IntN(len(g.tables))]
		t.referenced = true
		v := g.name("v")
		g.exec(fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM %s", quoteIdent(v), quoteIdent(t.name)))
	}
	if g.r.IntN(2) == 0 {
		base, top := g.name("vb"), g.name("vt")
		g.exec(fmt.Sprintf("CREATE VIEW %s AS SELECT 1 AS one", quoteIdent(base)),
			fmt.Sprintf("CREATE VIEW %s AS SELECT one + 1 AS two FROM %s", quoteIdent(top), quoteIdent(base)),
			fmt.Sprintf("DROP VIEW %s", quoteIdent(base)),
			fmt.Sprintf("CREATE VIEW %s (one) AS SELECT what FROM \"log\"", quoteIdent(base)),
			fmt.Sprintf("CREATE TRIGGER %s INSTEAD OF INSERT ON %s BEGIN INSERT INTO \"log\" (what) VALUES (NEW.one); END", quoteIdent(g.name("tv")), quoteIdent(base)),
			fmt.Sprintf("INSERT INTO %s VALUES ('through the view')", quoteIdent(base)))
	}
}

// changes deletes and updates rows (rowid gaps, sqlite_sequence past the
// largest id), renames, adds a column with a default, and drops a table.
func (g *dbGen) changes() {
	for _, t := range g.tables {
		if t.fts || g.r.IntN(3) > 0 {
			continue
		}
		q := quoteIdent(t.name)
		switch {
		case t.rowid != "" || t.counter == "id":
			g.exec(fmt.Sprintf("DELETE FROM %s WHERE rowid IN (SELECT max(rowid) FROM %s UNION SELECT min(rowid) FROM %s)", q, q, q))
		case t.counter != "":
			g.exec(fmt.Sprintf("DELETE FROM %s WHERE %s %% 2 = 0", q, quoteIdent(t.counter)))
		}
	}
	for _, t := range g.tables {
		if t.fts || t.rtree || t.strict || g.r.IntN(4) > 0 {
			continue
		}
		if t.referenced || g.r.IntN(2) == 0 {
			g.exec(fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s DEFAULT %s", quoteIdent(t.name), quoteIdent(g.name("added")), g.pick("5", "'x'", "1.5", "NULL", "X'00'")))
			continue
		}
		n := g.name("renamed")
		g.exec(fmt.Sprintf("ALTER TABLE %s RENAME TO %s", quoteIdent(t.name), quoteIdent(n)))
		t.name = n
	}
	for i, t := range g.tables {
		if !t.referenced && t.parent == nil && !t.fts && g.r.IntN(6) == 0 {
			g.exec("DROP TABLE " + quoteIdent(t.name))
			g.tables = append(g.tables[:i], g.tables[i+1:]...)
			return
		}
	}
}

// The text of a small dump, line for line: the framing, the header, rows
// with their rowids where the rowid is not the INTEGER PRIMARY KEY,
// generated columns left out, sqlite_sequence, then indexes, views and
// triggers; walship's own table not in it.
func TestDumpFormat(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1,
		`CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY AUTOINCREMENT, "select" TEXT, g AS (upper("select")) VIRTUAL)`,
		`CREATE TABLE plain (a, b REAL)`,
		`CREATE INDEX plain_a ON plain (a)`,
		`CREATE VIEW v AS SELECT a FROM plain`,
		`CREATE TRIGGER log AFTER INSERT ON plain BEGIN SELECT 1; END`,
		`INSERT INTO "odd ""name""" ("select") VALUES ('it''s'), ('two' || char(10) || 'lines')`,
		`INSERT INTO plain (rowid, a, b) VALUES (10, 1, 2), (-3, X'00ff', -0.0), (7, 1e999, 0.1), (8, -9223372036854775808, NULL)`,
		`INSERT INTO plain (rowid, a) VALUES (9, CAST(X'610062' AS TEXT)), (11, -0.0), (12, 4.9e-324), (13, 100000000000000000.0)`,
		`PRAGMA user_version = 7`)
	got, pos := dumpOf(t, d)
	want := `PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
PRAGMA user_version=7;
CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY AUTOINCREMENT, "select" TEXT, g AS (upper("select")) VIRTUAL);
INSERT INTO "odd ""name"""("id","select") VALUES(1,'it''s');
INSERT INTO "odd ""name"""("id","select") VALUES(2,replace('two\nlines','\n',char(10)));
CREATE TABLE plain (a, b REAL);
INSERT INTO "plain"(rowid,"a","b") VALUES(-3,X'00ff',0.0);
INSERT INTO "plain"(rowid,"a","b") VALUES(7,1e999,0.10000000000000001);
INSERT INTO "plain"(rowid,"a","b") VALUES(8,-9223372036854775808,NULL);
INSERT INTO "plain"(rowid,"a","b") VALUES(9,CAST(X'610062' AS TEXT),NULL);
INSERT INTO "plain"(rowid,"a","b") VALUES(10,1,2.0);
INSERT INTO "plain"(rowid,"a","b") VALUES(11,-0.0,NULL);
INSERT INTO "plain"(rowid,"a","b") VALUES(12,(2.2347223965758547e-249/4611686018427387904/4611686018427387904/4611686018427387904/4611686018427387904),NULL);
INSERT INTO "plain"(rowid,"a","b") VALUES(13,1e+17,NULL);
DELETE FROM sqlite_sequence;
INSERT INTO "sqlite_sequence"(rowid,"name","seq") VALUES(1,'odd "name"',2);
CREATE INDEX plain_a ON plain (a);
CREATE VIEW v AS SELECT a FROM plain;
CREATE TRIGGER log AFTER INSERT ON plain BEGIN SELECT 1; END;
COMMIT;
`
	if got != want {
		t.Fatalf("dump: %s\n%s", diffLines(want, got), got)
	}
	if pos != (Position{LogID: testLogID, Index: 1}) {
		t.Fatalf("position %+v", pos)
	}
	mustEqualContent(t, "loaded by sqlite3", d, mustLoadCLI(t, got))
	mustEqualContent(t, "loaded by walship", d, mustLoadWalship(t, got))
}

// Every edge value of every storage class, in a column without affinity,
// loads back exactly (value, storage class, bits), with the sqlite3
// command line and with walship; reals at random too.
func TestDumpValues(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE v (id INTEGER PRIMARY KEY, x)")
	g := newDBGen(t, d, 1)
	vals := append([]wal.Value(nil), roundTripValues...)
	for range 2000 {
		vals = append(vals, wal.Real(g.real()))
	}
	for range 300 {
		vals = append(vals, g.value())
	}
	var sts []wal.Statement
	for i, v := range vals {
		sts = append(sts, wal.Statement{SQL: "INSERT INTO v VALUES (?, ?)", Params: []wal.Param{{Value: wal.Integer(int64(i))}, {Value: v}}, Pos: uint32(i)})
	}
	m.batch(timed{Request{Statements: sts, Txn: true}, pinnedMS, 2})
	text, _ := dumpOf(t, d)
	for _, lit := range []string{"1e999", "-1e999", "-0.0", "CAST(X'61006200' AS TEXT)", "X''", "-9223372036854775808", "9223372036854775807"} {
		if !strings.Contains(text, ","+lit+");\n") {
			t.Errorf("no value written as %s", lit)
		}
	}
	mustEqualContent(t, "loaded by sqlite3", d, mustLoadCLI(t, text))
	mustEqualContent(t, "loaded by walship", d, mustLoadWalship(t, text))
}

// .dump TABLE: LIKE patterns (case-insensitive, ESCAPE '\'); the tables
// and views that match, with their indexes, triggers and rows of
// sqlite_sequence and sqlite_stat1; nothing of the others. A pattern that
// matches nothing is ErrNoTable, and nothing is written.
func TestDumpTables(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1,
		"CREATE TABLE a_1 (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
		"CREATE TABLE ab (x, y)",
		"CREATE TABLE b (id INTEGER PRIMARY KEY AUTOINCREMENT, v)",
		"CREATE INDEX a_1_v ON a_1 (v)", "CREATE INDEX b_v ON b (v)",
		"CREATE TRIGGER a_1_t AFTER INSERT ON a_1 BEGIN SELECT 1; END",
		"CREATE TRIGGER b_t AFTER INSERT ON b BEGIN SELECT 1; END",
		"CREATE VIEW a_view AS SELECT * FROM b", "CREATE VIEW bv AS SELECT * FROM a_1",
		"CREATE VIRTUAL TABLE af USING fts5(t)", "CREATE VIRTUAL TABLE af_g USING fts5(t)",
		"INSERT INTO a_1 (v) VALUES (1), (2), (3)", "DELETE FROM a_1 WHERE id = 3",
		"INSERT INTO ab VALUES (1, 2)", "INSERT INTO b (v) VALUES ('b')", "INSERT INTO af (rowid, t) VALUES (5, 'hello')", "INSERT INTO af_g VALUES ('g')",
		"ANALYZE")
	cases := []struct {
		patterns []string
		tables   []string // the tables and views whose CREATE is in the dump
	}{
		{[]string{"a%"}, []string{"a_1", "ab", "a_view", "af", "af_g"}},
		{[]string{`a\_%`}, []string{"a_1", "a_view"}},
		{[]string{"A_1", "B"}, []string{"a_1", "b"}},
		{[]string{"bv"}, []string{"bv"}},
		{[]string{"af"}, []string{"af"}},
	}
	objects := []string{"a_1", "ab", "b", "a_view", "bv", "af", "af_g"}
	for _, c := range cases {
		text, _ := dumpOf(t, d, c.patterns...)
		for _, o := range objects {
			in := strings.Contains(text, "CREATE TABLE "+o+" ") || strings.Contains(text, "CREATE VIEW "+o+" ") || strings.Contains(text, "CREATE VIRTUAL TABLE "+o+" ")
			if in != contains(c.tables, o) {
				t.Errorf("%v: %s in the dump: %v\n%s", c.patterns, o, in, text)
			}
		}
		if strings.Contains(text, "a_1_v") != contains(c.tables, "a_1") || strings.Contains(text, "CREATE TRIGGER a_1_t") != contains(c.tables, "a_1") ||
			strings.Contains(text, "b_v") != contains(c.tables, "b") || strings.Contains(text, "sqlite_sequence") != (contains(c.tables, "a_1") || contains(c.tables, "b")) {
			t.Errorf("%v: indexes, triggers, sqlite_sequence of other tables:\n%s", c.patterns, text)
		}
		if strings.Contains(text, "'ab'") != contains(c.tables, "ab") || strings.Contains(text, "'af_idx'") != contains(c.tables, "af") ||
			strings.Contains(text, "'af_g_idx'") != contains(c.tables, "af_g") {
			t.Errorf("%v: sqlite_stat1 of ab, of af's shadow tables:\n%s", c.patterns, text)
		}
		// Loaded, each dumped table holds what the original holds,
		// sqlite_sequence included.
		for what, l := range map[string]*DB{"sqlite3": mustLoadCLI(t, text), "walship": mustLoadWalship(t, text)} {
			cw, cl := contentOf(t, d), contentOf(t, l)
			for _, name := range c.tables {
				if cw.kinds[name] != "view" && cw.tables[name] != cl.tables[name] {
					t.Errorf("%v loaded by %s: table %s differs at %s", c.patterns, what, name, firstDiff(t, d, l, name, cw.kinds[name]))
				}
			}
			want := mustQuery(t, d, "SELECT name, seq FROM sqlite_sequence WHERE name IN ('a_1', 'b') ORDER BY 1")
			var got [][]wal.Value
			if cl.kinds["sqlite_sequence"] != "" {
				got = mustQuery(t, l, "SELECT name, seq FROM sqlite_sequence ORDER BY 1")
			}
			var keep [][]wal.Value
			for _, r := range want {
				if contains(c.tables, r[0].Text) {
					keep = append(keep, r)
				}
			}
			if fmt.Sprint(keep) != fmt.Sprint(got) {
				t.Errorf("%v loaded by %s: sqlite_sequence %v, want %v", c.patterns, what, got, keep)
			}
		}
	}
	for _, p := range [][]string{{"nosuch"}, {"_walship"}, {"\\_walship%"}, {"af_data"}, {"sqlite_sequence"}} {
		var b strings.Builder
		if _, err := d.Dump(context.Background(), &b, p); !errors.Is(err, ErrNoTable) || b.Len() != 0 {
			t.Errorf("%q: %v, %d bytes written", p, err, b.Len())
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// An FTS5 table with external content is rebuilt from its content (a
// view here, created after it in the dump); fts5vocab shows the same index;
// a contentless one cannot be dumped: ErrNotDumpable, nothing written,
// unless the tables dumped leave it out. R*Tree and Geopoly tables load
// through walship (Debian's sqlite3 has no Geopoly).
func TestDumpVirtualTables(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1,
		"CREATE TABLE docs (id INTEGER PRIMARY KEY, body)",
		"CREATE VIRTUAL TABLE fx USING fts5(body, content='docs_v', content_rowid='id')",
		"CREATE VIEW docs_v AS SELECT id, body FROM docs",
		"CREATE VIRTUAL TABLE fxv USING fts5vocab(fx, 'row')",
		"INSERT INTO docs VALUES (1, 'alpha beta'), (5, 'beta gamma'), (9, NULL)",
		"INSERT INTO fx(fx) VALUES ('rebuild')",
		"INSERT INTO fx(fx, rank) VALUES ('pgsz', 600)",
		"CREATE VIRTUAL TABLE g USING geopoly(name)",
		"INSERT INTO g (rowid, _shape, name) VALUES (7, '[[0,0],[1,0],[0.5,1],[0,0]]', 'tri')",
		"CREATE VIRTUAL TABLE r USING rtree_i32(id, a, b, +note)",
		"INSERT INTO r VALUES (3, -5, 5, X'01')")
	text, _ := dumpOf(t, d)
	if !strings.Contains(text, `INSERT INTO "fx"("fx") VALUES('rebuild');`) || !strings.Contains(text, `INSERT INTO "fx"("fx", rank) VALUES('pgsz',600);`) {
		t.Fatalf("no rebuild or settings of fx:\n%s", text)
	}
	if strings.Index(text, "CREATE VIEW docs_v") > strings.Index(text, "'rebuild'") {
		t.Fatalf("fx is rebuilt before its content's view exists:\n%s", text)
	}
	mustEqualContent(t, "loaded by walship", d, mustLoadWalship(t, text))

	m.exec(pinnedMS, 2, "CREATE VIRTUAL TABLE bare USING fts5(a, content='')", "INSERT INTO bare (rowid, a) VALUES (1, 'gone')")
	var b strings.Builder
	if _, err := d.Dump(context.Background(), &b, nil); !errors.Is(err, ErrNotDumpable) || !strings.Contains(err.Error(), "bare") || b.Len() != 0 {
		t.Fatalf("a contentless FTS5 table: %v, %d bytes written", err, b.Len())
	}
	if _, err := d.Dump(context.Background(), io.Discard, []string{"docs%"}); err != nil {
		t.Fatalf("without the contentless table: %v", err)
	}
}

// A dump stopped by its context ends with an error that says so, before
// the end (no COMMIT: it loads nothing); the read connection goes back to
// the pool and serves what comes next. A context already done writes
// nothing.
func TestDumpCancel(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "db.sqlite"), Options{Readers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE big (v)",
		"INSERT INTO big WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 20000) SELECT hex(randomblob(100)) FROM n")
	full, _ := dumpOf(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelWriter{after: 100 << 10, cancel: cancel}
	_, err = d.Dump(ctx, w, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("dump canceled: %v", err)
	}
	if w.n >= len(full) || w.n < w.after || strings.Contains(w.b.String(), "COMMIT;") {
		t.Fatalf("canceled after %d bytes, it wrote %d of %d", w.after, w.n, len(full))
	}
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	if res, err := d.Query(qctx, stmts("SELECT count(*) FROM big")); err != nil || res[0].Rows[0][0].Int != 20000 {
		t.Fatalf("a query after the canceled dump: %v", err)
	}
	if again, _ := dumpOf(t, d); again != full {
		t.Fatal("a dump after the canceled one differs")
	}
	var b strings.Builder
	if _, err := d.Dump(ctx, &b, nil); !errors.Is(err, context.Canceled) || b.Len() != 0 {
		t.Fatalf("a dump with a done context: %v, %d bytes", err, b.Len())
	}
}

// cancelWriter cancels its context once it has taken after bytes.
type cancelWriter struct {
	b      bytes.Buffer
	n      int
	after  int
	cancel func()
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.b.Write(p)
	w.n += len(p)
	if w.n >= w.after {
		w.cancel()
	}
	return len(p), nil
}

// A dump is of one applied index while the writer commits between its
// writes: it holds what a replica at that index holds, and the index it
// returns is that one.
func TestDumpWhileWriting(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "CREATE TABLE n (k INTEGER PRIMARY KEY, total)",
		"INSERT INTO n VALUES (1, 0)")
	for i := range 10 {
		m.exec(pinnedMS, uint64(2+i), "INSERT INTO t (v) WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < 100) SELECT hex(randomblob(500)) FROM s",
			"UPDATE n SET total = total + 100")
	}
	at := d.AppliedIndex()
	w := &hookWriter{hook: func() {
		m.exec(pinnedMS, 100+uint64(d.AppliedIndex()), "INSERT INTO t (v) VALUES ('during')", "UPDATE n SET total = total + 1")
	}}
	pos, err := d.Dump(context.Background(), w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.calls < 3 || d.AppliedIndex() != at+uint64(w.calls) {
		t.Fatalf("%d writes during the dump, the database went from %d to %d", w.calls, at, d.AppliedIndex())
	}
	if pos != (Position{LogID: testLogID, Index: at}) {
		t.Fatalf("position %+v, want index %d", pos, at)
	}
	r := mustOpenDB(t)
	if err := r.Apply(testLogID, m.entries[:at]); err != nil {
		t.Fatal(err)
	}
	loaded := mustLoadWalship(t, w.b.String())
	mustEqualContent(t, "a dump taken while writing", r, loaded)
	if got := mustQuery(t, loaded, "SELECT (SELECT count(*) FROM t) = (SELECT total FROM n)")[0][0].Int; got != 1 {
		t.Fatal("the rows and their count are of different moments")
	}
}

// hookWriter runs hook before each write it takes.
type hookWriter struct {
	b     bytes.Buffer
	calls int
	hook  func()
}

func (w *hookWriter) Write(p []byte) (int, error) {
	w.calls++
	w.hook()
	return w.b.Write(p)
}

// A database with no table dumps as the framing alone, at position 0 when
// nothing was applied; sqlite3 loads it.
func TestDumpEmpty(t *testing.T) {
	d := mustOpenDB(t)
	text, pos := dumpOf(t, d)
	if text != "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCOMMIT;\n" || pos != (Position{}) {
		t.Fatalf("%+v %q", pos, text)
	}
	mustEqualContent(t, "loaded by sqlite3", d, mustLoadCLI(t, text))
}

// A write error stops the dump and is returned.
func TestDumpWriteError(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE big (v)",
		"INSERT INTO big WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 5000) SELECT hex(randomblob(100)) FROM n")
	boom := errors.New("connection reset")
	w := &failWriter{err: boom}
	if _, err := d.Dump(context.Background(), w, nil); !errors.Is(err, boom) || w.calls != 1 {
		t.Fatalf("%v after %d writes", err, w.calls)
	}
}

type failWriter struct {
	calls int
	err   error
}

func (w *failWriter) Write(p []byte) (int, error) { w.calls++; return 0, w.err }

// appendReal's literals name the same 64 bits for SQLite: the one walship
// runs, and the sqlite3 command line (3.40 reads literals below 1e-291 a
// bit off, hence the quotient).
func TestDumpRealLiterals(t *testing.T) {
	g := newDBGen(t, mustOpenDB(t), 7)
	var vals []float64
	for range 20000 {
		f := g.real()
		if !math.IsNaN(f) {
			vals = append(vals, f)
		}
	}
	for e := -324; e <= 308; e++ {
		vals = append(vals, math.Pow(10, float64(e)), -1.5*math.Pow(10, float64(e)))
	}
	var sql strings.Builder
	sql.WriteString("CREATE TABLE r (id INTEGER PRIMARY KEY, v);\nBEGIN;\n")
	for i, f := range vals {
		fmt.Fprintf(&sql, "INSERT INTO r VALUES(%d,%s);\n", i, appendReal(nil, f))
	}
	sql.WriteString("COMMIT;\n")
	cli := mustLoadCLI(t, sql.String())
	for _, r := range mustQuery(t, cli, "SELECT id, v FROM r") {
		if want := vals[r[0].Int]; r[1].Kind != wal.KindReal || math.Float64bits(r[1].Real) != math.Float64bits(want) {
			t.Errorf("sqlite3 reads %s as %s", appendReal(nil, want), show(r[1]))
		}
	}
	ours := mustOpenDB(t)
	var lits []string
	for i, f := range vals {
		lits = append(lits, string(appendReal(nil, f)))
		if len(lits) == 500 || i == len(vals)-1 {
			row := mustQuery(t, ours, "SELECT "+strings.Join(lits, ", "))[0]
			for j, v := range row {
				if want := vals[i+1-len(lits)+j]; v.Kind != wal.KindReal || math.Float64bits(v.Real) != math.Float64bits(want) {
					t.Errorf("SQLite reads %s as %s", lits[j], show(v))
				}
			}
			lits = lits[:0]
		}
	}
}

// A dump streams: neither it nor a large table is held in memory.
func TestDumpStreams(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE big (v)",
		"INSERT INTO big WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 20000) SELECT randomblob(1000) FROM n")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak, written := ms.HeapAlloc, uint64(0), 0
	w := &hookWriter{}
	w.hook = func() {
		written += w.b.Len()
		w.b.Reset() // what the dump wrote is gone: only its own memory remains
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	if _, err := d.Dump(context.Background(), w, nil); err != nil {
		t.Fatal(err)
	}
	if written < 32<<20 || w.calls < 100 {
		t.Fatalf("%d bytes in %d writes", written, w.calls)
	}
	if peak > base+16<<20 {
		t.Fatalf("the heap grew by %d MB while dumping %d MB", (peak-base)>>20, written>>20)
	}
}
