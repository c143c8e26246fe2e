package tests

import (
	"database/sql"
	"net/http"
	"strings"
	"testing"

	"github.com/rqlite/gorqlite"

	"github.com/walship/walship/certs/certstest"
)

// A secured cluster, as SECURITY.md deploys it: every node serves https
// and requires client certificates of the cluster's CA, and checks
// credentials. A slave whose user holds replicate replicates over mutual
// TLS; one whose user lacks it gets nothing. gorqlite and its
// database/sql driver reach the master and a slave over https with basic
// auth in the URL; a wrong password is refused.
func TestSecureCluster(t *testing.T) {
	ca := certstest.NewCA(t, "walship test CA")
	hc := tlsClient(t, ca, ca.Client(t, "app"))
	withCreds := &http.Client{Timeout: hc.Timeout, Transport: credTransport{hc.Transport}}
	file := writeAuthFile(t, nil)
	c := NewCluster(t)
	m := c.MustRunMaster(WithHTTPS(ca.Server(t, "master", "127.0.0.1"), withCreds), WithCredentials("admin", "admin-pw"),
		WithArgs("--tls-client-ca", ca.File, "--auth", file))
	slave := func(id int, user, pw string, opts ...Option) *Node {
		cert := ca.Server(t, "slave", "127.0.0.1")
		return c.MustRunSlave(id, m, append([]Option{WithHTTPS(cert, withCreds), WithCredentials("admin", "admin-pw"),
			WithArgs("--tls-client-ca", ca.File, "--auth", file, "--master-user", user), WithEnv("WALSHIP_MASTER_PASSWORD", pw),
			WithMasterTLS(ca, cert)}, opts...)...)
	}
	s := slave(1, "repl", "repl-pw")
	m.MustExec("CREATE TABLE sec (id INTEGER PRIMARY KEY, v TEXT)")
	writeConcurrently(t, m, 50, 4, func(i int) (string, []any) { return "INSERT INTO sec (v) VALUES (?)", []any{i} })
	if divergent := checkChecksums(t, c, m); divergent != 0 {
		t.Fatal("the slave over mutual TLS differs from the master")
	}
	// Without replicate: nothing.
	s2 := slave(2, "reader", "reader-pw", WithoutMaster())
	st := s2.WaitFor("the feed refused", waitTimeout, func(st *LogStatus) bool { return strings.Contains(string(st.Body), "403") })
	if st.AppliedIndex != 0 {
		t.Fatalf("a slave without replicate applied %d: %s", st.AppliedIndex, st.Body)
	}

	// rqlite's clients over https with basic auth.
	orig := gorqlite.DefaultHTTPClient
	gorqlite.DefaultHTTPClient = hc // the database/sql driver's: trusts the test CA, presents a client certificate
	t.Cleanup(func() { gorqlite.DefaultHTTPClient = orig })
	for _, n := range []*Node{m, s} {
		u := "https://both:both-pw@" + n.Addr + "/?disableClusterDiscovery=true"
		conn, err := gorqlite.OpenWithClient(u, hc)
		if err != nil {
			t.Fatalf("gorqlite over https to %s: %v", n, err)
		}
		t.Cleanup(conn.Close)
		if _, err := conn.WriteOneParameterized(gorqlite.ParameterizedStatement{Query: "INSERT INTO sec (v) VALUES (?)", Arguments: []any{"gorqlite " + n.Name()}}); err != nil {
			t.Fatalf("gorqlite write over https through %s: %v", n, err)
		}
		db, err := sql.Open("rqlite", u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec("INSERT INTO sec (v) VALUES (?)", "sql "+n.Name()); err != nil {
			t.Fatalf("database/sql write over https through %s: %v", n, err)
		}
		var count int
		if err := db.QueryRow("SELECT count(*) FROM sec").Scan(&count); err != nil || count < 52 {
			t.Fatalf("database/sql read over https through %s: %d, %v", n, count, err)
		}
		bad, err := sql.Open("rqlite", "https://both:wrong@"+n.Addr+"/?disableClusterDiscovery=true")
		if err == nil {
			_, err = bad.Exec("INSERT INTO sec (v) VALUES ('no')")
			bad.Close()
		}
		if err == nil {
			t.Fatalf("a wrong password wrote over https through %s", n)
		}
	}
	if got := m.Count("SELECT count(*) FROM sec"); got != 54 {
		t.Fatalf("%d rows, want 54", got)
	}
}
