package compare

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/client/bench"
)

func row(name string, opsPerSec float64, p50, p99 time.Duration) bench.Row {
	return bench.Row{Name: name, Ops: int64(opsPerSec * 5), OpsPerSec: opsPerSec, P50: p50, P99: p99, Elapsed: 5 * time.Second}
}

func report(rows ...bench.Row) bench.Report {
	return bench.Report{Rows: rows, Elapsed: 6 * time.Second}
}

func workload(t *testing.T, name string) Workload {
	t.Helper()
	for _, w := range DefaultWorkloads() {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("no workload %q", name)
	return Workload{}
}

const ms = time.Millisecond

// loopbackResults is a made-up loopback run: georaft ahead on writes at c64 and on lease
// reads, behind on p99 at c1.
func loopbackResults(t *testing.T) []WorkloadResult {
	return []WorkloadResult{
		{Workload: workload(t, WriteC1),
			Georaft: SystemRun{Report: report(row(bench.WriteRow, 500, 2*ms, 9*ms))},
			Etcd:    SystemRun{Report: report(row(bench.WriteRow, 400, 2500*time.Microsecond, 6*ms))}},
		{Workload: workload(t, WriteC64),
			Georaft: SystemRun{Report: report(row(bench.WriteRow, 12000, 5*ms, 15*ms))},
			Etcd:    SystemRun{Report: report(row(bench.WriteRow, 6000, 9*ms, 20*ms))}},
		{Workload: workload(t, LinReadC1),
			Georaft: SystemRun{Report: report(row(GeoraftLease, 4000, 200*time.Microsecond, ms), row(GeoraftIndex, 1000, ms, 3*ms))},
			Etcd:    SystemRun{Report: report(row(EtcdLinearizable, 1500, 600*time.Microsecond, 2*ms))}},
		{Workload: workload(t, LinReadC64),
			Georaft: SystemRun{Report: report(row(GeoraftLease, 26000, 2*ms, 6*ms), row(GeoraftIndex, 14000, 4*ms, 9*ms))},
			Etcd:    SystemRun{Report: report(row(EtcdLinearizable, 13000, 4*ms, 10*ms))}},
		{Workload: workload(t, LocalRead64),
			Georaft: SystemRun{Report: report(row(GeoraftStale, 30000, 2*ms, 5*ms))},
			Etcd:    SystemRun{Report: report(row(EtcdSerializable, 17000, 3*ms, 8*ms))}},
	}
}

func TestRatiosAreGeoraftOverEtcd(t *testing.T) {
	var rows []RatioRow
	for _, wr := range loopbackResults(t) {
		rows = append(rows, Ratios(EnvLoopback, wr)...)
	}
	w, ok := FindRatio(rows, EnvLoopback, WriteC64, "write / put")
	if !ok {
		t.Fatal("no write c64 ratio row")
	}
	if w.Throughput != 2 || abs(w.P50-5.0/9) > 1e-9 {
		t.Errorf("write c64: throughput %v p50 %v, want 2 and 5/9", w.Throughput, w.P50)
	}
	if w.P99 != 0.75 {
		t.Errorf("write c64 p99 ratio %v, want 0.75", w.P99)
	}
	lease, ok1 := FindRatio(rows, EnvLoopback, LinReadC1, "lease / linearizable")
	index, ok2 := FindRatio(rows, EnvLoopback, LinReadC1, "index / linearizable")
	if !ok1 || !ok2 {
		t.Fatal("linearizable read c1 must give a lease and an index row")
	}
	// Both compare against the same etcd row.
	if lease.Etcd != index.Etcd || lease.Etcd.Row != EtcdLinearizable {
		t.Errorf("lease and index rows compare against %+v and %+v, want etcd's linearizable row twice", lease.Etcd, index.Etcd)
	}
	if got, want := lease.P50, 200.0/600; abs(got-want) > 1e-9 {
		t.Errorf("lease p50 ratio %v, want %v", got, want)
	}
	if index.Throughput >= 1 || lease.Throughput <= 1 {
		t.Errorf("throughput ratios: lease %v (want > 1), index %v (want < 1)", lease.Throughput, index.Throughput)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func TestRatioIsZeroWhenASideMeasuredNothing(t *testing.T) {
	wr := WorkloadResult{Workload: workload(t, WriteC1),
		Georaft: SystemRun{Report: report(row(bench.WriteRow, 100, ms, 2*ms))},
		Etcd:    SystemRun{Report: report(bench.Row{Name: bench.WriteRow, Errors: 7})}}
	r := Ratios(EnvLoopback, wr)[0]
	if r.Throughput != 0 || r.P50 != 0 || r.P99 != 0 {
		t.Errorf("ratios against an empty etcd row: %+v, want zeros", r)
	}
	if r.Etcd.Errors != 7 {
		t.Errorf("etcd errors %d, want 7 carried into the row", r.Etcd.Errors)
	}
	targets := EvaluateTargets(Ratios(EnvLoopback, wr), nil, nil)
	for _, tg := range targets {
		if tg.Met {
			t.Errorf("target %q met with no etcd measurement", tg.Name)
		}
	}
}

func verdicts(targets []Target) map[string]string {
	m := map[string]string{}
	for _, t := range targets {
		m[t.Env+"/"+t.Name] = targetVerdict(t)
	}
	return m
}

func TestLoopbackTargets(t *testing.T) {
	var rows []RatioRow
	for _, wr := range loopbackResults(t) {
		rows = append(rows, Ratios(EnvLoopback, wr)...)
	}
	got := verdicts(EvaluateTargets(rows, nil, nil))
	want := map[string]string{
		"loopback/write throughput, c64":                           "met",    // 2×
		"loopback/write p99, c64":                                  "met",    // 15 vs 20 ms
		"loopback/write p99, c1":                                   "MISSED", // 9 vs 6 ms
		"loopback/lease-read throughput vs etcd linearizable, c64": "met",    // 2×
		"loopback/lease-read throughput vs etcd serializable, c64": "met",    // 26k vs 17k
		"loopback/lease-read p50 vs etcd linearizable, c1":         "met",    // 1/3
		// Issue 18's, stricter.
		"loopback/issue 18: write throughput, c64":                           "met",          // 2×
		"loopback/issue 18: write p50, c1":                                   "met",          // 0.8×
		"loopback/issue 18: index-read p50 vs etcd linearizable, c1":         "MISSED",       // 1 vs 0.6 ms
		"loopback/issue 18: index-read throughput vs etcd linearizable, c64": "MISSED",       // 1.08×
		"loopback/issue 18: lease-read throughput vs etcd linearizable, c64": "MISSED",       // 2×, not 2.5×
		"loopback/issue 18: mix 90/10 write p50, c64":                        "NOT MEASURED", // no mix workload
		"loopback/issue 18: lease-read p50, c1, vs empty gRPC call":          "NOT MEASURED", // no rounds given
		"loopback/issue 18: idle server CPU":                                 "NOT MEASURED",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("targets %v, want exactly %d loopback targets", got, len(want))
	}
}

func TestGeoTargets(t *testing.T) {
	model := &GeoModel{ClientLeaderRTT: ms, QuorumRTT: 36 * ms, Fsync: ms}
	mk := func(leaseP50, etcdLinP50, writeP50 time.Duration) []RatioRow {
		wrs := []WorkloadResult{
			{Workload: workload(t, LinReadC1),
				Georaft: SystemRun{Report: report(row(GeoraftLease, 500, leaseP50, 3*ms), row(GeoraftIndex, 25, 38*ms, 40*ms))},
				Etcd:    SystemRun{Report: report(row(EtcdLinearizable, 25, etcdLinP50, 45*ms))}},
			{Workload: workload(t, WriteC1),
				Georaft: SystemRun{Report: report(row(bench.WriteRow, 25, writeP50, 45*ms))},
				Etcd:    SystemRun{Report: report(row(bench.WriteRow, 25, 39*ms, 45*ms))}},
		}
		var rows []RatioRow
		for _, wr := range wrs {
			rows = append(rows, Ratios(EnvGeo, wr)...)
		}
		return rows
	}
	good := verdicts(EvaluateTargets(mk(1800*time.Microsecond, 38*ms, 40*ms), model, nil))
	for k, v := range good {
		if v != "met" {
			t.Errorf("good geo run: %s %s, want met", k, v)
		}
	}
	if len(good) != 3 {
		t.Errorf("geo targets %v, want 3", good)
	}
	// Lease 2.5 ms is 1.5 ms over a 1 ms RTT; 4 ms is not 10× under 38 ms; 44 ms is 19%
	// over the 37 ms model.
	bad := verdicts(EvaluateTargets(mk(2500*time.Microsecond, 38*ms, 44*ms), model, nil))
	for _, k := range []string{"geo/lease-read p50, c1, client in the leader's region", "geo/write p50, c1"} {
		if bad[k] != "MISSED" {
			t.Errorf("%s: %q, want MISSED", k, bad[k])
		}
	}
	slow := verdicts(EvaluateTargets(mk(4*ms, 38*ms, 37*ms), model, nil))
	if v := slow["geo/linearizable-read p50 (lease) vs etcd linearizable, c1"]; v != "MISSED" {
		t.Errorf("lease 4ms vs etcd 38ms: %q, want MISSED (not 10× lower)", v)
	}
	if v := verdicts(EvaluateTargets(mk(ms, 38*ms, 37*ms), nil, nil)); len(v) != 0 {
		t.Errorf("targets without a geo model: %v, want none", v)
	}
}

func TestWorkloadsAreConsistent(t *testing.T) {
	names := map[string]bool{}
	for _, w := range DefaultWorkloads() {
		if err := w.Validate(); err != nil {
			t.Error(err)
		}
		if names[w.Name] {
			t.Errorf("workload %q twice", w.Name)
		}
		names[w.Name] = true
	}
	bad := Workload{Name: "x", Concurrency: 1, GeoraftModes: []string{GeoraftLease}, EtcdModes: []string{EtcdLinearizable},
		Pairs: []Pair{{Label: "p", Georaft: GeoraftIndex, Etcd: EtcdLinearizable}}}
	if err := bad.Validate(); err == nil {
		t.Error("a pair naming a row the workload does not produce was accepted")
	}
	// Both systems get the same engine settings.
	e := Engine{Duration: 2 * time.Second, Warmup: time.Second, Keys: 10, ValueSize: 8}
	w := workload(t, Mix90C64)
	g, c := w.Config(e, nil, w.GeoraftModes, nil), w.Config(e, nil, w.EtcdModes, nil)
	if g.Concurrency != c.Concurrency || g.WriteRatio != c.WriteRatio || g.Keys != c.Keys || g.Duration != c.Duration || g.KeyPrefix != c.KeyPrefix {
		t.Errorf("georaft and etcd configs differ beyond driver and modes: %+v vs %+v", g, c)
	}
}

func sampleResult(t *testing.T) *Result {
	res := &Result{Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Options: DefaultOptions(), CPUs: 2,
		Floors: Floors{FsyncP50: 700 * time.Microsecond, GRPCRTTP50: 110 * time.Microsecond, GRPCRTTP99: 400 * time.Microsecond, GRPCSamples: 10}}
	er := EnvResult{Name: EnvLoopback, Notes: []string{"a <note> & more"}}
	for i := range 3 {
		er.Rounds = append(er.Rounds, Round{Index: i + 1, Workloads: loopbackResults(t), GRPCFloorP50: 100 * time.Microsecond,
			IdleServerCPU: map[string]time.Duration{"georaft": 50 * time.Millisecond, "etcd": 60 * time.Millisecond}})
	}
	er.IdleServerCPU = er.medianIdle()
	res.Envs = append(res.Envs, er)
	res.Ratios = AggregateRatios(er.roundRatios())
	res.Targets = EvaluateTargets(res.Ratios, nil, res.Envs)
	return res
}

func TestOutputsRender(t *testing.T) {
	res := sampleResult(t)
	var table bytes.Buffer
	if err := res.WriteReport(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"georaft ÷ etcd", "lease / linearizable", "2.00×", "MISSED", "fsync p50 0.700ms"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, table.String())
		}
	}

	var svg bytes.Buffer
	if err := res.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}

	var c bytes.Buffer
	if err := res.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1+len(res.Ratios) {
		t.Errorf("CSV has %d records, want a header and %d rows", len(records), len(res.Ratios))
	}

	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Ratios []struct {
			Throughput float64 `json:"throughput_ratio"`
		} `json:"ratios"`
		Floors map[string]any `json:"floors"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded.Ratios) != len(res.Ratios) || decoded.Floors["fsync_p50_ms"] != 0.7 {
		t.Errorf("JSON: %d ratios (want %d), floors %v", len(decoded.Ratios), len(res.Ratios), decoded.Floors)
	}

	var md bytes.Buffer
	if err := res.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "| write c64 | write / put |") {
		t.Errorf("markdown lacks the ratio table:\n%s", md.String())
	}
}

func TestProcessCPUReadsUtimeAndStime(t *testing.T) {
	// A command name holding ") " must not shift the fields: utime=150 and stime=50 ticks.
	proc := t.TempDir()
	stat := "4242 (georaftd (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 12 0 100 0 0" + strings.Repeat(" 0", 30) + "\n"
	for pid, content := range map[string]string{"4242": stat, "4243": "4243 (x) S 1 2\n"} {
		if err := os.MkdirAll(filepath.Join(proc, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(proc, pid, "stat"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := processCPU(proc, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2*time.Second {
		t.Errorf("cpu %v, want 2s (200 ticks)", got)
	}
	if _, err := processCPU(proc, 4243); err == nil {
		t.Error("a truncated stat line was accepted")
	}
	// Spin until this process has used a clock tick of CPU.
	var self time.Duration
	for deadline := time.Now().Add(time.Minute); self <= 0 && err == nil && time.Now().Before(deadline); {
		self, err = ProcessCPU(os.Getpid())
	}
	if err != nil || self <= 0 {
		t.Errorf("own CPU time %v, %v: want a positive figure", self, err)
	}
	if load, err := LoadAvg(); err != nil || len(strings.Fields(load)) != 3 {
		t.Errorf("load average %q, %v: want three figures", load, err)
	}
}

func TestFsyncsPerWriteCountsTheWholeRun(t *testing.T) {
	run := SystemRun{Report: report(row(bench.WriteRow, 100, ms, 2*ms)), LeaderFsyncs: 1200}
	// 500 measured writes in 5 s of a 6 s run: 600 writes in all, 2 fsyncs each.
	if got := run.FsyncsPerWrite(); abs(got-2) > 1e-9 {
		t.Errorf("fsyncs per write %v, want 2", got)
	}
	run.LeaderFsyncs = -1
	if got := run.FsyncsPerWrite(); got != 0 {
		t.Errorf("unknown fsync count gave %v, want 0", got)
	}
	reads := SystemRun{Report: report(row(GeoraftLease, 100, ms, 2*ms)), LeaderFsyncs: 10}
	if got := reads.FsyncsPerWrite(); got != 0 {
		t.Errorf("a run without writes gave %v fsyncs per write, want 0", got)
	}
}

// roundOf is one made-up round: writes at c64 with the given throughputs, lease and index
// reads at c1 with the given p50s, and the round's idle CPU and gRPC floor.
func roundOf(t *testing.T, index int, gWrite, eWrite float64, leaseP50 time.Duration, floor, gIdle, eIdle time.Duration) Round {
	return Round{Index: index, GRPCFloorP50: floor,
		IdleServerCPU: map[string]time.Duration{"georaft": gIdle, "etcd": eIdle},
		Workloads: []WorkloadResult{
			{Workload: workload(t, WriteC64),
				Georaft: SystemRun{Report: report(row(bench.WriteRow, gWrite, 5*ms, 15*ms))},
				Etcd:    SystemRun{Report: report(row(bench.WriteRow, eWrite, 9*ms, 20*ms))}},
			{Workload: workload(t, LinReadC1),
				Georaft: SystemRun{Report: report(row(GeoraftLease, 4000, leaseP50, ms), row(GeoraftIndex, 1000, ms, 3*ms))},
				Etcd:    SystemRun{Report: report(row(EtcdLinearizable, 1500, 600*time.Microsecond, 2*ms))}},
		}}
}

func TestAggregateRatiosTakesTheMedianRatioAndItsSpread(t *testing.T) {
	us := time.Microsecond
	er := EnvResult{Name: EnvLoopback, Rounds: []Round{
		roundOf(t, 1, 3000, 2000, 200*us, 100*us, 0, 0), // 1.5×
		roundOf(t, 2, 9000, 3000, 200*us, 100*us, 0, 0), // 3×: the best round
		roundOf(t, 3, 4000, 2000, 200*us, 100*us, 0, 0), // 2×
	}}
	rows := AggregateRatios(er.roundRatios())
	w, ok := FindRatio(rows, EnvLoopback, WriteC64, "write / put")
	if !ok {
		t.Fatal("no write c64 row")
	}
	if w.Rounds != 3 || abs(w.Throughput-2) > 1e-9 {
		t.Errorf("throughput ratio %.3f over %d rounds, want the median 2 over 3 (not the best, 3)", w.Throughput, w.Rounds)
	}
	if abs(w.ThroughputSpread.Min-1.5) > 1e-9 || abs(w.ThroughputSpread.Max-3) > 1e-9 {
		t.Errorf("spread %+v, want 1.5–3", w.ThroughputSpread)
	}
	if w.Georaft.OpsPerSec != 4000 || w.Etcd.OpsPerSec != 2000 {
		t.Errorf("median sides %v / %v ops/s, want 4000 / 2000", w.Georaft.OpsPerSec, w.Etcd.OpsPerSec)
	}
	// A round that measured nothing does not drag the median to zero.
	rounds := er.roundRatios()
	rounds[1][0].Throughput = 0
	if w := AggregateRatios(rounds)[0]; abs(w.Throughput-1.75) > 1e-9 {
		t.Errorf("median without the empty round %.3f, want 1.75 (mean of 1.5 and 2)", w.Throughput)
	}
	var md bytes.Buffer
	res := &Result{Options: DefaultOptions(), Envs: []EnvResult{er}, Ratios: rows}
	if err := res.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "2.00× (1.50–3.00×)") {
		t.Errorf("markdown lacks the median with its spread:\n%s", md.String())
	}
}

func TestFloorAndIdleTargetsUseEachRoundsOwnFigures(t *testing.T) {
	us := time.Microsecond
	eval := func(rounds ...Round) map[string]string {
		er := EnvResult{Name: EnvLoopback, Rounds: rounds}
		er.IdleServerCPU = er.medianIdle()
		return verdicts(EvaluateTargets(AggregateRatios(er.roundRatios()), nil, []EnvResult{er}))
	}
	const floor, idle = "loopback/issue 18: lease-read p50, c1, vs empty gRPC call", "loopback/issue 18: idle server CPU"
	// The floor moves with the machine's load; the lease read moves with it: 1.5× in
	// every round, though the slow round's lease read is 3× the fast round's floor.
	got := eval(roundOf(t, 1, 1, 1, 150*us, 100*us, 40*ms, 50*ms), roundOf(t, 2, 1, 1, 300*us, 200*us, 40*ms, 50*ms),
		roundOf(t, 3, 1, 1, 150*us, 100*us, 60*ms, 50*ms))
	if got[floor] != "met" || got[idle] != "met" {
		t.Errorf("floor %q, idle %q; want both met (1.5× the floor; idle below etcd in 2 of 3 rounds)", got[floor], got[idle])
	}
	got = eval(roundOf(t, 1, 1, 1, 250*us, 100*us, 60*ms, 50*ms), roundOf(t, 2, 1, 1, 150*us, 100*us, 60*ms, 50*ms),
		roundOf(t, 3, 1, 1, 250*us, 100*us, 40*ms, 50*ms))
	if got[floor] != "MISSED" || got[idle] != "MISSED" {
		t.Errorf("floor %q, idle %q; want both missed (2.5× the floor in 2 of 3 rounds; idle above etcd in 2 of 3)", got[floor], got[idle])
	}
}
