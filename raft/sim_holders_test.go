package raft

import "slices"

// Faults aimed at read leases (doc.go, "Read leases"): holders changed through the log, and
// holders cut off, slowed, starved of commit notices or left behind by a transfer while they
// hold a lease.

// changeHolders has the leader propose making a random member a read-lease holder, or no
// longer one.
func (s *simulation) changeHolders() {
	l := s.currentLeader()
	if l == nil {
		return
	}
	cs := l.r.ConfState()
	members := slices.Concat(cs.Voters, cs.Learners)
	if len(members) == 0 {
		return
	}
	id := members[s.rng.IntN(len(members))]
	change := ConfChangeSingle{Type: ConfReadLeaseOn, NodeID: id}
	if slices.Contains(cs.ReadLeaseHolders, id) {
		change.Type = ConfReadLeaseOff
	}
	s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{change}})
}

// proposeConfChange asks leader l to append cc and logs the outcome; a refusal (a change
// already under way, a transfer, a learner not caught up) is part of the game.
func (s *simulation) proposeConfChange(l *simNode, cc ConfChange) bool {
	l.tickNow()
	index, term, err := l.r.ProposeConfChange(cc)
	if err == nil {
		s.logf("leader %d proposes membership change %v at %d/%d", l.id, cc, index, term)
	} else {
		s.logf("leader %d refuses membership change %v: %v", l.id, cc, err)
	}
	l.settle()
	return err == nil
}

// readLeaseHolder picks a follower of l that holds a read lease now, or else one the
// membership names as a holder, or nil.
func (s *simulation) readLeaseHolder(l *simNode) *simNode {
	var holding, named []*simNode
	for _, n := range s.upFollowers(l) {
		if s.inv.nodes[n.idx].holder.open {
			holding = append(holding, n)
		} else if slices.Contains(l.r.ConfState().ReadLeaseHolders, n.id) {
			named = append(named, n)
		}
	}
	switch {
	case len(holding) > 0:
		return holding[s.rng.IntN(len(holding))]
	case len(named) > 0:
		return named[s.rng.IntN(len(named))]
	}
	return nil
}

// holderAttack goes after a read-lease holder of the current leader, while clients keep
// writing and reading there:
//   - cut it off from the leader both ways, or one way: writes must wait for its lease to run
//     out, and it must stop answering by then;
//   - hold the leader's messages to it for about a lease (as a paused process's socket
//     does): grants arrive long after they were sent;
//   - lose most of the leader's messages to it: it holds entries it does not know are
//     committed, while its lease runs on from the grants that do arrive;
//   - hand leadership to another node while holders hold leases, cutting the holder off from
//     the new leader.
func (s *simulation) holderAttack() {
	l := s.currentLeader()
	if l == nil {
		return
	}
	h := s.readLeaseHolder(l)
	if h == nil {
		s.changeHolders()
		return
	}
	s.stats.holderAttacks++
	d := s.randDuration(s.maxLease()/2, 2*s.p.electionMax)
	switch s.rng.IntN(5) {
	case 0:
		s.logf("holder attack: read-lease holder %d cut off from leader %d for %v", h.id, l.id, d)
		s.block([]int{l.idx}, []int{h.idx}, d)
		s.block([]int{h.idx}, []int{l.idx}, d)
	case 1:
		if s.rng.IntN(2) == 0 {
			s.logf("holder attack: leader %d's messages to holder %d cut for %v", l.id, h.id, d)
			s.block([]int{l.idx}, []int{h.idx}, d)
		} else {
			s.logf("holder attack: holder %d's answers to leader %d cut for %v", h.id, l.id, d)
			s.block([]int{h.idx}, []int{l.idx}, d)
		}
	case 2:
		extra := s.randDuration(s.maxLease()/2, 3*s.maxLease()/2)
		s.logf("holder attack: leader %d's messages to holder %d held %v for %v", l.id, h.id, extra, d)
		s.extraDelay[l.idx][h.idx] += extra
		s.after(d, "fault", 0, func() {
			if !s.healed {
				s.extraDelay[l.idx][h.idx] -= extra
			}
		})
	case 3:
		loss := 0.5 + 0.4*s.rng.Float64()
		s.logf("holder attack: leader %d's messages to holder %d lost at %g for %v", l.id, h.id, loss, d)
		s.linkLoss[l.idx][h.idx] += loss
		s.after(d, "fault", 0, func() {
			if !s.healed {
				s.linkLoss[l.idx][h.idx] -= loss
			}
		})
	default:
		var to *simNode
		for _, i := range s.rng.Perm(len(s.nodes)) {
			if n := s.nodes[i]; n != l && n != h && n.r != nil && slices.Contains(l.r.ConfState().Voters, n.id) {
				to = n
				break
			}
		}
		if to == nil {
			return
		}
		s.logf("holder attack: leader %d hands over to %d while holder %d is cut off from it for %v", l.id, to.id, h.id, d)
		s.block([]int{to.idx}, []int{h.idx}, d)
		s.block([]int{h.idx}, []int{to.idx}, d)
		s.transferTo(l, to)
	}
}
