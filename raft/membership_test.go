package raft

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// join adds node id to the net as a brand new node: an empty disk, and the voters the
// cluster was created with as its Peers (the membership its log starts from).
func (n *testNet) join(id uint64, tweak ...func(*Config)) {
	n.t.Helper()
	cfg := testConfig(id, n.nodes[n.ids[0]].cfg.Peers)
	for _, f := range tweak {
		f(&cfg)
	}
	nd := &testNode{driverNode: newDriverNode(cfg, nil), now: n.nodes[n.ids[0]].now}
	if err := nd.boot(cfg, nd.now); err != nil {
		n.t.Fatalf("New(%d): %v", id, err)
	}
	n.nodes[id] = nd
	n.ids = append(n.ids, id)
}

// change proposes cc on leader and runs the net until it and anything it leads to (leaving a
// joint configuration) is applied everywhere reachable.
func (n *testNet) change(leader uint64, cc ConfChange) {
	n.t.Helper()
	if _, _, err := n.raft(leader).ProposeConfChange(cc); err != nil {
		n.t.Fatalf("ProposeConfChange(%v): %v", cc, err)
	}
	for range 20 {
		n.advance(10 * ms)
		n.stabilize()
	}
}

func confOf(voters []uint64, learners ...uint64) ConfState {
	return ConfState{Voters: voters, Learners: learners}
}

// A new node joins as a learner: it gets the log (and votes in nothing), is promoted once
// caught up, and then counts: the membership passes through a joint configuration and leaves
// it on its own.
func TestLearnerJoinsCatchesUpAndIsPromoted(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	for range 5 {
		net.propose(1, "x")
	}
	net.stabilize()
	net.join(4)
	if st := net.raft(4).ConfState(); !st.Equal(confOf([]uint64{1, 2, 3})) {
		t.Fatalf("a joining node starts with membership %v, want the cluster's first voters", st)
	}
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
	for _, id := range []uint64{1, 2, 3, 4} {
		if got := net.raft(id).ConfState(); !got.Equal(confOf([]uint64{1, 2, 3}, 4)) {
			t.Fatalf("node %d: membership %v after adding learner 4", id, got)
		}
	}
	if st := net.raft(4).Status(); st.Commit != net.raft(1).Status().Commit {
		t.Fatalf("learner commit %d, leader %d: not caught up", st.Commit, net.raft(1).Status().Commit)
	}
	// A learner never campaigns, however long it goes without a leader.
	net.isolate(4)
	for range 50 {
		net.advanceNode(4, 50*ms)
		net.processAll()
	}
	if st := net.raft(4).Status(); st.Role != Follower || st.Term != net.raft(1).Status().Term {
		t.Fatalf("isolated learner is %v in term %d: it campaigned", st.Role, st.Term)
	}
	net.heal()
	net.inflight = nil
	for range 3 {
		net.advance(10 * ms)
		net.stabilize()
	}

	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfPromote, 4}}})
	want := confOf([]uint64{1, 2, 3, 4})
	for _, id := range []uint64{1, 2, 3, 4} {
		if got := net.raft(id).ConfState(); !got.Equal(want) {
			t.Fatalf("node %d: membership %v after promoting 4, want %v", id, got, want)
		}
	}
	var sawJoint bool
	for _, e := range net.node(1).events {
		if e.Kind == EventConfChanged && strings.Contains(e.Reason, "joint") {
			sawJoint = true
		}
	}
	if !sawJoint {
		t.Fatalf("the promotion did not go through a joint configuration:\n%s", net.dumpEvents(1))
	}
	// Node 4 now counts: with nodes 2 and 3 cut off, 1 and 4 are not a majority of four.
	net.isolate(2)
	net.isolate(3)
	idx, _ := net.propose(1, "y")
	for range 5 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if c := net.raft(1).Status().Commit; c >= idx {
		t.Fatalf("committed %d with 2 of 4 voters", c)
	}
}

// A learner far behind the leader is not promoted: as a voter it would count towards quorums
// it cannot help reach.
func TestLaggingLearnerIsNotPromoted(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxLearnerLag = 5 })
	net.elect(1)
	net.join(4, func(c *Config) { c.MaxLearnerLag = 5 })
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
	net.isolate(4)
	for range 20 {
		net.propose(1, "x")
	}
	net.stabilize()
	_, _, err := net.raft(1).ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{ConfPromote, 4}}})
	if err == nil || !strings.Contains(err.Error(), "behind") {
		t.Fatalf("promoting a learner 20 entries behind: %v, want a refusal saying it is behind", err)
	}
}

// A learner that has acknowledged nothing (never started, or cut off since it was added) is
// not promoted, however short the log: the lag bound alone would let it pass.
func TestLearnerThatHoldsNothingIsNotPromoted(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.join(4)
	net.isolate(4)
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
	net.stabilize()
	r := net.raft(1)
	if lag := r.Status().LastIndex; lag > r.cfg.MaxLearnerLag {
		t.Fatalf("setup: the log (%d entries) must be within the lag bound %d", lag, r.cfg.MaxLearnerLag)
	}
	promote := ConfChange{Changes: []ConfChangeSingle{{ConfPromote, 4}}}
	for _, cc := range []ConfChange{promote, {Changes: []ConfChangeSingle{{ConfPromote, 4}, {ConfRemove, 3}}}} {
		_, _, err := r.ProposeConfChange(cc)
		if err == nil || !strings.Contains(err.Error(), "acknowledged none") {
			t.Fatalf("%v of a learner holding nothing: %v, want a refusal saying it holds none of the log", cc, err)
		}
	}
	// Once it is reached and catches up, the same promotion goes through.
	net.heal()
	for range 10 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if _, _, err := r.ProposeConfChange(promote); err != nil {
		t.Fatalf("promoting the caught-up learner: %v", err)
	}
}

// One change at a time: the leader refuses a second until the first is applied.
func TestOneMembershipChangeAtATime(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.stabilize()
	r := net.raft(1)
	if _, _, err := r.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}}); err != nil {
		t.Fatal(err)
	}
	_, _, err := r.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 5}}})
	if !errors.Is(err, ErrConfChangePending) {
		t.Fatalf("a second change before the first is applied: %v, want ErrConfChangePending", err)
	}
}

// Replacing a voter in one change: add the new one as a learner, then promote it and remove
// the old one together. During the joint configuration a decision needs a majority of both
// the old voters and the new; afterwards the removed node is out for good and never
// campaigns.
func TestReplaceVoterThroughJointConsensus(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.join(4)
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
	r := net.raft(1)

	// Hold the leave-joint entry back: cut the leader off right after the joint change is
	// applied on it, and look at the joint configuration.
	if _, _, err := r.ProposeConfChange(ConfChange{Changes: []ConfChangeSingle{{ConfPromote, 4}, {ConfRemove, 3}}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; !r.conf.joint(); i++ {
		if i > 100 {
			t.Fatalf("never entered the joint configuration: %v", r.ConfState())
		}
		net.advance(time.Millisecond)
		net.processAll()
		net.deliver()
	}
	if got := r.ConfState(); !slices.Equal(got.Voters, []uint64{1, 2, 4}) || !slices.Equal(got.VotersOutgoing, []uint64{1, 2, 3}) {
		t.Fatalf("joint membership %v, want voters [1 2 4] joint with [1 2 3]", got)
	}
	// Only 1 and 4 answer: a majority of the new voters, but not of the old.
	net.isolate(2)
	net.isolate(3)
	idx, _ := net.propose(1, "joint")
	for range 5 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if c := r.Status().Commit; c >= idx {
		t.Fatalf("committed %d in the joint configuration with voters 1 and 4 only", c)
	}
	net.heal()
	for range 20 {
		net.advance(10 * ms)
		net.stabilize()
	}
	want := confOf([]uint64{1, 2, 4})
	for _, id := range []uint64{1, 2, 4} {
		if got := net.raft(id).ConfState(); !got.Equal(want) {
			t.Fatalf("node %d: membership %v, want %v (left the joint configuration)", id, got, want)
		}
	}
	// Node 3 is out: cut off from everyone, it does not campaign.
	net.isolate(3)
	term := net.raft(3).Status().Term
	for range 30 {
		net.advanceNode(3, 100*ms)
		net.processAll()
	}
	if st := net.raft(3).Status(); st.Term != term || st.Role != Follower {
		t.Fatalf("removed node 3 is %v in term %d (was %d): it campaigned", st.Role, st.Term, term)
	}
}

// A leader that removes itself leads until the change is done, then steps down: its lease
// ends at once, and the remaining voters elect a leader among themselves.
func TestLeaderRemovingItselfStepsDown(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfRemove, 1}}})
	st := net.raft(1).Status()
	if st.Role == Leader || st.Lease == LeaseHeld {
		t.Fatalf("removed leader is %v with lease %v", st.Role, st.Lease)
	}
	if got := net.raft(2).ConfState(); !got.Equal(confOf([]uint64{2, 3})) {
		t.Fatalf("node 2: membership %v, want voters [2 3]", got)
	}
	for i := 0; len(net.leaders()) == 0; i++ {
		if i > 100 {
			t.Fatal("no leader elected among the remaining voters")
		}
		net.advance(20 * ms)
		net.stabilize()
	}
	if l := net.leaders(); len(l) != 1 || l[0] == 1 {
		t.Fatalf("leaders %v after node 1 removed itself", l)
	}
}

// A restarted node rebuilds its membership from what its disk holds: the snapshot's and the
// changes applied since, not its configured peers.
func TestRestartRebuildsMembershipFromTheLog(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.join(4)
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfPromote, 4}, {ConfRemove, 3}}})
	want := net.raft(2).ConfState()
	net.restart(2)
	// The restarted core applies what it committed again, as georaftd replays its log.
	net.stabilize()
	if got := net.raft(2).ConfState(); !got.Equal(want) {
		t.Fatalf("after a restart node 2 has membership %v, want %v", got, want)
	}
	net.restart(4)
	net.stabilize()
	if got := net.raft(4).ConfState(); !got.Equal(want) {
		t.Fatalf("after a restart joined node 4 has membership %v, want %v", got, want)
	}
}

// A node that joins after the log was compacted learns the membership from the snapshot it
// is sent, which carries the membership as of its index.
func TestSnapshotCarriesMembership(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.join(4)
	net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
	net.isolate(4)
	for range 10 {
		net.propose(1, "x")
	}
	net.stabilize()
	for _, id := range []uint64{1, 2, 3} {
		net.compact(id)
	}
	if got := net.raft(1).Status().Snapshot.ConfState; !got.Equal(confOf([]uint64{1, 2, 3}, 4)) {
		t.Fatalf("the leader's snapshot holds membership %v", got)
	}
	// Node 4 restarts empty, as a brand new process would, and is sent the snapshot.
	net.node(4).disk = driverDisk{}
	net.restart(4)
	net.heal()
	for range 10 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if got := net.raft(4).ConfState(); !got.Equal(confOf([]uint64{1, 2, 3}, 4)) {
		t.Fatalf("node 4 learned membership %v from the snapshot", got)
	}
}

func TestConfChangeEncoding(t *testing.T) {
	cc := ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 7}, {ConfPromote, 1 << 40}, {ConfRemove, 3}}, Context: []byte("addr")}
	back, err := DecodeConfChange(cc.Encode())
	if err != nil || len(back.Changes) != 3 || back.Changes[1] != cc.Changes[1] || string(back.Context) != "addr" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	for _, bad := range [][]byte{nil, {9}, {1, 5}, {1, 1, 2}, {1, 1, 9, 1}, {1, 1, 1, 0}} {
		if _, err := DecodeConfChange(bad); err == nil {
			t.Errorf("DecodeConfChange(%v) accepted it", bad)
		}
	}
}

// A candidate decides its election only once the Ready that made its term and vote durable
// has been carried out: the membership it counts by then holds every change it knew
// committed, and its own vote is on disk before it leads. The story the simulator's
// sole-voter attack found: a cluster shrinks to one voter, which is replaced; the old voter
// restarts (rebuilding the membership in which it is the only voter), and its election timer
// fires before it has applied its replacement. Counting at once, it would lead alongside
// the new voter, in the same term.
func TestElectionIsDecidedOnceTheCandidacyIsDurable(t *testing.T) {
	for _, off := range []bool{false, true} {
		net := newTestNet(t, 3, func(c *Config) { c.off.electAfterPersist = off })
		net.elect(1)
		net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfRemove, 3}}})
		net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfRemove, 2}}})
		net.compact(1) // its disk now says it is the only voter
		net.join(4, func(c *Config) { c.off.electAfterPersist = off })
		net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 4}}})
		net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfPromote, 4}, {ConfRemove, 1}}})
		for i := 0; net.raft(4).Status().Role != Leader; i++ {
			if i > 100 {
				t.Fatalf("off=%v: node 4 does not lead: %+v", off, net.raft(4).Status())
			}
			net.advance(10 * ms)
			net.stabilize()
		}
		term := net.raft(4).Status().Term
		net.restart(1)
		if !net.raft(1).isVoter() || net.raft(1).Status().Commit <= net.raft(1).Status().Applied {
			t.Fatalf("setup: node 1 should restart as the only voter with its replacement committed and unapplied: %+v, %v",
				net.raft(1).Status(), net.raft(1).ConfState())
		}
		if err := net.raft(1).Campaign(); err != nil {
			t.Fatal(err)
		}
		st := net.raft(1).Status()
		if off {
			if st.Role != Leader || st.Term != term {
				t.Fatalf("mechanism off: node 1 is %v of term %d, want the second leader of term %d", st.Role, st.Term, term)
			}
			continue
		}
		if st.Role == Leader {
			t.Fatalf("node 1 leads term %d before its vote is on disk or its replacement applied", st.Term)
		}
		net.cycle(1) // persists the vote, applies the replacement
		if st := net.raft(1).Status(); st.Role == Leader || net.raft(1).isVoter() {
			t.Fatalf("node 1 is %v after applying its replacement (voter: %v)", st.Role, net.raft(1).isVoter())
		}
	}
	// A lone voter still elects itself, once its vote is durable.
	net := newTestNet(t, 1)
	if err := net.raft(1).Campaign(); err != nil {
		t.Fatal(err)
	}
	if role := net.raft(1).Status().Role; role != Candidate {
		t.Fatalf("a lone voter is %v before its vote is on disk, want candidate", role)
	}
	net.cycle(1)
	if st := net.raft(1).Status(); st.Role != Leader || net.node(1).disk.hs.Vote != 1 {
		t.Fatalf("a lone voter is %v after persisting its vote (disk vote %d)", st.Role, net.node(1).disk.hs.Vote)
	}
}

// A lone voter commits an entry only in a Ready after the one that persists it: appends to
// its learners leave before that persist, and must not tell them the entry is committed
// (finding F15). With a second voter nothing changes: no follower acknowledges an entry not
// yet sent.
func TestLoneVoterRevealsNoCommitBeforeItsPersist(t *testing.T) {
	for _, off := range []bool{false, true} {
		net := newTestNet(t, 1, func(c *Config) { c.off.leaderCountsHandedOut = off })
		net.elect(1)
		net.join(2)
		net.change(1, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, 2}}})
		net.stabilize()
		r := net.raft(1)
		idx, _ := net.propose(1, "x")
		net.advanceNode(1, ms) // a tick (or any acknowledgement) counts the log again
		rd := r.Ready()
		early := rd.HardState != nil && rd.HardState.Commit >= idx
		for _, m := range append(rd.Messages, rd.MessagesAfterPersist...) {
			early = early || (m.Type == MsgApp && m.Commit >= idx)
		}
		if early != off {
			t.Fatalf("mechanism off=%v: the Ready that persists entry %d reveals its commit: %v (hard state %+v, messages %v)",
				off, idx, early, rd.HardState, rd.Messages)
		}
		r.Advance(rd)
		if rd := r.Ready(); !off && (rd.HardState == nil || rd.HardState.Commit < idx) {
			t.Fatalf("entry %d not committed in the Ready after its persist: %+v", idx, rd.HardState)
		}
	}
}
