package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// This file fuzzes the parsing of every endpoint's input: the body of POST
// / (the seed's request), the bodies of /db/execute, /db/query and
// /db/request (JSON and text/plain), the query string of /db/* and the query
// string of the feed GET /log/entries. Each target checks that the parser
// never panics, that every refusal maps to a 4xx status with a message, and
// that what it accepts keeps the invariants the rest of the node relies on.
// The seed corpora are in testdata/fuzz/<Target>.

// checkRefusal fails the test unless err is answered 4xx with a message that
// shows no Go internals.
func checkRefusal(t *testing.T, err error, what string) {
	t.Helper()
	status := statusOf(err)
	var et *errText
	if errors.As(err, &et) {
		status = et.status
	}
	if status < 400 || status > 499 {
		t.Fatalf("%s: refused with status %d, want 4xx: %v", what, status, err)
	}
	msg := err.Error()
	if strings.TrimSpace(msg) == "" {
		t.Fatalf("%s: refused without a message", what)
	}
	if strings.Contains(msg, "goroutine ") || strings.Contains(msg, "runtime.") {
		t.Fatalf("%s: the message shows Go internals: %s", what, msg)
	}
}

// checkStatements checks statements as the master would get them: each one
// complete statement of the text, positions 0, 1, 2 …, and loggable: an
// entry holding them encodes and decodes to the same values.
func checkStatements(t *testing.T, stmts []wal.Statement, text string) {
	t.Helper()
	for i, st := range stmts {
		if st.Pos != uint32(i) {
			t.Fatalf("statement %d has position %d", i, st.Pos)
		}
		if strings.TrimSpace(st.SQL) == "" || !strings.Contains(text, st.SQL) {
			t.Fatalf("statement %d %q is empty or not part of the text %q", i, st.SQL, text)
		}
		if again, err := db.Split(st.SQL); err != nil || len(again) != 1 {
			t.Fatalf("statement %d %q splits again into %d statements (%v)", i, st.SQL, len(again), err)
		}
	}
	e := &wal.Entry{Index: 1, Epoch: 1, Statements: stmts}
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatalf("the statements cannot be logged: %v", err)
	}
	var back wal.Entry
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatalf("the logged statements do not decode: %v", err)
	}
	b2, err := back.MarshalBinary()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("the logged statements do not round-trip (%v)", err)
	}
}

// FuzzSeedBody parses arbitrary bodies of POST /. A refusal is a 4xx; an
// accepted request is "exec" or "query", never is_master, holds 1 to
// maxStatements complete statements, and parameters only with a single
// statement, each one a loggable value.
func FuzzSeedBody(f *testing.F) {
	for _, s := range []string{
		`{"command":"exec","query":"INSERT INTO t (v) VALUES (?)","params":[1, 2.5, "x", null, true, [0, 255]]}`,
		`{"command":"query","query":"SELECT 1; SELECT 2"}`,
		`{"command":"exec","query":"INSERT INTO t VALUES (?1, :a)","params":[9223372036854775807, 1e308]}`,
		`{"command":"exec","query":"SELECT ?","params":[-9223372036854775809]}`,
		`{"command":"exec","query":"SELECT ?","params":[1e999]}`,
		`{"command":"exec","query":"SELECT ?","params":[{"a":1}]}`,
		`{"command":"exec","query":"SELECT ?","params":"x"}`,
		`{"command":"exec","query":"SELECT 1","is_master":true}`,
		`{"command":"exec","query":"x\u0000y"}`,
		`{"command":"exec","query":"SELECT '` + "\xff\xfe" + `'"}`,
		`{"command":"exec","query":"CREATE TRIGGER x AFTER INSERT ON t BEGIN SELECT 1; END; SELECT 2"}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
		`{"command":"query","query":"SELECT 1"} trailing`,
		`{"command":"query","query":"SELECT 1","command":"exec"}`,
		`{"Command":"query","QUERY":"SELECT 1"}`,
		``,
		` `,
	} {
		f.Add([]byte(s))
	}
	s := &Server{MaxBody: 1 << 20}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		w := httptest.NewRecorder()
		req, stmts, _, err := s.parseSeed(w, r)
		if err != nil {
			checkRefusal(t, err, "POST /")
			return
		}
		if req.Command != "exec" && req.Command != "query" {
			t.Fatalf("accepted command %q", req.Command)
		}
		if req.IsMaster {
			t.Fatal("accepted is_master")
		}
		if !utf8.Valid(body) {
			t.Fatal("accepted a body that is not UTF-8: its strings were changed")
		}
		if len(stmts) == 0 || len(stmts) > maxStatements {
			t.Fatalf("accepted %d statements", len(stmts))
		}
		checkStatements(t, stmts, req.Query)
		if len(req.Params) > 0 {
			if len(stmts) != 1 {
				t.Fatalf("accepted %d parameters with %d statements", len(req.Params), len(stmts))
			}
			if len(stmts[0].Params) != len(req.Params) {
				t.Fatalf("%d parameters sent, %d bound", len(req.Params), len(stmts[0].Params))
			}
		}
		for _, st := range stmts[1:] {
			if len(st.Params) > 0 {
				t.Fatal("parameters on a statement other than the first")
			}
		}
	})
}

// rqlitePaths are the /db/* endpoints whose bodies FuzzRqBody parses.
var rqlitePaths = []string{"/db/execute", "/db/query", "/db/request"}

// FuzzRqBody parses arbitrary bodies of /db/execute, /db/query and
// /db/request, as JSON or as text/plain SQL, and plans them as the handlers
// do. A refusal is a 4xx; an accepted body has elements within the
// parameter limit, its plan maps every statement to an element and sets
// parameters only on a single-statement element, and mapping results back
// gives at most one result per element.
func FuzzRqBody(f *testing.F) {
	for _, s := range []struct {
		plain uint8
		body  string
	}{
		{0, `["INSERT INTO t VALUES (1)", ["INSERT INTO t VALUES (?, ?)", 1, "x'00ff'"]]`},
		{0, `[["INSERT INTO t VALUES (:a, :b)", {"a": 1, "b": [1, 2]}]]`},
		{0, `["SELECT 1; SELECT 2", ["SELECT ?; SELECT ?", 1, 2]]`},
		{0, `[["SELECT ?", {"a": {"b": 1}}]]`},
		{0, `[[]]`},
		{0, `[[1, 2]]`},
		{0, `[]`},
		{0, `{"a": 1}`},
		{0, `[` + strings.Repeat(`[`, 64)},
		{0, `["x` + "\xff" + `"]`},
		{1, "SELECT 1; DELETE FROM t"},
		{1, "INSERT INTO t VALUES ('unterminated"},
		{2, `["SELECT 1"]`},
	} {
		f.Add(s.plain, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		path := rqlitePaths[int(mode/4)%len(rqlitePaths)]
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		switch mode % 4 {
		case 1:
			r.Header.Set("Content-Type", "text/plain")
		case 2:
			r.Header.Set("Content-Type", "application/json")
		case 3:
			r.Header.Set("Content-Type", "TEXT/PLAIN; charset=utf-8")
		}
		if path == "/db/request" {
			r.Header.Del("Content-Type") // as handleRqRequest does
		}
		elems, err := parseRqBody(r, body)
		if err != nil {
			checkRefusal(t, err, path)
			return
		}
		checkPlan(t, elems)
	})
}

// checkPlan checks the plan of accepted elements.
func checkPlan(t *testing.T, elems []rqElement) {
	t.Helper()
	if len(elems) == 0 {
		t.Fatal("accepted a body without elements")
	}
	for i, el := range elems {
		if len(el.params) > maxParams {
			t.Fatalf("element %d: %d parameters accepted", i, len(el.params))
		}
		for j, p := range el.params {
			if p.Value.Kind > wal.KindBlob {
				t.Fatalf("element %d, parameter %d: kind %d", i, j, p.Value.Kind)
			}
		}
	}
	p := planRq(elems)
	if len(p.elemOf) != len(p.stmts) {
		t.Fatalf("%d statements, %d element links", len(p.stmts), len(p.elemOf))
	}
	perElem := map[int]int{}
	for i, st := range p.stmts {
		e := p.elemOf[i]
		if e < 0 || e >= len(elems) {
			t.Fatalf("statement %d belongs to element %d of %d", i, e, len(elems))
		}
		if i > 0 && e < p.elemOf[i-1] {
			t.Fatalf("statement %d goes back to element %d", i, e)
		}
		if _, failed := p.splitErr[e]; failed {
			t.Fatalf("element %d failed to split but has statement %d", e, i)
		}
		if !strings.Contains(elems[e].sql, st.SQL) {
			t.Fatalf("statement %d %q is not part of element %d", i, st.SQL, e)
		}
		perElem[e]++
	}
	for e, n := range perElem {
		if n > 1 && len(elems[e].params) > 0 {
			t.Fatalf("element %d: parameters planned on %d statements", e, n)
		}
	}
	// Every statement failing or succeeding, the results map back to at
	// most one result per element.
	for _, stop := range []bool{false, true} {
		res := make([]db.Result, len(p.stmts))
		for i := range res {
			if i%2 == 1 {
				res[i].Err = errors.New("injected")
			}
		}
		out := p.results(res, func(db.Result) bool { return true }, rqOptions{}, stop)
		if len(out) > len(elems) {
			t.Fatalf("%d results for %d elements", len(out), len(elems))
		}
		if out := p.results(nil, func(db.Result) bool { return false }, rqOptions{}, stop); len(out) > len(elems) {
			t.Fatalf("%d results for %d elements without statements run", len(out), len(elems))
		}
	}
}

// FuzzRqQueryString parses arbitrary query strings of /db/* (the flags, and
// q= of GET /db/query). A refusal is a 4xx; accepted durations are not
// negative and the level is one rqlite knows.
func FuzzRqQueryString(f *testing.F) {
	for _, s := range []string{
		"q=SELECT+1&level=none&timings&pretty",
		"q=SELECT%201;%20DELETE%20FROM%20t",
		"timeout=-1s",
		"freshness=1h&freshness_strict",
		"freshness_strict",
		"db_timeout=xyz",
		"retries=1e9",
		"level=STRONG&linearizable_timeout=9999999999999999999s",
		"q=%ff%fe&q=SELECT+2",
		"q=",
		"%zz",
		"a=1;b=2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/db/query", RawQuery: raw}, Header: http.Header{}}
		p, err := parseRqParams(r)
		if err != nil {
			checkRefusal(t, err, "/db/query?"+raw)
			return
		}
		for _, d := range []time.Duration{p.timeout, p.freshness, p.dbTimeout} {
			if d < 0 {
				t.Fatalf("accepted a negative duration %v", d)
			}
		}
		switch p.level {
		case "none", "weak", "linearizable", "strong", "auto":
		default:
			t.Fatalf("level %q", p.level)
		}
		elems, err := parseRqBody(r, nil)
		if err != nil {
			checkRefusal(t, err, "GET /db/query?"+raw)
			return
		}
		checkPlan(t, elems)
	})
}

// FuzzFeedQuery parses arbitrary query strings of GET /log/entries. A
// refusal is a 400 (ErrBadRequest); an accepted request starts at index 1 or
// later, asks for at most 10000 entries, waits 0 to a minute, and its names
// are bounded.
func FuzzFeedQuery(f *testing.F) {
	for _, s := range []string{
		"from=1&max=100&wait=250ms&id=1&url=http%3A%2F%2F127.0.0.1%3A8081&log_id=0123456789abcdef0123456789abcdef&applied=0",
		"from=0",
		"from=-1",
		"from=18446744073709551615&max=10000&wait=1m",
		"from=18446744073709551616",
		"from=1&max=0",
		"from=1&max=10001",
		"from=1&max=-5",
		"from=1&wait=-1s",
		"from=1&wait=1h",
		"from=1&wait=9223372036854775807ns",
		"from=1&wait=1e9",
		"from=1&epoch=2&applied=1",
		"from=1&epoch=x",
		"from=1&from=2",
		"from=%31",
		"from=1&id=" + strings.Repeat("x", 300),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/log/entries", RawQuery: raw}, Header: http.Header{}}
		req, err := parseFeed(r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) || statusOf(err) != http.StatusBadRequest {
				t.Fatalf("refused with %v (status %d), want a 400", err, statusOf(err))
			}
			checkRefusal(t, err, "/log/entries?"+raw)
			return
		}
		if req.From == 0 {
			t.Fatal("accepted from=0")
		}
		if req.Max < 0 || req.Max > 10000 {
			t.Fatalf("accepted max=%d", req.Max)
		}
		if req.Wait < 0 || req.Wait > maxFeedWait {
			t.Fatalf("accepted wait=%v", req.Wait)
		}
		if len(req.SlaveID) > 256 || len(req.SlaveURL) > 2048 || len(req.LogID) > 64 {
			t.Fatal("accepted names beyond their bounds")
		}
		if !utf8.ValidString(req.SlaveID + req.SlaveURL + req.LogID) {
			t.Fatal("accepted names that are not UTF-8")
		}
		if q := r.URL.Query(); q.Get(client.FeedEpoch) == "" && req.KnowsEpoch {
			t.Fatal("knows an epoch that was not sent")
		}
	})
}
