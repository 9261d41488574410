package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/mvcc"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// Membership at run time (docs/membership.md).
//
// Who is a member, and who votes, is the core's ConfState: the log's EntryConfChange entries
// and the snapshot decide it, never a configuration file. Where each member is comes from the
// membership table in the replicated state (mvcc/members.go). A node's own peers[] entries
// still say where *it* dials a member when they name one (the geo lab dials through
// proxies), and a joining node starts from the addresses the member it contacted gave it
// (member.json) until its log tells it more.

// memberView is the membership as of the last applied change, published for request
// goroutines.
type memberView struct {
	conf    raft.ConfState
	rows    map[uint64]*mvcc.Member
	initial []uint64
	// hints are the addresses a joining node was given, used for members its log has not
	// reached yet.
	hints map[uint64]config.Peer
}

// ids is every member the configuration names, sorted.
func (v *memberView) ids() []uint64 {
	ids := slices.Concat(v.conf.Voters, v.conf.VotersOutgoing, v.conf.Learners)
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (v *memberView) isMember(id uint64) bool { return slices.Contains(v.ids(), id) }

func (v *memberView) isVoter(id uint64) bool {
	return slices.Contains(v.conf.Voters, id) || slices.Contains(v.conf.VotersOutgoing, id)
}

func (v *memberView) isLearner(id uint64) bool { return slices.Contains(v.conf.Learners, id) }

func (v *memberView) role(id uint64) georaftv1.MemberRole {
	switch {
	case v.isVoter(id):
		return georaftv1.MemberRole_MEMBER_ROLE_VOTER
	case v.isLearner(id):
		return georaftv1.MemberRole_MEMBER_ROLE_LEARNER
	}
	if r, ok := v.rows[id]; ok && r.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
		return georaftv1.MemberRole_MEMBER_ROLE_REMOVED
	}
	return georaftv1.MemberRole_MEMBER_ROLE_UNSPECIFIED
}

// published lists the members whose addresses are in the table.
func (v *memberView) published() []uint64 {
	var out []uint64
	for id, r := range v.rows {
		if r.GetPeerAddress() != "" && r.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// members is the view (never nil once the node has opened).
func (n *Node) members() *memberView {
	if v := n.memberView.Load(); v != nil {
		return v
	}
	return &memberView{}
}

// peerInfo says where member id is: this node's peers[] entry when it has one, else the
// membership table, else what a join was told.
func (n *Node) peerInfo(id uint64) (config.Peer, bool) {
	if p, ok := n.cfg.PeerByID(id); ok {
		return p, true
	}
	v := n.members()
	if r, ok := v.rows[id]; ok && r.GetPeerAddress() != "" {
		return config.Peer{ID: id, Region: r.GetRegion(), PeerAddress: r.GetPeerAddress(), ClientAddress: r.GetClientAddress()}, true
	}
	if id == n.id {
		return n.selfPeer(), true
	}
	p, ok := v.hints[id]
	return p, ok
}

// selfPeer is what this node tells the cluster about itself.
func (n *Node) selfPeer() config.Peer {
	if p, ok := n.cfg.PeerByID(n.id); ok {
		return p
	}
	return config.Peer{ID: n.id, Region: n.cfg.Node.Region, PeerAddress: n.cfg.Listen.Peer, ClientAddress: n.cfg.Listen.Client}
}

// refreshMembers rebuilds the view after the membership or the table changed, and points
// the transport at the members. It runs on the loop (or before it starts).
func (n *Node) refreshMembers() {
	conf := n.core.ConfState()
	rows, err := n.store.Members()
	if err != nil {
		n.log.Error("read the membership table", "err", err)
		return
	}
	old := n.memberView.Load()
	v := &memberView{conf: conf, rows: make(map[uint64]*mvcc.Member, len(rows)), initial: n.initialVoters}
	for _, r := range rows {
		v.rows[r.GetId()] = r
	}
	if old != nil {
		v.hints = old.hints
	} else {
		v.hints = n.joinHints
	}
	n.memberView.Store(v)

	// Dial every member, and every member the table or the join hints name that is not
	// removed: a joining node replays old memberships while its leader is already in the
	// newest one, and it must accept that leader's messages.
	peers := make(map[uint64]string)
	want := v.ids()
	for id, r := range v.rows {
		if r.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
			want = append(want, id)
		}
	}
	for id := range v.hints {
		if r, ok := v.rows[id]; !ok || r.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
			want = append(want, id)
		}
	}
	for _, id := range want {
		if id == n.id {
			continue
		}
		if p, ok := n.peerInfo(id); ok && p.PeerAddress != "" {
			peers[id] = p.PeerAddress
		} else if v.isMember(id) {
			n.log.Warn("no peer address known for a member yet", "member", id)
		}
	}
	if n.tr != nil {
		if err := n.tr.SetPeers(peers); err != nil {
			n.log.Error("transport: set peers", "err", err)
		}
	}
	n.observeMembers(v)
	if old == nil {
		return
	}
	if !old.conf.Equal(conf) {
		n.dump.Printf("membership: now %v", conf)
	}
	for id, r := range v.rows {
		if o, ok := old.rows[id]; !ok || o.GetPeerAddress() != r.GetPeerAddress() || o.GetClientAddress() != r.GetClientAddress() {
			if r.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
				n.dump.Printf("membership: member %d (%s) is at peer %s, client %s", id, r.GetRegion(), r.GetPeerAddress(), r.GetClientAddress())
			}
		}
	}
	if old.isMember(n.id) && !v.isMember(n.id) && !conf.IsEmpty() {
		n.noteRemoved()
	}
}

// errMemberRemoved stops a member that applied its own removal.
var errMemberRemoved = errors.New("this member was removed from the cluster")

// noteRemoved records in member.json that this member is gone, so it never starts again
// under its id, and stops serving.
func (n *Node) noteRemoved() {
	n.ident.Removed = true
	if err := writeIdentity(n.cfg.Node.DataDir, n.ident); err != nil {
		n.log.Error("record the removal in member.json", "err", err)
	}
	n.dump.Printf("membership: this member (%d) was removed from the cluster; it stops serving and never starts again under this id", n.id)
	n.log.Warn("this member was removed from the cluster; stopping")
	if !n.removed.Swap(true) {
		close(n.removedc)
	}
	n.m.membership.changes.WithLabelValues("self-removed").Inc()
}

// isMembershipEntry reports whether applying e may change the view.
func isMembershipEntry(e *raft.Entry) bool {
	if e.Type == raft.EntryConfChange {
		return true
	}
	// A member publish: command version 2, kind KindMemberPublish.
	return e.Type == raft.EntryNormal && len(e.Data) > 1 && e.Data[0] == 2 && mvcc.Kind(e.Data[1]) == mvcc.KindMemberPublish
}

// changeMembership proposes cc on this node, which must lead, and waits until it is applied
// here.
func (n *Node) changeMembership(ctx context.Context, cc raft.ConfChange) (uint64, error) {
	if err := n.admit(); err != nil {
		return 0, err
	}
	p := &proposal{done: make(chan proposalResult, 1)}
	var perr error
	if err := n.do(ctx, func() {
		index, term, err := n.core.ProposeConfChange(cc)
		if err != nil {
			perr = err
			return
		}
		p.index, p.term = index, term
		n.waiters[index] = p
		n.dump.Printf("membership: proposed %v at index %d", cc, index)
	}); err != nil {
		return 0, err
	}
	if perr != nil {
		return 0, perr
	}
	kind := membershipChangeKind(cc)
	select {
	case res := <-p.done:
		if res.err != nil {
			return 0, res.err
		}
		n.m.membership.changes.WithLabelValues(kind).Inc()
		return res.index, nil
	case <-ctx.Done():
		return 0, ctxErr(ctx)
	case <-n.donec:
		return 0, n.stoppedErr()
	}
}

func membershipChangeKind(cc raft.ConfChange) string {
	kinds := make([]string, len(cc.Changes))
	for i, c := range cc.Changes {
		kinds[i] = c.Type.String()
	}
	slices.Sort(kinds)
	return strings.Join(slices.Compact(kinds), "+")
}

// membershipError turns a refusal into what an operator can act on.
func (n *Node) membershipError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var nl *raft.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return n.toStatus(err)
	case errors.Is(err, raft.ErrConfChangePending):
		return unavailable(ReasonMembershipBusy, "%v; retry once it is applied", err)
	case errors.Is(err, raft.ErrProposalDropped):
		return n.toStatus(err)
	case errors.Is(err, errShuttingDown), errors.Is(err, errProposalLost):
		return n.toStatus(err)
	}
	var failed *errFailed
	if errors.As(err, &failed) {
		return n.toStatus(err)
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

// onLeader runs local when this node leads, and otherwise remote against the leader's
// MembershipService over the peer port (a forwarded call is never passed on again).
func onLeader[T any](ctx context.Context, n *Node, forwarded bool, local func() (T, error),
	remote func(context.Context, georaftv1.MembershipServiceClient) (T, error)) (T, error) {
	var zero T
	out, err := local()
	var nl *raft.NotLeaderError
	if err == nil || !errors.As(err, &nl) || forwarded {
		return out, n.membershipError(err)
	}
	leader := nl.Leader
	if leader == raft.None {
		leader = n.awaitLeader(ctx)
	}
	switch leader {
	case raft.None:
		return zero, n.membershipError(err)
	case n.id:
		out, err = local()
		return out, n.membershipError(err)
	}
	c, cerr := n.fwd.conn(leader)
	if cerr != nil {
		return zero, unavailable(ReasonNoLeader, "leader %d unreachable: %v", leader, cerr)
	}
	return remote(ctx, georaftv1.NewMembershipServiceClient(c))
}

// leaderOnly fails with NotLeaderError unless this node leads.
func (n *Node) leaderOnly() error {
	st := n.statusSnapshot()
	if st.Role != raft.Leader {
		return &raft.NotLeaderError{Leader: st.Leader, Term: st.Term}
	}
	return nil
}

// addMember adds a learner (the leader's half of AddMember).
func (n *Node) addMember(ctx context.Context, req *georaftv1.AddMemberRequest) (*georaftv1.AddMemberResponse, error) {
	if err := n.leaderOnly(); err != nil {
		return nil, err
	}
	if req.GetClusterId() != "" && req.GetClusterId() != n.cfg.ClusterID {
		return nil, status.Errorf(codes.FailedPrecondition, "this is cluster %q, not %q", n.cfg.ClusterID, req.GetClusterId())
	}
	// The client address and the region may come later: the new member records its own
	// when it starts (etcd's MemberAdd names only the peer address).
	if req.GetPeerAddress() == "" {
		return nil, invalidArgument("peer_address", "peer_address must be set: the members reach the new one there")
	}
	for _, f := range []struct{ name, addr string }{{"peer_address", req.GetPeerAddress()}, {"client_address", req.GetClientAddress()}} {
		if f.addr == "" {
			continue
		}
		if err := config.CheckDialAddress(f.addr); err != nil {
			return nil, invalidArgument(f.name, "%s %q %v", f.name, f.addr, err)
		}
	}
	v := n.members()
	id := req.GetId()
	if m, ok := n.memberAt(v, req.GetPeerAddress()); ok {
		if !sameMember(m, req) {
			return nil, withReason(codes.AlreadyExists, ReasonPeerAddressInUse, fmt.Sprintf(
				"peer address %s is member %d's (%s, region %q, client address %q), and this add asks for %s: a new member needs a peer "+
					"address of its own; to put it at this address, remove member %d first",
				m.GetPeerAddress(), m.GetId(), roleName(m.GetRole()), m.GetRegion(), m.GetClientAddress(), describeAdd(req), m.GetId()))
		}
		// The same add again (a retry after a timeout or a lost answer), or the member an
		// operator added now joining under its id: the member that is there is the answer,
		// but only while it has never held any of the log. The leader's record of how much a
		// member holds only grows, so an empty node under an id that held entries would be
		// taken to hold them, and be counted in quorums for entries it lacks.
		if match, err := n.matchOf(ctx, m.GetId()); err != nil {
			return nil, err
		} else if match > 0 {
			return nil, withReason(codes.AlreadyExists, ReasonPeerAddressInUse, fmt.Sprintf(
				"member %d at peer address %s already received the log up to index %d: it is running, and a node that starts "+
					"empty must not take its id; to add a new member there, remove member %d first", m.GetId(), m.GetPeerAddress(), match, m.GetId()))
		}
		return n.addMemberResponse(m, 0), nil
	}
	if id != raft.None {
		if n.idTaken(v, id) {
			return nil, status.Errorf(codes.AlreadyExists, "member id %d is taken (a member, or removed: ids are never reused)", id)
		}
	} else {
		rows := slices.Collect(maps.Values(v.rows))
		id = mvcc.NextMemberID(rows, slices.Concat(v.ids(), v.initial, n.cfg.PeerIDs())...)
	}
	m := &mvcc.Member{Id: id, Region: req.GetRegion(), PeerAddress: req.GetPeerAddress(), ClientAddress: req.GetClientAddress(),
		Role: georaftv1.MemberRole_MEMBER_ROLE_LEARNER}
	cc := raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfAddLearner, NodeID: id}}, Context: mvcc.EncodeMemberContext(m)}
	index, err := n.changeMembership(ctx, cc)
	if err != nil {
		return nil, err
	}
	return n.addMemberResponse(m, index), nil
}

// memberAt is the current member whose peer address is addr: as the membership table records
// it, or as this node's peers[] or a join's hints name it.
func (n *Node) memberAt(v *memberView, addr string) (*mvcc.Member, bool) {
	for _, id := range v.ids() {
		r := v.rows[id]
		p, _ := n.peerInfo(id)
		if r.GetPeerAddress() != addr && p.PeerAddress != addr {
			continue
		}
		m := &mvcc.Member{Id: id, Region: p.Region, PeerAddress: addr, ClientAddress: p.ClientAddress}
		if r != nil {
			m = proto.Clone(r).(*mvcc.Member)
			m.PeerAddress = addr
		}
		m.Role = v.role(id)
		return m, true
	}
	return nil, false
}

// sameMember says whether an add asks for member m again: the same id if it names one, and
// the same region and client address where both sides name them.
func sameMember(m *mvcc.Member, req *georaftv1.AddMemberRequest) bool {
	same := func(a, b string) bool { return a == "" || b == "" || a == b }
	return (req.GetId() == raft.None || req.GetId() == m.GetId()) && same(m.GetRegion(), req.GetRegion()) &&
		same(m.GetClientAddress(), req.GetClientAddress())
}

// describeAdd names what an add asks for, for an error.
func describeAdd(req *georaftv1.AddMemberRequest) string {
	var parts []string
	if req.GetId() != raft.None {
		parts = append(parts, fmt.Sprintf("id %d", req.GetId()))
	}
	if req.GetRegion() != "" {
		parts = append(parts, fmt.Sprintf("region %q", req.GetRegion()))
	}
	if req.GetClientAddress() != "" {
		parts = append(parts, fmt.Sprintf("client address %q", req.GetClientAddress()))
	}
	if len(parts) == 0 {
		return "a new member"
	}
	return strings.Join(parts, ", ")
}

func roleName(r georaftv1.MemberRole) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "MEMBER_ROLE_"))
}

// matchOf is how much of the log the leader knows member id to hold (0: nothing yet).
func (n *Node) matchOf(ctx context.Context, id uint64) (uint64, error) {
	st, err := n.Status(ctx)
	if err != nil {
		return 0, err
	}
	return st.Progress[id].Match, nil
}

// checkCaughtUp refuses to promote a learner that has not received any of the log yet: with
// a short log the core's lag bound (Config.MaxLearnerLag) would let a learner that never
// started become a voter.
func (n *Node) checkCaughtUp(ctx context.Context, id uint64) error {
	match, err := n.matchOf(ctx, id)
	if err != nil {
		return err
	}
	if match == 0 {
		return status.Errorf(codes.FailedPrecondition, "learner %d has not received any of the log yet: start it "+
			"(georaftd --join) and promote it once it has caught up", id)
	}
	return nil
}

func (n *Node) idTaken(v *memberView, id uint64) bool {
	_, inTable := v.rows[id]
	return inTable || v.isMember(id) || slices.Contains(v.initial, id)
}

func (n *Node) addMemberResponse(m *mvcc.Member, index uint64) *georaftv1.AddMemberResponse {
	resp := &georaftv1.AddMemberResponse{Member: m, InitialVoters: n.initialVoters, Index: index}
	for _, ms := range n.memberList(false) {
		if ms.GetMember().GetId() != m.GetId() {
			resp.Members = append(resp.Members, ms.GetMember())
		}
	}
	// The view follows the change once the loop has advanced past it: the new member is
	// named from the change itself.
	resp.Members = append(resp.Members, m)
	return resp
}

// promoteMember makes a caught-up learner a voter.
func (n *Node) promoteMember(ctx context.Context, id uint64) (uint64, error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	if !n.members().isLearner(id) {
		return 0, status.Errorf(codes.FailedPrecondition, "member %d is not a learner (%v)", id, n.members().conf)
	}
	if err := n.checkCaughtUp(ctx, id); err != nil {
		return 0, err
	}
	return n.changeMembership(ctx, raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfPromote, NodeID: id}}})
}

// removeMember removes a voter or a learner.
func (n *Node) removeMember(ctx context.Context, id uint64) (uint64, error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	if !n.members().isMember(id) {
		return 0, status.Errorf(codes.NotFound, "node %d is not a member (%v)", id, n.members().conf)
	}
	if err := n.handOffBeforeRemoval(ctx, id); err != nil {
		return 0, err
	}
	return n.changeMembership(ctx, raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfRemove, NodeID: id}}})
}

// handOffBeforeRemoval, when the leader is asked to remove itself, hands leadership to the
// voter placement picks (successor: the best healthy one, preferred region first, then the
// most caught up) and asks the caller to retry at the new leader. A leader that applied its
// own removal would step down and leave the cluster to an election timeout; a transfer costs
// a round trip, and the new leader needs no wait for this one's lease.
func (n *Node) handOffBeforeRemoval(ctx context.Context, id uint64) error {
	if id != n.id {
		return nil
	}
	var target uint64
	if err := n.do(ctx, func() { target = n.successor() }); err != nil {
		return err
	}
	if target == raft.None {
		return status.Errorf(codes.FailedPrecondition, "node %d is the only voter: it cannot be removed", id)
	}
	leader, _, err := n.TransferLeadership(ctx, target)
	if err != nil {
		return unavailable(ReasonLeadershipLost, "handing leadership to node %d before removing node %d: %v; retry", target, id, err)
	}
	n.dump.Printf("membership: leadership handed to node %d before this node's removal", leader)
	return unavailable(ReasonLeadershipLost, "leadership handed to node %d before removing node %d (the leader); retry there", leader, id)
}

// replaceMember promotes learner newID and removes oldID in one change.
func (n *Node) replaceMember(ctx context.Context, oldID, newID uint64) (uint64, error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	v := n.members()
	if !v.isLearner(newID) {
		return 0, status.Errorf(codes.FailedPrecondition, "member %d is not a learner (%v): add the new node first (start it with --join)", newID, v.conf)
	}
	if !v.isMember(oldID) {
		return 0, status.Errorf(codes.NotFound, "node %d is not a member (%v)", oldID, v.conf)
	}
	if err := n.checkCaughtUp(ctx, newID); err != nil {
		return 0, err
	}
	if err := n.handOffBeforeRemoval(ctx, oldID); err != nil {
		return 0, err
	}
	return n.changeMembership(ctx, raft.ConfChange{Changes: []raft.ConfChangeSingle{
		{Type: raft.ConfPromote, NodeID: newID}, {Type: raft.ConfRemove, NodeID: oldID}}})
}

// publishMember records member m's addresses in the table.
func (n *Node) publishMember(ctx context.Context, m *mvcc.Member) (uint64, error) {
	if err := n.leaderOnly(); err != nil {
		return 0, err
	}
	if !n.members().isMember(m.GetId()) {
		return 0, status.Errorf(codes.FailedPrecondition, "node %d is not a member", m.GetId())
	}
	res, err := n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindMemberPublish, Member: m})
	if err != nil {
		return 0, err
	}
	if res.result.Err != nil {
		return 0, status.Error(codes.FailedPrecondition, res.result.Err.Error())
	}
	return res.index, nil
}

// memberList is the view as rows: every member with its role and addresses, and removed
// members when asked; on the leader, with health.
func (n *Node) memberList(withRemoved bool) []*georaftv1.MemberStatus {
	v := n.members()
	ids := v.ids()
	for id := range v.rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	st := n.statusSnapshot()
	var full raft.Status
	if st.Role == raft.Leader {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timing.ElectionTimeoutMin)
		full, _ = n.Status(ctx)
		cancel()
	}
	var out []*georaftv1.MemberStatus
	for _, id := range ids {
		role := v.role(id)
		if role == georaftv1.MemberRole_MEMBER_ROLE_UNSPECIFIED || (role == georaftv1.MemberRole_MEMBER_ROLE_REMOVED && !withRemoved) {
			continue
		}
		m := &mvcc.Member{Id: id, Role: role, ReadLeaseHolder: slices.Contains(v.conf.ReadLeaseHolders, id)}
		if p, ok := n.peerInfo(id); ok {
			m.Region, m.PeerAddress, m.ClientAddress = p.Region, p.PeerAddress, p.ClientAddress
		}
		if r, ok := v.rows[id]; ok && role == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
			m.Region, m.PeerAddress, m.ClientAddress = r.GetRegion(), r.GetPeerAddress(), r.GetClientAddress()
		}
		ms := &georaftv1.MemberStatus{Member: m}
		if full.Role == raft.Leader && role != georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
			ms.Health = n.memberHealth(&full, id)
		}
		out = append(out, ms)
	}
	return out
}

// memberHealth is what the leader knows of id's replication. A member not heard from for
// cluster.last_contact_threshold is unhealthy; nothing is removed for it.
func (n *Node) memberHealth(st *raft.Status, id uint64) *georaftv1.MemberHealth {
	if id == n.id {
		return &georaftv1.MemberHealth{Healthy: true, Leader: true}
	}
	pr, ok := st.Progress[id]
	if !ok {
		return &georaftv1.MemberHealth{LastContactAgeNanos: -1}
	}
	h := &georaftv1.MemberHealth{LastContactAgeNanos: -1}
	if st.LastIndex > pr.Match {
		h.Lag = st.LastIndex - pr.Match
	}
	if pr.LastAck > 0 {
		h.LastContactAgeNanos = int64(st.Now - pr.LastAck)
		h.Healthy = st.Now-pr.LastAck < n.cfg.Cluster.LastContactThreshold
	}
	return h
}

func (n *Node) listMembers(ctx context.Context, req *georaftv1.ListMembersRequest, forwarded bool) (*georaftv1.ListMembersResponse, error) {
	if err := n.admit(); err != nil {
		return nil, n.toStatus(err)
	}
	if req.GetLinearizable() {
		leader, err := n.membershipBarrier(ctx, forwarded)
		if err != nil {
			return nil, n.toStatus(err)
		}
		if leader != n.id {
			c, err := n.fwd.conn(leader)
			if err != nil {
				return nil, unavailable(ReasonNoLeader, "leader %d unreachable: %v", leader, err)
			}
			return georaftv1.NewMembershipServiceClient(c).ListMembers(ctx, req)
		}
	}
	v := n.members()
	applied, _ := n.store.Applied()
	return &georaftv1.ListMembersResponse{
		ClusterId:      n.cfg.ClusterID,
		LeaderId:       n.statusSnapshot().Leader,
		VotersOutgoing: slices.Clone(v.conf.VotersOutgoing),
		InitialVoters:  slices.Clone(v.initial),
		Members:        n.memberList(true),
		AppliedIndex:   applied,
		Published:      v.published(),
	}, nil
}

// membershipBarrier makes a linearizable membership read possible here: on the leader, a
// ReadIndex round, after which it answers (it returns itself); elsewhere it returns the
// leader, which the caller asks instead (a forwarded call is answered here or refused).
func (n *Node) membershipBarrier(ctx context.Context, forwarded bool) (uint64, error) {
	_, err := n.readBarrier(ctx, raft.ReadIndex, readOpts{})
	var nl *raft.NotLeaderError
	if err == nil || !errors.As(err, &nl) || forwarded {
		return n.id, err
	}
	leader := nl.Leader
	if leader == raft.None {
		if leader = n.awaitLeader(ctx); leader == raft.None {
			return 0, err
		}
	}
	if leader == n.id {
		_, err = n.readBarrier(ctx, raft.ReadIndex, readOpts{})
		return leader, err
	}
	return leader, nil
}

// membershipService is georaft.v1's MembershipService. On the peer port (forwarded) it
// serves only what a follower passes on to its leader.
type membershipService struct {
	georaftv1.UnimplementedMembershipServiceServer
	n         *Node
	forwarded bool
}

func (s *membershipService) ListMembers(ctx context.Context, req *georaftv1.ListMembersRequest) (*georaftv1.ListMembersResponse, error) {
	return s.n.listMembers(ctx, req, s.forwarded)
}

func (s *membershipService) AddMember(ctx context.Context, req *georaftv1.AddMemberRequest) (*georaftv1.AddMemberResponse, error) {
	return onLeader(ctx, s.n, s.forwarded, func() (*georaftv1.AddMemberResponse, error) { return s.n.addMember(ctx, req) },
		func(ctx context.Context, c georaftv1.MembershipServiceClient) (*georaftv1.AddMemberResponse, error) {
			return c.AddMember(ctx, req)
		})
}

func (s *membershipService) PromoteMember(ctx context.Context, req *georaftv1.PromoteMemberRequest) (*georaftv1.PromoteMemberResponse, error) {
	return onLeader(ctx, s.n, s.forwarded, func() (*georaftv1.PromoteMemberResponse, error) {
		index, err := s.n.promoteMember(ctx, req.GetId())
		return &georaftv1.PromoteMemberResponse{Index: index}, err
	}, func(ctx context.Context, c georaftv1.MembershipServiceClient) (*georaftv1.PromoteMemberResponse, error) {
		return c.PromoteMember(ctx, req)
	})
}

func (s *membershipService) RemoveMember(ctx context.Context, req *georaftv1.RemoveMemberRequest) (*georaftv1.RemoveMemberResponse, error) {
	return onLeader(ctx, s.n, s.forwarded, func() (*georaftv1.RemoveMemberResponse, error) {
		index, err := s.n.removeMember(ctx, req.GetId())
		return &georaftv1.RemoveMemberResponse{Index: index}, err
	}, func(ctx context.Context, c georaftv1.MembershipServiceClient) (*georaftv1.RemoveMemberResponse, error) {
		return c.RemoveMember(ctx, req)
	})
}

func (s *membershipService) ReplaceMember(ctx context.Context, req *georaftv1.ReplaceMemberRequest) (*georaftv1.ReplaceMemberResponse, error) {
	return onLeader(ctx, s.n, s.forwarded, func() (*georaftv1.ReplaceMemberResponse, error) {
		index, err := s.n.replaceMember(ctx, req.GetOldId(), req.GetNewId())
		return &georaftv1.ReplaceMemberResponse{Index: index}, err
	}, func(ctx context.Context, c georaftv1.MembershipServiceClient) (*georaftv1.ReplaceMemberResponse, error) {
		return c.ReplaceMember(ctx, req)
	})
}

func (s *membershipService) PublishMember(ctx context.Context, req *georaftv1.PublishMemberRequest) (*georaftv1.PublishMemberResponse, error) {
	return onLeader(ctx, s.n, s.forwarded, func() (*georaftv1.PublishMemberResponse, error) {
		index, err := s.n.publishMember(ctx, req.GetMember())
		return &georaftv1.PublishMemberResponse{Index: index}, err
	}, func(ctx context.Context, c georaftv1.MembershipServiceClient) (*georaftv1.PublishMemberResponse, error) {
		return c.PublishMember(ctx, req)
	})
}

// ReasonMembershipBusy: another membership change is not applied yet; retry.
const ReasonMembershipBusy = "MEMBERSHIP_CHANGE_PENDING"
