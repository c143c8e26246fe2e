package auth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// File keeps the current Store of a credentials file and reloads it. A
// reload that fails keeps the Store in use: a node never runs with
// half-read or no credentials.
type File struct {
	path   string
	logger *slog.Logger

	cur atomic.Pointer[Store]
	mu  sync.Mutex     // serializes reloads, so that each logs its change from the one before
	wg  sync.WaitGroup // WatchSIGHUP's goroutines
}

// OpenFile loads the credentials file at path; a file that does not load
// is an error naming it and what is wrong. logger (nil: slog.Default())
// receives the reloads' reports and a warning when passwords are held in
// plain text.
func OpenFile(path string, logger *slog.Logger) (*File, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s, err := Load(path)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, logger: logger}
	f.cur.Store(s)
	logger.Info("credentials loaded", "file", path, "users", len(s.users))
	f.warnPlainText(s)
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Store returns the credentials in use.
func (f *File) Store() *Store { return f.cur.Load() }

// Reload re-reads the file. On error it keeps the Store in use, logs the
// error and returns it; on success it swaps in the new Store and logs
// what changed: users added and removed, permissions and passwords changed
// (never a password itself).
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := Load(f.path)
	if err != nil {
		f.logger.Error("credentials not reloaded; keeping the previous ones", "file", f.path, "err", err)
		return err
	}
	old := f.cur.Swap(s)
	c := diff(old, s)
	if c.none() {
		f.logger.Info("credentials reloaded, unchanged", "file", f.path, "users", len(s.users))
	} else {
		attrs := []any{"file", f.path, "users", len(s.users)}
		for _, a := range []struct {
			key   string
			names []string
		}{{"added", c.added}, {"removed", c.removed}, {"perms_changed", c.perms}, {"password_changed", c.passwords}} {
			if len(a.names) > 0 {
				attrs = append(attrs, a.key, strings.Join(a.names, "; "))
			}
		}
		f.logger.Info("credentials reloaded", attrs...)
	}
	f.warnPlainText(s)
	return nil
}

func (f *File) warnPlainText(s *Store) {
	if plain := s.PlainText(); len(plain) > 0 {
		f.logger.Warn("credentials file holds plain-text passwords; 'walship passwd' prints a bcrypt hash to put instead",
			"file", f.path, "users", strings.Join(plain, ", "))
	}
}

// WatchSIGHUP reloads the file on every SIGHUP until ctx is done. It
// returns at once, listening already; its goroutine stops when ctx is
// done (Wait waits for that), and SIGHUP then has its default effect again.
func (f *File) WatchSIGHUP(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				f.logger.Info("SIGHUP: reloading the credentials", "file", f.path)
				_ = f.Reload() // logged; the old credentials stay
			}
		}
	}()
}

// Wait waits until the goroutines of WatchSIGHUP have stopped (their ctx
// is done).
func (f *File) Wait() { f.wg.Wait() }

// change is what a reload changed, as lists of usernames.
type change struct {
	added, removed []string
	perms          []string // "bob: query,status -> all"
	passwords      []string
}

func (c change) none() bool {
	return len(c.added)+len(c.removed)+len(c.perms)+len(c.passwords) == 0
}

// diff returns what changed from old to cur.
func diff(old, cur *Store) change {
	var c change
	for _, name := range cur.Users() {
		n := cur.users[name]
		o, ok := old.users[name]
		if !ok {
			c.added = append(c.added, name)
			continue
		}
		if op, np := o.sortedPerms(), n.sortedPerms(); !slices.Equal(op, np) {
			c.perms = append(c.perms, fmt.Sprintf("%s: %s -> %s", name, permString(op), permString(np)))
		}
		if o.password != n.password {
			c.passwords = append(c.passwords, name)
		}
	}
	for _, name := range old.Users() {
		if _, ok := cur.users[name]; !ok {
			c.removed = append(c.removed, name)
		}
	}
	return c
}

func permString(ps []Perm) string {
	if len(ps) == 0 {
		return "(none)"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}
