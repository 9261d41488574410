package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/readmode"
)

// Options configure a run.
type Options struct {
	SetupOptions
	// Seed drives the fault schedule and the clients' choices.
	Seed int64
	// Duration is how long new faults are started (a generated schedule).
	Duration time.Duration
	// Schedule, when set, is replayed instead: its seed, its faults in order, all of them.
	Schedule *Schedule
	// Kinds restricts a generated schedule to these kinds (default: every kind).
	Kinds []Kind
	// Gap is the quiet time after a fault's recovery before the next (default 500ms).
	Gap time.Duration
	// CheckTimeout bounds the linearizability search (default 3 minutes).
	CheckTimeout time.Duration
	// StaleBound overrides how old a stale read's value may be: 0 is StaleBound(timing), a
	// negative value checks only that stale reads returned values really written.
	StaleBound time.Duration
	// ArtifactsDir receives a directory per failed run (default results/tmp/chaos).
	ArtifactsDir string
	// ReplayBinary is how the printed replay command names the binary.
	ReplayBinary string
}

// Report is what a run did and found.
type Report struct {
	Seed     int64               `json:"seed"`
	Timing   config.TimingConfig `json:"timing"`
	Links    string              `json:"links"`
	Clients  int                 `json:"clients"`
	Keys     int                 `json:"keys"`
	Duration time.Duration       `json:"fault_phase_ns"`
	// OpCounts counts the clients' operations by "kind outcome" ("get lease->index ok").
	OpCounts map[string]int `json:"op_counts"`
	// Ops is every operation recorded: clients, probes and final reads.
	Ops          int          `json:"ops"`
	Checked      int          `json:"ops_checked_linearizable"`
	StaleChecked int          `json:"stale_reads_checked"`
	Faults       map[Kind]int `json:"faults"`
	Events       []Event      `json:"events"`
	Anomalies    []Anomaly    `json:"anomalies"`
	// AckedWrites counts acknowledged writes, all of which the final reads must explain.
	AckedWrites int `json:"acked_writes"`
	// WatchEvents is how many events the watch checker got; WatchResumes how often its
	// stream broke (or fell silent) and it resumed on another node.
	WatchEvents      int           `json:"watch_events"`
	WatchResumes     int           `json:"watch_resumes"`
	LostWrites       int           `json:"lost_writes"`
	Converged        Convergence   `json:"converged"`
	ConvergedRestart Convergence   `json:"converged_after_full_restart"`
	RecoveryBound    time.Duration `json:"recovery_bound_ns"`
	// StaleBound is the stale-read age bound checked; 0 when only "really written" was.
	StaleBound time.Duration `json:"stale_bound_ns"`
	// Fsync is the nodes' WAL fsync times over the run: slow ones come from the machine.
	Fsync         *FsyncStats      `json:"wal_fsync"`
	Failovers     []FailoverSample `json:"failovers"`
	ArtifactsDir  string           `json:"artifacts_dir,omitempty"`
	ReplayCommand string           `json:"replay_command,omitempty"`
	WorkDir       string           `json:"work_dir"`

	check history.Result
	ops   []history.Op
}

// analyze runs every check on a finished run's records: porcupine and the stale-read check,
// lost writes against the final reads, lease reads of resumed leaders, recovery after each
// heal, and nodes that crashed. It returns porcupine's result, the anomalies and how many of
// them are lost writes.
func analyze(ops []history.Op, events []Event, crashes []string, t config.TimingConfig, timeout, staleBound time.Duration) (history.Result, []Anomaly, int) {
	res, anomalies := checkHistory(ops, t, timeout, staleBound)
	lost := 0
	for _, a := range lostWrites(ops) {
		if a.Kind == AnomalyLostWrite {
			lost++
		}
		anomalies = append(anomalies, a)
	}
	anomalies = append(anomalies, pauseAnomalies(events)...)
	anomalies = append(anomalies, recoveryAnomalies(events, RecoveryBound(t))...)
	for _, c := range crashes {
		anomalies = append(anomalies, Anomaly{AnomalyCrash, c})
	}
	return res, anomalies, lost
}

// OK reports whether the run found nothing wrong.
func (r *Report) OK() bool { return len(r.Anomalies) == 0 }

// Run starts a cluster, injects the schedule under load, heals, restarts everything, checks,
// and on any anomaly writes the artifacts. The error is for a run that could not be carried
// out (no cluster); what georaft got wrong is in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	seed := opts.Seed
	if opts.Schedule != nil {
		seed = opts.Schedule.Seed
	}
	if opts.Gap <= 0 {
		opts.Gap = 500 * time.Millisecond
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 3 * time.Minute
	}
	if opts.ArtifactsDir == "" {
		opts.ArtifactsDir = filepath.Join("results", "tmp", "chaos")
	}
	if opts.ReplayBinary == "" {
		opts.ReplayBinary = "bin/georaft-chaos"
	}
	h, err := setup(ctx, opts.SetupOptions, seed)
	if err != nil {
		return nil, err
	}
	var rep *Report
	defer func() {
		h.close()
		// A failed run keeps its cluster's data dirs and logs for inspection.
		if rep != nil && rep.OK() {
			h.removeWorkDir()
		}
	}()
	t := h.cluster.Timing
	rep = &Report{Seed: seed, Timing: t, Clients: h.work.opts.Clients, Keys: h.work.opts.Keys,
		Faults: map[Kind]int{}, RecoveryBound: RecoveryBound(t), WorkDir: h.workDir}
	rep.Fsync = &h.cluster.Fsync
	rep.Links = "LAN"
	if opts.Geo {
		rep.Links = "emulated geo matrix"
	}

	endpoints, _ := h.cluster.ClientEndpoints(h.cluster.IDs()[0])
	watch, err := startWatchChecker(endpoints, h.logf)
	if err != nil {
		return nil, fmt.Errorf("watch checker: %w", err)
	}
	h.watch = watch
	defer watch.stop()

	used := h.injectSchedule(ctx, opts, seed, rep)

	h.work.Stop()
	rep.OpCounts = h.work.Counts()
	h.logf("clients stopped; healing everything")
	if err := h.cluster.HealAll(); err != nil {
		rep.Anomalies = append(rep.Anomalies, Anomaly{AnomalyHarness, "heal after the faults: " + err.Error()})
	}
	convergeTimeout := 20*t.ElectionTimeoutMax + 20*time.Second
	if conv, a := h.cluster.waitConverged(ctx, convergeTimeout); a != nil {
		rep.Anomalies = append(rep.Anomalies, *a)
	} else {
		rep.Converged = conv
		h.logf("converged: every node at applied index %d, state hash %s (took %s)", conv.AppliedIndex, conv.StateHash, conv.Took.Round(time.Millisecond))
	}

	if err := h.restartAll(ctx); err != nil {
		rep.Anomalies = append(rep.Anomalies, Anomaly{AnomalyDivergence, "full restart: " + err.Error()})
	} else {
		h.finalReads(ctx)
		if conv, a := h.cluster.waitConverged(ctx, convergeTimeout); a != nil {
			rep.Anomalies = append(rep.Anomalies, *a)
		} else {
			rep.ConvergedRestart = conv
			h.logf("converged after the full restart: applied index %d, state hash %s", conv.AppliedIndex, conv.StateHash)
			// Nothing wrote between the two (the clients had stopped; reads through the log
			// and the new leader's no-op change no key and no session), so the state the
			// nodes recovered from their disks must be the state they had.
			if rep.Converged.StateHash != "" && conv.StateHash != rep.Converged.StateHash {
				rep.Anomalies = append(rep.Anomalies, Anomaly{AnomalyLostWrite, fmt.Sprintf(
					"the state changed across the full restart: hash %s at applied index %d before, %s at %d after",
					rep.Converged.StateHash, rep.Converged.AppliedIndex, conv.StateHash, conv.AppliedIndex)})
			}
		}
	}

	ops := h.rec.Ops()
	// The members now, not at the start: a replace-node fault may have replaced them all.
	finalEndpoints, _ := h.cluster.ClientEndpoints(h.cluster.IDs()[0])
	if finalRev, err := currentRevision(ctx, finalEndpoints); err != nil {
		rep.Anomalies = append(rep.Anomalies, Anomaly{AnomalyWatch, "could not read the final revision: " + err.Error()})
	} else {
		if !watch.waitFor(finalRev, 30*time.Second) {
			h.logf("the watch did not reach revision %d", finalRev)
		}
		watch.stop()
		rep.Anomalies = append(rep.Anomalies, watch.check(ops, finalRev)...)
		rep.WatchEvents, rep.WatchResumes = len(watch.events), watch.reconnects
		h.logf("watch: %d events up to revision %d, resumed %d times", len(watch.events), finalRev, watch.reconnects)
	}
	rep.Ops = len(ops)
	for _, op := range ops {
		if isWrite(op) && op.Outcome == history.OK {
			rep.AckedWrites++
		}
	}
	rep.StaleBound = StaleBound(t)
	if opts.StaleBound != 0 {
		rep.StaleBound = max(opts.StaleBound, 0)
	}
	h.logf("checking %d operations (porcupine, stale bound %s)", len(ops), describeStaleBound(rep.StaleBound))
	checkStart := time.Now()
	res, anomalies, lost := analyze(ops, rep.Events, h.cluster.Kit.Crashes(), t, opts.CheckTimeout, opts.StaleBound)
	rep.check, rep.Checked, rep.StaleChecked, rep.LostWrites = res, res.Checked, res.StaleChecked, lost
	h.logf("porcupine: %s in %s", res.Verdict, time.Since(checkStart).Round(time.Millisecond))
	rep.Anomalies = append(anomalies, rep.Anomalies...)
	rep.ops = ops

	served := h.work.Served()
	for _, ev := range rep.Events {
		if ev.Fault.Kind == KillLeader && ev.Error == "" && ev.Leader != 0 {
			s := failoverWindows(served, int64(ev.Start.D()), ev.Leader)
			s.Term = ev.LeaderTerm
			rep.Failovers = append(rep.Failovers, s)
		}
	}

	if !rep.OK() {
		if err := writeArtifacts(opts, rep, used, ops, h); err != nil {
			h.logf("could not write the artifacts: %v", err)
		}
	}
	return rep, nil
}

// injectSchedule runs the faults one after another: inject, hold, heal, wait for a write
// to succeed, rest. It returns the faults it ran, for the replay file.
func (h *harness) injectSchedule(ctx context.Context, opts Options, seed int64, rep *Report) []Fault {
	t := h.cluster.Timing
	gen := NewGenerator(seed, opts.Kinds, t)
	restRng := rand.New(rand.NewPCG(uint64(seed), 0x9a9))
	recoveryTimeout := max(5*rep.RecoveryBound, 15*time.Second)
	phaseStart := time.Now()
	var used []Fault
	for i := 0; ctx.Err() == nil; i++ {
		var f Fault
		if opts.Schedule != nil {
			if i >= len(opts.Schedule.Faults) {
				break
			}
			f = opts.Schedule.Faults[i]
		} else {
			if time.Since(phaseStart) >= opts.Duration {
				break
			}
			f = gen.Next()
		}
		used = append(used, f)
		ev := Event{Index: i + 1, Fault: f}
		before := h.work.LastWriteAck()
		if err := h.runFault(ctx, f, &ev); err != nil {
			ev.Error = err.Error()
			h.logf("fault %d %s: HARNESS ERROR %v", ev.Index, f.Kind, err)
			rep.Anomalies = append(rep.Anomalies, Anomaly{AnomalyHarness, fmt.Sprintf("fault %d (%s): %v", ev.Index, f.Kind, err)})
			if err := h.cluster.HealAll(); err != nil {
				h.logf("heal after the harness error: %v", err)
			}
			ev.Healed = millisOf(h.clock.Now())
		}
		rep.Faults[f.Kind]++
		healedAt := int64(ev.Healed.D())
		if ack, ok := h.work.WaitWriteAfter(ctx, healedAt, recoveryTimeout); ok {
			ev.Recovered, ev.Recovery = millisOf(ack), millisOf(ack-healedAt)
		} else {
			ev.Recovery = -1
		}
		end := h.clock.Now()
		if ev.Recovery >= 0 {
			end = int64(ev.Recovered.D())
		}
		ev.Unavailable = millisOf(int64(longestWriteGap(h.work.Served(), max(before, 0), end)))
		if ev.Recovery >= 0 {
			h.logf("fault %d %s healed; first write %s after the heal; longest write gap %s", ev.Index, f.Kind, ev.Recovery, ev.Unavailable)
		} else {
			h.logf("fault %d %s healed; NO write succeeded within %s of the heal", ev.Index, f.Kind, recoveryTimeout)
		}
		rep.Events = append(rep.Events, ev)
		sleepCtx(ctx, opts.Gap/2+time.Duration(restRng.Int64N(int64(opts.Gap)+1)))
	}
	rep.Duration = time.Since(phaseStart)
	return used
}

// restartAll kills every node at once (kill -9: only what was fsynced survives) and starts
// them all again.
func (h *harness) restartAll(ctx context.Context) error {
	h.logf("full-cluster restart: kill -9 every node, start them all")
	var wg sync.WaitGroup
	errs := make([]error, len(h.cluster.IDs()))
	for i, id := range h.cluster.IDs() {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = h.cluster.Kill(id) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, id := range h.cluster.IDs() {
		if err := h.cluster.Start(id); err != nil {
			return err
		}
	}
	leader, term, err := h.cluster.WaitLeader(ctx, 30*time.Second)
	if err != nil {
		return err
	}
	h.logf("after the full restart: leader node %d (term %d)", leader, term)
	return nil
}

// finalReads reads every key back through the log, retrying each until it succeeds or a
// deadline passes. Every attempt is part of the history.
func (h *harness) finalReads(ctx context.Context) {
	endpoints, ids := h.cluster.ClientEndpoints(h.cluster.IDs()[0])
	cl, err := client.New(client.Options{Endpoints: endpoints, NodeIDs: ids, RequestTimeout: 5 * time.Second, ClientID: 9_999})
	if err != nil {
		h.logf("final reads: %v", err)
		return
	}
	defer cl.Close()
	for _, key := range h.work.Keys() {
		deadline := time.Now().Add(30 * time.Second)
		for ctx.Err() == nil {
			call := h.rec.Begin(history.Op{ClientID: finalClientID, Kind: history.Get, Key: key, Mode: readmode.Log})
			res, err := cl.Get(ctx, key, readmode.Log)
			if err == nil {
				call.Read(res.Found, string(res.Value), res.Served)
				call.Annotate(fmt.Sprintf("final read after full restart, n%d", res.NodeID))
				break
			}
			call.Unknown(err)
			if time.Now().After(deadline) {
				h.logf("final read of %s: %v", key, err)
				break
			}
		}
	}
	h.logf("read back %d keys through the log", len(h.work.Keys()))
}

// scheduleFile is what a failed run leaves for its replay.
type scheduleFile struct {
	Seed   int64   `json:"seed"`
	Faults []Fault `json:"faults"`
	Events []Event `json:"events"`
}

func writeArtifacts(opts Options, rep *Report, used []Fault, ops []history.Op, h *harness) error {
	dir := filepath.Join(opts.ArtifactsDir, fmt.Sprintf("seed-%d-%s", rep.Seed, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create artifacts dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		dir = abs
	}
	rep.ArtifactsDir = dir
	schedulePath := filepath.Join(dir, "schedule.json")
	rep.ReplayCommand = fmt.Sprintf("%s run --schedule %s", opts.ReplayBinary, schedulePath)
	var errs []error
	for name, render := range map[string]func(io.Writer) error{
		"schedule.json": clusterkit.IndentedJSON(scheduleFile{Seed: rep.Seed, Faults: used, Events: rep.Events}),
		"report.json":   clusterkit.IndentedJSON(rep),
		"history.json":  func(w io.Writer) error { return history.WriteJSON(w, ops) },
		"summary.txt":   func(w io.Writer) error { rep.WriteSummary(w); return nil },
	} {
		var b bytes.Buffer
		errs = append(errs, render(&b), os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644))
	}
	if rep.check.Verdict != history.Invalid && rep.check.Verdict != 0 {
		errs = append(errs, rep.check.WriteVisualization(filepath.Join(dir, "history.html")))
	}
	if h != nil {
		for _, n := range h.cluster.Kit.Nodes {
			if raw, err := os.ReadFile(n.LogPath); err == nil {
				errs = append(errs, os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.log", n.ID)), raw, 0o644))
			}
		}
	}
	return errors.Join(errs...)
}

// WriteSummary prints the run's figures and verdict.
func (r *Report) WriteSummary(w io.Writer) {
	t := r.Timing
	fmt.Fprintf(w, "georaft chaos run: seed %d, %s of faults, 5 georaftd processes, %s links, %d clients on %d keys\n",
		r.Seed, r.Duration.Round(100*time.Millisecond), r.Links, r.Clients, r.Keys)
	fmt.Fprintf(w, "timing: heartbeat %s, election timeout %s-%s, lease %s, max clock drift %v, max staleness %s\n",
		t.HeartbeatInterval, t.ElectionTimeoutMin, t.ElectionTimeoutMax, t.LeaseDuration, t.MaxClockDrift, t.MaxStaleness)

	fmt.Fprintf(w, "operations: %d recorded (%d writes acknowledged); %d checked by porcupine, %d stale reads checked (bound %s)\n",
		r.Ops, r.AckedWrites, r.Checked, r.StaleChecked, describeStaleBound(r.StaleBound))
	labels := make([]string, 0, len(r.OpCounts))
	for k := range r.OpCounts {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	for _, k := range labels {
		fmt.Fprintf(w, "  %-28s %d\n", k, r.OpCounts[k])
	}
	fmt.Fprintf(w, "etcd watch of every key from revision 1: %d events, resumed on another node %d times\n", r.WatchEvents, r.WatchResumes)

	total := 0
	var kinds []string
	for k, n := range r.Faults {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "faults injected: %d (%s)\n", total, strings.Join(kinds, ", "))
	for _, ev := range r.Events {
		rec := "no recovery"
		if ev.Recovery >= 0 {
			rec = "writes back " + ev.Recovery.String() + " after heal"
		}
		fmt.Fprintf(w, "  %2d at %8s %-18s %s; longest write gap %s, %s\n", ev.Index, ev.Start, ev.Fault.Kind, ev.Detail, ev.Unavailable, rec)
	}

	var worstRec, worstGap Event
	for _, ev := range r.Events {
		if ev.Recovery > worstRec.Recovery {
			worstRec = ev
		}
		if ev.Unavailable > worstGap.Unavailable {
			worstGap = ev
		}
	}
	if worstGap.Index > 0 {
		fmt.Fprintf(w, "worst unavailability: %s without an acknowledged write (fault %d, %s)\n", worstGap.Unavailable, worstGap.Index, worstGap.Fault.Kind)
	}
	if worstRec.Index > 0 {
		fmt.Fprintf(w, "worst recovery after a heal: %s (fault %d, %s); bound %s = 2 × election timeout max + lease\n",
			worstRec.Recovery, worstRec.Index, worstRec.Fault.Kind, r.RecoveryBound)
	}
	leaseProbes, asLease, asIndex, refused := 0, 0, 0, 0
	for _, ev := range r.Events {
		if ev.Fault.Kind != PauseLeader {
			continue
		}
		for _, p := range ev.Probes {
			leaseProbes++
			switch {
			case p.Err != "":
				refused++
			case p.Served == readmode.Lease.String():
				asLease++
			default:
				asIndex++
			}
		}
	}
	if leaseProbes > 0 {
		fmt.Fprintf(w, "lease reads sent to paused leaders the moment they resumed: %d (%d served as lease, %d as index, %d refused or redirected)\n",
			leaseProbes, asLease, asIndex, refused)
	}
	if len(r.Failovers) > 0 {
		writeFailoverTable(w, r.Failovers, t)
	}
	if r.Converged.AppliedIndex > 0 {
		fmt.Fprintf(w, "convergence: all nodes at applied index %d with state hash %s after healing; %d / %s after the full restart\n",
			r.Converged.AppliedIndex, r.Converged.StateHash, r.ConvergedRestart.AppliedIndex, r.ConvergedRestart.StateHash)
	}
	if r.Fsync != nil {
		fmt.Fprintf(w, "machine: %s\n", r.Fsync)
		timing := false
		for _, a := range r.Anomalies {
			timing = timing || a.Kind == AnomalySlowRecovery || a.Kind == AnomalyNoRecovery
		}
		if slow := r.Fsync.Over(t.ElectionTimeoutMin); timing && slow > 0 {
			fmt.Fprintf(w, "  note: %.0f fsyncs took longer than the minimum election timeout; a leader stuck in one sends no heartbeats, so recovery anomalies may come from this disk\n", slow)
		}
	}
	fmt.Fprintf(w, "lost writes: %d\n", r.LostWrites)
	fmt.Fprintf(w, "anomalies: %d\n", len(r.Anomalies))
	for _, a := range r.Anomalies {
		fmt.Fprintf(w, "  ANOMALY %s\n", a)
	}
	if r.ArtifactsDir != "" {
		fmt.Fprintf(w, "artifacts: %s (history.html, history.json, schedule.json, node logs); cluster work dir kept in %s\n", r.ArtifactsDir, r.WorkDir)
		fmt.Fprintf(w, "replay: %s\n", r.ReplayCommand)
	}
	if r.OK() {
		fmt.Fprintln(w, "result: PASS")
	} else {
		fmt.Fprintln(w, "result: FAIL")
	}
}

// WriteJSON writes the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

func describeStaleBound(d time.Duration) string {
	if d <= 0 {
		return "none: only that the value was really written"
	}
	return d.Round(time.Millisecond).String()
}
