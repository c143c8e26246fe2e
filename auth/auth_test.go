package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// mustHash hashes password at cost.
func mustHash(tb testing.TB, password string, cost int) string {
	tb.Helper()
	h, err := HashPassword(password, cost)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// mustParse parses a credentials file.
func mustParse(tb testing.TB, text string) *Store {
	tb.Helper()
	s, err := Parse([]byte(text))
	if err != nil {
		tb.Fatalf("parse: %v\n%s", err, text)
	}
	return s
}

// A file in rqlite's format with hashed and plain-text passwords and an
// anonymous user.
func TestAuthParse(t *testing.T) {
	hash := mustHash(t, "bob's secret", MinCost)
	s := mustParse(t, `[
		{"username": "bob", "password": "`+hash+`", "perms": ["all"]},
		{"username": "ann", "password": "ann pw", "perms": ["query", "status", "query"]},
		{"username": "feed", "password": "feed pw", "perms": ["replicate"]},
		{"username": "nobody", "password": "x"},
		{"username": "*", "perms": ["status", "ready"]}
	]`)
	if got, want := s.Users(), []string{"*", "ann", "bob", "feed", "nobody"}; !slices.Equal(got, want) {
		t.Fatalf("users %q, want %q", got, want)
	}
	for user, want := range map[string][]Perm{
		"bob": {PermAll}, "ann": {PermQuery, PermStatus}, "feed": {PermReplicate},
		"nobody": {}, "*": {PermReady, PermStatus}, "eve": nil,
	} {
		if got := s.Perms(user); !slices.Equal(got, want) || (want == nil) != (got == nil) {
			t.Errorf("perms of %s: %q, want %q", user, got, want)
		}
	}
	if got, want := s.PlainText(), []string{"ann", "feed", "nobody"}; !slices.Equal(got, want) {
		t.Fatalf("plain text %q, want %q", got, want)
	}
	if !s.Authenticate("bob", "bob's secret") || !s.Authenticate("ann", "ann pw") {
		t.Fatal("a right password refused")
	}

	// An empty array is a valid file that lets no one in.
	empty := mustParse(t, " [ ] \n")
	if len(empty.Users()) != 0 || empty.Authorize("", "", false, PermStatus) != ErrUnauthenticated {
		t.Fatal("an empty file lets someone in")
	}
	// Every permission is known.
	for _, p := range KnownPerms() {
		mustParse(t, `[{"username": "u", "password": "p", "perms": ["`+string(p)+`"]}]`)
	}
}

// Every kind of bad file is refused with an error naming the entry (its
// number and username) and what is wrong.
func TestAuthParseErrors(t *testing.T) {
	hash := mustHash(t, "pw", MinCost)
	ok := `{"username": "ok", "password": "pw", "perms": ["all"]}`
	for _, tc := range []struct{ name, file, want string }{
		{"empty", "  \n", "empty: want a JSON array of users"},
		{"object", `{"username": "bob"}`, "not a JSON array of users"},
		{"syntax", "[\n" + ok + ",\n {\"username\": \"bob\",, }]", "line 3, column"},
		{"truncated", "[" + ok + ",", "unexpected end of JSON input"},
		{"trailing", "[] []", "line 1, column 4"},
		{"unknown perm", "[" + ok + `, {"username": "bob", "password": "x", "perms": ["query", "exec"]}]`,
			`entry 2 ("bob"): unknown permission "exec" (known: all, execute, query,`},
		{"perm case", `[{"username": "bob", "password": "x", "perms": ["ALL"]}]`, `entry 1 ("bob"): unknown permission "ALL"`},
		{"no username", "[" + ok + `, {"password": "x", "perms": ["all"]}]`, "entry 2: no username"},
		{"empty username", `[{"username": "", "password": "x"}]`, "entry 1: no username"},
		{"colon", `[{"username": "a:b", "password": "x"}]`, `entry 1 ("a:b"): username contains ':'`},
		{"duplicate", "[" + ok + `, {"username": "bob", "password": "x"}, {"username": "bob", "password": "y"}]`,
			`entry 3 ("bob"): user "bob" is already entry 2`},
		{"duplicate anonymous", `[{"username": "*"}, {"username": "*", "perms": ["all"]}]`, `entry 2 ("*"): user "*" is already entry 1`},
		{"no password", "[" + ok + `, {"username": "bob", "perms": ["query"]}]`, `entry 2 ("bob"): no password`},
		{"anonymous password", `[{"username": "*", "password": "x", "perms": ["status"]}]`, `entry 1 ("*"): the anonymous user "*" takes no password`},
		{"unknown field", `[{"username": "bob", "password": "x", "perm": ["all"]}]`, `entry 1 ("bob"): unknown field "perm"`},
		{"perms type", `[{"username": "bob", "password": "x", "perms": "all"}]`, `entry 1 ("bob"): field "perms": want an array of strings, found a JSON string`},
		{"password type", `[{"username": "bob", "password": 123}]`, `entry 1 ("bob"): field "password": want a string, found a JSON number`},
		{"not an object", "[" + ok + `, "bob"]`, "entry 2: not an object with username, password and perms"},
		{"null", "[" + ok + `, null]`, "entry 2: null instead of a user"},
		{"short hash", `[{"username": "bob", "password": "` + hash[:59] + `"}]`, `entry 1 ("bob"): bad bcrypt hash: 59 characters, want 60`},
		{"long hash", `[{"username": "bob", "password": "` + hash + `x"}]`, `entry 1 ("bob"): bad bcrypt hash: 61 characters, want 60`},
		{"hash cost", `[{"username": "bob", "password": "` + "$2a$99" + hash[6:] + `"}]`, `entry 1 ("bob"): bad bcrypt hash: crypto/bcrypt: cost 99 is outside`},
		{"hash cost digits", `[{"username": "bob", "password": "` + "$2a$1x" + hash[6:] + `"}]`, `entry 1 ("bob"): bad bcrypt hash`},
		{"hash alphabet", `[{"username": "bob", "password": "` + hash[:20] + "!" + hash[21:] + `"}]`, `entry 1 ("bob"): bad bcrypt hash: character '!' at 20 is not in bcrypt's alphabet`},
		{"hash variant", `[{"username": "bob", "password": "` + "$2x$" + hash[4:] + `"}]`, `entry 1 ("bob"): password looks like a bcrypt hash of variant "$2x$"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.file))
			if err == nil {
				t.Fatalf("parsed (users %q), want an error with %q", s.Users(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), hash) {
				t.Fatalf("error %q shows the hash", err)
			}
		})
	}
}

// Load's errors name the file.
func TestAuthLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, good, `[{"username": "bob", "password": "x", "perms": ["query"]}]`)
	writeFile(t, bad, `[{"username": "bob", "password": "x", "perms": ["bogus"]}]`)
	s, err := Load(good)
	if err != nil || !slices.Equal(s.Users(), []string{"bob"}) {
		t.Fatalf("load: %v", err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "credentials file "+bad+`: entry 1 ("bob"): unknown permission "bogus"`) {
		t.Fatalf("bad file: %v", err)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

// Plain-text and hashed passwords, of every bcrypt variant, and what never
// authenticates.
func TestAuthAuthenticate(t *testing.T) {
	hash := mustHash(t, "hashed pw", MinCost)
	long := strings.Repeat("L", 72)
	longHash := mustHash(t, long, MinCost)
	s := mustParse(t, `[
		{"username": "plain", "password": "plain pw"},
		{"username": "a", "password": "`+hash+`"},
		{"username": "b", "password": "`+"$2b$"+hash[4:]+`"},
		{"username": "y", "password": "`+"$2y$"+hash[4:]+`"},
		{"username": "long", "password": "`+longHash+`"},
		{"username": "*", "perms": ["all"]}
	]`)
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"plain", "plain pw", true},
		{"plain", "plain p", false},
		{"plain", "plain pw ", false},
		{"plain", "", false},
		{"plain", hash, false},
		{"a", "hashed pw", true},
		{"b", "hashed pw", true},
		{"y", "hashed pw", true},
		{"a", "hashed pW", false},
		{"a", hash, false}, // the hash is not the password
		{"a", "", false},
		{"long", long, true},
		{"long", long + "more", false}, // bcrypt reads 72 bytes: the rest must not be ignored
		{"nobody", "plain pw", false},
		{"*", "", false}, // the anonymous user has no password to log in with
		{"*", "anything", false},
		{"", "", false},
	} {
		if got := s.Authenticate(tc.user, tc.password); got != tc.want {
			t.Errorf("Authenticate(%q, %q) = %v, want %v", tc.user, tc.password, got, tc.want)
		}
	}
}

// Authorize: every case of credentials × permissions.
func TestAuthAuthorize(t *testing.T) {
	s := mustParse(t, `[
		{"username": "admin", "password": "`+mustHash(t, "admin pw", MinCost)+`", "perms": ["all"]},
		{"username": "reader", "password": "reader pw", "perms": ["query"]},
		{"username": "bare", "password": "bare pw"},
		{"username": "*", "perms": ["status"]}
	]`)
	open := mustParse(t, `[{"username": "admin", "password": "admin pw", "perms": ["all"]}, {"username": "*", "perms": ["all"]}]`)
	forbidden := func(user string, perm Perm) error { return &ForbiddenError{User: user, Perm: perm} }
	for _, tc := range []struct {
		name           string
		s              *Store
		user, password string
		hasAuth        bool
		perm           Perm
		want           error
	}{
		{"no credentials, anonymous lacks it", s, "", "", false, PermQuery, ErrUnauthenticated},
		{"no credentials, anonymous holds it", s, "", "", false, PermStatus, nil},
		{"no credentials, anonymous holds all", open, "", "", false, PermReplicate, nil},
		{"wrong password", s, "reader", "wrong", true, PermQuery, ErrUnauthenticated},
		{"wrong password where anonymous would do", s, "reader", "wrong", true, PermStatus, ErrUnauthenticated},
		{"wrong hashed password", s, "admin", "reader pw", true, PermQuery, ErrUnauthenticated},
		{"unknown user", s, "eve", "reader pw", true, PermQuery, ErrUnauthenticated},
		{"empty credentials", s, "", "", true, PermStatus, ErrUnauthenticated},
		{"anonymous as a user", s, "*", "", true, PermStatus, ErrUnauthenticated},
		{"user lacking it", s, "reader", "reader pw", true, PermExecute, forbidden("reader", PermExecute)},
		{"user lacking replicate", s, "reader", "reader pw", true, PermReplicate, forbidden("reader", PermReplicate)},
		{"user without perms", s, "bare", "bare pw", true, PermQuery, forbidden("bare", PermQuery)},
		{"user holding it", s, "reader", "reader pw", true, PermQuery, nil},
		{"given by anonymous", s, "bare", "bare pw", true, PermStatus, nil},
		{"given by all", s, "admin", "admin pw", true, PermSchema, nil},
		{"all does not make the user known", open, "eve", "x", true, PermQuery, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Authorize(tc.user, tc.password, tc.hasAuth, tc.perm)
			switch want := tc.want.(type) {
			case nil:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case *ForbiddenError:
				var fe *ForbiddenError
				if !errors.As(err, &fe) || *fe != *want || !errors.Is(err, ErrForbidden) || errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("got %v, want %v", err, want)
				}
				if msg := err.Error(); !strings.Contains(msg, `"`+string(tc.perm)+`"`) || !strings.Contains(msg, tc.user) || strings.Contains(msg, tc.password) {
					t.Fatalf("message %q: want the user and the permission, not the password", msg)
				}
			default:
				if !errors.Is(err, want) || errors.Is(err, ErrForbidden) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
		})
	}
	// HasPerm: the user's own, all, and "*"'s.
	for _, tc := range []struct {
		user string
		perm Perm
		want bool
	}{
		{"reader", PermQuery, true}, {"reader", PermExecute, false}, {"reader", PermStatus, true},
		{"admin", PermLeaderOps, true}, {"bare", PermStatus, true}, {"bare", PermQuery, false},
		{"eve", PermStatus, true}, {"eve", PermQuery, false},
	} {
		if got := s.HasPerm(tc.user, tc.perm); got != tc.want {
			t.Errorf("HasPerm(%q, %q) = %v, want %v", tc.user, tc.perm, got, tc.want)
		}
	}
}

// A wrong password takes as long for an unknown user as for a known one,
// so that timing does not tell which users exist: the medians of many
// interleaved checks are within 0.7–1.4 of each other. In a file with
// hashes, a plain-text user takes as long too.
func TestAuthTiming(t *testing.T) {
	const cost = 6 // a few ms a check: far above the noise, quick enough to repeat
	s := mustParse(t, `[
		{"username": "bob", "password": "`+mustHash(t, "bob pw", cost)+`", "perms": ["all"]},
		{"username": "ann", "password": "ann pw", "perms": ["all"]}
	]`)
	if got, _ := bcrypt.Cost(s.dummy); got != cost {
		t.Fatalf("dummy hash of cost %d, want %d", got, cost)
	}
	const tries = 41
	var known, plain, unknown []time.Duration
	measure := func(into *[]time.Duration, user string) {
		start := time.Now()
		if s.Authenticate(user, "a wrong password") {
			t.Fatalf("%s authenticated with a wrong password", user)
		}
		*into = append(*into, time.Since(start))
	}
	for range tries {
		measure(&known, "bob")
		measure(&unknown, "eve")
		measure(&plain, "ann")
	}
	median := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	k, u, p := median(known), median(unknown), median(plain)
	t.Logf("medians: known %v, unknown %v, plain-text %v", k, u, p)
	for _, c := range []struct {
		name string
		r    float64
	}{{"unknown/known", float64(u) / float64(k)}, {"plain-text/known", float64(p) / float64(k)}} {
		if c.r < 0.7 || c.r > 1.4 {
			t.Errorf("%s = %.2f, want 0.7–1.4 (known %v, unknown %v, plain-text %v)", c.name, c.r, k, u, p)
		}
	}
}

func TestAuthHashPassword(t *testing.T) {
	h := mustHash(t, "pw", 0)
	if c, _ := bcrypt.Cost([]byte(h)); c != DefaultCost || bcrypt.CompareHashAndPassword([]byte(h), []byte("pw")) != nil {
		t.Fatalf("hash %q: cost %d, want %d, and the password to match", h, c, DefaultCost)
	}
	h = mustHash(t, "pw", 5)
	if c, _ := bcrypt.Cost([]byte(h)); c != 5 || !strings.HasPrefix(h, "$2a$05$") {
		t.Fatalf("hash %q, want cost 5", h)
	}
	s := mustParse(t, `[{"username": "u", "password": "`+h+`"}]`)
	if !s.Authenticate("u", "pw") || len(s.PlainText()) != 0 {
		t.Fatal("the hash does not authenticate in a file")
	}
	for _, tc := range []struct {
		password string
		cost     int
		want     string
	}{
		{"pw", 3, "bcrypt cost 3 out of range 4 to 31"},
		{"pw", 32, "bcrypt cost 32 out of range"},
		{"pw", -1, "bcrypt cost -1 out of range"},
		{"", 4, "empty password"},
		{strings.Repeat("x", 73), 4, "password of 73 bytes: bcrypt reads at most 72"},
	} {
		if _, err := HashPassword(tc.password, tc.cost); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("HashPassword(%d bytes, %d): %v, want %q", len(tc.password), tc.cost, err, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the logs of several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func writeFile(tb testing.TB, path, text string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// openTestFile writes text to a credentials file and opens it, logging
// into the returned buffer.
func openTestFile(t *testing.T, text string) (*File, string, *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.json")
	writeFile(t, path, text)
	var logs syncBuffer
	f, err := OpenFile(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f, path, &logs
}

// A reload keeps the credentials in use when the file is bad, and swaps
// in the new ones when it is good, logging what changed but no password.
func TestAuthFileReload(t *testing.T) {
	f, path, logs := openTestFile(t, `[
		{"username": "bob", "password": "bob pw 1", "perms": ["query"]},
		{"username": "ann", "password": "ann pw", "perms": ["all"]},
		{"username": "old", "password": "old pw", "perms": ["status"]}
	]`)
	if !strings.Contains(logs.String(), "credentials loaded") || !strings.Contains(logs.String(), "plain-text passwords") {
		t.Fatalf("logs at open:\n%s", logs)
	}
	first := f.Store()
	if !first.Authenticate("bob", "bob pw 1") {
		t.Fatal("bob refused")
	}

	// A bad file, then a vanished one: the old credentials stay.
	for _, bad := range []string{`[{"username": "bob", "password": "x", "perms": ["bogus"]}]`, `[{"username": "bob",`, ""} {
		writeFile(t, path, bad)
		err := f.Reload()
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Fatalf("reload of %q: %v", bad, err)
		}
		if f.Store() != first {
			t.Fatal("a bad file replaced the credentials")
		}
		if !strings.Contains(logs.String(), "credentials not reloaded; keeping the previous ones") {
			t.Fatalf("no error logged:\n%s", logs)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); !errors.Is(err, os.ErrNotExist) || f.Store() != first {
		t.Fatalf("reload of a missing file: %v", err)
	}

	// A good file: bob's password and perms change, old goes, new comes.
	before := len(logs.String())
	writeFile(t, path, `[
		{"username": "bob", "password": "`+mustHash(t, "bob pw 2", MinCost)+`", "perms": ["query", "execute"]},
		{"username": "ann", "password": "ann pw", "perms": ["all"]},
		{"username": "new", "password": "new pw", "perms": ["replicate"]}
	]`)
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	s := f.Store()
	if s == first || !s.Authenticate("bob", "bob pw 2") || s.Authenticate("bob", "bob pw 1") ||
		!s.Authenticate("new", "new pw") || s.Authenticate("old", "old pw") || !s.HasPerm("bob", PermExecute) {
		t.Fatalf("new credentials not in use: users %q", s.Users())
	}
	// The first Store did not change: a request that holds it decides by it.
	if !first.Authenticate("bob", "bob pw 1") || !first.Authenticate("old", "old pw") {
		t.Fatal("the old Store changed")
	}
	log := logs.String()[before:]
	for _, want := range []string{"credentials reloaded", "added=new", "removed=old", `perms_changed="bob: query -> execute,query"`, "password_changed=bob", "users=3"} {
		if !strings.Contains(log, want) {
			t.Errorf("reload log lacks %q:\n%s", want, log)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "credentials reloaded") && strings.Contains(line, "ann") {
			t.Errorf("ann did not change but is logged: %s", line)
		}
	}
	before = len(logs.String())
	if err := f.Reload(); err != nil || !strings.Contains(logs.String()[before:], "credentials reloaded, unchanged") {
		t.Fatalf("reload of the same file: %v\n%s", err, logs.String()[before:])
	}
	for _, pw := range []string{"bob pw 1", "bob pw 2", "ann pw", "old pw", "new pw", "$2a$"} {
		if strings.Contains(logs.String(), pw) {
			t.Errorf("logs show a password (%q):\n%s", pw, logs)
		}
	}

	// A bad file at start is an error naming the file and the entry.
	writeFile(t, path, `[{"username": "", "password": "x"}]`)
	if _, err := OpenFile(path, nil); err == nil || !strings.Contains(err.Error(), path+": entry 1: no username") {
		t.Fatalf("open of a bad file: %v", err)
	}
}

// WatchSIGHUP reloads the file when the process gets SIGHUP, and stops
// with its context.
func TestAuthWatchSIGHUP(t *testing.T) {
	f, path, logs := openTestFile(t, `[{"username": "bob", "password": "bob pw", "perms": ["query"]}]`)
	ctx, cancel := context.WithCancel(context.Background())
	defer f.Wait()
	defer cancel()
	f.WatchSIGHUP(ctx)

	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after SIGHUP:\n%s", what, logs)
			}
			time.Sleep(5 * time.Millisecond) // ok: poll interval
		}
	}

	writeFile(t, path, `[{"username": "bob", "password": "bob pw", "perms": ["query", "execute"]}, {"username": "ann", "password": "ann pw"}]`)
	hup()
	waitFor("reload", func() bool { return f.Store().HasPerm("bob", PermExecute) && f.Store().Authenticate("ann", "ann pw") })
	if !strings.Contains(logs.String(), "SIGHUP: reloading the credentials") {
		t.Fatalf("logs:\n%s", logs)
	}

	// A bad file on SIGHUP: logged, and the credentials stay.
	cur := f.Store()
	writeFile(t, path, `[{"username": "bob"}]`)
	hup()
	waitFor("error logged", func() bool { return strings.Contains(logs.String(), `entry 1 (\"bob\"): no password`) })
	if f.Store() != cur {
		t.Fatal("a bad file replaced the credentials")
	}

	// And again a good one: every SIGHUP reloads.
	writeFile(t, path, `[{"username": "carl", "password": "carl pw", "perms": ["all"]}]`)
	hup()
	waitFor("second reload", func() bool { return slices.Equal(f.Store().Users(), []string{"carl"}) })

	cancel()
	done := make(chan struct{})
	go func() { f.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the SIGHUP watcher did not stop with its context")
	}
}

// Requests decide while reloads swap the Store (run with -race).
func TestAuthFileConcurrent(t *testing.T) {
	f, path, _ := openTestFile(t, `[{"username": "bob", "password": "bob pw", "perms": ["query"]}]`)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := f.Store().Authorize("bob", "bob pw", true, PermQuery); err != nil {
					t.Errorf("bob refused during reloads: %v", err)
					return
				}
			}
		}()
	}
	for i := range 20 {
		perms := `["query"]`
		if i%2 == 1 {
			perms = `["query", "execute"]`
		}
		writeFile(t, path, `[{"username": "bob", "password": "bob pw", "perms": `+perms+`}]`)
		if err := f.Reload(); err != nil {
			t.Error(err)
		}
	}
	cancel()
	wg.Wait()
}
