package tests

// This file is the HTTP side of a Node: POST / (exec and query), GET
// /log/status, and the waits that poll them with a deadline. It decodes
// the wire format itself, with the standard library only, so the suite
// tests the contract rather than walship's own client.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpClient is shared by all nodes. Its timeout bounds a request to a
// stopped (SIGSTOP) node.
var httpClient = &http.Client{
	Timeout: 30 * time.Second,
	Transport: credTransport{&http.Transport{
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}},
}

// Request is the body of POST /.
type Request struct {
	Command  string `json:"command"`
	Query    string `json:"query"`
	Params   []any  `json:"params,omitempty"`
	IsMaster bool   `json:"is_master"`
}

// Result is the decoded answer of POST /. Numbers are json.Number, so
// 64-bit integers survive.
type Result struct {
	RowsAffected *int64   `json:"rows_affected"`
	LastInsertID *int64   `json:"last_insert_id"`
	Columns      []string `json:"columns"`
	Types        []string `json:"types"`
	Values       [][]any  `json:"values"`
	Index        uint64   `json:"index"`
	Pending      bool     `json:"pending"`

	Body []byte `json:"-"` // the raw answer
}

// Col returns the index of column name, or -1.
func (r *Result) Col(name string) int {
	for i, c := range r.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// StatusError is a non-200 answer.
type StatusError struct {
	Status int
	Msg    string // the "error" field
	Body   []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, bytes.TrimSpace(e.Body))
}

// SlaveStatus is one slave in the master's /log/status.
type SlaveStatus struct {
	ID           string `json:"id"`
	URL          string `json:"url"`
	AppliedIndex uint64 `json:"applied_index"`
	LagEntries   uint64 `json:"lag_entries"`
	LastSeen     string `json:"last_seen"`
	State        string `json:"state"`
}

// LogStatus is the body of GET /log/status.
type LogStatus struct {
	Role            string        `json:"role"`
	ID              string        `json:"id"`
	LogID           string        `json:"log_id"`
	Epoch           uint64        `json:"epoch"`
	Master          string        `json:"master"`
	State           string        `json:"state"`
	FirstIndex      uint64        `json:"first_index"`
	LastIndex       uint64        `json:"last_index"`
	AppliedIndex    uint64        `json:"applied_index"`
	MasterLastIndex *uint64       `json:"master_last_index"`
	LagEntries      *uint64       `json:"lag_entries"`
	Slaves          []SlaveStatus `json:"slaves"`
	LogBytes        int64         `json:"log_bytes"`
	LogSegments     int           `json:"log_segments"`
	SnapshotIndex   *uint64       `json:"snapshot_index"`
	Error           string        `json:"error"`

	Body []byte `json:"-"`
}

// Slave returns the entry of slave id in a master's status, or nil.
func (s *LogStatus) Slave(id int) *SlaveStatus {
	for i := range s.Slaves {
		if s.Slaves[i].ID == fmt.Sprint(id) {
			return &s.Slaves[i]
		}
	}
	return nil
}

// Post sends body to POST / and returns the status and the answer.
func (n *Node) Post(body []byte) (int, []byte, error) {
	return n.post(context.Background(), n.URL(), body)
}

func (n *Node) post(ctx context.Context, base string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		// An answer cut in the middle is no answer.
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, b, nil
}

// Do sends req to POST / and decodes the answer; a non-200 answer is a
// *StatusError.
func (n *Node) Do(req Request) (*Result, error) {
	return n.DoAt(context.Background(), n.URL(), req)
}

// DoAt sends req to POST / at base (the node's URL, or a proxy's in front
// of it) under ctx, as Do does. Safe from any goroutine.
func (n *Node) DoAt(ctx context.Context, base string, req Request) (*Result, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	status, b, err := n.post(ctx, base, body)
	if err != nil {
		return nil, fmt.Errorf("%s: POST / %s: %w", n.name, req.Query, err)
	}
	if status != http.StatusOK {
		se := &StatusError{Status: status, Body: b}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil {
			se.Msg = e.Error
		}
		return nil, se
	}
	r := &Result{Body: b}
	if err := decodeJSON(b, r); err != nil {
		return nil, fmt.Errorf("%s: POST / %s: decode %q: %w", n.name, req.Query, b, err)
	}
	return r, nil
}

// Exec sends a write. Safe from any goroutine.
func (n *Node) Exec(sql string, params ...any) (*Result, error) {
	return n.Do(Request{Command: "exec", Query: sql, Params: params})
}

// Query sends a read. Safe from any goroutine.
func (n *Node) Query(sql string, params ...any) (*Result, error) {
	return n.Do(Request{Command: "query", Query: sql, Params: params})
}

// MustExec sends a write and fails the test unless it answers 200.
func (n *Node) MustExec(sql string, params ...any) *Result {
	n.t.Helper()
	r, err := n.Exec(sql, params...)
	if err != nil {
		n.t.Fatalf("%s: exec %q %v: %v", n.name, sql, params, err)
	}
	return r
}

// MustQuery sends a read and fails the test unless it answers 200.
func (n *Node) MustQuery(sql string, params ...any) *Result {
	n.t.Helper()
	r, err := n.Query(sql, params...)
	if err != nil {
		n.t.Fatalf("%s: query %q %v: %v", n.name, sql, params, err)
	}
	return r
}

// Dump runs a query and returns its answer as canonical JSON without the
// index field: two nodes holding the same rows give the same bytes.
func (n *Node) Dump(sql string) string {
	n.t.Helper()
	return canonical(n.t, n.MustQuery(sql).Body)
}

// canonical re-encodes a JSON object with its keys sorted and without
// "index", keeping every value's bytes.
func canonical(t testing.TB, body []byte) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	delete(m, "index")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Count returns the single integer of a query such as SELECT count(*).
func (n *Node) Count(sql string, params ...any) int64 {
	n.t.Helper()
	r := n.MustQuery(sql, params...)
	if len(r.Values) != 1 || len(r.Values[0]) != 1 {
		n.t.Fatalf("%s: %q: want one value, got %s", n.name, sql, r.Body)
	}
	num, ok := r.Values[0][0].(json.Number)
	if !ok {
		n.t.Fatalf("%s: %q: want a number, got %s", n.name, sql, r.Body)
	}
	v, err := num.Int64()
	if err != nil {
		n.t.Fatalf("%s: %q: %v", n.name, sql, err)
	}
	return v
}

// LogStatus fetches GET /log/status. Safe from any goroutine.
func (n *Node) LogStatus() (*LogStatus, error) {
	resp, err := n.client().Get(n.URL() + "/log/status")
	if err != nil {
		return nil, fmt.Errorf("%s: GET /log/status: %w", n.name, err)
	}
	b := readAll(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /log/status: HTTP %d: %s", n.name, resp.StatusCode, b)
	}
	s := &LogStatus{Body: b}
	if err := decodeJSON(b, s); err != nil {
		return nil, fmt.Errorf("%s: GET /log/status: decode %q: %w", n.name, b, err)
	}
	return s, nil
}

// MustLogStatus fetches GET /log/status and fails the test on an error.
func (n *Node) MustLogStatus() *LogStatus {
	n.t.Helper()
	s, err := n.LogStatus()
	if err != nil {
		n.t.Fatal(err)
	}
	return s
}

// Checksum is the body of GET /db/checksum: a hash of the node's content
// at its applied index Index.
type Checksum struct {
	Index    uint64            `json:"index"`
	Checksum string            `json:"checksum"`
	Tables   map[string]string `json:"tables"`

	Body []byte `json:"-"`
}

// Checksum fetches GET /db/checksum. Safe from any goroutine.
func (n *Node) Checksum() (*Checksum, error) {
	resp, err := n.client().Get(n.URL() + "/db/checksum")
	if err != nil {
		return nil, fmt.Errorf("%s: GET /db/checksum: %w", n.name, err)
	}
	b := readAll(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /db/checksum: HTTP %d: %s", n.name, resp.StatusCode, b)
	}
	s := &Checksum{Body: b}
	if err := decodeJSON(b, s); err != nil {
		return nil, fmt.Errorf("%s: GET /db/checksum: decode %q: %w", n.name, b, err)
	}
	if s.Checksum == "" {
		return nil, fmt.Errorf("%s: GET /db/checksum: no checksum in %s", n.name, b)
	}
	return s, nil
}

// DBQuery sends one read with positional parameters to rqlite's POST
// /db/query?flags (flags is a URL query such as "level=strong") and
// returns its rows. An error in the answer (a statement's, or "stale
// read") is an error. Safe from any goroutine.
func (n *Node) DBQuery(ctx context.Context, flags, sql string, params ...any) ([][]any, error) {
	body, err := json.Marshal([][]any{append([]any{sql}, params...)})
	if err != nil {
		return nil, err
	}
	u := n.URL() + "/db/query?" + flags
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: POST /db/query: %w", n.name, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: POST /db/query: reading the answer: %w", n.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Status: resp.StatusCode, Body: b}
	}
	var out struct {
		Results []struct {
			Values [][]any `json:"values"`
			Error  string  `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := decodeJSON(b, &out); err != nil {
		return nil, fmt.Errorf("%s: POST /db/query: decode %q: %w", n.name, b, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("%s: POST /db/query: %s", n.name, out.Error)
	}
	if len(out.Results) != 1 {
		return nil, fmt.Errorf("%s: POST /db/query: want one result, got %s", n.name, b)
	}
	if e := out.Results[0].Error; e != "" {
		return nil, fmt.Errorf("%s: POST /db/query: %s", n.name, e)
	}
	return out.Results[0].Values, nil
}

// WaitFor polls /log/status until ok returns true, and fails the test
// after timeout. It returns the status that satisfied ok.
func (n *Node) WaitFor(what string, timeout time.Duration, ok func(*LogStatus) bool) *LogStatus {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		s, err := n.LogStatus()
		if err == nil {
			if ok(s) {
				return s
			}
			last = string(bytes.TrimSpace(s.Body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: not %s after %v; last /log/status: %s", n.name, what, timeout, last)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// WaitForApplied polls /log/status until the node applied index idx. It
// fails at once when a slave diverged.
func (n *Node) WaitForApplied(idx uint64, timeout time.Duration) *LogStatus {
	n.t.Helper()
	return n.WaitFor(fmt.Sprintf("applied through index %d", idx), timeout, func(s *LogStatus) bool {
		if s.State == "diverged" {
			n.t.Fatalf("%s diverged while waiting for index %d: %s", n.name, idx, s.Body)
		}
		return s.AppliedIndex >= idx
	})
}

// WaitConverged waits until every running slave of the cluster applied the
// master's last index, and returns that index.
func (c *Cluster) WaitConverged(master *Node) uint64 {
	c.t.Helper()
	last := master.MustLogStatus().LastIndex
	for _, n := range c.Nodes() {
		if n.Role == RoleSlave && !n.Exited() && n.Master == master {
			n.WaitForApplied(last, waitTimeout)
		}
	}
	return last
}

// writeConcurrently runs count writes, conc at a time, and fails the test
// when one of them fails. stmt returns the SQL and parameters of write i.
func writeConcurrently(t testing.TB, n *Node, count, conc int, stmt func(i int) (string, []any)) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sql, params := stmt(i)
				if _, err := n.Exec(sql, params...); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("write %d: %w", i, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < count; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d writes to %s failed; first: %v", len(errs), count, n, errs[0])
	}
}

func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return []byte(fmt.Sprintf("(reading the body: %v)", err))
	}
	return b
}

// tables lists the names in sqlite_master, sorted.
func tables(n *Node) string {
	n.t.Helper()
	return n.Dump("SELECT type, name FROM sqlite_master ORDER BY type, name")
}

// trimURL drops a trailing slash, so URLs compare equal however written.
func trimURL(u string) string { return strings.TrimRight(u, "/") }

// valuesJSON returns the values of a query's answer as compact JSON.
func valuesJSON(t testing.TB, r *Result) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
	var buf bytes.Buffer
	if v, ok := m["values"]; ok {
		if err := json.Compact(&buf, v); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}
