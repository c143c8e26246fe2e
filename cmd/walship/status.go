package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	humanize "github.com/dustin/go-humanize"

	"github.com/walship/walship/api/client"
)

const statusSynopsis = `walship status [--node URL] [--json] [URL…]

The replication tree at a glance: the master, the slaves that pull its log,
and under each slave the slaves that pull from it (a slave may follow
another slave). URL is any node (default --node, else --master); a slave
leads to its master, hop by hop. Every node the command learns of is shown:
the followers each node lists, the node each slave says it follows, and
every further URL given (a slave its master does not list, or one that
follows another master, is shown and counts for the exit status).

  NODE      the node, drawn under the node it pulls from
  APPLIED   the last log index the node applied
  LAG       log entries the node has still to apply: the master's last
            index less the node's applied one
  BEHIND    how long ago the master accepted the oldest write the slave has
            not applied yet: 0s when caught up (the master's clock against
            this machine's, so clocks that disagree shift it)
  SEEN      how long ago the slave last asked the node above it for entries
            (a healthy slave asks several times a second; to the second)
  STATE     ok (master), streaming, catching_up, bootstrapping,
            disconnected, stalled, diverged; a master's halted, disk_low,
            fenced; unreachable (this command got no answer from it). A !
            after it: the node is not where its upstream says, see the note
            under the table
  UPSTREAM  the URL of the node a slave two or more hops from the master
            pulls from (a column only when there is such a slave)

Exit status 0 when every node answers, each slave is streaming, catching up
or bootstrapping, the master takes writes, and each slave follows the node
that lists it as its follower; else 1, with the reasons.`

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
	// Seen is how long ago the slave last pulled the log from the node
	// above it, in seconds.
	Seen  *float64 `json:"last_seen_seconds,omitempty"`
	State string   `json:"state"`
	Error string   `json:"error,omitempty"`
	// Upstream is the URL of the node a slave pulls from: the master for
	// the master's own slaves, another slave further down.
	Upstream string `json:"upstream,omitempty"`
	// Depth is the node's depth in the tree: 0 for the master, 1 for its
	// slaves, 2 for theirs. A node apart from the master's tree (another
	// master, the unreachable node a slave follows) is at depth 0 too.
	Depth int `json:"depth"`
	// Problems say why the node is not where the tree says it is: it
	// follows another node than one that lists it as its follower, the
	// node it follows does not list it, it is another master.
	Problems []string `json:"problems,omitempty"`
}

// clusterStatus is what 'walship status' shows. Nodes are in the tree's
// order: each node, then the nodes under it (Depth one more).
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
	masterURL := fs.String("master", "http://127.0.0.1:8080", "the master's URL, or any node's (the argument URL and --node win)")
	node := fs.String("node", "", "any node of the cluster: a slave leads to its master (the argument URL wins; default --master)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each request")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	// The first argument, then --node, then --master; a flag on the command
	// line wins over one from the environment.
	onLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onLine[f.Name] = true })
	target := *masterURL
	if *node != "" && (onLine["node"] || !onLine["master"]) {
		target = *node
	}
	var more []string
	if len(pos) >= 1 {
		target = pos[0]
		// More nodes named: each is shown, in the tree or apart from it,
		// and counts for the exit status.
		for _, u := range pos[1:] {
			more = append(more, nodeURL(u))
		}
	}
	cs, err := collectStatus(ctx, rem, nodeURL(target), *timeout, time.Now, more...)
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
	if bad := unhealthy(cs); len(bad) > 0 {
		return fmt.Errorf("cluster not healthy: %s", strings.Join(bad, ", "))
	}
	return nil
}

// unhealthy lists what is wrong with the cluster, one item a reason.
func unhealthy(cs *clusterStatus) []string {
	labels := rowLabels(cs.Nodes)
	var bad []string
	for i, n := range cs.Nodes {
		if state, _, _ := strings.Cut(n.State, " "); !healthyStates[state] {
			bad = append(bad, labels[i]+" "+n.State)
		}
		for _, p := range n.Problems {
			bad = append(bad, labels[i]+" "+p)
		}
	}
	return bad
}

// nodeLabel names a node for people: "master", "slave 2".
func nodeLabel(role, id string) string {
	if role == "slave" {
		return "slave " + id
	}
	return role
}

// rowLabels names each row for people; rows that would share a name are
// told apart by their URL ("slave 1 at http://…").
func rowLabels(rows []statusRow) []string {
	count := map[string]int{}
	labels := make([]string, len(rows))
	for i, n := range rows {
		labels[i] = nodeLabel(n.Role, n.Node)
		count[labels[i]]++
	}
	for i, n := range rows {
		if count[labels[i]] > 1 {
			labels[i] += " at " + n.URL
		}
	}
	return labels
}

// maxStatusNodes bounds the nodes 'walship status' asks.
const maxStatusNodes = 1000

// probed is a node's answer to GET /status: the status of its log, and
// who it is.
type probed struct {
	// key names the node: its advertised URL and its id, so that the
	// node is known as one under each URL it is reached at; the URL asked
	// when it did not answer.
	key string
	st  *client.LogStatus
	err error
}

// probeNode asks the node at u for its status.
func probeNode(ctx context.Context, rem *remote, u string, timeout time.Duration) probed {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := rem.client(u, timeout)
	doc, err := c.Status(ctx)
	if err != nil {
		if foreignAnswer(err) {
			return probed{key: u, err: notWalship(ctx, rem, u, "/status", "")}
		}
		return probed{key: u, err: nodeError(u, err)}
	}
	var self struct {
		Node struct {
			ID      string `json:"id"`
			APIAddr string `json:"api_addr"`
		} `json:"node"`
		Log *client.LogStatus `json:"log"`
	}
	b, err := json.Marshal(doc)
	if err == nil {
		err = json.Unmarshal(b, &self)
	}
	if err != nil {
		return probed{key: u, err: fmt.Errorf("%s: GET /status: %w", u, err)}
	}
	if self.Log == nil {
		// A node whose /status lacks its log's status: ask for it.
		if self.Log, err = c.LogStatus(ctx); err != nil {
			if foreignAnswer(err) {
				return probed{key: u, err: notWalship(ctx, rem, u, "/log/status", "GET /status with JSON without walship's fields (node, log), and ")}
			}
			return probed{key: u, err: nodeError(u, err)}
		}
	}
	if r := self.Log.Role; r != "master" && r != "slave" {
		return probed{key: u, err: fmt.Errorf("not a walship node: %s answers GET /status with JSON that names no walship role (master or slave)", u)}
	}
	p := probed{key: u, st: self.Log}
	if self.Node.APIAddr != "" {
		p.key = nodeURL(self.Node.APIAddr) + " " + self.Node.ID
	}
	return p
}

// foreignAnswer reports whether err, the error of a request to a node for
// JSON, says that what answered is not a walship node: an answer that is
// not JSON (a web server's page), or a 404 with a body that is not
// walship's error, for a path every walship node serves.
func foreignAnswer(err error) bool {
	var se *client.StatusError
	var ue *url.Error
	switch {
	case errors.As(err, &se):
		return se.Status == http.StatusNotFound || looksLikePage(se.Msg)
	case errors.As(err, &ue), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false // no answer, or a cut one
	}
	return true // an answer that does not decode as walship's JSON
}

// looksLikePage reports whether an answer's body is markup (HTML, XML).
func looksLikePage(body string) bool {
	return strings.HasPrefix(strings.TrimSpace(body), "<")
}

// htmlTitle is a page's <title>.
var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// notWalship is the error for u, which answered GET path with something
// that is not walship's: it asks again to say what (a page and its title,
// other JSON, text), never printing the page. before is what u answered
// before, if anything.
func notWalship(ctx context.Context, rem *remote, u, path, before string) error {
	what := "GET " + path + " with an answer that is not walship's"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+path, nil)
	if err == nil {
		resp, err := (&http.Client{Transport: rem.transport()}).Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			what = "GET " + path + " with "
			switch {
			case mt == "text/html" || looksLikePage(string(body)):
				what += "an HTML page"
				if m := htmlTitle.FindSubmatch(body); m != nil {
					if title := strings.Join(strings.Fields(string(m[1])), " "); title != "" {
						what += " titled " + strconv.Quote(truncate(title, 80))
					}
				}
			case json.Valid(body):
				what += "JSON that is not walship's"
			case len(bytes.TrimSpace(body)) == 0:
				what += "an empty body"
			default:
				line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
				what += "text " + strconv.Quote(truncate(escapeControl(line), 80))
			}
			what += " (" + resp.Status + ")"
		}
	}
	return fmt.Errorf("not a walship node: %s answers %s%s", u, before, what)
}

// member is a node 'walship status' learned of.
type member struct {
	url string // the URL it was first learned at
	probed
	// listed are the nodes that list it as their follower, with their
	// view of it.
	listed []listing
	// up is the node it says it follows (a slave that answered).
	up *member
	// parent is the node it is shown under; nil for the master and for a
	// node apart from the master's tree.
	parent   *member
	children []*member
	problems []string
}

// listing is a node's view of one of its followers.
type listing struct {
	by *member
	sl client.SlaveStatus
}

// isSlave reports whether the node answered as a slave.
func (m *member) isSlave() bool { return m.st != nil && m.st.Role == "slave" }

// label names the member for people.
func (m *member) label() string {
	switch {
	case m.st != nil && m.st.Role == "slave":
		return nodeLabel("slave", m.st.ID)
	case m.st != nil:
		return nodeLabel(m.st.Role, "")
	case len(m.listed) > 0:
		return nodeLabel("slave", m.listed[0].sl.ID)
	}
	return "node"
}

// view is how the node above the member sees it; nil when it does not
// list it.
func (m *member) view() *client.SlaveStatus {
	for _, l := range m.listed {
		if l.by == m.parent {
			return &l.sl
		}
	}
	return nil
}

// replicationTree is every node learned of from one node: the followers
// each lists, the node each slave follows, and so on.
type replicationTree struct {
	members []*member // in the order learned
	byKey   map[string]*member
	byURL   map[string]*member
}

// discover learns of every node reachable from the node at start, asking
// each once, a wave of nodes at a time (each wave at once).
func discover(ctx context.Context, probe func(string) probed, start string, more ...string) (*replicationTree, error) {
	t := &replicationTree{byKey: map[string]*member{}, byURL: map[string]*member{}}
	type pending struct {
		url string
		by  *member // the node that lists it, if any
		sl  client.SlaveStatus
	}
	wave := []pending{{url: start}}
	for _, u := range more {
		wave = append(wave, pending{url: u})
	}
	for len(wave) > 0 {
		var ask []string
		for _, p := range wave {
			if p.url != "" && t.byURL[p.url] == nil && !slices.Contains(ask, p.url) {
				ask = append(ask, p.url)
			}
		}
		if len(t.members)+len(ask) > maxStatusNodes {
			return nil, fmt.Errorf("more than %d nodes: stopped asking", maxStatusNodes)
		}
		answers := make([]probed, len(ask))
		var wg sync.WaitGroup
		limit := make(chan struct{}, 16)
		for i, u := range ask {
			wg.Add(1)
			go func() {
				defer wg.Done()
				limit <- struct{}{}
				defer func() { <-limit }()
				answers[i] = probe(u)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var fresh []*member
		for _, p := range wave {
			m := t.byURL[p.url]
			if m == nil {
				var pr probed
				if p.url == "" {
					pr = probed{key: p.by.key + " slave " + p.sl.ID, err: errors.New("it gave its upstream no URL to reach it at")}
				} else {
					pr = answers[slices.Index(ask, p.url)]
				}
				if m = t.byKey[pr.key]; m == nil {
					m = &member{url: p.url, probed: pr}
					t.byKey[m.key] = m
					t.members = append(t.members, m)
					fresh = append(fresh, m)
				}
				if p.url != "" {
					t.byURL[p.url] = m
				}
			}
			if p.by != nil {
				m.listed = append(m.listed, listing{by: p.by, sl: p.sl})
			}
		}
		wave = nil
		for _, m := range fresh {
			if m.st == nil {
				continue
			}
			for _, sl := range m.st.Slaves {
				u := ""
				if strings.TrimSpace(sl.URL) != "" {
					u = nodeURL(sl.URL)
				}
				wave = append(wave, pending{url: u, by: m, sl: sl})
			}
			if m.isSlave() && strings.TrimSpace(m.st.Master) != "" {
				wave = append(wave, pending{url: nodeURL(m.st.Master)})
			}
		}
	}
	for _, m := range t.members {
		if m.isSlave() && strings.TrimSpace(m.st.Master) != "" {
			m.up = t.byURL[nodeURL(m.st.Master)]
		}
	}
	return t, nil
}

// master finds the master from the node start: the node each slave
// follows, hop by hop, up to a master or a node that does not answer.
func (t *replicationTree) master(start *member) (*member, error) {
	var path []*member
	for cur := start; ; cur = cur.up {
		if !cur.isSlave() {
			return cur, nil
		}
		path = append(path, cur)
		if cur.up == nil {
			return nil, fmt.Errorf("%s (%s) follows no master", cur.label(), cur.url)
		}
		if i := slices.Index(path, cur.up); i >= 0 {
			var hops []string
			for _, m := range append(path[i:], cur.up) {
				hops = append(hops, m.label()+" ("+m.url+")")
			}
			return nil, fmt.Errorf("no master: these slaves follow one another in a loop: %s", strings.Join(hops, " → "))
		}
	}
}

// place puts each node under the node it follows (one that did not
// answer, under the node that lists it), notes what is out of place, and
// returns the roots: the master first, then any node apart from its tree.
func (t *replicationTree) place(root *member) []*member {
	for _, m := range t.members {
		switch {
		case m == root:
		case m.isSlave():
			m.parent = m.up
		case m.st == nil && len(m.listed) > 0:
			m.parent = m.listed[0].by
		}
	}
	// Slaves that follow one another in a loop: the first learned of
	// goes apart from the tree.
	for _, m := range t.members {
		for {
			seen := map[*member]bool{}
			cur := m
			for cur != nil && !seen[cur] {
				seen[cur] = true
				cur = cur.parent
			}
			if cur == nil {
				break
			}
			cut := cur
			for n := cur.parent; n != cur; n = n.parent {
				if slices.Index(t.members, n) < slices.Index(t.members, cut) {
					cut = n
				}
			}
			cut.problems = append(cut.problems, fmt.Sprintf("follows %s which follows it back in a loop", cut.parent.url))
			cut.parent = nil
		}
	}
	roots := []*member{root}
	for _, m := range t.members {
		if m.parent != nil {
			m.parent.children = append(m.parent.children, m)
		} else if m != root {
			roots = append(roots, m)
		}
	}
	for _, m := range t.members {
		switch {
		case m.isSlave():
			upURL := "no node"
			if m.up != nil {
				upURL = m.up.url
			}
			for _, l := range m.listed {
				if l.by != m.up {
					m.problems = append(m.problems, fmt.Sprintf("is listed as a follower by %s (%s) but follows %s", l.by.label(), l.by.url, upURL))
				}
			}
			if up := m.up; up != nil && up.st != nil && !slices.ContainsFunc(m.listed, func(l listing) bool { return l.by == up }) {
				m.problems = append(m.problems, fmt.Sprintf("is not among the followers of the node it follows: %s (%s)", up.label(), up.url))
			}
		case m != root && m.st != nil:
			m.problems = append(m.problems, fmt.Sprintf("is another master: epoch %d of log %s", m.st.Epoch, m.st.LogID))
		}
	}
	return roots
}

// collectStatus asks the node at target, the node it follows and so on up
// to the master, and every node that follows a node asked, down the tree.
func collectStatus(ctx context.Context, rem *remote, target string, timeout time.Duration, now func() time.Time, more ...string) (*clusterStatus, error) {
	t, err := discover(ctx, func(u string) probed { return probeNode(ctx, rem, u, timeout) }, target, more...)
	if err != nil {
		return nil, err
	}
	start := t.byURL[target]
	if start.err != nil {
		return nil, start.err
	}
	root, err := t.master(start)
	if err != nil {
		return nil, err
	}
	roots := t.place(root)

	// The master's log is the measure of every node's lag; when the
	// master does not answer, what its slaves last heard of it.
	cs := &clusterStatus{Master: root.url}
	var feed *client.Client
	if root.st != nil {
		cs.LogID, cs.Epoch, cs.LastIndex = root.st.LogID, root.st.Epoch, root.st.LastIndex
		feed = rem.client(root.url, timeout)
	} else {
		for _, c := range root.children {
			if c.st != nil {
				cs.LogID, cs.LastIndex = c.st.LogID, max(cs.LastIndex, c.st.LastIndex)
			}
		}
	}
	var walk func(m *member, depth int)
	walk = func(m *member, depth int) {
		row := memberRow(m, m == root, cs, now)
		row.Depth = depth
		cs.Nodes = append(cs.Nodes, row)
		for _, c := range m.children {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}

	// How long ago the master took the oldest entry each lagging node
	// lacks, read from the master's feed.
	var wg sync.WaitGroup
	for i := range cs.Nodes {
		n := &cs.Nodes[i]
		if n.Role != "slave" || n.Lag == nil {
			continue
		}
		if *n.Lag == 0 {
			behind := 0.0
			n.Behind = &behind
			continue
		}
		if feed == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if t, err := entryTime(ctx, feed, n.Applied+1, timeout); err == nil {
				behind := max(0, now().Sub(t).Seconds())
				n.Behind = &behind
			}
		}()
	}
	wg.Wait()
	return cs, nil
}

// memberRow describes one node: its own status when it answers, the view
// of the node above it otherwise.
func memberRow(m *member, isRoot bool, cs *clusterStatus, now func() time.Time) statusRow {
	row := statusRow{URL: m.url, Problems: m.problems}
	if m.parent != nil {
		row.Upstream = m.parent.url
	} else if m.isSlave() {
		row.Upstream = nodeURL(m.st.Master)
	}
	v := m.view()
	if v == nil && len(m.listed) > 0 && m.st == nil {
		v = &m.listed[0].sl
	}
	switch {
	case m.st != nil && m.st.Role != "slave":
		st := m.st
		row.Node, row.Role, row.Applied, row.State = "master", st.Role, st.AppliedIndex, "ok"
		if st.Error != "" {
			row.State, row.Error = client.StateHalted, st.Error
		}
		if st.State != "" {
			row.State = st.State
		}
		lag, behind := uint64(0), 0.0
		if st.AppliedIndex < st.LastIndex {
			lag = st.LastIndex - st.AppliedIndex
		}
		row.Lag, row.Behind = &lag, &behind
		return row
	case m.st != nil:
		own := m.st
		row.Node, row.Role, row.Applied = own.ID, "slave", own.AppliedIndex
		switch {
		case cs.LogID != "" && own.LogID != "" && own.LogID != cs.LogID:
			row.State, row.Error = client.StateDiverged, fmt.Sprintf("follows log %s, the master's is %s", own.LogID, cs.LogID)
		case own.State == client.StateBootstrapping && own.BootstrapBytesTotal > 0:
			row.State, row.Error = fmt.Sprintf("%s %s/%s", own.State, humanize.IBytes(uint64(own.BootstrapBytesDone)), humanize.IBytes(uint64(own.BootstrapBytesTotal))), own.Error
		default:
			row.State, row.Error = own.State, own.Error
		}
	case isRoot:
		row.Node, row.Role, row.State, row.Error = "master", "master", "unreachable", m.err.Error()
		return row
	case v != nil:
		row.Node, row.Role, row.State, row.Error = v.ID, "slave", "unreachable", m.err.Error()
	default:
		row.Role, row.State, row.Error = "node", "unreachable", m.err.Error()
	}
	if v != nil {
		row.Applied = max(row.Applied, v.AppliedIndex)
		if t, err := time.Parse(time.RFC3339, v.LastSeen); err == nil {
			seen := max(0, now().Sub(t).Seconds())
			row.Seen = &seen
		}
	}
	if cs.LastIndex > 0 || cs.LogID != "" {
		lag := uint64(0)
		if cs.LastIndex > row.Applied {
			lag = cs.LastIndex - row.Applied
		}
		row.Lag = &lag
	}
	return row
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

// renderStatus prints the cluster status as a header line and a table
// whose NODE column draws the tree.
func renderStatus(cs *clusterStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "master %s, log %s", cs.Master, cs.LogID)
	if cs.Epoch != 0 {
		fmt.Fprintf(&b, " epoch %d", cs.Epoch)
	}
	slaves := 0
	depths := make([]int, len(cs.Nodes))
	for i, n := range cs.Nodes {
		if n.Role == "slave" {
			slaves++
		}
		depths[i] = n.Depth
	}
	fmt.Fprintf(&b, ", last index %d, %s\n\n", cs.LastIndex, plural(slaves, "slave"))
	labels := rowLabels(cs.Nodes)
	branches := treeBranches(depths)
	rows := make([][]string, 0, len(cs.Nodes))
	var notes []string
	withUpstream := false
	for i, n := range cs.Nodes {
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
		state := n.State
		if len(n.Problems) > 0 {
			state += " !"
		}
		// The upstream of a slave one hop from the master is the master;
		// further down, or apart from the master's tree, it is said.
		upstream := n.Upstream
		if n.Depth == 1 && upstream == cs.Master {
			upstream = ""
		}
		withUpstream = withUpstream || upstream != ""
		rows = append(rows, []string{branches[i] + nodeLabel(n.Role, n.Node), n.URL, strconv.FormatUint(n.Applied, 10), lag, behind, seen, state, upstream})
		if n.Error != "" {
			notes = append(notes, fmt.Sprintf("%s: %s", labels[i], n.Error))
		}
		for _, p := range n.Problems {
			notes = append(notes, fmt.Sprintf("%s: %s", labels[i], p))
		}
	}
	header := []string{"NODE", "URL", "APPLIED", "LAG", "BEHIND", "SEEN", "STATE", "UPSTREAM"}
	right := []bool{false, false, true, true, true, true, false, false}
	if !withUpstream {
		header, right = header[:7], right[:7]
		for i := range rows {
			rows[i] = rows[i][:7]
		}
	}
	for _, l := range renderTable(header, rows, right) {
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

// treeBranches draws a tree given in order, each node followed by the
// nodes under it (depth one more), as tree(1) does: each node's prefix,
// "├─ " or "└─ " (its last sibling), under "│  " or "   " for each node
// above it that has siblings still to come.
func treeBranches(depths []int) []string {
	out := make([]string, len(depths))
	// more: whether a node at depth k follows the row at i before a node
	// shallower than k does.
	more := func(i, k int) bool {
		for _, d := range depths[i+1:] {
			if d < k {
				return false
			}
			if d == k {
				return true
			}
		}
		return false
	}
	for i, d := range depths {
		var b strings.Builder
		for k := 1; k <= d; k++ {
			switch {
			case k < d && more(i, k):
				b.WriteString("│  ")
			case k < d:
				b.WriteString("   ")
			case more(i, k):
				b.WriteString("├─ ")
			default:
				b.WriteString("└─ ")
			}
		}
		out[i] = b.String()
	}
	return out
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
