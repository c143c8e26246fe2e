package api

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"
)

// NewNoopHandler returns walship's HTTP stack without a database: the same
// router, request parsing and answer encoding as /db/execute and /db/query,
// answering every statement with an empty result. `walship bench ceiling`
// measures it, so that benchmarks can report their figures as fractions of
// what this machine's HTTP stack can do.
func NewNoopHandler() http.Handler {
	r := mux.NewRouter()
	handle := func(write bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			p, err := parseRqParams(r)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body, err := readBodyLimit(w, r, DefaultMaxBody)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			elems, err := parseRqBody(r, body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			results := make([]any, len(elems))
			for i := range elems {
				if write {
					results[i] = rqWrite{LastInsertID: 1, RowsAffected: 1}
				} else {
					results[i] = rqRows{Columns: []string{"id", "v"}, Types: []string{"integer", "text"}, Values: [][]any{{int64(1), "x"}}}
				}
			}
			writeRq(w, p, rqResponse{Results: results, Time: seconds(time.Since(start), p.opts.timings)})
		}
	}
	r.HandleFunc("/db/execute", handle(true)).Methods(http.MethodPost)
	r.HandleFunc("/db/query", handle(false)).Methods(http.MethodGet, http.MethodPost)
	return rqliteHeaders(r)
}
