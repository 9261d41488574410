package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
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
	// OnCrash is called when an attached node exits without the kit asking it to.
	OnCrash func(n *Node, state string)
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

func (c *Cluster) noteCrash(n *Node, state string) {
	msg := fmt.Sprintf("node %d exited without being asked to (%s); end of its log:\n%s", n.ID, state, n.Tail(15))
	c.mu.Lock()
	c.crashes = append(c.crashes, msg)
	c.mu.Unlock()
	c.Logf("CRASH: %s", msg)
	if c.opts.OnCrash != nil {
		c.opts.OnCrash(n, state)
	}
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
	case "wal", "snap", NodePIDFile, NodeLogFile, NodePIDFile + ".tmp":
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

// clientTLS is the TLS configuration a client of the cluster needs, nil without TLS: the
// CA of the nodes' configs, and the admin certificate when the kit issued one.
func (c *Cluster) clientTLS() (*config.TLSConfig, bool) {
	for _, n := range c.Nodes {
		if n.Config.TLS.Enabled {
			t := n.Config.TLS
			t.CertFile, t.KeyFile = "", ""
			if c.CertDir != "" {
				f := tlsutil.ClusterFileNames(c.CertDir, nil, []string{adminClient}).Clients[adminClient]
				t.CertFile, t.KeyFile = f.Cert, f.Key
			}
			return &t, true
		}
	}
	return nil, false
}

// KV is a KVService client connected straight to member id's own listener (no link, no
// retries), for status calls and tests.
func (c *Cluster) KV(id uint64) (georaftv1.KVServiceClient, error) {
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, ok := c.conns[id]
	if !ok {
		creds := insecure.NewCredentials()
		if t, ok := c.clientTLS(); ok {
			tlsCfg, err := tlsutil.ClientConfig(t.CAFile, t.CertFile, t.KeyFile, "")
			if err != nil {
				return nil, err
			}
			creds = credentials.NewTLS(tlsCfg)
		}
		if conn, err = grpc.NewClient(n.ClientAddr(), grpc.WithTransportCredentials(creds)); err != nil {
			return nil, fmt.Errorf("dial node %d at %s: %w", id, n.ClientAddr(), err)
		}
		c.conns[id] = conn
	}
	return georaftv1.NewKVServiceClient(conn), nil
}

// Status asks member id for its status, within timeout.
func (c *Cluster) Status(ctx context.Context, id uint64, timeout time.Duration) (*georaftv1.StatusResponse, error) {
	kv, err := c.KV(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return kv.Status(ctx, &georaftv1.StatusRequest{})
}

// Statuses asks every serving node for its status in parallel, each within timeout, with
// the state hash when withHash. Nodes that do not answer are in errs instead.
func (c *Cluster) Statuses(ctx context.Context, timeout time.Duration, withHash bool) (map[uint64]*georaftv1.StatusResponse, map[uint64]error) {
	var mu sync.Mutex
	out, errs := map[uint64]*georaftv1.StatusResponse{}, map[uint64]error{}
	var wg sync.WaitGroup
	for _, id := range c.Serving() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kv, err := c.KV(id)
			var st *georaftv1.StatusResponse
			if err == nil {
				callCtx, cancel := context.WithTimeout(ctx, timeout)
				st, err = kv.Status(callCtx, &georaftv1.StatusRequest{IncludeStateHash: withHash})
				cancel()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
			} else {
				out[id] = st
			}
		}()
	}
	wg.Wait()
	return out, errs
}

// Want says what WaitLeader waits for.
type Want struct {
	// All: every serving node answers and names the leader. Without it, a majority of the
	// members naming the leader in its term is enough.
	All bool
	// Lease: the leader holds its lease.
	Lease bool
}

// Leader is a leader the cluster agrees on, with the statuses that show it.
type Leader struct {
	ID, Term uint64
	Statuses map[uint64]*georaftv1.StatusResponse
}

// agreedLeader finds a leader a majority of size names in its term.
func agreedLeader(statuses map[uint64]*georaftv1.StatusResponse, size int) (uint64, uint64, bool) {
	for _, id := range sortedIDs(statuses) {
		st := statuses[id]
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

// AgreedLeader finds a leader that a majority of a cluster of size names in its term.
func AgreedLeader(statuses map[uint64]*georaftv1.StatusResponse, size int) (id, term uint64, ok bool) {
	return agreedLeader(statuses, size)
}

// checkLeader polls once; the error says what is missing.
func (c *Cluster) checkLeader(ctx context.Context, want Want) (Leader, error) {
	statuses, errs := c.Statuses(ctx, time.Second, false)
	id, term, ok := agreedLeader(statuses, len(c.Nodes))
	switch {
	case !ok:
		return Leader{}, c.describe("no leader a majority agrees on", statuses, errs)
	case want.All && len(errs) > 0:
		return Leader{}, c.describe(fmt.Sprintf("leader %d (term %d), but not every node answers", id, term), statuses, errs)
	case want.Lease && statuses[id].GetLeaseState() != georaftv1.LeaseState_LEASE_STATE_HELD:
		return Leader{}, c.describe(fmt.Sprintf("leader %d (term %d) does not hold its lease yet", id, term), statuses, errs)
	}
	if want.All {
		for nid, st := range statuses {
			if st.GetLeaderId() != id {
				return Leader{}, c.describe(fmt.Sprintf("node %d names leader %d, not %d", nid, st.GetLeaderId(), id), statuses, errs)
			}
		}
	}
	return Leader{ID: id, Term: term, Statuses: statuses}, nil
}

// describe is summary and each node's last answer.
func (c *Cluster) describe(summary string, statuses map[uint64]*georaftv1.StatusResponse, errs map[uint64]error) error {
	var b strings.Builder
	b.WriteString(summary)
	for _, n := range c.Nodes {
		switch st, err := statuses[n.ID], errs[n.ID]; {
		case st != nil:
			fmt.Fprintf(&b, "\n  node %d: %s, term %d, leader %d, lease %s", n.ID, strings.TrimPrefix(st.GetRole().String(), "ROLE_"),
				st.GetTerm(), st.GetLeaderId(), strings.TrimPrefix(st.GetLeaseState().String(), "LEASE_STATE_"))
		case err != nil:
			fmt.Fprintf(&b, "\n  node %d: status at %s failed: %s", n.ID, n.ClientAddr(), client.DescribeRPCError(err))
		case n.Running():
			fmt.Fprintf(&b, "\n  node %d: paused", n.ID)
		default:
			fmt.Fprintf(&b, "\n  node %d: not running", n.ID)
		}
	}
	return errors.New(b.String())
}

// WaitLeader polls until a leader is agreed on as want says, or timeout passes. It gives
// up at once when a node has exited on its own. Its error names each node's last answer,
// and ends with the log of the nodes that exited or did not answer.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration, want Want) (Leader, error) {
	var leader Leader
	err := WaitFor(ctx, timeout, "a leader", func() error {
		var err error
		if leader, err = c.checkLeader(ctx, want); err == nil {
			return nil
		}
		var dead []string
		for _, n := range c.Nodes {
			if how, ok := n.exitedUnasked(); ok {
				dead = append(dead, fmt.Sprintf("node %d (%s)", n.ID, how))
			}
		}
		if len(dead) > 0 {
			return Stop(fmt.Errorf("%s exited before a leader was agreed on: %w", strings.Join(dead, ", "), err))
		}
		return err
	})
	if err != nil {
		return Leader{}, c.withTails(err)
	}
	return leader, nil
}

// withTails appends the end of the log of each node that is down or does not answer.
func (c *Cluster) withTails(err error) error {
	var b strings.Builder
	b.WriteString(err.Error())
	for _, n := range c.Nodes {
		if _, dead := n.exitedUnasked(); dead || !n.Serving() || strings.Contains(err.Error(), fmt.Sprintf("node %d: status", n.ID)) {
			fmt.Fprintf(&b, "\n--- tail of %s ---\n%s", c.rel(n.LogPath), n.Tail(20))
		}
	}
	return errors.New(b.String())
}

// Up starts every node and waits for a leader; if none comes it stops the nodes again and
// says why (their logs stay in their data dirs).
func (c *Cluster) Up(ctx context.Context, timeout time.Duration, want Want) (Leader, error) {
	if err := c.Start(ctx); err != nil {
		return Leader{}, err
	}
	leader, err := c.WaitLeader(ctx, timeout, want)
	if err != nil {
		return Leader{}, errors.Join(err, c.Stop(context.Background()))
	}
	c.Logf("leader: node %d (%s), term %d", leader.ID, c.Node(leader.ID).Region, leader.Term)
	return leader, nil
}

// PinLeader makes member target the leader and waits until it holds its lease: it asks
// the current leader to hand leadership over (again every few seconds if that has not
// happened) and polls until target leads with its lease held.
func (c *Cluster) PinLeader(ctx context.Context, target uint64, timeout time.Duration) (Leader, error) {
	if _, err := c.node(target); err != nil {
		return Leader{}, fmt.Errorf("pin leader: %w", err)
	}
	const retransfer = 3 * time.Second
	var lastAsk time.Time
	var lastTransferErr error
	var leader Leader
	err := WaitFor(ctx, timeout, fmt.Sprintf("node %d to lead with its lease held", target), func() error {
		statuses, errs := c.Statuses(ctx, time.Second, false)
		if st := statuses[target]; st.GetRole() == georaftv1.Role_ROLE_LEADER && st.GetLeaseState() == georaftv1.LeaseState_LEASE_STATE_HELD {
			leader = Leader{ID: target, Term: st.GetTerm(), Statuses: statuses}
			return nil
		}
		if id, _, ok := agreedLeader(statuses, len(c.Nodes)); ok && id != target && time.Since(lastAsk) > retransfer {
			lastAsk = time.Now()
			if kv, err := c.KV(id); err == nil {
				callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, lastTransferErr = kv.TransferLeader(callCtx, &georaftv1.TransferLeaderRequest{TargetId: target})
				cancel()
				if lastTransferErr == nil {
					c.Logf("asked node %d to hand leadership to node %d", id, target)
				}
			}
		}
		summary := "not yet"
		if lastTransferErr != nil {
			summary = fmt.Sprintf("last transfer request: %s", client.DescribeRPCError(lastTransferErr))
		}
		return c.describe(summary, statuses, errs)
	})
	if err != nil {
		return Leader{}, c.withTails(err)
	}
	return leader, nil
}

// ClientOptions are the client options to reach the cluster from region through its client
// links, or straight at each node's own listener when region is "": endpoints, their node
// ids, the region and TLS.
func (c *Cluster) ClientOptions(region string) (client.Options, error) {
	var eps []client.Endpoint
	if region != "" {
		var err error
		if eps, err = c.Links.Endpoints(region); err != nil {
			return client.Options{}, err
		}
	} else {
		for _, n := range c.Nodes {
			eps = append(eps, client.Endpoint{Address: n.ClientAddr(), NodeID: n.ID})
		}
	}
	opts := client.OptionsFor(client.Options{Region: region}, eps)
	if t, ok := c.clientTLS(); ok {
		tlsCfg, err := tlsutil.ClientConfig(t.CAFile, t.CertFile, t.KeyFile, "")
		if err != nil {
			return client.Options{}, err
		}
		opts.TLS = tlsCfg
	}
	return opts, nil
}

// AddNode adds a member to a cluster New made, in region: the next id, its ports, its
// config listing every member and itself, its links to and from every member (and the
// client links) running, its certificate with TLS. It is not started, and the other
// members' config files are not changed: a membership change tells them, or
// RewriteConfigs for clusters restarted into the new membership. DialAddr says where each
// member reaches it.
func (c *Cluster) AddNode(region string) (*Node, error) {
	if c.spec == nil {
		return nil, errors.New("add node: only a cluster made by New can grow (its spec places the new node)")
	}
	id := uint64(1)
	members := map[uint64]string{}
	for _, n := range c.Nodes {
		id = max(id, n.ID+1)
		members[n.ID] = n.Region
	}
	members[id] = region
	cfg, err := c.spec.nodeConfig(id, members)
	if err != nil {
		return nil, err
	}
	if c.spec.TLS {
		if err := issueNodeCert(c.CertDir, id); err != nil {
			return nil, err
		}
	}
	path := filepath.Join(c.ConfigDir, NodeFileName(id))
	if err := writeConfig(path, strings.Join(c.spec.Header, "\n"), cfg); err != nil {
		return nil, err
	}
	if cfg, err = config.LoadFile(path); err != nil {
		return nil, fmt.Errorf("read back %s: %w", path, err)
	}
	n := c.newNode(cfg, path)
	c.Nodes = append(c.Nodes, n)
	links, err := c.spec.clientLinks(members)
	if err != nil {
		return nil, err
	}
	if links != nil {
		c.Links = links
		if err := WriteConfigs(c.ConfigDir, c.spec.Header, nil, links); err != nil {
			return nil, err
		}
	}
	if !c.spec.Proxied && c.Links == nil {
		return n, nil
	}
	// The new links: every member to the new node and back, and every client region to it.
	cfgs := make([]*config.Config, 0, len(c.Nodes))
	for _, m := range c.Nodes {
		mc := *m.Config
		if m.ID != id {
			p, _ := c.spec.nodeConfig(m.ID, members)
			mc.Peers = p.Peers
		}
		cfgs = append(cfgs, &mc)
	}
	plan, err := PlanLinks(cfgs, c.Links, c.opts.Model)
	if err != nil {
		return nil, err
	}
	var fresh []Link
	for _, l := range plan.Links {
		if l.ToNode == id || l.FromNode == id {
			fresh = append(fresh, l)
		}
	}
	c.Plan.Links = append(c.Plan.Links, fresh...)
	if c.Proxies != nil {
		if err := c.Proxies.Add(fresh...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// DialAddr is where member from reaches node n: through the link from→n when peer links
// are proxied, else n's own peer listener.
func (n *Node) DialAddr(from uint64) string {
	for _, l := range n.c.Plan.Links {
		if l.Kind == PeerLink && l.FromNode == from && l.ToNode == n.ID {
			return l.Listen
		}
	}
	return n.Config.Listen.Peer
}

// RemoveNode kills member id if it runs, stops its links and forgets it; its data dir
// and config file stay.
func (c *Cluster) RemoveNode(id uint64) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if p := n.process(); p != nil {
		if err := p.Kill(10 * time.Second); err != nil {
			return err
		}
	}
	if c.Proxies != nil {
		c.Proxies.Remove(id)
	}
	c.Nodes = slices.DeleteFunc(c.Nodes, func(m *Node) bool { return m.ID == id })
	c.mu.Lock()
	if conn, ok := c.conns[id]; ok {
		conn.Close()
		delete(c.conns, id)
	}
	c.mu.Unlock()
	return nil
}

// RewriteConfigs writes every member's config again with today's members as its peers (a
// cluster New made), for nodes restarted into a changed membership.
func (c *Cluster) RewriteConfigs() error {
	if c.spec == nil {
		return errors.New("rewrite configs: only for a cluster made by New")
	}
	members := map[uint64]string{}
	for _, n := range c.Nodes {
		members[n.ID] = n.Region
	}
	for _, n := range c.Nodes {
		cfg, err := c.spec.nodeConfig(n.ID, members)
		if err != nil {
			return err
		}
		if err := writeConfig(n.ConfigPath, strings.Join(c.spec.Header, "\n"), cfg); err != nil {
			return err
		}
		if n.Config, err = config.LoadFile(n.ConfigPath); err != nil {
			return fmt.Errorf("read back %s: %w", n.ConfigPath, err)
		}
	}
	return nil
}

// launchAttempts bounds Launch's tries on fresh ports.
const launchAttempts = 3

// Launch makes a cluster of spec in dir (New), starts every node and waits until a leader
// is agreed on as want says. With free ports (spec.Ports nil or a *FreePorts), another
// program may take one between choosing it and the node binding it: when a port is found
// taken or a node exits while the cluster starts, it tries again on fresh ports, up to
// three times, replacing the directory's configs and data. On failure nothing it started
// runs any more.
func Launch(ctx context.Context, dir string, spec Spec, opts Options, want Want, timeout time.Duration) (*Cluster, Leader, error) {
	var errs []error
	for attempt := 1; attempt <= launchAttempts; attempt++ {
		s := spec
		_, free := spec.Ports.(*FreePorts)
		free = free || spec.Ports == nil
		if spec.Ports == nil || attempt > 1 {
			s.Ports = &FreePorts{}
		}
		c, err := New(dir, s, opts)
		if err != nil {
			return nil, Leader{}, err
		}
		leader, err := c.Up(ctx, timeout, want)
		if err == nil {
			return c, leader, nil
		}
		c.Close()
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		if !free || (len(c.Crashes()) == 0 && !errors.Is(err, ErrPortTaken)) || ctx.Err() != nil {
			break
		}
		c.Logf("%v; trying again on fresh ports", err)
		for _, sub := range []string{"configs", "data", "certs"} {
			if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
				return nil, Leader{}, fmt.Errorf("clean %s before another start: %w", sub, err)
			}
		}
	}
	return nil, Leader{}, errors.Join(errs...)
}
