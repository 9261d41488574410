package compare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"

	"github.com/georaft/georaft/clusterkit"
)

// DefaultSubnet is the private range the namespaces live in. 10.213.0.0/24 is not used by
// any real network this machine reaches; CheckSubnetFree verifies it before anything is
// created.
var DefaultSubnet = netip.MustParsePrefix("10.213.0.0/24")

// DefaultNetPrefix names everything the plan creates: namespaces gcmp-e1..., host-side
// veths gcmp-e1h..., the bridge gcmpbr0. The names are ours: a run removes leftovers with
// these exact names from a run that was killed.
const DefaultNetPrefix = "gcmp"

// Ports inside the namespaces.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
	// proxyPortBase+B is the port of member A's proxy for the link A→B, on A's advertised
	// address, in A's namespace.
	proxyPortBase = 2390
)

// NetPlan is the network of the emulated etcd cluster: a bridge in the root namespace and
// one namespace per member, joined to it by a veth pair.
type NetPlan struct {
	Prefix string
	Bridge string
	Subnet netip.Prefix
	// HostAddr is the bridge's address in the root namespace: how the harness reaches the
	// members (status, leader moves, the client links' upstreams).
	HostAddr netip.Addr
	Members  []NetMember
}

// NetMember is one etcd member's namespace.
type NetMember struct {
	// ID is the member's position, 1-based; Region where the emulation places it.
	ID        int
	Region    string
	Namespace string
	// HostVeth is the veth end on the bridge; NSVeth the end inside the namespace.
	HostVeth string
	NSVeth   string
	// Advertised is the address in the member's peer and client URLs. Other members'
	// traffic to it is DNATed to their own proxies and never arrives here directly.
	Advertised netip.Addr
	// BackDoor is where the proxies deliver: the member listens for peers only here.
	BackDoor netip.Addr
}

// PeerURL is the URL the member advertises to its peers.
func (m NetMember) PeerURL() string { return urlOf(m.Advertised, EtcdPeerPort) }

// ClientURL is the URL the member advertises to clients; the harness dials it directly
// from the root namespace, where no DNAT applies.
func (m NetMember) ClientURL() string { return urlOf(m.Advertised, EtcdClientPort) }

// BackDoorPeer is the peer listener, the upstream of every proxy into this member.
func (m NetMember) BackDoorPeer() string {
	return netip.AddrPortFrom(m.BackDoor, EtcdPeerPort).String()
}

// BackDoorClient is the client listener on the back door, the upstream of client links.
func (m NetMember) BackDoorClient() string {
	return netip.AddrPortFrom(m.BackDoor, EtcdClientPort).String()
}

// ProxyListen is where, in this member's namespace, the proxy of the link to member `to`
// listens.
func (m NetMember) ProxyListen(to int) string {
	return netip.AddrPortFrom(m.Advertised, uint16(proxyPortBase+to)).String()
}

func urlOf(a netip.Addr, port int) string {
	return "http://" + netip.AddrPortFrom(a, uint16(port)).String()
}

// maxIfName is the kernel's limit on interface names (IFNAMSIZ - 1).
const maxIfName = 15

// PlanNet lays out the namespaces for members in regions (member N in regions[N-1]):
// bridge at .1, member N advertised at .(10+N), back door at .(20+N).
func PlanNet(prefix string, subnet netip.Prefix, regions []string) (NetPlan, error) {
	if prefix == "" || strings.ContainsAny(prefix, " /\t") {
		return NetPlan{}, fmt.Errorf("netns plan: name prefix %q: want a short word", prefix)
	}
	if !subnet.Addr().Is4() || subnet.Bits() != 24 || subnet.Masked() != subnet {
		return NetPlan{}, fmt.Errorf("netns plan: subnet %s: want an IPv4 /24 network address", subnet)
	}
	if !subnet.Addr().IsPrivate() {
		return NetPlan{}, fmt.Errorf("netns plan: subnet %s is not a private range (10/8, 172.16/12, 192.168/16): traffic could leave for a real network", subnet)
	}
	if len(regions) < 1 || len(regions) > 9 {
		return NetPlan{}, fmt.Errorf("netns plan: %d members: want 1 to 9", len(regions))
	}
	plan := NetPlan{Prefix: prefix, Bridge: prefix + "br0", Subnet: subnet, HostAddr: hostAddr(subnet, 1)}
	for i, region := range regions {
		n := i + 1
		m := NetMember{
			ID:         n,
			Region:     region,
			Namespace:  fmt.Sprintf("%s-e%d", prefix, n),
			HostVeth:   fmt.Sprintf("%s-e%dh", prefix, n),
			NSVeth:     fmt.Sprintf("%s-e%dn", prefix, n),
			Advertised: hostAddr(subnet, 10+n),
			BackDoor:   hostAddr(subnet, 20+n),
		}
		for _, name := range []string{m.HostVeth, m.NSVeth, plan.Bridge} {
			if len(name) > maxIfName {
				return NetPlan{}, fmt.Errorf("netns plan: interface name %q is longer than %d characters: use a shorter prefix", name, maxIfName)
			}
		}
		plan.Members = append(plan.Members, m)
	}
	return plan, nil
}

func hostAddr(subnet netip.Prefix, host int) netip.Addr {
	a := subnet.Addr().As4()
	a[3] = byte(host)
	return netip.AddrFrom4(a)
}

// NATRule sends member From's traffic for member To's advertised peer URL to From's proxy
// of the link From→To.
type NATRule struct {
	Namespace string
	From, To  int
	// Dest is To's advertised peer address; Proxy the listener it is rewritten to.
	Dest  string
	Proxy string
}

// Args is the iptables command, run in the namespace.
func (r NATRule) Args() []string {
	host, port, _ := net.SplitHostPort(r.Dest)
	return []string{"ip", "netns", "exec", r.Namespace, "iptables", "-w", "-t", "nat", "-A", "OUTPUT",
		"-d", host + "/32", "-p", "tcp", "--dport", port, "-j", "DNAT", "--to-destination", r.Proxy}
}

// NATRules is one rule per ordered pair of members.
func (p NetPlan) NATRules() []NATRule {
	var rules []NATRule
	for _, from := range p.Members {
		for _, to := range p.Members {
			if from.ID == to.ID {
				continue
			}
			rules = append(rules, NATRule{
				Namespace: from.Namespace, From: from.ID, To: to.ID,
				Dest:  netip.AddrPortFrom(to.Advertised, EtcdPeerPort).String(),
				Proxy: from.ProxyListen(to.ID),
			})
		}
	}
	return rules
}

// SetupCommands create the bridge, the namespaces, their addresses and the NAT rules, in
// order. Every command is idempotent only in the sense that TeardownCommands undo all of
// them; Setup refuses to start over leftovers (it tears them down first).
func (p NetPlan) SetupCommands() [][]string {
	bits := strconv.Itoa(p.Subnet.Bits())
	cmds := [][]string{
		{"ip", "link", "add", p.Bridge, "type", "bridge"},
		{"ip", "addr", "add", p.HostAddr.String() + "/" + bits, "dev", p.Bridge},
		{"ip", "link", "set", p.Bridge, "up"},
	}
	for _, m := range p.Members {
		cmds = append(cmds,
			[]string{"ip", "netns", "add", m.Namespace},
			[]string{"ip", "link", "add", m.HostVeth, "type", "veth", "peer", "name", m.NSVeth, "netns", m.Namespace},
			[]string{"ip", "link", "set", m.HostVeth, "master", p.Bridge},
			[]string{"ip", "link", "set", m.HostVeth, "up"},
			[]string{"ip", "-n", m.Namespace, "link", "set", "lo", "up"},
			[]string{"ip", "-n", m.Namespace, "addr", "add", m.Advertised.String() + "/" + bits, "dev", m.NSVeth},
			[]string{"ip", "-n", m.Namespace, "addr", "add", m.BackDoor.String() + "/" + bits, "dev", m.NSVeth},
			[]string{"ip", "-n", m.Namespace, "link", "set", m.NSVeth, "up"},
		)
	}
	for _, r := range p.NATRules() {
		cmds = append(cmds, r.Args())
	}
	return cmds
}

// TeardownCommands remove everything SetupCommands create: the NAT rules (flushed with the
// namespace's nat OUTPUT chain, which holds nothing else), the namespaces (which takes
// their veth pairs along), any host-side veth left by a half-done setup, and the bridge.
// Run all of them; "not found" answers mean already gone.
func (p NetPlan) TeardownCommands() [][]string {
	var cmds [][]string
	for _, m := range p.Members {
		cmds = append(cmds,
			[]string{"ip", "netns", "exec", m.Namespace, "iptables", "-w", "-t", "nat", "-F", "OUTPUT"},
			[]string{"ip", "netns", "del", m.Namespace},
			[]string{"ip", "link", "del", m.HostVeth},
		)
	}
	return append(cmds, []string{"ip", "link", "del", p.Bridge})
}

// ProxyPlans are the peer links of each member's namespace, in the kit's proxy-plan
// format: the link A→B listens on A's ProxyListen(B) and forwards to B's back door, with
// the delays the kit's LinkModel gives the two regions (the same model georaft's links use).
func (p NetPlan) ProxyPlans(model clusterkit.LinkModel) (map[int]clusterkit.ProxyPlan, error) {
	plans := map[int]clusterkit.ProxyPlan{}
	for _, from := range p.Members {
		var links []clusterkit.Link
		for _, to := range p.Members {
			if from.ID != to.ID {
				links = append(links, clusterkit.Link{
					Name: fmt.Sprintf("etcd peer %d->%d", from.ID, to.ID), Kind: clusterkit.PeerLink,
					FromRegion: from.Region, FromNode: uint64(from.ID), ToNode: uint64(to.ID), ToRegion: to.Region,
					Listen: from.ProxyListen(to.ID), Upstream: to.BackDoorPeer(),
				})
			}
		}
		plan, err := model.Plan(links...)
		if err != nil {
			return nil, err
		}
		plans[from.ID] = plan
	}
	return plans, nil
}

// CheckSubnetFree refuses a subnet that overlaps any address or route of the root
// namespace other than the default route: `ip -4 -o addr show` and `ip -4 route show`
// output go in. Traffic for the subnet must reach only the bridge we create.
func CheckSubnetFree(subnet netip.Prefix, addrOutput, routeOutput string) error {
	var errs []error
	for _, line := range strings.Split(addrOutput, "\n") {
		fields := strings.Fields(line)
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] != "inet" {
				continue
			}
			pfx, err := netip.ParsePrefix(fields[i+1])
			if err != nil {
				return fmt.Errorf("parse `ip addr` line %q: %w", line, err)
			}
			if pfx.Overlaps(subnet) {
				errs = append(errs, fmt.Errorf("address %s (%s) overlaps %s", pfx, strings.TrimSpace(line), subnet))
			}
		}
	}
	for _, line := range strings.Split(routeOutput, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] == "default" {
			continue
		}
		pfx, err := parseRouteDest(fields[0])
		if err != nil {
			return fmt.Errorf("parse `ip route` line %q: %w", line, err)
		}
		if pfx.Overlaps(subnet) {
			errs = append(errs, fmt.Errorf("route %q overlaps %s", strings.TrimSpace(line), subnet))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("subnet %s is in use on this machine, refusing to create namespaces there: %w", subnet, errors.Join(errs...))
	}
	return nil
}

// CheckNamespaceRoutes checks a namespace's `ip -4 route show`: only routes inside the
// subnet, so nothing it sends can be routed to a real network.
func CheckNamespaceRoutes(namespace string, subnet netip.Prefix, routeOutput string) error {
	found := false
	for _, line := range strings.Split(routeOutput, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "default" {
			return fmt.Errorf("namespace %s has a default route (%q): its traffic could leave the bridge", namespace, strings.TrimSpace(line))
		}
		pfx, err := parseRouteDest(fields[0])
		if err != nil {
			return fmt.Errorf("namespace %s: parse route %q: %w", namespace, line, err)
		}
		if pfx.Bits() < subnet.Bits() || !subnet.Contains(pfx.Addr()) {
			return fmt.Errorf("namespace %s has route %q outside %s", namespace, strings.TrimSpace(line), subnet)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("namespace %s has no route to %s: its veth is not up", namespace, subnet)
	}
	return nil
}

// CheckRouteVia checks `ip route get ADDR` output: the root namespace reaches the members
// through our bridge, not the default route.
func CheckRouteVia(addr netip.Addr, bridge, routeGetOutput string) error {
	fields := strings.Fields(routeGetOutput)
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "dev" {
			if fields[i+1] == bridge {
				return nil
			}
			return fmt.Errorf("route to %s leaves through %s, not the bridge %s: %q", addr, fields[i+1], bridge, strings.TrimSpace(routeGetOutput))
		}
	}
	return fmt.Errorf("route to %s: no device in %q", addr, strings.TrimSpace(routeGetOutput))
}

func parseRouteDest(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Runner runs one command and returns its combined output.
type Runner func(ctx context.Context, argv []string) (string, error)

// ExecRunner runs argv as a process; the error names the command and carries its output.
func ExecRunner(ctx context.Context, argv []string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Network is a NetPlan brought up on this machine.
type Network struct {
	Plan NetPlan
	run  Runner
}

// isGone reports whether a teardown command failed only because its object is already gone.
func isGone(output string) bool {
	for _, s := range []string{"Cannot find device", "No such file or directory", "does not exist", "Cannot open network namespace", "not found"} {
		if strings.Contains(output, s) {
			return true
		}
	}
	return false
}

// Teardown runs every teardown command, ignoring "already gone", and reports the rest.
func (p NetPlan) Teardown(ctx context.Context, run Runner) error {
	var errs []error
	for _, argv := range p.TeardownCommands() {
		if out, err := run(ctx, argv); err != nil && !isGone(out) && !isGone(err.Error()) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down namespaces: %w", err)
	}
	return nil
}

// SetupNetwork checks the subnet is free, creates the plan, and checks the result: every
// namespace routes only inside the subnet and the root namespace reaches the members
// through the bridge. On any failure it tears down what it created.
func SetupNetwork(ctx context.Context, plan NetPlan, run Runner) (*Network, error) {
	// Leftovers of a killed run carry our exact names: remove them before checking.
	if err := plan.Teardown(ctx, run); err != nil {
		return nil, err
	}
	addrs, err := run(ctx, []string{"ip", "-4", "-o", "addr", "show"})
	if err != nil {
		return nil, err
	}
	routes, err := run(ctx, []string{"ip", "-4", "route", "show"})
	if err != nil {
		return nil, err
	}
	if err := CheckSubnetFree(plan.Subnet, addrs, routes); err != nil {
		return nil, err
	}
	n := &Network{Plan: plan, run: run}
	fail := func(err error) (*Network, error) {
		return nil, errors.Join(err, plan.Teardown(context.Background(), run))
	}
	for _, argv := range plan.SetupCommands() {
		if _, err := run(ctx, argv); err != nil {
			return fail(fmt.Errorf("set up namespaces: %w", err))
		}
	}
	for _, m := range plan.Members {
		out, err := run(ctx, []string{"ip", "-n", m.Namespace, "-4", "route", "show"})
		if err != nil {
			return fail(err)
		}
		if err := CheckNamespaceRoutes(m.Namespace, plan.Subnet, out); err != nil {
			return fail(err)
		}
		for _, a := range []netip.Addr{m.Advertised, m.BackDoor} {
			out, err := run(ctx, []string{"ip", "-4", "route", "get", a.String()})
			if err != nil {
				return fail(err)
			}
			if err := CheckRouteVia(a, plan.Bridge, out); err != nil {
				return fail(err)
			}
		}
	}
	return n, nil
}

// Close tears the network down.
func (n *Network) Close(ctx context.Context) error {
	return n.Plan.Teardown(ctx, n.run)
}
