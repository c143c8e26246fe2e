package archive

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/walship/walship/wal"
)

// Range is a run of indexes of one history that the archive can restore
// to, each of them: a snapshot at First and the segments that follow it
// without a gap up to Last.
type Range struct {
	First, Last uint64
	// FirstTime and LastTime are the times of the entries at First and
	// Last; zero when unknown (the entry at a snapshot's index that no
	// archived segment holds, whose time was not recorded).
	FirstTime, LastTime time.Time
}

// run is a stretch of segments without a gap.
type run struct {
	first, last uint64
	lastTime    time.Time
}

// runs returns the history's segments as stretches without gaps.
func (h *History) runs() []run {
	segs := append([]SegmentInfo(nil), h.Segments...)
	sort.Slice(segs, func(i, j int) bool { return segs[i].First < segs[j].First })
	var out []run
	for _, s := range segs {
		if n := len(out); n > 0 && s.First <= out[n-1].last+1 {
			if s.Last > out[n-1].last {
				out[n-1].last, out[n-1].lastTime = s.Last, s.LastTime
			}
			continue
		}
		out = append(out, run{first: s.First, last: s.Last, lastTime: s.LastTime})
	}
	return out
}

// SegmentsEnd returns the last index of the archived segments that a log
// holding first..last continues: the end of the stretch of segments
// without a gap that ends within the log (or just before it). ok is false
// when no archived stretch does: the log's entries from its first on are
// to be archived after a snapshot.
func (h *History) SegmentsEnd(first, last uint64) (end uint64, ok bool) {
	for _, r := range h.runs() {
		if r.last+1 >= first && r.last <= last {
			end, ok = max(end, r.last), true
		}
	}
	return end, ok
}

// reach returns how far entries follow index s without a gap: the last
// index a restore from a snapshot at s can reach, and its entry's time.
func reach(runs []run, s uint64) (uint64, time.Time, bool) {
	for _, r := range runs {
		if r.first <= s+1 && r.last >= s+1 {
			return r.last, r.lastTime, true
		}
	}
	return s, time.Time{}, false
}

// Ranges returns the indexes the archive can restore this history to,
// in order.
func (h *History) Ranges() []Range {
	runs := h.runs()
	var out []Range
	for _, s := range h.Snapshots {
		r := Range{First: s.Index, Last: s.Index, FirstTime: s.EntryTime, LastTime: s.EntryTime}
		if last, t, ok := reach(runs, s.Index); ok {
			r.Last, r.LastTime = last, t
		}
		if s.EntryTime.IsZero() {
			r.FirstTime = h.entryTime(s.Index)
			if r.Last == r.First {
				r.LastTime = r.FirstTime
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First < out[j].First })
	var merged []Range
	for _, r := range out {
		if n := len(merged); n > 0 && r.First <= merged[n-1].Last+1 {
			if r.Last > merged[n-1].Last {
				merged[n-1].Last, merged[n-1].LastTime = r.Last, r.LastTime
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// entryTime returns the time of entry index when a segment's bounds
// record it, zero otherwise.
func (h *History) entryTime(index uint64) time.Time {
	for _, s := range h.Segments {
		switch index {
		case s.First:
			return s.FirstTime
		case s.Last:
			return s.LastTime
		}
	}
	return time.Time{}
}

// LastIndex returns the last index the history's archive holds (0 when
// none).
func (h *History) LastIndex() uint64 {
	var last uint64
	for _, r := range h.Ranges() {
		last = max(last, r.Last)
	}
	return last
}

// describe says which indexes (and times) the history holds, for errors
// and listings: "log L: indexes 100 to 5000 (2026-…Z to 2026-…Z)".
func (h *History) describe() string {
	rs := h.Ranges()
	if len(rs) == 0 {
		return fmt.Sprintf("log %s: no restorable index (%d snapshots, %d segments)", h.LogID, len(h.Snapshots), len(h.Segments))
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("indexes %d to %d, %s to %s", r.First, r.Last, fmtTime(r.FirstTime), fmtTime(r.LastTime))
	}
	return fmt.Sprintf("log %s: %s", h.LogID, strings.Join(parts, ", "))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(time unknown)"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// Target is the point a restore rebuilds: index Index, or, with ByTime,
// the last entry whose time is at most Time (entries are read in order, up
// to the first one after Time). LogID chooses the history; "" means the
// one history that holds the point.
type Target struct {
	Index  uint64
	ByTime bool
	Time   time.Time
	LogID  string
}

// AtIndex and AtTime return the target of index n and of time t.
func AtIndex(n uint64) Target { return Target{Index: n} }

// AtTime returns the target of the last entry at or before t.
func AtTime(t time.Time) Target { return Target{ByTime: true, Time: t} }

func (t Target) String() string {
	if t.ByTime {
		return "time " + fmtTime(t.Time)
	}
	return fmt.Sprintf("index %d", t.Index)
}

// Plan is how a restore reaches its target: the snapshot to start from and
// the segments whose entries follow it, up to Index.
type Plan struct {
	LogID    string
	Index    uint64
	Snapshot SnapshotInfo
	Segments []SegmentInfo
}

// Entries is how many entries the plan applies after its snapshot.
func (p Plan) Entries() uint64 { return p.Index - p.Snapshot.Index }

// planIndex plans a restore of history h to index n, from the newest
// snapshot at or before n that entries follow up to n.
func (h *History) planIndex(n uint64) (Plan, bool) {
	runs := h.runs()
	for i := len(h.Snapshots) - 1; i >= 0; i-- {
		s := h.Snapshots[i]
		if s.Index > n {
			continue
		}
		if s.Index < n {
			if last, _, ok := reach(runs, s.Index); !ok || last < n {
				continue
			}
		}
		p := Plan{LogID: h.LogID, Index: n, Snapshot: s}
		for _, seg := range h.Segments {
			if seg.Last > s.Index && seg.First <= n {
				p.Segments = append(p.Segments, seg)
			}
		}
		sort.Slice(p.Segments, func(i, j int) bool { return p.Segments[i].First < p.Segments[j].First })
		return p, true
	}
	return Plan{}, false
}

// Plan finds how to restore to t: the history that holds it (t.LogID, or
// the only one), the index (for a time, read from the archived segments,
// each checked against its SHA-256 first), the snapshot and the segments.
// A point no history holds gives ErrNotHeld, with what the archive holds;
// one that several hold, ErrAmbiguous, naming them.
func (a *Archive) Plan(ctx context.Context, t Target) (Plan, error) {
	hs, err := a.List()
	if err != nil {
		return Plan{}, err
	}
	if t.LogID != "" {
		var only []History
		for _, h := range hs {
			if h.LogID == t.LogID {
				only = append(only, h)
			}
		}
		if len(only) == 0 {
			return Plan{}, fmt.Errorf("%w: the archive %s holds nothing of log %s; it holds %s", ErrNotHeld, a.dir, t.LogID, describeAll(hs))
		}
		hs = only
	}
	if len(hs) == 0 {
		return Plan{}, fmt.Errorf("%w: the archive %s is empty", ErrNotHeld, a.dir)
	}
	var plans []Plan
	var whyNot []error
	for i := range hs {
		h := &hs[i]
		n := t.Index
		if t.ByTime {
			var err error
			n, err = a.indexAt(ctx, h, t.Time)
			if errors.Is(err, ErrNotHeld) {
				whyNot = append(whyNot, err)
				continue
			} else if err != nil {
				return Plan{}, err
			}
		}
		if p, ok := h.planIndex(n); ok {
			plans = append(plans, p)
		} else {
			whyNot = append(whyNot, fmt.Errorf("%w: index %d of %s", ErrNotHeld, n, h.describe()))
		}
	}
	switch {
	case len(plans) == 1:
		return plans[0], nil
	case len(plans) > 1:
		ids := make([]string, len(plans))
		for i, p := range plans {
			ids[i] = fmt.Sprintf("%s (to index %d)", p.LogID, p.Index)
		}
		return Plan{}, fmt.Errorf("%w: %s is held by %s: choose one with --log-id", ErrAmbiguous, t, strings.Join(ids, ", "))
	}
	if !t.ByTime {
		var last uint64
		for i := range hs {
			last = max(last, hs[i].LastIndex())
		}
		if t.Index > last {
			return Plan{}, fmt.Errorf("%w: index %d is beyond the archive %s: the last index it holds is %d (%s)",
				ErrNotHeld, t.Index, a.dir, last, describeAll(hs))
		}
		return Plan{}, fmt.Errorf("%w: index %d: the archive %s holds %s", ErrNotHeld, t.Index, a.dir, describeAll(hs))
	}
	if len(whyNot) == 1 {
		return Plan{}, whyNot[0]
	}
	msgs := make([]string, len(whyNot))
	for i, err := range whyNot {
		msgs[i] = strings.TrimPrefix(err.Error(), ErrNotHeld.Error()+": ")
	}
	return Plan{}, fmt.Errorf("%w: %s: %s", ErrNotHeld, t, strings.Join(msgs, "; "))
}

func describeAll(hs []History) string {
	if len(hs) == 0 {
		return "nothing"
	}
	parts := make([]string, len(hs))
	for i := range hs {
		parts[i] = hs[i].describe()
	}
	return strings.Join(parts, "; ")
}

// indexAt returns the index of the last entry of h whose time is at most
// t: entries are read in index order, from the oldest restorable one, up
// to the first whose time is after t (a master stamps entries as they
// arrive, so times grow with indexes unless its clock was set back). A t
// at or after every archived entry gives ErrNotHeld: entries after it may
// exist that are not archived yet.
func (a *Archive) indexAt(ctx context.Context, h *History, t time.Time) (uint64, error) {
	ranges := h.Ranges()
	if len(ranges) == 0 {
		return 0, fmt.Errorf("%w: %s", ErrNotHeld, h.describe())
	}
	oldest := ranges[0].First
	for _, s := range h.Segments {
		if s.Last <= oldest || !s.MaxTime.After(t) {
			continue
		}
		after, err := a.firstAfter(ctx, s, t)
		if err != nil {
			return 0, err
		}
		if after <= oldest {
			return 0, fmt.Errorf("%w: %s is before the oldest point the archive holds of %s", ErrNotHeld, fmtTime(t), h.describe())
		}
		n := after - 1
		if after > s.First {
			return n, nil // entry n is in this segment: its time is at most t
		}
		// Entry n precedes the segment: in a segment read before (all of
		// whose entries are at most t), or a snapshot's.
		for _, prev := range h.Segments {
			if prev.Last > oldest && prev.First <= n && n <= prev.Last {
				return n, nil
			}
		}
		if tn := h.knownTime(n); !tn.IsZero() {
			if !tn.After(t) {
				return n, nil
			}
			return 0, fmt.Errorf("%w: %s is before the oldest point the archive holds of %s", ErrNotHeld, fmtTime(t), h.describe())
		}
		if snap, ok := h.snapshotAt(n); ok && !snap.Created.After(t) {
			return n, nil // taken by t: its entry is older
		}
		return 0, fmt.Errorf("%w: %s falls before index %d of log %s, where the archive cannot tell the entries' times (%s)",
			ErrNotHeld, fmtTime(t), after, h.LogID, h.describe())
	}
	last := ranges[len(ranges)-1]
	return 0, fmt.Errorf("%w: %s is not before the last entry the archive holds of log %s (index %d at %s): entries after it may not be archived yet; restore to --to-index %d, or wait for the master to archive more",
		ErrNotHeld, fmtTime(t), h.LogID, last.Last, fmtTime(last.LastTime), last.Last)
}

// knownTime returns the time of entry index from the archive's
// descriptions: a segment's bounds, a snapshot's entry time.
func (h *History) knownTime(index uint64) time.Time {
	if t := h.entryTime(index); !t.IsZero() {
		return t
	}
	if s, ok := h.snapshotAt(index); ok {
		return s.EntryTime
	}
	return time.Time{}
}

func (h *History) snapshotAt(index uint64) (SnapshotInfo, bool) {
	for _, s := range h.Snapshots {
		if s.Index == index {
			return s, true
		}
	}
	return SnapshotInfo{}, false
}

// firstAfter returns the index of the first entry of segment s whose time
// is after t, reading the file once its checksum matches.
func (a *Archive) firstAfter(ctx context.Context, s SegmentInfo, t time.Time) (uint64, error) {
	if err := a.CheckSegment(ctx, s); err != nil {
		return 0, err
	}
	f, err := wal.OpenSegmentFile(segmentPath(a.dir, s.LogID, s.First))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	defer f.Close()
	found := errors.New("found")
	var after uint64
	err = f.Times(func(index uint64, ms int64) error {
		if time.UnixMilli(ms).After(t) {
			after = index
			return found
		}
		return nil
	})
	if err == nil {
		return 0, fmt.Errorf("%w: %s: no entry after %s, but its description says one is (at %s)",
			ErrDamaged, segmentPath(a.dir, s.LogID, s.First), fmtTime(t), fmtTime(s.MaxTime))
	}
	if !errors.Is(err, found) {
		return 0, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return after, nil
}
