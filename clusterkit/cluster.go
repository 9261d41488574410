package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/node/config"
)

// Files the kit keeps in a node's data dir, beside what georaftd writes there itself.
const (
	NodePIDFile = "georaftd.pid"
	NodeLogFile = "georaftd.log"
)

// Options say how the kit runs a cluster's processes and links.
type Options struct {
	// Georaftd is the node binary; relative to WorkDir unless absolute.
	Georaftd string
	// WorkDir is where the nodes run, and what relative data dirs resolve against
	// (default: the working directory).
	WorkDir string
	// Detached nodes outlive this process and are stopped by their PID files, perhaps by
	// another process (the lab's local-up and local-down); attached ones die with it.
	Detached bool
	// Model delays the links (none when zero).
	Model LinkModel
	// ServeLinks runs the configs' links in this process (Open; New always does when its
	// configs have links). Without it the links are someone else's (a ProxyProcess).
	ServeLinks bool
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Cluster is a set of georaftd processes described by one config directory, the links
// between them, and direct connections to each node for the kit's own status calls, which
// no link fault touches.
type Cluster struct {
	ConfigDir string
	WorkDir   string
	Binary    string
	// Nodes in id order.
	Nodes []*Node
	// Links is client-links.yaml: where a client in a region reaches each node.
	Links client.RegionLinks
	// Plan is every link of the configs; Proxies runs them when they run in this process.
	Plan    ProxyPlan
	Proxies *Proxies
	// CertDir holds the CA, the nodes' certificates and client-admin.{crt,key} when New
	// made a TLS cluster.
	CertDir string

	opts Options
	log  io.Writer
	// spec is how New made the cluster, for AddNode; nil for Open.
	spec *Spec

	mu      sync.Mutex
	conns   map[uint64]*grpc.ClientConn
	crashes []string
}

// Node is one member.
type Node struct {
	ID     uint64
	Region string
	// Config is the node's config as node/config reads it from ConfigPath.
	Config     *config.Config
	ConfigPath string
	DataPath   string
	// LogPath receives the node's stdout and stderr, every start appended.
	LogPath string
	PIDPath string
	// Env is added to the node's environment from its next start on (a clock rate).
	Env []string

	c  *Cluster
	mu sync.Mutex
	// proc is the process this Cluster started (or found by its PID file).
	proc *Process
	// crashed is how the last process exited when nobody asked it to; "" otherwise.
	crashed string
}

// ClientAddr is the node's own client listener.
func (n *Node) ClientAddr() string { return n.Config.Listen.Client }

// MetricsAddr is the node's /metrics listener ("" when off).
func (n *Node) MetricsAddr() string { return n.Config.Listen.Metrics }

// Tail is the end of the node's log.
func (n *Node) Tail(lines int) string { return Tail(n.LogPath, lines) }

// New writes the configs of spec into dir/configs (data dirs under dir/data unless
// spec.DataRoot says otherwise, certificates under dir/certs with spec.TLS), opens them and
// starts the links in this process. No node is started.
func New(dir string, spec Spec, opts Options) (*Cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir %s: %w", dir, err)
	}
	spec.fill()
	if spec.DataRoot == "" {
		spec.DataRoot = filepath.Join(abs, "data")
	}
	certDir := ""
	if spec.TLS {
		certDir = filepath.Join(abs, "certs")
		spec.Configure = withTLS(certDir, spec.Configure)
	}
	cfgs, links, err := spec.Configs()
	if err != nil {
		return nil, err
	}
	if spec.TLS {
		if err := issueCerts(certDir, cfgs); err != nil {
			return nil, err
		}
	}
	configDir := filepath.Join(abs, "configs")
	if err := WriteConfigs(configDir, spec.Header, cfgs, links); err != nil {
		return nil, err
	}
	if opts.WorkDir == "" {
		opts.WorkDir = abs
	}
	opts.ServeLinks = true
	c, err := Open(configDir, opts)
	if err != nil {
		return nil, err
	}
	c.spec, c.CertDir = &spec, certDir
	return c, nil
}

// Open loads a config directory (nodeN.yaml, and client-links.yaml if there is one) and
// plans its links; with opts.ServeLinks it starts them. No node is started: a detached
// cluster started earlier is found again by its PID files.
func Open(configDir string, opts Options) (*Cluster, error) {
	workDir := opts.WorkDir
	if workDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		workDir = wd
	}
	workDir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fmt.Errorf("working directory %s: %w", opts.WorkDir, err)
	}
	if !filepath.IsAbs(configDir) {
		configDir = filepath.Join(workDir, configDir)
	}
	cfgs, paths, links, err := LoadConfigs(configDir)
	if err != nil {
		return nil, err
	}
	binary := opts.Georaftd
	if binary != "" && !filepath.IsAbs(binary) {
		binary = filepath.Join(workDir, binary)
	}
	c := &Cluster{ConfigDir: configDir, WorkDir: workDir, Binary: binary, Links: links, opts: opts, log: opts.Log,
		conns: map[uint64]*grpc.ClientConn{}}
	if c.log == nil {
		c.log = io.Discard
	}
	for i, cfg := range cfgs {
		c.Nodes = append(c.Nodes, c.newNode(cfg, paths[i]))
	}
	if c.Plan, err = PlanLinks(cfgs, links, opts.Model); err != nil {
		return nil, err
	}
	if opts.ServeLinks && len(c.Plan.Links) > 0 {
		if c.Proxies, err = StartProxies(c.Plan, c.logFile("toxiproxy.log")); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Cluster) newNode(cfg *config.Config, path string) *Node {
	data := cfg.Node.DataDir
	if !filepath.IsAbs(data) {
		data = filepath.Join(c.WorkDir, data)
	}
	return &Node{ID: cfg.Node.ID, Region: cfg.Node.Region, Config: cfg, ConfigPath: path, DataPath: data,
		LogPath: filepath.Join(data, NodeLogFile), PIDPath: filepath.Join(data, NodePIDFile), c: c}
}

// logFile opens a log of the cluster's own (links) beside its configs; io.Discard if it
// cannot.
func (c *Cluster) logFile(name string) io.Writer {
	f, err := os.OpenFile(filepath.Join(filepath.Dir(c.ConfigDir), name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return io.Discard
	}
	return f
}

// Logf writes a progress line to the cluster's log (Options.Log).
func (c *Cluster) Logf(format string, args ...any) { fmt.Fprintf(c.log, format+"\n", args...) }

// Node is member id, or nil.
func (c *Cluster) Node(id uint64) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

func (c *Cluster) node(id uint64) (*Node, error) {
	if n := c.Node(id); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("no node %d in the cluster (it has %v)", id, c.IDs())
}

// NodeIn is the first member in region, or nil.
func (c *Cluster) NodeIn(region string) *Node {
	for _, n := range c.Nodes {
		if n.Region == region {
			return n
		}
	}
	return nil
}

// Regions maps each member to its region.
func (c *Cluster) Regions() map[uint64]string {
	m := map[uint64]string{}
	for _, n := range c.Nodes {
		m[n.ID] = n.Region
	}
	return m
}

// IDs lists the members' ids in order.
func (c *Cluster) IDs() []uint64 {
	ids := make([]uint64, len(c.Nodes))
	for i, n := range c.Nodes {
		ids[i] = n.ID
	}
	return ids
}

// ClientAddrs lists the nodes' own client listeners, in id order.
func (c *Cluster) ClientAddrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.ClientAddr()
	}
	return out
}

// ConfigPaths lists the nodes' config files, in id order.
func (c *Cluster) ConfigPaths() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.ConfigPath
	}
	return out
}

// ListenAddresses is every address the nodes bind.
func (c *Cluster) ListenAddresses() []NamedAddress {
	var out []NamedAddress
	for _, n := range c.Nodes {
		out = append(out, listenAddresses(n.Config)...)
	}
	return out
}

// process is the node's process if it runs: the one this Cluster started, or a detached
// one its PID file names.
func (n *Node) process() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && n.proc.Running() {
		return n.proc
	}
	if p, ok := FindProcess(n.PIDPath, GeoraftdWithConfig(n.ConfigPath)); ok {
		n.proc = p
		return p
	}
	return nil
}

// Running reports whether the node's process is up (a paused one is).
func (n *Node) Running() bool { return n.process() != nil }

// Serving reports whether the node's process is up and not paused.
func (n *Node) Serving() bool {
	p := n.process()
	return p != nil && !p.Paused()
}

// PID is the running process's id.
func (n *Node) PID() (int, bool) {
	if p := n.process(); p != nil {
		return p.PID(), true
	}
	return 0, false
}

// exitedUnasked says how the node's process ended if it exited on its own and has not been
// started again: an attached one that crashed, or a detached one whose PID file names a
// process that is gone.
func (n *Node) exitedUnasked() (string, bool) {
	if n.Running() {
		return "", false
	}
	n.mu.Lock()
	crashed := n.crashed
	n.mu.Unlock()
	if crashed != "" {
		return crashed, true
	}
	if pid, ok, err := ReadPIDFile(n.PIDPath); err == nil && ok && !ProcessAlive(pid) {
		return fmt.Sprintf("pid %d is gone", pid), true
	}
	return "", false
}

// StartNode starts member id (with its Env); it fails if the node runs already.
func (c *Cluster) StartNode(id uint64) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if c.Binary == "" {
		return errors.New("start node: no georaftd binary given")
	}
	if n.Running() {
		pid, _ := n.PID()
		return fmt.Errorf("node %d is already running (pid %d, pid file %s): stop it first", id, pid, n.PIDPath)
	}
	if err := os.MkdirAll(n.DataPath, 0o755); err != nil {
		return fmt.Errorf("create data dir of node %d: %w", id, err)
	}
	env := nodeEnv(n.Env)
	p, err := StartProcess(ProcessSpec{
		Name: fmt.Sprintf("node %d", id), Binary: c.Binary, Args: []string{"--config", n.ConfigPath}, Dir: c.WorkDir,
		Env: env, LogFile: n.LogPath, PIDFile: n.PIDPath, Detached: c.opts.Detached,
		Matches: GeoraftdWithConfig(n.ConfigPath),
		OnExit: func(state *os.ProcessState, expected bool) {
			if expected {
				return
			}
			if state.Success() && removedFromCluster(n.DataPath) {
				c.Logf("node %d exited: it was removed from the cluster", id)
				return
			}
			n.mu.Lock()
			n.crashed = state.String()
			n.mu.Unlock()
			c.noteCrash(n, state.String())
		},
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc, n.crashed = p, ""
	n.mu.Unlock()
	c.Logf("started node %d (%s) pid %d, log %s", id, n.Region, p.PID(), c.rel(n.LogPath))
	return nil
}

// nodeEnv is this process's environment without GEORAFT_ variables (which would override
// the node's config file), plus extra.
func nodeEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEORAFT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// removedFromCluster reports whether the member.json in dataDir says its member applied its
// own removal (georaftd then exits 0: not a crash).
func removedFromCluster(dataDir string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "member.json"))
	if err != nil {
		return false
	}
	var ident struct {
		Removed bool `json:"removed"`
	}
	return json.Unmarshal(b, &ident) == nil && ident.Removed
}

func (c *Cluster) noteCrash(n *Node, state string) {
	msg := fmt.Sprintf("node %d exited without being asked to (%s); end of its log:\n%s", n.ID, state, n.Tail(15))
	c.mu.Lock()
	c.crashes = append(c.crashes, msg)
	c.mu.Unlock()
	c.Logf("CRASH: %s", msg)
}

// Crashes lists every exit of a node that nobody asked for, with the end of its log.
func (c *Cluster) Crashes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.crashes...)
}

func (c *Cluster) rel(path string) string {
	if r, err := filepath.Rel(c.WorkDir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// CheckNotRunning fails if a PID file names a live georaftd of this cluster.
func (c *Cluster) CheckNotRunning() error {
	var errs []error
	for _, n := range c.Nodes {
		if pid, ok := n.PID(); ok {
			errs = append(errs, fmt.Errorf("node %d is already running (pid %d, pid file %s): stop it first", n.ID, pid, n.PIDPath))
		}
	}
	return errors.Join(errs...)
}

// Start starts every node. It fails before starting anything if a node runs already or
// one of the nodes' ports is taken; if a later start fails it stops those it started.
func (c *Cluster) Start(ctx context.Context) error {
	if info, err := os.Stat(c.Binary); c.Binary == "" || err != nil || info.IsDir() {
		return fmt.Errorf("start cluster: georaftd binary %q not found (run `make build`)", c.Binary)
	}
	if err := c.CheckNotRunning(); err != nil {
		return err
	}
	if err := CheckPortsFree(c.ListenAddresses()); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := c.StartNode(n.ID); err != nil {
			return errors.Join(err, c.Stop(context.Background()))
		}
	}
	return nil
}

// Kill sends SIGKILL to member id and waits until it is gone.
func (c *Cluster) Kill(id uint64) error {
	return c.withProcess(id, func(p *Process) error { return p.Kill(10 * time.Second) })
}

// Terminate stops member id gracefully (SIGTERM: a leader hands leadership over first),
// and kills it after grace.
func (c *Cluster) Terminate(id uint64, grace time.Duration) error {
	return c.withProcess(id, func(p *Process) error { return p.Terminate(grace) })
}

// Pause stops member id with SIGSTOP; Resume continues it.
func (c *Cluster) Pause(id uint64) error {
	return c.withProcess(id, func(p *Process) error { return p.Pause() })
}

func (c *Cluster) Resume(id uint64) error {
	return c.withProcess(id, func(p *Process) error { return p.Resume() })
}

// Restart kills member id and starts it again.
func (c *Cluster) Restart(id uint64) error {
	if err := c.Kill(id); err != nil {
		return err
	}
	return c.StartNode(id)
}

func (c *Cluster) withProcess(id uint64, f func(*Process) error) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	p := n.process()
	if p == nil {
		return fmt.Errorf("node %d is not running", id)
	}
	return f(p)
}

// StopGrace is how long a node has to exit on SIGTERM before SIGKILL.
const StopGrace = 10 * time.Second

// Stop stops every node gracefully and in parallel, detached ones by their PID files
// (only while the PID still runs that node's config), and reports what it did to the log.
func (c *Cluster) Stop(ctx context.Context) error {
	type result struct {
		id      uint64
		outcome StopOutcome
		pid     int
		err     error
	}
	results := make(chan result, len(c.Nodes))
	for _, n := range c.Nodes {
		go func() {
			n.mu.Lock()
			p := n.proc
			n.mu.Unlock()
			if p != nil && !p.spec.Detached && p.Running() {
				// Waited for here, so its exit is not taken for a crash.
				results <- result{n.ID, Terminated, p.PID(), p.Terminate(StopGrace)}
				return
			}
			outcome, pid, err := StopByPIDFile(ctx, n.PIDPath, GeoraftdWithConfig(n.ConfigPath), StopGrace)
			results <- result{n.ID, outcome, pid, err}
		}()
	}
	var all []result
	for range c.Nodes {
		all = append(all, <-results)
	}
	sort.Slice(all, func(a, b int) bool { return all[a].id < all[b].id })
	var errs []error
	for _, r := range all {
		switch {
		case r.err != nil:
			errs = append(errs, fmt.Errorf("stop node %d: %w", r.id, r.err))
		case r.outcome == NoPIDFile:
			c.Logf("node %d: not running (no pid file)", r.id)
		default:
			c.Logf("node %d: pid %d %s", r.id, r.pid, r.outcome)
		}
	}
	return errors.Join(errs...)
}

// Close kills the attached nodes (nothing needs a graceful stop any more), stops the links
// running in this process and closes the status connections. Detached nodes go on.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		n.mu.Lock()
		p := n.proc
		n.mu.Unlock()
		if p != nil && !p.spec.Detached && p.Running() {
			wg.Add(1)
			go func() { defer wg.Done(); _ = p.Kill(10 * time.Second) }()
		}
	}
	wg.Wait()
	if c.Proxies != nil {
		c.Proxies.Close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = map[uint64]*grpc.ClientConn{}
}

// RunningPIDs lists the live processes of the nodes, for checks that nothing is left.
func (c *Cluster) RunningPIDs() []int {
	var pids []int
	for _, n := range c.Nodes {
		if pid, ok := n.PID(); ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Serving lists the nodes that run and are not paused.
func (c *Cluster) Serving() []uint64 {
	var out []uint64
	for _, n := range c.Nodes {
		if n.Serving() {
			out = append(out, n.ID)
		}
	}
	return out
}

// dataDirEntry reports whether name is something georaftd or the kit writes in a data
// dir; ResetData removes nothing else.
func dataDirEntry(name string) bool {
	switch name {
	case "wal", "snap", "state", "LOCK", "member.json", "member.json.tmp", NodePIDFile, NodeLogFile, NodePIDFile + ".tmp":
		return true
	}
	return strings.HasPrefix(name, "dump.txt") || strings.HasPrefix(name, "fsync-probe-")
}

// ResetData empties every node's data dir so the cluster starts from term 0 with an empty
// log. It refuses while a node runs, and refuses a dir holding anything a node would not
// have written there (naming it), so a config pointing data_dir somewhere unexpected never
// costs data.
func (c *Cluster) ResetData() error {
	if err := c.CheckNotRunning(); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		entries, err := os.ReadDir(n.DataPath)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reset data of node %d: %w", n.ID, err)
		}
		for _, e := range entries {
			if !dataDirEntry(e.Name()) {
				return fmt.Errorf("reset data of node %d: %s holds %s, which georaftd does not write; remove the data dir by hand", n.ID, n.DataPath, e.Name())
			}
		}
		if err := os.RemoveAll(n.DataPath); err != nil {
			return fmt.Errorf("reset data of node %d: %w", n.ID, err)
		}
	}
	return nil
}
