// Package election is walship's automatic failover on etcd: the nodes of
// a cluster campaign for a lease-held leadership
// (go.etcd.io/etcd/client/v3/concurrency), the winner is the master and
// publishes its URL and epoch under the election's key, and every other
// node follows that key. walship grows no consensus of its own: etcd
// decides who leads, and the master's epoch fences the one it replaced.
//
// A node holds a lease of TTL (the failover timeout). The master renews
// it, and takes writes only while its last renewal leaves the lease valid
// for a margin more (Valid): a master cut off from etcd stops writing
// before etcd can let the lease expire and elect another.
//
// Each node publishes what it holds (Candidate) under its lease; only a
// node whose log is at least every other live candidate's may campaign,
// and a winner that finds a better one resigns.
//
// # Goroutines
//
// An Election owns one goroutine, which records the lease's renewals
// (renewals), started by Open and stopped by Close.
package election

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// ErrNoLeader is returned by Leader when no node leads.
var ErrNoLeader = errors.New("no master is elected")

// ErrLeaseLost is returned by Valid when the lease may have expired at
// etcd (no renewal for too long): a master must not write.
var ErrLeaseLost = errors.New("the failover lease is not renewed: etcd may have elected another master")

// Config configures an Election.
type Config struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// Prefix is the etcd key prefix of the cluster: two clusters on one
	// etcd need different ones. Empty means "/walship/".
	Prefix string
	// TLS, Username and Password are etcd's client settings; nil TLS:
	// plain connections.
	TLS                *tls.Config
	Username, Password string
	// TTL is the lease's time to live: how long a lost master keeps the
	// leadership, so how long a failover takes at most, past detection.
	// Zero means 5s; etcd allows no less than 2s.
	TTL time.Duration
	// URL is this node's advertised URL.
	URL string
	// Logger receives the election's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Leader is the value of the election's key: the master's URL and epoch.
type Leader struct {
	URL   string `json:"url"`
	Epoch uint64 `json:"epoch"`
}

// Candidate is what a node holds, published under its lease: the last
// entry of its log (its epoch and index) and its applied index.
type Candidate struct {
	URL       string `json:"url"`
	LastEpoch uint64 `json:"last_epoch"`
	LastIndex uint64 `json:"last_index"`
	Applied   uint64 `json:"applied"`
	// Master is set by a node that is the master (it lost its
	// leadership, as when etcd was unreachable, and campaigns again): a
	// slave whose log is no further yields to it.
	Master bool `json:"master,omitempty"`
}

// Ahead reports whether c's log is ahead of o's: a later epoch at its
// last entry, or the same and a higher index (as Raft compares logs: a
// replaced master's extra entries are of an older epoch and lose).
func (c Candidate) Ahead(o Candidate) bool {
	if c.LastEpoch != o.LastEpoch {
		return c.LastEpoch > o.LastEpoch
	}
	return c.LastIndex > o.LastIndex
}

// Election is a node's membership in the cluster's election.
type Election struct {
	cfg     Config
	cli     *clientv3.Client
	session *concurrency.Session
	elec    *concurrency.Election
	margin  time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	validUntil time.Time // the lease is valid at etcd until at least then
	closeOnce  sync.Once
	closeErr   error
}

// Open connects to etcd and takes a lease of cfg.TTL.
func Open(ctx context.Context, cfg Config) (*Election, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("election: no etcd endpoint")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/walship/"
	}
	if cfg.Prefix[len(cfg.Prefix)-1] != '/' {
		cfg.Prefix += "/"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("election: a lease of %s is below etcd's least, 2s", cfg.TTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: 5 * time.Second, TLS: cfg.TLS,
		Username: cfg.Username, Password: cfg.Password, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("election: connect to etcd %v: %w", cfg.Endpoints, err)
	}
	e := &Election{cfg: cfg, cli: cli, margin: max(cfg.TTL/4, 250*time.Millisecond)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.newSession(ctx); err != nil {
		e.cancel()
		cli.Close()
		return nil, err
	}
	return e, nil
}

// newSession takes a new lease, and follows its renewals.
func (e *Election) newSession(ctx context.Context) error {
	ttl := int64((e.cfg.TTL + time.Second - 1) / time.Second)
	gctx, cancel := context.WithTimeout(ctx, e.cfg.TTL)
	defer cancel()
	asked := time.Now()
	lease, err := e.cli.Grant(gctx, ttl)
	if err != nil {
		return fmt.Errorf("election: take a lease from etcd: %w", err)
	}
	e.setValid(asked, lease.TTL)
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(ttl)),
		concurrency.WithContext(e.ctx))
	if err != nil {
		return fmt.Errorf("election: %w", err)
	}
	renewals, err := e.cli.KeepAlive(e.ctx, lease.ID)
	if err != nil {
		s.Orphan()
		return fmt.Errorf("election: keep the lease: %w", err)
	}
	e.session, e.elec = s, concurrency.NewElection(s, e.cfg.Prefix+"election")
	e.wg.Add(1)
	go func() { defer e.wg.Done(); e.renewals(renewals) }()
	return nil
}

// renewals records each renewal of the lease until the channel closes
// (the lease expired, or Close).
func (e *Election) renewals(ch <-chan *clientv3.LeaseKeepAliveResponse) {
	for r := range ch {
		// Renewed when etcd answered, at the latest: counting from the
		// answer's arrival errs by the network's delay, which the margin
		// covers.
		e.setValid(time.Now(), r.TTL)
	}
}

func (e *Election) setValid(from time.Time, ttl int64) {
	until := from.Add(time.Duration(ttl)*time.Second - e.margin)
	e.mu.Lock()
	if until.After(e.validUntil) {
		e.validUntil = until
	}
	e.mu.Unlock()
}

// Valid returns nil while the node's lease is certainly valid at etcd
// (its last renewal leaves it more than the margin), ErrLeaseLost
// otherwise: the master must stop writing.
func (e *Election) Valid() error {
	e.mu.Lock()
	until := e.validUntil
	e.mu.Unlock()
	if time.Now().Before(until) {
		return nil
	}
	return fmt.Errorf("%w (no renewal since %s)", ErrLeaseLost, until.Add(e.margin-e.cfg.TTL).Format(time.RFC3339Nano))
}

// Done is closed when the node's lease ended (expired at etcd, or
// revoked): Renew takes a new one.
func (e *Election) Done() <-chan struct{} { return e.session.Done() }

// Renew takes a new lease after the last one ended (Done), and a new
// membership in the election: the node campaigns again from scratch.
func (e *Election) Renew(ctx context.Context) error {
	return e.newSession(ctx)
}

// Campaign waits until this node leads, or ctx is done, and publishes l
// as the election's value.
func (e *Election) Campaign(ctx context.Context, l Leader) error {
	b, _ := json.Marshal(l)
	return e.elec.Campaign(ctx, string(b))
}

// Proclaim changes the value of the leadership this node holds.
func (e *Election) Proclaim(ctx context.Context, l Leader) error {
	b, _ := json.Marshal(l)
	return e.elec.Proclaim(ctx, string(b))
}

// Resign gives up the leadership, or the campaign.
func (e *Election) Resign(ctx context.Context) error {
	return e.elec.Resign(ctx)
}

// Leading reports whether this node holds the leadership now (its key is
// the first of the election, and its lease valid).
func (e *Election) Leading(ctx context.Context) bool {
	if e.Valid() != nil {
		return false
	}
	resp, err := e.elec.Leader(ctx)
	if err != nil || len(resp.Kvs) == 0 {
		return false
	}
	return string(resp.Kvs[0].Key) == e.elec.Key() && e.elec.Key() != ""
}

// Leader returns the current master, ErrNoLeader when none leads.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	resp, err := e.elec.Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return Leader{}, ErrNoLeader
	}
	if err != nil {
		return Leader{}, fmt.Errorf("election: %w", err)
	}
	return decodeLeader(resp.Kvs[0].Value)
}

// Observe sends each change of the master until ctx is done.
func (e *Election) Observe(ctx context.Context) <-chan Leader {
	out := make(chan Leader)
	in := e.elec.Observe(ctx)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(out)
		for resp := range in {
			if len(resp.Kvs) == 0 {
				continue
			}
			l, err := decodeLeader(resp.Kvs[0].Value)
			if err != nil {
				continue
			}
			select {
			case out <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func decodeLeader(b []byte) (Leader, error) {
	var l Leader
	if err := json.Unmarshal(b, &l); err != nil || l.URL == "" {
		return Leader{}, fmt.Errorf("election: the master's key holds %q, not a walship master", b)
	}
	return l, nil
}

// Publish records c under the node's lease: what it holds, for the
// others to compare before they campaign.
func (e *Election) Publish(ctx context.Context, c Candidate) error {
	b, _ := json.Marshal(c)
	_, err := e.cli.Put(ctx, e.cfg.Prefix+"candidates/"+c.URL, string(b), clientv3.WithLease(e.session.Lease()))
	if err != nil {
		return fmt.Errorf("election: publish: %w", err)
	}
	return nil
}

// Candidates returns what every live node published.
func (e *Election) Candidates(ctx context.Context) ([]Candidate, error) {
	resp, err := e.cli.Get(ctx, e.cfg.Prefix+"candidates/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("election: %w", err)
	}
	out := make([]Candidate, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var c Candidate
		if json.Unmarshal(kv.Value, &c) == nil && c.URL != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

// NextEpoch returns the epoch a new master takes: above own and above
// every epoch the cluster has had (stored at the prefix's "epoch" key),
// and stores it there, only while this node leads (an etcd transaction
// on its leadership key).
func (e *Election) NextEpoch(ctx context.Context, own uint64) (uint64, error) {
	key := e.cfg.Prefix + "epoch"
	for {
		resp, err := e.cli.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("election: %w", err)
		}
		var stored uint64
		var rev int64
		if len(resp.Kvs) == 1 {
			if _, err := fmt.Sscan(string(resp.Kvs[0].Value), &stored); err != nil {
				return 0, fmt.Errorf("election: %s holds %q, not an epoch", key, resp.Kvs[0].Value)
			}
			rev = resp.Kvs[0].ModRevision
		}
		next := max(stored, own) + 1
		if err := e.storeEpoch(ctx, key, rev, next); err == nil {
			return next, nil
		} else if !errors.Is(err, errRaced) {
			return 0, err
		}
	}
}

// Epoch returns the highest epoch the cluster has had (0: no master was
// ever elected).
func (e *Election) Epoch(ctx context.Context) (uint64, error) {
	resp, err := e.cli.Get(ctx, e.cfg.Prefix+"epoch")
	if err != nil {
		return 0, fmt.Errorf("election: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	var epoch uint64
	if _, err := fmt.Sscan(string(resp.Kvs[0].Value), &epoch); err != nil {
		return 0, fmt.Errorf("election: %sepoch holds %q, not an epoch", e.cfg.Prefix, resp.Kvs[0].Value)
	}
	return epoch, nil
}

// KeepEpoch stores epoch as the cluster's (a master that leads with the
// epoch it has: the first master, or one elected again), only while this
// node leads and when no higher one is stored. It reports whether epoch
// is the highest.
func (e *Election) KeepEpoch(ctx context.Context, epoch uint64) (bool, error) {
	key := e.cfg.Prefix + "epoch"
	for {
		resp, err := e.cli.Get(ctx, key)
		if err != nil {
			return false, fmt.Errorf("election: %w", err)
		}
		var stored uint64
		var rev int64
		if len(resp.Kvs) == 1 {
			if _, err := fmt.Sscan(string(resp.Kvs[0].Value), &stored); err != nil {
				return false, fmt.Errorf("election: %s holds %q, not an epoch", key, resp.Kvs[0].Value)
			}
			rev = resp.Kvs[0].ModRevision
		}
		if stored > epoch {
			return false, nil
		}
		if stored == epoch {
			return true, nil
		}
		if err := e.storeEpoch(ctx, key, rev, epoch); err == nil {
			return true, nil
		} else if !errors.Is(err, errRaced) {
			return false, err
		}
	}
}

var errRaced = errors.New("the epoch key changed meanwhile")

// storeEpoch writes epoch at key if key is still at revision rev (0: does
// not exist) and this node still leads.
func (e *Election) storeEpoch(ctx context.Context, key string, rev int64, epoch uint64) error {
	leaderKey := e.elec.Key()
	if leaderKey == "" {
		return errors.New("election: not leading")
	}
	txn := e.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(key), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(leaderKey), "=", e.elec.Rev()),
	).Then(clientv3.OpPut(key, fmt.Sprint(epoch)))
	resp, err := txn.Commit()
	if err != nil {
		return fmt.Errorf("election: %w", err)
	}
	if !resp.Succeeded {
		if !e.Leading(ctx) {
			return errors.New("election: no longer leading")
		}
		return errRaced
	}
	return nil
}

// Close revokes the lease (which ends its leadership, if it leads) and
// disconnects: the others need not wait for the lease to expire. A second
// call does nothing.
func (e *Election) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.close() })
	return e.closeErr
}

func (e *Election) close() error {
	if e.session != nil {
		// Revoked here, briefly: etcd lets it expire if it cannot be
		// reached.
		e.session.Orphan()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = e.cli.Revoke(ctx, e.session.Lease())
		cancel()
	}
	e.cancel()
	err := e.cli.Close()
	e.wg.Wait()
	return err
}
