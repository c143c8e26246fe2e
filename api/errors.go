package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/auth"
	"github.com/walship/walship/db"
	"github.com/walship/walship/feed"
	"github.com/walship/walship/master"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

var (
	// ErrBadRequest is returned when a request is malformed.
	ErrBadRequest = errors.New("bad request")
	// ErrForbidden is returned when a request is not this node's to take.
	ErrForbidden = errors.New("forbidden")
	// ErrTooLarge is returned when a request body exceeds the limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrNotMaster is returned for the feed on a node that is not the master.
	ErrNotMaster = errors.New("this node is not the master")
	// ErrQueryTimeout is returned when a read ran longer than the node's
	// QueryTimeout.
	ErrQueryTimeout = errors.New("query timeout")
	// ErrBodyTimeout is returned when a request's body did not arrive
	// within the server's ReadTimeout.
	ErrBodyTimeout = errors.New("request body not received in time")
	// ErrMasterUnreachable is returned when a slave cannot forward a write.
	ErrMasterUnreachable = errors.New("the master cannot be reached")
	// ErrSnapshotGone is returned when the snapshot about to be served was
	// replaced by a newer one: the client asks again.
	ErrSnapshotGone = errors.New("the snapshot was replaced")
)

// statusOf maps an error to its HTTP status: the one table of the API.
func statusOf(err error) int {
	var se *client.StatusError
	var sqlErr *db.Error
	switch {
	case errors.As(err, &se):
		return se.Status // a master's answer, passed through by a slave
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case diskFull(err):
		return http.StatusInsufficientStorage
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotMaster), errors.Is(err, ErrNoSnapshots), errors.Is(err, master.ErrNoCheck), errors.Is(err, ErrNoRoleSwitch),
		errors.Is(err, feed.ErrUnknownFollower):
		return http.StatusNotFound
	case errors.Is(err, ErrQueryTimeout), errors.Is(err, db.ErrTimeout), errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, ErrBadRequest), errors.Is(err, db.ErrParams), errors.Is(err, db.ErrIncomplete),
		errors.Is(err, db.ErrRefused), errors.Is(err, db.ErrWriteInQuery), errors.Is(err, db.ErrMultiple):
		return http.StatusBadRequest
	case errors.Is(err, db.ErrNotDatabase), errors.Is(err, db.ErrNoTable), errors.Is(err, db.ErrNotDumpable):
		return http.StatusBadRequest
	case errors.Is(err, master.ErrLogConflict), errors.Is(err, wal.ErrOutOfRange), errors.Is(err, feed.ErrFenced),
		errors.Is(err, feed.ErrDuplicateID),
		errors.Is(err, ErrRoleSwitch):
		return http.StatusConflict
	case errors.Is(err, master.ErrCompacted):
		return http.StatusGone
	case errors.Is(err, master.ErrStopped), errors.Is(err, master.ErrAppend), errors.Is(err, master.ErrHalted), errors.Is(err, master.ErrFenced),
		errors.Is(err, master.ErrNotLeading), errors.Is(err, ErrNotReplicated),
		errors.Is(err, ErrMasterUnreachable), errors.Is(err, ErrSnapshotGone),
		errors.Is(err, slave.ErrDiverged), errors.Is(err, db.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrNotApplied):
		return http.StatusGatewayTimeout
	case errors.As(err, &sqlErr):
		if sqlErr.IsClientError() {
			return http.StatusBadRequest
		}
		return http.StatusInternalServerError
	}
	return http.StatusInternalServerError
}

// StatusClientClosed is the status a request is counted with (in /metrics)
// when its client went away before the answer (nginx's 499): a client's
// Ctrl-C, a closed connection. Nothing reaches the client.
const StatusClientClosed = 499

// clientClosed reports whether err comes of the client going away (its
// request's context canceled) and, if so, records the request as
// StatusClientClosed and logs it at debug: the node did nothing wrong.
func (s *Server) clientClosed(w http.ResponseWriter, r *http.Request, err error) bool {
	if r.Context().Err() == nil || (err != nil && !errors.Is(err, context.Canceled)) {
		return false
	}
	s.logger.Debug("client went away before the answer", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	w.WriteHeader(StatusClientClosed)
	return true
}

// writeError answers err as JSON with its status; an error that comes of
// the client going away is not answered (clientClosed).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if s.clientClosed(w, r, err) {
		return
	}
	status := statusOf(err)
	body := client.ErrorResponse{Error: err.Error()}
	body.SQLiteCode, body.SQLiteExtendedCode, _ = sqliteCodes(err)
	var ce *master.CompactedError
	if errors.As(err, &ce) {
		body.SnapshotIndex, body.NewLogID = ce.Snapshot, ce.NewLogID
	}
	var fe *feed.ConflictError
	if errors.As(err, &fe) {
		body.Epoch, body.Fenced, body.SupersededFrom = fe.Epoch, errors.Is(fe.Err, feed.ErrFenced), fe.Superseded
		body.DuplicateID = errors.Is(fe.Err, feed.ErrDuplicateID)
	}
	var se *client.StatusError
	if errors.As(err, &se) {
		body.Error, body.Master = se.Msg, se.Master
		body.SQLiteCode, body.SQLiteExtendedCode = se.SQLiteCode, se.SQLiteExtendedCode
		body.SnapshotIndex, body.NewLogID = se.SnapshotIndex, se.NewLogID
	}
	if status >= 500 {
		// A failure of the node repeats with every request until it is
		// mended: once a kind, then a count (repeatlog).
		s.failures.Log(s.logger, slog.LevelWarn, strconv.Itoa(status)+" "+r.URL.Path, "request failed",
			"method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, body)
}

// diskFull reports whether err says the disk is full, or almost: SQLite's
// SQLITE_FULL, ENOSPC from the log, the master's --min-free-space.
func diskFull(err error) bool {
	var se *db.Error
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, master.ErrDiskLow) || errors.Is(err, snapshot.ErrNoSpace) ||
		(errors.As(err, &se) && se.DiskFull())
}

// sqliteCodes returns SQLite's primary and extended result codes of err,
// when SQLite reported it.
func sqliteCodes(err error) (code, extended int, ok bool) {
	var se *db.Error
	if !errors.As(err, &se) {
		return 0, 0, false
	}
	return int(se.Primary()), int(se.Code), true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONIndent(w, status, v, false)
}

// writeJSONPretty is writeJSON indented by four spaces (as rqlite's
// ?pretty) when the request has ?pretty.
func writeJSONPretty(w http.ResponseWriter, r *http.Request, status int, v any) {
	_, pretty := r.URL.Query()["pretty"]
	writeJSONIndent(w, status, v, pretty)
}

func writeJSONIndent(w http.ResponseWriter, status int, v any, indent bool) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "    ")
	}
	_ = enc.Encode(v)
}
