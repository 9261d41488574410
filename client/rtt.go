package client

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/georaft/georaft/geo"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// MeasuredRTTMatrix turns what each node measured to its peers (Status peers[].rtt_nanos,
// from the transport's pings) into a region RTT matrix, for tuning leases from real figures
// instead of published ones. Both directions of a pair are averaged, and so are several
// node pairs between the same two regions. A pair nobody measured (a node down, or pings
// not yet answered) is an error naming it.
func MeasuredRTTMatrix(statuses []NodeStatus) (geo.Matrix, error) {
	regionOf := map[uint64]string{}
	for _, ns := range statuses {
		if ns.Status == nil {
			continue
		}
		regionOf[ns.Status.Id] = ns.Status.Region
		for _, p := range ns.Status.Peers {
			if _, ok := regionOf[p.Id]; !ok {
				regionOf[p.Id] = p.Region
			}
		}
	}
	var regions []string
	for _, r := range regionOf {
		if r == "" {
			return geo.Matrix{}, fmt.Errorf("a node reports no region; set node.region in its config")
		}
		if !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	if len(regions) < 2 {
		return geo.Matrix{}, fmt.Errorf("need nodes in at least two regions to measure a matrix, got %v", regions)
	}
	idx := map[string]int{}
	for i, r := range regions {
		idx[r] = i
	}
	n := len(regions)
	sum := make([][]time.Duration, n)
	count := make([][]int, n)
	for i := range sum {
		sum[i], count[i] = make([]time.Duration, n), make([]int, n)
	}
	for _, ns := range statuses {
		if ns.Status == nil {
			continue
		}
		a := idx[ns.Status.Region]
		for _, p := range ns.Status.Peers {
			if p.RttNanos <= 0 {
				continue
			}
			b := idx[regionOf[p.Id]]
			rtt := time.Duration(p.RttNanos)
			sum[a][b] += rtt
			sum[b][a] += rtt
			count[a][b]++
			count[b][a]++
		}
	}
	rtt := make([][]time.Duration, n)
	for i := range rtt {
		rtt[i] = make([]time.Duration, n)
		for j := range rtt[i] {
			switch {
			case count[i][j] > 0:
				rtt[i][j] = sum[i][j] / time.Duration(count[i][j])
			case i == j:
				// One node in the region: nothing to measure inside it.
			default:
				return geo.Matrix{}, fmt.Errorf("no RTT measured between %s and %s: is a node there down, or has it not pinged its peers yet?",
					regions[i], regions[j])
			}
		}
	}
	return geo.New(regions, rtt, geo.DefaultTolerance)
}

// How the client picks the node for a read that a node near it can answer (a lease read at
// a read-lease holder or the leader; a stale read anywhere): the nearest one by round trip,
// as the client measures it. Every endpoint is asked for its Status, concurrently, at the
// first such read and again every rttRefresh; the call's round trip is the endpoint's RTT
// (the smoothed mean of the probes), and the answer says whether the node holds a read lease
// and which node leads. A lease read that the chosen node cannot answer (no lease there any
// more) is redirected to the leader as any read, and that node is skipped for lease reads
// until the next measurement.
//
// A probe is timed only once its connection is up. A first call on a new connection also
// waits for the connection's set-up, one round trip or more, and a smoothed mean takes many
// probes to forget that: in make bench, the asia-east1 client's first probe of the us-west1
// holder (118 ms away, connection new) came out above the already connected leader (155 ms),
// and its lease reads went to the leader for the whole measurement.

// rttRefresh is how often the round trips are measured again.
const rttRefresh = 10 * time.Second

// rttSmoothing weighs a new probe against the mean so far.
const rttSmoothing = 0.3

// connected returns once conn is ready, has failed (the call that follows then fails as it
// would have), or ctx is done.
func connected(ctx context.Context, conn *grpc.ClientConn) {
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready || state == connectivity.TransientFailure || state == connectivity.Shutdown {
			return
		}
		if !conn.WaitForStateChange(ctx, state) {
			return
		}
	}
}

// noteProbe records a Status probe of ep that took rtt.
func (c *Client) noteProbe(ep *endpoint, rtt time.Duration, st *georaftv1.StatusResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep.rtt == 0 {
		ep.rtt = rtt
	} else {
		ep.rtt = time.Duration((1-rttSmoothing)*float64(ep.rtt) + rttSmoothing*float64(rtt))
	}
	ep.holder = slices.Contains(st.GetReadLeaseHolders(), st.GetId())
	if st.GetRole() == georaftv1.Role_ROLE_LEADER && c.leader == nil {
		c.leader = ep
	}
}

// measureRTTs probes every configured endpoint when the last measurement is older than
// rttRefresh: synchronously the first time (the read that asked needs the answer), in the
// background afterwards.
func (c *Client) measureRTTs(ctx context.Context) {
	c.mu.Lock()
	if c.closed || c.measuring || time.Since(c.rttsMeasured) < rttRefresh {
		c.mu.Unlock()
		return
	}
	first := c.rttsMeasured.IsZero()
	c.measuring = true
	var eps []*endpoint
	for _, ep := range c.endpoints {
		if ep.configured {
			eps = append(eps, ep)
		}
	}
	c.mu.Unlock()
	probe := func(ctx context.Context) {
		c.identify(ctx, eps)
		c.mu.Lock()
		c.rttsMeasured, c.measuring = time.Now(), false
		c.mu.Unlock()
	}
	if first {
		probe(ctx)
		return
	}
	go probe(context.WithoutCancel(ctx))
}

// nearestTarget is the endpoint with the lowest measured round trip among those that can
// answer: for a lease read, read-lease holders and the leader; for a stale read, any. After
// a failed attempt it rotates, as other routes do.
func (c *Client) nearestTarget(ctx context.Context, attempt int, lease bool) (*endpoint, error) {
	c.measureRTTs(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if attempt > 0 {
		if lease && c.leader != nil {
			return c.leader, nil
		}
		return c.rotateLocked(), nil
	}
	if ep := c.byAddr[c.opts.ReadEndpoint]; ep != nil && (!lease || time.Now().After(ep.noLeaseUntil)) {
		return ep, nil
	}
	var best *endpoint
	for _, ep := range c.endpoints {
		if !ep.configured || ep.rtt == 0 {
			continue
		}
		if lease && ep != c.leader && (!ep.holder || time.Now().Before(ep.noLeaseUntil)) {
			continue
		}
		if best == nil || ep.rtt < best.rtt {
			best = ep
		}
	}
	if best != nil {
		return best, nil
	}
	if lease && c.leader != nil {
		return c.leader, nil
	}
	return c.rotateLocked(), nil
}

// noLeaseAt records that ep could not answer a lease read.
func (c *Client) noLeaseAt(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep.noLeaseUntil = time.Now().Add(rttRefresh)
}

// RTTs returns the round trip measured to each endpoint that has one.
func (c *Client) RTTs() map[string]time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]time.Duration{}
	for _, ep := range c.endpoints {
		if ep.rtt > 0 {
			out[ep.addr] = ep.rtt
		}
	}
	return out
}
