package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
)

// runSend runs 'walship exec' and 'walship query': one request to one node.
func runSend(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet(cmd, "walship "+cmd+" [--node URL] SQL [PARAM …]   (a PARAM is JSON if it parses as JSON, else text)", stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the node's URL")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return fmt.Errorf("%s needs an SQL statement", cmd)
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
	c := client.New(*node)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := c.Seed(ctx, client.SeedRequest{Command: cmd, Query: fs.Arg(0), Params: params})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(resp)
}
