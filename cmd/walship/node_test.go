package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
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
