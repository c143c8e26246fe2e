package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/api"
	"github.com/walship/walship/archive"
	"github.com/walship/walship/auth"
	"github.com/walship/walship/db"
	"github.com/walship/walship/election"
	"github.com/walship/walship/master"
	"github.com/walship/walship/repeatlog"
	"github.com/walship/walship/slave"
	"github.com/walship/walship/snapshot"
	"github.com/walship/walship/wal"
)

// DefaultJoinFromSnapshot is --join-from-snapshot's default: replaying
// 100,000 entries takes about as long as installing the snapshot of a
// database of a few hundred MB (BENCHMARKS.md, "Bootstrap").
const DefaultJoinFromSnapshot = 100_000

// NodeConfig is what a node needs to start.
type NodeConfig struct {
	// AuthFile is the credentials file (rqlite's JSON format, bcrypt or
	// plain passwords) every request is checked against; re-read on
	// SIGHUP. Empty: the node is open to anyone who reaches it.
	AuthFile string
	// MasterUser and MasterPassword are a slave's credentials at its
	// master (the replicate permission).
	MasterUser, MasterPassword string
	Role                       string // "master" or "slave"
	ID                         string
	Addr                       string
	Advertise                  string
	Data                       string
	MasterURL                  string // slaves
	// Peers are other nodes of the cluster: told of a promotion of this
	// node, and asked for a master of a higher epoch (at a master's
	// start, and by a slave whose master is silent).
	Peers  []string
	Logger *slog.Logger
	// WriteTimeout bounds one write statement on the master (0: 5s, <0: none).
	WriteTimeout time.Duration
	// QueryTimeout bounds one read (0: 5s, <0: none).
	QueryTimeout time.Duration
	// PprofAddr, if set, serves Go's profiles (/debug/pprof/) there, apart
	// from the API.
	PprofAddr string
	// The master's log retention (master.Config): 0 sets no cap.
	RetainEntries uint64
	RetainBytes   int64
	RetainFor     time.Duration
	// SegmentBytes is the size of a log segment file; 0 means one eighth
	// of the retention, between 1 MiB and 64 MiB.
	SegmentBytes int64
	// CompactEvery is how often the master checks its log against the
	// retention (0: 10s).
	CompactEvery time.Duration
	// MinFree is the free space below which the master refuses writes:
	// a size ("256MiB"), a share of the volume ("5%"), "auto" for the
	// smaller of 256 MiB and 5% of the volume; "" or "0" for no check.
	MinFree string
	// JoinFromSnapshot: an empty slave starts from the master's snapshot
	// when it is at least this many entries in (slave.Config); 0: never.
	JoinFromSnapshot uint64
	// SnapshotCPU is the share of one core a snapshot may take while it
	// is made (0: DefaultSnapshotCPU; 1: no limit).
	SnapshotCPU float64
	// VerifyEvery: the master logs the marker of a replica check after
	// this many entries (master.Config); 0: only when asked (POST
	// /db/verify).
	VerifyEvery uint64
	// ArchiveDir, if set, is the master's archive (package archive):
	// every sealed log segment and snapshot is copied there. The others
	// are its settings (master.Config, archive.Archive); 0: the defaults,
	// no retention cap.
	ArchiveDir             string
	ArchiveEvery           time.Duration
	ArchiveSnapshotEntries uint64
	ArchiveRetainFor       time.Duration
	ArchiveRetainSnapshots int
	// TLS is the node's TLS (node_tls.go); empty: plain HTTP.
	TLS NodeTLS
	// ReadyHeard and ReadyLag are the bounds of a slave's readiness
	// (api.Server): 0 means the defaults.
	ReadyHeard time.Duration
	ReadyLag   int64
	// Etcd, with endpoints, turns on automatic failover (failover.go).
	Etcd EtcdConfig
	// MinReplicas and MinReplicasWait are the master's default write
	// concern (api.Server).
	MinReplicas     int
	MinReplicasWait time.Duration
}

// readReplicas is how many slaves must hold what a strong read at the
// master saw before it is answered: --min-replicas, and at least one with
// automatic failover (a failover then never loses what a strong read
// returned).
func (cfg NodeConfig) readReplicas() int {
	if len(cfg.Etcd.Endpoints) > 0 {
		return max(cfg.MinReplicas, 1)
	}
	return cfg.MinReplicas
}

// DefaultVerifyEvery is --verify-every's default: a replica check every
// 10,000 entries.
const DefaultVerifyEvery = 10_000

// DefaultSnapshotCPU is --snapshot-cpu's default: a snapshot works a
// quarter of the time, so that writes keep about 90% of their rate while
// one is taken on a 2-core machine (BENCHMARKS.md).
const DefaultSnapshotCPU = 0.25

// parseShare reads a share of one core such as 25% or 100%.
func parseShare(flag, v string) (float64, error) {
	pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64)
	if err != nil || !strings.HasSuffix(v, "%") || pct <= 0 || pct > 100 {
		return 0, fmt.Errorf("--%s %q: give a share of one core such as 25%% (above 0%%, at most 100%%)", flag, v)
	}
	return pct / 100, nil
}

// minFreeBytes reads MinFree against the volume of dir.
func (cfg NodeConfig) minFreeBytes(dir string) (int64, error) {
	v := strings.TrimSpace(cfg.MinFree)
	var st syscall.Statfs_t
	volume := int64(-1)
	if err := syscall.Statfs(dir, &st); err == nil {
		volume = int64(st.Blocks) * int64(st.Bsize)
	}
	share := func(pct float64) int64 {
		if volume < 0 {
			return 0
		}
		return int64(float64(volume) * pct / 100)
	}
	switch {
	case v == "":
		return 0, nil
	case v == "auto":
		if volume < 0 {
			return 256 << 20, nil
		}
		return min(256<<20, share(5)), nil
	case strings.HasSuffix(v, "%"):
		pct, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if err != nil || pct < 0 || pct >= 100 {
			return 0, fmt.Errorf("--min-free-space %q: give a size (256MiB) or a share of the volume (5%%)", v)
		}
		return share(pct), nil
	}
	return parseSize("min-free-space", v)
}

// segmentBytes is the size of the master's log segments: small enough
// that the log's files stay close to the retention (the log keeps whole
// segments: at most about one more than the retention), large enough that
// files are few.
func (cfg NodeConfig) segmentBytes() int64 {
	if cfg.SegmentBytes > 0 {
		return cfg.SegmentBytes
	}
	want := int64(64 << 20)
	switch {
	case cfg.RetainBytes > 0:
		want = cfg.RetainBytes / 8
	case cfg.RetainEntries > 0:
		want = int64(min(cfg.RetainEntries, 1<<40)) * 256 / 8 // about 256 bytes an entry
	}
	return min(max(want, 1<<20), 64<<20)
}

// Node is a running master or slave: its files, its role and its server.
type Node struct {
	cfg    NodeConfig
	lock   *os.File
	log    *wal.Log
	db     *db.DB
	arch   *archive.Archive
	master *master.Master
	slave  *slave.Slave
	server *api.Server
	pprof  *http.Server
	// creds is the credentials file; stopAuth stops its reloads on SIGHUP.
	creds    *auth.File
	stopAuth context.CancelFunc

	url       string // advertised
	logger    *slog.Logger
	metrics   *api.Metrics
	snapshots *snapshot.Store
	peerTLS   *tls.Config
	// roleMu serialises role switches (role.go); master and slave change
	// under it.
	roleMu sync.Mutex
	// ctx and wg own the node's goroutines: the watcher of the master
	// (watch) and the announcements of a promotion (announce).
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// elec is the node's part in the election at etcd (--etcd), nil
	// without; leading is set while it leads (failover.go).
	elec     *election.Election
	leading  atomic.Bool
	failures repeatlog.Logger
}

// StartNode opens a node's data directory and starts serving.
func StartNode(cfg NodeConfig) (_ *Node, err error) {
	serverTLS, peerTLS, err := cfg.tlsConfigs(cfg.Logger.With("role", cfg.Role, "id", cfg.ID))
	if err != nil {
		return nil, err
	}
	// The credentials are checked before anything is created.
	var creds *auth.File
	if cfg.AuthFile != "" {
		if creds, err = auth.OpenFile(cfg.AuthFile, cfg.Logger.With("role", cfg.Role, "id", cfg.ID)); err != nil {
			return nil, fmt.Errorf("--auth: %w", err)
		}
	}
	// Listen first: a port in use fails the start before anything is
	// created (a slave also tells the master the port it really has: an
	// address like 127.0.0.1:0 picks one).
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	n := &Node{cfg: cfg}
	// A start that fails removes what it created in the data directory
	// (and the directory, if it made it), and leaves what was there.
	before, existed := listDir(cfg.Data)
	defer func() {
		if err != nil {
			if n.server == nil {
				ln.Close()
			}
			n.Close()
			removeCreated(cfg.Data, before, existed)
		}
	}()
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if n.lock, err = lockDir(cfg.Data); err != nil {
		return nil, err
	}
	// The node's id names it in its logs; its role may change as it runs.
	logger := cfg.Logger.With("id", cfg.ID)
	n.db, err = db.Open(filepath.Join(cfg.Data, "db.sqlite"), db.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	snapshots, err := snapshot.Open(filepath.Join(cfg.Data, "snapshots"), logger)
	if err != nil {
		return nil, err
	}
	snapshots.CPUShare = cfg.SnapshotCPU
	if snapshots.CPUShare == 0 {
		snapshots.CPUShare = DefaultSnapshotCPU
	}
	if creds != nil {
		n.creds = creds
		var actx context.Context
		actx, n.stopAuth = context.WithCancel(context.Background())
		creds.WatchSIGHUP(actx)
	} else if !loopback(cfg.Addr) {
		logger.Warn("no --auth: this node is open to anyone who can reach "+cfg.Addr+": every read and write, the replication feed, backups and loads; give it a credentials file (SECURITY.md)",
			"addr", cfg.Addr)
	}
	n.logger, n.snapshots, n.peerTLS = logger, snapshots, peerTLS
	n.metrics = api.NewMetrics()
	n.server = &api.Server{Addr: cfg.Addr, Advertise: cfg.Advertise, ID: cfg.ID, Logger: logger, Metrics: n.metrics, Auth: creds,
		QueryTimeout: cfg.QueryTimeout, Snapshots: snapshots, TLS: serverTLS, PeerTLS: peerTLS,
		MinReplicas: cfg.MinReplicas, MinReplicasWait: cfg.MinReplicasWait, Roles: n, ReadReplicas: cfg.readReplicas(),
		ReadyHeard: cfg.ReadyHeard, ReadyLag: cfg.ReadyLag}
	n.server.Listener = ln
	n.url = cfg.Advertise
	if n.url == "" {
		n.url = api.AdvertiseURL(ln.Addr().String(), serverTLS != nil)
	}
	n.server.Advertise = n.url
	// Both roles keep the log: the master writes it, a slave keeps a copy
	// (slaves may follow it, it acknowledges writes as durably received,
	// and it can be promoted).
	n.log, err = wal.Open(filepath.Join(cfg.Data, "log.db"), wal.Options{SegmentBytes: cfg.segmentBytes()})
	if err != nil {
		return nil, err
	}
	if cfg.Role == "master" && cfg.ArchiveDir != "" {
		if n.arch, err = openArchive(cfg, logger, snapshots.CPUShare); err != nil {
			return nil, err
		}
	}
	if len(cfg.Etcd.Endpoints) > 0 {
		if err := n.openElection(); err != nil {
			return nil, err
		}
	}
	role, masterURL, err := n.startingRole()
	if err != nil {
		return nil, err
	}
	if role == "master" {
		if n.master, err = n.openMaster(); err != nil {
			return nil, err
		}
		n.server.Master = n.master
	} else {
		if n.slave, err = n.openSlave(masterURL); err != nil {
			return nil, err
		}
		n.server.Slave = n.slave
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Add(1)
	if n.elec != nil {
		go func() { defer n.wg.Done(); n.failover() }() // the election decides
	} else {
		go func() { defer n.wg.Done(); n.watch() }()
	}
	if err := n.server.Open(); err != nil {
		return nil, err
	}
	if cfg.PprofAddr != "" {
		if n.pprof, err = servePprof(cfg.PprofAddr, logger); err != nil {
			return nil, err
		}
	}
	logger.Info("serving", "url", n.server.URL(), "data", cfg.Data, "log_id", n.db.LogID(), "applied_index", n.db.AppliedIndex())
	return n, nil
}

// PprofURL returns the base URL of the node's profiles, "" without them.
func (n *Node) PprofURL() string {
	if n.pprof == nil {
		return ""
	}
	return "http://" + n.pprof.Addr + "/debug/pprof/"
}

// URL returns the node's advertised URL.
func (n *Node) URL() string { return n.server.URL() }

// Close stops serving, then the role, then closes the files.
func (n *Node) Close() error {
	var errs []error
	if n.stopAuth != nil {
		n.stopAuth()
		n.creds.Wait()
	}
	if n.pprof != nil {
		errs = append(errs, n.pprof.Close())
	}
	if n.cancel != nil {
		n.cancel()
		n.wg.Wait()
	}
	if n.server != nil {
		errs = append(errs, n.server.Close())
	}
	n.roleMu.Lock()
	defer n.roleMu.Unlock()
	if n.master != nil {
		errs = append(errs, n.master.Close())
	}
	if n.slave != nil {
		errs = append(errs, n.slave.Close())
	}
	if n.elec != nil {
		// After the master closed: its lease is revoked, and another is
		// elected at once.
		errs = append(errs, n.elec.Close())
	}
	if n.arch != nil {
		errs = append(errs, n.arch.Close())
	}
	if n.db != nil {
		errs = append(errs, n.db.Close())
	}
	if n.log != nil {
		errs = append(errs, n.log.Close())
	}
	if n.lock != nil {
		errs = append(errs, n.lock.Close())
	}
	return errors.Join(errs...)
}

// openArchive opens the master's archive with its retention; its copies
// are paced as snapshots are.
func openArchive(cfg NodeConfig, logger *slog.Logger, cpuShare float64) (*archive.Archive, error) {
	a, err := archive.Open(cfg.ArchiveDir, logger)
	if err != nil {
		return nil, err
	}
	a.CPUShare, a.RetainFor, a.RetainSnapshots = cpuShare, cfg.ArchiveRetainFor, cfg.ArchiveRetainSnapshots
	return a, nil
}

// servePprof serves Go's profiling endpoints on their own listener, so that
// they are never exposed on the API's address by accident.
func servePprof(addr string, logger *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // stopped by Node.Close
	logger.Info("serving profiles", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return srv, nil
}

// listDir returns the names in dir, and whether dir exists.
func listDir(dir string) (map[string]bool, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	return names, true
}

// removeCreated undoes a failed start in dir: what is in it and was not
// before goes, and dir itself when it did not exist.
func removeCreated(dir string, before map[string]bool, existed bool) {
	if !existed {
		_ = os.RemoveAll(dir)
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !before[e.Name()] {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// lockDir takes an exclusive lock on dir, so that two processes never run
// on the same data.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another walship process: %w", dir, err)
	}
	return f, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// parseSize reads a size flag such as 1GiB, 500MB or 65536; "" is 0.
func parseSize(flag, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n > 1<<62 {
		return 0, fmt.Errorf("--%s %q: give a size such as 1GiB, 500MB or 65536", flag, v)
	}
	return int64(n), nil
}

// serve runs a node until ctx is done. A master that cannot apply its
// log does not stop: it halts writes and keeps serving (master.ErrHalted).
func serve(ctx context.Context, n *Node, logger *slog.Logger) error {
	<-ctx.Done()
	logger.Info("shutting down")
	return n.Close()
}

func runMaster(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlagSet("master", "walship master [--addr HOST:PORT] [--data DIR] [--advertise URL]", stderr)
	addr := fs.String("addr", ":8080", "address to listen on")
	data := fs.String("data", filepath.Join("walship-data", "master"), "data directory (log.db and db.sqlite)")
	advertise := fs.String("advertise", "", "URL other nodes and clients use for this node (default: from --addr)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	queryTimeout := fs.Duration("query-timeout", api.DefaultQueryTimeout, "stop a read that takes longer, its wait for a read connection included; -1ns: no limit")
	pprofAddr := fs.String("pprof", "", "address to serve Go's profiles on (/debug/pprof/), apart from the API; off by default")
	logFlags := addLogFlags(fs)
	snapCPU := fs.String("snapshot-cpu", "25%", "share of one core a snapshot may take while it is made (it waits the rest of the time), so that writes keep their pace; 100%: no limit")
	authFile := fs.String("auth", "", "credentials file: rqlite's JSON format ([{\"username\":…, \"password\":…, \"perms\":[…]}], passwords plain or bcrypt from walship passwd), re-read on SIGHUP; every request then needs a user holding the endpoint's permission (SECURITY.md); empty: open")
	archiveDir := fs.String("archive", "", "copy every sealed log segment and every snapshot to this directory (a local disk or a mounted volume), for point-in-time restore (walship restore --archive); the log keeps what is not archived yet; off by default")
	archiveEvery := fs.Duration("archive-every", master.DefaultArchiveEvery, "seal and archive the log's active segment once its oldest entry is this old: the archive lags the master by about this much at most")
	archiveSnapshots := fs.Uint64("archive-snapshot-every", master.DefaultArchiveSnapshotEntries, "give the archive a snapshot once its newest is this many entries behind: a restore replays at most about this many entries")
	archiveRetainFor := fs.Duration("archive-retain-for", 0, "keep the archived snapshots and log needed to restore to any point within this long, e.g. 168h; 0: no cap (with no --archive-retain-snapshots either, the archive keeps everything)")
	archiveRetainSnaps := fs.Int("archive-retain-snapshots", 0, "keep the newest N archived snapshots and the log after the oldest of them; 0: no cap")
	etcdFlags := addEtcdFlags(fs)
	readyHeard, readyLag := addReadyFlags(fs)
	writerFlags := addWriterFlags(fs, false)
	peers := fs.String("peers", "", "the other nodes of the cluster, comma-separated URLs: at start the master asks them whether a master of a higher epoch replaced it (then it starts as that one's slave), and a promotion of this node tells them")
	var nodeTLS NodeTLS
	addNodeTLSFlags(fs, &nodeTLS, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	wf, err := writerFlags()
	if err != nil {
		return err
	}
	if *archiveRetainSnaps < 0 || *archiveEvery <= 0 || *archiveSnapshots == 0 {
		return errors.New("--archive-retain-snapshots must be at least 0, --archive-every and --archive-snapshot-every above 0")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	lf, err := logFlags()
	if err != nil {
		return err
	}
	etcd, err := etcdFlags()
	if err != nil {
		return err
	}
	snapShare, err := parseShare("snapshot-cpu", *snapCPU)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	n, err := StartNode(NodeConfig{AuthFile: *authFile, Role: "master", ID: "master", Addr: *addr, Advertise: *advertise, Data: *data, Logger: logger,
		WriteTimeout: wf.WriteTimeout, QueryTimeout: *queryTimeout, PprofAddr: *pprofAddr,
		RetainEntries: lf.RetainEntries, RetainBytes: lf.RetainBytes, RetainFor: lf.RetainFor, SegmentBytes: lf.SegmentBytes,
		CompactEvery: lf.CompactEvery, MinFree: wf.MinFree, SnapshotCPU: snapShare, VerifyEvery: wf.VerifyEvery,
		ArchiveDir: *archiveDir, ArchiveEvery: *archiveEvery, ArchiveSnapshotEntries: *archiveSnapshots,
		ArchiveRetainFor: *archiveRetainFor, ArchiveRetainSnapshots: *archiveRetainSnaps, TLS: nodeTLS,
		MinReplicas: wf.MinReplicas, MinReplicasWait: wf.MinReplicasWait, Peers: splitURLs(*peers), Etcd: etcd,
		ReadyHeard: *readyHeard, ReadyLag: *readyLag})
	if err != nil {
		return err
	}
	return serve(ctx, n, logger)
}

func runSlave(ctx context.Context, args []string, stderr io.Writer) error {
	// The original took the slave id as the first argument: walship slave 1.
	posID := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		posID, args = args[0], args[1:]
	}
	fs := newFlagSet("slave", "walship slave [N] [--id N] [--addr HOST:PORT] [--master URL] [--data DIR] [--advertise URL]", stderr)
	id := fs.String("id", "", "slave id, a positive integer (also the first argument)")
	addr := fs.String("addr", "", "address to listen on (default :8080+id)")
	masterURL := fs.String("master", "http://127.0.0.1:8080", "the master's URL; a comma-separated list names the nodes that may be the master: the slave follows the first, and when it goes silent, whichever is the master of the highest epoch (after a promotion)")
	peers := fs.String("peers", "", "other nodes of the cluster, comma-separated URLs: asked for the master when this slave's goes silent, and told when this slave is promoted")
	etcdFlags := addEtcdFlags(fs)
	readyHeard, readyLag := addReadyFlags(fs)
	writerFlags := addWriterFlags(fs, true)
	data := fs.String("data", "", "data directory (default walship-data/slave-<id>)")
	advertise := fs.String("advertise", "", "URL other nodes and clients use for this node (default: from --addr)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	queryTimeout := fs.Duration("query-timeout", api.DefaultQueryTimeout, "stop a read that takes longer, its wait for a read connection included; -1ns: no limit")
	pprofAddr := fs.String("pprof", "", "address to serve Go's profiles on (/debug/pprof/), apart from the API; off by default")
	snapCPU := fs.String("snapshot-cpu", "25%", "share of one core a snapshot may take while it is made (it waits the rest of the time), so that writes keep their pace; 100%: no limit")
	authFile := fs.String("auth", "", "credentials file for this node's own API (see walship master --help); empty: open")
	masterUser := fs.String("master-user", "", "the slave's user at the master (it needs the replicate permission); its password is read from the environment variable WALSHIP_MASTER_PASSWORD or from --master-password-file")
	masterPassFile := fs.String("master-password-file", "", "a file holding the password of --master-user (its first line)")
	logFlags := addLogFlags(fs)
	join := fs.Uint64("join-from-snapshot", DefaultJoinFromSnapshot, "an empty slave starts from the master's snapshot instead of replaying the log when the snapshot is at least this many entries in; 0: always replay")
	var nodeTLS NodeTLS
	addNodeTLSFlags(fs, &nodeTLS, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	snapShare, err := parseShare("snapshot-cpu", *snapCPU)
	if err != nil {
		return err
	}
	lf, err := logFlags()
	if err != nil {
		return err
	}
	etcd, err := etcdFlags()
	if err != nil {
		return err
	}
	wf, err := writerFlags()
	if err != nil {
		return err
	}
	if *id == "" {
		*id = posID
	} else if posID != "" && posID != *id {
		return fmt.Errorf("slave id given twice: %s and --id %s", posID, *id)
	}
	n, err := strconv.Atoi(*id)
	if err != nil || n < 1 {
		return fmt.Errorf("slave id must be a positive integer (walship slave 1), got %q", *id)
	}
	if *addr == "" {
		*addr = ":" + strconv.Itoa(8080+n)
	}
	if *data == "" {
		*data = filepath.Join("walship-data", "slave-"+*id)
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	masterPass, err := masterPassword(*masterUser, *masterPassFile)
	if err != nil {
		return err
	}
	masters := splitURLs(*masterURL)
	if len(masters) == 0 {
		return errors.New("--master: give the master's URL")
	}
	node, err := StartNode(NodeConfig{AuthFile: *authFile, MasterUser: *masterUser, MasterPassword: masterPass, Role: "slave", ID: *id, Addr: *addr, Advertise: *advertise, Data: *data,
		MasterURL: masters[0], Peers: append(masters[1:], splitURLs(*peers)...), Logger: logger, QueryTimeout: *queryTimeout, PprofAddr: *pprofAddr,
		JoinFromSnapshot: *join, SnapshotCPU: snapShare, TLS: nodeTLS,
		RetainEntries: lf.RetainEntries, RetainBytes: lf.RetainBytes, RetainFor: lf.RetainFor, SegmentBytes: lf.SegmentBytes,
		CompactEvery: lf.CompactEvery, Etcd: etcd, ReadyHeard: *readyHeard, ReadyLag: *readyLag,
		WriteTimeout: wf.WriteTimeout, MinFree: wf.MinFree, VerifyEvery: wf.VerifyEvery,
		MinReplicas: wf.MinReplicas, MinReplicasWait: wf.MinReplicasWait})
	if err != nil {
		return err
	}
	return serve(ctx, node, logger)
}

// logFlags are the flags of a node's log: its retention and segments, the
// same on a master and on a slave (which keeps a copy).
type logFlags struct {
	RetainEntries uint64
	RetainBytes   int64
	RetainFor     time.Duration
	SegmentBytes  int64
	CompactEvery  time.Duration
}

// addLogFlags adds the log's flags to fs; the function it returns reads
// them once fs is parsed.
func addLogFlags(fs *flag.FlagSet) func() (logFlags, error) {
	retainEntries := fs.Uint64("log-retain-entries", 1_000_000, "keep at most this many log entries (older ones go once a snapshot covers them; a slave that needs them bootstraps from the snapshot); 0: no cap")
	retainSize := fs.String("log-retain-size", "", "keep at most this much log on disk, e.g. 1GiB; empty: no cap")
	retainFor := fs.Duration("log-retain-for", 0, "keep log entries at most this long, e.g. 24h; 0: no cap")
	segmentSize := fs.String("log-segment-size", "", "size of a log segment file, the unit the log is removed in, e.g. 8MiB; empty: an eighth of the retention, 1 MiB to 64 MiB")
	compactEvery := fs.Duration("log-compact-every", 10*time.Second, "how often to check the log against the retention")
	return func() (logFlags, error) {
		lf := logFlags{RetainEntries: *retainEntries, RetainFor: *retainFor, CompactEvery: *compactEvery}
		var err error
		if lf.RetainBytes, err = parseSize("log-retain-size", *retainSize); err != nil {
			return lf, err
		}
		if lf.SegmentBytes, err = parseSize("log-segment-size", *segmentSize); err != nil {
			return lf, err
		}
		return lf, nil
	}
}

// writerFlags are the flags of the write path: the master's, and a
// slave's for when it is promoted (a node's role may switch).
type writerFlags struct {
	WriteTimeout    time.Duration
	VerifyEvery     uint64
	MinFree         string
	MinReplicas     int
	MinReplicasWait time.Duration
}

// addWriterFlags adds the write path's flags to fs (onSlave: said as
// what the node does once promoted); the function it returns reads them
// once fs is parsed.
func addWriterFlags(fs *flag.FlagSet, onSlave bool) func() (writerFlags, error) {
	when := ""
	if onSlave {
		when = "once this node is the master (promoted): "
	}
	writeTimeout := fs.Duration("write-timeout", 5*time.Second, when+"stop a write statement that runs longer (the one writer serves every client); -1ns: no limit")
	verifyEvery := fs.Uint64("verify-every", DefaultVerifyEvery, when+"log a replica check after this many entries: every slave compares its content with the master's there, and stops applying (diverged) on a difference; 0: only when asked (POST /db/verify, walship verify)")
	minFree := fs.String("min-free-space", "auto", when+"refuse writes (507) while the data volume has less free space: a size (256MiB), a share (5%), 0 for no check; auto: the smaller of 256MiB and 5%")
	minReplicas := fs.Int("min-replicas", 0, when+"default write concern: answer a write once this many slaves hold it fsynced in their log (a write may ask otherwise with w=N); with 1 or more, losing the master alone loses no acknowledged write; 0: answer once the master has it. Give every node the same, so that it holds after a failover")
	minReplicasWait := fs.Duration("min-replicas-timeout", api.DefaultMinReplicasWait, when+"how long a write waits for --min-replicas slaves; then it is answered, committed, with the shortfall said")
	return func() (writerFlags, error) {
		if *minReplicas < 0 || *minReplicasWait <= 0 {
			return writerFlags{}, errors.New("--min-replicas must be at least 0, --min-replicas-timeout above 0")
		}
		return writerFlags{WriteTimeout: *writeTimeout, VerifyEvery: *verifyEvery, MinFree: *minFree,
			MinReplicas: *minReplicas, MinReplicasWait: *minReplicasWait}, nil
	}
}

// addReadyFlags adds the flags of a node's readiness (GET /readyz) to fs;
// both roles take them, as a node's role may switch.
func addReadyFlags(fs *flag.FlagSet) (heard *time.Duration, lag *int64) {
	heard = fs.Duration("ready-heard", api.DefaultReadyHeard, "a slave is not ready (GET /readyz 503) once its master has not answered for this long; -1ns: no bound")
	lag = fs.Int64("ready-lag", api.DefaultReadyLag, "a slave is not ready while it is more than this many entries behind its master; -1: no bound")
	return heard, lag
}

// waitReady is used by demo to print only once every node answers.
func waitReady(ctx context.Context, check func(context.Context) error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if err := check(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// masterPassword returns the password of a slave's --master-user: from
// --master-password-file, else WALSHIP_MASTER_PASSWORD. It is never a flag,
// which any user of the machine could read in the process list.
func masterPassword(user, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--master-password-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	pass := os.Getenv("WALSHIP_MASTER_PASSWORD")
	if user != "" && pass == "" {
		return "", errors.New("--master-user needs a password: set WALSHIP_MASTER_PASSWORD or give --master-password-file")
	}
	return pass, nil
}

// splitURLs reads a comma-separated list of URLs, without trailing
// slashes.
func splitURLs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// loopback reports whether addr listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
