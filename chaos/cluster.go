package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/lab"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// DefaultRegions names the five nodes' regions (node N in the Nth), as in the geo lab.
var DefaultRegions = lab.DefaultGeoRegions

// LANTiming is the timing of the chaos cluster on LAN-ish links: the lab's local timing
// with a drift bound wide enough that restarting nodes at 1 ± drift/2 skews their clocks
// measurably while staying inside the bound.
var LANTiming = lab.Timing{
	HeartbeatInterval:  50 * time.Millisecond,
	ElectionTimeoutMin: 500 * time.Millisecond,
	ElectionTimeoutMax: 1000 * time.Millisecond,
	LeaseDuration:      400 * time.Millisecond,
	MaxClockDrift:      0.05,
	MaxStaleness:       2 * time.Second,
}

// LAN link defaults: a round trip of a few milliseconds with a millisecond of jitter.
const (
	DefaultLANRTT    = 4 * time.Millisecond
	DefaultLANJitter = time.Millisecond
)

// ClusterOptions describe the cluster a run starts.
type ClusterOptions struct {
	// Georaftd is a georaftd binary built with -tags georaft_testhooks.
	Georaftd string
	// Dir holds configs, data dirs and node logs; it must exist.
	Dir string
	// Regions has one region per node (five by default).
	Regions []string
	// Model gives the links' delays; the zero value is LAN-ish (DefaultLANRTT).
	Model lab.LinkModel
	// Timing of every node; the zero value is LANTiming.
	Timing lab.Timing
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Cluster is a running chaos cluster: processes, their links, and direct (unproxied) status
// connections for the harness's own polling, which no fault touches.
type Cluster struct {
	Timing  lab.Timing
	Model   lab.LinkModel
	Regions []string
	Lab     *lab.Cluster
	Net     *Net
	Plan    lab.ProxyPlan

	// Fsync gathers the nodes' WAL fsync times over the run.
	Fsync FsyncStats

	nodes   map[uint64]*nodeProcess
	ids     []uint64
	control *lab.Clients
	log     io.Writer

	crashMu sync.Mutex
	crashes []string
}

// LANModel is a link model where every pair of regions is rtt apart.
func LANModel(regions []string, rtt, jitter time.Duration) (lab.LinkModel, error) {
	rows := make([][]time.Duration, len(regions))
	for i := range regions {
		rows[i] = make([]time.Duration, len(regions))
		for j := range regions {
			if i != j {
				rows[i][j] = rtt
			}
		}
	}
	m, err := geo.New(regions, rows, geo.DefaultTolerance)
	if err != nil {
		return lab.LinkModel{}, fmt.Errorf("lan matrix: %w", err)
	}
	return lab.LinkModel{Matrix: m, Scale: 1, IntraRegionRTT: rtt / 2, Jitter: jitter}, nil
}

// startAttempts bounds how often StartCluster tries again on fresh ports when a node dies
// while starting (another program took one of its ports between reservation and bind).
const startAttempts = 3

// StartCluster writes the configs, starts the links and the nodes, and waits until every
// node answers and a majority agrees on a leader.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	var errs []error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		c, err := startClusterOnce(ctx, opts)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		if !errors.Is(err, errNodeDiedStarting) || ctx.Err() != nil {
			break
		}
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "a node died while starting, trying again on fresh ports: %v\n", err)
		}
		for _, sub := range []string{"configs", "data"} {
			if err := os.RemoveAll(filepath.Join(opts.Dir, sub)); err != nil {
				return nil, fmt.Errorf("clean %s before another start: %w", sub, err)
			}
		}
	}
	return nil, fmt.Errorf("chaos cluster: %w", errors.Join(errs...))
}

var errNodeDiedStarting = errors.New("a node exited while the cluster was starting")

func startClusterOnce(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if len(opts.Regions) == 0 {
		opts.Regions = DefaultRegions
	}
	if opts.Timing == (lab.Timing{}) {
		opts.Timing = LANTiming
	}
	if opts.Model.Matrix.Len() == 0 {
		m, err := LANModel(opts.Regions, DefaultLANRTT, DefaultLANJitter)
		if err != nil {
			return nil, err
		}
		opts.Model = m
	}
	spec, err := chaosSpec(opts)
	if err != nil {
		return nil, err
	}
	configDir := filepath.Join(opts.Dir, "configs")
	if err := lab.WriteFiles(configDir, spec.Render()); err != nil {
		return nil, err
	}
	labCluster, err := lab.OpenCluster(lab.ClusterOptions{ConfigDir: configDir, Georaftd: opts.Georaftd, WorkDir: opts.Dir})
	if err != nil {
		return nil, fmt.Errorf("load generated configs: %w", err)
	}
	links, err := client.LoadRegionLinks(filepath.Join(configDir, lab.ClientLinksFile))
	if err != nil {
		return nil, err
	}
	plan, err := lab.PlanLinks(labCluster.Nodes, links, opts.Model)
	if err != nil {
		return nil, fmt.Errorf("plan links: %w", err)
	}
	if err := lab.CheckPortsFree(append(labCluster.ListenAddresses(), plan.ListenAddresses()...)); err != nil {
		return nil, err
	}
	proxyLog, err := os.Create(filepath.Join(opts.Dir, "toxiproxy.log"))
	if err != nil {
		return nil, fmt.Errorf("create proxy log: %w", err)
	}
	netw, err := StartNet(plan, proxyLog)
	if err != nil {
		proxyLog.Close()
		return nil, err
	}
	c := &Cluster{Timing: opts.Timing, Model: opts.Model, Regions: opts.Regions, Lab: labCluster, Net: netw, Plan: plan,
		nodes: map[uint64]*nodeProcess{}, log: opts.Log}
	for _, n := range labCluster.Nodes {
		p := &nodeProcess{cfg: n, binary: labCluster.Binary, workDir: opts.Dir, clockRate: 1,
			logPath: filepath.Join(opts.Dir, fmt.Sprintf("node%d.log", n.ID))}
		p.onCrash = c.noteCrash
		c.nodes[n.ID] = p
		c.ids = append(c.ids, n.ID)
	}
	sort.Slice(c.ids, func(a, b int) bool { return c.ids[a] < c.ids[b] })
	if c.control, err = labCluster.Dial(nil); err != nil {
		c.Close()
		return nil, err
	}
	for _, id := range c.ids {
		if err := c.nodes[id].start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	leader, term, err := c.waitAllUp(ctx, 30*time.Second)
	if err != nil {
		c.Close()
		return nil, err
	}
	fmt.Fprintf(c.log, "cluster up in %s: 5 georaftd processes, %d proxied links, leader node %d (term %d)\n",
		opts.Dir, len(plan.Links), leader, term)
	return c, nil
}

// waitAllUp waits until every node answers Status and a majority names one leader. A node
// that exits meanwhile fails it with errNodeDiedStarting and the end of that node's log.
func (c *Cluster) waitAllUp(ctx context.Context, timeout time.Duration) (uint64, uint64, error) {
	deadline := time.Now().Add(timeout)
	var last map[uint64]*georaftv1.StatusResponse
	for {
		if crashes := c.Crashes(); len(crashes) > 0 {
			return 0, 0, fmt.Errorf("%w: %s", errNodeDiedStarting, strings.Join(crashes, "; "))
		}
		last = c.Statuses(ctx, false, time.Second)
		if leader, term, ok := leaderOf(last, len(c.ids)); ok && len(last) == len(c.ids) {
			return leader, term, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, 0, fmt.Errorf("not every node up with an agreed leader within %s: %s", timeout, describeStatuses(c.ids, last))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// chaosSpec is a five-node cluster on free loopback ports: node i dials node j through the
// proxy of link i→j, and a client reaches node j through the proxy of client link →j.
func chaosSpec(opts ClusterOptions) (lab.ClusterSpec, error) {
	n := len(opts.Regions)
	addrs, err := freeAddresses(3*n + n*(n-1) + n)
	if err != nil {
		return lab.ClusterSpec{}, err
	}
	take := func() string { a := addrs[0]; addrs = addrs[1:]; return a }
	spec := lab.ClusterSpec{
		ClusterID:   "georaft-chaos",
		Header:      []string{"Generated by the chaos harness (package chaos) for one run; every link goes through toxiproxy."},
		Timing:      opts.Timing,
		ClientLinks: map[string]map[uint64]string{opts.Regions[0]: {}},
		RegionOrder: []string{opts.Regions[0]},
	}
	for i, region := range opts.Regions {
		id := uint64(i + 1)
		spec.Nodes = append(spec.Nodes, lab.NodeSpec{
			ID: id, Region: region,
			DataDir: filepath.Join(opts.Dir, fmt.Sprintf("data/node%d", id)),
			Listen:  lab.Listen{Peer: take(), Client: take(), Metrics: take()},
			Dial:    map[uint64]string{},
		})
	}
	for i := range spec.Nodes {
		from := &spec.Nodes[i]
		for _, to := range spec.Nodes {
			if to.ID == from.ID {
				from.Dial[to.ID] = to.Listen.Peer
			} else {
				from.Dial[to.ID] = take()
			}
		}
	}
	// The clients run in the first region: near node 1, as far from the others as the
	// model says.
	for _, node := range spec.Nodes {
		spec.ClientLinks[opts.Regions[0]][node.ID] = take()
	}
	return spec, nil
}

// freeAddresses holds n loopback ports open at once, so they are distinct, then releases
// them for the nodes and proxies to bind. The ports come from below the kernel's ephemeral
// range: a port handed out by ":0" is also what the kernel gives outgoing connections, and a
// node killed and restarted by a fault must find its port still free.
func freeAddresses(n int) ([]string, error) {
	low := ephemeralLow()
	span := min(12000, low-1024)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	var out []string
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n {
			return nil, fmt.Errorf("reserve %d loopback ports below %d: only %d free after %d tries", n, low, len(out), tries)
		}
		port := low - 1 - rng.IntN(span)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		listeners = append(listeners, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if unknown).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 2048 {
		return 32768
	}
	return low
}

// IDs lists the node ids in order.
func (c *Cluster) IDs() []uint64 { return append([]uint64(nil), c.ids...) }

// ClientEndpoints lists the client links (proxies) in node order, starting at node first,
// with the node id each reaches.
func (c *Cluster) ClientEndpoints(first uint64) ([]string, map[string]uint64) {
	var out []string
	ids := map[string]uint64{}
	start := 0
	for i, id := range c.ids {
		if id == first {
			start = i
		}
	}
	for k := range c.ids {
		id := c.ids[(start+k)%len(c.ids)]
		addr, _ := c.Net.ClientAddress(id)
		out = append(out, addr)
		ids[addr] = id
	}
	return out, ids
}

// Region of node id.
func (c *Cluster) Region(id uint64) string {
	if n, ok := c.Lab.Node(id); ok {
		return n.Region
	}
	return ""
}

func (c *Cluster) noteCrash(id uint64, state, tail string) {
	msg := fmt.Sprintf("node %d exited without being asked to (%s); end of its log:\n%s", id, state, tail)
	c.crashMu.Lock()
	c.crashes = append(c.crashes, msg)
	c.crashMu.Unlock()
	fmt.Fprintf(c.log, "CRASH: %s\n", msg)
}

// Crashes lists nodes that exited on their own.
func (c *Cluster) Crashes() []string {
	c.crashMu.Lock()
	defer c.crashMu.Unlock()
	return append([]string(nil), c.crashes...)
}

// Close stops every node (SIGKILL: nothing of the run needs a graceful stop any more) and
// every link.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, p := range c.nodes {
		if p.running() {
			wg.Add(1)
			go func() { defer wg.Done(); _ = p.kill() }()
		}
	}
	wg.Wait()
	if c.control != nil {
		c.control.Close()
	}
	c.Net.Close()
}

func (c *Cluster) node(id uint64) (*nodeProcess, error) {
	p, ok := c.nodes[id]
	if !ok {
		return nil, fmt.Errorf("no node %d in the chaos cluster", id)
	}
	return p, nil
}

// Kill sends SIGKILL to node id and waits for it to be gone. Its fsync histogram is
// scraped first, since it dies with the process.
func (c *Cluster) Kill(id uint64) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	c.scrapeFsync(context.Background(), id)
	return p.kill()
}

// killNow is Kill without the scrape, for callers that scraped already and time the kill.
func (c *Cluster) killNow(id uint64) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	return p.kill()
}

// Terminate stops node id gracefully (SIGTERM), SIGKILL after grace.
func (c *Cluster) Terminate(id uint64, grace time.Duration) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	c.scrapeFsync(context.Background(), id)
	return p.terminate(grace)
}

// Start starts node id if it is not running, with its current clock rate.
func (c *Cluster) Start(id uint64) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	if p.running() {
		return nil
	}
	return p.start()
}

// SetClockRate sets the clock rate node id gets from its next start on.
func (c *Cluster) SetClockRate(id uint64, rate float64) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.clockRate = rate
	p.mu.Unlock()
	return nil
}

// ClockRates is every node's current clock rate.
func (c *Cluster) ClockRates() map[uint64]float64 {
	out := map[uint64]float64{}
	for id, p := range c.nodes {
		p.mu.Lock()
		out[id] = p.clockRate
		p.mu.Unlock()
	}
	return out
}

// Pause stops node id with SIGSTOP; Resume continues it.
func (c *Cluster) Pause(id uint64) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	return p.pause()
}

func (c *Cluster) Resume(id uint64) error {
	p, err := c.node(id)
	if err != nil {
		return err
	}
	return p.resume()
}

// Serving lists the nodes that run and are not paused.
func (c *Cluster) Serving() []uint64 {
	var out []uint64
	for _, id := range c.ids {
		if c.nodes[id].serving() {
			out = append(out, id)
		}
	}
	return out
}

// HealAll resumes paused nodes, starts stopped ones and removes every link fault.
func (c *Cluster) HealAll() error {
	var errs []error
	for _, id := range c.ids {
		p := c.nodes[id]
		if p.running() {
			if err := p.resume(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := p.start(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Net.HealAll(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Statuses asks every serving node for its Status over the direct control connection, in
// parallel, each within timeout. Nodes that do not answer are missing from the map.
func (c *Cluster) Statuses(ctx context.Context, withHash bool, timeout time.Duration) map[uint64]*georaftv1.StatusResponse {
	var mu sync.Mutex
	out := map[uint64]*georaftv1.StatusResponse{}
	var wg sync.WaitGroup
	for _, id := range c.Serving() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			callCtx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := c.control.KV(id).Status(callCtx, &georaftv1.StatusRequest{IncludeStateHash: withHash})
			if err != nil {
				return
			}
			mu.Lock()
			out[id] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// Leader returns the node that a majority of the cluster names leader in its term, if any.
func (c *Cluster) Leader(ctx context.Context) (id, term uint64, ok bool) {
	statuses := c.Statuses(ctx, false, time.Second)
	return leaderOf(statuses, len(c.ids))
}

func leaderOf(statuses map[uint64]*georaftv1.StatusResponse, size int) (uint64, uint64, bool) {
	for id, st := range statuses {
		if st.GetRole() != georaftv1.Role_ROLE_LEADER {
			continue
		}
		agree := 0
		for _, other := range statuses {
			if other.GetLeaderId() == id && other.GetTerm() == st.GetTerm() {
				agree++
			}
		}
		if agree > size/2 {
			return id, st.GetTerm(), true
		}
	}
	return 0, 0, false
}

// WaitLeader polls until a majority agrees on a leader, or timeout passes.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (id, term uint64, err error) {
	deadline := time.Now().Add(timeout)
	for {
		if id, term, ok := c.Leader(ctx); ok {
			return id, term, nil
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("no leader agreed by a majority within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BuildGeoraftd builds georaftd with the test hooks (clock-rate skew) into dir and returns
// its path. The binary is named georaftd so lab's process matchers recognise it.
func BuildGeoraftd(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "georaftd")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "georaft_testhooks", "-o", out, "./node/cmd/georaftd")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags georaft_testhooks ./node/cmd/georaftd in %s: %w\n%s", root, err, msg)
	}
	return out, nil
}

// moduleRoot is the directory of the go.mod governing the current directory.
func moduleRoot(ctx context.Context) (string, error) {
	raw, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(raw))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the georaft module: run from the repository (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}
