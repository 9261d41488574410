package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/georaft/georaft/buildinfo"

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
	if req.GetMaxStalenessNanos() < 0 {
		err = invalidArgument("max_staleness_nanos", "max_staleness_nanos must not be negative, got %d", req.GetMaxStalenessNanos())
		s.n.observe("get", start, err)
		return nil, err
	}
	value, found, served, applied, err := s.n.get(ctx, req.GetKey(), mode, time.Duration(req.GetMaxStalenessNanos()))
	if s.n.observe("get", start, err) {
		s.n.m.reads.WithLabelValues(mode.String()).Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.GetResponse{
		Header: s.n.header(applied), Found: found, Value: value, ServedMode: georaftv1.ReadModeOf(served.mode),
		StalenessBoundNanos: int64(served.staleBound),
	}, nil
}

func (s *kvService) Status(ctx context.Context, req *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error) {
	return s.n.statusResponse(ctx, req)
}

func (s *kvService) TransferLeader(ctx context.Context, req *georaftv1.TransferLeaderRequest) (*georaftv1.TransferLeaderResponse, error) {
	target := req.GetTargetId()
	if !s.n.members().isVoter(target) || target == raft.None {
		return nil, invalidArgument("target_id", "node %d is not a voter of this cluster (%v)", target, s.n.members().conf)
	}
	leader, term, err := s.n.TransferLeadership(ctx, target)
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.TransferLeaderResponse{LeaderId: leader, Term: term}, nil
}

func (s *kvService) SetReadLeaseHolders(ctx context.Context, req *georaftv1.SetReadLeaseHoldersRequest) (*georaftv1.SetReadLeaseHoldersResponse, error) {
	if err := s.n.admit(); err != nil {
		return nil, s.n.toStatus(err)
	}
	holders, index, err := s.n.SetReadLeaseHolders(ctx, req.GetHolders())
	if err != nil {
		return nil, s.n.toStatus(err)
	}
	return &georaftv1.SetReadLeaseHoldersResponse{Holders: holders, Index: index}, nil
}

func (n *Node) header(applied uint64) *georaftv1.ResponseHeader {
	v := n.view.Load()
	st := n.statusSnapshot()
	if idx, _ := n.store.Applied(); idx > applied {
		applied = idx
	}
	return &georaftv1.ResponseHeader{NodeId: n.id, Term: v.Term, LeaderId: st.Leader, AppliedIndex: applied}
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
	switch {
	case errors.Is(err, kv.ErrStaleSequence):
		return failedPrecondition(ReasonStaleSequence, err.Error()+"; a client must not reuse a session for a new write before the previous one completed")
	case errors.Is(err, kv.ErrReusedSequence):
		return failedPrecondition(ReasonReusedSequence, err.Error())
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
func (n *Node) get(ctx context.Context, key []byte, mode raft.ReadMode, maxStale time.Duration) ([]byte, bool, readServed, uint64, error) {
	if err := n.admit(); err != nil {
		return nil, false, readServed{mode: mode}, 0, err
	}
	if len(key) == 0 {
		return nil, false, readServed{mode: mode}, 0, invalidArgument("key", "key must not be empty")
	}
	if max := n.cfg.KVLimits().MaxKeyBytes; max > 0 && len(key) > max {
		return nil, false, readServed{mode: mode}, 0, invalidArgument("key", "key is %d bytes, limit %d", len(key), max)
	}
	n.dump.Request("client request received: %s (%s read)", kv.Command{Op: kv.OpGet, Key: key}, mode)
	if mode == raft.ReadLog {
		res, err := n.writeV1(ctx, kv.Command{Op: kv.OpGet, Key: key})
		if err != nil {
			return nil, false, readServed{mode: mode}, 0, err
		}
		var value []byte
		found := false
		if rr := res.result.Txn.GetResponses(); len(rr) == 1 {
			if kvs := rr[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
				value, found = kvs[0].Value, true
			}
		}
		return value, found, readServed{mode: raft.ReadLog}, res.index, nil
	}
	served, err := n.readBarrier(ctx, mode, readOpts{keys: keysOfGet(key), maxStaleness: maxStale})
	if err != nil {
		return nil, false, served, 0, err
	}
	applied, _ := n.store.Applied()
	value, found, err := n.store.Get(key)
	return value, found, served, applied, err
}

// readRequestOpts is what a read asks besides its mode.
type readOpts struct {
	// keys is what the read reads, for the per-key wait of a lease read (allKeys: every
	// held entry).
	keys readKeys
	// maxStaleness, for a stale read: refuse it if this node cannot promise data at most
	// this old (0: the node's own bound, timing.max_staleness).
	maxStaleness time.Duration
}

// readServed says how a read was served.
type readServed struct {
	mode raft.ReadMode
	// staleBound, for a stale read: how old the answer may be at most, as this node can
	// promise from its view when it answered.
	staleBound time.Duration
}

// errLeaseRanOut: a lease read's lease ended before what it held was applied.
var errLeaseRanOut = errors.New("the read lease ran out before the entries it covers were applied")

// readBarrier returns once the state machine may answer a read in mode: for lease reads,
// once it has applied what the published view (raft.ReadView) names, at the leader or at a
// read-lease holder; for index reads, once the leader confirmed its commit index and it is
// applied; for stale reads, once the view vouches for the state within the staleness bound.
// It returns the mode that served (a lease read may fall back to ReadIndex at the leader; at a
// follower without a read lease it fails with NotLeader, for a redirect). ReadLog is the
// caller's: it goes through the log.
func (n *Node) readBarrier(ctx context.Context, mode raft.ReadMode, o readOpts) (readServed, error) {
	if err := n.admit(); err != nil {
		return readServed{mode: mode}, err
	}
	if !n.clock.countsSuspend {
		// This clock may stop while the machine sleeps: a lease or a freshness bound measured
		// on it could have run out in real time unseen. A lease read goes through ReadIndex,
		// which needs no clock; a stale read has no bound to promise and is refused.
		switch mode {
		case raft.ReadLease:
			mode = raft.ReadIndex
		case raft.ReadStale:
			return readServed{mode: mode}, errClockStopsInSuspend
		}
	}
	switch mode {
	case raft.ReadLease:
		// Fast path: the view the loop published, checked against the clock now.
		err := n.leaseRead(ctx, o.keys)
		if err == nil {
			return readServed{mode: raft.ReadLease}, nil
		}
		if !errors.Is(err, errLeaseRanOut) && !errors.Is(err, raft.ErrLeaseNotHeld) {
			return readServed{mode: mode}, err
		}
	case raft.ReadStale:
		bound, err := n.staleRead(ctx, o.maxStaleness)
		return readServed{mode: raft.ReadStale, staleBound: bound}, err
	}
	r := &readRequest{mode: mode, done: make(chan readResult, 1)}
	select {
	case n.readc <- r:
	case <-ctx.Done():
		return readServed{mode: mode}, ctxErr(ctx)
	case <-n.donec:
		return readServed{mode: mode}, n.stoppedErr()
	}
	select {
	case res := <-r.done:
		if res.err != nil {
			return readServed{mode: mode}, res.err
		}
		return readServed{mode: res.served}, n.waitApplied(ctx, res.index)
	case <-ctx.Done():
		return readServed{mode: mode}, ctxErr(ctx)
	case <-n.donec:
		return readServed{mode: mode}, n.stoppedErr()
	}
}

// leaseRead waits until a lease read of keys may be answered from the state machine: the
// published view holds a lease (the leader's, or this holder's read lease) now, and what it
// names is applied, refined by key (pending.go). It fails with raft.ErrLeaseNotHeld when the
// view holds none, and errLeaseRanOut when the lease ends first: an entry that never commits
// (its leader gone) would otherwise keep the read waiting for ever. A read that began under
// the lease may be answered after it ends: what it waited for covers every write
// acknowledged before it began (docs/reads.md).
func (n *Node) leaseRead(ctx context.Context, keys readKeys) error {
	v := n.view.Load()
	index, ok := v.Lease(n.clock.Now())
	if !ok {
		return raft.ErrLeaseNotHeld
	}
	if n.cfg.ReadLeases.PerKeyWait {
		index = n.pending.waitIndex(keys, index)
	}
	return n.waitAppliedUntil(ctx, index, v.LeaseUntil)
}

// staleRead waits until a stale read may be answered, and returns how old the answer may be
// at most: the view's state is current as of StaleUntil − max staleness on this node's clock,
// once StaleIndex is applied.
func (n *Node) staleRead(ctx context.Context, asked time.Duration) (time.Duration, error) {
	v := n.view.Load()
	index, ok := v.Stale(n.clock.Now())
	if !ok {
		if v.StaleUntil == 0 {
			return 0, fmt.Errorf("%w: this node has not heard from a leader", raft.ErrTooStale)
		}
		return 0, fmt.Errorf("%w: its state may be %v old, more than timing.max_staleness %v",
			raft.ErrTooStale, n.staleAge(v), n.maxStaleness)
	}
	if err := n.waitApplied(ctx, index); err != nil {
		return 0, err
	}
	bound := n.staleAge(v)
	if asked > 0 && bound > asked {
		return bound, &tooStaleError{bound: bound, asked: asked}
	}
	return bound, nil
}

// staleAge is how old the view's state may be now.
func (n *Node) staleAge(v *raft.ReadView) time.Duration {
	return max(0, n.clock.Now()-(v.StaleUntil-n.maxStaleness))
}

// tooStaleError refuses a stale read whose client asked for fresher data than this node can
// promise.
type tooStaleError struct {
	bound, asked time.Duration
}

func (e *tooStaleError) Error() string {
	return fmt.Sprintf("this node's state may be up to %v old, more than the %v asked for", e.bound.Round(time.Millisecond), e.asked)
}

func (e *tooStaleError) Unwrap() error { return raft.ErrTooStale }

// waitAppliedUntil is waitApplied, giving up with errLeaseRanOut once the node's clock
// reaches until.
func (n *Node) waitAppliedUntil(ctx context.Context, index uint64, until time.Duration) error {
	if applied, _ := n.store.Applied(); applied >= index {
		return nil
	}
	timer := time.NewTimer(max(0, n.clock.Until(until)))
	defer timer.Stop()
	return n.waitAppliedOr(ctx, index, timer.C)
}

// waitApplied waits until the state machine has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	return n.waitAppliedOr(ctx, index, nil)
}

// waitAppliedOr waits until the state machine has applied index, or gives up with
// errLeaseRanOut when expired fires first.
func (n *Node) waitAppliedOr(ctx context.Context, index uint64, expired <-chan time.Time) error {
	for {
		wake := n.applyWake.Load()
		if applied, _ := n.store.Applied(); applied >= index {
			return nil
		}
		select {
		case <-*wake:
		case <-expired:
			if applied, _ := n.store.Applied(); applied >= index {
				return nil
			}
			n.m.leaseReadTimeouts.Inc()
			return errLeaseRanOut
		case <-ctx.Done():
			return ctxErr(ctx)
		case <-n.donec:
			return n.stoppedErr()
		}
	}
}
