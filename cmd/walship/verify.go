package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/api"
	"github.com/walship/walship/api/client"
)

const verifySynopsis = `walship verify [--node URL] [--timeout 60s] [--json]

Checks that every slave holds the master's content. The master logs a
marker now (POST /db/verify), hashes its content at the marker, one sum per
table and for the schema (sqlite_schema) and the header fields
(sqlite_header), and logs the sums; each slave hashes its own content at
the marker and, when it reaches the master's sums, compares them. A slave
whose content differs stops applying (walship status: diverged). This
command waits until every slave has compared, then prints one line per
node and part:

  ok           the node's content of this part is the master's
  DIFFERS      it is not; the slave stopped applying (diverged). Rebuild
               it: stop it, empty its data directory, start it again
  skipped      the slave had no sums of its own at the marker (it restarted,
               or installed a snapshot, after it): run verify again
  not checked  the slave could not be asked, or had not compared in time

URL is any node (default --node); a slave leads to its master.

Exit status 0 when every slave was checked and none differs, else 1.`

// verifyRow is one node and part in 'walship verify'.
type verifyRow struct {
	Node   string `json:"node"` // "master" or "slave N"
	URL    string `json:"url"`
	Index  uint64 `json:"index"`
	Part   string `json:"part,omitempty"`
	Result string `json:"result"` // ok, DIFFERS, skipped, not checked
	Error  string `json:"error,omitempty"`
}

// Results of a part in 'walship verify'.
const (
	verifyOK      = "ok"
	verifyDiffers = "DIFFERS"
	verifySkipped = "skipped"
	verifyNot     = "not checked"
)

// verifyReport is what 'walship verify' shows.
type verifyReport struct {
	Master      string      `json:"master"`
	Index       uint64      `json:"index"`
	ResultIndex uint64      `json:"result_index"`
	Rows        []verifyRow `json:"rows"`
}

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", verifySynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "any node's URL (the argument URL wins); a slave leads to its master")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the master's hash and every slave's comparison, in all")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(pos[1:], " "))
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout %s: give a duration above 0", *timeout)
	}
	target := *node
	if len(pos) == 1 {
		target = pos[0]
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := verifyCluster(ctx, rem, nodeURL(target), *timeout, stderr)
	if err != nil {
		return err
	}
	if *asJSON {
		err = writeJSON(stdout, rep)
	} else {
		_, err = io.WriteString(stdout, renderVerify(rep))
	}
	if err != nil {
		return err
	}
	return verifyOutcome(rep)
}

// verifyCluster asks the master for a check and waits until every slave
// the master knows has compared its content, or ctx ends.
func verifyCluster(ctx context.Context, rem *remote, target string, timeout time.Duration, progress io.Writer) (*verifyReport, error) {
	get := func(u string) (*client.LogStatus, error) {
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
		if st, err = get(mURL); err != nil {
			return nil, fmt.Errorf("the master of %s: %w", target, err)
		}
	}
	wait := min(timeout, api.MaxVerifyWait)
	fmt.Fprintf(progress, "asking the master %s to check its content…\n", mURL)
	res, err := rem.client(mURL, wait+10*time.Second).Verify(ctx, wait)
	if err != nil {
		return nil, fmt.Errorf("the master's check: %w", nodeError(mURL, err))
	}
	rep := &verifyReport{Master: mURL, Index: res.Index, ResultIndex: res.ResultIndex}
	parts := slices.Sorted(maps.Keys(res.Sums))
	for _, p := range parts {
		rep.Rows = append(rep.Rows, verifyRow{Node: "master", URL: mURL, Index: res.Index, Part: p, Result: verifyOK})
	}
	slaves := st.Slaves
	done := make([]*client.LogStatus, len(slaves))
	errs := make([]error, len(slaves))
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	lastProgress := time.Now()
	for {
		var wg sync.WaitGroup
		for i, sl := range slaves {
			if done[i] != nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := get(sl.URL)
				switch {
				case err != nil:
					errs[i] = err
				case s.LastCheck != nil && s.LastCheck.Index >= res.Index,
					s.State == client.StateDiverged:
					done[i] = s
				default:
					errs[i] = fmt.Errorf("applied %d, the master's sums are at %d", s.AppliedIndex, res.ResultIndex)
				}
			}()
		}
		wg.Wait()
		var waiting []string
		for i, sl := range slaves {
			if done[i] == nil {
				waiting = append(waiting, fmt.Sprintf("slave %s (%v)", sl.ID, errs[i]))
			}
		}
		if len(waiting) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			for i, sl := range slaves {
				if done[i] == nil {
					rep.Rows = append(rep.Rows, verifyRow{Node: nodeLabel("slave", sl.ID), URL: sl.URL, Index: res.Index,
						Result: verifyNot, Error: errs[i].Error()})
				}
			}
			return finishVerify(rep, slaves, done, parts), nil
		case <-poll.C:
			if time.Since(lastProgress) >= time.Second {
				lastProgress = time.Now()
				fmt.Fprintf(progress, "waiting for %s to compare the content at index %d: %s\n",
					plural(len(waiting), "slave"), res.Index, strings.Join(waiting, ", "))
			}
		}
	}
	return finishVerify(rep, slaves, done, parts), nil
}

// finishVerify adds the rows of the slaves that compared (done[i] not nil)
// and orders the rows: master, then slaves by id.
func finishVerify(rep *verifyReport, slaves []client.SlaveStatus, done []*client.LogStatus, parts []string) *verifyReport {
	for i, sl := range slaves {
		s := done[i]
		if s == nil {
			continue
		}
		label := nodeLabel("slave", sl.ID)
		c := s.LastCheck
		if c == nil || c.Index < rep.Index {
			// Diverged before this check: it applies nothing more.
			rep.Rows = append(rep.Rows, verifyRow{Node: label, URL: sl.URL, Index: rep.Index, Result: verifyNot,
				Error: "diverged before this check: " + s.Error})
			continue
		}
		all := slices.Clone(parts)
		for _, d := range c.Differs {
			if !slices.Contains(all, d) {
				all = append(all, d) // a table only the slave has
			}
		}
		slices.Sort(all)
		for _, p := range all {
			row := verifyRow{Node: label, URL: sl.URL, Index: c.Index, Part: p, Result: verifyOK}
			switch c.Result {
			case client.CheckMismatch:
				if slices.Contains(c.Differs, p) {
					row.Result, row.Error = verifyDiffers, s.Error
				}
			case client.CheckOK:
			default:
				row.Result, row.Error = verifySkipped, c.Error
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	slices.SortStableFunc(rep.Rows, func(a, b verifyRow) int {
		return strings.Compare(sortKey(a.Node), sortKey(b.Node))
	})
	return rep
}

// sortKey orders node labels: the master, then slaves by numeric id.
func sortKey(label string) string {
	if label == "master" {
		return ""
	}
	id := strings.TrimPrefix(label, "slave ")
	if n, err := strconv.Atoi(id); err == nil {
		return fmt.Sprintf("1%020d", n)
	}
	return "2" + id
}

// renderVerify prints the report as a header line, a table and notes.
func renderVerify(rep *verifyReport) string {
	var b strings.Builder
	nodes := map[string]bool{}
	for _, r := range rep.Rows {
		nodes[r.Node] = true
	}
	fmt.Fprintf(&b, "checked the content at index %d of master %s (its sums are entry %d), %s\n\n",
		rep.Index, rep.Master, rep.ResultIndex, plural(len(nodes)-1, "slave"))
	rows := make([][]string, 0, len(rep.Rows))
	var notes []string
	noted := map[string]bool{}
	for _, r := range rep.Rows {
		part := r.Part
		if part == "" {
			part = "-"
		}
		rows = append(rows, []string{r.Node, strconv.FormatUint(r.Index, 10), part, r.Result})
		if r.Error != "" && !noted[r.Node] {
			noted[r.Node] = true
			notes = append(notes, r.Node+": "+r.Error)
		}
	}
	for _, l := range renderTable([]string{"NODE", "INDEX", "PART", "RESULT"}, rows, []bool{false, true, false, false}) {
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

// verifyOutcome is the command's error: the parts that differ, then the
// nodes not checked; nil when every slave holds the master's content.
func verifyOutcome(rep *verifyReport) error {
	differs := map[string][]string{}
	var order, unchecked []string
	for _, r := range rep.Rows {
		switch r.Result {
		case verifyDiffers:
			if differs[r.Node] == nil {
				order = append(order, r.Node)
			}
			differs[r.Node] = append(differs[r.Node], r.Part)
		case verifySkipped, verifyNot:
			if !slices.Contains(unchecked, r.Node) {
				unchecked = append(unchecked, r.Node)
			}
		}
	}
	var msgs []string
	for _, n := range order {
		msgs = append(msgs, fmt.Sprintf("%s differs from the master in %s", n, strings.Join(differs[n], ", ")))
	}
	if len(unchecked) > 0 {
		msgs = append(msgs, "not checked: "+strings.Join(unchecked, ", "))
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
