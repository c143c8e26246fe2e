package client

import (
	"context"
	"net/http"
)

// This file holds the client's view of the cluster as a whole: who its
// members are and how each node describes itself. The command line's
// status, show and shell use it.

// Nodes returns GET /nodes: the members of the cluster by id, in rqlite's
// legacy shape (a JSON object of Node by id). A Node whose body names no id
// gets its key as ID. A node that does not serve /nodes answers an error
// that is ErrNotFound.
func (c *Client) Nodes(ctx context.Context) (map[string]Node, error) {
	var out map[string]Node
	if err := c.do(ctx, http.MethodGet, "/nodes", nil, &out); err != nil {
		return nil, err
	}
	for id, n := range out {
		if n.ID == "" {
			n.ID = id
			out[id] = n
		}
	}
	return out, nil
}

// Status returns GET /status: the node, its role and who leads, as decoded
// JSON (numbers as json.Number). Its shape follows rqlite's /status, whose
// fields differ between versions, so it is not a fixed type here.
func (c *Client) Status(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	if err := c.do(ctx, http.MethodGet, "/status", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
