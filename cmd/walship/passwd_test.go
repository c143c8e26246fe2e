package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/walship/walship/auth"
)

// checkHash fails unless out is one line holding a bcrypt hash of password
// at cost, which a credentials file accepts.
func checkHash(t *testing.T, out, password string, cost int) {
	t.Helper()
	hash, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(hash, "\n") {
		t.Fatalf("output %q: want one line", out)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)); err != nil {
		t.Fatalf("hash %q does not match %q: %v", hash, password, err)
	}
	if c, err := bcrypt.Cost([]byte(hash)); err != nil || c != cost {
		t.Fatalf("hash %q: cost %d (%v), want %d", hash, c, err, cost)
	}
	s, err := auth.Parse([]byte(`[{"username": "u", "password": "` + hash + `", "perms": ["all"]}]`))
	if err != nil || !s.Authenticate("u", password) || s.Authenticate("u", password+"x") {
		t.Fatalf("the hash in a credentials file: %v", err)
	}
}

// passwd reading standard input that is not a terminal: one line.
func TestPasswdStdin(t *testing.T) {
	ctx := context.Background()
	run := func(stdin string, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := runPasswd(ctx, args, strings.NewReader(stdin), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	for _, tc := range []struct {
		name, stdin, password string
		args                  []string
		cost                  int
	}{
		{"line", "s3cret with spaces \n", "s3cret with spaces ", nil, auth.DefaultCost},
		{"crlf", "windows\r\n", "windows", []string{"--cost", "4"}, 4},
		{"no newline", "päss:wörd", "päss:wörd", []string{"--cost=5"}, 5},
		{"first line only", "first\nsecond\n", "first", []string{"--cost", "4"}, 4},
		{"72 bytes", strings.Repeat("x", 72) + "\n", strings.Repeat("x", 72), []string{"--cost", "4"}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := run(tc.stdin, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if errOut != "" {
				t.Fatalf("stderr %q: want nothing without a terminal", errOut)
			}
			checkHash(t, out, tc.password, tc.cost)
		})
	}

	t.Run("cost from the environment", func(t *testing.T) {
		t.Setenv("WALSHIP_COST", "6")
		out, _, err := run("env\n")
		if err != nil {
			t.Fatal(err)
		}
		checkHash(t, out, "env", 6)
	})

	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no input", "", nil, "no password on standard input"},
		{"empty line", "\n", nil, "empty password"},
		{"too long", strings.Repeat("x", 73) + "\n", []string{"--cost", "4"}, "password of 73 bytes: bcrypt reads at most 72"},
		{"argument", "x\n", []string{"secret"}, "passwd takes no arguments"},
		{"cost low", "x\n", []string{"--cost", "3"}, "--cost 3: want 4 to 31"},
		{"cost high", "x\n", []string{"--cost", "32"}, "--cost 32: want 4 to 31"},
		{"cost word", "x\n", []string{"--cost", "high"}, "invalid value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := run(tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
			if out != "" {
				t.Fatalf("printed %q on an error", out)
			}
		})
	}

	// Help, and the command as Run dispatches it.
	var out, errOut bytes.Buffer
	if err := Run(ctx, []string{"passwd", "--help"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(errOut.String(), "Usage: walship passwd [--cost N]") || !strings.Contains(errOut.String(), "-cost int\n    \tbcrypt cost, 4 to 31") {
		t.Fatalf("passwd --help: %v\n%s", err, errOut.String())
	}
	if err := Run(ctx, []string{"passwd", "pw"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "takes no arguments") {
		t.Fatalf("passwd pw: %v", err)
	}
	out.Reset()
	if err := Run(ctx, []string{"help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "walship passwd [--cost N]") {
		t.Fatalf("usage lacks passwd: %v\n%s", err, out.String())
	}
}

// passwdTerminal is runPasswd on a pseudo-terminal.
type passwdTerminal struct {
	t       *testing.T
	ptmx    *os.File // the keyboard and screen side
	fd      int      // the terminal passwd reads
	orig    *term.State
	screen  syncBuffer // what the terminal echoed
	prompts syncBuffer // passwd's stderr
	out     syncBuffer // passwd's stdout
	done    chan error
}

// startPasswdTerminal starts runPasswd reading a new pseudo-terminal.
func startPasswdTerminal(t *testing.T, ctx context.Context, args ...string) *passwdTerminal {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	p := &passwdTerminal{t: t, ptmx: ptmx, fd: int(tty.Fd()), done: make(chan error, 1)}
	if p.orig, err = term.GetState(p.fd); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&p.screen, ptmx) // ends once the terminal is closed
	}()
	t.Cleanup(func() {
		tty.Close()
		ptmx.Close()
		<-copied
	})
	go func() { p.done <- runPasswd(ctx, args, tty, &p.out, &p.prompts) }()
	return p
}

// echoOff reports whether the terminal's echo is off: passwd changes
// nothing else of a pseudo-terminal's default state.
func (p *passwdTerminal) echoOff() bool {
	st, err := term.GetState(p.fd)
	return err == nil && *st != *p.orig
}

// answer waits until passwd asks prompt with the echo off, then types
// line.
func (p *passwdTerminal) answer(prompt, line string) {
	p.t.Helper()
	waitFor(p.t, "prompt "+prompt+" without echo", func() string { return p.prompts.String() }, func(s string) bool {
		return strings.HasSuffix(s, prompt) && p.echoOff()
	})
	if _, err := p.ptmx.Write([]byte(line + "\r")); err != nil {
		p.t.Fatal(err)
	}
}

// wait returns passwd's error, and checks that the terminal has its echo
// back and echoed nothing of secret.
func (p *passwdTerminal) wait(secret string) error {
	p.t.Helper()
	var err error
	select {
	case err = <-p.done:
	case <-time.After(testWait):
		p.t.Fatal("passwd did not end")
	}
	if p.echoOff() {
		p.t.Fatal("the terminal's echo is still off")
	}
	// With the echo back, a line typed now shows; whatever the terminal
	// echoed before it is on the screen by then.
	if _, err := p.ptmx.Write([]byte("MARK\r")); err != nil {
		p.t.Fatal(err)
	}
	waitFor(p.t, "echo of a line typed after passwd", p.screen.String, func(s string) bool { return strings.Contains(s, "MARK") })
	if strings.Contains(p.screen.String(), secret) {
		p.t.Fatalf("the password was echoed: %q", p.screen.String())
	}
	return err
}

// passwd on a terminal: asks twice without echo, prints the hash; refuses
// two different passwords; gives the echo back when interrupted.
func TestPasswdTerminal(t *testing.T) {
	t.Run("hash", func(t *testing.T) {
		p := startPasswdTerminal(t, context.Background(), "--cost", "5")
		p.answer("Password: ", "terminal pässword")
		p.answer("Password again: ", "terminal pässword")
		if err := p.wait("pässword"); err != nil {
			t.Fatal(err)
		}
		checkHash(t, p.out.String(), "terminal pässword", 5)
		if got := p.prompts.String(); got != "Password: \nPassword again: \n" {
			t.Fatalf("prompts %q", got)
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		p := startPasswdTerminal(t, context.Background(), "--cost", "4")
		p.answer("Password: ", "one password")
		p.answer("Password again: ", "another password")
		if err := p.wait("password"); err == nil || err.Error() != "the passwords do not match" {
			t.Fatalf("err %v", err)
		}
		if p.out.String() != "" {
			t.Fatalf("printed %q", p.out.String())
		}
	})
	t.Run("empty", func(t *testing.T) {
		p := startPasswdTerminal(t, context.Background())
		p.answer("Password: ", "")
		if err := p.wait("\x00"); err == nil || err.Error() != "empty password" {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := startPasswdTerminal(t, ctx)
		waitFor(t, "prompt without echo", p.prompts.String, func(s string) bool { return s == "Password: " && p.echoOff() })
		cancel() // Ctrl-C
		if err := p.wait("\x00"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		// The read left behind gets the line typed by wait and ends.
		if p.out.String() != "" {
			t.Fatalf("printed %q", p.out.String())
		}
	})
}
