package client

import (
	"crypto/tls"
	"net/http"
)

// NewTLSTransport returns NewTransport's transport whose https
// connections use cfg (package certs builds it: the CA that signed the
// node's certificate, a client certificate); nil means Go's defaults.
func NewTLSTransport(cfg *tls.Config) *http.Transport {
	t := NewTransport()
	t.TLSClientConfig = cfg
	return t
}

// NewTLS returns a Client for the node at baseURL whose https connections
// use cfg; nil means Go's defaults, as New.
func NewTLS(baseURL string, cfg *tls.Config) *Client {
	c := New(baseURL)
	c.HTTP.Transport = NewTLSTransport(cfg)
	return c
}
