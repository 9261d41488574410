package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/georaft/georaft/clusterkit"
)

// ErrEtcdMissing is returned when the etcd binary is not on PATH.
var ErrEtcdMissing = errors.New("etcd not installed: run `apt-get install -y etcd-server etcd-client`")

// EtcdMember is one etcd process of a cluster.
type EtcdMember struct {
	Name   string
	Region string
	// DataDir is absolute; Start empties it (every run is a new cluster).
	DataDir string
	// Namespace is the network namespace the member runs in; "" is the root namespace.
	Namespace string
	// PeerURL and ClientURL are advertised. The harness dials ClientURL directly for status
	// and leader moves (from the root namespace, where no DNAT applies).
	PeerURL          string
	ClientURL        string
	ListenPeerURLs   []string
	ListenClientURLs []string
}

// ClientAddr is ClientURL's host:port, what the etcd client wants as an endpoint.
func (m EtcdMember) ClientAddr() string {
	u, err := url.Parse(m.ClientURL)
	if err != nil {
		return m.ClientURL
	}
	return u.Host
}

// EtcdCluster is a set of etcd processes started detached by the cluster kit, each with a
// PID file, so a later run stops what a killed run left behind.
type EtcdCluster struct {
	// Binary is the etcd executable (default: etcd on PATH).
	Binary  string
	Token   string
	Members []EtcdMember
	// RunDir holds each member's PID file and log (NAME.pid, NAME.log).
	RunDir string
	Out    io.Writer
	// StopFirst names the member Stop stops before the others (the pinned leader).
	StopFirst string
}

func (c *EtcdCluster) pidFile(m EtcdMember) string { return filepath.Join(c.RunDir, m.Name+".pid") }
func (c *EtcdCluster) logFile(m EtcdMember) string { return filepath.Join(c.RunDir, m.Name+".log") }

func (c *EtcdCluster) out() io.Writer {
	if c.Out == nil {
		return io.Discard
	}
	return c.Out
}

// InitialCluster is the --initial-cluster value: name=peerURL for every member.
func (c *EtcdCluster) InitialCluster() string {
	parts := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		parts = append(parts, m.Name+"="+m.PeerURL)
	}
	return strings.Join(parts, ",")
}

// Args is the member's etcd command line. Durability stays at etcd's default (every
// raft append and every backend commit fsynced); timing stays at its defaults too
// (heartbeat 100ms, election 1s), as an operator would run it.
func (c *EtcdCluster) Args(m EtcdMember) []string {
	return []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-peer-urls", strings.Join(m.ListenPeerURLs, ","),
		"--initial-advertise-peer-urls", m.PeerURL,
		"--listen-client-urls", strings.Join(m.ListenClientURLs, ","),
		"--advertise-client-urls", m.ClientURL,
		"--initial-cluster", c.InitialCluster(),
		"--initial-cluster-token", c.Token,
		"--initial-cluster-state", "new",
		"--logger", "zap",
		"--log-outputs", "stderr",
		"--log-level", "warn",
	}
}

// Command is what runs the member: etcd itself, or `ip netns exec NS etcd ...`, which
// execs etcd in place so the PID stays the member's.
func (c *EtcdCluster) Command(m EtcdMember) (string, []string) {
	if m.Namespace == "" {
		return c.Binary, c.Args(m)
	}
	return "ip", append([]string{"netns", "exec", m.Namespace, c.Binary}, c.Args(m)...)
}

// EtcdWithDataDir matches `etcd ... --data-dir DIR` for that DIR.
func EtcdWithDataDir(dir string) clusterkit.ArgvMatcher {
	return clusterkit.CommandWithFlag("etcd", "", "--data-dir", dir)
}

// LookupEtcd resolves the etcd binary, with the install hint when it is missing.
func LookupEtcd(binary string) (string, error) {
	if binary == "" {
		binary = "etcd"
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrEtcdMissing, err)
	}
	return path, nil
}

// Start stops leftovers of an earlier run (by PID file), empties every data dir and starts
// the members detached. If one fails to start, those started are stopped.
func (c *EtcdCluster) Start(ctx context.Context) error {
	bin, err := LookupEtcd(c.Binary)
	if err != nil {
		return err
	}
	c.Binary = bin
	if err := os.MkdirAll(c.RunDir, 0o755); err != nil {
		return fmt.Errorf("create etcd run dir: %w", err)
	}
	if err := c.Stop(ctx); err != nil {
		return fmt.Errorf("stop leftovers of an earlier run: %w", err)
	}
	for _, m := range c.Members {
		if !filepath.IsAbs(m.DataDir) {
			return fmt.Errorf("etcd member %s: data dir %q must be absolute", m.Name, m.DataDir)
		}
		if err := os.RemoveAll(m.DataDir); err != nil {
			return fmt.Errorf("etcd member %s: empty data dir: %w", m.Name, err)
		}
		if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
			return fmt.Errorf("etcd member %s: create data dir: %w", m.Name, err)
		}
	}
	for _, m := range c.Members {
		bin, args := c.Command(m)
		p, err := clusterkit.StartProcess(clusterkit.ProcessSpec{
			Name: "etcd member " + m.Name, Binary: bin, Args: args, Dir: c.RunDir,
			PIDFile: c.pidFile(m), LogFile: c.logFile(m), Detached: true,
		})
		if err != nil {
			return errors.Join(err, c.Stop(context.Background()))
		}
		where := "root namespace"
		if m.Namespace != "" {
			where = "namespace " + m.Namespace
		}
		fmt.Fprintf(c.out(), "started etcd %s (%s, %s) pid %d\n", m.Name, m.Region, where, p.PID())
	}
	return nil
}

// Stop stops every member its PID file names, if that PID is still etcd with the member's
// data dir: SIGTERM, SIGKILL after a grace period. StopFirst (the leader) goes alone first:
// it hands leadership to a live peer and exits at once, where stopped together with its
// peers it would wait out the grace period. The others stop in parallel.
func (c *EtcdCluster) Stop(ctx context.Context) error {
	stop := func(m EtcdMember) error {
		outcome, pid, err := clusterkit.StopByPIDFile(ctx, c.pidFile(m), EtcdWithDataDir(m.DataDir), 5*time.Second)
		if err != nil {
			return fmt.Errorf("stop etcd %s: %w", m.Name, err)
		}
		if outcome != clusterkit.NoPIDFile {
			fmt.Fprintf(c.out(), "etcd %s: pid %d %s\n", m.Name, pid, outcome)
		}
		return nil
	}
	var all []error
	rest := c.Members
	if first, ok := c.Member(c.StopFirst); ok {
		all = append(all, stop(first))
		rest = nil
		for _, m := range c.Members {
			if m.Name != first.Name {
				rest = append(rest, m)
			}
		}
	}
	errs := make(chan error, len(rest))
	for _, m := range rest {
		go func() { errs <- stop(m) }()
	}
	for range rest {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// PIDs are the live members' processes, for CPU accounting and profiles.
func (c *EtcdCluster) PIDs() map[string]int {
	pids := map[string]int{}
	for _, m := range c.Members {
		if pid, ok := clusterkit.LivePID(c.pidFile(m), EtcdWithDataDir(m.DataDir)); ok {
			pids[m.Name] = pid
		}
	}
	return pids
}

// Member returns the member called name.
func (c *EtcdCluster) Member(name string) (EtcdMember, bool) {
	for _, m := range c.Members {
		if m.Name == name {
			return m, true
		}
	}
	return EtcdMember{}, false
}

// EtcdState is what the members said about leadership.
type EtcdState struct {
	// Leader is the member every answering member names, "" if none is agreed on.
	Leader string
	Term   uint64
	// Answers maps each member to a one-line account of its status or error.
	Answers map[string]string
}

// etcdAdmin holds a direct client per member for status and leader moves.
type etcdAdmin struct {
	clients map[string]*clientv3.Client
	ids     map[uint64]string
	names   map[string]uint64
}

func (c *EtcdCluster) admin() (*etcdAdmin, error) {
	a := &etcdAdmin{clients: map[string]*clientv3.Client{}, ids: map[uint64]string{}, names: map[string]uint64{}}
	for _, m := range c.Members {
		cl, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientAddr()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			a.close()
			return nil, fmt.Errorf("etcd admin client for %s at %s: %w", m.Name, m.ClientAddr(), err)
		}
		a.clients[m.Name] = cl
	}
	return a, nil
}

func (a *etcdAdmin) close() {
	for _, cl := range a.clients {
		cl.Close()
	}
}

// state asks every member for its status once.
func (c *EtcdCluster) state(ctx context.Context, a *etcdAdmin) EtcdState {
	st := EtcdState{Answers: map[string]string{}}
	votes := map[uint64]int{}
	terms := map[uint64]uint64{}
	for _, m := range c.Members {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := a.clients[m.Name].Status(callCtx, m.ClientAddr())
		cancel()
		if err != nil {
			st.Answers[m.Name] = "status failed: " + err.Error()
			continue
		}
		a.ids[resp.Header.MemberId] = m.Name
		a.names[m.Name] = resp.Header.MemberId
		st.Answers[m.Name] = fmt.Sprintf("term %d, leader %x", resp.RaftTerm, resp.Leader)
		if resp.Leader != 0 {
			votes[resp.Leader]++
			terms[resp.Leader] = max(terms[resp.Leader], resp.RaftTerm)
		}
	}
	for leader, n := range votes {
		if name, ok := a.ids[leader]; ok && n > len(c.Members)/2 {
			st.Leader, st.Term = name, terms[leader]
		}
	}
	return st
}

func (c *EtcdCluster) explain(summary string, st EtcdState) error {
	var b strings.Builder
	b.WriteString(summary)
	for _, n := range slices.Sorted(maps.Keys(st.Answers)) {
		fmt.Fprintf(&b, "\n  etcd %s: %s", n, st.Answers[n])
	}
	for _, m := range c.Members {
		if pid, ok, _ := clusterkit.ReadPIDFile(c.pidFile(m)); ok && !clusterkit.ProcessAlive(pid) {
			fmt.Fprintf(&b, "\n--- etcd %s exited; tail of %s ---\n%s", m.Name, c.logFile(m), clusterkit.Tail(c.logFile(m), 15))
		}
	}
	return errors.New(b.String())
}

// WaitLeader polls the members until a majority agree on a leader, a member exits, or the
// timeout passes.
func (c *EtcdCluster) WaitLeader(ctx context.Context, timeout time.Duration) (EtcdState, error) {
	a, err := c.admin()
	if err != nil {
		return EtcdState{}, err
	}
	defer a.close()
	var st EtcdState
	err = clusterkit.WaitFor(ctx, timeout, "an etcd leader", func() error {
		if st = c.state(ctx, a); st.Leader != "" {
			return nil
		}
		if len(c.PIDs()) < len(c.Members) {
			return clusterkit.Stop(errors.New("an etcd member exited before a leader was elected"))
		}
		return errors.New("no leader agreed on")
	})
	if err != nil {
		return st, c.explain(err.Error(), st)
	}
	return st, nil
}

// PinLeader moves leadership to member target (the RPC `etcdctl move-leader` sends, to the
// current leader) and waits until a majority name target leader. It asks again every 3 s.
func (c *EtcdCluster) PinLeader(ctx context.Context, target string, timeout time.Duration) (EtcdState, error) {
	if _, ok := c.Member(target); !ok {
		return EtcdState{}, fmt.Errorf("pin etcd leader: no member %s", target)
	}
	a, err := c.admin()
	if err != nil {
		return EtcdState{}, err
	}
	defer a.close()
	var st EtcdState
	var lastAsk time.Time
	var lastErr error
	err = clusterkit.WaitFor(ctx, timeout, "etcd "+target+" to lead", func() error {
		if st = c.state(ctx, a); st.Leader == target {
			return nil
		}
		if st.Leader != "" && time.Since(lastAsk) > 3*time.Second {
			lastAsk = time.Now()
			callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
			_, lastErr = a.clients[st.Leader].MoveLeader(callCtx, a.names[target])
			callCancel()
			if lastErr == nil {
				fmt.Fprintf(c.out(), "asked etcd %s to hand leadership to %s\n", st.Leader, target)
			}
		}
		if lastErr != nil {
			return fmt.Errorf("last move-leader: %w", lastErr)
		}
		return fmt.Errorf("leader is %q", st.Leader)
	})
	if err != nil {
		return st, c.explain(err.Error(), st)
	}
	return st, nil
}

// State asks every member once who leads.
func (c *EtcdCluster) State(ctx context.Context) (EtcdState, error) {
	a, err := c.admin()
	if err != nil {
		return EtcdState{}, err
	}
	defer a.close()
	return c.state(ctx, a), nil
}
