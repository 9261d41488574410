package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The JSON form gives latencies in float milliseconds and times in seconds, so that any
// tool (jq, a notebook, a spreadsheet) reads it without knowing Go durations.

type jsonReport struct {
	Tool     string            `json:"tool"`
	Driver   string            `json:"driver"`
	Started  time.Time         `json:"started"`
	ElapsedS float64           `json:"elapsed_s"`
	Setup    jsonSetup         `json:"setup"`
	Labels   map[string]string `json:"labels,omitempty"`
	Rows     []jsonRow         `json:"rows"`
}

type jsonSetup struct {
	ReadModes   []string `json:"read_modes"`
	WriteRatio  float64  `json:"write_ratio"`
	WritePhase  bool     `json:"write_phase"`
	Concurrency int      `json:"concurrency"`
	Loop        string   `json:"loop"`
	Rate        float64  `json:"rate,omitempty"`
	DurationS   float64  `json:"duration_s,omitempty"`
	Ops         int64    `json:"ops,omitempty"`
	WarmupS     float64  `json:"warmup_s"`
	Keys        int      `json:"keys"`
	ValueSize   int      `json:"value_size"`
	Seed        uint64   `json:"seed"`
}

type jsonLatency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

type jsonPoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

type jsonRow struct {
	Name            string           `json:"name"`
	Kind            string           `json:"kind"`
	Ops             int64            `json:"ops"`
	Errors          int64            `json:"errors"`
	ErrorsByKind    map[string]int64 `json:"errors_by_kind"`
	ElapsedS        float64          `json:"elapsed_s"`
	OpsPerSec       float64          `json:"ops_per_sec"`
	LatencyMs       jsonLatency      `json:"latency_ms"`
	Served          map[string]int64 `json:"served"`
	PredictedP50Ms  *float64         `json:"predicted_p50_ms,omitempty"`
	GapP50Ms        *float64         `json:"gap_p50_ms,omitempty"`
	PredictionBasis string           `json:"prediction_basis,omitempty"`
	Curve           []jsonPoint      `json:"curve"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMs(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// MarshalJSON writes the report in its documented JSON shape (docs/client.md).
func (rep Report) MarshalJSON() ([]byte, error) {
	s := rep.Setup
	out := jsonReport{
		Tool: "georaft bench", Driver: rep.Driver, Started: rep.Started, ElapsedS: rep.Elapsed.Seconds(),
		Labels: rep.Labels,
		Setup: jsonSetup{ReadModes: nonNil(s.ReadModes), WriteRatio: s.WriteRatio, WritePhase: s.WritePhase,
			Concurrency: s.Concurrency, Loop: s.Loop, Rate: s.Rate, DurationS: s.Duration.Seconds(), Ops: s.Ops,
			WarmupS: s.Warmup.Seconds(), Keys: s.Keys, ValueSize: s.ValueSize, Seed: s.Seed},
		Rows: []jsonRow{},
	}
	for _, r := range rep.Rows {
		jr := jsonRow{Name: r.Name, Kind: r.Kind, Ops: r.Ops, Errors: r.Errors,
			ErrorsByKind: nonNilMap(r.ErrorsByKind), ElapsedS: r.Elapsed.Seconds(), OpsPerSec: r.OpsPerSec,
			LatencyMs: jsonLatency{Min: ms(r.Min), Mean: ms(r.Mean), P50: ms(r.P50), P90: ms(r.P90),
				P99: ms(r.P99), P999: ms(r.P999), Max: ms(r.Max)},
			Served: nonNilMap(r.Served), PredictionBasis: r.PredictionBasis, Curve: []jsonPoint{}}
		if r.HasPrediction() {
			p, g := ms(r.Predicted), ms(r.Gap())
			jr.PredictedP50Ms, jr.GapP50Ms = &p, &g
		}
		for _, pt := range r.Curve {
			jr.Curve = append(jr.Curve, jsonPoint{Percentile: pt.Percentile, Ms: ms(pt.Latency)})
		}
		out.Rows = append(out.Rows, jr)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads a report written by MarshalJSON (to redraw a chart, or compare runs).
func (rep *Report) UnmarshalJSON(data []byte) error {
	var in jsonReport
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*rep = Report{Driver: in.Driver, Started: in.Started, Elapsed: time.Duration(in.ElapsedS * float64(time.Second)),
		Labels: in.Labels,
		Setup: Setup{ReadModes: in.Setup.ReadModes, WriteRatio: in.Setup.WriteRatio, WritePhase: in.Setup.WritePhase,
			Concurrency: in.Setup.Concurrency, Loop: in.Setup.Loop, Rate: in.Setup.Rate,
			Duration: time.Duration(in.Setup.DurationS * float64(time.Second)), Ops: in.Setup.Ops,
			Warmup: time.Duration(in.Setup.WarmupS * float64(time.Second)), Keys: in.Setup.Keys,
			ValueSize: in.Setup.ValueSize, Seed: in.Setup.Seed}}
	for i, jr := range in.Rows {
		if jr.Name == "" {
			return fmt.Errorf("rows[%d].name: missing", i)
		}
		r := Row{Name: jr.Name, Kind: jr.Kind, Ops: jr.Ops, Errors: jr.Errors, ErrorsByKind: jr.ErrorsByKind,
			Elapsed: time.Duration(jr.ElapsedS * float64(time.Second)), OpsPerSec: jr.OpsPerSec,
			Min: fromMs(jr.LatencyMs.Min), Mean: fromMs(jr.LatencyMs.Mean), P50: fromMs(jr.LatencyMs.P50),
			P90: fromMs(jr.LatencyMs.P90), P99: fromMs(jr.LatencyMs.P99), P999: fromMs(jr.LatencyMs.P999),
			Max: fromMs(jr.LatencyMs.Max), Served: jr.Served, PredictionBasis: jr.PredictionBasis}
		if jr.PredictedP50Ms != nil {
			r.Predicted = fromMs(*jr.PredictedP50Ms)
		}
		for _, pt := range jr.Curve {
			r.Curve = append(r.Curve, CurvePoint{Percentile: pt.Percentile, Latency: fromMs(pt.Ms)})
		}
		rep.Rows = append(rep.Rows, r)
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (rep Report) WriteJSON(w io.Writer) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}
