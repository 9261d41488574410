package raft

import (
	"slices"
	"time"
)

// The sole-voter attack: a cluster shrinks to one voter, which is then replaced, and the old
// voter restarts and stands for election before it has applied what its log already says
// is committed (doc.go, "Elections and the Ready"; docs/lease-knobs.md, electAfterPersist).
//
// A node that restarts rebuilds its membership from its snapshot and the changes it had
// applied; what it replays comes to it in its first Ready. Its election timer may fire
// before it has applied them: replaying a long log takes time. A node that is the one voter
// of the membership it rebuilt needs nobody's vote, so only its refusal to campaign while a
// committed change is unapplied keeps it from leading a term by a membership the cluster
// left, alongside the leader of the one it is in now.
//
//  1. The leader removes every other voter, one change at a time, and takes a snapshot: its
//     disk now says that it is the only voter.
//  2. A spare joins as a learner, catches up, and replaces it in one change: the old voter
//     applies its removal and steps down, and the new one leads alone.
//  3. The old voter crashes, restarts, and campaigns at once, before its first Ready (the
//     committed replacement) is applied.
type soleVoter struct {
	old, spare *simNode
	deadline   time.Duration
}

// soleVoterAttack starts a sole-voter attack on the current leader.
func (s *simulation) soleVoterAttack() {
	l := s.currentLeader()
	if l == nil || s.soleVoter != nil || s.bootEcho != nil || s.attack != nil || s.healed || s.now >= s.clientsStop {
		return
	}
	var spare *simNode
	for _, n := range s.nodes {
		if n.outside && !n.joined {
			spare = n
			break
		}
	}
	if spare == nil || l.r.conf.joint() {
		return
	}
	a := &soleVoter{old: l, spare: spare, deadline: s.now + 30*s.p.electionMax}
	s.soleVoter = a
	s.attackUntil = a.deadline
	s.stats.soleVoters++
	s.logf("sole-voter attack: leader %d removes the other voters", l.id)
	var poll func()
	poll = func() {
		if s.soleVoter != a || s.healed || s.now > a.deadline || l.r == nil || l.r.Status().Role != Leader {
			s.endSoleVoter(a, "the leader is gone or the time is up")
			return
		}
		cs := l.r.ConfState()
		if len(cs.VotersOutgoing) > 0 || l.r.pendingConf > l.r.log.applied {
			s.after(s.p.heartbeat, "fault", l.id, poll)
			return
		}
		if i := slices.IndexFunc(cs.Voters, func(id uint64) bool { return id != l.id }); i >= 0 {
			s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{{ConfRemove, cs.Voters[i]}}})
			s.after(s.p.heartbeat, "fault", l.id, poll)
			return
		}
		if l.appliedIndex > l.disk.snapshot.Index {
			if meta, err := l.compact(); err != nil {
				s.fail("invariant", "node %d: Compact(%+v): %v", l.id, meta, err)
				return
			}
		}
		if !s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{{ConfAddLearner, spare.id}}}) {
			s.after(s.p.heartbeat, "fault", l.id, poll)
			return
		}
		s.logf("sole-voter attack: leader %d is the only voter; spare node %d joins to replace it", l.id, spare.id)
		spare.joined, spare.outside = true, false
		s.start(spare)
		s.soleVoterReplace(a)
	}
	poll()
}

// soleVoterReplace has the old voter hand its place to the spare once the spare has caught
// up, then restarts the old voter once the spare leads.
func (s *simulation) soleVoterReplace(a *soleVoter) {
	l := a.old
	replaced := false
	var poll func()
	poll = func() {
		if s.soleVoter != a || s.healed || s.now > a.deadline {
			s.endSoleVoter(a, "the time is up")
			return
		}
		if !replaced {
			if l.r == nil || l.r.Status().Role != Leader {
				s.endSoleVoter(a, "the old voter no longer leads")
				return
			}
			if l.r.pendingConf <= l.r.log.applied && s.proposeConfChange(l, ConfChange{Changes: []ConfChangeSingle{{ConfPromote, a.spare.id}, {ConfRemove, l.id}}}) {
				replaced = true
			}
			s.after(s.p.heartbeat, "fault", l.id, poll)
			return
		}
		if s.currentLeader() != a.spare || l.r == nil || l.r.memberIndex(l.id) >= 0 {
			s.after(s.p.heartbeat, "fault", l.id, poll)
			return
		}
		s.logf("sole-voter attack: node %d leads; the old voter %d restarts and campaigns at once", a.spare.id, l.id)
		s.crash(l, "sole-voter attack")
		s.after(s.randDuration(10*time.Microsecond, s.p.heartbeat), "restart", l.id, func() {
			s.start(l)
			if l.r != nil {
				l.tickNow()
				if err := l.r.Campaign(); err != nil {
					s.fail("invariant", "node %d: Campaign: %v", l.id, err)
					return
				}
				l.settle()
			}
			s.endSoleVoter(a, "done")
		})
	}
	poll()
}

func (s *simulation) endSoleVoter(a *soleVoter, why string) {
	if s.soleVoter != a {
		return
	}
	s.logf("sole-voter attack ends: %s", why)
	s.soleVoter = nil
	s.attackUntil = s.now + s.p.electionMax
}
