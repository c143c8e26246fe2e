package master

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/walship/walship/db"
)

// ErrLoadFailed is returned when a load could not replace the database;
// nothing changed then, unless the error says otherwise.
var ErrLoadFailed = errors.New("load failed")

// Load replaces the database's content with the SQLite file at path, which
// the caller checked (db.CheckFile) and gives up: it is renamed into place
// or removed. A load is not written to the log as entries (a large file
// would be one giant entry): it starts a new history. The file becomes
// the database at index S, the log's next index, under a new log_id; the
// log restarts empty from S+1, and slaves of the old history are told to
// bootstrap from the new one's snapshot (Feed's 410 with NewLogID), not
// taken for strangers. It runs in the writer, between two batches: no
// write is lost or half-applied around it. It returns S.
//
// The database is the commit point: a crash before it is installed leaves
// the old database and log; after, the log of the history the database
// left is restarted when the master opens (reconcile).
func (m *Master) Load(ctx context.Context, path string) (uint64, error) {
	var index uint64
	res := m.do(ctx, func() error {
		var err error
		index, err = m.load(path)
		return err
	})
	if res != nil {
		_ = os.Remove(path)
	}
	return index, res
}

// do runs op in the writer, alone, and returns its error.
func (m *Master) do(ctx context.Context, op func() error) error {
	p := &pending{op: op, resp: make(chan Result, 1)}
	select {
	case m.queue <- p:
	case <-m.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case r := <-p.resp:
		return r.Err
	case <-m.done:
		select {
		case r := <-p.resp:
			return r.Err
		default:
			return ErrStopped
		}
	}
}

func (m *Master) load(path string) (uint64, error) {
	if err := m.Err(); err != nil {
		return 0, m.haltedErr()
	}
	from, index := m.log.ID(), m.log.LastIndex()+1
	to, err := db.NewLogID()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrLoadFailed, err)
	}
	step := db.HistoryStep{From: from, To: to, Index: index, Time: m.cfg.Now().UTC(), Reason: "load"}
	if err := db.StartHistory(path, step, m.db.History()); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrLoadFailed, err)
	}
	if err := m.db.Install(path); err != nil {
		if m.db.LogID() != to {
			return 0, fmt.Errorf("%w: %w", ErrLoadFailed, err)
		}
		// Installed, but the database could not be opened again.
		m.halt(err)
		return index, fmt.Errorf("the database was loaded but cannot be reopened; writes are stopped: %w", err)
	}
	if err := m.log.Restart(to, index+1); err != nil {
		// Done at the next start (reconcile); no write meanwhile.
		m.halt(err)
		return index, fmt.Errorf("the database was loaded (index %d, log %s), but the old log could not be replaced; writes are stopped until the master restarts: %w", index, to, err)
	}
	m.publish()
	m.cfg.Logger.Warn("database loaded: a new history starts; slaves bootstrap from its snapshot",
		"index", index, "log_id", to, "previous_log_id", from)
	return index, nil
}

// reconcile restarts the log when the database left the log's history
// (a load whose log restart a crash cut short), or when the database was
// just loaded or restored and the log is a new, empty one: the log then
// continues the database's history.
func (m *Master) reconcile() error {
	dbID, logID := m.db.LogID(), m.log.ID()
	if dbID == "" || dbID == logID {
		return nil
	}
	applied := m.db.AppliedIndex()
	_, left := m.db.Left(logID)
	empty := m.log.LastIndex() < m.log.FirstIndex() && m.log.FirstIndex() == 1
	if !left && !(empty && m.db.Fresh()) {
		return nil // check says why it cannot start
	}
	if err := m.log.Restart(dbID, applied+1); err != nil {
		return fmt.Errorf("restart the log for the database's history %s: %w", dbID, err)
	}
	m.cfg.Logger.Warn("the log now follows the database's new history", "log_id", dbID, "first_index", applied+1,
		"previous_log_id", logID)
	return nil
}
