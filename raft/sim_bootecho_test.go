package raft

import (
	"slices"
	"time"
)

// The boot-echo attack: replies to what a leader sent before it restarted reach it after the
// restart, on a clock that now counts from another origin, while it leads a newer term.
//
// A machine that reboots restarts its monotonic clock near zero, and a process that restarts
// may get a clock of its own: readings from before mean nothing on the new clock, and one
// that happens to fall just below the new clock's now looks recent. Messages outlive their
// sender in queues (a stalled router, a peer's socket). The attack builds the one situation
// where an old reading, echoed back, could date a lease (doc.go, "Clock drift and clock
// origins"; docs/lease-knobs.md, staleReplyNoEcho):
//
//  1. The leader crashes and restarts (boot one), and is elected while a quorum less one of
//     its voters (the echoers) neither hears it nor votes: what it sends them is held in the
//     network. A fresh boot numbers its rounds from the start, so its first messages carry
//     round 1.
//  2. Boot one crashes early, once its term's first entry is on its disk, and the node
//     restarts (boot two) with a clock set so that boot one's readings will look recent at
//     the moment their echoes come back. It is elected again, in a newer term, and takes its
//     lease.
//  3. Its messages stop getting through, and its voters restart (they forget it, and assume
//     a lease from their start). Then the held messages reach the echoers, which answer them
//     as messages of an older term. A core that echoed their SentAt and Round in that answer
//     would let the leader date an acknowledgement later than anything it sent since it was
//     cut off, and hold a lease past what any voter recorded.
//  4. The leader is cut off both ways and a voter campaigns: it waits out what the voters
//     recorded, and commits; the invariants check that no two leases overlap.
type bootEcho struct {
	leader            *simNode
	echoers, voters   []*simNode
	term1             uint64        // boot one's term
	noop              uint64        // an index boot one must have persisted before it dies
	firstSent         time.Duration // when boot one sent its first held leader message, true time
	echoAt            time.Duration // true time at which boot one's first held reading looks current on boot two's clock
	deadline          time.Duration
	cutDone, isolated bool
}

// heldMessage is a message a held link keeps until it is released.
type heldMessage struct {
	from, to *simNode
	m        Message
	snap     any
	sentAt   time.Duration
}

// bootEchoAttack starts a boot-echo attack on the current leader.
func (s *simulation) bootEchoAttack() {
	l := s.currentLeader()
	if l == nil || s.bootEcho != nil || s.soleVoter != nil || s.attack != nil || s.leaseHuntArmed || s.healed || s.now >= s.clientsStop {
		return
	}
	cs := l.r.ConfState()
	if len(cs.VotersOutgoing) > 0 || !slices.Contains(cs.Voters, l.id) {
		return
	}
	var voters []*simNode
	for _, id := range cs.Voters {
		n := s.node(id)
		if n == nil || (n.r == nil && n != l) {
			return // every voter up: the attack needs them all
		}
		if n != l {
			voters = append(voters, n)
		}
	}
	quorum := len(cs.Voters)/2 + 1
	if len(voters) < quorum {
		return
	}
	s.rng.Shuffle(len(voters), func(i, j int) { voters[i], voters[j] = voters[j], voters[i] })
	a := &bootEcho{leader: l, echoers: voters[:quorum-1], voters: voters}
	s.bootEcho = a
	a.deadline = s.now + 20*s.p.electionMax
	s.attackUntil = a.deadline
	// No writes: the logs stay as long as each other, so that the leader wins its elections.
	s.writesPausedUntil = a.deadline
	s.stats.bootEchoes++
	s.logf("boot-echo attack on leader %d: echoers %v", l.id, nodeIDs(a.echoers))
	s.crash(l, "boot-echo attack")
	s.after(s.randDuration(10*time.Microsecond, s.p.heartbeat), "restart", l.id, func() {
		if s.bootEcho != a || s.healed {
			return
		}
		for _, e := range a.echoers {
			s.holding[l.idx][e.idx] = true
		}
		// Boot one's clock counts from another origin too, far enough from zero that boot
		// two's can start below it.
		origin := l.localNow() + s.randDuration(0, s.p.heartbeat)
		l.nextClock = &origin
		s.start(l)
		s.bootEchoCampaign(a, func() { s.bootEchoFirstTerm(a) })
	})
}

// bootEchoCampaign has the attacked node campaign, once its voters have stopped counting on
// the leader they last heard, until it leads; then calls won. Anyone else winning ends the
// attack.
func (s *simulation) bootEchoCampaign(a *bootEcho, won func()) {
	l := a.leader
	start := s.now
	for _, v := range a.voters {
		start = max(start, s.now+s.stickyFor(v))
	}
	var poll func()
	poll = func() {
		if s.bootEcho != a || s.healed || l.r == nil || s.now > a.deadline {
			s.endBootEcho(a, "the attacked node is down or the time is up")
			return
		}
		if other := s.currentLeader(); other != nil && other != l {
			s.endBootEcho(a, "another node won")
			return
		}
		if st := l.r.Status(); st.Role == Leader {
			won()
			return
		}
		if s.now >= start && l.r.Status().Role == Follower {
			l.tickNow()
			if err := l.r.Campaign(); err != nil {
				s.fail("invariant", "node %d: Campaign: %v", l.id, err)
				return
			}
			l.settle()
		}
		s.after(s.p.heartbeat/4, "fault", l.id, poll)
	}
	s.after(max(0, start-s.now), "fault", l.id, poll)
}

// bootEchoFirstTerm waits for boot one to hold its term's first entry on disk, and for each
// echoer to have a message of its term held, then crashes it and restarts it on a clock that
// makes the held readings look current later.
func (s *simulation) bootEchoFirstTerm(a *bootEcho) {
	l := a.leader
	a.term1 = l.r.Status().Term
	a.noop = l.r.log.lastIndex()
	var poll func()
	poll = func() {
		if s.bootEcho != a || s.healed || l.r == nil || s.now > a.deadline || l.r.Status().Term != a.term1 {
			s.endBootEcho(a, "boot one lost its term")
			return
		}
		if l.r.log.persisted < a.noop || !s.heldFromTerm(a) {
			s.after(s.p.heartbeat/4, "fault", l.id, poll)
			return
		}
		first := time.Duration(-1)
		var reading time.Duration
		for _, h := range s.held {
			if h.from == l && (first < 0 || h.sentAt < first) && echoed(h.m) && h.m.Term == a.term1 {
				first, reading = h.sentAt, h.m.SentAt
			}
		}
		s.crash(l, "boot-echo attack: boot one dies early")
		a.firstSent = first
		for _, e := range a.echoers {
			s.holding[l.idx][e.idx] = false
		}
		// Boot two must be elected and hold its lease before the echoes come back: its voters'
		// stickiness, the leases they and its own start assume, a few round trips, and some
		// slack. Its clock is set so that boot one's first held reading is current then.
		maxOneWay := s.maxOneWay()
		ready := s.now + 2*s.p.heartbeat
		for _, v := range a.voters {
			ready = max(ready, s.now+s.stickyFor(v))
		}
		lease := time.Duration(float64(s.maxLease()) / (1 - s.p.drift) / slices.Min(s.p.rates))
		ready += lease + 8*maxOneWay + 2*s.p.heartbeat
		a.echoAt = ready + s.randDuration(lease/2, lease+s.p.electionMax/2)
		restartIn := s.randDuration(10*time.Microsecond, s.p.heartbeat)
		s.after(restartIn, "restart", l.id, func() {
			if s.bootEcho != a || s.healed {
				return
			}
			// At echoAt the new clock reads what boot one's read at first.
			origin := reading - time.Duration(float64(a.echoAt-s.now)*l.clock.rate)
			if origin < time.Millisecond {
				s.endBootEcho(a, "boot one's clock is too close to zero")
				s.start(l)
				return
			}
			l.nextClock = &origin
			s.logf("boot-echo attack: node %d restarts on a clock from local %v (boot one's reading %v of true %v looks current at true %v)",
				l.id, origin, reading, first, a.echoAt)
			s.start(l)
			s.bootEchoCampaign(a, func() { s.bootEchoSecondTerm(a) })
		})
	}
	poll()
}

// heldFromTerm reports whether every echoer has a leader message of boot one's term held.
func (s *simulation) heldFromTerm(a *bootEcho) bool {
	for _, e := range a.echoers {
		if !slices.ContainsFunc(s.held, func(h heldMessage) bool {
			return h.from == a.leader && h.to == e && echoed(h.m) && h.m.Term == a.term1
		}) {
			return false
		}
	}
	return true
}

// echoed reports whether an answer to m echoes its SentAt and Round.
func echoed(m Message) bool { return m.Type == MsgApp || m.Type == MsgHeartbeat }

// bootEchoSecondTerm runs once boot two leads: some time before the echoes come back it is
// cut off from sending and its voters restart; then the held messages are released so that
// their answers reach it about when their readings look current; then it is isolated and a
// voter campaigns.
func (s *simulation) bootEchoSecondTerm(a *bootEcho) {
	l := a.leader
	term := l.r.Status().Term
	lease := l.cfg.LeaseDuration
	maxOneWay := s.maxOneWay()
	// The cut comes early enough that the voters' last records of boot two end before a
	// lease dated by the echo would, by more than the drift margin and a round trip.
	margin := time.Duration(float64(lease)*s.p.drift) + 4*maxOneWay
	if margin >= lease {
		s.endBootEcho(a, "round trips too long for this lease")
		return
	}
	cutAt := a.echoAt - s.randDuration(margin, lease)
	if cutAt <= s.now {
		s.endBootEcho(a, "boot two was elected too late")
		return
	}
	s.after(cutAt-s.now, "fault", l.id, func() {
		if s.bootEcho != a || s.healed || l.r == nil {
			return
		}
		if st := l.r.Status(); st.Role != Leader || st.Term != term || st.Lease != LeaseHeld {
			s.endBootEcho(a, "boot two holds no lease at the cut")
			return
		}
		var others []int
		for _, n := range s.nodes {
			if n != l {
				others = append(others, n.idx)
			}
		}
		s.logf("boot-echo attack: leader %d (term %d) can no longer send; its voters %v restart", l.id, term, nodeIDs(a.voters))
		s.block([]int{l.idx}, others, 4*s.p.electionMax)
		a.cutDone = true
		for _, v := range a.voters {
			if v.r != nil {
				s.crash(v, "boot-echo attack")
				s.after(s.randDuration(10*time.Microsecond, 300*time.Microsecond), "restart", v.id, func() { s.start(v) })
			}
		}
		// Each held message leaves so that its answer comes back about when its reading
		// looks current on boot two's clock: the first at echoAt, later ones as much later
		// as they were sent.
		held := s.held
		s.held = nil
		isolateAt := a.echoAt
		for _, h := range held {
			if h.from != l {
				s.held = append(s.held, h)
				continue
			}
			rt := s.p.oneWay[l.idx][h.to.idx] + s.p.oneWay[h.to.idx][l.idx]
			current := a.echoAt + (h.sentAt - a.firstSent)
			at := max(s.now, current-rt+s.randDuration(0, rt/4))
			isolateAt = max(isolateAt, at+rt)
			e := s.after(at-s.now+s.p.oneWay[l.idx][h.to.idx], "deliver", h.to.id, func() {
				if h.to.r != nil {
					s.arrive(h.from, h.to, h.m, h.snap)
				}
			})
			e.msg = &h.m
		}
		isolateAt += maxOneWay/4 + 2*s.p.jitter
		s.after(isolateAt-s.now, "fault", l.id, func() {
			if s.bootEcho != a || s.healed {
				return
			}
			var others []int
			for _, n := range s.nodes {
				if n != l {
					others = append(others, n.idx)
				}
			}
			s.logf("boot-echo attack: leader %d isolated; a voter campaigns", l.id)
			s.block(others, []int{l.idx}, 4*s.p.electionMax)
			a.isolated = true
			s.bootEchoNewLeader(a)
		})
	})
}

// bootEchoNewLeader has the most up-to-date voter campaign until one leads, then ends the
// attack with writes back on, so that the new leader commits them.
func (s *simulation) bootEchoNewLeader(a *bootEcho) {
	var poll func()
	poll = func() {
		if s.bootEcho != a || s.healed || s.now > a.deadline {
			s.endBootEcho(a, "no new leader in time")
			return
		}
		if other := s.currentLeader(); other != nil && other != a.leader {
			s.endBootEcho(a, "a new leader")
			return
		}
		var best *simNode
		for _, v := range a.voters {
			if v.r != nil && (best == nil || compareLogs(v, best) > 0) {
				best = v
			}
		}
		if best != nil && best.r.Status().Role == Follower {
			best.tickNow()
			if err := best.r.Campaign(); err != nil {
				s.fail("invariant", "node %d: Campaign: %v", best.id, err)
				return
			}
			best.settle()
		}
		s.after(s.p.heartbeat/2, "fault", 0, poll)
	}
	poll()
}

// endBootEcho ends the attack: held links let go (what they held is lost), writes resume,
// other faults may start again.
func (s *simulation) endBootEcho(a *bootEcho, why string) {
	if s.bootEcho != a {
		return
	}
	s.logf("boot-echo attack ends: %s", why)
	s.bootEcho = nil
	for i := range s.holding {
		clear(s.holding[i])
	}
	s.held = nil
	s.writesPausedUntil = min(s.writesPausedUntil, s.now)
	s.attackUntil = s.now + s.p.electionMax
}

func (s *simulation) maxOneWay() time.Duration {
	m := time.Duration(0)
	for _, row := range s.p.oneWay {
		m = max(m, slices.Max(row))
	}
	return m
}
