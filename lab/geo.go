package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/geo"
)

// GeoOptions locate and shape the emulated cluster.
type GeoOptions struct {
	ClusterOptions
	// MatrixFile is the RTT matrix CSV.
	MatrixFile string
	Scale      float64
	// IntraRegionRTT, Jitter and Compensation: see clusterkit.LinkModel.
	IntraRegionRTT time.Duration
	Jitter         time.Duration
	Compensation   time.Duration
	// RunDir holds the proxy process's plan, PID file and log.
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
		IntraRegionRTT: clusterkit.DefaultIntraRegionRTT,
		Compensation:   clusterkit.DefaultCompensation,
		RunDir:         "lab-run/geo",
		LeaderTimeout:  60 * time.Second,
	}
}

// labBinaryName is what proxy-serve must run as, so geo-down recognises the process.
const labBinaryName = "georaft-lab"

// Geo is an emulated cluster: its nodes, and the process running its links.
type Geo struct {
	Cluster *clusterkit.Cluster
	Model   clusterkit.LinkModel
	Proxies *clusterkit.ProxyProcess
	Leader  clusterkit.Leader
}

// OpenGeo loads the configs, client links and matrix and plans the links, starting nothing.
func OpenGeo(opts GeoOptions) (*Geo, error) {
	wd := opts.WorkDir
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || wd == "" {
			return p
		}
		return filepath.Join(wd, p)
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
	model := clusterkit.LinkModel{Matrix: matrix, Scale: opts.Scale, IntraRegionRTT: opts.IntraRegionRTT, Jitter: opts.Jitter, Compensation: opts.Compensation}
	c, err := opts.Open(clusterkit.Options{Model: model})
	if err != nil {
		return nil, err
	}
	if c.Links == nil {
		return nil, fmt.Errorf("geo: %s has no %s", c.ConfigDir, clusterkit.ClientLinksFile)
	}
	return &Geo{Cluster: c, Model: model, Proxies: geoProxies(c, opts)}, nil
}

func geoProxies(c *clusterkit.Cluster, opts GeoOptions) *clusterkit.ProxyProcess {
	runDir := opts.RunDir
	if !filepath.IsAbs(runDir) {
		runDir = filepath.Join(c.WorkDir, runDir)
	}
	bin := opts.LabBinary
	if bin == "" {
		bin, _ = os.Executable()
	}
	return &clusterkit.ProxyProcess{Name: "proxies", Plan: c.Plan, Binary: bin, RunDir: runDir}
}

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
	if err := g.Start(ctx); err != nil {
		return nil, err
	}
	timeout := opts.LeaderTimeout
	if timeout <= 0 {
		timeout = DefaultGeoOptions().LeaderTimeout
	}
	if g.Leader, err = g.Cluster.WaitLeader(ctx, timeout, clusterkit.Want{}); err != nil {
		return nil, errors.Join(err, g.Stop(context.Background()))
	}
	g.Cluster.Logf("leader: node %d (%s), term %d", g.Leader.ID, g.Cluster.Node(g.Leader.ID).Region, g.Leader.Term)
	return g, nil
}

// Start launches the proxy process, waits until its links listen, then the nodes. Every
// port, proxies' and nodes', is checked free before anything starts.
func (g *Geo) Start(ctx context.Context) error {
	if filepath.Base(g.Proxies.Binary) != labBinaryName {
		return fmt.Errorf("proxy-serve must run from a binary named %s (so geo-down can recognise it), got %s", labBinaryName, g.Proxies.Binary)
	}
	if pid, ok := g.Proxies.PID(); ok {
		return fmt.Errorf("the proxies of this geo cluster are already running (pid %d): run `make geo-down` first", pid)
	}
	if err := g.Cluster.CheckNotRunning(); err != nil {
		return err
	}
	if err := clusterkit.CheckPortsFree(append(g.Cluster.Plan.ListenAddresses(), g.Cluster.ListenAddresses()...)); err != nil {
		return err
	}
	if err := g.Proxies.Start(ctx); err != nil {
		return err
	}
	pid, _ := g.Proxies.PID()
	g.Cluster.Logf("proxies: %d links up (pid %d); %s", len(g.Cluster.Plan.Links), pid, g.Model.OvershootNote())
	if err := g.Cluster.Start(ctx); err != nil {
		return errors.Join(err, g.Proxies.Stop(context.Background()))
	}
	return nil
}

// Stop stops the nodes, then the proxies.
func (g *Geo) Stop(ctx context.Context) error {
	return errors.Join(g.Cluster.Stop(ctx), g.Proxies.Stop(ctx))
}

// GeoDown stops a geo cluster started with the same options, by its PID files. It needs
// only the configs and run dir, so it works even if the matrix file has gone.
func GeoDown(ctx context.Context, opts GeoOptions) error {
	c, err := opts.Open(clusterkit.Options{})
	if err != nil {
		return err
	}
	g := &Geo{Cluster: c, Proxies: geoProxies(c, opts)}
	return g.Stop(ctx)
}
