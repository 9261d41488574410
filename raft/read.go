package raft

import (
	"fmt"
	"slices"
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

// Read asks to answer read id with the given consistency. On success the answer comes as a
// ReadState in a later Ready (the next one for ReadLease and ReadStale; for ReadIndex once a
// quorum confirmed the leadership); a ReadIndex read that cannot be confirmed comes back in
// DroppedReads.
func (r *Raft) Read(id uint64, mode ReadMode) error {
	switch mode {
	case ReadLease:
		if r.role != Leader {
			return &NotLeaderError{Leader: r.lead, Term: r.term}
		}
		r.updateLease()
		if !r.leaseHeld() {
			return fmt.Errorf("%w: lease is %v", ErrLeaseNotHeld, r.leaseState())
		}
		r.readStates = append(r.readStates, ReadState{ID: id, Index: r.log.committed, Mode: ReadLease})
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
		// lastLeaderContact dates the local state on this node's own clock: on a follower,
		// the FollowerClock its leader echoed (noteFreshness), never the receipt of a message
		// that may have waited; on a leader, the start of its lease (renewLease).
		r.updateLease()
		if !r.hasLeaderContact {
			return fmt.Errorf("%w: never heard from a leader", ErrTooStale)
		}
		if age := r.now - r.lastLeaderContact; age > r.cfg.MaxStaleness {
			return fmt.Errorf("%w: local state last known current %v ago, bound %v", ErrTooStale, age, r.cfg.MaxStaleness)
		}
		r.readStates = append(r.readStates, ReadState{ID: id, Mode: ReadStale})
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
	rounds := r.scratchIndexes[:0]
	for i := range r.progress {
		if i == r.self {
			rounds = append(rounds, r.round)
		} else {
			rounds = append(rounds, r.progress[i].ackedRound)
		}
	}
	slices.Sort(rounds)
	confirmed := rounds[len(rounds)-r.quorum]
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
