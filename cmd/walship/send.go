package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
)

// runSend runs 'walship exec' and 'walship query': one request to one node.
func runSend(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	what := "a write (it runs on the master; a slave forwards it)"
	if cmd == "query" {
		what = "a read (it runs on the node that receives it)"
	}
	fs := newFlagSet(cmd, "walship "+cmd+" [--node URL] [--format auto|table|json|csv] [--json] SQL [PARAM …]\n\n"+
		"Sends SQL to a node as "+what+" and prints the answer.\n"+
		"A PARAM is JSON if it parses as JSON (42, 1.5, null, \"text\", [1,2] for a BLOB), else text.\n"+
		"Output: a table on a terminal, the node's JSON answer otherwise (--format picks one).", stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the node's URL")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	format := fs.String("format", "auto", "output: table, json, csv; auto is a table on a terminal and JSON otherwise")
	asJSON := fs.Bool("json", false, "print the node's answer as JSON (same as --format json)")
	minIndex := fs.Uint64("min-index", 0, "query: a read token, the index a write was answered with; the node answers once it has applied it (read your writes at a slave)")
	rem := addRemoteFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := rem.open(stderr); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return fmt.Errorf("%s needs an SQL statement", cmd)
	}
	mode := modeJSON
	switch {
	case *asJSON:
	case *format == "auto":
		if isTerminal(stdout) {
			mode = modeTable
		}
	default:
		m, err := parseMode(*format)
		if err != nil {
			return err
		}
		mode = m
	}
	params := make([]any, 0, fs.NArg()-1)
	for _, p := range fs.Args()[1:] {
		var v any
		dec := json.NewDecoder(strings.NewReader(p))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || dec.More() {
			v = p
		}
		params = append(params, v)
	}
	c := rem.client(nodeURL(*node), *timeout)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *minIndex > 0 && cmd != "query" {
		return errors.New("--min-index is a read token: it goes with query")
	}
	resp, err := c.Seed(ctx, client.SeedRequest{Command: cmd, Query: fs.Arg(0), Params: params, MinIndex: *minIndex})
	if err != nil {
		return nodeError(c.URL, err)
	}
	return writeResult(stdout, resp, mode, cmd == "exec")
}

// reachError is a request that got no answer from a node: refused, timed
// out, cut, interrupted. Its message says so on one line, without Go's
// request dump; it unwraps to the transport's error.
type reachError struct {
	msg string
	err error
}

func (e *reachError) Error() string { return e.msg }
func (e *reachError) Unwrap() error { return e.err }

// nodeError makes err, from a request to the node at nodeURL, one clear
// line: a node's error answer stays as it is ("400 Bad Request: no such
// table: t"); a transport error says which node could not be reached and
// why, without Go's request dump.
func nodeError(nodeURL string, err error) error {
	var se *client.StatusError
	if err == nil || errors.As(err, &se) {
		return err
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	cause := ue.Err.Error()
	var op *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return &reachError{msg: "interrupted", err: err}
	case ue.Timeout() || errors.Is(err, context.DeadlineExceeded):
		return &reachError{msg: "no answer from " + nodeURL + " in time", err: err}
	case errors.As(ue.Err, &op):
		cause = op.Err.Error()
	}
	return &reachError{msg: "cannot reach " + nodeURL + ": " + cause + tlsHint(err), err: err}
}

// parseFlagsAnywhere parses flags that may also follow the positional
// arguments (walship status URL --json), and returns the positional ones.
// exec and query do not use it: their SQL parameters may start with '-'.
// "--" ends the flags.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	var pos []string
	for fs.NArg() > 0 {
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

// nodeURL accepts a node given as host:port and gives it a scheme.
func nodeURL(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}
