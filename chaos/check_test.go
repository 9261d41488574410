package chaos

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/readmode"
)

func setOp(client int, key, value string, call, ret int64) history.Op {
	return history.Op{ClientID: client, Kind: history.Set, Key: key, Value: value, Call: call, Return: ret, Outcome: history.OK}
}

func delOp(client int, key string, call, ret int64) history.Op {
	return history.Op{ClientID: client, Kind: history.Delete, Key: key, Call: call, Return: ret, Outcome: history.OK}
}

func unknownOp(op history.Op) history.Op {
	op.Outcome, op.Return = history.Unknown, 0
	return op
}

func finalRead(key string, found bool, value string) history.Op {
	return history.Op{ClientID: finalClientID, Kind: history.Get, Mode: readmode.Log, Key: key, Found: found, Value: value,
		Call: 1000, Return: 1001, Outcome: history.OK}
}

func TestLostWrites(t *testing.T) {
	tests := []struct {
		name string
		ops  []history.Op
		lost bool
	}{
		{"last acknowledged write read back", []history.Op{
			setOp(1, "x", "a", 0, 10), setOp(1, "x", "b", 20, 30), finalRead("x", true, "b"),
		}, false},
		{"an overwritten value read back: the later write is lost", []history.Op{
			setOp(1, "x", "a", 0, 10), setOp(1, "x", "b", 20, 30), finalRead("x", true, "a"),
		}, true},
		{"concurrent writes: either may win", []history.Op{
			setOp(1, "x", "a", 0, 30), setOp(2, "x", "b", 10, 20), finalRead("x", true, "a"),
		}, false},
		{"a later write with unknown outcome may have replaced the acknowledged one", []history.Op{
			setOp(1, "x", "a", 0, 10), unknownOp(setOp(1, "x", "b", 20, 0)), finalRead("x", true, "b"),
		}, false},
		{"a write with unknown outcome may never have happened", []history.Op{
			setOp(1, "x", "a", 0, 10), unknownOp(setOp(1, "x", "b", 20, 0)), finalRead("x", true, "a"),
		}, false},
		{"an acknowledged write missing entirely", []history.Op{
			setOp(1, "x", "a", 0, 10), finalRead("x", false, ""),
		}, true},
		{"an acknowledged delete read back", []history.Op{
			setOp(1, "x", "a", 0, 10), delOp(1, "x", 20, 30), finalRead("x", false, ""),
		}, false},
		{"an acknowledged delete undone", []history.Op{
			setOp(1, "x", "a", 0, 10), delOp(1, "x", 20, 30), finalRead("x", true, "a"),
		}, true},
		{"a value nobody wrote", []history.Op{
			setOp(1, "x", "a", 0, 10), finalRead("x", true, "ghost"),
		}, true},
		{"a key never written reads back absent", []history.Op{
			finalRead("x", false, ""),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lostWrites(tt.ops)
			if (len(got) > 0) != tt.lost {
				t.Fatalf("lostWrites = %v, want lost = %v", got, tt.lost)
			}
			for _, a := range got {
				if a.Kind != AnomalyLostWrite || !strings.Contains(a.Detail, `"x"`) {
					t.Errorf("anomaly %v does not name the lost write on key x", a)
				}
			}
		})
	}
}

func TestLostWritesReportsUnreadKeys(t *testing.T) {
	ops := []history.Op{setOp(1, "x", "a", 0, 10),
		{ClientID: finalClientID, Kind: history.Get, Mode: readmode.Log, Key: "x", Call: 100, Outcome: history.Unknown, Err: "deadline"}}
	got := lostWrites(ops)
	if len(got) != 1 || got[0].Kind != AnomalyFinalRead {
		t.Fatalf("lostWrites = %v, want one final-read anomaly", got)
	}
}

func TestFailoverWindowsFromServedOperations(t *testing.T) {
	ms := func(v int64) int64 { return v * int64(time.Millisecond) }
	served := []Served{
		{Kind: history.Set, Node: 1, Term: 3, Return: ms(100)},
		{Kind: history.Get, Mode: readmode.Lease, Asked: readmode.Lease, Node: 1, Term: 3, Return: ms(105)},
		// The dying leader's last answer arrives just after the kill: not the new leader's.
		{Kind: history.Set, Node: 1, Term: 3, Return: ms(111)},
		// Answers in the dead leader's term from another node needed no election either.
		{Kind: history.Set, Node: 3, Term: 3, Return: ms(114)},
		{Kind: history.Get, Mode: readmode.Lease, Asked: readmode.Lease, Node: 3, Term: 3, Return: ms(115)},
		{Kind: history.Get, Mode: readmode.Index, Asked: readmode.Lease, Node: 2, Term: 4, Return: ms(800)},
		{Kind: history.Set, Node: 2, Term: 4, Return: ms(750)},
		{Kind: history.Get, Mode: readmode.Lease, Asked: readmode.Lease, Node: 2, Term: 4, Return: ms(900)},
	}
	s := failoverWindows(served, ms(110), 1)
	if !s.Complete || s.NewLeader != 2 {
		t.Fatalf("sample %+v: want complete with new leader 2", s)
	}
	if s.WriteWindow.D() != 650*time.Millisecond || s.LeaseWindow.D() != 795*time.Millisecond || s.LeaseAsIndex != 1 {
		t.Fatalf("windows %s / %s with %d index-served lease reads, want 650ms / 795ms with 1", s.WriteWindow, s.LeaseWindow, s.LeaseAsIndex)
	}
	if s := failoverWindows(served[:3], ms(110), 1); s.Complete {
		t.Fatalf("no operation after the kill, yet the sample is complete: %+v", s)
	}
}

func TestPauseAnomalies(t *testing.T) {
	ev := Event{Index: 3, Fault: Fault{Kind: PauseLeader}, LeaderTerm: 4, Targets: []uint64{2}, TermMovedOn: true,
		Probes: []ProbeResult{{Key: "k1", Served: "index", Term: 5}, {Key: "k2", Err: "not leader"}}}
	if got := pauseAnomalies([]Event{ev}); len(got) != 0 {
		t.Fatalf("refused and index-served probes flagged: %v", got)
	}
	ev.Probes = append(ev.Probes, ProbeResult{Key: "k3", Served: "lease", Term: 4})
	got := pauseAnomalies([]Event{ev})
	if len(got) != 1 || got[0].Kind != AnomalyLeaseAfterPause || !strings.Contains(got[0].Detail, `"k3"`) {
		t.Fatalf("a lease read from the old term after a newer election: got %v", got)
	}
	// Without a newer election the resumed leader may renew its lease in its own term.
	ev.TermMovedOn = false
	if got := pauseAnomalies([]Event{ev}); len(got) != 0 {
		t.Fatalf("lease read in an unchallenged term flagged: %v", got)
	}
}

func TestRecoveryAnomalies(t *testing.T) {
	bound := RecoveryBound(LANTiming)
	events := []Event{
		{Index: 1, Fault: Fault{Kind: Partition}, Recovery: millisOf(int64(bound / 2))},
		{Index: 2, Fault: Fault{Kind: Bridge}, Recovery: millisOf(int64(bound + time.Millisecond))},
		{Index: 3, Fault: Fault{Kind: KillLeader}, Recovery: -1},
	}
	got := recoveryAnomalies(events, bound)
	if len(got) != 2 || got[0].Kind != AnomalySlowRecovery || got[1].Kind != AnomalyNoRecovery {
		t.Fatalf("recoveryAnomalies = %v, want a slow recovery (fault 2) and none (fault 3)", got)
	}
}

func TestLongestWriteGap(t *testing.T) {
	served := []Served{{Kind: history.Set, Return: 10}, {Kind: history.Get, Return: 50}, {Kind: history.Delete, Return: 70}, {Kind: history.Set, Return: 75}}
	if got := longestWriteGap(served, 0, 100); got != 60 {
		t.Fatalf("longest gap %d, want 60 (10 → 70; reads do not count)", got)
	}
}

func TestGeneratorIsDeterministicAndRotates(t *testing.T) {
	a, b := NewGenerator(42, AllKinds, LANTiming), NewGenerator(42, AllKinds, LANTiming)
	seen := map[Kind]bool{}
	for i := range len(AllKinds) {
		fa, fb := a.Next(), b.Next()
		if fa != fb {
			t.Fatalf("fault %d differs between two generators of one seed: %+v vs %+v", i, fa, fb)
		}
		if seen[fa.Kind] {
			t.Fatalf("kind %s twice in the first round", fa.Kind)
		}
		seen[fa.Kind] = true
		if fa.Hold <= 0 {
			t.Errorf("fault %+v has no hold", fa)
		}
		if fa.Kind == PauseLeader && fa.Hold.D() <= LANTiming.LeaseDuration {
			t.Errorf("pause of the leader for %s, not past the lease %s", fa.Hold.D(), LANTiming.LeaseDuration)
		}
		if fa.Kind == ClockSkew {
			if d := fa.ClockRate - 1; d == 0 || d > LANTiming.MaxClockDrift/2 || d < -LANTiming.MaxClockDrift/2 {
				t.Errorf("clock rate %v outside 1 ± drift/2 (%v)", fa.ClockRate, LANTiming.MaxClockDrift/2)
			}
		}
	}
	other := NewGenerator(43, AllKinds, LANTiming)
	same := true
	c := NewGenerator(42, AllKinds, LANTiming)
	for range 2 * len(AllKinds) {
		same = same && other.Next() == c.Next()
	}
	if same {
		t.Fatal("seeds 42 and 43 give the same schedule")
	}
}

func TestScheduleFileRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	gen := NewGenerator(5, []Kind{ClockSkew, Latency}, LANTiming)
	want := Schedule{Seed: 5, Faults: []Fault{gen.Next(), gen.Next()}}
	path := filepath.Join(dir, "schedule.json")
	var b bytes.Buffer // as writeArtifacts writes it
	if err := clusterkit.IndentedJSON(scheduleFile{Seed: want.Seed, Faults: want.Faults, Events: []Event{{Index: 1}}})(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSchedule(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed != want.Seed || !slices.Equal(got.Faults, want.Faults) {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}

	bad := map[string]string{
		"kind":       `{"seed":1,"faults":[{"kind":"meteor","hold":"1s"}]}`,
		"hold":       `{"seed":1,"faults":[{"kind":"partition","hold":"soon"}]}`,
		"empty":      `{"seed":1,"faults":[]}`,
		"clock_rate": `{"seed":1,"faults":[{"kind":"clock-skew","hold":"1s","clock_rate":0}]}`,
		"json":       `{"seed":`,
	}
	for field, body := range bad {
		p := filepath.Join(dir, field+".json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSchedule(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v does not reject the file naming it", field, err)
		}
	}
}

func TestParseKinds(t *testing.T) {
	if k, err := ParseKinds("all"); err != nil || len(k) != len(AllKinds) {
		t.Fatalf("all: %v %v", k, err)
	}
	if k, err := ParseKinds("kill-leader, bridge"); err != nil || !slices.Equal(k, []Kind{KillLeader, Bridge}) {
		t.Fatalf("two kinds: %v %v", k, err)
	}
	if _, err := ParseKinds("kill-leader,earthquake"); err == nil || !strings.Contains(err.Error(), "earthquake") {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	raw, err := json.Marshal(Duration(1500 * time.Millisecond))
	if err != nil || string(raw) != `"1.5s"` {
		t.Fatalf("marshal: %s %v", raw, err)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"250ms"`), &d); err != nil || d.D() != 250*time.Millisecond {
		t.Fatalf("unmarshal: %v %v", d, err)
	}
	if err := json.Unmarshal([]byte(`250`), &d); err == nil {
		t.Fatal("a bare number was accepted as a duration")
	}
}

func TestPickN(t *testing.T) {
	ids := []uint64{5, 1, 3, 2, 4}
	a, b := pickN(ids, 2, 99), pickN(ids, 2, 99)
	if !slices.Equal(a, b) || len(a) != 2 || a[0] == a[1] {
		t.Fatalf("pickN not deterministic or not distinct: %v %v", a, b)
	}
	if got := pickN(ids, 9, 1); len(got) != 5 {
		t.Fatalf("pickN of more than there are: %v", got)
	}
	if got := without([]uint64{1, 2, 3}, 2); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("without: %v", got)
	}
}
