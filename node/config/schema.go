package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/georaft/georaft/internal/typo"
	"github.com/georaft/georaft/node/kv"
)

// field is one scalar key of the schema. The Go type of the value ref points to decides
// how the key is decoded, flagged and printed.
type field struct {
	key   string // "timing.lease_duration"
	flag  string // "lease-duration", or "" when the key has no flag
	usage string // flag help and the comment Print puts next to the key
	ref   func(c *Config) any
}

// fields lists the schema in the order Print writes it. peers is not here: it is a list,
// decoded and printed on its own (after listen).
var fields = []field{
	{"cluster_id", "cluster-id", "peers refuse RPCs carrying another cluster id", func(c *Config) any { return &c.ClusterID }},

	{"node.id", "node-id", "this node; one of peers[].id", func(c *Config) any { return &c.Node.ID }},
	{"node.region", "region", "defaults to this node's peers[] region", func(c *Config) any { return &c.Node.Region }},
	{"node.data_dir", "data-dir", "WAL and snapshots; defaults to data/node<ID>", func(c *Config) any { return &c.Node.DataDir }},

	{"listen.peer", "listen-peer", "PeerService; defaults to this node's peer_address", func(c *Config) any { return &c.Listen.Peer }},
	{"listen.client", "listen-client", "KVService; defaults to this node's client_address", func(c *Config) any { return &c.Listen.Client }},
	{"listen.metrics", "listen-metrics", `/metrics, /healthz, /readyz ("" disables)`, func(c *Config) any { return &c.Listen.Metrics }},

	{"timing.heartbeat_interval", "heartbeat-interval", "idle leader heartbeats; at most a third of the lease", func(c *Config) any { return &c.Timing.HeartbeatInterval }},
	{"timing.election_timeout_min", "election-timeout-min", "randomized election timeout, lower bound", func(c *Config) any { return &c.Timing.ElectionTimeoutMin }},
	{"timing.election_timeout_max", "election-timeout-max", "randomized election timeout, upper bound", func(c *Config) any { return &c.Timing.ElectionTimeoutMax }},
	{"timing.lease_duration", "lease-duration", "leader lease; shorter than election_timeout_min", func(c *Config) any { return &c.Timing.LeaseDuration }},
	{"timing.max_clock_drift", "max-clock-drift", "bound on clock rate difference between nodes, in [0, 0.5)", func(c *Config) any { return &c.Timing.MaxClockDrift }},
	{"timing.max_staleness", "max-staleness", "stale reads refused after this long without a leader (0: lease_duration)", func(c *Config) any { return &c.Timing.MaxStaleness }},
	{"timing.lease_read_fallback", "lease-read-fallback", "serve a lease read without a lease as an index read", func(c *Config) any { return &c.Timing.LeaseReadFallback }},

	{"limits.max_key_bytes", "", "largest key accepted; larger is INVALID_ARGUMENT", func(c *Config) any { return &c.Limits.MaxKeyBytes }},
	{"limits.max_value_bytes", "", "largest value accepted; larger is INVALID_ARGUMENT", func(c *Config) any { return &c.Limits.MaxValueBytes }},
	{"limits.max_request_bytes", "", fmt.Sprintf("at least max_key_bytes + max_value_bytes + %d", kv.MaxEncodingOverhead), func(c *Config) any { return &c.Limits.MaxRequestBytes }},
	{"limits.max_concurrent_streams", "", "per client connection", func(c *Config) any { return &c.Limits.MaxConcurrentStreams }},
	{"limits.max_client_connections", "", "open connections on the client port; more are closed on accept", func(c *Config) any { return &c.Limits.MaxClientConnections }},
	{"limits.max_client_connections_per_host", "", "open client connections from one IP address", func(c *Config) any { return &c.Limits.MaxClientConnectionsPerHost }},
	{"limits.request_timeout", "", "server bound on a client request, from its headers, when the client set no shorter deadline", func(c *Config) any { return &c.Limits.RequestTimeout }},

	{"storage.segment_bytes", "", "WAL segment size", func(c *Config) any { return &c.Storage.SegmentBytes }},
	{"storage.snapshot_entries", "", "take a snapshot and compact after this many applied entries", func(c *Config) any { return &c.Storage.SnapshotEntries }},
	{"storage.snapshots_kept", "", "snapshot files kept on disk, newest first", func(c *Config) any { return &c.Storage.SnapshotsKept }},
	{"storage.block_cache_bytes", "", "the state machine engine's (pebble's) block cache", func(c *Config) any { return &c.Storage.BlockCacheBytes }},
	{"storage.latest_cache_bytes", "", "the newest version of recently used keys, kept in memory so their reads and writes skip the engine (0: none)", func(c *Config) any { return &c.Storage.LatestCacheBytes }},

	{"tls.enabled", "", "mutual TLS between peers and for clients", func(c *Config) any { return &c.TLS.Enabled }},
	{"tls.ca_file", "", "CA that signs every node and client certificate", func(c *Config) any { return &c.TLS.CAFile }},
	{"tls.cert_file", "", "this node's certificate (georaftd certs makes one)", func(c *Config) any { return &c.TLS.CertFile }},
	{"tls.key_file", "", "this node's private key", func(c *Config) any { return &c.TLS.KeyFile }},
	{"tls.client_auth", "", "client port: require a client certificate of the CA, or optional (verified when given)", func(c *Config) any { return &c.TLS.ClientAuth }},

	{"log.level", "log-level", "debug|info|warn|error", func(c *Config) any { return &c.Log.Level }},
	{"log.format", "log-format", "text|json", func(c *Config) any { return &c.Log.Format }},
	{"log.dump_requests", "dump-requests", "client traffic in dump.txt: off|sampled (1 line in 100)|all; elections, leases and faults are always there", func(c *Config) any { return &c.Log.DumpRequests }},

	{"cluster.initial_state", "initial-state", "new: one of the voters peers[] creates the cluster with; existing: an empty data directory is a lost disk and start-up is refused (docs/membership.md)", func(c *Config) any { return &c.Cluster.InitialState }},
	{"cluster.join", "join", "any member's client address: an empty data directory joins the cluster there as a new member", func(c *Config) any { return &c.Cluster.Join }},
	{"cluster.join_as", "join-as", "voter: a joined node asks to be promoted once caught up; learner: it waits for an operator", func(c *Config) any { return &c.Cluster.JoinAs }},
	{"cluster.replaces", "replaces", "with cluster.join: the member this node takes the place of once caught up (0: none)", func(c *Config) any { return &c.Cluster.Replaces }},
	{"cluster.last_contact_threshold", "", "the leader reports a member unheard of for this long as unhealthy", func(c *Config) any { return &c.Cluster.LastContactThreshold }},
	{"cluster.auto_remove_after", "", "0: never remove a member automatically; else the leader removes one unheard of for this long (docs/membership.md)", func(c *Config) any { return &c.Cluster.AutoRemoveAfter }},
	{"cluster.auto_remove_min_voters", "", "automatic removal never leaves fewer voters than this", func(c *Config) any { return &c.Cluster.AutoRemoveMinVoters }},

	{"console.enabled", "console", "the web console at /ui on the metrics listener; HTTPS only when tls.enabled (docs/console.md)", func(c *Config) any { return &c.Console.Enabled }},
	{"read_leases.holders", "read-lease-holders", "members answering linearizable reads locally in a new cluster: all, none, or member ids and regions (later: georaft read-leases set)", func(c *Config) any { return &c.ReadLeases.Holders }},

	{"read_leases.per_key_wait", "", "georaft.v1 lease reads (and etcd reads that ask for it with georaft-per-key-wait: on) wait only for held entries touching their keys (false: for every held entry)", func(c *Config) any { return &c.ReadLeases.PerKeyWait }},

	{"placement.preferred_regions", "preferred-regions", "the leader is kept in the first of these regions with a healthy, caught-up voter", func(c *Config) any { return &c.Placement.PreferredRegions }},
	{"placement.healthy_for", "", "how long a voter must be healthy before leadership moves back to its preferred region", func(c *Config) any { return &c.Placement.HealthyFor }},
	{"placement.stop_handoff_timeout", "", "how long a stopping leader tries to hand leadership over before it exits", func(c *Config) any { return &c.Placement.StopHandoffTimeout }},

	{"console.results_dir", "", `where the console finds bench-latest.json and compare-latest.json ("" shows none)`, func(c *Config) any { return &c.Console.ResultsDir }},
}

const peersKey = "peers"

// peerFields are the keys of one peers[] entry, in print order.
type peerField struct {
	key string
	ref func(p *Peer) any
}

var peerFields = []peerField{
	{"id", func(p *Peer) any { return &p.ID }},
	{"region", func(p *Peer) any { return &p.Region }},
	{"peer_address", func(p *Peer) any { return &p.PeerAddress }},
	{"client_address", func(p *Peer) any { return &p.ClientAddress }},
}

// schemaSections maps each section ("node") to its keys ("id", ...); top-level scalars
// ("cluster_id") map to nil.
var schemaSections = func() map[string][]string {
	m := map[string][]string{peersKey: nil}
	for _, f := range fields {
		section, leaf, nested := strings.Cut(f.key, ".")
		if nested {
			m[section] = append(m[section], leaf)
		} else {
			m[section] = nil
		}
	}
	return m
}()

// isListKey reports whether key holds a list.
func isListKey(key string) bool {
	for _, f := range fields {
		if f.key == key {
			_, ok := f.ref(&Config{}).(*[]string)
			return ok
		}
	}
	return false
}

func isSection(name string) bool { return schemaSections[name] != nil }

func isPeerKey(name string) bool {
	for _, pf := range peerFields {
		if pf.key == name {
			return true
		}
	}
	return false
}

// envPrefix starts every environment variable: GEORAFT_TIMING_LEASE_DURATION.
const envPrefix = "GEORAFT_"

// envName is the environment variable for a key: dots and dashes become underscores.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// configEnv names the config file when --config is not given.
const configEnv = envPrefix + "CONFIG"

// allKeys is every full key a file, override or suggestion may name.
func allKeys() []string {
	keys := []string{peersKey}
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	for _, pf := range peerFields {
		keys = append(keys, peersKey+"[]."+pf.key)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the known key an unknown one was probably meant to be, or "".
func suggest(unknown string) string {
	candidates := allKeys()
	for section := range schemaSections {
		if isSection(section) {
			candidates = append(candidates, section)
		}
	}
	sort.Strings(candidates)
	best, bestDist := "", len(unknown)
	for _, k := range candidates {
		if strings.EqualFold(k, unknown) {
			return k
		}
		if d := typo.Distance(unknown, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if bestDist <= 1 {
		return best
	}
	// The right name in the wrong section (node.lease_duration, or lease_duration alone).
	_, leaf, nested := strings.Cut(unknown, ".")
	if !nested {
		leaf = unknown
	}
	for _, k := range candidates {
		if _, kl, ok := strings.Cut(k, "."); ok && kl == leaf {
			return k
		}
	}
	if bestDist > 3 || bestDist > len(unknown)/3 {
		return ""
	}
	return best
}
