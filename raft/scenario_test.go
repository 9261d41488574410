package raft

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Scenario tests: each drives the cores message by message through a story from the Raft
// paper or from the lease design, on the scripted network of scenario_net_test.go.

// figure8 plays Raft paper Figure 8 (a)–(c) on five nodes, with one entry per append so the
// test can choose which entries arrive:
//
//	(a) S1 leads term t1 and replicates x at index 2 to S2 only;
//	(b) S1 crashes; S5 wins term t2 with S3, S4 and itself, and appends its no-op at index 2,
//	    which reaches nobody;
//	(c) S5 crashes; S1 restarts, wins term t3, and replicates x (term t1) at index 2 to S3:
//	    x is now on S1, S2 and S3, a majority, but it is not of S1's term.
func figure8(t *testing.T) (s *scene, t1, t2, t3 uint64) {
	s = newScene(t, 5, func(c *Config) { c.MaxSizePerMsg = 1 })

	// (a)
	s.campaign(1)
	s.advance(scnHeartbeat)
	s.settle()
	t1 = s.status(1).Term
	x := s.propose(1, "x")
	if x != 2 {
		t.Fatalf("x went to index %d, want 2 (after S1's no-op)", x)
	}
	s.deliver(msgAnd(msgType(MsgApp), msgTo(2)))
	s.drop(msgFrom(1))
	s.deliver(msgFrom(2))
	if c := s.status(1).Commit; c >= x {
		t.Fatalf("(a) S1 committed x with 2 of 5 copies (commit %d)", c)
	}

	// (b)
	s.crash(1)
	s.drop(anyMsg)
	s.advance(scnElectionMin+time.Millisecond, 3, 4, 5) // out of contact with S1
	s.drop(anyMsg)
	fromS5 := msgFrom(5)
	s.electAmong(5, []uint64{3, 4, 5}, func(m Message) bool { return !(fromS5(m) && m.Type == MsgApp) })
	t2 = s.status(5).Term
	if e, ok := s.node(5).entryAt(2); !ok || e.Term != t2 {
		t.Fatalf("(b) S5's log is %s, want its term-%d no-op at 2", s.node(5).termsOfLog(), t2)
	}
	s.drop(anyMsg)

	// (c)
	s.crash(5)
	s.restart(1)
	s.advance(scnElectionMin+time.Millisecond, 1, 2, 3, 4)
	s.drop(anyMsg)
	s.electAmong(1, []uint64{1, 2, 3, 4}, func(m Message) bool { return m.Type != MsgApp })
	t3 = s.status(1).Term
	// S1's appends reach S3 trimmed of its own term-t3 entries (as if cut short by the
	// message size limit), so only x gets through; heartbeats flow among S1–S4 so that S1
	// keeps its quorum contact.
	s.trimAppends(1, 3, t3)
	// 20 heartbeats: far past any old-lease wait (at most LeaseDuration/(1−δ)), so a commit
	// held back here is held back by the commit rule, not by the wait.
	for range 20 {
		s.advance(scnHeartbeat, 1, 2, 3, 4)
		s.drop(func(m Message) bool { return m.Type == MsgApp && m.To != 3 })
		s.deliver(func(m Message) bool { return m.From <= 4 && m.To <= 4 })
	}
	for _, id := range []uint64{1, 2, 3} {
		if e, ok := s.node(id).entryAt(2); !ok || e.Term != t1 {
			t.Fatalf("(c) S%d's log is %s, want x (term %d) at 2", id, s.node(id).termsOfLog(), t1)
		}
	}
	return s, t1, t2, t3
}

// TestFigure8: a leader must not commit an entry of an earlier term by counting replicas,
// because a leader of a later term may still overwrite it (d); once an entry of its own term
// is on a majority, both are committed and safe (e).
func TestFigure8(t *testing.T) {
	t.Run("(c) a replica majority of an old-term entry is not a commit", func(t *testing.T) {
		s, _, _, _ := figure8(t)
		if c := s.status(1).Commit; c >= 2 {
			t.Fatalf("S1 committed index 2 (commit %d) by counting replicas of a term-%d entry", c, s.node(1).disk.entries[1].Term)
		}
	})
	t.Run("(d) so a later leader may overwrite it", func(t *testing.T) {
		s, t1, t2, _ := figure8(t)
		s.crash(1)
		s.drop(anyMsg)
		s.restart(5)
		s.advance(scnElectionMin+time.Millisecond, 2, 3, 4, 5)
		s.drop(anyMsg)
		s.electAmong(5, []uint64{2, 3, 4, 5}, func(Message) bool { return true })
		for range 10 {
			s.advance(scnHeartbeat, 2, 3, 4, 5)
			s.settle()
		}
		for _, id := range []uint64{2, 3, 4, 5} {
			e, ok := s.node(id).entryAt(2)
			if !ok || e.Term != t2 {
				t.Fatalf("S%d's log is %s, want S5's term-%d entry at 2", id, s.node(id).termsOfLog(), t2)
			}
			if slices.ContainsFunc(s.node(id).applied, func(e Entry) bool { return e.Index == 2 && e.Term == t1 }) {
				t.Fatalf("S%d applied x (term %d) at 2, which was then overwritten", id, t1)
			}
		}
	})
	t.Run("(e) an entry of the leader's term on a majority commits the older ones", func(t *testing.T) {
		s, t1, _, t3 := figure8(t)
		s.trimAppends(1, 3, 0)
		for range 10 {
			s.advance(scnHeartbeat, 1)
			s.deliver(func(m Message) bool {
				return (m.From == 1 && m.To == 3) || (m.From == 3 && m.To == 1) || (m.From == 1 && m.To == 2) || (m.From == 2 && m.To == 1)
			})
			if s.status(1).Commit >= 3 {
				break
			}
		}
		if c := s.status(1).Commit; c < 3 {
			t.Fatalf("S1 did not commit its term-%d no-op at 3 once S2 and S3 held it (commit %d)", t3, c)
		}
		// S5 can no longer win: a majority holds a newer last term than its term-t2 no-op.
		s.crash(1)
		s.drop(anyMsg)
		s.restart(5)
		s.advance(scnElectionMin+time.Millisecond, 2, 3, 4, 5)
		s.drop(anyMsg)
		for range 5 {
			s.r(5).Campaign()
			s.flush(5)
			s.settle()
			if s.status(5).Role == Leader {
				t.Fatalf("S5 won term %d with a log (%s) missing committed x (term %d) at 2", s.status(5).Term, s.node(5).termsOfLog(), t1)
			}
			s.advance(scnElectionMax, 5)
		}
	})
}

// TestOldLeaderPartitionedWithValidLease: the old leader is cut off while its lease is valid.
// It keeps answering lease reads only until its lease ends; the new leader answers none
// before that, in true time, and acknowledges no write either. The old leader's clock runs
// slow and the others fast, at the edges of the drift bound, so the lease is as long as it
// can be in true time.
func TestOldLeaderPartitionedWithValidLease(t *testing.T) {
	s := newScene(t, 3)
	s.campaign(1)
	s.untilLease(1, time.Millisecond, time.Second)
	s.isolate(1)

	slow, fast := 1-scnDrift/2, 1+scnDrift/2
	step := 500 * time.Microsecond // of true time
	var oldLastServed, newFirstServed, newFirstCommit time.Duration = -1, -1, -1
	var newLeader uint64
	written := uint64(0)
	for now := step; now < 3*scnElectionMax; now += step {
		s.advance(time.Duration(float64(step)*slow), 1)
		s.advance(time.Duration(float64(step)*fast), 2, 3)
		s.settle()
		if s.leaseRead(1) {
			oldLastServed = now
		}
		for _, id := range []uint64{2, 3} {
			if s.status(id).Role == Leader && newLeader == None {
				newLeader = id
				s.logf("node %d leads at true %v", id, now)
				written = s.propose(id, "after failover")
			}
		}
		if newLeader != None {
			if newFirstServed < 0 && s.leaseRead(newLeader) {
				newFirstServed = now
			}
			if newFirstCommit < 0 && s.status(newLeader).Commit >= written {
				newFirstCommit = now
			}
		}
	}
	if oldLastServed < 0 {
		t.Fatal("the old leader served no lease read after being cut off, although its lease was valid")
	}
	if newLeader == None || newFirstServed < 0 || newFirstCommit < 0 {
		t.Fatalf("no new leader serving reads and committing within %v (leader %d, first read %v, first commit %v)",
			3*scnElectionMax, newLeader, newFirstServed, newFirstCommit)
	}
	// The old lease: at most LeaseDuration×(1−δ) on the old leader's clock from its last
	// acknowledged round, which was sent before the cut, so less than that in true time
	// divided by its (slow) rate.
	maxOldLease := time.Duration(float64(scnLease) * (1 - scnDrift) / slow)
	if oldLastServed > maxOldLease {
		t.Errorf("the old leader served lease reads until true %v, beyond its lease (at most %v)", oldLastServed, maxOldLease)
	}
	if newFirstServed <= oldLastServed {
		t.Errorf("the new leader served a lease read at true %v, while the old one still did at %v", newFirstServed, oldLastServed)
	}
	if newFirstCommit <= oldLastServed {
		t.Errorf("the new leader committed a write at true %v, while the old leader still served lease reads (until %v)", newFirstCommit, oldLastServed)
	}
}

// TestLeaderIsolatedRightAfterRenewing: a leader cut off just after a quorum acknowledged a
// round serves lease reads until SentAt + LeaseDuration×(1−δ) on its clock and not one
// tick later, answers no ReadIndex read, and steps down after ElectionTimeoutMin without a
// quorum (CheckQuorum), dropping the pending reads.
func TestLeaderIsolatedRightAfterRenewing(t *testing.T) {
	s := newScene(t, 3)
	s.campaign(1)
	s.untilLease(1, time.Millisecond, time.Second)
	// One heartbeat round, acknowledged by everyone: a renewal dated at its SentAt.
	s.advance(scnHeartbeat)
	sentAt := s.node(1).clock
	s.settle()
	st := s.status(1)
	if want := sentAt + time.Duration(float64(scnLease)*(1-scnDrift)); st.Lease != LeaseHeld || st.LeaseExpiry != want {
		t.Fatalf("after the round sent at %v: lease %v until %v, want held until %v", sentAt, st.Lease, st.LeaseExpiry, want)
	}
	expiry := st.LeaseExpiry
	s.isolate(1)
	if err := s.r(1).Read(999, ReadIndex); err != nil {
		t.Fatalf("ReadIndex on the leader: %v", err)
	}
	s.flush(1)

	for s.node(1).clock < expiry+5*time.Millisecond {
		s.advance(100*time.Microsecond, 1)
		served := s.leaseRead(1)
		if before := s.node(1).clock < expiry; served != before {
			t.Fatalf("at %v (lease until %v): lease read served=%v", s.node(1).clock, expiry, served)
		}
	}
	if slices.ContainsFunc(s.node(1).reads, func(rs ReadState) bool { return rs.ID == 999 }) {
		t.Fatal("the cut-off leader answered a ReadIndex read")
	}
	if s.status(1).Role != Leader {
		t.Fatalf("stepped down at %v, before an election timeout without quorum", s.node(1).clock-sentAt)
	}
	// CheckQuorum: ElectionTimeoutMin after the last quorum contact.
	for s.status(1).Role == Leader && s.node(1).clock < sentAt+2*scnElectionMin {
		s.advance(time.Millisecond, 1)
	}
	if st := s.status(1); st.Role == Leader {
		t.Fatalf("still leader %v after losing its quorum", s.node(1).clock-sentAt)
	}
	if gone := s.node(1).clock - sentAt; gone < scnElectionMin || gone > scnElectionMin+scnHeartbeat+2*time.Millisecond {
		t.Errorf("stepped down %v after the last acknowledged round, want about ElectionTimeoutMin (%v)", gone, scnElectionMin)
	}
	if !slices.ContainsFunc(s.node(1).dropped, func(d DroppedRead) bool { return d.ID == 999 }) {
		t.Error("the pending ReadIndex read was not dropped when the leader stepped down")
	}
}

// TestRejoiningNodeWithHigherTermUnderPreVote: a partitioned node keeps failing pre-votes
// without raising its term; when it rejoins, its pre-votes are refused, the leader is not
// deposed, and no one's term changes.
func TestRejoiningNodeWithHigherTermUnderPreVote(t *testing.T) {
	s := newScene(t, 3)
	s.campaign(1)
	s.settle()
	term := s.status(1).Term
	s.isolate(3)
	for range 20 { // many election timeouts
		s.advance(scnHeartbeat)
		s.settle()
		s.advance(scnHeartbeat)
		s.settle()
		s.advance(scnElectionMax / 4)
		s.settle()
	}
	if !s.node(3).hasEvent(EventPreVoteFailed) {
		t.Fatal("the cut-off node never tried a pre-vote")
	}
	if got := s.status(3).Term; got != term {
		t.Fatalf("the cut-off node raised its term to %d (leader's term %d)", got, term)
	}
	s.heal()
	for range 10 {
		s.advance(scnHeartbeat)
		s.settle()
	}
	for _, id := range []uint64{1, 2, 3} {
		st := s.status(id)
		if st.Term != term || st.Leader != 1 {
			t.Fatalf("after healing, node %d is in term %d following %d; want term %d and leader 1", id, st.Term, st.Leader, term)
		}
	}
	if st := s.status(1); st.Role != Leader || st.Progress[3].Match != st.LastIndex {
		t.Fatalf("leader 1: %v, node 3 matched at %d of %d", st.Role, st.Progress[3].Match, st.LastIndex)
	}
}

// TestTransferWhileLeaderHoldsLease: the old leader stops serving lease reads before its
// MsgTimeoutNow leaves; the new leader does not wait out the old lease; their lease reads
// never overlap.
func TestTransferWhileLeaderHoldsLease(t *testing.T) {
	s := newScene(t, 3)
	s.campaign(1)
	s.untilLease(1, time.Millisecond, time.Second)
	s.advance(scnHeartbeat)
	s.settle()
	oldExpiry := s.status(1).LeaseExpiry

	if err := s.r(1).TransferLeadership(2); err != nil {
		t.Fatal(err)
	}
	// Catch the Ready with MsgTimeoutNow before it is sent.
	nd := s.node(1)
	var timeoutNow []Message
	for nd.r.HasReady() {
		rd := s.ready(1)
		s.persist(1)
		for _, m := range append(slices.Clone(rd.Messages), rd.MessagesAfterPersist...) {
			if m.Type == MsgTimeoutNow {
				timeoutNow = append(timeoutNow, m)
				if st := s.status(1); st.Lease == LeaseHeld {
					t.Fatalf("MsgTimeoutNow is about to leave while the old leader still reports its lease held")
				}
				if err := nd.r.Read(4242, ReadLease); !errors.Is(err, ErrLeaseNotHeld) {
					t.Fatalf("lease read on the transferring leader: %v, want ErrLeaseNotHeld", err)
				}
			}
		}
		s.send(rd.Messages)
		s.send(rd.MessagesAfterPersist)
		s.finish(1)
	}
	if len(timeoutNow) == 0 {
		t.Fatal("the leader sent no MsgTimeoutNow although the target was up to date")
	}
	oldLastServed := s.node(1).clock // it stopped serving no later than now
	s.settle()
	if s.status(2).Role != Leader {
		t.Fatalf("node 2 did not take over: %v", s.status(2).Role)
	}
	// The new leader serves once its no-op commits, without waiting for the old lease.
	for range 10 {
		if s.leaseRead(2) {
			break
		}
		s.advance(time.Millisecond)
		s.settle()
	}
	if !s.leaseRead(2) {
		t.Fatalf("node 2 holds no lease %v after taking over: %v", 10*time.Millisecond, s.status(2).Lease)
	}
	// Same clock rates in this scene, so clocks compare: node 2 served before the old lease
	// would have ended, and after node 1 stopped.
	if now := s.node(2).clock; now >= oldExpiry {
		t.Errorf("node 2 first served at %v, not before the old lease's end %v: it waited for a lease given up", now, oldExpiry)
	}
	if s.leaseRead(1) {
		t.Error("the old leader serves lease reads again after the transfer")
	}
	if s.node(2).clock < oldLastServed {
		t.Error("the new leader served before the old one stopped")
	}
}

// TestCrashBetweenPersistingAndSending: a node that persisted a vote or an append but died
// before sending the reply comes back bound by what it persisted.
func TestCrashBetweenPersistingAndSending(t *testing.T) {
	t.Run("vote", func(t *testing.T) {
		s := newScene(t, 3)
		s.advance(scnElectionMin, 1, 2, 3)
		s.drop(anyMsg)
		// Node 1 runs for term 1: pre-votes, then votes.
		s.r(1).Campaign()
		s.flush(1)
		s.deliver(msgType(MsgPreVote))
		s.deliver(msgType(MsgPreVoteResp))
		term := s.status(1).Term
		// Node 2 receives the vote request, persists its vote, and crashes before replying.
		req := msgAnd(msgType(MsgVote), msgTo(2))
		var vote Message
		for _, m := range s.inflight {
			if req(m) {
				vote = m
			}
		}
		s.drop(req)
		s.node(2).r.Tick(s.node(2).clock)
		if err := s.r(2).Step(vote); err != nil {
			t.Fatal(err)
		}
		unsent := s.flushButCrashBeforeSending(2)
		if !slices.ContainsFunc(unsent, func(m Message) bool { return m.Type == MsgVoteResp && !m.Reject }) {
			t.Fatalf("node 2 had no vote grant waiting for the persist: %v", unsent)
		}
		if hs := s.node(2).disk.hs; hs.Term != term || hs.Vote != 1 {
			t.Fatalf("node 2 persisted %+v, want its vote for 1 in term %d", hs, term)
		}
		s.restart(2)
		if st := s.status(2); st.Term != term || st.Vote != 1 {
			t.Fatalf("restarted node 2: term %d vote %d, want term %d vote 1", st.Term, st.Vote, term)
		}
		// A rival in the same term asks: refused, since the vote went to node 1.
		rival := Message{Type: MsgVote, From: 3, To: 2, Term: term, Index: 10, LogTerm: term}
		s.node(2).r.Tick(s.node(2).clock)
		if err := s.r(2).Step(rival); err != nil {
			t.Fatal(err)
		}
		s.flush(2)
		for _, m := range s.inflight {
			if m.From == 2 && m.To == 3 && m.Type == MsgVoteResp && !m.Reject {
				t.Fatalf("restarted node 2 voted twice in term %d: for 1 (persisted) and now for 3", term)
			}
		}
		// Node 1 asks again (its retry): the same grant is safe to repeat.
		s.drop(anyMsg)
		s.node(2).r.Tick(s.node(2).clock)
		s.r(2).Step(vote)
		s.flush(2)
		if !slices.ContainsFunc(s.inflight, func(m Message) bool { return m.From == 2 && m.Type == MsgVoteResp && !m.Reject }) {
			t.Fatalf("node 2 does not repeat its persisted vote for node 1")
		}
		s.settle()
		if s.status(1).Role != Leader {
			t.Fatalf("node 1 did not win with the repeated vote: %v", s.status(1).Role)
		}
	})
	t.Run("append", func(t *testing.T) {
		s := newScene(t, 3)
		s.campaign(1)
		s.settle()
		index := s.propose(1, "x")
		// Node 2 persists x and crashes before acknowledging; node 3 never gets it.
		app := msgAnd(msgType(MsgApp), msgTo(2))
		s.drop(msgTo(3))
		var m Message
		for _, x := range s.inflight {
			if app(x) {
				m = x
			}
		}
		s.drop(app)
		s.node(2).r.Tick(s.node(2).clock)
		if err := s.r(2).Step(m); err != nil {
			t.Fatal(err)
		}
		unsent := s.flushButCrashBeforeSending(2)
		if !slices.ContainsFunc(unsent, func(m Message) bool { return m.Type == MsgAppResp && !m.Reject && m.Index >= index }) {
			t.Fatalf("node 2's acknowledgement of %d did not wait for the persist: %v", index, unsent)
		}
		if s.status(1).Commit >= index {
			t.Fatalf("leader committed %d with no acknowledgement", index)
		}
		s.restart(2)
		if e, ok := s.node(2).entryAt(index); !ok || string(e.Data) != "x" {
			t.Fatalf("node 2 lost the entry it persisted: log %s", s.node(2).termsOfLog())
		}
		for range 10 {
			s.advance(scnHeartbeat)
			s.settle()
		}
		if c := s.status(1).Commit; c < index {
			t.Fatalf("x at %d is not committed after node 2 came back (commit %d)", index, c)
		}
		for _, id := range []uint64{1, 2, 3} {
			if !slices.ContainsFunc(s.node(id).applied, func(e Entry) bool { return e.Index == index && string(e.Data) == "x" }) {
				t.Fatalf("node %d did not apply x at %d", id, index)
			}
		}
	})
}

// TestFirstTimeLeaderWaitsForAssumedLease: the very first leader of a new cluster still waits
// out the lease it must assume a leader it never heard of may hold (the original prototype's
// first leader never waited).
func TestFirstTimeLeaderWaitsForAssumedLease(t *testing.T) {
	s := newScene(t, 3)
	start := s.node(1).clock
	s.campaign(1)
	if s.leaseRead(1) {
		t.Fatalf("the first leader served a lease read %v after start, before any assumed lease could end", s.node(1).clock-start)
	}
	if st := s.status(1); st.Lease != LeaseWaiting {
		t.Fatalf("first leader's lease is %v, want waiting", st.Lease)
	}
	for s.node(1).clock < start+scnLease {
		s.advance(time.Millisecond)
		s.settle()
		if s.node(1).clock < start+scnLease && s.leaseRead(1) {
			t.Fatalf("served a lease read at %v after start, within the assumed lease (%v)", s.node(1).clock-start, scnLease)
		}
	}
	s.untilLease(1, time.Millisecond, 2*scnLease)
}

// TestVoteRepliesFromAnEarlierElectionAreNotCounted: a grant delayed from an earlier
// election (or pre-vote round) must not help win a later one.
func TestVoteRepliesFromAnEarlierElectionAreNotCounted(t *testing.T) {
	t.Run("vote", func(t *testing.T) {
		s := newScene(t, 3)
		s.advance(scnElectionMin)
		s.drop(anyMsg)
		s.r(1).Campaign()
		s.flush(1)
		s.deliver(msgType(MsgPreVote))
		s.deliver(msgType(MsgPreVoteResp))
		first := s.status(1).Term
		s.deliver(msgAnd(msgType(MsgVote), msgTo(2)))
		s.drop(msgType(MsgVote))
		// Node 2's grant for the first election is held back; node 1 times out and runs again.
		var stale []Message
		for _, m := range s.inflight {
			if m.Type == MsgVoteResp && m.From == 2 && !m.Reject {
				stale = append(stale, m)
			}
		}
		if len(stale) == 0 {
			t.Fatal("node 2 did not grant the first election")
		}
		s.drop(anyMsg)
		for s.status(1).Term == first || s.status(1).Role != Candidate {
			s.advance(scnElectionMax, 1)
			s.deliver(msgAnd(msgType(MsgPreVote), msgTo(3)))
			s.deliver(msgAnd(msgType(MsgPreVoteResp), msgFrom(3)))
			s.drop(anyMsg)
			if s.status(1).Term > first+3 {
				t.Fatal("node 1 never became a candidate again")
			}
		}
		second := s.status(1).Term
		s.inflight = append(s.inflight, stale...)
		s.deliver(anyMsg)
		if st := s.status(1); st.Role == Leader {
			t.Fatalf("node 1 won term %d with node 2's grant for term %d", second, first)
		}
	})
	t.Run("pre-vote", func(t *testing.T) {
		s := newScene(t, 3)
		s.advance(scnElectionMin)
		s.drop(anyMsg)
		// Round one: node 2 grants the pre-vote, but the answer is held back.
		s.r(1).Campaign()
		s.flush(1)
		s.deliver(msgAnd(msgType(MsgPreVote), msgTo(2)))
		var stale []Message
		for _, m := range s.inflight {
			if m.Type == MsgPreVoteResp && !m.Reject {
				stale = append(stale, m)
			}
		}
		if len(stale) == 0 {
			t.Fatal("node 2 did not grant the first pre-vote")
		}
		s.drop(anyMsg)
		// Round two: node 1 pre-votes again (its election timer fired); no answer arrives but
		// the stale one.
		s.advance(scnElectionMax, 1)
		if !s.node(1).hasEvent(EventPreVoteFailed) {
			t.Fatal("node 1's first pre-vote round did not time out")
		}
		s.drop(anyMsg)
		s.inflight = append(s.inflight, stale...)
		s.deliver(anyMsg)
		if st := s.status(1); st.Role == Candidate || st.Role == Leader {
			t.Errorf("node 1 counted a pre-vote grant from an earlier round and started an election (%v, term %d)", st.Role, st.Term)
		}
	})
}

// TestNewLeaderDefersCommitDuringOldLease: a new leader elected while a restarted voter still
// assumes an old lease (the lease-attack of the simulator, finding F2) acknowledges no write
// before that lease has run out.
func TestNewLeaderDefersCommitDuringOldLease(t *testing.T) {
	s := newScene(t, 3)
	s.campaign(1)
	s.untilLease(1, time.Millisecond, time.Second)
	s.advance(scnHeartbeat)
	s.settle()
	renewed := s.node(1).clock
	s.isolate(1)
	s.crash(2)
	s.restart(2) // forgets it heard from node 1; assumes a lease for LeaseDuration from now
	restartedAt := s.node(2).clock
	s.electAmong(3, []uint64{2, 3}, func(Message) bool { return true })
	index := s.propose(3, "during the old lease")
	for s.status(3).Commit < index {
		s.advance(time.Millisecond, 2, 3)
		s.advance(time.Millisecond, 1)
		s.settle()
		if s.node(3).clock > renewed+10*scnLease {
			t.Fatal("the new leader never committed")
		}
	}
	committedAt := s.node(3).clock
	// Node 2 reported up to LeaseDuration from its restart; node 3 must wait that long,
	// scaled by the drift bound, before committing.
	if min := restartedAt + scnLease; committedAt < min {
		t.Fatalf("the new leader committed at %v after its election, before the assumed lease ended (%v after)", committedAt-restartedAt, scnLease)
	}
}

// TestLaggingFollowerRefusesStaleReads: a follower that hears the leader but lacks entries the
// leader had committed must not answer stale reads as fresh (finding F4): its state is older
// than the contact suggests.
func TestLaggingFollowerRefusesStaleReads(t *testing.T) {
	s := newScene(t, 3, func(c *Config) { c.MaxStaleness = 2 * scnLease })
	s.campaign(1)
	s.untilLease(1, time.Millisecond, time.Second)
	s.isolate(3)
	for i := range 5 {
		s.propose(1, string(rune('a'+i)))
		s.settle()
	}
	s.advance(3*scnLease, 3) // node 3's contact is now too old: stale reads refused
	if err := s.r(3).Read(1, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("node 3 cut off for %v: stale read %v, want ErrTooStale", 3*scnLease, err)
	}
	s.heal()
	// One heartbeat reaches node 3 (its commit is beyond node 3's log); the appends do not.
	s.advance(scnHeartbeat, 1)
	s.drop(msgType(MsgApp))
	s.deliver(msgAnd(msgType(MsgHeartbeat), msgTo(3)))
	if st := s.status(3); st.Commit >= s.status(1).Commit {
		t.Fatalf("test setup: node 3 caught up (commit %d)", st.Commit)
	}
	if err := s.r(3).Read(2, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Errorf("node 3 lacks entries up to %d the leader committed, yet a stale read is accepted as fresh (err %v)",
			s.status(1).Commit, err)
	}
}

// TestNewLeaderIsNotFreshBeforeItsFirstCommit: a newly elected leader does not know which
// of its entries are committed until an entry of its term commits, so its state may be
// older than its election suggests. It must not answer stale reads as fresh on the strength
// of the votes alone (finding F6): here it was cut off from the old leader for longer than
// MaxStaleness, and its state lacks a write the old leader acknowledged.
func TestNewLeaderIsNotFreshBeforeItsFirstCommit(t *testing.T) {
	s := newScene(t, 3)
	s.campaign(1)
	s.untilLease(1, time.Millisecond, time.Second)
	// x reaches node 2's log, and commits with node 2's acknowledgement, but the commit
	// index never reaches node 2: node 1 is cut off right after.
	x := s.propose(1, "x")
	s.drop(msgTo(3))
	s.deliver(msgAnd(msgType(MsgApp), msgTo(2)))
	s.deliver(msgAnd(msgType(MsgAppResp), msgTo(1)))
	if c := s.status(1).Commit; c < x {
		t.Fatalf("setup: x at %d not committed on node 1 (commit %d)", x, c)
	}
	s.isolate(1)
	s.drop(anyMsg)
	if c := s.status(2).Commit; c >= x {
		t.Fatalf("setup: node 2 learned the commit of x (commit %d)", c)
	}
	// Long past MaxStaleness (LeaseDuration here), node 2 wins an election; its no-op does
	// not reach anyone yet.
	s.advance(scnElectionMax+scnLease, 2, 3)
	s.drop(anyMsg)
	s.electAmong(2, []uint64{2, 3}, func(m Message) bool { return m.Type != MsgApp })
	if c := s.status(2).Commit; c >= x {
		t.Fatalf("setup: the new leader already knows x is committed (commit %d)", c)
	}
	if err := s.r(2).Read(7, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Errorf("a new leader whose state lacks committed x, %v after its last contact with a leader, accepts a stale read (err %v)",
			scnElectionMax+scnLease, err)
	}
	// Once its no-op commits, its commit covers x, and it is fresh.
	for range 20 {
		s.advance(scnHeartbeat, 2, 3)
		s.settle()
		if s.status(2).Commit > x {
			break
		}
	}
	if err := s.r(2).Read(8, ReadStale); err != nil || s.status(2).Commit <= x {
		t.Errorf("after its first commit (commit %d, x at %d) the new leader refuses stale reads: %v", s.status(2).Commit, x, err)
	}
}
