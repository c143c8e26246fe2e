package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
)

const promoteSynopsis = `walship promote [--node URL] [--force]

Turns a slave into the master of the next epoch (POST /node/promote). The
slave first fences its master, if that one answers: the master takes no
more writes, and the slave catches up with everything it has, so no
acknowledged write is lost (a planned switchover). When the master does
not answer (it is down: a failover), the slave becomes the master with
what it holds: a write the lost master acknowledged that no slave had
received is lost, unless writes asked for w=1 or the master runs with
--min-replicas 1 (README, "High availability").

The new master records its epoch in its log and tells the old master and
every slave it knows of (the old master's slaves, --peers) to follow it:
slaves whose history is a prefix of the new master's go on from where they
are; a node with entries the new master lacks (the old master, when it
comes back) drops them, says which, and rebuilds from the new master's
snapshot. A node of an older epoch is refused everywhere (409).

--force promotes even when the slave cannot catch up with a fenced master
or diverged.`

func runPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("promote", promoteSynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8081", "the slave to promote (the argument URL wins)")
	force := fs.Bool("force", false, "promote even when the slave cannot catch up with the fenced master, or diverged")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the promotion")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(pos[1:], " "))
	}
	target := *node
	if len(pos) == 1 {
		target = pos[0]
	}
	target = strings.TrimRight(target, "/")
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := rem.client(target, *timeout).Promote(ctx, *force)
	if err != nil {
		var se *client.StatusError
		if errors.As(err, &se) && se.Status == 409 {
			return fmt.Errorf("%s refused: %s", target, se.Msg)
		}
		return fmt.Errorf("promote %s: %w", target, err)
	}
	fmt.Fprintf(stdout, "%s is the master of epoch %d from index %d\n", res.URL, res.Epoch, res.Index)
	if res.Previous != "" {
		if res.FencedAt > 0 {
			fmt.Fprintf(stdout, "the previous master %s was fenced at index %d; this node had all of it\n", res.Previous, res.FencedAt)
		} else {
			fmt.Fprintf(stdout, "the previous master %s did not answer: writes it acknowledged that this node lacked are lost\n", res.Previous)
		}
	}
	return nil
}
