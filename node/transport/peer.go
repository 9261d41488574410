package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/tlsutil"
)

// peer is the sending side towards one other node.
type peer struct {
	t      *Transport
	id     uint64
	addr   string
	conn   *grpc.ClientConn
	client georaftv1.PeerServiceClient
	header *georaftv1.PeerHeader
	queue  chan raft.Message
	// ctx ends when the transport closes or the peer is dropped from it.
	ctx    context.Context
	cancel context.CancelFunc

	up           atomic.Bool
	rtt          atomic.Int64 // EWMA, nanoseconds; 0 until the first ping
	rttSamples   atomic.Uint64
	snapshotBusy atomic.Bool

	sentMessages atomic.Uint64
	sentBatches  atomic.Uint64
	dropped      atomic.Uint64

	downReport  rateLimit
	overflowLog rateLimit
	downLog     rateLimit
}

func newPeer(t *Transport, id uint64, addr string) (*peer, error) {
	creds := insecure.NewCredentials()
	if t.cfg.ClientTLS != nil {
		creds = credentials.NewTLS(peerTLSConfig(t.cfg.ClientTLS, id))
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallSendMsgSize(t.cfg.MaxMessageBytes),
			grpc.MaxCallRecvMsgSize(t.cfg.MaxMessageBytes),
		),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  reconnectBase,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   reconnectMax,
			},
			MinConnectTimeout: minConnectTimeout,
		}),
		// The Send stream keeps the connection busy; idleness would only add a reconnect.
		grpc.WithIdleTimeout(0),
		grpc.WithStaticStreamWindowSize(flowWindow),
		grpc.WithStaticConnWindowSize(flowWindow),
	)
	if err != nil {
		return nil, fmt.Errorf("transport: client for peer %d at %s: %w", id, addr, err)
	}
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		ctx:    ctx,
		cancel: cancel,
		t:      t,
		id:     id,
		addr:   addr,
		conn:   conn,
		client: georaftv1.NewPeerServiceClient(conn),
		header: &georaftv1.PeerHeader{ClusterId: t.cfg.ClusterID, From: t.cfg.SelfID, To: id},
		queue:  make(chan raft.Message, t.cfg.QueueLen),
	}, nil
}

// peerTLSConfig checks the server's identity rather than the dialled address, which may be a
// proxy: the certificate must be node id's.
func peerTLSConfig(base *tls.Config, id uint64) *tls.Config {
	cfg := base.Clone()
	cfg.ServerName = tlsutil.NodeServerName(id)
	chained := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if chained != nil {
			if err := chained(cs); err != nil {
				return err
			}
		}
		kind, got, _, err := tlsutil.PeerIdentity(cs)
		if err != nil {
			return fmt.Errorf("peer %d: %w", id, err)
		}
		if kind != tlsutil.KindNode || got != id {
			return fmt.Errorf("peer %d presented the certificate of %v %d", id, kind, got)
		}
		return nil
	}
	return cfg
}

// runSender keeps a Send stream open and pumps the queue into it.
func (p *peer) runSender() {
	defer p.t.wg.Done()
	ctx := p.ctx
	failures := 0
	for {
		opened := time.Now()
		wasOpen, err := p.pump(ctx)
		if ctx.Err() != nil {
			return
		}
		wasUp := p.up.Swap(false)
		p.t.reports.unreachable(p.id)
		if wasOpen && time.Since(opened) >= stableStreamAfter {
			failures = 0
		}
		failures++
		p.logStreamDown(err, wasUp, failures)
		// What queued while the stream was failing is stale by the time it would reopen;
		// the core resends what still matters after ReportUnreachable.
		p.dropQueued()
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryDelay(failures)):
		}
	}
}

func (p *peer) logStreamDown(err error, wasUp bool, failures int) {
	code := status.Code(err)
	if code == codes.PermissionDenied || code == codes.Unauthenticated {
		// The peer refuses us: a configuration error (cluster id, peer list, certificates).
		if p.downLog.allow(p.t.now(), logInterval) {
			p.t.log.Error("peer refused our messages", "peer", p.id, "addr", p.addr, "err", err)
		}
		return
	}
	if wasUp {
		p.t.log.Warn("send stream to peer broke; reopening", "peer", p.id, "addr", p.addr, "err", err)
		return
	}
	if p.downLog.allow(p.t.now(), logInterval) {
		p.t.log.Info("peer unreachable", "peer", p.id, "addr", p.addr, "attempts", failures, "err", err)
	}
}

// retryDelay is exponential in the number of consecutive failures, with "equal jitter" (half
// fixed, half random) so peers that lost a node together do not retry in lockstep.
func retryDelay(failures int) time.Duration {
	d := streamRetryBase
	for i := 1; i < failures && d < streamRetryMax; i++ {
		d *= 2
	}
	d = min(d, streamRetryMax)
	return d/2 + rand.N(d/2+1)
}

func (p *peer) dropQueued() {
	for {
		select {
		case <-p.queue:
			p.dropped.Add(1)
		default:
			return
		}
	}
}

// pump opens one Send stream and sends batches on it until it breaks or ctx ends. opened
// reports whether the stream was established.
func (p *peer) pump(ctx context.Context) (opened bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := p.client.Send(sctx)
	if err != nil {
		return false, fmt.Errorf("open send stream: %w", err)
	}
	// The server answers only when it ends the stream (a refusal, a restart, a broken
	// connection); waiting for that here notices it even while there is nothing to send.
	ended := make(chan error, 1)
	go func() {
		err := stream.RecvMsg(new(georaftv1.SendResponse))
		if err == nil {
			err = errors.New("peer closed the send stream")
		}
		ended <- err
	}()
	if !p.up.Swap(true) {
		p.t.log.Info("send stream to peer open", "peer", p.id, "addr", p.addr)
	}

	batch := make([]raft.Message, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-ended:
			return true, fmt.Errorf("send stream ended: %w", err)
		case m := <-p.queue:
			batch = append(batch[:0], m)
			batch = p.drainInto(batch)
			for _, req := range p.encodeBatch(batch) {
				if err := stream.Send(req); err != nil {
					if errors.Is(err, io.EOF) {
						// The stream was ended by the server: its status says why.
						err = <-ended
					}
					return true, fmt.Errorf("send batch of %d messages: %w", len(req.Messages), err)
				}
				p.sentBatches.Add(1)
				p.sentMessages.Add(uint64(len(req.Messages)))
			}
		}
	}
}

// batchSoftBytes ends a batch once this much is gathered: big enough that per-request cost
// vanishes, small enough that encoding one request overlaps with sending the previous one.
const batchSoftBytes = 1 << 20

// drainInto appends what is already queued, so a burst goes out as one batch, up to about
// batchSoftBytes; the rest waits for the next batch.
func (p *peer) drainInto(batch []raft.Message) []raft.Message {
	size := 0
	for i := range batch {
		size += approxSize(&batch[i])
	}
	for size < batchSoftBytes {
		select {
		case m := <-p.queue:
			batch = append(batch, m)
			size += approxSize(&m)
		default:
			return batch
		}
	}
	return batch
}

// approxSize estimates a message's encoded size without encoding it.
func approxSize(m *raft.Message) int {
	n := 64 + len(m.RejectReason)
	for i := range m.Entries {
		n += 24 + len(m.Entries[i].Data)
	}
	return n
}

// perMessageOverhead bounds the tag and length prefix of one repeated message field.
const perMessageOverhead = 16

// encodeBatch turns msgs into SendRequests that each fit MaxMessageBytes, in order. A message
// that cannot be encoded, or is too big on its own, is dropped and logged.
func (p *peer) encodeBatch(msgs []raft.Message) []*georaftv1.SendRequest {
	limit := p.t.cfg.MaxMessageBytes - proto.Size(p.header) - 2*perMessageOverhead
	var reqs []*georaftv1.SendRequest
	var cur *georaftv1.SendRequest
	curBytes := 0
	for i := range msgs {
		enc, err := EncodeMessage(msgs[i])
		if err != nil {
			p.dropped.Add(1)
			p.t.log.Error("dropping message that cannot be encoded", "peer", p.id, "type", msgs[i].Type, "err", err)
			continue
		}
		size := proto.Size(enc) + perMessageOverhead
		if size > limit {
			p.dropped.Add(1)
			p.t.reports.unreachable(p.id)
			p.t.log.Error("dropping message larger than max message bytes; lower the core's MaxSizePerMsg",
				"peer", p.id, "type", msgs[i].Type, "bytes", size, "max_message_bytes", p.t.cfg.MaxMessageBytes)
			continue
		}
		if cur == nil || curBytes+size > limit {
			cur = &georaftv1.SendRequest{Header: p.header, Messages: make([]*georaftv1.RaftMessage, 0, len(msgs)-i)}
			reqs = append(reqs, cur)
			curBytes = 0
		}
		cur.Messages = append(cur.Messages, enc)
		curBytes += size
	}
	return reqs
}

// pingTimeout gives a ping on a slow WAN link time to come back.
func (p *peer) pingTimeout() time.Duration {
	return max(p.t.cfg.PingInterval, 2*time.Second)
}

// rttWeight is the EWMA weight of a new sample: about the last five pings count.
const rttWeight = 0.2

func (p *peer) runPinger() {
	defer p.t.wg.Done()
	ctx := p.ctx
	ticker := time.NewTicker(p.t.cfg.PingInterval)
	defer ticker.Stop()
	for {
		p.pingOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (p *peer) pingOnce(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, p.pingTimeout())
	defer cancel()
	start := time.Now()
	_, err := p.client.Ping(pctx, &georaftv1.PingRequest{Header: p.header})
	sample := time.Since(start)
	if err != nil {
		return
	}
	p.observeRTT(sample)
}

func (p *peer) observeRTT(sample time.Duration) {
	defer p.rttSamples.Add(1)
	for {
		old := p.rtt.Load()
		next := int64(sample)
		if old != 0 {
			next = old + int64(rttWeight*float64(int64(sample)-old))
		}
		next = max(next, 1) // zero means "unknown"
		if p.rtt.CompareAndSwap(old, next) {
			return
		}
	}
}
