package compare

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
)

// etcdSystem is an etcd cluster with its leader pinned and a driver on the leader's
// (possibly proxied) client URL.
type etcdSystem struct {
	cluster *EtcdCluster
	leader  string
	term    uint64
	driver  *EtcdDriver
	proxies []*clusterkit.ProxyProcess
}

func (e *etcdSystem) Name() string         { return "etcd" }
func (e *etcdSystem) Driver() bench.Driver { return e.driver }
func (e *etcdSystem) ProxyPIDs() []int     { return proxyPIDs(e.proxies) }

func (e *etcdSystem) ServerPIDs() []int { return slices.Collect(maps.Values(e.cluster.PIDs())) }

func (e *etcdSystem) LeaderPID() (int, bool) {
	pid, ok := e.cluster.PIDs()[e.leader]
	return pid, ok
}

func (e *etcdSystem) CheckLeader(ctx context.Context) string {
	st, err := e.cluster.State(ctx)
	switch {
	case err != nil:
		return "leadership check failed: " + err.Error()
	case st.Leader != e.leader:
		return fmt.Sprintf("etcd %s is no longer leader (agreed leader %q)", e.leader, st.Leader)
	case st.Term != e.term:
		return fmt.Sprintf("etcd %s leads again but the term moved from %d to %d: there was an election", e.leader, e.term, st.Term)
	}
	return ""
}

// Repin moves leadership back to the pinned member.
func (e *etcdSystem) Repin(ctx context.Context, timeout time.Duration) error {
	st, err := e.cluster.PinLeader(ctx, e.leader, timeout)
	if err != nil {
		return err
	}
	e.term = st.Term
	return nil
}

// LeaderFsyncs is how many WAL fsyncs the pinned leader has done
// (etcd_disk_wal_fsync_duration_seconds on its client URL's /metrics). The backend's
// batched commits fsync too, apart from these.
func (e *etcdSystem) LeaderFsyncs(ctx context.Context) (float64, error) {
	m, ok := e.cluster.Member(e.leader)
	if !ok {
		return 0, fmt.Errorf("no etcd member %s", e.leader)
	}
	h, err := clusterkit.FetchHistogram(ctx, m.ClientAddr(), "etcd_disk_wal_fsync_duration_seconds")
	return h.Count, err
}

func (r *runner) pinEtcd(ctx context.Context, c *EtcdCluster, leader string) (uint64, error) {
	if _, err := c.WaitLeader(ctx, r.opts.LeaderTimeout); err != nil {
		return 0, err
	}
	st, err := c.PinLeader(ctx, leader, r.opts.LeaderTimeout)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(r.out, "etcd: %s leads (term %d)\n", leader, st.Term)
	return st.Term, nil
}

func (r *runner) startEtcdLoopback(ctx context.Context, cl *cleanups) (system, error) {
	c := &EtcdCluster{Binary: r.opts.Etcd, Token: "georaft-compare-loopback", RunDir: filepath.Join(r.opts.RunDir, EnvLoopback, "etcd"), Out: r.out}
	var ports []clusterkit.NamedAddress
	for i, region := range r.opts.Regions {
		n := i + 1
		peer := fmt.Sprintf("http://127.0.0.1:%d", etcdLoopbackPeer+n)
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", etcdLoopbackClient+n)
		c.Members = append(c.Members, EtcdMember{
			Name: fmt.Sprintf("m%d", n), Region: region,
			DataDir: filepath.Join(r.opts.DataRoot, EnvLoopback, "etcd", fmt.Sprintf("m%d", n)),
			PeerURL: peer, ClientURL: clientURL, ListenPeerURLs: []string{peer}, ListenClientURLs: []string{clientURL},
		})
		ports = append(ports,
			clusterkit.NamedAddress{What: fmt.Sprintf("etcd m%d peer", n), Address: strings.TrimPrefix(peer, "http://")},
			clusterkit.NamedAddress{What: fmt.Sprintf("etcd m%d client", n), Address: strings.TrimPrefix(clientURL, "http://")})
	}
	e := &etcdSystem{cluster: c, leader: "m1"}
	cl.add(c.Stop)
	// Leftovers first (they would hold the ports), then the port check.
	if err := c.Stop(ctx); err != nil {
		return nil, err
	}
	if err := clusterkit.CheckPortsFree(ports); err != nil {
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	var err error
	if e.term, err = r.pinEtcd(ctx, c, e.leader); err != nil {
		return nil, err
	}
	c.StopFirst = e.leader
	m1, _ := c.Member(e.leader)
	if e.driver, err = NewEtcdDriver([]string{m1.ClientAddr()}, 10*time.Second); err != nil {
		return nil, err
	}
	cl.add(func(context.Context) error { return e.driver.Close() })
	return e, nil
}

// LinkCheck is the measured round trip of one emulated etcd peer link.
type LinkCheck struct {
	From, To   int
	FromRegion string
	ToRegion   string
	Target     time.Duration
	Measured   time.Duration
	Error      string
}

func (r *runner) startEtcdGeo(ctx context.Context, cl *cleanups) (system, []LinkCheck, error) {
	runDir := filepath.Join(r.opts.RunDir, EnvGeo)
	plan, err := PlanNet(DefaultNetPrefix, DefaultSubnet, r.opts.Regions)
	if err != nil {
		return nil, nil, err
	}
	c := &EtcdCluster{Binary: r.opts.Etcd, Token: "georaft-compare-geo", RunDir: filepath.Join(runDir, "etcd"), Out: r.out}
	for _, m := range plan.Members {
		c.Members = append(c.Members, EtcdMember{
			Name: fmt.Sprintf("m%d", m.ID), Region: m.Region, Namespace: m.Namespace,
			DataDir: filepath.Join(r.opts.DataRoot, EnvGeo, "etcd", fmt.Sprintf("m%d", m.ID)),
			PeerURL: m.PeerURL(), ClientURL: m.ClientURL(),
			// Peers only on the back door: a pair without its DNAT rule is refused, not
			// silently undelayed.
			ListenPeerURLs:   []string{urlOf(m.BackDoor, EtcdPeerPort)},
			ListenClientURLs: []string{m.ClientURL(), urlOf(m.BackDoor, EtcdClientPort)},
		})
	}
	e := &etcdSystem{cluster: c}
	peerPlans, err := plan.ProxyPlans(r.model)
	if err != nil {
		return nil, nil, err
	}
	if err := SameDelays(r.georaftPlan, peerPlans); err != nil {
		return nil, nil, err
	}
	i := slices.IndexFunc(plan.Members, func(m NetMember) bool { return m.Region == r.opts.ClientRegion })
	if i < 0 {
		return nil, nil, fmt.Errorf("etcd: no member in region %s", r.opts.ClientRegion)
	}
	leader := plan.Members[i]
	clientPlan, err := r.model.Plan(clusterkit.Link{
		Name: fmt.Sprintf("etcd client %s->%d", r.opts.ClientRegion, leader.ID), Kind: clusterkit.ClientLink,
		FromRegion: r.opts.ClientRegion, ToNode: uint64(leader.ID), ToRegion: leader.Region,
		Listen: fmt.Sprintf("127.0.0.1:%d", etcdGeoClientLink+leader.ID), Upstream: leader.BackDoorClient(),
	})
	if err != nil {
		return nil, nil, err
	}
	link := clientPlan.Links[0]
	procs := []*clusterkit.ProxyProcess{{Name: "etcd-client-link", Plan: clientPlan, Binary: r.opts.Self, RunDir: runDir}}
	for _, m := range plan.Members {
		procs = append(procs, &clusterkit.ProxyProcess{Name: "etcd-links-" + m.Namespace, Plan: peerPlans[m.ID], Namespace: m.Namespace, Binary: r.opts.Self, RunDir: runDir})
	}
	// Members and proxies left running by a killed run live in the namespaces about to be
	// recreated: stop them first.
	if err := c.Stop(ctx); err != nil {
		return nil, nil, err
	}
	for _, p := range procs {
		if err := p.Stop(ctx); err != nil {
			return nil, nil, err
		}
	}
	network, err := SetupNetwork(ctx, plan, ExecRunner)
	if err != nil {
		return nil, nil, err
	}
	cl.add(network.Close)
	fmt.Fprintf(r.out, "etcd: bridge %s (%s) and namespaces %s..%s up, %d DNAT rules\n", plan.Bridge, plan.Subnet,
		plan.Members[0].Namespace, plan.Members[len(plan.Members)-1].Namespace, len(plan.NATRules()))
	for _, p := range procs {
		cl.add(p.Stop)
	}
	if err := clusterkit.CheckPortsFree(clientPlan.ListenAddresses()); err != nil {
		return nil, nil, err
	}
	for _, p := range procs {
		if err := p.Start(ctx); err != nil {
			return nil, nil, err
		}
	}
	e.proxies = procs
	fmt.Fprintf(r.out, "etcd: %d peer links in %d namespaces and 1 client link up\n", len(plan.NATRules()), len(plan.Members))

	cl.add(c.Stop)
	if err := c.Start(ctx); err != nil {
		return nil, nil, err
	}
	e.leader = fmt.Sprintf("m%d", leader.ID)
	if e.term, err = r.pinEtcd(ctx, c, e.leader); err != nil {
		return nil, nil, err
	}
	c.StopFirst = e.leader
	checks := r.checkEtcdLinks(ctx, plan)
	for _, ch := range checks {
		if ch.Error != "" {
			return nil, checks, fmt.Errorf("etcd link %d->%d (%s->%s) does not work: %s", ch.From, ch.To, ch.FromRegion, ch.ToRegion, ch.Error)
		}
	}
	if e.driver, err = NewEtcdDriver([]string{link.Listen}, 10*time.Second); err != nil {
		return nil, checks, err
	}
	cl.add(func(context.Context) error { return e.driver.Close() })
	return e, checks, nil
}

// checkEtcdLinks measures every ordered pair's round trip the way etcd's own traffic goes:
// from inside member A's namespace, HTTP requests to B's advertised peer URL (DNAT, A's
// proxy, B's back door). A few pairs run at a time.
func (r *runner) checkEtcdLinks(ctx context.Context, plan NetPlan) []LinkCheck {
	var (
		mu     sync.Mutex
		checks []LinkCheck
		wg     sync.WaitGroup
		slots  = make(chan struct{}, 4)
	)
	for _, rule := range plan.NATRules() {
		from, to := plan.Members[rule.From-1], plan.Members[rule.To-1]
		target, _ := r.model.RTT(from.Region, to.Region)
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			ch := LinkCheck{From: from.ID, To: to.ID, FromRegion: from.Region, ToRegion: to.Region, Target: target}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			out, err := ExecRunner(ctx, []string{"ip", "netns", "exec", from.Namespace, r.opts.Self, "probe-http",
				"--url", to.PeerURL() + "/version", "--count", "5"})
			if err != nil {
				ch.Error = err.Error()
			} else if ms, perr := strconv.ParseFloat(strings.TrimSpace(out), 64); perr != nil {
				ch.Error = fmt.Sprintf("probe output %q: %v", strings.TrimSpace(out), perr)
			} else {
				ch.Measured = time.Duration(ms * float64(time.Millisecond))
			}
			mu.Lock()
			checks = append(checks, ch)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.SortFunc(checks, func(a, b LinkCheck) int { return cmp.Or(a.From-b.From, a.To-b.To) })
	for _, ch := range checks {
		if ch.Error == "" {
			fmt.Fprintf(r.out, "  etcd link %d->%d %-12s -> %-12s target %-6s measured %s\n", ch.From, ch.To, ch.FromRegion, ch.ToRegion, fmtLat(ch.Target), fmtLat(ch.Measured))
		}
	}
	return checks
}

// SameDelays checks that etcd's peer links have, pair of regions by pair of regions, the
// delays georaft's peer links have: the emulation is the same for both systems.
func SameDelays(georaft clusterkit.ProxyPlan, etcd map[int]clusterkit.ProxyPlan) error {
	type key struct{ from, to string }
	type delays struct{ up, down, jitter int64 }
	want := map[key]delays{}
	for _, l := range georaft.Links {
		if l.Kind == clusterkit.PeerLink {
			want[key{l.FromRegion, l.ToRegion}] = delays{l.UpstreamMillis, l.DownstreamMillis, l.JitterMillis}
		}
	}
	if len(want) == 0 {
		return fmt.Errorf("compare link delays: georaft's plan has no peer links")
	}
	n := 0
	for _, plan := range etcd {
		for _, l := range plan.Links {
			n++
			w, ok := want[key{l.FromRegion, l.ToRegion}]
			got := delays{l.UpstreamMillis, l.DownstreamMillis, l.JitterMillis}
			if !ok {
				return fmt.Errorf("compare link delays: etcd link %s (%s->%s) has no georaft counterpart", l.Name, l.FromRegion, l.ToRegion)
			}
			if got != w {
				return fmt.Errorf("compare link delays: etcd link %s (%s->%s) has %+v ms, georaft's %+v ms", l.Name, l.FromRegion, l.ToRegion, got, w)
			}
		}
	}
	if n != len(want) {
		return fmt.Errorf("compare link delays: etcd has %d peer links, georaft %d", n, len(want))
	}
	return nil
}
