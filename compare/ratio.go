package compare

import (
	"slices"
	"time"

	"github.com/georaft/georaft/client/bench"
)

// SystemRun is one system's run of one workload.
type SystemRun struct {
	Report bench.Report
	// ServerCPU is the CPU time the system's server processes used during the run (warmup
	// included); ProxyCPU its emulation proxies'; ClientCPU the harness's (load generator
	// and client library).
	ServerCPU time.Duration
	ProxyCPU  time.Duration
	ClientCPU time.Duration
	// IdleServerCPU is the servers' CPU per second of wall time with no load (heartbeats,
	// timers), measured before the workloads; ServerCPUPerOp takes it out.
	IdleServerCPU time.Duration
	// LeaderNote is the leadership check after the run; empty when leadership held.
	LeaderNote string
	// LoadAvg is /proc/loadavg when the run started: other people's load moves the figures.
	LoadAvg string
	// LeaderFsyncs is how many WAL fsyncs the pinned leader did during the run (warmup
	// included); -1 when its metrics could not be read.
	LeaderFsyncs float64
}

// FsyncsPerWrite is the leader's WAL fsyncs per write of the run (warmup writes included
// on both sides of the ratio), 0 when the run had no writes or no fsync figure.
func (s SystemRun) FsyncsPerWrite() float64 {
	w, ok := s.Report.Row(bench.WriteRow)
	if !ok || w.Ops == 0 || s.LeaderFsyncs < 0 || s.Report.Elapsed <= 0 || w.Elapsed <= 0 {
		return 0
	}
	// Scale the measured writes up to the whole run, warmup included, at the same rate.
	writes := float64(w.Ops) * s.Report.Elapsed.Seconds() / w.Elapsed.Seconds()
	return s.LeaderFsyncs / writes
}

// Ops is the measured operations of every row.
func (s SystemRun) Ops() int64 {
	var n int64
	for _, r := range s.Report.Rows {
		n += r.Ops
	}
	return n
}

// ServerCPUPerOp is server CPU per measured operation, net of what the servers burn idle
// over the same time (at one client, heartbeats would otherwise dominate). The CPU window
// includes the warmup, so it is scaled by the measured share of the run's time.
func (s SystemRun) ServerCPUPerOp() time.Duration {
	idle := time.Duration(float64(s.IdleServerCPU) * s.Report.Elapsed.Seconds())
	return s.perOp(max(s.ServerCPU-idle, 0))
}

// ClientCPUPerOp is the harness's CPU per measured operation.
func (s SystemRun) ClientCPUPerOp() time.Duration { return s.perOp(s.ClientCPU) }

func (s SystemRun) perOp(cpu time.Duration) time.Duration {
	ops := s.Ops()
	if ops == 0 || s.Report.Elapsed <= 0 {
		return 0
	}
	measured := time.Duration(0)
	for _, r := range s.Report.Rows {
		measured = max(measured, r.Elapsed)
	}
	share := float64(measured) / float64(s.Report.Elapsed)
	if share <= 0 || share > 1 {
		share = 1
	}
	return time.Duration(float64(cpu) * share / float64(ops))
}

// WorkloadResult is one workload on both systems.
type WorkloadResult struct {
	Workload Workload
	Georaft  SystemRun
	Etcd     SystemRun
}

// Side is one system's figures in a ratio row.
type Side struct {
	Row       string
	Ops       int64
	Errors    int64
	OpsPerSec float64
	P50       time.Duration
	P99       time.Duration
	CPUPerOp  time.Duration
}

// RatioRow is georaft ÷ etcd for one pair of rows. Throughput above 1 and latency below
// 1 favour georaft. A ratio is 0 when either side measured nothing.
//
// A row of several interleaved rounds (AggregateRatios) holds the median of the rounds'
// ratios, and the min–max of those ratios as its spread; its sides hold the median of each
// figure over the rounds (so the ratio of the sides' figures need not be the median ratio).
type RatioRow struct {
	Env        string
	Workload   string
	Label      string
	Georaft    Side
	Etcd       Side
	Throughput float64
	P50        float64
	P99        float64
	// Rounds is how many rounds measured the row (1 for a single round's row).
	Rounds                                 int
	ThroughputSpread, P50Spread, P99Spread Spread
}

// Spread is the lowest and highest of a figure over the rounds; both 0 when no round
// measured it.
type Spread struct{ Min, Max float64 }

// spreadOf is the median and spread of vals, ignoring zeros (a round that measured nothing).
func spreadOf(vals []float64) (median float64, s Spread) {
	var v []float64
	for _, x := range vals {
		if x > 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, Spread{}
	}
	slices.Sort(v)
	return medianSorted(v), Spread{Min: v[0], Max: v[len(v)-1]}
}

// medianSorted is the middle value, or the mean of the two middle ones.
func medianSorted(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func medianDuration(ds []time.Duration) time.Duration {
	vals := make([]float64, len(ds))
	for i, d := range ds {
		vals[i] = float64(d)
	}
	m, _ := spreadOf(vals)
	return time.Duration(m)
}

// medianSide is one system's figures over the rounds: each figure's median, and every
// round's errors added up, so that no round's errors hide behind the median.
func medianSide(sides []Side) Side {
	if len(sides) == 0 {
		return Side{}
	}
	out := Side{Row: sides[0].Row}
	var ops, rate []float64
	var p50, p99, cpu []time.Duration
	for _, s := range sides {
		out.Errors += s.Errors
		ops = append(ops, float64(s.Ops))
		rate = append(rate, s.OpsPerSec)
		p50, p99, cpu = append(p50, s.P50), append(p99, s.P99), append(cpu, s.CPUPerOp)
	}
	m, _ := spreadOf(ops)
	out.Ops = int64(m)
	out.OpsPerSec, _ = spreadOf(rate)
	out.P50, out.P99, out.CPUPerOp = medianDuration(p50), medianDuration(p99), medianDuration(cpu)
	return out
}

// AggregateRatios folds the ratio rows of interleaved rounds (one slice per round, rows
// matched by environment, workload and label) into one row each: the median ratio and its
// spread. The order is the first round's.
func AggregateRatios(rounds [][]RatioRow) []RatioRow {
	type key struct{ env, workload, label string }
	var order []key
	byKey := map[key][]RatioRow{}
	for _, rows := range rounds {
		for _, r := range rows {
			k := key{r.Env, r.Workload, r.Label}
			if _, seen := byKey[k]; !seen {
				order = append(order, k)
			}
			byKey[k] = append(byKey[k], r)
		}
	}
	out := make([]RatioRow, 0, len(order))
	for _, k := range order {
		rows := byKey[k]
		agg := RatioRow{Env: k.env, Workload: k.workload, Label: k.label, Rounds: len(rows)}
		var g, e []Side
		var thr, p50, p99 []float64
		for _, r := range rows {
			g, e = append(g, r.Georaft), append(e, r.Etcd)
			thr, p50, p99 = append(thr, r.Throughput), append(p50, r.P50), append(p99, r.P99)
		}
		agg.Georaft, agg.Etcd = medianSide(g), medianSide(e)
		agg.Throughput, agg.ThroughputSpread = spreadOf(thr)
		agg.P50, agg.P50Spread = spreadOf(p50)
		agg.P99, agg.P99Spread = spreadOf(p99)
		out = append(out, agg)
	}
	return out
}

func sideOf(run SystemRun, row string) (Side, bool) {
	r, ok := run.Report.Row(row)
	if !ok {
		return Side{Row: row}, false
	}
	return Side{Row: row, Ops: r.Ops, Errors: r.Errors, OpsPerSec: r.OpsPerSec, P50: r.P50, P99: r.P99,
		CPUPerOp: run.ServerCPUPerOp()}, true
}

func ratioOf(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return a / b
}

// Ratios turns one workload's reports into its ratio rows, one per pair.
func Ratios(env string, wr WorkloadResult) []RatioRow {
	var rows []RatioRow
	for _, p := range wr.Workload.Pairs {
		g, _ := sideOf(wr.Georaft, p.Georaft)
		e, _ := sideOf(wr.Etcd, p.Etcd)
		r := RatioRow{
			Env: env, Workload: wr.Workload.Name, Label: p.Label, Georaft: g, Etcd: e,
			Throughput: ratioOf(g.OpsPerSec, e.OpsPerSec),
			P50:        ratioOf(float64(g.P50), float64(e.P50)),
			P99:        ratioOf(float64(g.P99), float64(e.P99)),
			Rounds:     1,
		}
		r.ThroughputSpread = Spread{r.Throughput, r.Throughput}
		r.P50Spread, r.P99Spread = Spread{r.P50, r.P50}, Spread{r.P99, r.P99}
		rows = append(rows, r)
	}
	return rows
}

// FindRatio returns the row of env, workload and pair label.
func FindRatio(rows []RatioRow, env, workload, label string) (RatioRow, bool) {
	for _, r := range rows {
		if r.Env == env && r.Workload == workload && r.Label == label {
			return r, true
		}
	}
	return RatioRow{}, false
}
