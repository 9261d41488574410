package raft

import (
	"cmp"
	"slices"
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
	if s.now < s.attackUntil {
		return // a lease attack is under way: other faults would only spoil it
	}
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
	add(f.leaseHunt, s.prepareLeaseAttack)
	add(f.restartAll, s.restartAll)
	add(f.slowLink, s.slowLink)
	add(f.slowDisk, s.slowDisk)
	add(f.isolateNewLeader, s.leaderChurn)
	add(f.holderChange, s.changeHolders)
	add(f.holderAttack, s.holderAttack)
	add(f.membership, s.changeMembership)
	add(f.bootEcho, s.bootEchoAttack)
	add(f.soleVoter, s.soleVoterAttack)
	switch x := s.rng.Float64(); {
	case f.leaseHunt && x < f.attackShare:
		s.prepareLeaseAttack()
		return
	case f.isolateNewLeader && x < f.attackShare+f.churnShare:
		s.leaderChurn()
		return
	case f.holderAttack && x < f.attackShare+f.churnShare+f.holderShare:
		s.holderAttack()
		return
	case f.membership && x < f.attackShare+f.churnShare+f.holderShare+f.membershipShare:
		s.changeMembership()
		return
	case f.bootEcho && x < f.attackShare+f.churnShare+f.holderShare+f.membershipShare+f.bootEchoShare:
		s.bootEchoAttack()
		return
	case f.soleVoter && x < f.attackShare+f.churnShare+f.holderShare+f.membershipShare+f.bootEchoShare+f.soleVoterShare:
		s.soleVoterAttack()
		return
	}
	pick[s.rng.IntN(len(pick))]()
}

// block cuts the links from every node in from to every node in to, until heal.
func (s *simulation) block(from, to []int, healAfter time.Duration) (healNow func()) {
	s.stats.partitions++
	for _, a := range from {
		for _, b := range to {
			if a != b {
				s.blocked[a][b]++
			}
		}
	}
	healed := false
	heal := func() {
		if s.healed || healed {
			return // everything is already up
		}
		healed = true
		for _, a := range from {
			for _, b := range to {
				if a != b {
					s.blocked[a][b]--
				}
			}
		}
		s.logf("links %v → %v heal", ids(from), ids(to))
	}
	s.after(healAfter, "fault", 0, heal)
	return heal
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
		if n.r != nil && o.role == Leader && (best == nil || o.term > s.inv.nodes[best.idx].term) {
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
	if n.r == nil {
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
		if n.incarnation == incarnation && n.r == nil {
			s.start(n)
		}
	})
}

// armCrashWindow makes a node crash right after its next persist completes, before it
// sends what depended on it (votes, acknowledgements); half the time instead it crashes
// while a persist is in flight, losing it.
func (s *simulation) armCrashWindow() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if n.r == nil {
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
	if n.held != nil {
		s.crash(n, "crash with a persist in flight")
		s.scheduleRestart(n)
		return
	}
	// Wait for a persist to be in flight.
	deadline := s.now + 2*s.p.electionMax
	var watch func()
	watch = func() {
		if n.r == nil || s.healed {
			return
		}
		if n.held != nil {
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
		if n.r != nil {
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
	s.transferTo(l, to)
	if s.rng.IntN(2) == 0 {
		// The old leader is cut off just as its TimeoutNow may be on the wire: it must have
		// given its lease up before, since it may not hear of the new term for a while.
		cut := s.randDuration(0, 2*s.p.oneWay[l.idx][to.idx]+s.p.jitter)
		s.after(cut, "fault", 0, func() {
			if s.healed {
				return
			}
			var others []int
			for _, n := range s.nodes {
				if n != l {
					others = append(others, n.idx)
				}
			}
			d := s.faultDuration()
			s.logf("old leader %d isolated for %v during its transfer", l.id, d)
			s.block([]int{l.idx}, others, d)
			s.block(others, []int{l.idx}, d)
		})
	}
}

func (s *simulation) transferTo(l, to *simNode) {
	if !slices.Contains(l.r.conf.voters, to.id) {
		return // only to a voter of the leader's membership
	}
	s.logf("leader %d transfers leadership to %d", l.id, to.id)
	s.stats.transfers++
	l.tickNow()
	if err := l.r.TransferLeadership(to.id); err != nil {
		s.fail("invariant", "leader %d: TransferLeadership(%d): %v", l.id, to.id, err)
		return
	}
	l.settle()
}

// maybeTransferWhileWaiting hands leadership on at once from a leader that is still waiting
// out an older lease, with that chance: the transferee must inherit what is left of the wait.
func (s *simulation) maybeTransferWhileWaiting(l *simNode, st Status) {
	if !s.p.faults.transfer || s.healed || s.now >= s.clientsStop || st.Lease != LeaseWaiting ||
		st.LeaseExpiry <= st.Now || s.rng.IntN(3) != 0 {
		return
	}
	to := s.nodes[s.rng.IntN(len(s.nodes))]
	if to == l {
		return
	}
	s.after(s.randDuration(0, s.p.heartbeat), "fault", l.id, func() {
		if l.r != nil && to.r != nil && l.r.Status().Role == Leader {
			s.transferTo(l, to)
		}
	})
}

func (s *simulation) forceCampaign() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if s.rng.IntN(2) == 0 {
		// Prefer a node that has lost its leader.
		for _, i := range s.rng.Perm(len(s.nodes)) {
			if c := s.nodes[i]; c.r != nil && c.r.Status().Leader == None {
				n = c
				break
			}
		}
	}
	if n.r == nil {
		return
	}
	s.logf("node %d campaigns now", n.id)
	n.tickNow()
	if err := n.r.Campaign(); err != nil {
		s.fail("invariant", "node %d: Campaign: %v", n.id, err)
		return
	}
	n.settle()
}

// attackVariant is how a lease attack gets its campaigner the votes it needs while the
// leader it attacks may still serve lease reads. Each variant leaves a different lease
// mechanism as the only thing between the two leaders.
type attackVariant uint8

const (
	// attackRestartVoters: the campaigner heard the renewal; its voters crash and restart,
	// forgetting the leader (the start-up assumption and vote reports cover it), some on a
	// shorter lease than the one they acknowledged (the persisted bound covers that).
	attackRestartVoters attackVariant = iota
	// attackLaggingCampaigner: the campaigner lost the leader in phase one, long enough for
	// its own record to run out (no writes meanwhile, so its log still wins votes); its voters
	// restart. Only their reports cover the lease.
	attackLaggingCampaigner
	// attackLaggingVoters: the voters lost the leader in phase one and vote without a
	// restart; the campaigner heard the renewal. Only its own record covers the lease; the
	// voters' last answers, slowed, reach the leader late.
	attackLaggingVoters
	// attackUnstickyVoters: nobody restarts or lags; the campaign comes once the voters'
	// own election timeouts (shorter than the leader's lease, with mixed timing) have passed.
	// Only the voters' records of the leader's longer lease cover it.
	attackUnstickyVoters
	attackVariants
)

var attackVariantNames = [...]string{"restart voters", "lagging campaigner", "lagging voters", "unsticky voters"}

// leaseAttack is a lease attack in preparation. For the lagging variants, its first phase cut
// the leader off from the lagging nodes (one way: they still answer it), long enough that
// they stopped refusing votes for it and their records of its lease ran out. The second
// phase starts at the leader's next renewal (leaseHunt).
type leaseAttack struct {
	variant attackVariant
	leader  *simNode
	lagging []*simNode
}

// prepareLeaseAttack starts a lease attack of a random variant on the current leader.
func (s *simulation) prepareLeaseAttack() {
	l := s.currentLeader()
	if l == nil || s.attack != nil || s.leaseHuntArmed {
		return
	}
	followers := s.upFollowers(l)
	quorum := len(s.nodes)/2 + 1
	if len(followers) < quorum {
		return
	}
	s.rng.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
	att := &leaseAttack{variant: attackVariant(s.rng.IntN(int(attackVariants))), leader: l}
	s.attack = att
	s.attackUntil = s.now + 4*s.p.electionMax
	// The attack picks a quiet moment: no writes from now until it is over, so that every
	// log is as long as every other and the campaigner can win its votes.
	quiet := 3*s.p.heartbeat + 3*s.p.electionMax
	switch att.variant {
	case attackLaggingCampaigner:
		att.lagging = followers[:1]
	case attackLaggingVoters:
		att.lagging = followers[:quorum-1]
	default:
		s.writesPausedUntil = s.now + quiet
		s.logf("lease attack (%s) on leader %d: writes pause", attackVariantNames[att.variant], l.id)
		s.after(3*s.p.heartbeat, "fault", 0, func() {
			if s.attack == att {
				s.leaseHuntArmed = true
			}
		})
		return
	}
	// Long enough for every lagging node's stickiness and its record of the leader's lease
	// to run out, on the slowest clock.
	lag := l.cfg.LeaseDuration
	for _, n := range att.lagging {
		lag = max(lag, n.cfg.ElectionTimeoutMin, n.cfg.LeaseDuration)
	}
	lag = time.Duration(float64(lag) * (1.05 + s.rng.Float64()/2) / slices.Min(s.p.rates))
	idx := make([]int, len(att.lagging))
	for i, n := range att.lagging {
		idx[i] = n.idx
	}
	// No writes meanwhile: the lagging nodes' logs stay as long as everyone's, so they can
	// still win votes, or vote, once they have stopped counting on the leader.
	s.writesPausedUntil = s.now + lag + quiet
	s.logf("lease attack (%s), phase one: leader %d's messages to %v cut for %v",
		attackVariantNames[att.variant], l.id, nodeIDs(att.lagging), lag)
	s.block([]int{l.idx}, idx, lag+4*s.p.electionMax)
	if att.variant == attackLaggingVoters && s.rng.IntN(2) == 0 {
		// Their last answers reach the leader only about when they have stopped counting on
		// it: an answer is dated by when the leader sent what it answers, never by when it
		// arrives.
		slow := time.Duration(float64(lag) * (0.8 + 0.4*s.rng.Float64()))
		s.logf("lease attack, phase one: answers from %v to leader %d slowed by %v", nodeIDs(att.lagging), l.id, slow)
		for _, i := range idx {
			s.extraDelay[i][l.idx] += slow
		}
		s.after(lag+4*s.p.electionMax, "fault", 0, func() {
			if !s.healed {
				for _, i := range idx {
					s.extraDelay[i][l.idx] -= slow
				}
			}
		})
	}
	s.after(lag, "fault", 0, func() {
		if s.attack == att {
			s.leaseHuntArmed = true
		}
	})
}

// upFollowers lists the nodes other than l that are up.
func (s *simulation) upFollowers(l *simNode) []*simNode {
	var out []*simNode
	for _, n := range s.nodes {
		if n != l && n.r != nil {
			out = append(out, n)
		}
	}
	return out
}

// maxLease is the longest lease any node may run with.
func (s *simulation) maxLease() time.Duration {
	longest := s.p.lease
	for _, t := range s.p.profiles {
		longest = max(longest, t.lease)
	}
	return longest
}

// leaseHunt attacks the lease rule right after leader l renewed its lease: l is cut off
// from everyone and a campaigner asks for votes, at once or at some moment within l's lease,
// from voters its variant made willing to vote. A correct core makes the new leader wait out
// l's lease; a core that lost one of the lease mechanisms lets both serve lease reads, or
// acknowledges a write that l's lease reads miss.
func (s *simulation) leaseHunt(l *simNode) {
	att := s.attack
	s.attack = nil
	if l.r == nil || s.healed || s.now >= s.clientsStop {
		return
	}
	if att == nil || att.leader != l {
		att = &leaseAttack{variant: attackRestartVoters, leader: l}
	}
	followers := s.upFollowers(l)
	quorum := len(s.nodes)/2 + 1
	if len(followers) < quorum {
		return
	}
	s.rng.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
	// The most up-to-date logs first: a campaigner behind its voters would lose.
	slices.SortStableFunc(followers, func(a, b *simNode) int { return compareLogs(b, a) })
	var campaigner *simNode
	var voters, restart []*simNode
	lease := l.cfg.LeaseDuration
	wait := time.Duration(0)
	switch s.rng.IntN(3) {
	case 1:
		wait = s.randDuration(0, lease)
	case 2:
		// Near the end of l's lease, where a missing drift margin shows.
		edge := time.Duration(float64(lease) * (1 - s.p.drift))
		wait = s.randDuration(edge*9/10, lease*11/10)
	}
	rest := func(exclude ...*simNode) []*simNode {
		var out []*simNode
		for _, n := range followers {
			if !slices.Contains(exclude, n) {
				out = append(out, n)
			}
		}
		return out
	}
	switch att.variant {
	case attackRestartVoters:
		campaigner = followers[0]
		voters = followers[1:quorum]
		restart = voters
	case attackLaggingCampaigner:
		campaigner = att.lagging[0]
		voters = rest(campaigner)[:quorum-1]
		restart = voters
	case attackLaggingVoters:
		voters = att.lagging
		others := rest(voters...)
		if len(others) == 0 {
			return
		}
		campaigner = others[0]
	case attackUnstickyVoters:
		// An up-to-date follower campaigns once the voters that stop counting on l first
		// have.
		campaigner = followers[0]
		voters = rest(campaigner)
		slices.SortStableFunc(voters, func(a, b *simNode) int { return int(s.stickyFor(a) - s.stickyFor(b)) })
		voters = voters[:quorum-1]
		wait = s.stickyFor(voters[len(voters)-1]) + s.randDuration(0, lease/4)
	}
	s.stats.leaseHunts++
	var others []int
	for _, n := range s.nodes {
		if n != l {
			others = append(others, n.idx)
		}
	}
	d := 3 * s.p.electionMax
	s.attackUntil = s.now + d
	s.logf("lease attack (%s): leader %d renewed; isolating it for %v, lagging %v, restarting %v, node %d campaigns in %v",
		attackVariantNames[att.variant], l.id, d, nodeIDs(att.lagging), nodeIDs(restart), campaigner.id, wait)
	s.block([]int{l.idx}, others, d)
	s.block(others, []int{l.idx}, d)
	restartAt := time.Duration(0)
	for _, n := range restart {
		s.crash(n, "lease attack")
		if len(s.p.profiles) > 0 && s.rng.IntN(2) == 0 {
			// A rolling change that shortens the lease: the node comes back with a shorter
			// lease than the one it acknowledged.
			for _, i := range s.rng.Perm(len(s.p.profiles)) {
				if t := s.p.profiles[i]; t.lease < lease {
					n.nextTiming = &t
					break
				}
			}
		}
		restartAt = max(restartAt, s.randDuration(10*time.Microsecond, 300*time.Microsecond))
		s.after(restartAt, "restart", n.id, func() { s.start(n) })
	}
	s.after(max(wait, restartAt+s.randDuration(10*time.Microsecond, 200*time.Microsecond)), "fault", campaigner.id, func() {
		if campaigner.r == nil {
			return
		}
		campaigner.tickNow()
		if err := campaigner.r.Campaign(); err != nil {
			s.fail("invariant", "node %d: Campaign: %v", campaigner.id, err)
			return
		}
		campaigner.settle()
	})
}

// compareLogs orders nodes by how up to date their logs are (Raft §5.4.1).
func compareLogs(a, b *simNode) int {
	at, ai := a.r.log.lastTerm(), a.r.log.lastIndex()
	bt, bi := b.r.log.lastTerm(), b.r.log.lastIndex()
	switch {
	case at != bt:
		return cmp.Compare(at, bt)
	}
	return cmp.Compare(ai, bi)
}

// stickyFor is how long, in true time from now, n keeps refusing votes after hearing from its
// leader now: its minimum election timeout on its clock.
func (s *simulation) stickyFor(n *simNode) time.Duration {
	return time.Duration(float64(n.cfg.ElectionTimeoutMin)/n.clock.rate) + time.Microsecond
}

// slowDisk makes one node's fsyncs slow for a while (the leader's, half the time): its
// followers persist and answer before it has persisted what it sent them.
func (s *simulation) slowDisk() {
	n := s.nodes[s.rng.IntN(len(s.nodes))]
	if l := s.currentLeader(); l != nil && s.rng.IntN(2) == 0 {
		n = l
	}
	maxOneWay := time.Duration(0)
	for _, row := range s.p.oneWay {
		maxOneWay = max(maxOneWay, slices.Max(row))
	}
	extra := s.randDuration(2*maxOneWay+s.p.fsyncMax, 4*maxOneWay+s.p.heartbeat)
	d := s.faultDuration()
	s.logf("node %d's disk slowed by %v a write for %v", n.id, extra, d)
	n.slowDisk += extra
	s.after(d, "fault", 0, func() { n.slowDisk -= extra })
}

// maybeIsolateNewLeader cuts a leader off just after its election, with that chance, while
// what it appended (its no-op, the writes it took) has reached few or none of its followers:
// the uncommitted tails of different terms that Raft's Figure 8 is about.
func (s *simulation) maybeIsolateNewLeader(l *simNode) {
	if !s.p.faults.isolateNewLeader || s.healed || s.now >= s.clientsStop || s.now < s.attackUntil {
		return
	}
	if s.now < s.churnUntil || s.rng.IntN(3) == 0 {
		s.isolateSoon(l)
	}
}

// leaderChurn starts a stretch of leader churn: for a few election timeouts every new leader
// is cut off soon after its election or right after it commits, half the time with one
// follower. Successive leaders leave tails of different terms on few logs each, and a leader
// that counted a quorum for an older term's entries may be gone before its own no-op reaches
// one: Raft's Figure 8.
func (s *simulation) leaderChurn() {
	s.churnUntil = s.now + time.Duration(2+s.rng.IntN(3))*s.p.electionMax
	s.logf("leader churn until %v", s.churnUntil)
	if l := s.currentLeader(); l != nil {
		s.isolateSoon(l)
	}
}

// onLeaderCommit runs when a leader hands out a higher commit index: during leader churn it
// is cut off right then, half the time, before its followers learn of the commit or its next
// entries reach them.
func (s *simulation) onLeaderCommit(l *simNode) {
	if s.healed || s.now >= s.clientsStop || s.now >= s.churnUntil || s.now < s.attackUntil || s.rng.IntN(2) == 0 {
		return
	}
	s.isolateSoon(l)
}

// isolateSoon cuts l off (half the time with one follower) within a few one-way delays.
func (s *simulation) isolateSoon(l *simNode) {
	maxOneWay := time.Duration(0)
	for _, row := range s.p.oneWay {
		maxOneWay = max(maxOneWay, slices.Max(row))
	}
	delay := time.Duration(0) // half the time before anything it sends can arrive
	if s.rng.IntN(2) == 0 {
		delay = s.randDuration(0, 3*maxOneWay)
	}
	s.after(delay, "fault", l.id, func() {
		if s.healed || l.r == nil {
			return
		}
		// Mostly one follower stays with it: its entries reach exactly one other log, and
		// that follower hears from a leader that may have lost its lease.
		side := []int{l.idx}
		if s.rng.IntN(4) != 0 {
			if f := s.upFollowers(l); len(f) > 0 {
				side = append(side, f[s.rng.IntN(len(f))].idx)
			}
		}
		var others []int
		for _, n := range s.nodes {
			if !slices.Contains(side, n.idx) {
				others = append(others, n.idx)
			}
		}
		d := s.faultDuration()
		s.logf("new leader %d cut off with %v for %v", l.id, ids(side[1:]), d)
		out, in := s.block(side, others, d), s.block(others, side, d)
		if s.now < s.churnUntil {
			// Leaders rotate: the one cut off before comes back as this one goes.
			for _, heal := range s.churnHeals {
				heal()
			}
			s.churnHeals = append(s.churnHeals[:0], out, in)
		}
	})
}

// slowLink delays every message on one directed link by up to twice the longest lease for a
// while: acknowledgements that come back long after they were sent, and appends that arrive
// long after the lease they carry began.
func (s *simulation) slowLink() {
	from := s.rng.IntN(len(s.nodes))
	to := s.rng.IntN(len(s.nodes) - 1)
	if to >= from {
		to++
	}
	if l := s.currentLeader(); l != nil && s.rng.IntN(2) == 0 {
		if s.rng.IntN(2) == 0 && l.idx != from {
			to = l.idx
		} else if l.idx != to {
			from = l.idx
		}
	}
	extra := s.randDuration(s.maxLease()/4, 2*s.maxLease())
	d := s.faultDuration()
	s.logf("link %d → %d slowed by %v for %v", from+1, to+1, extra, d)
	s.extraDelay[from][to] += extra
	s.after(d, "fault", 0, func() {
		if !s.healed {
			s.extraDelay[from][to] -= extra
		}
	})
}

func nodeIDs(ns []*simNode) []uint64 {
	out := make([]uint64, len(ns))
	for i, n := range ns {
		out[i] = n.id
	}
	return out
}
