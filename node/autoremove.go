package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/georaft/georaft/raft"
)

// autoRemovalCandidate is the member a leader removes on its own when the operator turned
// automatic removal on (cluster.auto_remove_after > 0): one it has not heard from, in this
// term, for that long. A learner goes first, since it counts in no quorum. A voter goes only
// if at least minVoters stay: a removal lowers how many failures the cluster survives, and a
// member that is partitioned, not gone, must be added again by hand, so the operator sets
// the floor. Nothing is removed during a joint change (one change at a time). blocked says
// why a silent voter stays.
func autoRemovalCandidate(st *raft.Status, cs raft.ConfState, after time.Duration, minVoters int) (id uint64, silent time.Duration, blocked string) {
	if after <= 0 || st.Role != raft.Leader || len(cs.VotersOutgoing) > 0 {
		return raft.None, 0, ""
	}
	silentFor := func(m uint64) (time.Duration, bool) {
		pr, ok := st.Progress[m]
		if m == st.ID || !ok {
			return 0, false
		}
		// LastAck starts at the beginning of the leader's term, so a new leader waits the
		// whole period before it judges anyone.
		return st.Now - pr.LastAck, st.Now-pr.LastAck >= after
	}
	for _, m := range slices.Sorted(slices.Values(cs.Learners)) {
		if d, ok := silentFor(m); ok {
			return m, d, ""
		}
	}
	for _, m := range slices.Sorted(slices.Values(cs.Voters)) {
		d, ok := silentFor(m)
		if !ok {
			continue
		}
		if len(cs.Voters)-1 < minVoters {
			return raft.None, d, fmt.Sprintf("removing member %d would leave %d voters, fewer than cluster.auto_remove_min_voters (%d)",
				m, len(cs.Voters)-1, minVoters)
		}
		return m, d, ""
	}
	return raft.None, 0, ""
}

// maybeAutoRemove removes the member autoRemovalCandidate names, one at a time, in the
// background of the metrics refresh that read st.
func (n *Node) maybeAutoRemove(st *raft.Status) {
	after := n.cfg.Cluster.AutoRemoveAfter
	if after <= 0 || st.Role != raft.Leader || n.autoRemoving.Load() {
		return
	}
	id, silent, blocked := autoRemovalCandidate(st, n.members().conf, after, n.cfg.Cluster.AutoRemoveMinVoters)
	if blocked != "" {
		if blocked != n.autoRemoveBlocked {
			n.autoRemoveBlocked = blocked
			n.dump.Printf("membership: a member silent for %v stays: %s", silent.Round(time.Millisecond), blocked)
		}
		return
	}
	if id == raft.None {
		return
	}
	n.autoRemoving.Store(true)
	go func() {
		defer n.autoRemoving.Store(false)
		n.dump.Printf("membership: removing member %d automatically: not heard from for %v (cluster.auto_remove_after %v)",
			id, silent.Round(time.Millisecond), after)
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timing.ElectionTimeoutMax*4)
		defer cancel()
		if _, err := n.removeMember(ctx, id); err != nil {
			n.log.Warn("automatic removal failed; retried while the member stays silent", "member", id, "err", err)
			return
		}
		n.m.membership.autoRemovals.Inc()
	}()
}
