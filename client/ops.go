package client

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/georaft/georaft/readmode"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Header says who answered an operation and where its log stood.
type Header struct {
	// NodeID is the node that answered; Endpoint the address the client reached it by.
	NodeID   uint64
	Endpoint string
	Term     uint64
	LeaderID uint64
	// AppliedIndex is the applied index the answer reflects.
	AppliedIndex uint64
	// Attempts counts the RPCs the operation took (1 when nothing was retried).
	Attempts int
}

func header(h *georaftv1.ResponseHeader, ep *endpoint, attempts int) Header {
	return Header{NodeID: h.GetNodeId(), Endpoint: ep.addr, Term: h.GetTerm(),
		LeaderID: h.GetLeaderId(), AppliedIndex: h.GetAppliedIndex(), Attempts: attempts}
}

// WriteResult is the outcome of Set or Delete.
type WriteResult struct {
	Header
	// Index is the log index at which the write was committed.
	Index uint64
	// Existed (Delete only) says whether the key existed when the delete was applied.
	Existed bool
	// Session is the write session the write (and each of its retries) carried.
	Session WriteSession
}

// GetResult is the outcome of Get. A missing key is Found == false, not an error.
type GetResult struct {
	Header
	Found bool
	Value []byte
	// Requested is the mode asked for; Served the mode that actually served the read (a
	// lease read on a leader still waiting out an older lease is served as an index read).
	Requested readmode.Mode
	Served    readmode.Mode
	// StalenessBound, for a stale read: the answer is at most this old, as the node that
	// answered could promise.
	StalenessBound time.Duration
}

// GetOptions refine a Get.
type GetOptions struct {
	// MaxStaleness, for a stale read: the oldest data accepted. A node that cannot promise
	// it refuses, and the client tries another (in the end the leader). 0: the node's bound.
	MaxStaleness time.Duration
}

// Set stores value under key. It returns once the write is committed and applied.
func (c *Client) Set(ctx context.Context, key string, value []byte) (WriteResult, error) {
	s, ws := c.sessions.acquire()
	defer c.sessions.release(s)
	req := &georaftv1.SetRequest{Key: []byte(key), Value: value,
		Session: &georaftv1.WriteSession{ClientId: ws.ClientID, Sequence: ws.Sequence}}
	var resp *georaftv1.SetResponse
	ep, attempts, err := c.run(ctx, "set", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := ep.kv.Set(ctx, req)
		resp = r
		return err
	})
	if err != nil {
		return WriteResult{Session: ws}, err
	}
	c.learn(ep, resp.GetHeader().GetNodeId(), "")
	return WriteResult{Header: header(resp.GetHeader(), ep, attempts), Index: resp.GetIndex(), Session: ws}, nil
}

// Delete removes key. Deleting a missing key succeeds with Existed == false.
func (c *Client) Delete(ctx context.Context, key string) (WriteResult, error) {
	s, ws := c.sessions.acquire()
	defer c.sessions.release(s)
	req := &georaftv1.DeleteRequest{Key: []byte(key),
		Session: &georaftv1.WriteSession{ClientId: ws.ClientID, Sequence: ws.Sequence}}
	var resp *georaftv1.DeleteResponse
	ep, attempts, err := c.run(ctx, "delete", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := ep.kv.Delete(ctx, req)
		resp = r
		return err
	})
	if err != nil {
		return WriteResult{Session: ws}, err
	}
	c.learn(ep, resp.GetHeader().GetNodeId(), "")
	return WriteResult{Header: header(resp.GetHeader(), ep, attempts), Index: resp.GetIndex(),
		Existed: resp.GetExisted(), Session: ws}, nil
}

// Get reads key with the given consistency: lease and stale reads at the nearest node that
// can answer them (rtt.go), index and log reads at the leader.
func (c *Client) Get(ctx context.Context, key string, mode readmode.Mode) (GetResult, error) {
	return c.GetWith(ctx, key, mode, GetOptions{})
}

// GetWith is Get with options.
func (c *Client) GetWith(ctx context.Context, key string, mode readmode.Mode, o GetOptions) (GetResult, error) {
	if o.MaxStaleness < 0 {
		return GetResult{Requested: mode}, &InvalidArgumentError{Op: "get", Field: "max_staleness", Description: "must not be negative"}
	}
	req := &georaftv1.GetRequest{Key: []byte(key), ReadMode: georaftv1.ReadModeOf(mode), MaxStalenessNanos: int64(o.MaxStaleness)}
	route := toLeader
	switch mode {
	case readmode.Stale:
		route = toLocal
	case readmode.Lease:
		route = toLeaseServer
	}
	var resp *georaftv1.GetResponse
	ep, attempts, err := c.run(ctx, "get", route, func(ctx context.Context, ep *endpoint) error {
		r, err := ep.kv.Get(ctx, req)
		resp = r
		return err
	})
	if err != nil {
		return GetResult{Requested: mode}, err
	}
	c.learn(ep, resp.GetHeader().GetNodeId(), "")
	served, err := resp.GetServedMode().Mode()
	if err != nil || resp.GetServedMode() == georaftv1.ReadMode_READ_MODE_UNSPECIFIED {
		// A node that does not fill served_mode (or fills it with a mode this client does
		// not know) served what was asked, as far as this client can tell.
		served = mode
	}
	return GetResult{Header: header(resp.GetHeader(), ep, attempts), Found: resp.GetFound(),
		Value: resp.GetValue(), Requested: mode, Served: served, StalenessBound: time.Duration(resp.GetStalenessBoundNanos())}, nil
}

// TransferResult is the outcome of TransferLeader.
type TransferResult struct {
	Header
	LeaderID uint64
	Term     uint64
}

// TransferLeader asks the leader to hand leadership to node target.
func (c *Client) TransferLeader(ctx context.Context, target uint64) (TransferResult, error) {
	if target == 0 {
		return TransferResult{}, &InvalidArgumentError{Op: "transfer-leader", Field: "target_id", Description: "node id 0 is not a node"}
	}
	req := &georaftv1.TransferLeaderRequest{TargetId: target}
	var resp *georaftv1.TransferLeaderResponse
	ep, attempts, err := c.run(ctx, "transfer-leader", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := ep.kv.TransferLeader(ctx, req)
		resp = r
		return err
	})
	if err != nil {
		return TransferResult{}, err
	}
	// The old leader answered; the next call should start at the new one.
	c.mu.Lock()
	if newLeader := c.byID[resp.GetLeaderId()]; newLeader != nil && resp.GetLeaderId() != 0 {
		c.leader = newLeader
	} else if c.leader == ep {
		c.leader = nil
	}
	c.mu.Unlock()
	return TransferResult{Header: Header{NodeID: ep.nodeID, Endpoint: ep.addr, Attempts: attempts},
		LeaderID: resp.GetLeaderId(), Term: resp.GetTerm()}, nil
}

// ReadLeasesResult is the outcome of SetReadLeaseHolders.
type ReadLeasesResult struct {
	Header
	// Holders are the members holding read leases once the change applied.
	Holders []uint64
	// Index is the log index of the change (0: the holders were already these).
	Index uint64
}

// SetReadLeaseHolders changes which members hold read leases, through the log: holders is
// "all", "none", or member ids and region names.
func (c *Client) SetReadLeaseHolders(ctx context.Context, holders []string) (ReadLeasesResult, error) {
	req := &georaftv1.SetReadLeaseHoldersRequest{Holders: holders}
	var resp *georaftv1.SetReadLeaseHoldersResponse
	ep, attempts, err := c.run(ctx, "read-leases set", toLeader, func(ctx context.Context, ep *endpoint) error {
		r, err := ep.kv.SetReadLeaseHolders(ctx, req)
		resp = r
		return err
	})
	if err != nil {
		return ReadLeasesResult{}, err
	}
	return ReadLeasesResult{Header: Header{NodeID: ep.nodeID, Endpoint: ep.addr, Attempts: attempts},
		Holders: resp.GetHolders(), Index: resp.GetIndex()}, nil
}

// NodeStatus is one endpoint's answer to Status, or why it gave none.
type NodeStatus struct {
	Endpoint string
	Status   *georaftv1.StatusResponse // nil when Err is set
	Err      error
	// RTT is the round trip of the Status call.
	RTT time.Duration
}

// Status asks the node behind one endpoint (any address, configured or not) for its
// status, once, without retries: it describes that node, not the cluster.
func (c *Client) Status(ctx context.Context, addr string) (*georaftv1.StatusResponse, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	ep := c.byAddr[addr]
	if ep == nil {
		var err error
		if ep, err = c.dial(addr, false); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	st, err := ep.kv.Status(ctx, &georaftv1.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", addr, err)
	}
	c.learn(ep, st.GetId(), st.GetRegion())
	return st, nil
}

// StatusAll asks every configured endpoint for its status concurrently; the result has one
// entry per endpoint, in configuration order, unreachable ones with Err set. It also caches
// the leader that the answers agree on.
func (c *Client) StatusAll(ctx context.Context) []NodeStatus {
	addrs := c.Endpoints()
	out := make([]NodeStatus, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			st, err := c.Status(ctx, addr)
			out[i] = NodeStatus{Endpoint: addr, Status: st, Err: err, RTT: time.Since(start)}
		}()
	}
	wg.Wait()
	var leaderID, term uint64
	for _, ns := range out {
		if ns.Status != nil && ns.Status.GetRole() == georaftv1.Role_ROLE_LEADER && ns.Status.GetTerm() >= term {
			leaderID, term = ns.Status.GetId(), ns.Status.GetTerm()
		}
	}
	if leaderID != 0 {
		c.mu.Lock()
		if ep := c.byID[leaderID]; ep != nil {
			c.leader = ep
		}
		c.mu.Unlock()
	}
	return out
}

// Nodes returns the node ids the client knows, with the endpoint it uses for each, sorted.
func (c *Client) Nodes() []Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Endpoint
	for id, ep := range c.byID {
		out = append(out, Endpoint{Address: ep.addr, NodeID: id, Region: ep.region})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}
