package raft

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// confMark is the membership from index on.
type confMark struct {
	index uint64
	conf  membership
}

// ErrConfChangePending refuses a membership change while another is not yet applied.
var ErrConfChangePending = errors.New("raft: a membership change is already under way")

// setMembership makes conf this node's membership: members, their progress (a member kept
// keeps its progress; a new one starts probing) and this node's place among them.
func (r *Raft) setMembership(conf membership) {
	old := r.members
	oldProgress := r.progress
	if r.role == Leader {
		r.rememberDepartedHolders(oldProgress, conf)
	}
	r.conf = conf
	r.members = conf.members()
	r.self = r.memberIndex(r.id)
	r.progress = make([]progress, len(r.members))
	r.votes = make([]int8, len(r.members))
	next := r.log.lastIndex() + 1
	for i, id := range r.members {
		if j, ok := slices.BinarySearch(old, id); ok {
			r.progress[i] = oldProgress[j]
			continue
		}
		r.progress[i].id = id
		r.progress[i].resetForTerm(next, r.now, r.cfg.MaxInflightMsgs, r.cfg.MaxInflightBytes)
	}
	if r.self < 0 && !r.cfg.off.removedStopsServing {
		// Removed (or not yet added): whatever read lease this node held, it answers no more
		// lease reads.
		r.readLeaseUntil = 0
	}
	if cap(r.scratchIndexes) < len(r.members) {
		r.scratchIndexes = make([]uint64, 0, len(r.members))
		r.scratchTimes = make([]time.Duration, 0, len(r.members))
	}
}

// rememberDepartedHolders keeps, for the commit rule, the read leases of the members conf
// drops: a removed holder may not know yet that it is removed and answer reads by its lease
// until that ends, but it acknowledges nothing more (doc.go, "Membership changes").
func (r *Raft) rememberDepartedHolders(oldProgress []progress, conf membership) {
	for i := range oldProgress {
		pr := &oldProgress[i]
		if i == r.self || pr.holderUntil <= r.now || slices.Contains(conf.members(), pr.id) {
			continue
		}
		if r.departedUntil <= r.now {
			r.departedMatch = pr.match
		}
		r.departedUntil = max(r.departedUntil, pr.holderUntil)
		r.departedMatch = min(r.departedMatch, pr.match)
	}
}

// countBy is the membership a quorum decision counts by: both halves of a joint one, voters
// only. (Test knobs: with jointOff, the incoming voters alone, as if a change took effect at
// once; with learnersOutsideQuorum off, learners count as voters.)
func (r *Raft) countBy(jointOff bool) membership {
	c := r.conf
	if jointOff {
		c.outgoing = nil
	}
	if r.cfg.off.learnersOutsideQuorum && len(c.learners) > 0 {
		c.voters = slices.Concat(c.voters, c.learners)
		if len(c.outgoing) > 0 {
			c.outgoing = slices.Concat(c.outgoing, c.learners)
		}
	}
	return c
}

// isVoter reports whether this node votes in its membership.
func (r *Raft) isVoter() bool { return r.conf.isVoter(r.id) }

// confAfter applies the EntryConfChange e to conf. A change that no leader could have
// proposed (refused by membership.apply) changes nothing, on every node alike.
func (r *Raft) confAfter(conf membership, e Entry) membership {
	cc, err := DecodeConfChange(e.Data)
	if err == nil {
		var next membership
		if next, err = conf.apply(cc); err == nil {
			return next
		}
	}
	r.event(Event{Kind: EventConfChangeRefused, Index: e.Index, Reason: err.Error()})
	return conf
}

// confAt is the membership as of index (at or after the compaction point).
func (r *Raft) confAt(index uint64) membership {
	conf := r.confs[0].conf
	for _, m := range r.confs {
		if m.index > index {
			break
		}
		conf = m.conf
	}
	return conf
}

// applyConfChange makes the membership change of the applied entry e take effect. A leader
// leaves a joint configuration as soon as it is applied, and a leader that is no longer a
// voter steps down, ending its lease.
func (r *Raft) applyConfChange(e Entry) {
	conf := r.confAfter(r.conf, e)
	r.confs = append(r.confs, confMark{index: e.Index, conf: conf})
	r.setMembership(conf)
	r.event(Event{Kind: EventConfChanged, Index: e.Index, Reason: conf.confState().String()})
	if r.role != Leader {
		return
	}
	if r.transferTarget != None && !slices.Contains(conf.voters, r.transferTarget) {
		r.abortTransfer(fmt.Sprintf("node %d is no longer a voter", r.transferTarget))
	}
	if !conf.joint() && !r.isVoter() && !r.cfg.off.removedStopsServing {
		r.stepDown(r.term, None, "removed from the membership")
		return
	}
	r.appendPending = true
}

// maybeLeaveJoint has a leader leave a joint configuration once the entry that entered it
// is applied (a majority of both halves holds it), whether it appended that entry itself or
// inherited it.
func (r *Raft) maybeLeaveJoint() {
	if r.role != Leader || !r.conf.joint() || r.pendingConf > r.log.applied || r.transferTarget != None {
		return
	}
	if _, _, err := r.appendConfChange(ConfChange{}); err != nil {
		r.event(Event{Kind: EventConfChangeRefused, Reason: "leaving the joint configuration: " + err.Error()})
	}
}

// ProposeConfChange appends a membership change, to commit like any entry; it takes effect
// on each node when that node applies it. One change at a time: a leader refuses another
// until the last one it appended is applied. A learner is promoted only once caught up: it has
// acknowledged some of this leader's log, and is within Config.MaxLearnerLag entries of its end.
func (r *Raft) ProposeConfChange(cc ConfChange) (index, term uint64, err error) {
	if r.role != Leader {
		return 0, 0, &NotLeaderError{Leader: r.lead, Term: r.term}
	}
	if r.transferTarget != None {
		return 0, 0, fmt.Errorf("%w: leadership is being transferred to node %d", ErrProposalDropped, r.transferTarget)
	}
	if len(cc.Changes) == 0 {
		return 0, 0, errors.New("raft: a membership change needs at least one change")
	}
	for _, c := range cc.Changes {
		if c.Type != ConfPromote {
			continue
		}
		if i := r.memberIndex(c.NodeID); i >= 0 && r.conf.isLearner(c.NodeID) {
			// A learner that has acknowledged none of this leader's log may not even have
			// started: with a log shorter than MaxLearnerLag the lag bound alone would pass it.
			if r.progress[i].match == 0 {
				return 0, 0, fmt.Errorf("raft: learner %d has acknowledged none of the leader's log yet: not promoted "+
					"until it has caught up (start it, and promote it once it holds the log)", c.NodeID)
			}
			if lag := r.log.lastIndex() - min(r.progress[i].match, r.log.lastIndex()); lag > r.cfg.MaxLearnerLag {
				return 0, 0, fmt.Errorf("raft: learner %d is %d entries behind the leader, more than %d: not promoted yet",
					c.NodeID, lag, r.cfg.MaxLearnerLag)
			}
		}
	}
	return r.appendConfChange(cc)
}

func (r *Raft) appendConfChange(cc ConfChange) (index, term uint64, err error) {
	if r.pendingConf > r.log.applied {
		return 0, 0, fmt.Errorf("%w: entry %d is not applied yet", ErrConfChangePending, r.pendingConf)
	}
	if _, err := r.conf.apply(cc); err != nil {
		return 0, 0, fmt.Errorf("raft: membership change %v: %w", cc, err)
	}
	index = r.log.lastIndex() + 1
	r.log.entries = append(r.log.entries, Entry{Index: index, Term: r.term, Type: EntryConfChange, Data: cc.Encode()})
	r.pendingConf = index
	r.appendPending = true
	return index, r.term, nil
}

// ConfState is the membership this node has applied.
func (r *Raft) ConfState() ConfState { return r.conf.confState() }
