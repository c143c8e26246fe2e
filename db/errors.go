package db

import (
	"errors"
	"fmt"
)

var (
	// ErrParams is returned when the parameters do not fit the statement:
	// too many, too few, an unknown name, an unknown type.
	ErrParams = errors.New("parameters do not match the statement")
	// ErrIncomplete is returned when SQL text ends inside a string, a quoted
	// identifier, a comment or a trigger body, or holds a NUL byte (SQLite
	// reads SQL text only up to the first NUL).
	ErrIncomplete = errors.New("incomplete SQL")
	// ErrRefused is returned when a statement does something walship does
	// not replicate (ATTACH, transaction control, a PRAGMA setting …). The
	// error says what and why.
	ErrRefused = errors.New("statement not allowed")
	// ErrWriteInQuery is returned when a query holds a statement that would
	// change the database.
	ErrWriteInQuery = errors.New("a query may not change the database; send it as a write")
	// ErrMultiple is returned when text that must hold one statement holds
	// more.
	ErrMultiple = errors.New("more than one statement")
	// ErrOtherLog is returned when entries of one log are applied to a
	// database that follows another log: that is another history.
	ErrOtherLog = errors.New("the database follows another log")
	// ErrGap is returned when entries do not follow the database's applied
	// index without a gap.
	ErrGap = errors.New("entries do not follow the applied index")
	// ErrTimeout is returned when a statement ran past its request's
	// Timeout and was stopped.
	ErrTimeout = errors.New("execute timeout")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("database closed")
)

// ApplyError is returned when an entry cannot be applied: on a slave this
// means its history has diverged from the master's.
type ApplyError struct {
	Index uint64 // the entry that failed
	Pos   int    // the statement of the entry that failed
	Err   error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("apply entry %d, statement %d: %v", e.Index, e.Pos, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// refused wraps ErrRefused with the reason the authorizer gave.
func refused(why string) error { return fmt.Errorf("%w: %s", ErrRefused, why) }
