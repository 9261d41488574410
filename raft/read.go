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
	// broadcastPending asks for a heartbeat round for the reads in awaitingRound that no
	// message has carried yet. It goes out with the next Ready, unless a round sent for
	// reads is still unconfirmed (see readRoundDue).
	broadcastPending bool
	// sentRounds are the rounds of the last two heartbeat broadcasts sent for reads, the
	// newest last; confirmedRound is the highest round a quorum has echoed (this leader
	// counting for its current round).
	sentRounds     [2]uint64
	confirmedRound uint64
}

// readRoundDue reports whether the next Ready must send a heartbeat round for waiting
// ReadIndex reads. At most two rounds sent for reads are unconfirmed at a time: a read that
// finds one in flight gets its own round at once, as before, but the reads that arrive
// while two are in flight wait for the older to be confirmed and then all share the next.
// Under load a round then confirms many reads instead of one or two (64 clients had a round
// of four heartbeats and four answers for nearly every read), and a read waits at most one
// round trip for its round to start. A lost round holds reads up for at most a heartbeat
// interval: every heartbeat and append carries the current round (stamp), and a quorum's
// answers to it confirm every earlier round too.
func (r *Raft) readRoundDue() bool {
	q := &r.reads
	if !q.broadcastPending {
		return false
	}
	// With the fresh-round rule off, rounds go out as they did before batching, so that
	// the knob test shows the simulator catching that rule's absence alone.
	return q.sentRounds[0] <= q.confirmedRound || r.cfg.off.readIndexFreshRound
}

// flushReadRound sends the heartbeat round waiting reads need, to every peer the current
// round has not gone to yet.
func (r *Raft) flushReadRound() {
	if !r.readRoundDue() {
		return
	}
	r.reads.broadcastPending = false
	r.reads.sentRounds = [2]uint64{r.reads.sentRounds[1], r.round}
	for i := range r.progress {
		if pr := &r.progress[i]; i != r.self && pr.sentRound != r.round {
			r.sendHeartbeat(pr)
		}
	}
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
	r.reads.confirmedRound = max(r.reads.confirmedRound, confirmed)
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
