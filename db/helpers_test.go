package db

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/walship/walship/wal"
)

const testLogID = "0123456789abcdef0123456789abcdef"

// mustOpenDB opens a DB in a new temporary directory and closes it when the
// test ends.
func mustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenDBAt(tb, filepath.Join(tb.TempDir(), "db.sqlite"))
}

func mustOpenDBAt(tb testing.TB, path string) *DB {
	tb.Helper()
	d, err := Open(path, Options{})
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("close %s: %v", path, err)
		}
	})
	return d
}

// stmts makes one statement per SQL text, Pos set to its position.
func stmts(sqls ...string) []wal.Statement {
	out := make([]wal.Statement, len(sqls))
	for i, s := range sqls {
		out[i] = wal.Statement{SQL: s, Pos: uint32(i)}
	}
	return out
}

func req(txn bool, sqls ...string) Request {
	return Request{Statements: stmts(sqls...), Txn: txn}
}

// timed is a request with the time and seed the master gave it.
type timed struct {
	Request
	ms   int64
	seed uint64
}

// master plays the master's writer on a DB: it runs requests in one Tx per
// batch, commits, and keeps the entries it would have logged.
type master struct {
	tb      testing.TB
	d       *DB
	entries []*wal.Entry
}

func newMaster(tb testing.TB, d *DB) *master { return &master{tb: tb, d: d} }

// replica applies the logged entries to a fresh DB, as a slave does.
func (m *master) replica() *DB {
	m.tb.Helper()
	b := mustOpenDB(m.tb)
	if err := b.Apply(testLogID, m.entries); err != nil {
		m.tb.Fatal(err)
	}
	return b
}

// mustMatchReplica fails the test unless a replica fed the logged entries
// holds exactly what m's DB holds.
func (m *master) mustMatchReplica() {
	m.tb.Helper()
	if want, got := dump(m.tb, m.d), dump(m.tb, m.replica()); got != want {
		m.tb.Fatalf("replica differs from the master: %s\n%s", diffLines(want, got), want)
	}
}

// batch runs reqs in one Tx, as the master's writer does, and commits. No
// request may lose the transaction.
func (m *master) batch(reqs ...timed) []Outcome {
	m.tb.Helper()
	tx, err := m.d.Begin()
	if err != nil {
		m.tb.Fatalf("begin: %v", err)
	}
	outs := make([]Outcome, len(reqs))
	for i, r := range reqs {
		outs[i] = tx.Run(r.Request, r.ms, r.seed)
		if outs[i].TxnLost {
			_ = tx.Rollback()
			m.tb.Fatalf("request %d lost the transaction: %v", i, outs[i].Err)
		}
	}
	m.commit(tx, reqs, outs)
	return outs
}

// commit logs the successful requests of outs as entries and commits tx.
func (m *master) commit(tx *Tx, reqs []timed, outs []Outcome) {
	m.tb.Helper()
	index := m.d.AppliedIndex()
	for i, r := range reqs {
		if len(outs[i].Logged) == 0 || outs[i].Err != nil {
			continue
		}
		index++
		m.entries = append(m.entries, &wal.Entry{Index: index, Epoch: 1, Time: r.ms, Seed: r.seed,
			Txn: r.Txn, Statements: outs[i].Logged})
	}
	if err := tx.Commit(testLogID, index); err != nil {
		m.tb.Fatalf("commit: %v", err)
	}
}

// exec runs one request alone and fails the test if any statement failed.
func (m *master) exec(ms int64, seed uint64, sqls ...string) Outcome {
	m.tb.Helper()
	out := m.batch(timed{req(true, sqls...), ms, seed})[0]
	if out.Err != nil {
		m.tb.Fatalf("exec %q: %v", sqls, out.Err)
	}
	return out
}

// mustQuery runs one read and returns its rows.
func mustQuery(tb testing.TB, d *DB, sql string, params ...wal.Param) [][]wal.Value {
	tb.Helper()
	res, err := d.Query(context.Background(), []wal.Statement{{SQL: sql, Params: params}})
	if err != nil {
		tb.Fatalf("query %q: %v", sql, err)
	}
	return res[0].Rows
}

// show formats a value with its storage class, exactly: text and blobs
// byte for byte, reals to the last bit.
func show(v wal.Value) string {
	switch v.Kind {
	case wal.KindNull:
		return "NULL"
	case wal.KindInteger:
		return "int:" + strconv.FormatInt(v.Int, 10)
	case wal.KindReal:
		return "real:" + strconv.FormatFloat(v.Real, 'g', -1, 64)
	case wal.KindText:
		return "text:" + strconv.Quote(v.Text)
	case wal.KindBlob:
		return "blob:" + hex.EncodeToString(v.Blob)
	}
	return fmt.Sprintf("kind%d", v.Kind)
}

func showRow(row []wal.Value) string {
	parts := make([]string, len(row))
	for i, v := range row {
		parts[i] = show(v)
	}
	return strings.Join(parts, " | ")
}

// dump returns the whole content of d: the schema, and every row of every
// table (walship's and SQLite's own included) with each value's storage
// class, rows sorted. Two databases with the same dump hold the same values byte for
// byte.
func dump(tb testing.TB, d *DB) string {
	tb.Helper()
	var b strings.Builder
	var tables []string
	for _, row := range mustQuery(tb, d, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name") {
		fmt.Fprintf(&b, "schema: %s\n", showRow(row))
		if row[0].Text == "table" {
			tables = append(tables, row[1].Text)
		}
	}
	for _, name := range tables {
		// Generated columns are hidden from SELECT *: name every column.
		var cols []string
		for _, c := range mustQuery(tb, d, "SELECT name FROM pragma_table_xinfo(?1)", wal.Param{Value: wal.Text(name)}) {
			cols = append(cols, `"`+c[0].Text+`"`)
		}
		rows := mustQuery(tb, d, fmt.Sprintf(`SELECT %s FROM "%s"`, strings.Join(cols, ", "), name))
		lines := make([]string, len(rows))
		for i, r := range rows {
			lines[i] = showRow(r)
		}
		sort.Strings(lines)
		fmt.Fprintf(&b, "table %s (%s): %d rows\n", name, strings.Join(cols, ", "), len(rows))
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	for _, row := range mustQuery(tb, d, "PRAGMA integrity_check") {
		fmt.Fprintf(&b, "integrity: %s\n", showRow(row))
	}
	return b.String()
}

// diffLines returns the first differing line of a and b, for messages.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  %s\n  %s", i+1, x, y)
		}
	}
	return ""
}
