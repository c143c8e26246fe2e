package api

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/auth"
	"github.com/walship/walship/console"
)

// routePerms are the permissions each endpoint needs (rqlite's, and
// walship's own replicate for the feed and snapshots). POST / (the seed's)
// needs execute or query by its command: its handler decides, once the body
// is read. An endpoint not listed needs none (it answers 404).
var routePerms = map[string][]auth.Perm{
	"/db/execute":   {auth.PermExecute},
	"/db/query":     {auth.PermQuery},
	"/db/request":   {auth.PermExecute, auth.PermQuery},
	"/db/backup":    {auth.PermBackup},
	"/db/load":      {auth.PermLoad},
	"/db/snapshot":  {auth.PermReplicate},
	"/db/checksum":  {auth.PermStatus},
	"/db/verify":    {auth.PermStatus},
	"/log/entries":  {auth.PermReplicate},
	"/log/status":   {auth.PermStatus},
	"/log/recent":   {auth.PermStatus},
	"/log/cluster":  {auth.PermStatus},
	"/status":       {auth.PermStatus},
	"/nodes":        {auth.PermStatus},
	"/metrics":      {auth.PermStatus},
	"/readyz":       {auth.PermReady},
	"/node/promote": {auth.PermLeaderOps},
	"/remove":       {auth.PermRemove},
	"/node/fence":   {auth.PermLeaderOps},
	"/node/master":  {auth.PermLeaderOps},
}

// authRealm is the realm of the Basic challenge.
const authRealm = `Basic realm="walship"`

// withAuth checks every request's credentials against the node's
// credentials file (Server.Auth) before its handler runs: 401 with a
// Basic challenge without valid credentials, 403 naming the permission
// missing. Without Server.Auth every request passes.
func (s *Server) withAuth(next http.Handler) http.Handler {
	if s.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == console.Prefix || strings.HasPrefix(r.URL.Path, console.Prefix+"/") {
			// The console's files hold no data, and its sign-in form must
			// load: served to anyone, without a challenge (which would
			// open the browser's own login dialog). Every request the
			// console makes is checked as any other.
			next.ServeHTTP(w, r)
			return
		}
		// As rqlite: the challenge on every answer once auth is on.
		w.Header().Set("WWW-Authenticate", authRealm)
		perms, listed := routePerms[r.URL.Path]
		if r.URL.Path == "/" && r.Method == http.MethodPost {
			// The command decides (handleSeed); wrong credentials, or none
			// where anonymous may neither write nor read, stop here.
			if err := s.authorizeAny(r, auth.PermExecute, auth.PermQuery); err != nil {
				s.writeError(w, r, err)
				return
			}
		} else if listed {
			if err := s.authorize(r, perms...); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// authorize returns nil when the request's credentials (or the anonymous
// user "*", whose permissions everyone holds) hold every one of perms;
// auth.ErrUnauthenticated when they are wrong, or missing where needed; a
// *auth.ForbiddenError naming the first permission missing otherwise.
func (s *Server) authorize(r *http.Request, perms ...auth.Perm) error {
	if s.Auth == nil {
		return nil
	}
	st := s.Auth.Store()
	user, pass, has := r.BasicAuth()
	if has && !s.authenticated(st, user, pass) {
		s.failures.Log(s.logger, slog.LevelWarn, "auth-failed", "authentication failed", "user", user, "remote", r.RemoteAddr,
			"method", r.Method, "path", r.URL.Path)
		return auth.ErrUnauthenticated
	}
	for _, p := range perms {
		if st.HasPerm("*", p) || (has && st.HasPerm(user, p)) {
			continue
		}
		if !has {
			return auth.ErrUnauthenticated
		}
		s.failures.Log(s.logger, slog.LevelWarn, "auth-forbidden", "permission denied", "user", user,
			"perm", string(p), "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		return &auth.ForbiddenError{User: user, Perm: p}
	}
	return nil
}

// authorizeAny is authorize for a request that needs one of perms.
func (s *Server) authorizeAny(r *http.Request, perms ...auth.Perm) error {
	var err error
	for _, p := range perms {
		if err = s.authorize(r, p); err == nil {
			return nil
		}
	}
	return err
}

// authCache remembers credentials that authenticated, for a while: a
// bcrypt comparison costs tens of milliseconds, and a client sends its
// credentials with every request. It is keyed by the credentials file's
// Store, so a reload forgets it, and holds a hash of the password, never
// the password.
type authCache struct {
	mu    sync.Mutex
	store *auth.Store
	ok    map[[32]byte]time.Time
}

// authCacheTTL bounds how long an authentication is remembered.
const authCacheTTL = 5 * time.Minute

// authenticated reports whether user and pass authenticate against st.
func (s *Server) authenticated(st *auth.Store, user, pass string) bool {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	c := &s.authCache
	now := time.Now()
	c.mu.Lock()
	if c.store != st {
		c.store, c.ok = st, make(map[[32]byte]time.Time)
	}
	at, hit := c.ok[key]
	c.mu.Unlock()
	if hit && now.Sub(at) < authCacheTTL {
		return true
	}
	if !st.Authenticate(user, pass) {
		return false
	}
	c.mu.Lock()
	if c.store == st {
		if len(c.ok) > 10000 {
			c.ok = make(map[[32]byte]time.Time)
		}
		c.ok[key] = now
	}
	c.mu.Unlock()
	return true
}
