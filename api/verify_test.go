package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

// POST /db/verify appends a marker and, with ?wait, answers the master's
// sums of its content there; a slave forwards it; /log/status and /metrics
// show each node's check.
func TestVerifyEndpoint(t *testing.T) {
	msrv, mc := mustRunMaster(t)
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	ctx := context.Background()
	mustExec(t, mc, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, mc, "INSERT INTO t (v) VALUES ('a'), ('b')")

	status, _, body := do(t, http.MethodPost, msrv.URL()+"/db/verify", nil)
	var quick client.VerifyResponse
	if status != http.StatusOK || json.Unmarshal(body, &quick) != nil || quick.Index != 3 || quick.Sums != nil {
		t.Fatalf("POST /db/verify: %d %s, want the marker at 3 and no sums", status, body)
	}

	res, err := mc.Verify(ctx, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if res.Index <= quick.Index || res.ResultIndex <= res.Index {
		t.Fatalf("a second check: %+v, after the marker at %d", res, quick.Index)
	}
	sum, err := msrv.Master.DB().Checksum(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"t": sum.Tables["t"], db.PartSchema: sum.Schema, db.PartHeader: sum.Header}
	if len(res.Sums) != len(want) {
		t.Fatalf("sums %v, want %v", res.Sums, want)
	}
	for k, v := range want {
		if res.Sums[k] != v {
			t.Fatalf("sums %v, want %v", res.Sums, want)
		}
	}

	// Through the slave: forwarded to the master.
	fwd, err := sc.Verify(ctx, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if fwd.Index <= res.ResultIndex || fwd.Sums["t"] != sum.Tables["t"] {
		t.Fatalf("through the slave: %+v", fwd)
	}
	waitFor(t, "the slave's check", func() bool {
		st, err := sc.LogStatus(ctx)
		return err == nil && st.LastCheck != nil && st.LastCheck.Index == fwd.Index
	})
	st, err := sc.LogStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.LastCheck; c.Result != client.CheckOK || c.ResultIndex != fwd.ResultIndex || c.Time == "" || len(c.Differs) != 0 {
		t.Fatalf("the slave's last check: %+v", c)
	}
	ms, err := mc.LogStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := ms.LastCheck; c == nil || c.Result != client.CheckRecorded || c.Index != fwd.Index {
		t.Fatalf("the master's last check: %+v", c)
	}
	for srv, want := range map[string]string{msrv.URL(): "walship_verify_checks_total 3", ssrv.URL(): "walship_verify_checks_total 3"} {
		_, _, body := do(t, http.MethodGet, srv+"/metrics", nil)
		for _, w := range []string{want, "walship_verify_mismatches_total 0", "walship_verify_skipped_total 0"} {
			if !strings.Contains(string(body), "\n"+w+"\n") {
				t.Errorf("%s/metrics lacks %q", srv, w)
			}
		}
	}

	// Bad input: 400, and no marker.
	last := msrv.Master.Log().LastIndex()
	for _, q := range []string{"?timeout=forever", "?timeout=0s", "?timeout=-1s", "?timeout=1h"} {
		status, _, body := do(t, http.MethodPost, msrv.URL()+"/db/verify"+q, nil)
		if status != http.StatusBadRequest || !strings.Contains(errorBody(t, body).Error, "timeout") {
			t.Errorf("%s: %d %s, want 400 about the timeout", q, status, body)
		}
	}
	if got := msrv.Master.Log().LastIndex(); got != last {
		t.Fatalf("refused requests appended entries: %d, then %d", last, got)
	}
	if status, _, _ := do(t, http.MethodGet, msrv.URL()+"/db/verify", nil); status != http.StatusMethodNotAllowed {
		t.Fatalf("GET /db/verify: %d, want 405", status)
	}
}
