package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A node without --auth that listens beyond loopback says at start that
// it is open; on loopback, or with --auth, it does not. A credentials
// file that does not parse stops the node.
func TestOpenNodeWarns(t *testing.T) {
	for _, tc := range []struct {
		addr, auth string
		warns      bool
	}{
		{"127.0.0.1:0", "", false},
		{"0.0.0.0:0", "", true},
		{":0", "", true},
		{"0.0.0.0:0", "good", false},
	} {
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		cfg := NodeConfig{Role: "master", ID: "master", Addr: tc.addr, Data: filepath.Join(t.TempDir(), "m"), Logger: logger}
		if tc.auth != "" {
			cfg.AuthFile = filepath.Join(t.TempDir(), "users.json")
			if err := os.WriteFile(cfg.AuthFile, []byte(`[{"username":"a","password":"b","perms":["all"]}]`), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		n, err := StartNode(cfg)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		n.Close()
		if got := strings.Contains(logs.String(), "this node is open to anyone"); got != tc.warns {
			t.Errorf("%s with auth %q: warned %v, want %v\n%s", tc.addr, tc.auth, got, tc.warns, logs.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"username":"a","password":"b","perms":["everything"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "m")
	_, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: data,
		Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), AuthFile: bad})
	if err == nil || !strings.Contains(err.Error(), "bad.json") || !strings.Contains(err.Error(), "everything") {
		t.Fatalf("a bad credentials file: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a start refused for its credentials file created its data directory: %v", err)
	}
}
