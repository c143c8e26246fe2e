package tests

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// checkStatus is the last_check of a node's /log/status.
type checkStatus struct {
	Index       uint64   `json:"index"`
	ResultIndex uint64   `json:"result_index"`
	Result      string   `json:"result"`
	Differs     []string `json:"differs"`
	Error       string   `json:"error"`
}

// lastCheck returns the last_check of st, nil when it has none.
func lastCheck(t *testing.T, st *LogStatus) *checkStatus {
	t.Helper()
	var body struct {
		LastCheck *checkStatus `json:"last_check"`
	}
	if err := json.Unmarshal(st.Body, &body); err != nil {
		t.Fatalf("decode %s: %v", st.Body, err)
	}
	return body.LastCheck
}

// runVerify runs 'walship verify' against node and returns its exit code,
// stdout and stderr.
func runVerify(t *testing.T, node *Node, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(walshipBin, append([]string{"verify", "--node", node.URL(), "--timeout", "60s"}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("walship verify: %v", err)
	return 0, "", ""
}

// verifyRows returns the rows of walship verify's table: "INDEX RESULT"
// by "NODE PART".
func verifyRows(out string) map[string]string {
	rows := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) != 4 {
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if cells[0] != "NODE" {
			rows[cells[0]+" "+cells[2]] = cells[1] + " " + cells[3]
		}
	}
	return rows
}

// tamper stops n (SIGKILL), changes its database file with a plain SQLite
// connection, as an operator's sqlite3 would, and starts it again.
func tamper(t *testing.T, n *Node, stmt string) {
	t.Helper()
	n.Kill()
	conn, err := sql.Open("sqlite", filepath.Join(n.DataDir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := conn.Exec(stmt)
	if err != nil {
		t.Fatalf("%s on %s's file: %v", stmt, n, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		t.Fatalf("%s on %s's file changed %d rows, want 1", stmt, n, k)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	n.Start()
}

// A row changed by hand in one slave's file: walship verify reports that
// slave's table as DIFFERS and exits 1, the slave stops applying in state
// diverged naming the table, the other slave is ok. Before the change, all
// is ok and the command exits 0.
func TestVerifyFindsRowChangedByHand(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(WithArgs("--verify-every", "0"))
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)
	m.MustExec(kvSchema)
	m.MustExec(`CREATE TABLE other (id INTEGER PRIMARY KEY, n)`)
	for _, k := range []string{"a", "b", "c"} {
		m.MustExec(insertKV, k, "v-"+k)
		m.MustExec(`INSERT INTO other (n) VALUES (?)`, k)
	}
	c.WaitConverged(m)

	code, out, progress := runVerify(t, m)
	if code != 0 {
		t.Fatalf("walship verify of an unchanged cluster: exit %d\n%s%s", code, out, progress)
	}
	rows := verifyRows(out)
	for _, node := range []string{"master", "slave 1", "slave 2"} {
		for _, part := range []string{"kv", "other", "sqlite_schema", "sqlite_header"} {
			if r := rows[node+" "+part]; !strings.HasSuffix(r, " ok") {
				t.Fatalf("%s %s: %q\n%s", node, part, r, out)
			}
		}
	}

	tamper(t, s2, `UPDATE kv SET v = 'changed by hand' WHERE k = 'b'`)
	m.MustExec(insertKV, "d", "after the change")
	c.WaitConverged(m)
	code, out, progress = runVerify(t, m)
	if code != 1 {
		t.Fatalf("walship verify after a row changed by hand: exit %d, want 1\n%s%s", code, out, progress)
	}
	rows = verifyRows(out)
	var index string
	for key, r := range rows {
		if strings.HasPrefix(key, "master ") {
			index, _, _ = strings.Cut(r, " ")
		}
	}
	want := map[string]string{
		"slave 2 kv": "DIFFERS", "slave 2 other": "ok", "slave 2 sqlite_schema": "ok", "slave 2 sqlite_header": "ok",
		"slave 1 kv": "ok", "slave 1 other": "ok", "master kv": "ok",
	}
	for key, result := range want {
		if rows[key] != index+" "+result {
			t.Errorf("%s: %q, want %q", key, rows[key], index+" "+result)
		}
	}
	if t.Failed() {
		t.Fatalf("walship verify:\n%s", out)
	}
	st := s2.WaitFor("diverged", waitTimeout, func(st *LogStatus) bool { return st.State == "diverged" })
	if lc := lastCheck(t, st); lc == nil || lc.Result != "mismatch" || !slices.Equal(lc.Differs, []string{"kv"}) ||
		fmt.Sprint(lc.Index) != index || !strings.Contains(string(st.Body), "differs from the master's in kv") {
		t.Fatalf("slave 2's status: %s", st.Body)
	}
	if lc := lastCheck(t, s1.MustLogStatus()); lc == nil || lc.Result != "ok" || fmt.Sprint(lc.Index) != index {
		t.Fatalf("slave 1's last check: %+v", lc)
	}
	if v, body := scrape(t, s2, "walship_verify_mismatches_total"); v != 1 {
		t.Fatalf("slave 2's walship_verify_mismatches_total = %v\n%s", v, body)
	}
	if v, body := scrape(t, s1, "walship_verify_checks_total"); v != 2 {
		t.Fatalf("slave 1's walship_verify_checks_total = %v\n%s", v, body)
	}
	if v, _ := scrape(t, m, "walship_verify_checks_total"); v != 2 {
		t.Fatalf("the master's walship_verify_checks_total = %v", v)
	}

	// The diverged slave applies nothing more; the other goes on.
	applied := s2.MustLogStatus().AppliedIndex
	last := m.MustExec(insertKV, "e", "after the check").Index
	s1.WaitForApplied(last, waitTimeout)
	observe(t, 500*time.Millisecond, func() {
		if st := s2.MustLogStatus(); st.AppliedIndex != applied || st.State != "diverged" {
			t.Fatalf("the diverged slave moved: %s", st.Body)
		}
	})

	// POST /db/verify at the healthy slave: forwarded to the master.
	resp, err := httpClient.Post(s1.URL()+"/db/verify?wait", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	var vr struct {
		Index       uint64            `json:"index"`
		ResultIndex uint64            `json:"result_index"`
		Sums        map[string]string `json:"sums"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &vr) != nil || vr.ResultIndex <= vr.Index || len(vr.Sums["kv"]) != 64 {
		t.Fatalf("POST /db/verify?wait at slave 1: %d %s", resp.StatusCode, body)
	}
	s1.WaitFor("the forwarded check", waitTimeout, func(st *LogStatus) bool {
		lc := lastCheck(t, st)
		return lc != nil && lc.Index == vr.Index && lc.Result == "ok"
	})
}

// With --verify-every, the master checks by itself: each slave compares at
// every marker, and a row changed by hand is reported by the next check.
func TestVerifyEveryAutomatic(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster(WithArgs("--verify-every", "25"))
	s := c.MustRunSlave(1, m)
	m.MustExec(kvSchema)
	writeConcurrently(t, m, 60, 4, func(i int) (string, []any) { return insertKV, []any{fmt.Sprint(i), "v"} })
	c.WaitConverged(m)
	// Checks rest between runs: the second may come after the writes.
	st := s.WaitFor("two checks", waitTimeout, func(st *LogStatus) bool {
		lc := lastCheck(t, st)
		v, _ := scrape(t, s, "walship_verify_checks_total")
		return lc != nil && lc.Index > 25 && v >= 2
	})
	if lc := lastCheck(t, st); lc.Result != "ok" {
		t.Fatalf("the slave's last check: %s", st.Body)
	}
	if lc := lastCheck(t, m.MustLogStatus()); lc == nil || lc.Result != "recorded" {
		t.Fatalf("the master's last check: %+v", lc)
	}

	tamper(t, s, `UPDATE kv SET v = 'changed by hand' WHERE k = '7'`)
	// The slave restarted: the next marker is its own, and its result
	// names the table.
	writeConcurrently(t, m, 80, 4, func(i int) (string, []any) { return insertKV, []any{fmt.Sprint(100 + i), "v"} })
	st = s.WaitFor("diverged", waitTimeout, func(st *LogStatus) bool { return st.State == "diverged" })
	if lc := lastCheck(t, st); lc == nil || lc.Result != "mismatch" || !slices.Equal(lc.Differs, []string{"kv"}) {
		t.Fatalf("after a row changed by hand: %s", st.Body)
	}
}
