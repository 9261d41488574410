package raft

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// The safety properties checked after every step of a simulation. Each names the nodes,
// indexes and terms involved, so that the replayed trace can be read against it.

// logRecord is what log matching fixes for an (index, term) pair: the entry and the term
// just before it. By induction, equal records for every pair mean equal prefixes.
type logRecord struct {
	id       entryID
	prevTerm uint64
	hasPrev  bool
	node     uint64 // first node seen with it
}

// committedRecord is an entry known to be committed: claimed committed by a node's
// HardState, or applied.
type committedRecord struct {
	known bool
	id    entryID
	node  uint64
	// claimTerm is the term of the node that first claimed it; the entry was committed in
	// that term or earlier, so every leader of a later term must hold it.
	claimTerm uint64
}

type commitMark struct {
	at    time.Duration
	index uint64
}

// committedBy is the highest index committed at or before true time t.
func (inv *invariants) committedBy(t time.Duration) uint64 {
	i, _ := slices.BinarySearchFunc(inv.frontier, t, func(m commitMark, t time.Duration) int { return cmp.Compare(m.at, t) })
	// frontier[i] is the first mark after t, or equal to it.
	if i < len(inv.frontier) && inv.frontier[i].at == t {
		return inv.frontier[i].index
	}
	if i == 0 {
		return 0
	}
	return inv.frontier[i-1].index
}

// leaseSpan is a stretch of true time during which a node could answer lease reads.
type leaseSpan struct {
	node     uint64
	term     uint64
	from, to time.Duration // [from, to)
	open     bool
}

type nodeObservation struct {
	term        uint64 // highest term its core reported in this incarnation
	role        Role
	commitClaim uint64 // highest commit its HardStates claimed (over all incarnations)
	commit      uint64 // its commit index in this incarnation (restored, then from HardStates)
	// ackedTerm/ackedIndex: the highest index this node acknowledged to the leader of
	// ackedTerm. Within that term it must never lose those entries: the leader counts them
	// toward commitment and will not send them again.
	ackedTerm, ackedIndex uint64
	span                  int // index into invariants.leases of its current span, or -1
	// member: this node's applied membership has named it; removed: it named it once and
	// no longer does (the node applied its own removal).
	member, removed bool
	// conf is the membership the node had when its latest Ready was taken.
	conf membership
	// holder is the read lease this node holds as a follower (open while it may answer lease
	// reads by it): granted by the leader of holder.term.
	holder      leaseSpan
	leaderTerms map[uint64]bool
	checkedNoop map[uint64]bool
}

type invariants struct {
	s *simulation
	// frontier records, in true time, each moment the highest commit index any node handed
	// out grew: what "committed by then" means for stale-read freshness.
	frontier  []commitMark
	leaders   map[uint64]uint64 // term → the one leader of that term
	logs      map[[2]uint64]logRecord
	committed []committedRecord // by index
	nodes     []nodeObservation
	leases    []leaseSpan
	// leaseEnd is, per term, the latest true time at which that term's leader reported its
	// lease held until: no read lease it grants may end later (nesting).
	leaseEnd map[uint64]time.Duration
}

func newInvariants(s *simulation) *invariants {
	inv := &invariants{
		s:        s,
		leaders:  map[uint64]uint64{},
		logs:     map[[2]uint64]logRecord{},
		leaseEnd: map[uint64]time.Duration{},
		nodes:    make([]nodeObservation, len(s.nodes)),
	}
	for i := range inv.nodes {
		inv.nodes[i].span = -1
		inv.nodes[i].leaderTerms = map[uint64]bool{}
		inv.nodes[i].checkedNoop = map[uint64]bool{}
	}
	return inv
}

func (inv *invariants) fail(format string, args ...any) {
	inv.s.fail("invariant", format, args...)
}

// observe checks what the core's Status says after a step: terms never go back, one leader
// per term, a leader voted for itself durably, and lease spans never overlap.
func (inv *invariants) observe(n *simNode) {
	st := n.r.Status()
	if err := n.observe(st); err != nil {
		inv.fail("%v", err)
		return
	}
	o := &inv.nodes[n.idx]
	o.term = st.Term
	o.role = st.Role
	if st.Term == o.ackedTerm && st.LastIndex < o.ackedIndex {
		inv.fail("node %d acknowledged entries up to %d in term %d, but its log now ends at %d (first index %d)",
			n.id, o.ackedIndex, o.ackedTerm, st.LastIndex, st.FirstIndex)
		return
	}
	if st.Role == Leader {
		if l, ok := inv.leaders[st.Term]; ok && l != n.id {
			inv.fail("two leaders in term %d: nodes %d and %d", st.Term, l, n.id)
			return
		}
		if !o.leaderTerms[st.Term] {
			o.leaderTerms[st.Term] = true
			inv.leaders[st.Term] = n.id
			inv.s.stats.elections++
			inv.s.logf("node %d is leader of term %d", n.id, st.Term)
			if hs := n.disk.hs; hs.Term < st.Term || (hs.Term == st.Term && hs.Vote != n.id) {
				inv.fail("node %d leads term %d, but its disk holds term %d vote %d: its own vote was not durable",
					n.id, st.Term, hs.Term, hs.Vote)
				return
			}
			for _, sp := range inv.leases {
				if sp.node != n.id && sp.to > inv.s.now {
					inv.s.stats.electedUnderLease++
					break
				}
			}
			inv.s.maybeTransferWhileWaiting(n, st)
			inv.s.maybeIsolateNewLeader(n)
		}
	}
	inv.observeLease(n, st)
	inv.observeReadLease(n, st)
	inv.checkRemovedServesNothing(n, st)
	inv.checkFreshness(n, st)
}

// observeReadLease tracks when a follower can answer lease reads by a read lease, in true
// time, and checks nesting: the lease ends no later than the lease of the leader that granted
// it (doc.go, "Read leases"), which every later leader waits out before it commits.
func (inv *invariants) observeReadLease(n *simNode, st Status) {
	o := &inv.nodes[n.idx]
	var until time.Duration
	if st.Role != Leader {
		until = n.r.ReadView().LeaseUntil
	}
	if until <= st.Now {
		inv.closeReadLease(n)
		return
	}
	end := n.clock.trueAt(until)
	if !o.holder.open || o.holder.term != st.Term {
		o.holder = leaseSpan{node: n.id, term: st.Term, from: inv.s.now, to: end, open: true}
		inv.s.stats.readLeases++
	} else if end <= o.holder.to {
		return
	}
	o.holder.to = max(o.holder.to, end)
	// A read at a holder waits for what it holds: it must hold everything committed so far.
	if need := inv.committedBy(inv.s.now); need > n.r.log.snapshot.Index {
		if c := inv.committedAt(need); c.known {
			if t, ok := n.r.log.term(need); !ok || t != c.id.term {
				inv.fail("read-lease holder behind: node %d takes a read lease of term %d until true %v, but does not hold %s at %d, committed by node %d",
					n.id, st.Term, end, c.id, need, c.node)
				return
			}
		}
	}
	if limit, ok := inv.leaseEnd[st.Term]; !ok || end > limit {
		inv.fail("read-lease nesting: node %d holds a read lease of term %d until true %v (local %v), but the leader of term %d held its own lease only until true %v",
			n.id, st.Term, end, until, st.Term, limit)
	}
}

// checkRemovedServesNothing: a node that has applied its own removal answers no lease read,
// as leader or as read-lease holder (doc.go, "Membership changes").
func (inv *invariants) checkRemovedServesNothing(n *simNode, st Status) {
	o := &inv.nodes[n.idx]
	if n.r.self >= 0 {
		o.member, o.removed = true, false
		return
	}
	if !o.member {
		return // a node still joining: it has not learned it is a member yet
	}
	if !o.removed {
		o.removed = true
		inv.s.logf("node %d has applied its removal (membership %v)", n.id, n.r.ConfState())
	}
	if v := n.r.ReadView(); v.LeaseUntil > st.Now {
		inv.fail("removed node %d could answer lease reads as %v until local %v (now %v), after applying its removal (membership %v)",
			n.id, st.Role, v.LeaseUntil, st.Now, n.r.ConfState())
	}
}

func (inv *invariants) closeReadLease(n *simNode) {
	o := &inv.nodes[n.idx]
	if o.holder.open {
		o.holder.open = false
		o.holder.to = min(o.holder.to, inv.s.now)
	}
}

// checkCommitHeldByHolders: when a leader commits index c, every node that may still answer
// lease reads by a read lease holds the entry at c, so that its next read (which waits for
// what it holds to be applied) includes it. This is what writes waiting for holders is for;
// checking it at the commit shows a broken rule before any client needs to read in the window.
func (inv *invariants) checkCommitHeldByHolders(leader *simNode, c uint64) {
	e, ok := leader.view.entry(c)
	if !ok {
		return
	}
	now := inv.s.now
	for _, h := range inv.s.nodes {
		o := &inv.nodes[h.idx]
		if h == leader || h.r == nil || !o.holder.open || now >= o.holder.to {
			continue
		}
		if c <= h.r.log.snapshot.Index {
			continue
		}
		if t, ok := h.r.log.term(c); !ok || t != e.Term {
			inv.fail("read-lease holder missed a commit: node %d (leader of term %d) commits index %d (term %d) at true %v, while node %d, which does not hold it, can answer lease reads by a read lease of term %d until true %v",
				leader.id, inv.nodes[leader.idx].term, c, e.Term, now, h.id, o.holder.term, o.holder.to)
			return
		}
	}
}

// checkFreshness: a node that dates its state at F for stale reads (Status.LastLeaderContact)
// holds everything committed by F. That is the claim a stale read's bound rests on (doc.go,
// "Stale-read freshness"); checking the claim itself shows a broken freshness rule as soon as
// it is made, not only when a client happens to read in the window.
func (inv *invariants) checkFreshness(n *simNode, st Status) {
	if st.LastLeaderContact == 0 {
		return
	}
	f := n.clock.trueAt(st.LastLeaderContact)
	if need := inv.committedBy(f); st.Commit < need {
		inv.fail("stale-read freshness: node %d dates its state at true %v (local %v), but holds commit %d while %d was committed by then",
			n.id, f, st.LastLeaderContact, st.Commit, need)
	}
}

// observeLease tracks when each node can serve lease reads, in true time, and checks that no
// two nodes' spans overlap. A span opens when the core reports LeaseHeld and lasts until its
// LeaseExpiry (converted from the node's clock) or until the core stops reporting it.
func (inv *invariants) observeLease(n *simNode, st Status) {
	s := inv.s
	o := &inv.nodes[n.idx]
	held := st.Role == Leader && st.Lease == LeaseHeld
	if !held {
		inv.closeSpan(n)
		return
	}
	end := n.clock.trueAt(st.LeaseExpiry)
	if st.LeaseExpiry <= st.Now {
		inv.fail("node %d reports its lease held until %v, but its clock reads %v", n.id, st.LeaseExpiry, st.Now)
		return
	}
	inv.leaseEnd[st.Term] = max(inv.leaseEnd[st.Term], end)
	var sp *leaseSpan
	if o.span >= 0 && inv.leases[o.span].open && inv.leases[o.span].term == st.Term {
		sp = &inv.leases[o.span]
		if end <= sp.to {
			return
		}
		sp.to = end
		if s.leaseHuntArmed && !s.healed {
			s.leaseHuntArmed = false
			s.after(0, "fault", n.id, func() { s.leaseHunt(n) })
		}
	} else {
		inv.closeSpan(n)
		inv.leases = append(inv.leases, leaseSpan{node: n.id, term: st.Term, from: s.now, to: end, open: true})
		o.span = len(inv.leases) - 1
		sp = &inv.leases[o.span]
		s.logf("node %d holds a lease in term %d until true %v (local %v)", n.id, st.Term, end, st.LeaseExpiry)
	}
	for i := range inv.leases {
		other := &inv.leases[i]
		if other.node != sp.node && other.from < sp.to && sp.from < other.to {
			msg := fmt.Sprintf("lease exclusivity: node %d (term %d) can serve lease reads in true [%v, %v) and node %d (term %d) in [%v, %v)",
				other.node, other.term, other.from, other.to, sp.node, sp.term, sp.from, sp.to)
			if !s.p.leaseOverlapsSoft {
				inv.fail("%s", msg)
				return
			}
			// Recorded, not fatal: the run goes on so that porcupine can show what the
			// overlap did to clients.
			s.stats.leaseOverlaps++
			if s.firstLeaseOverlap == "" {
				s.firstLeaseOverlap = msg
				s.logf("%s", msg)
			}
		}
	}
}

func (inv *invariants) closeSpan(n *simNode) {
	o := &inv.nodes[n.idx]
	if o.span < 0 || !inv.leases[o.span].open {
		return
	}
	sp := &inv.leases[o.span]
	sp.open = false
	if inv.s.now < sp.to {
		sp.to = inv.s.now
	}
}

// checkLeaseReadAccepted: a core that accepts a lease read must report the lease held.
// checkLeaseReadServed: a lease read answered from a node's published view falls inside a
// span in which the core said it held its lease.
func (inv *invariants) checkLeaseReadServed(n *simNode) {
	o := inv.nodes[n.idx]
	if o.role != Leader {
		if h := o.holder; !h.open || h.from > inv.s.now || inv.s.now >= h.to {
			inv.fail("node %d answered a lease read from its published view at true %v as %v, outside any read lease it held", n.id, inv.s.now, o.role)
		}
		inv.s.stats.holderReads++
		return
	}
	if o.span < 0 {
		inv.fail("node %d answered a lease read from its published view at true %v, outside any lease it held", n.id, inv.s.now)
		return
	}
	if sp := inv.leases[o.span]; sp.from > inv.s.now || inv.s.now >= sp.to {
		inv.fail("node %d answered a lease read from its published view at true %v, outside its lease [%v, %v)", n.id, inv.s.now, sp.from, sp.to)
	}
}

func (inv *invariants) checkLeaseReadAccepted(n *simNode) {
	st := n.r.Status()
	if st.Role != Leader || st.Lease != LeaseHeld {
		inv.fail("node %d accepted a lease read as %v with lease %v", n.id, st.Role, st.Lease)
	}
}

// onReadServed checks that a read is answered in the mode it was asked in.
func (inv *invariants) onReadServed(n *simNode, rs ReadState, req *clientReq) {
	if rs.Mode != req.asked {
		inv.fail("node %d: read %d asked as %v was answered as %v", n.id, rs.ID, req.asked, rs.Mode)
	}
	if rs.Mode == ReadStale && rs.Index > n.r.Status().Commit {
		inv.fail("node %d: stale read %d to be answered at index %d, beyond its commit index %d", n.id, rs.ID, rs.Index, n.r.Status().Commit)
	}
}

// onReady checks a Ready across nodes once the driver has checked it against the contract,
// and records its entries and commit claims: log matching, a snapshot that agrees with what
// is committed, leader completeness.
func (inv *invariants) onReady(n *simNode, rd *Ready) {
	o := &inv.nodes[n.idx]
	if rd.Snapshot != nil {
		meta := *rd.Snapshot
		if c := inv.committedAt(meta.Index); c.known && c.id.term != meta.Term {
			inv.fail("node %d: snapshot %d/%d contradicts committed %s at %d (node %d)", n.id, meta.Index, meta.Term, c.id, meta.Index, c.node)
			return
		}
	}
	if len(rd.Entries) > 0 {
		// The node's view already holds the entries; the one before them is unchanged.
		prevTerm, hasPrev := n.view.term(rd.Entries[0].Index - 1)
		for _, e := range rd.Entries {
			key := [2]uint64{e.Index, e.Term}
			rec := logRecord{id: idOf(e), prevTerm: prevTerm, hasPrev: hasPrev, node: n.id}
			if old, ok := inv.logs[key]; ok {
				if old.id != rec.id {
					inv.fail("log matching: index %d term %d is %s on node %d but %s on node %d", e.Index, e.Term, old.id, old.node, rec.id, n.id)
					return
				}
				if old.hasPrev && hasPrev && old.prevTerm != prevTerm {
					inv.fail("log matching: index %d term %d follows term %d on node %d but term %d on node %d",
						e.Index, e.Term, old.prevTerm, old.node, prevTerm, n.id)
					return
				}
			} else {
				inv.logs[key] = rec
			}
			prevTerm, hasPrev = e.Term, true
		}
		for _, e := range rd.Entries {
			if e.Type == EntryNoop && o.role == Leader && e.Term == o.term && !o.checkedNoop[e.Term] {
				o.checkedNoop[e.Term] = true
				inv.checkLeaderCompleteness(n, e.Term)
			}
		}
	}
	if rd.HardState != nil {
		if c := rd.HardState.Commit; len(inv.frontier) == 0 || c > inv.frontier[len(inv.frontier)-1].index {
			inv.frontier = append(inv.frontier, commitMark{at: inv.s.now, index: c})
		}
		if rd.HardState.Commit > o.commit && o.role == Leader {
			inv.checkDurableQuorum(n, rd.HardState.Commit)
			inv.checkCommitOutsideLeases(n, rd.HardState.Commit)
			inv.checkCommitHeldByHolders(n, rd.HardState.Commit)
			inv.s.maybeSplitJoint(n, o.commit, rd.HardState.Commit)
			inv.s.onLeaderCommit(n)
		}
		o.commit = max(o.commit, rd.HardState.Commit)
	}
	if rd.HardState != nil && rd.HardState.Commit > o.commitClaim {
		hs := *rd.HardState
		for i := o.commitClaim + 1; i <= hs.Commit; i++ {
			e, ok := n.view.entry(i)
			if !ok {
				continue // compacted: committed by the snapshot (the contract keeps commits within the log)
			}
			inv.recordCommitted(n, e, hs.Term, "commits")
			if inv.s.failure != nil {
				return
			}
		}
		o.commitClaim = hs.Commit
	}
	o.conf = n.r.conf
}

// checkCommitOutsideLeases: a leader acknowledges nothing while another node may still
// answer lease reads. Its commit index is what it acknowledges writes, ReadIndex and log
// reads by; a write it acknowledged during an older leader's lease could be missed by a lease
// read there, after the write completed. This is what the lease rule is for (doc.go); it
// shows a broken lease mechanism as soon as the early commit happens, before any client
// needs to read in the window.
func (inv *invariants) checkCommitOutsideLeases(n *simNode, c uint64) {
	now := inv.s.now
	for _, sp := range inv.leases {
		if sp.node != n.id && sp.from <= now && now < sp.to {
			inv.fail("lease exclusivity: node %d (leader of term %d) commits index %d at true %v, while node %d (term %d) can serve lease reads in true [%v, %v)",
				n.id, inv.nodes[n.idx].term, c, now, sp.node, sp.term, sp.from, sp.to)
			return
		}
	}
}

// checkDurableQuorum: when a leader advances its commit index to c, a quorum of disks holds
// its entry at c (or a snapshot covering it). Acknowledgements come only after persisting,
// and the leader counts itself only once its own write is done, so anything less means the
// commit rests on a copy a crash could lose.
func (inv *invariants) checkDurableQuorum(n *simNode, c uint64) {
	e, ok := n.view.entry(c)
	if !ok {
		return // compacted on the leader: committed long ago
	}
	// A majority of every half of the membership the leader counted by: the one it has
	// now, or the one it had when it took its previous Ready (a commit counted then may come
	// out only after the Advance that applied a membership change).
	durable := func(conf membership) (string, bool) {
		for _, voters := range [][]uint64{conf.voters, conf.outgoing} {
			if len(voters) == 0 {
				continue
			}
			copies := 0
			for _, id := range voters {
				other := inv.s.node(id)
				if t, ok := other.disk.term(c); (ok && t == e.Term) || other.disk.snapshot.Index >= c {
					copies++
				}
			}
			if quorum := len(voters)/2 + 1; copies < quorum {
				return fmt.Sprintf("only %d durable copies among voters %v, quorum %d", copies, voters, quorum), false
			}
		}
		return "", true
	}
	why, ok := durable(n.r.conf)
	if !ok {
		if _, before := durable(inv.nodes[n.idx].conf); !before {
			inv.fail("leader %d commits index %d (term %d) with %s", n.id, c, e.Term, why)
		}
	}
}

// recordCommitted registers e as committed and checks it against what is already known at
// its index.
func (inv *invariants) recordCommitted(n *simNode, e Entry, claimTerm uint64, verb string) {
	for uint64(len(inv.committed)) <= e.Index {
		inv.committed = append(inv.committed, committedRecord{})
	}
	c := &inv.committed[e.Index]
	id := idOf(e)
	if !c.known {
		*c = committedRecord{known: true, id: id, node: n.id, claimTerm: claimTerm}
		if e.Type == EntryConfChange {
			inv.s.stats.confChanges++
		}
		return
	}
	if c.id != id {
		inv.fail("state machine safety: node %d %s %s at index %d, but node %d committed %s there",
			n.id, verb, id, e.Index, c.node, c.id)
	}
}

func (inv *invariants) committedAt(i uint64) committedRecord {
	if i < uint64(len(inv.committed)) {
		return inv.committed[i]
	}
	return committedRecord{}
}

// checkLeaderCompleteness: when the leader of term T appends its no-op, its log must hold
// every entry known committed by a node in an earlier term.
func (inv *invariants) checkLeaderCompleteness(n *simNode, term uint64) {
	for i := n.view.snapshot.Index + 1; i < uint64(len(inv.committed)); i++ {
		c := inv.committed[i]
		if !c.known || c.claimTerm >= term {
			continue
		}
		e, ok := n.view.entry(i)
		if !ok || idOf(e) != c.id {
			got := "nothing"
			if ok {
				got = idOf(e).String()
			}
			inv.fail("leader completeness: node %d leads term %d with %s at index %d, but %s was committed there (node %d, term %d)",
				n.id, term, got, i, c.id, c.node, c.claimTerm)
			return
		}
	}
}

// onApply: no two nodes apply different entries at one index.
func (inv *invariants) onApply(n *simNode, e Entry) {
	inv.recordCommitted(n, e, inv.nodes[n.idx].term, "applies")
}

// noteAck records the entries n acknowledges to the leader of a term as it sends m, for
// observe: within that term it must never lose them, since the leader counts them toward
// commitment and will not send them again. (That they are durable when m leaves is the
// Ready contract's to check.)
func (inv *invariants) noteAck(n *simNode, m Message) {
	if m.Type != MsgAppResp || m.Reject {
		return
	}
	o := &inv.nodes[n.idx]
	if m.Term > o.ackedTerm {
		o.ackedTerm, o.ackedIndex = m.Term, 0
	}
	if m.Term == o.ackedTerm {
		o.ackedIndex = max(o.ackedIndex, m.Index)
	}
}

func (inv *invariants) onCrash(n *simNode) {
	inv.closeSpan(n)
	inv.closeReadLease(n)
	o := &inv.nodes[n.idx]
	o.role = Follower
}

// onStart resets what a restart legitimately forgets: a term adopted but never persisted.
func (inv *invariants) onStart(n *simNode) {
	o := &inv.nodes[n.idx]
	o.term = n.disk.hs.Term
	o.commit = n.disk.hs.Commit
	o.role = Follower
}
