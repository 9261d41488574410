package raft

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The simulator must be shown to catch the bug it exists for. These tests plant it: every
// node skips the new leader's wait for the old leader's lease (Config.testingSkipOldLeaseWait)
// and the lease attack runs again and again (the leader is cut off right after renewing its
// lease, followers restart, and another node campaigns at once) while clients read from the
// old leader and write through the new one. Some seed must show a read that is not
// linearizable. The same seeds without the planted bug must be clean.

// leaseBugSeeds bounds the search: the planted bug must show within this many seeds.
const leaseBugSeeds = 60

// leaseBugParams is a run built to expose the skipped wait: small LAN clusters, one key,
// lease reads and writes, clients that often try any node, and the lease attack as the only
// fault, armed again at every fault tick.
func leaseBugParams(seed int64, skipWait bool) simParams {
	r := rand.New(rand.NewPCG(uint64(seed), 0x1ea5e))
	p := randomParams(seed)
	p.nodes = 3 + 2*r.IntN(2)
	p.topology = "lan"
	p.regions = nil
	p.oneWay = make([][]time.Duration, p.nodes)
	for i := range p.oneWay {
		p.oneWay[i] = make([]time.Duration, p.nodes)
		for j := range p.oneWay[i] {
			if i != j {
				p.oneWay[i][j] = 200*time.Microsecond + time.Duration(r.Int64N(int64(600*time.Microsecond)))
			}
		}
	}
	p.jitter, p.clientHop = 200*time.Microsecond, 100*time.Microsecond
	p.heartbeat, p.lease = 10*time.Millisecond, 80*time.Millisecond
	p.electionMin, p.electionMax = 100*time.Millisecond, 200*time.Millisecond
	p.staleness = p.lease
	p.fsyncMin, p.fsyncMax = 50*time.Microsecond, 300*time.Microsecond
	p.drift = 0.01
	p.rates, p.offsets = p.rates[:0], p.offsets[:0]
	for range p.nodes {
		p.rates = append(p.rates, 1-p.drift/2+r.Float64()*p.drift)
		p.offsets = append(p.offsets, time.Second+time.Duration(r.Int64N(int64(100*time.Second))))
	}
	p.loss, p.dup, p.reorder = 0, 0, 0
	p.maxSizePerMsg, p.maxInflight, p.snapshotEvery = 0, 0, 0
	p.faults = faultMix{every: 250 * time.Millisecond, leaseHunt: true}
	p.clients, p.keys = 5, 2
	p.think = 2 * time.Millisecond
	p.clientTimeout = 2*p.electionMax + 10*time.Millisecond
	p.duration = 1500 * time.Millisecond
	p.mix = opMix{set: 0.3, lease: 0.8, index: 0.2, randomNode: 0.3}
	p.skipOldLeaseWait = skipWait
	p.leaseOverlapsSoft = skipWait
	return p
}

// TestSimulatorCatchesSkippedLeaseWait plants the skipped old-lease wait and requires the
// checker to find a lease read that is not linearizable within leaseBugSeeds seeds.
func TestSimulatorCatchesSkippedLeaseWait(t *testing.T) {
	params := func(seed int64) simParams { return leaseBugParams(seed, true) }
	if *simSeed >= 0 {
		runSeeds(t, "TestSimulatorCatchesSkippedLeaseWait", params)
		return
	}
	caught := func(o seedOutcome) bool {
		return o.failure != nil && o.failure.kind == "linearizability" && culpritIsLeaseRead(o.failure)
	}
	outcomes := runBatch(1, leaseBugSeeds, params, caught)
	var overlaps []int64
	for _, o := range outcomes {
		if o.leaseOverlap != "" {
			overlaps = append(overlaps, o.seed)
		}
	}
	for _, o := range outcomes {
		if caught(o) {
			first, _, _ := strings.Cut(o.failure.msg, "\n")
			t.Logf("planted bug caught at seed %d: %s\n%s\n(lease overlaps recorded in seeds %v; replay: %s)",
				o.seed, first, o.failure.msg, overlaps, replayCommand("TestSimulatorCatchesSkippedLeaseWait", o.seed))
			return
		}
	}
	var b strings.Builder
	for _, o := range outcomes {
		if o.failure != nil {
			fmt.Fprintf(&b, "\n  seed %d: %s: %s", o.seed, o.failure.kind, o.failure.msg)
		}
	}
	t.Fatalf("no lease read found non-linearizable in %d seeds with the old-lease wait skipped (lease overlaps in seeds %v); other failures:%s",
		leaseBugSeeds, overlaps, b.String())
}

// culpritIsLeaseRead reports whether the history turned illegal at a lease read, the
// user-visible face of the planted bug.
func culpritIsLeaseRead(f *simFailure) bool {
	return f.visualization != nil && len(f.visualization.Culprit) > 0 && strings.Contains(f.visualization.Culprit[0], " lease ->")
}

// TestSimulatorCleanWithLeaseWait runs the same seeds as
// TestSimulatorCatchesSkippedLeaseWait without the planted bug: every one must pass.
func TestSimulatorCleanWithLeaseWait(t *testing.T) {
	params := func(seed int64) simParams { return leaseBugParams(seed, false) }
	if *simSeed >= 0 {
		runSeeds(t, "TestSimulatorCleanWithLeaseWait", params)
		return
	}
	outcomes := runBatch(1, leaseBugSeeds, params, nil)
	var b strings.Builder
	failed := 0
	for _, o := range outcomes {
		if o.failure != nil {
			failed++
			first, _, _ := strings.Cut(o.failure.msg, "\n")
			fmt.Fprintf(&b, "\n  seed %d: %s: %s (replay: %s)", o.seed, o.failure.kind, first,
				replayCommand("TestSimulatorCleanWithLeaseWait", o.seed))
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d lease-attack seeds fail with the old-lease wait in place:%s", failed, leaseBugSeeds, b.String())
	}
}
