package raft

import (
	"time"
)

// Fault injection. Faults come at random intervals during the client phase, each from the
// run's mix; each heals (or restarts) on its own after a while, and everything heals at the
// end of the client phase.

func (s *simulation) scheduleFaults() {
	f := s.p.faults
	if len(f.names()) == 0 {
		return
	}
	var next func()
	next = func() {
		if s.now >= s.clientsStop || s.healed {
			return
		}
		s.injectFault()
		s.after(s.randDuration(f.every/2, f.every*3/2), "fault", 0, next)
	}
	s.schedule(2*s.p.electionMax, "fault", 0, next)
}

func (s *simulation) injectFault() {
	f := s.p.faults
	var pick []func()
	add := func(on bool, fn func()) {
		if on {
			pick = append(pick, fn)
		}
	}
	add(f.partition, s.partitionRandom)
	add(f.asymmetric, s.partitionOneWay)
	add(f.isolateLeader, s.isolateLeader)
	add(f.crash, s.crashRandom)
	add(f.crashWindow, s.armCrashWindow)
	add(f.transfer, s.transferLeadership)
	add(f.campaign, s.forceCampaign)
	add(f.leaseHunt, func() { s.leaseHuntArmed = true })
	add(f.restartAll, s.restartAll)
	pick[s.rng.IntN(len(pick))]()
}

// block cuts the links from every node in from to every node in to, until heal.
func (s *simulation) block(from, to []int, healAfter time.Duration) {
	s.stats.partitions++
	for _, a := range from {
		for _, b := range to {
			if a != b {
				s.blocked[a][b]++
			}
		}
	}
	s.after(healAfter, "fault", 0, func() {
		if s.healed {
			return // everything is already up
		}
		for _, a := range from {
			for _, b := range to {
				if a != b {
					s.blocked[a][b]--
				}
			}
		}
		s.logf("links %v → %v heal", ids(from), ids(to))
	})
}

func ids(idx []int) []int {
	out := make([]int, len(idx))
	for i, x := range idx {
		out[i] = x + 1
	}
	return out
}

func (s *simulation) faultDuration() time.Duration {
	return s.randDuration(s.p.electionMin/2, 4*s.p.electionMax)
}

// partitionRandom splits the cluster in two, both directions.
func (s *simulation) partitionRandom() {
	perm := s.rng.Perm(len(s.nodes))
	k := 1 + s.rng.IntN(len(s.nodes)-1)
	a, b := perm[:k], perm[k:]
	d := s.faultDuration()
	s.logf("partition %v | %v for %v", ids(a), ids(b), d)
	s.block(a, b, d)
	s.block(b, a, d)
}

// partitionOneWay drops one direction only: a pair, or everything a node sends or receives.
func (s *simulation) partitionOneWay() {
	n := len(s.nodes)
	x := s.rng.IntN(n)
	others := make([]int, 0, n-1)
	for i := range n {
		if i != x {
			others = append(others, i)
		}
	}
	d := s.faultDuration()
	switch s.rng.IntN(3) {
	case 0:
		y := others[s.rng.IntN(len(others))]
		s.logf("one-way cut %d → %d for %v", x+1, y+1, d)
		s.block([]int{x}, []int{y}, d)
	case 1:
		s.logf("node %d cannot send for %v", x+1, d)
		s.block([]int{x}, others, d)
	default:
		s.logf("node %d cannot receive for %v", x+1, d)
		s.block(others, []int{x}, d)
	}
}

// currentLeader is the up node that leads the highest term, or nil.
func (s *simulation) currentLeader() *simNode {
	var best *simNode
	for _, n := range s.nodes {
		o := s.inv.nodes[n.idx]
		if n.core != nil && o.role == Leader && (best == nil || o.term > s.inv.nodes[best.idx].term) {
			best = n
		}
	}
	return best
}

func (s *simulation) isolateLeader() {
	l := s.currentLeader()
	if l == nil {
		s.partitionRandom()
		return
	}
	var others []int
	for _, n := range s.nodes {
		if n != l {
			others = append(others, n.idx)
		}
	}
	d := s.faultDuration()
	switch s.rng.IntN(4) {
	case 0:
		s.logf("leader %d cannot send for %v", l.id, d)
		s.block([]int{l.idx}, others, d)
	case 1:
		s.logf("leader %d cannot receive for %v", l.id, d)
		s.block(others, []int{l.idx}, d)
	default:
		s.logf("leader %d isolated for %v", l.id, d)
		s.block([]int{l.idx}, others, d)
		s.block(others, []int{l.idx}, d)
	}
}

// crashRandom crashes a node (the leader half the time); it restarts on its own.
func (s *simulation) crashRandom() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if l := s.currentLeader(); l != nil && s.rng.IntN(2) == 0 {
		n = l
	}
	if n.core == nil {
		return
	}
	s.crash(n, "fault")
	s.scheduleRestart(n)
}

// scheduleRestart brings n back after a downtime from instant to several election timeouts.
func (s *simulation) scheduleRestart(n *simNode) {
	incarnation := n.incarnation
	var down time.Duration
	switch s.rng.IntN(3) {
	case 0:
		down = s.randDuration(10*time.Microsecond, s.p.heartbeat)
	default:
		down = s.randDuration(s.p.electionMin/5, 3*s.p.electionMax)
	}
	s.after(down, "restart", n.id, func() {
		if n.incarnation == incarnation && n.core == nil {
			s.start(n)
		}
	})
}

// armCrashWindow makes a node crash right after its next persist completes, before it
// sends what depended on it (votes, acknowledgements); half the time instead it crashes
// while a persist is in flight, losing it.
func (s *simulation) armCrashWindow() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if n.core == nil {
		return
	}
	if s.rng.IntN(2) == 0 {
		s.logf("node %d will crash after its next persist, before sending", n.id)
		n.crashAfterPersist = true
		// The crash happens inside the persist; the restart is scheduled by a watcher.
		var watch func()
		deadline := s.now + 4*s.p.electionMax
		incarnation := n.incarnation
		watch = func() {
			if n.incarnation != incarnation {
				s.scheduleRestart(n)
				return
			}
			if s.now < deadline && !s.healed {
				s.after(s.p.heartbeat/4, "check", 0, watch)
			} else {
				n.crashAfterPersist = false
			}
		}
		s.after(s.p.heartbeat/4, "check", 0, watch)
		return
	}
	if n.readyBusy {
		s.crash(n, "crash with a persist in flight")
		s.scheduleRestart(n)
		return
	}
	// Wait for a persist to be in flight.
	deadline := s.now + 2*s.p.electionMax
	var watch func()
	watch = func() {
		if n.core == nil || s.healed {
			return
		}
		if n.readyBusy {
			s.crash(n, "crash with a persist in flight")
			s.scheduleRestart(n)
			return
		}
		if s.now < deadline {
			s.after(s.randDuration(10*time.Microsecond, s.p.fsyncMax), "check", 0, watch)
		}
	}
	watch()
}

// restartAll crashes every node at once (a power cut) and restarts each after its own
// delay: the cluster comes back from disks alone, every node assuming an unknown lease.
func (s *simulation) restartAll() {
	s.logf("every node crashes")
	for _, n := range s.nodes {
		if n.core != nil {
			s.crash(n, "restart-all")
			s.scheduleRestart(n)
		}
	}
}

func (s *simulation) transferLeadership() {
	l := s.currentLeader()
	if l == nil {
		return
	}
	to := s.nodes[s.rng.IntN(len(s.nodes))]
	if to == l {
		return
	}
	s.logf("leader %d transfers leadership to %d", l.id, to.id)
	s.stats.transfers++
	l.tickNow()
	if err := l.core.TransferLeadership(to.id); err != nil {
		s.fail("invariant", "leader %d: TransferLeadership(%d): %v", l.id, to.id, err)
		return
	}
	l.settle()
}

func (s *simulation) forceCampaign() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if n.core == nil {
		return
	}
	s.logf("node %d campaigns now", n.id)
	n.tickNow()
	if err := n.core.Campaign(); err != nil {
		s.fail("invariant", "node %d: Campaign: %v", n.id, err)
		return
	}
	n.settle()
}

// leaseHunt attacks the lease rule right after leader l renewed its lease: l is cut off
// from everyone, enough of its followers crash and restart at once (forgetting that they
// heard from l) to form a quorum with a campaigner, and the campaigner campaigns now. A
// correct core makes the new leader wait out l's lease; one that skips the wait serves
// lease reads on both sides at once, and clients reading from l see old values.
func (s *simulation) leaseHunt(l *simNode) {
	if l.core == nil || s.healed || s.now >= s.clientsStop {
		return
	}
	s.stats.leaseHunts++
	var followers []*simNode
	for _, n := range s.nodes {
		if n != l && n.core != nil {
			followers = append(followers, n)
		}
	}
	quorum := len(s.nodes)/2 + 1
	if len(followers) < quorum {
		return
	}
	s.rng.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
	campaigner, forgetful := followers[0], followers[1:quorum]
	var others []int
	for _, n := range s.nodes {
		if n != l {
			others = append(others, n.idx)
		}
	}
	d := 3 * s.p.electionMax
	s.logf("lease attack: leader %d renewed; isolating it for %v, restarting %v, node %d campaigns", l.id, d, nodeIDs(forgetful), campaigner.id)
	s.block([]int{l.idx}, others, d)
	s.block(others, []int{l.idx}, d)
	restart := time.Duration(0)
	for _, n := range forgetful {
		s.crash(n, "lease attack")
		restart = max(restart, s.randDuration(10*time.Microsecond, 300*time.Microsecond))
		s.after(restart, "restart", n.id, func() { s.start(n) })
	}
	s.after(restart+s.randDuration(10*time.Microsecond, 200*time.Microsecond), "fault", campaigner.id, func() {
		if campaigner.core == nil {
			return
		}
		campaigner.tickNow()
		if err := campaigner.core.Campaign(); err != nil {
			s.fail("invariant", "node %d: Campaign: %v", campaigner.id, err)
			return
		}
		campaigner.settle()
	})
}

func nodeIDs(ns []*simNode) []uint64 {
	out := make([]uint64, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	return out
}
