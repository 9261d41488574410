package raft

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// untilLeaseHeld advances every clock in heartbeat steps until node id holds its lease.
func (n *testNet) untilLeaseHeld(id uint64) {
	n.t.Helper()
	for i := 0; i < 100; i++ {
		if n.raft(id).Status().Lease == LeaseHeld {
			return
		}
		n.advance(10 * ms)
		n.stabilize()
	}
	n.t.Fatalf("node %d never got a lease: %+v\n%s", id, n.raft(id).Status(), n.dumpEvents(id))
}

// isolateUntilLeaseLapsed cuts leader id off and moves only its clock, deadline by deadline,
// until its lease has run out with nobody answering; then it drops what is in flight.
func (n *testNet) isolateUntilLeaseLapsed(id uint64) {
	n.t.Helper()
	r := n.raft(id)
	n.isolate(id)
	for r.Status().Lease == LeaseHeld {
		n.advanceNode(id, r.NextDeadline()-n.node(id).now)
	}
	n.processAll()
	n.inflight = nil
}

// The lease comes only from a quorum's acknowledgements (this leader counting as one) and
// runs from when the acknowledged message was sent, not from when the answer came back:
// start + LeaseDuration × (1 − drift).
func TestLeaseFromQuorumAcksDatedBySentAt(t *testing.T) {
	net := newTestNet(t, 5)
	net.elect(1)
	net.untilLeaseHeld(1)
	r := net.raft(1)
	net.isolateUntilLeaseLapsed(1)

	// One heartbeat round, sent at `sent`.
	sent := net.node(1).now
	r.broadcastHeartbeat()
	rd := net.cycle(1)
	var hbs []Message
	for _, m := range rd.Messages {
		if m.Type == MsgHeartbeat {
			hbs = append(hbs, m)
			if m.SentAt != sent || m.LeaseDuration != 50*ms {
				t.Fatalf("heartbeat %+v: want SentAt %v and LeaseDuration 50ms", m, sent)
			}
		}
	}
	net.inflight = nil
	// The answers come back 20ms later.
	net.advanceNode(1, 20*ms)
	answer := func(to uint64) {
		for _, hb := range hbs {
			if hb.To == to {
				f := net.raft(to)
				f.Step(hb)
				frd := net.cycle(to)
				for _, m := range frd.MessagesAfterPersist {
					if m.Type == MsgHeartbeatResp {
						if m.SentAt != sent || m.Round != hb.Round {
							t.Fatalf("reply %+v does not echo SentAt/Round of %+v", m, hb)
						}
						r.Step(m)
					}
				}
			}
		}
		net.inflight = nil
	}
	answer(2)
	if st := r.Status(); st.Lease == LeaseHeld {
		t.Fatalf("lease held with 2 of 5 acknowledging")
	}
	answer(3)
	st := r.Status()
	want := sent + r.cfg.scaleDown(50*ms)
	if st.Lease != LeaseHeld || st.LeaseExpiry != want {
		t.Fatalf("after a quorum acknowledged: lease %v until %v, want held until %v (dated from SentAt)", st.Lease, st.LeaseExpiry, want)
	}
	if st.LastLeaderContact != sent {
		t.Fatalf("LastLeaderContact %v, want the acknowledged round's SentAt %v", st.LastLeaderContact, sent)
	}
}

// A lease lapses exactly at its expiry: Tick just before keeps it, Tick at it ends it and
// says so, and NextDeadline never lets a driver sleep past it.
func TestLeaseLapsesAtExactExpiry(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	r := net.raft(1)
	net.isolate(1)
	net.processAll()
	expiry := r.Status().LeaseExpiry
	for {
		d := r.NextDeadline()
		if d > expiry {
			t.Fatalf("NextDeadline %v is past the lease expiry %v", d, expiry)
		}
		if d == expiry {
			break
		}
		net.advanceNode(1, d-net.node(1).now)
		net.processAll()
		net.inflight = nil
	}
	net.advanceNode(1, expiry-1-net.node(1).now)
	if st := r.Status(); st.Lease != LeaseHeld || r.Read(1, ReadLease) != nil {
		t.Fatalf("1ns before expiry: lease %v", st.Lease)
	}
	net.advanceNode(1, 1)
	if st := r.Status(); st.Lease != LeaseNone || st.Role != Leader {
		t.Fatalf("at expiry: lease %v role %v, want lapsed but still leader", st.Lease, st.Role)
	}
	if err := r.Read(2, ReadLease); !errors.Is(err, ErrLeaseNotHeld) {
		t.Fatalf("lease read at expiry: %v, want ErrLeaseNotHeld", err)
	}
	net.processAll()
	lost := net.eventsOf(1, EventLeaseLost)
	if len(lost) != 1 || lost[0].At != expiry {
		t.Fatalf("lease-lost events %v, want one at %v", lost, expiry)
	}
}

// A new leader waits, on its own clock, for the longest lease its voters reported (v + R; no
// drift margin is needed here, doc.go says why). Until then it serves no lease read and commits nothing
// (deferred commit): its entries replicate, but no write is acknowledged while the old leader
// may still answer lease reads without it.
func TestNewLeaderWaitsForReportedLease(t *testing.T) {
	net := newTestNet(t, 5)
	r := net.raft(1)
	net.advance(time.Second) // the start-up assumed leases are long gone
	r.Campaign()
	net.processAll()
	for _, m := range net.take(func(m Message) bool { return m.Type == MsgPreVote }) {
		r.Step(Message{Type: MsgPreVoteResp, From: m.To, To: 1, Term: m.Term})
	}
	net.cycle(1) // its term and vote are durable: it may count
	v := net.node(1).now
	reports := map[uint64]time.Duration{2: 30 * ms, 3: 45 * ms}
	for p, rem := range reports {
		r.Step(Message{Type: MsgVoteResp, From: p, To: 1, Term: 1, LeaseRemaining: rem})
	}
	net.inflight = nil
	want := v + 45*ms
	st := r.Status()
	if st.Role != Leader || st.Lease != LeaseWaiting || st.LeaseExpiry != want {
		t.Fatalf("%v, lease %v until %v; want leader waiting until %v", st.Role, st.Lease, st.LeaseExpiry, want)
	}
	net.stabilize()
	ev := net.eventsOf(1, EventWaitingOldLease)
	if len(ev) != 1 || ev[0].Duration != want-v {
		t.Fatalf("waiting events %v, want one for %v", ev, want-v)
	}
	idx, _ := net.propose(1, "w")
	net.stabilize()
	if st := r.Status(); st.Commit != 0 || st.Lease != LeaseWaiting {
		t.Fatalf("during the wait: commit %d lease %v, want nothing committed and still waiting", st.Commit, st.Lease)
	}
	for _, id := range []uint64{2, 3, 4, 5} {
		if st := net.raft(id).Status(); st.LastIndex != idx || st.Commit != 0 {
			t.Fatalf("node %d during the wait: last %d commit %d, want the write replicated (%d) but not committed", id, st.LastIndex, st.Commit, idx)
		}
	}
	if err := r.Read(1, ReadLease); !errors.Is(err, ErrLeaseNotHeld) {
		t.Fatalf("lease read during the wait: %v", err)
	}
	for net.node(1).now < want {
		if d := r.NextDeadline(); d > want {
			t.Fatalf("NextDeadline %v is past the end of the wait %v", d, want)
		}
		net.advance(min(10*ms, want-net.node(1).now))
		net.stabilize()
		if now, st := net.node(1).now, r.Status(); now < want && (st.Lease != LeaseWaiting || st.Commit != 0) {
			t.Fatalf("at %v (wait ends %v): lease %v commit %d", now, want, st.Lease, st.Commit)
		}
	}
	if st := r.Status(); st.Lease != LeaseHeld || st.Commit != idx {
		t.Fatalf("at the end of the wait: lease %v commit %d, want held and %d committed", st.Lease, st.Commit, idx)
	}
	if acq := net.eventsOf(1, EventLeaseAcquired); len(acq) != 1 || acq[0].At != want {
		t.Fatalf("lease-acquired events %v, want one at %v", acq, want)
	}
}

// A leader elected with its own vote counts its own knowledge of older leases too: its vote
// is part of the quorum that must overlap any older lease quorum.
func TestCandidateCountsItsOwnLeaseKnowledge(t *testing.T) {
	net := newTestNet(t, 3)
	// Node 1 heard from a leader of term 1 (node 3) at t = 1s.
	net.advance(time.Second)
	r := net.raft(1)
	r.Step(Message{Type: MsgHeartbeat, From: 3, To: 1, Term: 1, LeaseDuration: 50 * ms, SentAt: 1})
	known := r.Status().KnownLeaseUntil
	if known != time.Second+50*ms {
		t.Fatalf("KnownLeaseUntil %v, want %v", known, time.Second+50*ms)
	}
	net.processAll()
	net.inflight = nil
	// It campaigns at once (say, an operator's Campaign) and node 2 grants with nothing to
	// report.
	r.Campaign()
	r.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 2})
	net.cycle(1) // its term and vote are durable: it may count
	r.Step(Message{Type: MsgVoteResp, From: 2, To: 1, Term: 2})
	if st := r.Status(); st.Role != Leader || st.Lease != LeaseWaiting || st.LeaseExpiry != known {
		t.Fatalf("%v lease %v until %v, want leader waiting until its own record %v", st.Role, st.Lease, st.LeaseExpiry, known)
	}
}

// A node that just started assumes some leader may hold a lease from now (it may have
// acknowledged one and forgotten), and reports it in its vote replies.
func TestRestartAssumesALease(t *testing.T) {
	cfg := testConfig(2, []uint64{1, 2, 3})
	start := 7 * time.Second
	r, err := New(cfg, Restored{HardState: HardState{Term: 3}}, start)
	if err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.KnownLeaseUntil != start+50*ms {
		t.Fatalf("KnownLeaseUntil %v, want start + lease = %v", st.KnownLeaseUntil, start+50*ms)
	}
	r.Tick(start + 20*ms)
	// It can vote right away (no leader heard), and its reply carries the assumed lease.
	if err := r.Step(Message{Type: MsgVote, From: 1, To: 2, Term: 4}); err != nil {
		t.Fatal(err)
	}
	rd := r.Ready()
	resp := rd.MessagesAfterPersist[0]
	if resp.Type != MsgVoteResp || resp.Reject || resp.LeaseRemaining != 30*ms {
		t.Fatalf("vote reply %+v, want granted with 30ms of lease remaining", resp)
	}
}

// A follower records a lease for the longer of the leader's and its own lease duration,
// from when the message arrived.
func TestFollowerRecordsLeaderLease(t *testing.T) {
	r := newFollower(t, 2, 1, 0, nil)
	r.Tick(time.Second)
	stepOK(t, r, Message{Type: MsgApp, From: 1, Term: 1, LeaseDuration: 80 * ms, SentAt: 3})
	if got := r.Status().KnownLeaseUntil; got != time.Second+80*ms {
		t.Fatalf("KnownLeaseUntil %v, want now + the leader's longer 80ms", got)
	}
	r.Tick(2 * time.Second)
	stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 1, LeaseDuration: 10 * ms, SentAt: 4})
	if got := r.Status().KnownLeaseUntil; got != 2*time.Second+50*ms {
		t.Fatalf("KnownLeaseUntil %v, want now + its own longer 50ms", got)
	}
}

// Leadership transfer: the leader gives its lease up before sending MsgTimeoutNow, refuses
// proposals meanwhile; voters grant the transferee despite leader stickiness and report no
// lease; the transferee waits only for what the old leader itself had left to wait (here
// nothing).
func TestTransferRelinquishesLeaseAndTransfereeSkipsWait(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	old := net.raft(1)
	if err := old.TransferLeadership(2); err != nil {
		t.Fatal(err)
	}
	st := old.Status()
	if st.Lease != LeaseRelinquished || st.TransferTarget != 2 {
		t.Fatalf("after TransferLeadership: lease %v target %d, want relinquished, 2", st.Lease, st.TransferTarget)
	}
	if err := old.Read(1, ReadLease); !errors.Is(err, ErrLeaseNotHeld) {
		t.Fatalf("lease read during transfer: %v", err)
	}
	if _, _, err := old.Propose([]byte("x")); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("proposal during transfer: %v", err)
	}
	rd := net.cycle(1)
	var tn *Message
	for i := range rd.Messages {
		if rd.Messages[i].Type == MsgTimeoutNow {
			tn = &rd.Messages[i]
		}
	}
	if tn == nil || tn.To != 2 || tn.LeaseRemaining != 0 {
		t.Fatalf("MsgTimeoutNow %+v, want one to node 2 with no lease remaining", tn)
	}
	// Lease given up before TimeoutNow leaves: the events say so in that order.
	var kinds []EventKind
	for _, e := range rd.Events {
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) < 2 || kinds[0] != EventLeaseLost || kinds[1] != EventTransferStarted {
		t.Fatalf("events %v, want lease lost then transfer started", rd.Events)
	}
	net.stabilize()
	nw := net.raft(2)
	if st := nw.Status(); st.Role != Leader || st.Term != 2 {
		t.Fatalf("transferee is %v in term %d, want leader of 2", st.Role, st.Term)
	}
	if ev := net.eventsOf(2, EventWaitingOldLease); len(ev) != 0 {
		t.Fatalf("transferee waited: %v", ev)
	}
	if st := nw.Status(); st.Lease != LeaseHeld {
		t.Fatalf("transferee lease %v right after election, want held (no wait)", st.Lease)
	}
	down := net.eventsOf(1, EventSteppedDown)
	if len(down) != 1 || !strings.Contains(down[0].Reason, "transferred leadership to node 2") {
		t.Fatalf("old leader step-down events %v", down)
	}
}

// A transfer started while the leader still waited for an older lease hands the rest of that
// wait to the transferee, which waits it out on its own clock.
func TestTransferCarriesInheritedWait(t *testing.T) {
	net := newTestNet(t, 3)
	net.raft(1).Campaign() // at t=0: waits ~50ms for the leases assumed at start-up
	net.stabilize()
	old := net.raft(1)
	wait := old.Status().LeaseExpiry - net.node(1).now
	if old.Status().Lease != LeaseWaiting || wait <= 0 {
		t.Fatalf("leader not waiting: %+v", old.Status())
	}
	old.TransferLeadership(2)
	rd := net.cycle(1)
	var tn Message
	for _, m := range rd.Messages {
		if m.Type == MsgTimeoutNow {
			tn = m
		}
	}
	if tn.LeaseRemaining != wait {
		t.Fatalf("TimeoutNow carries %v, want the remaining wait %v", tn.LeaseRemaining, wait)
	}
	net.stabilize()
	nw := net.raft(2)
	want := net.node(2).now + wait
	if st := nw.Status(); st.Role != Leader || st.Lease != LeaseWaiting || st.LeaseExpiry != want {
		t.Fatalf("transferee %v lease %v until %v, want leader waiting until %v", st.Role, st.Lease, st.LeaseExpiry, want)
	}
}

// A transfer that does not complete within the minimum election timeout is aborted: the
// leader takes proposals again, but a lease it gave up stays given up for the term.
func TestTransferAbort(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.untilLeaseHeld(1)
	r := net.raft(1)
	net.filter = func(m Message) bool { return m.Type != MsgTimeoutNow }
	r.TransferLeadership(3)
	net.stabilize()
	start := net.node(1).now
	for net.node(1).now < start+100*ms {
		if _, _, err := r.Propose([]byte("x")); !errors.Is(err, ErrProposalDropped) {
			t.Fatalf("proposal during transfer: %v", err)
		}
		net.advance(10 * ms)
		net.stabilize()
	}
	ab := net.eventsOf(1, EventTransferAborted)
	if len(ab) != 1 || ab[0].Peer != 3 || ab[0].At != start+100*ms {
		t.Fatalf("abort events %v, want one for node 3 at %v", ab, start+100*ms)
	}
	if _, _, err := r.Propose([]byte("x")); err != nil {
		t.Fatalf("proposal after abort: %v", err)
	}
	if st := r.Status(); st.Role != Leader || st.Lease != LeaseRelinquished {
		t.Fatalf("after abort: %v lease %v, want leader with the lease still relinquished", st.Role, st.Lease)
	}
	if err := r.Read(1, ReadLease); !errors.Is(err, ErrLeaseNotHeld) {
		t.Fatalf("lease read after abort: %v", err)
	}
}

// The transferee of a transfer to a lagging follower first receives the missing entries,
// and only then MsgTimeoutNow.
func TestTransferCatchesUpTargetFirst(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.isolate(3)
	for i := 0; i < 3; i++ {
		net.propose(1, "x")
	}
	net.stabilize()
	r := net.raft(1)
	r.TransferLeadership(3)
	if st := r.Status(); st.Lease == LeaseRelinquished {
		t.Fatalf("lease given up before the target caught up")
	}
	net.heal()
	for i := 0; i < 5 && r.Status().Role == Leader; i++ {
		net.advance(10 * ms)
		net.stabilize()
	}
	if st := net.raft(3).Status(); st.Role != Leader {
		t.Fatalf("target is %v, want leader\n%s\n%s", st.Role, net.dumpEvents(1), net.dumpEvents(3))
	}
}

// An answer to a message of an older term echoes nothing, and a leader counts no echo it
// could not have sent (dated after now, a later round, or none at all): otherwise a node
// that led an older term, restarted with a new clock and leads again could take an old echo
// for a fresh acknowledgement and hold a lease past its successor's start (sim seeds 3048,
// 4732).
func TestStaleTermRepliesAreNotAcknowledgements(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	term := net.raft(1).Status().Term

	// Node 2 moves to the next term (a transfer vote bypasses leader stickiness), then gets
	// a heartbeat of the term it left.
	f := net.raft(2)
	last := f.Status().LastIndex
	lastTerm, _ := f.log.term(last)
	if err := f.Step(Message{Type: MsgVote, From: 3, To: 2, Term: term + 1, Index: last, LogTerm: lastTerm, Transfer: true}); err != nil {
		t.Fatal(err)
	}
	net.cycle(2)
	net.inflight = nil
	if err := f.Step(Message{Type: MsgHeartbeat, From: 1, To: 2, Term: term, SentAt: 5 * time.Second, Round: 7}); err != nil {
		t.Fatal(err)
	}
	replied := false
	rd := net.cycle(2)
	for _, m := range append(rd.Messages, rd.MessagesAfterPersist...) {
		if m.Type == MsgHeartbeatResp && m.To == 1 {
			replied = true
			if m.Term != term+1 || m.SentAt != 0 || m.Round != 0 {
				t.Fatalf("reply to an old-term heartbeat: term %d SentAt %v Round %d, want term %d and no echo", m.Term, m.SentAt, m.Round, term+1)
			}
		}
	}
	if !replied {
		t.Fatal("no reply to an old-term heartbeat: its sender would not learn the newer term")
	}
	net.inflight = nil

	// The leader lets its lease lapse, then hears forged echoes from a quorum.
	r := net.raft(1)
	net.isolateUntilLeaseLapsed(1)
	now := net.node(1).now
	for _, forged := range []Message{
		{SentAt: now + time.Hour, Round: 1},
		{SentAt: now, Round: r.round + 1},
		{},
	} {
		for _, from := range []uint64{2, 3} {
			m := forged
			m.Type, m.From, m.To, m.Term = MsgHeartbeatResp, from, 1, term
			r.Step(m)
		}
		if st := r.Status(); st.Lease == LeaseHeld {
			t.Fatalf("lease held after echoes SentAt %v Round %d (now %v, round %d)", forged.SentAt, forged.Round, now, r.round)
		}
	}
}
