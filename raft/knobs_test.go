package raft

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every safety mechanism of the lease, commit and read rules has a knob that turns it off
// (Config.off, the mechanisms type). These tests show that the randomized simulator, with
// porcupine, the lease-exclusivity and freshness invariants and the others, and no
// hand-written scenario, finds a violation within knobSeeds seeds for each knob alone, while
// the seed that finds it passes with every mechanism on. docs/lease-knobs.md has the table
// of what each knob costs to catch; `go test ./raft -run TestSimulatorCatchesEachMechanismOff
// -v` prints it.

var knobSeedsFlag = flag.Int("sim.knobseeds", 0, "seeds each knob may take to be caught (0: knobSeeds)")

// knobSeeds bounds how many adversarial seeds each knob may take: what make test affords.
const knobSeeds = 3000

func knobSeedLimit() int {
	if *knobSeedsFlag > 0 {
		return *knobSeedsFlag
	}
	return knobSeeds
}

// knob is one mechanism and how to turn it off.
type knob struct {
	name string
	off  func(*mechanisms)
}

// knobs are the mechanisms the randomized simulator must catch alone: every one the core has.
var knobs = []knob{
	{"followerRecord", func(m *mechanisms) { m.followerRecord = true }},
	{"voteLeaseReport", func(m *mechanisms) { m.voteLeaseReport = true }},
	{"candidateOwnRecord", func(m *mechanisms) { m.candidateOwnRecord = true }},
	{"leaseScaleDown", func(m *mechanisms) { m.leaseScaleDown = true }},
	{"leaseFromSendTime", func(m *mechanisms) { m.leaseFromSendTime = true }},
	{"leaseQuorum", func(m *mechanisms) { m.leaseQuorum = true }},
	{"leaseAfterTermCommit", func(m *mechanisms) { m.leaseAfterTermCommit = true }},
	{"deferredCommit", func(m *mechanisms) { m.deferredCommit = true }},
	{"startupAssumption", func(m *mechanisms) { m.startupAssumption = true }},
	{"persistedLeaseBound", func(m *mechanisms) { m.persistedLeaseBound = true }},
	{"transferRelinquish", func(m *mechanisms) { m.transferRelinquish = true }},
	{"transferInheritedWait", func(m *mechanisms) { m.transferInheritedWait = true }},
	{"figure8", func(m *mechanisms) { m.figure8 = true }},
	{"voteLogCheck", func(m *mechanisms) { m.voteLogCheck = true }},
	{"acksAfterPersist", func(m *mechanisms) { m.acksAfterPersist = true }},
	{"electAfterPersist", func(m *mechanisms) { m.electAfterPersist = true }},
	{"leaderCountsHandedOut", func(m *mechanisms) { m.leaderCountsHandedOut = true }},
	{"readIndexFreshRound", func(m *mechanisms) { m.readIndexFreshRound = true }},
	{"readIndexAfterTermCommit", func(m *mechanisms) { m.readIndexAfterTermCommit = true }},
	{"freshnessFromEcho", func(m *mechanisms) { m.freshnessFromEcho = true }},
	{"freshnessNeedsLeaderCommit", func(m *mechanisms) { m.freshnessNeedsLeaderCommit = true }},
	{"freshnessNeedsLease", func(m *mechanisms) { m.freshnessNeedsLease = true }},
	{"freshnessSameBoot", func(m *mechanisms) { m.freshnessSameBoot = true }},
	{"readLeaseNesting", func(m *mechanisms) { m.readLeaseNesting = true }},
	{"commitWaitsForHolder", func(m *mechanisms) { m.commitWaitsForHolder = true }},
	{"readLeaseFromEcho", func(m *mechanisms) { m.readLeaseFromEcho = true }},
	{"readLeaseNeedsMatch", func(m *mechanisms) { m.readLeaseNeedsMatch = true }},
	{"readLeasePending", func(m *mechanisms) { m.readLeasePending = true }},
	{"transferHolderWait", func(m *mechanisms) { m.transferHolderWait = true }},
	{"jointCommit", func(m *mechanisms) { m.jointCommit = true }},
	{"jointElection", func(m *mechanisms) { m.jointElection = true }},
	{"jointLease", func(m *mechanisms) { m.jointLease = true }},
	{"removedStopsServing", func(m *mechanisms) { m.removedStopsServing = true }},
	{"removedHolderWait", func(m *mechanisms) { m.removedHolderWait = true }},
	{"withdrawTruncatedAcks", func(m *mechanisms) { m.withdrawTruncatedAcks = true }},
	{"learnersOutsideQuorum", func(m *mechanisms) { m.learnersOutsideQuorum = true }},
	{"staleReplyNoEcho", func(m *mechanisms) { m.staleReplyNoEcho = true }},
}

// adversarialParams draws a run built to reach the corners where the mechanisms matter. It
// starts from randomParams, so links, crashes, partitions and workload are as varied as
// there, and adds a theme that concentrates the run's faults on one kind of attack:
//
//   - lease attacks, back to back (each of the attack variants of sim_faults_test.go);
//   - transfers, some cutting the old leader off as it hands over, some from a leader still
//     waiting out an older lease, between lease attacks that make leaders wait;
//   - leader churn: leaders cut off just after their election or a commit, in rotation,
//     some with one entry per append (Raft's Figure 8);
//   - reboots: nodes crash and come back with clocks of a new origin, with messages from
//     before delivered after;
//   - everything at once, with slow links and slow disks.
//
// Half the seeds give nodes different timings that also change across restarts, and half put
// every clock at the drift bound. Across themes, half the seeds run read-lease holders, a
// third change the membership (a third of those also shrinking the cluster to one voter and
// replacing it: sim_solevoter_test.go), and a fifth attack restarted leaders with echoes from
// before their restart (sim_bootecho_test.go).
func adversarialParams(seed int64) simParams {
	p := randomParams(seed)
	r := rand.New(rand.NewPCG(uint64(seed), 0xad7e))
	p.strictHistory = true
	f := &p.faults
	*f = faultMix{every: p.electionMax / 2, partition: f.partition, asymmetric: f.asymmetric, crash: f.crash, crashWindow: f.crashWindow}
	p.duration = p.electionMax * time.Duration(10+r.IntN(5))
	p.mix = opMix{set: 0.35, del: 0.05, lease: 0.5, index: 0.15, log: 0.05, randomNode: 0.5}
	switch r.IntN(5) {
	case 4:
		// Reboots: nodes crash and come back with clocks of a new origin, and messages from
		// before reach them after.
		f.crash, f.restartAll, f.leaseHunt, f.attackShare = true, true, true, 0.4
		p.holdForRestart = true
		p.late, p.lateMax = 0.02, 2*p.electionMax
		p.mix.lease, p.mix.index = 0.2, 0.1 // mostly stale reads
	case 0:
		f.leaseHunt, f.attackShare = true, 1
	case 1:
		f.leaseHunt, f.transfer, f.attackShare = true, true, 0.5
	case 2:
		f.isolateNewLeader, f.churnShare = true, 0.8
		if r.IntN(2) == 0 {
			// One entry per append and one append in flight: a follower repairing its log
			// acknowledges an older term's entries a whole round trip before the new
			// leader's own.
			p.maxSizePerMsg, p.maxInflight = 1, 1
		}
	default:
		f.leaseHunt, f.transfer, f.campaign, f.slowLink, f.slowDisk, f.isolateNewLeader = true, true, true, true, true, true
		f.attackShare, f.churnShare = 0.3, 0.2
		f.every = p.electionMax
	}
	if r.IntN(2) == 0 && p.late == 0 {
		p.late, p.lateMax = 0.01, 2*p.electionMax
	}
	if r.IntN(2) == 0 {
		p.mixTimings(r, 0.5)
	}
	if r.IntN(2) == 0 {
		for i := range p.rates {
			p.rates[i] = 1
			if r.IntN(2) == 0 {
				p.rates[i] = (1 - 1e-9) / (1 - p.drift)
			}
		}
	}
	p.clients = 3 + r.IntN(3)
	p.keys = 1 + r.IntN(2)
	// Half the seeds run with read-lease holders, changed through the log and attacked
	// (sim_holders_test.go): cut off, their grants held back, their commit notices lost, or
	// left behind by a transfer, with most lease reads sent to them.
	if h := rand.New(rand.NewPCG(uint64(seed), 0x40ae)); h.IntN(2) == 0 {
		p.drawHolders(h)
		f.holderChange, f.holderAttack, f.holderShare = true, true, 0.4
	}
	// A third of the seeds change the membership often (sim_membership_test.go), among the
	// theme's own faults: spares join, learners are promoted, members (the leader, holders)
	// removed and voters replaced.
	if m := rand.New(rand.NewPCG(uint64(seed), 0x3e3c)); m.IntN(3) == 0 {
		p.addSpares(m, 1+m.IntN(3))
		f.membership, f.membershipShare = true, 0.4
		if m.IntN(2) == 0 {
			// Applying takes a round trip or more, and answers to a campaign arrive before
			// the change it knew committed takes effect.
			maxOneWay := time.Duration(0)
			for _, row := range p.oneWay {
				maxOneWay = max(maxOneWay, slices.Max(row))
			}
			p.applyMax = 4*maxOneWay + p.heartbeat
		}
	}
	// A fifth of the seeds attack restarted leaders with echoes from before their restart,
	// on clocks of another origin (sim_bootecho_test.go).
	if b := rand.New(rand.NewPCG(uint64(seed), 0xb0e0)); b.IntN(5) == 0 {
		f.bootEcho, f.bootEchoShare = true, 0.5
	}
	// A fraction of the membership seeds shrink the cluster to one voter, replace it, and
	// restart the old one (sim_solevoter_test.go).
	if v := rand.New(rand.NewPCG(uint64(seed), 0x501e)); f.membership && v.IntN(3) == 0 {
		f.soleVoter, f.soleVoterShare = true, 0.3
	}
	f.skip(*simSkip)
	return p
}

// safetyFailure reports whether a run broke a safety property: an invariant, a history
// that is not linearizable, a stale read older than its bound, or replicas that diverged.
func safetyFailure(o seedOutcome) bool {
	if o.failure == nil {
		return false
	}
	switch o.failure.kind {
	case "invariant", "linearizability", "stale read", "convergence":
		return true
	}
	return false
}

// TestSimulatorCatchesEachMechanismOff turns each mechanism off alone and requires the
// adversarial simulator to break a safety property within the seed limit.
func TestSimulatorCatchesEachMechanismOff(t *testing.T) {
	limit := knobSeedLimit()
	var table strings.Builder
	fmt.Fprintf(&table, "| knob | seeds to first failure (of %d) | what broke |\n| --- | --- | --- |\n", limit)
	for _, k := range knobs {
		t.Run(k.name, func(t *testing.T) {
			params := func(seed int64) simParams {
				p := adversarialParams(seed)
				k.off(&p.off)
				// A broken core can leave histories porcupine takes long to refute; those
				// seeds count as not caught rather than holding the run up.
				p.historyTimeout = 2 * time.Second
				return p
			}
			if *simSeed >= 0 {
				runSeeds(t, "TestSimulatorCatchesEachMechanismOff/"+k.name, params)
				return
			}
			outcomes := runBatch(1, limit, params, safetyFailure)
			first := slices.IndexFunc(outcomes, safetyFailure)
			if first < 0 {
				fmt.Fprintf(&table, "| %s | not caught | |\n", k.name)
				t.Fatalf("the simulator found nothing wrong in %d seeds with %s off", limit, k.name)
			}
			o := outcomes[first]
			msg, _, _ := strings.Cut(o.failure.msg, "\n")
			t.Logf("caught at seed %d: %s: %s\n  replay: %s", o.seed, o.failure.kind, msg,
				replayCommand("TestSimulatorCatchesEachMechanismOff/"+k.name, o.seed))
			fmt.Fprintf(&table, "| %s | %d | %s |\n", k.name, o.seed, o.failure.kind)
			// The same seed with every mechanism on must pass: what broke is the knob's doing.
			if clean := runOne(adversarialParams(o.seed), nil); clean.failure != nil {
				reportFailure(t, "TestAdversarialSimulationClean", clean)
			}
		})
	}
	t.Logf("\n%s", table.String())
}

// TestAdversarialSimulationClean runs adversarial seeds with every mechanism on: all must
// pass. (Each seed that catches a knob is also run clean by the knob test.)
func TestAdversarialSimulationClean(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 400
	}
	runSeedsN(t, "TestAdversarialSimulationClean", n, func(seed int64) simParams { return adversarialParams(seed) })
}
