package raft

import (
	"slices"
	"testing"
	"time"
)

// Between Ready and Advance the core hands out nothing new, though it keeps accepting input;
// what that input produced comes in the Ready after Advance.
func TestReadyNothingNewUntilAdvance(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	r := net.raft(1)
	net.propose(1, "a")
	held, err := net.node(1).take()
	if err != nil {
		t.Fatal(err)
	}
	rd := *held
	if len(rd.Entries) != 1 {
		t.Fatalf("entries %v", rd.Entries)
	}
	if r.HasReady() {
		t.Fatalf("HasReady true before Advance")
	}
	idx, _ := net.propose(1, "b")
	if again := r.Ready(); !again.IsEmpty() {
		t.Fatalf("second Ready before Advance is not empty: %+v", again)
	}
	if err := net.node(1).persist(); err != nil {
		t.Fatal(err)
	}
	if err := net.node(1).advance(); err != nil {
		t.Fatal(err)
	}
	if !r.HasReady() {
		t.Fatalf("HasReady false with a proposal pending")
	}
	rd = net.cycle(1)
	if len(rd.Entries) != 1 || rd.Entries[0].Index != idx {
		t.Fatalf("entries after Advance %v, want the second proposal at %d", rd.Entries, idx)
	}
}

// A candidate's vote requests leave only after its new term and self-vote are durable: they
// sit in MessagesAfterPersist of the same Ready as the HardState.
func TestVoteRequestsAfterPersist(t *testing.T) {
	net := newTestNet(t, 3)
	r := net.raft(1)
	r.Campaign()
	r.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 1})
	rd := r.Ready()
	if rd.HardState == nil || rd.HardState.Term != 1 || rd.HardState.Vote != 1 {
		t.Fatalf("HardState %+v, want term 1 vote 1", rd.HardState)
	}
	if countType(rd.Messages, MsgVote) != 0 || countType(rd.MessagesAfterPersist, MsgVote) != 2 {
		t.Fatalf("vote requests must wait for persistence: messages %v after %v", rd.Messages, rd.MessagesAfterPersist)
	}
}

// A vote granted before it was asked for (forged, or corrupt) elects nobody before the Ready
// that makes the candidate's term durable is carried out: no leader message can leave before
// that persist, so a crash cannot forget the term and vote they were sent under. Found by
// FuzzCoreMessages, when such a vote could elect a node within that very Ready.
func TestUnsolicitedVoteCannotRushAppendsOut(t *testing.T) {
	net := newTestNet(t, 3)
	r := net.raft(1)
	r.Campaign()
	r.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 1})
	if err := r.Step(Message{Type: MsgVoteResp, From: 3, To: 1, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Role != Candidate {
		t.Fatalf("node 1 is %v before its term is durable, want candidate", st.Role)
	}
	rd := r.Ready()
	if rd.HardState == nil || rd.HardState.Term != 1 || rd.HardState.Vote != 1 {
		t.Fatalf("HardState %+v, want term 1 vote 1", rd.HardState)
	}
	if countType(rd.Messages, MsgApp)+countType(rd.MessagesAfterPersist, MsgApp) != 0 {
		t.Fatalf("appends %v / %v in the Ready that makes term 1 durable", rd.Messages, rd.MessagesAfterPersist)
	}
	r.Advance(rd)
	if st := r.Status(); st.Role != Leader {
		t.Fatalf("node 1 is %v once its term is durable, want leader on its own vote and node 3's", st.Role)
	}
	if rd := r.Ready(); countType(rd.Messages, MsgApp) != 2 {
		t.Fatalf("messages %v, want the new leader's appends to both peers", rd.Messages)
	}
}

// A follower acknowledges an append only after persisting it: the MsgAppResp is in
// MessagesAfterPersist of the Ready that carries the entries.
func TestAppendAckAfterPersist(t *testing.T) {
	r := newFollower(t, 2, 1, 0, nil)
	r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: []Entry{{Index: 1, Term: 1}}})
	rd := r.Ready()
	if len(rd.Entries) != 1 || countType(rd.MessagesAfterPersist, MsgAppResp) != 1 || len(rd.Messages) != 0 {
		t.Fatalf("entries %v, messages %v, after persist %v", rd.Entries, rd.Messages, rd.MessagesAfterPersist)
	}
}

// The commit event comes once per Ready with the new commit index, however many entries
// committed; heartbeats produce no events at all.
func TestCommitEventPerReadyAndQuietHeartbeats(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	for _, id := range net.ids {
		net.node(id).events = nil
	}
	for i := 0; i < 20; i++ {
		net.propose(1, "x")
	}
	net.stabilize()
	if got := len(net.eventsOf(1, EventCommitted)); got != 1 {
		t.Fatalf("%d commit events for one batch on the leader:\n%s", got, net.dumpEvents(1))
	}
	for _, id := range net.ids {
		net.node(id).events = nil
	}
	for i := 0; i < 10; i++ {
		net.advance(10 * ms)
		net.stabilize()
	}
	for _, id := range net.ids {
		if evs := net.node(id).events; len(evs) != 0 {
			t.Fatalf("node %d: events during idle heartbeats:\n%s", id, net.dumpEvents(id))
		}
	}
}

// Tick ignores a clock that goes backwards, and an idle leader's next deadline is its next
// heartbeat.
func TestTickAndNextDeadline(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	r := net.raft(1)
	now := net.node(1).now
	r.Tick(now - time.Second)
	if r.Status().Now != now {
		t.Fatalf("clock moved back to %v", r.Status().Now)
	}
	d := r.NextDeadline()
	if d <= now || d > now+10*ms {
		t.Fatalf("NextDeadline %v, want within one heartbeat interval of %v", d, now)
	}
	if st := net.raft(2).Status(); net.raft(2).NextDeadline() < st.Now+100*ms {
		t.Fatalf("follower deadline %v earlier than a minimum election timeout from its last contact", net.raft(2).NextDeadline())
	}
}

// A cluster driven only at the cores' own deadlines (a driver that sleeps until
// NextDeadline) elects a leader, keeps it, and keeps its lease.
func TestDrivenByNextDeadlineOnly(t *testing.T) {
	net := newTestNet(t, 5)
	var now time.Duration
	for step := 0; step < 2000 && now < 3*time.Second; step++ {
		next := time.Duration(1<<63 - 1)
		for _, id := range net.ids {
			next = min(next, net.raft(id).NextDeadline())
		}
		if next <= now {
			t.Fatalf("a deadline %v at or before now %v after ticking", next, now)
		}
		now = next
		for _, id := range net.ids {
			net.node(id).now = now
			net.raft(id).Tick(now)
		}
		net.stabilize()
	}
	leaders := net.leaders()
	if len(leaders) != 1 {
		t.Fatalf("leaders %v after 3s", leaders)
	}
	l := leaders[0]
	if st := net.raft(l).Status(); st.Term != 1 && st.Term != 2 || st.Lease != LeaseHeld {
		t.Fatalf("leader %d: term %d lease %v; want an early term and a held lease", l, st.Term, st.Lease)
	}
	if len(net.eventsOf(l, EventSteppedDown)) != 0 {
		t.Fatalf("leader stepped down:\n%s", net.dumpEvents(l))
	}
}

// Status reports the role, leader hint and per-follower progress.
func TestStatusFields(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	st := net.raft(1).Status()
	if st.ID != 1 || st.Role != Leader || st.Leader != 1 || st.Term != 1 || st.Vote != 1 ||
		st.Commit != st.LastIndex || st.Applied != st.Commit || st.FirstIndex != 1 ||
		st.Lease != LeaseHeld || st.LeaseRemaining <= 0 || st.LeaseExpiry != st.Now+st.LeaseRemaining ||
		st.LastLeaderContact == 0 || len(st.Progress) != 3 {
		t.Fatalf("leader status %+v", st)
	}
	for id, pr := range st.Progress {
		if pr.Match != st.LastIndex || pr.Next != st.LastIndex+1 {
			t.Errorf("progress of %d: %+v", id, pr)
		}
	}
	fst := net.raft(2).Status()
	if fst.Role != Follower || fst.Leader != 1 || fst.Progress != nil || fst.Lease != LeaseNone ||
		fst.KnownLeaseUntil <= fst.Now || fst.LastLeaderContact <= 0 || fst.LastLeaderContact > fst.Now {
		t.Fatalf("follower status %+v", fst)
	}
}

// A node restarted from what its Readies told it to persist comes back with its term, vote,
// log and commit index, assumes a lease from its restart, and rejoins the cluster.
func TestRestartFromPersistedState(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	for i := 0; i < 5; i++ {
		net.propose(1, "x")
	}
	net.stabilize()
	before := net.raft(2).Status()
	net.advance(7 * ms)
	net.restart(2)
	after := net.raft(2).Status()
	if after.Term != before.Term || after.Vote != before.Vote || after.LastIndex != before.LastIndex || after.Commit != before.Commit {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if after.Applied != 0 || after.Leader != None || after.KnownLeaseUntil != net.node(2).now+50*ms {
		t.Fatalf("after restart: applied %d leader %d known lease %v", after.Applied, after.Leader, after.KnownLeaseUntil)
	}
	net.stabilize() // reapplies what is committed
	if got := len(net.node(2).applied); uint64(got) != after.Commit {
		t.Fatalf("reapplied %d entries, want %d", got, after.Commit)
	}
	net.propose(1, "y")
	net.advance(10 * ms)
	net.stabilize()
	if st := net.raft(2).Status(); st.LastIndex != net.raft(1).Status().LastIndex || st.Leader != 1 {
		t.Fatalf("restarted node did not rejoin: %+v", st)
	}
}

// An acknowledgement waiting for the persist of entries that a later append (of a newer
// leader) removes before that persist is withdrawn: sent anyway, it would let the older
// leader count a copy that never reaches the disk. (Found by the simulator once applying
// could take longer than a round trip: TestAdversarialSimulationClean seed 957 before the fix.)
func TestAckOfEntriesTruncatedBeforeTheirPersistIsWithdrawn(t *testing.T) {
	for _, off := range []bool{false, true} {
		r := newFollower(t, 2, 1, 0, nil)
		r.cfg.off.withdrawTruncatedAcks = off
		r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}}})
		// Before any Ready, the leader of term 2 replaces both entries with its own.
		r.Step(Message{Type: MsgApp, From: 3, To: 2, Term: 2, Entries: []Entry{{Index: 1, Term: 2}}})
		rd := r.Ready()
		stale := slices.ContainsFunc(rd.MessagesAfterPersist, func(m Message) bool {
			return m.Type == MsgAppResp && m.Term == 1 && m.Index == 2 && !m.Reject
		})
		if stale != off {
			t.Fatalf("mechanism off=%v: acknowledgement of the truncated entry 2 still leaves: %v", off, rd.MessagesAfterPersist)
		}
	}
}
