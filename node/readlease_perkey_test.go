package node_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/readmode"
)

// commitStaller drops, while armed, every message its leader sends to one node except
// appends that carry entries: that node receives and acknowledges new entries but never
// learns that they committed (nor renews its read lease after the last of them).
type commitStaller struct {
	node.Outbox
	to    uint64
	armed *atomic.Bool
}

func (s commitStaller) Send(msgs []raft.Message) {
	if !s.armed.Load() {
		s.Outbox.Send(msgs)
		return
	}
	kept := msgs[:0:0]
	for _, m := range msgs {
		if m.To == s.to && !(m.Type == raft.MsgApp && len(m.Entries) > 0) {
			continue
		}
		kept = append(kept, m)
	}
	if len(kept) > 0 {
		s.Outbox.Send(kept)
	}
}

// The per-key wait (node/pending.go): at a holder that holds an acknowledged write it does
// not yet know committed, a lease read of another key is answered at once, while a read of
// the written key waits (here, until its lease runs out and it is sent to the leader), and
// never returns the old value. With read_leases.per_key_wait off, the read of the other key
// waits too. Every answer is checked with porcupine.
func TestPerKeyWaitAtAHolderWithAStalledCommit(t *testing.T) {
	for _, perKey := range []bool{true, false} {
		name := "per-key wait"
		if !perKey {
			name = "every held entry (per_key_wait off)"
		}
		t.Run(name, func(t *testing.T) { testStalledCommit(t, perKey) })
	}
}

func testStalledCommit(t *testing.T, perKey bool) {
	var armed atomic.Bool
	defer node.SetTestingWrapOutbox(func(n *node.Node, out node.Outbox) node.Outbox {
		return commitStaller{Outbox: out, to: 2, armed: &armed}
	})()
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		// A read lease far longer than any stall of a loaded machine between the write and
		// the reads that follow it.
		cfg.Timing.HeartbeatInterval, cfg.Timing.LeaseDuration = 200*time.Millisecond, 3*time.Second
		cfg.Timing.ElectionTimeoutMin, cfg.Timing.ElectionTimeoutMax = 6*time.Second, 12*time.Second
		cfg.ReadLeases.Holders = []string{"region-2"}
		cfg.ReadLeases.PerKeyWait = perKey
	})
	c.makeLeader(0, 30*time.Second)
	rec := history.NewRecorder(nil)
	write := func(key, value string) {
		t.Helper()
		call := rec.Begin(history.Op{ClientID: 1, Kind: history.Set, Key: key, Value: value})
		if _, err := c.set(0, key, value); err != nil {
			call.Unknown(err)
			t.Fatalf("set %s=%s: %v", key, value, err)
		}
		call.Wrote()
	}
	// read records a lease read at node i; it returns whether node i answered it itself.
	read := func(client, i int, key string) (answered bool, resp *georaftv1.GetResponse, err error) {
		call := rec.Begin(history.Op{ClientID: client, Kind: history.Get, Key: key, Mode: readmode.Lease})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err = c.clients[i].Get(ctx, &georaftv1.GetRequest{Key: []byte(key), ReadMode: georaftv1.ReadMode_READ_MODE_LEASE})
		if err != nil {
			call.Fail(err) // a read that failed constrains nothing
			return false, nil, err
		}
		mode, _ := resp.ServedMode.Mode()
		call.Read(resp.Found, string(resp.Value), mode)
		return resp.Header.NodeId == uint64(i+1), resp, nil
	}

	// Each member records its own addresses through the log once it starts (docs/membership.md):
	// such a write, appended after the stall is armed, would tell the holder the commit index.
	c.waitMembership(0, "every member published its addresses", 10*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return len(r.GetPublished()) == 3
	})
	write("a", "1")
	write("b", "1")
	res, _ := c.set(0, "c", "1")
	c.waitApplied(1, res.Index, 10*time.Second)
	c.waitReadLease(1, 10*time.Second)

	armed.Store(true)
	write("a", "2") // acknowledged: node 2 holds it (its acknowledgement counted) but does not know it committed
	ctx := context.Background()
	atLeader, err := etcdpb.NewKVClient(c.conns[0]).Range(ctx, &etcdpb.RangeRequest{Key: []byte("a")})
	if err != nil || len(atLeader.Kvs) != 1 {
		t.Fatalf("etcd range of a at the leader: %v, %v", atLeader, err)
	}
	revA2 := atLeader.Kvs[0].ModRevision
	holderKV := etcdpb.NewKVClient(c.conns[1])
	// etcdRead reads b through the etcd API at the holder, with the per-key wait asked for
	// or not, and records it.
	etcdRead := func(client int, perKeyAsked bool) (*etcdpb.RangeResponse, error) {
		call := rec.Begin(history.Op{ClientID: client, Kind: history.Get, Key: "b", Mode: readmode.Lease})
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if perKeyAsked {
			ctx = metadata.AppendToOutgoingContext(ctx, node.PerKeyWaitMetadata, "on")
		}
		resp, err := holderKV.Range(ctx, &etcdpb.RangeRequest{Key: []byte("b")})
		if err != nil {
			call.Fail(err)
			return nil, err
		}
		if len(resp.Kvs) == 1 {
			call.Read(true, string(resp.Kvs[0].Value), readmode.Lease)
		} else {
			call.Read(false, "", readmode.Lease)
		}
		return resp, nil
	}

	var wg sync.WaitGroup
	var aDone atomic.Bool
	var aErr, etcdErr error
	var aResp *georaftv1.GetResponse
	var etcdResp *etcdpb.RangeResponse
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, aResp, aErr = read(2, 1, "a")
		aDone.Store(true)
	}()
	go func() {
		defer wg.Done()
		etcdResp, etcdErr = etcdRead(5, false)
	}()
	answered, bResp, bErr := read(3, 1, "b")
	bBeforeA := !aDone.Load()
	perKeyResp, perKeyErr := etcdRead(6, true)
	wg.Wait()

	// etcd's promise: a linearizable read's header revision is at least the revision of every
	// write acknowledged before it began, whatever key it reads.
	if etcdErr != nil || etcdResp.Header.Revision < revA2 {
		t.Fatalf("etcd lease read of b at the holder: %v, %v; want a header revision of at least %d, a=2's", etcdResp, etcdErr, revA2)
	}
	if perKey {
		// Asked for, the per-key wait answers b at once, at the revision the holder applied.
		if perKeyErr != nil || perKeyResp.Header.MemberId != 2 || len(perKeyResp.Kvs) != 1 || string(perKeyResp.Kvs[0].Value) != "1" ||
			perKeyResp.Header.Revision >= revA2 || perKeyResp.Header.Revision < perKeyResp.Kvs[0].ModRevision {
			t.Fatalf("etcd lease read of b at the holder with %s on: %v, %v; want b=1 from node 2 at its applied revision, below a=2's %d",
				node.PerKeyWaitMetadata, perKeyResp, perKeyErr, revA2)
		}
	} else if perKeyErr != nil || perKeyResp.Header.Revision < revA2 {
		t.Fatalf("etcd lease read of b with %s on but read_leases.per_key_wait off: %v, %v; want a header revision of at least %d",
			node.PerKeyWaitMetadata, perKeyResp, perKeyErr, revA2)
	}

	if aErr == nil && string(aResp.Value) != "2" {
		t.Fatalf("lease read of a at the holder returned %q after a=2 was acknowledged", aResp.Value)
	}
	if aErr != nil && status.Code(aErr) != codes.FailedPrecondition {
		t.Fatalf("lease read of a at the holder: %v; want the value 2 or a redirect to the leader once its lease ran out", aErr)
	}
	if perKey {
		if bErr != nil || !answered || string(bResp.Value) != "1" || bResp.ServedMode != georaftv1.ReadMode_READ_MODE_LEASE {
			t.Fatalf("lease read of b, untouched by the stalled write: %v, %v; want 1 from the holder itself", bResp, bErr)
		}
		if !bBeforeA {
			t.Fatal("the read of b waited for the read of a, which waits on a write of a")
		}
	} else if bErr == nil && answered {
		t.Fatalf("with per_key_wait off, the holder answered b (%q) while it held a write it did not know committed: %v", bResp.Value, bResp)
	}

	armed.Store(false)
	// Once the commit reaches the holder, both keys read there again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		answered, resp, err := read(4, 1, "a")
		if err == nil && answered && string(resp.Value) == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder does not answer a=2 after the stall: %v, %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if result := history.Check(rec.Ops(), 10*time.Second); !result.OK() {
		t.Fatalf("history not linearizable: %s", result.String())
	}
}
