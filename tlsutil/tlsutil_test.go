package tlsutil

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const testValidity = 24 * time.Hour

var testNodes = []NodeSpec{
	{ID: 1, Hosts: []string{"127.0.0.1", "localhost"}},
	{ID: 2, Hosts: []string{"10.0.0.2", "node2.example.com"}},
	{ID: 3},
}

func generate(t *testing.T, clients ...string) *ClusterFiles {
	t.Helper()
	files, err := GenerateCluster(filepath.Join(t.TempDir(), "certs"), testNodes, clients, testValidity)
	if err != nil {
		t.Fatalf("GenerateCluster: %v", err)
	}
	return files
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := ReadCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestGenerateClusterWritesFilesWithPrivateKeys(t *testing.T) {
	files := generate(t, "cli", "bench-1")
	if len(files.Nodes) != 3 || len(files.Clients) != 2 {
		t.Fatalf("got %d node and %d client files, want 3 and 2", len(files.Nodes), len(files.Clients))
	}
	var keys, certs []string
	keys = append(keys, files.CA.Key)
	certs = append(certs, files.CA.Cert)
	for _, f := range files.Nodes {
		keys, certs = append(keys, f.Key), append(certs, f.Cert)
	}
	for _, f := range files.Clients {
		keys, certs = append(keys, f.Key), append(certs, f.Cert)
	}
	for _, k := range keys {
		st, err := os.Stat(k)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", k, st.Mode().Perm())
		}
	}
	for _, c := range certs {
		if _, err := os.Stat(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadCA(files.CA.Cert, files.CA.Key); err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
}

func TestGenerateClusterRefusesBadInputAndOverwrite(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name     string
		nodes    []NodeSpec
		clients  []string
		validity time.Duration
		want     string
	}{
		{"zero id", []NodeSpec{{ID: 0}}, nil, time.Hour, "node id must not be 0"},
		{"duplicate id", []NodeSpec{{ID: 1}, {ID: 1}}, nil, time.Hour, "node 1 listed twice"},
		{"bad client", []NodeSpec{{ID: 1}}, []string{"../etc"}, time.Hour, "client name"},
		{"duplicate client", []NodeSpec{{ID: 1}}, []string{"a", "a"}, time.Hour, `client "a" listed twice`},
		{"bad host", []NodeSpec{{ID: 1, Hosts: []string{"http://x"}}}, nil, time.Hour, "host"},
		{"no validity", []NodeSpec{{ID: 1}}, nil, 0, "validity must be positive"},
		{"no nodes", nil, nil, time.Hour, "no nodes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := GenerateCluster(filepath.Join(dir, tc.name), tc.nodes, tc.clients, tc.validity)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}

	target := filepath.Join(dir, "existing")
	if _, err := GenerateCluster(target, []NodeSpec{{ID: 1}}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	caBefore, _ := os.ReadFile(filepath.Join(target, "ca.key"))
	_, err := GenerateCluster(target, []NodeSpec{{ID: 1}}, nil, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second GenerateCluster in the same dir: got %v, want an already-exists error", err)
	}
	caAfter, _ := os.ReadFile(filepath.Join(target, "ca.key"))
	if string(caBefore) != string(caAfter) {
		t.Fatal("the CA key was overwritten")
	}
}

func TestCertificatesChainAndCarryIdentities(t *testing.T) {
	files := generate(t, "cli")
	pool, err := LoadCertPool(files.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	node2 := readCert(t, files.Nodes[2].Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := node2.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("node cert does not verify for usage %v: %v", usage, err)
		}
	}
	for _, name := range []string{"node2.example.com", NodeServerName(2), "10.0.0.2"} {
		if err := node2.VerifyHostname(name); err != nil {
			t.Errorf("node 2 cert not valid for %s: %v", name, err)
		}
	}
	if err := node2.VerifyHostname(NodeServerName(1)); err == nil {
		t.Error("node 2 cert is valid for node 1's server name")
	}
	kind, id, _, err := CertIdentity(node2)
	if err != nil || kind != KindNode || id != 2 {
		t.Errorf("node 2 identity = %v %d %v, want node 2", kind, id, err)
	}

	client := readCert(t, files.Clients["cli"].Cert)
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert does not verify: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client cert verifies as a server certificate")
	}
	kind, _, name, err := CertIdentity(client)
	if err != nil || kind != KindClient || name != "cli" {
		t.Errorf("client identity = %v %q %v, want client cli", kind, name, err)
	}
}

func TestCertificateExpiry(t *testing.T) {
	files := generate(t)
	pool, err := LoadCertPool(files.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	cert := readCert(t, files.Nodes[1].Cert)
	if !cert.NotAfter.After(time.Now().Add(testValidity - time.Minute)) {
		t.Errorf("NotAfter %v is earlier than the requested validity", cert.NotAfter)
	}
	later := cert.NotAfter.Add(time.Minute)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: later})
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("verify after NotAfter: got %v, want an expiry error", err)
	}

	// The same through a handshake whose server clock is past expiry.
	server, err := ServerConfig(files.CA.Cert, files.Nodes[1].Cert, files.Nodes[1].Key, true)
	if err != nil {
		t.Fatal(err)
	}
	server.Time = func() time.Time { return later }
	client, err := ClientConfig(files.CA.Cert, files.Nodes[2].Cert, files.Nodes[2].Key, NodeServerName(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, server, client); err == nil {
		t.Fatal("handshake with an expired client certificate succeeded")
	}

	ca, err := LoadCA(files.CA.Cert, files.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueNode(NodeSpec{ID: 9}, time.Until(ca.Cert.NotAfter)+time.Hour); err == nil {
		t.Error("issued a certificate that outlives its CA")
	}
}

// handshake runs a TLS handshake over loopback TCP and returns both sides' view.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (server, client tls.ConnectionState, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		state tls.ConnectionState
		err   error
	}
	serverDone := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverDone <- result{err: err}
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, serverCfg)
		err = tc.Handshake()
		if err == nil {
			// TLS 1.3 reports a refused client certificate only when the server reads.
			_, err = tc.Write([]byte{1})
		}
		serverDone <- result{tc.ConnectionState(), err}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, clientCfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	clientErr := tc.Handshake()
	if clientErr == nil {
		_, clientErr = tc.Read(make([]byte, 1))
	}
	tc.Close()
	sr := <-serverDone
	return sr.state, tc.ConnectionState(), errors.Join(sr.err, clientErr)
}

func TestHandshakeIdentities(t *testing.T) {
	files := generate(t, "cli")
	server, err := ServerConfig(files.CA.Cert, files.Nodes[1].Cert, files.Nodes[1].Key, true)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("node to node", func(t *testing.T) {
		client, err := ClientConfig(files.CA.Cert, files.Nodes[2].Cert, files.Nodes[2].Key, NodeServerName(1))
		if err != nil {
			t.Fatal(err)
		}
		ss, cs, err := handshake(t, server, client)
		if err != nil {
			t.Fatal(err)
		}
		if kind, id, _, err := PeerIdentity(ss); err != nil || kind != KindNode || id != 2 {
			t.Errorf("server sees %v %d %v, want node 2", kind, id, err)
		}
		if kind, id, _, err := PeerIdentity(cs); err != nil || kind != KindNode || id != 1 {
			t.Errorf("client sees %v %d %v, want node 1", kind, id, err)
		}
	})
	t.Run("client cert", func(t *testing.T) {
		client, err := ClientConfig(files.CA.Cert, files.Clients["cli"].Cert, files.Clients["cli"].Key, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		ss, _, err := handshake(t, server, client)
		if err != nil {
			t.Fatal(err)
		}
		if kind, _, name, err := PeerIdentity(ss); err != nil || kind != KindClient || name != "cli" {
			t.Errorf("server sees %v %q %v, want client cli", kind, name, err)
		}
	})
	t.Run("no cert with mTLS required", func(t *testing.T) {
		client, err := ClientConfig(files.CA.Cert, "", "", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := handshake(t, server, client); err == nil {
			t.Fatal("handshake without a client certificate succeeded")
		}
	})
	t.Run("no cert with mTLS optional", func(t *testing.T) {
		optional, err := ServerConfig(files.CA.Cert, files.Nodes[1].Cert, files.Nodes[1].Key, false)
		if err != nil {
			t.Fatal(err)
		}
		client, err := ClientConfig(files.CA.Cert, "", "", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		ss, _, err := handshake(t, optional, client)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := PeerIdentity(ss); err == nil {
			t.Error("PeerIdentity of a client without certificate succeeded")
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		client, err := ClientConfig(files.CA.Cert, files.Nodes[2].Cert, files.Nodes[2].Key, NodeServerName(3))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := handshake(t, server, client); err == nil {
			t.Fatal("node 1 passed as node 3")
		}
	})
}

func TestAnotherCAIsRefused(t *testing.T) {
	ours := generate(t, "cli")
	theirs := generate(t, "cli")
	server, err := ServerConfig(ours.CA.Cert, ours.Nodes[1].Cert, ours.Nodes[1].Key, true)
	if err != nil {
		t.Fatal(err)
	}
	// Their node, trusting our CA so only our side's check can fail.
	foreignClient, err := ClientConfig(ours.CA.Cert, theirs.Nodes[2].Cert, theirs.Nodes[2].Key, NodeServerName(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, server, foreignClient); err == nil {
		t.Fatal("server accepted a node certificate from another CA")
	}
	// Our node dialling a server of theirs.
	theirServer, err := ServerConfig(ours.CA.Cert, theirs.Nodes[1].Cert, theirs.Nodes[1].Key, true)
	if err != nil {
		t.Fatal(err)
	}
	ourClient, err := ClientConfig(ours.CA.Cert, ours.Nodes[2].Cert, ours.Nodes[2].Key, NodeServerName(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, theirServer, ourClient); err == nil {
		t.Fatal("client accepted a server certificate from another CA")
	}
}

func TestPeerIdentityRejectsMalformed(t *testing.T) {
	files := generate(t)
	node := readCert(t, files.Nodes[1].Cert)
	if _, _, _, err := PeerIdentity(tls.ConnectionState{}); err == nil {
		t.Error("no certificate: no error")
	}
	if _, _, _, err := PeerIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{node}}); err == nil {
		t.Error("unverified chain: no error")
	}
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	cases := []struct {
		name  string
		uris  []string
		usage []x509.ExtKeyUsage
	}{
		{"no uri", nil, both},
		{"two uris", []string{"georaft://node/1", "georaft://node/2"}, both},
		{"zero id", []string{"georaft://node/0"}, both},
		{"non-numeric id", []string{"georaft://node/x"}, both},
		{"nested path", []string{"georaft://node/1/2"}, both},
		{"unknown kind", []string{"georaft://admin/1"}, both},
		{"node without server usage", []string{"georaft://node/1"}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		{"bad client name", []string{"georaft://client/-x"}, both},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := &x509.Certificate{ExtKeyUsage: tc.usage}
			for _, s := range tc.uris {
				cert.URIs = append(cert.URIs, mustURL(s))
			}
			if kind, id, name, err := CertIdentity(cert); err == nil {
				t.Fatalf("got %v %d %q, want an error", kind, id, name)
			}
		})
	}
}

func TestConfigLoadErrorsNameTheFile(t *testing.T) {
	files := generate(t)
	missing := filepath.Join(t.TempDir(), "nope.crt")
	if _, err := ServerConfig(missing, files.Nodes[1].Cert, files.Nodes[1].Key, true); err == nil || !strings.Contains(err.Error(), "nope.crt") {
		t.Errorf("missing CA: %v", err)
	}
	if _, err := ClientConfig(files.CA.Cert, files.Nodes[1].Cert, "", ""); err == nil {
		t.Error("cert without key accepted")
	}
	if _, err := LoadCA(files.CA.Cert, files.Nodes[1].Key); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("CA with a foreign key: %v", err)
	}
	if _, err := LoadCA(files.Nodes[1].Cert, files.Nodes[1].Key); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("leaf loaded as CA: %v", err)
	}
}

// NotAfter reports the first expiry in a bundle, and names the file it cannot read.
func TestNotAfterIsTheFirstExpiryInTheFile(t *testing.T) {
	long, err := NewCA("long", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	short, err := NewCA("short", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle.crt")
	if err := os.WriteFile(bundle, append(long.CertPEM(), short.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := NotAfter(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if want := short.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %v, want the short-lived CA's %v", got, want)
	}
	missing := filepath.Join(t.TempDir(), "absent.crt")
	if _, err := NotAfter(missing); err == nil || !strings.Contains(err.Error(), "absent.crt") {
		t.Errorf("NotAfter of a missing file = %v, want an error naming it", err)
	}
}

// RenewCluster reissues every node and client certificate under the CA already there, adds
// a node that was not, and leaves the CA alone: renewed and old certificates chain to the same
// root, so a renewal can roll out one node at a time.
func TestRenewClusterKeepsTheCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	old, err := GenerateCluster(dir, testNodes, []string{"admin"}, testValidity)
	if err != nil {
		t.Fatal(err)
	}
	caBefore, err := os.ReadFile(old.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if ca := readCert(t, old.CA.Cert); time.Until(ca.NotAfter) < CAValidity-time.Hour {
		t.Errorf("the CA expires %v, want about %v from now: renewals need it to outlive its leaves", ca.NotAfter, CAValidity)
	}
	oldNode1 := readCert(t, old.Nodes[1].Cert)
	// Node 2 keeps its old pair, as a node not yet restarted in a rolling renewal does.
	keep := t.TempDir()
	oldNode2 := Files{Cert: filepath.Join(keep, "node-2.crt"), Key: filepath.Join(keep, "node-2.key")}
	for src, dst := range map[string]string{old.Nodes[2].Cert: oldNode2.Cert, old.Nodes[2].Key: oldNode2.Key} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	grown := append(slices.Clone(testNodes), NodeSpec{ID: 4, Hosts: []string{"127.0.0.1"}})
	renewed, err := RenewCluster(dir, grown, []string{"admin"}, 2*testValidity)
	if err != nil {
		t.Fatal(err)
	}
	if caAfter, err := os.ReadFile(renewed.CA.Cert); err != nil || !bytes.Equal(caAfter, caBefore) {
		t.Fatalf("the CA changed on renewal (%v)", err)
	}
	pool, err := LoadCertPool(renewed.CA.Cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{renewed.Nodes[1].Cert, renewed.Nodes[4].Cert, renewed.Clients["admin"].Cert} {
		cert := readCert(t, path)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not chain to the kept CA: %v", path, err)
		}
	}
	newNode1 := readCert(t, renewed.Nodes[1].Cert)
	if newNode1.SerialNumber.Cmp(oldNode1.SerialNumber) == 0 || !newNode1.NotAfter.After(oldNode1.NotAfter) {
		t.Errorf("node 1's certificate was not reissued: serial %v until %v, was %v until %v",
			newNode1.SerialNumber, newNode1.NotAfter, oldNode1.SerialNumber, oldNode1.NotAfter)
	}
	// Renewed pairs are pairs, and a renewed node and one still on its old pair shake hands
	// both ways.
	renewedServer, err := ServerConfig(renewed.CA.Cert, renewed.Nodes[1].Cert, renewed.Nodes[1].Key, true)
	if err != nil {
		t.Fatal(err)
	}
	oldClient, err := ClientConfig(renewed.CA.Cert, oldNode2.Cert, oldNode2.Key, NodeServerName(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, renewedServer, oldClient); err != nil {
		t.Errorf("old node 2 to renewed node 1: %v", err)
	}
	oldServer, err := ServerConfig(renewed.CA.Cert, oldNode2.Cert, oldNode2.Key, true)
	if err != nil {
		t.Fatal(err)
	}
	renewedClient, err := ClientConfig(renewed.CA.Cert, renewed.Nodes[4].Cert, renewed.Nodes[4].Key, NodeServerName(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := handshake(t, oldServer, renewedClient); err != nil {
		t.Errorf("renewed node 4 to old node 2: %v", err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*"+stagedSuffix)); len(leftovers) > 0 {
		t.Errorf("renewal left staged files behind: %v", leftovers)
	}
	if info, err := os.Stat(renewed.Nodes[4].Key); err != nil {
		t.Error(err)
	} else if info.Mode().Perm() != 0o600 {
		t.Errorf("renewed key %s has mode %v, want 0600", renewed.Nodes[4].Key, info.Mode().Perm())
	}

	if _, err := RenewCluster(dir, testNodes, nil, CAValidity+time.Hour); err == nil || !strings.Contains(err.Error(), "issue a new CA") {
		t.Errorf("renewing past the CA's expiry: %v, want an error saying to issue a new CA", err)
	}
	if _, err := RenewCluster(t.TempDir(), testNodes, nil, testValidity); err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("renewing without a CA: %v, want an error naming ca.crt", err)
	}
}
