package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/certs"
)

// insecureWarning is printed on stderr by every command run with
// --insecure.
const insecureWarning = `walship: WARNING: --insecure: the nodes' certificates are NOT verified.
walship: WARNING: anyone between this machine and the nodes can read and change this traffic. Give --ca instead.`

// remote is how a command reaches nodes: its https settings (--ca,
// --cert, --key, --insecure) and the clients made with them. A command
// that talks to several nodes (status, show, verify) uses the same
// settings for every one.
type remote struct {
	ca, cert, key string
	insecure      bool
	// user and password are the credentials for nodes with --auth.
	user, password string
	// tls is built by open from the flags; nil: Go's defaults.
	tls *tls.Config
}

// addRemoteFlags defines the flags of a remote on fs.
func addRemoteFlags(fs *flag.FlagSet) *remote {
	r := &remote{}
	fs.StringVar(&r.ca, "ca", "", "verify https nodes' certificates against the CAs of this PEM file (default: the system's roots)")
	fs.StringVar(&r.cert, "cert", "", "the client certificate (PEM) to present to nodes that require one (mutual TLS)")
	fs.StringVar(&r.key, "key", "", "the key of --cert (PEM)")
	fs.StringVar(&r.user, "user", "", "the user for nodes with --auth: NAME, with the password in the environment variable WALSHIP_PASSWORD, or NAME:PASSWORD (as rqlite's client takes it; others on this machine can see it in the process list)")
	fs.BoolVar(&r.insecure, "insecure", false, "do NOT verify https nodes' certificates: anyone on the way can read and change the traffic; for tests only")
	return r
}

// parse parses a command's flags, which may follow its arguments
// (parseFlagsAnywhere), opens the remote's settings, and returns the
// positional arguments.
func (r *remote) parse(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	pos, err := parseFlagsAnywhere(fs, args)
	if err != nil {
		return nil, err
	}
	if err := r.open(stderr); err != nil {
		return nil, err
	}
	return pos, nil
}

// open makes the TLS settings of the parsed flags, and warns on stderr
// when they are insecure.
func (r *remote) open(stderr io.Writer) error {
	if r.user != "" {
		if name, pass, ok := strings.Cut(r.user, ":"); ok {
			r.user, r.password = name, pass
		} else if r.password = os.Getenv("WALSHIP_PASSWORD"); r.password == "" {
			return fmt.Errorf("--user %s needs a password: set WALSHIP_PASSWORD, or give --user NAME:PASSWORD", r.user)
		}
	}
	switch {
	case (r.cert == "") != (r.key == ""):
		return errors.New("--cert and --key go together")
	case r.insecure && r.ca != "":
		return errors.New("--insecure skips the check that --ca is for: give one of them")
	case r.ca == "" && r.cert == "" && !r.insecure:
		return nil
	}
	cfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: r.ca, CertFile: r.cert, KeyFile: r.key, Insecure: r.insecure,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	if r.insecure {
		fmt.Fprintln(stderr, insecureWarning)
	}
	r.tls = cfg
	return nil
}

// client returns a client of the node at u whose requests may take up to
// timeout.
func (r *remote) client(u string, timeout time.Duration) *client.Client {
	c := client.NewTLS(u, r.tlsConfig())
	c.HTTP.Timeout = timeout
	if r != nil && r.user != "" && c.User == "" {
		c.User, c.Password = r.user, r.password
	}
	return c
}

// transport returns an HTTP transport with the remote's TLS settings and
// credentials.
func (r *remote) transport() http.RoundTripper {
	t := client.NewTLSTransport(r.tlsConfig())
	if r == nil || r.user == "" {
		return t
	}
	return basicAuth{base: t, user: r.user, password: r.password}
}

// basicAuth adds credentials to the requests that carry none.
type basicAuth struct {
	base           http.RoundTripper
	user, password string
}

func (b basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") == "" {
		req = req.Clone(req.Context())
		req.SetBasicAuth(b.user, b.password)
	}
	return b.base.RoundTrip(req)
}

func (r *remote) tlsConfig() *tls.Config {
	if r == nil {
		return nil
	}
	return r.tls
}

// tlsHint says what to do about a request that failed in TLS, "" for
// another failure.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return " (give the CA that signed the node's certificate with --ca)"
	case errors.As(err, &host):
		return " (the node's certificate does not name the host of this URL: use one it names)"
	case strings.Contains(msg, "tls: certificate required"):
		return " (the node requires a client certificate: give --cert and --key)"
	case strings.Contains(msg, "remote error: tls: unknown certificate authority"), strings.Contains(msg, "remote error: tls: bad certificate"):
		return " (the node refused this client certificate: it takes certificates of its --tls-client-ca, and maybe only some names)"
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return " (the node serves plain HTTP: use an http:// URL)"
	}
	return ""
}
