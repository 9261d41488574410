package raft

import "slices"

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
		voter := cs.Voters[s.rng.IntN(len(cs.Voters))]
		if s.rng.IntN(3) == 0 {
			voter = l.id // the leader replaces itself
		}
		cc := ConfChange{Changes: []ConfChangeSingle{{ConfPromote, id}, {ConfRemove, voter}}}
		if s.proposeConfChange(l, cc) {
			s.stats.replacements++
			s.watchRemoval(voter)
		}
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
