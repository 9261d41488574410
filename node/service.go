package node

import (
	"context"
	"errors"
	"time"

	"github.com/georaft/georaft/buildinfo"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/node/mvcc"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// Version is this build's version, from what the Go toolchain recorded in the binary.
var Version = buildinfo.Read().Version

// kvService implements georaftv1.KVServiceServer on top of a Node.
type kvService struct {
	georaftv1.UnimplementedKVServiceServer
	n *Node
}

func (s *kvService) Set(ctx context.Context, req *georaftv1.SetRequest) (*georaftv1.SetResponse, error) {
	start := time.Now()
	cmd := kv.Command{Op: kv.OpSet, Key: req.GetKey(), Value: req.GetValue()}
	cmd.ClientID, cmd.Seq = req.GetSession().GetClientId(), req.GetSession().GetSequence()
	res, err := s.n.writeV1(ctx, cmd)
	s.n.observe("set", start, err)
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.SetResponse{Header: s.n.header(res.index), Index: res.writeIndex()}, nil
}

func (s *kvService) Delete(ctx context.Context, req *georaftv1.DeleteRequest) (*georaftv1.DeleteResponse, error) {
	start := time.Now()
	cmd := kv.Command{Op: kv.OpDelete, Key: req.GetKey()}
	cmd.ClientID, cmd.Seq = req.GetSession().GetClientId(), req.GetSession().GetSequence()
	res, err := s.n.writeV1(ctx, cmd)
	s.n.observe("delete", start, err)
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.DeleteResponse{Header: s.n.header(res.index), Existed: res.result.Existed, Index: res.writeIndex()}, nil
}

func (s *kvService) Get(ctx context.Context, req *georaftv1.GetRequest) (*georaftv1.GetResponse, error) {
	start := time.Now()
	mode, err := req.GetReadMode().Mode()
	if err != nil {
		err = invalidArgument("read_mode", "%v: want lease, index, log or stale", err)
		s.n.observe("get", start, err)
		return nil, err
	}
	value, found, served, applied, err := s.n.get(ctx, req.GetKey(), mode)
	if s.n.observe("get", start, err) {
		s.n.m.reads.WithLabelValues(mode.String()).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.GetResponse{
		Header: s.n.header(applied), Found: found, Value: value, ServedMode: georaftv1.ReadModeOf(served),
	}, nil
}

func (s *kvService) Status(ctx context.Context, req *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error) {
	return s.n.statusResponse(ctx, req)
}

func (s *kvService) TransferLeader(ctx context.Context, req *georaftv1.TransferLeaderRequest) (*georaftv1.TransferLeaderResponse, error) {
	target := req.GetTargetId()
	if _, ok := s.n.cfg.PeerByID(target); !ok || target == raft.None {
		return nil, invalidArgument("target_id", "node %d is not a member of this cluster", target)
	}
	leader, term, err := s.n.TransferLeadership(ctx, target)
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.TransferLeaderResponse{LeaderId: leader, Term: term}, nil
}

func (n *Node) header(applied uint64) *georaftv1.ResponseHeader {
	v := n.lease.Load()
	st := n.statusSnapshot()
	if idx, _ := n.store.Applied(); idx > applied {
		applied = idx
	}
	return &georaftv1.ResponseHeader{NodeId: n.id, Term: v.term, LeaderId: st.Leader, AppliedIndex: applied}
}

// observe counts a client request: its latency when it succeeded (and reports true), a
// redirect when this node sent the client to the leader, an error otherwise.
func (n *Node) observe(op string, start time.Time, err error) bool {
	if err == nil {
		n.m.requests.WithLabelValues(op).Observe(time.Since(start).Seconds())
		return true
	}
	st, _ := status.FromError(n.toStatus(err))
	for _, d := range st.Details() {
		if _, ok := d.(*georaftv1.NotLeader); ok {
			n.m.redirects.WithLabelValues(op).Inc()
			return false
		}
	}
	n.m.requestErrors.WithLabelValues(op, st.Code().String()).Inc()
	return false
}

// admit refuses work the node must not do: after a storage failure, or while stopping.
func (n *Node) admit() error {
	if err := n.Failed(); err != nil {
		return err
	}
	if n.stopping.Load() {
		return errShuttingDown
	}
	return nil
}

// writeV1 checks a georaft.v1 write and proposes it as the state machine's command.
func (n *Node) writeV1(ctx context.Context, cmd kv.Command) (proposalResult, error) {
	if err := n.admit(); err != nil {
		return proposalResult{}, err
	}
	switch {
	case cmd.ClientID != 0 && cmd.Seq == 0:
		return proposalResult{}, invalidArgument("session.sequence", "session of client %d has sequence 0; sequences start at 1", cmd.ClientID)
	case cmd.ClientID == 0 && cmd.Seq != 0:
		return proposalResult{}, invalidArgument("session.client_id", "sequence %d without a client id", cmd.Seq)
	}
	if err := n.cfg.KVLimits().Check(cmd); err != nil {
		var le *kv.LimitError
		if errors.As(err, &le) {
			return proposalResult{}, invalidArgument(le.Field, "%v", err)
		}
		return proposalResult{}, invalidArgument("key", "%v", err)
	}
	n.dump.Request("client request received: %s", cmd)
	mc := mvcc.Command{Kind: mvcc.KindTxn, ClientID: cmd.ClientID, Seq: cmd.Seq, Op: cmd.Op}
	switch cmd.Op {
	case kv.OpSet:
		// prev_kv tells whether the key existed, which georaft.v1 reports.
		mc.Txn = mvcc.TxnOf(&etcdpb.RequestOp{Request: &etcdpb.RequestOp_RequestPut{RequestPut: &etcdpb.PutRequest{Key: cmd.Key, Value: cmd.Value, PrevKv: true}}})
	case kv.OpDelete:
		mc.Txn = mvcc.TxnOf(&etcdpb.RequestOp{Request: &etcdpb.RequestOp_RequestDeleteRange{RequestDeleteRange: &etcdpb.DeleteRangeRequest{Key: cmd.Key}}})
	case kv.OpGet:
		mc.Txn = mvcc.TxnOf(&etcdpb.RequestOp{Request: &etcdpb.RequestOp_RequestRange{RequestRange: &etcdpb.RangeRequest{Key: cmd.Key}}})
	}
	res, err := n.proposeCommand(ctx, &mc)
	if err == nil && res.result.Err != nil {
		err = resultError(res.result.Err)
	}
	return res, err
}

// proposeCommand proposes a command and waits until it is applied. A refusal by the state
// machine is in the result's Err, not the error.
func (n *Node) proposeCommand(ctx context.Context, cmd *mvcc.Command) (proposalResult, error) {
	data, err := cmd.Encode()
	if err != nil {
		return proposalResult{}, invalidArgument("request", "%v", err)
	}
	p := &proposal{data: data, done: make(chan proposalResult, 1)}
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return proposalResult{}, ctxErr(ctx)
	case <-n.donec:
		return proposalResult{}, n.stoppedErr()
	}
	select {
	case res := <-p.done:
		return res, res.err
	case <-ctx.Done():
		return proposalResult{}, ctxErr(ctx)
	case <-n.donec:
		return proposalResult{}, n.stoppedErr()
	}
}

// resultError maps a state machine refusal onto a client error.
func resultError(err error) error {
	if errors.Is(err, kv.ErrStaleSequence) {
		st := status.New(codes.FailedPrecondition, err.Error()+"; a client must not reuse a session for a new write before the previous one completed")
		if withDetail, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonStaleSequence, Domain: ErrorDomain}); derr == nil {
			st = withDetail
		}
		return st.Err()
	}
	if errors.Is(err, kv.ErrReusedSequence) {
		st := status.New(codes.FailedPrecondition, err.Error())
		if withDetail, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonReusedSequence, Domain: ErrorDomain}); derr == nil {
			st = withDetail
		}
		return st.Err()
	}
	return status.Errorf(codes.Internal, "%v", err)
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, "the request did not complete before its deadline")
	}
	return status.Error(codes.Canceled, "the request was canceled")
}

// get answers a read in the requested mode. It returns the value, whether the key exists, the
// mode that served it and the applied index it reflects.
func (n *Node) get(ctx context.Context, key []byte, mode raft.ReadMode) ([]byte, bool, raft.ReadMode, uint64, error) {
	if err := n.admit(); err != nil {
		return nil, false, mode, 0, err
	}
	if len(key) == 0 {
		return nil, false, mode, 0, invalidArgument("key", "key must not be empty")
	}
	if max := n.cfg.KVLimits().MaxKeyBytes; max > 0 && len(key) > max {
		return nil, false, mode, 0, invalidArgument("key", "key is %d bytes, limit %d", len(key), max)
	}
	n.dump.Request("client request received: %s (%s read)", kv.Command{Op: kv.OpGet, Key: key}, mode)
	if mode == raft.ReadLog {
		res, err := n.writeV1(ctx, kv.Command{Op: kv.OpGet, Key: key})
		if err != nil {
			return nil, false, mode, 0, err
		}
		var value []byte
		found := false
		if rr := res.result.Txn.GetResponses(); len(rr) == 1 {
			if kvs := rr[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
				value, found = kvs[0].Value, true
			}
		}
		return value, found, raft.ReadLog, res.index, nil
	}
	served, err := n.readBarrier(ctx, mode)
	if err != nil {
		return nil, false, mode, 0, err
	}
	applied, _ := n.store.Applied()
	value, found, err := n.store.Get(key)
	return value, found, served, applied, err
}

// readBarrier returns once the state machine may answer a read in mode: for lease and index
// reads, once it has applied everything committed when the read arrived; for stale reads, at
// once if this node heard from a leader within the staleness bound. It returns the mode that
// served (a lease read may fall back to ReadIndex). ReadLog is the caller's: it goes through
// the log.
func (n *Node) readBarrier(ctx context.Context, mode raft.ReadMode) (raft.ReadMode, error) {
	if err := n.admit(); err != nil {
		return mode, err
	}
	if !n.clock.countsSuspend {
		// This clock may stop while the machine sleeps: a lease or a freshness bound measured
		// on it could have run out in real time unseen. A lease read goes through ReadIndex,
		// which needs no clock; a stale read has no bound to promise and is refused.
		switch mode {
		case raft.ReadLease:
			mode = raft.ReadIndex
		case raft.ReadStale:
			return mode, errClockStopsInSuspend
		}
	}
	switch mode {
	case raft.ReadLease:
		// Fast path: the lease published by the loop, checked against the clock now.
		v := n.lease.Load()
		if v.leaseUntil > 0 && n.clock.Now() < v.leaseUntil {
			return raft.ReadLease, n.waitApplied(ctx, v.commit)
		}
	case raft.ReadStale:
		v := n.lease.Load()
		if v.staleUntil > 0 && n.clock.Now() <= v.staleUntil {
			return raft.ReadStale, nil
		}
		return mode, raft.ErrTooStale
	}
	r := &readRequest{mode: mode, done: make(chan readResult, 1)}
	select {
	case n.readc <- r:
	case <-ctx.Done():
		return mode, ctxErr(ctx)
	case <-n.donec:
		return mode, n.stoppedErr()
	}
	select {
	case res := <-r.done:
		if res.err != nil {
			return mode, res.err
		}
		return res.served, n.waitApplied(ctx, res.index)
	case <-ctx.Done():
		return mode, ctxErr(ctx)
	case <-n.donec:
		return mode, n.stoppedErr()
	}
}

// waitApplied waits until the state machine has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	for {
		wake := n.applyWake.Load()
		if applied, _ := n.store.Applied(); applied >= index {
			return nil
		}
		select {
		case <-*wake:
		case <-ctx.Done():
			return ctxErr(ctx)
		case <-n.donec:
			return n.stoppedErr()
		}
	}
}
