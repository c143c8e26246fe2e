// Package certstest makes real certificates for tests with crypto/x509: a
// CA, and server and client certificates it signs, written as PEM files in
// a test's temporary directory.
package certstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority of a test.
type CA struct {
	// Name is its subject's common name.
	Name string
	// File is its certificate, PEM: what --tls-client-ca, --master-ca and
	// --ca take.
	File string
	// Cert is its certificate.
	Cert *x509.Certificate

	key *ecdsa.PrivateKey
	dir string
}

// Cert is a certificate and its key, as PEM bytes and as files.
type Cert struct {
	Leaf              *x509.Certificate
	CertPEM, KeyPEM   []byte
	CertFile, KeyFile string
}

// NewCA makes a CA named name (its certificate valid from an hour ago for
// a day) and writes its certificate under a temporary directory of tb.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"walship tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("certstest: CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("certstest: CA %s: %v", name, err)
	}
	ca := &CA{Name: name, Cert: cert, key: key, dir: tb.TempDir()}
	ca.File = filepath.Join(ca.dir, "ca.pem")
	writeFile(tb, ca.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return ca
}

// Server returns a certificate for a server named name, valid for hosts
// (IP addresses become IP SANs, others DNS SANs) and for both server and
// client use, written as NAME.pem and NAME-key.pem in the CA's directory.
func (ca *CA) Server(tb testing.TB, name string, hosts ...string) *Cert {
	tb.Helper()
	tmpl := ca.template(tb, name, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tb, name, tmpl)
}

// Client returns a client certificate whose common name is cn, with
// dnsNames as DNS SANs, written as CN.pem and CN-key.pem in the CA's
// directory.
func (ca *CA) Client(tb testing.TB, cn string, dnsNames ...string) *Cert {
	tb.Helper()
	tmpl := ca.template(tb, cn, x509.ExtKeyUsageClientAuth)
	tmpl.DNSNames = dnsNames
	return ca.issue(tb, cn, tmpl)
}

func (ca *CA) template(tb testing.TB, cn string, usage ...x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"walship tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
}

func (ca *CA) issue(tb testing.TB, name string, tmpl *x509.Certificate) *Cert {
	tb.Helper()
	key := newKey(tb)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("certstest: certificate %s: %v", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("certstest: certificate %s: %v", name, err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("certstest: key of %s: %v", name, err)
	}
	c := &Cert{Leaf: leaf,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}),
	}
	c.CertFile, c.KeyFile = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem")
	c.Install(tb, c.CertFile, c.KeyFile)
	return c
}

// Install writes the certificate to certFile and its key to keyFile, each
// to a temporary file renamed into place (the key first), as a rotation
// does.
func (c *Cert) Install(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	writeFile(tb, keyFile, c.KeyPEM)
	writeFile(tb, certFile, c.CertPEM)
}

// writeFile writes b to path through a temporary file renamed into place.
func writeFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		tb.Fatalf("certstest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatalf("certstest: %v", err)
	}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("certstest: key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatalf("certstest: serial: %v", err)
	}
	return n
}
