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
	"strconv"
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
		"Output: a table on a terminal, the node's JSON answer otherwise (--format picks one).\n"+
		"Flags may also follow the SQL and its parameters; '--' ends them, so that a\n"+
		"parameter that starts with '-' can be given (a negative number needs no '--').", stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the node's URL")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	format := fs.String("format", "auto", "output: table, json, csv; auto is a table on a terminal and JSON otherwise")
	asJSON := fs.Bool("json", false, "print the node's answer as JSON (same as --format json)")
	minIndex := fs.Uint64("min-index", 0, "query: a read token, the index a write was answered with; the node answers once it has applied it (read your writes at a slave)")
	rem := addRemoteFlags(fs)
	args, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(args) < 1 {
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
	params := make([]any, 0, len(args)-1)
	for _, p := range args[1:] {
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
	resp, err := c.Seed(ctx, client.SeedRequest{Command: cmd, Query: args[0], Params: params, MinIndex: *minIndex, BlobArray: true})
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
// arguments (walship status URL --json, walship query SQL --format csv),
// and returns the positional ones. "--" ends the flags: what follows it is
// positional even when it starts with '-' (an SQL parameter "-x"). A
// negative number (-1, -2.5) that is not a flag's value is positional
// too: no flag's name starts with a digit.
func parseFlagsAnywhere(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parseFlags(fs, nil); err != nil { // the environment's defaults
		return nil, err
	}
	var pos []string
	for i := 0; i < len(args); {
		a := args[i]
		switch {
		case a == "--":
			return append(pos, args[i+1:]...), nil
		case len(a) < 2 || a[0] != '-' || isNumber(a):
			pos = append(pos, a)
			i++
			continue
		}
		// A flag, with its value when it takes one and the value is not
		// joined to it by '='.
		n := 1
		name := strings.TrimLeft(a, "-")
		if f := fs.Lookup(name); f != nil && !strings.Contains(name, "=") && !isBoolFlag(f) {
			n = 2
		}
		end := min(i+n, len(args))
		if err := fs.Parse(args[i:end]); err != nil {
			return nil, err
		}
		i = end
	}
	return pos, nil
}

// isNumber reports whether s reads as a number (an SQL parameter such as
// -1 or -2.5, never a flag).
func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// isBoolFlag reports whether f is a flag that takes no value (--json).
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// nodeURL accepts a node given as host:port and gives it a scheme.
func nodeURL(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}
