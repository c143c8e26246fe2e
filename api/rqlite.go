package api

// rqlite's HTTP API (RQLITE_API.md): /db/execute, /db/query, /db/request,
// so that rqlite's clients work against walship unchanged. rqlite's leader
// is walship's master, raft_index is the log index.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/wal"
)

// errWriteInQuery is rqlite's per-result error for a write sent as a query.
const errWriteInQuery = "attempt to change database via query operation"

func (s *Server) registerRqliteRoutes(r *mux.Router) {
	r.HandleFunc("/db/execute", s.handleRqExecute).Methods(http.MethodPost)
	r.HandleFunc("/db/query", s.handleRqQuery).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/db/request", s.handleRqRequest).Methods(http.MethodPost)
}

// rqParams are the query-string flags of a /db/* request. A flag is set
// when its key is present, whatever its value (rqlite's HasKey).
type rqParams struct {
	q          map[string][]string
	opts       rqOptions
	pretty     bool
	txn        bool
	level      string
	freshness  time.Duration
	queue      bool
	wait       bool
	redirect   bool
	raftIndex  bool
	timeout    time.Duration
	dbTimeout  time.Duration
	hasFresh   bool
	hasTimeout bool
	minIndex   uint64  // the read token, 0 without one
	w          concern // the write concern: slaves that must hold a write
}

// tokenWait bounds the wait for a read token: ?timeout, or 5s.
func (p *rqParams) tokenWait() time.Duration {
	if p.hasTimeout {
		return p.timeout
	}
	return defaultTokenWait
}

func (p *rqParams) has(k string) bool { _, ok := p.q[k]; return ok }

func (p *rqParams) get(k string) string {
	if v := p.q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// errText is a 400 answered with a text body, as rqlite's http.Error.
type errText struct {
	status int
	msg    string
}

func (e *errText) Error() string { return e.msg }

func badRequest(msg string) error { return &errText{http.StatusBadRequest, msg} }

func parseRqParams(r *http.Request) (*rqParams, error) {
	p := &rqParams{q: r.URL.Query(), timeout: 30 * time.Second}
	p.opts = rqOptions{timings: p.has("timings"), associative: p.has("associative"), blobArray: p.has("blob_array")}
	p.pretty, p.txn, p.queue, p.wait = p.has("pretty"), p.has("transaction"), p.has("queue"), p.has("wait")
	p.redirect, p.raftIndex = p.has("redirect"), p.has("raft_index")
	switch lv := strings.ToLower(p.get("level")); lv {
	case "none", "weak", "linearizable", "strong", "auto":
		p.level = lv
	default:
		p.level = "weak"
	}
	dur := func(name string, dst *time.Duration) (bool, error) {
		if !p.has(name) {
			return false, nil
		}
		d, err := time.ParseDuration(p.get(name))
		if err != nil || d < 0 {
			return false, badRequest(name + " is not a valid duration")
		}
		*dst = d
		return true, nil
	}
	var err error
	if p.hasTimeout, err = dur("timeout", &p.timeout); err != nil {
		return nil, err
	}
	if p.hasFresh, err = dur("freshness", &p.freshness); err != nil {
		return nil, err
	}
	if _, err = dur("db_timeout", &p.dbTimeout); err != nil {
		return nil, err
	}
	var lin time.Duration
	if _, err = dur("linearizable_timeout", &lin); err != nil {
		return nil, err
	}
	if p.has("retries") {
		if _, err := strconv.Atoi(p.get("retries")); err != nil {
			return nil, badRequest("retries is not a valid integer")
		}
	}
	if p.minIndex, err = minIndex(r); err != nil {
		return nil, err
	}
	var w *int
	if p.has("w") {
		n, err := strconv.Atoi(p.get("w"))
		if err != nil {
			return nil, badRequest("w is not a valid number of replicas")
		}
		w = &n
	}
	if p.w, err = parseConcern(w, p.has("applied")); err != nil {
		return nil, err
	}
	if p.has("freshness_strict") && !p.hasFresh {
		return nil, badRequest("freshness_strict requires freshness")
	}
	return p, nil
}

// rqElement is one element of a request body: SQL text (which may hold
// several statements) and its parameters.
type rqElement struct {
	sql    string
	params []wal.Param
}

// parseRqBody reads a /db/* body: text/plain SQL, or a JSON array whose
// elements are strings or [sql, params…] arrays (RQLITE_API.md §1.2).
func parseRqBody(r *http.Request, body []byte) ([]rqElement, error) {
	if r.Method == http.MethodGet {
		if !hasQueryKey(r, "q") {
			return nil, badRequest("query parameter not set")
		}
		q := r.URL.Query().Get("q")
		if q == "" {
			return nil, badRequest("query parameter not set")
		}
		return []rqElement{{sql: q}}, nil
	}
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(strings.ToLower(ct), "text/plain") {
		return []rqElement{{sql: string(body)}}, nil
	}
	// One pass over the body: a JSON array whose elements are strings
	// (or null, an empty statement) or arrays of a string and parameters.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil || len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) != 0 {
		return nil, badRequest("invalid JSON body")
	}
	if top == nil {
		return nil, badRequest("no statements")
	}
	raw, ok := top.([]any)
	if !ok {
		// As rqlite: a value that encoding/json cannot hold in an any
		// (a number beyond float64) is invalid JSON.
		var v any
		if json.Unmarshal(body, &v) != nil {
			return nil, badRequest("invalid JSON body")
		}
		return nil, badRequest("invalid request")
	}
	if len(raw) == 0 {
		return nil, badRequest("no statements")
	}
	out := make([]rqElement, 0, len(raw))
	for _, m := range raw {
		var arr []any
		switch v := m.(type) {
		case string:
			out = append(out, rqElement{sql: v})
			continue
		case nil:
			out = append(out, rqElement{})
			continue
		case []any:
			arr = v
		}
		if len(arr) == 0 {
			return nil, badRequest("invalid request")
		}
		sql, ok := arr[0].(string)
		if !ok {
			return nil, badRequest("invalid request")
		}
		el := rqElement{sql: sql}
		for _, a := range arr[1:] {
			if obj, ok := a.(map[string]any); ok {
				for k, v := range obj {
					val, err := rqParam(v)
					if err != nil {
						return nil, err
					}
					el.params = append(el.params, wal.Param{Name: k, Value: val})
				}
				continue
			}
			val, err := rqParam(a)
			if err != nil {
				return nil, err
			}
			el.params = append(el.params, wal.Param{Value: val})
		}
		if len(el.params) > maxParams {
			return nil, badRequest(fmt.Sprintf("too many parameters: %d, at most %d", len(el.params), maxParams))
		}
		out = append(out, el)
	}
	return out, nil
}

func hasQueryKey(r *http.Request, k string) bool { _, ok := r.URL.Query()[k]; return ok }

// rqParam converts one parameter as rqlite's makeParameter does.
func rqParam(v any) (wal.Value, error) {
	switch x := v.(type) {
	case string:
		if len(x) >= 3 && (x[0] == 'x' || x[0] == 'X') && x[1] == '\'' && x[len(x)-1] == '\'' {
			if b, err := hex.DecodeString(x[2 : len(x)-1]); err == nil {
				return wal.Blob(b), nil
			}
		}
		return wal.Text(x), nil
	case nil, bool, json.Number:
		return jsonValue(v)
	case []any:
		if val, err := jsonValue(v); err == nil {
			return val, nil
		}
	}
	return wal.Value{}, badRequest(fmt.Sprintf("unsupported type %T", v))
}

// rqPlan is a parsed /db/* request: its statements, flattened, and which
// element each belongs to.
type rqPlan struct {
	elems  []rqElement
	stmts  []wal.Statement
	elemOf []int
	// splitErr holds, per element, an error found while splitting it.
	splitErr map[int]error
	// framed holds the elements that held a dump's framing statements
	// (frame), which are not run; txn and noFK are what the framing says.
	framed    map[int]bool
	txn, noFK bool
}

// frame takes a dump's framing statements (db.Frame) out of a write
// request's statements.
func (p *rqPlan) frame() {
	texts := make([]string, len(p.stmts))
	for i, st := range p.stmts {
		texts[i] = st.SQL
	}
	f := db.Frame(texts)
	if len(f.Skip) == 0 {
		return
	}
	p.txn, p.noFK, p.framed = f.Txn, f.NoForeignKeys, map[int]bool{}
	stmts, elemOf := p.stmts[:0:0], p.elemOf[:0:0]
	for i, st := range p.stmts {
		if f.Skip[i] {
			p.framed[p.elemOf[i]] = true
			continue
		}
		stmts, elemOf = append(stmts, st), append(elemOf, p.elemOf[i])
	}
	p.stmts, p.elemOf = stmts, elemOf
}

func planRq(elems []rqElement) *rqPlan {
	p := &rqPlan{elems: elems}
	fail := func(i int, err error) {
		if p.splitErr == nil {
			p.splitErr = map[int]error{}
		}
		p.splitErr[i] = err
	}
	for i, el := range elems {
		texts, err := db.Split(el.sql)
		if err != nil {
			fail(i, err)
			continue
		}
		if len(texts) > 1 && len(el.params) > 0 {
			fail(i, errors.New("parameters are accepted only with a single statement"))
			continue
		}
		for _, t := range texts {
			st := wal.Statement{SQL: t, Pos: uint32(len(p.stmts)), Params: el.params}
			p.stmts = append(p.stmts, st)
			p.elemOf = append(p.elemOf, i)
		}
	}
	return p
}

// results maps statement results back to elements: one result per element
// that had a statement, the element's last statement's result, or its first
// error. With stopAtError, elements after the first error get none.
func (p *rqPlan) results(res []db.Result, rowsShape func(db.Result) bool, o rqOptions, stopAtError bool) []any {
	count := make([]int, len(p.elems))
	for _, e := range p.elemOf {
		count[e]++
	}
	out := []any{}
	ri := 0
	for i := range p.elems {
		if err, ok := p.splitErr[i]; ok {
			out = append(out, rqError(err.Error(), err, rowsShape(db.Result{}), o))
			if stopAtError {
				return out
			}
			continue
		}
		if count[i] == 0 {
			if p.framed[i] {
				out = append(out, rqWriteResult(db.Result{}, o)) // BEGIN, COMMIT …: done
			}
			continue // an empty statement gives no result
		}
		if ri >= len(res) {
			return out // not run: a transaction stopped before it
		}
		var failed error
		last := ri
		for k := 0; k < count[i] && ri < len(res); k++ {
			if res[ri].Err != nil && failed == nil {
				failed = res[ri].Err
			}
			last = ri
			ri++
		}
		switch {
		case failed != nil:
			out = append(out, rqError(rqErrorText(failed), failed, rowsShape(res[last]), o))
			if stopAtError {
				return out
			}
		case rowsShape(res[last]):
			out = append(out, rqRowsResult(res[last], o))
		default:
			out = append(out, rqWriteResult(res[last], o))
		}
	}
	return out
}

// rqErrorText is the per-result error message.
func rqErrorText(err error) string {
	if errors.Is(err, db.ErrWriteInQuery) {
		return errWriteInQuery
	}
	if errors.Is(err, db.ErrTimeout) {
		return "execute timeout"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "query timeout"
	}
	return err.Error()
}

// readBody reads a request body up to the limit.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readBodyLimit(w, r, s.MaxBody)
}

func readBodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &errText{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: the limit is %d bytes", mbe.Limit)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &errText{statusOf(ErrBodyTimeout), ErrBodyTimeout.Error() + ": " + err.Error()}
		}
		return nil, badRequest("reading the body: " + err.Error())
	}
	return body, nil
}

// writeRq answers a /db/* response, as rqlite encodes it: HTML characters
// not escaped, four spaces with ?pretty, no trailing newline.
func writeRq(w http.ResponseWriter, p *rqParams, resp rqResponse) {
	writeRqStatus(w, p, http.StatusOK, resp)
}

// writeRqStatus is writeRq with another status.
func writeRqStatus(w http.ResponseWriter, p *rqParams, status int, resp rqResponse) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if p != nil && p.pretty {
		enc.SetIndent("", "    ")
	}
	if err := enc.Encode(resp); err != nil {
		http.Error(w, "encode answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// writeRqError answers an error that is not a per-statement one.
func (s *Server) writeRqError(w http.ResponseWriter, r *http.Request, err error) {
	var et *errText
	if errors.As(err, &et) {
		http.Error(w, et.msg, et.status)
		return
	}
	s.writeError(w, r, err)
}

// rqRequest reads a /db/* request's flags and body (a GET has none); false
// when it answered an error.
func (s *Server) rqRequest(w http.ResponseWriter, r *http.Request) (*rqParams, []byte, bool) {
	p, err := parseRqParams(r)
	if err != nil {
		s.writeRqError(w, r, err)
		return nil, nil, false
	}
	var body []byte
	if r.Method != http.MethodGet {
		if body, err = s.readBody(w, r); err != nil {
			s.writeRqError(w, r, err)
			return nil, nil, false
		}
	}
	return p, body, true
}

func (s *Server) handleRqExecute(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	start := time.Now()
	p, body, ok := s.rqRequest(w, r)
	if !ok {
		return
	}
	if p.queue {
		s.handleQueue(w, r, p, body, start)
		return
	}
	if rl.sl != nil {
		s.forwardRq(w, r, p, body, true)
		return
	}
	elems, err := parseRqBody(r, body)
	if err != nil {
		s.writeRqError(w, r, err)
		return
	}
	s.masterWrite(w, r, p, elems, start, func(res db.Result) bool { return len(res.Columns) > 0 && res.Changed })
}

// masterWrite runs elems as one write request on the master.
func (s *Server) masterWrite(w http.ResponseWriter, r *http.Request, p *rqParams, elems []rqElement, start time.Time, rowsShape func(db.Result) bool) {
	rl := s.roles()
	plan := planRq(elems)
	plan.frame()
	txn := p.txn || plan.txn
	if len(plan.splitErr) > 0 && txn {
		// A transaction with a statement that cannot be split runs none.
		writeRq(w, p, rqResponse{Results: plan.results(nil, rowsShape, p.opts, true), Time: seconds(time.Since(start), p.opts.timings)})
		return
	}
	var res master.Result
	if len(plan.stmts) > 0 {
		res = s.execute(r.Context(), rl.m, db.Request{Statements: plan.stmts, Txn: txn, NoForeignKeys: plan.noFK, Timeout: p.dbTimeout})
		if res.Err != nil {
			s.writeRqError(w, r, res.Err)
			return
		}
	} else {
		res.Index = rl.m.DB().AppliedIndex()
	}
	w.Header().Set(client.HeaderIndex, strconv.FormatUint(res.Index, 10))
	resp := rqResponse{Results: plan.results(res.Results, rowsShape, p.opts, txn), Time: seconds(time.Since(start), p.opts.timings)}
	if p.raftIndex && len(res.Logged) > 0 {
		resp.RaftIndex = res.Index
	}
	if len(res.Logged) > 0 {
		resp.Replicas = s.awaitReplicas(r.Context(), w.Header(), res.Index, p.w, p.tokenWait())
	}
	writeRq(w, p, resp)
}

func (s *Server) handleRqQuery(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	start := time.Now()
	p, body, ok := s.rqRequest(w, r)
	if !ok {
		return
	}
	// A read token (min_index) makes the read local, once the node has
	// applied the write it names; strong and linearizable reads go to the
	// master still.
	if rl.sl != nil && p.level != "none" && p.level != "auto" && (p.minIndex == 0 || p.level == "strong" || p.level == "linearizable") {
		s.forwardRq(w, r, p, body, false)
		return
	}
	if err := s.waitApplied(r.Context(), p.minIndex, p.tokenWait()); err != nil {
		s.writeRqError(w, r, err)
		return
	}
	elems, err := parseRqBody(r, body)
	if err != nil {
		s.writeRqError(w, r, err)
		return
	}
	if stale := s.staleRead(p); stale {
		writeRq(w, p, rqResponse{Results: []any{}, Error: "stale read"})
		return
	}
	if err := s.haltedRead(p); err != nil {
		s.writeRqError(w, r, err)
		return
	}
	s.localQuery(w, r, p, elems, start)
}

// haltedRead refuses a read at a level that promises every acknowledged
// write (strong, linearizable) on a master whose database lacks entries
// its log holds (halted), or that may not be the master any more (fenced,
// or its failover lease uncertain).
func (s *Server) haltedRead(p *rqParams) error {
	rl := s.roles()
	if rl.m == nil || (p.level != "strong" && p.level != "linearizable") {
		return nil
	}
	if err := rl.m.Err(); err != nil {
		return fmt.Errorf("%w: %w; a read at level %s could miss an acknowledged write", master.ErrHalted, err, p.level)
	}
	// A master that was replaced, or cannot be sure it was not (its
	// failover lease is uncertain), may miss writes a newer master took.
	if err := rl.m.Leads(); err != nil {
		return fmt.Errorf("%w; a read at level %s could miss writes a newer master acknowledged", err, p.level)
	}
	return nil
}

// staleRead reports whether a slave has not been caught up with the master
// within ?freshness.
func (s *Server) staleRead(p *rqParams) bool {
	rl := s.roles()
	if rl.sl == nil || !p.hasFresh {
		return false
	}
	st := rl.sl.Status()
	return st.LastCaughtUp.IsZero() || time.Since(st.LastCaughtUp) > p.freshness
}

// localQuery runs read statements on this node, each on its own, with a
// per-statement error.
func (s *Server) localQuery(w http.ResponseWriter, r *http.Request, p *rqParams, elems []rqElement, start time.Time) {
	plan := planRq(elems)
	results := make([]db.Result, 0, len(plan.stmts))
	all, cancelAll := s.queryContext(r.Context(), 0)
	defer cancelAll()
	for _, st := range plan.stmts {
		ctx, cancel := all, context.CancelFunc(func() {})
		if p.dbTimeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, p.dbTimeout)
		}
		res, err := s.db().Query(ctx, []wal.Statement{st})
		cancel()
		if err != nil {
			if s.clientClosed(w, r, nil) {
				return
			}
			results = append(results, db.Result{Err: err})
			if p.txn {
				break
			}
			continue
		}
		results = append(results, res[0])
	}
	if err := s.replicatedRead(r.Context(), p); err != nil {
		s.writeRqError(w, r, err)
		return
	}
	rows := func(db.Result) bool { return true }
	writeRq(w, p, rqResponse{Results: plan.results(results, rows, p.opts, p.txn), Time: seconds(time.Since(start), p.opts.timings)})
}

// replicatedRead holds a read at level strong or linearizable on the
// master until Server.ReadReplicas slaves hold, fsynced, every write the
// read may have seen (the master applies a write before its slaves have
// it): a failover could lose a write no slave holds, and a read that saw
// it would then have seen what never was.
func (s *Server) replicatedRead(ctx context.Context, p *rqParams) error {
	rl := s.roles()
	n := s.ReadReplicas
	if rl.m == nil || n <= 0 || (p.level != "strong" && p.level != "linearizable") {
		return nil
	}
	index := rl.m.DB().AppliedIndex()
	wctx, cancel := context.WithTimeout(ctx, p.tokenWait())
	defer cancel()
	if got := rl.m.WaitReplicas(wctx, index, n, false); got < n {
		return fmt.Errorf("%w: the read saw writes up to index %d, which %d of the %d slaves asked for hold; a failover now could lose them: retry",
			ErrNotReplicated, index, got, n)
	}
	return nil
}

func (s *Server) handleRqRequest(w http.ResponseWriter, r *http.Request) {
	rl := s.roles()
	start := time.Now()
	p, body, ok := s.rqRequest(w, r)
	if !ok {
		return
	}
	// /db/request always reads JSON.
	r.Header.Del("Content-Type")
	elems, err := parseRqBody(r, body)
	if err != nil {
		s.writeRqError(w, r, err)
		return
	}
	readOnly := true
	plan := planRq(elems)
	plan.frame()
	for _, st := range plan.stmts {
		if cl, err := s.db().Classify(r.Context(), st.SQL); err != nil || cl.Write {
			readOnly = false
			break
		}
	}
	local := readOnly && (rl.m != nil || p.level == "none" || p.level == "auto" ||
		(p.minIndex > 0 && p.level != "strong" && p.level != "linearizable"))
	switch {
	case local:
		if err := s.waitApplied(r.Context(), p.minIndex, p.tokenWait()); err != nil {
			s.writeRqError(w, r, err)
			return
		}
		if s.staleRead(p) {
			writeRq(w, p, rqResponse{Results: []any{}, Error: "stale read"})
			return
		}
		if err := s.haltedRead(p); err != nil {
			s.writeRqError(w, r, err)
			return
		}
		s.localQuery(w, r, p, elems, start)
	case rl.sl != nil:
		s.forwardRq(w, r, p, body, !readOnly)
	default:
		s.masterWrite(w, r, p, elems, start, func(res db.Result) bool { return len(res.Columns) > 0 })
	}
}
