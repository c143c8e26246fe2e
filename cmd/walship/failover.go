package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/walship/walship/certs"
	"github.com/walship/walship/election"
)

// Automatic failover (--etcd): every node takes a lease of
// --failover-timeout at etcd and publishes what its log holds. The master
// campaigns for the election's leadership and takes writes only while it
// leads and its lease is certainly valid (master.Config.Gate): cut off
// from etcd, it stops writing before etcd lets the lease expire. When
// the leadership is free (the master is lost, or was cut off), the slaves
// whose log is at least every other live node's campaign; the winner
// promotes itself with the next epoch and publishes its URL and epoch as
// the leadership's value; every other node follows that value. See README,
// "High availability".

// DefaultFailoverTimeout is --failover-timeout's default: the lease's time
// to live, so how long a lost master holds writes up before another is
// elected.
const DefaultFailoverTimeout = 5 * time.Second

// EtcdConfig is a node's connection to etcd for automatic failover.
type EtcdConfig struct {
	// Endpoints are etcd's client URLs; none: no automatic failover.
	Endpoints []string
	// Prefix is the cluster's key prefix at etcd (default /walship/).
	Prefix string
	// Timeout is --failover-timeout (DefaultFailoverTimeout when 0).
	Timeout time.Duration
	// User and Password are etcd's credentials; CA, Cert and Key its TLS
	// (the CA of etcd's certificate, and a client certificate).
	User, Password string
	CA, Cert, Key  string
}

// tlsConfig is the TLS of the connection to etcd, nil for plain.
func (c EtcdConfig) tlsConfig() (*tls.Config, error) {
	if c.CA == "" && c.Cert == "" {
		return nil, nil
	}
	return certs.ClientConfig(certs.ClientOptions{CAFile: c.CA, CertFile: c.Cert, KeyFile: c.Key})
}

// openElection joins the cluster's election at etcd.
func (n *Node) openElection() error {
	ec := n.cfg.Etcd
	tlsCfg, err := ec.tlsConfig()
	if err != nil {
		return fmt.Errorf("--etcd: %w", err)
	}
	timeout := ec.Timeout
	if timeout == 0 {
		timeout = DefaultFailoverTimeout
		n.cfg.Etcd.Timeout = timeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.elec, err = election.Open(ctx, election.Config{Endpoints: ec.Endpoints, Prefix: ec.Prefix, TLS: tlsCfg,
		Username: ec.User, Password: ec.Password, TTL: timeout, URL: n.url, Logger: n.logger})
	if err != nil {
		return fmt.Errorf("--etcd: %w", err)
	}
	return nil
}

// gate is the master's write gate with automatic failover: it writes
// only while it leads and its lease is certainly valid.
func (n *Node) gate() error {
	if !n.leading.Load() {
		return errors.New("not elected (yet): the election at etcd has not chosen this node")
	}
	return n.elec.Valid()
}

// candidate is what the node's log holds, for the election.
func (n *Node) candidate() election.Candidate {
	n.roleMu.Lock()
	isMaster := n.master != nil && n.master.Fenced() == nil
	n.roleMu.Unlock()
	return election.Candidate{URL: n.url, LastEpoch: n.log.LastEpoch(), LastIndex: n.log.LastIndex(), Applied: n.db.AppliedIndex(),
		Master: isMaster}
}

// failover is the node's part in the election, until it closes: it
// publishes what it holds, follows the elected master, and campaigns when
// it is (or may become) the master.
func (n *Node) failover() {
	e := n.elec
	tick := time.NewTicker(max(n.cfg.Etcd.Timeout/8, 100*time.Millisecond))
	defer tick.Stop()
	ctx := n.ctx
	leaders := e.Observe(ctx)
	// leased is when the node took its lease: a slave does not campaign
	// before the others had time to publish under theirs (after etcd was
	// unreachable, every lease is new).
	leased := time.Now()
	var campaign chan error // the campaign running, if any
	var stopCampaign context.CancelFunc
	defer func() {
		if stopCampaign != nil {
			stopCampaign()
			<-campaign
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case l, ok := <-leaders:
			if !ok {
				leaders = nil // the session ended: observed again once renewed
				continue
			}
			n.followLeader(ctx, l)
		case <-e.Done():
			// The lease ended at etcd (cut off longer than the timeout):
			// the master stopped writing already (gate); take a new lease
			// and campaign again.
			n.leading.Store(false)
			if stopCampaign != nil {
				stopCampaign()
				<-campaign
				campaign, stopCampaign = nil, nil
			}
			n.logger.Warn("the failover lease ended; taking a new one", "etcd", n.cfg.Etcd.Endpoints)
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := e.Renew(rctx)
				cancel()
				if err == nil {
					break
				}
				n.failures.Log(n.logger, slog.LevelWarn, "etcd", "etcd unreachable; the master takes no writes, reads go on", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
			leased = time.Now()
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = e.Publish(pctx, n.candidate())
			cancel()
			leaders = e.Observe(ctx)
		case err := <-campaign:
			campaign, stopCampaign = nil, nil
			if err == nil {
				n.won(ctx)
			}
		case <-tick.C:
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = e.Publish(pctx, n.candidate())
			cancel()
			if campaign != nil || n.leading.Load() {
				if n.leading.Load() && !e.Leading(ctx) {
					n.leading.Store(false)
				}
				continue
			}
			if !n.mayCampaign(ctx, time.Since(leased) >= n.cfg.Etcd.Timeout/2) {
				continue
			}
			cctx, cancel := context.WithCancel(ctx)
			ch := make(chan error, 1)
			campaign, stopCampaign = ch, cancel
			me := election.Leader{URL: n.url, Epoch: n.log.Epoch()}
			go func() { ch <- e.Campaign(cctx, me) }() // waited for by this loop
		}
	}
}

// mayCampaign reports whether the node should campaign now: a master
// always (it leads, or must be elected before it writes); a slave only
// when no master is elected and its log is at least every other live
// node's.
//
// A node that missed a whole generation (its epoch is below the highest
// the cluster had) never campaigns: a node of the latest one holds
// writes it lacks. A slave with an empty log never does, nor any slave
// before a master was ever elected (a new cluster whose master has not
// started yet), nor in its first half timeout under a lease (settled
// false: the others may not have published under theirs yet).
func (n *Node) mayCampaign(ctx context.Context, settled bool) bool {
	n.roleMu.Lock()
	isMaster := n.master != nil && n.master.Fenced() == nil
	n.roleMu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	stored, err := n.elec.Epoch(lctx)
	if err != nil || n.log.Epoch() < stored {
		return false
	}
	if isMaster {
		return true
	}
	if stored == 0 || n.log.LastIndex() == 0 || !settled {
		return false
	}
	if _, err := n.elec.Leader(lctx); !errors.Is(err, election.ErrNoLeader) {
		return false
	}
	return n.best(lctx)
}

// best reports whether no live node's log is ahead of this one's, and,
// for a slave, no master's is as far: the master that lost its
// leadership (etcd was unreachable) is elected again before a slave that
// has no more than it.
func (n *Node) best(ctx context.Context) bool {
	cs, err := n.elec.Candidates(ctx)
	if err != nil {
		return false
	}
	me := n.candidate()
	for _, c := range cs {
		if c.URL == n.url {
			continue
		}
		if c.Ahead(me) || (c.Master && !me.Master && !me.Ahead(c)) {
			return false
		}
	}
	return true
}

// won is the node's turn once it leads: it checks again that no live
// node is ahead of it (else it resigns), takes its epoch (a master keeps
// its own while no higher one was stored; a slave promotes itself with the
// next), publishes it, and opens its write gate.
func (n *Node) won(ctx context.Context) {
	e := n.elec
	if !n.best(ctx) {
		n.logger.Info("elected, but another node's log is ahead: resigning for it")
		_ = e.Resign(ctx)
		return
	}
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	epoch := n.log.Epoch()
	keep := false
	if n.master != nil {
		var err error
		if keep, err = e.KeepEpoch(ctx, epoch); err != nil {
			n.logger.Warn("elected, but could not record the epoch; resigning", "err", err)
			_ = e.Resign(ctx)
			return
		}
	}
	if !keep {
		next, err := e.NextEpoch(ctx, max(epoch, n.log.LastEpoch()))
		if err != nil {
			n.logger.Warn("elected, but could not take the next epoch; resigning", "err", err)
			_ = e.Resign(ctx)
			return
		}
		start := time.Now()
		index, err := n.becomeMaster(ctx, next)
		if err != nil {
			n.logger.Error("elected, but could not become the master; resigning", "err", err)
			_ = e.Resign(ctx)
			return
		}
		epoch = next
		n.logger.Warn("elected: this node is the master", "epoch", epoch, "first_index", index, "took", time.Since(start))
	}
	if err := e.Proclaim(ctx, election.Leader{URL: n.url, Epoch: epoch}); err != nil {
		n.logger.Warn("elected, but could not publish the master; resigning", "err", err)
		_ = e.Resign(ctx)
		return
	}
	n.leading.Store(true)
	n.logger.Info("leading: this master holds the failover lease and takes writes", "epoch", epoch)
}

// followLeader follows the elected master l, unless it is this node or of
// an older epoch than the node knows.
func (n *Node) followLeader(ctx context.Context, l election.Leader) {
	if l.URL == n.url {
		return
	}
	n.leading.Store(false)
	if l.Epoch < n.log.Epoch() {
		return // an old value; its successor comes next
	}
	n.roleMu.Lock()
	following := n.slave != nil && n.slave.MasterURL() == l.URL
	n.roleMu.Unlock()
	if following {
		return
	}
	if err := n.Follow(ctx, l.URL, l.Epoch); err != nil {
		n.logger.Warn("could not follow the elected master", "master", l.URL, "epoch", l.Epoch, "err", err)
	}
}

// addEtcdFlags adds the flags of automatic failover to fs; the function
// it returns reads them once fs is parsed.
func addEtcdFlags(fs *flag.FlagSet) func() (EtcdConfig, error) {
	endpoints := fs.String("etcd", "", "automatic failover: etcd's client URLs, comma-separated; the nodes elect the master there, and a lost master is replaced within --failover-timeout (README, \"High availability\"); empty: off")
	prefix := fs.String("etcd-prefix", "/walship/", "the cluster's key prefix at etcd (clusters sharing an etcd need different ones)")
	timeout := fs.Duration("failover-timeout", DefaultFailoverTimeout, "how long a lost master holds the lease before another is elected (etcd's lease time to live, 2s at least); a master cut off from etcd stops writing before then")
	user := fs.String("etcd-user", "", "etcd user; its password is read from the environment variable WALSHIP_ETCD_PASSWORD")
	ca := fs.String("etcd-ca", "", "PEM file of the CA of etcd's certificate (https etcd URLs)")
	cert := fs.String("etcd-cert", "", "PEM client certificate for etcd (with --etcd-key)")
	key := fs.String("etcd-key", "", "PEM key of --etcd-cert")
	return func() (EtcdConfig, error) {
		c := EtcdConfig{Endpoints: splitURLs(*endpoints), Prefix: *prefix, Timeout: *timeout, User: *user,
			CA: *ca, Cert: *cert, Key: *key}
		if len(c.Endpoints) == 0 {
			return c, nil
		}
		if c.Timeout < 2*time.Second {
			return c, fmt.Errorf("--failover-timeout %s: etcd's leases last 2s at least", c.Timeout)
		}
		if (c.Cert == "") != (c.Key == "") {
			return c, errors.New("--etcd-cert and --etcd-key go together")
		}
		if c.User != "" {
			if c.Password = os.Getenv("WALSHIP_ETCD_PASSWORD"); c.Password == "" {
				return c, errors.New("--etcd-user needs a password: set WALSHIP_ETCD_PASSWORD")
			}
		}
		return c, nil
	}
}
