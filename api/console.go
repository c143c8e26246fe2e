package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/console"
	"github.com/walship/walship/retention"
	"github.com/walship/walship/wal"
)

// registerConsoleRoutes serves the web console (package console) at
// /console, and the read-only JSON it draws besides the rqlite API: the
// cluster as this node sees it (GET /log/cluster) and the latest entries
// of the log (GET /log/recent).
func (s *Server) registerConsoleRoutes(r *mux.Router) {
	r.PathPrefix("/console").Handler(console.Handler())
	r.HandleFunc("/log/recent", s.handleRecent).Methods(http.MethodGet)
	r.HandleFunc("/log/cluster", s.handleCluster).Methods(http.MethodGet)
}

// handleRecent serves GET /log/recent[?n=N][&from=I]: the last N entries of
// the node's log (RecentDefault), or N entries from index I on (from the
// log's first when I is below it), decoded. A slave that keeps no log
// answers with its master's.
func (s *Server) handleRecent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n := client.RecentDefault
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 1 || i > client.RecentMax {
			s.writeError(w, r, fmt.Errorf("%w: n must be an integer from 1 to %d, got %q", ErrBadRequest, client.RecentMax, v))
			return
		}
		n = i
	}
	var from uint64
	if v := q.Get("from"); v != "" {
		i, err := strconv.ParseUint(v, 10, 64)
		if err != nil || i == 0 {
			s.writeError(w, r, fmt.Errorf("%w: from must be a log index from 1 on, got %q", ErrBadRequest, v))
			return
		}
		from = i
	}
	rl := s.roles()
	var lg *wal.Log
	var pol retention.Policy
	if rl.m != nil {
		lg, pol = rl.m.Log(), rl.m.Retention()
	} else {
		lg, pol = rl.sl.Log(), rl.sl.Retention()
	}
	if lg == nil {
		s.forwardRq(w, r, &rqParams{timeout: 10 * time.Second}, nil, false)
		return
	}
	entries, err := recentEntries(lg, from, n)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("read the log: %w", err))
		return
	}
	out := client.RecentEntries{Role: s.roleOf(rl), LogID: lg.ID(), Epoch: lg.Epoch(), FirstIndex: lg.FirstIndex(),
		LastIndex: lg.LastIndex(), LogBytes: lg.Size(), LogSegments: lg.Segments(),
		Retention: client.Retention{Entries: pol.Entries, Bytes: pol.Bytes}, Entries: make([]client.RecentEntry, 0, len(entries))}
	if pol.For > 0 {
		out.Retention.For = pol.For.String()
	}
	for _, e := range entries {
		out.Entries = append(out.Entries, recentEntry(e))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) roleOf(rl roles) string {
	if rl.m != nil {
		return "master"
	}
	return "slave"
}

// recentEntries reads n entries of lg from index from on, or its last n
// when from is 0. An entry compacted away meanwhile moves the start to
// the log's new first index.
func recentEntries(lg *wal.Log, from uint64, n int) ([]*wal.Entry, error) {
	for attempt := 0; ; attempt++ {
		first, last := lg.FirstIndex(), lg.LastIndex()
		start := from
		if from == 0 && last >= uint64(n) {
			start = last - uint64(n) + 1
		}
		start = max(start, first)
		if last == 0 || start > last {
			return nil, nil
		}
		entries, err := lg.Read(start, n, 8<<20)
		if errors.Is(err, wal.ErrOutOfRange) && attempt < 3 {
			continue
		}
		return entries, err
	}
}

// recentEntry describes e for GET /log/recent.
func recentEntry(e *wal.Entry) client.RecentEntry {
	out := client.RecentEntry{Index: e.Index, Epoch: e.Epoch, Txn: e.Txn, StatementCount: len(e.Statements),
		Time:       time.UnixMilli(e.Time).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Statements: make([]client.RecentStatement, 0, min(len(e.Statements), client.RecentMaxStatements))}
	switch {
	case e.Check.IsMarker():
		out.Check = "marker"
	case e.Check != nil:
		out.Check = fmt.Sprintf("result of %d", e.Check.Of)
	}
	for _, st := range e.Statements[:min(len(e.Statements), client.RecentMaxStatements)] {
		sql, cut := cutText(st.SQL, client.RecentMaxSQL)
		out.Statements = append(out.Statements, client.RecentStatement{SQL: sql, SQLTruncated: cut, Params: recentParams(st.Params)})
	}
	return out
}

// recentParams returns a statement's parameters as rqlite's requests
// carry them: an array of positional values, or an object of named ones
// (a positional one among them under "?N").
func recentParams(ps []wal.Param) any {
	if len(ps) == 0 {
		return nil
	}
	if !slices.ContainsFunc(ps, func(p wal.Param) bool { return p.Name != "" }) {
		out := make([]any, len(ps))
		for i, p := range ps {
			out[i] = recentValue(p.Value)
		}
		return out
	}
	out := make(map[string]any, len(ps))
	for i, p := range ps {
		name := p.Name
		if name == "" {
			name = "?" + strconv.Itoa(i+1)
		}
		out[name] = recentValue(p.Value)
	}
	return out
}

// recentValue returns v as JSON shows it: a BLOB as an SQL hex literal, a
// text or BLOB cut at RecentMaxSQL bytes (… marks the cut), an infinite
// REAL as SQLite prints it.
func recentValue(v wal.Value) any {
	switch v.Kind {
	case wal.KindInteger:
		return v.Int
	case wal.KindReal:
		if math.IsInf(v.Real, 0) || math.IsNaN(v.Real) {
			return strconv.FormatFloat(v.Real, 'g', -1, 64)
		}
		return v.Real
	case wal.KindText:
		t, cut := cutText(v.Text, client.RecentMaxSQL)
		if cut {
			t += "…"
		}
		return t
	case wal.KindBlob:
		b, more := v.Blob, ""
		if len(b) > client.RecentMaxSQL/2 {
			b, more = b[:client.RecentMaxSQL/2], "…"
		}
		return "x'" + strings.ToUpper(hex.EncodeToString(b)) + "'" + more
	}
	return nil
}

// cutText cuts s to at most limit bytes, at a character's start.
func cutText(s string, limit int) (string, bool) {
	if len(s) <= limit {
		return s, false
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], true
}

// The bounds of GET /log/cluster: how long each node may take to answer
// (?timeout), and how many nodes it asks.
const (
	DefaultClusterTimeout = 2 * time.Second
	MaxClusterTimeout     = 30 * time.Second
	maxClusterNodes       = 256
)

// handleCluster serves GET /log/cluster[?timeout=D]: every node this node
// learns of, from its own status on (the followers each node lists, the
// node each slave follows), each asked for GET /status with the request's
// own credentials, as /nodes does. The web console's cluster view.
func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	timeout := DefaultClusterTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxClusterTimeout {
			s.writeError(w, r, fmt.Errorf("%w: timeout must be a duration above 0 and at most %s, got %q", ErrBadRequest, MaxClusterTimeout, v))
			return
		}
		timeout = d
	}
	ctx := client.WithAuthorization(r.Context(), r.Header.Get("Authorization"))
	writeJSON(w, http.StatusOK, s.cluster(ctx, timeout))
}

// clusterMember is a node GET /log/cluster learned of.
type clusterMember struct {
	url  string // the URL it was first learned at
	id   string
	key  string            // its advertised URL and id, once it answered
	st   *client.LogStatus // nil when it did not answer
	err  error
	self bool
	// view is how the first node that lists it as its follower sees it.
	view *client.SlaveStatus
}

// clusterLead is a URL a node named: one of its followers (with its view
// of it), or the node it follows.
type clusterLead struct {
	url  string
	view *client.SlaveStatus
}

func (m *clusterMember) leads() []clusterLead {
	if m.st == nil {
		return nil
	}
	var out []clusterLead
	for i := range m.st.Slaves {
		sl := &m.st.Slaves[i]
		if u := normalURL(sl.URL); u != "" {
			out = append(out, clusterLead{url: u, view: sl})
		}
	}
	if m.st.Role == "slave" && normalURL(m.st.Master) != "" {
		out = append(out, clusterLead{url: normalURL(m.st.Master)})
	}
	return out
}

// cluster walks the cluster from this node, a wave of nodes at a time
// (each wave asked at once), and describes every node it learned of.
func (s *Server) cluster(ctx context.Context, timeout time.Duration) client.ClusterStatus {
	own := s.logStatus()
	self := &clusterMember{url: normalURL(s.Advertise), id: s.ID, st: &own, self: true}
	members := []*clusterMember{self}
	byURL := map[string]*clusterMember{self.url: self}
	byKey := map[string]*clusterMember{self.url + " " + self.id: self}
	wave := self.leads()
	for len(wave) > 0 {
		var ask []string
		for _, l := range wave {
			if byURL[l.url] == nil && !slices.Contains(ask, l.url) {
				ask = append(ask, l.url)
			}
		}
		ask = ask[:min(len(ask), max(0, maxClusterNodes-len(members)))]
		probes := make([]*clusterMember, len(ask))
		var wg sync.WaitGroup
		for i, u := range ask {
			wg.Add(1)
			go func() {
				defer wg.Done()
				probes[i] = s.probeNode(ctx, u, timeout)
			}()
		}
		wg.Wait()
		var fresh []*clusterMember
		for _, p := range probes {
			// A node reached at another URL than it advertises is known
			// as one by its advertised URL and id.
			key := p.url
			if p.st != nil {
				key = p.key
			}
			if m := byKey[key]; m != nil {
				byURL[p.url] = m
				continue
			}
			byKey[key], byURL[p.url] = p, p
			members = append(members, p)
			fresh = append(fresh, p)
		}
		for _, l := range wave {
			if m := byURL[l.url]; m != nil && l.view != nil && m.view == nil {
				m.view = l.view
			}
		}
		wave = nil
		for _, m := range fresh {
			wave = append(wave, m.leads()...)
		}
	}

	// The master: the node this one follows, hop by hop.
	var root *clusterMember
	seen := map[*clusterMember]bool{}
	for cur := self; cur != nil && !seen[cur]; cur = byURL[normalURL(cur.st.Master)] {
		seen[cur] = true
		if cur.st == nil || cur.st.Role != "slave" {
			root = cur
			break
		}
	}
	out := client.ClusterStatus{Node: self.url, Nodes: []client.ClusterNode{}}
	known := false // whether the master's last index is known
	if root != nil {
		out.Master = root.url
		if st := root.st; st != nil {
			out.LogID, out.Epoch, out.FirstIndex, out.LastIndex, known = st.LogID, st.Epoch, st.FirstIndex, st.LastIndex, true
		} else {
			// What its slaves last heard of it.
			for _, m := range members {
				if m.st != nil && m.st.Role == "slave" && byURL[normalURL(m.st.Master)] == root && m.st.LastIndex >= out.LastIndex {
					out.LogID, out.FirstIndex, out.LastIndex, known = m.st.LogID, m.st.FirstIndex, m.st.LastIndex, true
				}
			}
		}
		members = append([]*clusterMember{root}, slices.DeleteFunc(members, func(m *clusterMember) bool { return m == root })...)
	}
	now := time.Now()
	for _, m := range members {
		out.Nodes = append(out.Nodes, clusterRow(m, m == root, &out, known, now))
	}
	s.behind(ctx, root, out.Nodes, timeout)
	return out
}

// clusterRow describes one node: its own status when it answered, the
// view of the node that lists it otherwise.
func clusterRow(m *clusterMember, isRoot bool, cs *client.ClusterStatus, known bool, now time.Time) client.ClusterNode {
	row := client.ClusterNode{ID: m.id, URL: m.url, Self: m.self}
	if m.view != nil {
		if t, err := time.Parse(time.RFC3339, m.view.LastSeen); err == nil {
			seen := max(0, now.Sub(t).Seconds())
			row.LastSeenSeconds = &seen
		}
	}
	switch st := m.st; {
	case st == nil:
		row.State, row.Role = "unreachable", "node"
		var se *client.StatusError
		if errors.As(m.err, &se) {
			row.State = "unknown" // it answered, with an error
		}
		row.Error = m.err.Error()
		switch {
		case m.view != nil:
			row.Role, row.ID, row.AppliedIndex = "slave", m.view.ID, m.view.AppliedIndex
		case isRoot:
			row.Role, row.ID = "master", "master"
		}
	case st.Role == "slave":
		row.Role, row.ID, row.AppliedIndex, row.Epoch, row.Upstream = "slave", st.ID, st.AppliedIndex, st.Epoch, st.Master
		row.State, row.Error = st.State, st.Error
		if cs.LogID != "" && st.LogID != "" && st.LogID != cs.LogID && st.State != client.StateDiverged {
			row.State, row.Error = client.StateDiverged, fmt.Sprintf("follows log %s, the master's is %s", st.LogID, cs.LogID)
		}
	default:
		row.Role, row.AppliedIndex, row.Epoch, row.State, row.Error = st.Role, st.AppliedIndex, st.Epoch, "ok", st.Error
		if st.State != "" {
			row.State = st.State
		}
		if !isRoot {
			row.Error = strings.TrimPrefix(row.Error+"; another master: epoch "+strconv.FormatUint(st.Epoch, 10)+" of log "+st.LogID, "; ")
			return row // its lag against the master means nothing
		}
	}
	if known {
		lag := uint64(0)
		if cs.LastIndex > row.AppliedIndex {
			lag = cs.LastIndex - row.AppliedIndex
		}
		row.LagEntries = &lag
	}
	return row
}

// probeNode asks the node at u for its status, within timeout.
func (s *Server) probeNode(ctx context.Context, u string, timeout time.Duration) *clusterMember {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &clusterMember{url: u}
	ns, err := (&client.Client{URL: u, HTTP: s.fwd}).NodeStatus(ctx)
	switch {
	case err != nil:
		p.err = err
	case ns.Log == nil:
		p.err = errors.New("not a walship node: its /status has no log")
	default:
		p.id, p.st = ns.Node.ID, ns.Log
		p.key = normalURL(ns.Node.APIAddr) + " " + ns.Node.ID
		if ns.Node.APIAddr == "" {
			p.key = u + " " + ns.Node.ID
		}
	}
	return p
}

// behind sets how long ago the master took the oldest entry each lagging
// node lacks, read from this node's log when it holds that entry, else
// from the master's (GET /log/recent).
func (s *Server) behind(ctx context.Context, root *clusterMember, rows []client.ClusterNode, timeout time.Duration) {
	var lg *wal.Log
	if rl := s.roles(); rl.m != nil {
		lg = rl.m.Log()
	} else {
		lg = rl.sl.Log()
	}
	var wg sync.WaitGroup
	for i := range rows {
		row := &rows[i]
		if row.LagEntries == nil {
			continue
		}
		if *row.LagEntries == 0 {
			zero := 0.0
			row.BehindSeconds = &zero
			continue
		}
		want := row.AppliedIndex + 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, ok := entryTime(lg, want)
			if !ok && root != nil && root.st != nil && !root.self {
				at, ok = s.remoteEntryTime(ctx, root.url, want, timeout)
			}
			if ok {
				b := max(0, time.Since(at).Seconds())
				row.BehindSeconds = &b
			}
		}()
	}
	wg.Wait()
}

// entryTime returns the time of the entry at index in lg, if it holds it.
func entryTime(lg *wal.Log, index uint64) (time.Time, bool) {
	if lg == nil || index < lg.FirstIndex() || index > lg.LastIndex() {
		return time.Time{}, false
	}
	es, err := lg.Read(index, 1, 0)
	if err != nil || len(es) == 0 || es[0].Index != index {
		return time.Time{}, false
	}
	return time.UnixMilli(es[0].Time), true
}

// remoteEntryTime returns the time of the entry at index in the log of
// the node at u.
func (s *Server) remoteEntryTime(ctx context.Context, u string, index uint64, timeout time.Duration) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rec, err := (&client.Client{URL: u, HTTP: s.fwd}).Recent(ctx, index, 1)
	if err != nil || len(rec.Entries) == 0 || rec.Entries[0].Index != index {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, rec.Entries[0].Time)
	return t, err == nil
}

// normalURL is u without white space around it or a slash at its end.
func normalURL(u string) string { return strings.TrimRight(strings.TrimSpace(u), "/") }
