// Package client is the georaft client library: it finds the leader through any node,
// follows NotLeader redirects, retries with exponential backoff and full jitter within one
// deadline per operation, and tags every write with a write session so that a retried
// write is applied once.
//
//	c, err := client.New(client.Options{Endpoints: []string{"127.0.0.1:7201"}})
//	_, err = c.Set(ctx, "x", []byte("5"))
//	res, err := c.Get(ctx, "x", readmode.Lease) // res.Found, res.Value, res.Served
//
// A Client is safe for concurrent use and keeps one gRPC connection per endpoint.
package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// endpoint is one address the client talks to, with its long-lived connection.
type endpoint struct {
	addr string
	conn *grpc.ClientConn
	kv   georaftv1.KVServiceClient
	// configured is false for addresses learned from a redirect's leader_address.
	configured bool

	// Guarded by Client.mu.
	nodeID uint64
	region string
	// probed is when the client last asked this endpoint who it is, so that an endpoint
	// that stays silent is not asked again on every redirect.
	probed time.Time
	// rtt is the round trip the client measured to this endpoint (0: not measured), and
	// holder whether the node there held a read lease in its membership when last asked;
	// noLeaseUntil keeps lease reads away from it for a while after it redirected one.
	rtt          time.Duration
	holder       bool
	noLeaseUntil time.Time
}

// reprobeAfter spaces out identity probes of an endpoint that did not answer.
const reprobeAfter = time.Second

// Client talks to a georaft cluster. Create it with New; Close it when done.
type Client struct {
	opts     Options
	backoff  Backoff
	sessions *sessionPool

	mu        sync.Mutex
	closed    bool
	endpoints []*endpoint // configured first, in order, then learned ones
	byAddr    map[string]*endpoint
	byID      map[uint64]*endpoint
	leader    *endpoint // cached; nil when unknown
	next      int       // rotation cursor over endpoints when no leader is known
	// regionsProbed: the endpoints' regions were asked for once (for stale reads).
	regionsProbed bool
	// rttsMeasured is when the round trips to every endpoint were last measured (rtt.go).
	rttsMeasured time.Time
	measuring    bool
	// now times the probes (time.Now; a test's clock).
	now func() time.Time
}

// New creates a client. It does not contact the cluster: connections are established on
// first use, so New succeeds even when every node is down.
func New(opts Options) (*Client, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts:     opts,
		backoff:  Backoff{Base: opts.BackoffBase, Max: opts.BackoffMax},
		sessions: newSessionPool(opts.ClientID),
		byAddr:   map[string]*endpoint{},
		byID:     map[uint64]*endpoint{},
		now:      time.Now,
	}
	for _, addr := range opts.Endpoints {
		ep, err := c.dial(addr, true)
		if err != nil {
			c.Close()
			return nil, err
		}
		if id := opts.NodeIDs[addr]; id != 0 {
			ep.nodeID = id
			c.byID[id] = ep
		}
	}
	return c, nil
}

// dial registers addr and creates its connection (lazily connected). Callers hold c.mu or
// are New.
func (c *Client) dial(addr string, configured bool) (*endpoint, error) {
	creds := insecure.NewCredentials()
	if c.opts.TLS != nil {
		creds = credentials.NewTLS(c.opts.TLS)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			// Reconnect quickly after a node restarts: the retry loop already backs off.
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: c.opts.DialTimeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("client: endpoint %q: %w", addr, err)
	}
	ep := &endpoint{addr: addr, conn: conn, kv: georaftv1.NewKVServiceClient(conn), configured: configured}
	c.endpoints = append(c.endpoints, ep)
	c.byAddr[addr] = ep
	return ep, nil
}

// Close closes every connection. Calls in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var first error
	for _, ep := range c.endpoints {
		if err := ep.conn.Close(); err != nil && first == nil {
			first = fmt.Errorf("close connection to %s: %w", ep.addr, err)
		}
	}
	return first
}

// ClientID is the id of this client's first write session.
func (c *Client) ClientID() uint64 { return c.sessions.primary }

// Endpoints lists the configured endpoints, in order.
func (c *Client) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ep := range c.endpoints {
		if ep.configured {
			out = append(out, ep.addr)
		}
	}
	return out
}

// Leader returns the cached leader's node id and the endpoint used to reach it, or zero
// and "" when none is cached.
func (c *Client) Leader() (uint64, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == nil {
		return 0, ""
	}
	return c.leader.nodeID, c.leader.addr
}

// learn records that ep reaches node id (in region, if not empty).
func (c *Client) learn(ep *endpoint, id uint64, region string) {
	if id == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.learnLocked(ep, id, region)
}

func (c *Client) learnLocked(ep *endpoint, id uint64, region string) {
	if region != "" {
		ep.region = region
	}
	if ep.nodeID == id {
		return
	}
	ep.nodeID = id
	// A configured endpoint wins over one learned from a redirect: it is the route the
	// user chose (a proxy, a tunnel).
	if cur, ok := c.byID[id]; !ok || !cur.configured || ep.configured {
		c.byID[id] = ep
	}
}

// leaderTarget is where a leader-bound attempt goes: the cached leader, else the next
// endpoint in rotation.
func (c *Client) leaderTarget() (*endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.leader != nil {
		return c.leader, nil
	}
	return c.rotateLocked(), nil
}

func (c *Client) rotateLocked() *endpoint {
	ep := c.endpoints[c.next%len(c.endpoints)]
	c.next++
	return ep
}

// forgetLeader drops the cached leader if it is ep and moves the rotation past ep, so the
// next attempt tries another node.
func (c *Client) forgetLeader(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader == ep {
		c.leader = nil
	}
	for i, e := range c.endpoints {
		if e == ep {
			c.next = i + 1
			break
		}
	}
}

func (c *Client) setLeader(ep *endpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = ep
}

// resolveLeader maps a redirect to an endpoint: the endpoint known to reach that node id;
// else, after identifying the endpoints whose node is unknown, one of those; else the
// address the node advertised, dialed as a new endpoint. It returns nil when the redirect
// names no usable leader.
func (c *Client) resolveLeader(ctx context.Context, nl *georaftv1.NotLeader) *endpoint {
	id := nl.GetLeaderId()
	if id == 0 {
		return nil
	}
	c.mu.Lock()
	ep := c.byID[id]
	var unknown []*endpoint
	if ep == nil {
		for _, e := range c.endpoints {
			if e.nodeID == 0 && time.Since(e.probed) > reprobeAfter {
				e.probed = time.Now()
				unknown = append(unknown, e)
			}
		}
	}
	c.mu.Unlock()
	if ep != nil {
		return ep
	}
	if len(unknown) > 0 {
		c.identify(ctx, unknown)
		c.mu.Lock()
		ep = c.byID[id]
		c.mu.Unlock()
		if ep != nil {
			return ep
		}
	}
	addr := nl.GetLeaderAddress()
	if addr == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	ep = c.byAddr[addr]
	if ep == nil {
		var err error
		ep, err = c.dial(addr, false)
		if err != nil {
			c.opts.Logger.Debug("cannot dial advertised leader address", "leader", id, "address", addr, "err", err)
			return nil
		}
	}
	c.learnLocked(ep, id, "")
	return c.byID[id]
}

// identify asks each endpoint for its Status concurrently, within a short bound, and
// records which node each reaches.
func (c *Client) identify(ctx context.Context, eps []*endpoint) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The probe's round trip is a routing input (rtt.go): time it on an established
			// connection, or the first one would count connection set-up too.
			connected(ctx, ep.conn)
			start := c.now()
			st, err := ep.kv.Status(ctx, &georaftv1.StatusRequest{})
			if err != nil {
				c.opts.Logger.Debug("status probe failed", "endpoint", ep.addr, "err", err)
				return
			}
			c.learn(ep, st.GetId(), st.GetRegion())
			c.noteProbe(ep, c.now().Sub(start), st)
		}()
	}
	wg.Wait()
}

// localTarget is where a stale read goes: a node in Options.Region when one is known,
// else the first endpoint; after a failure, the rotation.
func (c *Client) localTarget(ctx context.Context, attempt int) (*endpoint, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if attempt > 0 {
		defer c.mu.Unlock()
		return c.rotateLocked(), nil
	}
	region := c.opts.Region
	if region == "" || c.opts.ReadEndpoint != "" {
		c.mu.Unlock()
		return c.nearestTarget(ctx, attempt, false)
	}
	var unknown []*endpoint
	for _, ep := range c.endpoints {
		if !ep.configured {
			continue
		}
		if region != "" && ep.region == region {
			c.mu.Unlock()
			return ep, nil
		}
		if ep.region == "" {
			unknown = append(unknown, ep)
		}
	}
	first := c.endpoints[0]
	probe := region != "" && len(unknown) > 0 && !c.regionsProbed
	c.regionsProbed = c.regionsProbed || probe
	c.mu.Unlock()
	if !probe {
		return first, nil
	}
	c.identify(ctx, unknown)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ep := range c.endpoints {
		if ep.configured && ep.region == region {
			return ep, nil
		}
	}
	return first, nil
}
