package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/tlsutil"
)

// etcd clients send to whichever member they reach and do not follow redirects, so a
// follower passes writes and linearizable reads to the leader itself. It does so over the
// peer port, where members already authenticate each other with their node certificates;
// the leader serves them there as its own (etcdServer.forwarded), never passing them on.

// etcdClients are the etcd services of one member, reached over its peer port.
type etcdClients struct {
	kv    pb.KVClient
	lease pb.LeaseClient
}

// errLeaderUnreachable: the leader could not be dialled, so the request never reached it.
var errLeaderUnreachable = errors.New("leader unreachable")

type forwarder struct {
	n      *Node
	tls    *tls.Config // the node's peer dialer settings; nil when TLS is off
	mu     sync.Mutex
	conns  map[uint64]*grpc.ClientConn
	closed bool
}

func newForwarder(n *Node, clientTLS *tls.Config) *forwarder {
	return &forwarder{n: n, tls: clientTLS, conns: make(map[uint64]*grpc.ClientConn)}
}

func (f *forwarder) conn(id uint64) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, rpctypes.ErrGRPCStopped
	}
	if c, ok := f.conns[id]; ok {
		return c, nil
	}
	p, ok := f.n.peerInfo(id)
	if !ok {
		return nil, fmt.Errorf("node %d is not a member", id)
	}
	creds := insecure.NewCredentials()
	if f.tls != nil {
		c := f.tls.Clone()
		c.ServerName = tlsutil.NodeServerName(id)
		creds = credentials.NewTLS(c)
	}
	c, err := grpc.NewClient(p.PeerAddress, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(f.n.cfg.Limits.MaxRequestBytes+(1<<20))))
	if err != nil {
		return nil, err
	}
	f.conns[id] = c
	return c, nil
}

func (f *forwarder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for id, c := range f.conns {
		c.Close()
		delete(f.conns, id)
	}
}

// forwardTo runs call against the leader's etcd services. An error that means the leader
// could not be reached or is no longer leader becomes one etcd clients retry.
func forwardTo[T any](n *Node, ctx context.Context, leader uint64, call func(context.Context, *etcdClients) (T, error)) (T, error) {
	var zero T
	c, err := n.fwd.conn(leader)
	if err != nil {
		return zero, rpctypes.ErrGRPCNoLeader
	}
	// How the client asked a read to be served goes along; nothing else of its metadata does.
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, k := range []string{ReadModeMetadata, PerKeyWaitMetadata} {
			if v := md.Get(k); len(v) > 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, k, v[0])
			}
		}
	}
	out, err := call(ctx, &etcdClients{kv: pb.NewKVClient(c), lease: pb.NewLeaseClient(c)})
	if err != nil {
		n.m.forwarded.WithLabelValues(status.Code(err).String()).Inc()
		if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable && !strings.HasPrefix(st.Message(), "etcdserver:") {
			if strings.Contains(st.Message(), "connection refused") || strings.Contains(st.Message(), "while dialing") {
				return zero, errLeaderUnreachable
			}
			// The connection broke with the request on it: it may have been applied, so it
			// is not sent again; the client hears what etcd would say.
			return zero, rpctypes.ErrGRPCLeaderChanged
		}
		return zero, err
	}
	n.m.forwarded.WithLabelValues(codes.OK.String()).Inc()
	// The answer is this member's to the client: its header names this member (the revision
	// stays the leader's).
	if h, ok := any(out).(interface{ GetHeader() *pb.ResponseHeader }); ok && h.GetHeader() != nil {
		h.GetHeader().MemberId = n.id
		h.GetHeader().RaftTerm = n.view.Load().Term
	}
	return out, nil
}

// peerEtcdAuth admits only cluster members to the etcd services on the peer port, as the
// transport does for its own: when TLS is on, the caller must present a node certificate.
func peerEtcdAuth(tlsOn bool) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context, method string) error {
		if !tlsOn || !(strings.HasPrefix(method, "/etcdserverpb.") || strings.HasPrefix(method, "/georaft.v1.MembershipService/")) {
			return nil
		}
		pr, ok := grpcpeer.FromContext(ctx)
		if !ok {
			return status.Error(codes.Unauthenticated, "no peer information")
		}
		info, ok := pr.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return status.Error(codes.Unauthenticated, "forwarded etcd requests require TLS with a node certificate")
		}
		kind, _, name, err := tlsutil.PeerIdentity(info.State)
		if err != nil {
			return status.Errorf(codes.Unauthenticated, "forwarded etcd requests require a node certificate: %v", err)
		}
		if kind != tlsutil.KindNode {
			return status.Errorf(codes.PermissionDenied, "certificate of %v %q may not forward etcd requests; use the client port", kind, name)
		}
		return nil
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return unary, stream
}
