package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

const shellSynopsis = `walship shell [--history FILE] [--mode table|json|csv] [--timeout D] [--no-follow] [URL]

An SQL shell on the node at URL (default http://127.0.0.1:8080, or --node).
A statement ends with ';' and may span lines. Each statement is sent as a
query; one that would change the database is sent again as a write. Reads
run on the node. On a slave, writes and schema statements go to the master
it follows, and the shell says so once; when the master changes (a
promotion), the shell finds the new one. The reads that follow a write wait
until the node has applied it. With --no-follow, writes go to the node:
a slave forwards them to the master, and refuses schema statements.

BEGIN starts a transaction: the statements that follow are collected (the
prompt ends in *>) and COMMIT sends them as one all-or-nothing request;
their results print then. ROLLBACK discards them. Lines starting with '.'
are the shell's own commands: .help lists them.

On a terminal: line editing, history (Up/Down, Ctrl-R) kept in --history,
Ctrl-C clears the line or cancels the running statement, Ctrl-D or .quit
leaves: an unfinished statement is run first (as sqlite3 does), and one
that cannot be (an unterminated string, comment or trigger) is reported as
incomplete input with exit status 1; an open transaction is discarded,
with a warning. With standard input from a pipe or a file there is no
prompt: the statements run in order, and the first error stops the shell
with its message on standard error and exit status 1, as does input that
ends in an open transaction.`

const shellHelp = `Statements end with ';' and may span lines. BEGIN; … COMMIT; sends the
statements between as one all-or-nothing request (ROLLBACK discards them).
Shell commands:
  .tables [PATTERN]   list the tables and views (whose names match the LIKE PATTERN)
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
	noFollow := fs.Bool("no-follow", false, "send writes to the node even when it is a slave (it forwards them to the master, and refuses schema statements), instead of to its master")
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
	sh := &shell{c: rem.client(nodeURL(*node), *timeout), out: stdout, errOut: stderr, mode: mode, timeout: *timeout,
		follow: !*noFollow, newClient: func(u string) *client.Client { return rem.client(u, *timeout) }}
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

	// follow sends writes to the master the node follows (not
	// --no-follow); w is where they go, nil until the first write (or the
	// banner) finds it; newClient makes a client of another node with the
	// shell's settings.
	follow    bool
	w         *client.Client
	newClient func(url string) *client.Client
	// token is the index of the last write sent to another node than c:
	// reads ask c to have applied it first (read your writes).
	token uint64
	// txn is the open transaction, nil when there is none.
	txn *transaction
}

// transaction is what BEGIN opened: the statements collected for COMMIT.
type transaction struct {
	line  int // where BEGIN was
	stmts []txnStmt
}

// txnStmt is a statement of a transaction and the line where it began.
type txnStmt struct {
	sql  string
	line int
}

// lineError is an error of the statement that began at line, when that is
// not the line of the statement being run (a COMMIT reports the
// statement of its transaction that failed).
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return e.err.Error() }
func (e *lineError) Unwrap() error { return e.err }

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

// banner says where the shell is connected, and where writes go.
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
		if sh.follow {
			if u, err := sh.masterFrom(ctx, sh.c); err == nil {
				sh.pointWrites(u)
			}
		}
	}
	fmt.Fprintln(sh.out, "Statements end with ';' and may span lines. .help lists the shell's commands.")
}

// masterOf is the node a node's status says it follows: itself unless it
// is a slave.
func masterOf(self string, st *client.LogStatus) string {
	if st.Role == "slave" && strings.TrimSpace(st.Master) != "" {
		return nodeURL(st.Master)
	}
	return self
}

// maxMasterHops bounds the walk from a slave to its master (a slave may
// follow a slave).
const maxMasterHops = 8

// masterFrom finds the master from the node of c: the node each slave
// follows, hop by hop, up to one that is not a slave. A node on the way
// that does not answer ends the walk (writes sent there say why they
// fail); an error only when c's node does not answer.
func (sh *shell) masterFrom(ctx context.Context, c *client.Client) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, min(sh.timeout, 5*time.Second))
	defer cancel()
	u := c.URL
	for hop := 0; hop < maxMasterHops; hop++ {
		st, err := c.LogStatus(ctx)
		if err != nil {
			if hop == 0 {
				return "", err
			}
			return u, nil
		}
		next := masterOf(u, st)
		if next == u {
			return u, nil
		}
		u, c = next, sh.clientOf(next)
	}
	return u, nil
}

// clientOf returns a client of the node at u: the shell's own for its
// node.
func (sh *shell) clientOf(u string) *client.Client {
	if u == sh.c.URL {
		return sh.c
	}
	return sh.newClient(u)
}

// writer returns the client that writes go to: the node, or with follow
// the master it names (asked at the first write; a node that does not
// answer takes the writes itself, and the master is asked for again at
// the next).
func (sh *shell) writer(ctx context.Context) *client.Client {
	if !sh.follow {
		return sh.c
	}
	if sh.w == nil {
		u, err := sh.masterFrom(ctx, sh.c)
		if err != nil {
			return sh.c
		}
		sh.pointWrites(u)
	}
	return sh.w
}

// pointWrites sends the writes that follow to the master at u, and says
// so when that is another node than the shell's or a change; it reports
// whether the target changed.
func (sh *shell) pointWrites(u string) bool {
	u = nodeURL(u)
	if sh.w != nil && sh.w.URL == u {
		return false
	}
	first := sh.w == nil
	sh.w = sh.clientOf(u)
	switch {
	case sh.w != sh.c:
		fmt.Fprintf(sh.errOut, "writes go to the master at %s\n", u)
	case !first:
		fmt.Fprintf(sh.errOut, "writes go to %s, now the master\n", u)
	}
	return true
}

// remaster finds where writes go after err answered a write sent to the
// master w, and reports whether that changed, so that the write may be
// sent there: a refusal that names another master (a 403 or 503 of a
// node that is no longer the master), or a 503 or a connection refused
// while the node names another master. Each of these says the write was
// not applied; any other error is the write's answer.
func (sh *shell) remaster(ctx context.Context, w *client.Client, err error) bool {
	if !sh.follow {
		return false
	}
	from := sh.c
	var se *client.StatusError
	switch {
	case errors.As(err, &se) && (se.Status == http.StatusForbidden || se.Status == http.StatusServiceUnavailable):
		if se.Master != "" && nodeURL(se.Master) != w.URL {
			from = sh.clientOf(nodeURL(se.Master))
		} else if se.Status == http.StatusForbidden {
			return false // a refusal of the write itself (permissions)
		}
	case connRefused(err):
	default:
		return false
	}
	u, merr := sh.masterFrom(ctx, from)
	if merr != nil {
		if from == sh.c {
			return false
		}
		u = from.URL // the master the refusal named, as it named it
	}
	if u == w.URL {
		return false
	}
	return sh.pointWrites(u)
}

// connRefused reports whether err is a connection that could not be made:
// the request was not sent.
func connRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// wrote notes a write's index: a write applied by another node than the
// shell's is waited for by the reads that follow.
func (sh *shell) wrote(w *client.Client, index uint64) {
	if w != sh.c {
		sh.token = max(sh.token, index)
	}
}

// loop reads lines until the end of the input or .quit. Interactively an
// error is printed and the shell goes on; otherwise the first error ends
// the loop, naming the line where its statement began. At the end of the
// input, what is left unfinished is run, and an open transaction is
// discarded.
func (sh *shell) loop(ctx context.Context, in lineReader, interactive bool) error {
	prompt := sh.c.URL + "> "
	txnPrompt := sh.c.URL + "*> "
	cont := strings.Repeat(" ", max(0, len(prompt)-5)) + "...> "
	var buf strings.Builder
	lineNo, start := 0, 0
	fail := func(line int, err error) error {
		var le *lineError
		if errors.As(err, &le) {
			line = le.line
		}
		if !interactive {
			return fmt.Errorf("line %d: %w", line, err)
		}
		fmt.Fprintf(sh.errOut, "Error: %v\n", err)
		return nil
	}
	for {
		p := prompt
		switch {
		case buf.Len() > 0:
			p = cont
		case sh.txn != nil:
			p = txnPrompt
		}
		line, err := in.readLine(p)
		switch {
		case errors.Is(err, errAborted):
			buf.Reset()
			continue
		case err == io.EOF:
			if interactive {
				fmt.Fprintln(sh.out)
			}
			return sh.finish(ctx, buf.String(), start, interactive)
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
					return sh.finish(ctx, "", lineNo, interactive)
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
			if err := sh.statement(ctx, st, start); err != nil {
				if err := fail(start, err); err != nil {
					return err
				}
				break // what followed the failed statement is not run
			}
		}
	}
}

// finish ends the shell: it runs text, a statement left without its ';'
// (as sqlite3 does), and discards an open transaction. Text that cannot
// be a statement (an unterminated string, comment or trigger) is an
// error, as it is to sqlite3; so is a transaction left open by a script.
func (sh *shell) finish(ctx context.Context, text string, start int, interactive bool) error {
	if strings.TrimSpace(text) != "" {
		stmts, err := db.Split(text)
		if errors.Is(err, db.ErrIncomplete) {
			err = &incompleteError{err: err}
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", start, err)
		}
		for _, st := range stmts {
			if err := sh.statement(ctx, st, start); err != nil {
				var le *lineError
				if errors.As(err, &le) {
					start = le.line
				}
				return fmt.Errorf("line %d: %w", start, err)
			}
		}
	}
	if sh.txn == nil {
		return nil
	}
	t := sh.txn
	sh.txn = nil
	what := fmt.Sprintf("the transaction begun at line %d was not committed: %s, nothing of it was applied", t.line, discarded(len(t.stmts)))
	if interactive {
		fmt.Fprintf(sh.errOut, "warning: %s\n", what)
		return nil
	}
	return errors.New(what)
}

// incompleteError is input that ends inside a statement (db.ErrIncomplete),
// said as sqlite3 says it.
type incompleteError struct{ err error }

func (e *incompleteError) Error() string {
	return "parse error: incomplete input: " + strings.TrimPrefix(e.err.Error(), db.ErrIncomplete.Error()+": ")
}

func (e *incompleteError) Unwrap() error { return e.err }

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

// discarded says that n statements of a transaction were dropped.
func discarded(n int) string {
	if n == 1 {
		return "its 1 statement was discarded"
	}
	return "its " + plural(n, "statement") + " were discarded"
}

// statement runs one statement typed at line: BEGIN, COMMIT and ROLLBACK
// open and close the shell's transaction, a statement in a transaction is
// collected, any other is run.
func (sh *shell) statement(ctx context.Context, stmt string, line int) error {
	switch txnControl(stmt) {
	case "begin":
		if sh.txn != nil {
			return fmt.Errorf("cannot start a transaction within a transaction (the one begun at line %d is open: COMMIT or ROLLBACK it)", sh.txn.line)
		}
		sh.txn = &transaction{line: line}
		return nil
	case "commit":
		if sh.txn == nil {
			return errors.New("cannot commit: no transaction is active")
		}
		t := sh.txn
		sh.txn = nil
		return sh.commit(ctx, t)
	case "rollback":
		if sh.txn == nil {
			return errors.New("cannot rollback: no transaction is active")
		}
		sh.txn = nil
		return nil
	}
	if sh.txn != nil {
		sh.txn.stmts = append(sh.txn.stmts, txnStmt{sql: stmt, line: line})
		return nil
	}
	return sh.run(ctx, stmt)
}

// txnControl says whether stmt begins, commits or rolls back a transaction
// ("begin", "commit", "rollback"), or "" for any other statement
// (ROLLBACK TO a savepoint is another statement).
func txnControl(stmt string) string {
	words := strings.Fields(strings.ToUpper(strings.TrimSuffix(strings.TrimSpace(stripComments(stmt)), ";")))
	if len(words) == 0 {
		return ""
	}
	switch words[0] {
	case "BEGIN":
		return "begin"
	case "COMMIT", "END":
		return "commit"
	case "ROLLBACK":
		for _, w := range words[1:] {
			if w == "TO" {
				return ""
			}
		}
		return "rollback"
	}
	return ""
}

// stripComments returns SQL text without its comments ("--" to the end of
// the line, /* … */), strings and quoted names kept as they are.
func stripComments(sql string) string {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '[':
			quote = ']'
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
			b.WriteByte(' ')
			continue
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += end + 3
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// commit sends a transaction's statements as one all-or-nothing request
// (POST /db/request?transaction, to where writes go) and prints each
// statement's result: the rows it returned, or what it changed.
func (sh *shell) commit(ctx context.Context, t *transaction) error {
	if len(t.stmts) == 0 {
		return nil
	}
	ctx, cancel := sh.statementContext(ctx)
	defer cancel()
	stmts := make([]client.Statement, len(t.stmts))
	for i, st := range t.stmts {
		stmts[i] = client.Statement{SQL: st.sql}
	}
	begin := time.Now()
	var resp *client.DBResponse
	var w *client.Client
	var err error
	for range 3 {
		w = sh.writer(ctx)
		resp, err = w.DBRequest(ctx, client.DBOptions{Transaction: true}, stmts...)
		if err == nil || !sh.remaster(ctx, w, err) {
			break
		}
	}
	elapsed := time.Since(begin)
	var se *client.StatusError
	switch {
	case errors.As(err, &se) || connRefused(err):
		return fmt.Errorf("the transaction was not committed: %w", nodeError(w.URL, err))
	case err != nil:
		// Sent, and no answer: the master may have committed it.
		return fmt.Errorf("the transaction's outcome is unknown (it may have been committed; look before sending it again): %w", nodeError(w.URL, err))
	}
	if resp.Error != "" {
		return fmt.Errorf("the transaction was not committed, nothing of it was applied: %s", resp.Error)
	}
	for i, r := range resp.Results {
		if r.Error != "" {
			st := t.stmts[min(i, len(t.stmts)-1)]
			return &lineError{line: st.line, err: fmt.Errorf("statement %d of the transaction: %s; the transaction was rolled back: nothing of it was applied", i+1, r.Error)}
		}
	}
	sh.wrote(w, resp.Index)
	if sh.mode == modeJSON {
		if err := writeJSON(sh.out, resp); err != nil {
			return err
		}
	} else {
		for _, r := range resp.Results {
			if err := writeStatementResult(sh.out, r, sh.mode); err != nil {
				return err
			}
		}
		if sh.mode == modeTable {
			fmt.Fprintf(sh.out, "COMMIT: %s in one transaction, index %d\n", plural(len(t.stmts), "statement"), resp.Index)
		}
	}
	if sh.timer {
		fmt.Fprintf(sh.out, "time: %s\n", elapsed.Round(time.Microsecond))
	}
	return nil
}

// writeStatementResult prints one statement's result of a /db/* answer:
// its rows, or (in table mode) what it changed.
func writeStatementResult(w io.Writer, r client.DBResult, mode outputMode) error {
	if len(r.Columns) > 0 {
		return writeResult(w, &client.SeedResponse{Columns: r.Columns, Types: r.Types, Values: r.Values}, mode, false)
	}
	if mode != modeTable {
		return nil
	}
	msg := "OK: " + plural(int(r.RowsAffected), "row") + " affected"
	if r.LastInsertID != 0 {
		msg += ", last insert id " + strconv.FormatInt(r.LastInsertID, 10)
	}
	_, err := fmt.Fprintln(w, msg)
	return err
}

// run sends one statement: as a query to the node, and as a write (to
// where writes go) when the node says the query would change the
// database.
func (sh *shell) run(ctx context.Context, stmt string) error {
	ctx, cancel := sh.statementContext(ctx)
	defer cancel()
	start := time.Now()
	target := sh.c
	resp, err := sh.query(ctx, stmt)
	write := false
	if isWriteInQuery(err) {
		write = true
		for range 3 {
			target = sh.writer(ctx)
			resp, err = target.Exec(ctx, stmt)
			if err == nil || !sh.remaster(ctx, target, err) {
				break
			}
		}
		if err == nil {
			sh.wrote(target, resp.Index)
		}
	}
	elapsed := time.Since(start)
	if err != nil {
		return nodeError(target.URL, err)
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
		if sh.txn != nil {
			return false, errors.New(".read runs its own transactions: COMMIT or ROLLBACK the open one first")
		}
		text, err := os.ReadFile(args[0])
		if err != nil {
			return false, err
		}
		// Not bound by the statement timeout: a load may take long.
		w := sh.writer(ctx)
		l := &loader{c: w, out: sh.out, progress: sh.out, chunk: 1000, chunkBytes: 4 << 20}
		err = l.load(ctx, args[0], string(text), 1)
		sh.wrote(w, l.index)
		return false, err
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
		if sh.txn != nil {
			return false, errors.New(".restore replaces the database: COMMIT or ROLLBACK the open transaction first")
		}
		// A new history, whose indexes are not comparable with the
		// token's.
		sh.token = 0
		return false, restoreFrom(ctx, sh.writer(ctx), args[0], sh.out, sh.errOut)
	}
	ctx, cancel := sh.statementContext(ctx)
	defer cancel()
	switch cmd {
	case ".tables":
		if err := argc(1); err != nil {
			return false, err
		}
		return false, sh.tables(ctx, args)
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

// query runs a read on the node once it has applied the shell's last
// write.
func (sh *shell) query(ctx context.Context, sql string, params ...any) (*client.SeedResponse, error) {
	return sh.c.Seed(ctx, client.SeedRequest{Command: "query", Query: sql, Params: params, MinIndex: sh.token, BlobArray: true})
}

// tables lists the tables and views, those whose names match a LIKE
// pattern when one is given (as sqlite3's .tables).
func (sh *shell) tables(ctx context.Context, pattern []string) error {
	q := `SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND ` + notInternal
	var params []any
	if len(pattern) == 1 {
		q += ` AND name LIKE ?1`
		params = append(params, pattern[0])
	}
	resp, err := sh.query(ctx, q+` ORDER BY name`, params...)
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
	resp, err := sh.query(ctx, q, params...)
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
	resp, err := sh.query(ctx, q+` ORDER BY tbl_name, name`, params...)
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
