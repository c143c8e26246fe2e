package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/api/client"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestHelpAndBadArguments(t *testing.T) {
	ctx := context.Background()
	for _, cmd := range []string{"master", "slave", "demo", "exec", "query"} {
		var out, errOut bytes.Buffer
		err := Run(ctx, []string{cmd, "--help"}, &out, &errOut)
		if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "Usage: walship "+cmd) {
			t.Fatalf("%s --help: err %v, output %q", cmd, err, errOut.String())
		}
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"slave", "x"}, "positive integer"},
		{[]string{"slave", "0"}, "positive integer"},
		{[]string{"slave", "1", "--id", "2"}, "given twice"},
		{[]string{"master", "extra"}, "unexpected arguments"},
		{[]string{"master", "--log-level", "loud"}, "log level"},
		{[]string{"exec"}, "needs an SQL statement"},
	} {
		var out, errOut bytes.Buffer
		err := Run(ctx, tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%v: err %v, want one saying %q", tc.args, err, tc.says)
		}
	}
	t.Setenv("WALSHIP_LOG_LEVEL", "loud")
	if err := Run(ctx, []string{"master"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "log level") {
		t.Fatalf("WALSHIP_LOG_LEVEL=loud: err %v", err)
	}
}

// freePorts returns a port p such that p, p+1 and p+2 were free. It looks
// below Linux's ephemeral range (32768 and up), where outgoing connections
// of other tests take odd ports next to the even ones listeners get.
func freePorts(t *testing.T) int {
	t.Helper()
	for try := 0; try < 200; try++ {
		p := 20000 + rand.IntN(12000)
		ok := true
		for i := 0; i <= 2 && ok; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatal("no three free ports in a row")
	return 0
}

// The demo starts a working cluster: a write at the master and one through
// a slave are read back from the other slave; exec and query work from the
// command line; cancelling stops everything cleanly.
func TestDemo(t *testing.T) {
	port := freePorts(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"demo", "--port", strconv.Itoa(port), "--data", data}, &out, &errOut)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C") {
		select {
		case err := <-done:
			t.Fatalf("demo stopped: %v\n%s\n%s", err, out.String(), errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not ready:\n%s\n%s", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond) // ok: poll interval
	}
	master := "http://127.0.0.1:" + strconv.Itoa(port)
	slave1 := "http://127.0.0.1:" + strconv.Itoa(port+1)
	slave2 := "http://127.0.0.1:" + strconv.Itoa(port+2)
	if !strings.Contains(out.String(), master) || !strings.Contains(out.String(), slave2) {
		t.Fatalf("demo output names no nodes:\n%s", out.String())
	}
	send := func(args ...string) string {
		t.Helper()
		var o, e bytes.Buffer
		if err := Run(ctx, args, &o, &e); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, e.String())
		}
		return o.String()
	}
	send("exec", "--node", master, "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT)")
	send("exec", "--node", master, "INSERT INTO users (username) VALUES (?)", "ana")
	if got := send("exec", "--node", slave1, "INSERT INTO users (username) VALUES (?)", "ben"); !strings.Contains(got, `"index": 3`) {
		t.Fatalf("write through slave 1: %s", got)
	}
	c := client.New(slave2)
	for {
		resp, err := c.Query(ctx, "SELECT username FROM users ORDER BY id")
		if err == nil && len(resp.Values) == 2 {
			if resp.Values[0][0] != "ana" || resp.Values[1][0] != "ben" {
				t.Fatalf("slave 2 holds %v", resp.Values)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slave 2 did not catch up: %+v %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond) // ok: poll interval
	}
	if got := send("query", "--node", slave2, "SELECT count(*) AS n FROM users"); !strings.Contains(got, `"n"`) || !strings.Contains(got, "2") {
		t.Fatalf("query: %s", got)
	}
	stopDemo(t, cancel, done)
}

// walship demo --failover runs etcd in the process and gives every node
// --etcd: Enter stops the master and another is elected, which takes
// writes; Enter again starts the old one back, as a slave of the new.
func TestDemoFailover(t *testing.T) {
	port := freePorts(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	stdin, enter := io.Pipe()
	defer enter.Close()
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, []string{"--port", strconv.Itoa(port), "--data", data, "--failover"}, stdin, &out, &errOut)
	}()
	waitOut := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), what) {
			select {
			case err := <-done:
				t.Fatalf("demo stopped: %v\n%s\n%s", err, out.String(), errOut.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo did not print %q:\n%s\n%s", what, out.String(), errOut.String())
			}
			time.Sleep(10 * time.Millisecond) // ok: poll interval
		}
	}
	waitOut("Failover is on")
	master := "http://127.0.0.1:" + strconv.Itoa(port)
	// The master takes writes once elected.
	var o, e bytes.Buffer
	deadline := time.Now().Add(30 * time.Second)
	for Run(ctx, []string{"exec", "--node", master, "CREATE TABLE t (v)"}, &o, &e) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the demo's master takes no write: %s", e.String())
		}
		time.Sleep(50 * time.Millisecond) // ok: poll interval
	}
	if _, err := enter.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	waitOut("was elected the master after")
	var elected string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "was elected the master") {
			_, rest, _ := strings.Cut(line, "(")
			elected, _, _ = strings.Cut(rest, ")")
		}
	}
	if elected == "" || elected == master {
		t.Fatalf("elected %q:\n%s", elected, out.String())
	}
	o.Reset()
	if err := Run(ctx, []string{"exec", "--node", elected, "INSERT INTO t VALUES (1)"}, &o, &e); err != nil {
		t.Fatalf("a write at the elected master: %v %s", err, e.String())
	}
	if _, err := enter.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	waitOut("started master again")
	c := client.New(master)
	for {
		st, err := c.LogStatus(ctx)
		if err == nil && st.Role == "slave" && st.Master == elected && st.AppliedIndex >= 3 {
			break
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("the old master does not follow the new one: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond) // ok: poll interval
	}
	stopDemo(t, cancel, done)
}

// A second demo on the same data says it reuses it, and at which index;
// --fresh removes the demo's directories (and nothing else) first, and
// refuses a directory of theirs that holds something else.
func TestDemoReuseAndFresh(t *testing.T) {
	port := freePorts(t)
	data := filepath.Join(t.TempDir(), "data")
	master := "http://127.0.0.1:" + strconv.Itoa(port)
	// demo runs the demo with args until it is ready, runs while, stops
	// it, and returns its output.
	demo := func(while func(), args ...string) string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errOut syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, append([]string{"demo", "--port", strconv.Itoa(port), "--slaves", "0", "--data", data}, args...), &out, &errOut)
		}()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), "Press Ctrl-C") {
			select {
			case err := <-done:
				t.Fatalf("demo stopped: %v\n%s\n%s", err, out.String(), errOut.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("demo not ready:\n%s\n%s", out.String(), errOut.String())
			}
			time.Sleep(10 * time.Millisecond) // ok: poll interval
		}
		while()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("demo ended with %v", err)
		}
		return out.String()
	}
	tables := func() string {
		t.Helper()
		resp, err := client.New(master).Query(context.Background(), "SELECT coalesce(group_concat(name), '') FROM sqlite_schema WHERE name = 'kept'")
		if err != nil {
			t.Fatal(err)
		}
		return cellText(resp.Values[0][0])
	}
	out := demo(func() {
		mustExec(t, master, "CREATE TABLE kept (v)")
		mustExec(t, master, "INSERT INTO kept VALUES (1)")
	})
	if strings.Contains(out, "reusing") || strings.Contains(out, "--fresh") {
		t.Fatalf("a first demo speaks of reusing data:\n%s", out)
	}
	out = demo(func() {
		if got := tables(); got != "kept" {
			t.Errorf("the second demo lacks the table: %q", got)
		}
	})
	if !strings.HasPrefix(out, "walship demo: reusing data under "+data+" (index 2); --fresh to start empty\n") {
		t.Fatalf("a second demo:\n%s", out)
	}
	// Something of the user's beside the demo's directories stays.
	mine := filepath.Join(data, "notes.txt")
	if err := os.WriteFile(mine, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = demo(func() {
		if got := tables(); got != "" {
			t.Errorf("--fresh kept the table: %q", got)
		}
	}, "--fresh")
	if !strings.HasPrefix(out, "walship demo: --fresh: removed master under "+data+"\n") || strings.Contains(out, "reusing") {
		t.Fatalf("--fresh:\n%s", out)
	}
	if b, err := os.ReadFile(mine); err != nil || string(b) != "mine" {
		t.Fatalf("--fresh removed another file: %v", err)
	}
	// A directory named as the demo's that is not the demo's.
	if err := os.MkdirAll(filepath.Join(data, "slave-3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "slave-3", "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), []string{"demo", "--port", strconv.Itoa(port), "--slaves", "0", "--data", data, "--fresh"}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(data, "slave-3")+" holds something else than the demo's data; not removed") {
		t.Fatalf("--fresh with a foreign directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "master", "db.sqlite")); err != nil {
		t.Fatalf("a refused --fresh removed the master's data: %v", err)
	}
}

// stopDemo cancels a demo and fails the test unless it ends cleanly
// within 20 s.
func stopDemo(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
