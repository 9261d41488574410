package chaos

import (
	"cmp"
	"context"
	"slices"

	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/history"
)

// TestMembershipChangesUnderLoad changes the membership of five real processes under the
// porcupine-checked workload (writes, lease, index, log and stale reads, ranges, CAS): a new
// node replaces a follower, then the leader, then a follower while the leader is killed -9
// mid-change, then the cluster grows to six voters and shrinks back. Every change must leave
// the history linearizable, lose no acknowledged write across a kill -9 of the whole cluster,
// converge, and keep writes and lease reads flowing (their longest gaps are logged: a
// replacement of the leader costs one leader change, the others none).
func TestMembershipChangesUnderLoad(t *testing.T) {
	const seed = 20261207
	var faults []Fault
	for i, v := range []string{"follower", "leader", "kill-mid", "add-remove"} {
		e := LANTiming.ElectionTimeoutMax
		faults = append(faults, Fault{Kind: ReplaceNode, Variant: v, Pick: uint64(i + 1), Hold: Duration(e)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		SetupOptions: SetupOptions{Georaftd: georaftd(t), WorkDir: t.TempDir(), Log: &kittest.Log{T: t}},
		Schedule:     &Schedule{Seed: seed, Faults: faults},
		ArtifactsDir: t.TempDir(),
		CheckTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	var summary strings.Builder
	rep.WriteSummary(&summary)
	t.Log("\n" + summary.String())
	if !rep.OK() {
		t.Errorf("the run found %d anomalies (artifacts in %s; replay: %s)", len(rep.Anomalies), rep.ArtifactsDir, rep.ReplayCommand)
	}
	if rep.Faults[ReplaceNode] != len(faults) {
		t.Errorf("%d membership changes injected, want %d", rep.Faults[ReplaceNode], len(faults))
	}
	for _, ev := range rep.Events {
		if ev.Error != "" {
			t.Errorf("fault %d (%s %s): %s", ev.Index, ev.Fault.Kind, ev.Fault.Variant, ev.Error)
		}
	}
	if rep.LostWrites != 0 {
		t.Errorf("%d lost writes", rep.LostWrites)
	}
	if rep.AckedWrites < 100 {
		t.Errorf("only %d writes acknowledged", rep.AckedWrites)
	}
	if rep.Converged.AppliedIndex == 0 || rep.ConvergedRestart.StateHash != rep.Converged.StateHash {
		t.Errorf("convergence before (%+v) and after (%+v) the full restart", rep.Converged, rep.ConvergedRestart)
	}
	for _, ev := range rep.Events {
		t.Logf("%-10s write gap %s, lease-read gap %s: %s", ev.Fault.Variant, ev.Unavailable,
			leaseReadGap(rep.ops, int64(ev.Start.D()), int64(ev.Recovered.D())), ev.Detail)
	}
}

// leaseReadGap is the longest time between successive reads served under a lease from just
// before from until to.
func leaseReadGap(ops []history.Op, from, to int64) Millis {
	last, gap := int64(-1), int64(0)
	for _, op := range sortedByReturn(ops) {
		if op.Kind != history.Get || op.Outcome != history.OK || op.Mode != history.ModeLease {
			continue
		}
		if op.Return < from {
			last = op.Return
			continue
		}
		if last >= 0 {
			gap = max(gap, op.Return-last)
		}
		last = op.Return
		if op.Return > to {
			break
		}
	}
	return millisOf(gap)
}

func sortedByReturn(ops []history.Op) []history.Op {
	out := make([]history.Op, 0, len(ops))
	for _, op := range ops {
		if op.Outcome == history.OK {
			out = append(out, op)
		}
	}
	slices.SortFunc(out, func(a, b history.Op) int { return cmp.Compare(a.Return, b.Return) })
	return out
}
