package node

import (
	"context"
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/raft"
)

// etcdVersion is what Maintenance.Status reports as the server version: the etcd API level
// georaft speaks, with georaft's own version as build metadata.
func etcdVersion() string {
	return "3.6.0+georaft." + strings.NewReplacer(" ", "-", "+", "-").Replace(Version)
}

func (n *Node) member(id uint64) *pb.Member {
	p, ok := n.cfg.PeerByID(id)
	if !ok {
		return nil
	}
	scheme := "http://"
	if n.cfg.TLS.Enabled {
		scheme = "https://"
	}
	return &pb.Member{
		ID:         id,
		Name:       fmt.Sprintf("node-%d-%s", id, p.Region),
		PeerURLs:   []string{scheme + p.PeerAddress},
		ClientURLs: []string{scheme + p.ClientAddress},
	}
}

func (s *etcdServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	resp := &pb.MemberListResponse{Header: s.n.etcdHeader(nil)}
	for _, p := range s.n.cfg.Peers {
		resp.Members = append(resp.Members, s.n.member(p.ID))
	}
	return resp, nil
}

// Membership changes are one function each, so the membership path (issue 13) can take them
// over one by one.
func (s *etcdServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return s.n.etcdMemberAdd(ctx, r)
}

func (s *etcdServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return s.n.etcdMemberRemove(ctx, r)
}

func (s *etcdServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return s.n.etcdMemberUpdate(ctx, r)
}

func (s *etcdServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return s.n.etcdMemberPromote(ctx, r)
}

var errMembershipNotServed = status.Error(codes.Unimplemented,
	"georaft does not change membership through the etcd API yet: membership is the cluster configuration (peers); run-time changes are being built")

func (n *Node) etcdMemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, errMembershipNotServed
}

func (n *Node) etcdMemberRemove(context.Context, *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	return nil, errMembershipNotServed
}

func (n *Node) etcdMemberUpdate(context.Context, *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	return nil, errMembershipNotServed
}

func (n *Node) etcdMemberPromote(context.Context, *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	return nil, errMembershipNotServed
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
	if _, ok := s.n.cfg.PeerByID(r.TargetID); !ok || r.TargetID == raft.None {
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
