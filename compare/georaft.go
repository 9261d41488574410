package compare

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/lab"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// BinaryName is the harness binary; proxy processes run it with `proxy-serve`.
const BinaryName = "georaft-compare"

// georaftSystem is a georaft cluster of the cluster kit, with its leader pinned.
type georaftSystem struct {
	cluster  *clusterkit.Cluster
	leaderID uint64
	term     uint64
	client   *client.Client
	proxies  []*clusterkit.ProxyProcess
}

func (g *georaftSystem) Name() string         { return "georaft" }
func (g *georaftSystem) Driver() bench.Driver { return bench.ClientDriver{Client: g.client} }
func (g *georaftSystem) ServerPIDs() []int    { return g.cluster.RunningPIDs() }
func (g *georaftSystem) ProxyPIDs() []int     { return proxyPIDs(g.proxies) }

func (g *georaftSystem) LeaderPID() (int, bool) { return g.cluster.Node(g.leaderID).PID() }

func (g *georaftSystem) CheckLeader(ctx context.Context) string {
	st, err := g.cluster.Status(ctx, g.leaderID, 2*time.Second)
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
	l, err := g.cluster.PinLeader(ctx, g.leaderID, timeout)
	if err != nil {
		return err
	}
	g.term = l.Term
	return nil
}

// LeaderFsyncs is how many WAL fsyncs the pinned leader has done (its
// georaft_wal_fsync_seconds histogram's count).
func (g *georaftSystem) LeaderFsyncs(ctx context.Context) (float64, error) {
	n := g.cluster.Node(g.leaderID)
	if n.MetricsAddr() == "" {
		return 0, fmt.Errorf("node %d exposes no metrics", g.leaderID)
	}
	h, err := clusterkit.FetchHistogram(ctx, n.MetricsAddr(), "georaft_wal_fsync_seconds")
	return h.Count, err
}

func proxyPIDs(ps []*clusterkit.ProxyProcess) []int {
	var pids []int
	for _, p := range ps {
		if pid, ok := p.PID(); ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

// georaftCluster writes spec's configs into the run dir and opens them; the nodes run
// detached, so that a killed run's leftovers are found and stopped by the next. Leftovers of
// an earlier run are stopped and the data dirs emptied: every run starts a new cluster.
func (r *runner) georaftCluster(ctx context.Context, env string, spec clusterkit.Spec) (*clusterkit.Cluster, error) {
	configDir := filepath.Join(r.opts.RunDir, env, "georaft-configs")
	spec.DataRoot = filepath.Join(r.opts.DataRoot, env, "georaft")
	spec.ClusterID = "georaft-compare-" + env
	spec.Header = []string{"georaft side of `make bench-compare` (" + env + "). Written by compare/ on every run."}
	if err := lab.WriteSpec(configDir, spec); err != nil {
		return nil, err
	}
	c, err := clusterkit.Open(configDir, clusterkit.Options{Georaftd: r.opts.Georaftd, WorkDir: r.opts.WorkDir, Detached: true, Model: r.model, Log: r.out})
	if err != nil {
		return nil, err
	}
	if err := c.Stop(ctx); err != nil {
		return nil, fmt.Errorf("stop georaft leftovers of an earlier run: %w", err)
	}
	return c, c.ResetData()
}

// startGeoraft starts the nodes, pins the leader on node id and connects a client from
// region ("" for the nodes' own listeners).
func (r *runner) startGeoraft(ctx context.Context, cl *cleanups, c *clusterkit.Cluster, id uint64, region string) (*georaftSystem, error) {
	g := &georaftSystem{cluster: c, leaderID: id}
	cl.add(func(ctx context.Context) error { c.Close(); return c.Stop(ctx) })
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	if _, err := c.WaitLeader(ctx, r.opts.LeaderTimeout, clusterkit.Want{}); err != nil {
		return nil, err
	}
	l, err := c.PinLeader(ctx, id, r.opts.LeaderTimeout)
	if err != nil {
		return nil, err
	}
	g.term = l.Term
	fmt.Fprintf(r.out, "georaft: node %d leads with its lease held (term %d)\n", id, l.Term)
	if g.client, err = c.Client(region, 10*time.Second); err != nil {
		return nil, err
	}
	cl.add(func(context.Context) error { return g.client.Close() })
	return g, nil
}

func (r *runner) startGeoraftLoopback(ctx context.Context, cl *cleanups) (system, error) {
	spec := lab.LocalSpec(clusterkit.LocalPorts{Host: "127.0.0.1", Base: georaftLoopbackBase}, "")
	c, err := r.georaftCluster(ctx, EnvLoopback, spec)
	if err != nil {
		return nil, err
	}
	return r.startGeoraft(ctx, cl, c, 1, "")
}

func (r *runner) startGeoraftGeo(ctx context.Context, cl *cleanups) (system, error) {
	timing, err := clusterkit.GeoTiming(r.model.Matrix, r.opts.Regions)
	if err != nil {
		return nil, err
	}
	spec, err := lab.GeoSpec(clusterkit.GeoPorts{Host: "127.0.0.1", Base: georaftGeoBase}, r.opts.Regions, "", timing)
	if err != nil {
		return nil, err
	}
	// The comparison pins the leader in the client's region: leader placement keeps it there
	// rather than in the geo configs' first region.
	geoConfigure := spec.Configure
	spec.Configure = func(c *config.Config) {
		if geoConfigure != nil {
			geoConfigure(c)
		}
		c.Placement.PreferredRegions = []string{r.opts.ClientRegion}
	}
	c, err := r.georaftCluster(ctx, EnvGeo, spec)
	if err != nil {
		return nil, err
	}
	leader := c.NodeIn(r.opts.ClientRegion)
	if leader == nil {
		return nil, fmt.Errorf("georaft: no node in region %s", r.opts.ClientRegion)
	}
	proxies := &clusterkit.ProxyProcess{Name: "georaft-links", Plan: c.Plan, Binary: r.opts.Self, RunDir: filepath.Join(r.opts.RunDir, EnvGeo)}
	cl.add(proxies.Stop)
	if err := clusterkit.CheckPortsFree(c.Plan.ListenAddresses()); err != nil {
		return nil, err
	}
	if err := proxies.Start(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "georaft: %d links up (20 peer links, %d client links)\n", len(c.Plan.Links), len(c.Plan.Links)-20)
	g, err := r.startGeoraft(ctx, cl, c, leader.ID, r.opts.ClientRegion)
	if err != nil {
		return nil, err
	}
	g.proxies = []*clusterkit.ProxyProcess{proxies}
	r.georaftPlan = c.Plan
	return g, nil
}
