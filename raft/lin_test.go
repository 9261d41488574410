package raft

import (
	"testing"
	"time"

	"github.com/georaft/georaft/history"
)

// The simulator's histories are only worth checking if a wrong answer in them would be
// caught. These tests take real simulated histories and change one answer.

// simulatedHistory runs seed on a setup with many lease reads and returns its clean history.
func simulatedHistory(t *testing.T, seed int64) []history.Op {
	t.Helper()
	p := adversarialParams(seed)
	p.faults = faultMix{}
	p.mix = opMix{set: 0.3, lease: 0.8, index: 0.1, log: 0.05, randomNode: 0.3}
	s := newSimulation(p, nil)
	s.run()
	if s.failure != nil {
		t.Fatalf("seed %d: %s: %s", seed, s.failure.kind, s.failure.msg)
	}
	ops := s.rec.Ops()
	if res := history.Check(ops, time60s); !res.OK() {
		t.Fatalf("seed %d: untouched history: %s", seed, &res)
	}
	return ops
}

const time60s = 60 * time.Second

// TestSimulatedHistoriesAreChecked turns one lease read of a real run into a read of the
// value its key held before, and one stale read into a read of a value never written: the
// checker must reject both.
func TestSimulatedHistoriesAreChecked(t *testing.T) {
	ops := simulatedHistory(t, 1)
	byMode := map[history.Mode]int{}
	for _, op := range ops {
		if op.Kind == history.Get && op.Outcome == history.OK {
			byMode[op.Mode]++
		}
	}
	if byMode[history.ModeLease] < 50 {
		t.Fatalf("only %d lease reads answered in the run (reads by mode: %v)", byMode[history.ModeLease], byMode)
	}

	t.Run("lease read of an overwritten value", func(t *testing.T) {
		tampered := append([]history.Op(nil), ops...)
		i := staleableLeaseRead(tampered)
		if i < 0 {
			t.Fatal("no lease read follows two completed writes of its key")
		}
		old := tampered[i]
		tampered[i].Value, tampered[i].Found = previousValue(tampered, i)
		res := history.Check(tampered, time60s)
		if res.Verdict != history.Violation {
			t.Fatalf("changing %s to return %q: verdict %s, want violation", old, tampered[i].Value, res.Verdict)
		}
	})
	t.Run("stale read of a value never written", func(t *testing.T) {
		tampered := append([]history.Op(nil), ops...)
		for i, op := range tampered {
			if op.Kind == history.Get && op.Outcome == history.OK {
				tampered[i].Mode = history.ModeStale
				tampered[i].Found, tampered[i].Value = true, "never written"
				break
			}
		}
		if res := history.Check(tampered, time60s); res.Verdict != history.Violation || len(res.Stale) != 1 {
			t.Fatalf("verdict %s with %d stale violations, want one", res.Verdict, len(res.Stale))
		}
	})
}

// staleableLeaseRead finds a lease read called after two writes of its key returned, the
// second called after the first returned (so the first value was certainly replaced).
func staleableLeaseRead(ops []history.Op) int {
	for i, r := range ops {
		if r.Kind != history.Get || r.Mode != history.ModeLease || r.Outcome != history.OK {
			continue
		}
		if v, _ := previousValue(ops, i); v != "" {
			return i
		}
	}
	return -1
}

// previousValue is a value of read i's key certainly replaced before read i was called: the
// value of a Set w1 such that another write w2 was called after w1 returned and returned
// before the read was called. "" if none.
func previousValue(ops []history.Op, i int) (string, bool) {
	r := ops[i]
	for _, w1 := range ops {
		if w1.Key != r.Key || w1.Kind != history.Set || w1.Outcome != history.OK || w1.Value == r.Value {
			continue
		}
		for _, w2 := range ops {
			if w2.Key == r.Key && (w2.Kind == history.Set || w2.Kind == history.Delete) && w2.Outcome == history.OK &&
				w2.Call > w1.Return && w2.Return < r.Call && w2.Value != w1.Value {
				return w1.Value, true
			}
		}
	}
	return "", false
}
