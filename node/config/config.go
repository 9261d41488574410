// Package config is georaftd's configuration: a YAML file, GEORAFT_* environment variables
// and command-line flags layered with viper (flags > env > file > defaults), decoded into a
// typed Config whose every problem names the key it is about.
//
// Load and LoadFile read and decode; they refuse unknown keys and values of the wrong type.
// Validate then checks the meaning (ids, addresses, timing, limits, the data directory, TLS
// files) and reports every problem at once. Print writes the effective configuration back
// as YAML that Load reads to the same Config.
package config

import (
	"log/slog"
	"time"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

// Config mirrors the YAML schema in docs/design.md.
type Config struct {
	// ClusterID is carried by every peer RPC; peers refuse RPCs carrying another one.
	ClusterID string
	Node      NodeConfig
	Listen    ListenConfig
	// Peers lists every member, this node included.
	Peers   []Peer
	Timing  TimingConfig
	Limits  LimitsConfig
	Storage StorageConfig
	TLS     TLSConfig
	Log     LogConfig
	Console ConsoleConfig
	// ReadLeases and Placement are what `georaft tune` recommends for a client mix.
	ReadLeases ReadLeasesConfig
	Placement  PlacementConfig
	Cluster    ClusterConfig
}

// ReadLeasesConfig chooses the members that answer linearizable reads from their own state
// (raft/doc.go, "Read leases").
type ReadLeasesConfig struct {
	// Holders is ["all"], ["none"] or member ids and region names: the holders a new cluster
	// starts with. Once the cluster exists they change through the log (`georaft read-leases
	// set`), and the membership the log and snapshots carry is what counts.
	Holders []string
	// PerKeyWait: a lease read waits only for the held entries that touch its keys, not for
	// every entry the node holds (docs/reads.md, "The per-key wait").
	PerKeyWait bool
}

// PlacementConfig is where the cluster keeps its leader.
type PlacementConfig struct {
	// PreferredRegions, most preferred first: the leader moves, by leadership transfer, to
	// the first of them with a healthy voter that has caught up. Empty: wherever it is.
	PreferredRegions []string
	// HealthyFor is how long a voter must have been healthy (answering, caught up) before
	// leadership moves back to it: the hysteresis that keeps a flapping node from pulling
	// leadership to and fro.
	HealthyFor time.Duration
	// StopHandoffTimeout bounds how long a leader that is asked to stop tries to hand its
	// leadership to another voter before it exits anyway.
	StopHandoffTimeout time.Duration
}

// The words read_leases.holders takes besides member ids and regions.
const (
	HoldersAll  = "all"
	HoldersNone = "none"
)

// ClusterConfig is how this node becomes and stays a member (docs/membership.md).
type ClusterConfig struct {
	// InitialState is InitialStateNew (this node is one of the voters peers[] creates the
	// cluster with) or InitialStateExisting (the cluster exists: an empty data directory is
	// a lost disk, and the node refuses to start under its old id).
	InitialState string
	// Join is any member's client address: with an empty data directory the node asks it to
	// be added as a learner, and starts from what it answers (the leader's snapshot, the
	// log, the membership). Ignored once the data directory is a member's.
	Join string
	// JoinAs is what the joined node asks to become once it has caught up: JoinAsVoter (it
	// asks to be promoted) or JoinAsLearner (it stays a learner until an operator promotes
	// it).
	JoinAs string
	// Replaces, with Join, is the member this node takes the place of once caught up: its
	// promotion and that member's removal are one change.
	Replaces uint64
	// LastContactThreshold: the leader reports a member it has not heard from for this long
	// as unhealthy (status, metrics). Nothing is removed for it unless AutoRemoveAfter is set.
	LastContactThreshold time.Duration
	// AutoRemoveAfter, when positive, has the leader remove a member it has not heard from
	// for this long (0: never; an operator's choice, docs/membership.md).
	AutoRemoveAfter time.Duration
	// AutoRemoveMinVoters: automatic removal never leaves fewer voters than this.
	AutoRemoveMinVoters int
}

// The values of cluster.initial_state and cluster.join_as.
const (
	InitialStateNew      = "new"
	InitialStateExisting = "existing"
	JoinAsVoter          = "voter"
	JoinAsLearner        = "learner"
)

type NodeConfig struct {
	ID uint64
	// Region defaults to this node's peers[] entry's region.
	Region string
	// DataDir defaults to data/node<ID>. Validate creates it if it is missing.
	DataDir string
}

// ListenConfig holds the addresses this node's servers bind. Peer and Client default to
// this node's peers[] entry; Metrics "" disables the metrics and health endpoints.
type ListenConfig struct {
	Peer    string
	Client  string
	Metrics string
}

// Peer is one cluster member as this node sees it.
type Peer struct {
	ID     uint64
	Region string
	// PeerAddress is where this node dials the peer (a proxy address in the geo lab).
	PeerAddress string
	// ClientAddress is what clients are told in NotLeader redirects.
	ClientAddress string
}

type TimingConfig struct {
	HeartbeatInterval  time.Duration
	ElectionTimeoutMin time.Duration
	ElectionTimeoutMax time.Duration
	LeaseDuration      time.Duration
	MaxClockDrift      float64
	MaxStaleness       time.Duration
	// LeaseReadFallback: a lease read on a leader without a lease is served as an index
	// read instead of being refused.
	LeaseReadFallback bool
}

// StalenessBound is timing.max_staleness as the node and its core both take it: 0 means the
// lease duration.
func (t TimingConfig) StalenessBound() time.Duration {
	if t.MaxStaleness == 0 {
		return t.LeaseDuration
	}
	return t.MaxStaleness
}

type LimitsConfig struct {
	MaxKeyBytes          int
	MaxValueBytes        int
	MaxRequestBytes      int
	MaxConcurrentStreams int
	// MaxClientConnections and MaxClientConnectionsPerHost cap the client port's open
	// connections; one over is closed as soon as it is accepted.
	MaxClientConnections        int
	MaxClientConnectionsPerHost int
	// RequestTimeout bounds every client request, from the moment its headers arrive, when
	// the client asked for no shorter deadline: a request whose body never comes gives
	// its stream back.
	RequestTimeout time.Duration
}

type StorageConfig struct {
	SegmentBytes int64
	// SnapshotEntries: take a snapshot and compact after this many applied entries.
	SnapshotEntries uint64
	SnapshotsKept   int
	// BlockCacheBytes is the state machine engine's block cache; LatestCacheBytes holds the
	// newest version of recently used keys in memory (0: none), so their reads and writes need
	// no engine iterator.
	BlockCacheBytes  int64
	LatestCacheBytes int64
}

type TLSConfig struct {
	Enabled  bool
	CAFile   string
	CertFile string
	KeyFile  string
	// ClientAuth is what the client port asks of clients: ClientAuthRequire (a certificate
	// of the cluster's CA; also what "" means) or ClientAuthOptional (verified when presented).
	ClientAuth string
}

// The values of tls.client_auth.
const (
	ClientAuthRequire  = "require"
	ClientAuthOptional = "optional"
)

type LogConfig struct {
	Level  string // debug|info|warn|error
	Format string // text|json
	// DumpRequests is how much client traffic dump.txt records (off|sampled|all); its
	// story of elections, leases and faults is always there.
	DumpRequests string
}

// ConsoleConfig is the web console georaftd serves at /ui on the metrics listener.
type ConsoleConfig struct {
	// Enabled serves it (when listen.metrics is set); with tls.enabled only over HTTPS, with
	// the client port's demands on client certificates.
	Enabled bool
	// ResultsDir is where it looks for bench-latest.json and compare-latest.json, relative to
	// the working directory ("" looks nowhere).
	ResultsDir string
}

// Defaults returns the configuration used for every key no source sets: timing for a
// single machine or one region. Node id, region, addresses and peers have no default;
// empty derived fields (node.region, node.data_dir, listen.peer, listen.client) are filled
// by Load from node.id and the peers list.
func Defaults() Config {
	return Config{
		ClusterID: "georaft",
		// With TLS on, holding the public CA certificate is not enough to write.
		TLS: TLSConfig{ClientAuth: ClientAuthRequire},
		// On: it shows what /metrics and Status already tell, behind the same TLS as the
		// client port, and costs nothing until someone looks.
		Console: ConsoleConfig{Enabled: true, ResultsDir: "results"},
		Timing: TimingConfig{
			// etcd's default. It keeps docs/tuning.md's rules on loopback and within a
			// region (three rounds fit in the lease, and in election_timeout_min), and an
			// idle cluster wakes half as often as at 50ms: heartbeats and their answers are
			// most of what idle servers do.
			HeartbeatInterval:  100 * time.Millisecond,
			ElectionTimeoutMin: 500 * time.Millisecond,
			ElectionTimeoutMax: 1000 * time.Millisecond,
			LeaseDuration:      400 * time.Millisecond,
			MaxClockDrift:      0.01,
			MaxStaleness:       2 * time.Second,
			LeaseReadFallback:  true,
		},
		Limits: LimitsConfig{
			MaxKeyBytes:          4096,
			MaxValueBytes:        1 << 20,
			MaxRequestBytes:      4 << 20,
			MaxConcurrentStreams: 256,
			// A bench or chaos client holds one connection per node; 1024 leaves room
			// for many such clients and proxies without letting one host take them all.
			MaxClientConnections:        1024,
			MaxClientConnectionsPerHost: 256,
			RequestTimeout:              10 * time.Second,
		},
		Storage: StorageConfig{
			SegmentBytes:     64 << 20,
			SnapshotEntries:  100000,
			SnapshotsKept:    2,
			BlockCacheBytes:  64 << 20,
			LatestCacheBytes: 8 << 20,
		},
		Log:        LogConfig{Level: "info", Format: "text", DumpRequests: "off"},
		ReadLeases: ReadLeasesConfig{Holders: []string{HoldersNone}, PerKeyWait: true},
		Placement:  PlacementConfig{HealthyFor: 10 * time.Second, StopHandoffTimeout: 5 * time.Second},
		Cluster:    ClusterConfig{InitialState: InitialStateNew, JoinAs: JoinAsVoter, LastContactThreshold: 10 * time.Second, AutoRemoveMinVoters: 3},
	}
}

// RaftConfig converts the configuration for the consensus core. The seed is the node id,
// so that nodes started together draw different election timeouts; the node may replace
// it with something less predictable.
func (c *Config) RaftConfig() raft.Config {
	ids := make([]uint64, len(c.Peers))
	for i, p := range c.Peers {
		ids[i] = p.ID
	}
	return raft.Config{
		ID:                 c.Node.ID,
		Peers:              ids,
		HeartbeatInterval:  c.Timing.HeartbeatInterval,
		ElectionTimeoutMin: c.Timing.ElectionTimeoutMin,
		ElectionTimeoutMax: c.Timing.ElectionTimeoutMax,
		LeaseDuration:      c.Timing.LeaseDuration,
		MaxClockDrift:      c.Timing.MaxClockDrift,
		MaxStaleness:       c.Timing.StalenessBound(),
		ReadLeaseHolders:   c.ReadLeaseHolderIDs(),
		// Followers learn each commit at once (an empty append when nothing else goes to
		// them), as etcd's do: a watch on a follower, a stale or holder read, and a write
		// forwarded by a follower then see the commit one hop after the leader does, not up
		// to a heartbeat later (etcd's benchmark tool measured watches 3.8 ms behind etcd's
		// with the broadcast lazy). Under load the commit rides on the next append anyway.
		LazyCommitBroadcast: false,
		Seed:                int64(c.Node.ID),
	}
}

// Self returns this node's entry in Peers, or the zero Peer if node.id is not listed
// (Validate reports that).
func (c *Config) Self() Peer {
	p, _ := c.PeerByID(c.Node.ID)
	return p
}

// PeerByID returns the member with that id.
func (c *Config) PeerByID(id uint64) (Peer, bool) {
	for _, p := range c.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return Peer{}, false
}

// PeerIDs lists peers[].id in order.
func (c *Config) PeerIDs() []uint64 {
	ids := make([]uint64, len(c.Peers))
	for i, p := range c.Peers {
		ids[i] = p.ID
	}
	return ids
}

// ClientEndpoints returns every member's client address, in peers order: what a client
// reading this node's configuration file dials.
func (c *Config) ClientEndpoints() []string {
	out := make([]string, 0, len(c.Peers))
	for _, p := range c.Peers {
		out = append(out, p.ClientAddress)
	}
	return out
}

// KVLimits returns the limits the node checks client writes against.
func (c *Config) KVLimits() kv.Limits {
	return kv.Limits{
		MaxKeyBytes:     c.Limits.MaxKeyBytes,
		MaxValueBytes:   c.Limits.MaxValueBytes,
		MaxRequestBytes: c.Limits.MaxRequestBytes,
	}
}

// SlogLevel returns log.level as a slog level (info if it is not one Validate accepts).
func (c *Config) SlogLevel() slog.Level {
	switch c.Log.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
