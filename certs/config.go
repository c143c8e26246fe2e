package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// ServerOptions are a TLS server's files and settings.
type ServerOptions struct {
	// CertFile and KeyFile are the server's certificate (its chain may
	// follow it in the file) and key, PEM; both required, reloaded when
	// they change.
	CertFile, KeyFile string
	// ClientCAFile, if set, holds the PEM certificates of the CAs whose
	// client certificates are accepted: every client must present one
	// (mutual TLS). It is reloaded when it changes.
	ClientCAFile string
	// ClientNames, if set, are the only names a client certificate may
	// carry, as its subject's common name or one of its DNS names
	// (compared without case); empty: any certificate of the CAs. It needs
	// ClientCAFile.
	ClientNames []string
	// CheckInterval is how often, at most, the files are looked at for
	// changes; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// Logger receives the reloads; nil means slog.Default().
	Logger *slog.Logger
}

// ServerConfig returns the configuration of a TLS server: TLS 1.2 at
// least and Go's defaults otherwise, the certificate of o (reloaded), and
// with a client CA file, client certificates required and verified
// against it (the file reloaded too) and, with client names, checked
// against them.
func ServerConfig(o ServerOptions) (*tls.Config, error) {
	if len(o.ClientNames) > 0 && o.ClientCAFile == "" {
		return nil, errors.New("certs: allowed client names need a client CA file (client certificates are only checked with one)")
	}
	pair, err := LoadPair(o.CertFile, o.KeyFile, o.CheckInterval, o.Logger)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: pair.GetCertificate}
	if o.ClientCAFile == "" {
		return cfg, nil
	}
	cas, err := loadPool(o.ClientCAFile, o.CheckInterval, o.Logger)
	if err != nil {
		return nil, err
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if len(o.ClientNames) > 0 {
		cfg.VerifyConnection = allowNames(o.ClientNames)
	}
	// Each handshake gets the configuration of the current client CAs:
	// Go verifies a client against the ClientCAs of the configuration
	// that GetConfigForClient returns, a resumed session included.
	var current atomic.Pointer[tls.Config]
	outer := cfg.Clone()
	outer.ClientCAs = cas.current()
	current.Store(outer.Clone())
	outer.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := cas.current()
		if c := current.Load(); c.ClientCAs == pool {
			return c, nil
		}
		c := cfg.Clone()
		c.ClientCAs = pool
		current.Store(c)
		return c, nil
	}
	return outer, nil
}

// ClientOptions are a TLS client's files and settings.
type ClientOptions struct {
	// CAFile, if set, holds the PEM certificates of the CAs trusted to
	// sign servers' certificates; empty means the system's roots.
	CAFile string
	// CertFile and KeyFile, if set, are the client certificate presented
	// when a server asks for one (mutual TLS), reloaded when they change.
	CertFile, KeyFile string
	// Insecure skips the verification of the server's certificate: anyone
	// between the client and the server can then read and change the
	// traffic. For tests and emergencies only.
	Insecure bool
	// CheckInterval is how often, at most, the client certificate's files
	// are looked at for changes; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// Logger receives the reloads; nil means slog.Default().
	Logger *slog.Logger
}

// ClientConfig returns the configuration of a TLS client: TLS 1.2 at
// least and Go's defaults otherwise, the CAs of o, and the client
// certificate of o (reloaded), if any.
func ClientConfig(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure}
	if o.CAFile != "" {
		pool, err := readPool(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		pair, err := LoadPair(o.CertFile, o.KeyFile, o.CheckInterval, o.Logger)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = pair.GetClientCertificate
	}
	return cfg, nil
}

// ParseNames splits a comma-separated list of names, dropping blanks.
func ParseNames(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// allowNames returns a tls.Config.VerifyConnection that accepts a client
// certificate only if its common name or one of its DNS names is in names.
// Go calls it after it verified the chain, on every connection, resumed
// ones included.
func allowNames(names []string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("certs: no client certificate")
		}
		leaf := cs.PeerCertificates[0]
		for _, have := range append([]string{leaf.Subject.CommonName}, leaf.DNSNames...) {
			if have != "" && slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, have) }) {
				return nil
			}
		}
		return fmt.Errorf("certs: client certificate %q (DNS names %q) is not one of the allowed client names %q",
			leaf.Subject.String(), leaf.DNSNames, names)
	}
}

// pool is a set of CA certificates read from a PEM file, read again when
// the file changes.
type pool struct {
	cur atomic.Pointer[x509.CertPool]
	w   watch
}

func loadPool(file string, interval time.Duration, logger *slog.Logger) (*pool, error) {
	p := &pool{}
	p.w = watch{files: []string{file}, what: "client CA", interval: interval, logger: logger,
		load: func() ([]any, error) {
			cp, err := readPool(file)
			if err != nil {
				return nil, err
			}
			p.cur.Store(cp)
			return nil, nil
		}}
	if err := p.w.init(); err != nil {
		return nil, err
	}
	return p, nil
}

// current returns the CAs, reading the file again first if it changed
// and the last look is older than the interval.
func (p *pool) current() *x509.CertPool {
	p.w.check()
	return p.cur.Load()
}

// readPool reads the PEM certificates of file; a file without one is an
// error.
func readPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: CA file: %w", err)
	}
	cp := x509.NewCertPool()
	if !cp.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("certs: CA file %s holds no PEM certificate", file)
	}
	return cp, nil
}
