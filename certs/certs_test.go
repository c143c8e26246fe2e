package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/certs"
	"github.com/walship/walship/certs/certstest"
)

// fast is the CheckInterval of the tests: rotations show within a few
// milliseconds.
const fast = 5 * time.Millisecond

// logBuffer collects a logger's lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, nil)), buf
}

// server is an HTTPS server on a free loopback port whose handler answers
// the common name of the client's certificate ("-" without one).
type server struct {
	url     string
	handled atomic.Int64
}

func serve(t *testing.T, cfg *tls.Config) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{url: "https://" + ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.handled.Add(1)
			cn := "-"
			if len(r.TLS.PeerCertificates) > 0 {
				cn = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			io.WriteString(w, cn)
		}),
		ErrorLog: log.New(io.Discard, "", 0), // refused handshakes
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

// get makes one request on a new connection and returns the common name
// of the server's certificate and the answer (the client's common name).
func get(url string, cfg *tls.Config) (serverCN, clientCN string, err error) {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName, string(b), nil
}

func mustGet(t *testing.T, url string, cfg *tls.Config) (serverCN, clientCN string) {
	t.Helper()
	s, c, err := get(url, cfg)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return s, c
}

// waitFor polls ok until it holds or 10s pass.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not after 10s: %s", what)
		}
		time.Sleep(fast) // ok: poll interval
	}
}

func clientConfig(t *testing.T, o certs.ClientOptions) *tls.Config {
	t.Helper()
	cfg, err := certs.ClientConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func serverConfig(t *testing.T, o certs.ServerOptions) *tls.Config {
	t.Helper()
	cfg, err := certs.ServerConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// files returns a certificate and key path in a new directory, holding c.
func files(t *testing.T, c *certstest.Cert) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c.Install(t, certFile, keyFile)
	return certFile, keyFile
}

// A new pair in the files serves the next handshakes; a connection opened
// before keeps its certificate.
func TestServerCertificateRotates(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	certFile, keyFile := files(t, ca.Server(t, "one", "127.0.0.1"))
	logger, logs := newLogger()
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: certFile, KeyFile: keyFile, CheckInterval: fast, Logger: logger}))
	client := clientConfig(t, certs.ClientOptions{CAFile: ca.File})
	if cn, _ := mustGet(t, s.url, client); cn != "one" {
		t.Fatalf("server certificate %q, want one", cn)
	}
	// A kept-alive connection, opened before the rotation.
	kept := &http.Client{Transport: &http.Transport{TLSClientConfig: client}}
	defer kept.CloseIdleConnections()
	keptCN := func() string {
		resp, err := kept.Get(s.url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if cn := keptCN(); cn != "one" {
		t.Fatalf("kept connection: server certificate %q, want one", cn)
	}

	ca.Server(t, "two", "127.0.0.1").Install(t, certFile, keyFile)
	waitFor(t, "new handshakes get certificate two", func() bool {
		cn, _ := mustGet(t, s.url, client)
		return cn == "two"
	})
	if cn := keptCN(); cn != "one" {
		t.Errorf("the connection opened before the rotation: server certificate %q, want one (it keeps its own)", cn)
	}
	for range 5 {
		if cn, _ := mustGet(t, s.url, client); cn != "two" {
			t.Fatalf("after the rotation: server certificate %q, want two", cn)
		}
	}
	if !strings.Contains(logs.String(), "certificate reloaded") || !strings.Contains(logs.String(), "CN=two") {
		t.Errorf("the reload is not logged with the new subject:\n%s", logs)
	}
}

// Files that do not make a pair (a key of another certificate, a missing
// file) keep the previous certificate, and are logged once however many
// handshakes look at them; a good pair after them is taken.
func TestBadPairKeepsPrevious(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	certFile, keyFile := files(t, ca.Server(t, "one", "127.0.0.1"))
	logger, logs := newLogger()
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: certFile, KeyFile: keyFile, CheckInterval: fast, Logger: logger}))
	client := clientConfig(t, certs.ClientOptions{CAFile: ca.File})
	two, three := ca.Server(t, "two", "127.0.0.1"), ca.Server(t, "three", "127.0.0.1")

	(&certstest.Cert{CertPEM: two.CertPEM, KeyPEM: three.KeyPEM}).Install(t, certFile, keyFile)
	waitFor(t, "the mismatched pair is logged", func() bool {
		mustGet(t, s.url, client)
		return strings.Contains(logs.String(), "cannot be used")
	})
	end := time.Now().Add(20 * fast)
	for time.Now().Before(end) {
		if cn, _ := mustGet(t, s.url, client); cn != "one" {
			t.Fatalf("with a mismatched pair in the files: server certificate %q, want the previous one", cn)
		}
	}
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Errorf("the mismatched pair is logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "private key does not match public key") {
		t.Errorf("the log does not say why:\n%s", logs)
	}

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missing key is logged", func() bool {
		mustGet(t, s.url, client)
		return strings.Count(logs.String(), "cannot be used") == 2
	})
	for range 10 {
		if cn, _ := mustGet(t, s.url, client); cn != "one" {
			t.Fatalf("with the key missing: server certificate %q, want the previous one", cn)
		}
	}
	if n := strings.Count(logs.String(), "cannot be used"); n != 2 {
		t.Errorf("the missing key is logged %d times, want once:\n%s", n-1, logs)
	}

	three.Install(t, certFile, keyFile)
	waitFor(t, "a good pair is taken after bad ones", func() bool {
		cn, _ := mustGet(t, s.url, client)
		return cn == "three"
	})
}

// With a client CA, a client without a certificate or with one of another
// CA is refused before any request is served; one of the CA is served.
func TestMutualTLS(t *testing.T) {
	ca, foreign := certstest.NewCA(t, "test CA"), certstest.NewCA(t, "foreign CA")
	srvCert := ca.Server(t, "master", "127.0.0.1")
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, ClientCAFile: ca.File}))
	good, alien := ca.Client(t, "slave-1"), foreign.Client(t, "slave-1")

	for _, tc := range []struct {
		name string
		o    certs.ClientOptions
		want string
	}{
		{"no certificate", certs.ClientOptions{CAFile: ca.File}, "tls: certificate required"},
		{"another CA's certificate", certs.ClientOptions{CAFile: ca.File, CertFile: alien.CertFile, KeyFile: alien.KeyFile},
			"tls: unknown certificate authority"},
	} {
		_, _, err := get(s.url, clientConfig(t, tc.o))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a refusal saying %q", tc.name, err, tc.want)
		}
	}
	if n := s.handled.Load(); n != 0 {
		t.Fatalf("%d refused requests reached the handler", n)
	}
	_, cn := mustGet(t, s.url, clientConfig(t, certs.ClientOptions{CAFile: ca.File, CertFile: good.CertFile, KeyFile: good.KeyFile}))
	if cn != "slave-1" {
		t.Errorf("the server saw client %q, want slave-1", cn)
	}
}

// Allowed client names admit a certificate by its common name or a DNS
// name (in any case), and refuse one of the same CA with neither.
func TestClientNames(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	srvCert := ca.Server(t, "master", "127.0.0.1")
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
		ClientCAFile: ca.File, ClientNames: certs.ParseNames(" slave-1, ,replica.example.com")}))
	with := func(c *certstest.Cert) *tls.Config {
		return clientConfig(t, certs.ClientOptions{CAFile: ca.File, CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	if _, cn := mustGet(t, s.url, with(ca.Client(t, "slave-1"))); cn != "slave-1" {
		t.Errorf("by common name: the server saw %q", cn)
	}
	if _, cn := mustGet(t, s.url, with(ca.Client(t, "node-7", "Replica.Example.com"))); cn != "node-7" {
		t.Errorf("by DNS name: the server saw %q", cn)
	}
	before := s.handled.Load()
	if _, _, err := get(s.url, with(ca.Client(t, "slave-2", "other.example.com"))); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("a certificate of the CA with another name: got %v, want refused (bad certificate)", err)
	}
	if s.handled.Load() != before {
		t.Error("the refused request reached the handler")
	}
}

// A change of the client CA file takes effect for new handshakes.
func TestClientCAReloaded(t *testing.T) {
	ca, next := certstest.NewCA(t, "test CA"), certstest.NewCA(t, "next CA")
	srvCert := ca.Server(t, "master", "127.0.0.1")
	caFile := filepath.Join(t.TempDir(), "clients.pem")
	copyFile(t, ca.File, caFile)
	logger, logs := newLogger()
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile,
		ClientCAFile: caFile, CheckInterval: fast, Logger: logger}))
	oldClient := clientConfig(t, certs.ClientOptions{CAFile: ca.File, CertFile: ca.Client(t, "old").CertFile, KeyFile: ca.Client(t, "old").KeyFile})
	c := next.Client(t, "new")
	newClient := clientConfig(t, certs.ClientOptions{CAFile: ca.File, CertFile: c.CertFile, KeyFile: c.KeyFile})
	mustGet(t, s.url, oldClient)
	if _, _, err := get(s.url, newClient); err == nil {
		t.Fatal("a client of the next CA is served before the CA file names it")
	}
	copyFile(t, next.File, caFile)
	waitFor(t, "the next CA's client is served", func() bool {
		_, _, err := get(s.url, newClient)
		return err == nil
	})
	if _, _, err := get(s.url, oldClient); err == nil {
		t.Error("a client of the old CA is still served after the CA file dropped it")
	}
	if !strings.Contains(logs.String(), "client CA reloaded") {
		t.Errorf("the reload is not logged:\n%s", logs)
	}
}

// A client verifies the server with its CA file, not without it unless
// told to be insecure; its own certificate is reloaded like a server's.
func TestClientConfig(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	srvCert := ca.Server(t, "master", "127.0.0.1")
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, ClientCAFile: ca.File}))
	certFile, keyFile := files(t, ca.Client(t, "c1"))
	o := certs.ClientOptions{CertFile: certFile, KeyFile: keyFile, CheckInterval: fast}

	_, _, err := get(s.url, clientConfig(t, o))
	var unknown x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &unknown) {
		t.Errorf("without the CA (the system's roots): got %v, want an unknown authority", err)
	}
	o.Insecure = true
	if _, cn := mustGet(t, s.url, clientConfig(t, o)); cn != "c1" {
		t.Errorf("insecure: the server saw %q", cn)
	}
	o.Insecure, o.CAFile = false, ca.File
	client := clientConfig(t, o)
	if _, cn := mustGet(t, s.url, client); cn != "c1" {
		t.Errorf("with the CA: the server saw %q", cn)
	}
	ca.Client(t, "c2").Install(t, certFile, keyFile)
	waitFor(t, "new connections present the new client certificate", func() bool {
		_, cn := mustGet(t, s.url, client)
		return cn == "c2"
	})
}

// TLS 1.1 and older are refused.
func TestMinVersion(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	srvCert := ca.Server(t, "master", "127.0.0.1")
	s := serve(t, serverConfig(t, certs.ServerOptions{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile}))
	old := clientConfig(t, certs.ClientOptions{CAFile: ca.File})
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, _, err := get(s.url, old); err == nil {
		t.Error("a TLS 1.1 client was served")
	}
	cur := clientConfig(t, certs.ClientOptions{CAFile: ca.File})
	cur.MaxVersion = tls.VersionTLS12
	mustGet(t, s.url, cur)
}

// Bad files and settings are errors at start that name the problem.
func TestConfigErrors(t *testing.T) {
	ca := certstest.NewCA(t, "test CA")
	c := ca.Server(t, "master", "127.0.0.1")
	other := ca.Server(t, "other", "127.0.0.1")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no key", serverErr(certs.ServerOptions{CertFile: c.CertFile}), "both its certificate file and its key file"},
		{"missing cert", serverErr(certs.ServerOptions{CertFile: missing, KeyFile: c.KeyFile}), "no such file"},
		{"mismatched key", serverErr(certs.ServerOptions{CertFile: c.CertFile, KeyFile: other.KeyFile}), "private key does not match"},
		{"names without CA", serverErr(certs.ServerOptions{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientNames: []string{"a"}}), "need a client CA file"},
		{"CA not PEM", serverErr(certs.ServerOptions{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: notPEM}), "holds no PEM certificate"},
		{"client CA missing", clientErr(certs.ClientOptions{CAFile: missing}), "no such file"},
		{"client cert without key", clientErr(certs.ClientOptions{CertFile: c.CertFile}), "both its certificate file and its key file"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, tc.err, tc.want)
		}
	}
}

func serverErr(o certs.ServerOptions) error { _, err := certs.ServerConfig(o); return err }
func clientErr(o certs.ClientOptions) error { _, err := certs.ClientConfig(o); return err }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".tmp", to); err != nil {
		t.Fatal(err)
	}
}
