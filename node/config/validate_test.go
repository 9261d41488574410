package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

// validConfig loads threeNodes with its data directory under a fresh temporary directory.
func validConfig(t *testing.T) *Config {
	t.Helper()
	c := mustLoadFile(t, writeFile(t, threeNodes(t.TempDir())))
	if err := c.Validate(); err != nil {
		t.Fatalf("the base configuration is refused: %v", err)
	}
	return c
}

type tlsFiles struct{ ca, cert, key, otherKey string }

// writeTLSFiles makes a CA, a certificate it signed, that certificate's key and an
// unrelated key, as PEM files.
func writeTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	caKey, nodeKey := newKey(), newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	nodeTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caTmpl, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tlsFiles{
		ca:       write("ca.pem", "CERTIFICATE", caDER),
		cert:     write("node.pem", "CERTIFICATE", nodeDER),
		key:      write("node-key.pem", "EC PRIVATE KEY", keyDER(nodeKey)),
		otherKey: write("other-key.pem", "EC PRIVATE KEY", keyDER(newKey())),
	}
}

// TestValidateNamesTheKey breaks one thing per row in a valid configuration and checks
// that Validate reports it under the right key, in a message that names the key.
func TestValidateNamesTheKey(t *testing.T) {
	files := writeTLSFiles(t)
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		mutate  func(c *Config)
		key     string
		message string // the problem must contain it
	}{
		{"empty cluster id", func(c *Config) { c.ClusterID = "" }, "cluster_id", "cluster_id must not be empty"},
		{"spaced cluster id", func(c *Config) { c.ClusterID = "a " }, "cluster_id", `cluster_id "a " has leading or trailing spaces`},
		{"no node id", func(c *Config) { c.Node.ID = 0 }, "node.id", "node.id must be set to this node's id, one of peers[].id [1 2 3]"},
		{"unknown self", func(c *Config) { c.Node.ID = 6 }, "node.id", "node.id 6 is not among peers[].id [1 2 3]"},
		{"no region", func(c *Config) { c.Node.Region = "" }, "node.region", "node.region must not be empty"},
		{"other region", func(c *Config) { c.Node.Region = "mars" }, "node.region", `node.region "mars" differs from peers[0].region "us-central1"`},
		{"no peers", func(c *Config) { c.Peers = nil }, "peers", "peers must list every member"},
		{"peer id 0", func(c *Config) { c.Peers[2].ID = 0 }, "peers[2].id", "peers[2].id must be set to a non-zero id"},
		{"duplicate id", func(c *Config) { c.Peers[2].ID = 2 }, "peers[2].id", "peers[2].id 2 is also peers[1].id"},
		{"peer region", func(c *Config) { c.Peers[1].Region = "" }, "peers[1].region", "peers[1].region of node 2 must not be empty"},
		{"missing peer address", func(c *Config) { c.Peers[1].PeerAddress = "" }, "peers[1].peer_address", "peers[1].peer_address of node 2 must be set"},
		{"missing client address", func(c *Config) { c.Peers[1].ClientAddress = "" }, "peers[1].client_address", "peers[1].client_address of node 2 must be set"},
		{"no port", func(c *Config) { c.Peers[1].PeerAddress = "localhost" }, "peers[1].peer_address", `peers[1].peer_address "localhost" of node 2 is not HOST:PORT`},
		{"no host", func(c *Config) { c.Peers[1].PeerAddress = ":7102" }, "peers[1].peer_address", "has no host"},
		{"port 0", func(c *Config) { c.Peers[1].ClientAddress = "h:0" }, "peers[1].client_address", `has port "0", not a number from 1 to 65535`},
		{"port too big", func(c *Config) { c.Peers[1].ClientAddress = "h:70000" }, "peers[1].client_address", `has port "70000"`},
		{"duplicate peer address", func(c *Config) { c.Peers[2].PeerAddress = c.Peers[0].PeerAddress }, "peers[2].peer_address", `peers[2].peer_address "127.0.0.1:7101" is also peers[0].peer_address`},
		{"duplicate client address", func(c *Config) { c.Peers[2].ClientAddress = c.Peers[1].ClientAddress }, "peers[2].client_address", "is also peers[1].client_address"},
		{"client address is a peer address", func(c *Config) { c.Peers[1].ClientAddress = c.Peers[0].PeerAddress }, "peers[1].client_address", `peers[1].client_address "127.0.0.1:7101" is also peers[0].peer_address`},
		{"no listen peer", func(c *Config) { c.Listen.Peer = "" }, "listen.peer", "listen.peer must be set"},
		{"bad listen client", func(c *Config) { c.Listen.Client = "127.0.0.1" }, "listen.client", `listen.client "127.0.0.1" is not HOST:PORT`},
		{"bad metrics", func(c *Config) { c.Listen.Metrics = "127.0.0.1:http" }, "listen.metrics", `listen.metrics "127.0.0.1:http" has port "http"`},
		{"metrics on the client port", func(c *Config) { c.Listen.Metrics = c.Listen.Client }, "listen.metrics", "is also listen.client"},
		{"lease not below election", func(c *Config) { c.Timing.LeaseDuration = time.Second }, "timing.lease_duration",
			"timing.lease_duration (1s) must be shorter than timing.election_timeout_min (500ms)"},
		{"slow heartbeat", func(c *Config) { c.Timing.HeartbeatInterval = 200 * time.Millisecond }, "timing.heartbeat_interval",
			"timing.heartbeat_interval (200ms) must be at most a third of timing.lease_duration (400ms)"},
		{"no heartbeat", func(c *Config) { c.Timing.HeartbeatInterval = 0 }, "timing.heartbeat_interval", "timing.heartbeat_interval must be positive, got 0s"},
		{"election max below min", func(c *Config) { c.Timing.ElectionTimeoutMax = 400 * time.Millisecond }, "timing.election_timeout_max",
			"timing.election_timeout_max (400ms) must not be below timing.election_timeout_min (500ms)"},
		{"no election timeout", func(c *Config) { c.Timing.ElectionTimeoutMin = 0 }, "timing.election_timeout_min", "timing.election_timeout_min must be positive"},
		{"no lease", func(c *Config) { c.Timing.LeaseDuration = 0 }, "timing.lease_duration", "timing.lease_duration must be positive"},
		{"drift", func(c *Config) { c.Timing.MaxClockDrift = 0.7 }, "timing.max_clock_drift", "timing.max_clock_drift must be in [0, 0.5), got 0.7"},
		{"auto-removal before the health report", func(c *Config) { c.Cluster.AutoRemoveAfter = time.Second }, "cluster.auto_remove_after",
			"cluster.auto_remove_after 1s must be at least cluster.last_contact_threshold 10s"},
		{"negative auto-removal", func(c *Config) { c.Cluster.AutoRemoveAfter = -time.Second }, "cluster.auto_remove_after", "must be 0 (never) or positive"},
		{"no voter floor", func(c *Config) { c.Cluster.AutoRemoveMinVoters = 0 }, "cluster.auto_remove_min_voters", "cluster.auto_remove_min_voters must be at least 1, got 0"},
		{"staleness", func(c *Config) { c.Timing.MaxStaleness = -time.Second }, "timing.max_staleness", "timing.max_staleness must not be negative, got -1s"},
		{"key limit", func(c *Config) { c.Limits.MaxKeyBytes = 0 }, "limits.max_key_bytes", "limits.max_key_bytes must be positive, got 0"},
		{"value limit", func(c *Config) { c.Limits.MaxValueBytes = -1 }, "limits.max_value_bytes", "limits.max_value_bytes must be positive, got -1"},
		{"request limit", func(c *Config) { c.Limits.MaxRequestBytes = 0 }, "limits.max_request_bytes", "limits.max_request_bytes must be positive"},
		{"streams", func(c *Config) { c.Limits.MaxConcurrentStreams = 0 }, "limits.max_concurrent_streams", "limits.max_concurrent_streams must be positive"},
		{"client connections", func(c *Config) { c.Limits.MaxClientConnections = 0 }, "limits.max_client_connections", "limits.max_client_connections must be positive, got 0"},
		{"client connections per host", func(c *Config) { c.Limits.MaxClientConnectionsPerHost = -2 }, "limits.max_client_connections_per_host", "limits.max_client_connections_per_host must be positive, got -2"},
		{"per host above total", func(c *Config) { c.Limits.MaxClientConnectionsPerHost = 2 * c.Limits.MaxClientConnections }, "limits.max_client_connections_per_host",
			"limits.max_client_connections_per_host (2048) is above limits.max_client_connections (1024)"},
		{"request timeout", func(c *Config) { c.Limits.RequestTimeout = 0 }, "limits.request_timeout", "limits.request_timeout must be positive, got 0s"},
		{"request below key+value", func(c *Config) { c.Limits.MaxRequestBytes = c.Limits.MaxValueBytes }, "limits.max_request_bytes",
			"limits.max_request_bytes (1048576) must be at least limits.max_key_bytes (4096) + limits.max_value_bytes (1048576) + 42"},
		{"segment", func(c *Config) { c.Storage.SegmentBytes = 0 }, "storage.segment_bytes", "storage.segment_bytes must be positive"},
		{"snapshot entries", func(c *Config) { c.Storage.SnapshotEntries = 0 }, "storage.snapshot_entries", "storage.snapshot_entries must be positive"},
		{"snapshots kept", func(c *Config) { c.Storage.SnapshotsKept = 0 }, "storage.snapshots_kept", "storage.snapshots_kept must be at least 1"},
		{"no data dir", func(c *Config) { c.Node.DataDir = "" }, "node.data_dir", "node.data_dir must be set"},
		{"data dir under a file", func(c *Config) { c.Node.DataDir = filepath.Join(notADir, "data") }, "node.data_dir", "cannot be created: mkdir"},
		{"data dir not writable", func(c *Config) { c.Node.DataDir = unwritableDir(t) }, "node.data_dir", "is not writable"},
		{"tls without ca", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: files.cert, KeyFile: files.key} }, "tls.ca_file", "tls.ca_file must be set when tls.enabled is true"},
		{"tls missing file", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: files.ca, CertFile: files.cert + ".gone", KeyFile: files.key}
		}, "tls.cert_file", "node.pem.gone\" cannot be read"},
		{"tls device", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: "/dev/zero", CertFile: files.cert, KeyFile: files.key}
		}, "tls.ca_file", `"/dev/zero" cannot be read: not a regular file`},
		{"tls ca not pem", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: files.key, CertFile: files.cert, KeyFile: files.key}
		}, "tls.ca_file", "holds no PEM certificate"},
		{"tls key mismatch", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: files.ca, CertFile: files.cert, KeyFile: files.otherKey}
		}, "tls.cert_file", "are not a certificate and its key"},
		{"tls client_auth unknown", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: files.ca, CertFile: files.cert, KeyFile: files.key, ClientAuth: "sometimes"}
		}, "tls.client_auth", `tls.client_auth "sometimes" must be require or optional`},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, "log.level", `log.level "verbose" is not one of debug, info, warn, error`},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", `log.format "xml" is not one of text, json`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.mutate(c)
			ps := problemsOf(t, c.Validate())
			for _, p := range ps {
				if p.Key == tc.key && strings.Contains(p.Message, tc.message) {
					if !strings.Contains(p.Message, tc.key) {
						t.Errorf("message %q does not name its key %s", p.Message, tc.key)
					}
					return
				}
			}
			t.Errorf("no problem for %s containing %q; got %+v", tc.key, tc.message, ps)
		})
	}
}

// unwritableDir returns a directory that exists but where files cannot be created, even
// by root.
func unwritableDir(t *testing.T) string {
	if os.Geteuid() == 0 {
		// procfs refuses new files whoever asks.
		return "/proc/self"
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	return dir
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	c := validConfig(t)
	c.Node.ID = 9
	c.Timing.LeaseDuration = time.Second
	c.Limits.MaxKeyBytes = 0
	c.TLS.Enabled = true
	c.Log.Format = "xml"
	err := c.Validate()
	ps := problemsOf(t, err)
	want := []string{"node.id", "timing.lease_duration", "limits.max_key_bytes", "tls.ca_file", "tls.cert_file", "tls.key_file", "log.format"}
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, key := range want {
		if ps[i].Key != key {
			t.Errorf("problem %d is about %s, want %s", i, ps[i].Key, key)
		}
	}
	if !strings.HasPrefix(err.Error(), "invalid configuration (7 problems):\n  - node.id 9") {
		t.Errorf("error text:\n%v", err)
	}
}

func TestValidateAcceptsTLSFiles(t *testing.T) {
	files := writeTLSFiles(t)
	c := validConfig(t)
	c.TLS = TLSConfig{Enabled: true, CAFile: files.ca, CertFile: files.cert, KeyFile: files.key}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid TLS files refused: %v", err)
	}
}

func TestValidateCreatesTheDataDir(t *testing.T) {
	c := validConfig(t)
	c.Node.DataDir = filepath.Join(t.TempDir(), "a", "b", "node1")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(c.Node.DataDir)
	if err != nil {
		t.Fatalf("data dir not created: %v", err)
	}
	if len(entries) != 0 {
		t.Fatalf("the write probe was left behind: %v", entries)
	}
}

func TestHelpers(t *testing.T) {
	c := validConfig(t)
	rc := c.RaftConfig()
	if rc.ID != 1 || len(rc.Peers) != 3 || rc.Peers[2] != 3 || rc.LeaseDuration != 400*time.Millisecond ||
		rc.HeartbeatInterval != 100*time.Millisecond || rc.MaxClockDrift != 0.01 || rc.MaxStaleness != 2*time.Second {
		t.Errorf("RaftConfig = %+v", rc)
	}
	if err := rc.Validate(); err != nil {
		t.Errorf("RaftConfig of a valid configuration is refused by the core: %v", err)
	}
	if self := c.Self(); self.ID != 1 || self.Region != "us-central1" {
		t.Errorf("Self = %+v", self)
	}
	if p, ok := c.PeerByID(3); !ok || p.ClientAddress != "127.0.0.1:7203" {
		t.Errorf("PeerByID(3) = %+v, %v", p, ok)
	}
	if _, ok := c.PeerByID(4); ok {
		t.Error("PeerByID(4) found a peer")
	}
	if got := strings.Join(c.ClientEndpoints(), ","); got != "127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203" {
		t.Errorf("ClientEndpoints = %s", got)
	}
	want := kv.Limits{MaxKeyBytes: 4096, MaxValueBytes: 1 << 20, MaxRequestBytes: 4 << 20}
	if c.KVLimits() != want {
		t.Errorf("KVLimits = %+v", c.KVLimits())
	}
	c.Log.Level = "warn"
	if c.SlogLevel().String() != "WARN" {
		t.Errorf("SlogLevel = %v", c.SlogLevel())
	}
}

// The core's checks come back typed, naming the fields they involve, and every timing
// field has its key: no English is mapped back to keys.
func TestCoreConfigErrorsCarryTheirFields(t *testing.T) {
	rc := raft.Config{ID: 1, Peers: []uint64{1}, HeartbeatInterval: 50 * time.Millisecond,
		ElectionTimeoutMin: 300 * time.Millisecond, ElectionTimeoutMax: 600 * time.Millisecond, LeaseDuration: 400 * time.Millisecond}
	var ce *raft.ConfigError
	if err := rc.Validate(); !errors.As(err, &ce) {
		t.Fatalf("Validate() = %v, want a *raft.ConfigError", err)
	}
	if ce.Field != "LeaseDuration" || !slices.Equal(ce.Fields, []string{"LeaseDuration", "ElectionTimeoutMin"}) {
		t.Fatalf("error %q is about %s (%v)", ce, ce.Field, ce.Fields)
	}
	named := ce.Describe(func(f string) string { return raftKeys[f] })
	if named != "timing.lease_duration (400ms) must be shorter than timing.election_timeout_min (300ms)" {
		t.Errorf("described with keys: %q", named)
	}
	if ce.Error() != "lease duration (400ms) must be shorter than the minimum election timeout (300ms)" {
		t.Errorf("in the core's words: %q", ce.Error())
	}
}
