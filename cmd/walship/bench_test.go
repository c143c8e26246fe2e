package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api/client"
)

// startTestCluster runs a master and one slave in this process on free
// loopback ports.
func startTestCluster(t *testing.T) (*Node, *Node) {
	t.Helper()
	logger, _ := newLogger(io.Discard, "error")
	dir := t.TempDir()
	m, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: filepath.Join(dir, "m"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := StartNode(NodeConfig{Role: "slave", ID: "1", Addr: "127.0.0.1:0", Data: filepath.Join(dir, "s"), MasterURL: m.URL(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := waitReady(ctx, client.New(s.URL()).Ready, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// Every bench mode runs against a real cluster and reports its figures;
// the figures themselves are for people, not for assertions.
func TestBenchModes(t *testing.T) {
	m, s := startTestCluster(t)
	ctx := context.Background()
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := Run(ctx, append([]string{"bench"}, args...), &out, &errOut); err != nil {
			t.Fatalf("bench %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	num := `[0-9]+`
	got := run("write", "--url", m.URL(), "-c", "4", "-b", "3", "--count", "40", "--ceiling")
	for _, re := range []string{
		`write .*: 4 clients, 3 statements per request`,
		`walship +` + num + ` requests/s +` + num + ` statements/s +latency p50 \S+ p90 \S+ p99 \S+ max \S+ +errors 0`,
		`no-op +` + num + ` requests/s`,
		`fraction of the no-op server: ` + num + `% of its requests/s`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Fatalf("write report lacks %q:\n%s", re, got)
		}
	}
	// 40 requests of 3 rows each, on top of nothing.
	resp, err := client.New(m.URL()).Query(ctx, "SELECT count(*) FROM walship_bench")
	if err != nil || len(resp.Values) != 1 || resp.Values[0][0].(interface{ String() string }).String() != "120" {
		t.Fatalf("rows written: %+v %v", resp, err)
	}
	// --payload: rows of that many bytes of hex text, each different.
	run("write", "--url", m.URL(), "-c", "2", "--count", "10", "--payload", "101", "--table", "payload")
	resp, err = client.New(m.URL()).Query(ctx, "SELECT count(DISTINCT v), min(length(v)), max(length(v)), sum(v GLOB '*[^0-9A-F]*') FROM payload")
	if err != nil || len(resp.Values) != 1 || fmt.Sprint(resp.Values[0]) != "[10 101 101 0]" {
		t.Fatalf("rows written with --payload: %+v %v", resp, err)
	}
	if got := run("read", "--url", s.URL(), "-c", "2", "--count", "20"); !strings.Contains(got, "errors 0") {
		t.Fatalf("read report:\n%s", got)
	}
	if got := run("lag", "--url", m.URL(), "-c", "2", "--duration", "300ms"); !regexp.MustCompile(`lag p50 \S+ p99 \S+ max \S+; in entries p50 ` + num).MatchString(got) {
		t.Fatalf("lag report:\n%s", got)
	}
	if got := run("catchup", "--url", m.URL(), "-c", "4", "--count", "200"); !regexp.MustCompile(`catchup: a slave 200 entries behind \(` + num + `\.\.` + num + `\) caught up in .*: ` + num + ` entries/s`).MatchString(got) {
		t.Fatalf("catchup report:\n%s", got)
	}
	if got := run("ceiling", "-c", "2", "--count", "20"); !strings.Contains(got, "errors 0") {
		t.Fatalf("ceiling report:\n%s", got)
	}
	if got := run("raw", "--duration", "100ms"); !regexp.MustCompile(`log \+ apply pipeline, +100 statements per group commit: +`+num+` statements/s`).MatchString(got) ||
		!strings.Contains(got, "HTTP round trip") {
		t.Fatalf("raw report:\n%s", got)
	}
	var out, errOut bytes.Buffer
	if err := Run(ctx, []string{"bench", "frob"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unknown bench mode") {
		t.Fatalf("unknown mode: %v", err)
	}
}
