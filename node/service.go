package node

import (
	"context"
	"errors"
	"time"

	"github.com/georaft/georaft/buildinfo"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node/kv"
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
	res, err := s.n.write(ctx, cmd)
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
	res, err := s.n.write(ctx, cmd)
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
	if idx, _ := n.kv.Applied(); idx > applied {
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

// write proposes a command and waits until it is applied.
func (n *Node) write(ctx context.Context, cmd kv.Command) (proposalResult, error) {
	if err := n.admit(); err != nil {
		return proposalResult{}, err
	}
	switch {
	case cmd.ClientID != 0 && cmd.Seq == 0:
		return proposalResult{}, invalidArgument("session.sequence", "session of client %d has sequence 0; sequences start at 1", cmd.ClientID)
	case cmd.ClientID == 0 && cmd.Seq != 0:
		return proposalResult{}, invalidArgument("session.client_id", "sequence %d without a client id", cmd.Seq)
	}
	if err := n.kv.Limits().Check(cmd); err != nil {
		var le *kv.LimitError
		if errors.As(err, &le) {
			return proposalResult{}, invalidArgument(le.Field, "%v", err)
		}
		return proposalResult{}, invalidArgument("key", "%v", err)
	}
	n.dump.Request("client request received: %s", cmd)
	data, err := cmd.Encode()
	if err != nil {
		return proposalResult{}, invalidArgument("key", "%v", err)
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
		if res.err != nil {
			return res, res.err
		}
		if res.result.Err != nil {
			return res, resultError(res.result.Err)
		}
		return res, nil
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
	if max := n.kv.Limits().MaxKeyBytes; max > 0 && len(key) > max {
		return nil, false, mode, 0, invalidArgument("key", "key is %d bytes, limit %d", len(key), max)
	}
	n.dump.Request("client request received: %s (%s read)", kv.Command{Op: kv.OpGet, Key: key}, mode)

	switch mode {
	case raft.ReadLease:
		// Fast path: the lease published by the loop, checked against the clock now.
		v := n.lease.Load()
		if v.leaseUntil > 0 && n.clock.Now() < v.leaseUntil {
			return n.readAt(ctx, key, v.commit, raft.ReadLease)
		}
	case raft.ReadStale:
		v := n.lease.Load()
		if v.staleUntil > 0 && n.clock.Now() <= v.staleUntil {
			value, found := n.kv.Get(key)
			applied, _ := n.kv.Applied()
			return value, found, raft.ReadStale, applied, nil
		}
		return nil, false, mode, 0, raft.ErrTooStale
	case raft.ReadLog:
		cmd := kv.Command{Op: kv.OpGet, Key: key}
		res, err := n.write(ctx, cmd)
		if err != nil {
			return nil, false, mode, 0, err
		}
		return res.result.Value, res.result.Found, raft.ReadLog, res.index, nil
	}

	r := &readRequest{mode: mode, done: make(chan readResult, 1)}
	select {
	case n.readc <- r:
	case <-ctx.Done():
		return nil, false, mode, 0, ctxErr(ctx)
	case <-n.donec:
		return nil, false, mode, 0, n.stoppedErr()
	}
	select {
	case res := <-r.done:
		if res.err != nil {
			return nil, false, mode, 0, res.err
		}
		return n.readAt(ctx, key, res.index, res.served)
	case <-ctx.Done():
		return nil, false, mode, 0, ctxErr(ctx)
	case <-n.donec:
		return nil, false, mode, 0, n.stoppedErr()
	}
}

// readAt waits until the state machine has applied index, then reads key.
func (n *Node) readAt(ctx context.Context, key []byte, index uint64, served raft.ReadMode) ([]byte, bool, raft.ReadMode, uint64, error) {
	for {
		wake := n.applyWake.Load()
		applied, _ := n.kv.Applied()
		if applied >= index {
			value, found := n.kv.Get(key)
			return value, found, served, applied, nil
		}
		select {
		case <-*wake:
		case <-ctx.Done():
			return nil, false, served, 0, ctxErr(ctx)
		case <-n.donec:
			return nil, false, served, 0, n.stoppedErr()
		}
	}
}
