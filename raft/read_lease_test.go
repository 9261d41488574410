package raft

import (
	"slices"
	"testing"
	"time"
)

func holdersNet(t *testing.T, holders ...uint64) *testNet {
	net := newTestNet(t, 3, func(c *Config) { c.ReadLeaseHolders = holders })
	net.elect(1)
	net.untilLeaseHeld(1)
	for range 3 {
		net.advance(10 * ms)
		net.stabilize()
	}
	return net
}

// A read-lease holder gets a lease with the leader's messages and answers linearizable reads
// from its own state; a follower that is not a holder gets none. The holder's lease ends no
// later than the leader's own (here every clock runs alike).
func TestReadLeaseHolderServesUntilTheLeadersLeaseEnds(t *testing.T) {
	net := holdersNet(t, 2)
	now := net.node(2).now
	v := net.raft(2).ReadView()
	if _, ok := v.Lease(now); !ok {
		t.Fatalf("holder 2 has no read lease: %+v", v)
	}
	if _, ok := net.raft(3).ReadView().Lease(now); ok {
		t.Fatal("node 3, not a holder, has a read lease")
	}
	if leader := net.raft(1).Status().LeaseExpiry; v.LeaseUntil > leader {
		t.Fatalf("holder's lease ends at %v, after the leader's at %v", v.LeaseUntil, leader)
	}
}

// A write commits only once every holder with a lease has it. A holder that stops answering
// holds up commits until its lease has surely ended, and no longer.
func TestCommitWaitsForHoldersUntilTheirLeasesEnd(t *testing.T) {
	net := holdersNet(t, 2, 3)
	holderUntil := net.raft(2).ReadView().LeaseUntil
	// Node 3 hears nothing more; 1 and 2 still make a quorum.
	net.isolate(3)
	idx, _ := net.propose(1, "x")
	net.stabilize()
	if c := net.raft(1).Status().Commit; c >= idx {
		t.Fatalf("committed %d while holder 3, without the entry, may still hold its read lease", c)
	}
	start := net.node(1).now
	for net.raft(1).Status().Commit < idx {
		if net.node(1).now-start > time.Second {
			t.Fatal("the write never committed after holder 3's lease ran out")
		}
		net.advance(5 * ms)
		net.stabilize()
	}
	committedAt := net.node(1).now
	if _, ok := net.raft(3).ReadView().Lease(net.node(3).now); ok {
		t.Fatalf("holder 3 still holds a read lease at %v, when the write committed without it", net.node(3).now)
	}
	if bound := holderUntil + 20*ms; committedAt > bound {
		t.Fatalf("the write waited until %v, well past the end of holder 3's lease (about %v)", committedAt, holderUntil)
	}
}

// A holder that has an entry it does not know to be committed reads only once it has applied
// it: the leader may have committed it already, having waited for this holder's
// acknowledgement.
func TestHolderReadWaitsForWhatItHolds(t *testing.T) {
	net := holdersNet(t, 2)
	// Node 2 gets the entry; the leader's next message (with the commit) does not reach it.
	idx, _ := net.propose(1, "x")
	net.processAll()
	net.deliver() // the append reaches 2 and 3
	net.processAll()
	net.cut[[2]uint64{1, 2}] = true
	net.stabilize()
	if c := net.raft(1).Status().Commit; c < idx {
		t.Fatalf("setup: the leader did not commit %d", c)
	}
	v := net.raft(2).ReadView()
	index, ok := v.Lease(net.node(2).now)
	if !ok || index < idx {
		t.Fatalf("holder read at index %d (lease %v), want at least %d: what it holds must be applied first", index, ok, idx)
	}
	if c := net.raft(2).Status().Commit; c >= idx {
		t.Fatalf("setup: node 2 already knows %d is committed (commit %d)", idx, c)
	}
}

// Who holds read leases changes at run time, through the log.
func TestReadLeaseHoldersChangeThroughTheLog(t *testing.T) {
	net := holdersNet(t)
	if _, ok := net.raft(2).ReadView().Lease(net.node(2).now); ok {
		t.Fatal("no holders configured, but node 2 has a read lease")
	}
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfReadLeaseOn, 2}, {ConfReadLeaseOn, 3}}})
	for _, id := range []uint64{2, 3} {
		if _, ok := net.raft(id).ReadView().Lease(net.node(id).now); !ok {
			t.Fatalf("node %d has no read lease after it was made a holder (membership %v)", id, net.raft(1).ConfState())
		}
	}
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfReadLeaseOff, 3}}})
	for range 20 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if _, ok := net.raft(3).ReadView().Lease(net.node(3).now); ok {
		t.Fatal("node 3 still has a read lease long after it stopped being a holder")
	}
}

// A transfer leaves no holder reading past the new leader's first commit: the read leases the
// old leader granted run on after it gives its own up, nobody reports them to the transferee,
// and a holder the transferee cannot reach would answer reads without its writes. So
// MsgTimeoutNow carries the longest of them, and the transferee commits only after it.
// (Found by the simulator with every mechanism on: TestSimulation seed 49 before the fix.)
func TestTransferWaitsOutTheReadLeasesGranted(t *testing.T) {
	net := holdersNet(t, 3)
	holderUntil := net.raft(3).ReadView().LeaseUntil
	if holderUntil <= net.node(3).now {
		t.Fatal("setup: holder 3 has no read lease")
	}
	net.isolate(3)
	net.raft(1).TransferLeadership(2)
	rd := net.cycle(1)
	var tn Message
	for _, m := range rd.Messages {
		if m.Type == MsgTimeoutNow {
			tn = m
		}
	}
	if tn.Type != MsgTimeoutNow || tn.LeaseRemaining < holderUntil-net.node(3).now {
		t.Fatalf("TimeoutNow %+v carries %v, less than holder 3's remaining read lease %v", tn, tn.LeaseRemaining, holderUntil-net.node(3).now)
	}
	net.stabilize()
	if st := net.raft(2).Status(); st.Role != Leader {
		t.Fatalf("setup: node 2 did not take over: %+v", st)
	}
	idx, _ := net.propose(2, "after the transfer")
	for range 100 {
		net.stabilize()
		if c := net.raft(2).Status().Commit; c >= idx {
			if _, ok := net.raft(3).ReadView().Lease(net.node(3).now); ok {
				t.Fatalf("new leader 2 committed %d while holder 3, cut off, still holds the read lease node 1 granted", idx)
			}
			return
		}
		net.advance(2 * ms)
	}
	t.Fatalf("new leader 2 never committed %d: %+v", idx, net.raft(2).Status())
}

// A holder removed from the membership may not know it yet and answer reads by its lease
// until that ends, but it acknowledges nothing more: the leader's commits wait its lease out.
// (Found by the simulator with every mechanism on: TestSimulation seed 747 before the fix.)
func TestCommitsWaitOutARemovedHoldersLease(t *testing.T) {
	net := holdersNet(t, 3)
	j, _, err := net.raft(1).ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{ConfRemove, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	// Node 3 gets the entries, but never hears that the one leaving the joint membership
	// (j+1) is committed.
	net.filter = func(m Message) bool { return !(m.From == 1 && m.To == 3 && m.Commit > j) }
	net.stabilize()
	if cs := net.raft(1).ConfState(); slices.Contains(cs.Voters, 3) || len(cs.VotersOutgoing) > 0 {
		t.Fatalf("setup: node 3 not removed yet: %v", cs)
	}
	if _, ok := net.raft(3).ReadView().Lease(net.node(3).now); !ok {
		t.Fatal("setup: removed node 3 holds no read lease")
	}
	idx, _ := net.propose(1, "after the removal")
	for range 200 {
		net.stabilize()
		if net.raft(1).Status().Commit >= idx {
			if _, ok := net.raft(3).ReadView().Lease(net.node(3).now); ok {
				t.Fatalf("leader committed %d while removed node 3, without it, still holds a read lease", idx)
			}
			return
		}
		net.advance(ms)
	}
	t.Fatalf("the write never committed: %+v", net.raft(1).Status())
}
