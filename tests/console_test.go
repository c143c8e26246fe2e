package tests

// The web console (/console) in a real browser: headless Chromium driven
// with chromedp, against real walship processes. Skipped where no
// Chromium is installed (.ci/run installs Debian's chromium).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Bounds of the browser tests: how long the page may take to show what a
// test waits for, and how often it is looked at meanwhile.
const (
	consoleWait = 20 * time.Second
	consolePoll = 50 * time.Millisecond
)

// chromiumPath returns the Chromium (or Chrome) binary on PATH, or skips
// the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium, chromium-browser or google-chrome on PATH: the console's browser tests need one (apt-get install chromium; .ci/run installs it)")
	return ""
}

// newBrowser starts a headless Chromium for the test and returns a tab's
// context; the browser is stopped when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoSandbox, // Chromium refuses to run as root with its sandbox
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1180, 760),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// browse runs actions in the tab, failing the test on an error.
func browse(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		screenshot(t, ctx, "failed")
		t.Fatalf("browser: %v", err)
	}
}

// waitPage evaluates expr in the page until ok accepts its value, and
// returns it; after consoleWait it fails the test with what, the last
// value and a screenshot.
func waitPage[V any](t *testing.T, ctx context.Context, what, expr string, ok func(V) bool) V {
	t.Helper()
	deadline := time.Now().Add(consoleWait)
	for {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[V](expr))
		if err == nil && ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			screenshot(t, ctx, "failed")
			t.Fatalf("timed out after %s waiting for %s: last %v (err %v)", consoleWait, what, v, err)
		}
		time.Sleep(consolePoll) // ok: poll interval
	}
}

// textOf is an expression giving the text of the element matched by sel
// ("" when there is none).
func textOf(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)
}

// tableOf is an expression giving the body rows of the table matched by
// sel, as the text of each cell.
func tableOf(sel string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => [...tr.cells].map(td => td.textContent))`, sel+" tbody tr")
}

// screenshot saves the tab's viewport as name.png in the test's artifact
// directory (kept with go test -artifacts) and logs where.
func screenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return nil
	}
	path := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return nil
	}
	t.Logf("screenshot: %s", path)
	return png
}

// clusterRow is one row of the console's cluster view, by column.
type clusterRow []string

func (r clusterRow) node() string    { return r[0] }
func (r clusterRow) url() string     { return r[2] }
func (r clusterRow) state() string   { return r[3] }
func (r clusterRow) applied() string { return r[4] }

// rowOf returns the row of the node labelled node ("master", "slave 2").
func rowOf(rows [][]string, node string) clusterRow {
	for _, r := range rows {
		if len(r) == 9 && r[0] == node {
			return r
		}
	}
	return nil
}

func TestConsole(t *testing.T) {
	ctx := newBrowser(t)
	c := NewCluster(t)
	m := c.MustRunMaster()
	s1 := c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)
	m.MustExec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, email TEXT)")
	m.MustExec("CREATE INDEX users_email ON users (email)")
	m.MustExec("INSERT INTO users (name, email) VALUES (?, ?)", "ana", "ana@example.com")
	m.MustExec("INSERT INTO users (name, email) VALUES (?, ?)", "ben", nil)
	last := c.WaitConverged(m)
	want := strconv.FormatUint(last, 10)

	// The cluster view: the master and both slaves, each at the master's
	// last index.
	browse(t, ctx, chromedp.Navigate(m.URL()+"/console/"))
	rows := waitPage(t, ctx, "the cluster view to list three nodes at index "+want, tableOf("#cluster-table"), func(rows [][]string) bool {
		for _, n := range []string{"master", "slave 1", "slave 2"} {
			if r := rowOf(rows, n); r == nil || r.applied() != want {
				return false
			}
		}
		return len(rows) == 3
	})
	for node, url := range map[string]string{"master": m.URL(), "slave 1": s1.URL(), "slave 2": s2.URL()} {
		r := rowOf(rows, node)
		if r.url() != url {
			t.Errorf("%s listed at %s, want %s", node, r.url(), url)
		}
		wantState := "streaming"
		if node == "master" {
			wantState = "ok"
		}
		if r.state() != wantState {
			t.Errorf("%s in state %q, want %q: %v", node, r.state(), wantState, r)
		}
	}
	if sum := waitPage(t, ctx, "the summary", textOf("#cluster-summary"), func(s string) bool { return s != "" }); !strings.Contains(sum, "master "+m.URL()) || !strings.Contains(sum, "2 slaves") {
		t.Errorf("summary %q: want the master's URL and 2 slaves", sum)
	}
	// The chart draws one line a node, named in its legend.
	legend := waitPage(t, ctx, "the chart's legend", textOf("#chart-legend"), func(s string) bool { return strings.Contains(s, "slave 2") })
	if !strings.Contains(legend, "master "+m.URL()) || !strings.Contains(legend, "slave 1 "+s1.URL()) {
		t.Errorf("legend %q: want every node", legend)
	}
	screenshot(t, ctx, "cluster")

	// The query box: a read, its rows as a table; an error, shown.
	browse(t, ctx,
		chromedp.Click(chromedp.CSS(`nav a[data-view="query"]`)),
		chromedp.SetValue(chromedp.CSS("#sql"), "SELECT id, name, email FROM users ORDER BY id;"),
		chromedp.Click(chromedp.CSS("#run")))
	cells := waitPage(t, ctx, "the query's rows", tableOf("#results table.rows"), func(rows [][]string) bool { return len(rows) > 0 })
	if got := fmt.Sprint(cells); got != "[[1 ana ana@example.com] [2 ben NULL]]" {
		t.Errorf("query table %s, want [[1 ana ana@example.com] [2 ben NULL]]", got)
	}
	heads := waitPage(t, ctx, "the table's header", `[...document.querySelectorAll("#results table.rows th")].map(th => th.textContent)`, func(h []string) bool { return len(h) > 0 })
	if fmt.Sprint(heads) != "[id name email]" {
		t.Errorf("query header %v, want [id name email]", heads)
	}
	if tm := waitPage(t, ctx, "the query's timing", textOf("#query-time"), func(s string) bool { return strings.Contains(s, "round trip") }); !strings.Contains(tm, "ms") {
		t.Errorf("timing %q", tm)
	}
	screenshot(t, ctx, "query")
	browse(t, ctx,
		chromedp.SetValue(chromedp.CSS("#sql"), "INSERT INTO users (name) VALUES ('cy'); SELECT * FROM nope;"),
		chromedp.Click(chromedp.CSS("#run")))
	results := waitPage(t, ctx, "the write's result and the error", textOf("#results"), func(s string) bool { return strings.Contains(s, "Statement 2") })
	if !strings.Contains(results, "rows affected 1, last insert id 3") || !strings.Contains(results, "no such table: nope") {
		t.Errorf("results %q: want the write's rows affected and the error", results)
	}
	if n := m.Count("SELECT count(*) FROM users WHERE name = 'cy'"); n != 1 {
		t.Errorf("the console's write: %d rows at the master, want 1", n)
	}
	hist := waitPage(t, ctx, "the history", `[...document.querySelectorAll("#history li")].map(li => li.textContent)`, func(h []string) bool { return len(h) == 2 })
	if !strings.HasPrefix(hist[0], "INSERT INTO users") || !strings.HasPrefix(hist[1], "SELECT id, name") {
		t.Errorf("history %q: want the two queries, newest first", hist)
	}

	// The schema browser: the table with its row count, its columns,
	// index and first rows.
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="schema"]`)))
	item := waitPage(t, ctx, "the schema's tables", textOf(`#schema-tables li[data-name="users"]`), func(s string) bool { return s != "" })
	if item != "users3" {
		t.Errorf("schema list item %q, want users with 3 rows", item)
	}
	if list := waitPage(t, ctx, "the schema list", textOf("#schema-tables"), func(string) bool { return true }); list != "users3" {
		t.Errorf("schema list %q, want only users (not walship's own tables)", list)
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS(`#schema-tables li[data-name="users"]`)))
	detail := waitPage(t, ctx, "the table's detail", textOf("#schema-detail"), func(s string) bool { return strings.Contains(s, "Columns") })
	for _, w := range []string{"CREATE TABLE users", "users_email", "sqlite_autoindex_users_1", "no triggers", "ana@example.com", "Rows (3)"} {
		if !strings.Contains(detail, w) {
			t.Errorf("schema detail lacks %q: %s", w, detail)
		}
	}
	screenshot(t, ctx, "schema")

	// The log: its bounds, and the last entries' statements.
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="log"]`)))
	entries := waitPage(t, ctx, "the log's entries", tableOf("#log-entries"), func(rows [][]string) bool { return len(rows) >= 5 })
	if !strings.Contains(entries[0][3], "INSERT INTO users (name) VALUES ('cy')") || entries[0][0] != strconv.FormatUint(last+1, 10) {
		t.Errorf("newest log entry %q, want index %d, the console's INSERT", entries[0], last+1)
	}
	if !strings.Contains(entries[1][3], `["ben",null]`) {
		t.Errorf("log entry %q: want its parameters", entries[1])
	}
	info := waitPage(t, ctx, "the log's bounds", textOf("#log-info"), func(s string) bool { return strings.Contains(s, "last index") })
	if !strings.Contains(info, "last index"+strconv.FormatUint(last+1, 10)) || !strings.Contains(info, "at most 1000000 entries") {
		t.Errorf("log info %q: want the last index and the retention", info)
	}
	screenshot(t, ctx, "log")

	// Actions: a replica check, a backup.
	browse(t, ctx,
		chromedp.Click(chromedp.CSS(`nav a[data-view="actions"]`)),
		chromedp.Click(chromedp.CSS("#verify")))
	if v := waitPage(t, ctx, "the replica check", textOf("#verify-out"), func(s string) bool { return s != "" && s != "checking…" }); !strings.Contains(v, "The master hashed its content at index") {
		t.Errorf("verify: %q", v)
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS("#backup")))
	if b := waitPage(t, ctx, "the backup", textOf("#backup-out"), func(s string) bool { return s != "" && s != "taking the backup…" }); !strings.HasPrefix(b, "Downloaded") {
		t.Errorf("backup: %q", b)
	}
	// Restore: the backup taken before the table was emptied brings its
	// rows back.
	resp, err := http.Get(m.URL() + "/db/backup")
	if err != nil {
		t.Fatal(err)
	}
	backup := readAll(resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /db/backup: %d %s", resp.StatusCode, backup)
	}
	file := filepath.Join(t.TempDir(), "users.sqlite")
	if err := os.WriteFile(file, backup, 0o600); err != nil {
		t.Fatal(err)
	}
	m.MustExec("DELETE FROM users")
	browse(t, ctx,
		chromedp.SetUploadFiles(chromedp.CSS("#restore-file"), []string{file}),
		chromedp.Click(chromedp.CSS("#restore")),
		chromedp.Click(chromedp.CSS("#restore-yes")))
	if r := waitPage(t, ctx, "the restore", textOf("#restore-out"), func(s string) bool { return s != "" && !strings.HasPrefix(s, "sending") }); !strings.HasPrefix(r, "Restored from users.sqlite") {
		t.Errorf("restore: %q", r)
	}
	if n := m.Count("SELECT count(*) FROM users"); n != 3 {
		t.Errorf("%d users at the master after the restore, want 3", n)
	}
	if off := waitPage(t, ctx, "the promote button", `document.querySelector("#promote").disabled`, func(bool) bool { return true }); !off {
		t.Error("promote is offered on the master's console")
	}

	// A slave stopped: marked unreachable, with why; the other still
	// streaming.
	s2.Kill()
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="cluster"]`)))
	waitPage(t, ctx, "slave 2 marked unreachable, slave 1 streaming", tableOf("#cluster-table"), func(rows [][]string) bool {
		r, r1 := rowOf(rows, "slave 2"), rowOf(rows, "slave 1")
		return r != nil && r.state() == "unreachable" && r1 != nil && r1.state() == "streaming"
	})
	notes := waitPage(t, ctx, "the note on slave 2", textOf("#cluster-notes"), func(s string) bool { return s != "" })
	if !strings.Contains(notes, "slave 2 ("+s2.URL()+")") || !strings.Contains(notes, "connection refused") {
		t.Errorf("notes %q: want slave 2's error", notes)
	}
	screenshot(t, ctx, "cluster-slave-down")

	// The console of a slave: the same cluster; promote it.
	browse(t, ctx, chromedp.Navigate(s1.URL()+"/console/"))
	rows = waitPage(t, ctx, "the slave's cluster view", tableOf("#cluster-table"), func(rows [][]string) bool { return len(rows) == 3 })
	if r := rowOf(rows, "master"); r == nil || r.url() != m.URL() || rows[1][0] != "slave 1" {
		t.Errorf("from slave 1, the cluster is %v, want the master at %s first, slave 1 next", rows, m.URL())
	}
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="actions"]`)))
	waitPage(t, ctx, "promote offered on a slave", `document.querySelector("#promote").disabled === false`, func(b bool) bool { return b })
	browse(t, ctx, chromedp.Click(chromedp.CSS("#promote")), chromedp.Click(chromedp.CSS("#promote-yes")))
	if p := waitPage(t, ctx, "the promotion", textOf("#promote-out"), func(s string) bool { return s != "" && s != "promoting…" }); !strings.HasPrefix(p, "This node is the master now: epoch 2") {
		t.Fatalf("promote: %q", p)
	}
	m.WaitFor("the old master following slave 1", waitTimeout, func(s *LogStatus) bool {
		return s.Role == "slave" && s.Master == s1.URL()
	})
	browse(t, ctx, chromedp.Click(chromedp.CSS(`nav a[data-view="cluster"]`)))
	rows = waitPage(t, ctx, "slave 1 the master", tableOf("#cluster-table"), func(rows [][]string) bool {
		r := rowOf(rows, "slave master")
		return len(rows) >= 2 && rows[0][1] == "master" && rows[0][2] == s1.URL() && r != nil && r.state() == "streaming"
	})
	if r := rowOf(rows, "slave master"); r.url() != m.URL() {
		t.Errorf("the old master %v, want a slave at %s", r, m.URL())
	}
	screenshot(t, ctx, "cluster-promoted")
}

// TestConsoleScreenshot saves the README's picture of the console: the
// cluster view of a master and two slaves, with a chart of twenty seconds
// of steady writes (slave 2 paused for four), at the path WALSHIP_CONSOLE_SCREENSHOT names (relative
// to the repository's root), e.g.
//
//	WALSHIP_CONSOLE_SCREENSHOT=docs/console.png go test ./tests -run ConsoleScreenshot
func TestConsoleScreenshot(t *testing.T) {
	path := os.Getenv("WALSHIP_CONSOLE_SCREENSHOT")
	if path == "" {
		t.Skip("set WALSHIP_CONSOLE_SCREENSHOT=docs/console.png to save the README's screenshot")
	}
	ctx := newBrowser(t)
	c := NewCluster(t)
	m := c.MustRunMaster()
	c.MustRunSlave(1, m)
	s2 := c.MustRunSlave(2, m)
	m.MustExec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
	browse(t, ctx, chromedp.Navigate(m.URL()+"/console/"))
	waitPage(t, ctx, "three nodes", tableOf("#cluster-table"), func(rows [][]string) bool { return len(rows) == 3 })
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(25 * time.Millisecond): // ok: pacing the load
			}
			if _, err := m.Exec("INSERT INTO users (name) VALUES (?)", fmt.Sprintf("user-%d", i)); err != nil {
				t.Errorf("load: %v", err)
				return
			}
		}
	}()
	// Twenty seconds of history; slave 2 paused for four of them, so
	// that its lag shows, then caught up.
	time.Sleep(8 * time.Second) // ok: the chart's history, not a readiness wait
	s2.Stop()
	time.Sleep(4 * time.Second) // ok: the lag drawn
	s2.Cont()
	time.Sleep(8 * time.Second) // ok: the chart's history
	close(stop)
	<-done
	c.WaitConverged(m)
	waitPage(t, ctx, "every node streaming", tableOf("#cluster-table"), func(rows [][]string) bool {
		return rowOf(rows, "slave 1").state() == "streaming" && rowOf(rows, "slave 2").state() == "streaming"
	})
	png := screenshot(t, ctx, "readme")
	if !filepath.IsAbs(path) {
		path = filepath.Join("..", path) // the tests run in tests/
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("README screenshot: %s (%d bytes)", path, len(png))
}

func TestConsoleAuth(t *testing.T) {
	ctx := newBrowser(t)
	file := writeAuthFile(t, nil)
	c := NewCluster(t)
	m := c.MustRunMaster(WithArgs("--auth", file), WithCredentials("admin", "admin-pw"))
	m.MustExec("CREATE TABLE t (v TEXT)")
	m.MustExec("INSERT INTO t (v) VALUES ('x')")

	// The page loads without credentials, and asks for them.
	browse(t, ctx, chromedp.Navigate(m.URL()+"/console/"))
	why := waitPage(t, ctx, "the sign-in form", `document.querySelector("#login").hidden ? "" : document.querySelector("#login-error").textContent`, func(s string) bool { return s != "" })
	if !strings.Contains(why, "401") {
		t.Errorf("sign-in form says %q, want the 401", why)
	}
	if hidden := waitPage(t, ctx, "the cluster view", `document.querySelector("#view-cluster").hidden`, func(bool) bool { return true }); !hidden {
		t.Error("the cluster view shows before sign-in")
	}

	// Wrong password: refused, still at the form.
	browse(t, ctx,
		chromedp.SetValue(chromedp.CSS("#login-user"), "reader"),
		chromedp.SetValue(chromedp.CSS("#login-password"), "wrong"),
		chromedp.Click(chromedp.CSS("#login-submit")))
	waitPage(t, ctx, "the wrong password refused", textOf("#login-error"), func(s string) bool { return s == "Wrong user or password." })

	// A reader: may query, not see the status nor take a backup; each
	// refusal names the permission missing.
	browse(t, ctx,
		chromedp.SetValue(chromedp.CSS("#login-password"), "reader-pw"),
		chromedp.Click(chromedp.CSS("#login-submit")))
	if who := waitPage(t, ctx, "signed in", textOf("#user"), func(s string) bool { return s != "" }); who != "signed in as reader" {
		t.Errorf("header says %q", who)
	}
	if e := waitPage(t, ctx, "the cluster's 403", textOf("#cluster-error"), func(s string) bool { return s != "" }); !strings.Contains(e, `403 Forbidden: missing permission "status"`) {
		t.Errorf("cluster error %q: want the missing status permission", e)
	}
	screenshot(t, ctx, "auth-reader")
	browse(t, ctx,
		chromedp.Click(chromedp.CSS(`nav a[data-view="query"]`)),
		chromedp.SetValue(chromedp.CSS("#sql"), "SELECT v FROM t"),
		chromedp.Click(chromedp.CSS("#run")))
	cells := waitPage(t, ctx, "the reader's query", tableOf("#results table.rows"), func(rows [][]string) bool { return len(rows) > 0 })
	if fmt.Sprint(cells) != "[[x]]" {
		t.Errorf("reader's query %v, want [[x]]", cells)
	}
	if note := waitPage(t, ctx, "the note", textOf("#results p.muted"), func(s string) bool { return s != "" }); !strings.Contains(note, "Sent to /db/query") {
		t.Errorf("note %q: want the fallback to /db/query named", note)
	}
	browse(t, ctx,
		chromedp.Click(chromedp.CSS(`nav a[data-view="actions"]`)),
		chromedp.Click(chromedp.CSS("#backup")))
	if b := waitPage(t, ctx, "the backup's 403", textOf("#backup-out"), func(s string) bool { return strings.Contains(s, "403") }); !strings.Contains(b, `missing permission "backup"`) || !strings.Contains(b, `user "reader"`) {
		t.Errorf("backup: %q, want the missing backup permission of reader", b)
	}

	// Signed out, then in as the admin: everything shows.
	browse(t, ctx,
		chromedp.Click(chromedp.CSS("#logout")),
		chromedp.SetValue(chromedp.CSS("#login-user"), "admin"),
		chromedp.SetValue(chromedp.CSS("#login-password"), "admin-pw"),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.Click(chromedp.CSS(`nav a[data-view="cluster"]`)))
	rows := waitPage(t, ctx, "the admin's cluster view", tableOf("#cluster-table"), func(rows [][]string) bool { return len(rows) == 1 })
	if r := rowOf(rows, "master"); r == nil || r.state() != "ok" || r.applied() != "2" {
		t.Errorf("admin's cluster view %v, want the master ok at 2", rows)
	}
}
