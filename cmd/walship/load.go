package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

const loadSynopsis = `walship load [--node URL] [--chunk N] [--chunk-bytes B] [--from K] FILE.sql

Loads an SQL file (a sqlite3 .dump, a migration) into the cluster through
the node at --node: its statements are sent in order, in chunks of at most
--chunk statements and --chunk-bytes bytes, each chunk one transaction (all
of it is applied or none). A dump's framing is understood: its PRAGMA
foreign_keys=OFF turns enforcement off for every chunk, as sqlite3's .read
does, and its BEGIN … COMMIT enclose the file. A progress line shows how far
it got. When a statement fails, the load stops and says which statement
(number and line), why, and what was committed before it; --from K resumes
at statement K. FILE "-" reads standard input.`

// runLoadFile runs 'walship load'.
func runLoadFile(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", loadSynopsis, stderr)
	node := fs.String("node", "http://127.0.0.1:8080", "the node's URL (the master; a slave forwards)")
	chunk := fs.Int("chunk", 1000, "most statements in one chunk (one transaction)")
	chunkBytes := fs.Int("chunk-bytes", 4<<20, "most bytes of SQL in one chunk")
	from := fs.Int("from", 1, "the first statement to send (1 is the file's first), to resume a load")
	timeout := fs.Duration("timeout", 5*time.Minute, "time limit of one chunk")
	rem := addRemoteFlags(fs)
	pos, err := rem.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errors.New("load needs one FILE")
	}
	if *chunk < 1 || *chunkBytes < 1 || *from < 1 {
		return errors.New("--chunk, --chunk-bytes and --from must be at least 1")
	}
	var text []byte
	if pos[0] == "-" {
		text, err = io.ReadAll(stdin)
	} else {
		text, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return err
	}
	c := rem.client(nodeURL(*node), *timeout)
	l := &loader{c: c, out: stdout, progress: stderr, tty: isTerminal(stderr), chunk: *chunk, chunkBytes: *chunkBytes}
	return l.load(ctx, pos[0], string(text), *from)
}

// loader sends an SQL file to a node in all-or-nothing chunks.
type loader struct {
	c          *client.Client
	out        io.Writer // the summary
	progress   io.Writer // the progress line
	tty        bool      // progress is a terminal: one line, rewritten
	lastTenth  int       // the last tenth of the work reported (not on a terminal)
	chunk      int
	chunkBytes int
	// index is the log index the committed chunks reached.
	index uint64
}

// loadStmt is a statement of the file, with its number and line.
type loadStmt struct {
	sql  string
	num  int // 1-based, in the file
	line int
}

// loadError is a statement that failed; the statements before it are
// committed.
type loadError struct {
	stmt      loadStmt
	msg       string
	committed int    // statements committed (the last one's number)
	index     uint64 // the log index they reached
}

func (e *loadError) Error() string {
	done := "nothing of this file was committed"
	if e.committed > 0 {
		done = fmt.Sprintf("statements up to %d are committed (log index %d); resume with --from %d once it is fixed", e.committed, e.index, e.committed+1)
	}
	sql := e.stmt.sql
	if len(sql) > 200 {
		sql = sql[:200] + "…"
	}
	return fmt.Sprintf("statement %d (line %d) failed: %s\n  %s\n%s; nothing of its chunk was applied", e.stmt.num, e.stmt.line, e.msg, sql, done)
}

// load sends text (named name) from statement from on.
func (l *loader) load(ctx context.Context, name, text string, from int) error {
	texts, err := db.Split(text)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	frame := db.Frame(texts)
	var stmts []loadStmt
	line, off := 1, 0
	for i, t := range texts {
		at := strings.Index(text[off:], t)
		if at >= 0 {
			line += strings.Count(text[off:off+at], "\n")
			off += at
		}
		if !frame.Skip[i] && i+1 >= from {
			stmts = append(stmts, loadStmt{sql: t, num: i + 1, line: line})
		}
	}
	if len(stmts) == 0 {
		fmt.Fprintf(l.out, "%s: no statements to load\n", name)
		return nil
	}
	start := time.Now()
	var index uint64
	committed, sent, chunks := 0, 0, 0
	for len(stmts) > 0 {
		n, size := 0, 0
		for n < len(stmts) && n < l.chunk && (n == 0 || size+len(stmts[n].sql) <= l.chunkBytes) {
			size += len(stmts[n].sql)
			n++
		}
		part := stmts[:n]
		body := make([]client.Statement, 0, n+3)
		if frame.NoForeignKeys {
			body = append(body, client.Statement{SQL: "PRAGMA foreign_keys=OFF"})
		}
		body = append(body, client.Statement{SQL: "BEGIN"})
		for _, s := range part {
			body = append(body, client.Statement{SQL: s.sql})
		}
		body = append(body, client.Statement{SQL: "COMMIT"})
		resp, err := l.c.DBExecute(ctx, client.DBOptions{Transaction: true}, body...)
		if err != nil {
			l.endProgress()
			return nodeError(l.c.URL, err)
		}
		if resp.Error != "" {
			l.endProgress()
			return fmt.Errorf("the node refused the chunk of statements %d..%d: %s", part[0].num, part[n-1].num, resp.Error)
		}
		offset := len(body) - n - 1 // the framing before the statements
		for i, r := range resp.Results {
			if r.Error == "" {
				continue
			}
			l.endProgress()
			k := min(max(i-offset, 0), n-1)
			return &loadError{stmt: part[k], msg: r.Error, committed: committed, index: index}
		}
		if resp.Index > 0 {
			index = resp.Index
			l.index = index
		}
		committed = part[n-1].num
		sent += n
		chunks++
		stmts = stmts[n:]
		l.showProgress(sent, sent+len(stmts), index)
	}
	l.endProgress()
	fmt.Fprintf(l.out, "loaded %s of %s in %s in %s; the cluster is at log index %d\n",
		plural(sent, "statement"), name, plural(chunks, "chunk"), time.Since(start).Round(time.Millisecond), index)
	return nil
}

// showProgress shows how far the load got: on a terminal one line,
// rewritten after every chunk; elsewhere a line at every tenth of the work.
func (l *loader) showProgress(done, total int, index uint64) {
	msg := fmt.Sprintf("loading: %d/%d statements (%d%%), log index %d", done, total, done*100/total, index)
	if l.tty {
		fmt.Fprintf(l.progress, "\r%s\x1b[K", msg)
		return
	}
	if tenth := done * 10 / total; tenth > l.lastTenth {
		l.lastTenth = tenth
		fmt.Fprintln(l.progress, msg)
	}
}

func (l *loader) endProgress() {
	if l.tty {
		fmt.Fprint(l.progress, "\r\x1b[K")
	}
}
