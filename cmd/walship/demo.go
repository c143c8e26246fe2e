package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/walship/walship/api/client"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "walship demo [--port 8080] [--slaves 2] [--data walship-data]", stderr)
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
	m, err := StartNode(NodeConfig{Role: "master", ID: "master", Addr: host + ":" + strconv.Itoa(*port),
		Data: filepath.Join(*data, "master"), Logger: logger, VerifyEvery: DefaultVerifyEvery})
	if err != nil {
		return err
	}
	nodes := []*Node{m}
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].Close()
		}
	}()
	for i := 1; i <= *slaves; i++ {
		s, err := StartNode(NodeConfig{Role: "slave", ID: strconv.Itoa(i), Addr: host + ":" + strconv.Itoa(*port+i),
			Data: filepath.Join(*data, "slave-"+strconv.Itoa(i)), MasterURL: m.URL(), Logger: logger})
		if err != nil {
			return err
		}
		nodes = append(nodes, s)
	}
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
	fmt.Fprintf(stdout, "  curl -s %s/log/status\n\nPress Ctrl-C to stop.\n", m.URL())
	<-ctx.Done()
	return nil
}
