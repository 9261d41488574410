package clusterkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/node/config"
)

// LinkModel turns the RTT matrix into the delays of the emulated links. The zero model
// delays nothing: links that are there only to be cut.
type LinkModel struct {
	Matrix geo.Matrix
	// Scale multiplies every RTT of the matrix (0.1 for quick tests); 0 means 1.
	Scale float64
	// IntraRegionRTT is the round trip between two parties in one region when the matrix's
	// diagonal says 0: a client and the node in its region, like two zones of one cloud
	// region. It is not scaled.
	IntraRegionRTT time.Duration
	// Jitter is added to each direction's delay, uniformly in ±Jitter (whole milliseconds).
	Jitter time.Duration
	// Compensation is taken off the upstream delay of each link to cancel the timer
	// overshoot of the proxy (see OvershootNote); links whose RTT is at most twice the
	// compensation keep their full delay.
	Compensation time.Duration
}

// Defaults of the emulation: see docs/lab.md for why.
const (
	DefaultIntraRegionRTT = time.Millisecond
	DefaultCompensation   = time.Millisecond
)

// OvershootNote states the overshoot setting, for the bench output.
func (m LinkModel) OvershootNote() string {
	if m.Compensation == 0 {
		return "overshoot compensation off: each proxied direction runs ~0.2-0.8 ms over its toxic (Go timer granularity)"
	}
	return fmt.Sprintf("overshoot compensation: %v taken off one direction of every link longer than %v, cancelling the ~0.2-0.8 ms per direction that toxiproxy's timers overshoot",
		m.Compensation, 2*m.Compensation)
}

func (m LinkModel) scale() float64 {
	if m.Scale <= 0 {
		return 1
	}
	return m.Scale
}

// RTT is the round trip the emulation aims at between two regions: the matrix's, scaled and
// rounded to whole milliseconds (toxiproxy's latency unit), or IntraRegionRTT within a region
// whose diagonal is 0.
func (m LinkModel) RTT(a, b string) (time.Duration, error) {
	if m.Matrix.Len() == 0 {
		return 0, nil
	}
	d, err := m.Matrix.RTT(a, b)
	if err != nil {
		return 0, err
	}
	if d == 0 && a == b {
		return roundMillis(m.IntraRegionRTT), nil
	}
	return roundMillis(time.Duration(float64(d) * m.scale())), nil
}

func roundMillis(d time.Duration) time.Duration {
	return time.Duration(math.Round(float64(d)/float64(time.Millisecond))) * time.Millisecond
}

// Scaled is the matrix the links aim at between regions: every RTT scaled and rounded to
// whole milliseconds (at least 1), the diagonal 0. Rounding each direction on its own may
// leave a pair a millisecond apart, which its tolerance allows.
func (m LinkModel) Scaled() (geo.Matrix, error) {
	regions := m.Matrix.Regions()
	rtt := make([][]time.Duration, len(regions))
	for i, a := range regions {
		rtt[i] = make([]time.Duration, len(regions))
		for j, b := range regions {
			if i != j {
				d, err := m.RTT(a, b)
				if err != nil {
					return geo.Matrix{}, err
				}
				rtt[i][j] = max(d, time.Millisecond)
			}
		}
	}
	return geo.New(regions, rtt, geo.Tolerance{Abs: 2 * time.Millisecond, Rel: 0.2})
}

// Delays splits an RTT over the two directions of a link: upstream (towards the listener
// the link leads to) gets the larger half, minus the overshoot compensation.
func (m LinkModel) Delays(rtt time.Duration) (upstream, downstream time.Duration) {
	rttMs := roundMillis(rtt).Milliseconds()
	upMs := (rttMs + 1) / 2
	downMs := rttMs - upMs
	if compMs := roundMillis(m.Compensation).Milliseconds(); compMs > 0 && rttMs > 2*compMs {
		upMs -= compMs
	}
	return time.Duration(upMs) * time.Millisecond, time.Duration(downMs) * time.Millisecond
}

// Link is one toxiproxy proxy: traffic to Listen is forwarded to Upstream, delayed by
// UpstreamDelay on the way there and DownstreamDelay on the way back.
type Link struct {
	Name       string   `json:"name"`
	Kind       LinkKind `json:"kind"`
	FromRegion string   `json:"from_region"`
	// FromNode is the dialing node of a peer link; 0 for client links.
	FromNode uint64 `json:"from_node,omitempty"`
	ToNode   uint64 `json:"to_node"`
	ToRegion string `json:"to_region"`
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
	// RTTMillis is the round trip the link emulates; the delays are whole milliseconds.
	RTTMillis        int64 `json:"rtt_ms"`
	UpstreamMillis   int64 `json:"upstream_latency_ms"`
	DownstreamMillis int64 `json:"downstream_latency_ms"`
	JitterMillis     int64 `json:"jitter_ms"`
}

// LinkKind says what a link carries.
type LinkKind string

const (
	// PeerLink carries one node's messages to another: the link i→j.
	PeerLink LinkKind = "peer"
	// ClientLink carries a client's calls from its region to a node.
	ClientLink LinkKind = "client"
)

// UniformModel is a link model where every pair of regions is rtt apart, with jitter on
// each direction: a LAN, or one region's zones.
func UniformModel(regions []string, rtt, jitter time.Duration) (LinkModel, error) {
	rows := make([][]time.Duration, len(regions))
	for i := range regions {
		rows[i] = make([]time.Duration, len(regions))
		for j := range regions {
			if i != j {
				rows[i][j] = rtt
			}
		}
	}
	m, err := geo.New(regions, rows, geo.DefaultTolerance)
	if err != nil {
		return LinkModel{}, fmt.Errorf("uniform matrix: %w", err)
	}
	return LinkModel{Matrix: m, Scale: 1, IntraRegionRTT: rtt / 2, Jitter: jitter}, nil
}

// ProxyPlan is every link of an emulated cluster; proxy-serve reads it from a JSON file.
type ProxyPlan struct {
	Scale                float64 `json:"scale"`
	IntraRegionRTTMillis int64   `json:"intra_region_rtt_ms"`
	CompensationMillis   int64   `json:"overshoot_compensation_ms"`
	Links                []Link  `json:"links"`
}

// PlanLinks derives every proxy from the node configs and the client links: a peer link for
// each config whose peers entry dials another node at an address other than that node's own
// peer listener, and a client link for each (region, node) of the client links.
func PlanLinks(nodes []*config.Config, links client.RegionLinks, model LinkModel) (ProxyPlan, error) {
	var planned []Link
	byID := map[uint64]*config.Config{}
	for _, n := range nodes {
		byID[n.Node.ID] = n
	}
	var errs []error
	for _, n := range nodes {
		for _, p := range n.Peers {
			target, ok := byID[p.ID]
			if !ok {
				errs = append(errs, fmt.Errorf("node %d: peers names node %d, which has no config", n.Node.ID, p.ID))
				continue
			}
			if p.ID == n.Node.ID || p.PeerAddress == target.Listen.Peer {
				continue
			}
			planned = append(planned, Link{Name: fmt.Sprintf("peer %d->%d", n.Node.ID, p.ID), Kind: PeerLink,
				FromRegion: n.Node.Region, FromNode: n.Node.ID, ToNode: p.ID, ToRegion: target.Node.Region,
				Listen: p.PeerAddress, Upstream: target.Listen.Peer})
		}
	}
	for _, region := range links.Regions() {
		for _, id := range sortedIDs(links[region]) {
			target, ok := byID[id]
			if !ok {
				errs = append(errs, fmt.Errorf("client links: regions.%s names node %d, which has no config", region, id))
				continue
			}
			planned = append(planned, Link{Name: fmt.Sprintf("client %s->%d", region, id), Kind: ClientLink,
				FromRegion: region, ToNode: id, ToRegion: target.Node.Region,
				Listen: links[region][id], Upstream: target.Listen.Client})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ProxyPlan{}, err
	}
	return model.Plan(planned...)
}

// Plan is a plan of links (which say where they listen, lead and which regions they join)
// with their delays filled from the model, checked: no two listen on one address, none
// leads into another.
func (m LinkModel) Plan(links ...Link) (ProxyPlan, error) {
	plan := ProxyPlan{
		Scale:                m.scale(),
		IntraRegionRTTMillis: m.IntraRegionRTT.Milliseconds(),
		CompensationMillis:   m.Compensation.Milliseconds(),
	}
	var errs []error
	for _, l := range links {
		l, err := m.link(l)
		errs = append(errs, err)
		plan.Links = append(plan.Links, l)
	}
	if err := errors.Join(errs...); err != nil {
		return ProxyPlan{}, err
	}
	if err := plan.check(); err != nil {
		return ProxyPlan{}, err
	}
	return plan, nil
}

// link fills l's delays from the model.
func (m LinkModel) link(l Link) (Link, error) {
	for _, r := range []string{l.FromRegion, l.ToRegion} {
		if m.Matrix.Len() > 0 && !m.Matrix.Has(r) {
			return l, fmt.Errorf("link %s: region %q is not in the RTT matrix (it has %v)", l.Name, r, m.Matrix.Regions())
		}
	}
	rtt, err := m.RTT(l.FromRegion, l.ToRegion)
	if err != nil {
		return l, fmt.Errorf("link %s: %w", l.Name, err)
	}
	up, down := m.Delays(rtt)
	l.RTTMillis = rtt.Milliseconds()
	l.UpstreamMillis = up.Milliseconds()
	l.DownstreamMillis = down.Milliseconds()
	l.JitterMillis = roundMillis(m.Jitter).Milliseconds()
	return l, nil
}

func (p ProxyPlan) check() error {
	var errs []error
	listen := map[string]string{}
	for _, l := range p.Links {
		if other, dup := listen[l.Listen]; dup {
			errs = append(errs, fmt.Errorf("links %q and %q both listen on %s", other, l.Name, l.Listen))
		}
		listen[l.Listen] = l.Name
		if l.UpstreamMillis < 0 || l.DownstreamMillis < 0 || l.JitterMillis < 0 {
			errs = append(errs, fmt.Errorf("link %q: negative delay", l.Name))
		}
	}
	for _, l := range p.Links {
		if other, loop := listen[l.Upstream]; loop {
			errs = append(errs, fmt.Errorf("link %q forwards to %s, which is link %q's listener", l.Name, l.Upstream, other))
		}
	}
	return errors.Join(errs...)
}

// ListenAddresses names each proxy's listener, for port checks.
func (p ProxyPlan) ListenAddresses() []NamedAddress {
	out := make([]NamedAddress, 0, len(p.Links))
	for _, l := range p.Links {
		out = append(out, NamedAddress{What: "proxy of link " + l.Name, Address: l.Listen})
	}
	return out
}

// WritePlan stores the plan as JSON.
func WritePlan(path string, p ProxyPlan) error {
	raw, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode proxy plan: %w", err)
	}
	return writeFileAtomic(path, append(raw, '\n'))
}

// ReadPlan loads a plan written by WritePlan.
func ReadPlan(path string) (ProxyPlan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ProxyPlan{}, fmt.Errorf("read proxy plan: %w", err)
	}
	var p ProxyPlan
	if err := json.Unmarshal(raw, &p); err != nil {
		return ProxyPlan{}, fmt.Errorf("proxy plan %s: %w", path, err)
	}
	if len(p.Links) == 0 {
		return ProxyPlan{}, fmt.Errorf("proxy plan %s: no links", path)
	}
	if err := p.check(); err != nil {
		return ProxyPlan{}, fmt.Errorf("proxy plan %s: %w", path, err)
	}
	return p, nil
}
