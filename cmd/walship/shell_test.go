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

// The shell's commands and its query-then-write rule, in process: on a
// slave, a write goes through (forwarded), a schema statement is refused
// with the master's URL, and reads are local.
func TestShellCommands(t *testing.T) {
	m, slaves := mustStartCluster(t, 1)
	s := slaves[0].URL()
	mustExec(t, m.URL(), "CREATE TABLE kv (k TEXT PRIMARY KEY, v)")
	waitApplied(t, m.URL(), slaves, mustExec(t, m.URL(), "CREATE INDEX kv_v ON kv (v)").Index)
	ctx := context.Background()
	shell := func(t *testing.T, node, input string) (string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := runShell(ctx, []string{"--history", "", node}, strings.NewReader(input), &out, &errOut)
		if errOut.Len() > 0 {
			t.Fatalf("stderr: %s", errOut.String())
		}
		return out.String(), err
	}
	out, err := shell(t, s, "INSERT INTO kv VALUES ('a', 1), ('b', 2.5), ('c', NULL), ('d', x'00ff')\n"+
		"  RETURNING k;\n"+
		"SELECT k, v, typeof(v) FROM kv ORDER BY k; -- a comment after the statement\n"+
		".schema kv\n.indexes\n.status\n.timer on\n.mode json\nSELECT count(*) AS n FROM kv;\n.mode csv\n.timer off\n"+
		"SELECT 1 AS x;\nSELECT 2 AS y") // the last statement has no ';': it runs at the end of the input
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		" k\n---\n a\n b\n c\n d\n(4 rows)\nOK: 4 rows affected, last insert id 4, index 3\n",
		" k | v    | typeof(v)\n---+------+-----------\n a | 1    | integer\n b | 2.5  | real\n c | NULL | null\n d | AP8= | blob\n(4 rows)\n",
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
	_, err = shell(t, s, "SELECT 1;\nCREATE TABLE other (a);\nSELECT 2;\n")
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status != 403 || !strings.Contains(err.Error(), m.URL()) || !strings.HasPrefix(err.Error(), "line 2: ") {
		t.Fatalf("a schema statement on a slave: %v, want a 403 naming the master, at line 2", err)
	}
	for _, tc := range []struct{ input, says string }{
		{".mode xml\n", "unknown output mode"},
		{".timer maybe\n", "usage: .timer on|off"},
		{".frobnicate\n", "unknown command .frobnicate"},
		{".schema nope\n", "no such table: nope"},
		{"SELECT 'unterminated\n", "incomplete"},
	} {
		if _, err := shell(t, m.URL(), tc.input); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Fatalf("%q: %v, want an error saying %q", tc.input, err, tc.says)
		}
	}
	if out, err := shell(t, m.URL(), "SELECT 1;\n.quit\nSELECT * FROM nope;\n"); err != nil || !strings.Contains(out, "(1 row)") {
		t.Fatalf(".quit: %v\n%s", err, out)
	}
	if _, err := shell(t, "http://127.0.0.1:1", "SELECT 1;\n"); err == nil || err.Error() != "line 1: cannot reach http://127.0.0.1:1: connect: connection refused" {
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
