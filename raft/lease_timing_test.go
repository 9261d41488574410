package raft

import (
	"testing"
	"time"
)

// TestRollingLeaseShorteningCannotOverlapLeases is the story of a rolling change from a 150 ms
// lease to a 50 ms one. Node 1 leads and renews its lease through node 2; node 3 has lost
// node 1 for longer than its stickiness; node 1 is cut off right after a renewal; node 2
// restarts with the 50 ms lease and is elected at once with node 3's vote. Node 3 knows of no
// lease; node 2 last acknowledged node 1's 150 ms lease just before it stopped. Node 2 must
// assume that lease, not its new 50 ms one, and commit nothing while node 1 may still answer
// lease reads. With the persisted bound turned off, the overlap this test exists for shows.
func TestRollingLeaseShorteningCannotOverlapLeases(t *testing.T) {
	for _, boundOff := range []bool{false, true} {
		name := "persisted bound"
		if boundOff {
			name = "bound off"
		}
		t.Run(name, func(t *testing.T) {
			net := newTestNet(t, 3, func(c *Config) {
				c.LeaseDuration = 150 * ms
				c.ElectionTimeoutMin, c.ElectionTimeoutMax = 200*ms, 400*ms
				c.off.persistedLeaseBound = boundOff
			})
			net.elect(1)
			net.untilLeaseHeld(1)

			// Node 3 stops hearing node 1 and its election timer runs out; its pre-votes fail
			// (node 2 hears node 1), so it ends up a follower with no leader and no record of
			// node 1's lease.
			net.cut[[2]uint64{1, 3}] = true
			for i := 0; net.raft(3).Status().Leader != None || net.raft(3).Status().KnownLeaseUntil > net.node(3).now; i++ {
				if i > 200 {
					t.Fatalf("node 3 still follows node 1: %+v", net.raft(3).Status())
				}
				net.advance(10 * ms)
				net.stabilize()
			}
			if st := net.raft(1).Status(); st.Role != Leader || st.Lease != LeaseHeld {
				t.Fatalf("node 1 lost its lease while node 2 still answers it: %+v", st)
			}

			// One more renewal through node 2, then node 1 is cut off.
			net.advance(10 * ms)
			net.stabilize()
			expiry := net.raft(1).Status().LeaseExpiry
			net.isolate(1)

			// Node 2 restarts on the shorter lease and campaigns at once.
			nd := net.node(2)
			if got := nd.disk.hs.LeaseBound; got != 150*ms {
				t.Fatalf("node 2 stops with lease bound %v on its disk, want the 150ms it acknowledged", got)
			}
			nd.cfg.LeaseDuration = 50 * ms
			nd.cfg.ElectionTimeoutMin, nd.cfg.ElectionTimeoutMax = 100*ms, 200*ms
			net.restart(2)
			if err := net.raft(2).Campaign(); err != nil {
				t.Fatal(err)
			}
			net.stabilize()
			if st := net.raft(2).Status(); st.Role != Leader {
				t.Fatalf("node 2 was not elected: %+v", st)
			}
			net.propose(2, "x")

			// All clocks move together: node 2 must commit nothing before node 1's lease
			// ends on node 1's clock.
			committedAt := time.Duration(-1)
			for i := 0; i < 100 && committedAt < 0; i++ {
				if net.raft(2).Status().Commit > net.raft(1).Status().Commit {
					committedAt = net.node(2).now
				}
				net.advance(2 * ms)
				net.stabilize()
			}
			if committedAt < 0 {
				t.Fatalf("node 2 never committed: %+v", net.raft(2).Status())
			}
			overlap := committedAt < expiry
			if boundOff && !overlap {
				t.Fatalf("with the bound off node 2 committed at %v, after node 1's lease ended at %v: the test no longer shows the overlap", committedAt, expiry)
			}
			if !boundOff && overlap {
				t.Fatalf("node 2 committed at %v while node 1's lease ran until %v", committedAt, expiry)
			}
		})
	}
}

// TestLeaseBoundComesDownOnlyOnceOldLeasesRanOut: after the cluster moved to a shorter
// lease, the bound stays at the old length for as long as a lease of that length may run,
// then comes down to what leaders have been asking for since.
func TestLeaseBoundComesDownOnlyOnceOldLeasesRanOut(t *testing.T) {
	r, err := New(testConfig(2, []uint64{1, 2, 3}), Restored{HardState: HardState{Term: 1, LeaseBound: 150 * ms}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Status().KnownLeaseUntil; got != 150*ms {
		t.Fatalf("a restart with bound 150ms assumes a lease until %v, want 150ms", got)
	}
	heartbeat := func(at time.Duration, lease time.Duration) {
		r.Tick(at)
		if err := r.Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: 1, LeaseDuration: lease, SentAt: 1, Round: 1}); err != nil {
			t.Fatal(err)
		}
	}
	heartbeat(10*ms, 150*ms) // the old leader, still on the long lease
	heartbeat(20*ms, 60*ms)  // the new timing
	r.Tick(159 * ms)
	if got := r.hardState().LeaseBound; got != 150*ms {
		t.Fatalf("bound %v at 159ms, 149ms after a 150ms lease was acknowledged: it must stay", got)
	}
	r.Tick(160 * ms)
	if got := r.hardState().LeaseBound; got != 60*ms {
		t.Fatalf("bound %v once the 150ms lease acknowledged at 10ms ran out, want 60ms", got)
	}
	heartbeat(170*ms, 200*ms)
	if got := r.hardState().LeaseBound; got != 200*ms {
		t.Fatalf("a longer lease raises the bound at once: got %v", got)
	}
}
