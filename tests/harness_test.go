package tests

// This file runs walship processes: the Node and Cluster test types, free
// loopback ports, per-node environments, and fault injection (SIGKILL,
// SIGSTOP/SIGCONT, restart on the same port and data directory). The HTTP
// side of a Node lives in client_test.go; the fault-injecting proxy that
// can stand between a slave and its master (Via) or a client and a node
// lives in proxy_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the harness. They are generous: a healthy node answers in
// milliseconds, and a timeout only decides how long a broken one takes to
// fail the test.
const (
	startTimeout = 30 * time.Second // until /readyz answers 200
	exitTimeout  = 10 * time.Second // until a killed process is reaped
	waitTimeout  = 60 * time.Second // WaitForApplied and other waits on replication
	pollInterval = 10 * time.Millisecond
)

// Roles of a node.
const (
	RoleMaster = "master"
	RoleSlave  = "slave"
)

// Node is one walship process of a test: its role, id, address, data
// directory, environment, and the process currently running (if any).
// Methods that take no *testing.T fail the node's test and must be called
// from the test's goroutine; the methods that return errors are safe
// anywhere.
type Node struct {
	Role      string   // RoleMaster or RoleSlave
	ID        int      // the slave's id (0 for a master)
	Addr      string   // 127.0.0.1:PORT, kept across restarts
	DataDir   string   // kept across restarts
	MasterURL string   // a slave's --master: the master's URL, or a proxy's in front of it
	Master    *Node    // the master a slave follows (directly or through a proxy)
	Env       []string // added to the test process's environment, e.g. TZ=UTC
	Args      []string // extra command-line arguments
	// User and Password, if User is set, are sent by the harness's own
	// requests to the node (WithCredentials): a node with --auth.
	User, Password string
	// Scheme is "https" for a node that serves TLS (WithHTTPS), else "" for
	// http; HTTP is then the client that trusts its certificate (nil: the
	// shared httpClient).
	Scheme string
	HTTP   *http.Client
	// NoLeader makes the harness wait for /readyz?noleader: the node
	// counts as started once it serves, heard from its master or not.
	NoLeader bool

	t       testing.TB
	name    string // "master", "slave-1"
	logPath string // stdout and stderr of every run, appended

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been reaped
	state   *os.ProcessState
	expect  bool // the harness killed the process, or a test expects it to exit
	starts  int
	logFrom int64 // offset in logPath where the current run's output starts
}

// Option configures a node before its first start.
type Option func(*Node)

// WithTZ runs the node with the TZ environment variable set to tz.
func WithTZ(tz string) Option { return WithEnv("TZ", tz) }

// WithEnv runs the node with the environment variable key=value.
func WithEnv(key, value string) Option {
	return func(n *Node) { n.Env = append(n.Env, key+"="+value) }
}

// WithArgs adds command-line arguments to the node's.
func WithArgs(args ...string) Option {
	return func(n *Node) { n.Args = append(n.Args, args...) }
}

// WithCredentials makes the harness's requests to the node carry user and
// password (a node started with --auth).
func WithCredentials(user, password string) Option {
	return func(n *Node) { n.User, n.Password = user, password }
}

// nodeCreds holds, by host:port, the credentials the harness sends to a
// node (credTransport).
var nodeCreds sync.Map

// credTransport adds a node's credentials (WithCredentials) to a request
// that carries none.
type credTransport struct{ base http.RoundTripper }

func (t credTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") == "" {
		if c, ok := nodeCreds.Load(req.URL.Host); ok {
			req = req.Clone(req.Context())
			cr := c.([2]string)
			req.SetBasicAuth(cr[0], cr[1])
		}
	}
	return t.base.RoundTrip(req)
}

// WithDataDir runs the node on dir instead of a fresh directory.
func WithDataDir(dir string) Option { return func(n *Node) { n.DataDir = dir } }

// Via makes a slave pull its master's log through proxy p (its --master is
// the proxy's URL), so that p can cut, delay or blackhole the feed and the
// writes and strong reads the slave forwards.
func Via(p *Proxy) Option { return func(n *Node) { n.MasterURL = p.URL() } }

// Cluster is the set of nodes of one test. Every process it started is
// killed when the test ends, and the output of every node is logged when
// the test failed.
type Cluster struct {
	t     testing.TB
	dir   string
	mu    sync.Mutex
	nodes []*Node
}

// NewCluster returns an empty cluster whose nodes live under a temporary
// directory of t.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	// The directory is created before the cleanup below is registered, so
	// (cleanups run last-in first-out) the processes are dead before their
	// files are removed.
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	return c
}

// MustRunMaster starts a master on a free loopback port and waits until it
// serves.
func (c *Cluster) MustRunMaster(opts ...Option) *Node {
	c.t.Helper()
	n := c.newNode(RoleMaster, 0, "master", opts)
	c.mustStartOnFreePort(n)
	return n
}

// MustRunSlave starts slave id, pulling master's log, on a free loopback
// port and waits until it serves.
func (c *Cluster) MustRunSlave(id int, master *Node, opts ...Option) *Node {
	c.t.Helper()
	n := c.newNode(RoleSlave, id, fmt.Sprintf("slave-%d", id), opts)
	n.Master = master
	if n.MasterURL == "" {
		n.MasterURL = master.URL()
	}
	c.mustStartOnFreePort(n)
	return n
}

// Nodes returns the nodes of the cluster in the order they were created.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

func (c *Cluster) newNode(role string, id int, name string, opts []Option) *Node {
	c.t.Helper()
	c.mu.Lock()
	for _, o := range c.nodes {
		if o.name == name {
			name += "-" + strconv.Itoa(len(c.nodes))
		}
	}
	c.mu.Unlock()
	n := &Node{
		Role:    role,
		ID:      id,
		DataDir: filepath.Join(c.dir, name, "data"),
		t:       c.t,
		name:    name,
		logPath: filepath.Join(c.dir, name, "output.log"),
	}
	for _, o := range opts {
		o(n)
	}
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(n.logPath), 0o755); err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n
}

// mustStartOnFreePort starts n on a free port, trying another port when
// the one picked was taken in between.
func (c *Cluster) mustStartOnFreePort(n *Node) {
	c.t.Helper()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		n.Addr = freeAddr(c.t)
		if err = n.start(); err != nil {
			c.t.Fatalf("%s: %v", n.name, err)
		}
		if err = n.waitReady(startTimeout); err == nil {
			return
		}
		if !n.Exited() || !strings.Contains(n.Output(), "address already in use") {
			break
		}
	}
	c.t.Fatalf("%s did not start: %v\n%s", n.name, err, n.Output())
}

// cleanup kills every process, fails the test for a process that exited by
// itself, and logs every node's output when the test failed.
func (c *Cluster) cleanup() {
	nodes := c.Nodes()
	// Slaves first, so they do not log a vanished master.
	for _, n := range slices.Backward(nodes) {
		n.mu.Lock()
		unexpected := n.cmd != nil && !n.expect && n.exitedLocked()
		n.mu.Unlock()
		if unexpected {
			c.t.Errorf("%s exited by itself: %v", n.name, n.exitState())
		}
		if err := n.kill(); err != nil {
			c.t.Errorf("%s: %v", n.name, err)
		}
	}
	for _, n := range nodes {
		if crash := crashIn(string(n.allOutput())); crash != "" {
			c.t.Errorf("%s crashed at some point: %s", n.name, crash)
		}
	}
	if !c.t.Failed() {
		return
	}
	for _, n := range c.Nodes() {
		c.t.Logf("===== output of %s (%s, data %s) =====\n%s", n.name, n.Addr, n.DataDir, tail(n.allOutput(), 256<<10))
	}
}

// URL is the node's base URL, as the node itself advertises it by default.
func (n *Node) URL() string {
	if n.Scheme != "" {
		return n.Scheme + "://" + n.Addr
	}
	return "http://" + n.Addr
}

// client returns the HTTP client of the node's requests.
func (n *Node) client() *http.Client {
	if n.HTTP != nil {
		return n.HTTP
	}
	return httpClient
}

// readyClient returns the client that polls /readyz: the node's, with a
// short timeout.
func (n *Node) readyClient() *http.Client {
	return &http.Client{Timeout: time.Second, Transport: n.client().Transport}
}

// readyURL is what the harness polls until the node serves.
func (n *Node) readyURL() string {
	if n.NoLeader {
		return n.URL() + "/readyz?noleader"
	}
	return n.URL() + "/readyz"
}

// Name is "master" or "slave-N".
func (n *Node) Name() string { return n.name }

// String names the node in test messages.
func (n *Node) String() string { return n.name + " (" + n.URL() + ")" }

func (n *Node) args() []string {
	var a []string
	switch n.Role {
	case RoleMaster:
		// A test machine's disk may be short of the default 256 MiB free.
		a = []string{"master", "--addr", n.Addr, "--data", n.DataDir, "--min-free-space", "16MiB"}
	case RoleSlave:
		a = []string{"slave", "--id", strconv.Itoa(n.ID), "--addr", n.Addr, "--master", n.MasterURL, "--data", n.DataDir}
	}
	return append(a, n.Args...)
}

// start starts the process without waiting for it to serve.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && !n.exitedLocked() {
		return errors.New("already running")
	}
	out, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child holds its own descriptor
	if n.User != "" {
		nodeCreds.Store(n.Addr, [2]string{n.User, n.Password})
	}
	n.starts++
	fmt.Fprintf(out, "----- start %d of %s at %s: walship %s (env %s)\n",
		n.starts, n.name, time.Now().Format(time.RFC3339Nano), strings.Join(n.args(), " "), strings.Join(n.Env, " "))
	fi, err := out.Stat()
	if err != nil {
		return err
	}
	n.logFrom = fi.Size() // Output starts after the header
	cmd := exec.Command(walshipBin, n.args()...)
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.Stdout = out
	cmd.Stderr = out
	// Pdeathsig: no walship outlives a crashed test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", walshipBin, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.state, n.expect = cmd, exited, nil, false
	go func() {
		_ = cmd.Wait()
		n.mu.Lock()
		n.state = cmd.ProcessState
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits, or the
// timeout runs out.
func (n *Node) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := n.readyClient()
	last := "no answer"
	for {
		if n.Exited() {
			return fmt.Errorf("exited before it served: %v", n.exitState())
		}
		resp, err := client.Get(n.readyURL())
		if err == nil {
			body := readAll(resp)
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz not 200 after %v: %s", timeout, last)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// Start starts the node again after Kill (same port, same data directory)
// and waits until it serves.
func (n *Node) Start() {
	n.t.Helper()
	if err := n.start(); err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	if err := n.waitReady(startTimeout); err != nil {
		n.t.Fatalf("%s did not start: %v\n%s", n.name, err, n.Output())
	}
}

// StartNoWait starts the node again after Kill without waiting for it to
// serve.
func (n *Node) StartNoWait() {
	n.t.Helper()
	if err := n.start(); err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
}

// Restart kills the node (if it runs) and starts it again on the same port
// and data directory.
func (n *Node) Restart() {
	n.t.Helper()
	n.Kill()
	n.Start()
}

// StartExpectExit starts the node and waits until it exits by itself. It
// returns the exit code and the output of this run, and fails the test if
// the node serves (/readyz 200) or does not exit within timeout.
func (n *Node) StartExpectExit(timeout time.Duration) (int, string) {
	n.t.Helper()
	if err := n.start(); err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
	n.mu.Lock()
	n.expect = true
	exited := n.exited
	n.mu.Unlock()
	deadline := time.Now().Add(timeout)
	client := n.readyClient()
	for {
		select {
		case <-exited:
			return n.exitState().ExitCode(), n.Output()
		default:
		}
		if resp, err := client.Get(n.readyURL()); err == nil {
			readAll(resp)
			if resp.StatusCode == http.StatusOK {
				n.t.Fatalf("%s serves (/readyz 200), but it should have refused to start", n.name)
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s still runs %v after its start, but it should have refused to start", n.name, timeout)
		}
		time.Sleep(pollInterval) // ok: poll interval
	}
}

// Kill sends SIGKILL and waits until the process is reaped.
func (n *Node) Kill() {
	n.t.Helper()
	if err := n.kill(); err != nil {
		n.t.Fatalf("%s: %v", n.name, err)
	}
}

func (n *Node) kill() error {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	if cmd == nil || n.exitedLocked() {
		n.mu.Unlock()
		return nil
	}
	n.expect = true
	n.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(exitTimeout):
		return fmt.Errorf("not reaped %v after SIGKILL", exitTimeout)
	}
}

// Stop sends SIGSTOP and waits until the kernel reports the process
// stopped.
func (n *Node) Stop() {
	n.t.Helper()
	pid := n.pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		n.t.Fatalf("%s: SIGSTOP: %v", n.name, err)
	}
	n.waitProcState(pid, func(s byte) bool { return s == 'T' || s == 't' }, "stopped")
}

// Cont sends SIGCONT and waits until the process runs again.
func (n *Node) Cont() {
	n.t.Helper()
	pid := n.pid()
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		n.t.Fatalf("%s: SIGCONT: %v", n.name, err)
	}
	n.waitProcState(pid, func(s byte) bool { return s != 'T' && s != 't' }, "running")
}

func (n *Node) pid() int {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.exitedLocked() {
		n.t.Fatalf("%s is not running", n.name)
	}
	return n.cmd.Process.Pid
}

// waitProcState polls /proc/PID/stat until the process state satisfies ok.
func (n *Node) waitProcState(pid int, ok func(byte) bool, what string) {
	n.t.Helper()
	deadline := time.Now().Add(exitTimeout)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return // no procfs: trust the signal
		}
		// The state follows the parenthesised command name.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && ok(b[i+2]) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: not %s after %v: %s", n.name, what, exitTimeout, b)
		}
		time.Sleep(time.Millisecond) // ok: poll interval
	}
}

// Exited reports whether the current process has exited.
func (n *Node) Exited() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exitedLocked()
}

func (n *Node) exitedLocked() bool {
	if n.exited == nil {
		return false
	}
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

func (n *Node) exitState() *os.ProcessState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state
}

// Output returns what the current (or last) run wrote to stdout and stderr.
func (n *Node) Output() string {
	n.mu.Lock()
	from := n.logFrom
	n.mu.Unlock()
	b := n.allOutput()
	if from > int64(len(b)) {
		return ""
	}
	return string(b[from:])
}

func (n *Node) allOutput() []byte {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return []byte(err.Error())
	}
	return b
}

func tail(b []byte, max int) string {
	if len(b) <= max {
		return string(b)
	}
	return fmt.Sprintf("[… %d bytes cut …]\n%s", len(b)-max, b[len(b)-max:])
}

// crashIn returns the first line of a Go crash (panic, fatal error, data
// race) in a node's output, or "".
func crashIn(out string) string {
	for _, marker := range []string{"panic: ", "fatal error: ", "WARNING: DATA RACE"} {
		if i := strings.Index(out, marker); i >= 0 {
			line, _, _ := strings.Cut(out[i:], "\n")
			return line
		}
	}
	return ""
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
}
