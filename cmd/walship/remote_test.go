package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/certs"
	"github.com/walship/walship/certs/certstest"
)

// tlsCluster is a master and a slave in this process, both serving https
// and requiring client certificates of ca (mutual TLS); the slave pulls
// the master's log with a certificate of its own.
type tlsCluster struct {
	master, slave *Node
	ca            *certstest.CA
	// flags are the command line's TLS flags for a client of ca.
	flags []string
}

func mustStartTLSCluster(t *testing.T) *tlsCluster {
	t.Helper()
	ca := certstest.NewCA(t, "walship test CA")
	mc, sc, cc := ca.Server(t, "master", "127.0.0.1"), ca.Server(t, "slave-1", "127.0.0.1"), ca.Client(t, "cli")
	logger := slog.New(slog.DiscardHandler)
	m, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: t.TempDir(), Logger: logger,
		TLS: NodeTLS{Cert: mc.CertFile, Key: mc.KeyFile, ClientCA: ca.File}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s, err := StartNode(NodeConfig{Role: "slave", ID: "1", Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), Data: t.TempDir(),
		MasterURL: m.URL(), Logger: logger,
		TLS: NodeTLS{Cert: sc.CertFile, Key: sc.KeyFile, ClientCA: ca.File, MasterCA: ca.File, MasterCert: sc.CertFile, MasterKey: sc.KeyFile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: ca.File, CertFile: cc.CertFile, KeyFile: cc.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{m, s} {
		if !strings.HasPrefix(n.URL(), "https://") {
			t.Fatalf("a node serving TLS advertises %s", n.URL())
		}
		if err := waitReady(context.Background(), client.NewTLS(n.URL(), cfg).Ready, testWait); err != nil {
			t.Fatalf("node %s not ready: %v", n.URL(), err)
		}
	}
	return &tlsCluster{master: m, slave: s, ca: ca, flags: []string{"--ca", ca.File, "--cert", cc.CertFile, "--key", cc.KeyFile}}
}

// run runs a command line and returns its standard output and error.
func run(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = Run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// Every command that talks to nodes does so over mutual TLS with --ca,
// --cert and --key, to every node it reaches.
func TestCommandsOverTLS(t *testing.T) {
	c := mustStartTLSCluster(t)
	m, s := c.master.URL(), c.slave.URL()
	with := func(args ...string) []string {
		return append(append(args[:1:1], c.flags...), args[1:]...)
	}
	mustRun := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(with(args...)...)
		if err != nil {
			t.Fatalf("walship %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}
	mustRun("exec", "--node", m, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustRun("exec", "--node", m, "INSERT INTO t (v) VALUES ('from the master')")
	// A write sent to the slave is forwarded to the master over mutual TLS.
	if out := mustRun("exec", "--node", s, "INSERT INTO t (v) VALUES ('through the slave')"); !strings.Contains(out, `"index": 3`) {
		t.Fatalf("exec through the slave: %s", out)
	}
	if out := mustRun("query", "--node", s, "--format", "csv", "SELECT id, v FROM t ORDER BY id"); out != "id,v\n1,from the master\n2,through the slave\n" {
		t.Fatalf("query on the slave: %q", out)
	}
	file := filepath.Join(t.TempDir(), "more.sql")
	if err := os.WriteFile(file, []byte("INSERT INTO t (v) VALUES ('loaded');\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun("load", "--node", m, file)
	if out := mustRun("status", m); !strings.Contains(out, "master") || !strings.Contains(out, s) || strings.Contains(out, "unreachable") {
		t.Fatalf("status:\n%s", out)
	}
	if out := mustRun("show", "--master", m, "t"); !strings.Contains(out, "loaded") || strings.Contains(out, "differ") {
		t.Fatalf("show:\n%s", out)
	}
	if out := mustRun("verify", s); !strings.Contains(out, "ok") {
		t.Fatalf("verify:\n%s", out)
	}
	dump := filepath.Join(t.TempDir(), "b.sql")
	mustRun("backup", "--node", s, "--sql", dump)
	if b, err := os.ReadFile(dump); err != nil || !strings.Contains(string(b), "through the slave") {
		t.Fatalf("backup over TLS: %v\n%s", err, b)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	mustRun("backup", "--node", m, backup)
	if out, errOut, err := run(append([]string{"bench", "write", "--url", m, "--count", "20", "-c", "2"}, c.flags...)...); err != nil {
		t.Fatalf("bench write: %v\n%s%s", err, out, errOut)
	}
	var out bytes.Buffer
	if err := runShell(context.Background(), append(c.flags, m), strings.NewReader("SELECT group_concat(v, '|') AS vs FROM t;\n"), &out, &out); err != nil ||
		!strings.Contains(out.String(), "from the master|through the slave|loaded") {
		t.Fatalf("shell: %v\n%s", err, out.String())
	}
	// A restore starts a new history: the slave bootstraps from the
	// master's snapshot, over mutual TLS too.
	mustRun("restore", "--node", m, backup)
	want := "n\n0\n" // walship_bench is not in the backup
	err := waitReady(context.Background(), func(context.Context) error {
		out, _, err := run(with("query", "--node", s, "--format", "csv", "SELECT count(*) AS n FROM sqlite_schema WHERE name = 'walship_bench'")...)
		if err == nil && out != want {
			err = fmt.Errorf("%q", out)
		}
		return err
	}, testWait)
	if err != nil {
		t.Fatalf("the slave after the restore: %v", err)
	}
}

// Without the CA, without a client certificate, or over plain HTTP, a
// command fails with one line that says what is wrong and what to give;
// --insecure works and warns.
func TestCommandTLSErrors(t *testing.T) {
	c := mustStartTLSCluster(t)
	m := c.master.URL()
	certKey := c.flags[2:]
	for _, tc := range []struct {
		name string
		args []string
		says []string
	}{
		{"no CA", append([]string{"exec", "--node", m}, certKey...), []string{"certificate signed by unknown authority", "--ca"}},
		{"no client certificate", []string{"exec", "--node", m, "--ca", c.ca.File}, []string{"certificate required", "--cert and --key"}},
		{"plain HTTP", append([]string{"exec", "--node", "http" + strings.TrimPrefix(m, "https")}, c.flags...), []string{"HTTP request to an HTTPS server"}},
		{"cert without key", []string{"exec", "--node", m, "--cert", c.flags[3]}, []string{"--cert and --key go together"}},
		{"insecure and CA", []string{"exec", "--node", m, "--insecure", "--ca", c.ca.File}, []string{"give one of them"}},
		{"missing CA file", []string{"exec", "--node", m, "--ca", filepath.Join(t.TempDir(), "none.pem")}, []string{"no such file"}},
	} {
		_, _, err := run(append(tc.args, "SELECT 1")...)
		for _, want := range tc.says {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, want an error saying %q", tc.name, err, want)
			}
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: the error is not one line: %q", tc.name, err)
		}
	}
	out, errOut, err := run(append(append([]string{"query", "--node", m, "--insecure"}, certKey...), "SELECT 41 + 1 AS x")...)
	if err != nil || !strings.Contains(out, "42") {
		t.Fatalf("--insecure: %v\n%s", err, out)
	}
	if !strings.Contains(errOut, "WARNING") || !strings.Contains(errOut, "NOT verified") {
		t.Errorf("--insecure does not warn on stderr: %q", errOut)
	}
}

// Node TLS flags that do not fit together are refused before anything
// starts, naming the flags.
func TestNodeTLSFlagErrors(t *testing.T) {
	ca := certstest.NewCA(t, "walship test CA")
	c := ca.Server(t, "node", "127.0.0.1")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"master", "--tls-cert", c.CertFile}, "--tls-cert and --tls-key go together"},
		{[]string{"master", "--tls-client-ca", ca.File}, "--tls-client-ca needs --tls-cert"},
		{[]string{"master", "--tls-cert", c.CertFile, "--tls-key", c.KeyFile, "--tls-client-names", "a,b"}, "--tls-client-names needs --tls-client-ca"},
		{[]string{"master", "--tls-cert", c.CertFile, "--tls-key", ca.File}, "certificate"},
		{[]string{"slave", "1", "--master", "http://127.0.0.1:1", "--master-ca", ca.File}, "give --master https://"},
		{[]string{"slave", "1", "--master", "https://127.0.0.1:1", "--master-cert", c.CertFile}, "--master-cert and --master-key go together"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		_, _, err := run(append(tc.args, "--addr", "127.0.0.1:0", "--data", data)...)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: got %v, want an error saying %q", tc.args, err, tc.says)
		}
		if _, statErr := os.Stat(data); statErr == nil {
			t.Errorf("%v: the data directory was made before the flags were checked", tc.args)
		}
	}
}
