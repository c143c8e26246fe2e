package tests

// Scenario 6, hostile input, against a real master: requests built to hurt
// (deep nesting, invalid UTF-8, huge bodies and parameter lists, writes
// smuggled into reads or into walship's own tables, impossible feed
// positions, clients that send one byte at a time). Each is answered 4xx
// with a clear message; the node keeps serving, and nothing is half
// applied: its content checksum and last index do not move.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostileCase is one request a node must refuse.
type hostileCase struct {
	name   string
	method string
	path   string // with the query string
	body   []byte
	status int
	says   string // what the error must mention, lower case
	plain  bool   // refused by net/http before walship sees it: no JSON
}

// hostileState is what must not move: the content checksum and the last
// and applied index.
type hostileState struct {
	sum           string
	last, applied uint64
}

func stateOf(t *testing.T, n *Node) hostileState {
	t.Helper()
	resp, err := httpClient.Get(n.URL() + "/db/checksum")
	if err != nil {
		t.Fatalf("%s: GET /db/checksum: %v", n, err)
	}
	b := readAll(resp)
	var sum struct {
		Checksum string `json:"checksum"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &sum) != nil || sum.Checksum == "" {
		t.Fatalf("%s: GET /db/checksum: %d %s", n, resp.StatusCode, b)
	}
	st := n.MustLogStatus()
	return hostileState{sum: sum.Checksum, last: st.LastIndex, applied: st.AppliedIndex}
}

// nested returns n opening brackets, n closing ones, in JSON.
func nested(open, close string, n int) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

func hostileCases(t *testing.T, logID string, files string) []hostileCase {
	seed := func(cmd, sql string, params ...any) []byte {
		b, err := json.Marshal(Request{Command: cmd, Query: sql, Params: params})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	exec := func(sql string, params ...any) []byte { return seed("exec", sql, params...) }
	query := func(sql string, params ...any) []byte { return seed("query", sql, params...) }
	raw := func(s string) []byte { return []byte(s) }
	post := func(name string, body []byte, status int, says string) hostileCase {
		return hostileCase{name: "POST / " + name, method: http.MethodPost, path: "/", body: body, status: status, says: says}
	}
	feed := func(name, q string, status int, says string) hostileCase {
		return hostileCase{name: "feed " + name, method: http.MethodGet, path: "/log/entries?" + q, status: status, says: says}
	}
	manyParams := make([]any, 1_000_000)
	for i := range manyParams {
		manyParams[i] = i
	}
	var statements strings.Builder
	for range 10_001 {
		statements.WriteString("SELECT 1;")
	}
	feedParams := "from=1" + strings.Repeat("&p=1", 1_000_000)
	return []hostileCase{
		post("100,000 nested arrays", raw(nested("[", "]", 100_000)), 400, "malformed json"),
		post("100,000 nested objects in the query", raw(`{"command":"query","query":`+nested(`{"a":`, "}", 100_000)+`}`), 400, "malformed json"),
		post("100,000 nested arrays as a parameter", raw(`{"command":"exec","query":"SELECT ?","params":[`+nested("[", "]", 100_000)+`]}`), 400, "malformed json"),
		post("invalid UTF-8 in the query", raw("{\"command\":\"exec\",\"query\":\"INSERT INTO t (v) VALUES ('\xff\xfe')\"}"), 400, "utf-8"),
		post("invalid UTF-8 in a parameter", raw("{\"command\":\"exec\",\"query\":\"INSERT INTO t (v) VALUES (?)\",\"params\":[\"\xc3\x28\"]}"), 400, "utf-8"),
		post("invalid UTF-8 outside strings", raw("{\"command\":\"exec\",\xff\"query\":\"SELECT 1\"}"), 400, ""),
		post("NUL in the query", exec("INSERT INTO t (v) VALUES ('a'); \x00 DELETE FROM t"), 400, "nul"),
		post("1M parameters", exec("INSERT INTO t (v) VALUES (?)", manyParams...), 400, "parameters"),
		post("10,001 statements", query(statements.String()), 400, "statements"),
		post("SQL nested 100,000 deep", query("SELECT "+nested("(", ")", 100_000)), 400, ""),
		post("params a number", raw(`{"command":"exec","query":"SELECT ?","params":5}`), 400, `"params" must be an array of values`),
		post("params an object naming no parameter", raw(`{"command":"exec","query":"SELECT ?","params":{"a":1}}`), 400, `no parameter named "a"`),
		post("command a number", raw(`{"command":1,"query":"SELECT 1"}`), 400, "malformed json"),
		post("query an array", raw(`{"command":"query","query":["SELECT 1"]}`), 400, "malformed json"),
		post("is_master a string", raw(`{"command":"exec","query":"SELECT 1","is_master":"yes"}`), 400, "malformed json"),
		post("a number parameter out of range", raw(`{"command":"exec","query":"SELECT ?","params":[1e999]}`), 400, "out of range"),
		post("JSON null", raw(`null`), 400, "unknown command"),
		post("a write smuggled behind a read", query("SELECT 1; DELETE FROM t"), 400, "may not change the database"),
		post("a write in a CTE read", query("WITH x AS (SELECT 1) DELETE FROM t WHERE id IN (SELECT * FROM x)"), 400, "may not change the database"),
		post("ATTACH", exec("ATTACH DATABASE '"+filepath.Join(files, "attached.db")+"' AS a"), 400, "attach"),
		post("DETACH", exec("DETACH DATABASE main"), 400, "detach"),
		post("VACUUM INTO", exec("VACUUM INTO '"+filepath.Join(files, "copy.db")+"'"), 400, "vacuum"),
		post("VACUUM INTO as a read", query("VACUUM INTO '"+filepath.Join(files, "copy-q.db")+"'"), 400, ""),
		post("load_extension", exec("SELECT load_extension('/nonexistent/walship-ext.so')"), 400, "load_extension"),
		post("PRAGMA writable_schema", exec("PRAGMA writable_schema=ON"), 400, "writable_schema"),
		post("a write to sqlite_master", exec("UPDATE sqlite_master SET sql = 'x'"), 400, ""),
		post("BEGIN without COMMIT", exec("BEGIN; DELETE FROM t"), 400, "transaction control"),
		post("ROLLBACK at the end", exec("BEGIN; DELETE FROM t; ROLLBACK"), 400, "transaction control"),
		post("INSERT INTO _walship", exec("INSERT INTO _walship (id, log_id, applied_index) VALUES (2, 'x', 0)"), 400, "_walship"),
		post("UPDATE _walship", exec("UPDATE _walship SET applied_index = 0"), 400, "_walship"),
		post("a write reading _walship", exec("INSERT INTO t (v) SELECT log_id FROM _walship"), 400, "_walship"),

		feed("without from", "max=1", 400, "from is required"),
		feed("from=0", "from=0", 400, "from must be at least 1"),
		feed("from=-1", "from=-1", 400, "non-negative integer"),
		feed("from not a number", "from=abc", 400, "non-negative integer"),
		feed("from past 64 bits", "from=18446744073709551616", 400, "non-negative integer"),
		feed("from=2^64-1", "from=18446744073709551615", 409, "beyond"),
		feed("max=-1", "from=1&max=-1", 400, "non-negative integer"),
		feed("max=0", "from=1&max=0", 400, "max must be between"),
		feed("max=10001", "from=1&max=10001", 400, "max must be between"),
		feed("max past 64 bits", "from=1&max=99999999999999999999", 400, "non-negative integer"),
		feed("wait=-1s", "from=1&wait=-1s", 400, "wait must be"),
		feed("wait=1h", "from=1&wait=1h", 400, "wait must be"),
		feed("wait=2^63-1ns", "from=1&wait=9223372036854775807ns", 400, "wait must be"),
		feed("wait not a duration", "from=1&wait=forever", 400, "wait must be"),
		feed("applied=-1", "from=1&applied=-1", 400, "non-negative integer"),
		feed("epoch not a number", "from=1&epoch=x", 400, "non-negative integer"),
		feed("id of 300 bytes", "from=1&id="+strings.Repeat("i", 300), 400, "too long"),
		feed("url of 3000 bytes", "from=1&url="+strings.Repeat("u", 3000), 400, "too long"),
		feed("log_id of 100 bytes", "from=1&log_id="+strings.Repeat("0", 100), 400, "too long"),
		feed("invalid UTF-8 in id", "from=1&id=%ff%fe", 400, "utf-8"),
		feed("another log_id", "from=1&log_id=00000000000000000000000000000000", 409, "another history"),
		feed("another epoch", "from=2&applied=1&epoch=99&log_id="+logID, 409, "epoch"),
		{name: "feed 1M parameters", method: http.MethodGet, path: "/log/entries?" + feedParams, status: 431, plain: true},
		{name: "feed POST", method: http.MethodPost, path: "/log/entries?from=1", body: raw("x"), status: 405, says: "not allowed"},
	}
}

// TestHostileInput sends every hostile case to a master that serves a
// slave, then checks that both still serve, that the master's content,
// last and applied index did not move, that no file was created, and that
// good writes still work and replicate.
func TestHostileInput(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	s := c.MustRunSlave(1, m)
	m.MustExec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)`)
	m.MustExec(`INSERT INTO t (v) VALUES ('a'), ('b')`)
	c.WaitConverged(m)
	before := stateOf(t, m)
	files := t.TempDir()
	cases := hostileCases(t, m.MustLogStatus().LogID, files)

	post, feed := 0, 0
	for _, tc := range cases {
		if tc.path == "/" {
			post++
		} else {
			feed++
		}
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
			}
			req, err := http.NewRequestWithContext(ctx, tc.method, m.URL()+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			start := time.Now()
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("%s %.80s: %v", tc.method, tc.path, err)
			}
			b := readAll(resp)
			took := time.Since(start)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, b)
			}
			if took > 10*time.Second {
				t.Errorf("answered after %v", took)
			}
			if tc.plain {
				return
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil || strings.TrimSpace(e.Error) == "" {
				t.Fatalf("not a JSON error: %.300s", b)
			}
			if !strings.Contains(strings.ToLower(e.Error), tc.says) {
				t.Errorf("error %q does not say %q", e.Error, tc.says)
			}
			if strings.Contains(e.Error, "goroutine ") || strings.Contains(e.Error, ".go:") {
				t.Errorf("the error shows Go internals: %s", e.Error)
			}
			t.Logf("%d in %v: %.200s", resp.StatusCode, took.Round(time.Millisecond), e.Error)
		})
	}
	t.Logf("%d hostile requests: %d on POST /, %d on /log/entries", len(cases), post, feed)

	for _, n := range []*Node{m, s} {
		if err := n.waitReady(startTimeout); err != nil {
			t.Fatalf("%s no longer serves: %v", n, err)
		}
	}
	if got := stateOf(t, m); got != before {
		t.Fatalf("the master moved from %+v to %+v", before, got)
	}
	if got := stateOf(t, s); got.sum != before.sum || got.applied != before.last {
		t.Fatalf("the slave is at %+v, the master at %+v", got, before)
	}
	entries, err := os.ReadDir(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s was created", e.Name())
	}
	m.MustExec(`INSERT INTO t (v) VALUES ('c')`)
	s.MustExec(`INSERT INTO t (v) VALUES ('d')`)
	c.WaitConverged(m)
	if got, want := s.Dump(`SELECT * FROM t ORDER BY id`), m.Dump(`SELECT * FROM t ORDER BY id`); got != want || !strings.Contains(got, `"d"`) {
		t.Fatalf("after the hostile input: slave %s, master %s", got, want)
	}
}

// vmHWM returns the peak resident set size of process pid in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no procfs: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmHWM in /proc/PID/status")
	return 0
}

// endlessBody produces a body of size bytes on the fly: a JSON request
// whose SQL string never ends. sent counts the bytes handed to the client.
type endlessBody struct {
	prefix []byte
	size   int64
	sent   atomic.Int64
}

func (b *endlessBody) Read(p []byte) (int, error) {
	off := b.sent.Load()
	if off >= b.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if rest := b.size - off; n > rest {
		n = rest
	}
	for i := range p[:n] {
		if at := off + int64(i); at < int64(len(b.prefix)) {
			p[i] = b.prefix[at]
		} else {
			p[i] = 'x'
		}
	}
	b.sent.Add(n)
	return int(n), nil
}

// TestHugeBody sends 100 MB bodies to POST / and /db/execute: each is
// answered 413 within seconds, the node reads little more than its 16 MiB
// limit (its peak memory grows by far less than 100 MB, and the client
// could not hand over the whole body), and nothing is written.
func TestHugeBody(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(`CREATE TABLE t (v TEXT)`)
	before := stateOf(t, m)
	pid := m.pid()
	base := vmHWM(t, pid)
	const size = 100 << 20
	for _, tc := range []struct{ path, prefix string }{
		{"/", `{"command":"exec","query":"INSERT INTO t VALUES ('`},
		{"/db/execute", `["INSERT INTO t VALUES ('`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			body := &endlessBody{prefix: []byte(tc.prefix), size: size}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = size
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatalf("POST %s of 100 MB: %v (after %d bytes)", tc.path, err, body.sent.Load())
			}
			b := readAll(resp)
			took := time.Since(start)
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(b, []byte("16777216")) {
				t.Fatalf("status %d %.300s, want 413 naming the limit", resp.StatusCode, b)
			}
			if took > 10*time.Second {
				t.Errorf("413 after %v", took)
			}
			if sent := body.sent.Load(); sent > size/2 {
				t.Errorf("the client handed over %d of %d bytes: the node read on past its limit", sent, int64(size))
			}
			t.Logf("413 after %v; the client handed over %d MB of 100", took.Round(time.Millisecond), body.sent.Load()>>20)
		})
	}
	peak := vmHWM(t, pid)
	t.Logf("peak RSS %d MB before, %d MB after", base>>20, peak>>20)
	if grew := peak - base; grew > 80<<20 {
		t.Errorf("the node's peak memory grew by %d MB for two 100 MB bodies refused at 16 MiB", grew>>20)
	}
	if got := stateOf(t, m); got != before {
		t.Fatalf("the master moved from %+v to %+v", before, got)
	}
}

// slowConn is a client that sends a request a little at a time.
type slowConn struct {
	conn net.Conn
	cut  chan error // gets the error that ended the connection
}

// dialSlow connects to n and sends head at once; trickle then sends rest one
// byte every interval, until the node cuts the connection or stop closes.
func dialSlow(t *testing.T, n *Node, head, rest string, interval time.Duration, stop <-chan struct{}) *slowConn {
	t.Helper()
	conn, err := net.Dial("tcp", n.Addr)
	if err != nil {
		t.Fatal(err)
	}
	sc := &slowConn{conn: conn, cut: make(chan error, 1)}
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		// The reader sees the node close the connection, or answer.
		r := bufio.NewReader(conn)
		line, err := r.ReadString('\n')
		if err == nil {
			err = fmt.Errorf("answered %q", strings.TrimSpace(line))
		}
		sc.cut <- err
	}()
	go func() {
		for i := 0; i < len(rest); i++ {
			select {
			case <-stop:
				return
			case <-time.After(interval): // ok: the client's pace
			}
			if _, err := conn.Write([]byte{rest[i]}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return sc
}

// TestSlowClients opens connections that send their request one byte at a
// time, headers or body, while other clients read and write. The node has
// these limits (api.Server): ReadHeaderTimeout 10s, ReadTimeout 60s (header
// and body), WriteTimeout 120s, IdleTimeout 120s, and a 16 MiB body. The
// test checks that the slow clients take nothing from the others (every
// request answers within 2s while 100 trickle), that a client
// trickling its headers is cut at ReadHeaderTimeout, and that a trickled
// write is not applied while it trickles. The body's cut at ReadTimeout
// (60s) is checked only with WALSHIP_SLOW_TESTS=1.
func TestSlowClients(t *testing.T) {
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(`CREATE TABLE t (v TEXT)`)
	stop := make(chan struct{})
	defer close(stop)

	const slowHeaders, slowBodies = 50, 50
	write := `{"command":"exec","query":"INSERT INTO t VALUES ('slow')"}`
	var headers, bodies []*slowConn
	start := time.Now()
	for i := range slowHeaders {
		headers = append(headers, dialSlow(t, m, "POST / HTTP/1.1\r\nHost: x\r\n",
			fmt.Sprintf("X-Slow-%d: %s\r\n\r\n", i, strings.Repeat("z", 1000)), 200*time.Millisecond, stop))
	}
	for range slowBodies {
		bodies = append(bodies, dialSlow(t, m, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(write)),
			write, 2*time.Second, stop))
	}

	// Others are served meanwhile, quickly, until the header trickles are cut.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest time.Duration
		served  int
	)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; time.Since(start) < 11*time.Second; j++ {
				t0 := time.Now()
				var err error
				if j%2 == 0 {
					_, err = m.Exec(`INSERT INTO t VALUES (?)`, fmt.Sprint("fast-", i, "-", j))
				} else {
					_, err = m.Query(`SELECT count(*) FROM t`)
				}
				d := time.Since(t0)
				mu.Lock()
				served++
				slowest = max(slowest, d)
				mu.Unlock()
				if err != nil {
					t.Errorf("a request beside the slow clients failed: %v", err)
					return
				}
				time.Sleep(20 * time.Millisecond) // ok: the other clients' pace
			}
		}()
	}

	// The header trickles are cut at ReadHeaderTimeout (10s).
	for i, sc := range headers {
		select {
		case err := <-sc.cut:
			if d := time.Since(start); d < 9*time.Second {
				t.Errorf("slow header %d was cut after %v (%v), before ReadHeaderTimeout", i, d, err)
			}
		case <-time.After(time.Until(start.Add(20 * time.Second))):
			t.Fatalf("slow header %d is still open after 20s", i)
		}
	}
	t.Logf("%d clients trickling headers were cut after %v", slowHeaders, time.Since(start).Round(100*time.Millisecond))
	wg.Wait()
	t.Logf("%d requests beside them, the slowest in %v", served, slowest.Round(time.Millisecond))
	if served < 20 || slowest > 2*time.Second {
		t.Errorf("beside the slow clients: %d requests served, the slowest in %v", served, slowest)
	}
	// The trickled writes are not answered, not applied.
	for i, sc := range bodies {
		select {
		case err := <-sc.cut:
			t.Fatalf("slow body %d ended after %v: %v", i, time.Since(start), err)
		default:
		}
	}
	if got := m.Count(`SELECT count(*) FROM t WHERE v = 'slow'`); got != 0 {
		t.Fatalf("%d trickled writes applied before their body was complete", got)
	}

	if os.Getenv("WALSHIP_SLOW_TESTS") != "1" {
		t.Logf("not waiting for ReadTimeout (60s) to cut the slow bodies: set WALSHIP_SLOW_TESTS=1")
		return
	}
	for i, sc := range bodies {
		select {
		case err := <-sc.cut:
			// Cut, or answered 408 when the handler's read of the body
			// times out.
			d := time.Since(start)
			if d < 55*time.Second || (strings.HasPrefix(err.Error(), "answered") && !strings.Contains(err.Error(), " 408 ")) {
				t.Errorf("slow body %d ended after %v: %v", i, d, err)
			}
			if i == 0 {
				t.Logf("slow body %d ended after %v: %v", i, d.Round(100*time.Millisecond), err)
			}
		case <-time.After(time.Until(start.Add(90 * time.Second))):
			t.Fatalf("slow body %d is still open after 90s", i)
		}
	}
	t.Logf("%d clients trickling bodies were cut after %v", slowBodies, time.Since(start).Round(100*time.Millisecond))
	if got := m.Count(`SELECT count(*) FROM t WHERE v = 'slow'`); got != 0 {
		t.Fatalf("%d trickled writes applied", got)
	}
}

// TestEndlessWrite sends a write that never ends on its own (a recursive
// CTE without a limit, feeding an aggregate) and gives up on it: the master
// must stop it and keep taking other writes.
func TestEndlessWrite(t *testing.T) {
	// Regression: it held the writer forever; the master now stops a
	// write statement after --write-timeout (5s).
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(`CREATE TABLE t (v)`)
	endless := `INSERT INTO t SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)`
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := json.Marshal(Request{Command: "exec", Query: endless})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := httpClient.Do(req); err == nil {
		b := readAll(resp)
		t.Logf("the endless write was answered %d: %s", resp.StatusCode, b)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.Exec(`INSERT INTO t VALUES ('after')`)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a write after the endless one: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a write after the endless one is not answered after 10s: the endless write holds the master's writer")
	}
}

// TestEndlessReads keeps more endless reads open than the node has read
// connections, with clients that wait: other reads must still be served.
func TestEndlessReads(t *testing.T) {
	// Regression: they starved every other read; a read is now stopped
	// after --query-timeout (5s) counted from its arrival, its wait for a
	// read connection included.
	c := NewCluster(t)
	m := c.MustRunMaster()
	m.MustExec(`CREATE TABLE t (v)`)
	endless := `SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)`
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, err := json.Marshal(Request{Command: "query", Query: endless})
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL()+"/", bytes.NewReader(body))
			if err != nil {
				return
			}
			if resp, err := (&http.Client{}).Do(req); err == nil {
				readAll(resp)
			}
		}()
	}
	time.Sleep(time.Second) // ok: let the endless reads take the read connections
	done := make(chan error, 1)
	go func() {
		_, err := m.Query(`SELECT count(*) FROM t`)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("a read beside the endless ones: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read beside endless ones is not answered after 10s")
	}
}
