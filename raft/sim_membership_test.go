package raft

import (
	"slices"
	"time"
)

// Membership changes at run time (doc.go, "Membership changes"), among every other fault: a
// spare node joins as a learner with an empty disk and a new id, learners are promoted,
// members are removed (the leader itself and read-lease holders among them), and a voter is
// replaced by a caught-up learner in one change (promote the one, remove the other). A
// removed node is shut down for good some of the time, and left running the rest.

// changeMembership makes one membership change at the current leader.
func (s *simulation) changeMembership() {
	l := s.currentLeader()
	if l == nil {
		return
	}
	cs := l.r.ConfState()
	if len(cs.VotersOutgoing) > 0 {
		return // the leader leaves the joint configuration on its own first
	}
	learner := func() uint64 {
		if len(cs.Learners) == 0 {
			return None
		}
		return cs.Learners[s.rng.IntN(len(cs.Learners))]
	}
	switch s.rng.IntN(4) {
	case 0:
		s.addLearner(l)
	case 1:
		if id := learner(); id != None {
			s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{{ConfPromote, id}}})
		} else {
			s.addLearner(l)
		}
	case 2:
		s.removeMember(l, cs)
	default:
		id := learner()
		if id == None {
			s.addLearner(l)
			return
		}
		s.replaceWith(id)
	}
}

// addLearner starts a spare with an empty disk and has leader l add it as a learner.
func (s *simulation) addLearner(l *simNode) {
	var spare *simNode
	for _, n := range s.nodes {
		if n.outside && !n.joined {
			spare = n
			break
		}
	}
	if spare == nil || !s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, spare.id}}}) {
		return
	}
	s.logf("spare node %d starts with an empty disk to join the cluster", spare.id)
	spare.joined, spare.outside = true, false
	s.start(spare)
	if s.rng.IntN(2) == 0 {
		// A replacement: once it has caught up, it takes a voter's place in one change.
		s.after(s.randDuration(2*s.p.heartbeat, s.p.electionMax), "fault", 0, func() { s.replaceWith(spare.id) })
	}
}

// replaceWith has the current leader promote learner id and remove a voter (itself a third
// of the time) in one change.
func (s *simulation) replaceWith(id uint64) {
	l := s.currentLeader()
	if l == nil || s.healed || s.now >= s.clientsStop {
		return
	}
	cs := l.r.ConfState()
	if !slices.Contains(cs.Learners, id) || len(cs.VotersOutgoing) > 0 {
		return
	}
	voter := cs.Voters[s.rng.IntN(len(cs.Voters))]
	if s.rng.IntN(3) == 0 {
		voter = l.id
	}
	cc := ConfChange{Changes: []ConfChangeSingle{{ConfPromote, id}, {ConfRemove, voter}}}
	if s.proposeConfChange(l, cc) {
		s.stats.replacements++
		s.watchRemoval(voter)
	}
}

// removeMember has leader l remove a member: itself a third of the time, a read-lease holder
// a third, else anyone; never the last two voters.
func (s *simulation) removeMember(l *simNode, cs ConfState) {
	members := slices.Concat(cs.Voters, cs.Learners)
	id := members[s.rng.IntN(len(members))]
	switch s.rng.IntN(3) {
	case 0:
		id = l.id
	case 1:
		if len(cs.ReadLeaseHolders) > 0 {
			id = cs.ReadLeaseHolders[s.rng.IntN(len(cs.ReadLeaseHolders))]
		}
	}
	if slices.Contains(cs.Voters, id) && len(cs.Voters) <= 2 {
		return
	}
	if s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{{ConfRemove, id}}}) {
		s.watchRemoval(id)
	}
}

// watchRemoval waits for a leader to have applied a membership without id, out of any joint
// configuration; then, half the time, the removed node is shut down for good.
func (s *simulation) watchRemoval(id uint64) {
	n := s.node(id)
	deadline := s.now + 10*s.p.electionMax
	var poll func()
	poll = func() {
		if s.now >= deadline {
			return
		}
		if l := s.currentLeader(); l != nil && l.r.memberIndex(id) < 0 && !l.r.conf.joint() {
			if s.rng.IntN(2) == 0 && !n.outside {
				s.crash(n, "removed from the cluster and shut down")
				n.outside = true
			}
			return
		}
		s.after(s.p.heartbeat, "check", 0, poll)
	}
	s.after(s.p.heartbeat, "check", 0, poll)
}

// maybeSplitJoint attacks a voter change at the moment leader l commits the entry that enters
// the joint configuration (its commit index moves from before to after past it), with that
// chance. The cluster splits into a side with a majority of the old voters and one with a
// majority of the new ones; the old side never learns of the commit, so it still counts by
// the old voters, while the new side learns it and enters the joint configuration. Either
// the leader crashes before applying the change and restarts on the old side (two elections,
// one per side: only a quorum of both halves keeps the new side from electing a leader that
// misses the old side's commits), or it stays on the new side, applies the change and renews
// its lease there while the old side elects (only a lease backed by both halves makes that
// election wait it out).
func (s *simulation) maybeSplitJoint(l *simNode, before, after uint64) {
	if !s.p.faults.membership || s.healed || s.now >= s.clientsStop || s.now < s.attackUntil {
		return
	}
	var cc ConfChange
	found := false
	for i := before + 1; i <= after; i++ {
		e, ok := l.view.entry(i)
		if !ok || e.Type != EntryConfChange {
			continue
		}
		if c, err := DecodeConfChange(e.Data); err == nil && slices.ContainsFunc(c.Changes, func(ch ConfChangeSingle) bool {
			return ch.Type == ConfPromote || (ch.Type == ConfRemove && l.r.conf.isVoter(ch.NodeID))
		}) {
			cc, found = c, true
		}
	}
	if !found || s.rng.IntN(4) == 0 {
		return
	}
	next, err := l.r.conf.apply(cc)
	if err != nil {
		return
	}
	oldVoters, newVoters := l.r.conf.voters, next.voters
	maj := func(voters []uint64, side []uint64) bool {
		n := 0
		for _, id := range side {
			if slices.Contains(voters, id) {
				n++
			}
		}
		return n >= len(voters)/2+1
	}
	crashLeader := s.rng.IntN(2) == 0
	var oldSide, newSide []uint64
	for _, id := range slices.Concat(oldVoters, next.members()) {
		if slices.Contains(oldSide, id) || slices.Contains(newSide, id) || s.node(id).r == nil {
			continue
		}
		switch {
		case id == l.id && crashLeader, !slices.Contains(newVoters, id):
			oldSide = append(oldSide, id)
		case id == l.id, !slices.Contains(oldVoters, id):
			newSide = append(newSide, id)
		}
	}
	for _, i := range s.rng.Perm(len(oldVoters)) {
		v := oldVoters[i]
		if slices.Contains(oldSide, v) || slices.Contains(newSide, v) || s.node(v).r == nil {
			continue
		}
		if !maj(newVoters, newSide) {
			newSide = append(newSide, v)
		} else {
			oldSide = append(oldSide, v)
		}
	}
	if !maj(oldVoters, oldSide) || !maj(newVoters, newSide) {
		return
	}
	s.stats.jointSplits++
	idx := func(ids []uint64) []int {
		out := make([]int, len(ids))
		for i, id := range ids {
			out[i] = s.node(id).idx
		}
		return out
	}
	d := 3 * s.p.electionMax
	s.attackUntil = s.now + d
	s.logf("joint split: leader %d commits %v; old side %v, new side %v for %v (leader crashes: %v)",
		l.id, cc, oldSide, newSide, d, crashLeader)
	others := slices.DeleteFunc(slices.Clone(oldSide), func(id uint64) bool { return id == l.id })
	// The commit index this Ready sends reaches the new side only.
	cutOld := s.block(idx([]uint64{l.id}), idx(others), d)
	split := func() {
		s.block(idx(oldSide), idx(newSide), d)
		s.block(idx(newSide), idx(oldSide), d)
	}
	if crashLeader {
		s.after(0, "fault", l.id, func() {
			s.crash(l, "joint split: before applying the change")
			cutOld()
			split()
			s.after(s.randDuration(10*time.Microsecond, s.p.electionMin/2), "restart", l.id, func() { s.start(l) })
		})
	} else {
		split()
	}
	for _, side := range [][]uint64{oldSide, newSide} {
		c := s.node(side[s.rng.IntN(len(side))])
		s.after(s.randDuration(s.p.electionMin, 2*s.p.electionMax), "fault", c.id, func() {
			if c.r == nil || s.healed {
				return
			}
			c.tickNow()
			if err := c.r.Campaign(); err != nil {
				s.fail("invariant", "node %d: Campaign: %v", c.id, err)
				return
			}
			c.settle()
		})
	}
}
