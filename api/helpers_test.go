package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/wal"
)

// waitTimeout bounds every wait on replication; a healthy node needs
// milliseconds, so it only decides how long a broken one takes to fail.
const waitTimeout = 30 * time.Second

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mustRunMaster runs a master on real files in a temp dir behind an
// api.Server on a free loopback port, and returns the server and a client
// of it. Cleanup closes the server, the master, the database and the log,
// in that order.
func mustRunMaster(tb testing.TB) (*api.Server, *client.Client) {
	tb.Helper()
	return mustRunMasterConfig(tb, master.Config{})
}

// mustRunMasterConfig is mustRunMaster with a master configuration (a
// pinned clock, a heartbeat) and changes to the server before it opens.
func mustRunMasterConfig(tb testing.TB, cfg master.Config, opts ...func(*api.Server)) (*api.Server, *client.Client) {
	tb.Helper()
	return mustRunMasterIn(tb, tb.TempDir(), wal.Options{NoSync: true}, cfg, opts...)
}

// mustRunMasterIn is mustRunMasterConfig on the files of dir (a log the
// test prepared), with the log's options (a failpoint).
func mustRunMasterIn(tb testing.TB, dir string, walOpts wal.Options, cfg master.Config, opts ...func(*api.Server)) (*api.Server, *client.Client) {
	tb.Helper()
	lg, err := wal.Open(filepath.Join(dir, "log.db"), walOpts)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		lg.Close()
		tb.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	m, err := master.Open(lg, d, cfg)
	if err != nil {
		d.Close()
		lg.Close()
		tb.Fatal(err)
	}
	srv := &api.Server{Addr: "127.0.0.1:0", ID: "master", Master: m, Logger: quietLogger()}
	for _, o := range opts {
		o(srv)
	}
	if err := srv.Open(); err != nil {
		m.Close()
		d.Close()
		lg.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// Server.Close may already have been called by the test (a master
		// that goes down); closing twice is harmless.
		if err := srv.Close(); err != nil {
			tb.Errorf("close master server: %v", err)
		}
		m.Close()
		// The log the test leaves is contiguous and every entry checks.
		if err := lg.Check(); err != nil {
			tb.Errorf("check master log: %v", err)
		}
		if err := d.Close(); err != nil {
			tb.Errorf("close master db: %v", err)
		}
		if err := lg.Close(); err != nil {
			tb.Errorf("close master log: %v", err)
		}
	})
	return srv, client.New(srv.URL())
}

// mustRunSlave runs slave id, pulling masterURL's log, on real files behind
// an api.Server on a free loopback port (changed by opts before it opens),
// and returns the server and a client of it. Cleanup closes the server, the slave and the database, in that
// order.
func mustRunSlave(tb testing.TB, masterURL, id string, opts ...func(*api.Server)) (*api.Server, *client.Client) {
	tb.Helper()
	dir := tb.TempDir()
	// The slave keeps its own log, as walship's slaves do.
	lg, err := wal.Open(filepath.Join(dir, "log.db"), wal.Options{NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { lg.Close() }) // after the slave's own cleanup
	d, err := db.Open(filepath.Join(dir, "db.sqlite"), db.Options{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	// The slave names its URL to the master before its server listens.
	addr := freeAddr(tb)
	url := api.AdvertiseURL(addr, false)
	s, err := slave.Open(d, slave.Config{ID: id, URL: url, MasterURL: masterURL, Logger: quietLogger(), Log: lg})
	if err != nil {
		d.Close()
		tb.Fatal(err)
	}
	srv := &api.Server{Addr: addr, ID: id, Slave: s, Logger: quietLogger()}
	for _, o := range opts {
		o(srv)
	}
	if err := srv.Open(); err != nil {
		s.Close()
		d.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("close slave server: %v", err)
		}
		if err := s.Close(); err != nil {
			tb.Errorf("close slave: %v", err)
		}
		if err := d.Close(); err != nil {
			tb.Errorf("close slave db: %v", err)
		}
	})
	if srv.URL() != url {
		tb.Fatalf("slave serves at %s, told the master %s", srv.URL(), url)
	}
	return srv, client.New(srv.URL())
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// waitFor polls cond until it holds, failing the test after waitTimeout
// with what.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond) // ok: poll interval
	}
}

// waitApplied waits until the slave behind srv has applied index.
func waitApplied(tb testing.TB, srv *api.Server, index uint64) {
	tb.Helper()
	waitFor(tb, "the slave to apply its master's last index", func() bool {
		return srv.Slave.DB().AppliedIndex() >= index
	})
}

// post sends body to POST / of url and returns the status and the body.
func post(tb testing.TB, url string, body []byte) (int, []byte) {
	tb.Helper()
	status, _, b := do(tb, http.MethodPost, url+"/", body)
	return status, b
}

// do sends one request and returns its status, headers and body.
func do(tb testing.TB, method, url string, body []byte) (int, http.Header, []byte) {
	tb.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// seedJSON encodes a seed request exactly as a client would send it.
func seedJSON(tb testing.TB, command, sql string, params ...any) []byte {
	tb.Helper()
	b, err := json.Marshal(client.SeedRequest{Command: command, Query: sql, Params: params})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// mustExec runs a write through the client and fails the test on error.
func mustExec(tb testing.TB, c *client.Client, sql string, params ...any) *client.SeedResponse {
	tb.Helper()
	resp, err := c.Exec(context.Background(), sql, params...)
	if err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
	return resp
}

// errorBody decodes an error answer, failing the test unless it is exactly
// the JSON object {"error": "…"} (with "master" on a slave's 403).
func errorBody(tb testing.TB, body []byte) client.ErrorResponse {
	tb.Helper()
	var er client.ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&er); err != nil {
		tb.Fatalf("error answer is not {\"error\": …} JSON: %v: %s", err, body)
	}
	if strings.TrimSpace(er.Error) == "" {
		tb.Fatalf("error answer without a message: %s", body)
	}
	return er
}

// dump returns every row of a query on the node behind c, as JSON, for
// comparing content.
func dump(tb testing.TB, c *client.Client, sql string) string {
	tb.Helper()
	resp, err := c.Query(context.Background(), sql)
	if err != nil {
		tb.Fatalf("query %q: %v", sql, err)
	}
	b, err := json.Marshal(resp.Values)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
