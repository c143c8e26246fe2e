package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api/client"
)

// The Go client's /db/* methods: writes through a slave return the log
// index, and WaitApplied on another node gives read-your-writes there.
func TestDBClient(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	_, s1 := mustRunSlave(t, msrv.URL(), "1")
	_, s2 := mustRunSlave(t, msrv.URL(), "2")
	ctx := context.Background()
	if _, err := mc.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)"}); err != nil {
		t.Fatal(err)
	}
	resp, err := s1.DBExecute(ctx, client.DBOptions{Transaction: true},
		client.Statement{SQL: "INSERT INTO t (v, b) VALUES (?, ?)", Params: []any{"ana", []byte{1, 2}}},
		client.Statement{SQL: "INSERT INTO t (v) VALUES (:v)", Named: map[string]any{"v": "ben"}})
	if err != nil || resp.Err() != nil {
		t.Fatalf("execute through a slave: %+v %v", resp, err)
	}
	if resp.Index != 2 || len(resp.Results) != 2 || resp.Results[1].LastInsertID != 2 {
		t.Fatalf("answer %+v, want index 2 and two results", resp)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s2.WaitApplied(wctx, resp.Index); err != nil {
		t.Fatal(err)
	}
	q, err := s2.DBQuery(ctx, client.DBOptions{Level: "none"}, client.Statement{SQL: "SELECT v, hex(b) FROM t ORDER BY id"})
	if err != nil || q.Err() != nil || len(q.Results) != 1 {
		t.Fatalf("query: %+v %v", q, err)
	}
	got, _ := json.Marshal(q.Results[0].Values)
	if string(got) != `[["ana","0102"],["ben",""]]` {
		t.Fatalf("slave 2 holds %s", got)
	}
	// Equal content at equal indexes: equal checksums.
	cm, err := mc.Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := s2.Checksum(ctx)
	if err != nil || cs.Index != cm.Index || cs.Checksum != cm.Checksum || len(cm.Checksum) != 64 || cm.Tables["t"] == "" {
		t.Fatalf("checksums: master %+v, slave %+v (%v)", cm, cs, err)
	}
	// A statement error is per statement; Err reports it.
	bad, err := mc.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "INSERT INTO nosuch VALUES (1)"})
	if err != nil || bad.Err() == nil || !strings.Contains(bad.Err().Error(), "no such table") {
		t.Fatalf("bad statement: %+v %v", bad, err)
	}
	// A parse error is an HTTP error, typed.
	if _, err := mc.DBQuery(ctx, client.DBOptions{Freshness: -1}); !errors.Is(err, client.ErrBadRequest) {
		t.Fatalf("no statements: err %v, want ErrBadRequest", err)
	}
	// WaitApplied gives up with the context.
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := s2.WaitApplied(short, 1000); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for an index that never comes: %v", err)
	}
}
