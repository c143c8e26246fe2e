package api

// The JSON shapes and value typing of rqlite's /db/* endpoints
// (RQLITE_API.md §1.3): every field omitempty, key order as rqlite's structs,
// values typed the way go-sqlite3 and rqlite type them, because rqlite's
// clients depend on it.

import (
	"math"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
	"github.com/walship/walship/wal"
)

// rqResponse is the top level of every /db/* answer.
type rqResponse struct {
	Results     []any   `json:"results"`
	Error       string  `json:"error,omitempty"`
	Time        float64 `json:"time,omitempty"`
	SequenceNum int64   `json:"sequence_number,omitempty"`
	RaftIndex   uint64  `json:"raft_index,omitempty"`
	// Replicas is set on a write sent with a write concern (w=N&applied).
	Replicas *client.Replicas `json:"replicas,omitempty"`
}

// rqWrite is the result of a statement that returns no rows.
type rqWrite struct {
	LastInsertID int64      `json:"last_insert_id,omitempty"`
	RowsAffected int64      `json:"rows_affected,omitempty"`
	Error        string     `json:"error,omitempty"`
	ErrorV2      *rqErrorV2 `json:"error_v2,omitempty"`
	Time         float64    `json:"time,omitempty"`
}

// rqWriteAssoc is rqWrite with ?associative, which adds "rows":null.
type rqWriteAssoc struct {
	LastInsertID int64      `json:"last_insert_id,omitempty"`
	RowsAffected int64      `json:"rows_affected,omitempty"`
	Error        string     `json:"error,omitempty"`
	ErrorV2      *rqErrorV2 `json:"error_v2,omitempty"`
	Time         float64    `json:"time,omitempty"`
	Rows         []any      `json:"rows"`
}

// rqRows is the result of a statement that returns rows.
type rqRows struct {
	Columns []string   `json:"columns,omitempty"`
	Types   []string   `json:"types,omitempty"`
	Values  [][]any    `json:"values,omitempty"`
	Error   string     `json:"error,omitempty"`
	ErrorV2 *rqErrorV2 `json:"error_v2,omitempty"`
	Time    float64    `json:"time,omitempty"`
}

// rqAssoc is rqRows with ?associative.
type rqAssoc struct {
	Types   map[string]string `json:"types,omitempty"`
	Rows    []map[string]any  `json:"rows"`
	Error   string            `json:"error,omitempty"`
	ErrorV2 *rqErrorV2        `json:"error_v2,omitempty"`
	Time    float64           `json:"time,omitempty"`
}

// rqErrorV2 is a failed statement's error as rqlite 10.6 and later give it
// beside "error": the message, and SQLite's result codes when SQLite
// refused the statement.
type rqErrorV2 struct {
	Message string        `json:"message"`
	SQLite  *rqSQLiteCode `json:"sqlite,omitempty"`
}

// rqSQLiteCode is SQLite's primary and extended result code.
type rqSQLiteCode struct {
	Code         int `json:"code"`
	ExtendedCode int `json:"extended_code"`
}

// newErrorV2 is the error_v2 of a statement that failed with err, answered
// with the message msg.
func newErrorV2(msg string, err error) *rqErrorV2 {
	e := &rqErrorV2{Message: msg}
	if code, ext, ok := sqliteCodes(err); ok {
		e.SQLite = &rqSQLiteCode{Code: code, ExtendedCode: ext}
	}
	return e
}

// rqOptions are the flags that shape an answer.
type rqOptions struct {
	timings     bool
	associative bool
	blobArray   bool
}

func seconds(d time.Duration, on bool) float64 {
	if !on {
		return 0
	}
	s := d.Seconds()
	if s == 0 {
		s = 1e-9
	}
	return s
}

// rqError is a result holding only an error, in the endpoint's shape: the
// message, and error_v2 with SQLite's codes of err.
func rqError(msg string, err error, rows bool, o rqOptions) any {
	v2 := newErrorV2(msg, err)
	switch {
	case rows && o.associative:
		return rqAssoc{Error: msg, ErrorV2: v2}
	case rows:
		return rqRows{Error: msg, ErrorV2: v2}
	case o.associative:
		return rqWriteAssoc{Error: msg, ErrorV2: v2}
	}
	return rqWrite{Error: msg, ErrorV2: v2}
}

// rqWriteResult is a statement's result in the write shape.
func rqWriteResult(r db.Result, o rqOptions) any {
	if o.associative {
		return rqWriteAssoc{LastInsertID: r.LastInsertID, RowsAffected: r.RowsAffected, Time: seconds(r.Time, o.timings)}
	}
	return rqWrite{LastInsertID: r.LastInsertID, RowsAffected: r.RowsAffected, Time: seconds(r.Time, o.timings)}
}

// rqRowsResult is a statement's result in the rows shape.
func rqRowsResult(r db.Result, o rqOptions) any {
	types := make([]string, len(r.Columns))
	values := make([][]any, len(r.Rows))
	for i, row := range r.Rows {
		vals := make([]any, len(row))
		for j, v := range row {
			decl := ""
			if j < len(r.Types) {
				decl = r.Types[j]
			}
			vals[j] = rqValue(v, decl, o.blobArray)
		}
		values[i] = vals
	}
	for j := range types {
		if j < len(r.Types) && r.Types[j] != "" {
			types[j] = r.Types[j]
		} else if len(values) > 0 {
			types[j] = typeOfValue(values[0][j])
		}
	}
	t := seconds(r.Time, o.timings)
	if o.associative {
		a := rqAssoc{Types: make(map[string]string, len(r.Columns)), Rows: make([]map[string]any, len(values)), Time: t}
		for j, c := range r.Columns {
			a.Types[c] = types[j]
		}
		for i, row := range values {
			m := make(map[string]any, len(row))
			for j, c := range r.Columns {
				m[c] = row[j]
			}
			a.Rows[i] = m
		}
		return a
	}
	res := rqRows{Columns: r.Columns, Types: types, Time: t}
	if len(values) > 0 {
		res.Values = values
	}
	return res
}

// typeOfValue names the type of a converted value, as rqlite does for a
// column without a declared type.
func typeOfValue(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case float64:
		return "real"
	case bool:
		return "boolean"
	case []byte, []int:
		return "blob"
	case string:
		return "text"
	}
	return ""
}

// timestampFormats are go-sqlite3's SQLiteTimestampFormats.
var timestampFormats = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
}

func isTimeType(decl string) bool { return decl == "date" || decl == "datetime" || decl == "timestamp" }

// isTextType reports whether a BLOB in a column of this declared type is
// emitted as a string.
func isTextType(decl string) bool {
	return decl == "" || decl == "text" || decl == "json" || decl == "clob" || strings.HasPrefix(decl, "varchar")
}

func timeJSON(t time.Time) string {
	b, err := t.MarshalText()
	if err != nil {
		return "0001-01-01T00:00:00Z"
	}
	return string(b)
}

// rqValue types one value by its storage class and its column's declared
// type (lower case), as go-sqlite3 and rqlite do.
func rqValue(v wal.Value, decl string, blobArray bool) any {
	switch v.Kind {
	case wal.KindInteger:
		switch {
		case isTimeType(decl):
			if v.Int > 1e12 || v.Int < -1e12 {
				return timeJSON(time.UnixMilli(v.Int).UTC())
			}
			return timeJSON(time.Unix(v.Int, 0).UTC())
		case decl == "boolean":
			return v.Int > 0
		}
		return v.Int
	case wal.KindReal:
		if math.IsInf(v.Real, 0) || math.IsNaN(v.Real) {
			return nil
		}
		return v.Real
	case wal.KindText:
		if isTimeType(decl) {
			s := strings.TrimSuffix(v.Text, "Z")
			for _, f := range timestampFormats {
				if t, err := time.ParseInLocation(f, s, time.UTC); err == nil {
					return timeJSON(t)
				}
			}
			return timeJSON(time.Time{})
		}
		return v.Text
	case wal.KindBlob:
		if isTextType(decl) {
			return string(v.Blob)
		}
		if blobArray {
			ints := make([]int, len(v.Blob))
			for i, b := range v.Blob {
				ints[i] = int(b)
			}
			return ints
		}
		return v.Blob
	}
	return nil
}
