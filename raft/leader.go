package raft

import (
	"fmt"
	"time"
)

func (r *Raft) stepLeader(m Message, from int) error {
	if m.Term != r.term {
		return nil // a granted pre-vote for a later term, from an old round
	}
	if from < 0 {
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
			return fmt.Errorf("raft: node %d, not a member, sent %v in term %d, which this node leads", m.From, m.Type, m.Term)
		}
		return nil
	}
	pr := &r.progress[from]
	pr.lastContact = r.now
	switch m.Type {
	case MsgAppResp:
		r.recordAck(pr, m)
		if m.Reject {
			r.handleAppendReject(pr, m)
		} else {
			r.handleAppendSuccess(pr, m.Index)
		}
	case MsgSnapResp:
		if pr.state == ProgressSnapshot && m.Reject {
			pr.pendingSnapshot = 0
			pr.becomeProbe()
			r.appendPending = true
		} else if !m.Reject {
			r.handleAppendSuccess(pr, m.Index)
		}
	case MsgHeartbeatResp:
		r.recordAck(pr, m)
		// Followers answer in order, so a reply to a heartbeat sent after an append,
		// arriving while that append is unanswered, means the append or its answer was lost.
		switch {
		case pr.state == ProgressProbe && pr.probeSent && m.SentAt >= pr.probeSentAt:
			pr.probeSent = false
		case pr.state == ProgressReplicate && pr.match+1 < pr.next && m.SentAt > pr.lastAppendAt:
			pr.becomeProbe()
		}
		if pr.match < r.log.lastIndex() || pr.sentCommit < r.log.committed {
			r.appendPending = true
		}
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
		// Same term, another leader: impossible unless safety broke.
		return fmt.Errorf("raft: node %d sent %v in term %d, which this node leads", m.From, m.Type, m.Term)
	}
	return nil
}

// recordAck notes the lease and ReadIndex bookkeeping a follower echoed back, and the
// follower's clock to echo to it in turn.
func (r *Raft) recordAck(pr *progress, m Message) {
	if m.Round == 0 || m.SentAt > r.now || m.Round > r.round {
		// No echo (a reply to a message of an older term carries none), or one that no
		// message of this leader can have carried (dated after now, a later round): it must
		// not renew the lease or confirm reads.
		return
	}
	sentAt := m.SentAt
	if r.cfg.off.leaseFromSendTime {
		sentAt = r.now
	}
	if !pr.hasAcked || sentAt > pr.ackedSentAt {
		pr.ackedSentAt = sentAt
	}
	pr.ackedRound = max(pr.ackedRound, m.Round)
	pr.hasAcked = true
	pr.followerClock, pr.followerBoot, pr.followerClockAt = m.FollowerClock, m.FollowerBoot, r.now
	r.renewLease()
	r.confirmReads()
}

func (r *Raft) handleAppendSuccess(pr *progress, index uint64) {
	if index > r.log.lastIndex() {
		// Acknowledges entries this leader never sent: ignore rather than corrupt match.
		return
	}
	moved := pr.acknowledge(index)
	switch pr.state {
	case ProgressProbe:
		pr.becomeReplicate()
	case ProgressSnapshot:
		if pr.match >= pr.pendingSnapshot {
			pr.becomeReplicate()
		}
	case ProgressReplicate:
		pr.inflights.freeThrough(index)
	}
	if moved {
		r.maybeCommit()
		r.maybeStartTransfer()
	}
	if pr.next <= r.log.lastIndex() || pr.sentCommit < r.log.committed {
		r.appendPending = true
	}
}

// handleAppendReject backs next off using the follower's conflict hint: to just after the
// leader's last entry of the follower's conflicting term if the leader has that term, else to
// the first index the follower holds of it.
func (r *Raft) handleAppendReject(pr *progress, m Message) {
	if m.Index <= pr.match {
		return // stale: the follower already matched at or beyond it
	}
	if pr.state == ProgressProbe && m.Index+1 != pr.next {
		return // answer to an older probe
	}
	if pr.state == ProgressSnapshot {
		return
	}
	next := m.ConflictIndex
	if m.ConflictTerm > 0 {
		if i, ok := r.log.lastIndexOfTerm(m.ConflictTerm, m.Index); ok {
			next = i + 1
		}
	}
	next = max(min(next, m.Index, r.log.lastIndex()+1), pr.match+1)
	pr.becomeProbe()
	pr.next = next
	r.appendPending = true
}

// maybeCommit advances the commit index to the highest index a quorum holds, if that entry is
// of this term (Raft §5.4.2, Figure 8). The leader counts itself only for persisted entries.
//
// Nothing commits before the old-lease wait ends (deferred commit): an older leader may still
// answer lease reads from a state without this leader's writes, so acknowledging one before
// that lease is surely over would let a read miss a write that completed before it began.
func (r *Raft) maybeCommit() {
	if r.now < r.waitUntil && !r.cfg.off.deferredCommit {
		return
	}
	n, _ := jointValue(r.countBy(r.cfg.off.jointCommit), func(id uint64) (uint64, bool) {
		if id == r.id {
			// What a Ready has handed out to persist, durable or not yet: no Ready that
			// reveals a commit leaves before the entries of the Ready before it are durable
			// (doc.go, "The commit rule").
			if r.cfg.off.leaderCountsHandedOut {
				return r.log.lastIndex(), true
			}
			return r.log.handedOut, true
		}
		return r.progress[r.memberIndex(id)].match, true
	}, r.scratchIndexes)
	// A holder that may still answer reads by its lease must hold an entry before it commits
	// (doc.go, "Read leases"): commit waits for its acknowledgement or for its lease to end.
	for i := range r.progress {
		if pr := &r.progress[i]; i != r.self && pr.holderUntil > r.now && !r.cfg.off.commitWaitsForHolder {
			n = min(n, pr.match)
		}
	}
	// So must a holder removed from the membership, which acknowledges nothing more.
	if r.departedUntil > r.now && !r.cfg.off.removedHolderWait {
		n = min(n, r.departedMatch)
	}
	if n <= r.log.committed {
		return
	}
	if t, _ := r.log.term(n); t != r.term && !r.cfg.off.figure8 {
		return
	}
	r.commitTo(n)
}

// commitTo advances the commit index on any role.
func (r *Raft) commitTo(n uint64) {
	if n <= r.log.committed {
		return
	}
	old := r.log.committed
	r.log.committed = n
	if r.role != Leader {
		return
	}
	if r.cfg.MaxUncommittedBytes > 0 {
		for i := max(old+1, r.log.firstIndex()); i <= n; i++ {
			if e := r.log.at(i); e.Term == r.term {
				r.uncommittedBytes -= min(r.uncommittedBytes, uint64(len(e.Data)))
			}
		}
	}
	r.appendPending = true
	if t, _ := r.log.term(n); !r.committedInTerm && t == r.term {
		r.committedInTerm = true
		r.releaseReadsAwaitingCommit()
	}
}

// stamp fills the leader's lease and round bookkeeping into an append or heartbeat, and the
// follower's own clock reading to date its stale-read freshness by. That echo goes out only
// while this leader holds its lease: only then does it know that no other leader has
// committed anything it lacks, so that its state in the message is current (doc.go,
// "Stale-read freshness").
func (r *Raft) stamp(m *Message, pr *progress) {
	m.LeaseDuration = r.cfg.LeaseDuration
	m.SentAt = r.now
	m.Round = r.round
	r.roundUsed = true
	pr.sentRound = r.round
	if r.leaseHeld() || r.cfg.off.freshnessNeedsLease {
		m.FollowerClock, m.FollowerBoot = pr.followerClock, pr.followerBoot
		r.grantReadLease(m, pr)
	}
}

// grantReadLease grants a read-lease holder a lease with m: from the holder's clock reading
// echoed in m, for as long as ends, on this leader's clock, no later than its own lease (a
// later leader waits that out before it commits, so it waits out every read lease too). The
// holder's clock may run fast by up to 1/(1−δ) against this leader's: a lease of L on it
// ends within L/(1−δ) here, counted from when this leader received the reading. Only a holder
// that holds every committed entry gets one.
func (r *Raft) grantReadLease(m *Message, pr *progress) {
	if !r.conf.isHolder(pr.id) || m.FollowerClock == 0 || (pr.match < r.log.committed && !r.cfg.off.readLeaseNeedsMatch) {
		return
	}
	lease := time.Duration(float64(r.leaseExpiry-pr.followerClockAt) * r.cfg.minDriftFactor())
	if r.cfg.off.readLeaseNesting {
		lease = r.cfg.LeaseDuration
	}
	lease = min(lease, r.cfg.LeaseDuration)
	if lease <= 0 {
		return
	}
	m.ReadLease = lease
	pr.holderUntil = max(pr.holderUntil, pr.followerClockAt+r.cfg.scaleUpBound(lease))
}

func (r *Raft) broadcastHeartbeat() {
	for i := range r.progress {
		if i != r.self {
			r.sendHeartbeat(&r.progress[i])
		}
	}
	r.heartbeatDeadline = r.now + r.cfg.HeartbeatInterval
}

func (r *Raft) sendHeartbeat(pr *progress) {
	// The full commit index: the follower takes it only up to what it knows matches this
	// leader's log, and learns from it whether it is up to date (for stale reads).
	m := Message{Type: MsgHeartbeat, To: pr.id, Commit: r.log.committed}
	r.stamp(&m, pr)
	r.send(m)
}

// flushAppends builds the appends every follower is due, batching every entry proposed since
// the last Ready, and the heartbeats a pending ReadIndex round needs.
func (r *Raft) flushAppends() {
	if r.role != Leader {
		r.appendPending = false
		r.reads.broadcastPending = false
		return
	}
	if r.appendPending {
		r.appendPending = false
		for i := range r.progress {
			if i != r.self {
				r.sendAppends(&r.progress[i])
			}
		}
	}
	r.flushReadRound()
}

// sendAppends sends pr what its state allows: one probe, a pipeline of appends up to the
// inflight limits, a snapshot, or an empty append to carry a new commit index.
func (r *Raft) sendAppends(pr *progress) {
	last := r.log.lastIndex()
	switch pr.state {
	case ProgressSnapshot:
		return
	case ProgressProbe:
		if pr.probeSent {
			return
		}
		r.sendAppend(pr, last)
		if pr.state == ProgressProbe {
			pr.probeSent = true
			pr.probeSentAt = r.now
		}
	case ProgressReplicate:
		sent := false
		for pr.next <= last && !pr.inflights.full() {
			if !r.sendAppend(pr, last) {
				return
			}
			sent = true
		}
		// A read-lease holder learns a commit at once: its reads wait for what it holds.
		if !sent && (!r.cfg.LazyCommitBroadcast || r.conf.isHolder(pr.id)) && pr.sentCommit < r.log.committed && pr.match+1 >= pr.next {
			// Idle follower: tell it the new commit index.
			r.sendAppend(pr, last)
		}
	}
}

// sendAppend sends one MsgApp starting at pr.next (a snapshot if those entries are compacted)
// and reports whether an append went out.
func (r *Raft) sendAppend(pr *progress, last uint64) bool {
	prev := pr.next - 1
	prevTerm, ok := r.log.term(prev)
	if !ok {
		r.sendSnapshot(pr)
		return false
	}
	m := Message{Type: MsgApp, To: pr.id, Index: prev, LogTerm: prevTerm, Commit: r.log.committed}
	if pr.next <= last {
		hi, bytes := pr.next, uint64(len(r.log.at(pr.next).Data))
		for hi < last {
			size := uint64(len(r.log.at(hi + 1).Data))
			if bytes+size > r.cfg.MaxSizePerMsg {
				break
			}
			bytes += size
			hi++
		}
		m.Entries = r.log.slice(pr.next, hi)
		if pr.state == ProgressReplicate {
			pr.inflights.add(hi, bytes)
			pr.next = hi + 1
		}
	}
	r.stamp(&m, pr)
	pr.sentCommit = m.Commit
	pr.lastAppendAt = r.now
	r.send(m)
	return true
}

func (r *Raft) sendSnapshot(pr *progress) {
	snap := r.log.snapshot
	pr.becomeSnapshot(snap.Index)
	m := Message{Type: MsgSnap, To: pr.id, Snapshot: snap, Index: snap.Index, LogTerm: snap.Term}
	r.stamp(&m, pr)
	r.send(m)
	r.event(Event{Kind: EventSnapshotSent, Peer: pr.id, Index: snap.Index})
}
