package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

const removeSynopsis = `walship remove [--node URL] ID

Makes the master forget slave ID (rqlite's DELETE /remove): a slave taken
out of service stops being listed (walship status, /log/status, /nodes)
as lost or unknown. A slave that still runs comes back at its next
request. URL is any node (default --node): a slave that does not feed ID
itself forwards to its master.`

func runRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("remove", removeSynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "a node's URL: the master, or a slave (it forwards)")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("give the id of the slave to remove: walship remove ID")
	}
	target := strings.TrimRight(*node, "/")
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rem.client(target, 30*time.Second).Remove(ctx, pos[0]); err != nil {
		return fmt.Errorf("remove %s at %s: %w", pos[0], target, err)
	}
	fmt.Fprintf(stdout, "removed slave %s\n", pos[0])
	return nil
}
