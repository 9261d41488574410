package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/tlsutil"
)

func etcdClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The etcd API on a follower: writes and linearizable reads are passed to the leader,
// serializable reads answered locally; KV, Txn, Watch, Lease and Compact behave as etcd's.
func TestEtcdAPIThroughAFollower(t *testing.T) {
	tune, metricsAddrs := withMetricsListeners(t, 3, nil)
	c := newTestCluster(t, 3, tune)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	cli := etcdClient(t, c.cfgs[follower].Listen.Client)
	ctx := ctxT(t)

	put, err := cli.Put(ctx, "/app/a", "1")
	if err != nil {
		t.Fatal(err)
	}
	first := put.Header.Revision
	if _, err := cli.Put(ctx, "/app/b", "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/other", "x"); err != nil {
		t.Fatal(err)
	}
	got, err := cli.Get(ctx, "/app/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 2 || string(got.Kvs[1].Value) != "2" || got.Count != 2 {
		t.Fatalf("prefix read: %v", got.Kvs)
	}
	if got.Header.MemberId != uint64(follower+1) {
		t.Fatalf("answered by member %d, the client asked member %d", got.Header.MemberId, follower+1)
	}
	stale, err := cli.Get(ctx, "/app/a", clientv3.WithSerializable())
	if err != nil || len(stale.Kvs) != 1 {
		t.Fatalf("serializable read: %v %v", stale, err)
	}
	// A read mode from metadata.
	for _, mode := range []string{"index", "log"} {
		r, err := cli.Get(metadata.AppendToOutgoingContext(ctx, "georaft-read-mode", mode), "/app/a")
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("%s read: %v %v", mode, r, err)
		}
	}
	if _, err := cli.Get(metadata.AppendToOutgoingContext(ctx, "georaft-read-mode", "bogus"), "/app/a"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown read mode: %v", err)
	}
	if _, err := cli.Get(metadata.AppendToOutgoingContext(ctx, node.PerKeyWaitMetadata, "maybe"), "/app/a"); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), node.PerKeyWaitMetadata) {
		t.Fatalf("a per-key wait that is neither on nor off: %v", err)
	}
	// The mode travels with a forwarded read: the leader's metrics count an etcd range and a
	// log read.
	rangesBefore := metricCount(t, metricsAddrs[leader], "georaft_request_duration_seconds_count", `op="etcd.range"`)
	before := metricCount(t, metricsAddrs[leader], "georaft_read_duration_seconds_count", `mode="log"`)
	if _, err := cli.Get(metadata.AppendToOutgoingContext(ctx, "georaft-read-mode", "log"), "/app/a"); err != nil {
		t.Fatal(err)
	}
	if after := metricCount(t, metricsAddrs[leader], "georaft_request_duration_seconds_count", `op="etcd.range"`); after != rangesBefore+1 {
		t.Fatalf("the leader served %d etcd ranges, want %d: the read was not forwarded to it", after, rangesBefore+1)
	}
	if after := metricCount(t, metricsAddrs[leader], "georaft_read_duration_seconds_count", `mode="log"`); after != before+1 {
		t.Fatalf("the leader served %d log reads, want %d: the read mode was lost on the way", after, before+1)
	}

	// Compare-and-swap.
	txn, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("/app/a"), "=", "1")).
		Then(clientv3.OpPut("/app/a", "2")).Else(clientv3.OpGet("/app/a")).Commit()
	if err != nil || !txn.Succeeded {
		t.Fatalf("cas: %v %v", txn, err)
	}
	txn, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision("/app/a"), "=", first)).
		Then(clientv3.OpPut("/app/a", "3")).Else(clientv3.OpGet("/app/a")).Commit()
	if err != nil || txn.Succeeded || string(txn.Responses[0].GetResponseRange().Kvs[0].Value) != "2" {
		t.Fatalf("failed cas: %v %v", txn, err)
	}

	// Watch from the first revision: history replay, then live events.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wc := cli.Watch(wctx, "/app/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithPrevKV())
	if _, err := cli.Delete(ctx, "/app/b"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 4 {
		select {
		case wr := <-wc:
			if err := wr.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range wr.Events {
				seen = append(seen, fmt.Sprintf("%s %s", ev.Type, ev.Kv.Key))
				if ev.Type == clientv3.EventTypeDelete && (ev.PrevKv == nil || string(ev.PrevKv.Value) != "2") {
					t.Fatalf("delete without its previous value: %v", ev)
				}
			}
		case <-ctx.Done():
			t.Fatalf("watch saw only %v", seen)
		}
	}
	if want := "[PUT /app/a PUT /app/b PUT /app/a DELETE /app/b]"; fmt.Sprint(seen) != want {
		t.Fatalf("watch saw %v, want %s", seen, want)
	}
	if err := cli.RequestProgress(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-wc:
		if !wr.IsProgressNotify() {
			t.Fatalf("want a progress notification, got %+v", wr)
		}
	case <-ctx.Done():
		t.Fatal("no progress notification")
	}

	// Leases: keys go with their lease.
	lease, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/lease/k", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	ttl, err := cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 30 || len(ttl.Keys) != 1 || ttl.TTL <= 0 || ttl.TTL > 30 {
		t.Fatalf("time to live: %+v %v", ttl, err)
	}
	leases, err := cli.Leases(ctx)
	if err != nil || len(leases.Leases) != 1 {
		t.Fatalf("leases: %+v %v", leases, err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(ctx, "/lease/k"); len(r.Kvs) != 0 {
		t.Fatal("the key outlived its revoked lease")
	}
	if _, err := cli.Revoke(ctx, lease.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(lease.ID)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with a revoked lease: %v", err)
	}

	// Compaction, and reads below it.
	now, _ := cli.Get(ctx, "/app/a")
	if _, err := cli.Compact(ctx, now.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "/app/a", clientv3.WithRev(first)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("read below the compaction: %v", err)
	}
	if _, err := cli.Get(ctx, "/app/a", clientv3.WithRev(now.Header.Revision+100)); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("read of a future revision: %v", err)
	}

	// Bad requests get etcd's errors and change nothing.
	ops := make([]clientv3.Op, 129)
	for i := range ops {
		ops[i] = clientv3.OpPut(fmt.Sprint("k", i), "v")
	}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("too many ops: %v", err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit(); !errors.Is(err, rpctypes.ErrDuplicateKey) {
		t.Fatalf("duplicate key: %v", err)
	}
	if _, err := cli.Put(ctx, "big", strings.Repeat("x", 2<<20)); err == nil {
		t.Fatal("a value over the limits was accepted")
	}
	after, _ := cli.Get(ctx, "/app/a")
	if after.Header.Revision != now.Header.Revision {
		t.Fatalf("refused requests moved the revision from %d to %d", now.Header.Revision, after.Header.Revision)
	}

	// Cluster and maintenance.
	members, err := cli.MemberList(ctx)
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("member list: %v %v", members, err)
	}
	st, err := cli.Status(ctx, c.cfgs[follower].Listen.Client)
	if err != nil || st.Leader != uint64(leader+1) {
		t.Fatalf("status: %+v %v", st, err)
	}
	if _, err := cli.UserAdd(ctx, "u", "p"); status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "mutual TLS") {
		t.Fatalf("auth: %v", err)
	}
	// A voter is never added directly: it joins as a learner and is promoted once caught up.
	if _, err := cli.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "--learner") {
		t.Fatalf("member add without --learner: %v", err)
	}
}

// A lease that nobody keeps alive expires: the leader revokes it through the log and its keys
// go on every member.
func TestEtcdLeaseExpires(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	cli := etcdClient(t, c.cfgs[(leader+1)%3].Listen.Client)
	ctx := ctxT(t)
	lease, err := cli.Grant(ctx, 1) // raised to the minimum TTL
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "ephemeral", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	w := cli.Watch(ctx, "ephemeral")
	for {
		select {
		case wr := <-w:
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					ttl, err := cli.TimeToLive(ctx, lease.ID)
					if err != nil || ttl.TTL != -1 {
						t.Fatalf("expired lease still there: %+v %v", ttl, err)
					}
					return
				}
			}
		case <-ctx.Done():
			t.Fatal("the lease never expired")
		}
	}
}

// With TLS, a follower forwards over the peer port with its node certificate, and that port
// refuses the etcd services to a client certificate.
func TestEtcdForwardingOverMutualTLS(t *testing.T) {
	files := generateTLSFiles(t, 3)
	c := newTLSTestCluster(t, 3, files, "")
	leader := c.waitLeader(15 * time.Second)
	follower := (leader + 1) % 3
	admin := clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], "")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.cfgs[follower].Listen.Client}, TLS: admin, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxT(t)
	if _, err := cli.Put(ctx, "tls", "v"); err != nil {
		t.Fatalf("put through a follower over TLS: %v", err)
	}
	if r, err := cli.Get(ctx, "tls"); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get through a follower over TLS: %v %v", r, err)
	}
	// The leader's peer port, reached with the admin's client certificate.
	peerTLS := clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], tlsutil.NodeServerName(uint64(leader+1)))
	peer, err := clientv3.New(clientv3.Config{Endpoints: []string{c.cfgs[leader].Listen.Peer}, TLS: peerTLS, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.Put(ctx, "sneaky", "v"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("put on the peer port with a client certificate: %v, want PermissionDenied", err)
	}
}

// A leader change never expires a lease early: the new leader restarts every lease's
// countdown at its full TTL.
func TestEtcdLeaseSurvivesFailover(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	survivors := others(3, leader)
	cli := etcdClient(t, c.cfgs[survivors[0]].Listen.Client, c.cfgs[survivors[1]].Listen.Client)
	ctx := ctxT(t)
	const ttl = 20
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "held", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	kept := time.Now()
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	c.kill(leader)
	c.waitLeaderAmong(survivors, 15*time.Second)
	r, err := cli.TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the failover took, the lease has at least what was left of its TTL.
	left := ttl - int64(time.Since(kept)/time.Second) - 1
	if r.TTL < left || len(r.Keys) != 1 {
		t.Fatalf("after the failover the lease has %ds left and keys %q; it was kept alive %v ago with TTL %ds", r.TTL, r.Keys, time.Since(kept), ttl)
	}
}

// A watch outlives limits.request_timeout: only single requests are bounded by it.
func TestEtcdWatchOutlivesTheRequestTimeout(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *config.Config) { cfg.Limits.RequestTimeout = 300 * time.Millisecond })
	c.waitLeader(10 * time.Second)
	ctx := ctxT(t)
	// The raw stream, not clientv3 (which would quietly open a new one).
	stream, err := etcdpb.NewWatchClient(c.conns[0]).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&etcdpb.WatchRequest{RequestUnion: &etcdpb.WatchRequest_CreateRequest{CreateRequest: &etcdpb.WatchCreateRequest{Key: []byte("k")}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || !r.Created {
		t.Fatalf("create: %v %v", r, err)
	}
	kv := etcdpb.NewKVClient(c.conns[0])
	// Three request timeouts later the same stream still delivers. (The waiting is the
	// property under test.) A put may itself run past the short request timeout on a loaded
	// machine: it is retried, and the stream must deliver its event.
	time.Sleep(3 * c.cfgs[0].Limits.RequestTimeout)
	for {
		_, err := kv.Put(ctx, &etcdpb.PutRequest{Key: []byte("k"), Value: []byte("after")})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("watch after three request timeouts: %v", err)
		}
		if len(r.Events) > 0 && string(r.Events[len(r.Events)-1].Kv.Value) == "after" {
			return
		}
	}
}

// Watch filters, several watches on one stream, and cancel.
func TestEtcdWatchFiltersAndCancel(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader(10 * time.Second)
	ctx := ctxT(t)
	stream, err := etcdpb.NewWatchClient(c.conns[0]).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(id int64, filter etcdpb.WatchCreateRequest_FilterType) {
		t.Helper()
		if err := stream.Send(&etcdpb.WatchRequest{RequestUnion: &etcdpb.WatchRequest_CreateRequest{CreateRequest: &etcdpb.WatchCreateRequest{
			Key: []byte("f/"), RangeEnd: []byte("f0"), WatchId: id, Filters: []etcdpb.WatchCreateRequest_FilterType{filter}}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || !r.Created || r.WatchId != id {
			t.Fatalf("create %d: %v %v", id, r, err)
		}
	}
	create(7, etcdpb.WatchCreateRequest_NOPUT)
	create(8, etcdpb.WatchCreateRequest_NODELETE)
	kv := etcdpb.NewKVClient(c.conns[0])
	kv.Put(ctx, &etcdpb.PutRequest{Key: []byte("f/a"), Value: []byte("1")})
	kv.DeleteRange(ctx, &etcdpb.DeleteRangeRequest{Key: []byte("f/a")})
	got := map[int64]string{}
	for len(got) < 2 {
		r, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range r.Events {
			got[r.WatchId] += ev.Type.String()
		}
	}
	if got[7] != "DELETE" || got[8] != "PUT" {
		t.Fatalf("filtered watches saw %v: want 7 DELETE only, 8 PUT only", got)
	}
	if err := stream.Send(&etcdpb.WatchRequest{RequestUnion: &etcdpb.WatchRequest_CancelRequest{CancelRequest: &etcdpb.WatchCancelRequest{WatchId: 8}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || !r.Canceled || r.WatchId != 8 {
		t.Fatalf("cancel: %v %v", r, err)
	}
	// After the cancel only watch 7 speaks.
	kv.Put(ctx, &etcdpb.PutRequest{Key: []byte("f/b"), Value: []byte("2")})
	kv.DeleteRange(ctx, &etcdpb.DeleteRangeRequest{Key: []byte("f/b")})
	r, err := stream.Recv()
	if err != nil || r.WatchId != 7 || len(r.Events) != 1 || r.Events[0].Type != mvccpb.DELETE {
		t.Fatalf("after the cancel: %v %v", r, err)
	}
}

// A graceful stop ends open watches at once instead of waiting for them.
func TestEtcdWatchesDoNotHoldUpAGracefulStop(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader(10 * time.Second)
	ctx := ctxT(t)
	stream, err := etcdpb.NewWatchClient(c.conns[0]).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&etcdpb.WatchRequest{RequestUnion: &etcdpb.WatchRequest_CreateRequest{CreateRequest: &etcdpb.WatchCreateRequest{Key: []byte("k")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.servers[0].Stop(stopCtx) }()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("the watch during a stop: %v, want Unavailable", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-stopCtx.Done():
		t.Fatal("the stop waited for the watch")
	}
	c.servers[0] = nil
}

// metricCount reads a counter of a node's /metrics: the sample of series whose labels
// include label (`op="etcd.range"`), 0 when there is none yet.
func metricCount(t *testing.T, addr, series, label string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+"{") && strings.Contains(line, label) {
			var n int
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%d", &n)
			return n
		}
	}
	return 0
}
