package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/walship/walship/api/client"
)

// A slave's POST / refuses schema statements with 403 naming the master, as
// the seed does, and writes nothing of the request.
func TestSlaveRefusesSchema(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, mc, "CREATE INDEX t_v ON t (v)")
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	last := msrv.Master.Log().LastIndex()
	waitApplied(t, ssrv, last)
	masterURL := msrv.URL()
	for _, sql := range []string{
		"CREATE TABLE u (x)",
		"CREATE TABLE t (x)", // exists: still a schema statement, not an SQL error
		"create table if not exists u (x)",
		"/* comment */ CREATE TABLE u (x)",
		"CREATE INDEX u_v ON t (v)",
		"CREATE UNIQUE INDEX t_v2 ON t (v, id)",
		"CREATE VIEW w AS SELECT v FROM t",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t WHERE id < 0; END",
		"ALTER TABLE t ADD COLUMN w TEXT",
		"ALTER TABLE t RENAME TO t2",
		"DROP TABLE t",
		"DROP INDEX t_v",
		// A write before the schema statement is not forwarded either.
		"INSERT INTO t (v) VALUES ('before'); CREATE TABLE u (x)",
	} {
		status, body := post(t, ssrv.URL(), seedJSON(t, "exec", sql))
		if status != http.StatusForbidden {
			t.Errorf("%q: status %d, want 403: %s", sql, status, body)
			continue
		}
		er := errorBody(t, body)
		if er.Master != masterURL || !strings.Contains(er.Error, masterURL) || !strings.Contains(er.Error, "master") {
			t.Errorf("%q: %s, want \"error\" and \"master\" naming %s", sql, body, masterURL)
		}
	}
	// The Go client maps it back, with the master's URL.
	_, err := sc.Exec(context.Background(), "CREATE TABLE u (x)")
	var se *client.StatusError
	if !errors.Is(err, client.ErrForbidden) || !errors.As(err, &se) || se.Master != masterURL {
		t.Fatalf("client: %v, want ErrForbidden naming %s", err, masterURL)
	}
	if got := msrv.Master.Log().LastIndex(); got != last {
		t.Fatalf("the master's last index moved from %d to %d", last, got)
	}
	if got := dump(t, sc, "SELECT name FROM sqlite_schema ORDER BY name"); got != `[["_walship"],["t"],["t_v"]]` {
		t.Fatalf("slave schema %s", got)
	}
	if got := dump(t, mc, "SELECT count(*) FROM t"); got != `[[0]]` {
		t.Fatalf("master rows %s", got)
	}
}

// A write sent to a slave is forwarded; the answer carries the master's
// index, and the slave has applied it before it answers (read-your-writes).
func TestSlaveForwardsWrites(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, 1)
	ctx := context.Background()
	for i := 1; i <= 20; i++ {
		v := fmt.Sprintf("row %d", i)
		resp, err := sc.Exec(ctx, "INSERT INTO t (v) VALUES (?)", v)
		if err != nil {
			t.Fatalf("exec on the slave: %v", err)
		}
		if want := msrv.Master.Log().LastIndex(); resp.Index != want || resp.Index != uint64(i+1) {
			t.Fatalf("write %d: index %d, master's last %d", i, resp.Index, want)
		}
		if *resp.RowsAffected != 1 || *resp.LastInsertID != int64(i) || resp.Pending {
			t.Fatalf("write %d: %+v", i, resp)
		}
		got, err := sc.Query(ctx, "SELECT v FROM t WHERE id = ?", i)
		if err != nil || len(got.Values) != 1 || got.Values[0][0] != v || got.Index < resp.Index {
			t.Fatalf("read after write %d on the slave: %+v, %v", i, got, err)
		}
	}
	// The exact answer of a forwarded write is the master's.
	status, body := post(t, ssrv.URL(), seedJSON(t, "exec", "UPDATE t SET v = upper(v) WHERE id <= 2"))
	if want := `{"rows_affected":2,"last_insert_id":0,"index":22}` + "\n"; status != http.StatusOK || string(body) != want {
		t.Fatalf("forwarded update: %d %s, want %s", status, body, want)
	}
	if got, want := dump(t, sc, "SELECT * FROM t ORDER BY id"), dump(t, mc, "SELECT * FROM t ORDER BY id"); got != want {
		t.Fatalf("slave %s, master %s", got, want)
	}
	// A forwarded write keeps its parameters' types.
	mustExec(t, mc, "CREATE TABLE p (a, b, c, d)")
	waitApplied(t, ssrv, msrv.Master.Log().LastIndex())
	status, body = post(t, ssrv.URL(), []byte(`{"command":"exec","query":"INSERT INTO p VALUES (?, ?, ?, ?)","params":[9007199254740993, 2.0, [0, 255], null]}`))
	if status != http.StatusOK {
		t.Fatalf("forwarded typed insert: %d %s", status, body)
	}
	const typed = "SELECT a, typeof(a), typeof(b), hex(c), typeof(c), typeof(d) FROM p"
	want := `[[9007199254740993,"integer","real","00FF","blob","null"]]`
	if got := dump(t, mc, typed); got != want {
		t.Fatalf("master stored %s, want %s", got, want)
	}
	if got := dump(t, sc, typed); got != want {
		t.Fatalf("slave stored %s, want %s", got, want)
	}
	// The slave's log status names its master and its progress (the
	// master's last index is the one of the slave's last feed answer, which
	// the slave records just after applying it).
	last := msrv.Master.Log().LastIndex()
	var st *client.LogStatus
	waitFor(t, "the slave's status to show the master's last index", func() bool {
		var err error
		st, err = sc.LogStatus(ctx)
		return err == nil && st.LastIndex == last
	})
	if st.Role != "slave" || st.ID != "1" || st.Master != msrv.URL() || st.State != client.StateStreaming ||
		st.LogID != msrv.Master.Log().ID() || st.AppliedIndex != last || st.FirstIndex != 1 ||
		st.MasterLastIndex == nil || *st.MasterLastIndex != last || st.LagEntries == nil || *st.LagEntries != 0 || st.Error != "" {
		t.Fatalf("slave status %+v", st)
	}
}

// A slave whose master is down answers writes with 503 and a clear message,
// and keeps serving reads of what it has.
func TestSlaveMasterDown(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, mc, "INSERT INTO t (v) VALUES ('kept')")
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, 2)
	if err := msrv.Close(); err != nil {
		t.Fatal(err)
	}
	status, body := post(t, ssrv.URL(), seedJSON(t, "exec", "INSERT INTO t (v) VALUES ('lost')"))
	if status != http.StatusServiceUnavailable {
		t.Fatalf("exec with the master down: %d %s, want 503", status, body)
	}
	er := errorBody(t, body)
	if !strings.Contains(er.Error, "the master cannot be reached") || !strings.Contains(er.Error, msrv.URL()) {
		t.Fatalf("exec with the master down: %q does not say the master %s cannot be reached", er.Error, msrv.URL())
	}
	if _, err := sc.Exec(context.Background(), "INSERT INTO t (v) VALUES ('lost')"); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("client: %v, want ErrUnavailable", err)
	}
	status, body = post(t, ssrv.URL(), seedJSON(t, "query", "SELECT id, v FROM t"))
	if want := `{"columns":["id","v"],"types":["integer","text"],"values":[[1,"kept"]],"index":2}` + "\n"; status != http.StatusOK || string(body) != want {
		t.Fatalf("query with the master down: %d %s, want %s", status, body, want)
	}
	waitFor(t, "the slave to say it is disconnected", func() bool {
		st, err := sc.LogStatus(context.Background())
		return err == nil && st.State == client.StateDisconnected && st.Error != "" && st.AppliedIndex == 2
	})
}
