package node

import (
	"sort"
	"strconv"
	"time"

	"github.com/georaft/georaft/buildinfo"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// metrics are the node's Prometheus series. Each node has its own registry, so several nodes
// can run in one test process.
type metrics struct {
	registry *prometheus.Registry

	role           *prometheus.GaugeVec
	term           prometheus.Gauge
	leader         prometheus.Gauge
	commit         prometheus.Gauge
	applied        prometheus.Gauge
	leaseRemaining prometheus.Gauge
	leaseHeld      prometheus.Gauge
	fsync          prometheus.Histogram
	walBatch       prometheus.Histogram
	peerRTT        *prometheus.GaugeVec
	peerLag        *prometheus.GaugeVec
	requests       *prometheus.HistogramVec
	requestErrors  *prometheus.CounterVec
	snapshots      prometheus.Counter
	readFallbacks  prometheus.Counter
	// leaseReadTimeouts counts lease reads whose lease ended before what they waited for was
	// applied; they go on at the leader.
	leaseReadTimeouts prometheus.Counter
	// handoffs counts leadership transfers placement started, by why.
	handoffs      *prometheus.CounterVec
	connsRefused  *prometheus.CounterVec
	certExpiry    *prometheus.GaugeVec
	leaderChanges prometheus.Counter
	redirects     *prometheus.CounterVec
	reads         *prometheus.HistogramVec
	forwarded     *prometheus.CounterVec
	watchers      prometheus.Gauge
	membership    *membershipMetrics
	// lastLeader is the leader observeStatus saw last, for leaderChanges.
	lastLeader uint64
}

// latencyBuckets span a loopback round trip to a slow cross-region quorum, at bounds a
// person reads at a glance: 1, 2.5 and 5 of every decade from 100µs to 5s.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

func newMetrics(self uint64) *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	constLabels := prometheus.Labels{"node": strconv.FormatUint(self, 10)}
	m := &metrics{
		registry: reg,
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_role", Help: "1 for the role this node currently has, 0 for the others.", ConstLabels: constLabels,
		}, []string{"role"}),
		term: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_term", Help: "Current Raft term.", ConstLabels: constLabels,
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_leader_id", Help: "Id of the leader this node knows of (0: none).", ConstLabels: constLabels,
		}),
		commit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_commit_index", Help: "Highest log index known to be committed.", ConstLabels: constLabels,
		}),
		applied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_applied_index", Help: "Highest log index applied to the key-value state.", ConstLabels: constLabels,
		}),
		leaseRemaining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_lease_remaining_seconds", Help: "Time left on the leader lease (0 when not held).", ConstLabels: constLabels,
		}),
		leaseHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_lease_held", Help: "1 while this node may answer lease reads.", ConstLabels: constLabels,
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "georaft_wal_fsync_seconds", Help: "Time to write and fsync one WAL batch.", ConstLabels: constLabels,
			Buckets: latencyBuckets,
		}),
		walBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "georaft_wal_batch_entries", Help: "Entries written per WAL fsync (group commit).", ConstLabels: constLabels,
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		peerRTT: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_peer_rtt_seconds", Help: "Smoothed round-trip time to each peer.", ConstLabels: constLabels,
		}, []string{"peer"}),
		peerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_peer_replication_lag_entries", Help: "Entries each follower is behind the leader's log (leader only).", ConstLabels: constLabels,
		}, []string{"peer"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "georaft_request_duration_seconds", Help: "Latency of the client requests this node served, by operation (set, delete, get; etcd.range, etcd.put, etcd.txn, ... for the etcd API).", ConstLabels: constLabels,
			Buckets: latencyBuckets,
		}, []string{"op"}),
		reads: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "georaft_read_duration_seconds", Help: "Latency of the reads this node served, by the read mode asked for.", ConstLabels: constLabels,
			Buckets: latencyBuckets,
		}, []string{"mode"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "georaft_request_errors_total", Help: "Client requests that failed, by operation and gRPC code (redirects to the leader are not failures).", ConstLabels: constLabels,
		}, []string{"op", "code"}),
		redirects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "georaft_request_redirects_total", Help: "Client requests this node, not the leader, answered with the leader's address, by operation.", ConstLabels: constLabels,
		}, []string{"op"}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "georaft_leader_changes_total", Help: "Times this node saw a new leader (a leader it did not know before, 0 excluded).", ConstLabels: constLabels,
		}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "georaft_snapshots_total", Help: "Snapshots taken by this node.", ConstLabels: constLabels,
		}),
		readFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "georaft_lease_read_fallbacks_total", Help: "Lease reads served as index reads because the lease was not held.", ConstLabels: constLabels,
		}),
		leaseReadTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "georaft_lease_read_timeouts_total", Help: "Lease reads whose lease ran out before the entries they waited for were applied (they go on at the leader).", ConstLabels: constLabels,
		}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "georaft_leadership_handoffs_total", Help: "Leadership transfers this node started as leader: to a preferred region (placement) or before stopping (stop).", ConstLabels: constLabels,
		}, []string{"reason"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "georaft_connections_refused_total", Help: "Connections closed on accept, by listener (client or peer) and the cap they were over (total or per_host).", ConstLabels: constLabels,
		}, []string{"listener", "cap"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "georaft_tls_certificate_expiry_timestamp_seconds", Help: "When the node's TLS certificate and its CA expire (Unix time), as loaded at start.", ConstLabels: constLabels,
		}, []string{"certificate"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "georaft_etcd_forwarded_total", Help: "etcd API requests this follower passed to the leader, by the gRPC code they ended with.", ConstLabels: constLabels,
		}, []string{"code"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "georaft_etcd_watchers", Help: "etcd API watches open on this node.", ConstLabels: constLabels,
		}),
	}
	build := buildinfo.Read()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "georaft_build_info", Help: "1, labelled with the build this node runs: version, VCS revision, Go version.", ConstLabels: prometheus.Labels{
			"node": constLabels["node"], "version": build.Version, "revision": build.Revision, "goversion": build.GoVersion},
	})
	buildInfo.Set(1)
	m.membership = newMembershipMetrics(reg, constLabels)
	reg.MustRegister(m.role, m.term, m.leader, m.commit, m.applied, m.leaseRemaining, m.leaseHeld,
		m.fsync, m.walBatch, m.peerRTT, m.peerLag, m.requests, m.reads, m.requestErrors, m.redirects, m.snapshots, m.readFallbacks,
		m.leaseReadTimeouts, m.handoffs, m.connsRefused, m.certExpiry, m.leaderChanges, m.forwarded, m.watchers, buildInfo)
	return m
}

var allRoles = []raft.Role{raft.Follower, raft.PreCandidate, raft.Candidate, raft.Leader}

// observeStatus refreshes the gauges that mirror the core's state.
func (m *metrics) observeStatus(st *raft.Status) {
	for _, r := range allRoles {
		v := 0.0
		if st.Role == r {
			v = 1
		}
		m.role.WithLabelValues(r.String()).Set(v)
	}
	m.term.Set(float64(st.Term))
	m.leader.Set(float64(st.Leader))
	if st.Leader != raft.None && st.Leader != m.lastLeader {
		m.leaderChanges.Inc()
		m.lastLeader = st.Leader
	}
	m.commit.Set(float64(st.Commit))
	m.applied.Set(float64(st.Applied))
	held := 0.0
	remaining := time.Duration(0)
	if st.Lease == raft.LeaseHeld {
		held, remaining = 1, st.LeaseRemaining
	}
	m.leaseHeld.Set(held)
	m.leaseRemaining.Set(remaining.Seconds())
	for id, pr := range st.Progress {
		if id == st.ID {
			continue
		}
		lag := uint64(0)
		if st.LastIndex > pr.Match {
			lag = st.LastIndex - pr.Match
		}
		m.peerLag.WithLabelValues(strconv.FormatUint(id, 10)).Set(float64(lag))
	}
}

func (m *metrics) observePeerRTT(peer uint64, rtt time.Duration) {
	if rtt > 0 {
		m.peerRTT.WithLabelValues(strconv.FormatUint(peer, 10)).Set(rtt.Seconds())
	}
}

// latencyHistograms are the node's latency histograms as Status hands them to dashboards:
// reads by the mode asked for ("read lease"), writes by operation ("write set"), any other
// request by its operation ("request OP"), WAL fsyncs. Gets are counted by the reads.
func (m *metrics) latencyHistograms() []*georaftv1.LatencyHistogram {
	var out []*georaftv1.LatencyHistogram
	collect := func(c prometheus.Collector, name func(*dto.Metric) string) {
		ch := make(chan prometheus.Metric, 16)
		go func() { c.Collect(ch); close(ch) }()
		for metric := range ch {
			var pb dto.Metric
			if metric.Write(&pb) != nil || pb.Histogram == nil {
				continue
			}
			if n := name(&pb); n != "" {
				out = append(out, histogramProto(n, pb.Histogram))
			}
		}
	}
	label := func(pb *dto.Metric, key string) string {
		for _, l := range pb.Label {
			if l.GetName() == key {
				return l.GetValue()
			}
		}
		return ""
	}
	collect(m.reads, func(pb *dto.Metric) string { return "read " + label(pb, "mode") })
	collect(m.requests, func(pb *dto.Metric) string {
		switch op := label(pb, "op"); op {
		case "get":
			return ""
		case "set", "delete":
			return "write " + op
		default:
			return "request " + op
		}
	})
	collect(m.fsync, func(*dto.Metric) string { return "wal fsync" })
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func histogramProto(name string, h *dto.Histogram) *georaftv1.LatencyHistogram {
	lh := &georaftv1.LatencyHistogram{Name: name, Count: h.GetSampleCount(), SumSeconds: h.GetSampleSum()}
	for _, b := range h.Bucket {
		lh.UpperBoundsSeconds = append(lh.UpperBoundsSeconds, b.GetUpperBound())
		lh.CumulativeCounts = append(lh.CumulativeCounts, b.GetCumulativeCount())
	}
	return lh
}
