package db

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/walship/walship/wal"
)

// setZone sets TZ and time.Local for the rest of the test, and restores
// time.Local after it. Date functions with 'localtime' must not see either.
func setZone(t *testing.T, name string, offset int) {
	t.Helper()
	t.Setenv("TZ", name)
	old := time.Local
	time.Local = time.FixedZone(name, offset)
	t.Cleanup(func() { time.Local = old })
}

// pinnedMS is 2025-11-25 16:55:48.123 UTC, a year before these tests ran
// first: a value that shows the wall clock is the pinned time, not now.
const pinnedMS = 1764089748123

var replaySchema = []string{
	`CREATE TABLE users (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL,
		created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
		today DATE DEFAULT CURRENT_DATE,
		clock TEXT DEFAULT CURRENT_TIME,
		expires TEXT DEFAULT (datetime('now', '+1 day')),
		token BLOB DEFAULT (randomblob(16)),
		lucky INTEGER DEFAULT (random()),
		due TEXT GENERATED ALWAYS AS (date(created_at, '+30 days')) STORED,
		created_year TEXT GENERATED ALWAYS AS (strftime('%Y', created_at)) VIRTUAL
	)`,
	`CREATE INDEX users_created_month ON users (strftime('%Y-%m', created_at))`,
	`CREATE INDEX users_due ON users (julianday(due))`,
	`CREATE TABLE audit (id INTEGER PRIMARY KEY, user_id INTEGER, at TEXT, r INTEGER, local TEXT)`,
	`CREATE TRIGGER users_ai AFTER INSERT ON users BEGIN
		INSERT INTO audit (user_id, at, r, local) VALUES (new.id, datetime('now'), random(), datetime('now', 'localtime'));
	END`,
	`CREATE TABLE samples (id INTEGER PRIMARY KEY, r INTEGER, rb BLOB, f TEXT, lt TEXT, jd REAL, ue INTEGER,
		tomorrow TEXT, ts TEXT, utc TEXT, ue_sub REAL, td TEXT, cd TEXT, ct TEXT, d0 TEXT)`,
}

const sampleInsert = `INSERT INTO samples (r, rb, f, lt, jd, ue, tomorrow, ts, utc, ue_sub, td, cd, ct, d0) VALUES (
	random(), randomblob(16), strftime('%f', 'now'), datetime('now', 'localtime'), julianday('now'), unixepoch(),
	date('now', '+1 day'), strftime('%Y-%m-%d %H:%M:%f', 'NOW'), datetime('now', 'utc'), unixepoch('now', 'subsec'),
	timediff('now', '2025-01-01 00:00:00'), CURRENT_DATE, CURRENT_TIME, datetime())`

// TestDeterministicReplay plays the master on A and applies its log to B
// and C under other time zones: every value (random, dates, defaults,
// triggers, generated columns) must be identical.
func TestDeterministicReplay(t *testing.T) {
	setZone(t, "America/New_York", -5*3600)
	a := mustOpenDB(t)
	m := newMaster(t, a)
	m.exec(pinnedMS-60_000, 1, replaySchema...)

	outs := m.batch(
		timed{req(false, "INSERT INTO users (name) VALUES ('alice'), ('bob')", sampleInsert), pinnedMS, 0xdecafbad},
		// The second statement fails: it is left out of the entry, and
		// the random values of the statements after it must not shift.
		timed{req(false,
			"INSERT INTO users (name) VALUES ('carol')",
			"INSERT INTO users (id, name) VALUES (1, 'duplicate')",
			"INSERT INTO samples (r, rb, f) VALUES (random(), randomblob(8), strftime('%f', 'now'))",
			"UPDATE users SET name = name || '!', lucky = random() WHERE id = 2",
		), pinnedMS + 1500, 0xfeedface},
		// last_insert_rowid() and changes() start from 0 in every entry.
		timed{req(true, "INSERT INTO samples (r, ue) VALUES (last_insert_rowid(), changes())", sampleInsert), pinnedMS + 86_400_000, 7},
	)
	if n := len(outs[1].Logged); n != 3 || outs[1].Logged[0].Pos != 0 || outs[1].Logged[1].Pos != 2 || outs[1].Logged[2].Pos != 3 {
		t.Fatalf("logged statements of the request with a failure: %+v; want positions 0, 2, 3", outs[1].Logged)
	}
	if outs[1].Results[1].Err == nil {
		t.Fatalf("duplicate primary key did not fail: %+v", outs[1].Results[1])
	}

	// A stored the pinned time, in UTC, whatever its time zone.
	want := map[string]string{
		"created_at": "text:\"2025-11-25 16:55:48\"",
		"today":      "text:\"2025-11-25\"",
		"clock":      "text:\"16:55:48\"",
		"expires":    "text:\"2025-11-26 16:55:48\"",
		"due":        "text:\"2025-12-25\"",
	}
	for col, w := range want {
		rows := mustQuery(t, a, "SELECT "+col+" FROM users WHERE name = 'alice'")
		if got := show(rows[0][0]); got != w {
			t.Errorf("users.%s = %s, want %s", col, got, w)
		}
	}
	rows := mustQuery(t, a, "SELECT f, lt, jd, ue, tomorrow, ts, utc, ue_sub, td, cd, ct, d0, typeof(r), length(rb) FROM samples WHERE id = 1")
	if got, want := showRow(rows[0]), `text:"48.123" | text:"2025-11-25 16:55:48" | real:2.4610052054180903e+06 | int:1764089748 | `+
		`text:"2025-11-26" | text:"2025-11-25 16:55:48.123" | text:"2025-11-25 16:55:48" | real:1.764089748123e+09 | `+
		`text:"+0000-10-24 16:55:48.123" | text:"2025-11-25" | text:"16:55:48" | text:"2025-11-25 16:55:48" | text:"integer" | int:16`; got != want {
		t.Errorf("samples row 1:\n got %s\nwant %s", got, want)
	}
	rows = mustQuery(t, a, "SELECT local, at FROM audit WHERE user_id = 1")
	if got, want := showRow(rows[0]), `text:"2025-11-25 16:55:48" | text:"2025-11-25 16:55:48"`; got != want {
		t.Errorf("trigger's datetime('now', 'localtime'), datetime('now') = %s, want %s", got, want)
	}
	rows = mustQuery(t, a, "SELECT r, ue FROM samples WHERE id = 3")
	if got, want := showRow(rows[0]), "int:0 | int:0"; got != want {
		t.Errorf("last_insert_rowid(), changes() in the first statement of an entry = %s, want %s", got, want)
	}
	// Reads use the real clock.
	before := time.Now().Unix()
	rows = mustQuery(t, a, "SELECT unixepoch()")
	if got := rows[0][0].Int; got < before-1 || got > time.Now().Unix()+1 {
		t.Errorf("unixepoch() in a read = %d, want about %d", got, before)
	}

	wantDump := dump(t, a)
	for _, zone := range []struct {
		name   string
		offset int
	}{{"Asia/Kolkata", 5*3600 + 1800}, {"Pacific/Kiritimati", 14 * 3600}} {
		t.Run(zone.name, func(t *testing.T) {
			setZone(t, zone.name, zone.offset)
			b := mustOpenDB(t)
			// Apply in two calls: the first entry, then the others
			// together in one SQLite transaction.
			if err := b.Apply(testLogID, m.entries[:1]); err != nil {
				t.Fatal(err)
			}
			if err := b.Apply(testLogID, m.entries[1:]); err != nil {
				t.Fatal(err)
			}
			if got := dump(t, b); got != wantDump {
				t.Fatalf("replica differs from the master: %s\nmaster:\n%s\nreplica:\n%s", diffLines(wantDump, got), wantDump, got)
			}
		})
	}
}

// TestReplayAfterFailedStatement checks that a statement that failed on the
// master, and is therefore not in the entry, leaves nothing that the next
// statements of the request can see: not its rows, its last_insert_rowid()
// or its changes().
func TestReplayAfterFailedStatement(t *testing.T) {
	a := mustOpenDB(t)
	m := newMaster(t, a)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)",
		"CREATE TABLE seen (stmt INTEGER, last_id INTEGER, n INTEGER)")
	for _, tc := range []struct {
		name, failing string
	}{
		{"OR FAIL", "INSERT OR FAIL INTO t (id, v) VALUES (100, 'x'), (101, 'y'), (102, 'a')"},
		{"ABORT", "INSERT INTO t (id, v) VALUES (200, 'x'), (201, 'y'), (202, 'a')"},
		{"UPDATE OR FAIL", "UPDATE OR FAIL t SET v = 'a' WHERE id > 0"},
		{"syntax error", "INSERT INTO t VALUES (1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outs := m.batch(timed{req(false,
				"DELETE FROM t",
				"INSERT INTO t (v) VALUES ('a'), ('b'), ('c')",
				tc.failing,
				"INSERT INTO seen VALUES (1, last_insert_rowid(), changes())",
				"INSERT INTO seen VALUES (2, last_insert_rowid(), changes())",
			), pinnedMS, 2})
			if outs[0].Results[2].Err == nil {
				t.Fatalf("%q did not fail", tc.failing)
			}
			rows := mustQuery(t, a, "SELECT stmt, last_id, n FROM seen ORDER BY rowid DESC LIMIT 2")
			// After the INSERT of 3 rows into the emptied t: last id 3,
			// 3 changes; then the first INSERT INTO seen changed 1 row,
			// the last one of seen.
			seenID := mustQuery(t, a, "SELECT max(rowid) - 1 FROM seen")[0][0].Int
			if got, want := showRow(rows[1])+" / "+showRow(rows[0]), fmt.Sprintf("int:1 | int:3 | int:3 / int:2 | int:%d | int:1", seenID); got != want {
				t.Errorf("after a failed statement, the next statements saw %s, want %s", got, want)
			}
			if rows := mustQuery(t, a, "SELECT count(*) FROM t WHERE id >= 100"); rows[0][0].Int != 0 {
				t.Errorf("the failed statement left %d rows", rows[0][0].Int)
			}
		})
	}
	m.mustMatchReplica()
}

// TestEntryStartsClean checks that last_insert_rowid() and changes() in the
// first statement of an entry are 0, on the master (requests in one Tx) and
// on a replica (entries in one Apply).
func TestEntryStartsClean(t *testing.T) {
	a := mustOpenDB(t)
	m := newMaster(t, a)
	m.exec(pinnedMS, 1, "CREATE TABLE t (id INTEGER PRIMARY KEY, v)", "CREATE TABLE seen (last_id, n)")
	outs := m.batch(
		timed{req(false, "INSERT INTO t (v) VALUES (1), (2), (3)"), pinnedMS, 1},
		timed{req(false, "INSERT INTO seen VALUES (last_insert_rowid(), changes())"), pinnedMS, 2},
		timed{req(true, "UPDATE t SET v = v + 1"), pinnedMS, 3},
		timed{req(true, "INSERT INTO seen VALUES (last_insert_rowid(), changes())"), pinnedMS, 4},
	)
	for i, o := range outs {
		if o.Err != nil {
			t.Fatalf("request %d: %v", i, o.Err)
		}
	}
	if got := outs[1].Results[0].LastInsertID; got != 1 {
		t.Errorf("LastInsertID of the INSERT INTO seen = %d, want 1", got)
	}
	b := m.replica()
	for name, d := range map[string]*DB{"master": a, "replica": b} {
		rows := mustQuery(t, d, "SELECT last_id, n FROM seen ORDER BY rowid")
		if len(rows) != 2 || showRow(rows[0]) != "int:0 | int:0" || showRow(rows[1]) != "int:0 | int:0" {
			t.Errorf("%s: last_insert_rowid(), changes() at the start of entries: %v; want 0, 0 twice", name, rows)
		}
	}
}

// TestRandomIsSeeded checks that random() and randomblob() depend on the
// seed and on the statement's position, and on nothing else.
func TestRandomIsSeeded(t *testing.T) {
	d := mustOpenDB(t)
	m := newMaster(t, d)
	m.exec(pinnedMS, 1, "CREATE TABLE r (k TEXT, a INTEGER, b BLOB)")
	ins := func(k string) string { return "INSERT INTO r VALUES ('" + k + "', random(), randomblob(9))" }
	m.batch(
		timed{Request{Statements: []wal.Statement{{SQL: ins("s1p0")}, {SQL: ins("s1p1"), Pos: 1}}}, pinnedMS, 1},
		timed{Request{Statements: []wal.Statement{{SQL: ins("s1p0again")}}}, pinnedMS + 99, 1},
		timed{Request{Statements: []wal.Statement{{SQL: ins("s2p0")}}}, pinnedMS, 2},
	)
	rows := mustQuery(t, d, "SELECT k, a, b FROM r ORDER BY rowid")
	got := map[string]string{}
	for _, r := range rows {
		got[r[0].Text] = show(r[1]) + show(r[2])
	}
	if got["s1p0"] != got["s1p0again"] {
		t.Errorf("same seed and position gave different values: %s, %s", got["s1p0"], got["s1p0again"])
	}
	if got["s1p0"] == got["s1p1"] || got["s1p0"] == got["s2p0"] {
		t.Errorf("different seed or position gave the same values: %v", got)
	}
	if len(rows[0][2].Blob) != 9 {
		t.Errorf("randomblob(9) has %d bytes", len(rows[0][2].Blob))
	}
	// As SQLite's own: fewer than 1 byte means 1.
	rows = mustQuery(t, d, "SELECT length(randomblob(0)), length(randomblob(-5)), length(randomblob(NULL)), length(randomblob(100)), typeof(random())")
	if got := showRow(rows[0]); got != `int:1 | int:1 | int:1 | int:100 | text:"integer"` {
		t.Errorf("randomblob lengths: %s", got)
	}
}

func TestMain(m *testing.M) {
	// The tests that change TZ restore it; start from a known zone.
	os.Setenv("TZ", "UTC")
	os.Exit(m.Run())
}

// TestSchemaAndFeaturesReplicate runs schema changes and the statements
// whose effects go beyond the rows they name (cascades, REPLACE, UPSERT,
// AUTOINCREMENT, full-text indexes, ANALYZE) on a master and a replica.
func TestSchemaAndFeaturesReplicate(t *testing.T) {
	a := mustOpenDB(t)
	m := newMaster(t, a)
	m.exec(pinnedMS, 1,
		"CREATE TABLE parent (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, r INTEGER DEFAULT (random()))",
		"CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE, at TEXT DEFAULT CURRENT_TIMESTAMP)",
		"CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID",
		"CREATE VIRTUAL TABLE docs USING fts5 (body)",
		"CREATE VIEW named AS SELECT name FROM parent",
	)
	m.batch(
		timed{req(false,
			"INSERT INTO parent (name) VALUES ('a'), ('b'), ('c')",
			"INSERT INTO child (parent_id) SELECT id FROM parent",
			"INSERT OR REPLACE INTO parent (id, name) VALUES (2, 'b2')",
			"INSERT INTO parent (name) VALUES ('a') ON CONFLICT (name) DO UPDATE SET r = random()",
			"DELETE FROM parent WHERE name = 'c'",
			"INSERT INTO kv VALUES ('x', randomblob(4)), ('y', NULL)",
			"INSERT INTO docs (body) VALUES ('the quick brown fox'), ('jumps over the lazy dog')",
			"INSERT INTO child (parent_id) VALUES (99)", // foreign key fails: left out
		), pinnedMS + 10, 2},
		timed{req(true,
			"ALTER TABLE parent ADD COLUMN note TEXT DEFAULT 'none'",
			"ALTER TABLE child RENAME COLUMN at TO created",
			"ALTER TABLE kv RENAME TO kv2",
			"CREATE INDEX child_parent ON child (parent_id)",
			"ANALYZE",
			"REINDEX",
			"INSERT INTO docs (docs) VALUES ('optimize')",
			"DROP VIEW named",
			"CREATE VIEW named AS SELECT name, note FROM parent",
			"ALTER TABLE child DROP COLUMN created",
		), pinnedMS + 20, 3},
	)
	// The cascades deleted the children of b (replaced) and c (deleted).
	if rows := mustQuery(t, a, "SELECT group_concat(parent_id) FROM child"); showRow(rows[0]) != `text:"1"` {
		t.Fatalf("children of %s, want only of 1", showRow(rows[0]))
	}
	m.mustMatchReplica()
}
