package main

import (
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// TestPprof serves the profiles on their own address, never on the API's.
func TestPprof(t *testing.T) {
	logger, _ := newLogger(io.Discard, "error")
	n, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: filepath.Join(t.TempDir(), "m"),
		Logger: logger, PprofAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(n.PprofURL() + "goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("profiles: %d %.200s", code, body)
	}
	if code, _ := get(n.URL() + "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("the API's address serves profiles: %d", code)
	}
	// Without the flag there are none.
	m2, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: filepath.Join(t.TempDir(), "m2"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if m2.PprofURL() != "" {
		t.Fatalf("PprofURL without the flag: %q", m2.PprofURL())
	}
}

// TestTuneGC: walship raises GOGC and sets a soft memory limit, unless the
// environment sets them.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	tuneGC()
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Fatalf("GOGC %d, want %d", got, gcPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != memoryLimit {
		t.Fatalf("memory limit %d, want %d", got, memoryLimit)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "1GiB")
	tuneGC()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with GOGC=100 set, want 100", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("memory limit %d with GOMEMLIMIT set, want it untouched", got)
	}
}

func TestParseShare(t *testing.T) {
	for in, want := range map[string]float64{"25%": 0.25, "100%": 1, "0.5%": 0.005} {
		if got, err := parseShare("snapshot-cpu", in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0%", "25", "101%", "-5%", "x%"} {
		if _, err := parseShare("snapshot-cpu", in); err == nil || !strings.Contains(err.Error(), "--snapshot-cpu") {
			t.Errorf("%q: %v, want an error naming the flag", in, err)
		}
	}
}

// A start that fails creates nothing it keeps: with the port in use, no
// data directory; with a database of another history, nothing beside the
// files that were there.
func TestFailedStartLeavesNothing(t *testing.T) {
	logger, _ := newLogger(io.Discard, "error")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	data := filepath.Join(t.TempDir(), "m")
	if _, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: busy.Addr().String(), Data: data, Logger: logger}); err == nil ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a busy port: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a failed start left %s: %v", data, err)
	}
	// Two masters' files mixed: the database of one, the log of another.
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, dir := range []string{a, b} {
		n, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: dir, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		if r := n.master.Execute(t.Context(), db.Request{Txn: true, Statements: []wal.Statement{{SQL: "CREATE TABLE t (v)"}}}); r.Err != nil || r.Outcome.Err != nil {
			t.Fatal(r.Err, r.Outcome.Err)
		}
		n.Close()
	}
	mixed := filepath.Join(t.TempDir(), "mixed")
	if err := os.MkdirAll(mixed, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, name := range map[string]string{filepath.Join(a, "db.sqlite"): "db.sqlite", filepath.Join(b, "log.db"): "log.db"} {
		body, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mixed, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: mixed, Logger: logger}); err == nil ||
		!strings.Contains(err.Error(), "another history") {
		t.Fatalf("another history: %v", err)
	}
	entries, err := os.ReadDir(mixed)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "db.sqlite log.db" {
		t.Fatalf("after a failed start the directory holds %v, want only db.sqlite and log.db", names)
	}
}
