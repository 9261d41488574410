package tune

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/georaft/georaft/geo"
)

// Defaults for the assumptions Derive makes when Options leaves them zero.
const (
	// DefaultMaxClockDrift is the assumed bound on how much faster one node's clock runs than
	// another's. NTP-disciplined VM clocks stay within a few hundred ppm (ntpd slews at most
	// 0.05%); 1% leaves a twenty-fold margin and costs 1% of each lease.
	DefaultMaxClockDrift = 0.01
	// DefaultLeaseRounds is how many heartbeat rounds fit in a lease: the lease survives
	// DefaultLeaseRounds−1 lost rounds in a row.
	DefaultLeaseRounds = 4
	// MinLeaseRounds is what the core enforces (heartbeat ≤ lease/3).
	MinLeaseRounds = 3
	// MaxClockDriftLimit is the core's bound: drift must be below it.
	MaxClockDriftLimit = 0.5
)

// Rounding steps and floors: figures an operator reads and compares should be round, and a
// matrix of sub-millisecond LAN RTTs should not produce timers finer than an OS schedules
// reliably.
const (
	heartbeatStep    = 10 * time.Millisecond
	minHeartbeat     = 10 * time.Millisecond
	leaseStep        = 50 * time.Millisecond
	electionStep     = 100 * time.Millisecond
	minElectionRatio = 2 // the randomized range is at least half of the minimum timeout
)

// ErrMissingRegion is wrapped by every error about a region that the placement or the
// leader preference names and the matrix lacks.
var ErrMissingRegion = errors.New("missing region")

// Options are the assumptions behind a derivation. The zero value means one node per region
// of the matrix, the leader where a majority is nearest, 1% drift and 4 rounds per lease.
type Options struct {
	// Placement maps node id to region. Empty: node i+1 in the matrix's i-th region.
	Placement map[uint64]string
	// LeaderRegion is where the leader is expected to sit (it must host a node). Empty: the
	// region with the lowest quorum RTT.
	LeaderRegion string
	// MaxClockDrift is the assumed bound on relative clock rate error, in [0, 0.5). Zero
	// means DefaultMaxClockDrift: assuming perfect clocks is never sound on VMs.
	MaxClockDrift float64
	// LeaseRounds is how many heartbeat rounds a lease spans, at least 3. Zero means
	// DefaultLeaseRounds.
	LeaseRounds int

	// Mix is the client traffic per region. With one, Derive also plans read leases and the
	// leader's preferred regions (Result.Plan), and expects the leader in the most preferred
	// region unless LeaderRegion says otherwise.
	Mix Mix
	// Fsync is one WAL fsync, on every write's path; zero means costmodel.DefaultFsync.
	Fsync time.Duration
	// IntraRegionRTT stands in for the matrix's zero diagonal: a client to the node in its
	// region, or two nodes of one region. Zero means costmodel.DefaultIntraRegionRTT.
	IntraRegionRTT time.Duration
	// NoHolderWait models a holder's lease reads as never waiting for writes in flight, as
	// when reads and writes come at different times (make bench's phases). By default they
	// wait, as the core makes them (costmodel's package doc, "Holder wait").
	NoHolderWait bool
	// Keys is how many keys the mix's reads and writes spread over, uniformly. With the
	// node's per-key wait (read_leases.per_key_wait, on by default) a holder's lease read
	// waits only for held writes of the keys it reads, which arrive at the write rate over
	// Keys. Zero or one: every write counts, as with the per-key wait off or one hot key.
	Keys int
}

// Voter is one node of the placement.
type Voter struct {
	ID     uint64
	Region string
}

// Result holds the derived timing and the figures it was derived from.
type Result struct {
	HeartbeatInterval  time.Duration
	ElectionTimeoutMin time.Duration
	ElectionTimeoutMax time.Duration
	LeaseDuration      time.Duration
	MaxClockDrift      float64

	Voters      []Voter
	LeaseRounds int
	// LeaderRegion and LeaderQuorumRTT: the expected leader and how long it waits for a
	// majority (the floor of write latency there).
	LeaderRegion    string
	LeaderQuorumRTT time.Duration
	// SlowestLeaderRegion is the region from which a leader waits longest for a majority.
	SlowestLeaderRegion string
	SlowestQuorumRTT    time.Duration
	// FarthestPair are the two voters' regions with the largest RTT between them.
	FarthestPair [2]string
	MaxRTT       time.Duration

	// Plan is the read-lease and leader-placement recommendation; nil without a mix.
	Plan *Plan

	explain []string
}

// Explain gives one line per figure, saying where it comes from and what it protects.
func (r Result) Explain() []string { return slices.Clone(r.explain) }

// Derive computes the timing section for a cluster placed on m's regions.
func Derive(m geo.Matrix, opts Options) (Result, error) {
	if m.Len() == 0 {
		return Result{}, fmt.Errorf("tune: %w", geo.ErrEmpty)
	}
	drift := opts.MaxClockDrift
	if drift == 0 {
		drift = DefaultMaxClockDrift
	}
	if drift < 0 || drift >= MaxClockDriftLimit || math.IsNaN(drift) {
		return Result{}, fmt.Errorf("tune: max clock drift must be in [0, %v), got %v", MaxClockDriftLimit, drift)
	}
	rounds := opts.LeaseRounds
	if rounds == 0 {
		rounds = DefaultLeaseRounds
	}
	if rounds < MinLeaseRounds {
		return Result{}, fmt.Errorf("tune: lease rounds must be at least %d (the core requires heartbeat ≤ lease/3), got %d",
			MinLeaseRounds, rounds)
	}
	voters, err := placement(m, opts.Placement)
	if err != nil {
		return Result{}, err
	}

	r := Result{MaxClockDrift: drift, Voters: voters, LeaseRounds: rounds}
	if err := r.measure(m, opts.LeaderRegion); err != nil {
		return Result{}, err
	}
	if len(opts.Mix) > 0 {
		if r.Plan, err = newPlan(m, voters, opts); err != nil {
			return Result{}, err
		}
		// The cluster keeps its leader in the most preferred region: time for it there.
		if err := r.measure(m, r.Plan.Preferred[0].Region); err != nil {
			return Result{}, err
		}
	}
	r.derive()
	if err := r.checkCoreRules(); err != nil {
		return Result{}, fmt.Errorf("tune: derived timing breaks a core rule (a bug in tune): %w", err)
	}
	return r, nil
}

// placement returns the voters sorted by id, checking every region against the matrix.
func placement(m geo.Matrix, given map[uint64]string) ([]Voter, error) {
	var voters []Voter
	if len(given) == 0 {
		for i, region := range m.Regions() {
			voters = append(voters, Voter{ID: uint64(i + 1), Region: region})
		}
		return voters, nil
	}
	for id, region := range given {
		if id == 0 {
			return nil, errors.New("tune: placement: node id must not be 0")
		}
		if !m.Has(region) {
			return nil, fmt.Errorf("tune: placement: node %d is in region %q, which the rtt matrix lacks (it has %s): %w",
				id, region, strings.Join(m.Regions(), ", "), ErrMissingRegion)
		}
		voters = append(voters, Voter{ID: id, Region: region})
	}
	slices.SortFunc(voters, func(a, b Voter) int { return cmp.Compare(a.ID, b.ID) })
	return voters, nil
}

// measure fills the RTT figures the timing is built from.
func (r *Result) measure(m geo.Matrix, preferred string) error {
	quorum := make([]time.Duration, len(r.Voters))
	for i, v := range r.Voters {
		others := make([]string, 0, len(r.Voters)-1)
		for j, o := range r.Voters {
			if j != i {
				others = append(others, o.Region)
			}
		}
		q, err := m.QuorumRTTAmong(v.Region, others)
		if err != nil {
			return fmt.Errorf("tune: quorum rtt from node %d: %w", v.ID, err)
		}
		quorum[i] = q
		if i == 0 || q > r.SlowestQuorumRTT {
			r.SlowestLeaderRegion, r.SlowestQuorumRTT = v.Region, q
		}
		if preferred == "" && (i == 0 || q < r.LeaderQuorumRTT) {
			r.LeaderRegion, r.LeaderQuorumRTT = v.Region, q
		}
		for _, o := range r.Voters[i+1:] {
			d, err := m.RTT(v.Region, o.Region)
			if err != nil {
				return fmt.Errorf("tune: %w", err)
			}
			if d > r.MaxRTT {
				r.FarthestPair, r.MaxRTT = [2]string{v.Region, o.Region}, d
			}
		}
	}
	if len(r.Voters) == 1 { // no pair: name the lone region so explanations read sensibly
		r.FarthestPair = [2]string{r.Voters[0].Region, r.Voters[0].Region}
	}
	if preferred == "" {
		return nil
	}
	if !m.Has(preferred) {
		return fmt.Errorf("tune: leader region %q is not in the rtt matrix (it has %s): %w",
			preferred, strings.Join(m.Regions(), ", "), ErrMissingRegion)
	}
	for i, v := range r.Voters {
		if v.Region == preferred {
			r.LeaderRegion, r.LeaderQuorumRTT = v.Region, quorum[i]
			return nil
		}
	}
	return fmt.Errorf("tune: leader region %q hosts no node of the placement: %w", preferred, ErrMissingRegion)
}

// derive turns the measured RTTs into the timing, recording one line of reasoning each.
func (r *Result) derive() {
	keep := 1 - r.MaxClockDrift // the share of a lease the leader may count on
	k := time.Duration(r.LeaseRounds)
	oneWay := r.MaxRTT / 2

	// Heartbeat: one round per quorum round trip of the expected leader. Each round's acks
	// are back about when the next round leaves, so the lease is renewed as often as the
	// network allows; faster only adds messages.
	r.HeartbeatInterval = roundUp(max(r.LeaderQuorumRTT, minHeartbeat), heartbeatStep)
	r.explain = append(r.explain, fmt.Sprintf(
		"heartbeat_interval %v: one round per quorum RTT of the leader in %s (%v), rounded up to %v (floor %v): "+
			"each round's acks are back as the next leaves, so the lease is renewed as often as the WAN allows",
		r.HeartbeatInterval, r.LeaderRegion, r.LeaderQuorumRTT, heartbeatStep, minHeartbeat))

	// Lease: a quorum ack of the round sent at s keeps the lease until s + L(1−δ). For the
	// lease never to lapse while k−1 rounds in a row are lost, the k-th round must be acked
	// in time, from wherever the leader is: k×H + slowest quorum RTT ≤ L(1−δ).
	needLease := scale(k*r.HeartbeatInterval+r.SlowestQuorumRTT, 1/keep)
	r.LeaseDuration = roundUp(needLease, leaseStep)
	r.explain = append(r.explain, fmt.Sprintf(
		"lease_duration %v: %d heartbeats (%d×%v) + quorum RTT of the slowest leader, in %s (%v), over (1 − %v drift) = %v, rounded up to %v: "+
			"wherever the leader is, its lease survives %d lost heartbeat rounds in a row",
		r.LeaseDuration, r.LeaseRounds, r.LeaseRounds, r.HeartbeatInterval, r.SlowestLeaderRegion, r.SlowestQuorumRTT,
		r.MaxClockDrift, needLease.Round(time.Millisecond), leaseStep, r.LeaseRounds-1))

	// Election timeout min, two needs:
	//  - a follower's lease record (its last leader contact + L) has run out on every
	//    voter's clock before any vote reply can report it: the earliest vote request
	//    arrives ETmin(1−δ) after the candidate's last contact, which lags a voter's by up
	//    to the worst one-way delay. So failover never waits on a lease.
	//  - a voter hears from the leader it elected within one worst RTT (its vote travels
	//    there, the first append comes back), then every heartbeat: RTT_max + k×H keeps WAN
	//    delay plus k−1 lost heartbeats from starting an election.
	afterLease := scale(r.LeaseDuration+oneWay, 1/keep)
	afterVote := r.MaxRTT + k*r.HeartbeatInterval
	r.ElectionTimeoutMin = roundUp(max(afterLease, afterVote, r.LeaseDuration+1), electionStep)
	r.explain = append(r.explain, fmt.Sprintf(
		"election_timeout_min %v: above lease %v + worst one-way delay %v (%s↔%s), over (1 − %v drift) = %v, so no vote reports a live lease and failover never waits on one; "+
			"and above the worst RTT %v + %d heartbeats (%v) = %v, so WAN delay never starts an election",
		r.ElectionTimeoutMin, r.LeaseDuration, oneWay, r.FarthestPair[0], r.FarthestPair[1], r.MaxClockDrift,
		afterLease.Round(time.Millisecond), r.MaxRTT, r.LeaseRounds, k*r.HeartbeatInterval, afterVote))

	// Election timeout max: the randomized spread must cover a whole election of the slowest
	// candidate (a pre-vote round and a vote round, each a quorum RTT), so the first node to
	// time out has usually won before a second one starts competing.
	electionRounds := 2 * r.SlowestQuorumRTT
	spread := roundUp(max(electionRounds, r.ElectionTimeoutMin/minElectionRatio), electionStep)
	r.ElectionTimeoutMax = r.ElectionTimeoutMin + spread
	r.explain = append(r.explain, fmt.Sprintf(
		"election_timeout_max %v: min + a %v random spread, at least the slowest candidate's pre-vote and vote rounds (2×%v from %s) and half the min: "+
			"the first node to time out usually wins before another starts",
		r.ElectionTimeoutMax, spread, r.SlowestQuorumRTT, r.SlowestLeaderRegion))

	r.explain = append(r.explain, fmt.Sprintf(
		"max_clock_drift %v: assumed bound on how much faster one node's clock runs than another's: "+
			"the leader stops lease reads %v before the nominal end and a new leader waits that much longer for an old lease",
		r.MaxClockDrift, scale(r.LeaseDuration, r.MaxClockDrift).Round(100*time.Microsecond)))
}

// checkCoreRules repeats raft.Config.Validate's timing rules, so a figure tune prints is
// one the node accepts.
func (r Result) checkCoreRules() error {
	var errs []error
	if r.HeartbeatInterval <= 0 || r.LeaseDuration <= 0 || r.ElectionTimeoutMin <= 0 {
		errs = append(errs, fmt.Errorf("timing must be positive: heartbeat %v, lease %v, election min %v",
			r.HeartbeatInterval, r.LeaseDuration, r.ElectionTimeoutMin))
	}
	if r.LeaseDuration >= r.ElectionTimeoutMin {
		errs = append(errs, fmt.Errorf("lease %v must be shorter than election timeout min %v", r.LeaseDuration, r.ElectionTimeoutMin))
	}
	if 3*r.HeartbeatInterval > r.LeaseDuration {
		errs = append(errs, fmt.Errorf("heartbeat %v must be at most a third of lease %v", r.HeartbeatInterval, r.LeaseDuration))
	}
	if r.ElectionTimeoutMax < r.ElectionTimeoutMin {
		errs = append(errs, fmt.Errorf("election timeout max %v below min %v", r.ElectionTimeoutMax, r.ElectionTimeoutMin))
	}
	return errors.Join(errs...)
}

func roundUp(d, step time.Duration) time.Duration {
	return (d + step - 1) / step * step
}

func scale(d time.Duration, f float64) time.Duration {
	return time.Duration(math.Ceil(float64(d) * f))
}

// DeriveFile loads an RTT matrix CSV (the shipped approximate one, or RTTs a cluster
// measured) and derives from it; errors name the file.
func DeriveFile(path string, opts Options) (Result, error) {
	m, err := geo.LoadCSV(path)
	if err != nil {
		return Result{}, fmt.Errorf("tune: %w", err)
	}
	return Derive(m, opts)
}

// DeriveCSV is DeriveFile for a matrix already open.
func DeriveCSV(r io.Reader, opts Options) (Result, error) {
	m, err := geo.ParseCSV(r)
	if err != nil {
		return Result{}, fmt.Errorf("tune: rtt matrix: %w", err)
	}
	return Derive(m, opts)
}
