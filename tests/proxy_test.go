package tests

// This file puts a fault-injecting TCP proxy between two parties of a test:
// a slave and the master it pulls from, or a client and a node. It is
// Shopify's toxiproxy, run in the test process (no toxiproxy server, no
// HTTP API): Cut and Heal stop and restart its listener on the same
// address, and the toxics (latency, timeout, reset_peer, bandwidth) add
// latency or drop and reset connections.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxy is a TCP proxy on a free loopback port that forwards to one
// upstream address, and injects faults on demand. Its methods are safe
// from any goroutine; the ones that take no error fail the proxy's test.
type Proxy struct {
	Name     string
	Upstream string // host:port of what the proxy forwards to

	t  testing.TB
	mu sync.Mutex
	p  *toxiproxy.Proxy
	// toxics lists the names of the toxics in force, so Heal removes them.
	toxics []string
	cut    bool
}

// proxyServer is the toxiproxy server the proxies of this test process
// belong to: only its logger and (disabled) metrics are used, it never
// listens.
// The global logger of zerolog is the toxics' (a bandwidth toxic logs each
// interruption at trace level); the proxies log nothing.
func init() { zerolog.SetGlobalLevel(zerolog.Disabled) }

var proxyServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())

// NewProxy starts a proxy to upstream (host:port) on a free loopback port.
// It is stopped when the test ends.
func NewProxy(t testing.TB, name, upstream string) *Proxy {
	t.Helper()
	p := &Proxy{Name: name, Upstream: upstream, t: t}
	p.p = toxiproxy.NewProxy(proxyServer, name, "127.0.0.1:0", upstream)
	if err := p.p.Start(); err != nil {
		t.Fatalf("proxy %s: start: %v", name, err)
	}
	t.Cleanup(p.p.Stop)
	return p
}

// NewProxy starts a proxy in front of node n (its Addr is kept across
// restarts, so the proxy follows it).
func (c *Cluster) NewProxy(name string, n *Node) *Proxy {
	c.t.Helper()
	return NewProxy(c.t, name, n.Addr)
}

// Addr is the proxy's listen address, kept across Cut and Heal.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.p.Listen
}

// URL is the proxy's address as an http:// base URL.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

func (p *Proxy) String() string {
	return fmt.Sprintf("proxy %s (%s → %s)", p.Name, p.Addr(), p.Upstream)
}

// Cut closes the proxy's listener and every connection through it: both
// sides see their connections end, and new connections are refused, until
// Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.p.Stop()
	p.cut = true
}

// Heal removes every toxic and, after Cut, listens again on the same
// address. Connections that a toxic damaged (a blackhole drops bytes in
// the middle of a stream) are closed, so both sides start afresh.
func (p *Proxy) Heal() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	damaged := false
	for _, name := range p.toxics {
		if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			p.t.Errorf("%s: remove toxic %s: %v", p.Name, name, err)
		}
		damaged = damaged || strings.HasPrefix(name, "blackhole")
	}
	p.toxics = nil
	if damaged && !p.cut {
		p.p.Stop()
		p.cut = true
	}
	if p.cut {
		if err := p.p.Start(); err != nil {
			p.t.Errorf("%s: listen again on %s: %v", p.Name, p.p.Listen, err)
			return
		}
		p.cut = false
	}
}

// Blackhole keeps connections open but drops every byte in both
// directions, as a network partition does: no error, no answer. New
// connections are accepted and dropped the same way.
func (p *Proxy) Blackhole() {
	p.addToxic("blackhole_up", "timeout", "upstream", map[string]any{"timeout": 0})
	p.addToxic("blackhole_down", "timeout", "downstream", map[string]any{"timeout": 0})
}

// Latency delays every chunk of data in both directions by latency ±
// jitter.
func (p *Proxy) Latency(latency, jitter time.Duration) {
	attrs := map[string]any{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()}
	p.addToxic("latency_up", "latency", "upstream", attrs)
	p.addToxic("latency_down", "latency", "downstream", attrs)
}

// ResetPeer resets (TCP RST) every connection after it has carried data
// for after, requests and answers alike, until Heal.
func (p *Proxy) ResetPeer(after time.Duration) {
	p.addToxic("reset_up", "reset_peer", "upstream", map[string]any{"timeout": after.Milliseconds()})
}

// Bandwidth limits the answers (downstream) to rate KB/s.
func (p *Proxy) Bandwidth(rate int64) {
	p.addToxic("bandwidth_down", "bandwidth", "downstream", map[string]any{"rate": rate})
}

func (p *Proxy) addToxic(name, typ, stream string, attrs map[string]any) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	body := toxicJSON(name, typ, stream, attrs)
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		p.t.Errorf("%s: add toxic %s: %v", p.Name, body, err)
		return
	}
	p.toxics = append(p.toxics, name)
}

func toxicJSON(name, typ, stream string, attrs map[string]any) string {
	var a []string
	for k, v := range attrs {
		a = append(a, fmt.Sprintf("%q:%v", k, v))
	}
	return fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":{%s}}`, name, typ, stream, strings.Join(a, ","))
}

// TestProxyFaults checks each fault of Proxy against a plain HTTP server:
// latency delays, Cut refuses, Blackhole hangs, ResetPeer resets,
// Bandwidth slows the answer, and Heal undoes each.
func TestProxyFaults(t *testing.T) {
	body := strings.Repeat("x", 32<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	p := NewProxy(t, "test", strings.TrimPrefix(srv.URL, "http://"))
	// A new connection per request: a fault then meets each request from
	// its start.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get(p.URL())
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && string(b) != body {
			err = fmt.Errorf("got %d bytes, want %d", len(b), len(body))
		}
		return time.Since(start), err
	}
	mustGet := func(when string) time.Duration {
		t.Helper()
		d, err := get()
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		return d
	}
	mustFail := func(when string) error {
		t.Helper()
		_, err := get()
		if err == nil {
			t.Fatalf("%s: the request went through", when)
		}
		return err
	}
	mustGet("through the proxy")

	p.Latency(100*time.Millisecond, 0)
	if d := mustGet("with latency"); d < 150*time.Millisecond {
		t.Errorf("with 100ms latency each way, a request took %v", d)
	}
	p.Heal()

	p.Cut()
	if err := mustFail("cut"); !isRefused(err) {
		t.Errorf("cut: want connection refused, got %v", err)
	}
	p.Heal()
	mustGet("healed after the cut")

	p.Blackhole()
	client.Timeout = 300 * time.Millisecond
	if err := mustFail("blackholed"); !strings.Contains(err.Error(), "Client.Timeout") {
		t.Errorf("blackholed: want a timeout, got %v", err)
	}
	client.Timeout = 2 * time.Second
	p.Heal()
	mustGet("healed after the blackhole")

	p.ResetPeer(0)
	mustFail("reset")
	p.Heal()
	mustGet("healed after the reset")

	p.Bandwidth(64) // KB/s: 32 KiB take half a second
	if d := mustGet("with limited bandwidth"); d < 300*time.Millisecond {
		t.Errorf("32 KiB at 64 KB/s took %v", d)
	}
	p.Heal()
	mustGet("healed after the bandwidth limit")
}

func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
