package raft

import (
	"fmt"
	"time"
)

// pendingRead is a ReadIndex read waiting for a quorum to echo its round.
type pendingRead struct {
	id, index, round uint64
}

type readQueue struct {
	// awaitingCommit holds reads that arrived before this leader committed an entry of its
	// term: its commit index may not yet cover every acknowledged write.
	awaitingCommit []uint64
	// awaitingRound is ordered by round.
	awaitingRound []pendingRead
	// broadcastPending asks the next Ready for a heartbeat round.
	broadcastPending bool
}

// ReadView is what this node may answer lease and stale reads from, as of the latest Tick or
// Step: the one place those read rules are decided. A node publishes it as is, for reads
// that do not enter the loop driving the core, and answers them against its clock at the
// time of the read; Read answers through it too. A read answered from the view must see at
// least the index it names applied, and reads the latest applied state.
type ReadView struct {
	// Term and Leader are this node's term and the leader it knows (None if it knows none),
	// for a redirect.
	Term, Leader uint64
	// LeaseUntil ends the leader's lease on this node's clock (0: no lease); LeaseIndex is the
	// commit index a lease read must see applied.
	LeaseUntil time.Duration
	LeaseIndex uint64
	// StaleUntil is the last moment, on this node's clock, at which its state is known to
	// be at most MaxStaleness old, provided StaleIndex is applied; 0: not known at all.
	StaleUntil time.Duration
	StaleIndex uint64
}

// Lease reports whether a lease read may be answered at now, and the index it must see
// applied.
func (v ReadView) Lease(now time.Duration) (index uint64, ok bool) {
	return v.LeaseIndex, v.LeaseUntil > 0 && now < v.LeaseUntil
}

// Stale reports whether a stale read may be answered at now, and the index it must see
// applied.
func (v ReadView) Stale(now time.Duration) (index uint64, ok bool) {
	return v.StaleIndex, v.StaleUntil > 0 && now <= v.StaleUntil
}

// ReadView computes the view at the core's current time.
func (r *Raft) ReadView() ReadView {
	r.updateLease()
	v := ReadView{Term: r.term, Leader: r.lead}
	switch {
	case r.leaseHeld():
		v.LeaseUntil, v.LeaseIndex = r.leaseExpiry, r.log.committed
	case r.role == Follower && r.now < r.readLeaseUntil:
		// A holder reads only once it has applied everything it holds: the leader may
		// already have committed (and acknowledged) any of it, since it waited for this
		// node's acknowledgement, but this node may not know yet.
		v.LeaseUntil, v.LeaseIndex = r.readLeaseUntil, r.log.lastIndex()
		if r.cfg.off.readLeasePending {
			v.LeaseIndex = r.log.committed
		}
	}
	if r.hasLeaderContact {
		// lastLeaderContact dates the local state on this node's own clock: on a follower,
		// the FollowerClock its leader echoed (noteFreshness), never the receipt of a message
		// that may have waited; on a leader, the start of its lease (renewLease).
		v.StaleUntil, v.StaleIndex = r.lastLeaderContact+r.cfg.MaxStaleness, r.freshIndex
	}
	return v
}

// Read asks to answer read id with the given consistency. On success the answer comes as a
// ReadState in a later Ready (the next one for ReadLease and ReadStale, which are answered
// through ReadView; for ReadIndex once a quorum confirmed the leadership); a ReadIndex read
// that cannot be confirmed comes back in DroppedReads.
func (r *Raft) Read(id uint64, mode ReadMode) error {
	switch mode {
	case ReadLease:
		if r.role != Leader {
			return &NotLeaderError{Leader: r.lead, Term: r.term}
		}
		index, ok := r.ReadView().Lease(r.now)
		if !ok {
			return fmt.Errorf("%w: lease is %v", ErrLeaseNotHeld, r.leaseState())
		}
		r.readStates = append(r.readStates, ReadState{ID: id, Index: index, Mode: ReadLease})
	case ReadIndex:
		if r.role != Leader {
			return &NotLeaderError{Leader: r.lead, Term: r.term}
		}
		if !r.committedInTerm && !r.cfg.off.readIndexAfterTermCommit {
			r.reads.awaitingCommit = append(r.reads.awaitingCommit, id)
			return nil
		}
		r.enqueueRead(id, r.log.committed)
	case ReadStale:
		view := r.ReadView()
		index, ok := view.Stale(r.now)
		if !ok {
			if !r.hasLeaderContact {
				return fmt.Errorf("%w: never heard from a leader", ErrTooStale)
			}
			return fmt.Errorf("%w: local state last known current %v ago, bound %v", ErrTooStale, r.now-r.lastLeaderContact, r.cfg.MaxStaleness)
		}
		r.readStates = append(r.readStates, ReadState{ID: id, Index: index, Mode: ReadStale})
	case ReadLog:
		return errReadLog
	default:
		return fmt.Errorf("raft: unknown read mode %v", mode)
	}
	return nil
}

// enqueueRead records a ReadIndex read at index, to be confirmed by a round that leaves after
// now. Reads that arrive before any message carried the current round share it.
func (r *Raft) enqueueRead(id, index uint64) {
	if r.roundUsed && !r.cfg.off.readIndexFreshRound {
		r.round++
		r.roundUsed = false
	}
	r.reads.awaitingRound = append(r.reads.awaitingRound, pendingRead{id: id, index: index, round: r.round})
	r.reads.broadcastPending = true
	r.confirmReads()
}

func (r *Raft) releaseReadsAwaitingCommit() {
	for _, id := range r.reads.awaitingCommit {
		r.enqueueRead(id, r.log.committed)
	}
	r.reads.awaitingCommit = r.reads.awaitingCommit[:0]
}

// confirmReads answers every read whose round a quorum echoed (this leader counting for its
// current round).
func (r *Raft) confirmReads() {
	q := r.reads.awaitingRound
	if len(q) == 0 {
		return
	}
	confirmed, _ := jointValue(r.countBy(false), func(id uint64) (uint64, bool) {
		if id == r.id {
			return r.round, true
		}
		return r.progress[r.memberIndex(id)].ackedRound, true
	}, r.scratchIndexes)
	n := 0
	for n < len(q) && q[n].round <= confirmed {
		r.readStates = append(r.readStates, ReadState{ID: q[n].id, Index: q[n].index, Mode: ReadIndex})
		n++
	}
	if n == len(q) {
		r.reads.awaitingRound = q[:0]
	} else {
		r.reads.awaitingRound = q[n:]
	}
}

// dropReads gives up every pending ReadIndex read when this node stops leading.
func (r *Raft) dropReads(term, lead uint64) {
	for _, id := range r.reads.awaitingCommit {
		r.droppedReads = append(r.droppedReads, DroppedRead{ID: id, Err: &NotLeaderError{Leader: lead, Term: term}})
	}
	for _, p := range r.reads.awaitingRound {
		r.droppedReads = append(r.droppedReads, DroppedRead{ID: p.id, Err: &NotLeaderError{Leader: lead, Term: term}})
	}
	r.reads = readQueue{}
}
