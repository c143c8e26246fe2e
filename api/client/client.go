// Package client is the Go client of walship's HTTP API: the seed-compatible
// POST /, the log status, and the replication feed. Slaves, the command line
// and the tests use it.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/wal"
)

// Client talks to one walship node.
type Client struct {
	// URL is the node's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// HTTP is the HTTP client; nil means a client with a 30s timeout.
	HTTP *http.Client
	// User and Password, if User is set, go with every request (HTTP
	// basic auth), unless its context carries other credentials
	// (WithAuthorization).
	User, Password string
}

// New returns a Client for the node at baseURL. Credentials in the URL
// (http://user:pass@host, as gorqlite takes them) become User and
// Password and leave the URL.
func New(baseURL string) *Client {
	c := &Client{URL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 30 * time.Second, Transport: NewTransport()}}
	if u, err := url.Parse(c.URL); err == nil && u.User != nil {
		c.User = u.User.Username()
		c.Password, _ = u.User.Password()
		u.User = nil
		c.URL = u.String()
	}
	return c
}

type authKey struct{}

// WithAuthorization returns a context whose requests carry header as their
// Authorization instead of the client's own credentials: a slave that
// forwards a client's request sends the client's credentials, which the
// master checks. An empty header sends none.
func WithAuthorization(ctx context.Context, header string) context.Context {
	return context.WithValue(ctx, authKey{}, header)
}

// send sends req with the credentials that go with it.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if h, ok := req.Context().Value(authKey{}).(string); ok {
		if h != "" {
			req.Header.Set("Authorization", h)
		}
	} else if c.User != "" {
		req.SetBasicAuth(c.User, c.Password)
	}
	return c.http().Do(req)
}

// NewTransport returns an HTTP transport that keeps enough idle connections
// to one node for many concurrent requests (the default keeps two, and a
// busy slave forwarding writes would open a connection per request).
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	return t
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// Seed sends a request in the seed's format to POST /.
func (c *Client) Seed(ctx context.Context, req SeedRequest) (*SeedResponse, error) {
	req.Params = wireParams(req.Params)
	if req.Named != nil {
		named := make(map[string]any, len(req.Named))
		for k, v := range req.Named {
			named[k] = wireParams([]any{v})[0]
		}
		req.Named = named
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	var out SeedResponse
	if err := c.do(ctx, http.MethodPost, "/", bytes.NewReader(body), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Exec runs a write. The answer's Index is the write's log index.
func (c *Client) Exec(ctx context.Context, sql string, params ...any) (*SeedResponse, error) {
	return c.Seed(ctx, SeedRequest{Command: "exec", Query: sql, Params: params})
}

// Query runs a read on the node.
func (c *Client) Query(ctx context.Context, sql string, params ...any) (*SeedResponse, error) {
	return c.Seed(ctx, SeedRequest{Command: "query", Query: sql, Params: params})
}

// LogStatus returns GET /log/status.
func (c *Client) LogStatus(ctx context.Context) (*LogStatus, error) {
	var out LogStatus
	if err := c.do(ctx, http.MethodGet, "/log/status", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Ready returns nil when GET /readyz answers 200.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil)
}

// FeedRequest asks the master for entries.
type FeedRequest struct {
	From       uint64
	Max        int
	Wait       time.Duration
	SlaveID    string
	SlaveURL   string
	LogID      string
	Applied    uint64
	LastEpoch  uint64 // epoch of the entry at Applied; 0 when unknown
	KnowsEpoch bool
	// Received is the last index the slave holds fsynced in its own log;
	// 0 when it keeps none.
	Received uint64
	// KnownEpoch is the highest epoch the slave knows of; 0: unknown.
	KnownEpoch uint64
}

// FeedResult is one answer of the feed.
type FeedResult struct {
	LogID      string
	Epoch      uint64
	FirstIndex uint64
	LastIndex  uint64
	Entries    []*wal.Entry
}

// Entries long-polls GET /log/entries. The HTTP client's timeout must be
// longer than req.Wait.
func (c *Client) Entries(ctx context.Context, req FeedRequest) (*FeedResult, error) {
	q := url.Values{}
	q.Set(FeedFrom, strconv.FormatUint(req.From, 10))
	if req.Max > 0 {
		q.Set(FeedMax, strconv.Itoa(req.Max))
	}
	q.Set(FeedWait, req.Wait.String())
	q.Set(FeedID, req.SlaveID)
	q.Set(FeedURL, req.SlaveURL)
	q.Set(FeedLogID, req.LogID)
	q.Set(FeedApplied, strconv.FormatUint(req.Applied, 10))
	if req.KnowsEpoch {
		q.Set(FeedEpoch, strconv.FormatUint(req.LastEpoch, 10))
	}
	if req.Received > 0 {
		q.Set(FeedReceived, strconv.FormatUint(req.Received, 10))
	}
	if req.KnownEpoch > 0 {
		q.Set(FeedKnownEpoch, strconv.FormatUint(req.KnownEpoch, 10))
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/log/entries?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	out := &FeedResult{LogID: resp.Header.Get(HeaderLogID)}
	for _, h := range []struct {
		name string
		dst  *uint64
	}{{HeaderEpoch, &out.Epoch}, {HeaderFirstIndex, &out.FirstIndex}, {HeaderLastIndex, &out.LastIndex}} {
		v, err := strconv.ParseUint(resp.Header.Get(h.name), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("feed header %s: %w", h.name, ErrCorruptFeed)
		}
		*h.dst = v
	}
	if out.LogID == "" {
		return nil, fmt.Errorf("feed answer without a log id: %w", ErrCorruptFeed)
	}
	br := feedReaders.Get().(*bufio.Reader)
	br.Reset(resp.Body)
	defer func() {
		br.Reset(nil)
		feedReaders.Put(br)
	}()
	fr := frameReader{r: br}
	for {
		e, err := fr.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, e)
	}
}

// feedReaders holds the buffered readers of feed answers for reuse: a
// streaming slave reads one small answer per write at the master.
var feedReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// wireParams sends a []byte parameter as an array of byte values, which the
// server binds as a BLOB (encoding/json would send base64 text).
func wireParams(params []any) []any {
	out := params
	for i, p := range params {
		b, ok := p.([]byte)
		if !ok {
			continue
		}
		if &out[0] == &params[0] {
			out = append([]any(nil), params...)
		}
		ints := make([]int, len(b))
		for j, v := range b {
			ints[j] = int(v)
		}
		out[i] = ints
	}
	return out
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return statusError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var er ErrorResponse
	if json.Unmarshal(b, &er) != nil || er.Error == "" {
		er.Error = strings.TrimSpace(string(b))
	}
	return &StatusError{Status: resp.StatusCode, Msg: er.Error, Master: er.Master,
		SQLiteCode: er.SQLiteCode, SQLiteExtendedCode: er.SQLiteExtendedCode, SnapshotIndex: er.SnapshotIndex, NewLogID: er.NewLogID,
		Epoch: er.Epoch, Fenced: er.Fenced, SupersededFrom: er.SupersededFrom, DuplicateID: er.DuplicateID}
}
