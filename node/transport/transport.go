// Package transport moves raft messages and snapshots between georaft nodes over gRPC
// (georaft.v1.PeerService).
//
// Each peer gets one long-lived grpc.ClientConn, dialled once (gRPC reconnects it), and
// one Send stream on it, reopened with jittered backoff when it breaks. A goroutine per peer
// drains a bounded queue and sends everything queued as one SendRequest, so bursts coalesce
// and order is kept. Snapshots go on InstallSnapshot streams of their own, so a large
// snapshot never holds up the messages behind it. Every PingInterval the transport pings each
// peer on the same connection and keeps an EWMA of the round-trip time.
//
// Incoming traffic is checked: the PeerHeader must name this cluster, a known peer as sender
// and this node as receiver, and with TLS the client certificate must be the sender's node
// certificate (tlsutil). Anything else is refused with PermissionDenied (Unauthenticated
// without a certificate) and logged.
//
// Handler methods are never called from inside Send or SendSnapshot: ReportUnreachable and
// ReportSnapshot run on a transport goroutine, HandleMessages and HandleSnapshot on the gRPC
// goroutine of the stream they arrive on (so messages from one peer arrive in order; calls for
// different peers may run concurrently).
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/georaft/georaft/raft"
)

// Handler receives what peers send and hears about delivery failures.
type Handler interface {
	// HandleMessages is called with each incoming batch, in the order the peer sent them.
	HandleMessages(from uint64, msgs []raft.Message)
	// HandleSnapshot is called with the snapshot bytes as they stream in; it stores them and
	// steps the core once complete. r yields exactly size bytes, then io.EOF; it fails with
	// io.ErrUnexpectedEOF if the stream ends early and with an error if the sender sends
	// more. The handler must read all size bytes before returning nil; a non-nil error fails
	// the transfer, and the sender hears ReportSnapshot(peer, false).
	HandleSnapshot(from uint64, term uint64, meta raft.SnapshotMeta, size int64, r io.Reader) error
	// ReportUnreachable says a message to peer was dropped (its queue was full or its stream
	// is down): the core should probe it again.
	ReportUnreachable(peer uint64)
	// ReportSnapshot says whether a snapshot sent with SendSnapshot was stored by peer.
	ReportSnapshot(peer uint64, ok bool)
}

// Defaults for the zero values of Config.
const (
	DefaultMaxMessageBytes = 16 << 20
	DefaultQueueLen        = 1024
	// DefaultPingInterval feeds the RTT gauges and the console, which need no finer grain:
	// each ping is a unary call and a wake-up at both ends, and at one per second to every
	// peer they were a good part of what an idle cluster did.
	DefaultPingInterval = 5 * time.Second
)

// minMaxMessageBytes leaves room for a snapshot chunk and its header.
const minMaxMessageBytes = 64 << 10

// Config is what New needs.
type Config struct {
	// ClusterID goes in every PeerHeader; peers refuse traffic with another.
	ClusterID string
	// SelfID is this node; it must not be 0.
	SelfID uint64
	// Peers maps each peer's id to the address this node dials (a proxy in the geo lab). An
	// entry for SelfID is ignored, so the cluster's full member list can be passed.
	Peers map[uint64]string
	// ServerTLS is the listener's TLS configuration (nil: plaintext). When set, every
	// PeerService call must present the sender's node certificate.
	ServerTLS *tls.Config
	// ClientTLS is used to dial peers (nil: plaintext). Its ServerName is replaced per peer by
	// tlsutil.NodeServerName(id), and the server must present that node's certificate.
	ClientTLS *tls.Config
	// Logger receives refusals, stream state changes and drops (nil: slog.Default()).
	Logger *slog.Logger
	// MaxMessageBytes bounds one gRPC message either way (0: DefaultMaxMessageBytes). A batch
	// is split to fit; a single raft message bigger than this is dropped.
	MaxMessageBytes int
	// QueueLen bounds the messages queued for one peer (0: DefaultQueueLen).
	QueueLen int
	// PingInterval is how often each peer is pinged for RTT (0: DefaultPingInterval,
	// negative: never).
	PingInterval time.Duration
}

// WAN-friendly connection settings: keepalive finds a dead peer (or a silently dropped
// connection) in about 15 s; gRPC's own reconnect backoff is capped low because a node
// must rejoin its cluster quickly once the network heals.
const (
	keepaliveTime     = 10 * time.Second
	keepaliveTimeout  = 5 * time.Second
	keepaliveMinTime  = 5 * time.Second
	reconnectBase     = 100 * time.Millisecond
	reconnectMax      = 3 * time.Second
	minConnectTimeout = 10 * time.Second

	// Send stream reopen backoff; a stream that stayed up this long resets it.
	streamRetryBase   = 50 * time.Millisecond
	streamRetryMax    = 2 * time.Second
	stableStreamAfter = 5 * time.Second

	// maxStreamsPerConn bounds the streams one connection may hold open. A peer needs its
	// send stream, a snapshot stream now and then, and a ping: a connection asking for more
	// is not a peer.
	maxStreamsPerConn = 64
	handshakeTimeout  = 10 * time.Second

	// flowWindow is the HTTP/2 flow-control window of every peer connection and stream,
	// fixed in both directions. gRPC's default window adapts by pinging the sender each time
	// data arrives with no such ping outstanding, until the window reaches 16 MiB, which raft
	// messages of a few hundred bytes never make it do: a PING and its ack, two more frames,
	// writes and wake-ups, rode along with nearly every batch. A fixed window of the size the
	// estimate would end at sends no pings, and still keeps a 200 ms link busy at 80 MB/s.
	flowWindow = 16 << 20

	// At most one ReportUnreachable per peer per this while its stream is down.
	downReportInterval = 500 * time.Millisecond
	// At most one log line per peer and kind of trouble per this.
	logInterval = 5 * time.Second
)

// Transport is the peer transport of one node. It is safe for concurrent use.
type Transport struct {
	cfg     Config
	handler Handler
	log     *slog.Logger
	// peers is replaced whole (copy on write) when the membership changes, so that senders
	// read it without a lock; peersMu orders the writers.
	peers   atomic.Pointer[map[uint64]*peer]
	peersMu sync.Mutex
	start   time.Time

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closeMu sync.Mutex // orders wg.Add in SendSnapshot against Close
	closed  atomic.Bool

	reports reporter

	unknownPeerLog  rateLimit
	malformedMsgLog rateLimit
	refusals        keyedRateLimit
}

// New validates cfg, dials every peer (in the background) and starts the per-peer senders
// and pingers. Register must still be called to receive.
func New(cfg Config, h Handler) (*Transport, error) {
	if h == nil {
		return nil, errors.New("transport: handler must not be nil")
	}
	if cfg.ClusterID == "" {
		return nil, errors.New("transport: cluster id must not be empty")
	}
	if cfg.SelfID == raft.None {
		return nil, errors.New("transport: self id must not be 0")
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxMessageBytes < minMaxMessageBytes {
		return nil, fmt.Errorf("transport: max message bytes %d is below the minimum %d", cfg.MaxMessageBytes, minMaxMessageBytes)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.QueueLen < 0 {
		return nil, fmt.Errorf("transport: queue length must not be negative, got %d", cfg.QueueLen)
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Transport{
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger.With("component", "transport", "cluster_id", cfg.ClusterID, "node_id", cfg.SelfID),
		start:   time.Now(),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.reports.init()

	peers := make(map[uint64]*peer, len(cfg.Peers))
	ids := make([]uint64, 0, len(cfg.Peers))
	for id := range cfg.Peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if id == cfg.SelfID {
			continue
		}
		p, err := t.checkedPeer(id, cfg.Peers[id])
		if err != nil {
			closePeers(peers)
			return nil, err
		}
		peers[id] = p
	}
	t.peers.Store(&peers)

	t.wg.Add(1)
	go t.runReporter()
	for _, p := range peers {
		t.startPeer(p)
	}
	return t, nil
}

func (t *Transport) checkedPeer(id uint64, addr string) (*peer, error) {
	if id == raft.None {
		return nil, errors.New("transport: peer id must not be 0")
	}
	if addr == "" {
		return nil, fmt.Errorf("transport: peer %d has no address", id)
	}
	return newPeer(t, id, addr)
}

func (t *Transport) startPeer(p *peer) {
	p.conn.Connect()
	t.wg.Add(1)
	go p.runSender()
	if t.cfg.PingInterval > 0 {
		t.wg.Add(1)
		go p.runPinger()
	}
}

// peer is the sender to id, or nil when id is not a peer.
func (t *Transport) peer(id uint64) *peer { return (*t.peers.Load())[id] }

// SetPeers makes peers (id → address to dial; an entry for this node is ignored) the
// transport's peers from now on, as the membership changes: a new peer is dialled, a peer no
// longer listed is dropped with what was queued for it, and a peer whose address changed is
// dialled afresh. Calls from a peer dropped here are refused.
func (t *Transport) SetPeers(peers map[uint64]string) error {
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.closed.Load() {
		return errors.New("transport: closed")
	}
	t.peersMu.Lock()
	defer t.peersMu.Unlock()
	old := *t.peers.Load()
	next := make(map[uint64]*peer, len(peers))
	var started, dropped []*peer
	for id, addr := range peers {
		if id == t.cfg.SelfID {
			continue
		}
		if p, ok := old[id]; ok && p.addr == addr {
			next[id] = p
			continue
		}
		p, err := t.checkedPeer(id, addr)
		if err != nil {
			closePeers(peersOf(started))
			return err
		}
		next[id] = p
		started = append(started, p)
	}
	for id, p := range old {
		if next[id] != p {
			dropped = append(dropped, p)
		}
	}
	t.peers.Store(&next)
	for _, p := range started {
		t.log.Info("peer added", "peer", p.id, "address", p.addr)
		t.startPeer(p)
	}
	for _, p := range dropped {
		t.log.Info("peer dropped", "peer", p.id, "address", p.addr)
		p.cancel()
		p.conn.Close()
	}
	return nil
}

func peersOf(ps []*peer) map[uint64]*peer {
	m := make(map[uint64]*peer, len(ps))
	for _, p := range ps {
		m[p.id] = p
	}
	return m
}

func closePeers(peers map[uint64]*peer) {
	for _, p := range peers {
		p.cancel()
		p.conn.Close()
	}
}

// ServerOptions are the grpc.Server options the PeerService listener needs: message size
// limit, keepalive settings that accept this transport's pings, and the server TLS
// credentials when configured.
func (t *Transport) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(t.cfg.MaxMessageBytes),
		grpc.MaxSendMsgSize(t.cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		// A connection that has not finished its handshake by then is not coming: free its
		// place under the node's peer connection cap (gRPC's default wait is 120 s).
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.StaticStreamWindowSize(flowWindow),
		grpc.StaticConnWindowSize(flowWindow),
	}
	if t.cfg.ServerTLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(t.cfg.ServerTLS)))
	}
	return opts
}

// Send queues msgs for their recipients and returns at once. Messages to one peer are sent in
// order. If a peer's queue is full the rest of its messages are dropped and the handler hears
// ReportUnreachable once; while a peer's stream is down the handler hears it at most every
// half second. A MsgSnap is refused (the node sends snapshots with SendSnapshot) and reported
// as a failed snapshot.
func (t *Transport) Send(msgs []raft.Message) {
	if t.closed.Load() {
		return
	}
	var overflowed []uint64
	for i := range msgs {
		m := &msgs[i]
		p := t.peer(m.To)
		if p == nil {
			if t.unknownPeerLog.allow(t.now(), logInterval) {
				t.log.Error("dropping message to a node that is not a peer", "to", m.To, "type", m.Type)
			}
			continue
		}
		if m.Type == raft.MsgSnap {
			t.log.Error("dropping MsgSnap given to Send: snapshots go through SendSnapshot", "to", m.To)
			t.reports.snapshot(m.To, false)
			continue
		}
		if !p.up.Load() && p.downReport.allow(t.now(), downReportInterval) {
			t.reports.unreachable(p.id)
		}
		select {
		case p.queue <- *m:
		default:
			p.dropped.Add(1)
			if !containsID(overflowed, p.id) {
				overflowed = append(overflowed, p.id)
				t.reports.unreachable(p.id)
				if p.overflowLog.allow(t.now(), logInterval) {
					t.log.Warn("peer queue full, dropping messages", "peer", p.id, "queue_len", cap(p.queue))
				}
			}
		}
	}
}

// RTT is the smoothed round-trip time to peer measured by Ping, or zero if unknown.
func (t *Transport) RTT(peer uint64) time.Duration {
	p := t.peer(peer)
	if p == nil {
		return 0
	}
	return time.Duration(p.rtt.Load())
}

// PeerStats is a snapshot of one peer's counters, for metrics and tests.
type PeerStats struct {
	Connected       bool // the Send stream is open
	SentMessages    uint64
	SentBatches     uint64 // SendRequests
	DroppedMessages uint64 // queue full, stream down, or unencodable
	Queued          int
	RTT             time.Duration
	RTTSamples      uint64 // pings answered
}

// Stats reports peer's counters; ok is false if peer is unknown.
func (t *Transport) Stats(peer uint64) (stats PeerStats, ok bool) {
	p := t.peer(peer)
	if p == nil {
		return PeerStats{}, false
	}
	return PeerStats{
		Connected:       p.up.Load(),
		SentMessages:    p.sentMessages.Load(),
		SentBatches:     p.sentBatches.Load(),
		DroppedMessages: p.dropped.Load(),
		Queued:          len(p.queue),
		RTT:             time.Duration(p.rtt.Load()),
		RTTSamples:      p.rttSamples.Load(),
	}, true
}

// Close stops every goroutine, cancels snapshots in flight and closes the connections.
// Incoming calls are refused from then on; stop the grpc.Server separately.
func (t *Transport) Close() error {
	t.closeMu.Lock()
	if t.closed.Swap(true) {
		t.closeMu.Unlock()
		return nil
	}
	t.closeMu.Unlock()
	t.cancel()
	t.wg.Wait()
	return t.closeConns()
}

func (t *Transport) closeConns() error {
	var errs []error
	for _, p := range *t.peers.Load() {
		if err := p.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to peer %d: %w", p.id, err))
		}
	}
	return errors.Join(errs...)
}

// now is the transport's monotonic clock, for rate limits.
func (t *Transport) now() time.Duration { return time.Since(t.start) }

func containsID(ids []uint64, id uint64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// rateLimit lets one event through per interval.
type rateLimit struct{ last atomic.Int64 }

func (r *rateLimit) allow(now, interval time.Duration) bool {
	last := r.last.Load()
	if last != 0 && now-time.Duration(last) < interval {
		return false
	}
	// Zero means "never"; a first event at exactly zero is recorded as 1 ns.
	return r.last.CompareAndSwap(last, int64(max(now, 1)))
}

// keyedRateLimit lets one event per key through per interval, so one noisy misconfigured
// peer does not hide another's refusals. Keys are bounded: past maxKeys it starts afresh.
type keyedRateLimit struct {
	mu   sync.Mutex
	last map[string]time.Duration
}

const maxRateLimitKeys = 1024

func (k *keyedRateLimit) allow(key string, now, interval time.Duration) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil || len(k.last) >= maxRateLimitKeys {
		k.last = make(map[string]time.Duration)
	}
	if last, seen := k.last[key]; seen && now-last < interval {
		return false
	}
	k.last[key] = now
	return true
}

// reporter calls ReportUnreachable and ReportSnapshot from its own goroutine, so the node
// may call Send while holding the lock its report handlers take. Unreachable reports for the
// same peer coalesce; snapshot reports keep their order.
type reporter struct {
	mu               sync.Mutex
	unreachablePeers map[uint64]bool
	snapshots        []snapshotReport
	wake             chan struct{}
}

type snapshotReport struct {
	peer uint64
	ok   bool
}

func (r *reporter) init() {
	r.unreachablePeers = make(map[uint64]bool)
	r.wake = make(chan struct{}, 1)
}

func (r *reporter) unreachable(peer uint64) {
	r.mu.Lock()
	r.unreachablePeers[peer] = true
	r.mu.Unlock()
	r.signal()
}

func (r *reporter) snapshot(peer uint64, ok bool) {
	r.mu.Lock()
	r.snapshots = append(r.snapshots, snapshotReport{peer, ok})
	r.mu.Unlock()
	r.signal()
}

func (r *reporter) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (t *Transport) runReporter() {
	defer t.wg.Done()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.reports.wake:
		}
		t.reports.mu.Lock()
		var peers []uint64
		for id := range t.reports.unreachablePeers {
			peers = append(peers, id)
		}
		clear(t.reports.unreachablePeers)
		snaps := t.reports.snapshots
		t.reports.snapshots = nil
		t.reports.mu.Unlock()
		sort.Slice(peers, func(i, j int) bool { return peers[i] < peers[j] })
		for _, id := range peers {
			t.handler.ReportUnreachable(id)
		}
		for _, s := range snaps {
			t.handler.ReportSnapshot(s.peer, s.ok)
		}
	}
}
