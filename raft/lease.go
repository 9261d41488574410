package raft

import (
	"fmt"
	"time"
)

// leaseStart is the latest s such that a quorum, this leader included (as now), answered a
// message sent at or after s in this term. ok is false until a quorum has answered.
func (r *Raft) leaseStart() (start time.Duration, ok bool) {
	if r.cfg.off.leaseQuorum {
		return r.now, true
	}
	return jointValue(r.countBy(r.cfg.off.jointLease), func(id uint64) (time.Duration, bool) {
		if id == r.id {
			return r.now, true
		}
		pr := &r.progress[r.memberIndex(id)]
		return pr.ackedSentAt, pr.hasAcked
	}, r.scratchTimes)
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
