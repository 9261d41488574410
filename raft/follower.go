package raft

import (
	"fmt"
	"slices"
	"time"
)

func (r *Raft) stepFollower(m Message) error {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
		if r.lead == None {
			r.becomeFollower(r.term, m.From, fmt.Sprintf("heard from the leader of term %d", r.term))
		} else if r.lead != m.From {
			return fmt.Errorf("raft: node %d sent %v as leader of term %d, whose leader is node %d", m.From, m.Type, m.Term, r.lead)
		}
	}
	switch m.Type {
	case MsgApp:
		r.leaderContact(m)
		return r.handleAppend(m)
	case MsgHeartbeat:
		r.leaderContact(m)
		r.commitTo(min(m.Commit, r.leaderMatched))
		r.noteFreshness(m.Commit, m.FollowerClock, m.FollowerBoot)
		r.noteReadLease(m)
		r.send(Message{Type: MsgHeartbeatResp, To: m.From, SentAt: m.SentAt, Round: m.Round, FollowerClock: r.now, FollowerBoot: r.cfg.BootID})
	case MsgSnap:
		r.leaderContact(m)
		r.handleSnapshot(m)
	case MsgTimeoutNow:
		// The leader gave up its lease and asks this node to take over now: no pre-vote, and
		// the wait is only what the leader itself still had to wait for.
		if !r.holdAtMaxTerm(1) {
			r.becomeCandidate(true, m.LeaseRemaining)
		}
	}
	return nil
}

// leaderContact records a message from the leader of this term: it resets the election
// timer and, for the lease rule, notes that the leader may serve reads for a lease from now.
// Both are dated at receipt on purpose, unlike stale-read freshness (noteFreshness): a later
// time is the conservative one for refusing votes and for the lease a vote reply reports.
func (r *Raft) leaderContact(m Message) {
	r.lastHeardLeader = r.now
	if !r.cfg.off.followerRecord {
		r.knownLeaseUntil = max(r.knownLeaseUntil, r.now+max(m.LeaseDuration, r.cfg.LeaseDuration))
	}
	r.noteLeaseDuration(m.LeaseDuration)
	r.resetElectionDeadline()
}

// noteLeaseDuration raises the durable lease bound to a leader's lease duration before this
// node acknowledges the message that carried it: the acknowledgement leaves after the Ready
// that persists the new bound.
func (r *Raft) noteLeaseDuration(d time.Duration) {
	switch {
	case d > r.leaseBound:
		r.leaseBound, r.boundHeardAt, r.heardBelowBound = d, r.now, 0
	case d == r.leaseBound:
		r.boundHeardAt = r.now
	default:
		r.heardBelowBound = max(r.heardBelowBound, d)
	}
}

// lowerLeaseBound lets the durable bound come down after a lease was shortened: once no
// message carrying the bound has been acknowledged for as long as the bound lasts, every
// lease this node acknowledged at that length has run out, and what it acknowledged since
// is at most heardBelowBound. Lowered, the bound counts as heard now, since when it was last
// heard at its new length is not known.
func (r *Raft) lowerLeaseBound() {
	if r.heardBelowBound >= r.leaseBound || r.now < r.boundHeardAt+r.leaseBound {
		return
	}
	r.leaseBound, r.boundHeardAt, r.heardBelowBound = r.heardBelowBound, r.now, 0
}

// noteReadLease takes the read lease a leader's message grants: from this node's own clock
// reading that the leader echoes (so a message that waited brings no more lease than the
// leader meant). The leader grants one only to a holder that holds every entry it had
// committed, and this node's lease reads wait for everything it holds (doc.go, "Read leases").
func (r *Raft) noteReadLease(m Message) {
	if m.ReadLease <= 0 || m.FollowerClock <= 0 || m.FollowerBoot != r.cfg.BootID {
		return
	}
	until := m.FollowerClock + m.ReadLease
	if r.cfg.off.readLeaseFromEcho {
		until = r.now + m.ReadLease
	}
	r.readLeaseUntil = max(r.readLeaseUntil, until)
}

// noteFreshness records, for stale reads, how recent the state is that this node now holds
// from a leader's MsgApp or MsgHeartbeat m, given m.Commit and m.FollowerClock. It counts only
// if this node holds every entry the leader had committed when it sent m, and that commit
// index covers every earlier leader's commits: it points at an entry of the leader's own term.
// Hearing from a leader while lagging behind it, or from a new leader that has not committed
// yet, says nothing about how old the local state is.
//
// The state is dated by m.FollowerClock, not by when m arrived: the leader sent m after it
// received this node's response stamped FollowerClock, so the leader's state in m is no older
// than that instant on this node's own clock, and no clocks are compared across nodes. A
// message that waited (in a paused process's socket, behind a partition) therefore carries
// its age with it. FollowerClock 0 (the leader has no response from this node in its term
// yet) gives no freshness. Neither does one above now: it is not a reading this process took,
// but one from before a restart, when this node's clock ran from another origin. Freshness
// never moves backwards: an older echo only says less than what is already known.
func (r *Raft) noteFreshness(leaderCommit uint64, echoed time.Duration, echoedBoot uint64) {
	if t, ok := r.log.term(leaderCommit); (r.log.committed < leaderCommit || !ok || t != r.term) && !r.cfg.off.freshnessNeedsLeaderCommit {
		return
	}
	if r.cfg.off.freshnessFromEcho {
		echoed, echoedBoot = r.now, r.cfg.BootID
	}
	if echoedBoot != r.cfg.BootID && !r.cfg.off.freshnessSameBoot {
		return
	}
	if echoed <= 0 || echoed > r.now {
		return
	}
	if r.hasLeaderContact && echoed <= r.lastLeaderContact {
		return
	}
	r.lastLeaderContact = echoed
	r.hasLeaderContact = true
	r.freshIndex = max(r.freshIndex, leaderCommit)
}

// handleAppend stores the entries of a MsgApp whose previous entry matches, truncating the
// log only where it really conflicts, and never at or below the commit index.
func (r *Raft) handleAppend(m Message) error {
	resp := Message{Type: MsgAppResp, To: m.From, SentAt: m.SentAt, Round: m.Round, FollowerClock: r.now, FollowerBoot: r.cfg.BootID}
	prevIndex, prevTerm, ents := m.Index, m.LogTerm, m.Entries
	committed := r.log.committed
	if prevIndex < committed {
		// An old or duplicate append: what it holds up to the commit index is already here.
		skip := committed - prevIndex
		if skip >= uint64(len(ents)) {
			resp.Index = committed
			r.leaderMatched = max(r.leaderMatched, committed)
			r.commitTo(min(m.Commit, r.leaderMatched))
			r.noteFreshness(m.Commit, m.FollowerClock, m.FollowerBoot)
			r.send(resp)
			if len(ents) > 0 {
				r.event(Event{Kind: EventAppendAccepted, Peer: m.From, Index: committed})
			}
			return nil
		}
		ourTerm, _ := r.log.term(committed)
		if ents[skip-1].Term != ourTerm {
			return fmt.Errorf("raft: append from node %d has term %d at index %d, below our commit index, where we have term %d: safety violated",
				m.From, ents[skip-1].Term, committed, ourTerm)
		}
		prevIndex, prevTerm, ents = committed, ourTerm, ents[skip:]
	}
	if !r.log.matchTerm(prevIndex, prevTerm) {
		resp.Reject = true
		resp.Index = prevIndex
		last := r.log.lastIndex()
		if prevIndex > last {
			resp.ConflictIndex = last + 1
			resp.RejectReason = fmt.Sprintf("no entry at prev index %d: log ends at %d", prevIndex, last)
		} else {
			t, _ := r.log.term(prevIndex)
			resp.ConflictTerm = t
			resp.ConflictIndex = r.log.firstIndexOfTerm(t, prevIndex)
			resp.RejectReason = fmt.Sprintf("entry at prev index %d has term %d, leader has %d", prevIndex, t, prevTerm)
		}
		r.event(Event{Kind: EventAppendRejected, Peer: m.From, Index: prevIndex, Reason: resp.RejectReason})
		r.send(resp)
		return nil
	}
	lastNew := prevIndex + uint64(len(ents))
	for i := range ents {
		e := &ents[i]
		if e.Index > r.log.lastIndex() {
			r.log.entries = append(r.log.entries, ents[i:]...)
			break
		}
		if t, _ := r.log.term(e.Index); t != e.Term {
			if e.Index <= r.log.committed {
				return fmt.Errorf("raft: append from node %d conflicts with committed entry %d (term %d here, %d from the leader): safety violated",
					m.From, e.Index, t, e.Term)
			}
			r.withdrawAcksFrom(e.Index)
			r.log.truncateFrom(e.Index)
			r.log.entries = append(r.log.entries, ents[i:]...)
			break
		}
	}
	r.leaderMatched = max(r.leaderMatched, lastNew)
	r.commitTo(min(m.Commit, lastNew))
	r.noteFreshness(m.Commit, m.FollowerClock, m.FollowerBoot)
	r.noteReadLease(m)
	resp.Index = lastNew
	r.send(resp)
	if len(m.Entries) > 0 {
		r.event(Event{Kind: EventAppendAccepted, Peer: m.From, Index: lastNew})
	}
	return nil
}

// withdrawAcksFrom drops the acknowledgements waiting for the next persist that cover the
// entry at index or later, which this node is about to drop from its log. They were queued
// when those entries were accepted, for a leader (maybe of an older term) to count once they
// were durable; now they never will be, and an acknowledgement sent anyway after the persist
// would let that leader commit on a copy that does not exist (doc.go, "The commit rule").
func (r *Raft) withdrawAcksFrom(index uint64) {
	if r.cfg.off.withdrawTruncatedAcks {
		return
	}
	r.msgsAfterPersist = slices.DeleteFunc(r.msgsAfterPersist, func(m Message) bool {
		return m.Type == MsgAppResp && !m.Reject && m.Index >= index
	})
}

// handleSnapshot installs a snapshot the leader sent if it moves this node past its commit
// index; the node already stored the snapshot's bytes before stepping the message.
func (r *Raft) handleSnapshot(m Message) {
	resp := Message{Type: MsgAppResp, To: m.From, SentAt: m.SentAt, Round: m.Round, FollowerClock: r.now, FollowerBoot: r.cfg.BootID}
	meta := m.Snapshot
	if meta.Index <= r.log.committed {
		// Only the committed prefix is known to match the leader's log.
		r.leaderMatched = max(r.leaderMatched, r.log.committed)
		resp.Index = r.log.committed
		r.send(resp)
		return
	}
	if r.log.matchTerm(meta.Index, meta.Term) {
		// The log already holds the snapshot's last entry (a snapshot sent before an append
		// that arrived first): commit up to it and keep what follows, which this node may
		// already have acknowledged.
		r.leaderMatched = max(r.leaderMatched, meta.Index)
		r.commitTo(meta.Index)
		resp.Index = meta.Index
		r.send(resp)
		return
	}
	r.withdrawAcksFrom(meta.Index + 1)
	r.log.restore(meta)
	if !meta.ConfState.IsEmpty() {
		conf := newMembership(meta.ConfState)
		r.confs = []confMark{{index: meta.Index, conf: conf}}
		r.setMembership(conf)
		r.event(Event{Kind: EventConfChanged, Index: meta.Index, Reason: conf.confState().String() + " (from the snapshot)"})
	}
	r.leaderMatched = meta.Index
	r.pendingSnapshot = &meta
	r.event(Event{Kind: EventSnapshotInstalled, Peer: m.From, Index: meta.Index})
	resp.Index = meta.Index
	r.send(resp)
}
