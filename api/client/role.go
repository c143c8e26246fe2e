package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
)

// Promote asks the node (a slave) to become the master of the next epoch
// (POST /node/promote). force promotes it even when it cannot catch up
// with the current master (which may then lose the writes it alone has).
func (c *Client) Promote(ctx context.Context, force bool) (*PromoteResult, error) {
	path := "/node/promote"
	if force {
		path += "?force"
	}
	var out PromoteResult
	if err := c.do(ctx, http.MethodPost, path, bytes.NewReader([]byte("{}")), &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Fence tells the master that a promotion to epoch is under way: it stops
// taking writes, and answers its last index (POST /node/fence).
func (c *Client) Fence(ctx context.Context, epoch uint64) (uint64, error) {
	body, _ := json.Marshal(FenceRequest{Epoch: epoch})
	var out FenceResult
	if err := c.do(ctx, http.MethodPost, "/node/fence", bytes.NewReader(body), &out); err != nil {
		return 0, err
	}
	return out.LastIndex, nil
}

// Follow tells the node that the master is at url, of epoch (POST
// /node/master): a slave re-points, a replaced master steps down.
func (c *Client) Follow(ctx context.Context, url string, epoch uint64) error {
	body, _ := json.Marshal(FollowRequest{URL: url, Epoch: epoch})
	return c.do(ctx, http.MethodPost, "/node/master", bytes.NewReader(body), nil)
}

// Remove makes the node forget the slave id (rqlite's DELETE /remove); a
// slave that does not feed it forwards to its master.
func (c *Client) Remove(ctx context.Context, id string) error {
	body, _ := json.Marshal(map[string]string{"id": id})
	return c.do(ctx, http.MethodDelete, "/remove", bytes.NewReader(body), nil)
}
