package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
	"github.com/georaft/georaft/tlsutil"
)

// TLS end to end: peers on mutual TLS, clients with the CA (and optionally a certificate),
// and the refusals that keep the wrong parties out.

const tlsClientName = "app"

// tlsNodeSpecs are the certificate subjects of an n-node cluster on loopback.
func tlsNodeSpecs(n int) []tlsutil.NodeSpec {
	specs := make([]tlsutil.NodeSpec, n)
	for i := range specs {
		specs[i] = tlsutil.NodeSpec{ID: uint64(i + 1), Hosts: []string{"127.0.0.1", "localhost"}}
	}
	return specs
}

func generateTLSFiles(t *testing.T, n int) *tlsutil.ClusterFiles {
	t.Helper()
	files, err := tlsutil.GenerateCluster(filepath.Join(t.TempDir(), "certs"), tlsNodeSpecs(n), []string{tlsClientName}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// newTLSTestCluster starts n nodes with tls.enabled, the given files and tls.client_auth
// clientAuth; the harness's own clients trust the CA and present the client certificate.
func newTLSTestCluster(t *testing.T, n int, files *tlsutil.ClusterFiles, clientAuth string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: clusterConfigs(t, n, func(cfg *config.Config) {
		f := files.Nodes[cfg.Node.ID]
		cfg.TLS = config.TLSConfig{Enabled: true, CAFile: files.CA.Cert, CertFile: f.Cert, KeyFile: f.Key, ClientAuth: clientAuth}
	})}
	c.servers = make([]*node.Server, n)
	c.conns = make([]*grpc.ClientConn, n)
	c.clients = make([]georaftv1.KVServiceClient, n)
	t.Cleanup(c.close)
	creds := credentials.NewTLS(clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], ""))
	for i := range c.cfgs {
		c.start(i)
		conn, err := grpc.NewClient(c.cfgs[i].Listen.Client, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		c.conns[i] = conn
		c.clients[i] = georaftv1.NewKVServiceClient(conn)
	}
	return c
}

func clientTLS(t *testing.T, caFile string, cert tlsutil.Files, serverName string) *tls.Config {
	t.Helper()
	cfg, err := tlsutil.ClientConfig(caFile, cert.Cert, cert.Key, serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (c *testCluster) clientAddrs() []string {
	addrs := make([]string, len(c.cfgs))
	for i, cfg := range c.cfgs {
		addrs[i] = cfg.Listen.Client
	}
	return addrs
}

// checkLibraryRoundTrip writes and reads back through the client library.
func checkLibraryRoundTrip(t *testing.T, addrs []string, tlsCfg *tls.Config, key string) {
	t.Helper()
	cl, err := client.New(client.Options{Endpoints: addrs, TLS: tlsCfg, RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := cl.Set(ctx, key, []byte("over-tls")); err != nil {
		t.Fatalf("client library set %s over TLS: %v", key, err)
	}
	for _, mode := range []readmode.Mode{readmode.Lease, readmode.Index, readmode.Log} {
		got, err := cl.Get(ctx, key, mode)
		if err != nil || !got.Found || string(got.Value) != "over-tls" {
			t.Fatalf("client library %v get %s over TLS: found=%v value=%q err=%v", mode, key, got.Found, got.Value, err)
		}
	}
}

// waitPeerRTTs waits until node i has measured a round trip to every peer: Ping works over
// mutual TLS in both directions of each link it dials.
func (c *testCluster) waitPeerRTTs(i int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var st *georaftv1.StatusResponse
	for time.Now().Before(deadline) {
		var err error
		st, err = c.status(i)
		if err == nil {
			measured := 0
			for _, p := range st.Peers {
				if p.RttNanos > 0 {
					measured++
				}
			}
			if measured == len(c.cfgs)-1 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("node %d measured no RTT to some peer over TLS within %v: %v", i+1, timeout, st.GetPeers())
}

// checkRefusedConnection fails unless a Status call over conn is refused at the connection
// level (the handshake fails, so no RPC ever reaches the service).
func checkRefusedConnection(t *testing.T, what string, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := georaftv1.NewKVServiceClient(conn).Status(ctx, &georaftv1.StatusRequest{})
	if err == nil {
		t.Fatalf("%s: the node answered", what)
	}
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("%s: got %v, want the connection refused (UNAVAILABLE)", what, err)
	}
}

func dialOrFatal(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Peers elect and replicate over mutual TLS; the client library with a client certificate
// of the cluster's CA can write and read; a client with the CA alone (the default,
// tls.client_auth require), a plaintext client, a client that does not trust the cluster's
// CA and a client with a certificate from another CA are refused.
func TestTLSClusterServesClientsAndRefusesStrangers(t *testing.T) {
	files := generateTLSFiles(t, 3)
	c := newTLSTestCluster(t, 3, files, "")
	leader := c.waitLeader(15 * time.Second)
	c.waitPeerRTTs(leader, 10*time.Second)
	if _, err := c.set(leader, "raw-grpc-over-tls", "v"); err != nil {
		t.Fatalf("raw gRPC set over TLS: %v", err)
	}

	addrs := c.clientAddrs()
	checkLibraryRoundTrip(t, addrs, clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], ""), "with-client-cert")

	target := c.cfgs[leader].Listen.Client
	checkRefusedConnection(t, "a client that trusts the CA but presents no certificate",
		dialOrFatal(t, target, credentials.NewTLS(clientTLS(t, files.CA.Cert, tlsutil.Files{}, ""))))
	checkRefusedConnection(t, "a plaintext client on the client port",
		dialOrFatal(t, target, insecure.NewCredentials()))

	stranger := generateTLSFiles(t, 1)
	checkRefusedConnection(t, "a client that trusts another CA",
		dialOrFatal(t, target, credentials.NewTLS(clientTLS(t, stranger.CA.Cert, tlsutil.Files{}, ""))))
	checkRefusedConnection(t, "a client presenting a certificate from another CA",
		dialOrFatal(t, target, credentials.NewTLS(clientTLS(t, files.CA.Cert, stranger.Clients[tlsClientName], ""))))

	// The refusals cost the cluster nothing.
	if _, err := c.set(leader, "after-refusals", "v"); err != nil {
		t.Fatalf("a write after the refused connections: %v", err)
	}
}

// With tls.client_auth optional, a client that trusts the CA and presents no certificate is
// served, and a certificate from another CA is still refused.
func TestTLSClientAuthOptionalServesCAOnlyClients(t *testing.T) {
	files := generateTLSFiles(t, 3)
	c := newTLSTestCluster(t, 3, files, config.ClientAuthOptional)
	leader := c.waitLeader(15 * time.Second)
	checkLibraryRoundTrip(t, c.clientAddrs(), clientTLS(t, files.CA.Cert, tlsutil.Files{}, ""), "ca-only")
	stranger := generateTLSFiles(t, 1)
	checkRefusedConnection(t, "a client presenting a certificate from another CA",
		dialOrFatal(t, c.cfgs[leader].Listen.Client, credentials.NewTLS(clientTLS(t, files.CA.Cert, stranger.Clients[tlsClientName], ""))))
}

// PeerService admits node certificates only: a client certificate signed by the cluster's
// own CA is refused with PermissionDenied on Ping, Send and InstallSnapshot; a node cannot
// speak for another node; a connection without a certificate, or without TLS, gets nowhere.
func TestTLSPeerServiceRefusesClientCertificates(t *testing.T) {
	files := generateTLSFiles(t, 3)
	c := newTLSTestCluster(t, 3, files, "")
	leader := c.waitLeader(15 * time.Second)
	const target = 0 // node 1's peer port
	peerAddr := c.cfgs[target].Listen.Peer
	header := &georaftv1.PeerHeader{ClusterId: c.cfgs[target].ClusterID, From: 2, To: 1}

	asClient := georaftv1.NewPeerServiceClient(dialOrFatal(t, peerAddr,
		credentials.NewTLS(clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], tlsutil.NodeServerName(1)))))
	checkPeerRefusals(t, "a client certificate", asClient, header, codes.PermissionDenied)

	// Node 3's certificate claiming to be node 2.
	asImpostor := georaftv1.NewPeerServiceClient(dialOrFatal(t, peerAddr,
		credentials.NewTLS(clientTLS(t, files.CA.Cert, files.Nodes[3], tlsutil.NodeServerName(1)))))
	checkPeerRefusals(t, "node 3's certificate sending as node 2", asImpostor, header, codes.PermissionDenied)

	for name, creds := range map[string]credentials.TransportCredentials{
		"no client certificate": credentials.NewTLS(clientTLS(t, files.CA.Cert, tlsutil.Files{}, tlsutil.NodeServerName(1))),
		"plaintext":             insecure.NewCredentials(),
	} {
		peer := georaftv1.NewPeerServiceClient(dialOrFatal(t, peerAddr, creds))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := peer.Ping(ctx, &georaftv1.PingRequest{Header: header})
		cancel()
		if code := status.Code(err); code != codes.Unavailable && code != codes.Unauthenticated && code != codes.DeadlineExceeded {
			t.Fatalf("Ping on the peer port with %s: got %v, want the connection refused", name, err)
		}
	}

	if st := c.mustStatus(target); st.Term >= forgedTerm {
		t.Fatalf("node 1 is in term %d: a refused caller's forged heartbeat reached the core", st.Term)
	}
	if _, err := c.set(leader, "after-peer-refusals", "v"); err != nil {
		t.Fatalf("a write after the refused peer calls: %v", err)
	}
}

// forgedTerm is far beyond any term a test cluster reaches: a node in it heard a forged message.
const forgedTerm = 1 << 40

// checkPeerRefusals calls each PeerService method and expects want.
func checkPeerRefusals(t *testing.T, who string, peer georaftv1.PeerServiceClient, header *georaftv1.PeerHeader, want codes.Code) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := peer.Ping(ctx, &georaftv1.PingRequest{Header: header}); status.Code(err) != want {
		t.Fatalf("Ping with %s: got %v, want %v", who, err, want)
	}

	send, err := peer.Send(ctx)
	if err == nil {
		// A heartbeat from a far future term: it would depose the leader if it were let in.
		// Send's own error is io.EOF when the server already ended the stream; the status
		// comes from CloseAndRecv either way.
		_ = send.Send(&georaftv1.SendRequest{Header: header, Messages: []*georaftv1.RaftMessage{{
			Body: &georaftv1.RaftMessage_Heartbeat{Heartbeat: &georaftv1.HeartbeatRequest{Term: forgedTerm}},
		}}})
		_, err = send.CloseAndRecv()
	}
	if status.Code(err) != want {
		t.Fatalf("Send with %s: got %v, want %v", who, err, want)
	}

	snap, err := peer.InstallSnapshot(ctx)
	if err == nil {
		_ = snap.Send(&georaftv1.InstallSnapshotRequest{Header: header, Term: forgedTerm,
			Meta: &georaftv1.SnapshotMeta{Index: forgedTerm, Term: forgedTerm}, Size: 4, Chunk: []byte("evil")})
		_, err = snap.CloseAndRecv()
	}
	if status.Code(err) != want {
		t.Fatalf("InstallSnapshot with %s: got %v, want %v", who, err, want)
	}
}

// `georaftd certs` writes files a TLS cluster starts with, and the client certificate it
// issues works with the client library.
func TestGeoraftdCertsFilesStartACluster(t *testing.T) {
	t.Parallel() // mostly waiting (on the server's bound, on the go tool): overlap it with the other slow test
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: the go tool is not on PATH to build georaftd")
	}
	bin := filepath.Join(t.TempDir(), "georaftd")
	build := exec.Command(goTool, "build", "-o", bin, "github.com/georaft/georaft/node/cmd/georaftd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build georaftd: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "certs")
	specs := tlsNodeSpecs(3)
	args := []string{"certs", "--out", dir, "--client", tlsClientName, "--validity", "2h"}
	for _, s := range specs {
		args = append(args, "--node", fmt.Sprintf("%d=127.0.0.1,localhost", s.ID))
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("georaftd %v: %v\n%s", args, err, out)
	}
	if want := "certificates for 3 nodes and 1 client under " + dir; !strings.Contains(string(out), want) {
		t.Errorf("georaftd certs said %q, want it to mention %q", out, want)
	}
	files := tlsutil.ClusterFileNames(dir, specs, []string{tlsClientName})
	// The cluster below starts on renewed certificates: --renew keeps the CA and reissues
	// the rest under it.
	caBefore, err := os.ReadFile(files.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	nodeBefore, err := os.ReadFile(files.Nodes[1].Cert)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, append(args, "--renew")...).CombinedOutput(); err != nil {
		t.Fatalf("georaftd certs --renew: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "kept CA") {
		t.Errorf("georaftd certs --renew said %q, want it to say it kept the CA", out)
	}
	if caAfter, _ := os.ReadFile(files.CA.Cert); !bytes.Equal(caAfter, caBefore) {
		t.Error("georaftd certs --renew changed the CA")
	}
	if nodeAfter, _ := os.ReadFile(files.Nodes[1].Cert); bytes.Equal(nodeAfter, nodeBefore) {
		t.Error("georaftd certs --renew left node 1's certificate as it was")
	}
	for _, f := range append([]tlsutil.Files{files.CA, files.Clients[tlsClientName]}, files.Nodes[1], files.Nodes[2], files.Nodes[3]) {
		for _, path := range []string{f.Cert, f.Key} {
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("georaftd certs did not write %s: %v", path, err)
			}
		}
	}
	if info, err := os.Stat(files.Nodes[1].Key); err == nil && info.Mode().Perm()&0o077 != 0 {
		t.Errorf("node key %s has mode %v: readable by others", files.Nodes[1].Key, info.Mode().Perm())
	}

	c := newTLSTestCluster(t, 3, files, "")
	c.waitLeader(15 * time.Second)
	checkLibraryRoundTrip(t, c.clientAddrs(), clientTLS(t, files.CA.Cert, files.Clients[tlsClientName], ""), "certs-from-georaftd")
}

// A node exports when its certificate and its CA expire, and warns at start when either does
// within 30 days; with a year left it stays quiet.
func TestTLSCertificateExpiryIsExportedAndWarned(t *testing.T) {
	for _, tc := range []struct {
		validity time.Duration
		warned   bool
	}{{time.Hour, true}, {365 * 24 * time.Hour, false}} {
		t.Run(tc.validity.String(), func(t *testing.T) {
			files, err := tlsutil.GenerateCluster(filepath.Join(t.TempDir(), "certs"), tlsNodeSpecs(1), nil, tc.validity)
			if err != nil {
				t.Fatal(err)
			}
			cfg := clusterConfigs(t, 1, func(cfg *config.Config) {
				cfg.TLS = config.TLSConfig{Enabled: true, CAFile: files.CA.Cert, CertFile: files.Nodes[1].Cert, KeyFile: files.Nodes[1].Key}
				cfg.Listen.Metrics = "127.0.0.1:0"
			})[0]
			var logs lockedBuffer
			srv, err := node.Start(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Kill() })

			body := waitHTTPStatus(t, srv.MetricsAddr(), "/metrics", http.StatusOK, 5*time.Second)
			for name, path := range map[string]string{"node": files.Nodes[1].Cert, "ca": files.CA.Cert} {
				notAfter, err := tlsutil.NotAfter(path)
				if err != nil {
					t.Fatal(err)
				}
				line := fmt.Sprintf(`georaft_tls_certificate_expiry_timestamp_seconds{certificate="%s",node="1"} %g`, name, float64(notAfter.Unix()))
				if !strings.Contains(body, line) {
					t.Errorf("/metrics lacks %q", line)
				}
			}
			warned := strings.Contains(logs.String(), "certificate expires soon")
			if warned != tc.warned {
				t.Errorf("certificates valid for %v: warned %v, want %v; log:\n%s", tc.validity, warned, tc.warned, logs.String())
			}
			if tc.warned && !strings.Contains(logs.String(), "certificate=node") {
				t.Errorf("the warning does not name the node certificate:\n%s", logs.String())
			}
		})
	}
}

// lockedBuffer is a log destination the node's goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
