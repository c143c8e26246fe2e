// Package master is walship's master role: the write pipeline with group
// commit, the replication feed, and each slave's progress.
//
// # Goroutines
//
// A Master owns one goroutine, the writer (run), started by Open and
// stopped by Close. It alone uses the database's writer connection and
// appends to the log. Feed handlers run on the HTTP server's goroutines and
// only read the log. With a retention, a second goroutine (compactLoop)
// takes snapshots and removes old log segments. The verifier
// (verifyLoop, verify.go) runs replica checks: it hashes the content at a
// marker in a read transaction and has the writer append the result. With
// an archive, another (archiveLoop) seals and copies segments and
// snapshots to it.
//
// # Halted
//
// When SQLite cannot apply what the log already holds (a COMMIT that fails
// after the append, an entry that fails to replay at start), the master
// does not stop and does not apply anything past it: it halts. It answers
// every write with ErrHalted and the reason, keeps serving reads and the
// feed, and retries applying its log, with backoff, until that works.
package master

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/walship/walship/archive"
	"github.com/walship/walship/db"
	"github.com/walship/walship/feed"
	"github.com/walship/walship/repeatlog"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

var (
	// ErrStopped is returned when the master is closed or stopped by a
	// fatal error.
	ErrStopped = errors.New("master stopped")
	// ErrLogConflict is returned by Feed when the slave follows another
	// history: another log_id, an index beyond the log, or another epoch
	// at its applied index.
	ErrLogConflict = feed.ErrConflict
	// ErrAppend is returned when the log append failed: nothing of the
	// batch was written.
	ErrAppend = errors.New("log append failed; nothing was written")
	// ErrHalted is returned for a write while the master is halted: SQLite
	// could not apply entries the log holds (see Master.Err for why).
	ErrHalted = errors.New("writes are stopped")
	// ErrNotLeading is returned for a write while Config.Gate refuses
	// it: with automatic failover, the master does not certainly hold
	// its lease (etcd unreachable, or not elected yet).
	ErrNotLeading = errors.New("this master does not hold the failover lease; writes are refused until it does")
	// ErrDiskLow is returned for a write while the data directory's volume
	// has less free space than Config.MinFreeBytes.
	ErrDiskLow = errors.New("disk almost full: writes are refused")
	// ErrCompacted is returned (as a *CompactedError) by Feed when the
	// entries asked for were removed from the log: the slave bootstraps
	// from a snapshot.
	ErrCompacted = feed.ErrCompacted
)

// CompactedError is Feed's answer to a request below the log's first
// index (feed.CompactedError).
type CompactedError = feed.CompactedError

// Config configures a Master.
type Config struct {
	// MaxBatch bounds how many requests one group commit takes. Zero means 256.
	MaxBatch int
	// Heartbeat bounds how long a feed request waits for new entries.
	// Zero means 250ms.
	Heartbeat time.Duration
	// MaxFeedBytes bounds the encoded size of one feed answer (at least one
	// entry is always sent). Zero means 4 MiB.
	MaxFeedBytes int
	// StatementTimeout stops a write statement that runs longer: the one
	// writer serves every client, so no statement may hold it for long.
	// A request's own, shorter Timeout wins. Zero means 5s; negative
	// means no limit.
	StatementTimeout time.Duration
	// Logger receives the master's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnCommit, if set, is called after each group commit with the
	// requests it carried, the entries it appended, the log append's time
	// (its fsync included) and the SQLite time (run and commit).
	OnCommit func(requests, entries int, appendDur, applyDur time.Duration)

	// The retention bounds the log (Compact): RetainEntries caps how many
	// entries stay, RetainBytes how many bytes of log files, RetainFor how
	// old they may be; 0 sets no cap. An entry beyond any cap is removed,
	// with the whole segment it is in, once a snapshot covers it (one is
	// taken when needed): a slave that still needs it bootstraps from the
	// snapshot. Entries within every cap stay, even when every slave has
	// them. With no cap, or without Snapshots, the log only grows.
	RetainEntries uint64
	RetainBytes   int64
	RetainFor     time.Duration
	// CompactEvery is how often the log is checked against the retention.
	// Zero means 10s.
	CompactEvery time.Duration
	// MinFreeBytes refuses writes (ErrDiskLow) while the volume of the
	// log's directory has less free space, so that the disk never fills
	// under the log and SQLite, and snapshots and compaction can still
	// run. Zero means no check.
	MinFreeBytes int64
	// OnApplyFailure, if set, is called when SQLite could not apply what
	// the log holds (the master halts).
	OnApplyFailure func(error)
	// Gate, if set, is asked before each group commit: while it returns an
	// error, writes are refused (ErrNotLeading wrapping it). Automatic
	// failover closes it while the master does not certainly hold its
	// lease (package election).
	Gate func() error
	// OnFenced, if set, is called when a slave knows a higher epoch than
	// the master's: a newer master replaced it (feed.Config.OnFenced). It
	// must not block.
	OnFenced func(epoch uint64, follower string)
	// Snapshots keeps the master's snapshots; nil means none.
	Snapshots *snapshot.Store
	// VerifyEvery appends a marker of a replica check (verify.go) after
	// this many entries since the last one; 0 means none but those asked
	// for (Verify).
	VerifyEvery uint64
	// CheckCPU is the share of one core a replica check's hash may take
	// (0.25: it works a quarter of the time); 0 or 1 and above: no limit.
	CheckCPU float64

	// Archive, if set, gets a copy of every sealed log segment and every
	// snapshot (archive.go); it needs Snapshots. A segment leaves the log
	// only once archived: while archiving fails, compaction waits.
	// ArchiveEvery bounds how old an entry may be and not be archived
	// (zero: DefaultArchiveEvery); ArchiveSnapshotEntries how far the
	// archive's newest snapshot may lag (zero:
	// DefaultArchiveSnapshotEntries).
	Archive                *archive.Archive
	ArchiveEvery           time.Duration
	ArchiveSnapshotEntries uint64
}

// Master accepts writes, appends them to the log and applies them.
type Master struct {
	cfg Config
	log *wal.Log
	db  *db.DB

	queue  chan *pending
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// feed serves the log to the slaves and keeps their progress.
	feed *feed.Feed

	mu     sync.Mutex
	fenced error         // why writes are refused for good: a newer master replaced this one (Fence)
	halted error         // why writes are stopped; nil while the master writes
	done   chan struct{} // closed when the writer stops
	// commitHook, if set (tests), runs before SQLite commits an appended
	// batch; an error fails that commit as SQLite would.
	commitHook func() error
	// freeSpace, if set (tests), replaces the volume's free bytes.
	freeSpace func() (int64, error)
	// free is the volume's free bytes as diskLow last read them, at freeAt.
	free   int64
	freeAt time.Time
	// failures rate-limits the log lines of failures that repeat.
	failures repeatlog.Logger
	// maintain is held by a compaction and by an archive round: a
	// segment is removed only after the archive round that copied it.
	maintain sync.Mutex
	// archMu guards archive, where the archive stands.
	archMu  sync.Mutex
	archive ArchiveStatus
	// published is closed, and replaced, once the writer has answered the
	// requests of an append: feed long-polls wake then, not while the
	// writer still commits SQLite and answers (on few cores the slaves'
	// work would delay those answers).
	published chan struct{}
	// v is the state of replica verification (verify.go).
	v verifier
}

// pending is a request waiting for the writer.
type pending struct {
	req  db.Request
	ms   int64
	seed uint64
	resp chan Result
	// op, if set, is run by the writer alone instead of a request (Load).
	op func() error
}

// alone reports whether p is committed on its own.
func (p *pending) alone() bool { return p.req.NoForeignKeys || p.op != nil }

// Result is what the master answers for one write request.
type Result struct {
	db.Outcome
	// Index is the log index of the request's entry, or the applied index
	// when the request wrote nothing.
	Index uint64
	// Err is set when the request was not run or not written (the log
	// append failed, the master stopped); Outcome.Err when it failed.
	Err error
}

// Open checks that the database follows the log, applies the log's entries
// the database lacks, and starts the writer. The master owns neither log nor
// database: the caller closes them after Close.
func Open(log *wal.Log, database *db.DB, cfg Config) (*Master, error) {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 250 * time.Millisecond
	}
	if cfg.MaxFeedBytes <= 0 {
		cfg.MaxFeedBytes = 4 << 20
	}
	if cfg.StatementTimeout == 0 {
		cfg.StatementTimeout = 5 * time.Second
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
	if cfg.ArchiveEvery <= 0 {
		cfg.ArchiveEvery = DefaultArchiveEvery
	}
	if cfg.ArchiveSnapshotEntries == 0 {
		cfg.ArchiveSnapshotEntries = DefaultArchiveSnapshotEntries
	}
	if cfg.Archive != nil && cfg.Snapshots == nil {
		return nil, errors.New("an archive needs a snapshot store (Config.Snapshots)")
	}
	m := &Master{cfg: cfg, log: log, db: database, queue: make(chan *pending, 4*cfg.MaxBatch),
		done: make(chan struct{}), published: make(chan struct{})}
	m.feed = feed.New(log, feed.Config{Heartbeat: cfg.Heartbeat, MaxBytes: cfg.MaxFeedBytes, Wait: m.waitAppended,
		DB: database, Snapshots: cfg.Snapshots, Logger: cfg.Logger, Now: cfg.Now, OnFenced: cfg.OnFenced})
	if err := m.reconcile(); err != nil {
		return nil, err
	}
	if err := m.restore(); err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	if err := m.replay(); err != nil {
		if errors.Is(err, wal.ErrCorrupt) {
			// A damaged log is the operator's to mend: say so and stop.
			return nil, fmt.Errorf("refusing to start: %w", err)
		}
		m.halt(err)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.v.init(m.log.LastIndex())
	m.wg.Add(3)
	go func() { defer m.wg.Done(); m.run() }()
	go func() { defer m.wg.Done(); m.feed.Watch(m.ctx) }()
	go func() { defer m.wg.Done(); m.verifyLoop() }()
	if m.compacts() {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.compactLoop() }()
	}
	if cfg.Archive != nil {
		m.archive.Dir = cfg.Archive.Dir()
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.archiveLoop() }()
	}
	return m, nil
}

// restore installs the latest snapshot when the database is behind the
// log's first index (a database lost beside a compacted log): the log
// alone cannot rebuild it.
func (m *Master) restore() error {
	logID, applied, first := m.db.LogID(), m.db.AppliedIndex(), m.log.FirstIndex()
	if applied+1 >= first || (logID != "" && logID != m.log.ID()) || m.cfg.Snapshots == nil {
		return nil
	}
	info, err := m.cfg.Snapshots.Latest()
	if err != nil || info.LogID != m.log.ID() || info.Index+1 < first || info.Index > m.log.LastIndex() {
		return nil // check says why it cannot start
	}
	tmp := m.db.Path() + ".restore"
	_ = os.Remove(tmp)
	if err := m.cfg.Snapshots.Restore(info, tmp); err != nil {
		return fmt.Errorf("restore the snapshot at %d: %w", info.Index, err)
	}
	if err := m.db.Install(tmp); err != nil {
		return fmt.Errorf("restore the snapshot at %d: %w", info.Index, err)
	}
	m.cfg.Logger.Warn("the database was behind the log's first index: restored from the snapshot", "index", info.Index,
		"first_index", first)
	return nil
}

// check refuses a database that follows another log or is ahead of the
// log: starting would merge two histories.
func (m *Master) check() error {
	logID, applied := m.db.LogID(), m.db.AppliedIndex()
	if logID != "" && logID != m.log.ID() {
		return fmt.Errorf("refusing to start: the database %s follows log %s, but the log %s is log %s (another history); restore the matching log.db or start from an empty data directory",
			m.db.Path(), logID, m.log.Path(), m.log.ID())
	}
	last := m.log.LastIndex()
	if applied > last {
		return fmt.Errorf("refusing to start: the database %s is ahead of its log: it applied index %d, but the log %s ends at %d (was log.db replaced by an older copy?)",
			m.db.Path(), applied, m.log.Path(), last)
	}
	if applied < m.log.FirstIndex()-1 {
		return fmt.Errorf("refusing to start: the database applied index %d, but the log starts at %d and no snapshot of this log covers the entries before it; restore a database or a snapshot (DATA/snapshots) of log %s",
			applied, m.log.FirstIndex(), m.log.ID())
	}
	return nil
}

// replay applies the log's entries after the database's applied index.
func (m *Master) replay() error {
	if err := m.reconcile(); err != nil {
		return err
	}
	applied, last := m.db.AppliedIndex(), m.log.LastIndex()
	if applied == last {
		return nil
	}
	m.cfg.Logger.Info("replaying log", "from", applied+1, "to", last)
	for next := applied + 1; next <= last; {
		entries, err := m.log.Read(next, 1000, 16<<20)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if err := m.db.Apply(m.log.ID(), entries); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		next = entries[len(entries)-1].Index + 1
	}
	m.cfg.Logger.Info("replayed log", "applied_index", m.db.AppliedIndex())
	return nil
}

// halt stops writes: SQLite could not apply what the log holds.
func (m *Master) halt(err error) {
	if m.cfg.OnApplyFailure != nil {
		m.cfg.OnApplyFailure(err)
	}
	m.mu.Lock()
	m.halted = err
	m.mu.Unlock()
	m.cfg.Logger.Error("writes stopped: SQLite cannot apply entries the log holds; reads and the feed go on, applying is retried",
		"err", err, "applied_index", m.db.AppliedIndex(), "last_index", m.log.LastIndex())
}

// Close stops the writer; requests still queued are answered ErrStopped.
func (m *Master) Close() error {
	m.cancel()
	m.wg.Wait()
	return nil
}

// Done is closed when the writer has stopped, by Close or by a fatal error.
func (m *Master) Done() <-chan struct{} { return m.done }

// Err returns why the master is halted (writes stopped), nil while it
// writes.
func (m *Master) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.halted
}

// Execute queues req for the writer and waits for its answer.
func (m *Master) Execute(ctx context.Context, req db.Request) Result {
	if lim := m.cfg.StatementTimeout; lim > 0 && (req.Timeout <= 0 || req.Timeout > lim) {
		req.Timeout = lim
	}
	p := &pending{req: req, ms: m.cfg.Now().UnixMilli(), seed: randomSeed(), resp: make(chan Result, 1)}
	select {
	case m.queue <- p:
	case <-m.done:
		return Result{Err: ErrStopped}
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
	select {
	case r := <-p.resp:
		return r
	case <-m.done:
		// The writer may have answered just before stopping.
		select {
		case r := <-p.resp:
			return r
		default:
			return Result{Err: ErrStopped}
		}
	}
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// run is the writer: it takes every queued request, up to MaxBatch, and
// commits them together. A request without foreign key enforcement is
// committed on its own (SQLite changes that setting only between
// transactions).
func (m *Master) run() {
	defer close(m.done)
	batch := make([]*pending, 0, m.cfg.MaxBatch)
	var held *pending // taken from the queue, for the next batch
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	armed := false // retry runs
	backoff := 100 * time.Millisecond
	for {
		if m.Err() != nil {
			if held != nil {
				held.resp <- Result{Err: m.haltedErr()}
				held = nil
			}
			if !armed {
				retry.Reset(backoff)
				armed = true
			}
			select {
			case <-m.ctx.Done():
				m.drain(ErrStopped)
				return
			case p := <-m.queue:
				p.resp <- Result{Err: m.haltedErr()}
			case a := <-m.v.toWriter:
				m.appendCheck(a)
			case <-retry.C:
				armed = false
				if err := m.replay(); err != nil {
					m.mu.Lock()
					m.halted = err
					m.mu.Unlock()
					backoff = min(2*backoff, 30*time.Second)
					continue
				}
				m.mu.Lock()
				m.halted = nil
				m.mu.Unlock()
				backoff = 100 * time.Millisecond
				m.cfg.Logger.Info("writes resumed: the log is applied", "applied_index", m.db.AppliedIndex())
			}
			continue
		}
		if held != nil {
			batch, held = append(batch[:0], held), nil
		} else {
			select {
			case <-m.ctx.Done():
				m.drain(ErrStopped)
				return
			case p := <-m.queue:
				batch = append(batch[:0], p)
			case a := <-m.v.toWriter:
				m.appendCheck(a)
				continue
			}
		}
		if p := batch[0]; p.op != nil {
			p.resp <- Result{Err: p.op()}
			continue
		}
	more:
		for len(batch) < m.cfg.MaxBatch && !batch[0].alone() {
			select {
			case p := <-m.queue:
				if p.alone() {
					held = p
					break more
				}
				batch = append(batch, p)
			default:
				break more
			}
		}
		err := m.Fenced()
		if err == nil && m.cfg.Gate != nil {
			if err = m.cfg.Gate(); err != nil {
				err = fmt.Errorf("%w: %w", ErrNotLeading, err)
				m.failures.Log(m.cfg.Logger, slog.LevelWarn, "gate", "writes refused", "err", err)
			}
		}
		if err == nil {
			err = m.diskLow()
		}
		if err != nil {
			for _, p := range batch {
				p.resp <- Result{Err: err}
			}
			if held != nil {
				held.resp <- Result{Err: err}
				held = nil
			}
			continue
		}
		if err := m.commit(batch); err != nil {
			m.halt(err)
		}
		m.markerDue()
	}
}

// diskLow returns an error wrapping ErrDiskLow while the log's volume has
// less than MinFreeBytes free (statfs, at every batch: a microsecond).
func (m *Master) diskLow() error {
	if m.cfg.MinFreeBytes <= 0 {
		return nil
	}
	free, err := m.DiskFree()
	if err != nil {
		return nil // unknown: the write finds out
	}
	m.mu.Lock()
	m.free, m.freeAt = free, time.Now()
	m.mu.Unlock()
	if free < m.cfg.MinFreeBytes {
		err := fmt.Errorf("%w: %d bytes free on the volume of %s, below --min-free-space %d; free space, or lower the log's retention",
			ErrDiskLow, free, filepath.Dir(m.log.Path()), m.cfg.MinFreeBytes)
		m.failures.Log(m.cfg.Logger, slog.LevelWarn, "disk-low", "writes refused: disk almost full", "err", err)
		return err
	}
	return nil
}

// DiskFree returns the free bytes of the volume that holds the log.
func (m *Master) DiskFree() (int64, error) {
	if m.freeSpace != nil {
		return m.freeSpace()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(m.log.Path()), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// DiskLow returns why writes are refused for lack of disk space, nil when
// they are not.
func (m *Master) DiskLow() error {
	if m.cfg.MinFreeBytes <= 0 {
		return nil
	}
	m.mu.Lock()
	free, at := m.free, m.freeAt
	m.mu.Unlock()
	if at.IsZero() || free >= m.cfg.MinFreeBytes {
		return nil
	}
	return fmt.Errorf("%w: %d bytes free, below %d", ErrDiskLow, free, m.cfg.MinFreeBytes)
}

// haltedErr is the answer to a write while the master is halted.
func (m *Master) haltedErr() error {
	if err := m.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrHalted, err)
	}
	return ErrHalted
}

func (m *Master) drain(err error) {
	for {
		select {
		case p := <-m.queue:
			p.resp <- Result{Err: err}
		default:
			return
		}
	}
}

// commit runs one batch: every request in one SQLite transaction with a
// savepoint each, the successful ones appended to the log in one update (one
// fsync), then SQLite committed. SQLite never commits before the log's
// fsync. A statement that ends the whole transaction (OR ROLLBACK,
// RAISE(ROLLBACK), an interrupt) fails its request (with Txn) or itself
// (without), and the batch runs again in a new transaction with the same
// time and seeds. The returned error means SQLite did not commit what the
// log now holds: the master must halt.
func (m *Master) commit(batch []*pending) error {
	todo := batch
	for len(todo) > 0 {
		started := time.Now()
		tx, err := m.db.BeginOptions(todo[0].req.NoForeignKeys)
		if err != nil {
			for _, p := range todo {
				p.resp <- Result{Err: fmt.Errorf("begin: %w", err)}
			}
			return nil
		}
		outs := make([]db.Outcome, len(todo))
		lost := -1
		for i, p := range todo {
			outs[i] = tx.Run(p.req, p.ms, p.seed)
			if outs[i].TxnLost {
				lost = i
				break
			}
		}
		if lost >= 0 {
			_ = tx.Rollback()
			p, out := todo[lost], outs[lost]
			if out.Lost >= 0 && out.Lost < len(p.req.Statements) {
				// The statement fails alone; the request runs again
				// without it, and so do the others.
				if p.req.Failed == nil {
					p.req.Failed = make(map[int]error)
				}
				p.req.Failed[out.Lost] = out.Err
				continue
			}
			// The request is all-or-nothing: it fails, the others run
			// again.
			p.resp <- Result{Outcome: out, Index: m.db.AppliedIndex()}
			todo = append(todo[:lost:lost], todo[lost+1:]...)
			continue
		}
		index := m.log.LastIndex()
		var entries []*wal.Entry
		indexes := make([]uint64, len(todo))
		for i, p := range todo {
			indexes[i] = index
			if len(outs[i].Logged) == 0 || outs[i].Err != nil {
				continue
			}
			index++
			indexes[i] = index
			entries = append(entries, &wal.Entry{Index: index, Epoch: m.log.Epoch(), Time: p.ms, Seed: p.seed,
				Txn: p.req.Txn, NoForeignKeys: p.req.NoForeignKeys, Statements: outs[i].Logged})
		}
		if len(entries) == 0 {
			_ = tx.Rollback()
			for i, p := range todo {
				p.resp <- Result{Outcome: outs[i], Index: indexes[i]}
			}
			return nil
		}
		ran := time.Now()
		if err := m.log.Append(entries); err != nil {
			_ = tx.Rollback()
			m.failures.Log(m.cfg.Logger, slog.LevelError, "append", "log append failed; batch rolled back", "err", err, "requests", len(todo))
			for _, p := range todo {
				p.resp <- Result{Err: fmt.Errorf("%w: %w", ErrAppend, err)}
			}
			return nil
		}
		appended := time.Now()
		var cerr error
		if m.commitHook != nil {
			if cerr = m.commitHook(); cerr != nil {
				_ = tx.Rollback()
			}
		}
		if cerr == nil {
			cerr = tx.Commit(m.log.ID(), index)
		}
		committed := time.Now()
		m.cfg.Logger.Debug("group commit", "requests", len(todo), "entries", len(entries), "last", index,
			"run", ran.Sub(started), "append", appended.Sub(ran), "commit", committed.Sub(appended))
		if m.cfg.OnCommit != nil {
			m.cfg.OnCommit(len(todo), len(entries), appended.Sub(ran), ran.Sub(started)+committed.Sub(appended))
		}
		// The entries are durable in the log: they are written, whatever
		// SQLite says now, and applied again from the log if it failed.
		for i, p := range todo {
			p.resp <- Result{Outcome: outs[i], Index: indexes[i]}
		}
		m.publish()
		if cerr != nil {
			return fmt.Errorf("commit SQLite after the log append of entries %d..%d: %w", entries[0].Index, index, cerr)
		}
		return nil
	}
	return nil
}

// publish wakes the feed long-polls waiting for entries.
func (m *Master) publish() {
	m.mu.Lock()
	close(m.published)
	m.published = make(chan struct{})
	m.mu.Unlock()
}

// waitAppended waits until the log holds an entry after index after and
// the writer published it, or the log was appended to and the writer
// stopped, or ctx is done.
func (m *Master) waitAppended(ctx context.Context, after uint64) error {
	for {
		// The channel first: an append published after this read of it
		// closes it; one published before shows in LastIndex.
		m.mu.Lock()
		ch := m.published
		m.mu.Unlock()
		if m.log.LastIndex() > after {
			return nil
		}
		select {
		case <-ch:
		case <-m.done:
			return m.log.Wait(ctx, after)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitApplied waits until the database has applied index (a write
// answered with it was committed), or ctx is done; it reports whether it
// has.
func (m *Master) WaitApplied(ctx context.Context, index uint64) bool {
	for {
		m.mu.Lock()
		ch := m.published
		m.mu.Unlock()
		if m.db.AppliedIndex() >= index {
			return true
		}
		select {
		case <-ch:
		case <-m.done:
			return m.db.AppliedIndex() >= index
		case <-ctx.Done():
			return m.db.AppliedIndex() >= index
		}
	}
}

// WaitReplicas waits until n slaves have reported that they applied index
// (applied) or hold it fsynced in their log (each reports with every feed
// request, and asks again as soon as it has applied what it got), or ctx is
// done. It returns how many had, at most n.
func (m *Master) WaitReplicas(ctx context.Context, index uint64, n int, applied bool) int {
	return m.feed.WaitFollowers(ctx, m.done, index, n, applied)
}

// FeedRequest is one long-poll of a slave (feed.Request).
type FeedRequest = feed.Request

// Feed serves the log to a slave (feed.Feed.Serve) and records its
// progress.
func (m *Master) Feed(ctx context.Context, req FeedRequest) ([][]byte, error) {
	return m.feed.Serve(ctx, req)
}

// FeedServer returns the master's feed.
func (m *Master) FeedServer() *feed.Feed { return m.feed }

// SlaveStatus is one slave's progress as the master last heard of it.
type SlaveStatus = feed.Follower

// Slaves returns every slave that pulled the log, by id.
func (m *Master) Slaves() []SlaveStatus { return m.feed.Followers() }

// Log returns the master's log.
func (m *Master) Log() *wal.Log { return m.log }

// DB returns the master's database.
func (m *Master) DB() *db.DB { return m.db }
