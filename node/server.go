package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	etcdpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/connlimit"
	"github.com/georaft/georaft/node/console"
	"github.com/georaft/georaft/node/transport"
	"github.com/georaft/georaft/node/wal"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/tlsutil"
)

// streamWorkers is how many goroutines each gRPC server keeps to run requests. Without them
// gRPC starts a goroutine per request, and each one grows its stack again through the
// handler, the engine and the encoder (runtime.morestack was a sixth of the leader's CPU
// under lease reads); a worker keeps its grown stack. 64 covers a bench's 64 clients. A
// long stream (a watch) holds its worker while it lasts; a request that finds every worker
// busy gets a goroutine of its own, as without workers.
const streamWorkers = 64

// clientConnWindow is the flow-control window of a client connection: what one client may
// have in flight towards this node across all its requests.
const clientConnWindow = 16 << 20

// Server is a running georaftd: the node plus its three listeners (peers, clients, metrics).
type Server struct {
	n          *Node
	log        *slog.Logger
	peerLis    net.Listener
	clientLis  net.Listener
	metricsLis net.Listener
	peerSrv    *grpc.Server
	clientSrv  *grpc.Server
	httpSrv    *http.Server
	console    *console.Console
	stopOnce   sync.Once
	stopErr    error
	wg         sync.WaitGroup
}

// Options are the parts of a node that tests and embedders may replace.
type Options struct {
	Logger *slog.Logger
	// FS is the filesystem under the WAL and the snapshots (nil: the operating system's).
	// Fault-injection tests pass a wal.FaultFS to make fsync or writes fail.
	FS wal.FS
}

// Start recovers the node from its data directory, binds every listener and starts serving.
// An address already in use is reported by name before anything starts.
func Start(cfg *config.Config, logger *slog.Logger) (*Server, error) {
	return StartWith(cfg, Options{Logger: logger})
}

// StartWith is Start with replaceable parts.
func StartWith(cfg *config.Config, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{log: logger}
	var err error
	if s.peerLis, err = listen("listen.peer", cfg.Listen.Peer); err != nil {
		return nil, err
	}
	if s.clientLis, err = listen("listen.client", cfg.Listen.Client); err != nil {
		s.closeListeners()
		return nil, err
	}
	if cfg.Listen.Metrics != "" {
		if s.metricsLis, err = listen("listen.metrics", cfg.Listen.Metrics); err != nil {
			s.closeListeners()
			return nil, err
		}
	}

	serverTLS, clientTLS, err := tlsConfigs(cfg)
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	n, err := open(cfg, logger, opts.FS, clientTLS)
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	s.n = n
	s.clientLis = capConnections(s.clientLis, "client", connlimit.Limits{
		Total:   cfg.Limits.MaxClientConnections,
		PerHost: cfg.Limits.MaxClientConnectionsPerHost,
	}, n.m, logger)
	// Peers hold one connection each; a restarted peer's old one lingers until keepalive
	// closes it. The cap only bounds what a stranger past the firewall can open when TLS is
	// off; no per-host cap, because lab and test clusters dial from one address.
	peerCap := peerConnectionsPerPeer * (max(len(cfg.Peers), len(n.initialVoters)) + membersAddedHeadroom)
	s.peerLis = capConnections(s.peerLis, "peer", connlimit.Limits{Total: peerCap, PerHost: peerCap}, n.m, logger)

	if cfg.TLS.Enabled {
		err = reportCertificateExpiry(cfg.TLS, n.m, logger, time.Now())
	}
	if err != nil {
		s.closeListeners()
		n.closeStorage()
		return nil, err
	}
	peers := make(map[uint64]string, len(cfg.Peers))
	for _, p := range cfg.Peers {
		peers[p.ID] = p.PeerAddress
	}
	tr, err := transport.New(transport.Config{
		ClusterID: cfg.ClusterID,
		SelfID:    cfg.Node.ID,
		Peers:     peers,
		ServerTLS: serverTLS,
		ClientTLS: clientTLS,
		// The transport names itself (component, cluster_id, node_id) on every line.
		Logger: logger,
		// Room for a full append batch plus its framing.
		MaxMessageBytes: int(cfg.RaftConfig().MaxSizePerMsg) + cfg.Limits.MaxRequestBytes + (1 << 20),
	}, n)
	if err != nil {
		s.closeListeners()
		n.closeStorage()
		return nil, fmt.Errorf("start peer transport: %w", err)
	}
	n.attachTransport(tr)
	n.fwd = newForwarder(n, clientTLS)

	peerUnary, peerStream := peerEtcdAuth(serverTLS != nil)
	s.peerSrv = grpc.NewServer(append(tr.ServerOptions(), grpc.NumStreamWorkers(streamWorkers), grpc.ChainUnaryInterceptor(peerUnary), grpc.ChainStreamInterceptor(peerStream))...)
	tr.Register(s.peerSrv)
	// Requests followers forward to this node when it leads (forward.go).
	peerEtcd := &etcdServer{n: n, forwarded: true}
	etcdpb.RegisterKVServer(s.peerSrv, peerEtcd)
	etcdpb.RegisterLeaseServer(s.peerSrv, peerEtcd)
	etcdpb.RegisterClusterServer(s.peerSrv, peerEtcd)
	georaftv1.RegisterMembershipServiceServer(s.peerSrv, &membershipService{n: n, forwarded: true})

	clientOpts := []grpc.ServerOption{
		// Room above the limit, as etcd leaves, so that requestSize can answer a request a
		// little over it with the API's own error; gRPC refuses anything larger undecoded.
		grpc.MaxRecvMsgSize(cfg.Limits.MaxRequestBytes + requestSlackBytes),
		grpc.MaxConcurrentStreams(uint32(cfg.Limits.MaxConcurrentStreams)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 30 * time.Minute, Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.InTapHandle(requestDeadline(cfg.Limits.RequestTimeout)),
		grpc.ChainUnaryInterceptor(requestSize(cfg.Limits.MaxRequestBytes), notServed()),
		grpc.NumStreamWorkers(streamWorkers),
		// Fixed receive windows: gRPC's adaptive window pings the client after nearly
		// every small request (see transport's flowWindow), two more frames each.
		grpc.StaticStreamWindowSize(int32(min(max(cfg.Limits.MaxRequestBytes, 1<<20), 1<<30))),
		grpc.StaticConnWindowSize(clientConnWindow),
	}
	if serverTLS != nil {
		clientOpts = append(clientOpts, grpc.Creds(credentials.NewTLS(clientPortTLS(serverTLS, cfg.TLS.ClientAuth))))
	}
	s.clientSrv = grpc.NewServer(clientOpts...)
	georaftv1.RegisterKVServiceServer(s.clientSrv, &kvService{n: n})
	georaftv1.RegisterMembershipServiceServer(s.clientSrv, &membershipService{n: n})
	etcd := &etcdServer{n: n}
	etcdpb.RegisterKVServer(s.clientSrv, etcd)
	etcdpb.RegisterWatchServer(s.clientSrv, etcd)
	etcdpb.RegisterLeaseServer(s.clientSrv, etcd)
	etcdpb.RegisterClusterServer(s.clientSrv, etcd)
	etcdpb.RegisterMaintenanceServer(s.clientSrv, etcd)
	etcdpb.RegisterAuthServer(s.clientSrv, etcd)

	n.start()
	s.serve(s.peerSrv, s.peerLis, "peer")
	s.serve(s.clientSrv, s.clientLis, "client")
	if s.metricsLis != nil {
		mux := s.httpHandler()
		s.startConsole(cfg, mux, serverTLS, clientTLS)
		s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
			// TLS handshakes refused (the console's clients) go to the node's log.
			ErrorLog: slog.NewLogLogger(logger.With("listener", "metrics").Handler(), slog.LevelInfo)}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(s.metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics listener failed", "err", err)
			}
		}()
	}
	logger.Info("georaftd serving", "node", cfg.Node.ID, "region", cfg.Node.Region,
		"peer", s.peerLis.Addr().String(), "client", s.clientLis.Addr().String(), "metrics", cfg.Listen.Metrics)
	return s, nil
}

// requestDeadline bounds each client stream from the moment its headers arrive. A deadline
// set in the handler would come too late: gRPC reads a unary request's body before calling
// it, so a client that sends headers and never a body would hold its stream for as long as
// the connection lives. The tap's context is the one the body is read under.
func requestDeadline(bound time.Duration) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if longLivedStreams[info.FullMethodName] {
			return ctx, nil
		}
		if d, ok := ctx.Deadline(); ok && time.Until(d) <= bound {
			return ctx, nil
		}
		bounded, cancel := context.WithTimeout(ctx, bound)
		// gRPC cancels the stream's context when the stream ends; that releases the timer.
		context.AfterFunc(ctx, cancel)
		return bounded, nil
	}
}

// longLivedStreams are the client streams that last as long as their client wants (a watch,
// a lease kept alive, a snapshot download): not bounded by limits.request_timeout. They still
// count against the connection caps, and gRPC's keepalive closes them when the client is gone.
var longLivedStreams = map[string]bool{
	"/etcdserverpb.Watch/Watch":          true,
	"/etcdserverpb.Lease/LeaseKeepAlive": true,
	"/etcdserverpb.Maintenance/Snapshot": true,
}

// peerConnectionsPerPeer is the peer port's connection budget per cluster member.
const peerConnectionsPerPeer = 16

// membersAddedHeadroom is how many members beyond those at start the peer port's cap makes
// room for: a replace adds one before it removes one.
const membersAddedHeadroom = 4

// capConnections wraps lis with the caps, counting and logging what they refuse.
func capConnections(lis net.Listener, name string, limits connlimit.Limits, m *metrics, logger *slog.Logger) net.Listener {
	refusals := &refusalLog{log: logger.With("listener", name), capKeys: capKeys[name]}
	return connlimit.Wrap(lis, limits, func(reason connlimit.Reason, remote net.Addr) {
		m.connsRefused.WithLabelValues(name, string(reason)).Inc()
		refusals.note(reason, remote)
	})
}

// capKeys names, per listener, where its caps come from, for the log line.
var capKeys = map[string]string{
	"client": "limits.max_client_connections or limits.max_client_connections_per_host",
	"peer":   fmt.Sprintf("%d per cluster member", peerConnectionsPerPeer),
}

// refusalLog logs refused connections at most once per interval, with a count of
// those since the last line, so a client hammering the port cannot flood the log.
type refusalLog struct {
	log     *slog.Logger
	capKeys string
	mu      sync.Mutex
	// last is when a line was last written; since counts refusals not yet logged.
	last  time.Time
	since int
}

const refusalLogInterval = 10 * time.Second

func (r *refusalLog) note(reason connlimit.Reason, remote net.Addr) {
	r.mu.Lock()
	r.since++
	if !r.last.IsZero() && time.Since(r.last) < refusalLogInterval {
		r.mu.Unlock()
		return
	}
	count := r.since
	r.since, r.last = 0, time.Now()
	r.mu.Unlock()
	r.log.Warn("connection refused: over the connection cap ("+r.capKeys+")",
		"cap", string(reason), "remote", remote.String(), "refused_since_last_line", count)
}

func listen(key, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot listen on %s: %w", key, addr, err)
	}
	return lis, nil
}

func (s *Server) serve(srv *grpc.Server, lis net.Listener, name string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("listener failed", "listener", name, "err", err)
		}
	}()
}

// tlsConfigs builds the peer listener's and the peer dialer's TLS settings, nil when TLS is off.
// Peers always use mutual TLS: the transport accepts only node certificates on PeerService.
func tlsConfigs(cfg *config.Config) (server, client *tls.Config, err error) {
	if !cfg.TLS.Enabled {
		return nil, nil, nil
	}
	server, err = tlsutil.ServerConfig(cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile, true)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	client, err = tlsutil.ClientConfig(cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile, tlsutil.NodeServerName(cfg.Node.ID))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	return server, client, nil
}

// certificateExpiryWarning is how long before a certificate expires a start warns of it.
const certificateExpiryWarning = 30 * 24 * time.Hour

// reportCertificateExpiry exports when the node's certificate and its CA expire, and warns
// when either does within certificateExpiryWarning: an expired certificate takes the whole
// cluster down at once, since every node's were issued together.
func reportCertificateExpiry(t config.TLSConfig, m *metrics, log *slog.Logger, now time.Time) error {
	for _, c := range []struct{ name, path string }{{"node", t.CertFile}, {"ca", t.CAFile}} {
		notAfter, err := tlsutil.NotAfter(c.path)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		m.certExpiry.WithLabelValues(c.name).Set(float64(notAfter.Unix()))
		if left := notAfter.Sub(now); left < certificateExpiryWarning {
			log.Warn("tls: certificate expires soon; issue new certificates (docs/deploy.md, TLS)",
				"certificate", c.name, "file", c.path, "not_after", notAfter.UTC().Format(time.RFC3339),
				"left", left.Round(time.Minute).String())
		}
	}
	return nil
}

// clientPortTLS derives the client port's settings from the peer listener's: a client
// certificate of the cluster's CA is required, or with tls.client_auth optional, verified
// when presented. Either way PeerService is not served there.
func clientPortTLS(peer *tls.Config, clientAuth string) *tls.Config {
	c := peer.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if clientAuth == config.ClientAuthOptional {
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}

func (s *Server) httpHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.n.m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.n.Failed(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if reason := s.n.notReadyReason(); reason != "" {
			http.Error(w, reason, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// notReadyReason says why the node should not receive traffic yet, or "" when it should.
func (n *Node) notReadyReason() string {
	if err := n.Failed(); err != nil {
		return err.Error()
	}
	if n.stopping.Load() {
		return "shutting down"
	}
	st := n.statusSnapshot()
	if n.removed.Load() {
		return errMemberRemoved.Error()
	}
	if st.Leader == raft.None {
		return fmt.Sprintf("no leader known in term %d", st.Term)
	}
	return ""
}

// Removed is closed once this member has applied its own removal from the cluster: it has
// stopped serving, and its process should exit.
func (s *Server) Removed() <-chan struct{} { return s.n.removedc }

// Node returns the node the server runs.
func (s *Server) Node() *Node { return s.n }

// PeerAddr, ClientAddr and MetricsAddr are the bound listener addresses.
func (s *Server) PeerAddr() string   { return s.peerLis.Addr().String() }
func (s *Server) ClientAddr() string { return s.clientLis.Addr().String() }
func (s *Server) MetricsAddr() string {
	if s.metricsLis == nil {
		return ""
	}
	return s.metricsLis.Addr().String()
}

// Stop shuts down gracefully: refuse new client work, hand leadership to the most caught-up
// follower if this node leads, flush and close. ctx bounds the whole shutdown; when it ends
// the rest happens at once.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	n := s.n
	n.stopping.Store(true)
	n.drain()
	n.dump.Printf("shutting down")
	s.handOffLeadership(ctx)

	// Stop client traffic first; in-flight requests finish or hit the deadline.
	stopped := make(chan struct{})
	go func() { s.clientSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.clientSrv.Stop()
	}
	if s.httpSrv != nil {
		s.httpSrv.Close()
	}
	if s.console != nil {
		s.console.Close()
	}
	n.stopLoop()
	n.tr.Close()
	n.fwd.close()
	s.peerSrv.Stop()
	s.wg.Wait()
	return n.closeStorage()
}

// handOffLeadership transfers leadership away before a leader exits, so the cluster does not
// wait out an election timeout (and the new leader need not wait for this node's lease: a
// transfer gives it up before TimeoutNow leaves). The successor is the best healthy voter,
// its preferred region first (placement.go); the whole hand-off is bounded by
// placement.stop_handoff_timeout.
func (s *Server) handOffLeadership(ctx context.Context) {
	n := s.n
	if n.Failed() != nil || n.cfg.Placement.StopHandoffTimeout == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Placement.StopHandoffTimeout)
	defer cancel()
	var target uint64
	err := n.do(ctx, func() {
		st := n.core.Status()
		if st.Role != raft.Leader {
			return
		}
		target = n.successor()
	})
	if err != nil || target == raft.None {
		return
	}
	start := time.Now()
	if leader, _, err := n.TransferLeadership(ctx, target); err != nil {
		s.log.Warn("could not hand over leadership before shutting down", "target", target, "err", err)
	} else {
		n.m.handoffs.WithLabelValues("stop").Inc()
		s.log.Info("handed over leadership before shutting down", "leader", leader, "took", time.Since(start))
	}
}

// Kill stops everything at once without a graceful hand-over, like a crash that still closes
// files. Tests use it to restart nodes in-process.
func (s *Server) Kill() error {
	s.stopOnce.Do(func() {
		s.n.stopping.Store(true)
		s.n.drain()
		s.clientSrv.Stop()
		if s.httpSrv != nil {
			s.httpSrv.Close()
		}
		if s.console != nil {
			s.console.Close()
		}
		s.n.stopLoop()
		s.n.tr.Close()
		s.n.fwd.close()
		s.peerSrv.Stop()
		s.wg.Wait()
		s.stopErr = s.n.closeStorage()
	})
	return s.stopErr
}

func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.peerLis, s.clientLis, s.metricsLis} {
		if l != nil {
			l.Close()
		}
	}
}

// stopLoop ends the loop goroutine and waits for it.
func (n *Node) stopLoop() {
	n.stopOnce.Do(func() { close(n.stopc) })
	<-n.donec
}

// closeStorage closes the WAL and the event log. The loop has stopped.
func (n *Node) closeStorage() error {
	var err error
	if n.wal != nil {
		err = n.flushHardState()
		if cerr := n.wal.Close(); err == nil {
			err = cerr
		}
	}
	if n.store != nil {
		if cerr := n.store.Close(); err == nil {
			err = cerr
		}
	}
	n.dump.Printf("stopped")
	if cerr := n.dump.Close(); err == nil {
		err = cerr
	}
	n.lock.release()
	return err
}
