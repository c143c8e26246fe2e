package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Statement is one statement for the rqlite-compatible /db/* endpoints,
// with positional or named parameters (not both). A []byte parameter is
// sent as a BLOB.
type Statement struct {
	SQL    string
	Params []any
	Named  map[string]any
}

// DBOptions are the flags of a /db/* request (see the README).
type DBOptions struct {
	Transaction bool          // all-or-nothing, stop at the first error
	Timings     bool          // report each statement's time
	Queue       bool          // /db/execute: queue the write, answer at once
	Wait        bool          // with Queue: answer once written
	Level       string        // reads: none, weak (default), linearizable, strong, auto
	Freshness   time.Duration // reads at level none: refuse a slave staler than this
	Timeout     time.Duration // forwarding and wait timeout; 0 means the server's 30s
	// W, if set, is the write concern: the master answers once *W slaves
	// hold the write fsynced (applied, with Applied); nil: the master's
	// default (--min-replicas).
	W       *int
	Applied bool
}

// DBResult is one statement's result: rows for a read (or RETURNING), the
// counts for a write, or the statement's error.
type DBResult struct {
	Columns      []string `json:"columns,omitempty"`
	Types        []string `json:"types,omitempty"`
	Values       [][]any  `json:"values,omitempty"`
	LastInsertID int64    `json:"last_insert_id,omitempty"`
	RowsAffected int64    `json:"rows_affected,omitempty"`
	Error        string   `json:"error,omitempty"`
	Time         float64  `json:"time,omitempty"`
}

// DBResponse is the answer of a /db/* request.
type DBResponse struct {
	Results        []DBResult `json:"results"`
	Error          string     `json:"error,omitempty"`
	Time           float64    `json:"time,omitempty"`
	SequenceNumber int64      `json:"sequence_number,omitempty"`
	RaftIndex      uint64     `json:"raft_index,omitempty"`
	// Index is the log index of a write (from the X-Walship-Index header),
	// 0 for reads. Pass it to WaitApplied on any node to read your write
	// there.
	Index uint64 `json:"-"`
}

// Err returns the request's error, or the first statement's error, or nil.
func (r *DBResponse) Err() error {
	if r.Error != "" {
		return fmt.Errorf("%s", r.Error)
	}
	for i, res := range r.Results {
		if res.Error != "" {
			return fmt.Errorf("statement %d: %s", i+1, res.Error)
		}
	}
	return nil
}

// DBExecute sends writes to POST /db/execute.
func (c *Client) DBExecute(ctx context.Context, opts DBOptions, stmts ...Statement) (*DBResponse, error) {
	return c.db(ctx, "/db/execute", opts, stmts)
}

// DBQuery sends reads to POST /db/query.
func (c *Client) DBQuery(ctx context.Context, opts DBOptions, stmts ...Statement) (*DBResponse, error) {
	return c.db(ctx, "/db/query", opts, stmts)
}

// DBRequest sends reads and writes mixed to POST /db/request.
func (c *Client) DBRequest(ctx context.Context, opts DBOptions, stmts ...Statement) (*DBResponse, error) {
	return c.db(ctx, "/db/request", opts, stmts)
}

func (c *Client) db(ctx context.Context, path string, opts DBOptions, stmts []Statement) (*DBResponse, error) {
	body := make([]any, len(stmts))
	for i, st := range stmts {
		el := []any{st.SQL}
		if st.Named != nil {
			el = append(el, st.Named)
		}
		el = append(el, wireParams(st.Params)...)
		body[i] = el
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	q := url.Values{}
	flag := func(on bool, name string) {
		if on {
			q.Set(name, "")
		}
	}
	flag(opts.Transaction, "transaction")
	flag(opts.Timings, "timings")
	flag(opts.Queue, "queue")
	flag(opts.Wait, "wait")
	if opts.Level != "" {
		q.Set("level", opts.Level)
	}
	if opts.Freshness > 0 {
		q.Set("freshness", opts.Freshness.String())
	}
	if opts.Timeout > 0 {
		q.Set("timeout", opts.Timeout.String())
	}
	if opts.W != nil {
		q.Set("w", strconv.Itoa(*opts.W))
		flag(opts.Applied, "applied")
	}
	u := c.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	var out DBResponse
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode answer of %s: %w", path, err)
	}
	if idx, err := strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64); err == nil {
		out.Index = idx
	}
	return &out, nil
}

// WaitApplied polls the node's /log/status until it has applied index or
// ctx ends: read-your-writes on any node for a write's Index.
func (c *Client) WaitApplied(ctx context.Context, index uint64) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := c.LogStatus(ctx)
		if err == nil && st.AppliedIndex >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for index %d: %w (last error: %v)", index, ctx.Err(), err)
			}
			return fmt.Errorf("wait for index %d: %w (applied %d)", index, ctx.Err(), st.AppliedIndex)
		case <-t.C:
		}
	}
}

// Checksum returns GET /db/checksum: equal checksums at equal indexes mean
// equal content.
func (c *Client) Checksum(ctx context.Context) (*Checksum, error) {
	var out Checksum
	if err := c.do(ctx, http.MethodGet, "/db/checksum", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Verify asks the master (a slave forwards) for a replica check now: POST
// /db/verify. With wait > 0 it waits up to wait until the master has
// hashed its content and logged the sums, and returns them.
func (c *Client) Verify(ctx context.Context, wait time.Duration) (*VerifyResponse, error) {
	path := "/db/verify"
	if wait > 0 {
		path += "?wait&timeout=" + url.QueryEscape(wait.String())
	}
	var out VerifyResponse
	if err := c.do(ctx, http.MethodPost, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
