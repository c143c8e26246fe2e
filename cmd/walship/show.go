package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/api/client"
)

const showSynopsis = `walship show [--nodes URL,…] [--master URL] [--rows N] [TABLE …]

Every node's tables side by side: each node's applied index, and for each
table its row count, a checksum of its rows and its first --rows rows.
Without --nodes: the master and every slave it knows (its GET /log/status).
TABLE names limit it to those tables.

The checksum is the first 12 hex digits of a SHA-256 of the table's column
names and rows (in rowid order, with the rowid; WITHOUT ROWID tables in the
order of their columns), each value with its SQLite type, so that 1, 1.0,
'1' and X'31' differ. Values print as SQL literals for the same reason.

A table that differs between nodes (its rows, its CREATE statement, or it
exists on some nodes only) is marked ≠, with a line naming the nodes that
differ from the first node; so is each row that differs. Nodes at different
applied indexes may differ only because one has not caught up yet.

Exit status: 0 when every node holds the same tables and rows; 1 when they
differ, or a node could not be read.`

// checksumLen is the number of hex digits of a table checksum shown.
const checksumLen = 12

// maxCellWidth bounds a value's width in the side-by-side rows.
const maxCellWidth = 40

// showNode is what show read from one node.
type showNode struct {
	label       string
	url         string
	logID       string // the log the node follows, "" if unknown
	first, last uint64 // applied index at the first and the last read
	tables      map[string]*showTable
	err         error
}

// showTable is one table of one node.
type showTable struct {
	sql     string
	columns []string
	keys    []int64    // the rowid of each row; nil when the table has none
	rows    [][]string // values as SQL literals (SQLite's quote())
	sum     string
	err     error
}

func runShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("show", showSynopsis, stderr)
	nodesFlag := fs.String("nodes", "", "comma-separated node URLs to compare (default: the master and its slaves)")
	masterURL := fs.String("master", "http://127.0.0.1:8080", "the master's URL, when --nodes is not given")
	maxRows := fs.Int("rows", 20, "rows shown per table and node (0: counts and checksums only)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each request")
	rem := addRemoteFlags(fs)
	tables, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if *maxRows < 0 {
		return fmt.Errorf("--rows must be 0 or more, got %d", *maxRows)
	}
	only := map[string]bool{}
	for _, t := range tables {
		only[strings.ToLower(t)] = true
	}
	nodes, err := showTargets(ctx, rem, *nodesFlag, nodeURL(*masterURL), *timeout)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.read(ctx, rem, only, *timeout)
		}()
	}
	wg.Wait()
	labelNodes(nodes)
	out, differ, missing := renderShow(nodes, only, *maxRows)
	if _, err := io.WriteString(stdout, out); err != nil {
		return err
	}
	var problems []string
	if len(differ) > 0 {
		problems = append(problems, fmt.Sprintf("nodes differ in %s: %s", plural(len(differ), "table"), strings.Join(differ, ", ")))
	}
	if len(missing) > 0 {
		problems = append(problems, "no table "+strings.Join(missing, ", ")+" on any node")
	}
	for _, n := range nodes {
		if n.err != nil {
			problems = append(problems, fmt.Sprintf("could not read %s: %v", n.label, n.err))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// showTargets returns the nodes to compare: those of --nodes, or the
// master and every slave it knows.
func showTargets(ctx context.Context, rem *remote, list, masterURL string, timeout time.Duration) ([]*showNode, error) {
	var nodes []*showNode
	if strings.TrimSpace(list) != "" {
		seen := map[string]bool{}
		for _, u := range strings.Split(list, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			u = nodeURL(u)
			if !seen[u] {
				seen[u] = true
				nodes = append(nodes, &showNode{url: u})
			}
		}
		if len(nodes) == 0 {
			return nil, errors.New("--nodes names no node")
		}
		return nodes, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	st, err := rem.client(masterURL, timeout).LogStatus(ctx)
	if err != nil {
		return nil, nodeError(masterURL, err)
	}
	if st.Role != "master" {
		return nil, fmt.Errorf("%s is a %s, not the master: give --master %s, or --nodes", masterURL, st.Role, st.Master)
	}
	nodes = append(nodes, &showNode{url: masterURL, label: "master"})
	for _, sl := range st.Slaves {
		nodes = append(nodes, &showNode{url: nodeURL(sl.URL), label: "slave " + sl.ID})
	}
	return nodes, nil
}

// labelNodes names each node for the output: "master", "slave 2", or its
// host:port when it has no role name or shares it with another node.
func labelNodes(nodes []*showNode) {
	count := map[string]int{}
	for _, n := range nodes {
		count[n.label]++
	}
	for _, n := range nodes {
		if n.label == "" || count[n.label] > 1 {
			n.label = hostPort(n.url)
		}
	}
}

func hostPort(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
}

// read reads the node's tables; its error, if any, lands in n.err.
func (n *showNode) read(ctx context.Context, rem *remote, only map[string]bool, timeout time.Duration) {
	c := rem.client(n.url, timeout)
	query := func(sql string) (*client.SeedResponse, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		resp, err := c.Query(ctx, sql)
		if err != nil {
			return nil, nodeError(n.url, err)
		}
		n.last = resp.Index
		return resp, nil
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	if st, err := c.LogStatus(sctx); err == nil {
		n.logID = st.LogID
		if n.label == "" {
			n.label = nodeLabel(st.Role, st.ID)
		}
	}
	cancel()
	list, err := query(`SELECT l.name, l.wr, s.sql FROM pragma_table_list AS l ` +
		`JOIN sqlite_schema AS s ON s.name = l.name AND s.type = 'table' ` +
		`WHERE l.schema = 'main' AND l.type IN ('table', 'virtual') ` +
		`AND lower(l.name) NOT GLOB 'sqlite_*' AND lower(l.name) NOT GLOB '_walship*' ORDER BY l.name`)
	if err != nil {
		n.err = err
		return
	}
	n.first = list.Index
	n.tables = map[string]*showTable{}
	for _, row := range list.Values {
		name, _ := row[0].(string)
		if len(only) > 0 && !only[strings.ToLower(name)] {
			continue
		}
		withoutRowid := fmt.Sprint(row[1]) == "1"
		sql, _ := row[2].(string)
		t := &showTable{sql: sql}
		t.err = t.read(query, name, withoutRowid)
		n.tables[name] = t
	}
}

// read reads a table's rows as SQL literals and computes its checksum.
func (t *showTable) read(query func(string) (*client.SeedResponse, error), name string, withoutRowid bool) error {
	from := " FROM " + quoteIdent(name)
	head, err := query("SELECT *" + from + " LIMIT 0")
	if err != nil {
		return err
	}
	t.columns = head.Columns
	key := ""
	if !withoutRowid {
		// The rowid goes by three names; a column may take any of them.
		taken := map[string]bool{}
		for _, c := range t.columns {
			taken[strings.ToLower(c)] = true
		}
		for _, k := range []string{"rowid", "_rowid_", "oid"} {
			if !taken[k] {
				key = k
				break
			}
		}
	}
	sel := make([]string, 0, len(t.columns)+1)
	if key != "" {
		sel = append(sel, key)
	}
	order := make([]string, len(t.columns))
	for i, c := range t.columns {
		sel = append(sel, "quote("+quoteIdent(c)+")")
		order[i] = quoteIdent(c)
	}
	q := "SELECT " + strings.Join(sel, ", ") + from
	if key != "" {
		q += " ORDER BY " + key
	} else {
		// A WITHOUT ROWID table's primary key orders its rows completely.
		q += " ORDER BY " + strings.Join(order, ", ")
	}
	resp, err := query(q)
	if err != nil {
		return err
	}
	for _, row := range resp.Values {
		vals := row
		if key != "" {
			k, err := strconv.ParseInt(fmt.Sprint(row[0]), 10, 64)
			if err != nil {
				return fmt.Errorf("table %s: rowid %v is not an integer", name, row[0])
			}
			t.keys = append(t.keys, k)
			vals = row[1:]
		}
		lits := make([]string, len(vals))
		for i, v := range vals {
			lits[i] = literal(v)
		}
		t.rows = append(t.rows, lits)
	}
	t.sum = tableChecksum(t.columns, t.keys, t.rows)
	return nil
}

// literal returns a quote() value as the text it is.
func literal(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return "NULL"
	}
	return fmt.Sprint(v)
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// tableChecksum hashes a table's columns and rows: every field is written
// with its length first, so no two tables share an encoding; values are
// SQL literals, which keep their type.
func tableChecksum(columns []string, keys []int64, rows [][]string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(strconv.Itoa(len(columns)))
	for _, c := range columns {
		field(c)
	}
	field(strconv.FormatBool(keys != nil))
	for i, row := range rows {
		if keys != nil {
			field(strconv.FormatInt(keys[i], 10))
		}
		for _, v := range row {
			field(v)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:checksumLen]
}

// renderShow prints the nodes and their tables side by side, and returns
// the names of the tables that differ, and of the tables asked for that no
// node has.
func renderShow(nodes []*showNode, only map[string]bool, maxRows int) (out string, differ, missing []string) {
	var b strings.Builder
	rows := make([][]string, len(nodes))
	var read []*showNode
	indexes, logs := map[uint64]bool{}, map[string]bool{}
	for i, n := range nodes {
		state := "applied index " + strconv.FormatUint(n.first, 10)
		if n.last != n.first {
			state += " to " + strconv.FormatUint(n.last, 10) + " while read"
		}
		if n.err != nil {
			state = "not read: " + n.err.Error()
		} else {
			read = append(read, n)
			indexes[n.first], indexes[n.last] = true, true
			if n.logID != "" {
				logs[n.logID] = true
			}
		}
		rows[i] = []string{n.label, n.url, state}
	}
	for _, l := range renderTable([]string{"NODE", "URL", "STATE"}, rows, nil) {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	if len(logs) > 1 {
		b.WriteString("note: the nodes follow different logs: they are not replicas of one history\n")
	} else if len(indexes) > 1 {
		b.WriteString("note: the nodes are at different applied indexes; a node that has not caught up yet differs\n")
	}
	names := map[string]bool{}
	for _, n := range read {
		for name := range n.tables {
			names[name] = true
		}
	}
	sorted := make([]string, 0, len(names))
	for name := range names {
		sorted = append(sorted, name)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		b.WriteByte('\n')
		if renderTableDiff(&b, name, read, maxRows) {
			differ = append(differ, name)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(only)) {
		if !namesFold(names, t) {
			fmt.Fprintf(&b, "\nno table %s on any node\n", t)
			missing = append(missing, t)
		}
	}
	b.WriteByte('\n')
	switch {
	case len(read) == 0:
		b.WriteString("no node could be read\n")
	case len(differ) > 0:
		fmt.Fprintf(&b, "≠ nodes differ in %s of %d: %s\n", plural(len(differ), "table"), len(sorted), strings.Join(differ, ", "))
	case len(read) < len(nodes):
		fmt.Fprintf(&b, "= the %s read hold the same %s\n", plural(len(read), "node"), plural(len(sorted), "table"))
	default:
		fmt.Fprintf(&b, "= all %s hold the same %s\n", plural(len(read), "node"), plural(len(sorted), "table"))
	}
	return b.String(), differ, missing
}

func namesFold(names map[string]bool, t string) bool {
	for n := range names {
		if strings.EqualFold(n, t) {
			return true
		}
	}
	return false
}

// renderTableDiff prints one table across the nodes and reports whether
// it differs between them.
func renderTableDiff(b *strings.Builder, name string, nodes []*showNode, maxRows int) bool {
	ref := nodes[0]
	refT := ref.tables[name]
	var diffs []string
	for _, n := range nodes[1:] {
		t := n.tables[name]
		var why []string
		switch {
		case t == nil && refT == nil:
		case t == nil:
			why = append(why, "missing")
		case refT == nil:
			why = append(why, "only there")
		case t.err != nil || refT.err != nil:
			why = append(why, "not read")
		default:
			if t.sql != refT.sql {
				why = append(why, "schema")
			}
			if t.sum != refT.sum {
				why = append(why, "rows")
			}
		}
		if len(why) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s (%s)", n.label, strings.Join(why, ", ")))
		}
	}
	differs := len(diffs) > 0
	if refT == nil && !differs {
		return false
	}
	if differs {
		fmt.Fprintf(b, "≠ %s: differs from %s on %s\n", name, ref.label, strings.Join(diffs, ", "))
	} else {
		fmt.Fprintf(b, "= %s: the same on %s\n", name, plural(len(nodes), "node"))
	}

	// One column per node: its label, row count, checksum, then its rows.
	const gutter = 12
	blocks := make([][]string, len(nodes))
	lines, more := alignRows(name, nodes, maxRows)
	for i, n := range nodes {
		t := n.tables[name]
		if t == nil || t.err != nil || maxRows == 0 {
			continue
		}
		cells := make([][]string, len(lines))
		numeric := make([]bool, len(t.columns))
		for j := range numeric {
			numeric[j] = true
		}
		for j, l := range lines {
			row := l[i]
			if row == nil {
				continue
			}
			cells[j] = make([]string, len(row))
			for k, v := range row {
				cells[j][k] = truncate(escapeControl(v), maxCellWidth)
				if k < len(numeric) && v != "NULL" {
					if _, err := strconv.ParseFloat(v, 64); err != nil {
						numeric[k] = false
					}
				}
			}
		}
		blocks[i] = renderTable(t.columns, cells, numeric)
	}
	widths := make([]int, len(nodes))
	head := [][]string{make([]string, len(nodes)), make([]string, len(nodes)), make([]string, len(nodes))}
	for i, n := range nodes {
		t := n.tables[name]
		head[0][i] = n.label
		switch {
		case t == nil:
			head[1][i], head[2][i] = "-", "no such table"
		case t.err != nil:
			head[1][i], head[2][i] = "?", "not read: "+t.err.Error()
		default:
			head[1][i], head[2][i] = strconv.Itoa(len(t.rows)), t.sum
			if maxRows > 0 && more[i] > 0 {
				head[1][i] += fmt.Sprintf(" (%d not shown)", more[i])
			}
		}
		for _, h := range head {
			widths[i] = max(widths[i], displayWidth(h[i]))
		}
		if len(blocks[i]) > 0 {
			widths[i] = max(widths[i], displayWidth(blocks[i][0]))
		}
	}
	line := func(mark string, cells func(i int) string) {
		var l strings.Builder
		l.WriteString(pad("  "+mark, gutter, false))
		for i := range nodes {
			if i > 0 {
				l.WriteString("   ")
			}
			l.WriteString(pad(cells(i), widths[i], false))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line("", func(i int) string { return head[0][i] })
	line("rows", func(i int) string { return head[1][i] })
	line("checksum", func(i int) string { return head[2][i] })
	if maxRows == 0 || len(lines) == 0 && !hasBlock(blocks) {
		return differs
	}
	block := func(i, j int) string {
		if j < len(blocks[i]) {
			return blocks[i][j]
		}
		return ""
	}
	line("", func(i int) string { return block(i, 0) })
	line("", func(i int) string { return block(i, 1) })
	for j, l := range lines {
		mark := ""
		if !sameRow(l, nodes, name) {
			mark = "≠"
		}
		line(mark, func(i int) string { return block(i, j+2) })
	}
	return differs
}

func hasBlock(blocks [][]string) bool {
	for _, b := range blocks {
		if len(b) > 0 {
			return true
		}
	}
	return false
}

// alignRows lines the nodes' rows up: by rowid when every node's table has
// one (a row that a node lacks is a gap in its column), else by position.
// It returns at most maxRows lines, each with one row (or nil) per node,
// and per node how many of its rows are not shown.
func alignRows(name string, nodes []*showNode, maxRows int) ([][][]string, []int) {
	tables := make([]*showTable, len(nodes))
	byKey := true
	for i, n := range nodes {
		if t := n.tables[name]; t != nil && t.err == nil {
			tables[i] = t
			byKey = byKey && t.keys != nil
		}
	}
	var lines [][][]string
	if byKey {
		keySet := map[int64]bool{}
		for _, t := range tables {
			if t != nil {
				for _, k := range t.keys {
					keySet[k] = true
				}
			}
		}
		keys := make([]int64, 0, len(keySet))
		for k := range keySet {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		if len(keys) > maxRows {
			keys = keys[:maxRows]
		}
		pos := make([]int, len(tables))
		for _, k := range keys {
			l := make([][]string, len(tables))
			for i, t := range tables {
				if t != nil && pos[i] < len(t.keys) && t.keys[pos[i]] == k {
					l[i] = t.rows[pos[i]]
					pos[i]++
				}
			}
			lines = append(lines, l)
		}
		more := make([]int, len(tables))
		for i, t := range tables {
			if t != nil {
				more[i] = len(t.rows) - pos[i]
			}
		}
		return lines, more
	}
	n := 0
	for _, t := range tables {
		if t != nil {
			n = max(n, len(t.rows))
		}
	}
	n = min(n, maxRows)
	for j := 0; j < n; j++ {
		l := make([][]string, len(tables))
		for i, t := range tables {
			if t != nil && j < len(t.rows) {
				l[i] = t.rows[j]
			}
		}
		lines = append(lines, l)
	}
	more := make([]int, len(tables))
	for i, t := range tables {
		if t != nil {
			more[i] = max(0, len(t.rows)-n)
		}
	}
	return lines, more
}

// sameRow reports whether every node that has the table has this row.
func sameRow(l [][]string, nodes []*showNode, name string) bool {
	var first []string
	seen := false
	for i, n := range nodes {
		if t := n.tables[name]; t == nil || t.err != nil {
			continue
		}
		if !seen {
			first, seen = l[i], true
			continue
		}
		if (first == nil) != (l[i] == nil) || !slices.Equal(first, l[i]) {
			return false
		}
	}
	return true
}
