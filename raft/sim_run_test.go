package raft

import (
	"container/heap"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/georaft/georaft/history"
)

// opMix is what clients do: the share of sets and deletes among operations (the rest are
// reads), and how reads split between modes.
type opMix struct {
	set, del          float64
	lease, index, log float64 // shares of reads; the rest are stale
	randomNode        float64 // chance an attempt ignores the leader hint
}

func (m opMix) readMode(x float64) ReadMode {
	switch {
	case x < m.lease:
		return ReadLease
	case x < m.lease+m.index:
		return ReadIndex
	case x < m.lease+m.index+m.log:
		return ReadLog
	}
	return ReadStale
}

// faultMix is which faults a run injects, and how often.
type faultMix struct {
	every                                             time.Duration
	partition, asymmetric, isolateLeader              bool
	crash, crashWindow, transfer, campaign, leaseHunt bool
	restartAll, slowLink, slowDisk, isolateNewLeader  bool
	// holderChange proposes read-lease holders on and off through the log (ConfReadLeaseOn,
	// ConfReadLeaseOff); holderAttack cuts, slows or thins a read-lease holder's links, or
	// hands leadership on while holders hold leases.
	holderChange, holderAttack bool
	// membership adds, promotes, removes and replaces members (sim_membership_test.go).
	membership bool
	// bootEcho attacks a restarted leader with replies to what it sent before its restart,
	// on a clock of another origin (sim_bootecho_test.go).
	bootEcho bool
	// soleVoter shrinks the cluster to one voter, replaces it, and restarts it
	// (sim_solevoter_test.go).
	soleVoter bool
	// attackShare and churnShare are the chances that a fault is the lease attack or leader
	// churn, whatever else is on; holderShare that it is a holder attack; bootEchoShare that
	// it is a boot-echo attack.
	attackShare, churnShare, holderShare, membershipShare, bootEchoShare, soleVoterShare float64
}

// skip turns off the faults named in list (comma-separated names as names returns them).
// The rest of the run is drawn as before, so other seeds' setups do not shift.
func (f *faultMix) skip(list string) {
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "partition":
			f.partition = false
		case "asymmetric":
			f.asymmetric = false
		case "isolate-leader":
			f.isolateLeader = false
		case "crash":
			f.crash = false
		case "crash-window":
			f.crashWindow = false
		case "transfer":
			f.transfer = false
		case "campaign":
			f.campaign = false
		case "lease-attack":
			f.leaseHunt = false
		case "restart-all":
			f.restartAll = false
		case "slow-link":
			f.slowLink = false
		case "slow-disk":
			f.slowDisk = false
		case "isolate-new-leader":
			f.isolateNewLeader = false
		case "read-lease-change":
			f.holderChange = false
		case "holder-attack":
			f.holderAttack = false
		case "membership":
			f.membership = false
		case "boot-echo":
			f.bootEcho = false
		case "sole-voter":
			f.soleVoter = false
		}
	}
}

func (f faultMix) names() []string {
	var out []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{f.partition, "partition"}, {f.asymmetric, "asymmetric"}, {f.isolateLeader, "isolate-leader"},
		{f.crash, "crash"}, {f.crashWindow, "crash-window"}, {f.transfer, "transfer"},
		{f.campaign, "campaign"}, {f.leaseHunt, "lease-attack"}, {f.restartAll, "restart-all"},
		{f.slowLink, "slow-link"}, {f.slowDisk, "slow-disk"}, {f.isolateNewLeader, "isolate-new-leader"},
		{f.holderChange, "read-lease-change"}, {f.holderAttack, "holder-attack"}, {f.membership, "membership"},
		{f.bootEcho, "boot-echo"}, {f.soleVoter, "sole-voter"},
	} {
		if x.on {
			out = append(out, x.name)
		}
	}
	return out
}

// simParams is everything a run's seed decides.
type simParams struct {
	seed     int64
	nodes    int
	topology string
	regions  []string

	oneWay             [][]time.Duration // base one-way latency [from][to]
	jitter, clientHop  time.Duration
	loss, dup, reorder float64
	reorderMax         time.Duration
	late               float64       // share of messages delivered very late
	lateMax            time.Duration // up to this much later than their latency
	maxUncommitted     uint64
	lazyCommit         bool // LazyCommitBroadcast, as georaftd runs
	fsyncMin, fsyncMax time.Duration
	// heartbeat, lease and the election range are the base timing, and the harness's time
	// unit; electionMax is the longest election timeout any node may run with (fault
	// durations and liveness bounds scale with it).
	heartbeat, lease time.Duration
	electionMin      time.Duration
	electionMax      time.Duration
	// timings holds each node's timing at its first start. With retime > 0, a restart
	// draws the node's next timing from profiles with that chance: a rolling change of
	// timing.
	timings              []nodeTiming
	profiles             []nodeTiming
	retime               float64
	staleness            time.Duration
	drift                float64
	rates                []float64
	offsets              []time.Duration
	maxSizePerMsg        uint64
	maxInflight          int
	snapshotEvery        uint64
	faults               faultMix
	clients, keys        int
	think, clientTimeout time.Duration
	duration             time.Duration
	mix                  opMix
	// off turns safety mechanisms off on every node (the knob tests).
	off mechanisms
	// leaseOverlapsSoft records lease-exclusivity violations instead of stopping the run, so
	// the history check still runs (for the test that plants the skipped-wait bug).
	leaseOverlapsSoft bool
	// strictHistory makes a porcupine search that runs out of time a failure.
	strictHistory bool
	// historyTimeout, if set, bounds porcupine's search instead of historyTimeout().
	historyTimeout time.Duration
	// holdForRestart keeps messages to a crashed node and delivers them after its restart.
	holdForRestart bool
	// holders are the read-lease holders the cluster is created with (Config.ReadLeaseHolders);
	// readLocal is the chance that a client sends a lease read to the node in its own region
	// rather than to the leader, as clients do once their region's node holds a read lease.
	holders   []uint64
	readLocal float64
	// spares are nodes beyond the first nodes, outside the cluster at first: a membership
	// change adds one as a learner with an empty disk and a new id, and may promote it in
	// place of a voter it removes (a replacement). Each sits in the region of a node of the
	// cluster.
	spares int
	// applyMax, if set, makes applying a Ready's committed entries take up to that long,
	// while the core steps messages meanwhile (a state machine slower than the network).
	applyMax time.Duration
}

// nodeTiming is one node's timing configuration.
type nodeTiming struct {
	heartbeat, lease, electionMin, electionMax time.Duration
}

func (t nodeTiming) String() string {
	return fmt.Sprintf("hb %v lease %v election %v–%v", t.heartbeat, t.lease, t.electionMin, t.electionMax)
}

// timingProfiles derives timings that differ from base in lease and election timeout
// independently, each valid on its own (lease < election min, three heartbeats a lease): a
// node with a long lease beside one whose election timeout is shorter than that lease is
// what a rolling change of timing.lease_duration produces.
func timingProfiles(base nodeTiming) []nodeTiming {
	out := []nodeTiming{base}
	for _, f := range []struct{ lease, election float64 }{{3, 2}, {0.5, 0.5}, {2, 1}, {0.5, 1}, {1.5, 1.2}} {
		t := nodeTiming{
			lease:       time.Duration(float64(base.lease) * f.lease),
			electionMin: time.Duration(float64(base.electionMin) * f.election),
		}
		t.electionMin = max(t.electionMin, t.lease*5/4)
		t.electionMax = 2 * t.electionMin
		t.heartbeat = min(base.heartbeat, t.lease/3)
		out = append(out, t)
	}
	return out
}

// describeKnobs names the mechanisms turned off.
func (m mechanisms) names() []string {
	var out []string
	v := reflect.ValueOf(m)
	for i := range v.NumField() {
		if v.Field(i).Bool() {
			out = append(out, v.Type().Field(i).Name)
		}
	}
	return out
}

func (p simParams) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d nodes, %s", p.nodes, p.topology)
	if len(p.regions) > 0 {
		fmt.Fprintf(&b, " %v", p.regions)
	}
	fmt.Fprintf(&b, "; heartbeat %v, lease %v, election %v–%v, drift %g, rates [", p.heartbeat, p.lease, p.electionMin, p.electionMax, p.drift)
	for i, r := range p.rates {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.6f", r)
	}
	fmt.Fprintf(&b, "]; loss %g dup %g reorder %g late %g; faults %v every %v; %d clients on %d keys for %v",
		p.loss, p.dup, p.reorder, p.late, p.faults.names(), p.faults.every, p.clients, p.keys, p.duration)
	if p.snapshotEvery > 0 {
		fmt.Fprintf(&b, "; snapshot every %d entries", p.snapshotEvery)
	}
	if p.maxUncommitted > 0 {
		fmt.Fprintf(&b, "; max %d uncommitted bytes", p.maxUncommitted)
	}
	if p.maxSizePerMsg > 0 || p.maxInflight > 0 {
		fmt.Fprintf(&b, "; max msg %d bytes, %d inflight", p.maxSizePerMsg, p.maxInflight)
	}
	if p.lazyCommit {
		b.WriteString("; lazy commit broadcast")
	}
	if len(p.timings) > 0 {
		fmt.Fprintf(&b, "; node timings %v", p.timings)
		if p.retime > 0 {
			fmt.Fprintf(&b, ", retimed at %g of restarts", p.retime)
		}
	}
	if p.spares > 0 {
		fmt.Fprintf(&b, "; %d spare nodes for membership changes", p.spares)
	}
	if p.applyMax > 0 {
		fmt.Fprintf(&b, "; applying takes up to %v", p.applyMax)
	}
	if len(p.holders) > 0 || p.faults.holderChange {
		fmt.Fprintf(&b, "; read-lease holders %v, %g of lease reads sent to the client's own node", p.holders, p.readLocal)
	}
	if off := p.off.names(); len(off) > 0 {
		fmt.Fprintf(&b, "; MECHANISMS OFF: %v", off)
	}
	return b.String()
}

// geoMatrix is the 5-region RTT matrix from testdata, read once.
var geoMatrix = sync.OnceValues(func() (regionRTT, error) { return readRTTMatrix("testdata/rtt-5-regions.csv") })

type regionRTT struct {
	regions []string
	rtt     [][]time.Duration
}

// readRTTMatrix parses the region RTT matrix: a header row of regions, then one row per
// region of round-trip times in milliseconds; lines starting with # are comments.
func readRTTMatrix(path string) (regionRTT, error) {
	f, err := os.Open(path)
	if err != nil {
		return regionRTT{}, fmt.Errorf("open rtt matrix: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	rows, err := r.ReadAll()
	if err != nil {
		return regionRTT{}, fmt.Errorf("read rtt matrix %s: %w", path, err)
	}
	if len(rows) < 2 {
		return regionRTT{}, fmt.Errorf("rtt matrix %s: want a header and rows, got %d rows", path, len(rows))
	}
	m := regionRTT{regions: rows[0][1:]}
	for i, row := range rows[1:] {
		if len(row) != len(m.regions)+1 || row[0] != m.regions[i] {
			return regionRTT{}, fmt.Errorf("rtt matrix %s: row %d (%q) does not match the header", path, i+1, row[0])
		}
		line := make([]time.Duration, len(m.regions))
		for j, cell := range row[1:] {
			ms, err := strconv.ParseFloat(cell, 64)
			if err != nil || ms < 0 {
				return regionRTT{}, fmt.Errorf("rtt matrix %s: %s→%s: bad rtt %q", path, row[0], m.regions[j], cell)
			}
			line[j] = time.Duration(ms * float64(time.Millisecond))
		}
		m.rtt = append(m.rtt, line)
	}
	return m, nil
}

// randomParams draws a run's setup from its seed: cluster size, links, timing, clock rates,
// faults and workload.
func randomParams(seed int64) simParams {
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e0a))
	p := simParams{seed: seed, nodes: 3 + 2*r.IntN(2)}
	pick := func(xs ...float64) float64 { return xs[r.IntN(len(xs))] }
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo)+1)) }

	switch x := r.Float64(); {
	case x < 0.45:
		p.topology = "lan"
		p.oneWay = make([][]time.Duration, p.nodes)
		for i := range p.oneWay {
			p.oneWay[i] = make([]time.Duration, p.nodes)
			for j := range p.oneWay[i] {
				if i != j {
					p.oneWay[i][j] = dur(100*time.Microsecond, time.Millisecond)
				}
			}
		}
		p.jitter = 300 * time.Microsecond
		p.clientHop = 100 * time.Microsecond
		p.heartbeat, p.lease = 10*time.Millisecond, 50*time.Millisecond
		p.electionMin, p.electionMax = 100*time.Millisecond, 200*time.Millisecond
		p.fsyncMin, p.fsyncMax = 50*time.Microsecond, 500*time.Microsecond
	default:
		scale := 1.0
		if x > 0.8 {
			scale = 0.25
		}
		p.topology = fmt.Sprintf("geo x%.2f", scale)
		m, err := geoMatrix()
		if err != nil {
			panic(err) // testdata is part of the package; a broken copy is a broken build
		}
		idx := r.Perm(len(m.regions))[:p.nodes]
		slices.Sort(idx)
		p.oneWay = make([][]time.Duration, p.nodes)
		for i, a := range idx {
			p.regions = append(p.regions, m.regions[a])
			p.oneWay[i] = make([]time.Duration, p.nodes)
			for j, b := range idx {
				p.oneWay[i][j] = time.Duration(float64(m.rtt[a][b]) / 2 * scale)
			}
		}
		sc := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
		p.jitter = sc(2 * time.Millisecond)
		p.clientHop = 200 * time.Microsecond
		p.heartbeat, p.lease = sc(50*time.Millisecond), sc(400*time.Millisecond)
		p.electionMin, p.electionMax = sc(500*time.Millisecond), sc(time.Second)
		p.fsyncMin, p.fsyncMax = 200*time.Microsecond, 2*time.Millisecond
	}
	p.staleness = p.lease * time.Duration(1+r.IntN(4))

	p.drift = pick(0.001, 0.01, 0.05, 0.1, 0.2)
	for range p.nodes {
		// Rates within [1−δ/2, 1+δ/2]: any two differ by less than 1/(1−δ). Extremes are
		// drawn often, since they are where a lease rule is tight.
		var rate float64
		switch r.IntN(3) {
		case 0:
			rate = 1 - p.drift/2
		case 1:
			rate = 1 + p.drift/2
		default:
			rate = 1 - p.drift/2 + r.Float64()*p.drift
		}
		p.rates = append(p.rates, rate)
		p.offsets = append(p.offsets, dur(time.Second, 1000*time.Second))
	}

	maxOneWay := time.Duration(0)
	for _, row := range p.oneWay {
		maxOneWay = max(maxOneWay, slices.Max(row))
	}
	p.loss = pick(0, 0, 0, 0.01, 0.05, 0.15)
	p.dup = pick(0, 0, 0.01, 0.05)
	p.reorder = pick(0, 0, 0.02, 0.1)
	p.reorderMax = 2*maxOneWay + 2*p.heartbeat

	if r.IntN(3) == 0 {
		p.maxSizePerMsg = uint64(32 + r.IntN(200))
		p.maxInflight = 1 + r.IntN(4)
	}
	p.snapshotEvery = uint64(pick(0, 0, 5, 20, 60))

	f := &p.faults
	f.every = p.electionMax * time.Duration(1+r.IntN(3))
	f.partition = r.IntN(2) == 0
	f.asymmetric = r.IntN(3) == 0
	f.isolateLeader = r.IntN(2) == 0
	f.crash = r.IntN(2) == 0
	f.crashWindow = r.IntN(3) == 0
	f.transfer = r.IntN(3) == 0
	f.campaign = r.IntN(4) == 0
	f.leaseHunt = r.IntN(3) == 0
	f.skip(*simSkip)
	if slices.Contains(strings.Split(*simSkip, ","), "snapshots") {
		p.snapshotEvery = 0
	}

	p.clients = 3 + r.IntN(4)
	p.keys = 1 + r.IntN(3)
	p.think = 2 * p.heartbeat
	p.clientTimeout = 2*p.electionMax + 4*maxOneWay
	p.duration = p.electionMax * time.Duration(8+r.IntN(9))
	p.mix = opMix{set: 0.35, del: 0.05, lease: 0.45, index: 0.2, log: 0.1, randomNode: 0.2}

	// Later additions draw from their own stream, so that every seed keeps the setup it
	// had when a finding quoted it.
	x := rand.New(rand.NewPCG(uint64(seed), 0x7e57))
	p.late = []float64{0, 0, 0, 0.002, 0.01}[x.IntN(5)]
	p.lateMax = 3 * p.electionMax
	if x.IntN(5) == 0 {
		p.maxUncommitted = uint64(64 + x.IntN(512))
	}
	f.restartAll = x.IntN(6) == 0
	if x.IntN(4) == 0 {
		// Rates right at the drift bound: every node either at 1 or a hair under
		// 1/(1−δ) faster, the tightest the lease rule must survive.
		for i := range p.rates {
			p.rates[i] = 1
			if x.IntN(2) == 0 {
				p.rates[i] = (1 - 1e-9) / (1 - p.drift)
			}
		}
	}
	// Half the seeds run the node's setting (commit carried by the next append or
	// heartbeat), half the eager broadcast; its own stream leaves older setups unchanged.
	p.lazyCommit = rand.New(rand.NewPCG(uint64(seed), 0x1a2c)).IntN(2) == 0
	// A quarter of the seeds give nodes different timings, and half of those change a
	// node's timing across some restarts: a rolling change of timing.lease_duration.
	y := rand.New(rand.NewPCG(uint64(seed), 0x71e5))
	if y.IntN(4) == 0 {
		p.mixTimings(y, 0.5*float64(y.IntN(2)))
	}
	// A third of the seeds run with read-lease holders (some or all voters), half of those
	// changing them through the log during the run.
	if z := rand.New(rand.NewPCG(uint64(seed), 0x40ad)); z.IntN(3) == 0 {
		p.drawHolders(z)
		f.holderChange = z.IntN(2) == 0
		f.holderAttack = z.IntN(2) == 0
	}
	// A quarter of the seeds change the membership at run time, with one or two spare nodes
	// to add.
	if m := rand.New(rand.NewPCG(uint64(seed), 0x3e3b)); m.IntN(4) == 0 {
		p.addSpares(m, 1+m.IntN(2))
		f.membership = true
	}
	f.skip(*simSkip)
	return p
}

// drawHolders makes some or all of the voters read-lease holders, and sends most lease reads
// to the client's own node.
func (p *simParams) drawHolders(r *rand.Rand) {
	p.holders = p.holders[:0]
	all := r.IntN(2) == 0
	for i := range p.nodes {
		if all || r.IntN(2) == 0 {
			p.holders = append(p.holders, uint64(i+1))
		}
	}
	p.readLocal = 0.4 + 0.5*r.Float64()
}

// addSpares gives the run k spare nodes (simParams.spares) for membership changes, each in
// the region of a node of the cluster (links as that node's, and a short hop between the
// two), with a clock of its own.
func (p *simParams) addSpares(r *rand.Rand, k int) {
	p.spares = k
	total := p.nodes + k
	src := func(i int) int {
		if i < p.nodes {
			return i
		}
		return (i - p.nodes) % p.nodes
	}
	oneWay := make([][]time.Duration, total)
	for i := range total {
		oneWay[i] = make([]time.Duration, total)
		for j := range total {
			switch a, b := src(i), src(j); {
			case i == j:
			case a == b:
				oneWay[i][j] = p.clientHop
			default:
				oneWay[i][j] = p.oneWay[a][b]
			}
		}
	}
	p.oneWay = oneWay
	p.rates, p.offsets = p.rates[:p.nodes], p.offsets[:p.nodes]
	if len(p.regions) > 0 {
		p.regions = p.regions[:p.nodes]
	}
	if len(p.timings) > 0 {
		p.timings = p.timings[:p.nodes]
	}
	for i := p.nodes; i < total; i++ {
		if len(p.regions) > 0 {
			p.regions = append(p.regions, p.regions[src(i)])
		}
		p.rates = append(p.rates, p.rates[r.IntN(p.nodes)])
		p.offsets = append(p.offsets, time.Duration(1+r.IntN(1000))*time.Second)
		if len(p.timings) > 0 {
			p.timings = append(p.timings, p.timings[r.IntN(len(p.timings))])
		}
	}
}

// slots is how many nodes the run may ever start: the cluster's and the spares.
func (p simParams) slots() int { return p.nodes + p.spares }

// mixTimings gives every node a timing drawn from the profiles around the base timing, and
// each restart a new one with chance retime; the harness's bounds grow to the longest.
func (p *simParams) mixTimings(r *rand.Rand, retime float64) {
	p.profiles = timingProfiles(p.baseTiming())
	p.timings = p.timings[:0]
	for range p.nodes {
		p.timings = append(p.timings, p.profiles[r.IntN(len(p.profiles))])
	}
	p.retime = retime
	longest := p.electionMax
	for _, t := range p.profiles {
		longest = max(longest, t.electionMax)
	}
	p.clientTimeout += 2 * (longest - p.electionMax)
	p.electionMax = longest
}

func (p simParams) baseTiming() nodeTiming {
	return nodeTiming{heartbeat: p.heartbeat, lease: p.lease, electionMin: p.electionMin, electionMax: p.electionMax}
}

// timingOf is node i's timing at its first start.
func (p simParams) timingOf(i int) nodeTiming {
	if len(p.timings) > 0 {
		return p.timings[i%len(p.timings)] // a spare drawn after the timings: as a node's
	}
	return p.baseTiming()
}

// staleBound is how old, in true time, a stale read's value may be: the staleness bound on
// the slowest clock, plus persists for the commit index to reach the state machine. No
// message delay is added: a follower dates its freshness by its own clock as echoed by the
// leader (Message.FollowerClock), so a message that waited in a queue brings no freshness.
func (p simParams) staleBound() time.Duration {
	slowest := slices.Min(p.rates)
	return time.Duration(float64(p.staleness)/slowest) + 4*p.fsyncMax
}

// runOne runs one seeded simulation and checks its history.
func runOne(p simParams, verbose io.Writer) (out seedOutcome) {
	out.seed = p.seed
	s := newSimulation(p, verbose)
	defer func() {
		if r := recover(); r != nil {
			s.fail("driver", "panic: %v", r)
		}
		out.stats = s.stats
		out.leaseOverlap = s.firstLeaseOverlap
		if s.failure != nil {
			s.failure.params = p.describe()
			s.failure.trace = s.trace.lines()
			out.failure = s.failure
		}
	}()
	s.run()
	if s.failure == nil {
		s.checkHistory()
	}
	return out
}

func newSimulation(p simParams, verbose io.Writer) *simulation {
	s := &simulation{p: p, rng: rand.New(rand.NewPCG(uint64(p.seed), 0x51a1)), verbose: verbose}
	s.rec = history.NewRecorder(func() int64 { return int64(s.now) })
	peers := make([]uint64, p.nodes)
	for i := range peers {
		peers[i] = uint64(i + 1)
	}
	slots := p.slots()
	s.blocked = make([][]int, slots)
	s.extraDelay = make([][]time.Duration, slots)
	s.linkLoss = make([][]float64, slots)
	s.holding = make([][]bool, slots)
	for i := range slots {
		s.holding[i] = make([]bool, slots)
		s.blocked[i] = make([]int, slots)
		s.extraDelay[i] = make([]time.Duration, slots)
		s.linkLoss[i] = make([]float64, slots)
		n := &simNode{s: s, idx: i, clock: nodeClock{offset: p.offsets[i], rate: p.rates[i]}, kv: &kvMachine{}}
		n.driverNode = newDriverNode(Config{
			ID:                  uint64(i + 1),
			Peers:               peers,
			MaxClockDrift:       p.drift,
			MaxStaleness:        p.staleness,
			MaxSizePerMsg:       p.maxSizePerMsg,
			MaxInflightMsgs:     p.maxInflight,
			MaxUncommittedBytes: p.maxUncommitted,
			LazyCommitBroadcast: p.lazyCommit,
			ReadLeaseHolders:    p.holders,
			off:                 p.off,
		}, n.kv)
		n.contract.readsAsked = true
		n.outside = i >= p.nodes
		s.nodes = append(s.nodes, n)
		s.nodes[i].setTiming(p.timingOf(i))
	}
	s.inv = newInvariants(s)
	for i := range p.clients {
		s.clients = append(s.clients, &simClient{s: s, id: i, home: s.rng.IntN(p.nodes)})
	}
	return s
}

// run drives the event queue: nodes start, clients work, faults come and go; then
// everything heals and the run ends once a write has succeeded and every node has caught
// up (or the liveness bound passes).
func (s *simulation) run() {
	p := s.p
	for _, n := range s.nodes[:p.nodes] {
		s.schedule(s.randDuration(0, p.electionMin/10), "start", n.id, func() { s.start(n) })
	}
	for _, c := range s.clients {
		s.schedule(s.randDuration(0, p.electionMin), "client", 0, c.issue)
	}
	s.clientsStop = p.duration
	s.scheduleFaults()
	s.schedule(p.duration, "heal", 0, s.heal)
	hardStop := p.duration + p.clientTimeout + 80*p.electionMax
	for s.queue.Len() > 0 && s.failure == nil && !s.finished {
		e := heap.Pop(&s.queue).(*simEvent)
		if e.at > hardStop {
			s.fail("liveness", "run still going at %v, past its bound", e.at)
			break
		}
		s.now = e.at
		s.stats.events++
		s.trace.add(traceLine{at: e.at, node: e.node, kind: e.kind, msg: e.msg})
		if s.verbose != nil && e.kind == "deliver" {
			fmt.Fprintf(s.verbose, "%12v  n%d  deliver %s\n", e.at, e.node, describeMessage(*e.msg))
		}
		e.fn()
	}
	s.stats.runs = 1
	s.stats.virtual = s.now
}

// heal ends the fault phase: every link comes up, loss stops, crashed nodes restart, and a
// probe client writes until a write succeeds.
func (s *simulation) heal() {
	s.healed = true
	s.logf("heal: all links up, no loss, every node restarted; clients finish their last operations")
	for i := range s.blocked {
		clear(s.blocked[i])
		clear(s.extraDelay[i])
		clear(s.linkLoss[i])
	}
	s.p.loss = 0
	for _, n := range s.nodes {
		n.crashAfterPersist = false
		if n.r == nil && !n.outside {
			s.start(n)
		}
	}
	bound := s.p.clientTimeout + 30*s.p.electionMax
	s.probe = &simClient{s: s, id: len(s.clients), home: s.rng.IntN(len(s.nodes)), probe: true}
	s.probe.issue()
	s.after(bound, "check", 0, func() {
		if !s.probeDone {
			s.fail("liveness", "no write succeeded within %v of healing every fault:\n%s", bound, s.clusterState())
		}
	})
}

func (s *simulation) probeSucceeded(node uint64) {
	s.probeDone = true
	target := s.node(node).appliedIndex
	bound := s.p.clientTimeout + 30*s.p.electionMax
	deadline := s.now + bound
	s.logf("probe write succeeded at node %d; waiting for every node to apply %d", node, target)
	var poll func()
	poll = func() {
		if s.converged(target) {
			s.finished = true
			return
		}
		if s.now >= deadline {
			s.fail("convergence", "nodes did not converge on index ≥ %d within %v of the probe write:\n%s", target, bound, s.clusterState())
			return
		}
		s.after(s.p.heartbeat, "check", 0, poll)
	}
	poll()
}

// converged reports whether every client is done and every node has applied the same
// index, at least target, with the same state; it fails the run if states differ.
func (s *simulation) converged(target uint64) bool {
	for _, c := range s.clients {
		if c.busy {
			return false
		}
	}
	// The members are those of the membership the most advanced node has applied; a node
	// removed, or added and refused, is none of the convergence's business.
	var first *simNode
	for _, n := range s.nodes {
		if n.r != nil && (first == nil || n.appliedIndex > first.appliedIndex) {
			first = n
		}
	}
	if first == nil {
		return false
	}
	members := first.r.conf.members()
	for _, n := range s.nodes {
		if !slices.Contains(members, n.id) {
			continue
		}
		if n.r == nil || n.held != nil || n.appliedIndex < target || n.appliedIndex != first.appliedIndex {
			return false
		}
	}
	for _, n := range s.nodes {
		if n == first || !slices.Contains(members, n.id) {
			continue
		}
		if !maps2Equal(n.kv.kv, first.kv.kv) {
			s.fail("convergence", "nodes %d and %d applied up to %d but hold different states: %v vs %v",
				first.id, n.id, n.appliedIndex, first.kv.kv, n.kv.kv)
			return false
		}
	}
	return true
}

// clusterState describes every node for a liveness or convergence failure: role, term,
// log and lease, and the leader's view of each follower.
func (s *simulation) clusterState() string {
	var b strings.Builder
	for _, n := range s.nodes {
		if n.r == nil {
			fmt.Fprintf(&b, "    node %d: down since %v\n", n.id, n.downSince)
			continue
		}
		st := n.r.Status()
		fmt.Fprintf(&b, "    node %d: %v term %d vote %d leader %d, commit %d applied %d (driver %d), log [%d..%d], lease %v until %v, last leader contact %v, now %v\n",
			n.id, st.Role, st.Term, st.Vote, st.Leader, st.Commit, st.Applied, n.appliedIndex, st.FirstIndex, st.LastIndex,
			st.Lease, st.LeaseExpiry, st.LastLeaderContact, st.Now)
		ids := make([]uint64, 0, len(st.Progress))
		for id := range st.Progress {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			pr := st.Progress[id]
			fmt.Fprintf(&b, "      peer %d: match %d next %d %v inflight %d last ack %v\n", id, pr.Match, pr.Next, pr.State, pr.Inflight, pr.LastAck)
		}
	}
	return b.String()
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// historyTimeout bounds porcupine's search per history: a rare history with many unknown
// writes on one key can take minutes, and a short run should not wait for it.
func historyTimeout() time.Duration {
	if testing.Short() {
		return 10 * time.Second
	}
	return time.Minute
}

// checkHistory checks the clients' history with porcupine: writes and lease, index and log
// reads must be linearizable; stale reads must return values really written.
func (s *simulation) checkHistory() {
	ops := s.rec.Ops()
	opts := history.Options{Timeout: historyTimeout()}
	if s.p.historyTimeout > 0 {
		opts.Timeout = s.p.historyTimeout
	}
	if *simStale {
		opts.StaleBound = s.p.staleBound()
	}
	res := history.CheckWith(ops, opts)
	switch res.Verdict {
	case history.Violation:
		kind := "linearizability"
		if len(res.IllegalKeys) == 0 {
			kind = "stale read"
		}
		s.fail(kind, "%s", res.String())
		s.failure.visualization = &res
	case history.Invalid:
		s.fail("driver", "the recorded history is malformed: %s", res.String())
	case history.Inconclusive:
		s.stats.inconclusive++
		if s.p.strictHistory {
			s.fail("inconclusive", "porcupine ran out of time (%v) on this history: no violation found, none ruled out", opts.Timeout)
		}
	}
}

// traceRing keeps the last events of a run, formatted only if the run fails.
const traceSize = 120

type traceLine struct {
	at    time.Duration
	node  uint64
	kind  string
	msg   *Message
	event *Event
	text  string
}

func (l traceLine) String() string {
	head := fmt.Sprintf("%12v  ", l.at)
	if l.node != 0 {
		head += fmt.Sprintf("n%d  ", l.node)
	} else {
		head += "    "
	}
	switch {
	case l.msg != nil:
		return head + l.kind + " " + describeMessage(*l.msg)
	case l.event != nil:
		return head + "event: " + l.event.String()
	case l.text != "":
		return head + l.text
	}
	return head + l.kind
}

type traceRing struct {
	buf   [traceSize]traceLine
	next  int
	count int
}

func (t *traceRing) add(l traceLine) {
	t.buf[t.next] = l
	t.next = (t.next + 1) % traceSize
	t.count++
}

func (t *traceRing) addLine(at time.Duration, node uint64, text string) {
	t.add(traceLine{at: at, node: node, text: text})
}

func (t *traceRing) lines() []string {
	n := min(t.count, traceSize)
	out := make([]string, 0, n)
	for i := range n {
		l := t.buf[(t.next-n+i+traceSize)%traceSize]
		if l.kind == "tick" || l.kind == "client" || l.kind == "check" {
			continue // routine; the core's events and the messages tell the story
		}
		out = append(out, l.String())
	}
	return out
}

// traceReady records the core's own events, and in verbose mode what each Ready holds.
func (s *simulation) traceReady(n *simNode, rd *Ready) {
	for i := range rd.Events {
		ev := rd.Events[i]
		s.trace.add(traceLine{at: s.now, node: n.id, kind: "event", event: &ev})
		if s.verbose != nil {
			fmt.Fprintf(s.verbose, "%12v  n%d  event: %s\n", s.now, n.id, ev.String())
		}
	}
	if s.verbose != nil {
		var parts []string
		if rd.HardState != nil {
			parts = append(parts, fmt.Sprintf("hs=%d/%d/%d", rd.HardState.Term, rd.HardState.Vote, rd.HardState.Commit))
		}
		if rd.Snapshot != nil {
			parts = append(parts, fmt.Sprintf("snap=%d/%d", rd.Snapshot.Index, rd.Snapshot.Term))
		}
		if len(rd.Entries) > 0 {
			parts = append(parts, fmt.Sprintf("entries=%d..%d", rd.Entries[0].Index, rd.Entries[len(rd.Entries)-1].Index))
		}
		if len(rd.CommittedEntries) > 0 {
			parts = append(parts, fmt.Sprintf("apply=%d..%d", rd.CommittedEntries[0].Index, rd.CommittedEntries[len(rd.CommittedEntries)-1].Index))
		}
		if len(rd.ReadStates) > 0 {
			parts = append(parts, fmt.Sprintf("reads=%v", rd.ReadStates))
		}
		if len(rd.DroppedReads) > 0 {
			parts = append(parts, fmt.Sprintf("dropped=%d", len(rd.DroppedReads)))
		}
		parts = append(parts, fmt.Sprintf("msgs=%d+%d", len(rd.Messages), len(rd.MessagesAfterPersist)))
		fmt.Fprintf(s.verbose, "%12v  n%d  ready %s (local %v)\n", s.now, n.id, strings.Join(parts, " "), n.localNow())
	}
}
