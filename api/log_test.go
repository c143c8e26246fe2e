package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
	"github.com/walship/walship/master"
)

// feedMaster runs a master with a short heartbeat and four entries.
func feedMaster(t *testing.T) (*api.Server, *client.Client) {
	t.Helper()
	srv, c := mustRunMasterConfig(t, master.Config{Heartbeat: 200 * time.Millisecond})
	mustExec(t, c, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, c, "INSERT INTO t (v) VALUES ('a')")
	mustExec(t, c, "INSERT INTO t (v) VALUES (?)", "b")
	mustExec(t, c, "UPDATE t SET v = v || '!'")
	if last := srv.Master.Log().LastIndex(); last != 4 {
		t.Fatalf("last index %d, want 4", last)
	}
	return srv, c
}

// The feed refuses bad parameters with 400 and histories it does not hold
// with 409, each with a JSON message naming the problem.
func TestFeedRefuses(t *testing.T) {
	srv, _ := feedMaster(t)
	logID := srv.Master.Log().ID()
	other := strings.Repeat("0", 32)
	for _, tc := range []struct {
		query  string
		status int
		says   string
	}{
		{"", 400, "from is required"},
		{"max=10", 400, "from is required"},
		{"from=", 400, "from is required"},
		{"from=0", 400, "from must be at least 1"},
		{"from=-1", 400, `from must be a non-negative integer, got "-1"`},
		{"from=abc", 400, `from must be a non-negative integer, got "abc"`},
		{"from=1.5", 400, `from must be a non-negative integer`},
		{"from=99999999999999999999999", 400, `from must be a non-negative integer`},
		{"from=1&max=0", 400, "max must be between 1 and 10000"},
		{"from=1&max=10001", 400, "max must be between 1 and 10000"},
		{"from=1&max=18446744073709551615", 400, "max must be between 1 and 10000"},
		{"from=1&max=-5", 400, "max must be a non-negative integer"},
		{"from=1&wait=-1s", 400, `wait must be a duration between 0 and 1m0s, got "-1s"`},
		{"from=1&wait=2h", 400, `wait must be a duration between 0 and 1m0s, got "2h"`},
		{"from=1&wait=abc", 400, `wait must be a duration between 0 and 1m0s, got "abc"`},
		{"from=1&wait=10", 400, "wait must be a duration"},
		{"from=1&applied=x", 400, "applied must be a non-negative integer"},
		{"from=1&epoch=-1", 400, "epoch must be a non-negative integer"},
		{"from=1&id=" + strings.Repeat("x", 300), 400, "too long"},
		{"from=1&log_id=" + strings.Repeat("a", 65), 400, "too long"},
		// Histories this master does not hold.
		{"from=6", 409, "from 6 is beyond the log's next index 5"},
		{"from=18446744073709551615", 409, "beyond the log's next index 5"},
		{"from=1&log_id=" + other, 409, "the slave follows log " + other + ", this node's log is " + logID},
		{"from=3&log_id=" + logID + "&applied=2&epoch=7", 409, "the slave's entry 2 has epoch 7, this node's has 1"},
		{"from=5&log_id=" + logID + "&applied=4&epoch=0", 409, "the slave's entry 4 has epoch 0, this node's has 1"},
	} {
		status, h, body := do(t, http.MethodGet, srv.URL()+"/log/entries?"+tc.query, nil)
		if status != tc.status || h.Get("Content-Type") != "application/json; charset=utf-8" {
			t.Errorf("?%.80s: %d %s %s, want %d JSON", tc.query, status, h.Get("Content-Type"), body, tc.status)
			continue
		}
		if er := errorBody(t, body); !strings.Contains(er.Error, tc.says) {
			t.Errorf("?%.80s: error %q does not say %q", tc.query, er.Error, tc.says)
		}
	}
	// The client maps a conflict back.
	_, err := client.New(srv.URL()).Entries(context.Background(), client.FeedRequest{From: 1, LogID: other})
	if !errors.Is(err, client.ErrConflict) {
		t.Fatalf("client: %v, want ErrConflict", err)
	}
	// Nothing was written.
	if last := srv.Master.Log().LastIndex(); last != 4 {
		t.Fatalf("last index %d, want 4", last)
	}
}

// A slave that keeps a log serves the feed too (slaves may follow a
// slave), with the master's entries byte for byte and its headers.
func TestFeedOnSlave(t *testing.T) {
	msrv, _ := feedMaster(t)
	ssrv, sc := mustRunSlave(t, msrv.URL(), "1")
	waitApplied(t, ssrv, 4)
	status, h, body := do(t, http.MethodGet, ssrv.URL()+"/log/entries?from=1", nil)
	mstatus, mh, mbody := do(t, http.MethodGet, msrv.URL()+"/log/entries?from=1", nil)
	if status != http.StatusOK || mstatus != http.StatusOK || !bytes.Equal(body, mbody) {
		t.Fatalf("feed on a slave: %d, %d bytes; on the master: %d, %d bytes; want the same answer", status, len(body), mstatus, len(mbody))
	}
	for _, k := range []string{client.HeaderLogID, client.HeaderEpoch, client.HeaderFirstIndex, client.HeaderLastIndex} {
		if h.Get(k) != mh.Get(k) {
			t.Fatalf("%s: slave %q, master %q", k, h.Get(k), mh.Get(k))
		}
	}
	res, err := sc.Entries(context.Background(), client.FeedRequest{From: 3, SlaveID: "9", LogID: msrv.Master.Log().ID()})
	if err != nil || len(res.Entries) != 2 || res.Entries[0].Index != 3 {
		t.Fatalf("client on the slave's feed: %+v, %v", res, err)
	}
	// Beyond its log: 409, as the master answers.
	if status, _, _ := do(t, http.MethodGet, ssrv.URL()+"/log/entries?from=9", nil); status != http.StatusConflict {
		t.Fatalf("from beyond the slave's log: %d, want 409", status)
	}
}

// A feed answer carries the log's identity and bounds in its headers, and
// entries in frames that client.ReadFrame decodes to the log's own entries.
func TestFeedAnswer(t *testing.T) {
	srv, c := feedMaster(t)
	lg := srv.Master.Log()
	stored, err := lg.Read(1, 10, 1<<20)
	if err != nil || len(stored) != 4 {
		t.Fatalf("read the log: %d entries, %v", len(stored), err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(lg.ID()) {
		t.Fatalf("log id %q", lg.ID())
	}
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"from=1", []uint64{1, 2, 3, 4}},
		{"from=1&max=2", []uint64{1, 2}},
		{"from=3&max=10000&wait=0s", []uint64{3, 4}},
		{"from=4&wait=1m", []uint64{4}},
	} {
		status, h, body := do(t, http.MethodGet, srv.URL()+"/log/entries?"+tc.query, nil)
		if status != http.StatusOK {
			t.Fatalf("?%s: %d %s", tc.query, status, body)
		}
		for name, want := range map[string]string{
			"Content-Type":          client.FeedContentType,
			client.HeaderLogID:      lg.ID(),
			client.HeaderEpoch:      "1",
			client.HeaderFirstIndex: "1",
			client.HeaderLastIndex:  "4",
		} {
			if got := h.Get(name); got != want {
				t.Errorf("?%s: header %s = %q, want %q", tc.query, name, got, want)
			}
		}
		r := bytes.NewReader(body)
		for _, idx := range tc.want {
			e, err := client.ReadFrame(r)
			if err != nil {
				t.Fatalf("?%s: frame of entry %d: %v", tc.query, idx, err)
			}
			if !reflect.DeepEqual(e, stored[idx-1]) {
				t.Fatalf("?%s: entry %+v, the log holds %+v", tc.query, e, stored[idx-1])
			}
		}
		if e, err := client.ReadFrame(r); err != io.EOF {
			t.Fatalf("?%s: after the entries: %+v, %v, want io.EOF", tc.query, e, err)
		}
	}
	// The client reads the same answer.
	res, err := c.Entries(context.Background(), client.FeedRequest{From: 2, Max: 2})
	if err != nil || res.LogID != lg.ID() || res.Epoch != 1 || res.FirstIndex != 1 || res.LastIndex != 4 ||
		!reflect.DeepEqual(res.Entries, stored[1:3]) {
		t.Fatalf("client: %+v, %v", res, err)
	}
	if len(res.Entries[1].Statements) != 1 || res.Entries[1].Statements[0].SQL != "INSERT INTO t (v) VALUES (?)" ||
		res.Entries[1].Statements[0].Params[0].Value.Text != "b" {
		t.Fatalf("entry 3: %+v", res.Entries[1])
	}
}

// A caught-up long-poll answers within the heartbeat with no entries, and
// the master lists the slave that asked, with its URL and lag.
func TestFeedHeartbeatAndSlaveStatus(t *testing.T) {
	srv, mc := feedMaster(t)
	lg := srv.Master.Log()
	q := "id=s9&url=http%3A%2F%2Fs9.example%3A9000&log_id=" + lg.ID()
	status, _, body := do(t, http.MethodGet, srv.URL()+"/log/entries?from=2&applied=1&epoch=1&"+q, nil)
	if status != http.StatusOK || len(body) == 0 {
		t.Fatalf("feed: %d %q", status, body)
	}
	st, err := mc.LogStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []client.SlaveStatus{{ID: "s9", URL: "http://s9.example:9000", AppliedIndex: 1, LagEntries: 3, State: "live"}}
	if st.Role != "master" || st.LogID != lg.ID() || st.LastIndex != 4 || st.AppliedIndex != 4 || len(st.Slaves) != 1 {
		t.Fatalf("status %+v", st)
	}
	if seen, err := time.Parse(time.RFC3339, st.Slaves[0].LastSeen); err != nil || time.Since(seen) > time.Minute {
		t.Fatalf("last seen %q: %v", st.Slaves[0].LastSeen, err)
	}
	st.Slaves[0].LastSeen = ""
	if !reflect.DeepEqual(st.Slaves, want) {
		t.Fatalf("slaves %+v, want %+v", st.Slaves, want)
	}

	start := time.Now()
	status, h, body := do(t, http.MethodGet, srv.URL()+"/log/entries?from=5&applied=4&epoch=1&wait=30s&"+q, nil)
	took := time.Since(start)
	if status != http.StatusOK || len(body) != 0 || h.Get(client.HeaderLastIndex) != "4" || h.Get(client.HeaderLogID) != lg.ID() {
		t.Fatalf("caught-up poll: %d %v %q, want 200 with headers and no entries", status, h, body)
	}
	// The heartbeat is 200ms: the poll waited for it, not for the 30s asked.
	if took < 150*time.Millisecond || took > 10*time.Second {
		t.Fatalf("caught-up poll answered after %s, want about the 200ms heartbeat", took)
	}

	// A real slave appears too, by its id and URL.
	ssrv, _ := mustRunSlave(t, srv.URL(), "2")
	waitApplied(t, ssrv, 4)
	waitFor(t, "the master to list slave 2 with lag 0", func() bool {
		st, err := mc.LogStatus(context.Background())
		if err != nil || len(st.Slaves) != 2 {
			return false
		}
		s := st.Slaves[0] // sorted by id: "2" < "s9"
		return s.ID == "2" && s.URL == ssrv.URL() && s.AppliedIndex == 4 && s.LagEntries == 0 &&
			st.Slaves[1].ID == "s9" && st.Slaves[1].AppliedIndex == 4
	})
	// The exact shape of a slave in /log/status.
	_, _, raw := do(t, http.MethodGet, srv.URL()+"/log/status", nil)
	var shape struct {
		Slaves []map[string]any `json:"slaves"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil || len(shape.Slaves) != 2 {
		t.Fatalf("/log/status: %s, %v", raw, err)
	}
	var keys []string
	for k := range shape.Slaves[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got := strings.Join(keys, ","); got != "applied_index,id,lag_entries,last_seen,received_index,state,url" {
		t.Fatalf("slave keys %s in %s", got, raw)
	}
}
