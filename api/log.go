package api

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/feed"
)

// maxFeedWait bounds the wait a feed request may ask for.
const maxFeedWait = time.Minute

func (s *Server) registerLogRoutes(r *mux.Router) {
	r.HandleFunc("/log/entries", s.handleEntries).Methods(http.MethodGet)
	r.HandleFunc("/log/status", s.handleLogStatus).Methods(http.MethodGet)
}

// handleEntries serves the replication feed GET /log/entries.
func (s *Server) handleEntries(w http.ResponseWriter, r *http.Request) {
	fd := s.feed()
	if fd == nil {
		s.writeError(w, r, fmt.Errorf("%w: this slave keeps no log; pull the log from the master", ErrNotMaster))
		return
	}
	req, err := parseFeed(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	entries, err := fd.Serve(r.Context(), req)
	if err != nil {
		if r.Context().Err() != nil {
			return // the slave went away
		}
		s.writeError(w, r, err)
		return
	}
	lg := fd.Log()
	h := w.Header()
	h.Set("Content-Type", client.FeedContentType)
	h.Set(client.HeaderLogID, lg.ID())
	h.Set(client.HeaderEpoch, strconv.FormatUint(lg.Epoch(), 10))
	h.Set(client.HeaderFirstIndex, strconv.FormatUint(lg.FirstIndex(), 10))
	h.Set(client.HeaderLastIndex, strconv.FormatUint(lg.LastIndex(), 10))
	w.WriteHeader(http.StatusOK)
	bw := feedWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		feedWriters.Put(bw)
	}()
	for _, e := range entries {
		if err := client.WriteEncodedFrame(bw, e); err != nil {
			s.logger.Warn("feed write failed", "peer", req.SlaveID, "err", err)
			return
		}
	}
	_ = bw.Flush()
}

// feedWriters holds the buffered writers of feed answers for reuse: the
// master answers every slave once per group commit.
var feedWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// feed returns the feed the node serves: the master's log, or the log a
// slave keeps; nil for a slave that keeps none.
func (s *Server) feed() *feed.Feed {
	rl := s.roles()
	if rl.m != nil {
		return rl.m.FeedServer()
	}
	return rl.sl.FeedServer()
}

// followers lists the slaves that pull the node's log.
func (s *Server) followers() []client.SlaveStatus {
	out := []client.SlaveStatus{}
	fd := s.feed()
	if fd == nil {
		return out
	}
	for _, sl := range fd.Followers() {
		st := client.SlaveStatus{ID: sl.ID, URL: sl.URL, AppliedIndex: sl.Applied, ReceivedIndex: sl.Received,
			LagEntries: sl.Lag, State: sl.State}
		if !sl.LastSeen.IsZero() {
			st.LastSeen = sl.LastSeen.UTC().Format(time.RFC3339)
		}
		out = append(out, st)
	}
	return out
}

func parseFeed(r *http.Request) (feed.Request, error) {
	q := r.URL.Query()
	var req feed.Request
	uintParam := func(name string, required bool) (uint64, bool, error) {
		v := q.Get(name)
		if v == "" {
			if required {
				return 0, false, fmt.Errorf("%w: %s is required", ErrBadRequest, name)
			}
			return 0, false, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("%w: %s must be a non-negative integer, got %q", ErrBadRequest, name, v)
		}
		return n, true, nil
	}
	var err error
	if req.From, _, err = uintParam(client.FeedFrom, true); err != nil {
		return req, err
	}
	if req.From == 0 {
		return req, fmt.Errorf("%w: from must be at least 1", ErrBadRequest)
	}
	max, ok, err := uintParam(client.FeedMax, false)
	if err != nil {
		return req, err
	}
	if ok && (max == 0 || max > 10000) {
		return req, fmt.Errorf("%w: max must be between 1 and 10000", ErrBadRequest)
	}
	req.Max = int(max)
	if v := q.Get(client.FeedWait); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxFeedWait {
			return req, fmt.Errorf("%w: wait must be a duration between 0 and %s, got %q", ErrBadRequest, maxFeedWait, v)
		}
		req.Wait = d
	}
	if req.Applied, _, err = uintParam(client.FeedApplied, false); err != nil {
		return req, err
	}
	if req.LastEpoch, req.KnowsEpoch, err = uintParam(client.FeedEpoch, false); err != nil {
		return req, err
	}
	if req.Received, _, err = uintParam(client.FeedReceived, false); err != nil {
		return req, err
	}
	if req.KnownEpoch, _, err = uintParam(client.FeedKnownEpoch, false); err != nil {
		return req, err
	}
	req.SlaveID = q.Get(client.FeedID)
	req.SlaveURL = q.Get(client.FeedURL)
	req.LogID = q.Get(client.FeedLogID)
	if len(req.SlaveID) > 256 || len(req.SlaveURL) > 2048 || len(req.LogID) > 64 {
		return req, fmt.Errorf("%w: id, url or log_id too long", ErrBadRequest)
	}
	if !utf8.ValidString(req.SlaveID) || !utf8.ValidString(req.SlaveURL) || !utf8.ValidString(req.LogID) {
		return req, fmt.Errorf("%w: id, url and log_id must be valid UTF-8", ErrBadRequest)
	}
	return req, nil
}

// handleLogStatus serves GET /log/status.
func (s *Server) handleLogStatus(w http.ResponseWriter, r *http.Request) {
	writeJSONPretty(w, r, http.StatusOK, s.logStatus())
}

func (s *Server) logStatus() client.LogStatus {
	rl := s.roles()
	d := s.db()
	if rl.m != nil {
		lg := rl.m.Log()
		st := client.LogStatus{Role: "master", LogID: lg.ID(), Epoch: lg.Epoch(), FirstIndex: lg.FirstIndex(),
			LastIndex: lg.LastIndex(), AppliedIndex: d.AppliedIndex(), Slaves: []client.SlaveStatus{}}
		if err := rl.m.DiskLow(); err != nil {
			st.State, st.Error = client.StateDiskLow, err.Error()
		}
		if err := rl.m.Err(); err != nil {
			st.State, st.Error = client.StateHalted, err.Error()
		}
		if err := rl.m.Fenced(); err != nil {
			st.State, st.Error = client.StateFenced, err.Error()
		}
		st.LogBytes, st.LogSegments = lg.Size(), lg.Segments()
		if s.Snapshots != nil {
			if info, err := s.Snapshots.Latest(); err == nil {
				age := time.Since(info.Created).Seconds()
				st.SnapshotIndex, st.SnapshotAgeSecs = &info.Index, &age
			}
		}
		if a, ok := rl.m.ArchiveStatus(); ok {
			st.ArchiveDir, st.ArchiveIndex = a.Dir, &a.Index
			if a.HasSnapshot {
				st.ArchiveSnapshotIndex = &a.SnapshotIndex
			}
			if a.Err != nil {
				failing := time.Since(a.FailingSince).Seconds()
				st.ArchiveError, st.ArchiveFailingSeconds = a.Err.Error(), &failing
			}
		}
		st.Slaves = s.followers()
		st.LastCheck = s.lastCheck()
		return st
	}
	ss := rl.sl.Status()
	applied := d.AppliedIndex()
	masterLast := ss.MasterLast
	lag := uint64(0)
	if masterLast > applied {
		lag = masterLast - applied
	}
	st := client.LogStatus{Role: "slave", ID: s.ID, LogID: d.LogID(), Master: rl.sl.MasterURL(), State: ss.State,
		Error: ss.Err, FirstIndex: ss.MasterFirst, LastIndex: masterLast, AppliedIndex: applied,
		MasterLastIndex: &masterLast, LagEntries: &lag,
		BootstrapBytesDone: ss.BootstrapDone, BootstrapBytesTotal: ss.BootstrapTotal, LastCheck: s.lastCheck()}
	if sup := ss.Superseded; sup != nil {
		st.Superseded = &client.Superseded{From: sup.From, To: sup.To, Epoch: sup.Epoch, NewEpoch: sup.NewEpoch,
			Time: sup.At.UTC().Format(time.RFC3339)}
	}
	if lg := rl.sl.Log(); lg != nil {
		first, last := lg.FirstIndex(), lg.LastIndex()
		st.LogFirstIndex, st.LogLastIndex, st.Epoch = &first, &last, lg.Epoch()
		st.LogBytes, st.LogSegments = lg.Size(), lg.Segments()
		if sl := s.followers(); len(sl) > 0 {
			st.Slaves = sl
		}
	}
	return st
}
