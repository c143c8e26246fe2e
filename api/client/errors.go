package client

import (
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrBadRequest is returned when the node refused the request as
	// malformed or not allowed (HTTP 400, 413).
	ErrBadRequest = errors.New("bad request")
	// ErrForbidden is returned when the node refused the request as not its
	// to take (HTTP 403): a schema statement sent to a slave, is_master.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound is returned for an unknown path (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when the feed refused the request because the
	// slave follows another history (HTTP 409).
	ErrConflict = errors.New("log conflict")
	// ErrUnavailable is returned when the node cannot serve now (HTTP 503).
	ErrUnavailable = errors.New("unavailable")
	// ErrCorruptFeed is returned when a feed answer cannot be decoded.
	ErrCorruptFeed = errors.New("corrupt feed answer")
	// ErrGone is returned when the feed no longer holds the entries asked
	// for (HTTP 410): they are in the master's snapshot.
	ErrGone = errors.New("entries compacted away")
)

// StatusError is an error answer of a node: its HTTP status and message.
type StatusError struct {
	Status int
	Msg    string
	// Master is the master's URL, when a slave named it.
	Master string
	// SQLiteCode and SQLiteExtendedCode are SQLite's primary and extended
	// result codes, when SQLite refused the statement; 0 otherwise.
	SQLiteCode, SQLiteExtendedCode int
	// SnapshotIndex is the master's snapshot index on a 410.
	SnapshotIndex uint64
	// NewLogID is the master's new log on a 410 for a history it left.
	NewLogID string
	// Epoch, Fenced and SupersededFrom are the feed's 409
	// (ErrorResponse).
	Epoch          uint64
	Fenced         bool
	SupersededFrom uint64
	DuplicateID    bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// Unwrap maps the status back to the sentinel, so that errors.Is works.
func (e *StatusError) Unwrap() error {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return ErrBadRequest
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusGone:
		return ErrGone
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}
