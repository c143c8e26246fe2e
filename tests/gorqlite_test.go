package tests

// End to end with rqlite's Go client, github.com/rqlite/gorqlite, and its
// database/sql driver as real clients of a real cluster (a master and two
// slaves): cluster discovery through /status and /nodes, writes, queries,
// unified requests and queued writes through the master and through a
// slave, and the value typing those clients depend on.

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rqlite/gorqlite"
	_ "github.com/rqlite/gorqlite/stdlib" // registers the "rqlite" driver
)

// gorqliteCluster runs a master and two slaves, and waits until the
// master's /nodes lists all three (a slave is listed once it pulled the
// log).
func gorqliteCluster(t *testing.T) (m, s1, s2 *Node) {
	t.Helper()
	c := NewCluster(t)
	m = c.MustRunMaster()
	s1 = c.MustRunSlave(1, m)
	s2 = c.MustRunSlave(2, m)
	conn := gorqliteOpen(t, m.URL())
	deadline := time.Now().Add(waitTimeout)
	for {
		peers, err := conn.Peers()
		if err == nil && len(peers) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gorqlite Peers() through %s: %v, %v; want 3 peers", m, peers, err)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
	return m, s1, s2
}

// gorqliteOpen opens a gorqlite connection and closes it at the end of the
// test.
func gorqliteOpen(t *testing.T, url string) *gorqlite.Connection {
	t.Helper()
	conn, err := gorqlite.Open(url)
	if err != nil {
		t.Fatalf("gorqlite.Open(%s): %v", url, err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// onlyNode is the gorqlite URL that sends every request to n itself.
func onlyNode(n *Node, opts ...string) string {
	return n.URL() + "/?" + strings.Join(append([]string{"disableClusterDiscovery=true"}, opts...), "&")
}

// gorqliteCount returns the single integer a query answers.
func gorqliteCount(t *testing.T, conn *gorqlite.Connection, query string, args ...any) int64 {
	t.Helper()
	qr, err := conn.QueryOneParameterized(gorqlite.ParameterizedStatement{Query: query, Arguments: args})
	if err != nil {
		t.Fatalf("query %q: %v", query, err)
	}
	var n int64
	if !qr.Next() {
		t.Fatalf("query %q: no row", query)
	}
	if err := qr.Scan(&n); err != nil {
		t.Fatalf("query %q: scan: %v", query, err)
	}
	return n
}

func TestGorqlite(t *testing.T) {
	m, s1, s2 := gorqliteCluster(t)

	t.Run("discovery", func(t *testing.T) {
		want := []string{m.Addr, s1.Addr, s2.Addr}
		slices.Sort(want)
		for _, n := range []*Node{m, s1, s2} {
			conn := gorqliteOpen(t, n.URL())
			leader, err := conn.Leader()
			if err != nil || leader != m.Addr {
				t.Errorf("through %s: Leader() = %q, %v; want the master %s", n, leader, err, m.Addr)
			}
			peers, err := conn.Peers()
			if err != nil || len(peers) == 0 || peers[0] != m.Addr {
				t.Errorf("through %s: Peers() = %v, %v; want the master %s first", n, peers, err, m.Addr)
				continue
			}
			slices.Sort(peers)
			if !slices.Equal(peers, want) {
				t.Errorf("through %s: Peers() = %v, want %v", n, peers, want)
			}
		}
		// Without discovery the URL's node is the only peer.
		conn := gorqliteOpen(t, onlyNode(s1))
		if leader, err := conn.Leader(); err != nil || leader != s1.Addr {
			t.Errorf("disableClusterDiscovery on %s: Leader() = %q, %v", s1, leader, err)
		}
		if peers, err := conn.Peers(); err != nil || !slices.Equal(peers, []string{s1.Addr}) {
			t.Errorf("disableClusterDiscovery on %s: Peers() = %v, %v", s1, peers, err)
		}
	})

	// Writes, queries and unified requests, through the master and through
	// a slave (every request to the slave itself).
	for _, tc := range []struct {
		name string
		url  string
		node *Node // the node that takes the requests
	}{
		{"master", m.URL(), m},
		// Opened at a slave, discovery sends every request to the master.
		{"via-discovery-from-slave", s2.URL(), m},
		{"slave", onlyNode(s1), s1},
	} {
		t.Run("write-query-request/"+tc.name, func(t *testing.T) {
			conn := gorqliteOpen(t, tc.url)
			table := "wq_" + strings.ReplaceAll(tc.name, "-", "_")
			res, err := conn.WriteParameterized([]gorqlite.ParameterizedStatement{
				{Query: "CREATE TABLE " + table + " (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER, score REAL)"},
				{Query: "INSERT INTO " + table + " (name, age, score) VALUES (?, ?, ?)", Arguments: []any{"fiona", 20, 1.5}},
				{Query: "INSERT INTO " + table + " (name, age, score) VALUES (?, ?, ?)", Arguments: []any{"declan", nil, 2}},
			})
			if err != nil || len(res) != 3 {
				t.Fatalf("WriteParameterized: %+v, %v", res, err)
			}
			if res[1].LastInsertID != 1 || res[1].RowsAffected != 1 || res[2].LastInsertID != 2 || res[2].RowsAffected != 1 {
				t.Errorf("WriteParameterized results %+v, want ids 1 and 2, one row each", res)
			}
			wr, err := conn.WriteOneParameterized(gorqlite.ParameterizedStatement{
				Query: "UPDATE " + table + " SET age = age + ? WHERE name = ?", Arguments: []any{1, "fiona"}})
			if err != nil || wr.RowsAffected != 1 {
				t.Errorf("WriteOneParameterized update: %+v, %v", wr, err)
			}
			qrs, err := conn.QueryParameterized([]gorqlite.ParameterizedStatement{
				{Query: "SELECT id, name, age, score FROM " + table + " WHERE name = ?", Arguments: []any{"fiona"}},
				{Query: "SELECT name FROM " + table + " ORDER BY id"},
			})
			if err != nil || len(qrs) != 2 {
				t.Fatalf("QueryParameterized: %+v, %v", qrs, err)
			}
			var (
				id, age int64
				name    string
				score   float64
			)
			if !qrs[0].Next() {
				t.Fatalf("QueryParameterized: no row")
			}
			if err := qrs[0].Scan(&id, &name, &age, &score); err != nil || id != 1 || name != "fiona" || age != 21 || score != 1.5 {
				t.Errorf("scan: %d %q %d %v, %v; want 1 fiona 21 1.5", id, name, age, score, err)
			}
			if got := qrs[0].Types(); !slices.Equal(got, []string{"integer", "text", "integer", "real"}) {
				t.Errorf("types %v", got)
			}
			var names []string
			for qrs[1].Next() {
				row, err := qrs[1].Map()
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, fmt.Sprint(row["name"]))
			}
			if !slices.Equal(names, []string{"fiona", "declan"}) {
				t.Errorf("names %v", names)
			}
			rr, err := conn.RequestParameterized([]gorqlite.ParameterizedStatement{
				{Query: "INSERT INTO " + table + " (name, age) VALUES (?, ?)", Arguments: []any{"eve", 30}},
				{Query: "SELECT count(*) FROM " + table + " WHERE age >= ?", Arguments: []any{21}},
			})
			if err != nil || len(rr) != 2 || rr[0].Write == nil || rr[1].Query == nil {
				t.Fatalf("RequestParameterized: %+v, %v", rr, err)
			}
			if rr[0].Write.LastInsertID != 3 || rr[0].Write.RowsAffected != 1 {
				t.Errorf("RequestParameterized write %+v", rr[0].Write)
			}
			var n int64
			if !rr[1].Query.Next() || rr[1].Query.Scan(&n) != nil || n != 2 {
				t.Errorf("RequestParameterized query: count %d, want 2", n)
			}
			// The node that took the write has applied it (read-your-writes).
			local := gorqliteOpen(t, onlyNode(tc.node, "level=none"))
			if got := gorqliteCount(t, local, "SELECT count(*) FROM "+table); got != 3 {
				t.Errorf("level=none on %s right after the writes: %d rows, want 3", tc.node, got)
			}
		})
	}

	t.Run("queue", func(t *testing.T) {
		mc := gorqliteOpen(t, m.URL())
		if _, err := mc.WriteOne("CREATE TABLE qw (id INTEGER PRIMARY KEY, v TEXT)"); err != nil {
			t.Fatal(err)
		}
		for i, url := range []string{m.URL(), onlyNode(s1), s2.URL()} {
			conn := gorqliteOpen(t, url)
			var prev int64
			for j := 0; j < 3; j++ {
				seq, err := conn.QueueParameterized([]gorqlite.ParameterizedStatement{
					{Query: "INSERT INTO qw (v) VALUES (?)", Arguments: []any{fmt.Sprintf("%d-%d", i, j)}},
				})
				if err != nil || seq == 0 {
					t.Fatalf("QueueParameterized through %s: %d, %v; want a non-zero sequence number", url, seq, err)
				}
				if seq <= prev {
					t.Errorf("QueueParameterized through %s: sequence number %d after %d", url, seq, prev)
				}
				prev = seq
			}
			seq, err := conn.QueueOne(fmt.Sprintf("INSERT INTO qw (v) VALUES ('%d-plain')", i))
			if err != nil || seq == 0 {
				t.Fatalf("QueueOne through %s: %d, %v", url, seq, err)
			}
		}
		deadline := time.Now().Add(waitTimeout)
		for gorqliteCount(t, mc, "SELECT count(*) FROM qw") != 12 {
			if time.Now().After(deadline) {
				t.Fatalf("queued writes: %d rows on the master after %v, want 12", gorqliteCount(t, mc, "SELECT count(*) FROM qw"), waitTimeout)
			}
			time.Sleep(pollInterval) // ok: poll interval
		}
	})

	t.Run("level-strong", func(t *testing.T) {
		mc := gorqliteOpen(t, m.URL())
		if _, err := mc.WriteOne("CREATE TABLE ls (v INTEGER)"); err != nil {
			t.Fatal(err)
		}
		if _, err := mc.WriteOneParameterized(gorqlite.ParameterizedStatement{Query: "INSERT INTO ls VALUES (?)", Arguments: []any{42}}); err != nil {
			t.Fatal(err)
		}
		for _, url := range []string{m.URL() + "/?level=strong", s1.URL() + "/?level=strong", onlyNode(s2, "level=strong"), onlyNode(s2, "level=linearizable")} {
			conn := gorqliteOpen(t, url)
			if got := gorqliteCount(t, conn, "SELECT v FROM ls"); got != 42 {
				t.Errorf("through %s: %d, want 42", url, got)
			}
		}
		conn := gorqliteOpen(t, m.URL())
		if err := conn.SetConsistencyLevel(gorqlite.ConsistencyLevelStrong); err != nil {
			t.Fatal(err)
		}
		if got := gorqliteCount(t, conn, "SELECT v FROM ls"); got != 42 {
			t.Errorf("SetConsistencyLevel(strong): %d, want 42", got)
		}
	})

	t.Run("datetime", func(t *testing.T) {
		mc := gorqliteOpen(t, m.URL())
		if _, err := mc.WriteOne("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME DEFAULT CURRENT_TIMESTAMP, d DATE, ms DATETIME, txt DATETIME)"); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-2 * time.Second).Truncate(time.Second)
		res, err := mc.WriteParameterized([]gorqlite.ParameterizedStatement{
			{Query: "INSERT INTO ev (id, d, ms, txt) VALUES (1, ?, ?, ?)", Arguments: []any{"2024-01-02", 1706842979630, "2024-03-04 05:06:07"}},
			{Query: "INSERT INTO ev (id, d, ms, txt) VALUES (2, NULL, NULL, NULL)"},
		})
		if err != nil || len(res) != 2 {
			t.Fatalf("insert: %+v, %v", res, err)
		}
		after := time.Now().Add(2 * time.Second)
		// A read at level none is the slave's own: wait until it has the
		// rows.
		last := m.MustLogStatus().LastIndex
		s1.WaitForApplied(last, waitTimeout)
		s2.WaitForApplied(last, waitTimeout)
		for _, url := range []string{m.URL(), onlyNode(s1), onlyNode(s2, "level=none")} {
			conn := gorqliteOpen(t, url)
			qr, err := conn.QueryOne("SELECT at, d, ms, txt FROM ev ORDER BY id")
			if err != nil {
				t.Fatalf("through %s: %v", url, err)
			}
			if got := qr.Types(); !slices.Equal(got, []string{"datetime", "date", "datetime", "datetime"}) {
				t.Errorf("through %s: types %v", url, got)
			}
			var at, d, ms, txt time.Time
			if !qr.Next() {
				t.Fatalf("through %s: no row", url)
			}
			if err := qr.Scan(&at, &d, &ms, &txt); err != nil {
				t.Fatalf("through %s: scan into time.Time: %v", url, err)
			}
			if at.Before(before) || at.After(after) || at.Location() != time.UTC {
				t.Errorf("through %s: DEFAULT CURRENT_TIMESTAMP %v, want UTC between %v and %v", url, at, before, after)
			}
			if want := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC); !d.Equal(want) {
				t.Errorf("through %s: DATE %v, want %v", url, d, want)
			}
			if want := time.UnixMilli(1706842979630); !ms.Equal(want) {
				t.Errorf("through %s: DATETIME from integer ms %v, want %v", url, ms, want)
			}
			if want := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC); !txt.Equal(want) {
				t.Errorf("through %s: DATETIME from text %v, want %v", url, txt, want)
			}
			// Slice converts the date and datetime columns itself.
			row, err := qr.Slice()
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := row[0].(time.Time); !ok || !v.Equal(at) {
				t.Errorf("through %s: Slice()[0] = %#v, want time.Time %v", url, row[0], at)
			}
			// NULL: a NullTime that is not valid.
			var nat gorqlite.NullTime
			var nd, nms, ntxt gorqlite.NullTime
			if !qr.Next() || qr.Scan(&nat, &nd, &nms, &ntxt) != nil || !nat.Valid || nd.Valid || nms.Valid || ntxt.Valid {
				t.Errorf("through %s: second row %+v %+v %+v %+v, want only at valid", url, nat, nd, nms, ntxt)
			}
		}
		// Every node stored the same pinned time.
		var first time.Time
		for i, url := range []string{m.URL(), onlyNode(s1, "level=none"), onlyNode(s2, "level=none")} {
			qr, err := gorqliteOpen(t, url).QueryOne("SELECT at FROM ev WHERE id = 1")
			var at time.Time
			if err != nil || !qr.Next() || qr.Scan(&at) != nil {
				t.Fatalf("through %s: %v", url, err)
			}
			if i == 0 {
				first = at
			} else if !at.Equal(first) {
				t.Errorf("through %s: at %v, the master has %v", url, at, first)
			}
		}
	})

	t.Run("text-in-blob-and-nulls", func(t *testing.T) {
		conn := gorqliteOpen(t, onlyNode(s1))
		res, err := conn.WriteParameterized([]gorqlite.ParameterizedStatement{
			{Query: "CREATE TABLE tb (id INTEGER PRIMARY KEY, b BLOB, s TEXT, i INTEGER)"},
			{Query: "INSERT INTO tb (id, b, s, i) VALUES (1, ?, ?, ?)", Arguments: []any{"hello", "x", 5}},
			{Query: "INSERT INTO tb (id, b, s, i) VALUES (2, ?, ?, ?)", Arguments: []any{nil, nil, nil}},
		})
		if err != nil || len(res) != 3 {
			t.Fatalf("insert: %+v, %v", res, err)
		}
		qr, err := conn.QueryOne("SELECT b, s, i FROM tb ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		var (
			b  string
			s  gorqlite.NullString
			i  gorqlite.NullInt64
			bb []byte
		)
		if !qr.Next() {
			t.Fatal("no row")
		}
		if err := qr.Scan(&b, &s, &i); err != nil || b != "hello" || s != (gorqlite.NullString{String: "x", Valid: true}) || i != (gorqlite.NullInt64{Int64: 5, Valid: true}) {
			t.Errorf("row 1: %q %+v %+v, %v; want \"hello\" (text in a BLOB column) x 5", b, s, i, err)
		}
		if err := qr.Scan(&bb, &s, &i); err != nil || string(bb) != "hello" {
			t.Errorf("row 1 into []byte: %q, %v", bb, err)
		}
		if !qr.Next() {
			t.Fatal("no second row")
		}
		var nb gorqlite.NullString
		if err := qr.Scan(&nb, &s, &i); err != nil || nb.Valid || s.Valid || i.Valid {
			t.Errorf("row 2: %+v %+v %+v, %v; want three NULLs", nb, s, i, err)
		}
	})

	t.Run("statement-errors", func(t *testing.T) {
		for _, tc := range []struct{ name, url string }{{"master", m.URL()}, {"slave", onlyNode(s2)}} {
			conn := gorqliteOpen(t, tc.url)
			table := "uq_" + tc.name
			if _, err := conn.WriteOne("CREATE TABLE " + table + " (id INTEGER PRIMARY KEY, u TEXT UNIQUE)"); err != nil {
				t.Fatal(err)
			}
			// Without a transaction: the others succeed, the error is
			// reported for its statement.
			if err := conn.SetExecutionWithTransaction(false); err != nil {
				t.Fatal(err)
			}
			ins := func(v string) gorqlite.ParameterizedStatement {
				return gorqlite.ParameterizedStatement{Query: "INSERT INTO " + table + " (u) VALUES (?)", Arguments: []any{v}}
			}
			res, err := conn.WriteParameterized([]gorqlite.ParameterizedStatement{ins("a"), ins("a"), ins("b")})
			var se *gorqlite.StatementError
			if err == nil || !errors.As(err, &se) || !strings.Contains(se.Message, "UNIQUE constraint failed") {
				t.Errorf("%s: batch with a duplicate: err %v, want a UNIQUE statement error", tc.name, err)
			}
			if len(res) != 3 || res[0].Err != nil || res[0].LastInsertID != 1 || res[1].Err == nil ||
				!strings.Contains(res[1].Err.Error(), "UNIQUE constraint failed") || res[2].Err != nil || res[2].LastInsertID != 2 {
				t.Errorf("%s: results %+v, want ok, UNIQUE error, ok", tc.name, res)
			}
			if got := gorqliteCount(t, conn, "SELECT count(*) FROM "+table); got != 2 {
				t.Errorf("%s: %d rows, want 2", tc.name, got)
			}
			// With a transaction (gorqlite's default): nothing stays.
			if err := conn.SetExecutionWithTransaction(true); err != nil {
				t.Fatal(err)
			}
			res, err = conn.WriteParameterized([]gorqlite.ParameterizedStatement{ins("c"), ins("a"), ins("d")})
			if err == nil || len(res) < 2 || res[0].Err != nil || res[1].Err == nil {
				t.Errorf("%s: transaction with a duplicate: %+v, %v; want the second statement's error", tc.name, res, err)
			}
			if got := gorqliteCount(t, conn, "SELECT count(*) FROM "+table); got != 2 {
				t.Errorf("%s: %d rows after a failed transaction, want 2", tc.name, got)
			}
			// A failing query, and a write on the query endpoint.
			if qr, err := conn.QueryOne("SELECT * FROM nope"); err == nil || qr.Err == nil || !strings.Contains(qr.Err.Error(), "no such table") {
				t.Errorf("%s: query of a missing table: %v, %v", tc.name, qr.Err, err)
			}
			if qr, err := conn.QueryOne("DELETE FROM " + table); err == nil || qr.Err == nil {
				t.Errorf("%s: DELETE through Query: %v, %v; want an error", tc.name, qr.Err, err)
			}
			if got := gorqliteCount(t, conn, "SELECT count(*) FROM "+table); got != 2 {
				t.Errorf("%s: %d rows, want 2", tc.name, got)
			}
		}
	})

	t.Run("database-sql", func(t *testing.T) {
		for i, tc := range []struct{ name, url string }{
			{"master", m.URL()},
			{"slave-discovery", s1.URL()},
			{"slave", onlyNode(s2)},
		} {
			db, err := sql.Open("rqlite", tc.url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			table := fmt.Sprintf("ds%d", i)
			if _, err := db.Exec("CREATE TABLE " + table + " (id INTEGER PRIMARY KEY, name TEXT, at DATETIME DEFAULT CURRENT_TIMESTAMP, note TEXT, n INTEGER)"); err != nil {
				t.Fatalf("%s: create: %v", tc.name, err)
			}
			for j, name := range []string{"ana", "ben"} {
				res, err := db.Exec("INSERT INTO "+table+" (name, note, n) VALUES (?, ?, ?)", name, nil, j+10)
				if err != nil {
					t.Fatalf("%s: insert: %v", tc.name, err)
				}
				id, err1 := res.LastInsertId()
				n, err2 := res.RowsAffected()
				if err1 != nil || err2 != nil || id != int64(j+1) || n != 1 {
					t.Errorf("%s: insert %s: id %d (%v), rows %d (%v)", tc.name, name, id, err1, n, err2)
				}
			}
			var (
				id   int64
				name string
				at   time.Time
				note sql.NullString
				n    int
			)
			err = db.QueryRow("SELECT id, name, at, note, n FROM "+table+" WHERE name = ?", "ben").Scan(&id, &name, &at, &note, &n)
			if err != nil || id != 2 || name != "ben" || note.Valid || n != 11 || time.Since(at) > time.Minute || time.Since(at) < -time.Minute {
				t.Errorf("%s: QueryRow: %d %q %v %+v %d, %v", tc.name, id, name, at, note, n, err)
			}
			rows, err := db.Query("SELECT name FROM " + table + " ORDER BY id")
			if err != nil {
				t.Fatalf("%s: query: %v", tc.name, err)
			}
			var names []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				names = append(names, s)
			}
			if err := rows.Close(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names, []string{"ana", "ben"}) {
				t.Errorf("%s: names %v", tc.name, names)
			}
			if _, err := db.Exec("INSERT INTO "+table+" (id, name) VALUES (?, ?)", 1, "dup"); err == nil || !strings.Contains(err.Error(), "UNIQUE constraint failed") {
				t.Errorf("%s: duplicate id: %v, want a UNIQUE error", tc.name, err)
			}
			res, err := db.Exec("UPDATE "+table+" SET note = ? WHERE n >= ?", "x", 10)
			if err != nil {
				t.Errorf("%s: update: %v", tc.name, err)
			} else if n, err := res.RowsAffected(); err != nil || n != 2 {
				t.Errorf("%s: update: %d rows, %v", tc.name, n, err)
			}
		}
	})
}
