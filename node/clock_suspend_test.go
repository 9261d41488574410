package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// On a platform whose clock may stop while the machine sleeps, a node serves no read on its
// own clock: lease reads are answered through ReadIndex (although the core holds a lease),
// and bounded-staleness reads, georaft.v1's and etcd's serializable ones, are refused with a
// reason. The same cluster without the rule serves the lease read on the lease.
func TestClockThatStopsInSuspendServesNoReadOnIt(t *testing.T) {
	for _, stops := range []bool{false, true} {
		undo := node.SetTestingClockStopsInSuspend(stops)
		c := newTestCluster(t, 3, nil)
		undo()
		c.mustSet("k", "v")
		leader := c.waitLeader(10 * time.Second)
		// Without the rule, a lease read is served on the lease once the leader holds one (a
		// loaded machine may let it lapse between two reads, so try until then). With it, no
		// read is ever served on the lease, however often the leader holds it.
		served := map[georaftv1.ReadMode]int{}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if c.mustStatus(leader).LeaseState != georaftv1.LeaseState_LEASE_STATE_HELD {
				continue
			}
			got, err := c.get(leader, "k", georaftv1.ReadMode_READ_MODE_LEASE)
			if err != nil || string(got.Value) != "v" {
				t.Fatalf("clock stops=%v: lease read: %v %v", stops, got, err)
			}
			served[got.ServedMode]++
			if !stops && served[georaftv1.ReadMode_READ_MODE_LEASE] > 0 || stops && served[georaftv1.ReadMode_READ_MODE_INDEX] >= 20 {
				break
			}
		}
		if stops && (served[georaftv1.ReadMode_READ_MODE_LEASE] > 0 || served[georaftv1.ReadMode_READ_MODE_INDEX] == 0) ||
			!stops && served[georaftv1.ReadMode_READ_MODE_LEASE] == 0 {
			t.Fatalf("clock stops=%v: lease reads with the lease held were served as %v", stops, served)
		}

		follower := (leader + 1) % 3
		cli := etcdClient(t, c.cfgs[follower].Listen.Client)
		var err, etcdErr error
		staleReads := func() {
			_, err = c.get(follower, "k", georaftv1.ReadMode_READ_MODE_STALE)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, etcdErr = cli.Get(ctx, "k", clientv3.WithSerializable())
			cancel()
		}
		staleReads()
		if !stops {
			// A loaded machine may delay a heartbeat past the bound: TOO_STALE is then right,
			// so retry until both are served.
			for deadline := time.Now().Add(10 * time.Second); err != nil || etcdErr != nil; staleReads() {
				if time.Now().After(deadline) {
					t.Fatalf("stale reads with a clock that counts suspend: %v, etcd serializable %v", err, etcdErr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		for what, err := range map[string]error{"stale read": err, "etcd serializable read": etcdErr} {
			if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "clock may stop while the machine sleeps") || !strings.Contains(st.Message(), "index") {
				t.Fatalf("%s with a clock that stops in suspend: %v, want FAILED_PRECONDITION naming the clock and the way out", what, err)
			}
		}
	}
}
