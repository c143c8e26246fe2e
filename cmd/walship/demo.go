package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/walship/walship/api/client"
	"github.com/walship/walship/etcdembed"
)

func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "walship demo [--port 8080] [--slaves 2] [--data walship-data] [--failover]", stderr)
	failover := fs.Bool("failover", false, "automatic failover: start an etcd in this process, give every node --etcd, and stop and start the master when Enter is pressed, to watch another be elected")
	port := fs.Int("port", 8080, "the master's port; slave N listens on port+N")
	slaves := fs.Int("slaves", 2, "number of slaves")
	data := fs.String("data", "walship-data", "directory holding every node's data directory")
	level := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *slaves < 0 || *slaves > 100 || *port < 1 || *port+*slaves > 65535 {
		return fmt.Errorf("--port %d with --slaves %d is out of range", *port, *slaves)
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
