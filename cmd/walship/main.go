// Command walship runs a walship node (master or slave), a demo cluster, and
// the tools that talk to a running cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `walship: a replicated SQLite database.

Usage:
  walship master [flags]          run the master (default :8080)
  walship slave [N] [flags]       run slave N (default :8080+N), pulling the master's log
  walship demo [flags]            run a master and two slaves in this process (--failover: with etcd)
  walship exec [flags] SQL [P…]   send a write to a node and print the answer
  walship query [flags] SQL [P…]  send a read to a node and print the answer
  walship shell [flags] [URL]     an interactive SQL shell on a node
  walship load [flags] FILE.sql   load an SQL file (a sqlite3 .dump) in all-or-nothing chunks
  walship backup [flags] FILE     a backup of a node's database, taken while it writes
  walship restore [flags] FILE    replace the cluster's database with a backup
  walship status [flags] [URL]    the cluster at a glance: nodes, roles, applied index, lag
  walship verify [flags] [URL]    check that every slave holds the master's content, table by table
  walship promote [flags] [URL]   make a slave the master (a switchover, or a failover when the master is lost)
  walship remove [flags] ID       forget a slave taken out of service
  walship show [flags] [TABLE…]   every node's tables side by side, differences marked
  walship bench MODE [flags]      load a cluster: write, read, lag, catchup, ceiling, raw
  walship restore --archive DIR (--to-index N | --to-time T) --data NEWDIR
                                  rebuild a data directory from a master's archive at one point
  walship archive ls|verify DIR   what a master's archive holds; check its files' checksums
  walship passwd [--cost N]       read a password, print its bcrypt hash for a credentials file
  walship version                 the version, the module version and VCS revision it was built from

Run 'walship COMMAND --help' for a command's flags. Every flag can also be
set by an environment variable WALSHIP_<FLAG> (e.g. WALSHIP_ADDR=:9090).
`

// gcPercent and memoryLimit are the Go collector's settings unless GOGC
// and GOMEMLIMIT say otherwise. A node's live heap is a few MB (requests,
// one feed answer; bbolt and SQLite keep their pages outside it), so the
// default GOGC=100 collects far more often than memory needs: at 400 a
// slave serves about a sixth more point reads (BENCHMARKS.md). The soft limit
// makes the collector work harder before the heap could approach it.
const (
	gcPercent   = 400
	memoryLimit = 64 << 20
)

// tuneGC applies gcPercent and memoryLimit where the environment does not
// set them.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "walship:", err)
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(1)
	}
}

// Run runs the command line args until ctx is done.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "master":
		return runMaster(ctx, rest, stderr)
	case "slave":
		return runSlave(ctx, rest, stderr)
	case "demo":
		return runDemo(ctx, rest, os.Stdin, stdout, stderr)
	case "exec", "query":
		return runSend(ctx, cmd, rest, stdout, stderr)
	case "shell":
		return runShell(ctx, rest, os.Stdin, stdout, stderr)
	case "load":
		return runLoadFile(ctx, rest, os.Stdin, stdout, stderr)
	case "backup":
		return runBackup(ctx, rest, stdout, stderr)
	case "restore":
		if hasArchiveFlag(rest) { // from an archive (restore_archive.go)
			return runRestoreArchive(ctx, rest, stdout, stderr)
		}
		return runRestore(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr)
	case "promote":
		return runPromote(ctx, rest, stdout, stderr)
	case "remove":
		return runRemove(ctx, rest, stdout, stderr)
	case "show":
		return runShow(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "archive":
		return runArchive(ctx, rest, stdout, stderr)
	case "passwd":
		return runPasswd(ctx, rest, os.Stdin, stdout, stderr)
	case "version", "--version", "-version":
		return runVersion(rest, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// newFlagSet returns a flag set whose flags also read WALSHIP_<FLAG> from
// the environment (call applyEnv after defining the flags).
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags (each also read from WALSHIP_<FLAG>):\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args after taking defaults from the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "WALSHIP_" + envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil && envErr == nil {
				envErr = fmt.Errorf("environment %s=%q: %w", name, v, err)
			}
			f.DefValue = v
		}
	})
	if envErr != nil {
		return envErr
	}
	return fs.Parse(args)
}

func envName(flagName string) string {
	b := []byte(flagName)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case c == '-':
			b[i] = '_'
		}
	}
	return string(b)
}
