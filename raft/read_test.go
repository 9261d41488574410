package raft

import (
	"errors"
	"testing"
	"time"
)

func heartbeatsIn(rd Ready) []Message {
	var out []Message
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat {
			out = append(out, m)
		}
	}
	return out
}

// ReadIndex (§6.4): the leader records its commit index and answers only once a quorum echoed
// a round sent after the read arrived; echoes of older rounds do not count.
func TestReadIndexConfirmedByRound(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	r := net.raft(1)
	// An older heartbeat round, still in flight when the read arrives.
	r.broadcastHeartbeat()
	old := heartbeatsIn(net.cycle(1))
	net.inflight = nil
	commit := r.Status().Commit
	if err := r.Read(7, ReadIndex); err != nil {
		t.Fatal(err)
	}
	rd := net.cycle(1)
	if len(rd.ReadStates) != 0 {
		t.Fatalf("read answered before any confirmation: %v", rd.ReadStates)
	}
	fresh := heartbeatsIn(rd)
	if len(fresh) != 2 || fresh[0].Round <= old[0].Round {
		t.Fatalf("read broadcast %+v, want a heartbeat per follower with a round above %d", fresh, old[0].Round)
	}
	net.inflight = nil
	// Node 2 answers the old round: not enough.
	r.Step(Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: 1, SentAt: old[0].SentAt, Round: old[0].Round})
	if rd := net.cycle(1); len(rd.ReadStates) != 0 {
		t.Fatalf("read confirmed by an older round: %v", rd.ReadStates)
	}
	// Node 3 answers the new round: with the leader, a quorum.
	r.Step(Message{Type: MsgHeartbeatResp, From: 3, To: 1, Term: 1, SentAt: fresh[1].SentAt, Round: fresh[1].Round})
	rd = net.cycle(1)
	if len(rd.ReadStates) != 1 || rd.ReadStates[0] != (ReadState{ID: 7, Index: commit, Mode: ReadIndex}) {
		t.Fatalf("read states %v, want {7 %d index}", rd.ReadStates, commit)
	}
}

// Many reads that arrive before the next Ready share one heartbeat round; a read arriving
// after that round went out gets a new one.
func TestReadIndexBatchesReadsOnOneRound(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	r := net.raft(1)
	for id := uint64(1); id <= 50; id++ {
		r.Read(id, ReadIndex)
	}
	rd := net.cycle(1)
	hbs := heartbeatsIn(rd)
	if len(hbs) != 2 {
		t.Fatalf("%d heartbeats for 50 reads, want one per follower", len(hbs))
	}
	r.Read(51, ReadIndex)
	rd2 := net.cycle(1)
	hbs2 := heartbeatsIn(rd2)
	if len(hbs2) != 2 || hbs2[0].Round != hbs[0].Round+1 {
		t.Fatalf("later read: heartbeats %+v, want a new round %d", hbs2, hbs[0].Round+1)
	}
	net.stabilize()
	if got := len(net.node(1).reads); got != 51 {
		t.Fatalf("%d reads answered, want 51", got)
	}
}

// Reads that reach a new leader before it committed an entry of its term wait for that
// commit, and then carry the commit index as of that moment.
func TestReadIndexWaitsForFirstCommitOfTerm(t *testing.T) {
	net := newTestNet(t, 3)
	r := net.raft(1)
	r.Campaign()
	net.processAll()
	for _, m := range net.take(func(m Message) bool { return m.Type == MsgPreVote }) {
		r.Step(Message{Type: MsgPreVoteResp, From: m.To, To: 1, Term: m.Term})
	}
	net.cycle(1) // its term and vote are durable: it may count
	r.Step(Message{Type: MsgVoteResp, From: 2, To: 1, Term: 1})
	net.inflight = nil
	if st := r.Status(); st.Role != Leader || st.Commit != 0 {
		t.Fatalf("%+v", st)
	}
	if err := r.Read(1, ReadIndex); err != nil {
		t.Fatal(err)
	}
	rd := net.cycle(1)
	if len(rd.ReadStates) != 0 {
		t.Fatalf("read answered before the no-op committed: %v", rd.ReadStates)
	}
	net.stabilize()
	if len(net.node(1).reads) != 0 {
		t.Fatalf("read answered before the no-op committed: %v", net.node(1).reads)
	}
	for i := 0; i < 10 && r.Status().Commit == 0; i++ {
		net.advance(10 * ms) // the old-lease wait defers the first commit
		net.stabilize()
	}
	reads := net.node(1).reads
	if len(reads) != 1 || reads[0].Index != 1 {
		t.Fatalf("reads %v, want read 1 at index 1 (the no-op)", reads)
	}
}

// A leader that steps down hands back every pending ReadIndex read as dropped, with a
// NotLeaderError that names the new leader if known.
func TestPendingReadsDroppedOnStepDown(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	r := net.raft(1)
	r.Read(1, ReadIndex)
	r.Read(2, ReadIndex)
	net.cycle(1)
	net.inflight = nil
	r.Step(Message{Type: MsgApp, From: 3, To: 1, Term: 5, Index: 1, LogTerm: 1})
	rd := net.cycle(1)
	if len(rd.DroppedReads) != 2 {
		t.Fatalf("dropped %v, want both reads", rd.DroppedReads)
	}
	var nle *NotLeaderError
	if !errors.As(rd.DroppedReads[0].Err, &nle) || nle.Leader != 3 || nle.Term != 5 {
		t.Fatalf("dropped read error %v, want not leader, leader 3 term 5", rd.DroppedReads[0].Err)
	}
}

// Read modes on the wrong node or without a lease fail with an error the node can act on.
func TestReadErrors(t *testing.T) {
	net := newTestNet(t, 3)
	net.raft(1).Campaign()
	net.stabilize()
	var nle *NotLeaderError
	for _, mode := range []ReadMode{ReadLease, ReadIndex} {
		if err := net.raft(2).Read(1, mode); !errors.As(err, &nle) || nle.Leader != 1 {
			t.Fatalf("%v read on a follower: %v, want NotLeaderError with leader 1", mode, err)
		}
	}
	if err := net.raft(1).Read(1, ReadLease); !errors.Is(err, ErrLeaseNotHeld) {
		t.Fatalf("lease read during the old-lease wait: %v", err)
	}
	if err := net.raft(1).Read(1, ReadLog); err == nil {
		t.Fatalf("ReadLog accepted by the core")
	}
	net.untilLeaseHeld(1)
	if err := net.raft(1).Read(9, ReadLease); err != nil {
		t.Fatal(err)
	}
	rd := net.cycle(1)
	if len(rd.ReadStates) != 1 || rd.ReadStates[0].Mode != ReadLease || rd.ReadStates[0].Index != net.raft(1).Status().Commit {
		t.Fatalf("lease read state %v", rd.ReadStates)
	}
}

// A stale read is answered from local state only within MaxStaleness of the last contact
// with a quorum-backed leader (for a leader: its last quorum acknowledgement).
func TestStaleReadBound(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxStaleness = 300 * ms })
	if err := net.raft(2).Read(1, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("stale read before any leader: %v", err)
	}
	net.elect(1)
	net.stabilize()
	f := net.raft(2)
	heard := f.Status().LastLeaderContact
	if err := f.Read(1, ReadStale); err != nil {
		t.Fatal(err)
	}
	// The read state names the index the read must see applied: the leader's commit index its
	// freshness vouches for (ReadView.StaleIndex).
	commit := f.Status().Commit
	if rd := net.cycle(2); len(rd.ReadStates) != 1 || rd.ReadStates[0] != (ReadState{ID: 1, Index: commit, Mode: ReadStale}) {
		t.Fatalf("read states %v", rd.ReadStates)
	}
	net.isolate(2)
	net.isolate(1)
	net.advanceNode(2, heard+300*ms-net.node(2).now)
	if err := f.Read(2, ReadStale); err != nil {
		t.Fatalf("at exactly the bound: %v", err)
	}
	net.advanceNode(2, 1)
	if err := f.Read(3, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("past the bound: %v", err)
	}
	// The isolated leader: bounded by its last quorum acknowledgement, even though it is
	// still leader for a while.
	l := net.raft(1)
	acked := l.Status().LastLeaderContact
	net.advanceNode(1, acked+300*ms+1-net.node(1).now)
	if l.Status().Role == Leader {
		t.Fatalf("isolated leader still leader after 300ms (> election timeout)")
	}
	if err := l.Read(4, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("isolated former leader past the bound: %v", err)
	}
}

// A single-node cluster confirms ReadIndex reads and holds its lease on its own.
func TestSingleNodeReads(t *testing.T) {
	net := newTestNet(t, 1)
	net.elect(1)
	r := net.raft(1)
	if err := r.Read(1, ReadIndex); err != nil {
		t.Fatal(err)
	}
	net.stabilize()
	if reads := net.node(1).reads; len(reads) != 1 || reads[0].Index != 1 {
		t.Fatalf("reads %v", reads)
	}
	net.untilLeaseHeld(1)
	for i := 0; i < 20; i++ {
		net.advance(40 * ms)
		net.stabilize()
		if err := r.Read(2, ReadLease); err != nil {
			t.Fatalf("single node lost its lease at %v: %v", net.node(1).now, err)
		}
	}
	_ = time.Second
}

// A follower that hears from its leader but lacks entries the leader had committed is not
// fresh: its stale reads stay refused until it catches up. A follower that is up to date stays
// fresh on heartbeats alone, however long no write comes.
func TestStaleReadNeedsUpToDateFollower(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxStaleness = 100 * ms })
	net.elect(1)
	net.isolate(3)
	for i := 0; i < 5; i++ {
		net.propose(1, "x")
	}
	net.stabilize()
	for i := 0; i < 15; i++ {
		net.advance(10 * ms)
		net.stabilize()
	}
	net.heal()
	// Only heartbeats reach node 3: it hears the leader but cannot catch up.
	net.filter = func(m Message) bool { return m.Type != MsgApp }
	net.advance(10 * ms)
	net.stabilize()
	f := net.raft(3)
	if f.Status().Leader != 1 || f.Status().Commit >= net.raft(1).Status().Commit {
		t.Fatalf("setup: node 3 %+v", f.Status())
	}
	if err := f.Read(1, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("lagging follower's stale read: %v, want ErrTooStale", err)
	}
	net.filter = nil
	net.advance(10 * ms)
	net.stabilize()
	if err := f.Read(2, ReadStale); err != nil {
		t.Fatalf("caught-up follower's stale read: %v", err)
	}
	// An idle second: only heartbeats, no write.
	for i := 0; i < 100; i++ {
		net.advance(10 * ms)
		net.stabilize()
	}
	if err := f.Read(3, ReadStale); err != nil {
		t.Fatalf("up-to-date follower of an idle cluster: %v", err)
	}
}

// A heartbeat carries the leader's whole commit index, but a follower commits from it only
// what it knows matches the leader's log: not a stale tail left by an earlier leader.
func TestHeartbeatCommitCappedByVerifiedLog(t *testing.T) {
	// Node 2 holds 1..3 of term 1 and 4..5 of an abandoned term 2; the leader of term 3 holds
	// 1..3 and commits 5 with entries of its own.
	r := newFollower(t, 2, 2, 3, logOf(1, 1, 1, 2, 2))
	stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 3, Commit: 5, SentAt: 1})
	if c := r.Status().Commit; c != 3 {
		t.Fatalf("commit %d from a heartbeat before any append of the new leader, want 3", c)
	}
	stepOK(t, r, Message{Type: MsgApp, From: 1, Term: 3, Index: 3, LogTerm: 1, Commit: 5,
		Entries: []Entry{{Index: 4, Term: 3}, {Index: 5, Term: 3}}})
	if st := r.Status(); st.Commit != 5 || termsOf(r.log.entries)[4] != 3 {
		t.Fatalf("after the append: commit %d log %v", st.Commit, termsOf(r.log.entries))
	}
}

// A new leader's state may lack writes its predecessor committed until it commits an entry of
// its own term: until then its stale reads are only as fresh as it was as a follower, however
// many heartbeats a quorum answers. (Found by the simulator, seed 288.)
func TestNewLeaderStaleReadsWaitForItsFirstCommit(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxStaleness = 300 * ms })
	net.elect(1)
	// Node 1 commits x with nodes 2 and 3, then is cut off before telling them.
	idx, _ := net.propose(1, "x")
	net.cycle(1)
	net.deliver()
	net.processAll()
	net.deliver()
	if c := net.raft(1).Status().Commit; c != idx {
		t.Fatalf("setup: leader commit %d, want %d", c, idx)
	}
	net.isolate(1)
	net.inflight = nil
	freshAt := net.node(2).now
	if c := net.raft(2).Status().Commit; c >= idx {
		t.Fatalf("setup: node 2 already knows %d is committed", c)
	}
	// A new leader is elected, but none of its appends is acknowledged: it cannot commit.
	net.filter = func(m Message) bool { return m.Type != MsgAppResp }
	var l *Raft
	for l == nil {
		net.advance(10 * ms)
		net.stabilize()
		for _, id := range []uint64{2, 3} {
			if net.raft(id).Status().Role == Leader {
				l = net.raft(id)
			}
		}
		if net.node(2).now > time.Second {
			t.Fatal("no new leader")
		}
	}
	for net.node(2).now <= freshAt+300*ms {
		net.advance(10 * ms)
		net.stabilize()
	}
	if st := l.Status(); st.Role != Leader || st.Commit >= idx {
		t.Fatalf("setup: new leader %+v", st)
	}
	if err := l.Read(1, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("new leader without a commit in its term, %v after its last fresh contact: stale read %v, want ErrTooStale",
			net.node(2).now-freshAt, err)
	}
	// Once it commits, it is fresh again.
	net.filter = nil
	net.advance(10 * ms)
	net.stabilize()
	if err := l.Read(2, ReadStale); err != nil {
		t.Fatalf("after committing in its term: %v", err)
	}
}

// A follower counts as up to date only with a leader whose commit index covers its own term:
// before a new leader commits its no-op, its commit index may lack writes an earlier leader
// committed, so the follower's state is not known fresh. (Found by the simulator, seed 288.)
func TestFollowerFreshOnlyOnceLeaderCommittedInTerm(t *testing.T) {
	r := newFollower(t, 2, 1, 1, logOf(1, 1))
	r.Tick(time.Second)
	// Both messages echo a response this follower sent at 1s (FollowerClock), so only the
	// leader's commit index decides.
	stepOK(t, r, Message{Type: MsgApp, From: 1, Term: 2, Index: 2, LogTerm: 1, Commit: 1,
		Entries: []Entry{{Index: 3, Term: 2, Type: EntryNoop}}, FollowerClock: time.Second})
	if err := r.Read(1, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("follower of a leader that has not committed in its term: %v, want ErrTooStale", err)
	}
	stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 2, Commit: 3, FollowerClock: time.Second})
	if err := r.Read(2, ReadStale); err != nil {
		t.Fatalf("after the leader committed its no-op: %v", err)
	}
}
