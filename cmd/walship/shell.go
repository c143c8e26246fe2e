package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peterh/liner"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

const shellSynopsis = `walship shell [--history FILE] [--mode table|json|csv] [--timeout D] [URL]

An SQL shell on the node at URL (default http://127.0.0.1:8080, or --node).
A statement ends with ';' and may span lines. Each statement is sent as a
query; one that would change the database is sent again as a write (a slave
forwards writes to the master, and refuses schema statements). Lines starting
with '.' are the shell's own commands: .help lists them.

On a terminal: line editing, history (Up/Down, Ctrl-R) kept in --history,
Ctrl-C clears the line or cancels the running statement, Ctrl-D or .quit
leaves. With standard input from a pipe or a file there is no prompt: the
statements run in order, and the first error stops the shell with its
message on standard error and exit status 1.`

const shellHelp = `Statements end with ';' and may span lines. Shell commands:
  .tables             list the tables and views
  .schema [TABLE]     show the CREATE statements (of TABLE and its indexes, triggers)
  .indexes [TABLE]    list the indexes
  .status             this node's replication status (GET /log/status)
  .nodes              the cluster's members (GET /nodes)
  .mode [table|json|csv]  how results print (json: the node's answer as it came)
  .timer on|off       print each statement's elapsed time
  .read FILE          run an SQL file (a sqlite3 .dump) in all-or-nothing chunks, as walship load does
  .dump [TABLE…]      print the database (or the tables matching TABLE) as SQL, as sqlite3's .dump
  .backup FILE        write a backup of this node's database (a SQLite file) to FILE, as walship backup
  .restore FILE       replace the cluster's database with a backup FILE, as walship restore
  .help               this text
  .quit, .exit        leave (so does Ctrl-D)
`

// writeInQueryText is in the error a node answers (400) to a query that
// would change the database: db.ErrWriteInQuery's text, or the read
// authorizer's refusal. The shell then sends the statement as a write.
const writeInQueryText = "may not change the database"

// notInternal is the condition on sqlite_schema that leaves out SQLite's
// and walship's own objects.
const notInternal = `lower(name) NOT GLOB 'sqlite_*' AND lower(name) NOT GLOB '_walship*'`

func runShell(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	defaultHistory := ""
	if home, err := os.UserHomeDir(); err == nil {
		defaultHistory = filepath.Join(home, ".walship_history")
	}
	fs := newFlagSet("shell", shellSynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the node's URL (the argument URL wins)")
	history := fs.String("history", defaultHistory, "history file of the interactive shell; empty keeps none")
	modeName := fs.String("mode", "table", "how results print: table, json, csv (.mode changes it)")
	timeout := fs.Duration("timeout", 30*time.Second, "timeout of each statement")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(pos[1:], " "))
	}
	if len(pos) == 1 {
		*node = pos[0]
	}
	mode, err := parseMode(*modeName)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", *timeout)
	}
	sh := &shell{c: rem.client(nodeURL(*node), *timeout), out: stdout, errOut: stderr, mode: mode, timeout: *timeout}
	// Line editing needs the terminal on both sides (liner reads os.Stdin
	// and writes os.Stdout); otherwise the input is read as a script.
	if f, ok := stdin.(*os.File); ok && f == os.Stdin && isTerminal(f) && isTerminal(stdout) {
		return sh.interactive(ctx, *history)
	}
	return sh.loop(ctx, &pipeReader{r: bufio.NewReader(stdin)}, false)
}

// shell runs statements and shell commands against one node.
type shell struct {
	c       *client.Client
	out     io.Writer
	errOut  io.Writer
	mode    outputMode
	timer   bool
	timeout time.Duration
	// interrupts, when set, delivers SIGINT while a statement runs: it
	// cancels that statement, not the shell.
	interrupts chan os.Signal
}

// lineReader reads the shell's input a line at a time.
type lineReader interface {
	// readLine returns a line without its end; io.EOF at the end of the
	// input, errAborted when the user dropped what they were typing.
	readLine(prompt string) (string, error)
	addHistory(text string)
}

var errAborted = errors.New("input aborted")

// pipeReader reads statements from a pipe or a file: no prompt, no history.
type pipeReader struct{ r *bufio.Reader }

func (p *pipeReader) readLine(string) (string, error) {
	line, err := p.r.ReadString('\n')
	if err == io.EOF && line != "" {
		err = nil // the last line has no end of line
	}
	return strings.TrimRight(line, "\r\n"), err
}

func (p *pipeReader) addHistory(string) {}

// linerReader reads from the terminal with line editing and history.
type linerReader struct{ l *liner.State }

func (r *linerReader) readLine(prompt string) (string, error) {
	s, err := r.l.Prompt(prompt)
	if errors.Is(err, liner.ErrPromptAborted) {
		return "", errAborted
	}
	return s, err
}

func (r *linerReader) addHistory(text string) {
	for _, h := range historyEntries(text) {
		r.l.AppendHistory(h)
	}
}

// interactive runs the shell on the terminal.
func (sh *shell) interactive(ctx context.Context, historyFile string) error {
	// SIGINT (Ctrl-C while a statement runs) cancels that statement only,
	// so the shell does not follow ctx, which SIGINT cancels for good.
	// SIGTERM and SIGHUP end the shell even while it waits at the prompt,
	// where reading the terminal cannot be interrupted: the terminal is
	// restored, the history saved, and the process exits.
	ctx = context.WithoutCancel(ctx)
	sh.interrupts = make(chan os.Signal, 1)
	signal.Notify(sh.interrupts, os.Interrupt)
	defer signal.Stop(sh.interrupts)

	l := liner.NewLiner()
	l.SetCtrlCAborts(true)
	l.SetMultiLineMode(true)
	l.SetCompleter(completeDot)
	if historyFile != "" {
		if f, err := os.Open(historyFile); err == nil {
			if _, err := l.ReadHistory(f); err != nil {
				fmt.Fprintf(sh.errOut, "warning: history %s: %v\n", historyFile, err)
			}
			f.Close()
		}
	}
	saveHistory := func() {
		if historyFile == "" {
			return
		}
		f, err := os.OpenFile(historyFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err == nil {
			_, err = l.WriteHistory(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(sh.errOut, "warning: history %s: %v\n", historyFile, err)
		}
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGHUP)
	stopWatch := make(chan struct{})
	defer func() {
		signal.Stop(term)
		close(stopWatch)
	}()
	go func() {
		select {
		case s := <-term:
			l.Close()
			saveHistory()
			fmt.Fprintf(sh.errOut, "\nwalship: %v\n", s)
			os.Exit(1)
		case <-stopWatch:
		}
	}()

	sh.banner(ctx)
	err := sh.loop(ctx, &linerReader{l: l}, true)
	l.Close()
	saveHistory()
	return err
}

// banner says where the shell is connected.
func (sh *shell) banner(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := sh.c.LogStatus(ctx)
	if err != nil {
		fmt.Fprintf(sh.out, "walship shell on %s\n", sh.c.URL)
		fmt.Fprintf(sh.errOut, "warning: %v\n", nodeError(sh.c.URL, err))
	} else {
		role := st.Role
		if st.Role == "slave" {
			role = "slave " + st.ID + " of " + st.Master
		}
		fmt.Fprintf(sh.out, "walship shell on %s (%s, applied index %d)\n", sh.c.URL, role, st.AppliedIndex)
	}
	fmt.Fprintln(sh.out, "Statements end with ';' and may span lines. .help lists the shell's commands.")
}

// loop reads lines until the end of the input or .quit. Interactively an
// error is printed and the shell goes on; otherwise the first error ends
// the loop, naming the line where its statement began.
func (sh *shell) loop(ctx context.Context, in lineReader, interactive bool) error {
	prompt := sh.c.URL + "> "
	cont := strings.Repeat(" ", max(0, len(prompt)-5)) + "...> "
	var buf strings.Builder
	lineNo, start := 0, 0
	fail := func(line int, err error) error {
		if !interactive {
			return fmt.Errorf("line %d: %w", line, err)
		}
		fmt.Fprintf(sh.errOut, "Error: %v\n", err)
		return nil
	}
	for {
		p := prompt
		if buf.Len() > 0 {
			p = cont
		}
		line, err := in.readLine(p)
		switch {
		case errors.Is(err, errAborted):
			buf.Reset()
			continue
		case err == io.EOF:
			if interactive {
				fmt.Fprintln(sh.out)
				return nil
			}
			// As sqlite3 does: a last statement without ';' still runs.
			if strings.TrimSpace(buf.String()) == "" {
				return nil
			}
			stmts, err := db.Split(buf.String())
			if err != nil {
				return fail(start, err)
			}
			for _, st := range stmts {
				if err := sh.run(ctx, st); err != nil {
					return fail(start, err)
				}
			}
			return nil
		case err != nil:
			return err
		}
		lineNo++
		if buf.Len() == 0 {
			trimmed := strings.TrimSpace(line)
			if trimmed == "" {
				continue
			}
			if strings.HasPrefix(trimmed, ".") {
				in.addHistory(trimmed)
				quit, err := sh.dot(ctx, trimmed)
				if err != nil {
					if err := fail(lineNo, err); err != nil {
						return err
					}
				}
				if quit {
					return nil
				}
				continue
			}
			start = lineNo
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
		stmts, complete := splitComplete(buf.String())
		if !complete {
			continue
		}
		in.addHistory(buf.String())
		buf.Reset()
		for _, st := range stmts {
			if err := sh.run(ctx, st); err != nil {
				if err := fail(start, err); err != nil {
					return err
				}
				break // what followed the failed statement is not run
			}
		}
	}
}

// splitComplete splits the text typed so far into statements, and reports
// whether it is complete: its last statement ends with ';' outside any
// string, comment or trigger body. Text of white space and comments only is
// complete and holds no statement.
func splitComplete(text string) ([]string, bool) {
	stmts, err := db.Split(text)
	if err != nil {
		return nil, false // an unterminated string, comment or trigger
	}
	if len(stmts) == 0 {
		return nil, true
	}
	return stmts, strings.HasSuffix(stmts[len(stmts)-1], ";")
}

// historyEntries returns what a statement adds to the history, whose file
// holds one entry a line: the statement on one line when joining its lines
// keeps its meaning, else each of its lines (a "--" comment would swallow
// the lines joined after it, and a string spanning lines would change).
func historyEntries(text string) []string {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) <= 1 {
		return lines
	}
	var quote byte
	comment := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		next := byte(0)
		if i+1 < len(text) {
			next = text[i+1]
		}
		switch {
		case comment:
			if c == '*' && next == '/' {
				comment = false
				i++
			}
		case quote != 0:
			if c == '\n' {
				return lines
			}
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '[':
			quote = ']'
		case c == '-' && next == '-':
			return lines
		case c == '/' && next == '*':
			comment = true
			i++
		}
	}
	return []string{strings.Join(lines, " ")}
}

// statementContext bounds one statement by the timeout and, on a terminal,
// cancels it on Ctrl-C.
func (sh *shell) statementContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout)
	if sh.interrupts == nil {
		return ctx, cancel
	}
	select {
	case <-sh.interrupts: // a Ctrl-C from before this statement
	default:
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-sh.interrupts:
			cancel()
		case <-done:
		}
	}()
	return ctx, func() {
		close(done)
		cancel()
	}
}

// run sends one statement: as a query, and as a write when the node says
// the query would change the database.
func (sh *shell) run(ctx context.Context, stmt string) error {
	ctx, cancel := sh.statementContext(ctx)
	defer cancel()
	start := time.Now()
	resp, err := sh.c.Query(ctx, stmt)
	write := false
	if isWriteInQuery(err) {
		write = true
		resp, err = sh.c.Exec(ctx, stmt)
	}
	elapsed := time.Since(start)
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	if err := writeResult(sh.out, resp, sh.mode, write); err != nil {
		return err
	}
	if sh.timer {
		fmt.Fprintf(sh.out, "time: %s\n", elapsed.Round(time.Microsecond))
	}
	return nil
}

// isWriteInQuery reports whether err is a node's refusal to run a write as
// a query.
func isWriteInQuery(err error) bool {
	var se *client.StatusError
	return errors.As(err, &se) && se.Status == 400 && strings.Contains(se.Msg, writeInQueryText)
}

// dotCommands are the shell's own commands, for .help and completion.
var dotCommands = []string{".backup", ".dump", ".exit", ".help", ".indexes", ".mode", ".nodes", ".quit", ".read", ".restore", ".schema", ".status", ".tables", ".timer"}

// completeDot completes a shell command's name on Tab.
func completeDot(line string) []string {
	if !strings.HasPrefix(line, ".") || strings.Contains(line, " ") {
		return nil
	}
	var out []string
	for _, c := range dotCommands {
		if strings.HasPrefix(c, line) {
			out = append(out, c)
		}
	}
	return out
}

// dot runs a shell command; quit says the shell should end.
func (sh *shell) dot(ctx context.Context, line string) (quit bool, err error) {
	fields := strings.Fields(line)
	cmd, args := strings.ToLower(fields[0]), fields[1:]
	argc := func(most int) error {
		if len(args) > most {
			return fmt.Errorf("%s takes at most %s; see .help", cmd, plural(most, "argument"))
		}
		return nil
	}
	switch cmd {
	case ".quit", ".exit", ".q":
		return true, nil
	case ".help":
		_, err := io.WriteString(sh.out, shellHelp)
		return false, err
	case ".mode":
		if err := argc(1); err != nil {
			return false, err
		}
		if len(args) == 0 {
			_, err := fmt.Fprintf(sh.out, "mode %s\n", sh.mode)
			return false, err
		}
		m, err := parseMode(args[0])
		if err != nil {
			return false, err
		}
		sh.mode = m
		return false, nil
	case ".timer":
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return false, errors.New("usage: .timer on|off")
		}
		sh.timer = args[0] == "on"
		return false, nil
	case ".read":
		if len(args) != 1 {
			return false, errors.New("usage: .read FILE")
		}
		text, err := os.ReadFile(args[0])
		if err != nil {
			return false, err
		}
		// Not bound by the statement timeout: a load may take long.
		l := &loader{c: sh.c, out: sh.out, progress: sh.out, chunk: 1000, chunkBytes: 4 << 20}
		return false, l.load(ctx, args[0], string(text), 1)
	case ".backup":
		if len(args) != 1 {
			return false, errors.New("usage: .backup FILE (a SQLite file of this node's database)")
		}
		return false, backupTo(ctx, sh.c, client.BackupOptions{}, args[0], sh.out, sh.errOut)
	case ".dump":
		// To the screen, as sqlite3's .dump; TABLE… are LIKE patterns.
		return false, sh.dump(ctx, args)
	case ".restore":
		if len(args) != 1 {
			return false, errors.New("usage: .restore FILE (replaces the cluster's database with a backup)")
		}
		return false, restoreFrom(ctx, sh.c, args[0], sh.out, sh.errOut)
	}
	ctx, cancel := sh.statementContext(ctx)
	defer cancel()
	switch cmd {
	case ".tables":
		if err := argc(0); err != nil {
			return false, err
		}
		return false, sh.tables(ctx)
	case ".schema":
		if err := argc(1); err != nil {
			return false, err
		}
		return false, sh.schema(ctx, args)
	case ".indexes", ".indices":
		if err := argc(1); err != nil {
			return false, err
		}
		return false, sh.indexes(ctx, args)
	case ".status":
		if err := argc(0); err != nil {
			return false, err
		}
		return false, sh.status(ctx)
	case ".nodes":
		if err := argc(0); err != nil {
			return false, err
		}
		return false, sh.nodes(ctx)
	}
	return false, fmt.Errorf("unknown command %s; .help lists the commands", fields[0])
}

// dump writes the SQL dump of the node's database (or of the tables
// matching the patterns) to the shell's output.
func (sh *shell) dump(ctx context.Context, tables []string) error {
	b, err := sh.c.Backup(ctx, client.BackupOptions{SQL: true, Tables: tables})
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	defer b.Body.Close()
	_, err = io.Copy(sh.out, b.Body)
	return err
}

func (sh *shell) tables(ctx context.Context) error {
	resp, err := sh.c.Query(ctx, `SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND `+notInternal+` ORDER BY name`)
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	var b strings.Builder
	for _, row := range resp.Values {
		b.WriteString(cellText(row[0]))
		b.WriteByte('\n')
	}
	_, err = io.WriteString(sh.out, b.String())
	return err
}

func (sh *shell) schema(ctx context.Context, args []string) error {
	q := `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND ` + notInternal
	var params []any
	if len(args) == 1 {
		q += ` AND tbl_name = ?1 COLLATE NOCASE`
		params = append(params, args[0])
	}
	q += ` ORDER BY tbl_name, CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, name`
	resp, err := sh.c.Query(ctx, q, params...)
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	if len(resp.Values) == 0 && len(args) == 1 {
		return fmt.Errorf("no such table: %s", args[0])
	}
	var b strings.Builder
	for _, row := range resp.Values {
		fmt.Fprintf(&b, "%s;\n", row[0])
	}
	_, err = io.WriteString(sh.out, b.String())
	return err
}

func (sh *shell) indexes(ctx context.Context, args []string) error {
	q := `SELECT name AS "index", tbl_name AS "table", CASE WHEN sql IS NULL THEN 'automatic' ELSE '' END AS "note" ` +
		`FROM sqlite_schema WHERE type = 'index' AND ` + notInternal + ` AND lower(tbl_name) NOT GLOB '_walship*'`
	var params []any
	if len(args) == 1 {
		q += ` AND tbl_name = ?1 COLLATE NOCASE`
		params = append(params, args[0])
	}
	resp, err := sh.c.Query(ctx, q+` ORDER BY tbl_name, name`, params...)
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	return writeResult(sh.out, resp, sh.mode, false)
}

func (sh *shell) status(ctx context.Context) error {
	st, err := sh.c.LogStatus(ctx)
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	if sh.mode == modeJSON {
		return writeJSON(sh.out, st)
	}
	var b strings.Builder
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-14s %s\n", k+":", v)
		}
	}
	u := func(n uint64) string { return strconv.FormatUint(n, 10) }
	kv("node", sh.c.URL)
	kv("role", st.Role)
	kv("id", st.ID)
	kv("state", st.State)
	kv("master", st.Master)
	kv("log id", st.LogID)
	if st.Epoch != 0 {
		kv("epoch", u(st.Epoch))
	}
	kv("applied index", u(st.AppliedIndex))
	if st.Role == "slave" {
		kv("master's log", u(st.FirstIndex)+".."+u(st.LastIndex)+" (as last heard)")
	} else {
		kv("log", u(st.FirstIndex)+".."+u(st.LastIndex))
	}
	if st.LagEntries != nil {
		kv("lag", plural(int(*st.LagEntries), "entry")+" behind the master")
	}
	kv("error", st.Error)
	if st.Role == "master" {
		if len(st.Slaves) == 0 {
			kv("slaves", "none has pulled the log yet")
		} else {
			rows := make([][]string, len(st.Slaves))
			for i, s := range st.Slaves {
				rows[i] = []string{s.ID, s.URL, u(s.AppliedIndex), u(s.LagEntries), seenAgo(s.LastSeen, time.Now())}
			}
			b.WriteString("slaves:\n")
			for _, l := range renderTable([]string{"id", "url", "applied", "lag", "last seen"}, rows, []bool{false, false, true, true, false}) {
				b.WriteString(strings.TrimRight(l, " ") + "\n")
			}
		}
	}
	_, err = io.WriteString(sh.out, b.String())
	return err
}

func (sh *shell) nodes(ctx context.Context) error {
	nodes, err := sh.c.Nodes(ctx)
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("%s does not serve GET /nodes (a walship from before it did); .status shows its replication instead", sh.c.URL)
	}
	if err != nil {
		return nodeError(sh.c.URL, err)
	}
	if sh.mode == modeJSON {
		return writeJSON(sh.out, nodes)
	}
	list := make([]client.Node, 0, len(nodes))
	for _, n := range nodes {
		list = append(list, n)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Leader != list[j].Leader {
			return list[i].Leader
		}
		return list[i].ID < list[j].ID
	})
	rows := make([][]string, len(list))
	for i, n := range list {
		role := n.Role
		if role == "" && n.Leader {
			role = "master"
		}
		reach := "yes"
		if !n.Reachable {
			reach = "no"
			if n.Error != "" {
				reach = "no: " + n.Error
			}
		}
		rows[i] = []string{n.ID, role, n.APIAddr, reach}
	}
	var b strings.Builder
	for _, l := range renderTable([]string{"id", "role", "url", "reachable"}, rows, nil) {
		b.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	_, err = io.WriteString(sh.out, b.String())
	return err
}

// seenAgo says how long ago an RFC 3339 time was, to the second.
func seenAgo(rfc3339 string, now time.Time) string {
	t, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil || t.IsZero() {
		return "never"
	}
	return formatAge(now.Sub(t)) + " ago"
}

// formatAge prints a duration to the second, never negative (clocks of
// two machines may disagree by a little).
func formatAge(d time.Duration) string {
	if d < time.Second {
		return "<1s"
	}
	return d.Truncate(time.Second).String()
}
