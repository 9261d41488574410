package node_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// holderTiming is a lease long enough that no stall of a loaded machine lets a holder's read
// lease lapse between the check that it is held and the read that relies on it.
func holderTiming(holders ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.Timing.HeartbeatInterval, c.Timing.LeaseDuration = 100*time.Millisecond, 1500*time.Millisecond
		c.Timing.ElectionTimeoutMin, c.Timing.ElectionTimeoutMax = 3*time.Second, 6*time.Second
		c.ReadLeases.Holders = holders
	}
}

// waitReadLease waits until node i holds a read lease as a holder.
func (c *testCluster) waitReadLease(i int, timeout time.Duration) *georaftv1.StatusResponse {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := c.status(i)
		if err == nil && st.ReadLeaseState == georaftv1.LeaseState_LEASE_STATE_HELD {
			return st
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("node %d holds no read lease after %v", i+1, timeout)
	return nil
}

// A holder answers lease reads itself, in georaft.v1 and in the etcd API; a follower that
// holds none sends the client to the leader (v1) or forwards (etcd).
func TestReadLeaseHolderAnswersLinearizableReadsLocally(t *testing.T) {
	c := newTestCluster(t, 3, holderTiming("region-2"))
	c.makeLeader(0, 20*time.Second)
	c.mustSet("k", "v1")

	st := c.waitReadLease(1, 10*time.Second)
	if !slices.Equal(st.ReadLeaseHolders, []uint64{2}) || st.ReadLeaseRemainingNanos <= 0 || st.ReadLeaseDurationNanos != int64(1500*time.Millisecond) {
		t.Fatalf("holder's status: holders %v, read lease %v left of %v", st.ReadLeaseHolders,
			time.Duration(st.ReadLeaseRemainingNanos), time.Duration(st.ReadLeaseDurationNanos))
	}
	got, err := c.get(1, "k", georaftv1.ReadMode_READ_MODE_LEASE)
	if err != nil {
		t.Fatalf("lease read at the holder: %v", err)
	}
	if got.Header.NodeId != 2 || string(got.Value) != "v1" || got.ServedMode != georaftv1.ReadMode_READ_MODE_LEASE {
		t.Fatalf("lease read at the holder: node %d, value %q, served %v; want node 2, v1, lease", got.Header.NodeId, got.Value, got.ServedMode)
	}
	if _, err := c.get(2, "k", georaftv1.ReadMode_READ_MODE_LEASE); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("lease read at node 3, no holder: %v; want a redirect to the leader", err)
	}

	cli := etcdClient(t, c.cfgs[1].Listen.Client)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.MemberId != 2 || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("etcd linearizable get at the holder: answered by member %d, kvs %v; want member 2 (not forwarded)", resp.Header.MemberId, resp.Kvs)
	}
	far := etcdClient(t, c.cfgs[2].Listen.Client)
	resp, err = far.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("etcd linearizable get at node 3, forwarded to the leader: %v", resp.Kvs)
	}
}

// `georaft read-leases set` changes the holders through the log, on every node.
func TestReadLeaseHoldersChangeAtRunTime(t *testing.T) {
	c := newTestCluster(t, 3, holderTiming(config.HoldersNone))
	leader := c.waitLeader(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.clients[leader].SetReadLeaseHolders(ctx, &georaftv1.SetReadLeaseHoldersRequest{Holders: []string{config.HoldersAll}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Holders, []uint64{1, 2, 3}) || resp.Index == 0 {
		t.Fatalf("set all: holders %v at index %d", resp.Holders, resp.Index)
	}
	follower := (leader + 1) % 3
	c.waitApplied(follower, resp.Index, 10*time.Second)
	if st := c.waitReadLease(follower, 10*time.Second); !slices.Equal(st.ReadLeaseHolders, []uint64{1, 2, 3}) {
		t.Fatalf("follower's holders %v", st.ReadLeaseHolders)
	}
	c.mustSet("k", "v")
	if got, err := c.get(follower, "k", georaftv1.ReadMode_READ_MODE_LEASE); err != nil || got.Header.NodeId != uint64(follower+1) {
		t.Fatalf("lease read at holder %d: %v, %v", follower+1, got, err)
	}

	if _, err := c.clients[leader].SetReadLeaseHolders(ctx, &georaftv1.SetReadLeaseHoldersRequest{Holders: []string{"region-9"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown region: %v; want INVALID_ARGUMENT", err)
	}
	resp, err = c.clients[leader].SetReadLeaseHolders(ctx, &georaftv1.SetReadLeaseHoldersRequest{Holders: []string{config.HoldersNone}})
	if err != nil || len(resp.Holders) != 0 {
		t.Fatalf("set none: %v, %v", resp, err)
	}
	c.waitApplied(follower, resp.Index, 10*time.Second)
	// The read lease it held runs out; then it redirects.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.get(follower, "k", georaftv1.ReadMode_READ_MODE_LEASE)
		if status.Code(err) == codes.FailedPrecondition {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d still answers lease reads after its read lease was withdrawn: %v", follower+1, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A stale answer says how old it may be; a client that asks for fresher data than a node can
// promise is refused; timing.max_staleness 0 means the lease duration, in the node as in the
// core.
func TestStaleReadsCarryTheirBound(t *testing.T) {
	c := newTestCluster(t, 3, func(c *config.Config) {
		holderTiming(config.HoldersNone)(c)
		c.Timing.MaxStaleness = 0
	})
	leader := c.waitLeader(20 * time.Second)
	c.mustSet("k", "v")
	follower := (leader + 1) % 3
	st := c.mustStatus(follower)
	if st.MaxStalenessNanos != int64(1500*time.Millisecond) {
		t.Fatalf("max_staleness 0: status says %v; want the lease duration", time.Duration(st.MaxStalenessNanos))
	}
	var got *georaftv1.GetResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		got, err = c.get(follower, "k", georaftv1.ReadMode_READ_MODE_STALE)
		if err == nil && string(got.Value) == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale read at node %d: %v, %v", follower+1, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b := time.Duration(got.StalenessBoundNanos); b <= 0 || b > 1500*time.Millisecond {
		t.Fatalf("stale answer's bound %v; want in (0, lease duration]", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.clients[follower].Get(ctx, &georaftv1.GetRequest{Key: []byte("k"), ReadMode: georaftv1.ReadMode_READ_MODE_STALE, MaxStalenessNanos: 1})
	if status.Code(err) != codes.Unavailable || errorReason(err) != node.ReasonTooStale {
		t.Fatalf("stale read asking for 1ns: %v; want UNAVAILABLE TOO_STALE", err)
	}

	// The etcd API, by its own gRPC definitions (clientv3 would retry UNAVAILABLE).
	kv := etcdpb.NewKVClient(c.conns[follower])
	serializable := &etcdpb.RangeRequest{Key: []byte("k"), Serializable: true}
	if _, err := kv.Range(withMaxStaleness(ctx, "1ns"), serializable); status.Code(err) != codes.Unavailable {
		t.Fatalf("etcd serializable range asking for 1ns: %v; want UNAVAILABLE", err)
	}
	var header metadata.MD
	if _, err := kv.Range(withMaxStaleness(ctx, "10s"), serializable, grpc.Header(&header)); err != nil {
		t.Fatalf("etcd serializable range asking for 10s: %v", err)
	}
	if b, err := time.ParseDuration(strings.Join(header.Get(node.StalenessBoundMetadata), "")); err != nil || b <= 0 || b > 1500*time.Millisecond {
		t.Fatalf("etcd serializable range: %s %q; want a duration in (0, lease duration]", node.StalenessBoundMetadata, header.Get(node.StalenessBoundMetadata))
	}
	if _, err := kv.Range(withMaxStaleness(ctx, "soon"), serializable); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("etcd serializable range with a malformed bound: %v; want INVALID_ARGUMENT", err)
	}
}

func withMaxStaleness(ctx context.Context, d string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, node.MaxStalenessMetadata, d)
}
