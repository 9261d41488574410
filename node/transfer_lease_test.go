package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/raft"
)

// timeoutNowWatcher records, at the moment each MsgTimeoutNow reaches the transport, the
// lease its node was publishing to lease reads.
type timeoutNowWatcher struct {
	node.Outbox
	n       *node.Node
	mu      *sync.Mutex
	leases  *[]time.Duration
	waiting chan struct{}
}

func (w timeoutNowWatcher) Send(msgs []raft.Message) {
	for _, m := range msgs {
		if m.Type == raft.MsgTimeoutNow {
			w.mu.Lock()
			*w.leases = append(*w.leases, w.n.PublishedLeaseUntil())
			w.mu.Unlock()
			select {
			case w.waiting <- struct{}{}:
			default:
			}
		}
	}
	w.Outbox.Send(msgs)
}

// The node's half of the transfer rule (raft/doc.go, "Leadership transfer"): a leader gives
// its lease up before MsgTimeoutNow leaves, and lease reads are answered from what the node
// publishes without entering its loop, so the node must withdraw the published lease before
// it hands TimeoutNow to the transport. Otherwise the transferee could win and commit while
// the old leader still answered lease reads. With the publish-before-send turned off, the
// watcher sees the lease still published, so the test can fail.
func TestTimeoutNowLeavesOnlyAfterTheLeaseIsWithdrawn(t *testing.T) {
	for _, knobOff := range []bool{false, true} {
		name := "publish before send"
		if knobOff {
			name = "publish after send (knob)"
		}
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var leases []time.Duration
			waiting := make(chan struct{}, 1)
			defer node.SetTestingWrapOutbox(func(n *node.Node, out node.Outbox) node.Outbox {
				return timeoutNowWatcher{Outbox: out, n: n, mu: &mu, leases: &leases, waiting: waiting}
			})()
			defer node.SetTestingPublishAfterSend(knobOff)()

			// A lease long enough that no stall of a loaded machine lets it lapse between
			// the check that it is held and the transfer.
			c := newTestCluster(t, 3, func(c *config.Config) {
				c.Timing.HeartbeatInterval, c.Timing.LeaseDuration = 100*time.Millisecond, 1200*time.Millisecond
				c.Timing.ElectionTimeoutMin, c.Timing.ElectionTimeoutMax = 1500*time.Millisecond, 3*time.Second
			})
			leader := c.waitLeader(10 * time.Second)
			c.waitLease(leader, 10*time.Second)
			target := uint64((leader+1)%3 + 1)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, _, err := c.servers[leader].Node().TransferLeadership(ctx, target); err != nil {
				t.Fatalf("transfer to node %d: %v", target, err)
			}
			select {
			case <-waiting:
			case <-ctx.Done():
				t.Fatal("no TimeoutNow reached the transport")
			}
			mu.Lock()
			defer mu.Unlock()
			published := leases[0]
			if !knobOff && published != 0 {
				t.Fatalf("TimeoutNow left while the node still published a lease until %v", published)
			}
			if knobOff && published == 0 {
				t.Fatal("with the publish after the send, the lease was withdrawn anyway: this test shows nothing")
			}
		})
	}
}
