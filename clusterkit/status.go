package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/tlsutil"
)

// clientTLS is the TLS configuration a client of the cluster needs, nil without TLS: the
// CA of the nodes' configs, and the admin certificate when the kit issued one.
func (c *Cluster) clientTLS() (*config.TLSConfig, bool) {
	for _, n := range c.Nodes {
		if n.Config.TLS.Enabled {
			t := n.Config.TLS
			t.CertFile, t.KeyFile = "", ""
			if c.CertDir != "" {
				f := tlsutil.ClusterFileNames(c.CertDir, nil, []string{adminClient}).Clients[adminClient]
				t.CertFile, t.KeyFile = f.Cert, f.Key
			}
			return &t, true
		}
	}
	return nil, false
}

// KV is a KVService client connected straight to member id's own listener (no link, no
// retries), for status calls and tests.
func (c *Cluster) KV(id uint64) (georaftv1.KVServiceClient, error) {
	conn, err := c.conn(id)
	if err != nil {
		return nil, err
	}
	return georaftv1.NewKVServiceClient(conn), nil
}

// Membership is a MembershipService client connected straight to member id's listener.
func (c *Cluster) Membership(id uint64) (georaftv1.MembershipServiceClient, error) {
	conn, err := c.conn(id)
	if err != nil {
		return nil, err
	}
	return georaftv1.NewMembershipServiceClient(conn), nil
}

func (c *Cluster) conn(id uint64) (*grpc.ClientConn, error) {
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, ok := c.conns[id]
	if !ok {
		creds := insecure.NewCredentials()
		if t, ok := c.clientTLS(); ok {
			tlsCfg, err := tlsutil.ClientConfig(t.CAFile, t.CertFile, t.KeyFile, "")
			if err != nil {
				return nil, err
			}
			creds = credentials.NewTLS(tlsCfg)
		}
		if conn, err = grpc.NewClient(n.ClientAddr(), grpc.WithTransportCredentials(creds)); err != nil {
			return nil, fmt.Errorf("dial node %d at %s: %w", id, n.ClientAddr(), err)
		}
		c.conns[id] = conn
	}
	return conn, nil
}

// Status asks member id for its status, within timeout.
func (c *Cluster) Status(ctx context.Context, id uint64, timeout time.Duration) (*georaftv1.StatusResponse, error) {
	kv, err := c.KV(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return kv.Status(ctx, &georaftv1.StatusRequest{})
}

// Statuses asks every serving node for its status in parallel, each within timeout, with
// the state hash when withHash. Nodes that do not answer are in errs instead.
func (c *Cluster) Statuses(ctx context.Context, timeout time.Duration, withHash bool) (map[uint64]*georaftv1.StatusResponse, map[uint64]error) {
	var mu sync.Mutex
	out, errs := map[uint64]*georaftv1.StatusResponse{}, map[uint64]error{}
	var wg sync.WaitGroup
	for _, id := range c.Serving() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kv, err := c.KV(id)
			var st *georaftv1.StatusResponse
			if err == nil {
				callCtx, cancel := context.WithTimeout(ctx, timeout)
				st, err = kv.Status(callCtx, &georaftv1.StatusRequest{IncludeStateHash: withHash})
				cancel()
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[id] = err
			} else {
				out[id] = st
			}
		}()
	}
	wg.Wait()
	return out, errs
}

// Want says what WaitLeader waits for.
type Want struct {
	// All: every serving node answers and names the leader. Without it, a majority of the
	// members naming the leader in its term is enough.
	All bool
	// Lease: the leader holds its lease.
	Lease bool
}

// Leader is a leader the cluster agrees on, with the statuses that show it.
type Leader struct {
	ID, Term uint64
	Statuses map[uint64]*georaftv1.StatusResponse
}

// AgreedLeader finds a leader that a majority of a cluster of size names in its term.
func AgreedLeader(statuses map[uint64]*georaftv1.StatusResponse, size int) (id, term uint64, ok bool) {
	for _, id := range sortedIDs(statuses) {
		st := statuses[id]
		if st.GetRole() != georaftv1.Role_ROLE_LEADER {
			continue
		}
		agree := 0
		for _, other := range statuses {
			if other.GetLeaderId() == id && other.GetTerm() == st.GetTerm() {
				agree++
			}
		}
		if agree > size/2 {
			return id, st.GetTerm(), true
		}
	}
	return 0, 0, false
}

// checkLeader polls once; the error says what is missing.
func (c *Cluster) checkLeader(ctx context.Context, want Want) (Leader, error) {
	statuses, errs := c.Statuses(ctx, time.Second, false)
	id, term, ok := AgreedLeader(statuses, len(c.Nodes))
	switch {
	case !ok:
		return Leader{}, c.describe("no leader a majority agrees on", statuses, errs)
	case want.All && len(errs) > 0:
		return Leader{}, c.describe(fmt.Sprintf("leader %d (term %d), but not every node answers", id, term), statuses, errs)
	case want.Lease && statuses[id].GetLeaseState() != georaftv1.LeaseState_LEASE_STATE_HELD:
		return Leader{}, c.describe(fmt.Sprintf("leader %d (term %d) does not hold its lease yet", id, term), statuses, errs)
	}
	if want.All {
		for nid, st := range statuses {
			if st.GetLeaderId() != id {
				return Leader{}, c.describe(fmt.Sprintf("node %d names leader %d, not %d", nid, st.GetLeaderId(), id), statuses, errs)
			}
		}
	}
	return Leader{ID: id, Term: term, Statuses: statuses}, nil
}

// describe is summary and each node's last answer.
func (c *Cluster) describe(summary string, statuses map[uint64]*georaftv1.StatusResponse, errs map[uint64]error) error {
	var b strings.Builder
	b.WriteString(summary)
	for _, n := range c.Nodes {
		switch st, err := statuses[n.ID], errs[n.ID]; {
		case st != nil:
			fmt.Fprintf(&b, "\n  node %d: %s, term %d, leader %d, lease %s", n.ID, strings.TrimPrefix(st.GetRole().String(), "ROLE_"),
				st.GetTerm(), st.GetLeaderId(), strings.TrimPrefix(st.GetLeaseState().String(), "LEASE_STATE_"))
		case err != nil:
			fmt.Fprintf(&b, "\n  node %d: status at %s failed: %s", n.ID, n.ClientAddr(), client.DescribeRPCError(err))
		case n.Running():
			fmt.Fprintf(&b, "\n  node %d: paused", n.ID)
		default:
			fmt.Fprintf(&b, "\n  node %d: not running", n.ID)
		}
	}
	return errors.New(b.String())
}

// WaitLeader polls until a leader is agreed on as want says, or timeout passes. It gives
// up at once when a node has exited on its own. Its error names each node's last answer,
// and ends with the log of the nodes that exited or did not answer.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration, want Want) (Leader, error) {
	var leader Leader
	err := WaitFor(ctx, timeout, "a leader", func() error {
		var err error
		if leader, err = c.checkLeader(ctx, want); err == nil {
			return nil
		}
		var dead []string
		for _, n := range c.Nodes {
			if how, ok := n.exitedUnasked(); ok {
				dead = append(dead, fmt.Sprintf("node %d (%s)", n.ID, how))
			}
		}
		if len(dead) > 0 {
			return Stop(fmt.Errorf("%s exited before a leader was agreed on: %w", strings.Join(dead, ", "), err))
		}
		return err
	})
	if err != nil {
		return Leader{}, c.withTails(err)
	}
	return leader, nil
}

// withTails appends the end of the log of each node that is down or does not answer.
func (c *Cluster) withTails(err error) error {
	var b strings.Builder
	b.WriteString(err.Error())
	for _, n := range c.Nodes {
		if _, dead := n.exitedUnasked(); dead || !n.Serving() || strings.Contains(err.Error(), fmt.Sprintf("node %d: status", n.ID)) {
			fmt.Fprintf(&b, "\n--- tail of %s ---\n%s", c.rel(n.LogPath), n.Tail(20))
		}
	}
	return errors.New(b.String())
}

// Up starts every node and waits for a leader; if none comes it stops the nodes again and
// says why (their logs stay in their data dirs).
func (c *Cluster) Up(ctx context.Context, timeout time.Duration, want Want) (Leader, error) {
	if err := c.Start(ctx); err != nil {
		return Leader{}, err
	}
	leader, err := c.WaitLeader(ctx, timeout, want)
	if err != nil {
		return Leader{}, errors.Join(err, c.Stop(context.Background()))
	}
	c.Logf("leader: node %d (%s), term %d", leader.ID, c.Node(leader.ID).Region, leader.Term)
	return leader, nil
}

// PinLeader makes member target the leader and waits until it holds its lease: it asks
// the current leader to hand leadership over (again every few seconds if that has not
// happened) and polls until target leads with its lease held.
func (c *Cluster) PinLeader(ctx context.Context, target uint64, timeout time.Duration) (Leader, error) {
	if _, err := c.node(target); err != nil {
		return Leader{}, fmt.Errorf("pin leader: %w", err)
	}
	const retransfer = 3 * time.Second
	var lastAsk time.Time
	var lastTransferErr error
	var leader Leader
	err := WaitFor(ctx, timeout, fmt.Sprintf("node %d to lead with its lease held", target), func() error {
		statuses, errs := c.Statuses(ctx, time.Second, false)
		if st := statuses[target]; st.GetRole() == georaftv1.Role_ROLE_LEADER && st.GetLeaseState() == georaftv1.LeaseState_LEASE_STATE_HELD {
			leader = Leader{ID: target, Term: st.GetTerm(), Statuses: statuses}
			return nil
		}
		if id, _, ok := AgreedLeader(statuses, len(c.Nodes)); ok && id != target && time.Since(lastAsk) > retransfer {
			lastAsk = time.Now()
			if kv, err := c.KV(id); err == nil {
				callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, lastTransferErr = kv.TransferLeader(callCtx, &georaftv1.TransferLeaderRequest{TargetId: target})
				cancel()
				if lastTransferErr == nil {
					c.Logf("asked node %d to hand leadership to node %d", id, target)
				}
			}
		}
		summary := "not yet"
		if lastTransferErr != nil {
			summary = fmt.Sprintf("last transfer request: %s", client.DescribeRPCError(lastTransferErr))
		}
		return c.describe(summary, statuses, errs)
	})
	if err != nil {
		return Leader{}, c.withTails(err)
	}
	return leader, nil
}

// Client is a client of the cluster from region (see ClientOptions) whose requests time
// out after timeout.
func (c *Cluster) Client(region string, timeout time.Duration) (*client.Client, error) {
	opts, err := c.ClientOptions(region)
	if err != nil {
		return nil, err
	}
	opts.RequestTimeout = timeout
	return client.New(opts)
}

// ClientOptions are the client options to reach the cluster from region through its client
// links, or straight at each node's own listener when region is "": endpoints, their node
// ids, the region and TLS.
func (c *Cluster) ClientOptions(region string) (client.Options, error) {
	var eps []client.Endpoint
	if region != "" {
		var err error
		if eps, err = c.Links.Endpoints(region); err != nil {
			return client.Options{}, err
		}
	} else {
		for _, n := range c.Nodes {
			eps = append(eps, client.Endpoint{Address: n.ClientAddr(), NodeID: n.ID})
		}
	}
	opts := client.OptionsFor(client.Options{Region: region}, eps)
	if t, ok := c.clientTLS(); ok {
		tlsCfg, err := tlsutil.ClientConfig(t.CAFile, t.CertFile, t.KeyFile, "")
		if err != nil {
			return client.Options{}, err
		}
		opts.TLS = tlsCfg
	}
	return opts, nil
}
