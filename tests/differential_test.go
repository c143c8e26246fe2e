package tests

// The differential test: a generated workload (diffgen_test.go) runs
// against a master and two slaves (real processes) over both APIs, and in
// process against a plain modernc.org/sqlite database, the reference, with
// SQLite's own transaction semantics for each request (one transaction for
// a request that is all-or-nothing, autocommit for each statement of one
// that is not). Every write's acceptance and results, every read's rows,
// and at checkpoints every table's content are compared with the
// reference; every node's /db/checksum (every table, rowids, root pages,
// sqlite_* and FTS5 shadow tables) is compared node against node. On a
// mismatch the test prints the seed and a reduced reproduction.
//
//	go test ./tests -run Differential                  # seeds 1..3 (CI)
//	WALSHIP_DIFF_SEEDS=500 WALSHIP_DIFF_REQUESTS=300 go test ./tests -run Differential -timeout 0
//	WALSHIP_DIFF_SEED=1234 go test ./tests -run Differential -v   # one seed
//
// A mismatch stops the test after shrinking it, unless WALSHIP_DIFF_KEEP_GOING
// is set: then every seed runs and each mismatch is reported unshrunk.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sqlite "modernc.org/sqlite"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func TestDifferential(t *testing.T) {
	seeds := envInt("WALSHIP_DIFF_SEEDS", 3)
	requests := envInt("WALSHIP_DIFF_REQUESTS", 120)
	// The same seeds by default, so that a CI run is repeatable; the long
	// runs pick others with WALSHIP_DIFF_FIRST.
	first := uint64(envInt("WALSHIP_DIFF_FIRST", 1))
	if s := envInt("WALSHIP_DIFF_SEED", 0); s > 0 {
		first, seeds = uint64(s), 1
	}
	var total diffStats
	mismatches := 0
	for i := range seeds {
		seed := first + uint64(i)
		reqs := generate(seed, requests)
		var st diffStats
		m := runIsolated(t, func(tb testing.TB) *mismatch { return runWorkload(tb, reqs, &st) })
		total.add(st)
		if testing.Verbose() {
			t.Logf("seed %d: %d steps, mismatch: %v", seed, st.steps, m != nil)
		}
		if m != nil {
			mismatches++
			t.Errorf("seed %d: request %d of %d: %s\n%s", seed, m.at, len(reqs), m.what, m.detail)
			if os.Getenv("WALSHIP_DIFF_KEEP_GOING") != "" {
				continue // the other seeds too; shrink one with WALSHIP_DIFF_SEED
			}
			small := shrink(t, reqs, m)
			var b strings.Builder
			for _, r := range small {
				fmt.Fprintf(&b, "  %s\n", r)
			}
			t.Fatalf("seed %d: reduced to %d steps (WALSHIP_DIFF_SEED=%d reproduces the whole run):\n%s", seed, len(small), seed, b.String())
		}
	}
	t.Logf("seeds %d..%d: %d steps, %d statements, %d reads, %d checkpoints, %d disruptions; %d mismatches",
		first, first+uint64(seeds)-1, total.steps, total.statements, total.reads, total.checkpoints, total.disruptions, mismatches)
}

type diffStats struct{ steps, statements, reads, checkpoints, disruptions int }

func (s *diffStats) add(o diffStats) {
	s.steps += o.steps
	s.statements += o.statements
	s.reads += o.reads
	s.checkpoints += o.checkpoints
	s.disruptions += o.disruptions
}

// generate returns the workload of seed: n steps.
func generate(seed uint64, n int) []gRequest {
	ref, err := openRef(filepath.Join(os.TempDir(), fmt.Sprintf("walship-diffgen-%d-%d.db", os.Getpid(), seed)))
	if err != nil {
		panic(err)
	}
	defer ref.close()
	g := newGen(seed)
	out := make([]gRequest, 0, n)
	for range n {
		r := g.next()
		out = append(out, r)
		ref.apply(r)
		g.m = ref.model()
	}
	return out
}

// mismatch is the first difference a run found.
type mismatch struct {
	at     int // the step
	what   string
	detail string
}

// quietTB is a testing.TB that records a failure instead of failing the
// test, so that a run (and the shrinker's runs) can fail on their own.
type quietTB struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	msg      string
	cleanups []func()
	dir      string
}

func (q *quietTB) record(msg string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.failed {
		q.failed, q.msg = true, msg
	}
}
func (q *quietTB) Helper()                           {}
func (q *quietTB) Errorf(format string, args ...any) { q.record(fmt.Sprintf(format, args...)) }
func (q *quietTB) Error(args ...any)                 { q.record(fmt.Sprint(args...)) }
func (q *quietTB) Fatalf(format string, args ...any) {
	q.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (q *quietTB) Fatal(args ...any)               { q.record(fmt.Sprint(args...)); runtime.Goexit() }
func (q *quietTB) FailNow()                        { q.record("FailNow"); runtime.Goexit() }
func (q *quietTB) Fail()                           { q.record("Fail") }
func (q *quietTB) Failed() bool                    { q.mu.Lock(); defer q.mu.Unlock(); return q.failed }
func (q *quietTB) Log(args ...any)                 {}
func (q *quietTB) Logf(format string, args ...any) {}
func (q *quietTB) Cleanup(f func())                { q.cleanups = append(q.cleanups, f) }
func (q *quietTB) TempDir() string {
	d, err := os.MkdirTemp(q.dir, "run-")
	if err != nil {
		panic(err)
	}
	return d
}

// runIsolated runs fn on its own goroutine with a quietTB, runs the
// cleanups it registered, and returns the mismatch it found, or one made of
// the failure it recorded.
func runIsolated(t testing.TB, fn func(testing.TB) *mismatch) *mismatch {
	q := &quietTB{TB: t, dir: t.TempDir()}
	var m *mismatch
	done := make(chan struct{})
	go func() {
		defer close(done)
		m = fn(q)
	}()
	<-done
	for _, f := range slices.Backward(q.cleanups) {
		f()
	}
	_ = os.RemoveAll(q.dir)
	if m == nil && q.Failed() {
		m = &mismatch{at: -1, what: "the run failed", detail: q.msg}
	}
	return m
}

// shrink drops steps while the run still finds a mismatch (delta
// debugging), within WALSHIP_DIFF_SHRINK_SECONDS (120 by default).
func shrink(t *testing.T, reqs []gRequest, m *mismatch) []gRequest {
	if m.at >= 0 {
		reqs = reqs[:m.at+1]
	}
	deadline := time.Now().Add(time.Duration(envInt("WALSHIP_DIFF_SHRINK_SECONDS", 120)) * time.Second)
	fails := func(rs []gRequest) bool {
		var st diffStats
		got := runIsolated(t, func(tb testing.TB) *mismatch { return runWorkload(tb, rs, &st) })
		return got != nil && got.at >= 0
	}
	for chunk := len(reqs) / 2; chunk >= 1 && time.Now().Before(deadline); {
		removed := false
		for start := 0; start+chunk <= len(reqs) && time.Now().Before(deadline); {
			try := slices.Concat(reqs[:start], reqs[start+chunk:])
			if len(try) > 0 && fails(try) {
				reqs, removed = try, true
				continue
			}
			start += chunk
		}
		if !removed {
			chunk /= 2
		}
	}
	return reqs
}

// runWorkload runs reqs on a new cluster and a new reference, and returns
// the first mismatch.
func runWorkload(tb testing.TB, reqs []gRequest, st *diffStats) *mismatch {
	c := NewCluster(tb)
	master := c.MustRunMaster()
	nodes := []*Node{master, c.MustRunSlave(1, master), c.MustRunSlave(2, master)}
	ref, err := openRef(filepath.Join(tb.TempDir(), "reference.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer ref.close()
	r := &diffRun{tb: tb, nodes: nodes, ref: ref, st: st}
	for i, req := range reqs {
		st.steps++
		if d := r.step(req); d != "" {
			return &mismatch{at: i, what: req.String(), detail: d}
		}
		if (i+1)%40 == 0 || i == len(reqs)-1 {
			st.checkpoints++
			if d := r.checkpoint(); d != "" {
				return &mismatch{at: i, what: "checkpoint after " + req.String(), detail: d}
			}
		}
	}
	return nil
}

type diffRun struct {
	tb     testing.TB
	nodes  []*Node
	ref    *refDB
	st     *diffStats
	paused int
}

// step runs one request on the cluster and the reference and compares.
func (r *diffRun) step(req gRequest) string {
	if req.Disrupt != "" {
		r.st.disruptions++
		switch req.Disrupt {
		case "restart-master":
			r.nodes[0].Restart()
		case "restart-slave":
			if req.Target != r.paused {
				r.nodes[req.Target].Restart()
			}
		case "pause-slave":
			if r.paused == 0 {
				r.paused = req.Target
				r.nodes[req.Target].Stop()
			}
		case "resume-slave":
			if r.paused == req.Target {
				r.nodes[req.Target].Cont()
				r.paused = 0
				// A slave paused across a master restart still holds an
				// idle connection to the old master, and may forward the
				// next write on it before it notices: 503, the write not
				// applied, which a client retries (README). Let it catch
				// up first, so that outcomes stay known.
				if err := r.waitCaughtUp(r.nodes[req.Target]); err != nil {
					return err.Error()
				}
			}
		}
		return ""
	}
	target := req.Target
	if target == r.paused && target != 0 {
		target = 0 // a paused slave takes nothing
	}
	n := r.nodes[target]
	r.st.statements += len(req.Stmts)
	want := r.ref.apply(req)
	switch req.API {
	case "qseed", "qrq":
		r.st.reads++
		if target != 0 {
			if err := r.waitCaughtUp(n); err != nil {
				return err.Error()
			}
		}
	}
	got, err := r.send(n, req)
	if err != nil {
		return fmt.Sprintf("%s: %v", n.name, err)
	}
	if d := compareResults(req, want, got); d != "" {
		return d
	}
	if (req.API == "qseed" || req.API == "qrq") && target != 0 {
		// The same read at the master: values pinned per entry (the
		// time, random()) compared node with node.
		at, err := r.send(r.nodes[0], req)
		if err != nil {
			return fmt.Sprintf("master: %v", err)
		}
		for i := range min(len(got.stmts), len(at.stmts)) {
			if !slices.Equal(got.stmts[i].raw, at.stmts[i].raw) || got.stmts[i].err != at.stmts[i].err {
				return fmt.Sprintf("%s and the master read differently: %s / %s", n.name, firstDiff(at.stmts[i].raw, got.stmts[i].raw), got.stmts[i].err)
			}
		}
	}
	return ""
}

// waitCaughtUp waits until slave n applied everything the master has.
func (r *diffRun) waitCaughtUp(n *Node) error {
	ms, err := r.nodes[0].LogStatus()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		s, err := n.LogStatus()
		if err == nil && s.AppliedIndex >= ms.LastIndex {
			return nil
		}
		if err == nil && s.State == "diverged" {
			return fmt.Errorf("%s diverged: %s", n.name, s.Body)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not apply index %d within %v", n.name, ms.LastIndex, waitTimeout)
		}
		time.Sleep(2 * time.Millisecond) // ok: polling with a deadline
	}
}

// checkpoint waits until every node holds the master's last index, then
// compares every node's checksum and the master's content with the
// reference's.
func (r *diffRun) checkpoint() string {
	if r.paused != 0 {
		r.nodes[r.paused].Cont()
		r.paused = 0
	}
	for _, n := range r.nodes[1:] {
		if err := r.waitCaughtUp(n); err != nil {
			return err.Error()
		}
	}
	var sums []*Checksum
	for _, n := range r.nodes {
		s, err := n.Checksum()
		if err != nil {
			return err.Error()
		}
		sums = append(sums, s)
	}
	for i, s := range sums[1:] {
		n := r.nodes[i+1]
		if s.Index != sums[0].Index {
			return fmt.Sprintf("%s checksummed index %d, the master %d", n.name, s.Index, sums[0].Index)
		}
		if s.Checksum != sums[0].Checksum {
			var diffs []string
			for table, sum := range sums[0].Tables {
				if s.Tables[table] != sum {
					diffs = append(diffs, table+": "+r.tableDiff(r.nodes[0], n, table))
				}
			}
			for table := range s.Tables {
				if _, ok := sums[0].Tables[table]; !ok {
					diffs = append(diffs, table+": only on "+n.name)
				}
			}
			sort.Strings(diffs)
			return fmt.Sprintf("%s's checksum differs from the master's: %s", n.name, strings.Join(diffs, "; "))
		}
	}
	want, err := r.ref.content()
	if err != nil {
		return "reference: " + err.Error()
	}
	for _, item := range want {
		got, err := quotedRows(r.nodes[0], item.query)
		if err != nil {
			return fmt.Sprintf("master: %s: %v", item.query, err)
		}
		if !slices.Equal(got, item.rows) {
			return fmt.Sprintf("the master's content differs from the reference: %s\n%s", item.query, firstDiff(item.rows, got))
		}
	}
	return ""
}

// tableDiff shows the first row of table that differs between nodes a and b.
func (r *diffRun) tableDiff(a, b *Node, table string) string {
	q := `SELECT quote(rowid), * FROM "` + table + `" ORDER BY rowid`
	ra, err := quotedRows(a, q)
	if err != nil {
		q = `SELECT * FROM "` + table + `"`
		ra, _ = quotedRows(a, q)
	}
	rb, _ := quotedRows(b, q)
	return firstDiff(ra, rb)
}

func firstDiff(want, got []string) string {
	for i := 0; i < len(want) || i < len(got); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			return fmt.Sprintf("row %d: want %s, got %s (%d rows vs %d)", i, w, g, len(want), len(got))
		}
	}
	return "equal"
}

// quotedRows runs a read on n (POST /) and returns each row as JSON.
func quotedRows(n *Node, q string) ([]string, error) {
	res, err := n.Query(q)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(res.Values))
	for i, row := range res.Values {
		b, _ := json.Marshal(row)
		out[i] = string(b)
	}
	return out, nil
}

// stmtResult is what one statement did, on the cluster or the reference.
type stmtResult struct {
	ran     bool // a result was given (a transaction stops at its first error)
	err     string
	code    int // SQLite's extended code, 0 when unknown
	changes int64
	lastID  int64
	lastSet bool // the statement set last_insert_rowid() (reference)
	cols    []string
	rows    []string // each row as JSON, sorted; volatile columns masked
	raw     []string // the rows unmasked (cluster), to compare node with node
}

// reqResult is what a request did.
type reqResult struct {
	status int    // HTTP status (cluster)
	err    string // the request's error (seed API), or the reference's
	stmts  []stmtResult
}

// send sends req to n and decodes the answer.
func (r *diffRun) send(n *Node, req gRequest) (*reqResult, error) {
	switch req.API {
	case "seed", "dump", "cache", "qseed":
		cmd := "exec"
		if req.API == "qseed" {
			cmd = "query"
		}
		body, _ := json.Marshal(Request{Command: cmd, Query: seedText(req)})
		status, b, err := n.Post(body)
		if err != nil {
			return nil, err
		}
		return decodeSeed(req, status, b)
	case "queue":
		for _, s := range req.Stmts {
			body, _ := json.Marshal([]string{s.SQL})
			if status, b, err := rqPostRaw(n, "/db/execute?queue", body); err != nil || status != http.StatusOK {
				return nil, fmt.Errorf("queue: %d %s %v", status, b, err)
			}
		}
		if status, b, err := rqPostRaw(n, "/db/execute?queue&wait&timeout=30s", nil); err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("queue flush: %d %s %v", status, b, err)
		}
		return &reqResult{status: http.StatusOK}, nil
	}
	path := "/db/execute?"
	switch req.API {
	case "qrq":
		path = "/db/query?level=none&"
	case "timeout":
		path += "db_timeout=50ms&"
	}
	if req.Txn {
		path += "transaction&"
	}
	var sqls []string
	for _, s := range req.Stmts {
		sqls = append(sqls, s.SQL)
	}
	body, _ := json.Marshal(sqls)
	status, b, err := rqPostRaw(n, strings.TrimSuffix(path, "&"), body)
	if err != nil {
		return nil, err
	}
	return decodeRq(req, status, b)
}

func seedText(req gRequest) string {
	var b strings.Builder
	switch req.API {
	case "cache":
		for i := range 140 {
			fmt.Fprintf(&b, "SELECT %d AS n%d;\n", i, i)
		}
		return b.String()
	case "dump":
		b.WriteString("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")
	}
	for _, s := range req.Stmts {
		b.WriteString(s.SQL + ";\n")
	}
	if req.API == "dump" {
		b.WriteString("COMMIT;\n")
	}
	return b.String()
}

func rqPostRaw(n *Node, path string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func decodeSeed(req gRequest, status int, b []byte) (*reqResult, error) {
	out := &reqResult{status: status}
	if status != http.StatusOK {
		var e struct {
			Error string `json:"error"`
			Code  int    `json:"sqlite_extended_code"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			return nil, fmt.Errorf("HTTP %d without an error: %s", status, b)
		}
		out.err = e.Error
		return out, nil
	}
	var res struct {
		RowsAffected *int64   `json:"rows_affected"`
		Columns      []string `json:"columns"`
		Values       [][]any  `json:"values"`
	}
	if err := decodeJSON(b, &res); err != nil {
		return nil, fmt.Errorf("decode %s: %w", b, err)
	}
	last := stmtResult{ran: true, cols: res.Columns, rows: jsonRows(res.Columns, res.Values), raw: jsonRows(nil, res.Values)}
	if res.RowsAffected != nil {
		last.changes = *res.RowsAffected
	}
	out.stmts = []stmtResult{last}
	return out, nil
}

func decodeRq(req gRequest, status int, b []byte) (*reqResult, error) {
	out := &reqResult{status: status}
	if status != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", status, b)
	}
	var res struct {
		Results []struct {
			LastInsertID int64    `json:"last_insert_id"`
			RowsAffected int64    `json:"rows_affected"`
			Error        string   `json:"error"`
			Columns      []string `json:"columns"`
			Values       [][]any  `json:"values"`
			ErrorV2      *struct {
				SQLite *struct {
					ExtendedCode int `json:"extended_code"`
				} `json:"sqlite"`
			} `json:"error_v2"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := decodeJSON(b, &res); err != nil {
		return nil, fmt.Errorf("decode %s: %w", b, err)
	}
	if res.Error != "" {
		return nil, fmt.Errorf("request error: %s", res.Error)
	}
	for _, x := range res.Results {
		s := stmtResult{ran: true, err: x.Error, changes: x.RowsAffected, lastID: x.LastInsertID, cols: x.Columns,
			rows: jsonRows(x.Columns, x.Values), raw: jsonRows(nil, x.Values)}
		if x.ErrorV2 != nil && x.ErrorV2.SQLite != nil {
			s.code = x.ErrorV2.SQLite.ExtendedCode
		}
		out.stmts = append(out.stmts, s)
	}
	return out, nil
}

// jsonRows encodes rows as sorted JSON lines, volatile columns (named v…)
// masked.
func jsonRows(cols []string, values [][]any) []string {
	out := make([]string, 0, len(values))
	for _, row := range values {
		cells := make([]any, len(row))
		for i, v := range row {
			if i < len(cols) && volatileName(cols[i]) {
				v = "<pinned>"
			}
			cells[i] = v
		}
		b, _ := json.Marshal(cells)
		out = append(out, string(b))
	}
	sort.Strings(out)
	return out
}

func volatileName(s string) bool { return len(s) > 0 && (s[0] == 'v' || s[0] == 'V') }

// compareResults compares what the cluster answered with the reference.
func compareResults(req gRequest, want, got *reqResult) string {
	switch req.API {
	case "queue":
		return ""
	case "cache":
		if got.status != http.StatusOK {
			return fmt.Sprintf("reads in an exec answered %d %s", got.status, got.err)
		}
		return ""
	case "seed", "dump", "qseed":
		wantOK := want.err == ""
		if gotOK := got.status == http.StatusOK; wantOK != gotOK {
			return fmt.Sprintf("reference: error %q; cluster: HTTP %d %s", want.err, got.status, got.err)
		}
		if !wantOK {
			return ""
		}
		// POST / answers the sum of rows affected, and the last
		// statement's rows.
		var sum int64
		volatile := false
		for i, s := range want.stmts {
			sum += s.changes
			volatile = volatile || req.Stmts[i].Volatile
		}
		g := got.stmts[0]
		if req.API != "qseed" && g.changes != sum && !volatile {
			return fmt.Sprintf("rows_affected %d, the reference's changes() %d", g.changes, sum)
		}
		last := want.stmts[len(want.stmts)-1]
		if req.Stmts[len(req.Stmts)-1].Rows {
			return compareRows(req.Stmts[len(req.Stmts)-1], last, g)
		}
		return ""
	}
	// The rqlite API: one result per statement, up to the first error of
	// a transaction.
	if len(got.stmts) != countRan(want.stmts) {
		return fmt.Sprintf("%d results, the reference ran %d statements", len(got.stmts), countRan(want.stmts))
	}
	for i, g := range got.stmts {
		w, s := want.stmts[i], req.Stmts[i]
		if (w.err == "") != (g.err == "") {
			return fmt.Sprintf("statement %d %q: reference error %q; cluster error %q", i, s.SQL, w.err, g.err)
		}
		if w.err != "" {
			if w.code != 0 && g.code != 0 && w.code != g.code && !s.Endless {
				return fmt.Sprintf("statement %d %q: SQLite code %d, the reference's %d (%q / %q)", i, s.SQL, g.code, w.code, g.err, w.err)
			}
			continue
		}
		if s.Volatile {
			continue
		}
		if s.Rows {
			if d := compareRows(s, w, g); d != "" {
				return fmt.Sprintf("statement %d: %s", i, d)
			}
			continue
		}
		if g.changes != w.changes {
			return fmt.Sprintf("statement %d %q: rows_affected %d, the reference's changes() %d", i, s.SQL, g.changes, w.changes)
		}
		if s.Insert && w.changes > 0 && w.lastSet && g.lastID != w.lastID {
			return fmt.Sprintf("statement %d %q: last_insert_id %d, the reference's %d", i, s.SQL, g.lastID, w.lastID)
		}
	}
	return ""
}

func countRan(rs []stmtResult) int {
	n := 0
	for _, r := range rs {
		if r.ran {
			n++
		}
	}
	return n
}

func compareRows(s gStmt, w, g stmtResult) string {
	if s.Volatile {
		return "" // compared between nodes, by checksum
	}
	if !slices.Equal(w.cols, g.cols) && len(w.rows) > 0 {
		return fmt.Sprintf("%q: columns %q, the reference's %q", s.SQL, g.cols, w.cols)
	}
	if !slices.Equal(w.rows, g.rows) {
		return fmt.Sprintf("%q: %s", s.SQL, firstDiff(w.rows, g.rows))
	}
	return ""
}

// refDB is the reference: plain modernc.org/sqlite through database/sql, on
// one connection, with foreign keys on as walship has them. A request runs
// as walship's rule says: in one transaction when it is all-or-nothing,
// each statement in a savepoint of its own otherwise.
type refDB struct {
	db   *sql.DB
	conn *sql.Conn
	path string
}

func openRef(path string) (*refDB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		return nil, err
	}
	return &refDB{db: db, conn: conn, path: path}, nil
}

func (r *refDB) close() {
	r.conn.Close()
	r.db.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(r.path + suffix)
	}
}

func (r *refDB) exec(q string) error {
	_, err := r.conn.ExecContext(context.Background(), q)
	return err
}

// run runs one statement in the reference.
func (r *refDB) run(s gStmt, api string) stmtResult {
	ctx := context.Background()
	res := stmtResult{ran: true}
	var before int64
	if s.Kind == 'w' {
		_ = r.conn.QueryRowContext(ctx, "SELECT last_insert_rowid()").Scan(&before)
	}
	var err error
	if s.Rows {
		var rows *sql.Rows
		rows, err = r.conn.QueryContext(ctx, s.SQL)
		if err == nil {
			res.cols, res.rows, err = readRows(rows, api)
		}
	} else {
		_, err = r.conn.ExecContext(ctx, s.SQL)
	}
	if err != nil {
		return failed(err)
	}
	if s.Kind == 'w' {
		_ = r.conn.QueryRowContext(ctx, "SELECT changes(), last_insert_rowid()").Scan(&res.changes, &res.lastID)
		// A statement that inserted no row into a rowid table leaves
		// SQLite's last_insert_rowid() as it was: walship's answer for
		// it is 0 (nothing carries over between entries), rqlite's the
		// connection's stale value. Only a value the statement set is
		// compared.
		res.lastSet = res.lastID != before
	}
	return res
}

// readRows reads rows as the API answers them: POST / gives values as
// SQLite stores them (BLOBs base64), rqlite's API gives a BLOB in a
// text-like column (or an expression) as a string.
func readRows(rows *sql.Rows, api string) ([]string, []string, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, err
	}
	types, _ := rows.ColumnTypes()
	values, err := scanAll(rows, len(cols))
	if err != nil {
		return nil, nil, err
	}
	for _, vals := range values {
		for i, v := range vals {
			if b, ok := v.([]byte); ok && api != "qseed" && api != "seed" && api != "dump" && rqTextLike(types[i].DatabaseTypeName()) {
				vals[i] = string(b)
			}
			if f, ok := v.(float64); ok && (f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308) {
				vals[i] = nil
				if f == f && (api == "qseed" || api == "seed" || api == "dump") {
					vals[i] = map[bool]string{true: "Inf", false: "-Inf"}[f > 0]
				}
			}
		}
	}
	// Through JSON, as the cluster's answers come.
	b, _ := json.Marshal(values)
	var back [][]any
	if err := decodeJSON(b, &back); err != nil {
		return nil, nil, err
	}
	return cols, jsonRows(cols, back), nil
}

// scanAll reads every row of rows, each as n values.
func scanAll(rows *sql.Rows, n int) ([][]any, error) {
	var out [][]any
	for rows.Next() {
		vals := make([]any, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

func rqTextLike(decl string) bool {
	d := strings.ToLower(decl)
	return d == "" || d == "text" || d == "json" || d == "clob" || strings.HasPrefix(d, "varchar")
}

// apply runs req in the reference with SQLite's own transaction semantics,
// as walship promises them: all-or-nothing for POST / and ?transaction,
// each statement on its own otherwise.
func (r *refDB) apply(req gRequest) *reqResult {
	out := &reqResult{}
	if req.Disrupt != "" || req.API == "cache" {
		return out
	}
	all := req.Txn || req.API == "seed" || req.API == "dump"
	if req.API == "qseed" || req.API == "qrq" {
		for _, s := range req.Stmts {
			res := r.run(s, req.API)
			out.stmts = append(out.stmts, res)
			if res.err != "" {
				out.err = res.err
			}
		}
		return out
	}
	if req.API == "dump" {
		_ = r.exec("PRAGMA foreign_keys=OFF")
		defer func() { _ = r.exec("PRAGMA foreign_keys=ON") }()
	}
	if !all {
		// Each statement on its own, in a savepoint: a failed statement
		// leaves no trace (not even the rows an OR FAIL wrote before it
		// failed), and one that leaves a deferred foreign key violated
		// fails at its end.
		for _, s := range req.Stmts {
			if s.Endless {
				out.stmts = append(out.stmts, stmtResult{ran: true, err: "execute timeout"})
				continue
			}
			_ = r.exec("SAVEPOINT statement")
			res := r.run(s, req.API)
			if res.err != "" {
				_ = r.exec("ROLLBACK TO statement") // fails when OR ROLLBACK ended it
				_ = r.exec("RELEASE statement")
			} else if err := r.exec("RELEASE statement"); err != nil {
				res = failed(err)
				_ = r.exec("ROLLBACK")
			}
			out.stmts = append(out.stmts, res)
		}
		return out
	}
	if err := r.exec("BEGIN"); err != nil {
		out.err = err.Error()
		return out
	}
	for i, s := range req.Stmts {
		res := stmtResult{ran: true, err: "execute timeout"}
		if !s.Endless {
			res = r.run(s, req.API)
		}
		out.stmts = append(out.stmts, res)
		if res.err != "" {
			out.err = res.err
			for range req.Stmts[i+1:] {
				out.stmts = append(out.stmts, stmtResult{})
			}
			_ = r.exec("ROLLBACK")
			return out
		}
	}
	if err := r.exec("COMMIT"); err != nil {
		// A deferred foreign key: walship fails the request's last
		// statement with it.
		out.err = err.Error()
		out.stmts[len(out.stmts)-1] = failed(err)
		_ = r.exec("ROLLBACK")
	}
	return out
}

// failed is the result of a statement that failed with err.
func failed(err error) stmtResult {
	res := stmtResult{ran: true, err: err.Error()}
	var se *sqlite.Error
	if errors.As(err, &se) {
		res.code = se.Code()
	}
	return res
}

// notShadow leaves out the rows of sqlite_stat1 about virtual tables'
// shadow tables.
const notShadow = "tbl NOT IN (SELECT name FROM pragma_table_list WHERE type = 'shadow')"

// contentItem is one read of the content check and its rows on the
// reference.
type contentItem struct {
	query string
	rows  []string
}

// content returns the reference's content, table by table, as reads that
// give the same rows on a node holding the same data: every table but the
// volatile ones (named v…) and FTS5's shadow tables (their layout differs
// between the reference's transactions and the cluster's; nodes compare
// them by checksum), rowids included where they are not picked at random,
// sqlite_sequence, sqlite_stat1 (as a set), the schema (without root
// pages) and user_version.
func (r *refDB) content() ([]contentItem, error) {
	var qs []string
	qs = append(qs, `SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'v%' AND name NOT LIKE '\_walship%' ESCAPE '\' ORDER BY type, name`,
		"SELECT user_version FROM pragma_user_version")
	rows, err := r.conn.QueryContext(context.Background(),
		"SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') ORDER BY name")
	if err != nil {
		return nil, err
	}
	type tbl struct {
		name, typ string
		wr        bool
	}
	var tables []tbl
	for rows.Next() {
		var t tbl
		if err := rows.Scan(&t.name, &t.typ, &t.wr); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		switch {
		case volatileName(t.name) || t.name == "sqlite_schema" || t.name == "sqlite_stat4":
			continue
		case t.name == "sqlite_sequence":
			qs = append(qs, "SELECT quote(name), quote(seq) FROM sqlite_sequence ORDER BY name")
			continue
		case t.name == "sqlite_stat1":
			// FTS5's shadow tables are counted as FTS5 laid them out,
			// which depends on transaction boundaries: nodes compare
			// them by checksum.
			qs = append(qs, "SELECT quote(tbl), quote(idx), quote(stat) FROM sqlite_stat1 WHERE tbl NOT LIKE 'v%' AND "+notShadow+" ORDER BY 1, 2, 3")
			continue
		}
		cols, pks, err := r.columns(t.name)
		if err != nil {
			return nil, err
		}
		var sel []string
		for _, c := range cols {
			sel = append(sel, `quote("`+c+`")`)
		}
		if len(sel) == 0 {
			continue
		}
		switch {
		case t.name[0] == 'r':
			qs = append(qs, fmt.Sprintf(`SELECT %s FROM "%s" ORDER BY %s`, strings.Join(sel, ", "), t.name, strings.Join(sel, ", ")))
		case t.wr:
			qs = append(qs, fmt.Sprintf(`SELECT %s FROM "%s" ORDER BY %s`, strings.Join(sel, ", "), t.name, strings.Join(pks, ", ")))
		default:
			qs = append(qs, fmt.Sprintf(`SELECT quote(rowid), %s FROM "%s" ORDER BY rowid`, strings.Join(sel, ", "), t.name))
		}
	}
	var out []contentItem
	for _, q := range qs {
		rows, err := r.conn.QueryContext(context.Background(), q)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		cols, _ := rows.Columns()
		values, err := scanAll(rows, len(cols))
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		var lines []string
		for _, vals := range values {
			b, _ := json.Marshal(vals)
			var back []any
			_ = decodeJSON(b, &back)
			b, _ = json.Marshal(back)
			lines = append(lines, string(b))
		}
		out = append(out, contentItem{query: q, rows: lines})
	}
	return out, nil
}

// columns returns the non-volatile, non-hidden columns of table, and its
// primary key columns in order.
func (r *refDB) columns(table string) (cols, pks []string, err error) {
	rows, err := r.conn.QueryContext(context.Background(), "SELECT name, pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid", table)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	type pkCol struct {
		name string
		pk   int
	}
	var pkc []pkCol
	for rows.Next() {
		var name string
		var pk, hidden int
		if err := rows.Scan(&name, &pk, &hidden); err != nil {
			return nil, nil, err
		}
		if hidden == 1 || volatileName(name) {
			continue
		}
		cols = append(cols, name)
		if pk > 0 {
			pkc = append(pkc, pkCol{name, pk})
		}
	}
	sort.Slice(pkc, func(i, j int) bool { return pkc[i].pk < pkc[j].pk })
	for _, p := range pkc {
		pks = append(pks, `"`+p.name+`"`)
	}
	return cols, pks, rows.Err()
}

// model reads the reference's schema back for the generator.
func (r *refDB) model() model {
	ctx := context.Background()
	var m model
	rows, err := r.conn.QueryContext(ctx, "SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite%' ORDER BY name")
	if err != nil {
		return m
	}
	for rows.Next() {
		t := &mTable{}
		var typ string
		if rows.Scan(&t.name, &typ, &t.withoutRowid, &t.strict) != nil {
			continue
		}
		t.kind = t.name[0]
		if typ == "virtual" {
			t.kind = 'f'
		}
		if !strings.ContainsRune("tvrf", rune(t.kind)) {
			continue
		}
		m.tables = append(m.tables, t)
	}
	rows.Close()
	for _, t := range m.tables {
		crows, err := r.conn.QueryContext(ctx, "SELECT name, type, pk, \"notnull\", hidden FROM pragma_table_xinfo(?) ORDER BY cid", t.name)
		if err != nil {
			continue
		}
		for crows.Next() {
			var c mCol
			var pk, nn, hidden int
			if crows.Scan(&c.name, &c.decl, &pk, &nn, &hidden) != nil {
				continue
			}
			c.pk, c.notNull, c.generated = pk > 0, nn != 0, hidden == 2 || hidden == 3
			c.volatile = volatileName(c.name)
			if hidden != 1 {
				t.cols = append(t.cols, c)
			}
		}
		crows.Close()
	}
	srows, err := r.conn.QueryContext(ctx, "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite%' AND type IN ('view', 'trigger', 'index') ORDER BY name")
	if err != nil {
		return m
	}
	defer srows.Close()
	for srows.Next() {
		var typ, name string
		if srows.Scan(&typ, &name) != nil {
			continue
		}
		switch typ {
		case "view":
			m.views = append(m.views, name)
		case "trigger":
			m.triggers = append(m.triggers, name)
		case "index":
			m.indexes = append(m.indexes, name)
		}
	}
	return m
}
