package raft

import (
	"fmt"
	"slices"
	"time"
)

// leaseStart is the latest s such that a quorum, this leader included (as now), answered a
// message sent at or after s in this term. ok is false until a quorum has answered.
func (r *Raft) leaseStart() (start time.Duration, ok bool) {
	times := r.scratchTimes[:0]
	for i := range r.progress {
		switch {
		case i == r.self:
			times = append(times, r.now)
		case r.progress[i].hasAcked:
			times = append(times, r.progress[i].ackedSentAt)
		}
	}
	quorum := r.quorum
	if r.cfg.off.leaseQuorum {
		quorum = 1
	}
	if len(times) < quorum {
		return 0, false
	}
	slices.Sort(times)
	return times[len(times)-quorum], true
}

// renewLease extends the lease to what the quorum's acknowledgements support. Once this
// leader has committed an entry of its term (so its state covers every committed write), the
// lease start also dates its state for stale reads; before that its state may lack writes an
// earlier leader committed, and it stays as fresh as it was as a follower.
func (r *Raft) renewLease() {
	start, ok := r.leaseStart()
	if !ok {
		return
	}
	r.leaseExpiry = max(r.leaseExpiry, start+r.cfg.scaleDown(r.cfg.LeaseDuration))
	if (r.committedInTerm || r.cfg.off.freshnessNeedsLeaderCommit) && (!r.hasLeaderContact || start > r.lastLeaderContact) {
		r.lastLeaderContact = start
		r.hasLeaderContact = true
		r.freshIndex = max(r.freshIndex, r.log.committed)
	}
}

// leaseHeld reports whether this leader may answer a lease read now (see doc.go).
func (r *Raft) leaseHeld() bool {
	return r.role == Leader && !r.leaseRelinquished && !r.leaseWaiting() && r.now < r.leaseExpiry
}

// leaseWaiting reports whether a leader must still wait before lease reads: for an entry of
// its term to commit, so that its commit index covers every acknowledged write. Nothing
// commits before the leases its voters reported have run out (maybeCommit), so the same wait
// keeps its lease reads after them.
func (r *Raft) leaseWaiting() bool {
	return !r.committedInTerm && !r.cfg.off.leaseAfterTermCommit
}

func (r *Raft) leaseState() LeaseState {
	switch {
	case r.role != Leader:
		return LeaseNone
	case r.leaseRelinquished:
		return LeaseRelinquished
	case r.leaseWaiting():
		return LeaseWaiting
	case r.now < r.leaseExpiry:
		return LeaseHeld
	}
	return LeaseNone
}

// updateLease renews the lease and reports the moments it starts or stops being held.
func (r *Raft) updateLease() {
	if r.role != Leader {
		return
	}
	r.renewLease()
	held := r.leaseHeld()
	if held == r.leaseHeldReported {
		return
	}
	r.leaseHeldReported = held
	if held {
		r.event(Event{Kind: EventLeaseAcquired, Duration: r.leaseExpiry - r.now})
		return
	}
	r.event(Event{Kind: EventLeaseLost, Reason: fmt.Sprintf(
		"expired: no quorum answered a message sent in the last %v", r.cfg.scaleDown(r.cfg.LeaseDuration))})
}
