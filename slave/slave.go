// Package slave is walship's slave role: the replicator that long-polls the
// master's log and applies its entries in order, and the forwarding of
// writes to the master with read-your-writes.
//
// # Goroutines
//
// A Slave owns one goroutine, the replicator (run), started by Open and
// stopped by Close. It alone applies entries to the database; while it
// catches up, it starts one goroutine per feed answer to fetch the next one
// as it applies (follow), and waits for it. HTTP handlers read the database
// and wait on the applied index. After a marker of a replica check, one
// more goroutine hashes the content at it (startCheck, verify.go).
package slave

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/feed"
	"github.com/walship/walship/repeatlog"
	"github.com/walship/walship/retention"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// ErrDiverged is returned when the slave stopped applying because its
// history differs from the master's.
var ErrDiverged = errors.New("slave diverged from the master")

// errStalled is ApplyBatch's error when the slave's own database cannot
// take the entries now (a full disk, an I/O error): nothing differs from
// the master, and applying is retried.
var errStalled = errors.New("this slave cannot apply entries now")

// Config configures a Slave.
type Config struct {
	// ID names the slave to the master.
	ID string
	// CheckCPU is the share of one core the hash of a replica check may
	// take (0.25: it works a quarter of the time); 0 or 1 and above: no
	// limit.
	CheckCPU float64
	// URL is the slave's advertised URL.
	URL string
	// MasterUser and MasterPassword, if MasterUser is set, are the
	// slave's own credentials at the master (its feed and snapshots need
	// the replicate permission). Writes it forwards carry their client's.
	MasterUser, MasterPassword string
	// MasterURL is the master's base URL.
	MasterURL string
	// TLS configures the slave's https requests to the master: the feed,
	// snapshots, forwarded writes (package certs builds it: the CA of the
	// master's certificate, the slave's client certificate). Nil: Go's
	// defaults.
	TLS *tls.Config
	// Wait is how long one feed request may wait for new entries. Zero
	// means 250ms (the master answers at least every heartbeat).
	Wait time.Duration
	// MaxEntries bounds the entries of one feed answer (the master's byte
	// bound, 4 MiB, applies too). Zero means 10000: a slave catching up
	// applies that many in one SQLite transaction.
	MaxEntries int
	// ApplyWait bounds how long a forwarded write waits until the slave has
	// applied it itself. Zero means 5s.
	ApplyWait time.Duration
	// Logger receives the slave's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnApply, if set, is called after each applied batch with its number
	// of entries and the time it took; OnApplyFailure with the error of a
	// batch SQLite could not apply (the slave stalls or diverges).
	OnApply        func(entries int, d time.Duration)
	OnApplyFailure func(error)
	// Log, if set, is the slave's own copy of the log (same format as the
	// master's): every entry is appended to it, fsynced, before it is
	// applied, so that the slave can serve the feed to other slaves
	// (FeedServer), acknowledge writes as durably received, and be
	// promoted. Nil: the slave keeps no log. The slave owns neither: the
	// caller closes it after Close.
	Log *wal.Log
	// Snapshots keeps the slave's snapshots: a slave that follows this
	// one from below its log's first index bootstraps from them.
	Snapshots *snapshot.Store
	// Heartbeat bounds how long a feed request to this slave waits for
	// new entries. Zero means 250ms.
	Heartbeat time.Duration
	// Retention bounds the slave's log as the master's is bounded
	// (package retention), checked every CompactEvery (zero: 10s); it
	// needs Snapshots. The zero Policy keeps everything.
	Retention    retention.Policy
	CompactEvery time.Duration
	// JoinFromSnapshot, if positive, lets an empty slave start from the
	// master's latest snapshot instead of replaying the log from index 1,
	// when that snapshot is at least this many entries in: installing a
	// snapshot is cheaper than replaying many entries (see BENCHMARKS.md).
	JoinFromSnapshot uint64
}

// Slave follows a master's log.
type Slave struct {
	cfg    Config
	db     *db.DB
	log    *wal.Log       // nil: the slave keeps none
	feed   *feed.Feed     // serves log; nil without one
	master *client.Client // the feed
	// forward sends clients' writes to the master; unlike the feed it waits
	// as long as a write takes.
	forward *client.Client
	// snapshots downloads the master's snapshot to bootstrap.
	snapshots *client.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex
	state       string
	lastErr     string
	masterFirst uint64
	masterLast  uint64
	heard       bool
	caughtUp    time.Time // when the slave last had applied all the master had
	// appliedIndex and lastEpoch are the index and epoch of the last
	// entry ApplyBatch applied, known once knowsEpoch.
	appliedIndex uint64
	lastEpoch    uint64
	knowsEpoch   bool
	applied      chan struct{} // closed and replaced at every apply
	// bootETag names the snapshot being downloaded (to resume it);
	// bootDone and bootTotal are its bytes received and in all.
	bootETag            string
	bootDone, bootTotal int64
	// newLogID is the log of the new history the master told this slave
	// to bootstrap from (a load or a restore there): a snapshot of it is
	// not another history's.
	newLogID string
	// failures rate-limits the log lines of failures that repeat.
	failures repeatlog.Logger
	// check is the hash of the content at the latest marker, if any;
	// checkThrough the index applyChecked applied last; verification the
	// latest check and its counts (verify.go).
	check        *ownCheck
	checkThrough uint64
	verification db.Verification
	// superseded is what the slave last dropped for a new master's
	// history, nil if nothing (epoch.go).
	superseded *Superseded
	// lostAt is when the slave lost its master, zero while it hears from
	// it (or never did); lastHeard when it last had an answer from it.
	lostAt    time.Time
	lastHeard time.Time
}

// Open starts replicating into database from cfg.MasterURL.
func Open(database *db.DB, cfg Config) (*Slave, error) {
	if cfg.MasterURL == "" {
		return nil, errors.New("slave: no master URL")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 250 * time.Millisecond
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 10000
	}
	if cfg.ApplyWait <= 0 {
		cfg.ApplyWait = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CompactEvery <= 0 {
		cfg.CompactEvery = 10 * time.Second
	}
	// A bootstrap that a crash cut is started over: which snapshot its
	// files held is not known any more.
	removeBootstrapFiles(filepath.Dir(database.Path()))
	c := client.New(cfg.MasterURL)
	// The master answers every long-poll within its heartbeat, so a feed
	// answer whose headers have not come 2s after the wait is a master that
	// went silent (stopped, or its packets dropped): give up on it and say
	// disconnected instead of waiting for the whole client timeout.
	tr := client.NewTLSTransport(cfg.TLS)
	tr.ResponseHeaderTimeout = cfg.Wait + 2*time.Second
	c.HTTP = &http.Client{Timeout: cfg.Wait + 30*time.Second, Transport: tr}
	fwd := client.NewTLS(cfg.MasterURL, cfg.TLS)
	snaps := snapshotClient(cfg.MasterURL, cfg.TLS)
	for _, cl := range []*client.Client{c, snaps} {
		cl.User, cl.Password = cfg.MasterUser, cfg.MasterPassword
	}
	s := &Slave{cfg: cfg, db: database, master: c, forward: fwd, snapshots: snaps,
		state: client.StateDisconnected, applied: make(chan struct{}), log: cfg.Log}
	if s.log != nil {
		if err := s.openLog(); err != nil {
			return nil, err
		}
		s.feed = feed.New(s.log, feed.Config{Heartbeat: cfg.Heartbeat, DB: database, Snapshots: cfg.Snapshots,
			Logger: cfg.Logger, Now: cfg.Now})
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := diverged(filepath.Dir(database.Path())); err != nil {
		// A replica check found this slave's content wrong: it serves
		// reads of what it has, and applies nothing, until rebuilt.
		s.setState(client.StateDiverged, err)
		cfg.Logger.Error("diverged: a replica check found this slave's content differs from the master's; it applies nothing until rebuilt", "err", err)
		return s, nil
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.run() }()
	if s.feed != nil {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.feed.Watch(s.ctx) }()
	}
	if s.log != nil && cfg.Snapshots != nil && cfg.Retention.Bounds() {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.compactLoop() }()
	}
	return s, nil
}

// Close stops the replicator.
func (s *Slave) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

// DB returns the slave's database.
func (s *Slave) DB() *db.DB { return s.db }

// MasterURL returns the master's URL.
func (s *Slave) MasterURL() string { return s.cfg.MasterURL }

// run is the replicator loop: follow the feed, back off with jitter while
// the master is unreachable, stop applying on divergence.
func (s *Slave) run() {
	backoff := 50 * time.Millisecond
	join := s.cfg.JoinFromSnapshot > 0 && s.db.AppliedIndex() == 0
	for s.ctx.Err() == nil {
		if join {
			var err error
			if join, err = s.joinFromSnapshot(s.ctx); err != nil {
				// The snapshot was chosen but failed: replay instead.
				s.cfg.Logger.Warn("joining from the master's snapshot failed; replaying its log instead", "err", err)
				join = false
			}
		}
		handled, err := s.follow(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if handled > 0 {
			// It worked until now: retry soon, as after a first failure.
			backoff = 50 * time.Millisecond
		}
		if errors.Is(err, errBootstrap) {
			if err = s.bootstrap(s.ctx); err == nil {
				backoff = 50 * time.Millisecond
				continue
			}
			if s.ctx.Err() != nil {
				return
			}
		}
		if errors.Is(err, ErrDiverged) {
			s.cfg.Logger.Error("diverged: this slave's history differs from the master's; it stops applying and keeps serving reads of what it has", "err", err, "applied_index", s.db.AppliedIndex())
			return
		}
		switch {
		case errors.Is(err, errStalled):
			s.setState(client.StateStalled, err)
			s.failures.Log(s.cfg.Logger, slog.LevelWarn, "stalled", "cannot apply entries (disk full? I/O?); retrying", "err", err)
		case errors.Is(err, errBootstrap):
			s.setState(client.StateBootstrapping, err)
			s.failures.Log(s.cfg.Logger, slog.LevelWarn, "bootstrap", "bootstrap failed; retrying", "err", err)
		case errors.Is(err, errDuplicateID):
			s.setState(client.StateDisconnected, err)
			s.failures.Log(s.cfg.Logger, slog.LevelError, "duplicate-id", "the master refuses this slave: another slave uses its id; give it another --id", "master", s.cfg.MasterURL, "err", err)
		case errors.Is(err, errStale):
			s.setState(client.StateDisconnected, err)
			s.failures.Log(s.cfg.Logger, slog.LevelWarn, "stale", "the master asked is not the current one (a promotion replaced it); retrying until this slave is pointed at the new master", "master", s.cfg.MasterURL, "err", err)
		case errors.Is(err, client.ErrNotFound):
			s.setState(client.StateDisconnected, err)
			s.failures.Log(s.cfg.Logger, slog.LevelWarn, "not-master", "the node at --master serves no log to follow (not the master, nor a slave that keeps one); retrying", "master", s.cfg.MasterURL, "err", err)
		default:
			s.setState(client.StateDisconnected, err)
			s.failures.Log(s.cfg.Logger, slog.LevelWarn, "unreachable", "master unreachable; retrying", "master", s.cfg.MasterURL, "err", err)
		}
		jitter := time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-time.After(backoff/2 + jitter):
		case <-s.ctx.Done():
			return
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

// follow applies the feed's answers in order until an error. While it
// catches up (an answer ends before the master's log does), a goroutine it
// owns already asks for the next answer, so that fetching and applying
// overlap. Once caught up it asks after applying, like Step, so that each
// long-poll reports the slave's progress exactly and no goroutine is woken
// in between. It returns how many answers it applied and the first error.
func (s *Slave) follow(ctx context.Context) (handled int, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		res *client.FeedResult
		err error
	}
	var next chan answer // the answer being fetched ahead, if any
	defer func() {
		if next != nil {
			cancel()
			<-next
		}
	}()
	from := s.db.AppliedIndex() + 1
	for ctx.Err() == nil {
		var res *client.FeedResult
		if next != nil {
			a := <-next
			next, res, err = nil, a.res, a.err
		} else {
			res, err = s.fetch(ctx, from)
		}
		if err != nil {
			return handled, err
		}
		if n := len(res.Entries); n > 0 {
			from = res.Entries[n-1].Index + 1
		}
		if from <= res.LastIndex {
			ch := make(chan answer, 1)
			go func(from uint64) {
				res, err := s.fetch(ctx, from)
				ch <- answer{res, err}
			}(from)
			next = ch
		}
		if err := s.handle(res); err != nil {
			return handled, err
		}
		handled++
	}
	return handled, ctx.Err()
}

// Step makes one feed request and applies what it returns. It returns an
// error wrapping ErrDiverged when the slave must stop applying.
func (s *Slave) Step(ctx context.Context) error {
	res, err := s.fetch(ctx, s.db.AppliedIndex()+1)
	if err != nil {
		return err
	}
	return s.handle(res)
}

// fetch asks the feed for the entries from index from.
func (s *Slave) fetch(ctx context.Context, from uint64) (*client.FeedResult, error) {
	// The applied index and its epoch, as ApplyBatch set them together.
	s.mu.Lock()
	applied, lastEpoch, knows := s.appliedIndex, s.lastEpoch, s.knowsEpoch
	s.mu.Unlock()
	if !knows {
		applied = s.db.AppliedIndex()
	}
	res, err := s.master.Entries(ctx, client.FeedRequest{
		From: from, Max: s.cfg.MaxEntries, Wait: s.cfg.Wait,
		SlaveID: s.cfg.ID, SlaveURL: s.cfg.URL, LogID: s.db.LogID(), Applied: applied,
		LastEpoch: lastEpoch, KnowsEpoch: knows, Received: s.received(), KnownEpoch: s.knownEpoch(),
	})
	if err != nil {
		if errors.Is(err, client.ErrConflict) {
			return nil, s.conflict(err, applied, lastEpoch, knows)
		}
		if errors.Is(err, client.ErrGone) {
			var se *client.StatusError
			if errors.As(err, &se) && se.NewLogID != "" {
				// The master left this slave's history for a new one
				// (a load, a restore): its snapshot is the way there.
				s.mu.Lock()
				s.newLogID = se.NewLogID
				s.mu.Unlock()
				s.cfg.Logger.Warn("the master started a new history; bootstrapping from its snapshot", "log_id", se.NewLogID,
					"previous_log_id", s.db.LogID())
			}
			return nil, fmt.Errorf("%w: %w", errBootstrap, err)
		}
		return nil, err
	}
	return res, nil
}

// handle applies one feed answer and updates the replication state.
func (s *Slave) handle(res *client.FeedResult) error {
	if own := s.db.LogID(); own != "" && own != res.LogID {
		err := fmt.Errorf("the master's log is %s, this slave follows %s", res.LogID, own)
		s.setState(client.StateDiverged, err)
		return fmt.Errorf("%w: %w", ErrDiverged, err)
	}
	s.mu.Lock()
	s.masterFirst, s.masterLast, s.heard, s.lastHeard = res.FirstIndex, res.LastIndex, true, s.cfg.Now()
	s.mu.Unlock()
	if err := s.learnEpoch(res.Epoch); err != nil {
		return err
	}
	if err := s.ApplyBatch(res.LogID, res.Entries); err != nil {
		return err
	}
	s.mu.Lock()
	if !s.lostAt.IsZero() {
		s.cfg.Logger.Info("reconnected to the master", "master", s.cfg.MasterURL, "away", s.cfg.Now().Sub(s.lostAt).Round(time.Millisecond))
		s.lostAt = time.Time{}
	}
	if s.db.AppliedIndex() >= res.LastIndex {
		s.state = client.StateStreaming
		s.caughtUp = s.cfg.Now()
	} else {
		s.state = client.StateCatchingUp
	}
	s.lastErr = ""
	s.mu.Unlock()
	return nil
}

// ApplyBatch applies entries of log logID in one SQLite transaction. An
// entry that fails to apply means divergence.
func (s *Slave) ApplyBatch(logID string, entries []*wal.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	start := time.Now()
	if err := s.keep(logID, entries); err != nil {
		s.setState(client.StateStalled, err)
		return fmt.Errorf("%w: %w", errStalled, err)
	}
	if err := s.applyChecked(logID, entries); err != nil {
		if s.cfg.OnApplyFailure != nil {
			s.cfg.OnApplyFailure(err)
		}
		var se *db.Error
		if errors.As(err, &se) && !se.IsClientError() {
			// The node's own trouble, not the entry's: SQLite could not
			// write (disk full, I/O). The same entries are tried again.
			s.setState(client.StateStalled, err)
			return fmt.Errorf("%w: %w", errStalled, err)
		}
		var ae *db.ApplyError
		if errors.As(err, &ae) || errors.Is(err, db.ErrGap) || errors.Is(err, db.ErrOtherLog) {
			s.setState(client.StateDiverged, err)
			return fmt.Errorf("%w: %w", ErrDiverged, err)
		}
		return err
	}
	if s.cfg.OnApply != nil {
		s.cfg.OnApply(len(entries), time.Since(start))
	}
	last := entries[len(entries)-1]
	s.mu.Lock()
	s.appliedIndex, s.lastEpoch, s.knowsEpoch = last.Index, last.Epoch, true
	close(s.applied)
	s.applied = make(chan struct{})
	s.mu.Unlock()
	return nil
}

func (s *Slave) setState(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == client.StateDiverged {
		return // final until restart
	}
	if state == client.StateDisconnected && s.heard && s.lostAt.IsZero() {
		// Once per loss of the link: the failures that follow are
		// counted (repeatlog), and the return is logged with its length.
		s.lostAt = s.cfg.Now()
		s.cfg.Logger.Warn("lost the master", "master", s.cfg.MasterURL, "err", err, "applied_index", s.db.AppliedIndex())
	}
	s.state = state
	if err != nil {
		s.lastErr = err.Error()
	}
}

// WaitApplied waits until the slave has applied index, at most ApplyWait.
// It reports whether it has.
func (s *Slave) WaitApplied(ctx context.Context, index uint64) bool {
	timer := time.NewTimer(s.cfg.ApplyWait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		ch := s.applied
		s.mu.Unlock()
		if s.db.AppliedIndex() >= index {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return s.db.AppliedIndex() >= index
		case <-ctx.Done():
			return false
		}
	}
}

// Forward sends a write to the master and waits until the slave applied it
// (read-your-writes). A write the master committed is never answered with an
// error: when the wait runs out, the answer says Pending. It carries the
// credentials ctx names (client.WithAuthorization), the client's: none
// when it has none.
func (s *Slave) Forward(ctx context.Context, req client.SeedRequest) (*client.SeedResponse, error) {
	resp, err := s.forward.Seed(ctx, req)
	if err != nil {
		return nil, err
	}
	if !s.WaitApplied(ctx, resp.Index) {
		resp.Pending = true
	}
	return resp, nil
}

// Status is the slave's replication state.
type Status struct {
	State       string
	Err         string
	MasterFirst uint64
	MasterLast  uint64
	Heard       bool
	// LastHeard is when the slave last had an answer from its master
	// (every long-poll ends within a heartbeat).
	LastHeard    time.Time
	LastCaughtUp time.Time
	// BootstrapDone and BootstrapTotal are the bytes of the snapshot
	// received and in all while the state is bootstrapping.
	BootstrapDone, BootstrapTotal int64
	// Superseded is what the slave last dropped for a new master's
	// history; nil if nothing.
	Superseded *Superseded
}

// Status returns the slave's replication state.
func (s *Slave) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{State: s.state, Err: s.lastErr, MasterFirst: s.masterFirst, MasterLast: s.masterLast,
		Heard: s.heard, LastHeard: s.lastHeard, LastCaughtUp: s.caughtUp, BootstrapDone: s.bootDone, BootstrapTotal: s.bootTotal,
		Superseded: s.superseded}
}
