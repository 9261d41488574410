package history

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers that build operations tersely: the tests read as timelines.
func set(client int, key, value string, call, ret int64) Op {
	return Op{ClientID: client, Kind: Set, Key: key, Value: value, Call: call, Return: ret, Outcome: OK}
}

func del(client int, key string, call, ret int64) Op {
	return Op{ClientID: client, Kind: Delete, Key: key, Call: call, Return: ret, Outcome: OK}
}

func get(client int, mode Mode, key, value string, call, ret int64) Op {
	return Op{ClientID: client, Kind: Get, Mode: mode, Key: key, Value: value, Found: true, Call: call, Return: ret, Outcome: OK}
}

func getAbsent(client int, mode Mode, key string, call, ret int64) Op {
	return Op{ClientID: client, Kind: Get, Mode: mode, Key: key, Call: call, Return: ret, Outcome: OK}
}

func unknown(op Op) Op {
	op.Outcome = Unknown
	op.Return = 0
	op.Err = "timed out"
	return op
}

func failed(op Op) Op {
	op.Outcome = Failed
	op.Err = "not leader"
	return op
}

func TestCheckLinearizability(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want Verdict
	}{
		{"empty history", nil, Linearizable},
		{"read after write sees it", []Op{
			set(0, "x", "1", 0, 10),
			get(1, ModeLease, "x", "1", 20, 30),
		}, Linearizable},
		{"read after write misses it", []Op{
			set(0, "x", "1", 0, 10),
			getAbsent(1, ModeLease, "x", 20, 30),
		}, Violation},
		{"read after overwrite returns the old value", []Op{
			set(0, "x", "1", 0, 10),
			set(0, "x", "2", 20, 30),
			get(1, ModeIndex, "x", "1", 40, 50),
		}, Violation},
		{"concurrent read may see the old value", []Op{
			set(0, "x", "1", 0, 10),
			set(0, "x", "2", 20, 30),
			get(1, ModeIndex, "x", "1", 25, 50),
		}, Linearizable},
		{"concurrent read may see the new value", []Op{
			set(0, "x", "1", 0, 10),
			set(0, "x", "2", 20, 30),
			get(1, ModeLog, "x", "2", 15, 22),
		}, Linearizable},
		{"reads go back in time", []Op{
			set(0, "x", "1", 0, 10),
			set(0, "x", "2", 20, 100),
			get(1, ModeLease, "x", "2", 30, 40),
			get(2, ModeLease, "x", "1", 50, 60),
		}, Violation},
		{"closed intervals: touching operations are concurrent", []Op{
			set(0, "x", "1", 0, 10),
			getAbsent(1, ModeLease, "x", 10, 20),
		}, Linearizable},
		{"delete then read sees nothing", []Op{
			set(0, "x", "1", 0, 10),
			del(0, "x", 20, 30),
			getAbsent(1, ModeLease, "x", 40, 50),
		}, Linearizable},
		{"delete then read still sees the value", []Op{
			set(0, "x", "1", 0, 10),
			del(0, "x", 20, 30),
			get(1, ModeLease, "x", "1", 40, 50),
		}, Violation},
		{"read of a value never written", []Op{
			get(1, ModeLease, "x", "ghost", 0, 10),
		}, Violation},
		{"read of a value written only after the read returned", []Op{
			get(1, ModeLease, "x", "1", 0, 10),
			set(0, "x", "1", 20, 30),
		}, Violation},
		{"unknown write may take effect late", []Op{
			unknown(set(0, "x", "1", 0, 0)),
			getAbsent(1, ModeLease, "x", 100, 110),
			get(1, ModeLease, "x", "1", 1000, 1010),
		}, Linearizable},
		{"unknown write may never take effect", []Op{
			unknown(set(0, "x", "1", 0, 0)),
			getAbsent(1, ModeLease, "x", 100, 110),
		}, Linearizable},
		{"unknown write cannot be undone once seen", []Op{
			unknown(set(0, "x", "1", 0, 0)),
			get(1, ModeLease, "x", "1", 100, 110),
			getAbsent(1, ModeLease, "x", 200, 210),
		}, Violation},
		{"unknown write cannot take effect before its call", []Op{
			get(1, ModeLease, "x", "1", 0, 10),
			unknown(set(0, "x", "1", 20, 0)),
		}, Violation},
		{"failed write is never seen", []Op{
			failed(set(0, "x", "1", 0, 10)),
			get(1, ModeLease, "x", "1", 20, 30),
		}, Violation},
		{"unknown and failed reads constrain nothing", []Op{
			set(0, "x", "1", 0, 10),
			unknown(get(1, ModeLease, "x", "", 20, 0)),
			failed(getAbsent(1, ModeLease, "x", 20, 30)),
		}, Linearizable},
		{"stale read is not held to linearizability", []Op{
			set(0, "x", "1", 0, 10),
			set(0, "x", "2", 20, 30),
			get(1, ModeStale, "x", "1", 40, 50),
		}, Linearizable},
		{"stale read of a value never written", []Op{
			set(0, "x", "1", 0, 10),
			get(1, ModeStale, "x", "2", 40, 50),
		}, Violation},
		{"stale read of a value written after it returned", []Op{
			get(1, ModeStale, "x", "1", 0, 10),
			set(0, "x", "1", 20, 30),
		}, Violation},
		{"stale read of a value being written", []Op{
			set(0, "x", "1", 5, 30),
			get(1, ModeStale, "x", "1", 0, 10),
		}, Linearizable},
		{"stale read of the initial absence", []Op{
			set(0, "x", "1", 0, 10),
			getAbsent(1, ModeStale, "x", 40, 50),
		}, Linearizable},
		{"keys are independent", []Op{
			set(0, "x", "1", 0, 10),
			set(0, "y", "2", 20, 30),
			getAbsent(1, ModeLease, "x", 40, 50),
		}, Violation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Check(tt.ops, 10*time.Second)
			if res.Verdict != tt.want {
				t.Fatalf("verdict %s, want %s\n%s", res.Verdict, tt.want, &res)
			}
		})
	}
}

func TestCheckNamesTheIllegalKey(t *testing.T) {
	ops := []Op{
		set(0, "fine", "1", 0, 10),
		get(1, ModeLease, "fine", "1", 20, 30),
		set(0, "broken", "1", 0, 10),
		set(0, "broken", "2", 20, 30),
		get(1, ModeLease, "broken", "1", 40, 50),
	}
	res := Check(ops, 10*time.Second)
	if res.Verdict != Violation {
		t.Fatalf("verdict %s, want violation", res.Verdict)
	}
	if len(res.IllegalKeys) != 1 || res.IllegalKeys[0] != "broken" {
		t.Fatalf("illegal keys %q, want [broken]", res.IllegalKeys)
	}
	if res.Checked != len(ops) {
		t.Fatalf("checked %d operations, want %d", res.Checked, len(ops))
	}
	if !strings.Contains(res.String(), `"broken"`) {
		t.Fatalf("summary does not name the key:\n%s", &res)
	}
	if len(res.Anomalies) != 1 || !strings.Contains(res.Anomalies[0], `get(broken) lease -> "1"`) || !strings.Contains(res.Anomalies[0], `set(broken, "2")`) {
		t.Fatalf("anomalies %q do not name the stale read and the write that replaced its value", res.Anomalies)
	}
	if len(res.Culprit) == 0 || !strings.Contains(res.Culprit[0], `get(broken) lease -> "1"`) {
		t.Fatalf("culprit %q, want the stale read first", res.Culprit)
	}
}

// TestCulpritWithoutASingleStaleRead: two readers see two concurrent writes in opposite
// orders. No read alone returned a value that was certainly replaced, but together they
// have no linearization; the culprit is the read that completes the contradiction.
func TestCulpritWithoutASingleStaleRead(t *testing.T) {
	ops := []Op{
		set(0, "x", "a", 0, 100),
		set(1, "x", "b", 0, 100),
		get(2, ModeIndex, "x", "a", 10, 20),
		get(2, ModeIndex, "x", "b", 30, 40),
		get(3, ModeIndex, "x", "b", 10, 20),
		get(3, ModeIndex, "x", "a", 50, 60),
	}
	res := Check(ops, 10*time.Second)
	if res.Verdict != Violation {
		t.Fatalf("verdict %s, want violation", res.Verdict)
	}
	if len(res.Anomalies) != 0 {
		t.Fatalf("anomalies %q, want none: no read alone is stale", res.Anomalies)
	}
	if len(res.Culprit) == 0 || !strings.Contains(res.Culprit[0], `c3 get(x) index -> "a" [50, 60]`) {
		t.Fatalf("culprit %q, want c3's second read", res.Culprit)
	}
	// Without that read the rest is linearizable.
	if res := Check(ops[:5], 10*time.Second); !res.OK() {
		t.Fatalf("the history without the culprit: %s", &res)
	}
}

func TestStaleBound(t *testing.T) {
	// "1" is overwritten for certain at 30 (the second write is called after the first
	// returned). A stale read called at 100 may return "1" only if the bound reaches back to
	// 30.
	ops := []Op{
		set(0, "x", "1", 0, 10),
		set(0, "x", "2", 20, 30),
		get(1, ModeStale, "x", "1", 100, 110),
	}
	if res := CheckWith(ops, Options{StaleBound: 80}); res.Verdict != Linearizable {
		t.Fatalf("bound 80: verdict %s, want linearizable\n%s", res.Verdict, &res)
	}
	res := CheckWith(ops, Options{StaleBound: 50})
	if res.Verdict != Violation || len(res.Stale) != 1 {
		t.Fatalf("bound 50: verdict %s with %d stale violations, want one\n%s", res.Verdict, len(res.Stale), &res)
	}
	if !strings.Contains(res.Stale[0].Reason, "overwritten") {
		t.Fatalf("reason %q does not say the value was overwritten", res.Stale[0].Reason)
	}

	// Writes that overlap may be ordered either way, so the first may still be current.
	overlapping := []Op{
		set(0, "x", "1", 0, 10),
		set(2, "x", "2", 5, 30),
		get(1, ModeStale, "x", "1", 100, 110),
	}
	if res := CheckWith(overlapping, Options{StaleBound: 1}); res.Verdict != Linearizable {
		t.Fatalf("overlapping writes: verdict %s, want linearizable\n%s", res.Verdict, &res)
	}

	// The initial absence ends for certain when the first write returns.
	absent := []Op{
		set(0, "x", "1", 0, 10),
		getAbsent(1, ModeStale, "x", 100, 110),
	}
	if res := CheckWith(absent, Options{StaleBound: 50}); res.Verdict != Violation {
		t.Fatalf("absent after bound: verdict %s, want violation", res.Verdict)
	}
	// A delete makes absence current again.
	deleted := append(absent, del(0, "x", 20, 30))
	if res := CheckWith(deleted, Options{StaleBound: 50}); res.Verdict != Linearizable {
		t.Fatalf("absent after delete: verdict %s, want linearizable\n%s", res.Verdict, &res)
	}
}

func TestCheckRejectsMalformedHistories(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		want string
	}{
		{"return before call", set(0, "x", "1", 10, 5), "before its call"},
		{"unknown kind", Op{Kind: 9, Key: "x", Outcome: OK}, "unknown kind"},
		{"unknown mode", Op{Kind: Get, Mode: 9, Key: "x", Outcome: OK}, "unknown read mode"},
		{"negative client", set(-1, "x", "1", 0, 5), "negative client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Check([]Op{tt.op}, time.Second)
			if res.Verdict != Invalid {
				t.Fatalf("verdict %s, want invalid", res.Verdict)
			}
			if !strings.Contains(strings.Join(res.Problems, "\n"), tt.want) {
				t.Fatalf("problems %q do not mention %q", res.Problems, tt.want)
			}
			if err := res.WriteVisualization(filepath.Join(t.TempDir(), "v.html")); err == nil {
				t.Fatal("visualizing a malformed history succeeded")
			}
		})
	}
}

func TestWriteVisualizationOfAViolation(t *testing.T) {
	ops := []Op{
		set(0, "x", "1", 0, 10),
		set(0, "x", "2", 20, 30),
		get(1, ModeLease, "x", "1", 40, 50),
		unknown(set(2, "x", "3", 45, 0)),
	}
	res := Check(ops, 10*time.Second)
	if res.Verdict != Violation {
		t.Fatalf("verdict %s, want violation", res.Verdict)
	}
	path := filepath.Join(t.TempDir(), "history.html")
	if err := res.WriteVisualization(path); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<html", `get(x) -\u003e \"1\"`, "lease"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("visualization lacks %q", want)
		}
	}
	if err := res.WriteVisualization(filepath.Join(t.TempDir(), "no-such-dir", "v.html")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestRecorderFromManyGoroutines(t *testing.T) {
	var clock struct {
		sync.Mutex
		now int64
	}
	rec := NewRecorder(func() int64 {
		clock.Lock()
		defer clock.Unlock()
		clock.now++
		return clock.now
	})
	const clients, perClient = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				key := string(rune('a' + c))
				value := string(rune('A'+c)) + string(rune('0'+i%10))
				call := rec.Begin(Op{ClientID: c, Kind: Set, Key: key, Value: value})
				call.Wrote()
				read := rec.Begin(Op{ClientID: c, Kind: Get, Key: key, Mode: ModeLease})
				read.Annotate("node 1")
				read.Read(true, value, ModeIndex)
				read.Unknown(errors.New("late timeout is ignored"))
			}
		}()
	}
	wg.Wait()
	ops := rec.Ops()
	if len(ops) != clients*perClient*2 || rec.Len() != len(ops) {
		t.Fatalf("recorded %d operations, want %d", len(ops), clients*perClient*2)
	}
	for _, op := range ops {
		if op.Outcome != OK {
			t.Fatalf("%s: outcome %s, want ok (the first finish wins)", op, op.Outcome)
		}
		if op.Kind == Get && (op.Mode != ModeIndex || op.Note != "node 1") {
			t.Fatalf("%s: served-by mode or note lost", op)
		}
	}
	if res := Check(ops, 10*time.Second); !res.OK() {
		t.Fatalf("each client reads its own key after writing it, yet: %s", &res)
	}
}

func TestRecorderPendingOperationsCountAsUnknown(t *testing.T) {
	now := int64(0)
	rec := NewRecorder(func() int64 { now += 10; return now })
	rec.Begin(Op{Kind: Set, Key: "x", Value: "1"}) // never answered: the client crashed
	read := rec.Begin(Op{Kind: Get, Key: "x"})
	read.Read(true, "1", ModeLease)
	failedWrite := rec.Begin(Op{Kind: Set, Key: "x", Value: "2"})
	failedWrite.Fail(errors.New("not leader"))

	ops := rec.Ops()
	if ops[0].Outcome != Pending || ops[2].Outcome != Failed || ops[2].Err != "not leader" {
		t.Fatalf("outcomes %s, %s (%q): want pending, failed", ops[0].Outcome, ops[2].Outcome, ops[2].Err)
	}
	if res := Check(ops, time.Second); !res.OK() {
		t.Fatalf("a pending write may have taken effect: %s", &res)
	}
	// The failed write must not be observed.
	seen := rec.Begin(Op{Kind: Get, Key: "x"})
	seen.Read(true, "2", ModeLease)
	if res := Check(rec.Ops(), time.Second); res.Verdict != Violation {
		t.Fatalf("reading a failed write's value: verdict %s, want violation", res.Verdict)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	ops := []Op{
		set(0, "x", "1", 0, 10),
		unknown(del(1, "x", 5, 0)),
		get(2, ModeStale, "x", "1", 20, 30),
	}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, ops); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(ops) {
		t.Fatalf("read %d operations back, want %d", len(back), len(ops))
	}
	for i := range ops {
		if !reflect.DeepEqual(back[i], ops[i]) {
			t.Errorf("op %d: read back %s, want %s", i, back[i], ops[i])
		}
	}
	if _, err := ReadJSON(strings.NewReader("[{")); err == nil || !strings.Contains(err.Error(), "history json") {
		t.Fatalf("truncated json: error %v, want one naming the history", err)
	}
}
