package chaos

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

// FailoverSample is one kill -9 of the leader under load, measured from the clients' side.
type FailoverSample struct {
	Killed    uint64 `json:"killed"`
	Term      uint64 `json:"term"`
	NewLeader uint64 `json:"new_leader"`
	KillAt    Millis `json:"kill_at_ms"`
	// WriteWindow runs from the last write acknowledged before the kill to the first
	// acknowledged after it by another node.
	WriteWindow Millis `json:"write_window_ms"`
	// LeaseWindow runs from the last read served as a lease read before the kill to the
	// first served as a lease read after it by another node.
	LeaseWindow Millis `json:"lease_window_ms"`
	// LeaseAsIndex counts lease reads served as index reads inside the lease window (the
	// new leader falls back while it waits for its lease).
	LeaseAsIndex int `json:"lease_reads_served_as_index"`
	// Complete is false when a write or a lease read is missing on either side of the kill.
	Complete bool `json:"complete"`
}

// failoverWindows measures a kill of node killed at killAt from the operations served.
func failoverWindows(served []Served, killAt int64, killed uint64) FailoverSample {
	s := FailoverSample{Killed: killed, KillAt: millisOf(killAt)}
	lastWrite, lastLease := int64(-1), int64(-1)
	firstWrite, firstLease := int64(-1), int64(-1)
	// An answer after the kill in the dead leader's term (a write it committed, answered by
	// the follower that forwarded it; a read-lease holder's read) needed no new leader: only
	// answers of a later term end the window.
	var oldTerm uint64
	for _, op := range served {
		if op.Return <= killAt {
			oldTerm = max(oldTerm, op.Term)
		}
	}
	for _, op := range served {
		isLease := op.Kind == history.Get && op.Mode == readmode.Lease
		isWrite := op.isWrite()
		if op.Return <= killAt {
			if isWrite {
				lastWrite = max(lastWrite, op.Return)
			}
			if isLease {
				lastLease = max(lastLease, op.Return)
			}
			continue
		}
		if op.Node == killed || op.Term <= oldTerm {
			continue // answered by the dying leader just before the kill, or in its term
		}
		if isWrite && (firstWrite < 0 || op.Return < firstWrite) {
			firstWrite = op.Return
			s.NewLeader = op.Node
		}
		if isLease && (firstLease < 0 || op.Return < firstLease) {
			firstLease = op.Return
		}
	}
	s.Complete = lastWrite >= 0 && lastLease >= 0 && firstWrite >= 0 && firstLease >= 0
	if !s.Complete {
		return s
	}
	s.WriteWindow = millisOf(firstWrite - lastWrite)
	s.LeaseWindow = millisOf(firstLease - lastLease)
	for _, op := range served {
		if op.Kind == history.Get && op.Asked == readmode.Lease && op.Mode == readmode.Index &&
			op.Return > lastLease && op.Return < firstLease {
			s.LeaseAsIndex++
		}
	}
	return s
}

// FailoverOptions configure a failover measurement.
type FailoverOptions struct {
	SetupOptions
	// Repeats is how many times the leader is killed (default 5).
	Repeats int
	Seed    int64
	// CheckTimeout bounds porcupine on the measurement's history.
	CheckTimeout time.Duration
}

// FailoverReport is the measurement with the configured timing it is to be read against.
type FailoverReport struct {
	Timing    config.TimingConfig `json:"timing"`
	Samples   []FailoverSample    `json:"samples"`
	Anomalies []Anomaly           `json:"anomalies"`
	Ops       int                 `json:"ops"`
	Fsync     *FsyncStats         `json:"wal_fsync"`
}

// MeasureFailover starts a cluster under load and kills its leader Repeats times, each time
// once the cluster is steady again (a leader holding its lease, writes and lease reads
// flowing), restarting the killed node and waiting for it to catch up before the next.
func MeasureFailover(ctx context.Context, opts FailoverOptions) (*FailoverReport, error) {
	if opts.Repeats <= 0 {
		opts.Repeats = 5
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 2 * time.Minute
	}
	h, err := setup(ctx, opts.SetupOptions, opts.Seed)
	if err != nil {
		return nil, err
	}
	defer h.removeWorkDir()
	defer h.close()
	rep := &FailoverReport{Timing: h.cluster.Timing, Fsync: &h.cluster.Fsync}
	for i := 0; i < opts.Repeats && ctx.Err() == nil; i++ {
		sample, err := h.killLeaderOnce(ctx)
		if err != nil {
			return nil, err
		}
		h.logf("failover %d: killed node %d (term %d); writes back after %s (new leader %d), lease reads after %s (%d lease reads served as index meanwhile)",
			i+1, sample.Killed, sample.Term, sample.WriteWindow, sample.NewLeader, sample.LeaseWindow, sample.LeaseAsIndex)
		rep.Samples = append(rep.Samples, sample)
	}
	h.work.Stop()
	ops := h.rec.Ops()
	rep.Ops = len(ops)
	_, anomalies := checkHistory(ops, h.cluster.Timing, opts.CheckTimeout, 0)
	for _, c := range h.cluster.Kit.Crashes() {
		anomalies = append(anomalies, Anomaly{AnomalyCrash, c})
	}
	rep.Anomalies = anomalies
	return rep, nil
}

// killLeaderOnce waits for a steady cluster, kills the leader and measures.
func (h *harness) killLeaderOnce(ctx context.Context) (FailoverSample, error) {
	t := h.cluster.Timing
	steadyTimeout := 10*t.ElectionTimeoutMax + 10*time.Second
	leader, term, err := h.waitSteady(ctx, steadyTimeout)
	if err != nil {
		return FailoverSample{}, err
	}
	h.cluster.scrapeFsync(ctx, leader)
	killAt := h.clock.Now()
	if err := h.cluster.Kit.Kill(leader); err != nil {
		return FailoverSample{}, err
	}
	other := func(want func(Served) bool) func(Served) bool {
		return func(s Served) bool { return s.Node != leader && want(s) }
	}
	back := steadyTimeout
	h.work.WaitServedAfter(ctx, killAt, back, other(func(s Served) bool { return s.isWrite() }))
	h.work.WaitServedAfter(ctx, killAt, back, other(func(s Served) bool { return s.Kind == history.Get && s.Mode == readmode.Lease }))
	sample := failoverWindows(h.work.Served(), killAt, leader)
	sample.Term = term
	if err := h.cluster.Start(leader); err != nil {
		return sample, err
	}
	if err := h.waitCaughtUp(ctx, leader, steadyTimeout); err != nil {
		return sample, err
	}
	if !sample.Complete {
		return sample, fmt.Errorf("failover after killing node %d: no write or no lease read served by another node within %s", leader, back)
	}
	return sample, nil
}

// waitSteady waits for a leader that holds its lease while writes and lease reads are
// being served by it.
func (h *harness) waitSteady(ctx context.Context, timeout time.Duration) (leader, term uint64, err error) {
	recent := int64(h.cluster.Timing.ElectionTimeoutMax)
	if poll(ctx, timeout, 50*time.Millisecond, func() bool {
		statuses := h.cluster.Statuses(ctx, false, time.Second)
		var ok bool
		leader, term, ok = clusterkit.AgreedLeader(statuses, len(h.cluster.IDs()))
		if !ok || len(statuses) < len(h.cluster.IDs()) || statuses[leader].GetLeaseState() != georaftv1.LeaseState_LEASE_STATE_HELD {
			return false
		}
		now := h.clock.Now()
		var write, lease bool
		for _, s := range h.work.Served() {
			if s.Return >= now-recent && s.Node == leader {
				write = write || s.isWrite()
				lease = lease || (s.Kind == history.Get && s.Mode == readmode.Lease)
			}
		}
		return write && lease
	}) {
		return leader, term, nil
	}
	return 0, 0, fmt.Errorf("the cluster did not settle (a leader with its lease serving writes and lease reads) within %s", timeout)
}

// waitCaughtUp waits until node id has applied what the leader has committed.
func (h *harness) waitCaughtUp(ctx context.Context, id uint64, timeout time.Duration) error {
	if poll(ctx, timeout, 50*time.Millisecond, func() bool {
		statuses := h.cluster.Statuses(ctx, false, time.Second)
		leader, _, ok := clusterkit.AgreedLeader(statuses, len(h.cluster.IDs()))
		st, answered := statuses[id]
		return ok && answered && st.GetAppliedIndex() >= statuses[leader].GetCommitIndex()
	}) {
		return nil
	}
	return fmt.Errorf("node %d did not catch up with the leader within %s of its restart", id, timeout)
}

// WindowStats are the minimum, median and maximum of a set of windows.
type WindowStats struct{ Min, Median, Max time.Duration }

func statsOf(ds []time.Duration) WindowStats {
	if len(ds) == 0 {
		return WindowStats{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return WindowStats{Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1]}
}

func (w WindowStats) String() string {
	r := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	return fmt.Sprintf("min %s, median %s, max %s", r(w.Min), r(w.Median), r(w.Max))
}

// WriteSummary prints the samples and their statistics next to the configured timing.
func (r *FailoverReport) WriteSummary(w io.Writer) {
	writeFailoverTable(w, r.Samples, r.Timing)
	fmt.Fprintf(w, "operations recorded: %d\n", r.Ops)
	if r.Fsync != nil {
		fmt.Fprintf(w, "machine: %s\n", r.Fsync)
	}
	if len(r.Anomalies) == 0 {
		fmt.Fprintln(w, "anomalies: 0 (history linearizable, no crash)")
	}
	for _, a := range r.Anomalies {
		fmt.Fprintf(w, "ANOMALY %s\n", a)
	}
}

func writeFailoverTable(w io.Writer, samples []FailoverSample, t config.TimingConfig) {
	fmt.Fprintf(w, "failover after kill -9 of the leader (election timeout %s-%s, lease %s; election timeout max + lease = %s):\n",
		t.ElectionTimeoutMin, t.ElectionTimeoutMax, t.LeaseDuration, t.ElectionTimeoutMax+t.LeaseDuration)
	var writes, leases []time.Duration
	for i, s := range samples {
		if !s.Complete {
			fmt.Fprintf(w, "  #%d killed node %d at %s: incomplete (no write or no lease read before/after)\n", i+1, s.Killed, s.KillAt)
			continue
		}
		fmt.Fprintf(w, "  #%d killed node %d (term %d) → node %d: writes unavailable %s, lease reads unavailable %s (%d lease reads served as index meanwhile)\n",
			i+1, s.Killed, s.Term, s.NewLeader, s.WriteWindow, s.LeaseWindow, s.LeaseAsIndex)
		writes = append(writes, s.WriteWindow.D())
		leases = append(leases, s.LeaseWindow.D())
	}
	if len(writes) == 0 {
		return
	}
	ws, ls := statsOf(writes), statsOf(leases)
	ref := t.ElectionTimeoutMax + t.LeaseDuration
	fmt.Fprintf(w, "  write unavailability:      %s  (max = %.2f × (election timeout max + lease))\n", ws, float64(ws.Max)/float64(ref))
	fmt.Fprintf(w, "  lease-read unavailability: %s  (max = %.2f × (election timeout max + lease))\n", ls, float64(ls.Max)/float64(ref))
}
