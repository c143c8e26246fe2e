package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/auth"
	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// maxParams is SQLite's limit of host parameters in one statement.
const maxParams = 32766

// maxStatements bounds the statements of one request.
const maxStatements = 10000

func (s *Server) registerSeedRoutes(r *mux.Router) {
	r.HandleFunc("/", s.handleSeed).Methods(http.MethodPost)
}

// handleSeed serves the seed-compatible POST /.
func (s *Server) handleSeed(w http.ResponseWriter, r *http.Request) {
	req, stmts, noFK, err := s.parseSeed(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	perm := auth.PermExecute
	if req.Command == "query" {
		perm = auth.PermQuery
	}
	if err := s.authorize(r, perm); err != nil {
		s.writeError(w, r, err)
		return
	}
	var resp *client.SeedResponse
	if req.Command == "query" {
		if err := s.waitApplied(r.Context(), req.MinIndex, defaultTokenWait); err != nil {
			s.writeError(w, r, err)
			return
		}
		resp, err = s.seedQuery(r, stmts, req.BlobArray)
	} else {
		resp, err = s.seedExec(r, req, stmts, noFK)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseSeed reads and checks a seed request and splits its SQL. In an exec,
// a dump's framing (db.Frame) is taken out: noFK says it turned foreign
// keys off.
func (s *Server) parseSeed(w http.ResponseWriter, r *http.Request) (_ *client.SeedRequest, _ []wal.Statement, noFK bool, _ error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, nil, false, fmt.Errorf("%w: the limit is %d bytes", ErrTooLarge, mbe.Limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, nil, false, fmt.Errorf("%w: %v", ErrBodyTimeout, err)
		}
		return nil, nil, false, fmt.Errorf("%w: reading the body: %v", ErrBadRequest, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, false, fmt.Errorf(`%w: empty body; send {"command":"exec"|"query","query":"SQL"}`, ErrBadRequest)
	}
	// encoding/json would turn each invalid byte into U+FFFD, and the
	// write would store other text than the client sent.
	if at := invalidUTF8(body); at >= 0 {
		return nil, nil, false, fmt.Errorf("%w: the body is not valid UTF-8 (byte %d); JSON text must be", ErrBadRequest, at)
	}
	var req client.SeedRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, client.ErrParamsShape) {
			return nil, nil, false, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		return nil, nil, false, fmt.Errorf(`%w: malformed JSON: %v; send {"command":"exec"|"query","query":"SQL"}`, ErrBadRequest, err)
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return nil, nil, false, fmt.Errorf("%w: more than one JSON value, or unexpected data after the JSON value", ErrBadRequest)
	}
	if req.IsMaster {
		return nil, nil, false, fmt.Errorf("%w: is_master is not accepted from clients: slaves pull the master's log, nothing pushes to them", ErrForbidden)
	}
	if _, err := parseConcern(req.W, req.Applied); err != nil {
		return nil, nil, false, fmt.Errorf("%w: %s", ErrBadRequest, err.Error())
	}
	if req.Command != "exec" && req.Command != "query" {
		return nil, nil, false, fmt.Errorf(`%w: unknown command %q; use "exec" or "query"`, ErrBadRequest, req.Command)
	}
	texts, err := db.Split(req.Query)
	if err != nil {
		return nil, nil, false, err
	}
	var frame db.Framing
	if req.Command == "exec" {
		frame = db.Frame(texts)
	}
	if len(texts) == len(frame.Skip) {
		return nil, nil, false, fmt.Errorf("%w: no SQL statement in query", ErrBadRequest)
	}
	if len(texts) > maxStatements {
		return nil, nil, false, fmt.Errorf("%w: %d statements; at most %d in one request", ErrBadRequest, len(texts), maxStatements)
	}
	nparams := len(req.Params) + len(req.Named)
	if nparams > 0 && len(texts) > 1 {
		return nil, nil, false, fmt.Errorf("%w: parameters are accepted only with a single statement; this query holds %d", ErrBadRequest, len(texts))
	}
	if nparams > maxParams {
		return nil, nil, false, fmt.Errorf("%w: %d parameters; at most %d", ErrBadRequest, nparams, maxParams)
	}
	params, err := jsonParams(req.Params)
	if err != nil {
		return nil, nil, false, err
	}
	if req.Named != nil {
		if params, err = jsonNamedParams(req.Named); err != nil {
			return nil, nil, false, err
		}
	}
	stmts := make([]wal.Statement, 0, len(texts))
	for i, t := range texts {
		if !frame.Skip[i] {
			stmts = append(stmts, wal.Statement{SQL: t, Pos: uint32(i)})
		}
	}
	if len(params) > 0 {
		stmts[0].Params = params
	}
	return &req, stmts, frame.NoForeignKeys, nil
}

// invalidUTF8 returns the offset of the first byte of b that is not valid
// UTF-8, or -1.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// jsonParams converts positional JSON parameters to typed values: an
// integral number is an INTEGER, another number a REAL, a string TEXT, null
// NULL, true/false 1/0, an array of byte values a BLOB.
func jsonParams(in []any) ([]wal.Param, error) {
	out := make([]wal.Param, len(in))
	for i, v := range in {
		val, err := jsonValue(v)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %d: %v", ErrBadRequest, i+1, err)
		}
		out[i] = wal.Param{Value: val}
	}
	return out, nil
}

// jsonNamedParams converts named JSON parameters, {"name": value}, typed
// as jsonParams types them. A name binds :name, @name or $name in the SQL
// (a name given with its prefix binds the same); they are ordered by name,
// so that the log holds the same entry whatever the order sent.
func jsonNamedParams(in map[string]any) ([]wal.Param, error) {
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]wal.Param, 0, len(in))
	seen := make(map[string]string, len(in))
	for _, k := range names {
		name := strings.TrimLeft(k, ":@$")
		if name == "" {
			return nil, fmt.Errorf(`%w: parameter name %q: give it as in the SQL, without or with its prefix (":name", "@name" or "$name" all bind {"name": value})`, ErrBadRequest, k)
		}
		if first, ok := seen[name]; ok {
			return nil, fmt.Errorf("%w: parameters %q and %q name the same parameter", ErrBadRequest, first, k)
		}
		seen[name] = k
		val, err := jsonValue(in[k])
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q: %v", ErrBadRequest, k, err)
		}
		out = append(out, wal.Param{Name: name, Value: val})
	}
	return out, nil
}

func jsonValue(v any) (wal.Value, error) {
	switch x := v.(type) {
	case nil:
		return wal.Null(), nil
	case bool:
		if x {
			return wal.Integer(1), nil
		}
		return wal.Integer(0), nil
	case string:
		return wal.Text(x), nil
	case json.Number:
		if !strings.ContainsAny(string(x), ".eE") {
			if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
				return wal.Integer(n), nil
			}
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return wal.Value{}, fmt.Errorf("number %s is out of range", x)
		}
		return wal.Real(f), nil
	case []any:
		b := make([]byte, len(x))
		for j, e := range x {
			n, ok := e.(json.Number)
			if !ok {
				return wal.Value{}, errors.New("an array parameter must hold byte values 0..255 (a BLOB)")
			}
			k, err := strconv.ParseInt(string(n), 10, 64)
			if err != nil || k < 0 || k > 255 {
				return wal.Value{}, errors.New("an array parameter must hold byte values 0..255 (a BLOB)")
			}
			b[j] = byte(k)
		}
		return wal.Blob(b), nil
	}
	return wal.Value{}, fmt.Errorf("unsupported parameter type %T; use a number, string, null, boolean or array of bytes", v)
}

func (s *Server) seedQuery(r *http.Request, stmts []wal.Statement, blobArray bool) (*client.SeedResponse, error) {
	index := s.db().AppliedIndex()
	ctx, cancel := s.queryContext(r.Context(), 0)
	defer cancel()
	results, err := s.db().Query(ctx, stmts)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
			return nil, fmt.Errorf("%w: the query ran longer than %s and was stopped", ErrQueryTimeout, s.QueryTimeout)
		}
		return nil, err
	}
	resp := &client.SeedResponse{Index: index}
	if len(results) > 0 {
		fillRows(resp, results[len(results)-1], blobArray)
	}
	return resp, nil
}

func (s *Server) seedExec(r *http.Request, req *client.SeedRequest, stmts []wal.Statement, noFK bool) (*client.SeedResponse, error) {
	rl := s.roles()
	if rl.sl != nil {
		return s.forwardExec(r, req, stmts)
	}
	res := s.execute(r.Context(), rl.m, db.Request{Statements: stmts, Txn: true, NoForeignKeys: noFK})
	if res.Err != nil {
		return nil, res.Err
	}
	if res.Outcome.Err != nil {
		return nil, res.Outcome.Err
	}
	var affected, lastID int64
	resp := &client.SeedResponse{Index: res.Index}
	for _, r := range res.Results {
		affected += r.RowsAffected
		if r.LastInsertID != 0 {
			lastID = r.LastInsertID
		}
	}
	resp.RowsAffected, resp.LastInsertID = &affected, &lastID
	if n := len(res.Results); n > 0 && len(res.Results[n-1].Columns) > 0 {
		fillRows(resp, res.Results[n-1], req.BlobArray)
	}
	if len(res.Logged) > 0 {
		c, _ := parseConcern(req.W, req.Applied) // checked when parsed
		resp.Replicas = s.awaitReplicas(r.Context(), http.Header{}, res.Index, c, defaultTokenWait)
	}
	return resp, nil
}

// forwardExec refuses schema statements on a slave (the seed's rule) and
// forwards other writes to the master.
func (s *Server) forwardExec(r *http.Request, req *client.SeedRequest, stmts []wal.Statement) (*client.SeedResponse, error) {
	rl := s.roles()
	for _, st := range stmts {
		cl, _ := s.db().Classify(r.Context(), st.SQL)
		if cl.Refused != "" {
			return nil, fmt.Errorf("%w: %s", db.ErrRefused, cl.Refused)
		}
		if cl.Schema {
			return nil, &client.StatusError{Status: http.StatusForbidden, Master: rl.sl.MasterURL(),
				Msg: fmt.Sprintf("schema statements (CREATE, ALTER, DROP …) are taken only by the master: send them to %s", rl.sl.MasterURL())}
		}
	}
	// The master checks the client's credentials, not the slave's.
	resp, err := rl.sl.Forward(client.WithAuthorization(r.Context(), r.Header.Get("Authorization")), *req)
	if err != nil {
		var se *client.StatusError
		if errors.As(err, &se) || r.Context().Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w (%s): %v", ErrMasterUnreachable, rl.sl.MasterURL(), err)
	}
	return resp, nil
}

// fillRows puts a result's rows into the seed answer, with values exactly
// as SQLite stores them.
// fillRows puts res's columns, types and rows in resp; with blobArray a
// BLOB is an array of its byte values (as rqlite's ?blob_array), else
// base64 text.
func fillRows(resp *client.SeedResponse, res db.Result, blobArray bool) {
	resp.Columns = res.Columns
	resp.Types = make([]string, len(res.Types))
	for i, t := range res.Types {
		if t == "" && len(res.Rows) > 0 && res.Rows[0][i].Kind != wal.KindNull {
			t = res.Rows[0][i].Kind.String()
		}
		resp.Types[i] = t
	}
	resp.Values = make([][]any, len(res.Rows))
	for i, row := range res.Rows {
		vals := make([]any, len(row))
		for j, v := range row {
			if blobArray && v.Kind == wal.KindBlob {
				b := make([]int, len(v.Blob))
				for k, c := range v.Blob {
					b[k] = int(c)
				}
				vals[j] = b
				continue
			}
			vals[j] = jsonOf(v)
		}
		resp.Values[i] = vals
	}
}

// jsonOf returns the JSON form of a value: numbers, strings, base64 for a
// BLOB, null.
func jsonOf(v wal.Value) any {
	switch v.Kind {
	case wal.KindInteger:
		return v.Int
	case wal.KindReal:
		if math.IsInf(v.Real, 1) {
			return "Inf"
		} else if math.IsInf(v.Real, -1) {
			return "-Inf"
		} else if math.IsNaN(v.Real) {
			return nil
		}
		return v.Real
	case wal.KindText:
		return v.Text
	case wal.KindBlob:
		return v.Blob
	}
	return nil
}
