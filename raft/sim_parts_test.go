package raft

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/history"
)

// Tests of the simulator's own parts: a simulator that is wrong about time, links or
// determinism would prove nothing about the core.

// TestSimulationIsDeterministic: a seed is a complete description of a run.
func TestSimulationIsDeterministic(t *testing.T) {
	for _, seed := range []int64{3, 17, 42} {
		a := newSimulation(randomParams(seed), nil)
		a.run()
		b := newSimulation(randomParams(seed), nil)
		b.run()
		if a.stats != b.stats {
			t.Fatalf("seed %d: two runs differ:\n  %s\n  %s", seed, a.stats, b.stats)
		}
		if !reflect.DeepEqual(a.rec.Ops(), b.rec.Ops()) {
			t.Fatalf("seed %d: same stats but different histories", seed)
		}
		if a.stats.ops == 0 || a.stats.events < 1000 {
			t.Fatalf("seed %d: a run that does nothing proves nothing: %s", seed, a.stats)
		}
	}
}

// TestNodeClock: local and true time convert both ways at any rate within the bound, and the
// drift bound holds between the extreme rates the simulator draws.
func TestNodeClock(t *testing.T) {
	for _, c := range []nodeClock{
		{offset: 5 * time.Second, rate: 1},
		{offset: 17 * time.Second, rate: 0.9},
		{offset: 3 * time.Second, rate: 1.1},
	} {
		for _, tt := range []time.Duration{0, 1, 999, time.Millisecond, 3*time.Hour + 7} {
			local := c.local(tt)
			back := c.trueAt(local)
			if back > tt || c.local(back) < local {
				t.Fatalf("clock %+v: true %v reads %v, which trueAt maps to %v", c, tt, local, back)
			}
			if back > 0 && c.local(back-1) >= local {
				t.Fatalf("clock %+v: trueAt(%v) = %v is not the earliest", c, local, back)
			}
		}
		if got := c.trueAt(c.offset - time.Second); got != 0 {
			t.Fatalf("a reading before the clock started maps to %v, want 0", got)
		}
	}
	for _, drift := range []float64{0.001, 0.01, 0.2} {
		slow, fast := 1-drift/2, 1+drift/2
		if fast/slow >= 1/(1-drift) {
			t.Fatalf("drift %v: rates %v and %v differ by %v, beyond the bound %v", drift, slow, fast, fast/slow, 1/(1-drift))
		}
	}
}

func TestRTTMatrix(t *testing.T) {
	m, err := readRTTMatrix("testdata/rtt-5-regions.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.regions) != 5 || len(m.rtt) != 5 {
		t.Fatalf("%d regions, %d rows; want 5 and 5", len(m.regions), len(m.rtt))
	}
	for i := range m.rtt {
		if m.rtt[i][i] != 0 {
			t.Errorf("%s to itself: %v", m.regions[i], m.rtt[i][i])
		}
		for j := range m.rtt {
			if i != j && (m.rtt[i][j] <= 0 || m.rtt[i][j] != m.rtt[j][i]) {
				t.Errorf("%s↔%s: %v and %v", m.regions[i], m.regions[j], m.rtt[i][j], m.rtt[j][i])
			}
		}
	}
	dir := t.TempDir()
	for name, text := range map[string]string{
		"short row":    "region,a,b\na,0,1\nb,1\n",
		"wrong order":  "region,a,b\nb,0,1\na,1,0\n",
		"negative rtt": "region,a,b\na,0,-1\nb,1,0\n",
		"not a number": "region,a,b\na,0,x\nb,1,0\n",
		"header only":  "region,a,b\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".csv")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readRTTMatrix(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming %s", name, err, path)
		}
	}
}

func TestKVOpCodec(t *testing.T) {
	for _, op := range []kvOp{
		{kind: history.Set, key: "k0", value: "c1.7"},
		{kind: history.Delete, key: "k1"},
		{kind: history.Get, key: "k2", value: "read c3.9"},
	} {
		back, err := decodeOp(op.encode())
		if err != nil || back != op {
			t.Errorf("%+v came back as %+v, %v", op, back, err)
		}
	}
	for _, bad := range []string{"", "S", "Xk\x00v", "Skey-without-terminator"} {
		if _, err := decodeOp([]byte(bad)); err == nil {
			t.Errorf("decodeOp(%q) accepted it", bad)
		}
	}
}
