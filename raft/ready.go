package raft

// HasReady reports whether Ready would return anything. It is false between Ready and
// Advance.
func (r *Raft) HasReady() bool {
	if r.readyOutstanding {
		return false
	}
	return len(r.msgs) > 0 || len(r.msgsAfterPersist) > 0 || len(r.events) > 0 ||
		len(r.readStates) > 0 || len(r.droppedReads) > 0 || r.pendingSnapshot != nil ||
		r.hardState() != r.prevHardState ||
		r.log.handedOut < r.log.lastIndex() ||
		r.log.applying < min(r.log.committed, r.log.lastIndex()) ||
		(r.role == Leader && (r.appendPending || r.readRoundDue()))
}

// Ready hands out what the caller must do, following the contract on the Ready type. Until
// Advance it returns an empty Ready.
func (r *Raft) Ready() Ready {
	if r.readyOutstanding {
		return Ready{}
	}
	r.flushAppends()
	var rd Ready
	durableTerm := r.prevHardState.Term
	if hs := r.hardState(); hs != r.prevHardState {
		rd.HardState = &hs
		r.prevHardState = hs
	}
	if r.pendingSnapshot != nil {
		rd.Snapshot = r.pendingSnapshot
		r.pendingSnapshot = nil
	}
	rd.Entries = r.log.unstable()
	r.log.handedOut = r.log.lastIndex()
	rd.CommittedEntries = r.log.toApply()
	if n := len(rd.CommittedEntries); n > 0 {
		r.log.applying = rd.CommittedEntries[n-1].Index
	}
	if r.log.committed > r.lastCommitEvent {
		r.lastCommitEvent = r.log.committed
		r.event(Event{Kind: EventCommitted, Index: r.log.committed})
	}
	rd.Messages, r.msgs = r.msgs, nil
	rd.MessagesAfterPersist, r.msgsAfterPersist = r.msgsAfterPersist, nil
	if rd.HardState != nil && rd.HardState.Term > durableTerm {
		// Leader messages of a term this very Ready makes durable wait for it. Only a vote
		// granted before it was asked for (a forged or corrupt one) gets a node elected that
		// fast; its appends must still not leave before its term and vote are on disk.
		kept := rd.Messages[:0]
		for _, m := range rd.Messages {
			if m.Term > durableTerm {
				rd.MessagesAfterPersist = append(rd.MessagesAfterPersist, m)
			} else {
				kept = append(kept, m)
			}
		}
		rd.Messages = kept
	}
	rd.ReadStates, r.readStates = r.readStates, nil
	rd.DroppedReads, r.droppedReads = r.droppedReads, nil
	rd.Events, r.events = r.events, nil
	r.readyOutstanding = true
	return rd
}

// Advance tells the core that rd was carried out: its Entries and Snapshot are durable and its
// CommittedEntries applied.
func (r *Raft) Advance(rd Ready) {
	r.readyOutstanding = false
	if rd.Snapshot != nil && r.log.snapshot.SameAs(*rd.Snapshot) {
		r.log.persisted = max(r.log.persisted, rd.Snapshot.Index)
	}
	// Entries replaced since the Ready was made do not count as persisted; the ones before
	// them do.
	for i := len(rd.Entries) - 1; i >= 0; i-- {
		e := rd.Entries[i]
		if e.Index <= r.log.persisted {
			break
		}
		if r.log.matchTerm(e.Index, e.Term) {
			r.log.persisted = min(e.Index, r.log.handedOut)
			break
		}
	}
	prevApplied := r.log.applied
	if n := len(rd.CommittedEntries); n > 0 {
		r.log.applied = max(r.log.applied, rd.CommittedEntries[n-1].Index)
	}
	for _, e := range rd.CommittedEntries {
		if e.Type == EntryConfChange && e.Index > prevApplied {
			r.applyConfChange(e)
		}
	}
	if r.role == Candidate && rd.HardState != nil && rd.HardState.Term == r.term && rd.HardState.Vote == r.id {
		r.candidacyDurable = true
		if r.isVoter() {
			r.decideElection()
		} else {
			r.becomeFollower(r.term, None, "no longer a voter")
		}
	}
	if r.role == Leader {
		if r.self >= 0 {
			r.progress[r.self].match = r.log.persisted
		}
		r.maybeCommit()
		r.maybeStartTransfer()
		r.maybeLeaveJoint()
	}
	r.updateLease()
}

// Status returns a snapshot of the core's state.
func (r *Raft) Status() Status {
	s := r.BasicStatus()
	if r.role == Leader {
		s.Progress = make(map[uint64]PeerProgress, len(r.members))
		for i := range r.progress {
			if i == r.self {
				s.Progress[r.id] = PeerProgress{Match: r.log.persisted, Next: r.log.lastIndex() + 1,
					State: ProgressReplicate, LastAck: r.now}
				continue
			}
			s.Progress[r.progress[i].id] = r.progress[i].public()
		}
	}
	return s
}

// BasicStatus is Status without the leader's per-peer Progress, so a driver can read it on
// every turn without allocating.
func (r *Raft) BasicStatus() Status {
	s := Status{
		ID:              r.id,
		Term:            r.term,
		Vote:            r.vote,
		Role:            r.role,
		Leader:          r.lead,
		Commit:          r.log.committed,
		Applied:         r.log.applied,
		LastIndex:       r.log.lastIndex(),
		FirstIndex:      r.log.firstIndex(),
		Snapshot:        r.log.snapshot,
		Lease:           r.leaseState(),
		KnownLeaseUntil: r.knownLeaseUntil,
		Now:             r.now,
		TransferTarget:  r.transferTarget,
	}
	if r.hasLeaderContact {
		s.LastLeaderContact = r.lastLeaderContact
	}
	switch s.Lease {
	case LeaseHeld:
		s.LeaseExpiry = r.leaseExpiry
	case LeaseWaiting:
		s.LeaseExpiry = r.waitUntil
	}
	if s.LeaseExpiry > r.now {
		s.LeaseRemaining = s.LeaseExpiry - r.now
	}
	return s
}
