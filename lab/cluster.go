package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Files a node's process leaves in its data dir, beside what georaftd writes there itself.
const (
	NodePIDFile    = "georaftd.pid"
	NodeStdoutFile = "georaftd.stdout"
	NodeStderrFile = "georaftd.stderr"
)

// Cluster is a set of georaftd processes described by one config directory.
type Cluster struct {
	Nodes []NodeConfig
	// Binary is georaftd, absolute.
	Binary string
	// WorkDir is where georaftd runs, and what relative data dirs are relative to.
	WorkDir string
	Out     io.Writer
}

// ClusterOptions locate a cluster's configs and binary.
type ClusterOptions struct {
	ConfigDir string
	// Georaftd is the node binary (bin/georaftd from the repo root).
	Georaftd string
	// WorkDir defaults to the current directory.
	WorkDir string
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

// OpenCluster loads a config directory.
func OpenCluster(opts ClusterOptions) (*Cluster, error) {
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
	configDir := opts.ConfigDir
	if !filepath.IsAbs(configDir) {
		configDir = filepath.Join(workDir, configDir)
	}
	nodes, err := LoadClusterConfigs(configDir, workDir)
	if err != nil {
		return nil, err
	}
	binary := opts.Georaftd
	if binary != "" && !filepath.IsAbs(binary) {
		binary = filepath.Join(workDir, binary)
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	return &Cluster{Nodes: nodes, Binary: binary, WorkDir: workDir, Out: out}, nil
}

func (c *Cluster) pidFile(n NodeConfig) string { return filepath.Join(n.DataPath, NodePIDFile) }
func (c *Cluster) stderrFile(n NodeConfig) string {
	return filepath.Join(n.DataPath, NodeStderrFile)
}

// Node returns the config of node id.
func (c *Cluster) Node(id uint64) (NodeConfig, bool) {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return NodeConfig{}, false
}

// ListenAddresses is every address the cluster's nodes bind.
func (c *Cluster) ListenAddresses() []NamedAddress {
	var out []NamedAddress
	for _, n := range c.Nodes {
		out = append(out, n.ListenAddresses()...)
	}
	return out
}

// CheckNotRunning fails if a PID file names a live georaftd of this cluster.
func (c *Cluster) CheckNotRunning() error {
	var errs []error
	for _, n := range c.Nodes {
		pid, ok, err := ReadPIDFile(c.pidFile(n))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok || !ProcessAlive(pid) {
			continue
		}
		if argv, err := ProcessArgs(pid); err == nil && GeoraftdWithConfig(n.Path)(argv) {
			errs = append(errs, fmt.Errorf("node %d is already running (pid %d, pid file %s): stop it first", n.ID, pid, c.pidFile(n)))
		}
	}
	return errors.Join(errs...)
}

// Start launches every node, detached. It fails before starting anything if a node is
// already running or one of the cluster's ports is taken; if a later start fails it stops
// the nodes it had started.
func (c *Cluster) Start(ctx context.Context) error {
	if c.Binary == "" {
		return errors.New("start cluster: no georaftd binary given")
	}
	if info, err := os.Stat(c.Binary); err != nil || info.IsDir() {
		return fmt.Errorf("start cluster: georaftd binary %s not found (run `make build`): %v", c.Binary, err)
	}
	if err := c.CheckNotRunning(); err != nil {
		return err
	}
	if err := CheckPortsFree(c.ListenAddresses()); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := os.MkdirAll(n.DataPath, 0o755); err != nil {
			return fmt.Errorf("create data dir of node %d: %w", n.ID, err)
		}
		pid, err := StartDetached(ProcessSpec{
			Name:       fmt.Sprintf("node %d", n.ID),
			Binary:     c.Binary,
			Args:       []string{"--config", n.Path},
			Dir:        c.WorkDir,
			PIDFile:    c.pidFile(n),
			StdoutFile: filepath.Join(n.DataPath, NodeStdoutFile),
			StderrFile: c.stderrFile(n),
		})
		if err != nil {
			_ = c.Stop(context.Background())
			return err
		}
		fmt.Fprintf(c.Out, "started node %d (%s) pid %d, logs in %s\n", n.ID, n.Region, pid, c.rel(n.DataPath))
	}
	return nil
}

func (c *Cluster) rel(path string) string {
	if r, err := filepath.Rel(c.WorkDir, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// StopGrace is how long a node has to exit on SIGTERM before SIGKILL.
const StopGrace = 10 * time.Second

// Stop stops every node this cluster's PID files name, after checking each PID is still a
// georaftd running with that node's config. Nodes stop in parallel.
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
			outcome, pid, err := StopByPIDFile(ctx, c.pidFile(n), GeoraftdWithConfig(n.Path), StopGrace)
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
		if r.err != nil {
			errs = append(errs, fmt.Errorf("stop node %d: %w", r.id, r.err))
			continue
		}
		if r.outcome == NoPIDFile {
			fmt.Fprintf(c.Out, "node %d: not running (no pid file)\n", r.id)
		} else {
			fmt.Fprintf(c.Out, "node %d: pid %d %s\n", r.id, r.pid, r.outcome)
		}
	}
	return errors.Join(errs...)
}

// RunningPIDs returns the PIDs of nodes whose PID file names a live georaftd of this
// cluster, for checks that nothing is left behind.
func (c *Cluster) RunningPIDs() []int {
	var pids []int
	for _, n := range c.Nodes {
		if pid, ok := LivePID(c.pidFile(n), GeoraftdWithConfig(n.Path)); ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Clients dials every node's client listener directly (no proxy) for status polling.
type Clients struct {
	conns map[uint64]*grpc.ClientConn
	kv    map[uint64]georaftv1.KVServiceClient
}

// Dial returns a client per node at the address given by addr (the node's own listener
// when addr is nil).
func (c *Cluster) Dial(addr func(NodeConfig) string) (*Clients, error) {
	cl := &Clients{conns: map[uint64]*grpc.ClientConn{}, kv: map[uint64]georaftv1.KVServiceClient{}}
	for _, n := range c.Nodes {
		target := n.Listen.Client
		if addr != nil {
			target = addr(n)
		}
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			cl.Close()
			return nil, fmt.Errorf("dial node %d at %s: %w", n.ID, target, err)
		}
		cl.conns[n.ID] = conn
		cl.kv[n.ID] = georaftv1.NewKVServiceClient(conn)
	}
	return cl, nil
}

// KV is node id's KVService client.
func (cl *Clients) KV(id uint64) georaftv1.KVServiceClient { return cl.kv[id] }

func (cl *Clients) Close() {
	for _, conn := range cl.conns {
		conn.Close()
	}
}

// LeaderInfo is a leader every node agrees on.
type LeaderInfo struct {
	ID       uint64
	Term     uint64
	Statuses map[uint64]*georaftv1.StatusResponse
}

// WaitLeader polls every node's Status until one is leader and a majority of nodes name it
// leader in its term, or ctx ends. On failure the error names each node's last answer, and
// if a node process exited, the tail of its stderr.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (LeaderInfo, error) {
	clients, err := c.Dial(nil)
	if err != nil {
		return LeaderInfo{}, err
	}
	defer clients.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lastErr := map[uint64]error{}
	for {
		statuses := map[uint64]*georaftv1.StatusResponse{}
		for _, n := range c.Nodes {
			callCtx, callCancel := context.WithTimeout(ctx, time.Second)
			st, err := clients.KV(n.ID).Status(callCtx, &georaftv1.StatusRequest{})
			callCancel()
			if err != nil {
				lastErr[n.ID] = err
				continue
			}
			delete(lastErr, n.ID)
			statuses[n.ID] = st
		}
		if info, ok := agreedLeader(statuses, len(c.Nodes)); ok {
			return info, nil
		}
		if dead := c.deadNodes(); len(dead) > 0 {
			return LeaderInfo{}, c.explain(fmt.Sprintf("node %v exited before a leader was elected", dead), statuses, lastErr, dead)
		}
		select {
		case <-ctx.Done():
			return LeaderInfo{}, c.explain(fmt.Sprintf("no leader elected within %s", timeout), statuses, lastErr, nil)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func agreedLeader(statuses map[uint64]*georaftv1.StatusResponse, clusterSize int) (LeaderInfo, bool) {
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
		if agree > clusterSize/2 {
			return LeaderInfo{ID: id, Term: st.GetTerm(), Statuses: statuses}, true
		}
	}
	return LeaderInfo{}, false
}

// deadNodes lists nodes whose PID file names a process that has exited.
func (c *Cluster) deadNodes() []uint64 {
	var dead []uint64
	for _, n := range c.Nodes {
		pid, ok, err := ReadPIDFile(c.pidFile(n))
		if err == nil && ok && !ProcessAlive(pid) {
			dead = append(dead, n.ID)
		}
	}
	return dead
}

func (c *Cluster) explain(summary string, statuses map[uint64]*georaftv1.StatusResponse, lastErr map[uint64]error, dead []uint64) error {
	var b strings.Builder
	b.WriteString(summary)
	for _, n := range c.Nodes {
		if st, ok := statuses[n.ID]; ok {
			fmt.Fprintf(&b, "\n  node %d: %s, term %d, leader %d, lease %s", n.ID, strings.TrimPrefix(st.GetRole().String(), "ROLE_"),
				st.GetTerm(), st.GetLeaderId(), strings.TrimPrefix(st.GetLeaseState().String(), "LEASE_STATE_"))
		} else if err := lastErr[n.ID]; err != nil {
			fmt.Fprintf(&b, "\n  node %d: status at %s failed: %v", n.ID, n.Listen.Client, err)
		}
	}
	// The stderr worth reading is a dead node's, else an unreachable one's.
	show := dead
	if len(show) == 0 {
		for _, n := range c.Nodes {
			if _, ok := statuses[n.ID]; !ok {
				show = append(show, n.ID)
			}
		}
	}
	for _, id := range show {
		n, _ := c.Node(id)
		fmt.Fprintf(&b, "\n--- tail of %s ---\n%s", c.rel(c.stderrFile(n)), tailFile(c.stderrFile(n), 20))
	}
	return errors.New(b.String())
}

// Up starts the cluster and waits for a leader; if no leader comes, it stops the nodes
// again and returns why (their logs stay in their data dirs).
func (c *Cluster) Up(ctx context.Context, leaderTimeout time.Duration) (LeaderInfo, error) {
	if err := c.Start(ctx); err != nil {
		return LeaderInfo{}, err
	}
	info, err := c.WaitLeader(ctx, leaderTimeout)
	if err != nil {
		if stopErr := c.Stop(context.Background()); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return LeaderInfo{}, err
	}
	fmt.Fprintf(c.Out, "leader: node %d (term %d)\n", info.ID, info.Term)
	return info, nil
}

// PinLeader makes node target the leader and waits until it holds its lease: it asks the
// current leader to transfer leadership (again every few seconds if it has not happened)
// and polls every node's Status until target reports itself leader with LEASE_STATE_HELD.
func (c *Cluster) PinLeader(ctx context.Context, target uint64, timeout time.Duration) (LeaderInfo, error) {
	if _, ok := c.Node(target); !ok {
		return LeaderInfo{}, fmt.Errorf("pin leader: node %d is not in the cluster", target)
	}
	clients, err := c.Dial(nil)
	if err != nil {
		return LeaderInfo{}, err
	}
	defer clients.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	const retransfer = 3 * time.Second
	var lastAsk time.Time
	var lastTransferErr error
	for {
		statuses := map[uint64]*georaftv1.StatusResponse{}
		lastErr := map[uint64]error{}
		for _, n := range c.Nodes {
			callCtx, callCancel := context.WithTimeout(ctx, time.Second)
			st, err := clients.KV(n.ID).Status(callCtx, &georaftv1.StatusRequest{})
			callCancel()
			if err != nil {
				lastErr[n.ID] = err
				continue
			}
			statuses[n.ID] = st
		}
		if st, ok := statuses[target]; ok && st.GetRole() == georaftv1.Role_ROLE_LEADER && st.GetLeaseState() == georaftv1.LeaseState_LEASE_STATE_HELD {
			return LeaderInfo{ID: target, Term: st.GetTerm(), Statuses: statuses}, nil
		}
		if info, ok := agreedLeader(statuses, len(c.Nodes)); ok && info.ID != target && time.Since(lastAsk) > retransfer {
			lastAsk = time.Now()
			callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
			_, lastTransferErr = clients.KV(info.ID).TransferLeader(callCtx, &georaftv1.TransferLeaderRequest{TargetId: target})
			callCancel()
			if lastTransferErr == nil {
				fmt.Fprintf(c.Out, "asked node %d to hand leadership to node %d\n", info.ID, target)
			}
		}
		select {
		case <-ctx.Done():
			summary := fmt.Sprintf("node %d did not become leader with a lease within %s", target, timeout)
			if lastTransferErr != nil {
				summary += fmt.Sprintf(" (last transfer request: %v)", lastTransferErr)
			}
			return LeaderInfo{}, c.explain(summary, statuses, lastErr, c.deadNodes())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dataDirEntry reports whether name is something a georaftd data dir holds, or the lab
// puts there; ResetData removes nothing else.
func dataDirEntry(name string) bool {
	switch name {
	case "wal", "snap", NodePIDFile, NodeStdoutFile, NodeStderrFile, NodePIDFile + ".tmp":
		return true
	}
	return strings.HasPrefix(name, "dump.txt") || strings.HasPrefix(name, "fsync-probe-")
}

// ResetData empties every node's data dir so a run starts from term 0 with an empty log.
// It refuses while a node runs, and refuses a dir holding anything a node would not have
// written there (naming it), so a config pointing data_dir somewhere unexpected never costs
// data.
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
