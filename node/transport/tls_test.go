package transport

import (
	"crypto/tls"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
	"github.com/georaft/georaft/tlsutil"
)

type tlsFixture struct {
	files *tlsutil.ClusterFiles
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	nodes := []tlsutil.NodeSpec{
		{ID: 1, Hosts: []string{"127.0.0.1"}},
		{ID: 2, Hosts: []string{"127.0.0.1"}},
		{ID: 3, Hosts: []string{"127.0.0.1"}},
	}
	files, err := tlsutil.GenerateCluster(filepath.Join(t.TempDir(), "certs"), nodes, []string{"cli"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsFixture{files: files}
}

func (f *tlsFixture) server(t *testing.T, id uint64, requireClientCert bool) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.ServerConfig(f.files.CA.Cert, f.files.Nodes[id].Cert, f.files.Nodes[id].Key, requireClientCert)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// client presents cert (node or client files; zero Files for none) to a server expected to
// be node serverID.
func (f *tlsFixture) client(t *testing.T, cert tlsutil.Files, serverID uint64) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.ClientConfig(f.files.CA.Cert, cert.Cert, cert.Key, tlsutil.NodeServerName(serverID))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// withTLS turns mutual TLS on for every node, each with its own node certificate.
func (f *tlsFixture) withTLS(t *testing.T) func(id uint64, cfg *Config) {
	return func(id uint64, cfg *Config) {
		cfg.ServerTLS = f.server(t, id, true)
		cfg.ClientTLS = f.client(t, f.files.Nodes[id], 0)
	}
}

func TestTLSNodesTalk(t *testing.T) {
	f := newTLSFixture(t)
	tweak := f.withTLS(t)
	nodes := startNodes(t, []uint64{1, 2}, func(id uint64, cfg *Config) {
		tweak(id, cfg)
		cfg.PingInterval = 20 * time.Millisecond
	})
	nodes[1].tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	nodes[2].tr.Send([]raft.Message{heartbeat(2, 1, 2)})
	waitFor(t, "messages both ways", func() bool {
		return nodes[2].rec.messageCount() == 1 && nodes[1].rec.messageCount() == 1
	})
	waitFor(t, "pings both ways", func() bool {
		s12, _ := nodes[1].tr.Stats(2)
		s21, _ := nodes[2].tr.Stats(1)
		return s12.RTTSamples > 0 && s21.RTTSamples > 0
	})
	nodes[1].tr.SendSnapshot(2, 1, raft.SnapshotMeta{Index: 3, Term: 1}, func() (io.ReadCloser, int64, error) {
		return io.NopCloser(strings.NewReader("snapshot")), 8, nil
	})
	waitFor(t, "the snapshot", func() bool { return len(nodes[1].rec.snapshotReports()) == 1 })
	if r := nodes[1].rec.snapshotReports()[0]; !r.ok {
		t.Fatal("snapshot over TLS failed")
	}
}

func TestTLSRefusesNonNodeCallers(t *testing.T) {
	f := newTLSFixture(t)
	nodes := startNodes(t, []uint64{1, 2, 3}, f.withTLS(t))
	target := nodes[2]
	header := &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 1, To: 2}
	dial := func(cfg *tls.Config) georaftv1.PeerServiceClient {
		return rawClient(t, target.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}

	t.Run("node certificate of the sender is accepted", func(t *testing.T) {
		for method, err := range callAll(t, dial(f.client(t, f.files.Nodes[1], 2)), header) {
			if err != nil {
				t.Errorf("%s: %v", method, err)
			}
		}
	})
	t.Run("client certificate is refused on every method", func(t *testing.T) {
		for method, err := range callAll(t, dial(f.client(t, f.files.Clients["cli"], 2)), header) {
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s: got %v, want PermissionDenied", method, err)
			}
		}
		waitFor(t, "the refusal in the log", func() bool {
			return strings.Contains(target.logs.String(), `not a node certificate`)
		})
	})
	t.Run("another node's certificate cannot speak for the sender", func(t *testing.T) {
		for method, err := range callAll(t, dial(f.client(t, f.files.Nodes[3], 2)), header) {
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s: got %v, want PermissionDenied", method, err)
			}
		}
	})
	t.Run("no certificate fails the handshake", func(t *testing.T) {
		for method, err := range callAll(t, dial(f.client(t, tlsutil.Files{}, 2)), header) {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s: got %v, want Unavailable (handshake refused)", method, err)
			}
		}
	})
	t.Run("plaintext fails", func(t *testing.T) {
		for method, err := range callAll(t, rawClient(t, target.addr), header) {
			if err == nil {
				t.Errorf("%s over plaintext succeeded", method)
			}
		}
	})
	if n := target.rec.messageCount(); n != 1 {
		t.Fatalf("node 2 handled %d messages, want only the node-certified one", n)
	}
}

func TestTLSWithoutRequiredClientCertStillRefusesAnonymousPeers(t *testing.T) {
	f := newTLSFixture(t)
	nodes := startNodes(t, []uint64{1, 2}, func(id uint64, cfg *Config) {
		cfg.ServerTLS = f.server(t, id, false) // the listener lets anonymous clients in
		cfg.ClientTLS = f.client(t, f.files.Nodes[id], 0)
	})
	c := rawClient(t, nodes[2].addr, grpc.WithTransportCredentials(credentials.NewTLS(f.client(t, tlsutil.Files{}, 2))))
	for method, err := range callAll(t, c, &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 1, To: 2}) {
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: got %v, want Unauthenticated", method, err)
		}
	}
}

func TestTLSSenderChecksTheServersNodeID(t *testing.T) {
	f := newTLSFixture(t)
	tweak := f.withTLS(t)
	nodes := startNodes(t, []uint64{1, 2, 3}, func(id uint64, cfg *Config) {
		tweak(id, cfg)
		if id == 1 {
			cfg.Peers[2] = cfg.Peers[3] // misrouted: node 3 answers where node 2 should
		}
	})
	nodes[1].tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, "the handshake failure in the log", func() bool {
		return strings.Contains(nodes[1].logs.String(), tlsutil.NodeServerName(2))
	})
	if s, _ := nodes[1].tr.Stats(2); s.Connected {
		t.Fatal("node 1 opened a stream to node 3 believing it was node 2")
	}
	if n := nodes[3].rec.messageCount(); n != 0 {
		t.Fatalf("node 3 received %d messages meant for node 2", n)
	}
}
