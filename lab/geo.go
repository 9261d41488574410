package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/geo"
)

// Files of the proxy process in a geo run dir.
const (
	ProxyPlanFile   = "proxy-plan.json"
	ProxyPIDFile    = "proxies.pid"
	ProxyReadyFile  = "proxies.ready"
	ProxyStdoutFile = "proxies.stdout"
	ProxyStderrFile = "proxies.stderr"
)

// GeoOptions locate and shape the emulated cluster.
type GeoOptions struct {
	ClusterOptions
	// LinksFile is the client-link map (default ConfigDir/client-links.yaml).
	LinksFile string
	// MatrixFile is the RTT matrix CSV.
	MatrixFile string
	Scale      float64
	// IntraRegionRTT, Jitter and Compensation: see LinkModel.
	IntraRegionRTT time.Duration
	Jitter         time.Duration
	Compensation   time.Duration
	// RunDir holds the proxy plan, the proxy process's PID file and logs.
	RunDir string
	// LabBinary runs `proxy-serve` (default: this executable, which must be georaft-lab).
	LabBinary     string
	LeaderTimeout time.Duration
	// Fresh empties the nodes' data dirs before starting (see Cluster.ResetData), so every
	// run starts from the same state.
	Fresh bool
}

// DefaultGeoOptions are the paths and settings `make geo-up` uses.
func DefaultGeoOptions() GeoOptions {
	return GeoOptions{
		ClusterOptions: ClusterOptions{ConfigDir: "configs/geo", Georaftd: "bin/georaftd"},
		MatrixFile:     "configs/geo/rtt-5-regions.csv",
		Scale:          1,
		IntraRegionRTT: DefaultIntraRegionRTT,
		Compensation:   DefaultCompensation,
		RunDir:         "lab-run/geo",
		LeaderTimeout:  60 * time.Second,
	}
}

// Geo is an emulated cluster: its nodes, links and the model behind them.
type Geo struct {
	Cluster *Cluster
	Model   LinkModel
	Links   client.RegionLinks
	Plan    ProxyPlan
	RunDir  string
	Leader  LeaderInfo
}

// OpenGeo loads the configs, client links and matrix and plans the links, starting nothing.
func OpenGeo(opts GeoOptions) (*Geo, error) {
	cluster, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		return nil, err
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cluster.WorkDir, p)
	}
	linksFile := abs(opts.LinksFile)
	if linksFile == "" {
		linksFile = filepath.Join(abs(opts.ConfigDir), ClientLinksFile)
	}
	links, err := client.LoadRegionLinks(linksFile)
	if err != nil {
		return nil, err
	}
	if opts.MatrixFile == "" {
		return nil, errors.New("geo: no RTT matrix file given")
	}
	matrix, err := geo.LoadCSV(abs(opts.MatrixFile))
	if err != nil {
		return nil, err
	}
	if opts.Scale < 0 {
		return nil, fmt.Errorf("geo: scale %v: want a positive factor", opts.Scale)
	}
	if opts.IntraRegionRTT < 0 || opts.Jitter < 0 || opts.Compensation < 0 {
		return nil, fmt.Errorf("geo: intra-region RTT %v, jitter %v, compensation %v: none may be negative", opts.IntraRegionRTT, opts.Jitter, opts.Compensation)
	}
	model := LinkModel{Matrix: matrix, Scale: opts.Scale, IntraRegionRTT: opts.IntraRegionRTT, Jitter: opts.Jitter, Compensation: opts.Compensation}
	plan, err := PlanLinks(cluster.Nodes, links, model)
	if err != nil {
		return nil, err
	}
	runDir := abs(opts.RunDir)
	if runDir == "" {
		return nil, errors.New("geo: no run dir given")
	}
	return &Geo{Cluster: cluster, Model: model, Links: links, Plan: plan, RunDir: runDir}, nil
}

func (g *Geo) planPath() string  { return filepath.Join(g.RunDir, ProxyPlanFile) }
func (g *Geo) proxyPID() string  { return filepath.Join(g.RunDir, ProxyPIDFile) }
func (g *Geo) readyPath() string { return filepath.Join(g.RunDir, ProxyReadyFile) }

// GeoUp starts the proxies and the nodes and waits for a leader. On any failure it stops
// whatever it started.
func GeoUp(ctx context.Context, opts GeoOptions) (*Geo, error) {
	g, err := OpenGeo(opts)
	if err != nil {
		return nil, err
	}
	if opts.Fresh {
		if err := g.Cluster.ResetData(); err != nil {
			return nil, err
		}
	}
	if err := g.Start(ctx, opts.LabBinary); err != nil {
		return nil, err
	}
	timeout := opts.LeaderTimeout
	if timeout <= 0 {
		timeout = DefaultGeoOptions().LeaderTimeout
	}
	info, err := g.Cluster.WaitLeader(ctx, timeout)
	if err != nil {
		return nil, errors.Join(err, g.Stop(context.Background()))
	}
	g.Leader = info
	fmt.Fprintf(g.Cluster.Out, "leader: node %d (%s), term %d\n", info.ID, g.region(info.ID), info.Term)
	return g, nil
}

func (g *Geo) region(id uint64) string {
	n, _ := g.Cluster.Node(id)
	return n.Region
}

// Start launches the proxy process, waits until its links listen, then launches the nodes.
func (g *Geo) Start(ctx context.Context, labBinary string) error {
	if labBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find georaft-lab for proxy-serve: %w", err)
		}
		labBinary = exe
	}
	if filepath.Base(labBinary) != "georaft-lab" {
		return fmt.Errorf("proxy-serve must run from a binary named georaft-lab (so geo-down can recognise it), got %s", labBinary)
	}
	if err := g.checkProxyNotRunning(); err != nil {
		return err
	}
	if err := g.Cluster.CheckNotRunning(); err != nil {
		return err
	}
	// Every port of the run, proxies and nodes, is checked before anything starts.
	if err := CheckPortsFree(append(g.Plan.ListenAddresses(), g.Cluster.ListenAddresses()...)); err != nil {
		return err
	}
	if err := os.MkdirAll(g.RunDir, 0o755); err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	if err := WritePlan(g.planPath(), g.Plan); err != nil {
		return err
	}
	if err := os.Remove(g.readyPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale ready file: %w", err)
	}
	pid, err := StartDetached(ProcessSpec{
		Name:       "proxies",
		Binary:     labBinary,
		Args:       []string{"proxy-serve", "--plan", g.planPath(), "--ready", g.readyPath()},
		Dir:        g.Cluster.WorkDir,
		PIDFile:    g.proxyPID(),
		StdoutFile: filepath.Join(g.RunDir, ProxyStdoutFile),
		StderrFile: filepath.Join(g.RunDir, ProxyStderrFile),
	})
	if err != nil {
		return err
	}
	if err := g.waitProxiesReady(ctx, pid, 15*time.Second); err != nil {
		return errors.Join(err, g.stopProxies(context.Background()))
	}
	fmt.Fprintf(g.Cluster.Out, "proxies: %d links up (pid %d); %s\n", len(g.Plan.Links), pid, g.Model.OvershootNote())
	if err := g.Cluster.Start(ctx); err != nil {
		return errors.Join(err, g.stopProxies(context.Background()))
	}
	return nil
}

func (g *Geo) waitProxiesReady(ctx context.Context, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	stderr := filepath.Join(g.RunDir, ProxyStderrFile)
	for {
		if raw, err := os.ReadFile(g.readyPath()); err == nil && strings.TrimSpace(string(raw)) == strconv.Itoa(pid) {
			return nil
		}
		if !ProcessAlive(pid) {
			return fmt.Errorf("proxy process (pid %d) exited before its links were up\n--- tail of %s ---\n%s", pid, stderr, tailFile(stderr, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proxy process (pid %d) did not report its links up within %s\n--- tail of %s ---\n%s", pid, timeout, stderr, tailFile(stderr, 20))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the proxies: %w", ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *Geo) checkProxyNotRunning() error {
	pid, ok, err := ReadPIDFile(g.proxyPID())
	if err != nil || !ok || !ProcessAlive(pid) {
		return err
	}
	if argv, err := ProcessArgs(pid); err == nil && LabProxyServe(g.planPath())(argv) {
		return fmt.Errorf("the proxies of this geo cluster are already running (pid %d, pid file %s): run `make geo-down` first", pid, g.proxyPID())
	}
	return nil
}

func (g *Geo) stopProxies(ctx context.Context) error {
	outcome, pid, err := StopByPIDFile(ctx, g.proxyPID(), LabProxyServe(g.planPath()), StopGrace)
	if err != nil {
		return fmt.Errorf("stop proxies: %w", err)
	}
	if outcome == NoPIDFile {
		fmt.Fprintf(g.Cluster.Out, "proxies: not running (no pid file)\n")
	} else {
		fmt.Fprintf(g.Cluster.Out, "proxies: pid %d %s\n", pid, outcome)
	}
	return nil
}

// Stop stops the nodes, then the proxies.
func (g *Geo) Stop(ctx context.Context) error {
	return errors.Join(g.Cluster.Stop(ctx), g.stopProxies(ctx))
}

// GeoDown stops a geo cluster started with the same options, by its PID files. It needs
// only the configs and run dir, so it works even if the matrix file has gone.
func GeoDown(ctx context.Context, opts GeoOptions) error {
	cluster, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		return err
	}
	runDir := opts.RunDir
	if !filepath.IsAbs(runDir) {
		runDir = filepath.Join(cluster.WorkDir, runDir)
	}
	g := &Geo{Cluster: cluster, RunDir: runDir}
	return g.Stop(ctx)
}

// RunningPIDs lists the live processes of this geo cluster: nodes and the proxy process.
func (g *Geo) RunningPIDs() []int {
	pids := g.Cluster.RunningPIDs()
	if pid, ok, err := ReadPIDFile(g.proxyPID()); err == nil && ok && ProcessAlive(pid) {
		if argv, err := ProcessArgs(pid); err == nil && LabProxyServe(g.planPath())(argv) {
			pids = append(pids, pid)
		}
	}
	return pids
}
