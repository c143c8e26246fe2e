// Package api is walship's HTTP API: the seed-compatible POST /, the
// replication feed and the log status, served by a master or a slave.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/auth"
	"github.com/walship/walship/db"
	"github.com/walship/walship/master"
	"github.com/walship/walship/repeatlog"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/snapshot"
)

// DefaultMaxBody is the default limit of a request body.
const DefaultMaxBody = 16 << 20

// DefaultReadTimeout is the default time limit of reading a request.
const DefaultReadTimeout = 60 * time.Second

// DefaultQueryTimeout is the default time limit of a read.
const DefaultQueryTimeout = 5 * time.Second

// Server serves one node. Exactly one of Master and Slave is set.
type Server struct {
	// Addr is the address to listen on, e.g. ":8080" or "127.0.0.1:0".
	Addr string
	// Listener, if set, is used instead of listening on Addr (so that a
	// caller can know the port before the node starts).
	Listener net.Listener
	// Advertise is the URL others use for this node; empty means derived
	// from the listener.
	Advertise string
	// ID is the node's id (a slave's id; "master" for the master).
	ID string
	// Master or Slave is the node's role at start; SetRole switches it
	// at run time (the fields keep the first).
	Master *master.Master
	Slave  *slave.Slave
	live   atomic.Pointer[roles] // the current role (SetRole)
	// MaxBody limits request bodies. Zero means DefaultMaxBody.
	MaxBody int64
	// QueryTimeout bounds a read from its arrival, waiting for a read
	// connection included, so that a few endless queries cannot starve
	// every other read. A request's db_timeout, if shorter, wins. Zero
	// means DefaultQueryTimeout; negative means no limit.
	QueryTimeout time.Duration
	// ReadTimeout bounds reading a whole request, its body included; a
	// body that has not arrived by then is answered 408. Zero means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// Logger receives the server's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics are served at /metrics. Nil means new ones, without the
	// master's or slave's observations.
	Metrics *Metrics
	// Auth, if set, is the credentials file every request is checked
	// against (auth.go); nil leaves the node open.
	Auth *auth.File
	// Snapshots keeps the node's snapshots, served at /db/snapshot. Nil
	// means the node serves none (404).
	Snapshots *snapshot.Store
	// TLS, if set, serves every endpoint over TLS only (package certs
	// builds it), and the derived advertised URL is https. Nil: plain HTTP.
	TLS *tls.Config
	// Roles, if set, switches the node's role at run time (promotion,
	// fencing, re-pointing: POST /node/*); nil: 404 there.
	Roles RoleSwitch
	// MinReplicas is the master's default write concern: a write that
	// names none is answered once this many slaves hold it fsynced in
	// their log, or MinReplicasWait (zero: DefaultMinReplicasWait) has
	// passed, the shortfall then said in the answer. 0: writes do not
	// wait for slaves.
	MinReplicas     int
	MinReplicasWait time.Duration
	// ReadReplicas holds a strong read at the master until that many
	// slaves hold, fsynced, every write it may have seen, so that no
	// failover can lose what a strong read returned (a 503 when they do
	// not within the read's timeout). 0: strong reads answer at once.
	ReadReplicas int
	// ReadyHeard bounds how long a slave may go without an answer from
	// its master and still answer /readyz 200. Zero means
	// DefaultReadyHeard; negative: no bound (ready once it has heard).
	ReadyHeard time.Duration
	// ReadyLag is how many entries of its master's log a slave may lack
	// and still answer /readyz 200. Zero means DefaultReadyLag;
	// negative: no bound.
	ReadyLag int64
	// PeerTLS configures the node's own https requests to other nodes: a
	// slave's to its master (forwarded writes and reads, /nodes, verify),
	// the master's to its slaves (/nodes). Nil: Go's defaults.
	PeerTLS *tls.Config

	logger *slog.Logger
	ln     net.Listener
	srv    *http.Server
	done   chan struct{}
	fwd    *http.Client // a slave's requests to the master
	queue  *writeQueue
	// failures rate-limits the log lines of failed requests.
	failures repeatlog.Logger
	// authCache remembers credentials that authenticated.
	authCache authCache
	// appends is the master's last failed log append (health.go).
	appends appendState
}

// Version is walship's version, sent as X-RQLITE-VERSION (rqlite's clients
// expect the header on every answer).
const Version = "v0.1.0-walship"

// Open listens on Addr and starts serving in the background.
func (s *Server) Open() error {
	if err := s.SetRole(s.Master, s.Slave); err != nil {
		return err
	}
	s.logger = s.Logger
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.MaxBody <= 0 {
		s.MaxBody = DefaultMaxBody
	}
	if s.QueryTimeout == 0 {
		s.QueryTimeout = DefaultQueryTimeout
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = DefaultReadTimeout
	}
	if s.ReadyHeard == 0 {
		s.ReadyHeard = DefaultReadyHeard
	}
	if s.ReadyLag == 0 {
		s.ReadyLag = DefaultReadyLag
	}
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("listen %s: %w", s.Addr, err)
		}
	}
	s.ln = ln
	if s.Advertise == "" {
		s.Advertise = AdvertiseURL(ln.Addr().String(), s.TLS != nil)
	}
	if s.TLS != nil {
		ln = tls.NewListener(ln, s.TLS)
	}
	s.fwd = &http.Client{Transport: client.NewTLSTransport(s.PeerTLS)}
	s.queue = newWriteQueue(s)
	r := mux.NewRouter()
	s.registerSeedRoutes(r)
	s.registerRqliteRoutes(r)
	s.registerNodeRoutes(r)
	if s.Metrics == nil {
		s.Metrics = NewMetrics()
	}
	s.registerMetrics(r)
	s.registerLogRoutes(r)
	s.registerStatusRoutes(r)
	s.registerSnapshotRoutes(r)
	s.registerBackupRoutes(r)
	s.registerLoadRoutes(r)
	s.registerVerifyRoutes(r)
	s.registerRoleRoutes(r)
	s.registerRemoveRoutes(r)
	s.registerConsoleRoutes(r)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/db/") || r.URL.Path == "/status" || r.URL.Path == "/nodes" || r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusMethodNotAllowed) // rqlite's: no body
			return
		}
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed on " + r.URL.Path})
	})
	s.srv = &http.Server{
		Handler:           rqliteHeaders(s.withAuth(r)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          s.errorLog(),
	}
	s.done = make(chan struct{})
	s.queue.start()
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// URL returns the node's advertised URL.
func (s *Server) URL() string { return s.Advertise }

// Close stops the server, waiting up to 5s for requests in flight.
func (s *Server) Close() error {
	if s.srv == nil {
		if s.Listener != nil {
			return s.Listener.Close() // given, never served
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	s.queue.stop()
	return err
}

// rqliteHeaders sets X-RQLITE-VERSION on every answer and answers OPTIONS
// (CORS preflight) with 200, as rqlite does.
func rqliteHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-RQLITE-VERSION", Version)
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// AdvertiseURL derives a URL from a listen address, replacing a wildcard
// host with 127.0.0.1; its scheme is https for a node that serves TLS.
func AdvertiseURL(addr string, https bool) string {
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return scheme + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + net.JoinHostPort(host, port)
}

func (s *Server) db() *db.DB {
	rl := s.roles()
	if rl.m != nil {
		return rl.m.DB()
	}
	return rl.sl.DB()
}

func (s *Server) role() string {
	if s.roles().m != nil {
		return "master"
	}
	return "slave"
}

// roles is the node's role at one moment: exactly one of m and sl is set.
// A handler takes it once (Server.roles) and uses that one throughout:
// the role may switch meanwhile (a promotion, a step-down), and the role
// it took stays usable until the request ends (a closed master answers
// ErrStopped, a closed slave serves reads of its database).
type roles struct {
	m  *master.Master
	sl *slave.Slave
}

// roles returns the node's current role.
func (s *Server) roles() roles {
	if r := s.live.Load(); r != nil {
		return *r
	}
	return roles{m: s.Master, sl: s.Slave}
}

// SetRole switches the node's role at run time: exactly one of m and sl
// is set. Requests that started before keep the role they took; the
// caller closes the old role once they had time to end.
func (s *Server) SetRole(m *master.Master, sl *slave.Slave) error {
	if (m == nil) == (sl == nil) {
		return errors.New("api: exactly one of master and slave must be set")
	}
	s.live.Store(&roles{m: m, sl: sl})
	return nil
}

// queryContext bounds a read by QueryTimeout (and a shorter limit, if
// given).
func (s *Server) queryContext(ctx context.Context, limit time.Duration) (context.Context, context.CancelFunc) {
	if s.QueryTimeout > 0 && (limit <= 0 || limit > s.QueryTimeout) {
		limit = s.QueryTimeout
	}
	if limit <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, limit)
}
