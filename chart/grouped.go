package chart

import (
	"fmt"
	"math"
	"strconv"
)

// modeColors give every read mode (and writes) one color in every chart: the benchmark's
// curves, the lab's bars, the console's.
var modeColors = map[string]string{
	"lease": "#1b9e77",
	"index": "#d95f02",
	"log":   "#7570b3",
	"stale": "#e7298a",
	"write": "#4b7bd1",
}

var spareColors = []string{"#a6761d", "#66a61e", "#e6ab02", "#666666", "#17becf", "#bcbd22"}

// ModeColor is the color of series name, the i-th of its chart: its read mode's when it is
// one, else a spare color by position.
func ModeColor(name string, i int) string {
	if c, ok := modeColors[name]; ok {
		return c
	}
	return spareColors[i%len(spareColors)]
}

// Measure is one bar of a grouped chart: a measured value in milliseconds and what a model
// predicted (0: no prediction).
type Measure struct {
	Name      string // under the bar
	Value     float64
	Predicted float64
	Color     string
	// Title and PredictionTitle are the tooltips of the bar and of its prediction's tick.
	Title, PredictionTitle string
}

// Group is bars side by side under one heading.
type Group struct {
	Name     string
	Measures []Measure
}

// MeasuredVsPredicted draws groups of bars on a logarithmic millisecond axis, each bar
// labelled with its value and crossed by a black tick at its prediction, so the gap between
// what was measured and what physics allows is seen at a glance.
func MeasuredVsPredicted(title, subtitle string, groups []Group, notes []string) Chart {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, m := range g.Measures {
			for _, v := range []float64{m.Value, m.Predicted} {
				if v > 0 {
					lo, hi = math.Min(lo, v), math.Max(hi, v)
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
	c := Chart{
		Title: title, Subtitle: subtitle, Notes: notes,
		Width: 960, Height: 480, Plot: [4]float64{70, 60, 940, 400},
		Y: Axis{Scale: Scale{Min: minY, Max: maxY, Log: true},
			Ticks: LogTicks(minY, maxY, func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) + " ms" })},
	}
	// One unit of x per bar, a gap of one between groups.
	x := 0.5
	for _, g := range groups {
		start := x
		for _, m := range g.Measures {
			if m.Value > 0 {
				c.Bars = append(c.Bars, Bar{X0: x + 0.05, X1: x + 0.95, Y0: minY, Y1: m.Value, Color: m.Color,
					Title: m.Title, Label: ShortMillis(m.Value)})
			}
			if m.Predicted > 0 {
				c.Marks = append(c.Marks, Mark{At: Point{X: x + 0.5, Y: m.Predicted}, Shape: HTick, Width: 1, Color: "black",
					Title: m.PredictionTitle})
			}
			c.Texts = append(c.Texts, Text{At: Point{X: x + 0.5, Y: minY}, DY: 16, Text: m.Name})
			x++
		}
		c.Texts = append(c.Texts, Text{At: Point{X: (start + x) / 2, Y: minY}, DY: 38, Size: 13, Bold: true, Text: g.Name})
		x++
	}
	c.X.Scale = Scale{Min: 0, Max: math.Max(x-0.5, 1)}
	return c
}

// ShortMillis writes milliseconds with about three significant digits, for a bar's label.
func ShortMillis(ms float64) string {
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f", ms)
	}
	return fmt.Sprintf("%.0f", ms)
}
