package db

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/walship/walship/wal"
)

// classifySchema is the small schema FuzzClassify runs SQL against: a rowid
// table with a trigger, a WITHOUT ROWID table, a view with an INSTEAD OF
// trigger, a generated column, an index, a foreign key and a few rows, so
// that fuzzed SQL can name objects that exist and reach writes through
// triggers and views.
var classifySchema = []string{
	"CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, n REAL, g INTEGER GENERATED ALWAYS AS (id * 2))",
	"CREATE TABLE u (a INTEGER REFERENCES t (id), b TEXT)",
	"CREATE INDEX u_b ON u (b)",
	"CREATE TABLE k (key TEXT PRIMARY KEY, val BLOB) WITHOUT ROWID",
	"CREATE VIEW tv AS SELECT id, v FROM t",
	"CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN INSERT INTO u (a, b) VALUES (new.id, new.v); END",
	"CREATE TRIGGER tv_del INSTEAD OF DELETE ON tv BEGIN DELETE FROM t WHERE id = old.id; END",
	"INSERT INTO t (v, n) VALUES ('a', 1.5), ('b', -2), ('c', NULL)",
	"INSERT INTO k VALUES ('x', x'00ff'), ('y', NULL)",
}

// classifySeeds are SQL texts FuzzClassify starts from: reads, writes,
// writes hidden behind reads, in CTEs, through views and triggers, and
// everything walship refuses. More live in testdata/fuzz/FuzzClassify.
var classifySeeds = []string{
	"SELECT * FROM t",
	"SELECT 1; DELETE FROM t",
	"WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)",
	"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
	"INSERT INTO t (v) VALUES ('z') RETURNING id, g",
	"UPDATE t SET n = n + 1 WHERE id = 1",
	"DELETE FROM tv WHERE id = 2",
	"REPLACE INTO k VALUES ('x', randomblob(4))",
	"INSERT INTO u SELECT id, v FROM t",
	"CREATE TABLE t2 AS SELECT * FROM t",
	"ALTER TABLE t ADD COLUMN w",
	"DROP VIEW tv",
	"CREATE INDEX t_n ON t (n)",
	"REINDEX",
	"ANALYZE",
	"VACUUM",
	"VACUUM INTO 'copy.db'",
	"ATTACH ':memory:' AS m",
	"DETACH m",
	"SELECT load_extension('nothing')",
	"PRAGMA writable_schema = 1",
	"PRAGMA foreign_keys = OFF",
	"PRAGMA table_info(t)",
	"PRAGMA journal_mode",
	"PRAGMA user_version = 3",
	"BEGIN; INSERT INTO t (v) VALUES ('q'); COMMIT",
	"SAVEPOINT s",
	"INSERT INTO _walship_reset VALUES (1)",
	"UPDATE _walship SET applied_index = 0",
	"SELECT applied_index FROM _walship",
	"CREATE TEMP TABLE tt (x)",
	"CREATE TABLE temp.tt (x)",
	"INSERT INTO t (v) VALUES (total_changes())",
	"SELECT * FROM sqlite_dbpage",
	"EXPLAIN DELETE FROM t",
	"EXPLAIN QUERY PLAN SELECT * FROM t WHERE v = 'a'",
	"SELECT changes(), last_insert_rowid(), random(), datetime('now')",
	"INSERT OR ROLLBACK INTO t (id) VALUES (1)",
	"SELECT RAISE(ROLLBACK, 'x')",
	"CREATE TRIGGER x AFTER DELETE ON k BEGIN DELETE FROM t; END",
	"/* comment */ SELECT 'a;b' -- tail",
	"",
}

// fuzzDB opens a DB with classifySchema, whose statements cannot make one
// input take the fuzzer's memory: strings and blobs are limited to 1 MiB.
func fuzzDB(tb testing.TB) *DB {
	tb.Helper()
	d, err := Open(filepath.Join(tb.TempDir(), "db.sqlite"), Options{Readers: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	limit := func(c *conn) { sqlite3.Xsqlite3_limit(c.tls, c.db, sqlite3.SQLITE_LIMIT_LENGTH, 1<<20) }
	limit(d.w)
	for i := 0; i < d.nread; i++ {
		c := <-d.readers
		limit(c)
		d.readers <- c
	}
	entry := &wal.Entry{Index: 1, Epoch: 1, Time: pinnedMS, Seed: 1, Txn: true, Statements: stmts(classifySchema...)}
	if err := d.Apply(testLogID, []*wal.Entry{entry}); err != nil {
		tb.Fatal(err)
	}
	return d
}

// FuzzClassify compiles and runs arbitrary SQL against a database with a
// small schema, and cross-checks db.Classify, the authorizer and
// sqlite3_stmt_readonly:
//
//   - nothing panics;
//   - Query never changes the content checksum (db.Checksum), whatever the
//     text holds, and refuses every statement Classify calls a write;
//   - a statement Classify calls a read (not a write, compiled without
//     error) leaves the checksum unchanged when run as a replicated write
//     through the writer (Tx.Run), and is not logged; one Classify would
//     refuse is refused there with ErrRefused.
//
// A statement Classify calls a write is never run through the writer: the
// fuzzer would spend its time on the data it writes.
func FuzzClassify(f *testing.F) {
	for _, s := range classifySeeds {
		f.Add(s)
	}
	// One database for every input of this process: none of them may
	// change it, and opening one per input would make the fuzzer measure
	// SQLite's schema creation.
	d := fuzzDB(f)
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 4096 {
			t.Skip("long inputs only make the fuzzer slow")
		}
		checkClassify(t, d, sql)
	})
}

// checkClassify runs the checks of FuzzClassify on one SQL text.
func checkClassify(t *testing.T, d *DB, sql string) {
	ctx := context.Background()
	before := mustChecksum(t, d)
	applied := d.AppliedIndex()

	// The whole text, as a client's query: never a change.
	texts, splitErr := Split(sql)
	stmtsOf := func(texts []string) []wal.Statement {
		out := make([]wal.Statement, len(texts))
		for i, s := range texts {
			out[i] = wal.Statement{SQL: s, Pos: uint32(i)}
		}
		return out
	}
	if splitErr == nil && len(texts) > 0 {
		qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, _ = d.Query(qctx, stmtsOf(texts))
		cancel()
		if after := mustChecksum(t, d); after.Sum != before.Sum {
			t.Fatalf("Query(%q) changed the content", sql)
		}
	}

	for _, text := range texts {
		cl, cerr := d.Classify(ctx, text)
		if cl.Write {
			// A write must never run as a query.
			qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, qerr := d.Query(qctx, stmtsOf([]string{text}))
			cancel()
			// The one exception: a read-only PRAGMA that SQLite does not
			// call read-only (journal_mode). Query allows it; Classify
			// calls it a write that walship refuses. The checksum
			// check above covers what it did.
			if qerr == nil && !strings.HasPrefix(cl.Refused, "PRAGMA ") {
				t.Fatalf("Classify(%q) says it writes, but Query ran it without an error", text)
			}
			continue
		}
		if cerr != nil {
			continue // does not compile: nothing to run
		}
		out, interrupted := runInWriter(t, d, text)
		if interrupted {
			continue // ran too long; its outcome says nothing
		}
		res := out.Results
		if cl.Refused != "" {
			if len(res) != 1 || !errors.Is(res[0].Err, ErrRefused) {
				t.Fatalf("Classify(%q) refuses it (%s), but Tx.Run answered %+v", text, cl.Refused, out)
			}
		}
		if len(out.Logged) != 0 {
			t.Fatalf("Classify(%q) says it does not write, but Tx.Run logged it", text)
		}
		if len(res) == 1 && res[0].Err == nil && res[0].Changed {
			t.Fatalf("Classify(%q) says it does not write, but its result is marked changed", text)
		}
		if after := mustChecksum(t, d); after.Sum != before.Sum {
			t.Fatalf("Classify(%q) says it does not write, but running it through the writer changed the content", text)
		}
		if d.AppliedIndex() != applied || d.LogID() != testLogID {
			t.Fatalf("running %q moved the position to %s %d", text, d.LogID(), d.AppliedIndex())
		}
	}
}

// runInWriter runs one statement as a replicated write in its own Tx and
// commits whatever it did, so that a change shows in the checksum. A
// statement still running after 200ms is interrupted and reported so.
func runInWriter(t *testing.T, d *DB, sql string) (Outcome, bool) {
	tx, err := d.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var fired sync.WaitGroup
	fired.Add(1)
	var interrupted bool
	timer := time.AfterFunc(200*time.Millisecond, func() {
		defer fired.Done()
		interrupted = true
		d.w.interrupt()
	})
	out := tx.Run(Request{Statements: []wal.Statement{{SQL: sql}}}, pinnedMS, 7)
	if timer.Stop() {
		fired.Done()
	}
	fired.Wait()
	if interrupted || out.TxnLost {
		_ = tx.Rollback()
		return out, true
	}
	if err := tx.Commit(testLogID, d.AppliedIndex()); err != nil {
		t.Fatalf("commit after %q: %v", sql, err)
	}
	return out, false
}

func mustChecksum(tb testing.TB, d *DB) Checksum {
	tb.Helper()
	sum, err := d.Checksum(context.Background())
	if err != nil {
		tb.Fatalf("checksum: %v", err)
	}
	return sum
}

// TestClassifySeeds runs FuzzClassify's checks on its seeds and on the
// statements walship refuses, as a plain test.
func TestClassifySeeds(t *testing.T) {
	all := append([]string{}, classifySeeds...)
	for _, tc := range refusedInWrites(t.TempDir()) {
		all = append(all, tc.sql)
	}
	d := fuzzDB(t)
	for _, sql := range all {
		checkClassify(t, d, sql)
	}
}

// TestClassifyCatchesMisclassification checks that checkClassify can fail:
// a write that Classify were to call a read changes the checksum when run
// through the writer.
func TestClassifyCatchesMisclassification(t *testing.T) {
	d := fuzzDB(t)
	before := mustChecksum(t, d)
	out, interrupted := runInWriter(t, d, "DELETE FROM k WHERE key = 'x'")
	if interrupted || len(out.Logged) != 1 {
		t.Fatalf("DELETE through the writer: %+v", out)
	}
	if after := mustChecksum(t, d); after.Sum == before.Sum {
		t.Fatal("a DELETE left the checksum unchanged: the fuzz check would miss a misclassified write")
	}
	if !strings.Contains(strings.Join(classifySeeds, "\n"), "SELECT 1; DELETE FROM t") {
		t.Fatal("the seeds lost the write hidden behind a read")
	}
}

// TestCachedStatementAuthorizedAgain: a write compiled and cached before a
// trigger existed is compiled again by SQLite when it next runs; the
// authorizer's answer for that compilation counts. A trigger that makes the
// write read node-local values (walship's own table, the file's data
// version, a row's file offset) gets it refused, exactly as a fresh
// compilation is, on the master and on a replica.
func TestCachedStatementAuthorizedAgain(t *testing.T) {
	for _, body := range []string{
		"INSERT INTO u SELECT applied_index FROM _walship",
		"INSERT INTO u SELECT data_version FROM pragma_data_version",
		"INSERT INTO u SELECT sqlite_offset(a) FROM t",
		"INSERT INTO u VALUES (total_changes())",
	} {
		t.Run(body, func(t *testing.T) {
			d := mustOpenDB(t)
			m := newMaster(t, d)
			m.exec(pinnedMS, 1, "CREATE TABLE t (a)", "CREATE TABLE u (a)")
			for i := range 2 { // cached on the first run, reused on the second
				m.exec(pinnedMS, uint64(i), "INSERT INTO t VALUES (1)")
			}
			m.exec(pinnedMS, 3, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN "+body+"; END")
			before := dump(t, d)
			for _, txn := range []bool{false, true} {
				out := m.batch(timed{req(txn, "INSERT INTO t VALUES (1)"), pinnedMS, 4})[0]
				if err := out.Results[0].Err; !errors.Is(err, ErrRefused) {
					t.Fatalf("txn %v: the cached INSERT fired a trigger that does %q: %v; want ErrRefused", txn, body, err)
				}
				if len(out.Logged) != 0 {
					t.Fatalf("txn %v: logged %v", txn, out.Logged)
				}
			}
			if after := dump(t, d); after != before {
				t.Fatalf("the refused statement left changes: %s", diffLines(before, after))
			}
			m.mustMatchReplica()
		})
	}
}

// TestReaderAfterCanceledQuery: a query stopped by its context leaves its
// read connection marked canceled; whatever takes that connection next (a
// checksum, a classification, another query) must not be stopped by it.
// FuzzClassify found it: a checksum after a timed-out query failed with
// "interrupted".
func TestReaderAfterCanceledQuery(t *testing.T) {
	d := fuzzDB(t) // one reader: every call below takes the same connection
	// Enough rows that the checksum runs past the progress handler's
	// 1000 steps, where a stale cancellation stops it.
	fill := &wal.Entry{Index: d.AppliedIndex() + 1, Epoch: 1, Statements: stmts(
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 5000) INSERT INTO k SELECT 'row' || x, NULL FROM c")}
	if err := d.Apply(testLogID, []*wal.Entry{fill}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := d.Query(ctx, stmts("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"))
		cancel()
		if err == nil {
			t.Fatal("an endless query ended without an error")
		}
		if _, err := d.Checksum(context.Background()); err != nil {
			t.Fatalf("checksum after a canceled query: %v", err)
		}
		if _, err := d.Classify(context.Background(), "SELECT * FROM t"); err != nil {
			t.Fatalf("classify after a canceled query: %v", err)
		}
	}
}
