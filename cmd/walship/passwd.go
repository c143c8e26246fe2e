package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/walship/walship/auth"
)

const passwdSynopsis = `walship passwd [--cost N]

Reads a password and prints its bcrypt hash, to write in a credentials
file's "password" field instead of the password itself. On a terminal it
asks twice, without echo; otherwise it reads one line from standard input:

  printf '%s\n' "$PASSWORD" | walship passwd

It never takes the password as an argument, where ps and the shell's
history would show it. Only the hash goes to standard output.`

// runPasswd runs 'walship passwd'.
func runPasswd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("passwd", passwdSynopsis, stderr)
	cost := fs.Int("cost", auth.DefaultCost, fmt.Sprintf("bcrypt cost, %d to %d: each step doubles the time of a password check, and of a guess", auth.MinCost, auth.MaxCost))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errors.New("passwd takes no arguments: it reads the password from the terminal or standard input")
	}
	if *cost < auth.MinCost || *cost > auth.MaxCost {
		return fmt.Errorf("--cost %d: want %d to %d", *cost, auth.MinCost, auth.MaxCost)
	}
	var password string
	var err error
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		password, err = readPasswordTerminal(ctx, int(f.Fd()), stderr)
	} else {
		password, err = readPasswordLine(stdin)
	}
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(password, *cost)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, hash)
	return err
}

// readPasswordLine reads one line from r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on standard input")
		}
		return "", fmt.Errorf("read the password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}

// readPasswordTerminal asks for the password twice on the terminal fd,
// without echo, prompting on prompt. When ctx ends first (Ctrl-C), it
// gives the terminal its echo back and returns; the read it leaves
// blocked ends with the next line typed or with the process.
func readPasswordTerminal(ctx context.Context, fd int, prompt io.Writer) (string, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("terminal: %w", err)
	}
	read := func(ask string) (string, error) {
		fmt.Fprint(prompt, ask)
		type result struct {
			b   []byte
			err error
		}
		got := make(chan result, 1)
		go func() {
			b, err := term.ReadPassword(fd)
			got <- result{b, err}
		}()
		select {
		case r := <-got:
			fmt.Fprintln(prompt) // the Enter typed was not echoed
			if r.err != nil {
				return "", fmt.Errorf("read the password: %w", r.err)
			}
			return string(r.b), nil
		case <-ctx.Done():
			_ = term.Restore(fd, state)
			fmt.Fprintln(prompt)
			return "", ctx.Err()
		}
	}
	first, err := read("Password: ")
	if err != nil {
		return "", err
	}
	if first == "" {
		return "", errors.New("empty password")
	}
	again, err := read("Password again: ")
	if err != nil {
		return "", err
	}
	if again != first {
		return "", errors.New("the passwords do not match")
	}
	return first, nil
}
