package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/api/client"
)

const statusSynopsis = `walship status [--master URL] [--json] [URL]

The cluster at a glance: the master, then every slave that pulls its log.
URL is any node (default --master); a slave leads to its master.

  APPLIED  the last log index the node applied
  LAG      log entries the node has still to apply
  BEHIND   how long ago the master accepted the oldest write the slave has
           not applied yet: 0s when caught up (the master's clock against
           this machine's, so clocks that disagree shift it)
  SEEN     how long ago the slave last asked the master for entries (a
           healthy slave asks several times a second; to the second)
  STATE    ok (master), streaming, catching_up, disconnected, diverged,
           unreachable (this command got no answer from it)

Exit status 0 when every node answers, none has diverged and the master has not halted writes, else 1.`

// statusRow is one node in 'walship status'.
type statusRow struct {
	Node    string  `json:"node"` // "master" or the slave's id
	Role    string  `json:"role"`
	URL     string  `json:"url"`
	Applied uint64  `json:"applied_index"`
	Lag     *uint64 `json:"lag_entries,omitempty"`
	// Behind is the age of the oldest entry the node has not applied, in
	// seconds: 0 when it is caught up, nil when unknown.
	Behind *float64 `json:"behind_seconds,omitempty"`
	// Seen is how long ago the slave last pulled the log, in seconds.
	Seen  *float64 `json:"last_seen_seconds,omitempty"`
	State string   `json:"state"`
	Error string   `json:"error,omitempty"`
}

// clusterStatus is what 'walship status' shows.
type clusterStatus struct {
	Master    string      `json:"master"`
	LogID     string      `json:"log_id"`
	Epoch     uint64      `json:"epoch"`
	LastIndex uint64      `json:"last_index"`
	Nodes     []statusRow `json:"nodes"`
}

// healthy states of a node; any other is reported by the exit status.
var healthyStates = map[string]bool{"ok": true, client.StateStreaming: true, client.StateCatchingUp: true, client.StateBootstrapping: true}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status", statusSynopsis, stderr)
	masterURL := fs.String("master", "http://127.0.0.1:8080", "the master's URL (the argument URL wins)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each request")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(pos[1:], " "))
	}
	target := *masterURL
	if len(pos) == 1 {
		target = pos[0]
	}
	cs, err := collectStatus(ctx, rem, nodeURL(target), *timeout, time.Now)
	if err != nil {
		return err
	}
	if *asJSON {
		err = writeJSON(stdout, cs)
	} else {
		_, err = io.WriteString(stdout, renderStatus(cs))
	}
	if err != nil {
		return err
	}
	var bad []string
	for _, n := range cs.Nodes {
		if state, _, _ := strings.Cut(n.State, " "); !healthyStates[state] {
			bad = append(bad, nodeLabel(n.Role, n.Node)+" "+n.State)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("cluster not healthy: %s", strings.Join(bad, ", "))
	}
	return nil
}

// nodeLabel names a node for people: "master", "slave 2".
func nodeLabel(role, id string) string {
	if role == "slave" {
		return "slave " + id
	}
	return role
}

// collectStatus asks the node at target, its master when it is a slave,
// and every slave the master knows.
func collectStatus(ctx context.Context, rem *remote, target string, timeout time.Duration, now func() time.Time) (*clusterStatus, error) {
	get := func(u string) (*client.LogStatus, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		st, err := rem.client(u, timeout).LogStatus(ctx)
		return st, nodeError(u, err)
	}
	st, err := get(target)
	if err != nil {
		return nil, err
	}
	mURL := target
	if st.Role == "slave" {
		mURL = strings.TrimRight(st.Master, "/")
		ms, err := get(mURL)
		if err != nil {
			// Show what the slave knows, and say why the rest is missing.
			cs := &clusterStatus{Master: mURL, LogID: st.LogID, LastIndex: st.LastIndex, Nodes: []statusRow{
				{Node: "master", Role: "master", URL: mURL, State: "unreachable", Error: err.Error()},
				slaveRowFromSelf(st, target),
			}}
			return cs, nil
		}
		st = ms
	}
	cs := &clusterStatus{Master: mURL, LogID: st.LogID, Epoch: st.Epoch, LastIndex: st.LastIndex}
	zero, zeroF := uint64(0), 0.0
	mrow := statusRow{Node: "master", Role: "master", URL: mURL, Applied: st.AppliedIndex, Lag: &zero, Behind: &zeroF, State: "ok"}
	if st.Error != "" {
		mrow.State, mrow.Error = client.StateHalted, st.Error
	}
	if st.AppliedIndex < st.LastIndex {
		lag := st.LastIndex - st.AppliedIndex
		mrow.Lag = &lag
	}
	cs.Nodes = append(cs.Nodes, mrow)
	rows := make([]statusRow, len(st.Slaves))
	var wg sync.WaitGroup
	feed := rem.client(mURL, timeout)
	for i, sl := range st.Slaves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rows[i] = slaveRow(ctx, sl, st, get, feed, timeout, now)
		}()
	}
	wg.Wait()
	cs.Nodes = append(cs.Nodes, rows...)
	return cs, nil
}

// slaveRow describes one slave: its own status when it answers, the
// master's view of it otherwise.
func slaveRow(ctx context.Context, sl client.SlaveStatus, ms *client.LogStatus, get func(string) (*client.LogStatus, error),
	feed *client.Client, timeout time.Duration, now func() time.Time) statusRow {
	row := statusRow{Node: sl.ID, Role: "slave", URL: sl.URL, Applied: sl.AppliedIndex}
	if t, err := time.Parse(time.RFC3339, sl.LastSeen); err == nil {
		seen := max(0, now().Sub(t).Seconds())
		row.Seen = &seen
	}
	own, err := get(sl.URL)
	switch {
	case err != nil:
		row.State, row.Error = "unreachable", err.Error()
	case own.LogID != "" && own.LogID != ms.LogID:
		row.State, row.Error = client.StateDiverged, fmt.Sprintf("follows log %s, the master's is %s", own.LogID, ms.LogID)
	default:
		row.State, row.Error = own.State, own.Error
		row.Applied = max(row.Applied, own.AppliedIndex)
		if own.State == client.StateBootstrapping && own.BootstrapBytesTotal > 0 {
			row.State = fmt.Sprintf("%s %s/%s", own.State, humanize.IBytes(uint64(own.BootstrapBytesDone)), humanize.IBytes(uint64(own.BootstrapBytesTotal)))
		}
	}
	lag := uint64(0)
	if ms.LastIndex > row.Applied {
		lag = ms.LastIndex - row.Applied
	}
	row.Lag = &lag
	if lag == 0 {
		behind := 0.0
		row.Behind = &behind
	} else if t, err := entryTime(ctx, feed, row.Applied+1, timeout); err == nil {
		behind := max(0, now().Sub(t).Seconds())
		row.Behind = &behind
	}
	return row
}

// slaveRowFromSelf describes a slave from its own status alone.
func slaveRowFromSelf(st *client.LogStatus, u string) statusRow {
	return statusRow{Node: st.ID, Role: "slave", URL: u, Applied: st.AppliedIndex, Lag: st.LagEntries, State: st.State, Error: st.Error}
}

// entryTime returns the time the master accepted the entry at index: it
// reads that one entry from the feed, anonymously (a feed request without a
// slave id is not recorded as a slave).
func entryTime(ctx context.Context, feed *client.Client, index uint64, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := feed.Entries(ctx, client.FeedRequest{From: index, Max: 1})
	if err != nil {
		return time.Time{}, err
	}
	if len(res.Entries) == 0 || res.Entries[0].Index != index {
		return time.Time{}, errors.New("entry not in the feed")
	}
	return time.UnixMilli(res.Entries[0].Time), nil
}

// renderStatus prints the cluster status as a header line and a table.
func renderStatus(cs *clusterStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "master %s, log %s", cs.Master, cs.LogID)
	if cs.Epoch != 0 {
		fmt.Fprintf(&b, " epoch %d", cs.Epoch)
	}
	fmt.Fprintf(&b, ", last index %d, %s\n\n", cs.LastIndex, plural(len(cs.Nodes)-1, "slave"))
	rows := make([][]string, 0, len(cs.Nodes))
	var notes []string
	for _, n := range cs.Nodes {
		lag, behind, seen := "?", "?", "-"
		if n.Lag != nil {
			lag = strconv.FormatUint(*n.Lag, 10)
		}
		if n.Behind != nil {
			behind = "0s"
			if *n.Behind > 0 {
				behind = formatSeconds(*n.Behind)
			}
		}
		if n.Seen != nil {
			seen = formatAge(time.Duration(*n.Seen*float64(time.Second))) + " ago"
		}
		if n.Role == "master" {
			lag, behind = "-", "-"
			if n.Lag != nil && *n.Lag > 0 {
				lag = strconv.FormatUint(*n.Lag, 10)
			}
		}
		rows = append(rows, []string{nodeLabel(n.Role, n.Node), n.URL, strconv.FormatUint(n.Applied, 10), lag, behind, seen, n.State})
		if n.Error != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", nodeLabel(n.Role, n.Node), n.Error))
		}
	}
	for _, l := range renderTable([]string{"NODE", "URL", "APPLIED", "LAG", "BEHIND", "SEEN", "STATE"}, rows,
		[]bool{false, false, true, true, true, true, false}) {
		b.WriteString(strings.TrimRight(l, " "))
		b.WriteByte('\n')
	}
	if len(notes) > 0 {
		b.WriteByte('\n')
		for _, n := range notes {
			b.WriteString(n + "\n")
		}
	}
	return b.String()
}

// formatSeconds prints a number of seconds as a short duration.
func formatSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
