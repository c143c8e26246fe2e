package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
)

const benchUsage = `Usage: walship bench MODE [flags]

Loads a running cluster through rqlite's API (/db/execute, /db/query), so
the same load can be pointed at any rqlite-API server, and prints a report
with a live progress line while it runs.

Modes:
  write     N clients (-c) send S statements per request (-b): requests/s,
            statements/s, latency p50/p90/p99/max, errors
  read      point queries by primary key at one node: queries/s, latency
  lag       writes at the master while watching every slave: replication
            lag (commit at the master to applied on the slave) in time and
            entries
  catchup   starts a slave in this process and lets it catch up, stops it,
            writes N entries (the write mode's INSERT), restarts it and
            times how fast it applies them: entries/s
  ceiling   the same load against a no-op server started in this process
            (walship's HTTP stack, JSON decoded and encoded, no database)
  raw       this machine's limits without walship around them: log append
            with fsync, SQLite batched inserts, the log + apply pipeline at
            1/10/100/1000 statements per group commit, one HTTP round trip

With --ceiling, write and read also measure the no-op server with the same
client and concurrency first and print their figures as fractions of it.
Run 'walship bench MODE --help' for a mode's flags.
`

// benchConfig is the flags every mode shares.
type benchConfig struct {
	url      string
	clients  int
	batch    int
	duration time.Duration
	count    int
	table    string
	ceiling  bool
	read     bool
	payload  int // bytes of each written value; 0: the word "bench"
	remote   *remote
	// w is the write concern of each write (-1: none asked).
	w       int
	applied bool
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, benchUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return flag.ErrHelp
		}
		return errors.New("bench needs a mode: write, read, lag, catchup, ceiling or raw")
	}
	mode := args[0]
	fs := newFlagSet("bench "+mode, "walship bench "+mode+" [flags]", stderr)
	var cfg benchConfig
	fs.StringVar(&cfg.url, "url", "http://127.0.0.1:8080", "the node to load (write: the master or a slave; lag and catchup: the master)")
	fs.IntVar(&cfg.clients, "c", 16, "concurrent clients")
	fs.IntVar(&cfg.batch, "b", 1, "statements per request")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to run (unless --count)")
	fs.IntVar(&cfg.count, "count", 0, "requests to send in all (0: run for --duration); catchup: entries to write")
	fs.StringVar(&cfg.table, "table", "walship_bench", "table to write to and read from (created if missing)")
	fs.IntVar(&cfg.payload, "payload", 0, "write: bytes of random hex text in each written row (0: the 5-byte word bench)")
	fs.IntVar(&cfg.w, "w", -1, "write: the write concern, w=N (the master answers once N slaves hold each write); -1: none asked (the master's --min-replicas)")
	fs.BoolVar(&cfg.applied, "applied", false, "write: with -w, wait until the slaves applied each write")
	fs.BoolVar(&cfg.ceiling, "ceiling", false, "also measure the no-op server in the same run and report fractions of it")
	slaves := fs.String("slaves", "", "lag: slave URLs, comma separated (default: the master's /log/status)")
	rate := fs.Int("rate", 0, "lag: writes per second in all (0: as fast as the clients go)")
	cfg.remote = addRemoteFlags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := cfg.remote.open(stderr); err != nil {
		return err
	}
	if cfg.clients < 1 || cfg.batch < 1 || cfg.duration <= 0 || cfg.count < 0 || cfg.payload < 0 {
		return errors.New("-c, -b and --duration must be positive, --count and --payload not negative")
	}
	switch mode {
	case "write":
		return benchLoad(ctx, cfg, stdout, stderr)
	case "read":
		cfg.read = true
		return benchLoad(ctx, cfg, stdout, stderr)
	case "ceiling":
		url, stop, err := startNoop()
		if err != nil {
			return err
		}
		defer stop()
		cfg.url = url
		return benchLoad(ctx, cfg, stdout, stderr)
	case "lag":
		return benchLag(ctx, cfg, *slaves, *rate, stdout, stderr)
	case "catchup":
		return benchCatchup(ctx, cfg, stdout, stderr)
	case "raw":
		return benchRaw(ctx, cfg, stdout, stderr)
	}
	return fmt.Errorf("unknown bench mode %q: use write, read, lag, catchup, ceiling or raw", mode)
}

// startNoop serves api.NewNoopHandler on a free loopback port.
func startNoop() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: api.NewNoopHandler()}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// loadResult is what one load run measured.
type loadResult struct {
	requests, statements, errors int64
	elapsed                      time.Duration
	lat                          []time.Duration // sorted
	firstErr                     string
}

func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }
func (r loadResult) sps() float64 { return float64(r.statements) / r.elapsed.Seconds() }
func (r loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

func benchLoad(ctx context.Context, cfg benchConfig, stdout, stderr io.Writer) error {
	c := cfg.remote.client(cfg.url, 30*time.Second)
	if err := prepareTable(ctx, c, cfg); err != nil {
		return err
	}
	var ceiling *loadResult
	if cfg.ceiling {
		url, stop, err := startNoop()
		if err != nil {
			return err
		}
		nc := cfg
		nc.url = url
		fmt.Fprintf(stderr, "ceiling: the no-op server, same client and concurrency\n")
		r, err := runLoad(ctx, nc, stderr)
		stop()
		if err != nil {
			return err
		}
		ceiling = &r
	}
	r, err := runLoad(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	what := "write"
	if cfg.read {
		what = "read"
	}
	fmt.Fprintf(stdout, "%s %s: %d clients, %d statements per request, %s\n", what, cfg.url, cfg.clients, cfg.batch, r.elapsed.Round(time.Millisecond))
	printLoad(stdout, "walship", r)
	if ceiling != nil {
		printLoad(stdout, "no-op", *ceiling)
		fmt.Fprintf(stdout, "  fraction of the no-op server: %.0f%% of its requests/s; p50 %.2fx its p50\n",
			100*r.rps()/ceiling.rps(), float64(r.pct(0.5))/float64(max(ceiling.pct(0.5), 1)))
	}
	if r.errors > 0 {
		fmt.Fprintf(stdout, "  first error: %s\n", r.firstErr)
	}
	return nil
}

func printLoad(w io.Writer, name string, r loadResult) {
	fmt.Fprintf(w, "  %-8s %9.0f requests/s %10.0f statements/s  latency p50 %s p90 %s p99 %s max %s  errors %d\n",
		name, r.rps(), r.sps(), r.pct(0.5).Round(time.Microsecond), r.pct(0.9).Round(time.Microsecond),
		r.pct(0.99).Round(time.Microsecond), r.pct(1).Round(time.Microsecond), r.errors)
}

// prepareTable creates the bench table and, for reads, fills it.
func prepareTable(ctx context.Context, c *client.Client, cfg benchConfig) error {
	resp, err := c.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "CREATE TABLE IF NOT EXISTS " + cfg.table + " (id INTEGER PRIMARY KEY, v TEXT)"})
	if err != nil {
		return fmt.Errorf("create the bench table at %s: %w", cfg.url, err)
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("create the bench table at %s: %w", cfg.url, err)
	}
	if !cfg.read {
		return nil
	}
	stmts := make([]client.Statement, 0, 1000)
	for i := 1; i <= 1000; i++ {
		stmts = append(stmts, client.Statement{SQL: "INSERT OR IGNORE INTO " + cfg.table + " (id, v) VALUES (?, ?)", Params: []any{i, "value " + strconv.Itoa(i)}})
	}
	resp, err = c.DBExecute(ctx, client.DBOptions{}, stmts...)
	if err == nil {
		err = resp.Err()
	}
	if err == nil {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = c.WaitApplied(wctx, resp.Index)
		cancel()
	}
	if err != nil {
		return fmt.Errorf("fill the bench table: %w", err)
	}
	return nil
}

// runLoad runs the clients and shows progress on stderr.
func runLoad(ctx context.Context, cfg benchConfig, stderr io.Writer) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	if cfg.count > 0 {
		cancel()
		ctx, cancel = context.WithCancel(context.Background())
	}
	defer cancel()
	hc := &http.Client{Timeout: 60 * time.Second, Transport: cfg.remote.transport()}
	var sent, done, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr string
	insert := client.Statement{SQL: "INSERT INTO " + cfg.table + " (v) VALUES (?)", Params: []any{"bench"}}
	if cfg.payload > 0 {
		// Random hex text: it compresses about as well as text does.
		insert = client.Statement{SQL: "INSERT INTO " + cfg.table + " (v) VALUES (substr(hex(randomblob(?)), 1, ?))", Params: []any{cfg.payload/2 + 1, cfg.payload}}
	}
	stmts := make([]client.Statement, cfg.batch)
	for i := range stmts {
		stmts[i] = insert
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < cfg.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client.Client{URL: strings.TrimRight(cfg.url, "/"), HTTP: hc}
			own := make([]time.Duration, 0, 4096)
			key := i
			for ctx.Err() == nil {
				if cfg.count > 0 && sent.Add(1) > int64(cfg.count) {
					break
				}
				t0 := time.Now()
				var resp *client.DBResponse
				var err error
				if cfg.read {
					key = key%1000 + 1
					resp, err = c.DBQuery(ctx, client.DBOptions{Level: "none"}, client.Statement{SQL: "SELECT v FROM " + cfg.table + " WHERE id = ?", Params: []any{key}})
					key += cfg.clients
				} else {
					resp, err = c.DBExecute(ctx, cfg.writeOptions(), stmts...)
				}
				if err == nil {
					err = resp.Err()
				}
				if ctx.Err() != nil && err != nil {
					break
				}
				own = append(own, time.Since(t0))
				if err != nil {
					if failed.Add(1) == 1 {
						mu.Lock()
						firstErr = err.Error()
						mu.Unlock()
					}
					continue
				}
				done.Add(1)
			}
			mu.Lock()
			lat = append(lat, own...)
			mu.Unlock()
		}()
	}
	stopProgress := progress(stderr, func() string {
		el := time.Since(start).Seconds()
		return fmt.Sprintf("%6.1fs  %8d requests  %8.0f/s  errors %d", el, done.Load(), float64(done.Load())/el, failed.Load())
	})
	wg.Wait()
	stopProgress()
	slices.Sort(lat)
	r := loadResult{requests: done.Load(), errors: failed.Load(), elapsed: time.Since(start), lat: lat, firstErr: firstErr}
	r.statements = r.requests * int64(cfg.batch)
	if r.requests == 0 && r.errors > 0 {
		return r, fmt.Errorf("every request failed: %s", firstErr)
	}
	return r, nil
}

// progress prints line() on one terminal line every half second until the
// returned stop is called.
func progress(w io.Writer, line func() string) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%s\n", line())
				return
			case <-t.C:
				fmt.Fprintf(w, "\r%s", line())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// benchLag writes at the master while watching every slave, and reports
// the time from the master's answer to each slave's applied index reaching
// the write, and the lag in entries.
func benchLag(ctx context.Context, cfg benchConfig, slaveList string, rate int, stdout, stderr io.Writer) error {
	mc := cfg.remote.client(cfg.url, 30*time.Second)
	var slaves []string
	if slaveList != "" {
		slaves = strings.Split(slaveList, ",")
	} else {
		st, err := mc.LogStatus(ctx)
		if err != nil {
			return fmt.Errorf("ask the master for its slaves: %w", err)
		}
		for _, s := range st.Slaves {
			slaves = append(slaves, s.URL)
		}
	}
	if len(slaves) == 0 {
		return errors.New("no slaves to watch: start some, or give --slaves")
	}
	if err := prepareTable(ctx, mc, cfg); err != nil {
		return err
	}
	type write struct {
		index uint64
		at    time.Time
	}
	var mu sync.Mutex
	var writes []write
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	// Watchers: poll each slave's applied index as often as it answers.
	type sample struct {
		applied uint64
		at      time.Time
	}
	watch := make([][]sample, len(slaves))
	var wg sync.WaitGroup
	for i, u := range slaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg.remote.client(strings.TrimRight(u, "/"), 30*time.Second)
			for ctx.Err() == nil {
				st, err := c.LogStatus(ctx)
				if err == nil {
					watch[i] = append(watch[i], sample{st.AppliedIndex, time.Now()})
				}
			}
		}()
	}
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.clients) / float64(rate))
	}
	var lastIndex atomic.Uint64
	for i := 0; i < cfg.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg.remote.client(cfg.url, 30*time.Second)
			next := time.Now()
			for ctx.Err() == nil {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
					next = next.Add(interval)
				}
				resp, err := c.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "INSERT INTO " + cfg.table + " (v) VALUES ('lag')"})
				if err != nil || resp.Err() != nil || resp.Index == 0 {
					continue
				}
				mu.Lock()
				writes = append(writes, write{resp.Index, time.Now()})
				mu.Unlock()
				for {
					cur := lastIndex.Load()
					if resp.Index <= cur || lastIndex.CompareAndSwap(cur, resp.Index) {
						break
					}
				}
			}
		}()
	}
	stopProgress := progress(stderr, func() string {
		mu.Lock()
		n := len(writes)
		mu.Unlock()
		return fmt.Sprintf("%d writes, master at %d", n, lastIndex.Load())
	})
	wg.Wait()
	stopProgress()
	fmt.Fprintf(stdout, "lag: %d writes at %s (%d clients), %d slaves, %s\n", len(writes), cfg.url, cfg.clients, len(slaves), cfg.duration)
	for i, u := range slaves {
		var lags []time.Duration
		var entryLags []uint64
		for _, wr := range writes {
			// the first sample that shows the write applied
			k, _ := slices.BinarySearchFunc(watch[i], wr.index, func(s sample, idx uint64) int {
				if s.applied < idx {
					return -1
				}
				return 1
			})
			if k < len(watch[i]) {
				d := watch[i][k].at.Sub(wr.at)
				lags = append(lags, max(d, 0))
			}
		}
		// lag in entries: at each sample, how far behind the last write
		// answered before it the slave was
		wi := 0
		var last uint64
		for _, s := range watch[i] {
			for wi < len(writes) && !writes[wi].at.After(s.at) {
				last = max(last, writes[wi].index)
				wi++
			}
			if last > s.applied {
				entryLags = append(entryLags, last-s.applied)
			} else {
				entryLags = append(entryLags, 0)
			}
		}
		slices.Sort(lags)
		slices.Sort(entryLags)
		if len(lags) == 0 {
			fmt.Fprintf(stdout, "  %s: no write seen applied\n", u)
			continue
		}
		p := func(q float64) time.Duration { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
		e := func(q float64) uint64 { return entryLags[min(len(entryLags)-1, int(q*float64(len(entryLags))))] }
		fmt.Fprintf(stdout, "  %s: lag p50 %s p99 %s max %s; in entries p50 %d p99 %d max %d (%d samples)\n",
			u, p(0.5).Round(time.Microsecond), p(0.99).Round(time.Microsecond), p(1).Round(time.Microsecond),
			e(0.5), e(0.99), e(1), len(watch[i]))
	}
	fmt.Fprintln(stdout, "  (the time from the master's answer until a poll of the slave's /log/status shows the write applied; polls run back to back)")
	return nil
}

// benchCatchup times a slave that is --count entries (default 100,000)
// behind: it starts a slave in this process, lets it catch up, stops it,
// writes the entries at the master, restarts the slave and times how fast it
// applies them.
func benchCatchup(ctx context.Context, cfg benchConfig, stdout, stderr io.Writer) error {
	n := cfg.count
	if n == 0 {
		n = 100000
	}
	mc := cfg.remote.client(cfg.url, 30*time.Second)
	if err := prepareTable(ctx, mc, cfg); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "walship-catchup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger, _ := newLogger(io.Discard, "error")
	startSlave := func() (*Node, error) {
		return StartNode(NodeConfig{Role: "slave", ID: "bench-catchup", Addr: "127.0.0.1:0", Data: filepath.Join(dir, "slave"),
			MasterURL: strings.TrimRight(cfg.url, "/"), Logger: logger})
	}
	// waitApplied waits until node applied target, showing progress.
	waitApplied := func(node *Node, what string, target uint64) error {
		var applied atomic.Uint64
		stop := progress(stderr, func() string { return fmt.Sprintf("%s: %d of %d entries", what, applied.Load(), target) })
		defer stop()
		for {
			applied.Store(node.db.AppliedIndex())
			if applied.Load() >= target {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	}

	// A slave that has everything the master has, then stops.
	st, err := mc.LogStatus(ctx)
	if err != nil {
		return err
	}
	node, err := startSlave()
	if err != nil {
		return err
	}
	err = waitApplied(node, "syncing a slave", st.LastIndex)
	from := node.db.AppliedIndex()
	if cerr := node.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	// Write the entries with many clients so that this part is quick.
	var written atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	for i := 0; i < cfg.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := cfg.remote.client(cfg.url, 30*time.Second)
			for written.Add(1) <= int64(n) {
				resp, err := c.DBExecute(ctx, client.DBOptions{}, client.Statement{SQL: "INSERT INTO " + cfg.table + " (v) VALUES (?)", Params: []any{"bench"}})
				if err == nil {
					err = resp.Err()
				}
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					return
				}
			}
		}()
	}
	stopProgress := progress(stderr, func() string { return fmt.Sprintf("writing: %d of %d entries", min(written.Load(), int64(n)), n) })
	wg.Wait()
	stopProgress()
	select {
	case err := <-errc:
		return fmt.Errorf("write the entries: %w", err)
	default:
	}
	st, err = mc.LogStatus(ctx)
	if err != nil {
		return err
	}
	target := st.LastIndex

	// The stopped slave comes back behind by the entries written.
	t0 := time.Now()
	node, err = startSlave()
	if err != nil {
		return err
	}
	defer node.Close()
	if err := waitApplied(node, "catching up", target); err != nil {
		return err
	}
	el := time.Since(t0)
	fmt.Fprintf(stdout, "catchup: a slave %d entries behind (%d..%d) caught up in %s: %.0f entries/s\n",
		target-from, from+1, target, el.Round(time.Millisecond), float64(target-from)/el.Seconds())
	return nil
}

// writeOptions are the options of the load's writes: the write concern
// asked, if any.
func (cfg benchConfig) writeOptions() client.DBOptions {
	if cfg.w < 0 {
		return client.DBOptions{}
	}
	w := cfg.w
	return client.DBOptions{W: &w, Applied: cfg.applied}
}
