package api

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walship/walship/wal"
)

// Metrics are a node's Prometheus metrics, served at GET /metrics. They
// live in their own registry (no process-wide state). Create them with
// NewMetrics, give ObserveCommit to the master and ObserveApply to the
// slave, and set Server.Metrics.
type Metrics struct {
	reg *prometheus.Registry
	// concernShortfalls counts writes answered with fewer slaves than
	// their write concern asked for.
	concernShortfalls prometheus.Counter
	requests          *prometheus.CounterVec
	duration          *prometheus.HistogramVec
	batch             prometheus.Histogram
	appendDur         prometheus.Histogram
	applyDur          prometheus.Histogram
	applied           prometheus.Histogram
	// appendFailures counts writes answered with a failed log append;
	// applyFailures batches of entries SQLite could not apply;
	// feedFailures feed requests answered with an error.
	appendFailures prometheus.Counter
	applyFailures  prometheus.Counter
	feedFailures   prometheus.Counter
}

// NewMetrics returns the metrics with Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.concernShortfalls = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "walship_write_concern_shortfalls_total",
		Help: "Writes committed and answered with fewer slaves having applied them than their write concern (w=N&applied) asked for.",
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "walship_http_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "walship_http_request_seconds", Help: "Time from a request's headers read to its handler's return, by route (long-polls of the feed included).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route"})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "walship_write_batch_requests", Help: "Requests carried by one group commit (one log fsync).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	m.appendDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "walship_log_append_seconds", Help: "Time of one log append, its fsync included.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
	m.applyDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "walship_apply_seconds", Help: "Time to run and commit one batch in SQLite (master: a group commit; slave: one feed answer).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
	m.applied = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "walship_apply_batch_entries", Help: "Entries applied in one SQLite transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	m.appendFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "walship_log_append_failures_total",
		Help: "Writes answered with a failed log append (nothing of them written): a full disk, an I/O error.",
	})
	m.applyFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "walship_apply_failures_total",
		Help: "Batches of log entries SQLite could not apply (a slave stalled or diverged, a master halted), as reported by ObserveApplyFailure.",
	})
	m.feedFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "walship_feed_failures_total",
		Help: "Replication feed requests (GET /log/entries) answered with an error status (400 and above).",
	})
	m.reg.MustRegister(m.concernShortfalls, m.requests, m.duration, m.batch, m.appendDur, m.applyDur, m.applied,
		m.appendFailures, m.applyFailures, m.feedFailures,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// ObserveCommit records one group commit of the master.
func (m *Metrics) ObserveCommit(requests, entries int, appendDur, applyDur time.Duration) {
	m.batch.Observe(float64(requests))
	if entries > 0 {
		m.appendDur.Observe(appendDur.Seconds())
		m.applied.Observe(float64(entries))
	}
	m.applyDur.Observe(applyDur.Seconds())
}

// ObserveApply records one batch applied by a slave.
func (m *Metrics) ObserveApply(entries int, d time.Duration) {
	m.applied.Observe(float64(entries))
	m.applyDur.Observe(d.Seconds())
}

// ObserveApplyFailure records a batch of entries that SQLite could not
// apply: give it to the slave and the master as the hook of their failed
// applies.
func (m *Metrics) ObserveApplyFailure(error) { m.applyFailures.Inc() }

// registerMetrics adds the node's gauges, read at each scrape, and the
// route.
func (s *Server) registerMetrics(r *mux.Router) {
	m := s.Metrics
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("walship_applied_index", "Index of the last log entry applied to this node's database.",
		func() float64 { return float64(s.db().AppliedIndex()) })
	gauge("walship_process_rss_anon_bytes", "Anonymous resident memory of the process (RssAnon in /proc/self/status; bbolt and SQLite map their files, which total RSS also counts). 0 where unknown.",
		rssAnon)
	if s.Snapshots != nil {
		gauge("walship_snapshot_index", "Applied index of this node's latest snapshot (0: none).", func() float64 {
			if info, err := s.Snapshots.Latest(); err == nil {
				return float64(info.Index)
			}
			return 0
		})
		gauge("walship_snapshot_age_seconds", "Age of this node's latest snapshot (0: none).", func() float64 {
			if info, err := s.Snapshots.Latest(); err == nil {
				return time.Since(info.Created).Seconds()
			}
			return 0
		})
	}
	// The node's log: the master's, or the copy a slave keeps (the role
	// may switch at run time: each scrape reads the current one).
	logOf := func() *wal.Log {
		if fd := s.feed(); fd != nil {
			return fd.Log()
		}
		return nil
	}
	logGauge := func(name, help string, f func(*wal.Log) float64) {
		gauge(name, help, func() float64 {
			if lg := logOf(); lg != nil {
				return f(lg)
			}
			return 0
		})
	}
	logGauge("walship_log_first_index", "First index of this node's log.", func(lg *wal.Log) float64 { return float64(lg.FirstIndex()) })
	logGauge("walship_log_last_index", "Last index of this node's log.", func(lg *wal.Log) float64 { return float64(lg.LastIndex()) })
	logGauge("walship_log_size_bytes", "Bytes this node's log files take.", func(lg *wal.Log) float64 { return float64(lg.Size()) })
	logGauge("walship_log_segments", "Files this node's log is kept in (log.db and the sealed segments).", func(lg *wal.Log) float64 { return float64(lg.Segments()) })
	logGauge("walship_epoch", "This node's epoch: the master generation it follows or leads.", func(lg *wal.Log) float64 { return float64(lg.Epoch()) })
	gauge("walship_disk_free_bytes", "Free bytes of the volume that holds the master's log (-1: unknown, or not the master).", func() float64 {
		m := s.roles().m
		if m == nil {
			return -1
		}
		free, err := m.DiskFree()
		if err != nil {
			return -1
		}
		return float64(free)
	})
	m.reg.MustRegister(&slaveCollector{s: s}, &stateCollector{s: s})
	gauge("walship_lag_entries", "Entries the master has that this slave has not applied yet (0 on the master).", func() float64 {
		sl := s.roles().sl
		if sl == nil {
			return 0
		}
		st, applied := sl.Status(), s.db().AppliedIndex()
		if st.MasterLast > applied {
			return float64(st.MasterLast - applied)
		}
		return 0
	})
	gauge("walship_lag_seconds", "Seconds since this slave last had applied everything the master had (0 while caught up, and on the master).", func() float64 {
		sl := s.roles().sl
		if sl == nil {
			return 0
		}
		st := sl.Status()
		if st.MasterLast <= s.db().AppliedIndex() || st.LastCaughtUp.IsZero() {
			return 0
		}
		return time.Since(st.LastCaughtUp).Seconds()
	})
	s.registerVerifyMetrics(m)
	r.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
			next.ServeHTTP(rec, r)
			took := time.Since(start)
			route := r.URL.Path
			if cur := mux.CurrentRoute(r); cur != nil {
				if t, err := cur.GetPathTemplate(); err == nil {
					route = t
				}
			}
			m.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
			if route == "/log/entries" && rec.code >= 400 && rec.code != StatusClientClosed {
				m.feedFailures.Inc()
			}
			m.duration.WithLabelValues(route).Observe(took.Seconds())
		})
	})
}

// slaveCollector reports, on a node that serves its log (the master, a
// slave that others follow), each follower's applied index and lag in
// entries and in seconds (the age of the oldest entry it lacks).
type slaveCollector struct{ s *Server }

var (
	slaveAppliedDesc = prometheus.NewDesc("walship_slave_applied_index", "A slave's applied index, as it last told the master.", []string{"slave"}, nil)
	slaveLagDesc     = prometheus.NewDesc("walship_slave_lag_entries", "Entries of the master's log a slave has not applied.", []string{"slave"}, nil)
	slaveLagSecDesc  = prometheus.NewDesc("walship_slave_lag_seconds", "Age of the oldest entry a slave has not applied (0 when caught up).", []string{"slave"}, nil)
)

func (c *slaveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- slaveAppliedDesc
	ch <- slaveLagDesc
	ch <- slaveLagSecDesc
}

func (c *slaveCollector) Collect(ch chan<- prometheus.Metric) {
	fd := c.s.feed()
	if fd == nil {
		return
	}
	lg := fd.Log()
	for _, sl := range fd.Followers() {
		ch <- prometheus.MustNewConstMetric(slaveAppliedDesc, prometheus.GaugeValue, float64(sl.Applied), sl.ID)
		ch <- prometheus.MustNewConstMetric(slaveLagDesc, prometheus.GaugeValue, float64(sl.Lag), sl.ID)
		age := 0.0
		if sl.Lag > 0 {
			if es, err := lg.Read(sl.Applied+1, 1, 1); err == nil && len(es) == 1 {
				age = time.Since(time.UnixMilli(es[0].Time)).Seconds()
			}
		}
		ch <- prometheus.MustNewConstMetric(slaveLagSecDesc, prometheus.GaugeValue, age, sl.ID)
	}
}

// stateCollector reports the node's state (walship_node_state, one
// series per state, 1 for the current one), whether a master can write,
// and a master's archive: read at each scrape, from the role the node has
// then.
type stateCollector struct{ s *Server }

var (
	nodeStateDesc = prometheus.NewDesc("walship_node_state",
		"The node's state: 1 for the current one, 0 for the others (a slave: streaming, catching_up, disconnected, diverged, stalled, bootstrapping; a master: master, halted, fenced, disk_low).",
		[]string{"state"}, nil)
	canWriteDesc = prometheus.NewDesc("walship_master_can_write",
		"On a master, 1 while it can write (it leads, is neither halted nor fenced, its disk is not low, its log takes appends), else 0; absent on a slave.",
		nil, nil)
	archiveIndexDesc = prometheus.NewDesc("walship_archive_index",
		"Index up to which the master's log entries are in its archive (a master with --archive).", nil, nil)
	archiveFailingDesc = prometheus.NewDesc("walship_archive_failing",
		"1 while copying to the archive fails (compaction waits), else 0 (a master with --archive).", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodeStateDesc
	ch <- canWriteDesc
	ch <- archiveIndexDesc
	ch <- archiveFailingDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	rl := c.s.roles()
	state := c.s.nodeState()
	for _, st := range nodeStates {
		v := 0.0
		if st == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(nodeStateDesc, prometheus.GaugeValue, v, st)
	}
	if rl.m == nil {
		return
	}
	can := 0.0
	if leader, store := c.s.masterReady(rl.m); leader == nil && store == nil {
		can = 1
	}
	ch <- prometheus.MustNewConstMetric(canWriteDesc, prometheus.GaugeValue, can)
	if a, ok := rl.m.ArchiveStatus(); ok {
		failing := 0.0
		if a.Err != nil {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(archiveIndexDesc, prometheus.GaugeValue, float64(a.Index))
		ch <- prometheus.MustNewConstMetric(archiveFailingDesc, prometheus.GaugeValue, failing)
	}
}

// statusRecorder keeps the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush lets long answers through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// rssAnon reads RssAnon from /proc/self/status (Linux), in bytes.
func rssAnon() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					return kb * 1024
				}
			}
		}
	}
	return 0
}
