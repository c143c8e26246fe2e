package tests

// Scenario 4, corruption: damaged files of a stopped master. A flipped
// byte in a stored log entry, a truncated log.db and a truncated db.sqlite
// are each found when the file is read or the node starts, with a clear
// error; the node never crashes (no SIGBUS, no panic), never applies a
// damaged entry and never serves one to a slave.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// corruptValue is the value of row i of the kv table of these tests: a
// marker that occurs once in log.db, in the entry that inserts it.
func corruptValue(i int) string { return fmt.Sprintf("walship-corrupt-row-%04d", i) }

const (
	corruptSchema = `CREATE TABLE kv (i INTEGER PRIMARY KEY, v TEXT)`
	corruptInsert = `INSERT INTO kv (i, v) VALUES (?, ?)`
	corruptRows   = `SELECT i, v FROM kv ORDER BY i`
)

// writeRows inserts rows from..to, one write (one log entry) each.
func writeRows(n *Node, from, to int) {
	n.t.Helper()
	for i := from; i <= to; i++ {
		n.MustExec(corruptInsert, i, corruptValue(i))
	}
}

// rowsJSON is the values of corruptRows when kv holds rows 1..to.
func rowsJSON(to int) string {
	vals := [][]any{}
	for i := 1; i <= to; i++ {
		vals = append(vals, []any{i, corruptValue(i)})
	}
	b, _ := json.Marshal(vals)
	return string(b)
}

// flipIn flips one byte in the middle of every occurrence of marker in the
// file at path, in place: the file keeps its size, the entry its length,
// and only its checksum can tell. bbolt copies a page on write, so stale
// copies of an entry may linger in free pages; flipping them too makes
// sure the live one is hit.
func flipIn(t *testing.T, path, marker string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(marker)) {
		t.Fatalf("%s does not hold %q", path, marker)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(marker))
		if i < 0 {
			break
		}
		at := int64(off + i + len(marker)/2)
		if _, err := f.WriteAt([]byte{b[at] ^ 0x20}, at); err != nil {
			t.Fatal(err)
		}
		off += i + len(marker)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// terminate stops the node with SIGTERM, so that it closes its files (and
// SQLite checkpoints its WAL into db.sqlite), and waits for a clean exit.
func terminate(t *testing.T, n *Node) {
	t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.expect = true
	n.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", n, err)
	}
	select {
	case <-exited:
	case <-time.After(exitTimeout):
		t.Fatalf("%s still runs %v after SIGTERM", n, exitTimeout)
	}
	if code := n.exitState().ExitCode(); code != 0 {
		t.Fatalf("%s exited with status %d after SIGTERM:\n%s", n, code, tail([]byte(n.Output()), 4000))
	}
}

// mustRefuseStart starts n, which must exit by itself with a non-zero
// status, without a crash, saying each of wants (lower case) on its output.
func mustRefuseStart(t *testing.T, n *Node, wants ...string) string {
	t.Helper()
	code, out := n.StartExpectExit(startTimeout)
	if crash := crashIn(out); crash != "" {
		t.Errorf("%s crashed instead of refusing to start: %s", n, crash)
	}
	for _, sig := range []string{"SIGBUS", "SIGSEGV", "unexpected fault address"} {
		if strings.Contains(out, sig) {
			t.Errorf("%s died of %s", n, sig)
		}
	}
	if code == 0 {
		t.Errorf("%s refused to start with status 0", n)
	}
	lo := strings.ToLower(out)
	for _, w := range wants {
		if !strings.Contains(lo, w) {
			t.Errorf("%s exited (status %d) without saying %q:\n%s", n, code, w, tail([]byte(out), 4000))
		}
	}
	if !t.Failed() {
		t.Logf("%s refused to start, status %d: %s", n, code, lastLine(out))
	}
	return out
}

// lastLine is the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// getFeed sends GET /log/entries with query q and returns the status and
// the body.
func getFeed(t *testing.T, n *Node, q string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/log/entries?"+q, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET /log/entries?%s: %v", q, err)
	}
	return resp.StatusCode, readAll(resp)
}

// TestCorruptEntryNeverServed flips a byte in a stored entry in the middle
// of the master's log, where the master's start does not read it (its
// database already applied it). The master starts and serves reads, but the
// feed answers 500 with an error naming the entry for every request that
// reaches it; a slave behind it never applies it, stays below it with
// exactly the content of the entries before it, and says why it is stuck.
func TestCorruptEntryNeverServed(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec(corruptSchema) // index 1
	writeRows(m, 1, 4)        // indexes 2..5
	c.WaitConverged(m)
	s.Kill()
	writeRows(m, 5, 10) // indexes 6..11; row 8 is entry 9
	const bad = 9
	last := m.MustLogStatus().LastIndex
	m.Kill()
	flipIn(t, filepath.Join(m.DataDir, "log.db"), corruptValue(bad-1))

	m.Start()
	if got := m.Dump(corruptRows); !strings.Contains(got, corruptValue(10)) {
		t.Fatalf("the master's reads: %s", got)
	}
	if st := m.MustLogStatus(); st.LastIndex != last {
		t.Fatalf("the master's last index is %d, was %d", st.LastIndex, last)
	}
	for _, q := range []string{"from=6", fmt.Sprintf("from=%d", bad), "from=1&max=100"} {
		status, body := getFeed(t, m, q)
		var e struct {
			Error string `json:"error"`
		}
		if status != http.StatusInternalServerError || json.Unmarshal(body, &e) != nil {
			t.Fatalf("GET /log/entries?%s: %d %.300q, want 500 with a JSON error", q, status, body)
		}
		if !strings.Contains(e.Error, "corrupt") || !strings.Contains(e.Error, fmt.Sprintf("entry %d:", bad)) ||
			!strings.Contains(e.Error, "checksum mismatch") {
			t.Errorf("GET /log/entries?%s: %q does not name the corrupt entry %d and its checksum", q, e.Error, bad)
		}
	}
	// The entries around it are served.
	for _, q := range []string{"from=1&max=3", fmt.Sprintf("from=%d", bad+1)} {
		if status, body := getFeed(t, m, q); status != http.StatusOK {
			t.Errorf("GET /log/entries?%s: %d %.300q, want 200", q, status, body)
		}
	}

	// The slave restarts at index 6 and cannot get past the damage: it
	// never serves /readyz, so poll its status instead.
	s.StartNoWait()
	st := s.WaitFor("reporting the master's error", waitTimeout, func(st *LogStatus) bool {
		return strings.Contains(string(st.Body), "corrupt")
	})
	t.Logf("the slave says: %s", st.Body)
	observe(t, 2*time.Second, func() {
		st := s.MustLogStatus()
		if st.AppliedIndex >= bad {
			t.Fatalf("the slave applied index %d, at or past the corrupt entry %d", st.AppliedIndex, bad)
		}
		if st.State == "streaming" || st.State == "diverged" {
			t.Fatalf("the slave is %s: %s", st.State, st.Body)
		}
		if got, want := s.Dump(corruptRows), rowsJSON(int(st.AppliedIndex)-1); valuesOf(t, got) != want {
			t.Fatalf("the slave at index %d holds %s, want the rows of the entries before it: %s", st.AppliedIndex, got, want)
		}
	})
	if !strings.Contains(m.Output(), "corrupt") {
		t.Errorf("the master's log does not mention the corrupt entry:\n%s", tail([]byte(m.Output()), 4000))
	}
}

// valuesOf is the "values" of a Dump, as compact JSON ("[]" for none).
func valuesOf(t *testing.T, dump string) string {
	t.Helper()
	var m struct {
		Values json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal([]byte(dump), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Values) == 0 || string(m.Values) == "null" {
		return "[]"
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m.Values); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestCorruptLastEntryRefusesStart flips a byte in the last entry, which
// the master reads when it opens its log: it refuses to start, naming the
// file, the entry and the checksum.
func TestCorruptLastEntryRefusesStart(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(corruptSchema)
	writeRows(m, 1, 4) // the last is entry 5
	m.Kill()
	flipIn(t, filepath.Join(m.DataDir, "log.db"), corruptValue(4))
	mustRefuseStart(t, m, "corrupt", "log.db", "entry 5:", "checksum mismatch")
}

// TestCorruptEntryNotReplayed flips a byte in an entry and removes the
// master's database, so that the master must rebuild it by replaying the
// whole log: it refuses to start at the damaged entry, and the database it
// leaves holds nothing of it.
func TestCorruptEntryNotReplayed(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(corruptSchema)
	writeRows(m, 1, 6)
	const bad = 5 // row 4
	m.Kill()
	flipIn(t, filepath.Join(m.DataDir, "log.db"), corruptValue(bad-1))
	for _, f := range []string{"db.sqlite", "db.sqlite-wal", "db.sqlite-shm"} {
		if err := os.Remove(filepath.Join(m.DataDir, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	mustRefuseStart(t, m, "replay", "corrupt", fmt.Sprintf("entry %d:", bad), "checksum mismatch")

	d, err := db.Open(filepath.Join(m.DataDir, "db.sqlite"), db.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.AppliedIndex(); got >= bad {
		t.Fatalf("the refused master's database applied index %d, at or past the corrupt entry %d", got, bad)
	}
	res, err := d.Query(context.Background(), []wal.Statement{{SQL: "SELECT count(*) FROM sqlite_schema WHERE name = 'kv'"}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Rows[0][0].Int != 0 {
		res, err := d.Query(context.Background(), []wal.Statement{{SQL: "SELECT count(*) FROM kv WHERE i >= ?", Params: []wal.Param{{Value: wal.Integer(bad - 1)}}}})
		if err != nil || res[0].Rows[0][0].Int != 0 {
			t.Fatalf("the refused master's database holds rows of the corrupt entry or after it (%v, %v)", res, err)
		}
	}
}

// TestTruncatedLogRefusesStart truncates the master's log.db to several
// sizes: bbolt would map the short file and die of SIGBUS on the first page
// past its end; the master refuses to start with an error that says the
// file is truncated (or, emptied, that it is a new log that the database
// does not follow).
func TestTruncatedLogRefusesStart(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(corruptSchema)
	for i := 1; i <= 40; i++ {
		m.MustExec(corruptInsert, i, strings.Repeat(corruptValue(i), 40)) // ~1 KB each
	}
	m.Kill()
	path := filepath.Join(m.DataDir, "log.db")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	for _, tc := range []struct {
		size  int
		wants []string
	}{
		{len(orig) / 2, []string{"log.db is truncated"}},
		{3 * ps, []string{"log.db is truncated"}},
		{ps + 100, []string{"log.db is truncated"}},
		{100, []string{"log.db", "corrupt"}},
		{0, []string{"refusing to start", "another history"}},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			if err := os.WriteFile(path, orig[:tc.size], 0o600); err != nil {
				t.Fatal(err)
			}
			mustRefuseStart(t, m, tc.wants...)
		})
	}
	// Put back, the log serves again: nothing was "repaired" away.
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	m.Start()
	if got := m.Count(`SELECT count(*) FROM kv`); got != 40 {
		t.Fatalf("after the log was put back: %d rows, want 40", got)
	}
}

// TestTruncatedSQLiteFile truncates the db.sqlite of a master and of a
// slave (after a clean stop, which checkpoints SQLite's WAL into it). Cut
// by whole pages, SQLite finds it at open; cut inside a page, SQLite would
// read the missing bytes as zeros and serve damaged rows, so walship checks
// that the file is whole pages. Either way the node refuses to start with a
// clear error. Emptied, the database is rebuilt: the master's from its log,
// the slave's from its master.
func TestTruncatedSQLiteFile(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec(corruptSchema)
	for i := 1; i <= 40; i++ {
		m.MustExec(corruptInsert, i, strings.Repeat(corruptValue(i), 40))
	}
	want := m.Dump(corruptRows)
	last := c.WaitConverged(m)
	terminate(t, s)
	terminate(t, m)
	const page = 4096 // SQLite's default page size
	for _, n := range []*Node{m, s} {
		path := filepath.Join(n.DataDir, "db.sqlite")
		orig, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(orig)%page != 0 || len(orig) < 8*page {
			t.Fatalf("%s has %d bytes: not whole pages of %d, or too few", path, len(orig), page)
		}
		for _, tc := range []struct {
			size int
			want string
		}{
			{len(orig) / page / 2 * page, "malformed"},
			{len(orig) - page, "malformed"},
			{page, "malformed"},
			{100, "truncated"},
			{len(orig) - 100, "truncated"},
			{len(orig)/2 + 1000, "truncated"},
		} {
			t.Run(fmt.Sprintf("%s/%d", n.Name(), tc.size), func(t *testing.T) {
				if err := os.WriteFile(path, orig[:tc.size], 0o600); err != nil {
					t.Fatal(err)
				}
				mustRefuseStart(t, n, "db.sqlite", tc.want)
			})
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m.Start()
	if got := m.Dump(corruptRows); got != want {
		t.Fatalf("the master's database rebuilt from its log holds %s, want %s", got, want)
	}
	s.Start()
	s.WaitForApplied(last, waitTimeout)
	if got := s.Dump(corruptRows); got != want {
		t.Fatalf("the slave's database rebuilt from its master holds %s, want %s", got, want)
	}
}
