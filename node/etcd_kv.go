package node

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/readmode"
)

// The etcd v3 API (go.etcd.io/etcd/api/v3's own service definitions), served on the client
// port beside georaft.v1, and on the peer port for requests a follower forwards to the leader.
// docs/etcd.md lists what is served and how it differs from etcd.

// ReadModeMetadata is the gRPC metadata key with which an etcd client picks how a
// linearizable read (serializable=false) is served: "lease" (the default), "index" or "log".
const ReadModeMetadata = "georaft-read-mode"

// MaxStalenessMetadata is the gRPC metadata key with which an etcd client bounds how old a
// serializable read may be ("200ms"): a node that cannot promise it refuses the read
// (UNAVAILABLE). StalenessBoundMetadata is the response header in which a serializable
// read's answer says how old it may be at most.
const (
	MaxStalenessMetadata   = "georaft-max-staleness"
	StalenessBoundMetadata = "georaft-staleness-bound"
)

// PerKeyWaitMetadata is the gRPC metadata key with which an etcd client lets its linearizable
// lease reads wait only for the held entries that touch their keys ("on"; the node's
// read_leases.per_key_wait must be on too). Without it a lease read through the etcd API
// waits for every entry the node holds, so that its header revision is what etcd promises:
// at least the revision of every write acknowledged before the read began, hence never lower
// than one reported earlier, whatever the key or the node (clientv3/ordering checks exactly
// that). With it the header revision is exact only for the keys read (docs/reads.md).
const PerKeyWaitMetadata = "georaft-per-key-wait"

// maxTxnOps is etcd's default --max-txn-ops: the most ops in one branch of a transaction.
const maxTxnOps = 128

// etcdServer serves the etcd API on a node. forwarded is true on the peer port: those requests
// come from a follower and are served here or refused, never forwarded again.
type etcdServer struct {
	pb.UnimplementedKVServer
	pb.UnimplementedWatchServer
	pb.UnimplementedLeaseServer
	pb.UnimplementedClusterServer
	pb.UnimplementedMaintenanceServer
	pb.UnimplementedAuthServer
	n         *Node
	forwarded bool
}

// clusterID64 is the etcd cluster ID: the configured cluster name hashed to 64 bits.
func clusterID64(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// etcdHeader fills a response header as etcd does: revision at least rev (the store's now if
// rev is 0 or older).
func (n *Node) etcdHeader(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	if h.Revision == 0 {
		h.Revision = n.store.Rev()
	}
	h.ClusterId = clusterID64(n.cfg.ClusterID)
	h.MemberId = n.id
	h.RaftTerm = n.view.Load().Term
	return h
}

// etcdError maps an internal error onto the error an etcd client expects.
func (n *Node) etcdError(err error) error {
	if err == nil {
		return nil
	}
	var nl *raft.NotLeaderError
	var failed *errFailed
	switch {
	case errors.Is(err, mvcc.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, mvcc.ErrFutureRev):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, mvcc.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, mvcc.ErrLeaseExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, mvcc.ErrKeyNotFound):
		return rpctypes.ErrGRPCKeyNotFound
	case errors.As(err, &nl):
		if nl.Leader == raft.None {
			return rpctypes.ErrGRPCNoLeader
		}
		return rpctypes.ErrGRPCNotLeader
	case errors.As(err, &failed):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, errShuttingDown):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, raft.ErrProposalDropped), errors.Is(err, errProposalLost), errors.Is(err, errLeadershipGone),
		errors.Is(err, raft.ErrLeaseNotHeld):
		return rpctypes.ErrGRPCLeaderChanged
	case errors.Is(err, raft.ErrTooStale):
		return status.Error(codes.Unavailable, "etcdserver: a serializable read here would be too stale: "+err.Error())
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.DeadlineExceeded:
			return rpctypes.ErrGRPCTimeout
		case codes.Canceled:
			return rpctypes.ErrGRPCCanceled
		}
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

func isNotLeader(err error) (uint64, bool) {
	var nl *raft.NotLeaderError
	if errors.As(err, &nl) && nl.Leader != raft.None {
		return nl.Leader, true
	}
	return 0, false
}

// readModeOf is the mode a linearizable read asks for in its metadata.
func readModeOf(ctx context.Context) (raft.ReadMode, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(ReadModeMetadata)
	if len(v) == 0 || strings.TrimSpace(v[0]) == "" {
		return readmode.Lease, nil
	}
	// A stale read is asked for the etcd way, with serializable.
	if m, err := readmode.Parse(v[0]); err == nil && m != readmode.Stale {
		return m, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "etcdserver: metadata %s is %q: want lease, index or log", ReadModeMetadata, v[0])
}

// leaseReadKeys is what an etcd lease read of keys waits for: every held entry (allKeys),
// unless the client asked for the per-key wait (PerKeyWaitMetadata).
func leaseReadKeys(ctx context.Context, keys readKeys) (readKeys, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(PerKeyWaitMetadata)
	if len(v) == 0 {
		return allKeys, nil
	}
	switch strings.TrimSpace(v[0]) {
	case "on":
		return keys, nil
	case "off", "":
		return allKeys, nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "etcdserver: metadata %s is %q: want on or off", PerKeyWaitMetadata, v[0])
}

// local runs f here, or on the leader when this node is not it: etcd clients do not follow
// redirects, so a follower forwards over the peer port. A request that came forwarded is
// never forwarded again.
func forwardOr[T any](s *etcdServer, ctx context.Context, local func() (T, error), remote func(context.Context, *etcdClients) (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		leader := s.n.awaitLeader(ctx)
		if !s.forwarded && leader != raft.None && leader != s.n.id {
			out, err := forwardTo(s.n, ctx, leader, remote)
			if errors.Is(err, errLeaderUnreachable) {
				if attempt < 3 {
					// The request never reached it: safe to send again once a leader is known.
					s.n.awaitLeaderOtherThan(ctx, leader)
					continue
				}
				err = rpctypes.ErrGRPCNoLeader
			}
			return out, err
		}
		out, err := local()
		if leader, ok := isNotLeader(err); ok && !s.forwarded && leader != s.n.id && attempt < 3 {
			continue // leadership moved before the proposal: go to the new leader
		}
		return out, err
	}
}

// leaderWait bounds how long a request waits for an election to name a leader.
func (n *Node) leaderWait() time.Duration { return 2 * n.cfg.Timing.ElectionTimeoutMax }

// awaitLeader returns the leader this node knows, waiting (within leaderWait and ctx) for an
// election under way: etcd's clients do not retry writes on "no leader", so a failover
// would otherwise fail every write sent during it.
func (n *Node) awaitLeader(ctx context.Context) uint64 {
	return n.awaitLeaderOtherThan(ctx, raft.None)
}

// awaitLeaderOtherThan waits until a leader other than not is known, and returns it (or
// raft.None once the wait is over).
func (n *Node) awaitLeaderOtherThan(ctx context.Context, not uint64) uint64 {
	deadline := time.Now().Add(n.leaderWait())
	for {
		if l := n.statusSnapshot().Leader; l != raft.None && l != not {
			return l
		}
		if time.Now().After(deadline) || ctx.Err() != nil || n.admit() != nil {
			return raft.None
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
		case <-n.donec:
		}
	}
}

// observe counts an etcd request as the node counts its own (op etcd.range, etcd.put, ...),
// and a read's latency under the read mode it asked for.
func (s *etcdServer) observe(op, mode string, start time.Time, err error) {
	if s.n.observe("etcd."+op, start, err) && mode != "" {
		s.n.m.reads.WithLabelValues(mode).Observe(time.Since(start).Seconds())
	}
}

// Range serves a read: serializable from this node's state within timing.max_staleness,
// otherwise linearizable, on the leader, by lease (or the mode the metadata asks for).
func (s *etcdServer) Range(ctx context.Context, r *pb.RangeRequest) (resp *pb.RangeResponse, err error) {
	start := time.Now()
	mode := "stale"
	defer func() { s.observe("range", mode, start, err) }()
	if err := checkRange(r); err != nil {
		return nil, err
	}
	if r.Serializable {
		if err := s.staleBarrier(ctx); err != nil {
			return nil, err
		}
		resp, err := s.n.store.Range(r)
		if err != nil {
			return nil, s.n.etcdError(err)
		}
		resp.Header = s.n.etcdHeader(resp.Header)
		return resp, nil
	}
	rm, err := readModeOf(ctx)
	if err != nil {
		return nil, err
	}
	mode = rm.String()
	keys, err := leaseReadKeys(ctx, keysOfRange(r))
	if err != nil {
		return nil, err
	}
	if ok, err := s.localLease(ctx, rm, keys); err != nil {
		return nil, err
	} else if ok {
		resp, err := s.n.store.Range(r)
		if err != nil {
			return nil, s.n.etcdError(err)
		}
		resp.Header = s.n.etcdHeader(resp.Header)
		return resp, nil
	}
	return forwardOr(s, ctx, func() (*pb.RangeResponse, error) {
		if rm == raft.ReadLog {
			res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindTxn, Txn: mvcc.TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}})})
			if err := s.resultErr(res, err); err != nil {
				return nil, err
			}
			rr := res.result.Txn.Responses[0].GetResponseRange()
			rr.Header = s.n.etcdHeader(rr.Header)
			return rr, nil
		}
		if _, err := s.n.readBarrier(ctx, rm, readOpts{keys: keys}); err != nil {
			return nil, s.n.etcdErrorKeepLeader(err)
		}
		resp, err := s.n.store.Range(r)
		if err != nil {
			return nil, s.n.etcdError(err)
		}
		resp.Header = s.n.etcdHeader(resp.Header)
		return resp, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.RangeResponse, error) { return c.kv.Range(ctx, r) })
}

// localLease answers a linearizable lease read here when this node's view holds a lease (the
// leader's, or a read lease as a holder), instead of forwarding it to the leader. It returns
// false when the read must go on to the leader: no lease here, or it ran out before what it
// covers was applied.
func (s *etcdServer) localLease(ctx context.Context, rm raft.ReadMode, keys readKeys) (bool, error) {
	if rm != raft.ReadLease || s.forwarded || !s.n.clock.countsSuspend {
		return false, nil // a clock that may stop in suspend serves no lease (readBarrier)
	}
	if err := s.n.admit(); err != nil {
		return false, s.n.etcdError(err)
	}
	err := s.n.leaseRead(ctx, keys)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errLeaseRanOut), errors.Is(err, raft.ErrLeaseNotHeld):
		return false, nil
	}
	return false, s.n.etcdError(err)
}

// staleBarrier waits until a serializable read may be answered here, within the staleness
// the metadata asks for (MaxStalenessMetadata) or this node's own bound, and tells the
// client in the response metadata how old the answer may be (StalenessBoundMetadata).
func (s *etcdServer) staleBarrier(ctx context.Context) error {
	asked, err := maxStalenessOf(ctx)
	if err != nil {
		return err
	}
	served, err := s.n.readBarrier(ctx, raft.ReadStale, readOpts{maxStaleness: asked})
	if err != nil {
		return s.n.etcdError(err)
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(StalenessBoundMetadata, served.staleBound.String()))
	return nil
}

// maxStalenessOf is the staleness bound a serializable read asks for in its metadata (0: none).
func maxStalenessOf(ctx context.Context) (time.Duration, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(MaxStalenessMetadata)
	if len(v) == 0 || strings.TrimSpace(v[0]) == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v[0]))
	if err != nil || d <= 0 {
		return 0, status.Errorf(codes.InvalidArgument, "etcdserver: metadata %s is %q: want a positive duration like 200ms", MaxStalenessMetadata, v[0])
	}
	return d, nil
}

// etcdErrorKeepLeader is etcdError, except that a NotLeaderError with a leader stays as it is,
// so forwardOr can forward.
func (n *Node) etcdErrorKeepLeader(err error) error {
	if _, ok := isNotLeader(err); ok {
		return err
	}
	return n.etcdError(err)
}

// resultErr turns a proposal's outcome into the client's error (nil when it succeeded).
func (s *etcdServer) resultErr(res proposalResult, err error) error {
	if err != nil {
		return s.n.etcdErrorKeepLeader(err)
	}
	if res.result.Err != nil {
		return s.n.etcdError(res.result.Err)
	}
	return nil
}

func (s *etcdServer) Put(ctx context.Context, r *pb.PutRequest) (resp *pb.PutResponse, err error) {
	start := time.Now()
	defer func() { s.observe("put", "", start, err) }()
	if err := checkPut(r); err != nil {
		return nil, err
	}
	if err := s.checkSize(r); err != nil {
		return nil, err
	}
	return forwardOr(s, ctx, func() (*pb.PutResponse, error) {
		res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindTxn, Txn: mvcc.TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: r}})})
		if err := s.resultErr(res, err); err != nil {
			return nil, err
		}
		pr := res.result.Txn.Responses[0].GetResponsePut()
		pr.Header = s.n.etcdHeader(pr.Header)
		return pr, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.PutResponse, error) { return c.kv.Put(ctx, r) })
}

func (s *etcdServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (resp *pb.DeleteRangeResponse, err error) {
	start := time.Now()
	defer func() { s.observe("delete_range", "", start, err) }()
	if len(r.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	if err := s.checkSize(r); err != nil {
		return nil, err
	}
	return forwardOr(s, ctx, func() (*pb.DeleteRangeResponse, error) {
		res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindTxn, Txn: mvcc.TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}})})
		if err := s.resultErr(res, err); err != nil {
			return nil, err
		}
		dr := res.result.Txn.Responses[0].GetResponseDeleteRange()
		dr.Header = s.n.etcdHeader(dr.Header)
		return dr, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.DeleteRangeResponse, error) {
		return c.kv.DeleteRange(ctx, r)
	})
}

func (s *etcdServer) Txn(ctx context.Context, r *pb.TxnRequest) (resp *pb.TxnResponse, err error) {
	start := time.Now()
	mode := ""
	defer func() { s.observe("txn", mode, start, err) }()
	if err := checkTxn(r, maxTxnOps); err != nil {
		return nil, err
	}
	if err := checkTxnKeys(r); err != nil {
		return nil, err
	}
	if err := s.checkSize(r); err != nil {
		return nil, err
	}
	if mvcc.IsReadOnly(r) {
		// A transaction that only reads is a read: serializable if all its ranges are.
		if txnSerializable(r) {
			mode = "stale"
			if err := s.staleBarrier(ctx); err != nil {
				return nil, err
			}
			return s.readTxn(r)
		}
		rm, err := readModeOf(ctx)
		if err != nil {
			return nil, err
		}
		mode = rm.String()
		if rm != raft.ReadLog {
			keys, err := leaseReadKeys(ctx, keysOfReadTxn(r))
			if err != nil {
				return nil, err
			}
			if ok, err := s.localLease(ctx, rm, keys); err != nil {
				return nil, err
			} else if ok {
				return s.readTxn(r)
			}
			return forwardOr(s, ctx, func() (*pb.TxnResponse, error) {
				if _, err := s.n.readBarrier(ctx, rm, readOpts{keys: keys}); err != nil {
					return nil, s.n.etcdErrorKeepLeader(err)
				}
				return s.readTxn(r)
			}, func(ctx context.Context, c *etcdClients) (*pb.TxnResponse, error) { return c.kv.Txn(ctx, r) })
		}
	}
	return forwardOr(s, ctx, func() (*pb.TxnResponse, error) {
		res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindTxn, Txn: r})
		if err := s.resultErr(res, err); err != nil {
			return nil, err
		}
		tr := res.result.Txn
		tr.Header = s.n.etcdHeader(tr.Header)
		return tr, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.TxnResponse, error) { return c.kv.Txn(ctx, r) })
}

func (s *etcdServer) readTxn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	resp, err := s.n.store.ReadTxn(r)
	if err != nil {
		return nil, s.n.etcdError(err)
	}
	resp.Header = s.n.etcdHeader(resp.Header)
	return resp, nil
}

func (s *etcdServer) Compact(ctx context.Context, r *pb.CompactionRequest) (resp *pb.CompactionResponse, err error) {
	start := time.Now()
	defer func() { s.observe("compact", "", start, err) }()
	return forwardOr(s, ctx, func() (*pb.CompactionResponse, error) {
		res, err := s.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindCompact, Compact: r})
		if err := s.resultErr(res, err); err != nil {
			return nil, err
		}
		if r.Physical {
			// Answered once the old versions are gone from this node's engine, as etcd
			// answers once its backend compaction finished.
			select {
			case <-s.n.store.CompactDone(r.Revision):
			case <-ctx.Done():
				return nil, s.n.etcdError(ctxErr(ctx))
			}
		}
		cr := res.result.Compact
		cr.Header = s.n.etcdHeader(cr.Header)
		return cr, nil
	}, func(ctx context.Context, c *etcdClients) (*pb.CompactionResponse, error) { return c.kv.Compact(ctx, r) })
}

// RangeStream (etcd 3.7) is not served: clients fall back to Range.
func (s *etcdServer) RangeStream(*pb.RangeRequest, pb.KV_RangeStreamServer) error {
	return status.Error(codes.Unimplemented, "georaft does not serve RangeStream; use Range (with limit and a following key for large ranges)")
}

// requestSlackBytes is how far over limits.max_request_bytes the client port still decodes a
// request, so that requestSize refuses it with the API's error (etcd's grpcOverheadBytes).
const requestSlackBytes = 512 << 10

// requestSize refuses a request over limits.max_request_bytes: on the etcd API with etcd's
// "request is too large" (a transaction whose puts each fit can still be over it), elsewhere
// RESOURCE_EXHAUSTED, as gRPC answers what is too large to decode.
func requestSize(max int) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok && max > 0 {
			if n := proto.Size(m); n > max {
				if strings.HasPrefix(info.FullMethod, "/etcdserverpb.") {
					return nil, rpctypes.ErrGRPCRequestTooLarge
				}
				return nil, status.Errorf(codes.ResourceExhausted, "request is %d bytes, over limits.max_request_bytes (%d)", n, max)
			}
		}
		return h(ctx, req)
	}
}

// checkSize refuses a request larger than limits.max_request_bytes, and keys and values over
// their limits, with etcd's "request is too large".
func (s *etcdServer) checkSize(m proto.Message) error {
	l := s.n.cfg.KVLimits()
	if l.MaxRequestBytes > 0 && proto.Size(m) > l.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	var bad bool
	visitPuts(m, func(p *pb.PutRequest) {
		if err := l.Check(kv.Command{Op: kv.OpSet, Key: p.Key, Value: p.Value}); err != nil {
			var le *kv.LimitError
			if errors.As(err, &le) && le.Field != kv.FieldRequest {
				bad = true
			}
		}
	})
	if bad {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

func visitPuts(m proto.Message, f func(*pb.PutRequest)) {
	switch v := m.(type) {
	case *pb.PutRequest:
		f(v)
	case *pb.TxnRequest:
		for _, ops := range [][]*pb.RequestOp{v.Success, v.Failure} {
			for _, op := range ops {
				if p := op.GetRequestPut(); p != nil {
					f(p)
				}
				if t := op.GetRequestTxn(); t != nil {
					visitPuts(t, f)
				}
			}
		}
	}
}

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

// checkTxn refuses what etcd refuses before proposing: too many ops, empty keys, an op without
// a request. Nested transactions share the budget of ops.
func checkTxn(r *pb.TxnRequest, budget int) error {
	ops := max(len(r.Compare), len(r.Success), len(r.Failure))
	if ops > budget {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, list := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range list {
			var err error
			switch v := op.GetRequest().(type) {
			case *pb.RequestOp_RequestRange:
				err = checkRange(v.RequestRange)
			case *pb.RequestOp_RequestPut:
				err = checkPut(v.RequestPut)
			case *pb.RequestOp_RequestDeleteRange:
				if len(v.RequestDeleteRange.GetKey()) == 0 {
					err = rpctypes.ErrGRPCEmptyKey
				}
			case *pb.RequestOp_RequestTxn:
				err = checkTxn(v.RequestTxn, budget-ops)
			default:
				err = rpctypes.ErrGRPCKeyNotFound
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTxnKeys refuses a branch that writes one key twice (two puts, or a put inside a
// deleted range), at any depth; the two branches of a nested transaction may put the same key.
func checkTxnKeys(r *pb.TxnRequest) error {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		if _, _, err := branchWrites(ops); err != nil {
			return err
		}
	}
	return nil
}

type keyRange struct{ key, end []byte }

func (kr keyRange) contains(k []byte) bool {
	if len(kr.end) == 0 {
		return bytes.Equal(k, kr.key)
	}
	if kr.end[0] == 0 && len(kr.end) == 1 {
		return bytes.Compare(k, kr.key) >= 0
	}
	return bytes.Compare(k, kr.key) >= 0 && bytes.Compare(k, kr.end) < 0
}

func deletedBy(dels []keyRange, k string) bool {
	for _, d := range dels {
		if d.contains([]byte(k)) {
			return true
		}
	}
	return false
}

// branchWrites returns the keys a branch puts and the ranges it deletes.
func branchWrites(ops []*pb.RequestOp) (map[string]bool, []keyRange, error) {
	puts := map[string]bool{}
	var dels []keyRange
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			dels = append(dels, keyRange{d.Key, d.RangeEnd})
		}
	}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		thenPuts, thenDels, err := branchWrites(t.Success)
		if err != nil {
			return nil, nil, err
		}
		elsePuts, elseDels, err := branchWrites(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range thenPuts {
			if puts[k] || deletedBy(dels, k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
		}
		for k := range elsePuts {
			if (puts[k] && !thenPuts[k]) || deletedBy(dels, k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
		}
		for k := range thenPuts {
			puts[k] = true
		}
		for k := range elsePuts {
			puts[k] = true
		}
		dels = append(dels, thenDels...)
		dels = append(dels, elseDels...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if puts[k] || deletedBy(dels, k) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = true
	}
	return puts, dels, nil
}

func txnSerializable(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if rr := op.GetRequestRange(); rr == nil || !rr.Serializable {
				return false
			}
		}
	}
	return true
}
