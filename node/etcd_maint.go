package node

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// etcdVersion is what Maintenance.Status reports as the server version: the etcd API level
// georaft speaks, with georaft's own version as build metadata.
func etcdVersion() string {
	return "3.6.0+georaft." + strings.NewReplacer(" ", "-", "+", "-").Replace(Version)
}

// etcdMember is a membership row as etcd's API shows it.
func (n *Node) etcdMember(m *georaftv1.Member) *pb.Member {
	scheme := "http://"
	if n.cfg.TLS.Enabled {
		scheme = "https://"
	}
	name := fmt.Sprintf("node-%d", m.GetId())
	if m.GetRegion() != "" {
		name += "-" + m.GetRegion()
	}
	em := &pb.Member{ID: m.GetId(), Name: name,
		IsLearner: m.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_LEARNER}
	if m.GetPeerAddress() != "" {
		em.PeerURLs = []string{scheme + m.GetPeerAddress()}
	}
	if m.GetClientAddress() != "" {
		em.ClientURLs = []string{scheme + m.GetClientAddress()}
	}
	return em
}

// etcdMembers is every member (not the removed ones) as etcd's API shows them.
func (n *Node) etcdMembers() []*pb.Member {
	var out []*pb.Member
	for _, ms := range n.memberList(false) {
		out = append(out, n.etcdMember(ms.GetMember()))
	}
	return out
}

func (s *etcdServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.GetLinearizable() {
		leader, err := s.n.membershipBarrier(ctx, s.forwarded)
		if err != nil {
			return nil, s.n.etcdError(err)
		}
		if leader != s.n.id {
			c, err := s.n.fwd.conn(leader)
			if err != nil {
				return nil, rpctypes.ErrGRPCNoLeader
			}
			resp, err := pb.NewClusterClient(c).MemberList(ctx, r)
			if err == nil {
				resp.Header = s.n.etcdHeader(nil)
			}
			return resp, err
		}
	}
	return &pb.MemberListResponse{Header: s.n.etcdHeader(nil), Members: s.n.etcdMembers()}, nil
}

// The etcd Cluster service drives the same path as georaft.v1's MembershipService: a
// follower passes the change to its leader, which proposes it and answers once applied.

func (s *etcdServer) membership() *membershipService {
	return &membershipService{n: s.n, forwarded: s.forwarded}
}

// urlAddress is HOST:PORT of an etcd peer or client URL.
func urlAddress(urls []string) (string, error) {
	if len(urls) == 0 {
		return "", nil
	}
	if len(urls) > 1 {
		return "", status.Errorf(codes.InvalidArgument, "georaft members have one address each; got %v", urls)
	}
	u, err := url.Parse(urls[0])
	if err != nil || u.Host == "" {
		return "", status.Errorf(codes.InvalidArgument, "%q is not a URL like http://host:port", urls[0])
	}
	return u.Host, nil
}

func (s *etcdServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if !r.GetIsLearner() {
		return nil, status.Error(codes.FailedPrecondition, "georaft adds members as learners, which vote only once promoted "+
			"after catching up: add with --learner (etcdctl member add NAME --peer-urls URL --learner), then promote")
	}
	peer, err := urlAddress(r.GetPeerURLs())
	if err != nil {
		return nil, err
	}
	resp, err := s.membership().AddMember(ctx, &georaftv1.AddMemberRequest{PeerAddress: peer})
	if err != nil {
		return nil, s.n.etcdMembershipError(err)
	}
	if resp.GetIndex() == 0 {
		// georaft.v1 answers a repeated add with the member already there; etcd refuses any
		// add at the peer URL of a current member, and its clients expect that.
		return nil, rpctypes.ErrGRPCPeerURLExist
	}
	out := &pb.MemberAddResponse{Header: s.n.etcdHeader(nil), Member: s.n.etcdMember(resp.GetMember())}
	for _, m := range resp.GetMembers() {
		out.Members = append(out.Members, s.n.etcdMember(m))
	}
	return out, nil
}

func (s *etcdServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if _, err := s.membership().RemoveMember(ctx, &georaftv1.RemoveMemberRequest{Id: r.GetID()}); err != nil {
		return nil, s.n.etcdMembershipError(err)
	}
	return &pb.MemberRemoveResponse{Header: s.n.etcdHeader(nil), Members: s.n.etcdMembers()}, nil
}

func (s *etcdServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if _, err := s.membership().PromoteMember(ctx, &georaftv1.PromoteMemberRequest{Id: r.GetID()}); err != nil {
		return nil, s.n.etcdMembershipError(err)
	}
	return &pb.MemberPromoteResponse{Header: s.n.etcdHeader(nil), Members: s.n.etcdMembers()}, nil
}

// MemberUpdate records a member's new peer address (a member records its own on every start
// anyway).
func (s *etcdServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	peer, err := urlAddress(r.GetPeerURLs())
	if err != nil {
		return nil, err
	}
	if peer == "" {
		return nil, status.Error(codes.InvalidArgument, "member update needs the new peer URL")
	}
	var cur *georaftv1.Member
	for _, ms := range s.n.memberList(false) {
		if ms.GetMember().GetId() == r.GetID() {
			cur = ms.GetMember()
		}
	}
	if cur == nil {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	m := &georaftv1.Member{Id: cur.GetId(), Region: cur.GetRegion(), PeerAddress: peer, ClientAddress: cur.GetClientAddress()}
	if _, err := s.membership().PublishMember(ctx, &georaftv1.PublishMemberRequest{Member: m}); err != nil {
		return nil, s.n.etcdMembershipError(err)
	}
	return &pb.MemberUpdateResponse{Header: s.n.etcdHeader(nil), Members: s.n.etcdMembers()}, nil
}

// etcdMembershipError speaks etcd's errors where etcd has one, so etcdctl says the familiar
// thing; the message keeps georaft's reason.
func (n *Node) etcdMembershipError(err error) error {
	st := status.Convert(err)
	msg := st.Message()
	switch {
	case st.Code() == codes.NotFound:
		return rpctypes.ErrGRPCMemberNotFound
	case reasonOf(st) == ReasonPeerAddressInUse:
		return rpctypes.ErrGRPCPeerURLExist
	case st.Code() == codes.AlreadyExists:
		return rpctypes.ErrGRPCMemberExist
	case strings.Contains(msg, "entries behind the leader"):
		return status.Error(codes.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader ("+msg+")")
	case strings.Contains(msg, "is not a learner"):
		return rpctypes.ErrGRPCMemberNotLearner
	case st.Code() == codes.Unavailable:
		return status.Error(codes.Unavailable, "etcdserver: "+msg)
	}
	return err
}

func (s *etcdServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := s.n.Status(ctx)
	if err != nil {
		st = s.n.statusSnapshot()
	}
	applied, _ := s.n.store.Applied()
	disk := int64(s.n.store.DiskBytes())
	resp := &pb.StatusResponse{
		Header:           s.n.etcdHeader(nil),
		Version:          etcdVersion(),
		DbSize:           disk,
		DbSizeInUse:      disk,
		Leader:           st.Leader,
		RaftIndex:        st.Commit,
		RaftTerm:         st.Term,
		RaftAppliedIndex: applied,
		StorageVersion:   "georaft-mvcc-1",
	}
	if f := s.n.Failed(); f != nil {
		resp.Errors = append(resp.Errors, f.Error())
	}
	return resp, nil
}

// Alarm reports no alarms: georaft raises none (a full disk stops the node instead).
func (s *etcdServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	return &pb.AlarmResponse{Header: s.n.etcdHeader(nil)}, nil
}

// Defragment succeeds at once: pebble reclaims space by its own compactions.
func (s *etcdServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	return &pb.DefragmentResponse{Header: s.n.etcdHeader(nil)}, nil
}

// HashKV hashes what every replica must agree on, at the newest revision (the revision
// field is not honoured: the response's header says which revision it is).
func (s *etcdServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	h, _, err := s.n.store.HashAt()
	if err != nil {
		return nil, s.n.etcdError(err)
	}
	return &pb.HashKVResponse{Header: s.n.etcdHeader(nil), Hash: uint32(h ^ h>>32), CompactRevision: s.n.store.CompactRev(), HashRevision: s.n.store.Rev()}, nil
}

func (s *etcdServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	h, _, err := s.n.store.HashAt()
	if err != nil {
		return nil, s.n.etcdError(err)
	}
	return &pb.HashResponse{Header: s.n.etcdHeader(nil), Hash: uint32(h ^ h>>32)}, nil
}

// Snapshot streams this member's state in georaft's own format (node/mvcc's snapshot stream),
// which georaft restores; it is not a bbolt file.
func (s *etcdServer) Snapshot(r *pb.SnapshotRequest, stream pb.Maintenance_SnapshotServer) error {
	pr, pw := io.Pipe()
	go func() {
		_, _, err := s.n.store.WriteSnapshot(pw)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			if serr := stream.Send(&pb.SnapshotResponse{Header: s.n.etcdHeader(nil), Blob: append([]byte(nil), buf[:n]...), Version: etcdVersion()}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "snapshot: %v", err)
		}
	}
}

// MoveLeader is georaft's leadership transfer.
func (s *etcdServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if !s.n.members().isVoter(r.TargetID) || r.TargetID == raft.None {
		return nil, rpctypes.ErrGRPCBadLeaderTransferee
	}
	if st := s.n.statusSnapshot(); st.Leader != s.n.id {
		return nil, rpctypes.ErrGRPCNotLeader
	}
	if _, _, err := s.n.TransferLeadership(ctx, r.TargetID); err != nil {
		return nil, s.n.etcdError(err)
	}
	return &pb.MoveLeaderResponse{Header: s.n.etcdHeader(nil)}, nil
}

// notServed answers the etcd methods georaft does not serve, saying why.
func notServed() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		switch {
		case strings.HasPrefix(info.FullMethod, "/etcdserverpb.Auth/"):
			return nil, status.Error(codes.Unimplemented, "georaft does not serve etcd's user and role authentication: clients authenticate with mutual TLS (client certificates from the cluster's CA)")
		case info.FullMethod == "/etcdserverpb.Maintenance/Downgrade":
			return nil, status.Error(codes.Unimplemented, "georaft has no etcd cluster version to downgrade: upgrade and roll back georaft binaries node by node")
		}
		return h(ctx, req)
	}
}
