package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// SnapshotBody is an answer of GET /db/snapshot: the node's snapshot,
// compressed, from Offset on. Close Body when done.
type SnapshotBody struct {
	Index  uint64 // the applied index the snapshot is at
	LogID  string
	SHA256 string // of the decompressed database file, hex
	Size   int64  // of the decompressed database file
	ETag   string // names this snapshot, for resuming it
	// Offset is where Body starts in the compressed file: the offset asked
	// for when the node resumed, else 0 (a new snapshot, or no resume).
	Offset int64
	// Total is the compressed file's size, -1 when unknown.
	Total int64
	Body  io.ReadCloser
}

// Snapshot asks the node for its latest snapshot. With offset > 0 and the
// etag of a snapshot received in part, it asks for the rest of that one; if
// the node holds another by now, it sends the new one whole (Offset 0).
func (c *Client) Snapshot(ctx context.Context, offset int64, etag string) (*SnapshotBody, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/db/snapshot", nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 && etag != "" {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		req.Header.Set("If-Range", etag)
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	h := resp.Header
	out := &SnapshotBody{LogID: h.Get(HeaderLogID), SHA256: h.Get(HeaderSnapshotSHA256), ETag: h.Get("ETag"),
		Total: resp.ContentLength, Body: resp.Body}
	out.Index, err = strconv.ParseUint(h.Get(HeaderIndex), 10, 64)
	if err == nil {
		out.Size, err = strconv.ParseInt(h.Get(HeaderSnapshotSize), 10, 64)
	}
	if err != nil || len(out.SHA256) != 64 {
		resp.Body.Close()
		return nil, fmt.Errorf("snapshot answer without its index, size or checksum: %v", h)
	}
	if resp.StatusCode == http.StatusPartialContent {
		out.Offset = offset
		if out.Total >= 0 {
			out.Total += offset
		}
	}
	return out, nil
}
