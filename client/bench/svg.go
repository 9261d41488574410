package bench

import (
	"fmt"
	"io"
	"math"

	"github.com/georaft/georaft/chart"
)

// The chart plots latency against percentile, the way HdrHistogram plots are drawn: the x
// axis stretches the tail (each "nine" gets the same width: 90%, 99%, 99.9%, 99.99%) and the
// y axis is logarithmic, so a 0.2ms lease read and a 150ms log read fit one picture. One
// colored line per row; a diamond marks a row's predicted p50.

// ColorFor is the color of row name (the i-th row) in every chart of the benchmark.
func ColorFor(name string, i int) string { return chart.ModeColor(name, i) }

// nines maps a percentile onto the x axis: 0% → 0, 90% → 1, 99% → 2, 99.9% → 3 (at most
// 99.99% → 4); 100% (the max) gets its own column to the right.
func nines(p float64) float64 {
	if p >= 100 {
		return 4.5
	}
	return math.Min(-math.Log10(1-p/100), 4)
}

// WriteSVG draws the latency distribution of every row as a standalone SVG document.
func (rep Report) WriteSVG(w io.Writer) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rep.Rows {
		for _, pt := range r.Curve {
			if pt.Latency > 0 {
				lo, hi = math.Min(lo, ms(pt.Latency)), math.Max(hi, ms(pt.Latency))
			}
		}
		if r.HasPrediction() {
			lo, hi = math.Min(lo, ms(r.Predicted)), math.Max(hi, ms(r.Predicted))
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1000
	}
	minY, maxY := math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	if maxY <= minY {
		maxY = minY * 10
	}
	few := maxY/minY <= 100 // two decades or fewer: label the 2s and 5s too
	c := chart.Chart{
		Title: "georaft bench: latency by percentile", Subtitle: rep.Summary(),
		Width: 1100, Height: 560, Plot: [4]float64{80, 70, 700, 490},
		X: chart.Axis{Scale: chart.Scale{Min: 0, Max: 100, Map: nines}, Title: "percentile of operations (each nine gets equal width)"},
		Y: chart.Axis{Scale: chart.Scale{Min: minY, Max: maxY, Log: true}, Title: "latency (log scale)",
			Ticks: chart.LogTicks(minY, maxY, func(v float64) string {
				if few || math.Abs(math.Log10(v)-math.Round(math.Log10(v))) < 1e-9 {
					return chart.Millis(v)
				}
				return ""
			})},
		LegendRight: true,
	}
	for _, tick := range []struct {
		p     float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}, {100, "max"}} {
		c.X.Ticks = append(c.X.Ticks, chart.Tick{At: tick.p, Label: tick.label})
	}
	for i, r := range rep.Rows {
		color := ColorFor(r.Name, i)
		line := chart.Line{Color: color, Width: 2.2, EndDot: true, Title: r.Name}
		for _, pt := range r.Curve {
			if pt.Latency > 0 {
				line.Points = append(line.Points, chart.Point{X: pt.Percentile, Y: ms(pt.Latency)})
			}
		}
		c.Lines = append(c.Lines, line)
		detail := []string{"no successful operations"}
		if r.Ops > 0 {
			detail = []string{fmt.Sprintf("p50 %s  p99 %s  %.0f ops/s", FormatLatency(r.P50), FormatLatency(r.P99), r.OpsPerSec)}
		}
		if r.HasPrediction() {
			pred := ms(r.Predicted)
			c.Marks = append(c.Marks, chart.Mark{At: chart.Point{X: 90, Y: pred}, Shape: chart.Guide, Color: color},
				chart.Mark{At: chart.Point{X: 50, Y: pred}, Shape: chart.Diamond, Color: color,
					Title: fmt.Sprintf("%s predicted p50 %s", r.Name, FormatLatency(r.Predicted))})
			detail = append(detail, fmt.Sprintf("predicted p50 %s (gap %s)", FormatLatency(r.Predicted), formatGap(r)))
		}
		if r.Kind == "read" && len(r.Served) > 1 {
			detail = append(detail, "served as "+formatCounts(r.Served))
		}
		c.Legend = append(c.Legend, chart.Entry{Color: color, Name: r.Name, Detail: detail})
	}
	if rep.HasPredictions() {
		c.Legend = append(c.Legend, chart.Entry{Color: "#444", Name: "model prediction of p50", Diamond: true})
	}
	return c.WriteSVG(w)
}
