// Package feed serves a node's log to the nodes that follow it (the
// replication feed, GET /log/entries) and keeps each follower's progress.
// The master serves its log with it; a slave serves the copy of the log it
// keeps, so that other slaves can follow it (cascading) and so that it can
// be promoted. A Feed only reads the log: whoever appends to it wakes the
// long-polls (Config.Wait).
//
// # Goroutines
//
// A Feed starts none: Serve runs on the caller's (the HTTP server's)
// goroutine.
package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/walship/walship/db"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

var (
	// ErrConflict is returned by Serve when the follower follows another
	// history: another log_id, an index beyond the log, or another epoch
	// at its applied index.
	ErrConflict = errors.New("slave follows another history")
	// ErrCompacted is returned (as a *CompactedError) by Serve when the
	// entries asked for are not in the log (compacted away, or before the
	// log this node started keeping): the follower bootstraps from a
	// snapshot.
	ErrCompacted = errors.New("the entries asked for were compacted away")
	// ErrDuplicateID is returned by Serve when another follower that is
	// alive uses the same id.
	ErrDuplicateID = errors.New("another slave uses this id")
	// ErrUnknownFollower is returned by Remove for an id the feed does not
	// know.
	ErrUnknownFollower = errors.New("no slave has this id")
	// ErrFenced is returned by Serve when the follower knows a higher
	// epoch than this node's: a master of a later generation replaced
	// this one (a promotion), and this node must not lead or feed anyone.
	ErrFenced = errors.New("fenced: a master of a higher epoch replaced this node")
)

// ConflictError is Serve's answer when the follower's history is not this
// node's (ErrConflict) or it knows a higher epoch (ErrFenced). It says
// where the follower stands against this node, so that a follower whose
// last entries a new master superseded can drop them instead of stopping.
type ConflictError struct {
	Err error // ErrConflict, ErrFenced or ErrDuplicateID
	Msg string
	// Epoch is this node's epoch.
	Epoch uint64
	// Superseded, when not 0, is the first index at which this node holds
	// entries of a higher epoch than the follower's last entry: the
	// follower's entries from there on were never this history's (a
	// master that was replaced wrote them) and are to be dropped.
	Superseded uint64
}

func (e *ConflictError) Error() string { return e.Err.Error() + ": " + e.Msg }

func (e *ConflictError) Unwrap() error { return e.Err }

// CompactedError is Serve's answer to a request below the log's first
// index.
type CompactedError struct {
	From, First uint64
	// Snapshot is the index of the node's latest snapshot (0 if none).
	Snapshot uint64
	// NewLogID is set when the follower follows a history this node left
	// (a load, a restore): Left says how. The follower bootstraps from the
	// new history's snapshot.
	NewLogID string
	Left     db.HistoryStep
}

func (e *CompactedError) Error() string {
	if e.NewLogID != "" {
		return fmt.Sprintf("%v: the master left log %s for a new history, log %s, at index %d (%s); bootstrap from its snapshot (GET /db/snapshot)",
			ErrCompacted, e.Left.From, e.NewLogID, e.Left.Index, e.Left.Reason)
	}
	return fmt.Sprintf("%v: from %d, the log starts at %d; bootstrap from the snapshot at %d (GET /db/snapshot)",
		ErrCompacted, e.From, e.First, e.Snapshot)
}

func (e *CompactedError) Unwrap() error { return ErrCompacted }

// Config configures a Feed.
type Config struct {
	// Heartbeat bounds how long a request waits for new entries. Zero
	// means 250ms.
	Heartbeat time.Duration
	// MaxBytes bounds the encoded size of one answer (at least one entry
	// is always sent). Zero means 4 MiB.
	MaxBytes int
	// Wait waits until the log holds an entry after index after and the
	// entries are ready to be served (the master publishes them once it
	// answered their writes), or ctx is done. Nil: the log's Wait.
	Wait func(ctx context.Context, after uint64) error
	// DB is the node's database: the histories it left (a load, a
	// restore) send their followers to the new one. Nil: none.
	DB *db.DB
	// Snapshots names the snapshot a follower below the log's first
	// index bootstraps from. Nil: none.
	Snapshots *snapshot.Store
	// OnFenced, if set, is called (on Serve's goroutine; it must not
	// block) when a follower knows a higher epoch than this node's log:
	// epoch is that epoch, follower the follower's URL.
	OnFenced func(epoch uint64, follower string)
	// StateFile keeps the followers the feed knew across restarts
	// (followers.go); "" means followers.json beside the log, "-" none.
	StateFile string
	// Logger receives the feed's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Feed serves a log to its followers.
type Feed struct {
	cfg Config
	log *wal.Log

	mu        sync.Mutex
	followers map[string]*follower
	// progressed is closed, and replaced, whenever a follower reports a
	// higher index (WaitFollowers).
	progressed chan struct{}
}

// New returns a Feed of log.
func New(log *wal.Log, cfg Config) *Feed {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 250 * time.Millisecond
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait == nil {
		cfg.Wait = log.Wait
	}
	f := &Feed{cfg: cfg, log: log, followers: make(map[string]*follower), progressed: make(chan struct{})}
	f.load()
	return f
}

// Log returns the log the feed serves.
func (f *Feed) Log() *wal.Log { return f.log }

// Request is one long-poll of a follower.
type Request struct {
	From     uint64
	Max      int
	Wait     time.Duration
	SlaveID  string
	SlaveURL string
	LogID    string // "" for a follower that follows no log yet
	Applied  uint64
	// Received is the last index the follower holds in its own log,
	// fsynced (at least Applied when it keeps one); 0: it keeps none.
	Received   uint64
	LastEpoch  uint64
	KnowsEpoch bool
	// KnownEpoch is the highest epoch the follower knows of (its log's);
	// 0: unknown. A node whose own is lower was replaced: ErrFenced.
	KnownEpoch uint64
}

// Serve returns the entries from req.From, encoded as the log holds them
// (wal/format.go; checked, not decoded: the follower decodes them): at most
// req.Max and MaxBytes, but at least one when one exists. With none yet, it
// waits up to the shorter of req.Wait and the heartbeat. It records the
// follower's progress.
func (f *Feed) Serve(ctx context.Context, req Request) ([][]byte, error) {
	if req.SlaveID != "" {
		if err := f.record(req); err != nil {
			return nil, err
		}
	}
	if own := f.log.Epoch(); req.KnownEpoch > own {
		if f.cfg.OnFenced != nil {
			f.cfg.OnFenced(req.KnownEpoch, req.SlaveURL)
		}
		return nil, &ConflictError{Err: ErrFenced, Epoch: own,
			Msg: fmt.Sprintf("the slave knows epoch %d, this node is at epoch %d: a newer master replaced it", req.KnownEpoch, own)}
	}
	if err := f.checkLogID(req); err != nil {
		return nil, err
	}
	first, last := f.log.FirstIndex(), f.log.LastIndex()
	if req.From == 0 || req.From > last+1 {
		return nil, f.conflict(req, fmt.Sprintf("from %d is beyond the log's next index %d", req.From, last+1))
	}
	if req.From < first {
		return nil, f.gone(req, first)
	}
	// The entry the follower applied last may be compacted away: its
	// epoch cannot be checked then (the log_id was).
	if req.KnowsEpoch && req.Applied > 0 && req.Applied >= first {
		epoch, err := f.log.EntryEpoch(req.Applied)
		if err != nil {
			if first := f.log.FirstIndex(); req.Applied < first {
				// Compacted since the check above.
				return nil, f.gone(req, first)
			}
			return nil, f.conflict(req, fmt.Sprintf("entry %d: %v", req.Applied, err))
		}
		if epoch != req.LastEpoch {
			return nil, f.conflict(req, fmt.Sprintf("the slave's entry %d has epoch %d, this node's has %d", req.Applied, req.LastEpoch, epoch))
		}
	}
	if req.From == last+1 {
		wait := req.Wait
		if wait > f.cfg.Heartbeat || wait <= 0 {
			wait = f.cfg.Heartbeat
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := f.cfg.Wait(wctx, last)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, nil // heartbeat: nothing new
		}
		if err := f.checkLogID(req); err != nil {
			return nil, err // a load started a new history meanwhile
		}
	}
	max := req.Max
	if max <= 0 || max > 10000 {
		max = 10000
	}
	out, err := f.log.ReadEncoded(req.From, max, f.cfg.MaxBytes)
	if err != nil {
		if first := f.log.FirstIndex(); req.From < first {
			// Compacted since the check above.
			return nil, f.gone(req, first)
		}
	}
	return out, err
}

// conflict is Serve's answer to a follower whose history is not this
// node's, with where this node's entries of a higher epoch than the
// follower's last begin.
func (f *Feed) conflict(req Request, msg string) error {
	ce := &ConflictError{Err: ErrConflict, Msg: msg, Epoch: f.log.Epoch()}
	if req.KnowsEpoch {
		if at, ok, err := f.log.EpochStart(req.LastEpoch + 1); err == nil && ok && at <= req.Applied {
			ce.Superseded = at
			ce.Msg += fmt.Sprintf("; this node's entries from %d on are of a later epoch: the slave's from there on were superseded", at)
		}
	}
	return ce
}

// checkLogID refuses a request of another history: a history the
// database left (a load, a restore) gets a CompactedError naming the new
// one, to bootstrap from; any other a conflict.
func (f *Feed) checkLogID(req Request) error {
	id := f.log.ID()
	if req.LogID == "" || req.LogID == id {
		return nil
	}
	if f.cfg.DB != nil {
		if step, ok := f.cfg.DB.Left(req.LogID); ok {
			ce := f.compacted(req.From, f.log.FirstIndex())
			ce.NewLogID, ce.Left = id, step
			return ce
		}
	}
	return &ConflictError{Err: ErrConflict, Epoch: f.log.Epoch(),
		Msg: fmt.Sprintf("the slave follows log %s, this node's log is %s", req.LogID, id)}
}

// gone is Serve's answer when the entries asked for are not in the log:
// the log was compacted, or restarted for a new history.
func (f *Feed) gone(req Request, first uint64) error {
	if err := f.checkLogID(req); err != nil {
		return err
	}
	return f.compacted(req.From, first)
}

// compacted is Serve's answer to a request from below the log's first
// index: the index of the snapshot to bootstrap from.
func (f *Feed) compacted(from, first uint64) *CompactedError {
	ce := &CompactedError{From: from, First: first}
	if f.cfg.Snapshots != nil {
		// Only a snapshot the log follows is named: an older one (a slave
		// that bootstrapped since) is replaced when it is asked for.
		if info, err := f.cfg.Snapshots.Latest(); err == nil && info.LogID == f.log.ID() && info.Index+1 >= first {
			ce.Snapshot = info.Index
		}
	}
	return ce
}

// WaitFollowers waits until n followers have reported that they hold index
// (applied: applied it; otherwise: hold it fsynced in their log, or applied
// it), or ctx or done is done. Each follower reports with every request,
// and asks again as soon as it has applied what it got. It returns how
// many had, at most n.
func (f *Feed) WaitFollowers(ctx context.Context, done <-chan struct{}, index uint64, n int, applied bool) int {
	for {
		f.mu.Lock()
		got := 0
		for _, fl := range f.followers {
			if fl.heard && (fl.applied >= index || (!applied && fl.received >= index)) {
				got++
			}
		}
		ch := f.progressed
		f.mu.Unlock()
		if got >= n {
			return n
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return got
		case <-done:
			return got
		}
	}
}
