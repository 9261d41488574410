package bench

import (
	"math"
	"sort"
	"time"
)

// Report is the outcome of a run: one row per read mode, plus one for writes.
type Report struct {
	Driver  string
	Started time.Time
	Elapsed time.Duration
	Setup   Setup
	Labels  map[string]string
	Rows    []Row
}

// Setup echoes the configuration a report was measured under.
type Setup struct {
	ReadModes   []string
	WriteRatio  float64
	WritePhase  bool
	Concurrency int
	Loop        string // "closed" or "open"
	Rate        float64
	Duration    time.Duration
	Ops         int64
	Warmup      time.Duration
	Keys        int
	ValueSize   int
	Seed        uint64
}

// Row is one read mode, or the writes.
type Row struct {
	Name string
	Kind string // "read" or "write"
	// Ops counts successful operations; Errors failed ones, by kind in ErrorsByKind.
	Ops          int64
	Errors       int64
	ErrorsByKind map[string]int64
	// Elapsed is the measured time of the phases that fed this row; OpsPerSec = Ops/Elapsed.
	Elapsed   time.Duration
	OpsPerSec float64
	// Latency of successful operations.
	Min, Mean, P50, P90, P99, P999, Max time.Duration
	// Served counts reads by the mode that served them: lease reads answered as index
	// reads (a leader waiting out an older lease) show up under "index".
	Served map[string]int64
	// Predicted is a model's p50 for this row (zero when none) and PredictionBasis its
	// one-line reasoning; Gap = P50 - Predicted.
	Predicted       time.Duration
	PredictionBasis string
	// Curve is the latency at percentiles from 0 to 99.99 and 100, for charts.
	Curve []CurvePoint
}

// CurvePoint is the latency at or under which Percentile percent of operations finished.
type CurvePoint struct {
	Percentile float64
	Latency    time.Duration
}

// HasPrediction reports whether a model prediction is attached to the row.
func (r Row) HasPrediction() bool { return r.Predicted > 0 }

// Gap is the measured p50 minus the predicted one.
func (r Row) Gap() time.Duration { return r.P50 - r.Predicted }

// Row returns the row named name.
func (rep Report) Row(name string) (Row, bool) {
	for _, r := range rep.Rows {
		if r.Name == name {
			return r, true
		}
	}
	return Row{}, false
}

// HasPredictions reports whether any row carries a prediction.
func (rep Report) HasPredictions() bool {
	for _, r := range rep.Rows {
		if r.HasPrediction() {
			return true
		}
	}
	return false
}

// curvePercentiles are where the chart samples the distribution: dense on the nines.
func curvePercentiles() []float64 {
	var out []float64
	// x = log10(1/(1-p)) from 0 to 4 (99.99%) in steps of 0.05.
	for i := 0; i <= 80; i++ {
		x := float64(i) * 0.05
		out = append(out, 100*(1-math.Pow(10, -x)))
	}
	return append(out, 100)
}

func (r *runner) report(started time.Time, elapsed time.Duration) Report {
	cfg := r.cfg
	loop := "closed"
	if cfg.Rate > 0 {
		loop = "open"
	}
	rep := Report{
		Driver:  cfg.Driver.Name(),
		Started: started,
		Elapsed: elapsed,
		Labels:  cfg.Labels,
		Setup: Setup{ReadModes: cfg.ReadModes, WriteRatio: cfg.WriteRatio, WritePhase: cfg.WritePhase,
			Concurrency: cfg.Concurrency, Loop: loop, Rate: cfg.Rate, Duration: cfg.Duration, Ops: cfg.Ops,
			Warmup: cfg.Warmup, Keys: cfg.Keys, ValueSize: cfg.ValueSize, Seed: cfg.Seed},
	}
	for _, name := range r.order {
		s := r.rows[name]
		s.mu.Lock()
		row := Row{Name: name, Kind: "read", Ops: s.hist.TotalCount(), Elapsed: s.elapsed,
			ErrorsByKind: copyCounts(s.errors), Served: copyCounts(s.served)}
		if name == WriteRow {
			row.Kind = "write"
		}
		for _, n := range s.errors {
			row.Errors += n
		}
		if row.Elapsed > 0 {
			row.OpsPerSec = float64(row.Ops) / row.Elapsed.Seconds()
		}
		if row.Ops > 0 {
			us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
			row.Min = us(s.hist.Min())
			row.Mean = time.Duration(s.hist.Mean() * float64(time.Microsecond))
			row.P50 = us(s.hist.ValueAtPercentile(50))
			row.P90 = us(s.hist.ValueAtPercentile(90))
			row.P99 = us(s.hist.ValueAtPercentile(99))
			row.P999 = us(s.hist.ValueAtPercentile(99.9))
			row.Max = us(s.hist.Max())
			for _, p := range curvePercentiles() {
				row.Curve = append(row.Curve, CurvePoint{Percentile: p, Latency: us(s.hist.ValueAtPercentile(p))})
			}
		}
		s.mu.Unlock()
		rep.Rows = append(rep.Rows, row)
	}
	if cfg.Predict != nil {
		rep.Predict(cfg.Predict)
	}
	return rep
}

// Predict attaches a model's p50 prediction to every row it has one for (p50 > 0); the lab
// calls it on reports it did not run itself, Run calls it with Config.Predict.
func (rep *Report) Predict(predict func(row string) (p50 time.Duration, basis string)) {
	for i := range rep.Rows {
		p50, basis := predict(rep.Rows[i].Name)
		if p50 <= 0 {
			p50, basis = 0, ""
		}
		rep.Rows[i].Predicted, rep.Rows[i].PredictionBasis = p50, basis
	}
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sortedKeys returns m's keys, the largest count first, then by name.
func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}
