package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// BackupOptions are GET /db/backup's parameters.
type BackupOptions struct {
	SQL      bool     // a SQL dump (fmt=sql), not a SQLite file
	Compress bool     // gzipped
	Vacuum   bool     // the copy vacuumed (SQLite file only)
	Tables   []string // SQL dump: only these tables
}

// BackupBody is a backup being received: Body is the caller's to close.
type BackupBody struct {
	Body  io.ReadCloser
	Index uint64
	LogID string
	// Size is the body's length, -1 when unknown (compressed, a dump).
	Size int64
}

// Backup asks the node for a backup of its database.
func (c *Client) Backup(ctx context.Context, opts BackupOptions) (*BackupBody, error) {
	q := url.Values{}
	if opts.SQL {
		q.Set("fmt", "sql")
	}
	if opts.Compress {
		q.Set("compress", "")
	}
	if opts.Vacuum {
		q.Set("vacuum", "")
	}
	if len(opts.Tables) > 0 {
		q.Set("tables", strings.Join(opts.Tables, ","))
	}
	u := c.URL + "/db/backup"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	out := &BackupBody{Body: resp.Body, LogID: resp.Header.Get(HeaderLogID), Size: resp.ContentLength}
	if out.Index, err = strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("backup: the answer has no %s header", HeaderIndex)
	}
	return out, nil
}

// LoadResult is the answer to POST /db/load.
type LoadResult struct {
	Index uint64
	LogID string
	// Response is the body: {"results":[]} for a database file, the
	// statements' results for a dump.
	Response DBResponse
}

// Load sends body (a SQLite file or a SQL dump, size bytes; -1 unknown) to
// the master's POST /db/load.
func (c *Client) Load(ctx context.Context, body io.Reader, size int64) (*LoadResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/db/load", body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(resp)
	}
	out := &LoadResult{LogID: resp.Header.Get(HeaderLogID)}
	out.Index, _ = strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64)
	if err := json.NewDecoder(resp.Body).Decode(&out.Response); err != nil {
		return nil, fmt.Errorf("load: decode the answer: %w", err)
	}
	return out, nil
}
