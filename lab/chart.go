package lab

import (
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/georaft/georaft/chart"
	"github.com/georaft/georaft/client/bench"
)

// WriteSVG draws each client region's p50 per mode as bars on a log scale, with the
// prediction as a black tick across each bar, so the gap is visible at a glance.
func (r BenchResult) WriteSVG(w io.Writer) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, rr := range r.Regions {
		for _, row := range rr.Report.Rows {
			for _, d := range []float64{millis(row.P50), millis(row.Predicted)} {
				if d > 0 {
					lo, hi = math.Min(lo, d), math.Max(hi, d)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1000
	}
	// Room below the lowest value so a tick on it stays visible, and above the highest for
	// its label.
	minY, maxY := math.Pow(10, math.Floor(math.Log10(lo*0.7))), hi*1.5
	c := chart.Chart{
		Title: "georaft p50 latency: measured (bars) vs predicted by the RTT matrix (black ticks)",
		Subtitle: fmt.Sprintf("leader in %s; emulation x%g, intra-region RTT %v, overshoot compensation %v; log scale",
			r.LeaderRegion, r.Scale, r.IntraRegionRTT, r.Compensation),
		Width: 960, Height: 480, Plot: [4]float64{70, 60, 940, 400},
		Y: chart.Axis{Scale: chart.Scale{Min: minY, Max: maxY, Log: true},
			Ticks: chart.LogTicks(minY, maxY, func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) + " ms" })},
	}
	// One unit of x per bar, a gap of one between client regions.
	x := 0.5
	for _, rr := range r.Regions {
		start := x
		for i, row := range rr.Report.Rows {
			if row.P50 > 0 {
				c.Bars = append(c.Bars, chart.Bar{X0: x + 0.05, X1: x + 0.95, Y0: minY, Y1: millis(row.P50), Color: bench.ColorFor(row.Name, i),
					Title: fmt.Sprintf("%s from %s: p50 %.3f ms", row.Name, rr.ClientRegion, millis(row.P50)), Label: shortMillis(millis(row.P50))})
			}
			if row.HasPrediction() {
				c.Marks = append(c.Marks, chart.Mark{At: chart.Point{X: x + 0.5, Y: millis(row.Predicted)}, Shape: chart.HTick, Width: 1, Color: "black",
					Title: fmt.Sprintf("predicted %.3f ms: %s", millis(row.Predicted), row.PredictionBasis)})
			}
			c.Texts = append(c.Texts, chart.Text{At: chart.Point{X: x + 0.5, Y: minY}, DY: 16, Text: row.Name})
			x++
		}
		c.Texts = append(c.Texts, chart.Text{At: chart.Point{X: (start + x) / 2, Y: minY}, DY: 38, Size: 13, Bold: true, Text: "client in " + rr.ClientRegion})
		x++
	}
	c.X.Scale = chart.Scale{Min: 0, Max: math.Max(x-0.5, 1)}
	if s, ok := r.LeaseSpeedup(); ok {
		c.Notes = []string{fmt.Sprintf("from %s, lease reads are %.1fx faster than log reads at p50", r.LeaderRegion, s)}
	}
	return c.WriteSVG(w)
}

func shortMillis(ms float64) string {
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f", ms)
	}
	return fmt.Sprintf("%.0f", ms)
}
