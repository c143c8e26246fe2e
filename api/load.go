package api

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

func (s *Server) registerLoadRoutes(r *mux.Router) {
	r.HandleFunc("/db/load", s.handleLoad).Methods(http.MethodPost)
}

// handleLoad serves POST /db/load, rqlite's: the body is a SQLite file
// (told by its header) or a SQL dump as text.
//
// A SQLite file replaces the database: it is received to a temporary file,
// checked whole (integrity_check), and installed by the master as a new
// history (master.Load); the answer is {"results":[]} with the index it
// holds in X-Walship-Index. A file that is not a valid database is
// answered 400 and the database is unchanged.
//
// A dump is run as one all-or-nothing write on the current database, as
// rqlite does: its framing (PRAGMA foreign_keys=OFF, BEGIN … COMMIT) is
// understood, and a statement that fails fails the whole load (400, with
// the results up to it). A dump larger than a request body is refused
// (413): walship load FILE sends one in chunks.
//
// Only the master loads; a slave refuses with the master's URL.
func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	start := time.Now()
	if rl.sl != nil {
		s.writeError(w, r, &client.StatusError{Status: http.StatusForbidden, Master: rl.sl.MasterURL(),
			Msg: "a load replaces the master's database: send it to the master, " + rl.sl.MasterURL()})
		return
	}
	p, err := parseRqParams(r)
	if err != nil {
		s.writeRqError(w, r, err)
		return
	}
	// A database file takes longer to arrive than a request.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	br := bufio.NewReaderSize(r.Body, 64<<10)
	head, _ := br.Peek(16)
	if !db.IsSQLiteHeader(head) {
		s.loadDump(w, r, p, br, start)
		return
	}
	tmp := filepath.Join(filepath.Dir(s.db().Path()), fmt.Sprintf("load-%d.tmp", time.Now().UnixNano()))
	if s.Snapshots != nil {
		tmp = s.Snapshots.TempPath("load")
	}
	defer os.Remove(tmp) // Load takes the file, or it goes
	n, err := receiveFile(tmp, br)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("load: receive the file: %w", err))
		return
	}
	if err := db.CheckFile(r.Context(), tmp); err != nil {
		s.writeError(w, r, fmt.Errorf("%w: load: %w", ErrBadRequest, err))
		return
	}
	index, err := rl.m.Load(r.Context(), tmp)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("load: %w", err))
		return
	}
	s.logger.Info("database loaded", "bytes", n, "index", index, "took", time.Since(start).Round(time.Millisecond))
	w.Header().Set(client.HeaderIndex, strconv.FormatUint(index, 10))
	w.Header().Set(client.HeaderLogID, rl.m.Log().ID())
	writeRq(w, p, rqResponse{Results: []any{}, Time: seconds(time.Since(start), p.opts.timings)})
}

// receiveFile writes r to a new file at path, fsynced.
func receiveFile(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// loadDump runs a SQL dump as one transaction on the master.
func (s *Server) loadDump(w http.ResponseWriter, r *http.Request, p *rqParams, body io.Reader, start time.Time) {
	rl := s.roles()
	text, err := io.ReadAll(io.LimitReader(body, s.MaxBody+1))
	if err != nil {
		s.writeRqError(w, r, badRequest("reading the body: "+err.Error()))
		return
	}
	if int64(len(text)) > s.MaxBody {
		s.writeError(w, r, fmt.Errorf("%w: a SQL dump larger than %d bytes is not loaded in one request: send it with `walship load FILE` (in all-or-nothing chunks), or load it as a SQLite file", ErrTooLarge, s.MaxBody))
		return
	}
	if len(text) == 0 {
		s.writeError(w, r, fmt.Errorf("%w: the body is empty: send a SQLite file or a SQL dump", ErrBadRequest))
		return
	}
	plan := planRq([]rqElement{{sql: string(text)}})
	plan.frame()
	shape := func(res db.Result) bool { return len(res.Columns) > 0 && res.Changed }
	for _, err := range plan.splitErr {
		writeRqStatus(w, p, http.StatusBadRequest, rqResponse{Results: plan.results(nil, shape, p.opts, true),
			Error: "load: not valid SQL: " + err.Error()})
		return
	}
	if len(plan.stmts) == 0 {
		if len(plan.framed) > 0 { // the dump of an empty database
			w.Header().Set(client.HeaderIndex, strconv.FormatUint(rl.m.DB().AppliedIndex(), 10))
			writeRq(w, p, rqResponse{Results: plan.results(nil, shape, p.opts, true), Time: seconds(time.Since(start), p.opts.timings)})
			return
		}
		s.writeError(w, r, fmt.Errorf("%w: the body holds no SQL statement", ErrBadRequest))
		return
	}
	res := s.execute(r.Context(), rl.m, db.Request{Statements: plan.stmts, Txn: true, NoForeignKeys: plan.noFK, Timeout: p.dbTimeout})
	if res.Err != nil {
		s.writeRqError(w, r, res.Err)
		return
	}
	w.Header().Set(client.HeaderIndex, strconv.FormatUint(res.Index, 10))
	resp := rqResponse{Results: plan.results(res.Results, shape, p.opts, true), Time: seconds(time.Since(start), p.opts.timings)}
	if res.Outcome.Err != nil {
		resp.Error = "load: nothing was loaded: " + res.Outcome.Err.Error()
		writeRqStatus(w, p, statusOf(res.Outcome.Err), resp)
		return
	}
	writeRq(w, p, resp)
}
