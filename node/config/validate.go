package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

// Validate checks what the values mean and returns every problem at once as an *Error,
// each naming its key: identity (cluster_id, node.id among peers[].id, regions), the peer
// list (ids, addresses, duplicates), listen addresses, timing (by raft.Config.Validate),
// limits, storage, the data directory, TLS files and logging.
//
// It has one side effect: it creates node.data_dir if it is missing, and writes and removes
// a probe file in it, because only trying tells whether the node will be able to.
func (c *Config) Validate() error {
	var ps problems
	c.checkIdentity(&ps)
	c.checkPeers(&ps)
	c.checkListen(&ps)
	c.checkTiming(&ps)
	c.checkLimits(&ps)
	c.checkStorage(&ps)
	c.checkDataDir(&ps)
	c.checkTLS(&ps)
	c.checkLog(&ps)
	c.checkReadLeases(&ps)
	c.checkPlacement(&ps)
	c.checkCluster(&ps)
	return ps.err()
}

func (c *Config) checkIdentity(ps *problems) {
	switch {
	case c.ClusterID == "":
		ps.add("cluster_id", "cluster_id must not be empty")
	case strings.TrimSpace(c.ClusterID) != c.ClusterID:
		ps.add("cluster_id", "cluster_id %q has leading or trailing spaces", c.ClusterID)
	}
	joining := c.Cluster.Join != ""
	if c.Node.ID == 0 && !joining {
		ps.add("node.id", "node.id must be set to this node's id, one of peers[].id %v (or cluster.join set, to be given one)", c.peerIDs())
	} else if len(c.Peers) > 0 && c.Node.ID != 0 && !joining {
		if _, ok := c.PeerByID(c.Node.ID); !ok {
			ps.add("node.id", "node.id %d is not among peers[].id %v", c.Node.ID, c.peerIDs())
		}
	}
	if c.Node.Region == "" {
		ps.add("node.region", "node.region must not be empty (set it, or the region of this node's peers[] entry)")
	} else {
		for i, p := range c.Peers {
			if p.ID == c.Node.ID && p.Region != "" && p.Region != c.Node.Region {
				ps.add("node.region", "node.region %q differs from peers[%d].region %q of this node (%d)",
					c.Node.Region, i, p.Region, p.ID)
			}
		}
	}
}

func (c *Config) peerIDs() []uint64 {
	ids := make([]uint64, len(c.Peers))
	for i, p := range c.Peers {
		ids[i] = p.ID
	}
	return ids
}

func (c *Config) checkPeers(ps *problems) {
	if len(c.Peers) == 0 && c.Cluster.Join != "" {
		return
	}
	if len(c.Peers) == 0 {
		ps.add("peers", "peers must list every member of the cluster, this node included")
		return
	}
	firstID := map[uint64]int{}
	// One map for both kinds: a client address equal to a peer address is as wrong as two
	// equal peer addresses.
	firstUse := map[string]string{}
	for i, p := range c.Peers {
		key := func(leaf string) string { return fmt.Sprintf("peers[%d].%s", i, leaf) }
		if p.ID == 0 {
			ps.add(key("id"), "%s must be set to a non-zero id", key("id"))
		} else if j, dup := firstID[p.ID]; dup {
			ps.add(key("id"), "%s %d is also peers[%d].id", key("id"), p.ID, j)
		} else {
			firstID[p.ID] = i
		}
		if p.Region == "" {
			ps.add(key("region"), "%s of node %d must not be empty", key("region"), p.ID)
		}
		for _, a := range []struct{ leaf, addr string }{{"peer_address", p.PeerAddress}, {"client_address", p.ClientAddress}} {
			switch err := checkAddress(a.addr, true); {
			case a.addr == "":
				ps.add(key(a.leaf), "%s of node %d must be set", key(a.leaf), p.ID)
			case err != nil:
				ps.add(key(a.leaf), "%s %q of node %d %v", key(a.leaf), a.addr, p.ID, err)
			default:
				if other, dup := firstUse[a.addr]; dup {
					ps.add(key(a.leaf), "%s %q is also %s", key(a.leaf), a.addr, other)
				} else {
					firstUse[a.addr] = key(a.leaf)
				}
			}
		}
	}
}

// CheckDialAddress checks an address other nodes dial: HOST:PORT with a host and a port.
func CheckDialAddress(addr string) error { return checkAddress(addr, true) }

// checkAddress checks HOST:PORT. A dialed address needs a host and a port above 0; a
// listen address may leave the host empty (every interface) and use port 0 (any).
func checkAddress(addr string, dialed bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("is not HOST:PORT (%v)", strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	if dialed && host == "" {
		return fmt.Errorf("has no host")
	}
	if strings.ContainsAny(host, " \t/@,") {
		return fmt.Errorf("has a malformed host %q", host)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (dialed && n == 0) {
		return fmt.Errorf("has port %q, not a number from 1 to 65535", port)
	}
	return nil
}

func (c *Config) checkListen(ps *problems) {
	seen := map[string]string{}
	for _, l := range []struct {
		key, addr string
		optional  bool
	}{
		{"listen.peer", c.Listen.Peer, false},
		{"listen.client", c.Listen.Client, false},
		{"listen.metrics", c.Listen.Metrics, true},
	} {
		if l.addr == "" {
			if !l.optional {
				ps.add(l.key, "%s must be set (or this node's peers[] entry, which it defaults to)", l.key)
			}
			continue
		}
		if err := checkAddress(l.addr, false); err != nil {
			ps.add(l.key, "%s %q %v", l.key, l.addr, err)
			continue
		}
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue
		}
		if other, dup := seen[l.addr]; dup {
			ps.add(l.key, "%s %q is also %s; each server needs its own address", l.key, l.addr, other)
		}
		seen[l.addr] = l.key
	}
}

// raftKeys are the config keys of the raft.Config fields the timing section sets.
var raftKeys = map[string]string{
	"HeartbeatInterval":  "timing.heartbeat_interval",
	"ElectionTimeoutMin": "timing.election_timeout_min",
	"ElectionTimeoutMax": "timing.election_timeout_max",
	"LeaseDuration":      "timing.lease_duration",
	"MaxClockDrift":      "timing.max_clock_drift",
	"MaxStaleness":       "timing.max_staleness",
}

// checkTiming delegates to the core's own checks, so the node cannot start with timing the
// core refuses, and names each problem by its config keys.
func (c *Config) checkTiming(ps *problems) {
	rc := c.RaftConfig()
	err := rc.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		var ce *raft.ConfigError
		if !errors.As(e, &ce) {
			ps.add("timing", "timing: %v", e)
			continue
		}
		key, ok := raftKeys[ce.Field]
		switch {
		case ce.Field == "ID" || ce.Field == "Peers":
			continue // checked above, with the config keys and indexes
		case !ok:
			key = "timing" // a rule on a field no key sets: still the node's problem
		}
		ps.add(key, "%s", ce.Describe(func(field string) string {
			if k, ok := raftKeys[field]; ok {
				return k
			}
			return field
		}))
	}
}

func (c *Config) checkLimits(ps *problems) {
	l := c.Limits
	allPositive := true
	for _, f := range []struct {
		key   string
		value int
	}{
		{"limits.max_key_bytes", l.MaxKeyBytes},
		{"limits.max_value_bytes", l.MaxValueBytes},
		{"limits.max_request_bytes", l.MaxRequestBytes},
		{"limits.max_concurrent_streams", l.MaxConcurrentStreams},
		{"limits.max_client_connections", l.MaxClientConnections},
		{"limits.max_client_connections_per_host", l.MaxClientConnectionsPerHost},
	} {
		if f.value <= 0 {
			ps.add(f.key, "%s must be positive, got %d", f.key, f.value)
			allPositive = false
		}
	}
	if l.MaxConcurrentStreams > math.MaxUint32 {
		ps.add("limits.max_concurrent_streams", "limits.max_concurrent_streams %d is above the HTTP/2 maximum %d",
			l.MaxConcurrentStreams, uint32(math.MaxUint32))
	}
	if l.MaxClientConnectionsPerHost > l.MaxClientConnections && l.MaxClientConnections > 0 {
		ps.add("limits.max_client_connections_per_host",
			"limits.max_client_connections_per_host (%d) is above limits.max_client_connections (%d), which caps it anyway",
			l.MaxClientConnectionsPerHost, l.MaxClientConnections)
	}
	if l.RequestTimeout <= 0 {
		ps.add("limits.request_timeout", "limits.request_timeout must be positive, got %s", l.RequestTimeout)
	}
	if allPositive {
		need := l.MaxKeyBytes + l.MaxValueBytes + kv.MaxEncodingOverhead
		if l.MaxRequestBytes < need {
			ps.add("limits.max_request_bytes",
				"limits.max_request_bytes (%d) must be at least limits.max_key_bytes (%d) + limits.max_value_bytes (%d) + %d = %d, so the largest key and value fit in one request",
				l.MaxRequestBytes, l.MaxKeyBytes, l.MaxValueBytes, kv.MaxEncodingOverhead, need)
		}
	}
}

func (c *Config) checkStorage(ps *problems) {
	s := c.Storage
	if s.SegmentBytes <= 0 {
		ps.add("storage.segment_bytes", "storage.segment_bytes must be positive, got %d", s.SegmentBytes)
	}
	if s.SnapshotEntries == 0 {
		ps.add("storage.snapshot_entries", "storage.snapshot_entries must be positive, got 0")
	}
	if s.BlockCacheBytes < 1<<20 {
		ps.add("storage.block_cache_bytes", "storage.block_cache_bytes must be at least 1 MiB (1048576), got %d", s.BlockCacheBytes)
	}
	if s.LatestCacheBytes < 0 {
		ps.add("storage.latest_cache_bytes", "storage.latest_cache_bytes must be 0 (none) or positive, got %d", s.LatestCacheBytes)
	}
	if s.SnapshotsKept < 1 {
		ps.add("storage.snapshots_kept", "storage.snapshots_kept must be at least 1, got %d", s.SnapshotsKept)
	}
}

func (c *Config) checkDataDir(ps *problems) {
	dir := c.Node.DataDir
	if dir == "" {
		ps.add("node.data_dir", "node.data_dir must be set")
		return
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		ps.add("node.data_dir", "node.data_dir %q cannot be created: %v", dir, err)
		return
	}
	if err := probeWrite(dir); err != nil {
		ps.add("node.data_dir", "node.data_dir %q is not writable: %v", dir, err)
	}
}

// probeWrite writes, syncs and removes a file in dir: what the WAL will do first.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".georaft-probe-*")
	if err != nil {
		return err
	}
	_, werr := f.WriteString("georaft write probe\n")
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	for _, err := range []error{werr, cerr, rerr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// maxPEMBytes bounds what Validate reads of a TLS file; real ones are a few KiB.
const maxPEMBytes = 1 << 20

func (c *Config) checkTLS(ps *problems) {
	t := c.TLS
	if !t.Enabled {
		return
	}
	read := func(key, path string) []byte {
		if path == "" {
			ps.add(key, "%s must be set when tls.enabled is true", key)
			return nil
		}
		b, err := readSmallFile(path)
		if err != nil {
			ps.add(key, "%s %q cannot be read: %v", key, path, err)
			return nil
		}
		return b
	}
	// Empty is the default, require (a Config built in code rather than loaded).
	if t.ClientAuth != "" && t.ClientAuth != ClientAuthRequire && t.ClientAuth != ClientAuthOptional {
		ps.add("tls.client_auth", "tls.client_auth %q must be %s or %s", t.ClientAuth, ClientAuthRequire, ClientAuthOptional)
	}
	ca := read("tls.ca_file", t.CAFile)
	cert := read("tls.cert_file", t.CertFile)
	key := read("tls.key_file", t.KeyFile)
	if ca != nil && !x509.NewCertPool().AppendCertsFromPEM(ca) {
		ps.add("tls.ca_file", "tls.ca_file %q holds no PEM certificate", t.CAFile)
	}
	if cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			ps.add("tls.cert_file", "tls.cert_file %q and tls.key_file %q are not a certificate and its key: %v",
				t.CertFile, t.KeyFile, err)
		}
	}
}

// readSmallFile reads a regular file of at most maxPEMBytes, so that a path like
// /dev/zero fails instead of hanging.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPEMBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMBytes {
		return nil, fmt.Errorf("larger than %d bytes; not a PEM file", maxPEMBytes)
	}
	return b, nil
}

var (
	logLevels    = []string{"debug", "info", "warn", "error"}
	logFormats   = []string{"text", "json"}
	dumpRequests = []string{"off", "sampled", "all"}
)

func (c *Config) checkLog(ps *problems) {
	if !slices.Contains(logLevels, c.Log.Level) {
		ps.add("log.level", "log.level %q is not one of %s", c.Log.Level, strings.Join(logLevels, ", "))
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		ps.add("log.format", "log.format %q is not one of %s", c.Log.Format, strings.Join(logFormats, ", "))
	}
	if !slices.Contains(dumpRequests, c.Log.DumpRequests) {
		ps.add("log.dump_requests", "log.dump_requests %q is not one of %s", c.Log.DumpRequests, strings.Join(dumpRequests, ", "))
	}
}

func (c *Config) checkCluster(ps *problems) {
	cl := c.Cluster
	if cl.InitialState != InitialStateNew && cl.InitialState != InitialStateExisting {
		ps.add("cluster.initial_state", "cluster.initial_state %q must be %s or %s", cl.InitialState, InitialStateNew, InitialStateExisting)
	}
	if cl.JoinAs != JoinAsVoter && cl.JoinAs != JoinAsLearner {
		ps.add("cluster.join_as", "cluster.join_as %q must be %s or %s", cl.JoinAs, JoinAsVoter, JoinAsLearner)
	}
	if cl.LastContactThreshold <= 0 {
		ps.add("cluster.last_contact_threshold", "cluster.last_contact_threshold must be positive, got %v", cl.LastContactThreshold)
	}
	if cl.AutoRemoveAfter < 0 {
		ps.add("cluster.auto_remove_after", "cluster.auto_remove_after must be 0 (never) or positive, got %v", cl.AutoRemoveAfter)
	} else if cl.AutoRemoveAfter > 0 && cl.AutoRemoveAfter < cl.LastContactThreshold {
		ps.add("cluster.auto_remove_after", "cluster.auto_remove_after %v must be at least cluster.last_contact_threshold %v: a member is removed only after it was reported unhealthy",
			cl.AutoRemoveAfter, cl.LastContactThreshold)
	}
	if cl.AutoRemoveMinVoters < 1 {
		ps.add("cluster.auto_remove_min_voters", "cluster.auto_remove_min_voters must be at least 1, got %d", cl.AutoRemoveMinVoters)
	}
	if cl.Join == "" {
		if cl.Replaces != 0 {
			ps.add("cluster.replaces", "cluster.replaces %d needs cluster.join: only a joining node takes another member's place", cl.Replaces)
		}
		return
	}
	if err := checkAddress(cl.Join, true); err != nil {
		ps.add("cluster.join", "cluster.join %q %v", cl.Join, err)
	}
	if cl.Replaces != 0 && cl.Replaces == c.Node.ID {
		ps.add("cluster.replaces", "cluster.replaces %d is this node's own id", cl.Replaces)
	}
	if cl.Replaces != 0 && cl.JoinAs == JoinAsLearner {
		ps.add("cluster.replaces", "cluster.replaces takes a member's place as a voter; it cannot go with cluster.join_as learner")
	}
	// A joining node tells the cluster where to reach it: its listen addresses, unless its
	// peers[] entry names others.
	if _, listed := c.PeerByID(c.Node.ID); !listed || c.Node.ID == 0 {
		for _, l := range []struct{ key, addr string }{{"listen.peer", c.Listen.Peer}, {"listen.client", c.Listen.Client}} {
			if host, _, err := net.SplitHostPort(l.addr); err == nil && (host == "" || net.ParseIP(host).IsUnspecified()) {
				ps.add(l.key, "%s %q is what a joining node tells the cluster to dial: it needs a reachable host "+
					"(or list this node in peers[] with its addresses)", l.key, l.addr)
			}
		}
	}
}
