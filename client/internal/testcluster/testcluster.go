// Package testcluster starts real georaftd processes for the client's integration tests:
// it builds georaftd from this checkout, writes one config per node on free loopback
// ports, starts the nodes it is asked to, waits for a leader by polling Status, and kills
// everything when the test ends.
package testcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
)

var regions = []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}

// RepoRoot is the checkout this package lives in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary returns a georaftd built from this checkout, once per test process. It skips the
// test when node/cmd/georaftd does not exist yet, and fails it when it exists but does not
// build.
func Binary(t testing.TB) string {
	t.Helper()
	src := filepath.Join(RepoRoot(), "node", "cmd", "georaftd")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("integration test skipped: %s does not exist yet (the node is not in this checkout)", src)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "georaftd-build-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "georaftd")
		cmd := exec.Command("go", "build", "-o", buildPath, "./node/cmd/georaftd")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./node/cmd/georaftd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Node is one member of a test cluster.
type Node struct {
	ID         uint64
	Region     string
	ConfigPath string
	ClientAddr string
	PeerAddr   string
	LogPath    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a set of georaftd processes on loopback.
type Cluster struct {
	t     testing.TB
	bin   string
	Dir   string
	Nodes []*Node
	// CertDir holds ca.crt, node-N.crt/key and client-admin.crt/key when TLS is on.
	CertDir string

	connMu sync.Mutex
	conns  map[uint64]*grpc.ClientConn
}

// Options shape a test cluster.
type Options struct {
	// Size is the number of members (default 3).
	Size int
	// Start lists the node ids to start; nil starts every node.
	Start []uint64
	// Timing overrides lines of the timing section, e.g. {"lease_duration": "400ms"}.
	Timing map[string]string
	// TLS turns on TLS: `georaftd certs` makes a CA, node certificates and a client
	// certificate "admin" in CertDir.
	TLS bool
}

// freePorts reserves n loopback ports by binding them all at once, then releases them.
func freePorts(t testing.TB, n int) []string {
	t.Helper()
	var listeners []net.Listener
	var addrs []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve a port: %v", err)
		}
		listeners = append(listeners, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range listeners {
		l.Close()
	}
	return addrs
}

// Start writes the configs of a cluster and starts the nodes opts.Start names.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Size == 0 {
		opts.Size = 3
	}
	c := &Cluster{t: t, bin: Binary(t), Dir: t.TempDir(), conns: map[uint64]*grpc.ClientConn{}}
	ports := freePorts(t, 2*opts.Size)
	for i := 0; i < opts.Size; i++ {
		c.Nodes = append(c.Nodes, &Node{ID: uint64(i + 1), Region: regions[i%len(regions)],
			PeerAddr: ports[2*i], ClientAddr: ports[2*i+1],
			ConfigPath: filepath.Join(c.Dir, fmt.Sprintf("node%d.yaml", i+1)),
			LogPath:    filepath.Join(c.Dir, fmt.Sprintf("node%d.log", i+1))})
	}
	if opts.TLS {
		c.makeCerts()
	}
	for _, n := range c.Nodes {
		if err := os.WriteFile(n.ConfigPath, []byte(c.config(n, opts.Timing)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.cleanup)
	start := opts.Start
	if start == nil {
		for _, n := range c.Nodes {
			start = append(start, n.ID)
		}
	}
	for _, id := range start {
		c.StartNode(id)
	}
	return c
}

func (c *Cluster) config(n *Node, timing map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster_id: georaft-client-test\nnode:\n  id: %d\n  region: %s\n  data_dir: %s\n",
		n.ID, n.Region, filepath.Join(c.Dir, fmt.Sprintf("data%d", n.ID)))
	fmt.Fprintf(&b, "listen:\n  peer: %s\n  client: %s\n  metrics: \"\"\npeers:\n", n.PeerAddr, n.ClientAddr)
	for _, p := range c.Nodes {
		fmt.Fprintf(&b, "  - id: %d\n    region: %s\n    peer_address: %s\n    client_address: %s\n", p.ID, p.Region, p.PeerAddr, p.ClientAddr)
	}
	// Timings a little looser than the defaults: the test machine is small and shared.
	t := map[string]string{"heartbeat_interval": "50ms", "election_timeout_min": "600ms",
		"election_timeout_max": "1200ms", "lease_duration": "400ms"}
	for k, v := range timing {
		t[k] = v
	}
	b.WriteString("timing:\n")
	for _, k := range []string{"heartbeat_interval", "election_timeout_min", "election_timeout_max", "lease_duration"} {
		fmt.Fprintf(&b, "  %s: %s\n", k, t[k])
		delete(t, k)
	}
	for k, v := range t {
		fmt.Fprintf(&b, "  %s: %s\n", k, v)
	}
	b.WriteString("log:\n  level: info\n")
	if c.CertDir != "" {
		fmt.Fprintf(&b, "tls:\n  enabled: true\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n",
			filepath.Join(c.CertDir, "ca.crt"), filepath.Join(c.CertDir, fmt.Sprintf("node-%d.crt", n.ID)),
			filepath.Join(c.CertDir, fmt.Sprintf("node-%d.key", n.ID)))
	}
	return b.String()
}

func (c *Cluster) makeCerts() {
	c.CertDir = filepath.Join(c.Dir, "certs")
	args := []string{"certs", "--out", c.CertDir, "--client", "admin"}
	for _, n := range c.Nodes {
		args = append(args, "--node", fmt.Sprintf("%d=127.0.0.1,localhost", n.ID))
	}
	if out, err := exec.Command(c.bin, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("georaftd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Node returns member id.
func (c *Cluster) Node(id uint64) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	c.t.Fatalf("no node %d in the test cluster", id)
	return nil
}

// ClientAddrs lists every member's client address, in id order.
func (c *Cluster) ClientAddrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.ClientAddr)
	}
	return out
}

// NodeIDs maps every member's client address to its id.
func (c *Cluster) NodeIDs() map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range c.Nodes {
		out[n.ClientAddr] = n.ID
	}
	return out
}

// ConfigPaths lists the members' config files.
func (c *Cluster) ConfigPaths() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.ConfigPath)
	}
	return out
}

// StartNode starts member id's process.
func (c *Cluster) StartNode(id uint64) {
	c.t.Helper()
	n := c.Node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		c.t.Fatalf("node %d is already running", id)
	}
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "--config", n.ConfigPath)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("start node %d: %v", id, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	n.cmd, n.done = cmd, done
}

// StopNode kills member id and waits for its process to end.
func (c *Cluster) StopNode(id uint64) {
	n := c.Node(id)
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd, n.done = nil, nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Running reports whether member id's process is alive.
func (c *Cluster) Running(id uint64) bool {
	n := c.Node(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (c *Cluster) cleanup() {
	for _, n := range c.Nodes {
		c.StopNode(n.ID)
	}
	c.connMu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.connMu.Unlock()
	if c.t.Failed() {
		for _, n := range c.Nodes {
			data, err := os.ReadFile(n.LogPath)
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			c.t.Logf("last lines of node %d's log:\n%s", n.ID, strings.Join(lines, "\n"))
		}
	}
}

// KV returns a KVService client connected straight to member id (no proxy, no retries).
func (c *Cluster) KV(id uint64) georaftv1.KVServiceClient {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	conn, ok := c.conns[id]
	if !ok {
		creds := insecure.NewCredentials()
		if c.CertDir != "" {
			tlsCfg, err := tlsutil.ClientConfig(filepath.Join(c.CertDir, "ca.crt"), "", "", "")
			if err != nil {
				c.t.Fatal(err)
			}
			creds = credentials.NewTLS(tlsCfg)
		}
		var err error
		conn, err = grpc.NewClient(c.Node(id).ClientAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			c.t.Fatal(err)
		}
		c.conns[id] = conn
	}
	return georaftv1.NewKVServiceClient(conn)
}

// Status asks member id for its status, within a second.
func (c *Cluster) Status(id uint64) (*georaftv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.KV(id).Status(ctx, &georaftv1.StatusRequest{})
}

// WaitLeader polls the running members until one of them leads with its lease held and
// every running member names it, or the timeout passes. It returns the leader's id.
func (c *Cluster) WaitLeader(timeout time.Duration) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		leader, ok, why := c.agreedLeader()
		if ok {
			return leader
		}
		last = why
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no leader with a lease within %v: %s", timeout, last)
	return 0
}

func (c *Cluster) agreedLeader() (uint64, bool, string) {
	var leader uint64
	leaseHeld := false
	for _, n := range c.Nodes {
		if !c.Running(n.ID) {
			continue
		}
		st, err := c.Status(n.ID)
		if err != nil {
			return 0, false, fmt.Sprintf("node %d: %v", n.ID, err)
		}
		if st.GetLeaderId() == 0 {
			return 0, false, fmt.Sprintf("node %d knows no leader (term %d, role %s)", n.ID, st.GetTerm(), st.GetRole())
		}
		if leader != 0 && st.GetLeaderId() != leader {
			return 0, false, fmt.Sprintf("nodes name leaders %d and %d", leader, st.GetLeaderId())
		}
		leader = st.GetLeaderId()
		if st.GetId() == leader && st.GetRole() == georaftv1.Role_ROLE_LEADER && st.GetLeaseState() == georaftv1.LeaseState_LEASE_STATE_HELD {
			leaseHeld = true
		}
	}
	if leader == 0 {
		return 0, false, "no node running"
	}
	if !leaseHeld {
		return 0, false, fmt.Sprintf("leader %d does not hold its lease yet", leader)
	}
	return leader, true, ""
}

// WaitFor polls cond every 20ms until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
