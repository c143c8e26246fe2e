package db

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/walship/walship/wal"
)

// A database follows one log (its log_id). A load or a restore replaces the
// content as a whole and starts a new log: a new history, which continues
// the old one's index. The steps are recorded in the database itself, in
// _walship_history, so that a snapshot or a backup carries them: a node
// that follows a history the database left is told to start over from the
// new one, not taken for a stranger.

// historySchema is walship's record of the histories a database left.
const historySchema = `CREATE TABLE IF NOT EXISTS _walship_history (
	to_log_id TEXT NOT NULL,
	from_log_id TEXT NOT NULL,
	at_index INTEGER NOT NULL,
	time TEXT NOT NULL,
	reason TEXT NOT NULL)`

// HistoryStep is one change of history: the database left log From, whose
// content it held at index Index-1 or less, for log To, whose first entry
// will be Index+1; its content at Index is what was loaded or restored.
type HistoryStep struct {
	From   string    `json:"from_log_id"`
	To     string    `json:"to_log_id"`
	Index  uint64    `json:"index"`
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

// loadHistory reads the history steps on the writer (at open).
func (d *DB) loadHistory() error {
	steps, err := readHistory(d.w)
	if err != nil {
		return err
	}
	d.history.Store(steps)
	return nil
}

func readHistory(c *conn) ([]HistoryStep, error) {
	c.auth.reset(policyInternal)
	// The table exists only in a database that changed history: made at
	// open, it would shift the pages of the tables created after it on a
	// node upgraded later than the others.
	res, _, err := c.run(wal.Statement{SQL: "SELECT count(*) FROM sqlite_schema WHERE name = '_walship_history'"}, policyInternal, false, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("read the history: %w", err)
	}
	if len(res.Rows) == 1 && res.Rows[0][0].Int == 0 {
		return nil, nil
	}
	res, _, err = c.run(wal.Statement{SQL: "SELECT from_log_id, to_log_id, at_index, time, reason FROM _walship_history ORDER BY at_index, rowid"},
		policyInternal, false, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("read the history: %w", err)
	}
	steps := make([]HistoryStep, 0, len(res.Rows))
	for _, row := range res.Rows {
		t, _ := time.Parse(time.RFC3339Nano, row[3].Text)
		steps = append(steps, HistoryStep{From: row[0].Text, To: row[1].Text, Index: uint64(row[2].Int), Time: t, Reason: row[4].Text})
	}
	return steps, nil
}

// History returns the histories the database left, oldest first.
func (d *DB) History() []HistoryStep {
	steps, _ := d.history.Load().([]HistoryStep)
	return steps
}

// Left returns the step by which the database left log logID, if it did.
func (d *DB) Left(logID string) (HistoryStep, bool) {
	for _, st := range d.History() {
		if st.From == logID {
			return st, true
		}
	}
	return HistoryStep{}, false
}

// Fresh reports whether the database is at the very start of its history:
// a load or restore put it at the index its history starts at, and no
// entry of that history was applied since. A new log may then be created
// for it (its log_id, from that index on); any other database without its
// log is missing entries.
func (d *DB) Fresh() bool {
	steps := d.History()
	if len(steps) == 0 {
		return false
	}
	last := steps[len(steps)-1]
	return last.To == d.LogID() && last.Index == d.AppliedIndex()
}

// StartHistory makes the SQLite file at path (a database to load, or one
// restored; no one else has it open) the start of a new history: its own
// walship tables, if any, are replaced by the position (step.To,
// step.Index) and the history past followed by step. The file is fsynced.
func StartHistory(path string, step HistoryStep, past []HistoryStep) error {
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE)
	if err != nil {
		return fmt.Errorf("start a new history: %w", err)
	}
	c.auth.reset(policyInternal)
	var b strings.Builder
	b.WriteString("BEGIN IMMEDIATE; DROP TABLE IF EXISTS _walship; DROP TABLE IF EXISTS _walship_history; ")
	b.WriteString(walshipSchema + "; " + historySchema + "; ")
	fmt.Fprintf(&b, "INSERT INTO _walship (id, log_id, applied_index) VALUES (1, %s, %d); ", quoteText(step.To), step.Index)
	for _, st := range append(past[:len(past):len(past)], step) {
		fmt.Fprintf(&b, "INSERT INTO _walship_history (to_log_id, from_log_id, at_index, time, reason) VALUES (%s, %s, %d, %s, %s); ",
			quoteText(st.To), quoteText(st.From), st.Index, quoteText(st.Time.UTC().Format(time.RFC3339Nano)), quoteText(st.Reason))
	}
	b.WriteString("COMMIT;")
	err = c.exec(b.String())
	if err != nil {
		_ = c.exec("ROLLBACK")
	}
	if cerr := c.close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncFile(path)
	}
	if err != nil {
		return fmt.Errorf("start a new history: %w", err)
	}
	return nil
}

// quoteText is a SQL string literal of s.
func quoteText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrNotDatabase is returned by CheckFile for a file that is not a whole
// SQLite database.
var ErrNotDatabase = errors.New("not a valid SQLite database")

// sqliteHeader opens every SQLite database file.
const sqliteHeader = "SQLite format 3\x00"

// IsSQLiteHeader reports whether b starts like a SQLite database file.
func IsSQLiteHeader(b []byte) bool {
	return len(b) >= len(sqliteHeader) && string(b[:len(sqliteHeader)]) == sqliteHeader
}

// CheckFile checks that the file at path (a copy no one else has open) is
// a whole SQLite database: its header, and SQLite's integrity_check, which
// reads every page. Errors wrap ErrNotDatabase and say what is wrong.
func CheckFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotDatabase, err)
	}
	head := make([]byte, 100)
	n, _ := io.ReadFull(f, head)
	_ = f.Close()
	if !IsSQLiteHeader(head[:n]) {
		return fmt.Errorf("%w: it does not start with SQLite's header", ErrNotDatabase)
	}
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotDatabase, err)
	}
	var mu sync.Mutex // the interrupt never comes after the close
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		_ = c.close()
	}()
	c.auth.reset(policyInternal)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if c.db != 0 {
			c.interrupt()
		}
	})
	defer stop()
	res, _, err := c.run(wal.Statement{SQL: "PRAGMA integrity_check(10)"}, policyInternal, false, 0, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotDatabase, err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0].Text != "ok" {
		var msgs []string
		for _, row := range res.Rows {
			msgs = append(msgs, row[0].Text)
		}
		return fmt.Errorf("%w: integrity_check: %s", ErrNotDatabase, strings.Join(msgs, "; "))
	}
	return nil
}

// NewLogID returns a fresh random log_id: 32 hexadecimal characters.
func NewLogID() (string, error) {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate a log_id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// ContinueHistory makes the SQLite file at path the start of a new
// history (StartHistory), keeping the steps its own history table holds:
// step.From is the log it follows, step.Index its applied index.
func ContinueHistory(path string, step HistoryStep) error {
	c, err := openConn(path, sqlite3.SQLITE_OPEN_READWRITE)
	if err != nil {
		return fmt.Errorf("start a new history: %w", err)
	}
	past, err := readHistory(c)
	if cerr := c.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("start a new history: %w", err)
	}
	return StartHistory(path, step, past)
}
