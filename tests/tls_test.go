package tests

// TLS end to end: nodes serving https with certificates made in the test
// (package certstest), mutual TLS between a master and its slaves,
// refused certificates, rotation under load, and the command line.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/certs"
	"github.com/walship/walship/certs/certstest"
)

// tlsClient returns an HTTP client that trusts the certificates of ca and
// presents cert when a node asks for one (nil: none).
func tlsClient(t testing.TB, ca *certstest.CA, cert *certstest.Cert) *http.Client {
	t.Helper()
	o := certs.ClientOptions{CAFile: ca.File}
	if cert != nil {
		o.CertFile, o.KeyFile = cert.CertFile, cert.KeyFile
	}
	cfg, err := certs.ClientConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}}
}

// WithHTTPS makes a node serve every endpoint over TLS with cert
// (--tls-cert, --tls-key), and the harness reach it with hc.
func WithHTTPS(cert *certstest.Cert, hc *http.Client) Option {
	return func(n *Node) {
		n.Scheme, n.HTTP = "https", hc
		n.Args = append(n.Args, "--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile)
	}
}

// WithMasterTLS makes a slave verify its https master against ca and, if
// cert is not nil, present cert to it (--master-ca, --master-cert,
// --master-key).
func WithMasterTLS(ca *certstest.CA, cert *certstest.Cert) Option {
	return func(n *Node) {
		n.Args = append(n.Args, "--master-ca", ca.File)
		if cert != nil {
			n.Args = append(n.Args, "--master-cert", cert.CertFile, "--master-key", cert.KeyFile)
		}
	}
}

// WithoutMaster makes the harness count a slave as started once it
// serves, whether or not its master answers it.
func WithoutMaster() Option { return func(n *Node) { n.NoLeader = true } }

// serverName returns the common name of the certificate n presents to a
// new connection.
func serverName(t testing.TB, n *Node) string {
	t.Helper()
	tr := n.client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(n.URL() + "/readyz")
	if err != nil {
		t.Fatalf("%s: %v", n, err)
	}
	readAll(resp)
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

// waitOutput waits until the node's output of this run holds each of
// wants.
func waitOutput(t testing.TB, n *Node, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		out, missing := n.Output(), ""
		for _, w := range wants {
			if !strings.Contains(out, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s", n, missing, out)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// A master and two slaves over mutual TLS (each node requires a
// certificate of the test CA, the master only those of its slaves and the
// test's client): writes to the master and through a slave replicate, a
// slave joins from the master's snapshot, every slave ends with the
// master's content, and the master checks its slaves for /nodes over TLS
// too. Plain HTTP and clients without a certificate get nothing.
func TestTLSMutualReplication(t *testing.T) {
	ca := certstest.NewCA(t, "walship test CA")
	hc := tlsClient(t, ca, ca.Client(t, "tester"))
	c := NewCluster(t)
	m := c.MustRunMaster(WithHTTPS(ca.Server(t, "master", "127.0.0.1"), hc),
		WithArgs("--tls-client-ca", ca.File, "--tls-client-names", "slave-1,slave-2,tester"))
	slave := func(id int, opts ...Option) *Node {
		cert := ca.Server(t, fmt.Sprintf("slave-%d", id), "127.0.0.1")
		return c.MustRunSlave(id, m, append([]Option{WithHTTPS(cert, hc), WithArgs("--tls-client-ca", ca.File), WithMasterTLS(ca, cert)}, opts...)...)
	}
	s1 := slave(1)
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, at TEXT DEFAULT CURRENT_TIMESTAMP)")
	writeConcurrently(t, m, 200, 4, func(i int) (string, []any) { return "INSERT INTO t (v) VALUES (?)", []any{fmt.Sprint("master ", i)} })
	// Through the slave: forwarded to the master over mutual TLS.
	writeConcurrently(t, s1, 20, 2, func(i int) (string, []any) { return "INSERT INTO t (v) VALUES (?)", []any{fmt.Sprint("slave ", i)} })

	resp, err := hc.Get(m.URL() + "/db/snapshot?fresh")
	if err != nil {
		t.Fatal(err)
	}
	if readAll(resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("snapshot: %d", resp.StatusCode)
	}
	s2 := slave(2, WithArgs("--join-from-snapshot", "100"))
	m.MustExec("INSERT INTO t (v) VALUES ('after the snapshot')")
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatalf("%d slaves differ from the master", divergent)
	}
	want := m.Dump("SELECT id, v, at FROM t ORDER BY id")
	if !strings.Contains(want, "slave 19") || !strings.Contains(want, "master 199") {
		t.Fatalf("the master lacks writes: %.300s", want)
	}
	for _, s := range []*Node{s1, s2} {
		if got := s.Dump("SELECT id, v, at FROM t ORDER BY id"); got != want {
			t.Errorf("%s holds other rows than the master:\n%.500s\nmaster:\n%.500s", s, got, want)
		}
	}
	if out := s2.Output(); !strings.Contains(out, "bootstrapped: installed the master's snapshot") {
		t.Errorf("%s did not join from the snapshot over TLS:\n%s", s2, out)
	}
	st := m.MustLogStatus()
	for _, s := range []*Node{s1, s2} {
		if sl := st.Slave(s.ID); sl == nil || sl.URL != s.URL() {
			t.Errorf("the master knows %s as %+v, want its https URL", s, sl)
		}
	}
	// The master reaches its slaves for /nodes over mutual TLS, with its
	// own certificate.
	resp, err = hc.Get(m.URL() + "/nodes?ver=2")
	if err != nil {
		t.Fatal(err)
	}
	var nodes struct {
		Nodes []struct {
			ID        string `json:"id"`
			APIAddr   string `json:"api_addr"`
			Reachable bool   `json:"reachable"`
			Error     string `json:"error"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(readAll(resp), &nodes); err != nil || len(nodes.Nodes) != 3 {
		t.Fatalf("/nodes: %v %+v", err, nodes)
	}
	for _, n := range nodes.Nodes {
		if !n.Reachable || !strings.HasPrefix(n.APIAddr, "https://") {
			t.Errorf("/nodes: %+v, want every node reachable at an https URL", n)
		}
	}

	// Plain HTTP is answered 400 and nothing else; a client without a
	// certificate is refused in the handshake.
	resp, err = httpClient.Get("http://" + m.Addr + "/log/status")
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
		t.Errorf("plain HTTP to a TLS node: %d %s", resp.StatusCode, b)
	}
	if _, err := tlsClient(t, ca, nil).Get(m.URL() + "/log/status"); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("a client without a certificate: %v, want refused", err)
	}
}

// A slave presenting a certificate of another CA, and one of the right CA
// under a name the master does not allow, are refused in the handshake:
// they never get an entry, the master logs each refusal, and each slave
// says why it is disconnected.
func TestTLSForeignSlaveRefused(t *testing.T) {
	ca, foreign := certstest.NewCA(t, "walship test CA"), certstest.NewCA(t, "another CA")
	hc := tlsClient(t, ca, ca.Client(t, "tester"))
	c := NewCluster(t)
	m := c.MustRunMaster(WithHTTPS(ca.Server(t, "master", "127.0.0.1"), hc),
		WithArgs("--tls-client-ca", ca.File, "--tls-client-names", "slave-1,tester"))
	m.MustExec("CREATE TABLE t (v)")
	m.MustExec("INSERT INTO t VALUES ('secret')")

	alien := c.MustRunSlave(1, m, WithMasterTLS(ca, foreign.Server(t, "slave-1", "127.0.0.1")), WithoutMaster())
	misnamed := c.MustRunSlave(2, m, WithMasterTLS(ca, ca.Server(t, "slave-9", "127.0.0.1")), WithoutMaster())
	waitOutput(t, m, "refused a TLS connection", "certificate signed by unknown authority", "is not one of the allowed client names")
	waitOutput(t, alien, "remote error: tls: unknown certificate authority")
	waitOutput(t, misnamed, "remote error: tls: bad certificate")

	for _, s := range []*Node{alien, misnamed} {
		st := s.MustLogStatus()
		if st.AppliedIndex != 0 || st.State != "disconnected" || !strings.Contains(string(st.Body), "tls: ") {
			t.Errorf("%s: %s, want nothing applied, disconnected by TLS", s, st.Body)
		}
		if got := tables(s); strings.Contains(got, `"t"`) {
			t.Errorf("%s holds the master's tables: %s", s, got)
		}
	}
	if st := m.MustLogStatus(); len(st.Slaves) != 0 {
		t.Errorf("the master counts refused slaves: %s", st.Body)
	}
	if cn := serverName(t, m); cn != "master" {
		t.Fatalf("server certificate %q", cn)
	}
}

// The master's certificate files are replaced three times while clients
// write over TLS (some on kept-alive connections, some on a new one per
// write) and a slave pulls over mutual TLS: new connections get each new
// certificate without a restart, no write fails, every acknowledged
// write is on the master and the slave.
func TestTLSRotationUnderLoad(t *testing.T) {
	ca := certstest.NewCA(t, "walship test CA")
	hc := tlsClient(t, ca, ca.Client(t, "tester"))
	dir := t.TempDir()
	live := &certstest.Cert{CertFile: filepath.Join(dir, "master.pem"), KeyFile: filepath.Join(dir, "master-key.pem")}
	ca.Server(t, "master-0", "127.0.0.1").Install(t, live.CertFile, live.KeyFile)
	c := NewCluster(t)
	m := c.MustRunMaster(WithHTTPS(live, hc), WithArgs("--tls-client-ca", ca.File))
	sc := ca.Server(t, "slave-1", "127.0.0.1")
	s := c.MustRunSlave(1, m, WithMasterTLS(ca, sc))
	m.MustExec("CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER)")

	fresh := hc.Transport.(*http.Transport).Clone()
	fresh.DisableKeepAlives = true
	freshClient := &http.Client{Transport: fresh, Timeout: 30 * time.Second}
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		acked    []int
		failed   atomic.Int64
		firstErr atomic.Value
	)
	const writers = 6
	for w := range writers {
		hcw := hc
		if w%2 == 1 {
			hcw = freshClient // a handshake per write
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				id := w*1_000_000 + j
				body, _ := json.Marshal(Request{Command: "exec", Query: "INSERT INTO t (id, writer) VALUES (?, ?)", Params: []any{id, w}})
				resp, err := hcw.Post(m.URL()+"/", "application/json", bytes.NewReader(body))
				if err == nil {
					b := readAll(resp)
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitCount := func(n int) {
		deadline := time.Now().Add(waitTimeout)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d writes acknowledged, waiting for %d", count(), n)
			}
			time.Sleep(pollInterval) // ok: poll interval
		}
	}
	waitCount(100)
	for r := 1; r <= 3; r++ {
		name := fmt.Sprintf("master-%d", r)
		ca.Server(t, name, "127.0.0.1").Install(t, live.CertFile, live.KeyFile)
		deadline := time.Now().Add(waitTimeout)
		for serverName(t, m) != name {
			if time.Now().After(deadline) {
				t.Fatalf("new connections never got certificate %s", name)
			}
			time.Sleep(pollInterval) // ok: poll interval
		}
		waitCount(count() + 100) // writes go on with the new certificate
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d writes failed across the rotations, the first: %v", n, firstErr.Load())
	}
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatalf("the slave differs from the master")
	}
	for _, n := range []*Node{m, s} {
		res := n.MustQuery("SELECT id FROM t ORDER BY id")
		have := make(map[string]bool, len(res.Values))
		for _, row := range res.Values {
			have[fmt.Sprint(row[0])] = true
		}
		missing := 0
		for _, id := range acked {
			if !have[fmt.Sprint(id)] {
				missing++
			}
		}
		if missing > 0 || len(have) != len(acked) {
			t.Errorf("%s: %d acknowledged writes missing, %d rows for %d acknowledged writes", n, missing, len(have), len(acked))
		}
	}
	if got := strings.Count(m.Output(), "certificate reloaded"); got < 3 {
		t.Errorf("the master logged %d reloads, want 3 or more:\n%s", got, m.Output())
	}
	t.Logf("%d writes acknowledged across 3 rotations", len(acked))
}

// walship exec and status reach https nodes with --ca; without it they
// fail saying the certificate is not trusted and what to give; with
// --insecure they work and warn.
func TestTLSCommandLine(t *testing.T) {
	ca := certstest.NewCA(t, "walship test CA")
	hc := tlsClient(t, ca, nil)
	c := NewCluster(t)
	m := c.MustRunMaster(WithHTTPS(ca.Server(t, "master", "127.0.0.1"), hc))
	s := c.MustRunSlave(1, m, WithHTTPS(ca.Server(t, "slave-1", "127.0.0.1"), hc), WithMasterTLS(ca, nil))

	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := walship(t, args...)
		if err != nil {
			t.Fatalf("walship %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustCLI("exec", "--node", m.URL(), "--ca", ca.File, "CREATE TABLE t (v TEXT)")
	if out := mustCLI("exec", "--node", s.URL(), "--ca", ca.File, "INSERT INTO t VALUES (?)", "through the slave"); !strings.Contains(out, `"index": 2`) {
		t.Fatalf("exec through the slave: %s", out)
	}
	s.WaitForApplied(2, waitTimeout)
	out := mustCLI("status", m.URL(), "--ca", ca.File)
	if !strings.Contains(out, s.URL()) || !strings.Contains(out, "streaming") || strings.Contains(out, "WARNING") {
		t.Fatalf("status:\n%s", out)
	}

	for _, args := range [][]string{
		{"exec", "--node", m.URL(), "INSERT INTO t VALUES ('no CA')"},
		{"status", m.URL()},
	} {
		out, err := walship(t, args...)
		if err == nil || !strings.Contains(out, "certificate signed by unknown authority") || !strings.Contains(out, "--ca") {
			t.Errorf("walship %s without --ca: %v, want a failure naming the certificate and --ca:\n%s", args[0], err, out)
		}
	}
	if n := m.Count("SELECT count(*) FROM t"); n != 1 {
		t.Errorf("%d rows after a refused write, want 1", n)
	}

	for _, args := range [][]string{
		{"query", "--node", s.URL(), "--insecure", "--format", "csv", "SELECT v FROM t"},
		{"status", m.URL(), "--insecure"},
	} {
		out := mustCLI(args...)
		if !strings.Contains(out, "WARNING: --insecure") {
			t.Errorf("walship %s --insecure does not warn:\n%s", args[0], out)
		}
		if args[0] == "query" && !strings.Contains(out, "through the slave") {
			t.Errorf("walship query --insecure:\n%s", out)
		}
	}
}
