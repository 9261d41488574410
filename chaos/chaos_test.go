package chaos

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/readmode"
)

func TestMain(m *testing.M) { kittest.Main(m) }

// georaftdEnv names a prebuilt georaftd (with -tags georaft_testhooks) to test instead of
// building one from this checkout: a CI cache, or a candidate fix built elsewhere.
const georaftdEnv = "GEORAFT_CHAOS_GEORAFTD"

// georaftd is the node binary the integration tests below run, with the test hooks.
func georaftd(t *testing.T) string {
	t.Helper()
	if path := os.Getenv(georaftdEnv); path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatalf("%s=%s: %v", georaftdEnv, path, err)
		}
		return abs
	}
	return kittest.Georaftd(t, clusterkit.TestHooksTag)
}

// TestChaosEveryFaultKind runs one round of every fault kind (two without -short) on five
// real processes under load, then checks the history, durability across a kill -9 of the
// whole cluster, and convergence. It then shows on that same recorded history that the
// checks flag a stale lease read and a lost write, and that a failed run leaves its
// artifacts and a replay command.
func TestChaosEveryFaultKind(t *testing.T) {
	const seed = 20251127
	rounds := 2
	if testing.Short() {
		rounds = 1
	}
	gen := NewGenerator(seed, AllKinds, LANTiming)
	var faults []Fault
	for range rounds * len(AllKinds) {
		faults = append(faults, gen.Next())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Every node holds a read lease: lease reads are answered at the leader and at every
	// holder, and pauses, kills and partitions hit holders.
	opts := Options{
		SetupOptions: SetupOptions{Georaftd: georaftd(t), WorkDir: t.TempDir(), Log: &kittest.Log{T: t},
			ReadLeaseHolders: []string{"all"}},
		Schedule:     &Schedule{Seed: seed, Faults: faults},
		ArtifactsDir: t.TempDir(),
		CheckTimeout: time.Minute,
	}
	rep, err := Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var summary strings.Builder
	rep.WriteSummary(&summary)
	t.Log("\n" + summary.String())
	// Errorf, not Fatalf: the subtests below show the checks can fail whatever this run found.
	if !rep.OK() {
		t.Errorf("the run found %d anomalies (artifacts in %s; replay: %s)", len(rep.Anomalies), rep.ArtifactsDir, rep.ReplayCommand)
	}
	for _, k := range AllKinds {
		if rep.Faults[k] != rounds {
			t.Errorf("fault kind %s injected %d times, want %d", k, rep.Faults[k], rounds)
		}
	}
	if rep.LostWrites != 0 {
		t.Errorf("%d lost writes", rep.LostWrites)
	}
	if revs := revisionsMade(rep.ops); revs == 0 || rep.WatchEvents < revs {
		t.Errorf("the watch checker got %d events; the acknowledged sets and swaps alone made %d revisions", rep.WatchEvents, revs)
	}
	// A run in which almost nothing was acknowledged proves nothing.
	if rep.AckedWrites < 100 || rep.Checked < 500 {
		t.Errorf("only %d writes acknowledged and %d operations checked", rep.AckedWrites, rep.Checked)
	}
	if rep.Converged.AppliedIndex == 0 || rep.ConvergedRestart.StateHash != rep.Converged.StateHash {
		t.Errorf("convergence before (%+v) and after (%+v) the full restart", rep.Converged, rep.ConvergedRestart)
	}
	probed := false
	for _, ev := range rep.Events {
		probed = probed || (ev.Fault.Kind == PauseLeader && len(ev.Probes) > 0)
	}
	if !probed {
		t.Error("no lease read probed a resumed leader")
	}
	if pids := leftoverPIDs(t, rep); len(pids) > 0 {
		t.Errorf("georaftd processes still running after the run: %v", pids)
	}

	t.Run("checks flag a stale lease read injected into the recorded history", func(t *testing.T) {
		ops, key := injectStaleRead(t, rep.ops)
		res, anomalies, _ := analyze(ops, rep.Events, nil, rep.Timing, time.Minute, 0)
		// With range reads and CAS in the history, porcupine checks key groups.
		if res.Verdict != history.Violation || !slices.Contains(res.IllegalKeys, history.Group(key)) {
			t.Fatalf("porcupine verdict %s on keys %v, want a violation on %s", res.Verdict, res.IllegalKeys, key)
		}
		if !hasAnomaly(anomalies, AnomalyLinearizability, history.Group(key)) {
			t.Fatalf("anomalies %v do not name the linearizability violation on %s", anomalies, key)
		}
	})
	t.Run("checks flag a lost write in the recorded history", func(t *testing.T) {
		_, _, before := analyze(rep.ops, rep.Events, nil, rep.Timing, time.Minute, 0)
		ops, key := injectLostWrite(t, rep.ops)
		_, anomalies, lost := analyze(ops, rep.Events, nil, rep.Timing, time.Minute, 0)
		if lost != before+1 || !hasAnomaly(anomalies, AnomalyLostWrite, key) {
			t.Fatalf("%d lost writes (%d before the injection), anomalies %v: want one more, on %s", lost, before, anomalies, key)
		}
	})
	t.Run("a failed run leaves its history, visualization, schedule and replay command", func(t *testing.T) {
		ops, _ := injectStaleRead(t, rep.ops)
		failed := *rep
		failed.check, failed.Anomalies, _ = analyze(ops, rep.Events, nil, rep.Timing, time.Minute, 0)
		dir := t.TempDir()
		if err := writeArtifacts(Options{ArtifactsDir: dir, ReplayBinary: "bin/georaft-chaos"}, &failed, faults, ops, nil); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"history.html", "history.json", "schedule.json", "summary.txt", "report.json"} {
			if info, err := os.Stat(filepath.Join(failed.ArtifactsDir, name)); err != nil || info.Size() == 0 {
				t.Errorf("artifact %s: %v", name, err)
			}
		}
		schedulePath := filepath.Join(failed.ArtifactsDir, "schedule.json")
		if failed.ReplayCommand != "bin/georaft-chaos run --schedule "+schedulePath {
			t.Errorf("replay command %q", failed.ReplayCommand)
		}
		replay, err := ReadSchedule(schedulePath)
		if err != nil {
			t.Fatal(err)
		}
		if replay.Seed != seed || !slices.Equal(replay.Faults, faults) {
			t.Errorf("schedule.json replays seed %d with %d faults, want seed %d with the run's %d", replay.Seed, len(replay.Faults), seed, len(faults))
		}
		summary, err := os.ReadFile(filepath.Join(failed.ArtifactsDir, "summary.txt"))
		if err != nil || !strings.Contains(string(summary), "result: FAIL") || !strings.Contains(string(summary), "replay: bin/georaft-chaos run --schedule") {
			t.Errorf("summary.txt does not say FAIL with the replay command: %v\n%s", err, summary)
		}
	})
}

// TestFailoverWindows kills the leader under load three times and checks the measured
// windows against the configured timing: each needed an election (longer than half the
// minimum election timeout) and was over well within 3 × (election timeout max + lease).
func TestFailoverWindows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := MeasureFailover(ctx, FailoverOptions{
		SetupOptions: SetupOptions{Georaftd: georaftd(t), WorkDir: t.TempDir(), Log: &kittest.Log{T: t}},
		Repeats:      3, Seed: 7, CheckTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	var summary strings.Builder
	rep.WriteSummary(&summary)
	t.Log("\n" + summary.String())
	if len(rep.Anomalies) > 0 {
		t.Fatalf("anomalies during the failover measurement: %v", rep.Anomalies)
	}
	timing := rep.Timing
	lower := timing.ElectionTimeoutMin / 2
	upper := 3 * (timing.ElectionTimeoutMax + timing.LeaseDuration)
	if len(rep.Samples) != 3 {
		t.Fatalf("%d samples, want 3", len(rep.Samples))
	}
	for i, s := range rep.Samples {
		if !s.Complete {
			t.Errorf("sample %d incomplete: %+v", i, s)
			continue
		}
		if s.NewLeader == s.Killed {
			t.Errorf("sample %d: the first write after the kill was served by the killed node %d", i, s.Killed)
		}
		for name, w := range map[string]time.Duration{"write": s.WriteWindow.D(), "lease-read": s.LeaseWindow.D()} {
			if w <= lower || w >= upper {
				t.Errorf("sample %d: %s unavailability %s, want between election timeout min / 2 (%s) and 3 × (election timeout max + lease) (%s)",
					i, name, w, lower, upper)
			}
		}
	}
}

// leftoverPIDs asks the cluster kit, from the run's configs, which georaftd of the cluster
// still runs.
func leftoverPIDs(t *testing.T, rep *Report) []int {
	t.Helper()
	c, err := clusterkit.Open(filepath.Join(rep.WorkDir, "configs"), clusterkit.Options{WorkDir: rep.WorkDir})
	if err != nil {
		t.Fatal(err)
	}
	return c.RunningPIDs()
}

func hasAnomaly(anomalies []Anomaly, kind, key string) bool {
	for _, a := range anomalies {
		if a.Kind == kind && strings.Contains(a.Detail, key) {
			return true
		}
	}
	return false
}

// injectStaleRead appends a lease read that returns a value certainly overwritten before it
// was called: the read a leader serving from an expired lease would give.
func injectStaleRead(t *testing.T, ops []history.Op) ([]history.Op, string) {
	t.Helper()
	for i, older := range ops {
		if older.Kind != history.Set || older.Outcome != history.OK {
			continue
		}
		for _, newer := range ops[i+1:] {
			if newer.Key == older.Key && newer.Kind == history.Set && newer.Outcome == history.OK && newer.Call > older.Return {
				stale := history.Op{ClientID: 77_777, Kind: history.Get, Mode: readmode.Lease, Key: older.Key,
					Value: older.Value, Found: true, Call: newer.Return + 1, Return: newer.Return + 2, Outcome: history.OK,
					Note: "injected stale read"}
				return append(slices.Clone(ops), stale), older.Key
			}
		}
	}
	t.Fatal("the recorded history has no key with two acknowledged writes, one after the other")
	return nil, ""
}

// injectLostWrite rewrites one final read to return a value that a later acknowledged write
// replaced, as if that write had not survived the full restart.
func injectLostWrite(t *testing.T, ops []history.Op) ([]history.Op, string) {
	t.Helper()
	out := slices.Clone(ops)
	for i, final := range out {
		if final.ClientID != finalClientID || final.Outcome != history.OK {
			continue
		}
		for j, older := range ops {
			if older.Key != final.Key || older.Kind != history.Set || older.Outcome != history.OK {
				continue
			}
			replaced := false
			for _, newer := range ops[j+1:] {
				replaced = replaced || (newer.Key == older.Key && newer.Kind != history.Get && newer.Outcome == history.OK && newer.Call > older.Return)
			}
			if replaced {
				out[i].Found, out[i].Value, out[i].Note = true, older.Value, "injected: an overwritten value"
				return out, final.Key
			}
		}
	}
	t.Fatal("no final read of a key whose value was overwritten by an acknowledged write")
	return nil, ""
}

// TestClockRateReachesTheNode checks that a node restarted with a clock rate really runs its
// clock at that rate, which the clock-skew fault relies on: two followers are cut off from
// every peer, one restarted at rate 2 (far outside the drift bound, which is why this cluster
// runs no workload to check) and one left at 1, and over the same real interval the time
// since leader contact that each reports must grow twice (± 15%) as fast on the skewed one.
func TestClockRateReachesTheNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, ClusterOptions{Georaftd: georaftd(t), Dir: t.TempDir(), Log: &kittest.Log{T: t}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kit.Close()
	leader, _, err := c.WaitLeader(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	followers := without(c.IDs(), leader)
	skewed, steady := followers[0], followers[1]
	if err := c.SetClockRate(skewed, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(skewed); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(skewed); err != nil {
		t.Fatal(err)
	}
	// Wait until the restarted node follows the leader again, then cut both off.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := c.Statuses(ctx, false, time.Second)[skewed]
		if st.GetLeaderId() == leader && st.GetLastContactAgeNanos() >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not rejoin after its restart", skewed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, cutOff := range []uint64{skewed, steady} {
		for _, from := range without(c.IDs(), cutOff) {
			if err := c.link(from, cutOff, (*clusterkit.Proxy).Cut); err != nil {
				t.Fatal(err)
			}
		}
	}
	type sample struct {
		real time.Time
		age  map[uint64]time.Duration
	}
	// Status reports the node's clock as of its loop's latest tick, which on an idle node may
	// be an election timeout old; the loop ticks right after answering, so a second Status at
	// once reports the clock as of (about) the end of the first.
	measure := func() sample {
		_ = c.Statuses(ctx, false, 2*time.Second)
		s := sample{real: time.Now(), age: map[uint64]time.Duration{}}
		st := c.Statuses(ctx, false, 2*time.Second)
		for _, id := range []uint64{skewed, steady} {
			if st[id] == nil {
				t.Fatalf("node %d did not answer Status", id)
			}
			s.age[id] = time.Duration(st[id].GetLastContactAgeNanos())
		}
		return s
	}
	// Messages already in flight when the links were cut may still refresh the contact:
	// start measuring once neither node has heard anything for a while.
	var first sample
	for first = measure(); first.age[skewed] < 300*time.Millisecond || first.age[steady] < 300*time.Millisecond; first = measure() {
		if time.Now().After(deadline.Add(30 * time.Second)) {
			t.Fatalf("the cut-off nodes kept hearing from the leader: ages %v", first.age)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for time.Since(first.real) < 1500*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
	}
	second := measure()
	realElapsed := second.real.Sub(first.real)
	rate := func(id uint64) float64 { return float64(second.age[id]-first.age[id]) / float64(realElapsed) }
	t.Logf("over %s real: node %d (rate 2) clock advanced %.2f×, node %d (rate 1) %.2f×", realElapsed, skewed, rate(skewed), steady, rate(steady))
	if ratio := rate(skewed) / rate(steady); ratio < 1.7 || ratio > 2.3 {
		t.Fatalf("clock of the node started with %s=2 advanced %.2f× real time, the unskewed one %.2f×: the rate did not reach the node",
			ClockRateEnv, rate(skewed), rate(steady))
	}
}

// revisionsMade counts the acknowledged operations that each made one revision: sets, and
// compare-and-swaps that swapped (a delete of an absent key makes none). A watch of every key
// sees at least that many events.
func revisionsMade(ops []history.Op) int {
	n := 0
	for _, op := range ops {
		if op.Outcome == history.OK && (op.Kind == history.Set || op.Kind == history.CAS && op.Swapped) {
			n++
		}
	}
	return n
}
