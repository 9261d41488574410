package compare

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/lab"
)

func testPlan(t *testing.T) NetPlan {
	t.Helper()
	p, err := PlanNet(DefaultNetPrefix, DefaultSubnet, clusterkit.DefaultRegions)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanNetRefusesBadInput(t *testing.T) {
	for name, c := range map[string]struct {
		prefix  string
		subnet  string
		regions []string
	}{
		"public range":    {"gcmp", "8.8.8.0/24", clusterkit.DefaultRegions},
		"not a /24":       {"gcmp", "10.213.0.0/16", clusterkit.DefaultRegions},
		"host bits set":   {"gcmp", "10.213.0.5/24", clusterkit.DefaultRegions},
		"long names":      {"averyverylongprefix", "10.213.0.0/24", clusterkit.DefaultRegions},
		"no members":      {"gcmp", "10.213.0.0/24", nil},
		"space in prefix": {"g c", "10.213.0.0/24", clusterkit.DefaultRegions},
	} {
		if _, err := PlanNet(c.prefix, netip.MustParsePrefix(c.subnet), c.regions); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPlanNetAddressesAndNames(t *testing.T) {
	p := testPlan(t)
	if p.Bridge != "gcmpbr0" || p.HostAddr.String() != "10.213.0.1" {
		t.Errorf("bridge %s at %s", p.Bridge, p.HostAddr)
	}
	seen := map[netip.Addr]bool{p.HostAddr: true}
	for i, m := range p.Members {
		if m.ID != i+1 || m.Region != clusterkit.DefaultRegions[i] {
			t.Errorf("member %d: id %d region %s", i, m.ID, m.Region)
		}
		for _, a := range []netip.Addr{m.Advertised, m.BackDoor} {
			if !p.Subnet.Contains(a) || seen[a] {
				t.Errorf("member %d: address %s outside %s or used twice", m.ID, a, p.Subnet)
			}
			seen[a] = true
		}
		if len(m.HostVeth) > maxIfName || len(m.NSVeth) > maxIfName {
			t.Errorf("member %d: interface names %q %q too long", m.ID, m.HostVeth, m.NSVeth)
		}
	}
	if got := p.Members[2].PeerURL(); got != "http://10.213.0.13:2380" {
		t.Errorf("member 3 peer URL %s", got)
	}
}

// TestNATRulesSendEachPairToItsOwnProxy checks the heart of the emulation: in A's
// namespace, traffic for B's advertised peer address goes to A's proxy for A→B, and the
// proxy plans of that namespace have exactly that listener forwarding to B's back door.
func TestNATRulesSendEachPairToItsOwnProxy(t *testing.T) {
	p := testPlan(t)
	rules := p.NATRules()
	if len(rules) != 20 {
		t.Fatalf("%d NAT rules, want 20 (5×4 ordered pairs)", len(rules))
	}
	m, err := geo.LoadCSV(filepath.Join("..", "configs", "geo", "rtt-5-regions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	model := clusterkit.LinkModel{Matrix: m, Scale: 1, IntraRegionRTT: time.Millisecond}
	plans, err := p.ProxyPlans(model)
	if err != nil {
		t.Fatal(err)
	}
	pairs := map[[2]int]bool{}
	for _, r := range rules {
		from, to := p.Members[r.From-1], p.Members[r.To-1]
		if r.Namespace != from.Namespace {
			t.Errorf("rule %d->%d lives in %s, want %s", r.From, r.To, r.Namespace, from.Namespace)
		}
		if r.Dest != netip.AddrPortFrom(to.Advertised, EtcdPeerPort).String() {
			t.Errorf("rule %d->%d matches %s, want %s's advertised peer address", r.From, r.To, r.Dest, to.Namespace)
		}
		for _, other := range p.Members {
			if strings.HasPrefix(r.Dest, other.BackDoor.String()+":") {
				t.Errorf("rule %d->%d rewrites a back-door address %s: proxied traffic would loop", r.From, r.To, r.Dest)
			}
		}
		var link *clusterkit.Link
		for i, l := range plans[from.ID].Links {
			if l.Listen == r.Proxy {
				link = &plans[from.ID].Links[i]
			}
		}
		if link == nil {
			t.Fatalf("rule %d->%d sends to %s, which no proxy of %s listens on", r.From, r.To, r.Proxy, from.Namespace)
		}
		if link.Upstream != to.BackDoorPeer() || int(link.ToNode) != to.ID {
			t.Errorf("proxy %s forwards to %s (node %d), want %s", link.Listen, link.Upstream, link.ToNode, to.BackDoorPeer())
		}
		rtt, _ := model.RTT(from.Region, to.Region)
		up, down := model.Delays(rtt)
		if link.UpstreamMillis != up.Milliseconds() || link.DownstreamMillis != down.Milliseconds() || link.RTTMillis != rtt.Milliseconds() {
			t.Errorf("link %s: %d+%d ms for RTT %d, want %v+%v", link.Name, link.UpstreamMillis, link.DownstreamMillis, link.RTTMillis, up, down)
		}
		argv := r.Args()
		if !slices.Equal(argv[:4], []string{"ip", "netns", "exec", from.Namespace}) || !slices.Contains(argv, "DNAT") ||
			argv[len(argv)-1] != r.Proxy || !slices.Contains(argv, "OUTPUT") {
			t.Errorf("rule command %v", argv)
		}
		pairs[[2]int{r.From, r.To}] = true
	}
	if len(pairs) != 20 {
		t.Errorf("%d distinct pairs, want 20", len(pairs))
	}
	for id, plan := range plans {
		if len(plan.Links) != 4 {
			t.Errorf("namespace of member %d has %d links, want 4", id, len(plan.Links))
		}
	}
}

func TestSetupAndTeardownCommands(t *testing.T) {
	p := testPlan(t)
	setup := p.SetupCommands()
	joined := make([]string, len(setup))
	for i, c := range setup {
		joined[i] = strings.Join(c, " ")
	}
	index := func(s string) int { return slices.Index(joined, s) }
	if index("ip link add gcmpbr0 type bridge") != 0 {
		t.Errorf("the bridge must come first: %v", joined[:3])
	}
	for _, m := range p.Members {
		add := index("ip netns add " + m.Namespace)
		veth := index("ip link add " + m.HostVeth + " type veth peer name " + m.NSVeth + " netns " + m.Namespace)
		addr := index("ip -n " + m.Namespace + " addr add " + m.Advertised.String() + "/24 dev " + m.NSVeth)
		back := index("ip -n " + m.Namespace + " addr add " + m.BackDoor.String() + "/24 dev " + m.NSVeth)
		if add < 0 || veth < add || addr < veth || back < veth {
			t.Errorf("member %d: namespace, veth and addresses missing or out of order (%d %d %d %d)", m.ID, add, veth, addr, back)
		}
	}
	for _, c := range setup {
		if slices.Contains(c, "default") || slices.Contains(c, "route") {
			t.Errorf("setup adds a route: %v (namespaces must only reach the bridge)", c)
		}
	}
	teardown := p.TeardownCommands()
	tj := make([]string, len(teardown))
	for i, c := range teardown {
		tj[i] = strings.Join(c, " ")
	}
	for _, m := range p.Members {
		for _, want := range []string{"ip netns del " + m.Namespace, "ip link del " + m.HostVeth,
			"ip netns exec " + m.Namespace + " iptables -w -t nat -F OUTPUT"} {
			if !slices.Contains(tj, want) {
				t.Errorf("teardown lacks %q", want)
			}
		}
	}
	if tj[len(tj)-1] != "ip link del gcmpbr0" {
		t.Errorf("teardown must end with the bridge, ends with %q", tj[len(tj)-1])
	}
}

// TestTeardownIgnoresWhatIsGone runs the teardown against a fake runner whose objects are
// all gone, then one with a real failure.
func TestTeardownIgnoresWhatIsGone(t *testing.T) {
	p := testPlan(t)
	var ran int
	gone := func(_ context.Context, argv []string) (string, error) {
		ran++
		return "Cannot find device \"x\"", errors.New("exit status 1")
	}
	if err := p.Teardown(context.Background(), gone); err != nil {
		t.Errorf("teardown of nothing: %v", err)
	}
	if ran != len(p.TeardownCommands()) {
		t.Errorf("ran %d commands, want all %d", ran, len(p.TeardownCommands()))
	}
	broken := func(_ context.Context, argv []string) (string, error) {
		if argv[len(argv)-1] == p.Bridge {
			return "Operation not permitted", errors.New("exit status 2")
		}
		return "", nil
	}
	if err := p.Teardown(context.Background(), broken); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("a real teardown failure was hidden: %v", err)
	}
}

func TestCheckSubnetFree(t *testing.T) {
	subnet := DefaultSubnet
	addrs := "1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n"
	routes := "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n"
	if err := CheckSubnetFree(subnet, addrs, routes); err != nil {
		t.Errorf("free subnet refused: %v", err)
	}
	if err := CheckSubnetFree(subnet, addrs+"3: docker0    inet 10.213.0.9/24 scope global docker0\n", routes); err == nil {
		t.Error("an address inside the subnet was not noticed")
	}
	if err := CheckSubnetFree(subnet, addrs, routes+"10.0.0.0/8 via 192.0.2.9 dev eth0\n"); err == nil {
		t.Error("a route covering the subnet was not noticed")
	}
	if err := CheckSubnetFree(subnet, addrs, routes+"10.213.0.77 dev tun0 scope link\n"); err == nil {
		t.Error("a host route inside the subnet was not noticed")
	}
	if err := CheckSubnetFree(subnet, addrs, "garbage line\n"); err == nil {
		t.Error("unparseable route output was accepted")
	}
}

func TestCheckNamespaceAndHostRoutes(t *testing.T) {
	subnet := DefaultSubnet
	if err := CheckNamespaceRoutes("ns", subnet, "10.213.0.0/24 dev gcmp-e1n proto kernel scope link src 10.213.0.11\n"); err != nil {
		t.Errorf("good namespace routes refused: %v", err)
	}
	for name, routes := range map[string]string{
		"default": "default via 10.213.0.1 dev gcmp-e1n\n10.213.0.0/24 dev gcmp-e1n\n",
		"outside": "10.213.0.0/24 dev gcmp-e1n\n192.168.1.0/24 dev gcmp-e1n\n",
		"wider":   "10.213.0.0/16 dev gcmp-e1n\n",
		"none":    "",
	} {
		if err := CheckNamespaceRoutes("ns", subnet, routes); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a := netip.MustParseAddr("10.213.0.11")
	if err := CheckRouteVia(a, "gcmpbr0", "10.213.0.11 dev gcmpbr0 src 10.213.0.1 uid 0\n    cache\n"); err != nil {
		t.Errorf("route via the bridge refused: %v", err)
	}
	if err := CheckRouteVia(a, "gcmpbr0", "10.213.0.11 via 192.0.2.1 dev eth0 src 192.0.2.2 uid 0\n"); err == nil {
		t.Error("a route via the default gateway was accepted")
	}
}

// TestSameDelays builds georaft's links the way the run does (lab.GeoSpec configs opened by
// the cluster kit) and etcd's from the namespace plan, and checks they match; then breaks
// one.
func TestSameDelays(t *testing.T) {
	dir := t.TempDir()
	m, err := geo.LoadCSV(filepath.Join("..", "configs", "geo", "rtt-5-regions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	timing, err := clusterkit.GeoTiming(m, clusterkit.DefaultRegions)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := lab.GeoSpec(clusterkit.GeoPorts{Host: "127.0.0.1", Base: georaftGeoBase}, clusterkit.DefaultRegions, filepath.Join(dir, "data"), timing)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WriteSpec(filepath.Join(dir, "configs"), spec); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []time.Duration{0, time.Millisecond} {
		model := clusterkit.LinkModel{Matrix: m, Scale: 1, IntraRegionRTT: time.Millisecond, Compensation: comp}
		g, err := clusterkit.Open(filepath.Join(dir, "configs"), clusterkit.Options{WorkDir: dir, Model: model})
		if err != nil {
			t.Fatal(err)
		}
		plans, err := testPlan(t).ProxyPlans(model)
		if err != nil {
			t.Fatal(err)
		}
		if err := SameDelays(g.Plan, plans); err != nil {
			t.Errorf("compensation %v: %v", comp, err)
		}
		plans[2].Links[1].DownstreamMillis++
		if err := SameDelays(g.Plan, plans); err == nil {
			t.Errorf("compensation %v: a link 1 ms off was not noticed", comp)
		}
	}
}
