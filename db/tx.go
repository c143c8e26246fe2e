package db

import (
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/wal"
)

// Request is one write request: statements split one per Statement, with
// Pos set to each statement's position in the request.
type Request struct {
	Statements []wal.Statement
	// Txn makes the request all-or-nothing. Without it, each statement is
	// atomic on its own and a failed one leaves no trace.
	Txn bool
	// Timeout, if set, stops a statement that runs longer (ErrTimeout).
	// Replicas never stop one: a statement stopped on the master is not
	// logged.
	Timeout time.Duration
}

// Outcome is what running a Request in a Tx did.
type Outcome struct {
	// Results has one Result per statement run. With Txn, it ends at the
	// failed statement.
	Results []Result
	// Logged are the statements that changed the database and must be
	// logged: every statement that succeeded and was not read-only. With
	// Txn and a failure, none.
	Logged []wal.Statement
	// Err is set when a Txn request failed (the failed statement's error).
	Err error
	// TxnLost is set when a statement ended the whole SQLite transaction
	// (INSERT OR ROLLBACK, RAISE(ROLLBACK), an I/O error): every request
	// run in this Tx before is undone too, and must be run again in a new
	// one. This request has failed.
	TxnLost bool
}

// errTxnLost is the error of a request run after an earlier one ended the
// transaction.
var errTxnLost = errors.New("run: the transaction was ended by an earlier statement; roll back and run the batch again")

// Tx is the writer's open SQLite transaction. Only one is open at a time.
type Tx struct {
	d    *DB
	done bool
}

// Begin opens the writer's transaction, waiting for the previous one to end.
func (d *DB) Begin() (*Tx, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	d.wmu.Lock()
	if d.closed.Load() {
		// Close ran while this Begin waited for the writer.
		d.wmu.Unlock()
		return nil, ErrClosed
	}
	if err := d.w.execCached("BEGIN IMMEDIATE"); err != nil {
		d.wmu.Unlock()
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{d: d}, nil
}

// startEntry clears what SQLite carries from one statement to the next, so
// that an entry sees no trace of the entries before it: last_insert_rowid()
// and changes() are 0.
func (c *conn) startEntry() error {
	c.setLastInsertID(0)
	c.setChanges(0)
	return nil
}

// Run runs req with "now" pinned at ms and random values drawn from seed.
func (tx *Tx) Run(req Request, ms int64, seed uint64) Outcome {
	w := tx.d.w
	var out Outcome
	if tx.done {
		out.Err = fmt.Errorf("run: %w", ErrClosed)
		return out
	}
	if !w.inTxn() {
		// An earlier request ended the transaction: running this one
		// now would commit each statement on its own, outside the batch.
		out.Err, out.TxnLost = errTxnLost, true
		return out
	}
	if err := w.startEntry(); err != nil {
		out.Err, out.TxnLost = err, !w.inTxn()
		return out
	}
	if req.Txn {
		if err := w.execCached("SAVEPOINT walship_request"); err != nil {
			out.Err, out.TxnLost = err, !w.inTxn()
			return out
		}
	}
	for _, st := range req.Statements {
		if !req.Txn {
			if err := w.execCached("SAVEPOINT walship_statement"); err != nil {
				out.Err, out.TxnLost = err, !w.inTxn()
				return out
			}
		}
		// A failed statement is not logged, so a replica never runs it:
		// what it did to last_insert_rowid() and changes() is undone
		// with its rows.
		lastID, nchanges := w.lastInsertID(), w.changes()
		if req.Timeout > 0 {
			w.deadline.Store(time.Now().Add(req.Timeout).UnixNano())
		}
		res, changed, err := w.run(st, policyWrite, true, ms, seed)
		if req.Timeout > 0 {
			if err != nil && time.Now().UnixNano() > w.deadline.Load() {
				err = fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			w.deadline.Store(0)
		}
		if err != nil {
			res = Result{Err: err}
			out.Results = append(out.Results, res)
			if !w.inTxn() {
				out.Err, out.TxnLost, out.Logged = err, true, nil
				return out
			}
			if req.Txn {
				out.Err, out.Logged = err, nil
				if rerr := w.execCached("ROLLBACK TO walship_request"); rerr == nil {
					rerr = w.execCached("RELEASE walship_request")
				}
				if !w.inTxn() {
					out.TxnLost = true
				}
				return out
			}
			if rerr := w.execCached("ROLLBACK TO walship_statement"); rerr == nil {
				_ = w.execCached("RELEASE walship_statement")
			}
			if !w.inTxn() {
				out.Err, out.TxnLost, out.Logged = err, true, nil
				return out
			}
			w.setLastInsertID(lastID)
			w.setChanges(nchanges)
			continue
		}
		if !req.Txn {
			if err := w.execCached("RELEASE walship_statement"); err != nil {
				out.Err, out.TxnLost = err, !w.inTxn()
				return out
			}
		}
		out.Results = append(out.Results, res)
		if changed {
			out.Logged = append(out.Logged, st)
		}
	}
	if req.Txn {
		if err := w.execCached("RELEASE walship_request"); err != nil {
			out.Err, out.TxnLost = err, !w.inTxn()
			out.Logged = nil
		}
	}
	return out
}

// Commit records logID and applied as the database's position in the log
// and commits. An error here means SQLite could not commit what the log
// already holds: the caller must stop and replay at start.
func (tx *Tx) Commit(logID string, applied uint64) error {
	if tx.done {
		return fmt.Errorf("commit: %w", ErrClosed)
	}
	tx.done = true
	defer tx.d.wmu.Unlock()
	w := tx.d.w
	if err := w.setPosition(logID, applied); err != nil {
		_ = w.execCached("ROLLBACK")
		return fmt.Errorf("commit: record applied index: %w", err)
	}
	if err := w.execCached("COMMIT"); err != nil {
		_ = w.execCached("ROLLBACK")
		return fmt.Errorf("commit: %w", err)
	}
	tx.d.logID.Store(logID)
	tx.d.applied.Store(applied)
	return nil
}

// Rollback undoes the transaction. It is a no-op after Commit.
func (tx *Tx) Rollback() error {
	if tx.done {
		return nil
	}
	tx.done = true
	defer tx.d.wmu.Unlock()
	if !tx.d.w.inTxn() {
		return nil
	}
	if err := tx.d.w.execCached("ROLLBACK"); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

func (c *conn) setPosition(logID string, applied uint64) error {
	s, err := c.cached("UPDATE _walship SET log_id = ?1, applied_index = ?2 WHERE id = 1")
	if err != nil {
		return err
	}
	defer s.reset()
	c.auth.reset(policyInternal)
	if err := s.bind([]wal.Param{{Value: wal.Text(logID)}, {Value: wal.Integer(int64(applied))}}); err != nil {
		return err
	}
	_, err = s.step()
	return err
}

// cached returns the writer's prepared statement for sql, preparing it once.
func (c *conn) cached(sql string) (*stmt, error) {
	if s := c.ctl[sql]; s != nil {
		return s, nil
	}
	c.auth.reset(policyInternal)
	s, _, err := c.prepare(sql)
	if err != nil {
		return nil, err
	}
	if c.ctl == nil {
		c.ctl = make(map[string]*stmt)
	}
	c.ctl[sql] = s
	return s, nil
}

// execCached runs one of the node's own statements.
func (c *conn) execCached(sql string) error {
	s, err := c.cached(sql)
	if err != nil {
		return err
	}
	c.auth.reset(policyInternal)
	defer s.reset()
	for {
		row, err := s.step()
		if err != nil {
			return err
		}
		if !row {
			return nil
		}
	}
}

// Apply applies entries, which must follow the applied index without a gap,
// in one SQLite transaction, and records the last one's index. Every
// statement of an entry succeeded on the master, so a failure means this
// database's history differs: nothing is applied and the error is an
// *ApplyError.
func (d *DB) Apply(logID string, entries []*wal.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	tx, err := d.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Checked while holding the writer: a Tx committing meanwhile could
	// have set another log_id.
	if cur := d.LogID(); cur != "" && cur != logID {
		return fmt.Errorf("%w: database follows log %s, entries are from log %s", ErrOtherLog, cur, logID)
	}
	next := d.AppliedIndex() + 1
	w := d.w
	for _, e := range entries {
		if e.Index != next {
			return fmt.Errorf("%w: applied index %d, next entry %d", ErrGap, next-1, e.Index)
		}
		if err := w.startEntry(); err != nil {
			return &ApplyError{Index: e.Index, Err: err}
		}
		for i, st := range e.Statements {
			if _, _, err := w.run(st, policyWrite, true, e.Time, e.Seed); err != nil {
				return &ApplyError{Index: e.Index, Pos: i, Err: err}
			}
		}
		next++
	}
	return tx.Commit(logID, next-1)
}
