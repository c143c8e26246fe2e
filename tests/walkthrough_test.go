package tests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The seed's table: every column whose value a node would compute on its
// own (clock, PRNG, local time zone) unless replay pins it.
const usersSchema = `CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL UNIQUE, email TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, r INTEGER DEFAULT (random()), b BLOB DEFAULT (randomblob(8)), f TEXT DEFAULT (strftime('%f','now')), lt TEXT DEFAULT (datetime('now','localtime')), d TEXT GENERATED ALWAYS AS (date(created_at, '+1 day')) VIRTUAL)`

const (
	usersDayIndex = `CREATE INDEX users_day ON users(date(created_at))`
	auditSchema   = `CREATE TABLE audit (user_id INTEGER NOT NULL, at TEXT NOT NULL, r INTEGER NOT NULL)`
	auditTrigger  = `CREATE TRIGGER users_audit AFTER INSERT ON users BEGIN INSERT INTO audit (user_id, at, r) VALUES (NEW.id, datetime('now'), random()); END`
	insertUser    = `INSERT INTO users (username, email) VALUES (?, ?)`
)

var timestampRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)

// TestWalkthrough is the seed's walkthrough: a master and two slaves in
// three time zones, writes at every node, one slave paused while writes
// go on; at the end every node holds the same bytes, defaults, trigger
// and generated column included.
func TestWalkthrough(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(WithTZ("America/New_York"))
	s1 := c.MustRunSlave(1, m, WithTZ("Asia/Tokyo"))
	s2 := c.MustRunSlave(2, m, WithTZ("UTC"))
	nodes := []*Node{m, s1, s2}

	for _, sql := range []string{usersSchema, usersDayIndex, auditSchema, auditTrigger} {
		m.MustExec(sql)
	}

	users := 0
	insert := func(n *Node) {
		t.Helper()
		users++
		name := fmt.Sprintf("user%02d-%s", users, n.Name())
		r := n.MustExec(insertUser, name, name+"@example.com")
		if r.RowsAffected == nil || *r.RowsAffected != 1 || r.LastInsertID == nil || *r.LastInsertID < 1 || r.Index == 0 {
			t.Fatalf("%s: insert %s: want rows_affected 1, a last_insert_id and an index, got %s", n, name, r.Body)
		}
		if n.Role != RoleSlave {
			return
		}
		if r.Pending {
			t.Logf("%s: insert %s answered pending (not applied in time): %s", n, name, r.Body)
			return
		}
		// Read your writes: the slave answered after it applied the write.
		q := n.MustQuery(`SELECT username FROM users WHERE id = ?`, *r.LastInsertID)
		if len(q.Values) != 1 || q.Values[0][0] != name {
			t.Errorf("%s: read-your-writes: inserted %s as id %d at index %d, then SELECT gave %s", n, name, *r.LastInsertID, r.Index, q.Body)
		}
		if q.Index < r.Index {
			t.Errorf("%s: query after a write at index %d answered index %d", n, r.Index, q.Index)
		}
	}

	for range 4 {
		insert(m)
		insert(s1)
		insert(s2)
	}

	// Pause slave 2 while writes go on at the master and at slave 1.
	s2.Stop()
	paused := time.Now()
	for range 5 {
		insert(m)
		insert(s1)
	}
	time.Sleep(time.Until(paused.Add(2 * time.Second))) // ok: the pause under test
	s2.Cont()
	for range 3 {
		insert(s2)
		insert(m)
	}

	last := c.WaitConverged(m)
	t.Logf("%d users written, master's last index %d", users, last)

	for _, q := range []string{`SELECT * FROM users ORDER BY id`, `SELECT * FROM audit ORDER BY rowid`} {
		want := m.Dump(q)
		for _, n := range nodes[1:] {
			if got := n.Dump(q); got != want {
				t.Errorf("%s differs from the master for %s:\nmaster: %s\n%s: %s", n, q, want, n.Name(), got)
			}
		}
	}

	checkUsers(t, m, users)
	for _, n := range nodes {
		// The expression index holds the same dates as the table.
		indexed := n.Count(`SELECT count(*) FROM users INDEXED BY users_day WHERE date(created_at) > '2000-01-01'`)
		if indexed != int64(users) {
			t.Errorf("%s: users_day finds %d rows, want %d", n, indexed, users)
		}
	}
}

// checkUsers checks that the replicated values are real: timestamps near
// now in UTC, distinct random values, local time as UTC, the trigger's
// time equal to the row's.
func checkUsers(t *testing.T, m *Node, want int) {
	t.Helper()
	u := m.MustQuery(`SELECT * FROM users ORDER BY id`)
	if len(u.Values) != want {
		t.Fatalf("users: want %d rows, got %d: %s", want, len(u.Values), u.Body)
	}
	col := func(name string) int {
		i := u.Col(name)
		if i < 0 {
			t.Fatalf("users: no column %s in %v", name, u.Columns)
		}
		return i
	}
	id, createdAt, r, b, f, lt, d := col("id"), col("created_at"), col("r"), col("b"), col("f"), col("lt"), col("d")
	seenR := map[string]bool{}
	seenB := map[string]bool{}
	createdByID := map[string]string{}
	now := time.Now().UTC()
	for _, row := range u.Values {
		ca, _ := row[createdAt].(string)
		ts, err := time.Parse(time.DateTime, ca)
		if !timestampRE.MatchString(ca) || err != nil {
			t.Errorf("created_at %v is not a timestamp: %v", row[createdAt], row)
			continue
		}
		if dt := ts.Sub(now); dt < -10*time.Minute || dt > 10*time.Minute {
			t.Errorf("created_at %s is %v away from now (%s UTC): not the UTC clock", ca, dt, now.Format(time.DateTime))
		}
		// DESIGN: 'localtime' behaves as UTC on every node.
		if row[lt] != ca {
			t.Errorf("lt = %v, want it equal to created_at %s (localtime is UTC)", row[lt], ca)
		}
		if want := ts.AddDate(0, 0, 1).Format(time.DateOnly); row[d] != want {
			t.Errorf("d = %v, want %s", row[d], want)
		}
		if fs, _ := row[f].(string); len(fs) != 6 || fs[:2] != ca[17:19] {
			t.Errorf("f = %v, want the seconds of %s with milliseconds", row[f], ca)
		}
		rv := fmt.Sprint(row[r])
		if _, ok := row[r].(json.Number); !ok || seenR[rv] {
			t.Errorf("r = %v: want an integer different in every row", row[r])
		}
		seenR[rv] = true
		bs, _ := row[b].(string)
		raw, err := base64.StdEncoding.DecodeString(bs)
		if err != nil || len(raw) != 8 || seenB[bs] {
			t.Errorf("b = %v: want 8 random bytes in base64, different in every row", row[b])
		}
		seenB[bs] = true
		createdByID[fmt.Sprint(row[id])] = ca
	}

	a := m.MustQuery(`SELECT user_id, at, r FROM audit ORDER BY rowid`)
	if len(a.Values) != want {
		t.Fatalf("audit: want %d rows, got %d: %s", want, len(a.Values), a.Body)
	}
	for _, row := range a.Values {
		ca, ok := createdByID[fmt.Sprint(row[0])]
		if !ok {
			t.Errorf("audit row %v names no user", row)
			continue
		}
		// The trigger ran in the same entry, at the same pinned time.
		if row[1] != ca {
			t.Errorf("audit row %v: at = %v, want the user's created_at %s", row, row[1], ca)
		}
		if _, ok := row[2].(json.Number); !ok {
			t.Errorf("audit row %v: r is not an integer", row)
		}
	}
}

// TestSchemaOnSlave sends schema statements to slaves: each answers 403
// naming the master's URL, and nothing changes anywhere.
func TestSchemaOnSlave(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)
	nodes := []*Node{m, s1, s2}

	m.MustExec(auditSchema)
	m.MustExec(`INSERT INTO audit (user_id, at, r) VALUES (1, 'then', 2)`)
	last := c.WaitConverged(m)
	before := map[*Node]string{}
	for _, n := range nodes {
		before[n] = tables(n)
	}
	contentBefore := m.Dump(`SELECT * FROM audit ORDER BY rowid`)

	for _, s := range []*Node{s1, s2} {
		for _, sql := range []string{
			usersSchema, // the users table does not exist: forwarding it would create it
			`CREATE INDEX audit_at ON audit(at)`,
			`ALTER TABLE audit ADD COLUMN x TEXT`,
			`DROP TABLE audit`,
			`CREATE VIEW v AS SELECT 1`,
			`CREATE TRIGGER audit_r AFTER INSERT ON audit BEGIN UPDATE audit SET r = 0 WHERE rowid = NEW.rowid; END;`,
		} {
			_, err := s.Exec(sql)
			se, ok := err.(*StatusError)
			if !ok || se.Status != http.StatusForbidden {
				t.Errorf("%s: exec %.50q: want 403, got %v", s, sql, err)
				continue
			}
			if !strings.Contains(se.Msg, trimURL(m.URL())) {
				t.Errorf("%s: exec %.50q: 403 without the master's URL %s in its error: %s", s, sql, m.URL(), se.Body)
			}
		}
	}

	if got := m.MustLogStatus().LastIndex; got != last {
		t.Errorf("master's last_index went from %d to %d", last, got)
	}
	for _, n := range nodes {
		if got := tables(n); got != before[n] {
			t.Errorf("%s: sqlite_master changed:\nbefore: %s\nafter:  %s", n, before[n], got)
		}
		if got := n.Dump(`SELECT * FROM audit ORDER BY rowid`); got != contentBefore {
			t.Errorf("%s: audit changed:\nbefore: %s\nafter:  %s", n, contentBefore, got)
		}
	}
}
