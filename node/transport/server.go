package transport

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/tlsutil"
)

// Register adds PeerService to s. Build s with ServerOptions.
func (t *Transport) Register(s grpc.ServiceRegistrar) {
	georaftv1.RegisterPeerServiceServer(s, &peerServer{t: t})
}

type peerServer struct {
	georaftv1.UnimplementedPeerServiceServer
	t *Transport
}

var errClosed = status.Error(codes.Unavailable, "transport closed")

// identify returns the node id in the caller's certificate, or 0 when TLS is off. With TLS on,
// anything but a verified node certificate is refused.
func (t *Transport) identify(ctx context.Context, method string) (uint64, error) {
	if t.cfg.ServerTLS == nil {
		return 0, nil
	}
	remote := "unknown"
	var state *credentials.TLSInfo
	if pr, ok := grpcpeer.FromContext(ctx); ok {
		remote = pr.Addr.String()
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
			state = &info
		}
	}
	if state == nil {
		t.logRefusal(method, remote, nil, "connection is not TLS but the transport requires it")
		return 0, status.Error(codes.Unauthenticated, "peer service requires TLS with a node certificate")
	}
	kind, id, name, err := tlsutil.PeerIdentity(state.State)
	if err != nil {
		t.logRefusal(method, remote, nil, err.Error())
		return 0, status.Errorf(codes.Unauthenticated, "peer service requires a node certificate: %v", err)
	}
	if kind != tlsutil.KindNode {
		t.logRefusal(method, remote, nil, fmt.Sprintf("certificate of %v %q is not a node certificate", kind, name))
		return 0, status.Errorf(codes.PermissionDenied, "certificate of %v %q may not use the peer service", kind, name)
	}
	return id, nil
}

// checkHeader admits h only if it names this cluster, a known peer as sender (the one in the
// certificate, with TLS) and this node as receiver. It returns the sender.
func (t *Transport) checkHeader(ctx context.Context, method string, h *georaftv1.PeerHeader, certID uint64) (uint64, error) {
	var reason string
	switch {
	case h == nil:
		reason = "missing peer header"
	case h.GetClusterId() != t.cfg.ClusterID:
		reason = fmt.Sprintf("cluster id %q is not this cluster's %q", h.GetClusterId(), t.cfg.ClusterID)
	case h.GetTo() != t.cfg.SelfID:
		reason = fmt.Sprintf("addressed to node %d, this is node %d", h.GetTo(), t.cfg.SelfID)
	case t.peer(h.GetFrom()) == nil:
		reason = fmt.Sprintf("sender %d is not a peer of this node", h.GetFrom())
	case certID != 0 && certID != h.GetFrom():
		reason = fmt.Sprintf("sender %d presented the certificate of node %d", h.GetFrom(), certID)
	default:
		return h.GetFrom(), nil
	}
	remote := "unknown"
	if pr, ok := grpcpeer.FromContext(ctx); ok {
		remote = pr.Addr.String()
	}
	t.logRefusal(method, remote, h, reason)
	return 0, status.Errorf(codes.PermissionDenied, "node %d of cluster %q refuses %s: %s", t.cfg.SelfID, t.cfg.ClusterID, method, reason)
}

func (t *Transport) logRefusal(method, remote string, h *georaftv1.PeerHeader, reason string) {
	if !t.refusals.allow(method+": "+reason, t.now(), logInterval) {
		return
	}
	t.log.Warn("refused peer RPC", "method", method, "remote", remote, "reason", reason,
		"their_cluster_id", h.GetClusterId(), "their_from", h.GetFrom(), "their_to", h.GetTo())
}

func (s *peerServer) Send(stream georaftv1.PeerService_SendServer) error {
	t := s.t
	if t.closed.Load() {
		return errClosed
	}
	ctx := stream.Context()
	certID, err := t.identify(ctx, "Send")
	if err != nil {
		return err
	}
	var sender uint64
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&georaftv1.SendResponse{})
		}
		if err != nil {
			return err
		}
		from, err := t.checkHeader(ctx, "Send", req.GetHeader(), certID)
		if err != nil {
			return err
		}
		if sender == 0 {
			sender = from
		} else if from != sender {
			return status.Errorf(codes.PermissionDenied, "send stream opened by node %d carries a batch from node %d", sender, from)
		}
		msgs := make([]raft.Message, 0, len(req.GetMessages()))
		for i, pm := range req.GetMessages() {
			m, err := DecodeMessage(from, t.cfg.SelfID, pm)
			if err != nil {
				if t.malformedMsgLog.allow(t.now(), logInterval) {
					t.log.Warn("dropping malformed message", "from", from, "position", i, "err", err)
				}
				continue
			}
			msgs = append(msgs, m)
		}
		if t.closed.Load() {
			return errClosed
		}
		if len(msgs) > 0 {
			t.handler.HandleMessages(from, msgs)
		}
	}
}

func (s *peerServer) Ping(ctx context.Context, req *georaftv1.PingRequest) (*georaftv1.PingResponse, error) {
	t := s.t
	if t.closed.Load() {
		return nil, errClosed
	}
	certID, err := t.identify(ctx, "Ping")
	if err != nil {
		return nil, err
	}
	if _, err := t.checkHeader(ctx, "Ping", req.GetHeader(), certID); err != nil {
		return nil, err
	}
	return &georaftv1.PingResponse{}, nil
}
