package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/db"
)

// testWait bounds every wait of these tests; a healthy cluster needs
// milliseconds, so it only decides how long a broken one takes to fail.
const testWait = 30 * time.Second

// mustStartCluster starts a master and n slaves in this process, on
// loopback ports, with data in temp dirs, and waits until every node is
// ready. Cleanup closes them, slaves first.
func mustStartCluster(t *testing.T, n int) (*Node, []*Node) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	m, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: "127.0.0.1:0", Data: t.TempDir(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	var slaves []*Node
	for i := 1; i <= n; i++ {
		// A slave tells the master the URL it advertises, which StartNode
		// derives from Addr before listening: with port 0 the master would
		// record http://127.0.0.1:0. So each slave gets a port that was
		// free a moment ago.
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		s, err := StartNode(NodeConfig{Role: "slave", ID: strconv.Itoa(i), Addr: addr, Data: t.TempDir(),
			MasterURL: m.URL(), Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		slaves = append(slaves, s)
	}
	for _, node := range append([]*Node{m}, slaves...) {
		if err := waitReady(context.Background(), client.New(node.URL()).Ready, testWait); err != nil {
			t.Fatalf("node %s not ready: %v", node.URL(), err)
		}
	}
	return m, slaves
}

// freePort returns a loopback port that was free.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// mustExec runs a write on the node at u.
func mustExec(t *testing.T, u, sql string, params ...any) *client.SeedResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	resp, err := client.New(u).Exec(ctx, sql, params...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return resp
}

// waitApplied polls until the node at u has applied index, and until the
// master at masterURL has heard so from it.
func waitApplied(t *testing.T, masterURL string, nodes []*Node, index uint64) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	ctx := context.Background()
	for _, n := range nodes {
		for {
			st, err := client.New(n.URL()).LogStatus(ctx)
			if err == nil && st.AppliedIndex >= index {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not apply index %d: %+v %v", n.URL(), index, st, err)
			}
			time.Sleep(5 * time.Millisecond) // ok: poll interval
		}
	}
	for {
		st, err := client.New(masterURL).LogStatus(ctx)
		acked := 0
		if err == nil {
			for _, s := range st.Slaves {
				if s.AppliedIndex >= index {
					acked++
				}
			}
		}
		if acked >= len(nodes) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the master did not hear that %d slaves applied index %d: %+v %v", len(nodes), index, st, err)
		}
		time.Sleep(5 * time.Millisecond) // ok: poll interval
	}
}

// buildWalship builds the walship binary into a temp dir.
func buildWalship(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command builds the binary under test: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "walship")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitFor polls until cond holds for what get returns.
func waitFor(t *testing.T, what string, get func() string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond(get()) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s; got:\n%s", what, get())
		}
		time.Sleep(5 * time.Millisecond) // ok: poll interval
	}
}

// nodesServed reports whether the node at u answers GET /nodes.
func nodesServed(t *testing.T, u string) bool {
	_, err := client.New(u).Nodes(context.Background())
	if err != nil && !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GET /nodes: %v", err)
	}
	return err == nil
}

// The shell, as the real binary: on a pseudo-terminal with line editing
// and history, and reading a pipe.
func TestShellBinary(t *testing.T) {
	bin := buildWalship(t)
	m, slaves := mustStartCluster(t, 1)
	withNodes := nodesServed(t, m.URL())
	if !withNodes {
		t.Log("GET /nodes is not served yet: .nodes is not tested")
	}

	t.Run("terminal", func(t *testing.T) {
		home := t.TempDir()
		history := filepath.Join(home, "history")
		cmd := exec.Command(bin, "shell", "--history", history, m.URL())
		cmd.Env = append(os.Environ(), "TERM=xterm", "HOME="+home)
		tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
		if err != nil {
			t.Fatal(err)
		}
		defer tty.Close()
		var screen syncBuffer
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			_, _ = io.Copy(&screen, tty) // ends with an error once the shell exits
		}()
		text := func() string { return strings.ReplaceAll(screen.String(), "\r", "") }
		prompt := m.URL() + "> "
		cont := "...> "
		waitFor(t, "banner and prompt", text, func(s string) bool {
			return strings.Contains(s, "walship shell on "+m.URL()+" (master") && strings.HasSuffix(s, prompt)
		})
		// typeLine types a line once the shell waits at a prompt, then waits
		// until the shell echoed it, printed want and prompts again.
		typeLine := func(line string, want ...string) {
			t.Helper()
			before := len(text())
			if _, err := tty.Write([]byte(line + "\r")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "answer to "+line, func() string { return text()[before:] }, func(s string) bool {
				if !strings.Contains(s, line) || !(strings.HasSuffix(s, prompt) || strings.HasSuffix(s, cont)) {
					return false
				}
				for _, w := range want {
					if !strings.Contains(s, w) {
						return false
					}
				}
				return true
			})
		}
		typeLine("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);", "OK: 0 rows affected, index 1\n")
		typeLine("INSERT INTO t (id, name)")
		if !strings.HasSuffix(text(), cont) {
			t.Fatalf("no continuation prompt after an unfinished statement:\n%s", text())
		}
		typeLine("  VALUES (1, 'ana'), (2, 'ben');", "OK: 2 rows affected, last insert id 2, index 2\n")
		typeLine("SELECT id, name FROM t ORDER BY id;", " id | name\n----+------\n  1 | ana\n  2 | ben\n(2 rows)\n")
		typeLine(".tables", "\nt\n")
		typeLine(".mode csv")
		typeLine("SELECT id, name FROM t ORDER BY id;", "\nid,name\n1,ana\n2,ben\n")
		// Up recalls the last statement from the history; Enter runs it.
		before := len(text())
		if _, err := tty.Write([]byte("\x1b[A\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the recalled statement's answer", func() string { return text()[before:] }, func(s string) bool {
			return strings.Contains(s, "\nid,name\n1,ana\n2,ben\n") && strings.HasSuffix(s, prompt)
		})
		// Ctrl-C drops an unfinished statement.
		typeLine("SELECT 'abandoned'")
		before = len(text())
		if _, err := tty.Write([]byte{3}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a fresh prompt after Ctrl-C", func() string { return text()[before:] }, func(s string) bool {
			return strings.HasSuffix(s, prompt)
		})
		typeLine("SELECT 42 AS answer;", "\nanswer\n42\n")
		typeLine(".timer on")
		typeLine("SELECT count(*) AS n FROM t;", "\nn\n2\ntime: ")
		typeLine("SELECT * FROM nope;", "Error: 400 Bad Request: no such table: nope\n")
		if _, err := tty.Write([]byte(".quit\r")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf(".quit: %v\n%s", err, text())
			}
		case <-time.After(testWait):
			t.Fatalf("the shell did not quit:\n%s", text())
		}
		tty.Close()
		<-copied
		h, err := os.ReadFile(history)
		if err != nil {
			t.Fatal(err)
		}
		// A statement typed on two lines is one line of the history.
		if !strings.Contains(string(h), "INSERT INTO t (id, name) VALUES (1, 'ana'), (2, 'ben');\n") ||
			!strings.Contains(string(h), ".mode csv\n") {
			t.Fatalf("history file:\n%s", h)
		}
	})

	// A transaction on the terminal: the prompt shows it is open. Ctrl-D
	// in one discards it with a warning; after an unfinished statement,
	// it reports the incomplete input and exits 1.
	t.Run("terminal transaction and Ctrl-D", func(t *testing.T) {
		term := startTerminalShell(t, bin, m.URL())
		prompt, txnPrompt := m.URL()+"> ", m.URL()+"*> "
		term.typeLine("BEGIN;", txnPrompt)
		term.typeLine("INSERT INTO t (id, name) VALUES (10, 'txn');", txnPrompt)
		term.typeLine("SELECT count(*) AS n FROM t;", txnPrompt)
		term.typeLine("COMMIT;", "OK: 1 row affected, last insert id 10\n n\n---\n 3\n(1 row)\nCOMMIT: 2 statements in one transaction, index ", prompt)
		term.typeLine("BEGIN;", txnPrompt)
		term.typeLine("DELETE FROM t;", txnPrompt)
		if code, text := term.ctrlD(); code != 0 || !strings.Contains(text, "warning: the transaction begun at line 5 was not committed: its 1 statement was discarded") {
			t.Fatalf("Ctrl-D in a transaction: exit %d\n%s", code, text)
		}
		resp, err := client.New(m.URL()).Query(context.Background(), "SELECT group_concat(id) FROM t")
		if err != nil || cellText(resp.Values[0][0]) != "1,2,10" {
			t.Fatalf("rows: %+v %v", resp, err)
		}

		term = startTerminalShell(t, bin, m.URL())
		term.typeLine("SELECT 'never closed", "...> ")
		if code, text := term.ctrlD(); code != 1 || !strings.Contains(text, "walship: line 1: parse error: incomplete input: unterminated quoted string") {
			t.Fatalf("Ctrl-D after an unfinished statement: exit %d\n%s", code, text)
		}
		// A statement left without its ';' runs, as sqlite3 runs it.
		term = startTerminalShell(t, bin, m.URL())
		term.typeLine("SELECT 'finished' AS w", "...> ")
		if code, text := term.ctrlD(); code != 0 || !strings.Contains(text, " w\n----------\n finished\n(1 row)\n") {
			t.Fatalf("Ctrl-D after a statement without ';': exit %d\n%s", code, text)
		}
	})

	run := func(t *testing.T, input string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, "shell", "--history", filepath.Join(t.TempDir(), "history"), m.URL())
		cmd.Stdin = strings.NewReader(input)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exit):
			code = exit.ExitCode()
		default:
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	t.Run("pipe", func(t *testing.T) {
		input := "CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT);\n" +
			"INSERT INTO p (id, v)\n  VALUES (1, 'x'), (2, 'y');\n" +
			"SELECT * FROM p;\n.tables\n.mode csv\nSELECT * FROM p;\n"
		if withNodes {
			input += ".nodes\n"
		}
		out, errOut, code := run(t, input)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
		}
		for _, want := range []string{
			" id | v\n----+---\n  1 | x\n  2 | y\n(2 rows)\n",
			"\np\n", // .tables
			"id,v\n1,x\n2,y\n",
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "> ") || strings.Contains(out, "walship shell on") {
			t.Fatalf("a prompt or banner on a pipe:\n%s", out)
		}
		if withNodes && (!strings.Contains(out, m.URL()) || !strings.Contains(out, slaves[0].URL())) {
			t.Fatalf(".nodes names not every node:\n%s", out)
		}
	})

	t.Run("pipe stops at the first error", func(t *testing.T) {
		out, errOut, code := run(t, "INSERT INTO p VALUES (3, 'z');\n\nSELECT *\n  FROM nope;\nINSERT INTO p VALUES (4, 'w');\n")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if errOut != "walship: line 3: 400 Bad Request: no such table: nope\n" {
			t.Fatalf("stderr %q, want one line naming the statement's line and the error", errOut)
		}
		resp, err := client.New(m.URL()).Query(context.Background(), "SELECT group_concat(id) FROM p")
		if err != nil {
			t.Fatal(err)
		}
		if got := cellText(resp.Values[0][0]); got != "1,2,3" {
			t.Fatalf("rows after the failed pipe: %s, want 1,2,3 (the statement after the error must not run)", got)
		}
	})
}

// terminalShell is the walship shell on a pseudo-terminal.
type terminalShell struct {
	t      *testing.T
	cmd    *exec.Cmd
	tty    *os.File
	screen *syncBuffer
	copied chan struct{}
}

// startTerminalShell starts the shell of the binary bin on the node at u
// on a pseudo-terminal, and waits for its prompt.
func startTerminalShell(t *testing.T, bin, u string) *terminalShell {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(bin, "shell", "--history", filepath.Join(home, "history"), u)
	cmd.Env = append(os.Environ(), "TERM=xterm", "HOME="+home)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	ts := &terminalShell{t: t, cmd: cmd, tty: tty, screen: &syncBuffer{}, copied: make(chan struct{})}
	go func() {
		defer close(ts.copied)
		_, _ = io.Copy(ts.screen, tty) // ends with an error once the shell exits
	}()
	t.Cleanup(func() {
		tty.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	waitFor(t, "the prompt", ts.text, func(s string) bool { return strings.HasSuffix(s, u+"> ") })
	return ts
}

func (ts *terminalShell) text() string { return strings.ReplaceAll(ts.screen.String(), "\r", "") }

// typeLine types a line, and waits until the shell echoed it and printed
// each of want, the last at the end of the screen (a prompt).
func (ts *terminalShell) typeLine(line string, want ...string) {
	ts.t.Helper()
	before := len(ts.text())
	if _, err := ts.tty.Write([]byte(line + "\r")); err != nil {
		ts.t.Fatal(err)
	}
	waitFor(ts.t, "answer to "+line, func() string { return ts.text()[before:] }, func(s string) bool {
		if !strings.Contains(s, line) {
			return false
		}
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return len(want) == 0 || strings.HasSuffix(s, want[len(want)-1])
	})
}

// ctrlD types Ctrl-D at an empty line, and returns the shell's exit status
// and the screen.
func (ts *terminalShell) ctrlD() (int, string) {
	ts.t.Helper()
	if _, err := ts.tty.Write([]byte{4}); err != nil {
		ts.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(testWait):
		ts.t.Fatalf("the shell did not end at Ctrl-D:\n%s", ts.text())
	}
	ts.tty.Close()
	<-ts.copied
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), ts.text()
	}
	if err != nil {
		ts.t.Fatal(err)
	}
	return 0, ts.text()
}

// The shell's commands and its query-then-write rule, in process: on a
// slave, a write goes to the master (said once on stderr), the reads that
// follow see it, and reads are local; with --no-follow a write goes
// through the slave (forwarded) and a schema statement is refused with
// the master's URL.
func TestShellCommands(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	s := slaves[0].URL()
	mustExec(t, m.URL(), "CREATE TABLE kv (k TEXT PRIMARY KEY, v)")
	waitApplied(t, m.URL(), slaves, mustExec(t, m.URL(), "CREATE INDEX kv_v ON kv (v)").Index)
	ctx := context.Background()
	follows := "writes go to the master at " + m.URL() + "\n"
	// shell runs the input on node; stderr must be wantErr.
	shell := func(t *testing.T, node, wantErr, input string, flags ...string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := runShell(ctx, append(append([]string{"--history", ""}, flags...), node), strings.NewReader(input), &out, &errOut)
		if errOut.String() != wantErr {
			t.Fatalf("stderr %q, want %q", errOut.String(), wantErr)
		}
		return out.String(), err
	}
	out, err := shell(t, s, follows, "INSERT INTO kv VALUES ('a', 1), ('b', 2.5), ('c', NULL), ('d', x'00ff')\n"+
		"  RETURNING k;\n"+
		"SELECT k, v, typeof(v) FROM kv ORDER BY k; -- a comment after the statement\n"+
		"SELECT x'00ff' AS b, x'' AS e;\n"+
		".schema kv\n.indexes\n.status\n.timer on\n.mode json\nSELECT count(*) AS n FROM kv;\n.mode csv\n.timer off\n"+
		"SELECT 1 AS x;\nSELECT 2 AS y") // the last statement has no ';': it runs at the end of the input
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		" k\n---\n a\n b\n c\n d\n(4 rows)\nOK: 4 rows affected, last insert id 4, index 3\n",
		// Read right after the write, on the slave: it waited for it.
		// The shell asks for BLOBs as byte arrays (blob_array), so a BLOB
		// in a column declared with no type shows as one too.
		" k | v       | typeof(v)\n---+---------+-----------\n a | 1       | integer\n b | 2.5     | real\n c | NULL    | null\n d | X'00FF' | blob\n(4 rows)\n",
		" b       | e\n---------+-----\n X'00FF' | X''\n(1 row)\n",
		"CREATE TABLE kv (k TEXT PRIMARY KEY, v);\nCREATE INDEX kv_v ON kv (v);\n",
		" kv_v  | kv    |\n",
		"role:          slave\n",
		"state:         streaming\n",
		"\"n\"",
		"\ntime: ",
		"x\n1\ny\n2\n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	_, err = shell(t, s, "", "SELECT 1;\nCREATE TABLE other (a);\nSELECT 2;\n", "--no-follow")
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 403 || !strings.Contains(err.Error(), m.URL()) || !strings.HasPrefix(err.Error(), "line 2: ") {
		t.Fatalf("a schema statement on a slave with --no-follow: %v, want a 403 naming the master, at line 2", err)
	}
	if out, err := shell(t, s, "", "INSERT INTO kv VALUES ('e', 5);\n", "--no-follow"); err != nil || !strings.Contains(out, "OK: 1 row affected") {
		t.Fatalf("a write through a slave with --no-follow: %v\n%s", err, out)
	}
	// Following (the default), schema statements and writes go to the
	// master, said once; .tables and the reads after them see them.
	out, err = shell(t, s, follows, "CREATE TABLE other (a);\nINSERT INTO other VALUES (1);\nCREATE TABLE kx (a);\n"+
		".tables\n.tables k%\n.tables O_HER\nSELECT count(*) AS n FROM other;\n")
	if err != nil {
		t.Fatalf("schema statements on a slave: %v\n%s", err, out)
	}
	for _, want := range []string{"\nkv\nkx\nother\nkv\nkx\nother\n n\n---\n 1\n(1 row)\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := shell(t, m.URL(), "", ".tables a b\n"); err == nil || !strings.Contains(err.Error(), ".tables takes at most 1 argument") {
		t.Fatalf(".tables a b: %v", err)
	}
	for _, tc := range []struct{ input, says string }{
		{".mode xml\n", "unknown output mode"},
		{".timer maybe\n", "usage: .timer on|off"},
		{".frobnicate\n", "unknown command .frobnicate"},
		{".schema nope\n", "no such table: nope"},
		{"SELECT 'unterminated\n", "incomplete"},
	} {
		if _, err := shell(t, m.URL(), "", tc.input); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%q: %v, want an error saying %q", tc.input, err, tc.says)
		}
	}
	if out, err := shell(t, m.URL(), "", "SELECT 1;\n.quit\nSELECT * FROM nope;\n"); err != nil || !strings.Contains(out, "(1 row)") {
		t.Fatalf(".quit: %v\n%s", err, out)
	}
	if _, err := shell(t, "http://127.0.0.1:1", "", "SELECT 1;\n"); err == nil || err.Error() != "line 1: cannot reach http://127.0.0.1:1: connect: connection refused" {
		t.Fatalf("an unreachable node: %v", err)
	}
}

// The rule that resends a query as a write matches both ways a node
// refuses a write sent as a query.
func TestWriteInQueryText(t *testing.T) {
	if !strings.Contains(db.ErrWriteInQuery.Error(), writeInQueryText) {
		t.Fatalf("db.ErrWriteInQuery %q does not contain %q", db.ErrWriteInQuery, writeInQueryText)
	}
	if !isWriteInQuery(&client.StatusError{Status: 400, Msg: "statement not allowed: a query may not change the database"}) {
		t.Fatal("the read authorizer's refusal is not recognised")
	}
	if isWriteInQuery(&client.StatusError{Status: 400, Msg: "no such table: t"}) || isWriteInQuery(errors.New(writeInQueryText)) {
		t.Fatal("another error is taken for a write in a query")
	}
}

func TestSplitComplete(t *testing.T) {
	for _, tc := range []struct {
		text     string
		n        int
		complete bool
	}{
		{"SELECT 1;\n", 1, true},
		{"SELECT 1\n", 1, false},
		{"SELECT 1; SELECT 2;\n", 2, true},
		{"SELECT 1; SELECT 2\n", 2, false},
		{"SELECT 'a;\n", 0, false},
		{"SELECT 'a;\nb';\n", 1, true},
		{"SELECT 1; -- done\n", 1, true},
		{"-- only a comment\n", 0, true},
		{"/* open\n", 0, false},
		{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  DELETE FROM u;\n", 0, false},
		{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  DELETE FROM u;\nEND;\n", 1, true},
	} {
		stmts, complete := splitComplete(tc.text)
		if complete != tc.complete || (complete && len(stmts) != tc.n) {
			t.Errorf("%q: %d statements, complete %v; want %d, %v", tc.text, len(stmts), complete, tc.n, tc.complete)
		}
	}
}

func TestHistoryEntries(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"SELECT 1;\n", []string{"SELECT 1;"}},
		{"SELECT a,\n  b\nFROM t;\n", []string{"SELECT a, b FROM t;"}},
		{"SELECT a, -- the a\n  b FROM t;\n", []string{"SELECT a, -- the a", "b FROM t;"}},
		{"SELECT 'two\nlines';\n", []string{"SELECT 'two", "lines';"}},
		{"SELECT 'it''s',\n /* a\n comment */ 2;\n", []string{"SELECT 'it''s', /* a comment */ 2;"}},
		{"SELECT '--',\n 2;\n", []string{"SELECT '--', 2;"}},
	} {
		if got := historyEntries(tc.text); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%q: %q, want %q", tc.text, got, tc.want)
		}
	}
}

// The shell's .dump prints the node's tables as SQL, .backup writes a
// checked backup file, .restore puts one back on the cluster.
func TestShellBackupDumpRestore(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	mustExec(t, m.URL(), "CREATE TABLE kv (k TEXT PRIMARY KEY, v)")
	mustExec(t, m.URL(), "INSERT INTO kv VALUES ('a', 1), ('b', 'it''s')")
	mustExec(t, m.URL(), "CREATE TABLE other (x)")
	waitApplied(t, m.URL(), slaves, 3)
	shell := func(node, input string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := runShell(context.Background(), []string{"--history", "", node}, strings.NewReader(input), &out, &errOut); err != nil {
			t.Fatalf("%q: %v\n%s%s", input, err, out.String(), errOut.String())
		}
		return out.String()
	}
	file := filepath.Join(t.TempDir(), "kv.sqlite")
	out := shell(slaves[0].URL(), ".dump kv\n.backup "+file+"\n")
	for _, want := range []string{"BEGIN TRANSACTION;\nCREATE TABLE kv (k TEXT PRIMARY KEY, v);\n",
		`INSERT INTO "kv"(rowid,"k","v") VALUES(1,'a',1);`, `VALUES(2,'b','it''s');`, "COMMIT;\n", "at log index 3 ", file} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "other") {
		t.Fatalf(".dump kv dumped another table:\n%s", out)
	}
	mustExec(t, m.URL(), "DELETE FROM kv")
	if out := shell(m.URL(), ".restore "+file+"\n"); !strings.Contains(out, "restored "+file) {
		t.Fatalf(".restore: %s", out)
	}
	resp, err := client.New(m.URL()).Query(context.Background(), "SELECT group_concat(k) FROM kv")
	if err != nil || len(resp.Values) != 1 || fmt.Sprint(resp.Values[0][0]) != "a,b" {
		t.Fatalf("after .restore: %+v %v", resp, err)
	}
}

// BEGIN … COMMIT in the shell: the statements are collected and sent as
// one all-or-nothing request, on a slave to the master; a failing
// statement applies nothing of its transaction; ROLLBACK, and input that
// ends in an open transaction, discard them; misplaced BEGIN, COMMIT and
// ROLLBACK are refused as sqlite3 refuses them.
func TestShellTransaction(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	s := slaves[0].URL()
	waitApplied(t, m.URL(), slaves, mustExec(t, m.URL(), "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").Index)
	ctx := context.Background()
	shell := func(node, input string) (string, string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := runShell(ctx, []string{"--history", "", node}, strings.NewReader(input), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	ids := func() string {
		t.Helper()
		resp, err := client.New(m.URL()).Query(ctx, "SELECT coalesce(group_concat(id), '') FROM (SELECT id FROM t ORDER BY id)")
		if err != nil {
			t.Fatal(err)
		}
		return cellText(resp.Values[0][0])
	}
	lastIndex := func() uint64 {
		t.Helper()
		st, err := client.New(m.URL()).LogStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.LastIndex
	}

	out, errOut, err := shell(s, "BEGIN;\nINSERT INTO t VALUES (1, 'a');\nINSERT INTO t VALUES (2, 'b')\n  RETURNING id;\n"+
		"SELECT count(*) AS n FROM t;\nCREATE TABLE u (x);\nCOMMIT;\nSELECT group_concat(id) AS ids FROM t;\n")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	want := "OK: 1 row affected, last insert id 1\n" +
		" id\n----\n  2\n(1 row)\n" + // RETURNING
		" n\n---\n 2\n(1 row)\n" + // the SELECT sees the transaction's writes
		"OK: 0 rows affected\n" +
		"COMMIT: 4 statements in one transaction, index 2\n" +
		" ids\n-----\n 1,2\n(1 row)\n" // read at the slave after the commit
	if out != want || errOut != "writes go to the master at "+m.URL()+"\n" {
		t.Fatalf("output\n%s\nwant\n%s\nstderr %q", out, want, errOut)
	}

	// A statement that fails: nothing of the transaction is applied, and
	// the error names its line.
	before := lastIndex()
	_, _, err = shell(m.URL(), "BEGIN TRANSACTION;\nINSERT INTO t VALUES (3, 'c');\n\nINSERT INTO t VALUES (1, 'again');\nINSERT INTO t VALUES (4, 'd');\nEND;\n")
	if err == nil || !strings.HasPrefix(err.Error(), "line 4: statement 2 of the transaction: UNIQUE constraint failed: t.id") ||
		!strings.Contains(err.Error(), "nothing of it was applied") {
		t.Fatalf("a failing transaction: %v", err)
	}
	if got := ids(); got != "1,2" {
		t.Fatalf("rows after a failed transaction: %s, want 1,2", got)
	}

	// ROLLBACK sends nothing; the shell goes on.
	out, _, err = shell(m.URL(), "BEGIN; INSERT INTO t VALUES (5, 'e'); ROLLBACK;\nSELECT count(*) AS n FROM t;\n")
	if err != nil || !strings.Contains(out, " n\n---\n 2\n") {
		t.Fatalf("ROLLBACK: %v\n%s", err, out)
	}
	// Input that ends in an open transaction: discarded, exit status 1.
	_, _, err = shell(m.URL(), "BEGIN;\nINSERT INTO t VALUES (6, 'f');\n")
	if err == nil || err.Error() != "the transaction begun at line 1 was not committed: its 1 statement was discarded, nothing of it was applied" {
		t.Fatalf("input ending in a transaction: %v", err)
	}
	_, _, err = shell(m.URL(), "BEGIN;\nINSERT INTO t VALUES (7, 'g');\n.quit\n")
	if err == nil || !strings.Contains(err.Error(), "was not committed") {
		t.Fatalf(".quit in a transaction: %v", err)
	}
	if got, idx := ids(), lastIndex(); got != "1,2" || idx != before {
		t.Fatalf("after rolled back and discarded transactions: rows %s, log index %d; want 1,2 and %d (nothing sent)", got, idx, before)
	}
	for _, tc := range []struct{ input, says string }{
		{"COMMIT;\n", "line 1: cannot commit: no transaction is active"},
		{"ROLLBACK;\n", "line 1: cannot rollback: no transaction is active"},
		{"BEGIN;\nBEGIN;\n", "line 2: cannot start a transaction within a transaction (the one begun at line 1 is open"},
		{"BEGIN;\n.read x.sql\n", "line 2: .read runs its own transactions"},
	} {
		if _, _, err := shell(m.URL(), tc.input); err == nil || !strings.HasPrefix(err.Error(), tc.says) {
			t.Fatalf("%q: %v, want %q", tc.input, err, tc.says)
		}
	}
}

func TestTxnControl(t *testing.T) {
	for stmt, want := range map[string]string{
		"BEGIN;":                                "begin",
		"begin immediate transaction;":          "begin",
		"  /* c */ BEGIN -- x\n;":               "begin",
		"COMMIT;":                               "commit",
		"end transaction;":                      "commit",
		"ROLLBACK;":                             "rollback",
		"rollback transaction;":                 "rollback",
		"ROLLBACK TO sp;":                       "",
		"ROLLBACK TRANSACTION TO SAVEPOINT sp;": "",
		"SELECT 'BEGIN';":                       "",
		"-- BEGIN\nSELECT 1;":                   "",
		"CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;": "",
		"SAVEPOINT sp;": "",
	} {
		if got := txnControl(stmt); got != want {
			t.Errorf("txnControl(%q) = %q, want %q", stmt, got, want)
		}
	}
}

// The shell on a slave follows the master through promotions: writes go
// to the master the slave names, said once; after a switchover to the
// other slave, the old master's refusal (fenced, or a slave now) leads
// the shell to the new one; when that one is lost and the shell's own
// node is promoted, writes go to it.
func TestShellFollowsPromotion(t *testing.T) {
	m, slaves := mustStartCluster(t, 2)
	s1, s2 := slaves[0].URL(), slaves[1].URL()
	waitApplied(t, m.URL(), slaves, mustExec(t, m.URL(), "CREATE TABLE t (v)").Index)
	ctx := context.Background()
	in, typing := io.Pipe()
	defer typing.Close()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- runShell(ctx, []string{"--history", "", s1}, in, &out, &errOut) }()
	// say types a line, and waits until the shell printed want.
	say := func(line, want string) {
		t.Helper()
		before := len(out.String())
		if _, err := io.WriteString(typing, line+"\n"); err != nil {
			t.Fatalf("%s: %v (the shell ended: %v)\n%s", line, err, <-done, errOut.String())
		}
		deadline := time.Now().Add(testWait)
		for !strings.Contains(out.String()[before:], want) {
			select {
			case err := <-done:
				t.Fatalf("%s: the shell ended: %v\n%s\n%s", line, err, out.String(), errOut.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no %q in\n%s\n%s", line, want, out.String(), errOut.String())
			}
			time.Sleep(5 * time.Millisecond) // ok: poll interval
		}
	}
	// slaveOf waits until the node at u follows master.
	slaveOf := func(u, master string) {
		t.Helper()
		waitFor(t, u+" following "+master, func() string {
			st, err := client.New(u).LogStatus(ctx)
			if err != nil {
				return err.Error()
			}
			return st.Role + " of " + st.Master
		}, func(s string) bool { return s == "slave of "+master })
	}

	say("INSERT INTO t VALUES (1);", "OK: 1 row affected, last insert id 1, index 2\n")
	say("SELECT count(*) AS n FROM t;", " n\n---\n 1\n")
	if got := errOut.String(); got != "writes go to the master at "+m.URL()+"\n" {
		t.Fatalf("stderr %q", got)
	}

	// A switchover to slave 2.
	var po, pe bytes.Buffer
	if err := Run(ctx, []string{"promote", s2}, &po, &pe); err != nil || !strings.Contains(po.String(), s2+" is the master of epoch 2") {
		t.Fatalf("promote: %v\n%s%s", err, po.String(), pe.String())
	}
	slaveOf(s1, s2)
	say("CREATE TABLE after (a);", "OK: 0 rows affected")
	say("INSERT INTO after VALUES (2);", "OK: 1 row affected")
	say("SELECT group_concat(a) AS a FROM after;", " a\n---\n 2\n")
	if got, want := errOut.String(), "writes go to the master at "+m.URL()+"\nwrites go to the master at "+s2+"\n"; got != want {
		t.Fatalf("stderr %q, want %q", got, want)
	}
	resp, err := client.New(s2).Query(ctx, "SELECT count(*) FROM after")
	if err != nil || cellText(resp.Values[0][0]) != "1" {
		t.Fatalf("the write at the new master: %+v %v", resp, err)
	}

	// The new master is lost; the shell's own node is promoted.
	slaves[1].Close()
	po.Reset()
	if err := Run(ctx, []string{"promote", s1}, &po, &pe); err != nil || !strings.Contains(po.String(), s1+" is the master of epoch 3") {
		t.Fatalf("promote: %v\n%s%s", err, po.String(), pe.String())
	}
	say("INSERT INTO after VALUES (3);", "OK: 1 row affected")
	say("SELECT group_concat(a) AS a FROM after;", " a\n-----\n 2,3\n")
	if got := errOut.String(); !strings.HasSuffix(got, "writes go to the master at "+s2+"\nwrites go to "+s1+", now the master\n") {
		t.Fatalf("stderr %q", got)
	}
	typing.Close()
	if err := <-done; err != nil {
		t.Fatalf("the shell ended with %v", err)
	}
}
