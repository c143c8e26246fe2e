package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/etcdembed"
)

func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "walship demo [--port 8080] [--slaves 2] [--data walship-data] [--fresh] [--failover]\n\n"+
		"A master and --slaves slaves in this process, with their data under --data (master, slave-N,\n"+
		"and etcd with --failover). A second run goes on with the data the first left, and says so;\n"+
		"--fresh removes it first.", stderr)
	failover := fs.Bool("failover", false, "automatic failover: start an etcd in this process, give every node --etcd, and stop and start the master when Enter is pressed, to watch another be elected")
	port := fs.Int("port", 8080, "the master's port; slave N listens on port+N")
	slaves := fs.Int("slaves", 2, "number of slaves")
	data := fs.String("data", "walship-data", "directory holding every node's data directory")
	level := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	fresh := fs.Bool("fresh", false, "start empty: remove the demo's data under --data first (its master, slave-N and etcd directories, nothing else)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *slaves < 0 || *slaves > 100 || *port < 1 || *port+*slaves > 65535 {
		return fmt.Errorf("--port %d with --slaves %d is out of range", *port, *slaves)
	}
	old, foreign, err := demoDirs(*data)
	if err != nil {
		return err
	}
	if *fresh && len(foreign) > 0 {
		return fmt.Errorf("--fresh: %s holds something else than the demo's data; not removed (give another --data)", foreign[0])
	}
	if *fresh && len(old) > 0 {
		// Never the data of a node that runs: each node's directory is
		// locked (by this process, then removed) before any is removed.
		var locks []*os.File
		defer func() {
			for _, l := range locks {
				l.Close()
			}
		}()
		for _, d := range old {
			if d == "etcd" {
				continue
			}
			l, err := lockDir(filepath.Join(*data, d))
			if err != nil {
				return fmt.Errorf("--fresh: %w", err)
			}
			locks = append(locks, l)
		}
		for _, d := range old {
			if err := os.RemoveAll(filepath.Join(*data, d)); err != nil {
				return fmt.Errorf("--fresh: %w", err)
			}
		}
		fmt.Fprintf(stdout, "walship demo: --fresh: removed %s under %s\n", strings.Join(old, ", "), *data)
		old = nil
	}
	logger, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	host := "127.0.0.1"
	var etcd EtcdConfig
	if *failover {
		srv, err := etcdembed.Start(filepath.Join(*data, "etcd"), "")
		if err != nil {
			return err
		}
		defer srv.Close()
		etcd = EtcdConfig{Endpoints: []string{srv.URL()}, Timeout: DefaultFailoverTimeout}
	}
	masterURL := "http://" + host + ":" + strconv.Itoa(*port)
	configs := []NodeConfig{{Role: "master", ID: "master", Addr: host + ":" + strconv.Itoa(*port),
		Data: filepath.Join(*data, "master"), Logger: logger, VerifyEvery: DefaultVerifyEvery, Etcd: etcd}}
	for i := 1; i <= *slaves; i++ {
		configs = append(configs, NodeConfig{Role: "slave", ID: strconv.Itoa(i), Addr: host + ":" + strconv.Itoa(*port+i),
			Data: filepath.Join(*data, "slave-"+strconv.Itoa(i)), MasterURL: masterURL, Logger: logger, Etcd: etcd})
	}
	nodes := make([]*Node, len(configs))
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			if nodes[i] != nil {
				nodes[i].Close()
			}
		}
	}()
	for i, cfg := range configs {
		n, err := StartNode(cfg)
		if err != nil {
			return err
		}
		nodes[i] = n
	}
	m := nodes[0]
	for _, n := range nodes {
		c := client.New(n.URL())
		if err := waitReady(ctx, c.Ready, 10*time.Second); err != nil {
			return fmt.Errorf("node %s not ready: %w", n.URL(), err)
		}
	}
	reused := slices.ContainsFunc(old, func(d string) bool {
		n, isSlave := strings.CutPrefix(d, "slave-")
		i, _ := strconv.Atoi(n)
		return d == "master" || (isSlave && i >= 1 && i <= *slaves) || (d == "etcd" && *failover)
	})
	if reused {
		var index uint64
		for _, n := range nodes {
			if st, err := client.New(n.URL()).LogStatus(ctx); err == nil {
				index = max(index, st.AppliedIndex)
			}
		}
		fmt.Fprintf(stdout, "walship demo: reusing data under %s (index %d); --fresh to start empty\n", *data, index)
	}
	fmt.Fprintf(stdout, "walship demo: master %s", m.URL())
	for _, n := range nodes[1:] {
		fmt.Fprintf(stdout, ", slave %s %s", n.cfg.ID, n.URL())
	}
	fmt.Fprintf(stdout, ` (data under %s)

Try:
  curl -s %[2]s/ -d '{"command":"exec","query":"CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL UNIQUE, email TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"}'
  curl -s %[2]s/ -d '{"command":"exec","query":"INSERT INTO users (username, email) VALUES (?, ?)","params":["ana","ana@example.com"]}'
`, *data, m.URL())
	if len(nodes) > 1 {
		fmt.Fprintf(stdout, `  curl -s %[1]s/ -d '{"command":"exec","query":"INSERT INTO users (username) VALUES ('\''ben'\'')"}'   # a slave forwards writes
  curl -s %[1]s/ -d '{"command":"query","query":"SELECT * FROM users"}'
`, nodes[1].URL())
	}
	fmt.Fprintf(stdout, "  curl -s %s/log/status\n", m.URL())
	if !*failover {
		fmt.Fprint(stdout, "\nPress Ctrl-C to stop.\n")
		<-ctx.Done()
		return nil
	}
	fmt.Fprintf(stdout, "  walship status --node %s\n\nFailover is on (etcd %s). Press Enter to stop the master: another node is elected; Enter again starts it back, as a slave of the new master. Ctrl-C to quit.\n",
		m.URL(), etcd.Endpoints[0])
	return demoFailover(ctx, stdin, stdout, configs, nodes)
}

// demoDirs lists the directories a demo left under data: master,
// slave-N (any N), etcd, each holding a node's data (its db.sqlite) or
// etcd's (member). foreign are the directories of those names that hold
// something else, which --fresh must not remove.
func demoDirs(data string) (dirs, foreign []string, err error) {
	entries, err := os.ReadDir(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		mark := "db.sqlite"
		switch {
		case name == "etcd":
			mark = "member"
		case name == "master":
		case strings.HasPrefix(name, "slave-") && isDigits(name[len("slave-"):]):
		default:
			continue
		}
		dir := filepath.Join(data, name)
		if !e.IsDir() {
			foreign = append(foreign, dir)
			continue
		}
		inside, err := os.ReadDir(dir)
		if err != nil {
			return nil, nil, err
		}
		if len(inside) == 0 {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, mark)); err != nil {
			foreign = append(foreign, dir)
			continue
		}
		dirs = append(dirs, name)
	}
	return dirs, foreign, nil
}

// isDigits reports whether s is a number of decimal digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// demoFailover stops the master at each line read from stdin, and starts
// it again at the next, until ctx is done.
func demoFailover(ctx context.Context, stdin io.Reader, stdout io.Writer, configs []NodeConfig, nodes []*Node) error {
	lines := make(chan struct{})
	go func() { // ends with the process: a read of stdin cannot be stopped
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	stopped := -1
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lines:
		}
		if stopped >= 0 {
			n, err := StartNode(configs[stopped])
			if err != nil {
				fmt.Fprintf(stdout, "could not start %s again: %v\n", configs[stopped].ID, err)
				continue
			}
			nodes[stopped] = n
			fmt.Fprintf(stdout, "started %s again at %s: it follows the elected master\n", configs[stopped].ID, n.URL())
			stopped = -1
			continue
		}
		for i, n := range nodes {
			if n != nil && n.Role() == "master" {
				fmt.Fprintf(stdout, "stopping the master, %s (%s)…\n", configs[i].ID, n.URL())
				n.Close()
				nodes[i], stopped = nil, i
				break
			}
		}
		if stopped < 0 {
			fmt.Fprintln(stdout, "no master yet: wait for the election, and press Enter again")
			continue
		}
		start := time.Now()
		for ctx.Err() == nil && time.Since(start) < time.Minute {
			for i, n := range nodes {
				if n != nil && n.Role() == "master" && n.Leading() {
					fmt.Fprintf(stdout, "%s (%s) was elected the master after %s\n", configs[i].ID, n.URL(), time.Since(start).Round(time.Millisecond))
					start = time.Time{}
				}
			}
			if start.IsZero() {
				break
			}
			time.Sleep(50 * time.Millisecond) // ok: a demo's poll interval
		}
	}
}
