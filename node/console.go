package node

import (
	"crypto/tls"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/console"
	"github.com/georaft/georaft/tlsutil"
)

// startConsole mounts the web console on the metrics listener's mux (console.enabled). With
// TLS on, the listener also speaks TLS: the console is served only over it, asking client
// certificates of the client port's kind, while /metrics, /healthz and /readyz still answer
// plain HTTP. The console asks the other members for their status as a client would, with
// this node's certificate.
func (s *Server) startConsole(cfg *config.Config, mux *http.ServeMux, serverTLS, peerClientTLS *tls.Config) {
	if !cfg.Console.Enabled || s.metricsLis == nil {
		return
	}
	members := make([]console.Member, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		members = append(members, console.Member{ID: p.ID, Region: p.Region, ClientAddress: p.ClientAddress})
	}
	dial := func(id uint64) []grpc.DialOption {
		if peerClientTLS == nil {
			return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}
		c := peerClientTLS.Clone()
		c.ServerName = tlsutil.NodeServerName(id)
		return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(c))}
	}
	c, err := console.New(console.Config{
		Self: cfg.Node.ID, ClusterID: cfg.ClusterID, Local: &kvService{n: s.n}, Members: members,
		DialOptions: dial, ResultsDir: cfg.Console.ResultsDir, RequireTLS: serverTLS != nil, Logger: s.log,
	})
	if err != nil {
		s.log.Error("console not started", "err", err)
		return
	}
	s.console = c
	mux.Handle(console.Prefix, c)
	mux.Handle(console.Prefix+"/", c)
	if serverTLS != nil {
		s.metricsLis = console.SplitTLS(s.metricsLis, clientPortTLS(serverTLS, cfg.TLS.ClientAuth))
	}
}
