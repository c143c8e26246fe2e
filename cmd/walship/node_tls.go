package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"log/slog"
	"strings"

	"github.com/walship/walship/certs"
)

// NodeTLS is a node's TLS settings: PEM files, each read again when it
// changes (package certs). All empty: plain HTTP.
type NodeTLS struct {
	// Cert and Key are the node's certificate and key: set, it serves
	// every endpoint over TLS only (--tls-cert, --tls-key).
	Cert, Key string
	// ClientCA, if set, holds the CAs whose client certificates the node
	// requires and accepts (mutual TLS; --tls-client-ca).
	ClientCA string
	// ClientNames, if set, are the only names (common name or DNS name) a
	// client certificate may carry (--tls-client-names).
	ClientNames []string
	// MasterCA, MasterCert and MasterKey are a slave's for its requests to
	// an https master: the CAs that signed the master's certificate (empty:
	// the system's roots), and the client certificate it presents
	// (--master-ca, --master-cert, --master-key).
	MasterCA, MasterCert, MasterKey string
}

// addNodeTLSFlags defines the TLS flags of a node on fs, into t; a slave
// has the --master-* ones too.
func addNodeTLSFlags(fs *flag.FlagSet, t *NodeTLS, slave bool) {
	fs.StringVar(&t.Cert, "tls-cert", "", "serve every endpoint over TLS with this certificate (PEM, its chain may follow it); read again when it changes")
	fs.StringVar(&t.Key, "tls-key", "", "the key of --tls-cert (PEM); read again when it changes")
	fs.StringVar(&t.ClientCA, "tls-client-ca", "", "require a client certificate signed by one of the CAs of this PEM file from every client (mutual TLS); read again when it changes")
	fs.Func("tls-client-names", "with --tls-client-ca, accept only client certificates whose common name or a DNS name is one of these comma-separated `names` (e.g. the slaves' names); empty: any of the CAs", func(v string) error {
		t.ClientNames = certs.ParseNames(v)
		return nil
	})
	if slave {
		fs.StringVar(&t.MasterCA, "master-ca", "", "verify an https master's certificate against the CAs of this PEM file (default: the system's roots)")
		fs.StringVar(&t.MasterCert, "master-cert", "", "the client certificate (PEM) to present to an https master that requires one; read again when it changes")
		fs.StringVar(&t.MasterKey, "master-key", "", "the key of --master-cert (PEM); read again when it changes")
	}
}

// tlsConfigs returns the TLS configurations of the node's server and of
// its requests to other nodes (nil: plain HTTP, Go's defaults). A master
// asks its slaves for /nodes as a client of its own CA: it trusts the
// CAs of --tls-client-ca and presents its own certificate.
func (cfg NodeConfig) tlsConfigs(logger *slog.Logger) (server, peer *tls.Config, err error) {
	t := cfg.TLS
	switch {
	case (t.Cert == "") != (t.Key == ""):
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	case t.ClientCA != "" && t.Cert == "":
		return nil, nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key (client certificates are checked in TLS)")
	case len(t.ClientNames) > 0 && t.ClientCA == "":
		return nil, nil, errors.New("--tls-client-names needs --tls-client-ca (only client certificates have names to check)")
	case (t.MasterCert == "") != (t.MasterKey == ""):
		return nil, nil, errors.New("--master-cert and --master-key go together")
	case t.MasterCA != "" || t.MasterCert != "":
		if !strings.HasPrefix(strings.ToLower(cfg.MasterURL), "https://") {
			return nil, nil, errors.New("--master-ca, --master-cert and --master-key are for an https master: give --master https://…")
		}
	}
	if t.Cert != "" {
		server, err = certs.ServerConfig(certs.ServerOptions{CertFile: t.Cert, KeyFile: t.Key,
			ClientCAFile: t.ClientCA, ClientNames: t.ClientNames, Logger: logger})
		if err != nil {
			return nil, nil, err
		}
	}
	switch {
	case cfg.Role == "slave" && (t.MasterCA != "" || t.MasterCert != ""):
		peer, err = certs.ClientConfig(certs.ClientOptions{CAFile: t.MasterCA, CertFile: t.MasterCert, KeyFile: t.MasterKey, Logger: logger})
	case cfg.Role == "master" && t.ClientCA != "":
		peer, err = certs.ClientConfig(certs.ClientOptions{CAFile: t.ClientCA, CertFile: t.Cert, KeyFile: t.Key, Logger: logger})
	}
	if err != nil {
		return nil, nil, err
	}
	return server, peer, nil
}
