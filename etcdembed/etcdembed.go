// Package etcdembed runs a single-member etcd server inside the process:
// for trying failover on one machine (walship demo --failover) and for
// tests, which so need no etcd installed. A real cluster runs etcd on its
// own (three or five members) and gives its nodes --etcd.
package etcdembed

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is an etcd server embedded in the process.
type Server struct {
	etcd *embed.Etcd
	url  string
	once sync.Once
}

// Start starts a single-member etcd keeping its data in dir, listening on
// loopback ports it picks (clientAddr, if not empty, for clients: e.g.
// "127.0.0.1:2379"). It returns once etcd serves.
func Start(dir, clientAddr string) (*Server, error) {
	peer, err := freeAddr("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if clientAddr == "" {
		clientAddr = "127.0.0.1:0"
	}
	if clientAddr, err = freeAddr(clientAddr); err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "walship"
	cfg.Dir = dir
	cu, pu := url.URL{Scheme: "http", Host: clientAddr}, url.URL{Scheme: "http", Host: peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	case <-time.After(30 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, errors.New("start etcd: not ready after 30s")
	}
	return &Server{etcd: e, url: cu.String()}, nil
}

// URL returns etcd's client URL.
func (s *Server) URL() string { return s.url }

// Close stops etcd; a second call does nothing.
func (s *Server) Close() {
	s.once.Do(s.etcd.Close)
}

// freeAddr returns addr with a port that was free a moment ago when addr's
// is 0.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
