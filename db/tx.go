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
	// NoForeignKeys runs the request with foreign key enforcement off, as
	// the sqlite3 shell loads a dump that starts with PRAGMA
	// foreign_keys=OFF. SQLite changes that setting only between
	// transactions, so such a request runs in a SQLite transaction of its
	// own (BeginOptions), on every node.
	NoForeignKeys bool
	// Timeout, if set, stops a statement that runs longer (ErrTimeout).
	// Replicas never stop one: a statement stopped on the master is not
	// logged.
	Timeout time.Duration
	// Failed holds, by index in Statements, the statements of a request
	// without Txn that ended the whole SQLite transaction when the request
	// ran before (Outcome.Lost): they are not run again, and fail with
	// that error, alone.
	Failed map[int]error
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
	// (INSERT OR ROLLBACK, RAISE(ROLLBACK), an interrupt, an I/O error):
	// every request run in this Tx before is undone too, and must be run
	// again in a new one. A request with Txn has failed. A request
	// without Txn has not: its statement Lost fails alone, and the request
	// runs again with it in Request.Failed.
	TxnLost bool
	// Lost is the index of the statement that ended the transaction, for
	// a request without Txn; -1 otherwise.
	Lost int
}

// errTxnLost is the error of a request run after an earlier one ended the
// transaction.
var errTxnLost = errors.New("run: the transaction was ended by an earlier statement; roll back and run the batch again")

// Tx is the writer's open SQLite transaction. Only one is open at a time.
type Tx struct {
	d    *DB
	done bool
	// noFK is set when the transaction runs with foreign key enforcement
	// off; it is turned on again when the transaction ends.
	noFK bool
}

// Begin opens the writer's transaction, waiting for the previous one to end.
func (d *DB) Begin() (*Tx, error) { return d.BeginOptions(false) }

// BeginOptions opens the writer's transaction; noForeignKeys turns foreign
// key enforcement off for this transaction alone.
func (d *DB) BeginOptions(noForeignKeys bool) (*Tx, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	d.wmu.Lock()
	if d.closed.Load() {
		// Close ran while this Begin waited for the writer.
		d.wmu.Unlock()
		return nil, ErrClosed
	}
	tx := &Tx{d: d, noFK: noForeignKeys}
	if noForeignKeys {
		// A flag PRAGMA acts when it is compiled: prepared anew each
		// time. It expires every prepared statement, which SQLite then
		// compiles again without (and after, with) the checks.
		d.w.auth.reset(policyInternal)
		if err := d.w.exec("PRAGMA foreign_keys=OFF"); err != nil {
			d.wmu.Unlock()
			return nil, fmt.Errorf("begin: %w", err)
		}
	}
	if err := d.w.execCached("BEGIN IMMEDIATE"); err != nil {
		tx.restore()
		d.wmu.Unlock()
		return nil, fmt.Errorf("begin: %w", err)
	}
	return tx, nil
}

// restore turns foreign key enforcement on again after a transaction
// without it.
func (tx *Tx) restore() {
	if tx.noFK {
		tx.d.w.auth.reset(policyInternal)
		if err := tx.d.w.exec("PRAGMA foreign_keys=ON"); err != nil {
			tx.d.logger.Error("turning foreign keys on again failed", "err", err)
		}
		tx.noFK = false
	}
}

// startEntry clears what SQLite carries from one statement to the next, so
// that an entry sees no trace of the entries before it: last_insert_rowid()
// and changes() are 0.
func (c *conn) startEntry() {
	c.setLastInsertID(0)
	c.setChanges(0)
}

// Run runs req with "now" pinned at ms and random values drawn from seed.
func (tx *Tx) Run(req Request, ms int64, seed uint64) Outcome {
	w := tx.d.w
	if tx.done {
		return Outcome{Err: fmt.Errorf("run: %w", ErrClosed), Lost: -1}
	}
	if !w.inTxn() {
		// An earlier request ended the transaction: running this one
		// now would commit each statement on its own, outside the batch.
		return Outcome{Err: errTxnLost, TxnLost: true, Lost: -1}
	}
	return w.runRequest(req, ms, seed)
}

// runRequest runs req in the writer's open transaction, under the write
// policy, with a savepoint around a request with Txn and one around each
// statement of one without. Replicas apply its entry with the same
// savepoints (applyEntry), because modules such as FTS5 write what they
// hold in memory when a savepoint opens or ends: the same boundaries make
// them store the same bytes on every node.
func (c *conn) runRequest(req Request, ms int64, seed uint64) Outcome {
	out := Outcome{Lost: -1}
	// lost ends the run when statement i ended the whole transaction.
	lost := func(i int, err error) Outcome {
		out.TxnLost, out.Logged, out.Err = true, nil, err
		if !req.Txn {
			out.Lost = i
		}
		return out
	}
	c.startEntry()
	if req.Txn {
		if err := c.execCached("SAVEPOINT walship_request"); err != nil {
			if !c.inTxn() {
				return lost(0, err)
			}
			out.Err = err
			return out
		}
	}
	for i, st := range req.Statements {
		if err, ok := req.Failed[i]; ok && !req.Txn {
			out.Results = append(out.Results, Result{Err: err})
			continue
		}
		if !req.Txn {
			if err := c.execCached("SAVEPOINT walship_statement"); err != nil {
				out.Results = append(out.Results, Result{Err: err})
				if !c.inTxn() {
					return lost(i, err)
				}
				continue
			}
		}
		// A failed statement is not logged, so a replica never runs it:
		// what it did to last_insert_rowid() and changes() is undone
		// with its rows.
		lastID, nchanges := c.lastInsertID(), c.changes()
		if req.Timeout > 0 {
			c.deadline.Store(time.Now().Add(req.Timeout).UnixNano())
		}
		res, changed, err := c.run(st, policyWrite, true, ms, seed)
		if req.Timeout > 0 {
			if err != nil && time.Now().UnixNano() > c.deadline.Load() {
				err = fmt.Errorf("%w: %w", ErrTimeout, err)
			}
			c.deadline.Store(0)
		}
		if err == nil && !req.Txn && c.inTxn() && c.deferredViolations() {
			// SQLite checks a deferred foreign key only at COMMIT, after
			// the log append: a statement on its own is committed now.
			err = errDeferredFK()
		}
		if err != nil {
			out.Results = append(out.Results, Result{Err: err})
			if !c.inTxn() {
				return lost(i, err)
			}
			if req.Txn {
				out.Err, out.Logged = err, nil
				if rerr := c.execCached("ROLLBACK TO walship_request"); rerr == nil {
					_ = c.execCached("RELEASE walship_request")
				}
				if !c.inTxn() {
					return lost(i, err)
				}
				return out
			}
			if rerr := c.execCached("ROLLBACK TO walship_statement"); rerr == nil {
				_ = c.execCached("RELEASE walship_statement")
			}
			if !c.inTxn() {
				return lost(i, err)
			}
			c.setLastInsertID(lastID)
			c.setChanges(nchanges)
			continue
		}
		if !req.Txn {
			if err := c.execCached("RELEASE walship_statement"); err != nil {
				out.Results = append(out.Results, Result{Err: err})
				if !c.inTxn() {
					return lost(i, err)
				}
				out.Err = err
				return out
			}
		}
		out.Results = append(out.Results, res)
		if changed {
			out.Logged = append(out.Logged, st)
		}
	}
	if req.Txn {
		var err error
		if c.deferredViolations() {
			// The request is the transaction: a deferred foreign key it
			// leaves violated fails it, as COMMIT would.
			err = errDeferredFK()
			if n := len(out.Results); n > 0 {
				out.Results[n-1] = Result{Err: err}
			}
			if rerr := c.execCached("ROLLBACK TO walship_request"); rerr == nil {
				_ = c.execCached("RELEASE walship_request")
			}
		} else {
			err = c.execCached("RELEASE walship_request")
		}
		if err != nil {
			out.Err, out.Logged = err, nil
			if !c.inTxn() {
				return lost(len(req.Statements)-1, err)
			}
		}
	}
	return out
}

// Commit records logID and applied as the database's position in the log
// and commits. An error here means SQLite could not commit what the log
// already holds: the master halts writes and applies its log again.
func (tx *Tx) Commit(logID string, applied uint64) error {
	if tx.done {
		return fmt.Errorf("commit: %w", ErrClosed)
	}
	tx.done = true
	defer tx.d.wmu.Unlock()
	defer tx.restore()
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
	defer tx.restore()
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
// and records the last one's index: in one SQLite transaction, but for an
// entry without foreign key enforcement, which gets one of its own. A check
// entry (wal.Check) runs no SQL: only the applied index passes it. Every
// statement of an entry succeeded on the master, so a failure means this
// database's history differs: the failed entry's transaction is rolled back
// and the error is an *ApplyError (the entries before it may stay applied).
func (d *DB) Apply(logID string, entries []*wal.Entry) error {
	for len(entries) > 0 {
		n := 1
		if !entries[0].NoForeignKeys {
			for n < len(entries) && !entries[n].NoForeignKeys {
				n++
			}
		}
		if err := d.applyTx(logID, entries[:n]); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// applyTx applies entries in one SQLite transaction.
func (d *DB) applyTx(logID string, entries []*wal.Entry) error {
	tx, err := d.BeginOptions(entries[0].NoForeignKeys)
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
	for _, e := range entries {
		if e.Index != next {
			return fmt.Errorf("%w: applied index %d, next entry %d", ErrGap, next-1, e.Index)
		}
		if pos, err := d.w.applyEntry(e); err != nil {
			return &ApplyError{Index: e.Index, Pos: pos, Err: err}
		}
		next++
	}
	return tx.Commit(logID, next-1)
}

// applyEntry runs a logged entry's statements, which must all succeed (a
// failure is returned with the statement's position). The policy is not
// applied again. While the schema holds a virtual table, the entry runs
// with the master's savepoints (runRequest): one around an entry with Txn,
// one around each statement of one without; otherwise savepoints change
// nothing that is stored, and are left out.
func (c *conn) applyEntry(e *wal.Entry) (int, error) {
	if e.Check != nil {
		return 0, nil // content unchanged
	}
	c.startEntry()
	vtabs, err := c.hasVirtualTables()
	if err != nil {
		return 0, err
	}
	if e.Txn && vtabs {
		if err := c.execCached("SAVEPOINT walship_request"); err != nil {
			return 0, err
		}
	}
	for i, st := range e.Statements {
		sp := false
		if !e.Txn {
			if sp, err = c.hasVirtualTables(); err != nil {
				return i, err
			}
			if sp {
				if err := c.execCached("SAVEPOINT walship_statement"); err != nil {
					return i, err
				}
			}
		}
		if _, _, err := c.run(st, policyApply, true, e.Time, e.Seed); err != nil {
			return i, err
		}
		if !e.Txn {
			if c.deferredViolations() {
				return i, errDeferredFK()
			}
			if sp {
				if err := c.execCached("RELEASE walship_statement"); err != nil {
					return i, err
				}
			}
		}
	}
	if e.Txn {
		if c.deferredViolations() {
			return len(e.Statements) - 1, errDeferredFK()
		}
		if vtabs {
			if err := c.execCached("RELEASE walship_request"); err != nil {
				return len(e.Statements) - 1, err
			}
		}
	}
	return 0, nil
}
