package raft

// The deterministic simulator: whole clusters of cores, each with a disk, a state machine and
// a drifting clock, connected by a lossy network, driven by one event queue in virtual time.
// Everything a run does follows from its seed, so any failure replays exactly:
//
//	go test ./raft -run 'TestSimulation$' -sim.seed=123 -sim.verbose
//
// This file holds the flags, the test entry points and the runner; sim_cluster_test.go the
// nodes (on the test driver of driver_test.go, which carries out and checks every Ready
// against the contract), their clocks and the network; sim_client_test.go the clients;
// sim_invariants_test.go the cluster-wide safety checks made after every step;
// sim_faults_test.go the fault schedules.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	simSeeds   = flag.Int("sim.seeds", 0, "number of seeded simulator runs (0: the default for -short or not)")
	simSeed    = flag.Int64("sim.seed", -1, "replay this one seed (with -sim.verbose to print its whole story)")
	simFirst   = flag.Int64("sim.first", 1, "first seed of a batch")
	simVerbose = flag.Bool("sim.verbose", false, "print every event of a replayed run")
	simKeep    = flag.String("sim.keep", "", "directory for porcupine visualizations of failing runs (default: a temp dir)")
	simStale   = flag.Bool("sim.stalebound", true, "also check that stale reads are no older than MaxStaleness allows (doc.go's promise)")
	simSkip    = flag.String("sim.skip", "", "comma-separated faults to leave out of every run's mix: partition, asymmetric, isolate-leader, crash, crash-window, transfer, campaign, lease-attack, snapshots")
)

// Seeds run by default. -short is what `go test -short ./raft/` runs in about a minute on two
// cores; the full default is a few times that; soak runs pass -sim.seeds.
const (
	defaultSeedsShort = 2000
	defaultSeedsFull  = 6000
)

func seedCount() int {
	switch {
	case *simSeeds > 0:
		return *simSeeds
	case testing.Short():
		return defaultSeedsShort
	}
	return defaultSeedsFull
}

// replayCommand is the one command that reruns a failing seed with its full story.
func replayCommand(test string, seed int64) string {
	return fmt.Sprintf("go test ./raft -run '%s$' -sim.seed=%d -sim.verbose", test, seed)
}

// TestSimulation runs seeded simulations of 3- and 5-node clusters on LAN and geo links with
// every fault mix, checking the safety invariants after every step and the client history
// for linearizability after every run.
func TestSimulation(t *testing.T) {
	runSeeds(t, "TestSimulation", func(seed int64) simParams { return randomParams(seed) })
}

// seedOutcome is what one run left for the summary.
type seedOutcome struct {
	seed    int64
	failure *simFailure
	stats   simStats
	// leaseOverlap is the first lease-exclusivity violation of a run that records them
	// instead of failing (simParams.leaseOverlapsSoft).
	leaseOverlap string
}

// runSeeds runs the seeds the flags ask for, on every core, and reports each failing seed
// with its replay command. A replayed seed (-sim.seed) runs alone and, with -sim.verbose,
// prints its story.
func runSeeds(t *testing.T, test string, params func(seed int64) simParams) []seedOutcome {
	t.Helper()
	return runSeedsN(t, test, seedCount(), params)
}

// runSeedsN is runSeeds for n seeds, whatever the flags' default.
func runSeedsN(t *testing.T, test string, n int, params func(seed int64) simParams) []seedOutcome {
	t.Helper()
	if *simSeed >= 0 {
		p := params(*simSeed)
		var verbose io.Writer
		if *simVerbose {
			verbose = os.Stdout
		}
		out := runOne(p, verbose)
		t.Logf("seed %d: %s\n%s", *simSeed, p.describe(), out.stats)
		if out.failure != nil {
			reportFailure(t, test, out)
		}
		return []seedOutcome{out}
	}

	if *simSeeds > 0 {
		n = *simSeeds
	}
	first := *simFirst
	start := time.Now()
	outcomes := runBatch(first, n, params, nil)
	elapsed := time.Since(start)

	var total simStats
	var failed []seedOutcome
	for _, o := range outcomes {
		total.add(o.stats)
		if o.failure != nil {
			failed = append(failed, o)
		}
	}
	t.Logf("%d seeds (%d..%d) in %v: %.0f seeds/s; %s", n, first, first+int64(n)-1,
		elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), total.summary())
	var inconclusive []int64
	for _, o := range outcomes {
		if o.stats.inconclusive > 0 {
			inconclusive = append(inconclusive, o.seed)
		}
	}
	if len(inconclusive) > 0 {
		t.Logf("porcupine ran out of time (%v) on the histories of seeds %v: no violation found, none ruled out", historyTimeout(), inconclusive)
	}
	if len(failed) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%d of %d seeds failed:", len(failed), n)
		for _, o := range failed {
			first, _, _ := strings.Cut(o.failure.msg, "\n")
			fmt.Fprintf(&b, "\n  seed %d: %s: %s", o.seed, o.failure.kind, first)
		}
		t.Error(b.String())
	}
	for i, o := range failed {
		if i == 3 {
			t.Errorf("details above for the first 3 failing seeds; replay any other with %s", replayCommand(test, failed[i].seed))
			break
		}
		reportFailure(t, test, o)
	}
	return outcomes
}

// runBatch runs seeds first..first+n-1 on every core. If stop is set, workers stop taking
// new seeds once it returns true for an outcome; outcomes of seeds never run are left with
// seed 0.
func runBatch(first int64, n int, params func(seed int64) simParams, stop func(seedOutcome) bool) []seedOutcome {
	outcomes := make([]seedOutcome, n)
	var next atomic.Int64
	var stopped atomic.Bool
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				outcomes[i] = runOne(params(first+i), nil)
				if stop != nil && stop(outcomes[i]) {
					stopped.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return outcomes
}

// reportFailure prints what broke, the replay command, the trace of the last events and,
// for a history that is not linearizable, where its visualization was written.
func reportFailure(t *testing.T, test string, o seedOutcome) {
	t.Helper()
	f := o.failure
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s: %s\n", o.seed, f.kind, f.msg)
	fmt.Fprintf(&b, "  replay: %s\n", replayCommand(test, o.seed))
	fmt.Fprintf(&b, "  run: %s\n", f.params)
	if f.visualization != nil {
		dir := *simKeep
		if dir == "" {
			dir = os.TempDir()
		}
		path := filepath.Join(dir, fmt.Sprintf("georaft-sim-seed-%d.html", o.seed))
		if err := f.visualization.WriteVisualization(path); err != nil {
			fmt.Fprintf(&b, "  visualization: %v\n", err)
		} else {
			fmt.Fprintf(&b, "  visualization: %s\n", path)
		}
	}
	if len(f.trace) > 0 {
		fmt.Fprintf(&b, "  last events (true time, node):\n")
		for _, line := range f.trace {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	t.Error(b.String())
}

// simStats counts what the runs did, to show the faults and operations really happen.
type simStats struct {
	runs, events, messages, dropped           int
	elections, crashes, partitions, transfers int
	snapshotsSent, compactions                int
	ops, unknown, failedOps                   int
	leaseReads, leaseFallbacks, indexReads    int
	logReads, staleReads, staleRefused        int
	inconclusive, leaseHunts, leaseOverlaps   int
	electedUnderLease                         int
	readLeases, holderReads, confChanges      int
	holderAttacks, replacements, jointSplits  int
	bootEchoes, soleVoters                    int
	virtual                                   time.Duration
}

func (s *simStats) add(o simStats) {
	s.runs += o.runs
	s.events += o.events
	s.messages += o.messages
	s.dropped += o.dropped
	s.elections += o.elections
	s.crashes += o.crashes
	s.partitions += o.partitions
	s.transfers += o.transfers
	s.snapshotsSent += o.snapshotsSent
	s.compactions += o.compactions
	s.ops += o.ops
	s.unknown += o.unknown
	s.failedOps += o.failedOps
	s.leaseReads += o.leaseReads
	s.leaseFallbacks += o.leaseFallbacks
	s.indexReads += o.indexReads
	s.logReads += o.logReads
	s.staleReads += o.staleReads
	s.staleRefused += o.staleRefused
	s.inconclusive += o.inconclusive
	s.leaseHunts += o.leaseHunts
	s.leaseOverlaps += o.leaseOverlaps
	s.electedUnderLease += o.electedUnderLease
	s.readLeases += o.readLeases
	s.holderReads += o.holderReads
	s.confChanges += o.confChanges
	s.holderAttacks += o.holderAttacks
	s.replacements += o.replacements
	s.jointSplits += o.jointSplits
	s.bootEchoes += o.bootEchoes
	s.soleVoters += o.soleVoters
	s.virtual += o.virtual
}

func (s simStats) summary() string {
	return fmt.Sprintf("%d events, %d messages (%d dropped), %d leaders elected, %d crashes, %d partitions, "+
		"%d transfers, %d snapshots sent, %d compactions; %d client ops (%d unknown, %d failed): "+
		"%d lease reads (+%d served as index), %d index, %d log, %d stale (%d refused); %d lease attacks; "+
		"%d histories inconclusive; %d leaders elected while another held a lease; "+
		"%d read leases taken, %d lease reads served by holders, %d holder attacks; %d membership changes applied (%d replacements proposed, %d joint splits); %d boot-echo and %d sole-voter attacks; %v virtual time",
		s.events, s.messages, s.dropped, s.elections, s.crashes, s.partitions, s.transfers,
		s.snapshotsSent, s.compactions, s.ops, s.unknown, s.failedOps, s.leaseReads, s.leaseFallbacks,
		s.indexReads, s.logReads, s.staleReads, s.staleRefused, s.leaseHunts, s.inconclusive, s.electedUnderLease,
		s.readLeases, s.holderReads, s.holderAttacks, s.confChanges, s.replacements, s.jointSplits, s.bootEchoes, s.soleVoters, s.virtual.Round(time.Millisecond))
}

func (s simStats) String() string { return s.summary() }
