package chaos

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

// Anomaly kinds. Every one of them fails a run.
const (
	AnomalyLinearizability = "linearizability" // porcupine found no linearization
	AnomalyStaleRead       = "stale-read"      // a stale read returned what was never, or too long ago, current
	AnomalyInconclusive    = "inconclusive"    // porcupine timed out: the history is unchecked
	AnomalyLostWrite       = "lost-write"      // an acknowledged write is missing after the full restart
	AnomalyFinalRead       = "final-read"      // a key could not be read back after the full restart
	AnomalyDivergence      = "divergence"      // replicas differ at one applied index, or never converge
	AnomalyLeaseAfterPause = "lease-after-pause"
	AnomalyCrash           = "crash"         // a node exited on its own
	AnomalyNoRecovery      = "no-recovery"   // no write succeeded after a heal before the deadline
	AnomalySlowRecovery    = "slow-recovery" // writes came back later than the stated bound
	AnomalyHarness         = "harness"       // the harness could not do what the schedule said
)

// Anomaly is one thing a run found wrong.
type Anomaly struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (a Anomaly) String() string { return a.Kind + ": " + a.Detail }

// StaleBound is how old a stale read's value may be: the configured staleness on the
// slowest clock the drift bound allows, plus slack for message delay. A node dates its
// contact with the leader by its own clock at the time it sent the message the leader
// echoes back, so the bound counts from when the leader held that state, give or take the
// one-way delays around it: the largest latency spike the generator injects is a quarter of
// the maximum election timeout, and the slack is twice that.
func StaleBound(t config.TimingConfig) time.Duration {
	slack := t.ElectionTimeoutMax / 2
	return time.Duration(float64(t.MaxStaleness)/(1-t.MaxClockDrift)) + slack
}

// RecoveryBound is the stated bound on how long after a fault heals writes succeed again:
// two election timeouts (a disrupted election and a clean one) plus a lease (the old-lease
// wait of a leader elected early).
func RecoveryBound(t config.TimingConfig) time.Duration {
	return 2*t.ElectionTimeoutMax + t.LeaseDuration
}

// checkHistory runs porcupine (via history) and turns its verdict into anomalies. A zero
// staleBound means StaleBound(t); a negative one checks only that stale reads returned
// values really written.
func checkHistory(ops []history.Op, t config.TimingConfig, timeout, staleBound time.Duration) (history.Result, []Anomaly) {
	switch {
	case staleBound == 0:
		staleBound = StaleBound(t)
	case staleBound < 0:
		staleBound = 0
	}
	res := history.CheckWith(ops, history.Options{Timeout: timeout, StaleBound: staleBound})
	var out []Anomaly
	switch res.Verdict {
	case history.Linearizable:
	case history.Inconclusive:
		out = append(out, Anomaly{AnomalyInconclusive, fmt.Sprintf("the linearizability search timed out after %s on keys %s", timeout, strings.Join(res.TimedOutKeys, ", "))})
	case history.Invalid:
		out = append(out, Anomaly{AnomalyHarness, "the recorded history is malformed: " + strings.Join(res.Problems, "; ")})
	default:
		if len(res.IllegalKeys) > 0 {
			detail := fmt.Sprintf("keys %s have no linearization", strings.Join(res.IllegalKeys, ", "))
			if len(res.Anomalies) > 0 {
				detail += ": " + strings.Join(res.Anomalies, "; ")
			}
			if len(res.Culprit) > 0 {
				detail += "; first illegal operation: " + res.Culprit[0]
			}
			out = append(out, Anomaly{AnomalyLinearizability, detail})
		}
		for _, v := range res.Stale {
			out = append(out, Anomaly{AnomalyStaleRead, v.String()})
		}
	}
	return res, out
}

// lostWrites checks the final reads (client finalClientID, after the full restart) against
// the writes of each key. The value read must be one that may still have been current at the
// end: a write (or the initial absence) that no acknowledged write certainly followed, i.e.
// none was called after it returned. Writes with an unknown outcome may have taken effect at
// any time, so they never rule a value out and can always explain it. A value that only
// acknowledged later writes can have replaced means those writes were lost.
func lostWrites(ops []history.Op) []Anomaly {
	type write struct {
		op  history.Op
		ret int64 // +inf when the outcome is unknown
	}
	writes := map[string][]write{}
	finals := map[string]history.Op{}
	finalTried := map[string]bool{}
	for _, op := range ops {
		switch {
		case op.ClientID == finalClientID && op.Kind == history.Get:
			finalTried[op.Key] = true
			if op.Outcome == history.OK {
				finals[op.Key] = op
			}
		case isWrite(op) && op.Outcome != history.Failed:
			ret := int64(math.MaxInt64)
			if op.Outcome == history.OK {
				ret = op.Return
			}
			writes[op.Key] = append(writes[op.Key], write{op, ret})
		}
	}
	var out []Anomaly
	keys := make([]string, 0, len(finalTried))
	for k := range finalTried {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		final, ok := finals[key]
		if !ok {
			out = append(out, Anomaly{AnomalyFinalRead, fmt.Sprintf("key %s could not be read back after the full restart", strconv.Quote(key))})
			continue
		}
		// followedBy lists the acknowledged writes called after t: each certainly took
		// effect after a state that was current at t.
		followedBy := func(t int64) []history.Op {
			var out []history.Op
			for _, w := range writes[key] {
				if w.op.Outcome == history.OK && w.op.Call > t {
					out = append(out, w.op)
				}
			}
			return out
		}
		explained := false
		var matched []history.Op
		var overwrittenBy []history.Op
		if !final.Found {
			// The initial absence: any acknowledged write follows it.
			if later := followedBy(math.MinInt64); len(later) == 0 {
				explained = true
			} else {
				overwrittenBy = later
			}
		}
		for _, w := range writes[key] {
			if final.Found != (w.op.Kind == history.Set || w.op.Kind == history.CAS) || (final.Found && w.op.Value != final.Value) {
				continue
			}
			matched = append(matched, w.op)
			if w.ret == math.MaxInt64 {
				explained = true
				break
			}
			later := followedBy(w.ret)
			if len(later) == 0 {
				explained = true
				break
			}
			overwrittenBy = later
		}
		if explained {
			continue
		}
		what := "not found"
		if final.Found {
			what = strconv.Quote(final.Value)
		}
		if final.Found && len(matched) == 0 {
			out = append(out, Anomaly{AnomalyLostWrite, fmt.Sprintf("key %s read back %s after the full restart, a value no write wrote", strconv.Quote(key), what)})
			continue
		}
		var lost []string
		for _, w := range overwrittenBy {
			lost = append(lost, w.String())
		}
		if len(lost) > 3 {
			lost = append(lost[len(lost)-3:], fmt.Sprintf("(and %d earlier)", len(lost)-3))
		}
		out = append(out, Anomaly{AnomalyLostWrite, fmt.Sprintf("key %s read back %s after the full restart, but acknowledged writes followed that value: %s",
			strconv.Quote(key), what, strings.Join(lost, "; "))})
	}
	return out
}

// Convergence is the state every node reported once they agreed.
type Convergence struct {
	AppliedIndex uint64        `json:"applied_index"`
	StateHash    string        `json:"state_hash"`
	Took         time.Duration `json:"took_ns"`
}

// waitConverged polls every node's Status with its state hash until all report the same
// applied index, then requires the same hash. Replicas with different hashes at the same
// index have diverged; no common index before timeout is reported too.
func (c *Cluster) waitConverged(ctx context.Context, timeout time.Duration) (Convergence, *Anomaly) {
	start := time.Now()
	deadline := start.Add(timeout)
	var last map[uint64]*georaftv1.StatusResponse
	for {
		statuses := c.Statuses(ctx, true, 2*time.Second)
		last = statuses
		ids := c.IDs()
		if len(statuses) == len(ids) {
			applied := statuses[ids[0]].GetAppliedIndex()
			same := true
			for _, st := range statuses {
				same = same && st.GetAppliedIndex() == applied
			}
			if same {
				hash := statuses[ids[0]].GetStateHash()
				for _, st := range statuses {
					if st.GetStateHash() != hash {
						return Convergence{}, &Anomaly{AnomalyDivergence, "replicas differ at applied index " +
							strconv.FormatUint(applied, 10) + ": " + describeStatuses(ids, statuses)}
					}
				}
				return Convergence{AppliedIndex: applied, StateHash: fmt.Sprintf("%016x", hash), Took: time.Since(start)}, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Convergence{}, &Anomaly{AnomalyDivergence, fmt.Sprintf("nodes did not reach a common applied index within %s: %s",
				timeout, describeStatuses(c.IDs(), last))}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describeStatuses(ids []uint64, statuses map[uint64]*georaftv1.StatusResponse) string {
	var parts []string
	for _, id := range ids {
		st, ok := statuses[id]
		if !ok {
			parts = append(parts, fmt.Sprintf("node %d: no answer", id))
			continue
		}
		parts = append(parts, fmt.Sprintf("node %d: %s term %d applied %d hash %016x", id,
			strings.TrimPrefix(st.GetRole().String(), "ROLE_"), st.GetTerm(), st.GetAppliedIndex(), st.GetStateHash()))
	}
	return strings.Join(parts, "; ")
}

// pauseAnomalies flags a paused leader that answered a lease read from its old term after a
// newer leader had been elected while it was stopped: its lease had run out on its own
// clock, which kept running while it was stopped.
func pauseAnomalies(events []Event) []Anomaly {
	var out []Anomaly
	for _, ev := range events {
		if ev.Fault.Kind != PauseLeader || !ev.TermMovedOn {
			continue
		}
		for _, p := range ev.Probes {
			if p.Served == readmode.Lease.String() && p.Term == ev.LeaderTerm {
				out = append(out, Anomaly{AnomalyLeaseAfterPause, fmt.Sprintf(
					"fault %d: node %d answered a lease read of %s in its old term %d after resuming, though a newer leader was elected while it was stopped",
					ev.Index, ev.Targets[0], strconv.Quote(p.Key), p.Term)})
			}
		}
	}
	return out
}

// recoveryAnomalies flags heals after which writes did not come back, or came back later
// than the bound.
func recoveryAnomalies(events []Event, bound time.Duration) []Anomaly {
	var out []Anomaly
	for _, ev := range events {
		switch {
		case ev.Error != "":
		case ev.Recovery < 0:
			out = append(out, Anomaly{AnomalyNoRecovery, fmt.Sprintf("fault %d (%s): no write succeeded after the heal at %s", ev.Index, ev.Fault.Kind, ev.Healed)})
		case ev.Recovery.D() > bound:
			out = append(out, Anomaly{AnomalySlowRecovery, fmt.Sprintf("fault %d (%s): first write %s after the heal, bound %s", ev.Index, ev.Fault.Kind, ev.Recovery, bound)})
		}
	}
	return out
}

// longestWriteGap is the longest time between consecutive acknowledged writes (or from
// `from`) within [from, to].
func longestWriteGap(served []Served, from, to int64) time.Duration {
	var acks []int64
	for _, s := range served {
		if s.isWrite() && s.Return >= from && s.Return <= to {
			acks = append(acks, s.Return)
		}
	}
	sort.Slice(acks, func(a, b int) bool { return acks[a] < acks[b] })
	prev := from
	var longest int64
	for _, t := range append(acks, to) {
		longest = max(longest, t-prev)
		prev = t
	}
	return time.Duration(longest)
}
