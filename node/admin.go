package node

import (
	"context"
	"slices"
	"time"

	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// Status returns the core's current status, read on the loop.
func (n *Node) Status(ctx context.Context) (raft.Status, error) {
	var st raft.Status
	// Tick first, so ages and lease time left are as of now, not of the last turn.
	err := n.do(ctx, func() {
		n.core.Tick(n.clock.Now())
		st = n.core.Status()
	})
	return st, err
}

// readLeaseStatus is the read-lease part of Status, read on the loop: the membership's
// holders and this node's read view now.
type readLeaseStatus struct {
	view    raft.ReadView
	holders []uint64
}

func (n *Node) statusResponse(ctx context.Context, req *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error) {
	var rls readLeaseStatus
	st, err := n.Status(ctx)
	if err == nil {
		err = n.do(ctx, func() {
			rls.view = n.core.ReadView()
			rls.holders = n.core.ConfState().ReadLeaseHolders
		})
	}
	if err != nil && ctx.Err() != nil {
		return nil, ctxErr(ctx)
	}
	if err != nil {
		// A stopped or failed node still says who it is and why it is not serving.
		st = n.statusSnapshot()
	}
	self := n.selfPeer()
	view := n.members()
	resp := &georaftv1.StatusResponse{
		Learner:             view.isLearner(n.id),
		Id:                  n.id,
		Region:              n.cfg.Node.Region,
		Address:             self.ClientAddress,
		ClusterId:           n.cfg.ClusterID,
		Role:                roleToProto(st.Role),
		Term:                st.Term,
		LeaderId:            st.Leader,
		LeaderAddress:       n.clientAddressOf(st.Leader),
		CommitIndex:         st.Commit,
		LastIndex:           st.LastIndex,
		LeaseState:          leaseStateToProto(st.Lease),
		LeaseRemainingNanos: int64(st.LeaseRemaining),
		SnapshotIndex:       st.Snapshot.Index,
		Keys:                uint64(n.store.Len()),
		Version:             Version,
		LeaseDurationNanos:  int64(n.cfg.Timing.LeaseDuration),
		MaxStalenessNanos:   int64(n.maxStaleness),
	}
	resp.ReadLeaseHolders = rls.holders
	resp.PreferredRegions = n.cfg.Placement.PreferredRegions
	resp.ReadLeaseDurationNanos = int64(n.cfg.Timing.LeaseDuration)
	resp.ReadLeaseState = georaftv1.LeaseState_LEASE_STATE_NONE
	if st.Role != raft.Leader && rls.view.LeaseUntil > st.Now {
		resp.ReadLeaseState = georaftv1.LeaseState_LEASE_STATE_HELD
		resp.ReadLeaseRemainingNanos = int64(rls.view.LeaseUntil - st.Now)
	}
	if req.GetIncludeActivity() {
		resp.Events = n.dump.recent.since(req.GetEventsAfter())
		resp.Latencies = n.m.latencyHistograms()
	}
	if req.GetIncludeStateHash() {
		var herr error
		if resp.StateHash, resp.AppliedIndex, herr = n.store.HashAt(); herr != nil {
			return nil, n.toStatus(herr)
		}
	} else {
		resp.AppliedIndex, _ = n.store.Applied()
	}
	if err := n.Failed(); err != nil {
		resp.Failure = err.Error()
	}
	if st.LastLeaderContact > 0 || st.Role == raft.Leader {
		resp.LastContactAgeNanos = int64(st.Now - st.LastLeaderContact)
	} else {
		resp.LastContactAgeNanos = -1
	}
	for _, id := range view.ids() {
		if id == n.id {
			continue
		}
		p, _ := n.peerInfo(id)
		ps := &georaftv1.PeerStatus{Id: id, Region: p.Region, Address: p.ClientAddress, Learner: view.isLearner(id),
			OutgoingVoter:   slices.Contains(view.conf.VotersOutgoing, id) && !slices.Contains(view.conf.Voters, id),
			ReadLeaseHolder: slices.Contains(view.conf.ReadLeaseHolders, id)}
		if n.tr != nil {
			ps.RttNanos = int64(n.tr.RTT(p.ID))
		}
		if pr, ok := st.Progress[p.ID]; ok {
			ps.MatchIndex, ps.NextIndex, ps.ProgressState = pr.Match, pr.Next, pr.State.String()
			ps.Healthy = n.memberHealth(&st, id).GetHealthy()
			ps.LastAckAgeNanos = int64(st.Now - pr.LastAck)
			if st.LastIndex > pr.Match {
				ps.Lag = st.LastIndex - pr.Match
			}
		}
		resp.Peers = append(resp.Peers, ps)
	}
	return resp, nil
}

func roleToProto(r raft.Role) georaftv1.Role {
	switch r {
	case raft.Follower:
		return georaftv1.Role_ROLE_FOLLOWER
	case raft.PreCandidate:
		return georaftv1.Role_ROLE_PRE_CANDIDATE
	case raft.Candidate:
		return georaftv1.Role_ROLE_CANDIDATE
	case raft.Leader:
		return georaftv1.Role_ROLE_LEADER
	}
	return georaftv1.Role_ROLE_UNSPECIFIED
}

func leaseStateToProto(s raft.LeaseState) georaftv1.LeaseState {
	switch s {
	case raft.LeaseNone:
		return georaftv1.LeaseState_LEASE_STATE_NONE
	case raft.LeaseWaiting:
		return georaftv1.LeaseState_LEASE_STATE_WAITING
	case raft.LeaseHeld:
		return georaftv1.LeaseState_LEASE_STATE_HELD
	case raft.LeaseRelinquished:
		return georaftv1.LeaseState_LEASE_STATE_RELINQUISHED
	}
	return georaftv1.LeaseState_LEASE_STATE_UNSPECIFIED
}

// TransferLeadership asks the core to hand leadership to target and waits until some node
// other than this one leads (normally target), or ctx ends.
func (n *Node) TransferLeadership(ctx context.Context, target uint64) (leader, term uint64, err error) {
	var startErr error
	if err := n.do(ctx, func() {
		st := n.core.Status()
		if st.Role == raft.Leader && target == n.id {
			leader, term = n.id, st.Term
			return
		}
		startErr = n.core.TransferLeadership(target)
	}); err != nil {
		return 0, 0, err
	}
	if startErr != nil {
		return 0, 0, startErr
	}
	if leader == n.id {
		return leader, term, nil
	}
	n.dump.Printf("leadership transfer to node %d requested", target)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st := n.statusSnapshot()
		if st.Leader != raft.None && st.Leader != n.id {
			return st.Leader, st.Term, nil
		}
		select {
		case <-tick.C:
			n.do(ctx, func() { n.publish() })
		case <-ctx.Done():
			return 0, 0, unavailable(ReasonTransferTimedOut, "leadership did not move to node %d before the deadline", target)
		}
	}
}

// SetReadLeaseHolders changes which members hold read leases, through the log, and waits
// until the change is applied here (the leader). holders is all, none or member ids and
// regions (config.ResolveHolders). It returns the holders as the membership then names them
// and the change's index.
func (n *Node) SetReadLeaseHolders(ctx context.Context, holders []string) ([]uint64, uint64, error) {
	members := map[uint64]string{}
	for _, p := range n.cfg.Peers {
		members[p.ID] = p.Region
	}
	var cs raft.ConfState
	if err := n.do(ctx, func() { cs = n.core.ConfState() }); err != nil {
		return nil, 0, err
	}
	for _, id := range slices.Concat(cs.Voters, cs.Learners) {
		if _, ok := members[id]; !ok {
			members[id] = ""
		}
	}
	want, err := config.ResolveHolders(holders, members)
	if err != nil {
		return nil, 0, invalidArgument("holders", "%v", err)
	}
	var cc raft.ConfChange
	for _, id := range want {
		if !slices.Contains(cs.ReadLeaseHolders, id) {
			cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: raft.ConfReadLeaseOn, NodeID: id})
		}
	}
	for _, id := range cs.ReadLeaseHolders {
		if !slices.Contains(want, id) {
			cc.Changes = append(cc.Changes, raft.ConfChangeSingle{Type: raft.ConfReadLeaseOff, NodeID: id})
		}
	}
	if len(cc.Changes) == 0 {
		return cs.ReadLeaseHolders, 0, nil
	}
	var index, term uint64
	var perr error
	if err := n.do(ctx, func() { index, term, perr = n.core.ProposeConfChange(cc) }); err != nil {
		return nil, 0, err
	}
	if perr != nil {
		return nil, 0, perr
	}
	n.dump.Printf("term %d: read-lease holders change proposed at index %d: %v", term, index, cc)
	if err := n.waitApplied(ctx, index); err != nil {
		return nil, 0, err
	}
	// The store applies the entry before the core does (on Advance); wait for the core.
	for {
		var applied raft.ConfState
		var lost bool
		if err := n.do(ctx, func() {
			applied = n.core.ConfState()
			lost = n.core.BasicStatus().Term != term
		}); err != nil {
			return nil, 0, err
		}
		if slices.Equal(applied.ReadLeaseHolders, want) {
			return applied.ReadLeaseHolders, index, nil
		}
		if lost {
			return nil, 0, errLeadershipGone
		}
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return nil, 0, ctxErr(ctx)
		}
	}
}
