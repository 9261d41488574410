package compare

import (
	"fmt"
	"time"

	"github.com/georaft/georaft/client/bench"
)

// Environment names.
const (
	EnvLoopback = "loopback"
	EnvGeo      = "geo"
)

// Target is one goal of the issue, checked against the measurements.
type Target struct {
	Env      string
	Name     string
	Goal     string
	Measured string
	Met      bool
	// Missing is set when the rows the target needs were not measured (or measured
	// nothing); Met is then false.
	Missing bool
}

// GeoModel is the physics the emulated targets are stated against.
type GeoModel struct {
	// ClientLeaderRTT is the emulated round trip from the client to the leader.
	ClientLeaderRTT time.Duration
	// QuorumRTT is the leader's round trip to its 2nd-nearest peer (a majority of 5).
	QuorumRTT time.Duration
	Fsync     time.Duration
}

// WriteModel is the physical floor of a write from the leader's region: the quorum round
// trip plus one fsync (the follower's; the leader's overlaps the round trip).
func (m GeoModel) WriteModel() time.Duration { return m.QuorumRTT + m.Fsync }

func fmtLat(d time.Duration) string { return bench.FormatLatency(d) }

// EvaluateTargets checks every target the rows allow; geo is nil when the emulated
// environment was not run. envs give the per-round figures that are not ratio rows (idle
// CPU, the gRPC floor). Every ratio goal is judged on the median over the rounds.
func EvaluateTargets(rows []RatioRow, geo *GeoModel, envs []EnvResult) []Target {
	var out []Target
	find := func(env, workload, label string) (RatioRow, bool) {
		r, ok := FindRatio(rows, env, workload, label)
		return r, ok && r.Georaft.Ops > 0 && r.Etcd.Ops > 0
	}
	ratioTarget := func(env, name, goal string, r RatioRow, ok bool, value float64, met func(float64) bool, format string) {
		t := Target{Env: env, Name: name, Goal: goal}
		if !ok {
			t.Missing, t.Measured = true, "not measured"
		} else {
			t.Measured, t.Met = fmt.Sprintf(format, value), met(value)
			if r.Rounds > 1 {
				t.Measured += fmt.Sprintf("; median of %d rounds", r.Rounds)
			}
		}
		out = append(out, t)
	}
	// spreadTarget states a median ratio with its spread over the rounds.
	spreadTarget := func(env, name, goal string, r RatioRow, ok bool, value float64, sp Spread, met func(float64) bool, detail string) {
		t := Target{Env: env, Name: name, Goal: goal}
		if !ok {
			t.Missing, t.Measured = true, "not measured"
		} else {
			t.Measured, t.Met = fmt.Sprintf("%.2f× etcd (rounds %s; %s)", value, fmtSpread(sp), detail), met(value)
		}
		out = append(out, t)
	}
	has := func(env string) bool {
		for _, r := range rows {
			if r.Env == env {
				return true
			}
		}
		return false
	}

	if has(EnvLoopback) {
		w, ok := find(EnvLoopback, WriteC64, "write / put")
		ratioTarget(EnvLoopback, "write throughput, c64", "≥ 1.5× etcd", w, ok, w.Throughput,
			func(v float64) bool { return v >= 1.5 }, "%.2f× etcd ("+fmtOps(w.Georaft.OpsPerSec)+" vs "+fmtOps(w.Etcd.OpsPerSec)+")")
		ratioTarget(EnvLoopback, "write p99, c64", "≤ etcd's", w, ok, w.P99,
			func(v float64) bool { return v <= 1 }, "%.2f× etcd ("+fmtLat(w.Georaft.P99)+" vs "+fmtLat(w.Etcd.P99)+")")
		w1, ok1 := find(EnvLoopback, WriteC1, "write / put")
		ratioTarget(EnvLoopback, "write p99, c1", "≤ etcd's", w1, ok1, w1.P99,
			func(v float64) bool { return v <= 1 }, "%.2f× etcd ("+fmtLat(w1.Georaft.P99)+" vs "+fmtLat(w1.Etcd.P99)+")")
		l, okl := find(EnvLoopback, LinReadC64, "lease / linearizable")
		ratioTarget(EnvLoopback, "lease-read throughput vs etcd linearizable, c64", "≥ 1.5× etcd", l, okl, l.Throughput,
			func(v float64) bool { return v >= 1.5 }, "%.2f× etcd ("+fmtOps(l.Georaft.OpsPerSec)+" vs "+fmtOps(l.Etcd.OpsPerSec)+")")
		s, oks := find(EnvLoopback, LocalRead64, "stale / serializable")
		v := ratioOf(l.Georaft.OpsPerSec, s.Etcd.OpsPerSec)
		ratioTarget(EnvLoopback, "lease-read throughput vs etcd serializable, c64", "≥ 1× etcd", l, okl && oks, v,
			func(v float64) bool { return v >= 1 }, "%.2f× etcd ("+fmtOps(l.Georaft.OpsPerSec)+" vs "+fmtOps(s.Etcd.OpsPerSec)+")")
		l1, ok1l := find(EnvLoopback, LinReadC1, "lease / linearizable")
		ratioTarget(EnvLoopback, "lease-read p50 vs etcd linearizable, c1", "≤ 0.5× etcd", l1, ok1l, l1.P50,
			func(v float64) bool { return v <= 0.5 }, "%.2f× etcd ("+fmtLat(l1.Georaft.P50)+" vs "+fmtLat(l1.Etcd.P50)+")")

		// Issue 18's goals, on the median of the interleaved rounds.
		const issue = "issue 18: "
		spreadTarget(EnvLoopback, issue+"write throughput, c64", "≥ 2× etcd", w, ok, w.Throughput, w.ThroughputSpread,
			func(v float64) bool { return v >= 2 }, fmtOps(w.Georaft.OpsPerSec)+" vs "+fmtOps(w.Etcd.OpsPerSec))
		spreadTarget(EnvLoopback, issue+"write p50, c1", "≤ 0.9× etcd", w1, ok1, w1.P50, w1.P50Spread,
			func(v float64) bool { return v <= 0.9 }, fmtLat(w1.Georaft.P50)+" vs "+fmtLat(w1.Etcd.P50))
		i1, oki1 := find(EnvLoopback, LinReadC1, "index / linearizable")
		spreadTarget(EnvLoopback, issue+"index-read p50 vs etcd linearizable, c1", "≤ 1.0× etcd", i1, oki1, i1.P50, i1.P50Spread,
			func(v float64) bool { return v <= 1 }, fmtLat(i1.Georaft.P50)+" vs "+fmtLat(i1.Etcd.P50))
		i64, oki64 := find(EnvLoopback, LinReadC64, "index / linearizable")
		spreadTarget(EnvLoopback, issue+"index-read throughput vs etcd linearizable, c64", "≥ 1.2× etcd", i64, oki64, i64.Throughput, i64.ThroughputSpread,
			func(v float64) bool { return v >= 1.2 }, fmtOps(i64.Georaft.OpsPerSec)+" vs "+fmtOps(i64.Etcd.OpsPerSec))
		spreadTarget(EnvLoopback, issue+"lease-read throughput vs etcd linearizable, c64", "≥ 2.5× etcd", l, okl, l.Throughput, l.ThroughputSpread,
			func(v float64) bool { return v >= 2.5 }, fmtOps(l.Georaft.OpsPerSec)+" vs "+fmtOps(l.Etcd.OpsPerSec))
		mw, okm := find(EnvLoopback, Mix90C64, "mix writes: write / put")
		spreadTarget(EnvLoopback, issue+"mix 90/10 write p50, c64", "≤ 1.0× etcd", mw, okm, mw.P50, mw.P50Spread,
			func(v float64) bool { return v <= 1 }, fmtLat(mw.Georaft.P50)+" vs "+fmtLat(mw.Etcd.P50))
		out = append(out, floorTarget(envOf(envs, EnvLoopback)), idleTarget(envOf(envs, EnvLoopback)))
	}
	if has(EnvGeo) && geo != nil {
		l1, ok := find(EnvGeo, LinReadC1, "lease / linearizable")
		t := Target{Env: EnvGeo, Name: "lease-read p50, c1, client in the leader's region",
			Goal: fmt.Sprintf("≤ RTT to leader (%s) + 1ms", fmtLat(geo.ClientLeaderRTT))}
		if !ok {
			t.Missing, t.Measured = true, "not measured"
		} else {
			gap := l1.Georaft.P50 - geo.ClientLeaderRTT
			t.Met = gap <= time.Millisecond
			t.Measured = fmt.Sprintf("%s (%+.2fms over the RTT)", fmtLat(l1.Georaft.P50), float64(gap)/float64(time.Millisecond))
		}
		out = append(out, t)
		ratioTarget(EnvGeo, "linearizable-read p50 (lease) vs etcd linearizable, c1", "≥ 10× lower (ratio ≤ 0.10)", l1, ok, l1.P50,
			func(v float64) bool { return v > 0 && v <= 0.1 }, "%.3f× etcd ("+fmtLat(l1.Georaft.P50)+" vs "+fmtLat(l1.Etcd.P50)+")")
		w1, okw := find(EnvGeo, WriteC1, "write / put")
		model := geo.WriteModel()
		t = Target{Env: EnvGeo, Name: "write p50, c1",
			Goal: fmt.Sprintf("within 15%% of quorum RTT %s + fsync %s = %s", fmtLat(geo.QuorumRTT), fmtLat(geo.Fsync), fmtLat(model))}
		if !okw || model <= 0 {
			t.Missing, t.Measured = true, "not measured"
		} else {
			dev := float64(w1.Georaft.P50-model) / float64(model)
			t.Met = dev <= 0.15 && dev >= -0.15
			t.Measured = fmt.Sprintf("%s (%+.1f%%; etcd %s)", fmtLat(w1.Georaft.P50), 100*dev, fmtLat(w1.Etcd.P50))
		}
		out = append(out, t)
	}
	return out
}

func envOf(envs []EnvResult, name string) *EnvResult {
	for i := range envs {
		if envs[i].Name == name {
			return &envs[i]
		}
	}
	return nil
}

func fmtSpread(s Spread) string {
	return fmt.Sprintf("%.2f–%.2f×", s.Min, s.Max)
}

// floorTarget is issue 18's lease-read latency goal: at one client, a lease read's p50 at
// most twice the loopback empty-call p50 measured in the same round (the median over the
// rounds of that per-round ratio).
func floorTarget(er *EnvResult) Target {
	t := Target{Env: EnvLoopback, Name: "issue 18: lease-read p50, c1, vs empty gRPC call", Goal: "≤ 2× the empty-call p50 of the same round"}
	var ratios []float64
	var leases, floors []time.Duration
	if er != nil {
		for _, rr := range er.Rounds {
			for _, wr := range rr.Workloads {
				if wr.Workload.Name != LinReadC1 {
					continue
				}
				if row, ok := wr.Georaft.Report.Row(GeoraftLease); ok && row.Ops > 0 && rr.GRPCFloorP50 > 0 {
					ratios = append(ratios, float64(row.P50)/float64(rr.GRPCFloorP50))
					leases, floors = append(leases, row.P50), append(floors, rr.GRPCFloorP50)
				}
			}
		}
	}
	if len(ratios) == 0 {
		t.Missing, t.Measured = true, "not measured"
		return t
	}
	m, sp := spreadOf(ratios)
	t.Met = m <= 2
	t.Measured = fmt.Sprintf("%.2f× the floor (rounds %s; %s vs %s)", m, fmtSpread(sp), fmtLat(medianDuration(leases)), fmtLat(medianDuration(floors)))
	return t
}

// idleTarget is issue 18's idle goal: the five idle georaft servers use no more CPU than
// the five idle etcd members, judged on the median of the per-round ratio.
func idleTarget(er *EnvResult) Target {
	t := Target{Env: EnvLoopback, Name: "issue 18: idle server CPU", Goal: "≤ etcd's"}
	var ratios []float64
	if er != nil {
		for _, rr := range er.Rounds {
			if g, e := rr.IdleServerCPU["georaft"], rr.IdleServerCPU["etcd"]; g > 0 && e > 0 {
				ratios = append(ratios, float64(g)/float64(e))
			}
		}
	}
	if len(ratios) == 0 {
		t.Missing, t.Measured = true, "not measured"
		return t
	}
	m, sp := spreadOf(ratios)
	t.Met = m <= 1
	t.Measured = fmt.Sprintf("%.2f× etcd (rounds %s; %.1f%% vs %.1f%% of a core)", m, fmtSpread(sp),
		100*er.IdleServerCPU["georaft"].Seconds(), 100*er.IdleServerCPU["etcd"].Seconds())
	return t
}

func fmtOps(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f/s", v)
	case v >= 10:
		return fmt.Sprintf("%.1f/s", v)
	}
	return fmt.Sprintf("%.2f/s", v)
}
