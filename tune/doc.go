// Package tune derives georaft's timing (heartbeat interval, election timeout range, lease
// duration, clock drift margin) from the round-trip times between the regions a cluster
// runs in, and says in one line per figure why it is what it is.
//
// With a client mix (Options.Mix: reads and writes per second from each region), Derive also
// plans read leases and leader placement (Result.Plan): it predicts, with package costmodel,
// every client region's read and write p50 for every set of read-lease holder regions and
// every leader region, recommends the set with the lowest mix-weighted latency per
// operation and ranks the leader regions by the mix-weighted write p50 they give
// (placement.preferred_regions), and times the cluster for a leader in the first of them.
// docs/tuning.md, "Read leases and leader placement", has the rules and a worked example.
//
// The input is a geo.Matrix: the approximate public figures in configs/geo/rtt-5-regions.csv,
// or RTTs a running cluster measured (every node pings its peers; `georaft status` and
// /metrics show them), written in the same CSV format. Derive is the whole API; Result renders
// as text for a person, as the `timing:` section of a georaftd config, or as an Ansible
// group_vars file for ansible/roles/georaft. The CLI (`georaft tune --rtt FILE --format
// text|yaml|ansible [--mix ...]`) is a thin wrapper over DeriveFile and Result.Write.
//
// # How the figures follow from the RTTs
//
// Write Q_lead for the expected leader's quorum RTT (the ack that completes a majority),
// Q_slow for the largest quorum RTT of any node that could lead, RTT_max for the largest RTT
// between two voters, δ for the drift bound and k for heartbeat rounds per lease (4).
//
//   - heartbeat_interval = Q_lead, rounded up to 10ms (at least 10ms). A round's acks are
//     back as the next round leaves, so the lease is renewed as often as the network allows.
//   - lease_duration ≥ (k×heartbeat + Q_slow) / (1−δ), rounded up to 50ms. A quorum ack of the
//     round sent at s holds the lease until s + lease×(1−δ); with this length the k-th round
//     is acked before the first one's lease ends even with the leader in the slowest region,
//     so k−1 lost rounds in a row do not interrupt lease reads.
//   - election_timeout_min ≥ (lease + RTT_max/2) / (1−δ), and ≥ RTT_max + k×heartbeat,
//     rounded up to 100ms. The first bound means every voter's record of the old leader's
//     lease has run out before any vote request can reach it, so failover after a crash never
//     waits on a lease (and lease < election_timeout_min, as the core requires). The second
//     means WAN delay never starts an election: a voter hears from the leader it elected
//     within one RTT_max, then every heartbeat.
//   - election_timeout_max = min + max(2×Q_slow, min/2), the spread rounded up to 100ms. The
//     random spread covers a whole election of the slowest candidate (a pre-vote round and a
//     vote round), so the first node to time out usually wins before a second one competes.
//   - max_clock_drift = δ, 0.01 unless told otherwise: NTP-disciplined clocks drift by a few
//     hundred ppm at most, so 1% is a twenty-fold margin and costs 1% of each lease.
//
// Every result satisfies the core's own rules (raft.Config.Validate): heartbeat ≤ lease/3,
// lease < election_timeout_min, drift in [0, 0.5).
//
// # Defaults for the five-region layout
//
// One node in each of us-central1, us-east1, us-west1, europe-west1 and asia-east1, with
// configs/geo/rtt-5-regions.csv:
//
//	Q_lead  = 36ms   (us-central1: its second-nearest peer, us-west1)
//	Q_slow  = 155ms  (asia-east1: us-west1 118ms, then us-central1 155ms)
//	RTT_max = 250ms  (europe-west1 ↔ asia-east1)
//
//	heartbeat_interval    40ms   36ms rounded up
//	lease_duration        350ms  (4×40 + 155) / 0.99 = 318ms, rounded up
//	election_timeout_min  500ms  (350 + 125) / 0.99 = 480ms; 250 + 4×40 = 410ms
//	election_timeout_max  900ms  500 + 400 (2×155 = 310ms, rounded up)
//	max_clock_drift       0.01
//
// With these, writes at a us-central1 leader commit after about 36ms, lease reads there cost
// no round trip, and writes stop for at most about 1.4s after a leader crash
// (election_timeout_max + three quorum RTTs of the slowest candidate). docs/tuning.md has the
// longer story.
package tune
