package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/wal"
)

// mustRunMaster runs a master on real files behind an api.Server on a
// loopback port; cleanup closes them.
func mustRunMaster(t *testing.T) *api.Server {
	t.Helper()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	m, err := master.Open(lg, d, master.Config{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv := &api.Server{Addr: "127.0.0.1:0", ID: "master", Master: m, Logger: logger}
	if err := srv.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// Status and Nodes decode the node's answers: its role and address, and
// the cluster's members with the master as leader.
func TestClusterMethods(t *testing.T) {
	srv := mustRunMaster(t)
	c := client.New(srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := st["node"].(map[string]any)
	if node["role"] != "master" || node["api_addr"] != srv.URL() {
		t.Fatalf("GET /status: %v", st)
	}

	nodes, err := c.Nodes(ctx)
	if errors.Is(err, client.ErrNotFound) {
		t.Skip("the node does not serve GET /nodes yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	m, ok := nodes["master"]
	if len(nodes) != 1 || !ok || m.ID != "master" || !m.Leader || !m.Reachable || m.Role != "master" || m.APIAddr != srv.URL() {
		t.Fatalf("GET /nodes: %+v", nodes)
	}

	// A node that cannot be reached is an error, not an empty answer.
	if _, err := client.New("http://127.0.0.1:1").Nodes(ctx); err == nil {
		t.Fatal("Nodes of a closed port answered")
	}
}
