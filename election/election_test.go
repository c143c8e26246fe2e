package election_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/election"
	"github.com/walship/walship/etcdembed"
)

func startEtcd(t *testing.T) *etcdembed.Server {
	t.Helper()
	srv, err := etcdembed.Start(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func open(t *testing.T, srv *etcdembed.Server, url string) *election.Election {
	t.Helper()
	return openAt(t, srv.URL(), url)
}

func openAt(t *testing.T, endpoint, url string) *election.Election {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := election.Open(ctx, election.Config{Endpoints: []string{endpoint}, TTL: 2 * time.Second, URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// One node leads at a time; the others see its URL and epoch; epochs only
// grow and only the leader stores them; when the leader leaves, another
// wins at once.
func TestElection(t *testing.T) {
	srv := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := open(t, srv, "http://a"), open(t, srv, "http://b")
	if _, err := a.Leader(ctx); !errors.Is(err, election.ErrNoLeader) {
		t.Fatalf("before any campaign: %v, want ErrNoLeader", err)
	}
	if err := a.Campaign(ctx, election.Leader{URL: "http://a", Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	if !a.Leading(ctx) || b.Leading(ctx) {
		t.Fatal("a should lead, b not")
	}
	if l, err := b.Leader(ctx); err != nil || l != (election.Leader{URL: "http://a", Epoch: 1}) {
		t.Fatalf("b sees %+v, %v", l, err)
	}
	if ok, err := a.KeepEpoch(ctx, 1); !ok || err != nil {
		t.Fatalf("KeepEpoch(1): %v %v", ok, err)
	}
	if _, err := b.NextEpoch(ctx, 1); err == nil {
		t.Fatal("a node that does not lead stored an epoch")
	}
	// b campaigns: it wins once a leaves.
	won := make(chan error, 1)
	go func() { won <- b.Campaign(ctx, election.Leader{URL: "http://b"}) }()
	select {
	case err := <-won:
		t.Fatalf("b won while a leads: %v", err)
	case <-time.After(300 * time.Millisecond): // ok: checking that nothing happens
	}
	if err := a.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatal(err)
	}
	e, err := b.NextEpoch(ctx, 1)
	if err != nil || e != 2 {
		t.Fatalf("NextEpoch: %d, %v; want 2", e, err)
	}
	if err := b.Proclaim(ctx, election.Leader{URL: "http://b", Epoch: e}); err != nil {
		t.Fatal(err)
	}
	if l, err := a.Leader(ctx); err != nil || l != (election.Leader{URL: "http://b", Epoch: 2}) {
		t.Fatalf("a sees %+v, %v", l, err)
	}
	if ok, err := b.KeepEpoch(ctx, 1); ok || err != nil {
		t.Fatalf("KeepEpoch(1) with 2 stored: %v %v, want false", ok, err)
	}
	// Candidates.
	if err := a.Publish(ctx, election.Candidate{URL: "http://a", LastEpoch: 1, LastIndex: 10}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, election.Candidate{URL: "http://b", LastEpoch: 2, LastIndex: 8}); err != nil {
		t.Fatal(err)
	}
	cs, err := a.Candidates(ctx)
	if err != nil || len(cs) != 2 || !cs[1].Ahead(cs[0]) {
		t.Fatalf("candidates %+v, %v", cs, err)
	}
}

// A node cut off from etcd knows its lease may be gone before etcd can
// let it expire: Valid fails within the lease's time to live.
func TestLeaseValidity(t *testing.T) {
	srv := startEtcd(t)
	p := newCutter(t, strings.TrimPrefix(srv.URL(), "http://"))
	a := openAt(t, "http://"+p.addr(), "http://a")
	if err := a.Valid(); err != nil {
		t.Fatal(err)
	}
	// Renewals go on: still valid after more than the TTL.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if err := a.Valid(); err != nil {
			t.Fatalf("the lease lapsed while etcd runs: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // ok: sampling over time
	}
	stopped := time.Now()
	p.cut()
	for a.Valid() == nil {
		if time.Since(stopped) > 2*time.Second {
			t.Fatal("still valid a whole TTL after etcd stopped")
		}
		time.Sleep(10 * time.Millisecond) // ok: poll interval
	}
	if err := a.Valid(); !errors.Is(err, election.ErrLeaseLost) {
		t.Fatalf("Valid: %v, want ErrLeaseLost", err)
	}
}

func TestCandidateAhead(t *testing.T) {
	for _, c := range []struct {
		a, b election.Candidate
		want bool
	}{
		{election.Candidate{LastEpoch: 2, LastIndex: 5}, election.Candidate{LastEpoch: 1, LastIndex: 9}, true},
		{election.Candidate{LastEpoch: 1, LastIndex: 9}, election.Candidate{LastEpoch: 2, LastIndex: 5}, false},
		{election.Candidate{LastEpoch: 1, LastIndex: 9}, election.Candidate{LastEpoch: 1, LastIndex: 5}, true},
		{election.Candidate{LastEpoch: 1, LastIndex: 5}, election.Candidate{LastEpoch: 1, LastIndex: 5}, false},
	} {
		if got := c.a.Ahead(c.b); got != c.want {
			t.Fatalf("%+v ahead of %+v: %v", c.a, c.b, got)
		}
	}
}

// cutter forwards TCP connections to an address until cut, which closes
// them all and refuses new ones: etcd cut off from its client.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			c.wg.Add(2)
			go func() { defer c.wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer c.wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { c.cut(); c.wg.Wait() })
	return c
}

func (c *cutter) addr() string { return c.ln.Addr().String() }

func (c *cutter) cut() {
	c.ln.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
}
