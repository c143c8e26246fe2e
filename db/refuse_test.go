package db

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/wal"
)

// refusedInWrites are statements no replicated write may run. Each must
// fail with ErrRefused in Tx.Run, and in Query (there, a statement that
// would write may fail with ErrWriteInQuery instead).
func refusedInWrites(dir string) []struct{ sql, why string } {
	return []struct{ sql, why string }{
		{"ATTACH '" + filepath.Join(dir, "other.db") + "' AS other", "ATTACH"},
		{"DETACH main", "DETACH"},
		{"VACUUM", "VACUUM"},
		{"VACUUM INTO '" + filepath.Join(dir, "copy.db") + "'", "VACUUM"},
		{"SELECT load_extension('libnothing')", "load_extension"},
		{"CREATE TEMP TABLE tt (a)", "temporary"},
		{"CREATE TEMPORARY TABLE tt (a)", "temporary"},
		{"CREATE TABLE temp.tt (a)", "temporary"},
		{"CREATE TABLE TEMP.tt (a)", "temporary"},
		{"CREATE VIEW temp.tv AS SELECT 1", "temporary"},
		{"CREATE TEMP VIEW tv AS SELECT 1", "temporary"},
		{"CREATE TEMP TRIGGER ttr AFTER INSERT ON t BEGIN SELECT 1; END", "temporary"},
		{"PRAGMA writable_schema=1", "PRAGMA writable_schema"},
		{"PRAGMA foreign_keys=OFF", "PRAGMA foreign_keys"},
		{"PRAGMA main.foreign_keys = 0", "PRAGMA foreign_keys"},
		{"PRAGMA recursive_triggers=ON", "PRAGMA recursive_triggers"},
		{"PRAGMA schema_version=7", "PRAGMA schema_version"},
		{"PRAGMA cache_size=10", "PRAGMA cache_size"},
		{"PRAGMA journal_mode=DELETE", "PRAGMA journal_mode"},
		{"BEGIN", "transaction control"},
		{"BEGIN IMMEDIATE", "transaction control"},
		{"COMMIT", "transaction control"},
		{"END", "transaction control"},
		{"ROLLBACK", "transaction control"},
		{"SAVEPOINT s", "transaction control"},
		{"RELEASE s", "transaction control"},
		{"ROLLBACK TO s", "transaction control"},
		{"INSERT INTO _walship (id, log_id, applied_index) VALUES (2, 'x', 9)", "_walship"},
		{"UPDATE _walship SET applied_index = 99", "_walship"},
		{"DELETE FROM _walship", "_walship"},
		{"DROP TABLE _walship", "_walship"},
		{"ALTER TABLE _walship ADD COLUMN x", "_walship"},
		{"ALTER TABLE _walship RENAME TO mine", "_walship"},
		{"CREATE INDEX wi ON _walship (log_id)", "_walship"},
		{"CREATE TRIGGER wt AFTER INSERT ON _walship BEGIN SELECT 1; END", "_walship"},
		{"INSERT INTO t VALUES (total_changes())", "total_changes"},
		{"INSERT INTO t SELECT applied_index FROM _walship", "_walship"},
		{"INSERT INTO t SELECT file FROM pragma_database_list", "database_list"},
		{"INSERT INTO t SELECT data_version FROM pragma_data_version", "data_version"},
		{"INSERT INTO t SELECT pgno FROM sqlite_dbpage", "sqlite_dbpage"},
		{"INSERT INTO sqlite_dbpage (pgno, data) VALUES (2, zeroblob(4096))", "sqlite_dbpage"},
		{"UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 2", "sqlite_dbpage"},
		{"INSERT INTO t SELECT pgoffset FROM dbstat", "dbstat"},
		{"CREATE VIRTUAL TABLE pages USING dbstat", "dbstat"},
		{"INSERT INTO t SELECT sqlite_offset(a) FROM t", "sqlite_offset"},
	}
}

func TestRefusedInWrites(t *testing.T) {
	d := mustOpenDB(t)
	dir := t.TempDir()
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (a)", "INSERT INTO t VALUES (1)")
	before := dump(t, d)
	for _, tc := range refusedInWrites(dir) {
		for _, txn := range []bool{false, true} {
			out := m.batch(timed{req(txn, tc.sql), pinnedMS, 2})[0]
			err := out.Results[0].Err
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Tx.Run(%q, txn %v): %v; want ErrRefused", tc.sql, txn, err)
				continue
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Tx.Run(%q): %q does not say %q", tc.sql, err, tc.why)
			}
			if len(out.Logged) != 0 || out.TxnLost {
				t.Errorf("Tx.Run(%q): logged %v, TxnLost %v", tc.sql, out.Logged, out.TxnLost)
			}
			if txn && !errors.Is(out.Err, ErrRefused) {
				t.Errorf("Tx.Run(%q) with txn: request error %v, want ErrRefused", tc.sql, out.Err)
			}
		}
	}
	if after := dump(t, d); after != before {
		t.Fatalf("refused statements changed the database: %s", diffLines(before, after))
	}
	for _, name := range []string{"other.db", "copy.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists after refused statements (%v)", name, err)
		}
	}
	if d.LogID() != testLogID || d.AppliedIndex() != uint64(len(m.entries)) {
		t.Errorf("position changed: %s %d", d.LogID(), d.AppliedIndex())
	}
	// A replica does not judge a logged entry again: the policy is the
	// master's, when it accepts a request, and what it logged is applied.
	b := m.replica()
	logged := *m.entries[0]
	logged.Index = b.AppliedIndex() + 1
	logged.Statements = stmts("INSERT INTO t VALUES (total_changes() >= 0)")
	if err := b.Apply(testLogID, []*wal.Entry{&logged}); err != nil {
		t.Errorf("Apply of a logged statement the policy refuses: %v; want it applied", err)
	}
	if rows := mustQuery(t, b, "SELECT count(*) FROM t"); rows[0][0].Int != 2 {
		t.Errorf("replica holds %v rows, want 2", rows)
	}
}

// TestRefusedViaTrigger checks that a trigger cannot do what its statement
// may not: the trigger is created, the statement that fires it is refused.
func TestRefusedViaTrigger(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (a)", "CREATE TABLE u (a)",
		"CREATE TRIGGER t_pos AFTER INSERT ON t BEGIN UPDATE _walship SET applied_index = 0; END",
		"CREATE TRIGGER u_pos AFTER INSERT ON u BEGIN INSERT INTO u SELECT applied_index FROM _walship; END")
	for _, sql := range []string{"INSERT INTO t VALUES (1)", "INSERT INTO u VALUES (1)"} {
		out := m.batch(timed{req(false, sql), pinnedMS, 2})[0]
		if !errors.Is(out.Results[0].Err, ErrRefused) {
			t.Errorf("%s fires a trigger that touches _walship: %v; want ErrRefused", sql, out.Results[0].Err)
		}
	}
	if d.AppliedIndex() != 1 || len(mustQuery(t, d, "SELECT * FROM t")) != 0 {
		t.Errorf("applied index %d", d.AppliedIndex())
	}
}

func TestRefusedInQuery(t *testing.T) {
	d := mustOpenDB(t)
	dir := t.TempDir()
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (a)", "INSERT INTO t VALUES (1)")
	before := dump(t, d)
	for _, tc := range refusedInWrites(dir) {
		res, err := d.Query(context.Background(), stmts(tc.sql))
		if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrWriteInQuery) {
			t.Errorf("Query(%q) = %v, %v; want ErrRefused or ErrWriteInQuery", tc.sql, res, err)
		}
	}
	// Writes, also hidden in a CTE or behind a read, are refused.
	for _, sql := range []string{
		"INSERT INTO t VALUES (2)",
		"UPDATE t SET a = 3",
		"DELETE FROM t",
		"REPLACE INTO t VALUES (4)",
		"WITH x AS (SELECT 5) INSERT INTO t SELECT * FROM x",
		"WITH x AS (SELECT 1) DELETE FROM t WHERE a IN x",
		"INSERT INTO t VALUES (6) RETURNING *",
		"CREATE TABLE u (a)",
		"CREATE INDEX ti ON t (a)",
		"CREATE VIEW v AS SELECT 1",
		"DROP TABLE t",
		"ALTER TABLE t ADD COLUMN b",
		"ANALYZE",
		"EXPLAIN INSERT INTO t VALUES (1)",
	} {
		res, err := d.Query(context.Background(), stmts(sql))
		if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrWriteInQuery) {
			t.Errorf("Query(%q) = %v, %v; want ErrRefused or ErrWriteInQuery", sql, res, err)
		}
	}
	// Results before a refused statement come back with the error.
	res, err := d.Query(context.Background(), stmts("SELECT 1", "DELETE FROM t", "SELECT 2"))
	if !errors.Is(err, ErrRefused) && !errors.Is(err, ErrWriteInQuery) || len(res) != 1 {
		t.Errorf("Query with a write second: %v, %v", res, err)
	}
	// A write hidden behind a read in one statement text.
	if _, err := d.Query(context.Background(), stmts("SELECT 1; DELETE FROM t")); !errors.Is(err, ErrMultiple) {
		t.Errorf("Query of two statements in one text: %v, want ErrMultiple", err)
	}
	if after := dump(t, d); after != before {
		t.Fatalf("refused queries changed the database: %s", diffLines(before, after))
	}
	for _, name := range []string{"other.db", "copy.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists after refused queries (%v)", name, err)
		}
	}
}

// TestReadsInQuery checks that reads, read-only PRAGMAs and total_changes()
// work in Query.
func TestReadsInQuery(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, at TIMESTAMP)", "CREATE INDEX t_name ON t (name)")
	for _, tc := range []struct{ sql, want string }{
		{"PRAGMA table_info(t)", `int:0 | text:"id" | text:"INTEGER" | int:0 | NULL | int:1`},
		{"PRAGMA main.table_info('t')", `int:0 | text:"id" | text:"INTEGER" | int:0 | NULL | int:1`},
		{"SELECT name, type FROM pragma_table_info('t') WHERE cid = 2", `text:"at" | text:"TIMESTAMP"`},
		{"PRAGMA index_list(t)", `int:0 | text:"t_name" | int:0 | text:"c" | int:0`},
		{"PRAGMA foreign_keys", "int:1"},
		{"PRAGMA recursive_triggers", "int:0"},
		{"PRAGMA journal_mode", `text:"wal"`},
		{"PRAGMA integrity_check", `text:"ok"`},
		{"SELECT applied_index FROM _walship", "int:1"},
		{"SELECT typeof(total_changes())", `text:"integer"`},
		{"EXPLAIN QUERY PLAN SELECT * FROM t WHERE name = 'x'", ""},
		{"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT group_concat(i) FROM n", `text:"1,2,3"`},
	} {
		res, err := d.Query(context.Background(), stmts(tc.sql))
		if err != nil {
			t.Errorf("Query(%q): %v", tc.sql, err)
			continue
		}
		if tc.want == "" {
			if len(res[0].Rows) == 0 {
				t.Errorf("Query(%q): no rows", tc.sql)
			}
			continue
		}
		if len(res[0].Rows) == 0 || showRow(res[0].Rows[0]) != tc.want {
			t.Errorf("Query(%q) = %v, want first row %s", tc.sql, res[0].Rows, tc.want)
		}
	}
}

func TestClassify(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (a)", "CREATE TABLE log (a)", "CREATE VIEW v AS SELECT a FROM t",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); END")
	for _, tc := range []struct {
		sql     string
		want    Class
		refused string // a word of Refused, "" if not refused
		failed  bool   // SQLite cannot compile it
	}{
		{"SELECT * FROM t", Class{}, "", false},
		{"SELECT 1", Class{}, "", false},
		{"INSERT INTO t VALUES (1)", Class{Write: true}, "", false},
		{"UPDATE t SET a = 2", Class{Write: true}, "", false},
		{"DELETE FROM t", Class{Write: true}, "", false},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", Class{Write: true}, "", false},
		{"CREATE TABLE u (a)", Class{Write: true, Schema: true}, "", false},
		{"CREATE TABLE IF NOT EXISTS t (a)", Class{Write: true, Schema: true}, "", false},
		{"CREATE TABLE t (a)", Class{Write: true, Schema: true}, "", true},
		{"CREATE INDEX ti ON t (a)", Class{Write: true, Schema: true}, "", false},
		{"CREATE VIEW w AS SELECT 1", Class{Write: true, Schema: true}, "", false},
		{"CREATE TRIGGER tr2 AFTER DELETE ON t BEGIN SELECT 1; END", Class{Write: true, Schema: true}, "", false},
		{"DROP TABLE t", Class{Write: true, Schema: true}, "", false},
		{"DROP VIEW v", Class{Write: true, Schema: true}, "", false},
		{"DROP TRIGGER tr", Class{Write: true, Schema: true}, "", false},
		{"ALTER TABLE t ADD COLUMN b", Class{Write: true, Schema: true}, "", false},
		{"ALTER TABLE t RENAME TO t2", Class{Write: true, Schema: true}, "", false},
		{"PRAGMA table_info(t)", Class{}, "", false},
		{"ATTACH 'x' AS y", Class{}, "ATTACH", false},
		{"BEGIN", Class{}, "transaction", false},
		{"VACUUM", Class{Write: true}, "VACUUM", false},
		{"CREATE TEMP TABLE x (a)", Class{Write: true}, "temporary", false},
		{"INSERT INTO _walship VALUES (2, '', 0)", Class{Write: true}, "_walship", false},
		{"INSERT INTO t VALUES (total_changes())", Class{Write: true}, "total_changes", false},
		{"INSERT INTO t SELECT applied_index FROM _walship", Class{Write: true}, "_walship", false},
		{"SELECT total_changes()", Class{}, "total_changes", false},
		{"SELECT * FROM nosuch", Class{}, "", true},
	} {
		cl, err := d.Classify(context.Background(), tc.sql)
		if (err != nil) != tc.failed {
			t.Errorf("Classify(%q): error %v", tc.sql, err)
		}
		if cl.Write != tc.want.Write || cl.Schema != tc.want.Schema {
			t.Errorf("Classify(%q) = Write %v, Schema %v; want %v, %v", tc.sql, cl.Write, cl.Schema, tc.want.Write, tc.want.Schema)
		}
		if (tc.refused == "") != (cl.Refused == "") || !strings.Contains(cl.Refused, tc.refused) {
			t.Errorf("Classify(%q).Refused = %q, want something with %q", tc.sql, cl.Refused, tc.refused)
		}
	}
	// Classify compiles only: nothing ran.
	if rows := mustQuery(t, d, "SELECT count(*) FROM sqlite_schema"); rows[0][0].Int != 4+1 {
		t.Errorf("schema has %d objects after Classify, want 5 (4 and _walship)", rows[0][0].Int)
	}
}

// TestNowInPureContexts checks that 'now' is refused where SQLite's own
// date functions refuse it (indexes, generated columns, CHECK constraints),
// while date functions of column values work there.
func TestNowInPureContexts(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE t (a TEXT)", "INSERT INTO t VALUES ('2025-01-31')")
	for _, tc := range []struct {
		sqls  []string
		where string // "" if it must work
	}{
		{[]string{"CREATE INDEX i ON t (datetime('now'))"}, "an index"},
		{[]string{"CREATE INDEX i ON t (a) WHERE a > date('now')"}, "an index"},
		{[]string{"CREATE INDEX i ON t (date(a, 'localtime'))"}, "an index"},
		{[]string{"CREATE INDEX i ON t (current_timestamp)"}, "an index"},
		{[]string{"CREATE TABLE c (x CHECK (x < datetime('now')))", "INSERT INTO c VALUES ('2000-01-01')"}, "a CHECK constraint"},
		{[]string{"CREATE TABLE g (x, y AS (unixepoch()))", "INSERT INTO g (x) VALUES (1)"}, "a generated column"},
		{[]string{"CREATE INDEX i ON t (date(a, '+1 month'))", "INSERT INTO t VALUES ('2025-03-01')"}, ""},
		{[]string{"CREATE TABLE c (x CHECK (x < datetime('2030-01-01')))", "INSERT INTO c VALUES ('2000-01-01')"}, ""},
		{[]string{"CREATE TABLE g (x, y AS (strftime('%Y', x)) STORED)", "INSERT INTO g (x) VALUES ('2025-01-01')"}, ""},
	} {
		out := m.batch(timed{req(true, tc.sqls...), pinnedMS, 2})[0]
		switch {
		case tc.where == "" && out.Err != nil:
			t.Errorf("%q: %v", tc.sqls, out.Err)
		case tc.where != "" && (out.Err == nil || !strings.Contains(out.Err.Error(), "non-deterministic use") || !strings.Contains(out.Err.Error(), tc.where)):
			t.Errorf("%q: error %v; want a non-deterministic use in %s", tc.sqls, out.Err, tc.where)
		}
	}
	if rows := mustQuery(t, d, "SELECT a, date(a, '+1 month') FROM t INDEXED BY i ORDER BY 2"); len(rows) != 2 || rows[0][1].Text != "2025-03-03" {
		t.Errorf("expression index: %v", rows)
	}
}
