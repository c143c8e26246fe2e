package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ErrNotApplied is returned for a read with a read token (min_index) that
// the node did not reach in time.
var ErrNotApplied = errors.New("this node has not applied the index asked for")

// ErrNotReplicated is returned for a strong read at the master whose
// data no slave holds yet (Server.ReadReplicas): 503, retry.
var ErrNotReplicated = errors.New("not replicated yet")

// defaultTokenWait bounds the wait for a read token without ?timeout.
const defaultTokenWait = 5 * time.Second

// minIndex reads ?min_index=N, the read token: the index of a write the
// reader made (every write answer carries its index). 0 when absent.
func minIndex(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("min_index")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest("min_index is not a valid index")
	}
	return n, nil
}

// waitApplied waits, at most wait, until this node has applied index: a
// read that follows then sees the write that index names, on any node
// (read-your-writes without reading at the master).
func (s *Server) waitApplied(ctx context.Context, index uint64, wait time.Duration) error {
	rl := s.roles()
	if index == 0 || s.db().AppliedIndex() >= index {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var ok bool
	if rl.sl != nil {
		ok = rl.sl.WaitApplied(ctx, index)
	} else {
		ok = rl.m.WaitApplied(ctx, index)
	}
	if !ok {
		return fmt.Errorf("%w: it has applied %d, not %d, within %s; ask again, or read at the master", ErrNotApplied,
			s.db().AppliedIndex(), index, wait)
	}
	return nil
}
