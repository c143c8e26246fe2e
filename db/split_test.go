package db

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

func TestSplit(t *testing.T) {
	trigger := "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES (new.id, 'a;b');\n  UPDATE t SET n = n + 1;\nEND;"
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"white space only", " \t\r\n\f ", nil},
		{"semicolons only", ";;; ;\n;", nil},
		{"comments only", "-- a\n/* b; */ -- c;", nil},
		{"one", "SELECT 1;", []string{"SELECT 1;"}},
		{"two", "SELECT 1; SELECT 2;", []string{"SELECT 1;", "SELECT 2;"}},
		{"trailing without semicolon", "SELECT 1;\nSELECT 2", []string{"SELECT 1;", "SELECT 2"}},
		{"trailing white space dropped", "SELECT 1 \n\t", []string{"SELECT 1"}},
		{"trailing comment dropped", "SELECT 1 -- no semicolon; here", []string{"SELECT 1"}},
		{"trailing block comment dropped", "SELECT 1 /* ; */ ", []string{"SELECT 1"}},
		{"leading comments dropped", "-- first\n/* second */ SELECT 1;", []string{"SELECT 1;"}},
		{"comment after semicolon", "SELECT 1; -- done", []string{"SELECT 1;"}},
		{"empty statements dropped", ";; SELECT 1;;; ; SELECT 2;;", []string{"SELECT 1;", "SELECT 2;"}},
		{"comment inside kept", "SELECT /* ; */ 1 -- ;\n + 2;", []string{"SELECT /* ; */ 1 -- ;\n + 2;"}},
		{"single quotes", "INSERT INTO t VALUES ('a;b'); SELECT ';'", []string{"INSERT INTO t VALUES ('a;b');", "SELECT ';'"}},
		{"doubled single quote", "SELECT 'it''s;'; SELECT 2", []string{"SELECT 'it''s;';", "SELECT 2"}},
		{"double quotes", `SELECT "a;b" FROM t; SELECT 2;`, []string{`SELECT "a;b" FROM t;`, "SELECT 2;"}},
		{"backquotes", "SELECT `a;b` FROM t; SELECT 2;", []string{"SELECT `a;b` FROM t;", "SELECT 2;"}},
		{"brackets", "SELECT [a;b] FROM t; SELECT 2;", []string{"SELECT [a;b] FROM t;", "SELECT 2;"}},
		{"quote inside brackets", "SELECT [it's;] FROM t; SELECT 2;", []string{"SELECT [it's;] FROM t;", "SELECT 2;"}},
		{"comment marker inside string", "SELECT '--;', '/*;'; SELECT 2;", []string{"SELECT '--;', '/*;';", "SELECT 2;"}},
		{"minus and slash", "SELECT 4-2; SELECT 4/2;", []string{"SELECT 4-2;", "SELECT 4/2;"}},
		{"trigger", trigger + " SELECT 1;", []string{trigger, "SELECT 1;"}},
		{"trigger without final semicolon", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", []string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"}},
		{"trigger with CASE END", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN 1 THEN 2 END; END; SELECT 1;",
			[]string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN 1 THEN 2 END; END;", "SELECT 1;"}},
		{"temp trigger", "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END; SELECT 3",
			[]string{"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;", "SELECT 3"}},
		{"temporary trigger lower case", "create temporary trigger tr after insert on t begin select 1; end;select 2;",
			[]string{"create temporary trigger tr after insert on t begin select 1; end;", "select 2;"}},
		{"explain create trigger", "EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2;",
			[]string{"EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;", "SELECT 2;"}},
		{"explain", "EXPLAIN SELECT 1; EXPLAIN QUERY PLAN SELECT 2;", []string{"EXPLAIN SELECT 1;", "EXPLAIN QUERY PLAN SELECT 2;"}},
		{"create table is no trigger", "CREATE TABLE trig(a); CREATE TABLE temp_t(a);", []string{"CREATE TABLE trig(a);", "CREATE TABLE temp_t(a);"}},
		{"trigger as a column name", "SELECT trigger FROM t; SELECT 2;", []string{"SELECT trigger FROM t;", "SELECT 2;"}},
		{"end as an identifier", "SELECT end FROM t; SELECT 2;", []string{"SELECT end FROM t;", "SELECT 2;"}},
		{"non-ASCII identifiers", "SELECT ünïcode; SELECT 'ü;';", []string{"SELECT ünïcode;", "SELECT 'ü;';"}},
		{"comment between trigger body statements", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; -- ;\nEND;",
			[]string{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; -- ;\nEND;"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.in)
			if err != nil {
				t.Fatalf("Split(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Split(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplitIncomplete(t *testing.T) {
	for _, in := range []string{
		"SELECT 'abc",
		"SELECT 1; SELECT 'a;b",
		`SELECT "abc`,
		"SELECT `abc",
		"SELECT [abc",
		"SELECT 1 /* comment",
		"SELECT 1 /*/",
		"/*",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1",
		"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END x;",
		"SELECT 1; CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; -- END;",
		"SELECT 'a\x00b';",
		"SELECT 1;\x00",
		"SELECT 1 -- \x00 comment",
	} {
		got, err := Split(in)
		if !errors.Is(err, ErrIncomplete) {
			t.Errorf("Split(%q) = %q, %v; want ErrIncomplete", in, got, err)
		}
	}
}

// oracle calls the real sqlite3_complete of modernc.org/sqlite/lib. It is
// safe for concurrent use.
var oracle struct {
	once sync.Once
	mu   sync.Mutex
	tls  *libc.TLS
}

// sqliteComplete reports sqlite3_complete(s) == 1. s must not hold a NUL.
func sqliteComplete(tb testing.TB, s string) bool {
	tb.Helper()
	oracle.once.Do(func() { oracle.tls = libc.NewTLS() })
	oracle.mu.Lock()
	defer oracle.mu.Unlock()
	tls := oracle.tls
	p := libc.Xmalloc(tls, types.Size_t(len(s)+1))
	if p == 0 {
		tb.Fatal("malloc failed")
	}
	defer libc.Xfree(tls, p)
	b := unsafe.Slice((*byte)(ptr(p)), len(s)+1)
	copy(b, s)
	b[len(s)] = 0
	return sqlite3.Xsqlite3_complete(tls, p) == 1
}

// blank reports whether s holds only white space, comments and
// semicolons: what Split may drop. It is written independently of Split.
// A -- comment may run to the end of s only if s ends the input.
func blank(s string, atEnd bool) bool {
	for len(s) > 0 {
		switch {
		case strings.ContainsRune(" \t\r\n\f;", rune(s[0])):
			s = s[1:]
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return atEnd
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return false
			}
			s = s[2+i+2:]
		default:
			return false
		}
	}
	return true
}

// checkSplit compares Split(in) with sqlite3_complete.
func checkSplit(t *testing.T, in string) {
	pieces, err := Split(in)
	if strings.IndexByte(in, 0) >= 0 {
		// sqlite3_complete and sqlite3_prepare stop at a NUL; Split
		// refuses the text rather than drop what follows.
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Split(%q) = %q, %v; want ErrIncomplete for a NUL byte", in, pieces, err)
		}
		return
	}
	whole := sqliteComplete(t, in+"\n;")
	if err != nil {
		if !errors.Is(err, ErrIncomplete) {
			t.Fatalf("Split(%q): error %v does not wrap ErrIncomplete", in, err)
		}
		if whole {
			t.Fatalf("Split(%q): %v, but sqlite3_complete(input + \"\\n;\") = 1", in, err)
		}
		return
	}
	if !whole {
		t.Fatalf("Split(%q) = %q, but sqlite3_complete(input + \"\\n;\") = 0", in, pieces)
	}
	rest := in
	for i, p := range pieces {
		if blank(p, true) {
			t.Fatalf("Split(%q): piece %d %q is empty", in, i, p)
		}
		stmt := p
		if !strings.HasSuffix(stmt, ";") {
			if i != len(pieces)-1 {
				t.Fatalf("Split(%q): piece %d %q lacks its semicolon and is not the last", in, i, p)
			}
			stmt += ";"
		}
		if !sqliteComplete(t, stmt) {
			t.Fatalf("Split(%q): piece %d %q is not complete for SQLite", in, i, stmt)
		}
		// No semicolon inside the piece may end a statement already.
		for k := 0; k < len(stmt)-1; k++ {
			if stmt[k] == ';' && sqliteComplete(t, stmt[:k+1]) {
				t.Fatalf("Split(%q): piece %d %q holds more than one statement (complete at %d)", in, i, p, k)
			}
		}
		// The piece is the next part of the input (Split returns
		// substrings of its input) after nothing but white space,
		// comments and semicolons.
		at := int(uintptr(unsafe.Pointer(unsafe.StringData(p))) - uintptr(unsafe.Pointer(unsafe.StringData(rest))))
		if at < 0 || at+len(p) > len(rest) || rest[at:at+len(p)] != p {
			t.Fatalf("Split(%q): piece %d %q is not the next part of the input %q", in, i, p, rest)
		}
		if !blank(rest[:at], false) {
			t.Fatalf("Split(%q): before piece %d, dropped %q which is not white space, comments or semicolons", in, i, rest[:at])
		}
		rest = rest[at+len(p):]
	}
	if !blank(rest, true) {
		t.Fatalf("Split(%q): dropped %q at the end, which is not white space, comments or semicolons", in, rest)
	}
}

var splitSeeds = []string{
	"",
	";",
	"SELECT 1",
	"SELECT 1;",
	"SELECT 1; SELECT 2",
	"SELECT 1 -- comment",
	"SELECT 1; -- comment",
	"SELECT 1 /* c */",
	"/* c */ SELECT 1;",
	"SELECT 'a;b'; SELECT \"c;d\"; SELECT `e;f`; SELECT [g;h];",
	"SELECT 'unterminated",
	"SELECT [unterminated",
	"SELECT 1 /* unterminated",
	"CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO x VALUES (1); UPDATE y SET a = 2; END; SELECT 1",
	"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
	"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;",
	"CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
	"create temporary trigger tr before delete on t begin select raise(abort, 'x;'); end;",
	"EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END;",
	"EXPLAIN QUERY PLAN SELECT * FROM t WHERE a = 'x';",
	"SELECT 4-2, 4/2, -1, $a, @b, :c, ?1;",
	"SELECT 1;\nEND;\nCREATE TABLE temp(trigger);",
	"SELECT x'00ff';\x00SELECT 2;",
	"SELECT ünï; SELECT '\xff\xfe';",
	"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END -- c",
}

// TestSplitMatchesSQLite runs the differential check on the table cases and
// on every prefix of the seeds: prefixes cut statements, strings, comments
// and trigger bodies at every position.
func TestSplitMatchesSQLite(t *testing.T) {
	for _, s := range splitSeeds {
		for i := 0; i <= len(s); i++ {
			checkSplit(t, s[:i])
		}
	}
}

// FuzzSplit checks Split against SQLite's own sqlite3_complete for any
// input. Seeds live in testdata/fuzz/FuzzSplit too.
func FuzzSplit(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkSplit(t, in)
	})
}
