// Package console is walship's web console: a page every node serves at
// /console, from files embedded in the binary (no CDN, no build step: plain
// HTML, CSS and JavaScript). It draws on the node's own API only: the
// cluster (GET /log/cluster), the rqlite API for queries and the schema,
// the log (GET /log/recent, /log/status), and backup, restore, verify and
// promote. On a node with --auth it asks for credentials and sends them,
// as HTTP Basic auth, with every request it makes; the page itself is
// served to anyone.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// Prefix is the path the console is served under.
const Prefix = "/console"

//go:embed static
var static embed.FS

// Handler serves the console: Prefix redirects to Prefix/, under which
// are the embedded files (index.html at Prefix/). GET and HEAD only.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Prefix, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method "+r.Method+" not allowed on "+r.URL.Path, http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == Prefix {
			http.Redirect(w, r, Prefix+"/", http.StatusMovedPermanently)
			return
		}
		if !strings.HasPrefix(r.URL.Path, Prefix+"/") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Scripts, styles and requests of this node only; no framing (the
		// console's buttons restore and promote).
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		files.ServeHTTP(w, r)
	})
}
