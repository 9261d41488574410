package node

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/raft"
)

func (s *etcdServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (resp *pb.LeaseGrantResponse, err error) {
	start := time.Now()
	defer func() { s.observe("lease_grant", "", start, err) }()
	if r.TTL > maxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	return forwardOr(s, ctx, func() (*pb.LeaseGrantResponse, error) {
		l := s.n.lessor
		req := &pb.LeaseGrantRequest{ID: r.ID, TTL: max(r.TTL, l.minTTL())}
		if req.ID == 0 {
			req.ID = l.newLeaseID()
		}
		res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindLeaseGrant, LeaseGrant: req})
		if err := s.resultErr(res, err); err != nil {
			return nil, err
		}
		l.keepAlive(req.ID)
		g := res.result.LeaseGrant
		g.Header = s.n.etcdHeader(g.Header)
		return g, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.LeaseGrantResponse, error) {
		return c.lease.LeaseGrant(ctx, r)
	})
}

func (s *etcdServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (resp *pb.LeaseRevokeResponse, err error) {
	start := time.Now()
	defer func() { s.observe("lease_revoke", "", start, err) }()
	return forwardOr(s, ctx, func() (*pb.LeaseRevokeResponse, error) {
		res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindLeaseRevoke, LeaseRevoke: r})
		if err := s.resultErr(res, err); err != nil {
			return nil, err
		}
		rr := res.result.LeaseRevoke
		rr.Header = s.n.etcdHeader(rr.Header)
		return rr, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.LeaseRevokeResponse, error) {
		return c.lease.LeaseRevoke(ctx, r)
	})
}

// LeaseTimeToLive is answered by the leader, which alone knows the time left.
func (s *etcdServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (resp *pb.LeaseTimeToLiveResponse, err error) {
	start := time.Now()
	defer func() { s.observe("lease_ttl", "", start, err) }()
	return forwardOr(s, ctx, func() (*pb.LeaseTimeToLiveResponse, error) {
		if !s.n.lessor.primary() {
			return nil, s.notPrimary()
		}
		// Linearizable, as LeaseLeases: a client that saw the lease's keys deleted (a revoke
		// or an expiry committed) must not then be told the lease lives because this node
		// had not applied that entry yet.
		if _, err := s.n.readBarrier(ctx, raft.ReadLease, readOpts{keys: allKeys}); err != nil {
			return nil, s.n.etcdErrorKeepLeader(err)
		}
		granted, ok := s.n.store.Lease(r.ID)
		if !ok {
			return &pb.LeaseTimeToLiveResponse{Header: s.n.etcdHeader(nil), ID: r.ID, TTL: -1}, nil
		}
		resp := &pb.LeaseTimeToLiveResponse{Header: s.n.etcdHeader(nil), ID: r.ID, GrantedTTL: granted, TTL: s.n.lessor.remaining(r.ID, granted)}
		if r.Keys {
			keys, err := s.n.store.LeaseKeys(r.ID)
			if err != nil {
				return nil, s.n.etcdError(err)
			}
			resp.Keys = keys
		}
		return resp, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.LeaseTimeToLiveResponse, error) {
		return c.lease.LeaseTimeToLive(ctx, r)
	})
}

func (s *etcdServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (resp *pb.LeaseLeasesResponse, err error) {
	start := time.Now()
	defer func() { s.observe("lease_leases", "", start, err) }()
	return forwardOr(s, ctx, func() (*pb.LeaseLeasesResponse, error) {
		if _, err := s.n.readBarrier(ctx, raft.ReadLease, readOpts{keys: allKeys}); err != nil {
			return nil, s.n.etcdErrorKeepLeader(err)
		}
		leases := s.n.store.Leases()
		ids := make([]int64, 0, len(leases))
		for id := range leases {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		resp := &pb.LeaseLeasesResponse{Header: s.n.etcdHeader(nil)}
		for _, id := range ids {
			resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: id})
		}
		return resp, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.LeaseLeasesResponse, error) {
		return c.lease.LeaseLeases(ctx, r)
	})
}

// notPrimary is the error of a lease operation on a node that does not keep the deadlines:
// NotLeader with the leader, for forwardOr.
func (s *etcdServer) notPrimary() error {
	st := s.n.statusSnapshot()
	if st.Leader == raft.None || st.Leader == s.n.id {
		// Just elected, not yet keeping deadlines (or between terms): clients retry.
		return rpctypes.ErrGRPCLeaderChanged
	}
	return &raft.NotLeaderError{Leader: st.Leader, Term: st.Term}
}

// LeaseKeepAlive answers each keep-alive in order. A follower passes them to the leader over a
// stream of its own, opened again to the new leader after a leader change.
func (s *etcdServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	errc := make(chan error, 1)
	go func() { errc <- s.keepAliveLoop(stream) }()
	select {
	case err := <-errc:
		return err
	case <-s.n.drainc:
		return status.Error(codes.Unavailable, "etcdserver: this member is shutting down; keep the lease alive through another member")
	}
}

func (s *etcdServer) keepAliveLoop(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	var up pb.Lease_LeaseKeepAliveClient
	var upLeader uint64
	var cancelUp context.CancelFunc = func() {}
	defer func() { cancelUp() }()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.keepAliveOnce(ctx, req.ID, &up, &upLeader, &cancelUp)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (s *etcdServer) keepAliveOnce(ctx context.Context, id int64, up *pb.Lease_LeaseKeepAliveClient, upLeader *uint64, cancelUp *context.CancelFunc) (*pb.LeaseKeepAliveResponse, error) {
	for attempt := 0; ; attempt++ {
		ttl, found, ok := s.n.lessor.keepAlive(id)
		if ok {
			if !found {
				return &pb.LeaseKeepAliveResponse{Header: s.n.etcdHeader(nil), ID: id, TTL: 0}, nil
			}
			return &pb.LeaseKeepAliveResponse{Header: s.n.etcdHeader(nil), ID: id, TTL: ttl}, nil
		}
		leader := s.n.statusSnapshot().Leader
		switch {
		case leader == s.n.id:
			return nil, rpctypes.ErrGRPCLeaderChanged // just elected: not keeping deadlines yet
		case s.forwarded || leader == raft.None:
			return nil, rpctypes.ErrGRPCNoLeader
		}
		if *up == nil || *upLeader != leader {
			(*cancelUp)()
			c, err := s.n.fwd.conn(leader)
			if err != nil {
				return nil, rpctypes.ErrGRPCNoLeader
			}
			uctx, cancel := context.WithCancel(ctx)
			stream, err := pb.NewLeaseClient(c).LeaseKeepAlive(uctx)
			if err != nil {
				cancel()
				return nil, rpctypes.ErrGRPCNoLeader
			}
			*up, *upLeader, *cancelUp = stream, leader, cancel
		}
		if err := (*up).Send(&pb.LeaseKeepAliveRequest{ID: id}); err == nil {
			if resp, err := (*up).Recv(); err == nil {
				return resp, nil
			}
		}
		// The leader's stream broke (a leader change): drop it and try once more.
		(*cancelUp)()
		*up = nil
		if attempt >= 1 {
			return nil, status.Error(codes.Unavailable, "etcdserver: leader changed while passing on a keep-alive; retry")
		}
	}
}
