package db

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/walship/walship/wal"
)

// roundTripValues holds every storage class with its edge values.
var roundTripValues = []wal.Value{
	wal.Null(),
	wal.Integer(0),
	wal.Integer(1),
	wal.Integer(-1),
	wal.Integer(math.MinInt64),
	wal.Integer(math.MaxInt64),
	wal.Integer(1 << 53),
	wal.Real(0.5),
	wal.Real(-1.25),
	wal.Real(1.0),
	wal.Real(math.Pi),
	wal.Real(math.MaxFloat64),
	wal.Real(math.SmallestNonzeroFloat64),
	wal.Real(-math.MaxFloat64),
	wal.Real(math.Inf(1)),
	wal.Real(math.Inf(-1)),
	wal.Real(1e300),
	wal.Real(9007199254740993), // not exact as a float64: 2^53 + 1 rounds
	wal.Text(""),
	wal.Text("hello"),
	wal.Text("a\x00b\x00"),
	wal.Text("\xff\xfe not UTF-8 \xc3"),
	wal.Text("ünïcödé ✓"),
	wal.Text("2026-11-25 16:55:48"),
	wal.Text("123"), // text that looks like a number stays text
	wal.Text(strings.Repeat("x", 100_000)),
	wal.Blob([]byte{}),
	wal.Blob([]byte{0}),
	wal.Blob([]byte{0, 1, 2, 0xfe, 0xff}),
	wal.Blob([]byte("text in a blob")),
}

func sameValue(a, b wal.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case wal.KindInteger:
		return a.Int == b.Int
	case wal.KindReal:
		return math.Float64bits(a.Real) == math.Float64bits(b.Real)
	case wal.KindText:
		return a.Text == b.Text
	case wal.KindBlob:
		return string(a.Blob) == string(b.Blob)
	}
	return true
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// TestValuesRoundTrip binds every value as a parameter and reads it back:
// directly, and stored in a column without affinity, on the writer (write
// results) and on a reader (query results).
func TestValuesRoundTrip(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE v (id INTEGER PRIMARY KEY, x)")
	for i, v := range roundTripValues {
		st := wal.Statement{SQL: "INSERT INTO v (id, x) VALUES (?, ?) RETURNING x, typeof(x)",
			Params: []wal.Param{{Value: wal.Integer(int64(i))}, {Value: v}}}
		out := m.batch(timed{Request{Statements: []wal.Statement{st}}, pinnedMS, 2})[0]
		if err := out.Results[0].Err; err != nil {
			t.Fatalf("insert %s: %v", trunc(show(v)), err)
		}
		if got := out.Results[0].Rows[0][0]; !sameValue(got, v) {
			t.Errorf("RETURNING gave %s, want %s", trunc(show(got)), trunc(show(v)))
		}
		if typ := out.Results[0].Rows[0][1].Text; typ != v.Kind.String() {
			t.Errorf("typeof(%s) = %s", trunc(show(v)), typ)
		}
		// The logged statement keeps its parameters exactly.
		if !reflect.DeepEqual(out.Logged[0].Params, st.Params) {
			t.Errorf("logged params %v, want %v", out.Logged[0].Params, st.Params)
		}
		res, err := d.Query(context.Background(), []wal.Statement{{SQL: "SELECT ?1, typeof(?1)", Params: []wal.Param{{Value: v}}}})
		if err != nil {
			t.Fatalf("query %s: %v", trunc(show(v)), err)
		}
		if got := res[0].Rows[0][0]; !sameValue(got, v) {
			t.Errorf("SELECT ? gave %s, want %s", trunc(show(got)), trunc(show(v)))
		}
	}
	rows := mustQuery(t, d, "SELECT id, x FROM v ORDER BY id")
	if len(rows) != len(roundTripValues) {
		t.Fatalf("%d rows, want %d", len(rows), len(roundTripValues))
	}
	for _, r := range rows {
		if v := roundTripValues[r[0].Int]; !sameValue(r[1], v) {
			t.Errorf("stored and read back %s, want %s", trunc(show(r[1])), trunc(show(v)))
		}
	}
	// A replica stores the same.
	m.mustMatchReplica()
}

// TestValuesAsStored checks that values come back exactly as SQLite stores
// them: TIMESTAMP text as its text, declared types lower-cased.
func TestValuesAsStored(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1,
		"CREATE TABLE s (i INTEGER, r REAL, t TEXT, b BLOB, n NUMERIC, ts TIMESTAMP, dt DateTime, bo BOOLEAN, x)",
		"INSERT INTO s VALUES (1, 2, 3, x'04', '5.0', '2026-11-25 16:55:48', '2026-11-25T16:55:48.123+02:00', 'true', NULL)",
		"INSERT INTO s (ts, dt) VALUES (CURRENT_TIMESTAMP, 1764089748)",
	)
	res, err := d.Query(context.Background(), stmts("SELECT i, r, t, b, n, ts, dt, bo, x, i + 1 AS expr FROM s ORDER BY rowid"))
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if want := []string{"integer", "real", "text", "blob", "numeric", "timestamp", "datetime", "boolean", "", ""}; !reflect.DeepEqual(r.Types, want) {
		t.Errorf("Types = %q, want %q", r.Types, want)
	}
	if want := []string{"i", "r", "t", "b", "n", "ts", "dt", "bo", "x", "expr"}; !reflect.DeepEqual(r.Columns, want) {
		t.Errorf("Columns = %q, want %q", r.Columns, want)
	}
	want := []string{
		`int:1 | real:2 | text:"3" | blob:04 | int:5 | text:"2026-11-25 16:55:48" | text:"2026-11-25T16:55:48.123+02:00" | text:"true" | NULL | int:2`,
		`NULL | NULL | NULL | NULL | NULL | text:"2025-11-25 16:55:48" | int:1764089748 | NULL | NULL | NULL`,
	}
	for i, row := range r.Rows {
		if got := showRow(row); got != want[i] {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, want[i])
		}
	}
}

func TestParams(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (a, b, c)")
	named := func(kv ...any) []wal.Param {
		var ps []wal.Param
		for i := 0; i < len(kv); i += 2 {
			ps = append(ps, wal.Param{Name: kv[i].(string), Value: wal.Integer(int64(kv[i+1].(int)))})
		}
		return ps
	}
	pos := func(vs ...int) []wal.Param {
		var ps []wal.Param
		for _, v := range vs {
			ps = append(ps, wal.Param{Value: wal.Integer(int64(v))})
		}
		return ps
	}
	for _, tc := range []struct {
		sql    string
		params []wal.Param
		want   string // the row, or "" for ErrParams
	}{
		{"SELECT ?, ?, ?", pos(1, 2, 3), "int:1 | int:2 | int:3"},
		{"SELECT ?2, ?1", pos(1, 2), "int:2 | int:1"},
		{"SELECT ?1, ?1", pos(7), "int:7 | int:7"},
		{"SELECT :a, @b, $c", named("a", 1, "b", 2, "c", 3), "int:1 | int:2 | int:3"},
		{"SELECT :a, @b, $c", named("c", 3, "a", 1, "b", 2), "int:1 | int:2 | int:3"},
		{"SELECT :a + :a", named("a", 4), "int:8"},
		{"SELECT :a, ?", append(named("a", 1), pos(2)...), ""}, // ? is ?2; the positional one binds ?1 again
		{"SELECT 1", nil, "int:1"},
		// Wrong counts and names.
		{"SELECT ?, ?", pos(1), ""},
		{"SELECT ?", pos(1, 2), ""},
		{"SELECT ?", nil, ""},
		{"SELECT 1", pos(1), ""},
		{"SELECT ?5", pos(1), ""},
		{"SELECT :a, :b", named("a", 1), ""},
		{"SELECT :a", named("b", 1), ""},
		{"SELECT :a", named("a", 1, "a", 2), ""},
		{"SELECT 1", named("a", 1), ""},
		{"SELECT ?", []wal.Param{{Value: wal.Value{Kind: 99}}}, ""},
		{"SELECT :a", []wal.Param{{Name: "", Value: wal.Integer(1)}}, "int:1"}, // positional binds ?1, which is :a
	} {
		res, err := d.Query(context.Background(), []wal.Statement{{SQL: tc.sql, Params: tc.params}})
		if tc.want == "" {
			if !errors.Is(err, ErrParams) {
				t.Errorf("Query(%q, %v) = %v, %v; want ErrParams", tc.sql, tc.params, res, err)
			}
		} else if err != nil || showRow(res[0].Rows[0]) != tc.want {
			t.Errorf("Query(%q, %v) = %v, %v; want %s", tc.sql, tc.params, res, err, tc.want)
		}
		// The same in a write: refused with ErrParams, nothing stored.
		ins := "INSERT INTO t (a) SELECT 1 FROM (" + tc.sql + ")"
		out := m.batch(timed{Request{Statements: []wal.Statement{{SQL: ins, Params: tc.params}}}, pinnedMS, 2})[0]
		if tc.want == "" && !errors.Is(out.Results[0].Err, ErrParams) {
			t.Errorf("Tx.Run(%q, %v): %v; want ErrParams", ins, tc.params, out.Results[0].Err)
		}
		if tc.want != "" && out.Results[0].Err != nil {
			t.Errorf("Tx.Run(%q, %v): %v", ins, tc.params, out.Results[0].Err)
		}
	}
	if rows := mustQuery(t, d, "SELECT count(*) FROM t"); rows[0][0].Int != 8 {
		t.Errorf("%d rows inserted, want 8 (one per valid case)", rows[0][0].Int)
	}
}
