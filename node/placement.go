package node

import (
	"context"
	"slices"
	"time"

	"github.com/georaft/georaft/raft"
)

// Leader placement (docs/reads.md, "Where the leader sits"): the leader keeps itself in the
// most preferred region (placement.preferred_regions) that has a healthy voter that has
// caught up, by leadership transfer.
//
//   - Healthy: a voter the leader replicates to in pipelined mode, within maxPlacementLag
//     entries of the leader's log, that answered within half an election timeout. Caught up
//     matters because the transferee must catch up before TimeoutNow goes (the core waits
//     for it) while writes wait; the margin keeps a voter that is merely a round trip
//     behind under load from counting as unhealthy at every other look.
//   - Hysteresis: a voter counts only once it has been healthy, without a break, for
//     placement.healthy_for as this leader observed it. A node that comes back after a
//     crash or a partition therefore waits that long before leadership moves back to it, so
//     a flapping node does not drag leadership to and fro; a new leader starts observing
//     from its own election.
//   - Never during a membership change: no transfer while the membership is joint.
//   - A transfer relinquishes the leader's lease before TimeoutNow leaves (raft/doc.go,
//     "Leadership transfer"), so the new leader serves at once, and costs about one round
//     trip of writes' unavailability.
//
// The same choice, without the hysteresis, picks the successor of a leader that is asked to
// stop (Server.handOffLeadership).

// maxPlacementLag is how many entries behind the leader's log a voter may be and still count
// as caught up.
const maxPlacementLag = 1000

// placementInterval is how often the leader looks at its peers' health.
func (n *Node) placementInterval() time.Duration {
	return max(2*n.cfg.Timing.HeartbeatInterval, 20*time.Millisecond)
}

// placement is the leader's record of its voters' health; only the loop touches it.
type placement struct {
	term         uint64
	healthySince map[uint64]time.Duration // on the node's clock; absent: not healthy now
}

// regionRank is where region stands in placement.preferred_regions (lower is better); a
// region not listed ranks after every listed one.
func (n *Node) regionRank(region string) int {
	if i := slices.Index(n.cfg.Placement.PreferredRegions, region); i >= 0 {
		return i
	}
	return len(n.cfg.Placement.PreferredRegions)
}

// regionOf is a member's region: its peers[] entry, else the membership table, which names
// the region of a member added at run time ("" if unknown).
func (n *Node) regionOf(id uint64) string {
	p, _ := n.peerInfo(id)
	return p.Region
}

// healthyVoters are the voters other than the leader that are healthy now (see above).
func (n *Node) healthyVoters(st raft.Status, cs raft.ConfState) []uint64 {
	var out []uint64
	for _, id := range cs.Voters {
		pr, ok := st.Progress[id]
		if id == st.ID || !ok {
			continue
		}
		if pr.State == raft.ProgressReplicate && st.LastIndex <= pr.Match+maxPlacementLag && st.Now-pr.LastAck <= n.cfg.Timing.ElectionTimeoutMin/2 {
			out = append(out, id)
		}
	}
	return out
}

// bestSuccessor is the candidate to hand leadership to: the most preferred region first, then
// the most caught up, then the lowest id.
func (n *Node) bestSuccessor(st raft.Status, candidates []uint64) uint64 {
	best := raft.None
	for _, id := range candidates {
		if best == raft.None {
			best = id
			continue
		}
		rb, rc := n.regionRank(n.regionOf(best)), n.regionRank(n.regionOf(id))
		mb, mc := st.Progress[best].Match, st.Progress[id].Match
		if rc < rb || (rc == rb && (mc > mb || (mc == mb && id < best))) {
			best = id
		}
	}
	return best
}

// successor is the voter a leader that steps aside hands leadership to (it stops, or it is
// being removed): the best healthy one, else the best other voter; raft.None if it is the
// only voter. Runs on the loop.
func (n *Node) successor() uint64 {
	st, cs := n.core.Status(), n.core.ConfState()
	candidates := n.healthyVoters(st, cs)
	if len(candidates) == 0 {
		candidates = slices.DeleteFunc(slices.Clone(cs.Voters), func(id uint64) bool { return id == st.ID })
	}
	return n.bestSuccessor(st, candidates)
}

// runPlacement checks, while the node runs, whether leadership should move to a more
// preferred region.
func (n *Node) runPlacement() {
	if len(n.cfg.Placement.PreferredRegions) == 0 {
		return
	}
	p := &placement{healthySince: map[uint64]time.Duration{}}
	t := time.NewTicker(n.placementInterval())
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-n.donec:
			return
		}
		if n.stopping.Load() || n.Failed() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.do(ctx, func() { n.placementStep(p) })
		cancel()
	}
}

// placementStep runs on the loop.
func (n *Node) placementStep(p *placement) {
	st := n.core.Status()
	if st.Role != raft.Leader {
		p.term = 0
		clear(p.healthySince)
		return
	}
	if st.Term != p.term {
		p.term = st.Term
		clear(p.healthySince)
	}
	cs := n.core.ConfState()
	healthy := n.healthyVoters(st, cs)
	for id := range p.healthySince {
		if !slices.Contains(healthy, id) {
			delete(p.healthySince, id)
		}
	}
	for _, id := range healthy {
		if _, ok := p.healthySince[id]; !ok {
			p.healthySince[id] = st.Now
		}
	}
	if len(cs.VotersOutgoing) > 0 || st.TransferTarget != raft.None {
		return // a membership change or a transfer under way
	}
	mine := n.regionRank(n.cfg.Node.Region)
	var better []uint64
	for _, id := range healthy {
		if n.regionRank(n.regionOf(id)) < mine && st.Now-p.healthySince[id] >= n.cfg.Placement.HealthyFor {
			better = append(better, id)
		}
	}
	target := n.bestSuccessor(st, better)
	if target == raft.None {
		return
	}
	if err := n.core.TransferLeadership(target); err != nil {
		n.log.Debug("placement: transfer refused", "target", target, "err", err)
		return
	}
	n.m.handoffs.WithLabelValues("placement").Inc()
	n.dump.Printf("leadership transfer to node %d for placement: region %s is preferred to %s", target, n.regionOf(target), n.cfg.Node.Region)
	n.log.Info("placement: handing leadership to a more preferred region", "target", target, "region", n.regionOf(target))
}
