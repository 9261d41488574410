package compare

import (
	"fmt"
	"io"
	"strconv"

	"github.com/georaft/georaft/chart"
)

var ratioMetrics = []struct {
	name  string
	color string
	value func(RatioRow) float64
}{
	{"throughput", "#2b6cb0", func(r RatioRow) float64 { return r.Throughput }},
	{"p50 latency", "#dd6b20", func(r RatioRow) float64 { return r.P50 }},
	{"p99 latency", "#c53030", func(r RatioRow) float64 { return r.P99 }},
}

// WriteSVG draws every ratio row as three bars from the 1× line, on a log scale: right of it
// georaft has more throughput or higher latency than etcd, left of it less. Rows are grouped
// under their environment.
func (res *Result) WriteSVG(w io.Writer) error {
	// One unit of y per band: an environment heading, or a ratio row.
	bands := float64(len(res.Envs) + len(res.Ratios))
	c := chart.Chart{
		Title: "georaft ÷ etcd: throughput, p50 and p99 per workload",
		Subtitle: fmt.Sprintf("5 nodes each, fsync on, closed loop, %v per phase; log scale; throughput > 1× and latency < 1× favour georaft. %s",
			res.Options.Engine.Duration, res.Started.Format("2006-01-02 15:04 UTC")),
		TitleX: 20, Width: 1040, Height: 96 + 34*bands + 60, Plot: [4]float64{400, 88, 980, 96 + 34*bands},
		X: chart.Axis{Scale: chart.Scale{Min: 0.01, Max: 100, Log: true}},
		Y: chart.Axis{Scale: chart.Scale{Min: 0, Max: bands, Reverse: true}},
	}
	for _, tick := range []float64{0.01, 0.1, 0.5, 1, 2, 10, 100} {
		c.X.Ticks = append(c.X.Ticks, chart.Tick{At: tick, Label: strconv.FormatFloat(tick, 'f', -1, 64) + "×", Strong: tick == 1})
	}
	for _, m := range ratioMetrics {
		c.Legend = append(c.Legend, chart.Entry{Color: m.color, Name: m.name})
	}
	band := 0.0
	for _, er := range res.Envs {
		c.Texts = append(c.Texts, chart.Text{At: chart.Point{X: 20, Y: band}, InMargin: true, DY: 20, Size: 14, Bold: true, Anchor: "start", Text: er.Name})
		band++
		for _, r := range res.Ratios {
			if r.Env != er.Name {
				continue
			}
			c.Texts = append(c.Texts,
				chart.Text{At: chart.Point{X: 20, Y: band}, InMargin: true, DY: 13, Anchor: "start", Text: r.Workload},
				chart.Text{At: chart.Point{X: 20, Y: band}, InMargin: true, DY: 26, Size: 10, Anchor: "start", Color: "#666", Text: r.Label})
			for i, m := range ratioMetrics {
				top := band + (3+9*float64(i))/34
				if v := m.value(r); v > 0 {
					c.Bars = append(c.Bars, chart.Bar{X0: 1, X1: v, Y0: top, Y1: top + 8.0/34, Horizontal: true, Color: m.color,
						Title: fmt.Sprintf("%s %s: %s", r.Workload, m.name, fmtRatio(v)), Label: fmtRatio(v)})
				} else {
					c.Texts = append(c.Texts, chart.Text{At: chart.Point{X: 1, Y: top}, DX: 4, DY: 8, Size: 9, Anchor: "start", Color: "#999", Text: "not measured"})
				}
			}
			band++
		}
	}
	return c.WriteSVG(w)
}
