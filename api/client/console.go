package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// This file holds the calls the web console makes besides the rqlite API,
// and the typed view of GET /status that a node's walk of the cluster
// reads.

// NodeStatus returns the node's id, role, URL and log status from GET
// /status.
func (c *Client) NodeStatus(ctx context.Context) (*NodeStatus, error) {
	var out NodeStatus
	if err := c.do(ctx, http.MethodGet, "/status", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Cluster returns GET /log/cluster: every node the node learns of.
func (c *Client) Cluster(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	if err := c.do(ctx, http.MethodGet, "/log/cluster", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Recent returns GET /log/recent: the last n entries of the node's log
// (n 0: RecentDefault) or, with from above 0, n entries from index from
// on.
func (c *Client) Recent(ctx context.Context, from uint64, n int) (*RecentEntries, error) {
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	if from > 0 {
		q.Set("from", strconv.FormatUint(from, 10))
	}
	path := "/log/recent"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out RecentEntries
	if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
