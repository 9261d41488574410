package compare

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/lab"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// georaftSystem is a georaft cluster started by the lab's code, with its leader pinned.
type georaftSystem struct {
	cluster  *lab.Cluster
	leaderID uint64
	term     uint64
	client   *client.Client
	proxies  []*ProxyProcess
}

func (g *georaftSystem) Name() string         { return "georaft" }
func (g *georaftSystem) Driver() bench.Driver { return bench.ClientDriver{Client: g.client} }
func (g *georaftSystem) ServerPIDs() []int    { return g.cluster.RunningPIDs() }
func (g *georaftSystem) ProxyPIDs() []int     { return proxyPIDs(g.proxies) }

func (g *georaftSystem) LeaderPID() (int, bool) {
	n, ok := g.cluster.Node(g.leaderID)
	if !ok {
		return 0, false
	}
	return lab.LivePID(filepath.Join(n.DataPath, lab.NodePIDFile), lab.GeoraftdWithConfig(n.Path))
}

func (g *georaftSystem) CheckLeader(ctx context.Context) string {
	clients, err := g.cluster.Dial(nil)
	if err != nil {
		return "leadership check failed: " + err.Error()
	}
	defer clients.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := clients.KV(g.leaderID).Status(ctx, &georaftv1.StatusRequest{})
	switch {
	case err != nil:
		return fmt.Sprintf("leadership check failed: status of node %d: %v", g.leaderID, err)
	case st.GetRole() != georaftv1.Role_ROLE_LEADER:
		return fmt.Sprintf("node %d is no longer leader (role %s, term %d, leader %d)", g.leaderID, st.GetRole(), st.GetTerm(), st.GetLeaderId())
	case st.GetTerm() != g.term:
		return fmt.Sprintf("node %d leads again but the term moved from %d to %d: there was an election", g.leaderID, g.term, st.GetTerm())
	}
	return ""
}

// Repin moves leadership back to the pinned node and waits for its lease.
func (g *georaftSystem) Repin(ctx context.Context, timeout time.Duration) error {
	info, err := g.cluster.PinLeader(ctx, g.leaderID, timeout)
	if err != nil {
		return err
	}
	g.term = info.Term
	return nil
}

// LeaderFsyncs is how many WAL fsyncs the pinned leader has done (its
// georaft_wal_fsync_seconds histogram's count).
func (g *georaftSystem) LeaderFsyncs(ctx context.Context) (float64, error) {
	n, ok := g.cluster.Node(g.leaderID)
	if !ok || n.Listen.Metrics == "" {
		return 0, fmt.Errorf("node %d exposes no metrics", g.leaderID)
	}
	h, err := lab.FetchHistogram(ctx, n.Listen.Metrics, "georaft_wal_fsync_seconds")
	return h.Count, err
}

func proxyPIDs(ps []*ProxyProcess) []int {
	var pids []int
	for _, p := range ps {
		if pid, ok := p.PID(); ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

// prepareCluster stops leftovers of an earlier run and empties the data dirs: every run
// starts a new cluster.
func prepareCluster(ctx context.Context, c *lab.Cluster) error {
	if err := c.Stop(ctx); err != nil {
		return fmt.Errorf("stop georaft leftovers of an earlier run: %w", err)
	}
	for _, n := range c.Nodes {
		if err := os.RemoveAll(n.DataPath); err != nil {
			return fmt.Errorf("empty data dir of node %d: %w", n.ID, err)
		}
	}
	return nil
}

// pin waits for a leader, moves leadership to node id and waits for its lease.
func (r *runner) pinGeoraft(ctx context.Context, c *lab.Cluster, id uint64) (uint64, error) {
	if _, err := c.WaitLeader(ctx, r.opts.LeaderTimeout); err != nil {
		return 0, err
	}
	info, err := c.PinLeader(ctx, id, r.opts.LeaderTimeout)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(r.out, "georaft: node %d leads with its lease held (term %d)\n", id, info.Term)
	return info.Term, nil
}

func (r *runner) startGeoraftLoopback(ctx context.Context, cl *cleanups) (system, error) {
	dataRoot := filepath.Join(r.opts.DataRoot, EnvLoopback, "georaft")
	configDir := filepath.Join(r.opts.RunDir, EnvLoopback, "georaft-configs")
	spec := lab.LocalSpec(lab.LocalPorts{Host: "127.0.0.1", Base: georaftLoopbackBase}, dataRoot)
	spec.ClusterID = "georaft-compare-loopback"
	spec.Header = []string{"georaft side of `make bench-compare`, loopback. Written by compare/ on every run."}
	if err := lab.WriteFiles(configDir, spec.Render()); err != nil {
		return nil, err
	}
	c, err := lab.OpenCluster(lab.ClusterOptions{ConfigDir: configDir, Georaftd: r.opts.Georaftd, WorkDir: r.opts.WorkDir, Out: r.out})
	if err != nil {
		return nil, err
	}
	if err := prepareCluster(ctx, c); err != nil {
		return nil, err
	}
	g := &georaftSystem{cluster: c, leaderID: 1}
	cl.add(func(ctx context.Context) error { return c.Stop(ctx) })
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if g.term, err = r.pinGeoraft(ctx, c, g.leaderID); err != nil {
		return nil, err
	}
	opts := client.Options{NodeIDs: map[string]uint64{}, RequestTimeout: 10 * time.Second}
	for _, n := range c.Nodes {
		opts.Endpoints = append(opts.Endpoints, n.Listen.Client)
		opts.NodeIDs[n.Listen.Client] = n.ID
	}
	if g.client, err = client.New(opts); err != nil {
		return nil, err
	}
	cl.add(func(context.Context) error { return g.client.Close() })
	return g, nil
}

func (r *runner) startGeoraftGeo(ctx context.Context, cl *cleanups) (system, error) {
	dataRoot := filepath.Join(r.opts.DataRoot, EnvGeo, "georaft")
	configDir := filepath.Join(r.opts.RunDir, EnvGeo, "georaft-configs")
	timing, err := lab.DeriveGeoTiming(r.model.Matrix, r.opts.Regions)
	if err != nil {
		return nil, err
	}
	spec, err := lab.GeoSpec(lab.GeoPorts{Host: "127.0.0.1", Base: georaftGeoBase}, r.opts.Regions, dataRoot, timing)
	if err != nil {
		return nil, err
	}
	spec.ClusterID = "georaft-compare-geo"
	spec.Header = []string{"georaft side of `make bench-compare`, 5-region emulation. Written by compare/ on every run.",
		"Node i dials node j at port 3ij0, a toxiproxy proxy of the link i->j; timing derived by the tune package."}
	if err := lab.WriteFiles(configDir, spec.Render()); err != nil {
		return nil, err
	}
	g, err := lab.OpenGeo(lab.GeoOptions{
		ClusterOptions: lab.ClusterOptions{ConfigDir: configDir, Georaftd: r.opts.Georaftd, WorkDir: r.opts.WorkDir, Out: r.out},
		MatrixFile:     r.opts.MatrixFile, Scale: r.model.Scale, IntraRegionRTT: r.model.IntraRegionRTT,
		Jitter: r.model.Jitter, Compensation: r.model.Compensation,
		RunDir: filepath.Join(r.opts.RunDir, EnvGeo),
	})
	if err != nil {
		return nil, err
	}
	leaderID, ok := nodeInRegion(g.Cluster, r.opts.ClientRegion)
	if !ok {
		return nil, fmt.Errorf("georaft: no node in region %s", r.opts.ClientRegion)
	}
	if err := prepareCluster(ctx, g.Cluster); err != nil {
		return nil, err
	}
	proxies := &ProxyProcess{Name: "georaft-links", Plan: g.Plan, Binary: r.opts.Self, RunDir: filepath.Join(r.opts.RunDir, EnvGeo)}
	sys := &georaftSystem{cluster: g.Cluster, leaderID: leaderID, proxies: []*ProxyProcess{proxies}}
	cl.add(proxies.Stop)
	if err := lab.CheckPortsFree(g.Plan.ListenAddresses()); err != nil {
		return nil, err
	}
	if err := proxies.Start(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "georaft: %d links up (20 peer links, %d client links)\n", len(g.Plan.Links), len(g.Plan.Links)-20)
	cl.add(func(ctx context.Context) error { return g.Cluster.Stop(ctx) })
	if err := g.Cluster.Start(ctx); err != nil {
		return nil, err
	}
	if sys.term, err = r.pinGeoraft(ctx, g.Cluster, leaderID); err != nil {
		return nil, err
	}
	endpoints, err := g.Links.Endpoints(r.opts.ClientRegion)
	if err != nil {
		return nil, err
	}
	opts := client.Options{NodeIDs: map[string]uint64{}, Region: r.opts.ClientRegion, RequestTimeout: 10 * time.Second}
	for _, ep := range endpoints {
		opts.Endpoints = append(opts.Endpoints, ep.Address)
		opts.NodeIDs[ep.Address] = ep.NodeID
	}
	if sys.client, err = client.New(opts); err != nil {
		return nil, err
	}
	cl.add(func(context.Context) error { return sys.client.Close() })
	r.georaftPlan = g.Plan
	return sys, nil
}

func nodeInRegion(c *lab.Cluster, region string) (uint64, bool) {
	for _, n := range c.Nodes {
		if n.Region == region {
			return n.ID, true
		}
	}
	return 0, false
}
