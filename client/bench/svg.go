package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// The chart plots latency against percentile, the way HdrHistogram plots are drawn: the x
// axis stretches the tail (each "nine" gets the same width: 90%, 99%, 99.9%, 99.99%) and the
// y axis is logarithmic, so a 0.2ms lease read and a 150ms log read fit one picture. One
// colored line per row; a diamond marks a row's predicted p50.

const (
	chartWidth   = 1100
	chartHeight  = 560
	plotLeft     = 80
	plotTop      = 70
	plotRight    = 700
	plotBottom   = 490
	nineMax      = 4.0 // 99.99%
	maxColumn    = 4.5
	legendLeft   = 720
	legendRowGap = 22
)

var rowColors = map[string]string{
	"lease": "#1b9e77",
	"index": "#d95f02",
	"log":   "#7570b3",
	"stale": "#e7298a",
	"write": "#4b7bd1",
}

var spareColors = []string{"#a6761d", "#66a61e", "#e6ab02", "#666666", "#17becf", "#bcbd22"}

func colorFor(name string, i int) string {
	if c, ok := rowColors[name]; ok {
		return c
	}
	return spareColors[i%len(spareColors)]
}

// nines maps a percentile onto the x axis: 0% → 0, 90% → 1, 99% → 2, 99.9% → 3; 100%
// (the max) gets its own column to the right.
func nines(p float64) float64 {
	if p >= 100 {
		return maxColumn
	}
	return math.Min(-math.Log10(1-p/100), nineMax)
}

type chartScale struct {
	minLog, maxLog float64
}

func (s chartScale) x(p float64) float64 {
	return plotLeft + (plotRight-plotLeft)*nines(p)/maxColumn
}

func (s chartScale) y(d time.Duration) float64 {
	v := math.Log10(math.Max(ms(d), math.Pow(10, s.minLog)))
	return plotBottom - (plotBottom-plotTop)*(v-s.minLog)/(s.maxLog-s.minLog)
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
	s := chartScale{minLog: math.Floor(math.Log10(lo)), maxLog: math.Ceil(math.Log10(hi))}
	if s.maxLog <= s.minLog {
		s.maxLog = s.minLog + 1
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		chartWidth, chartHeight, chartWidth, chartHeight)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", chartWidth, chartHeight)
	text(&b, plotLeft, 28, 18, "start", "bold", "georaft bench: latency by percentile")
	text(&b, plotLeft, 50, 12, "start", "normal", rep.Summary())

	// Horizontal grid: 1, 2, 5 per decade, labelled at decades and, when few, at 2 and 5.
	decades := int(s.maxLog - s.minLog)
	for e := s.minLog; e <= s.maxLog; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if math.Log10(v) > s.maxLog+1e-9 {
				continue
			}
			y := s.y(fromMs(v))
			stroke, width := "#e6e6e6", 1.0
			if m == 1 {
				stroke = "#c8c8c8"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n",
				plotLeft, y, plotRight, y, stroke, width)
			if m == 1 || decades <= 2 {
				text(&b, plotLeft-8, y+4, 11, "end", "normal", axisLatency(v))
			}
		}
	}
	// Vertical grid at the nines, and the max column.
	for _, tick := range []struct {
		p     float64
		label string
	}{{0, "0%"}, {50, "50%"}, {90, "90%"}, {99, "99%"}, {99.9, "99.9%"}, {99.99, "99.99%"}, {100, "max"}} {
		x := s.x(tick.p)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e6e6e6"/>`+"\n", x, plotTop, x, plotBottom)
		text(&b, x, plotBottom+18, 11, "middle", "normal", tick.label)
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n",
		plotLeft, plotTop, plotRight-plotLeft, plotBottom-plotTop)
	text(&b, (plotLeft+plotRight)/2, plotBottom+42, 13, "middle", "normal", "percentile of operations (each nine gets equal width)")
	fmt.Fprintf(&b, `<text x="22" y="%d" font-size="13" text-anchor="middle" transform="rotate(-90 22 %d)">%s</text>`+"\n",
		(plotTop+plotBottom)/2, (plotTop+plotBottom)/2, escape("latency (log scale)"))

	// Curves, predictions, legend.
	legendY := plotTop + 8
	for i, r := range rep.Rows {
		color := colorFor(r.Name, i)
		var pts []string
		for _, pt := range r.Curve {
			if pt.Latency > 0 {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", s.x(pt.Percentile), s.y(pt.Latency)))
			}
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2.2" stroke-linejoin="round" points="%s"><title>%s</title></polyline>`+"\n",
				color, strings.Join(pts, " "), escape(r.Name))
			last := r.Curve[len(r.Curve)-1]
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", s.x(last.Percentile), s.y(last.Latency), color)
		}
		if r.HasPrediction() {
			x, y := s.x(50), s.y(r.Predicted)
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="5,4" stroke-width="1.4"/>`+"\n",
				plotLeft, y, s.x(90), y, color)
			fmt.Fprintf(&b, `<path d="M %.1f %.1f l 6 6 l -6 6 l -6 -6 z" fill="white" stroke="%s" stroke-width="2"><title>%s predicted p50 %s</title></path>`+"\n",
				x, y-6, color, escape(r.Name), FormatLatency(r.Predicted))
		}

		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n",
			legendLeft, legendY, legendLeft+24, legendY, color)
		text(&b, legendLeft+32, float64(legendY+4), 13, "start", "bold", r.Name)
		detail := "no successful operations"
		if r.Ops > 0 {
			detail = fmt.Sprintf("p50 %s  p99 %s  %.0f ops/s", FormatLatency(r.P50), FormatLatency(r.P99), r.OpsPerSec)
		}
		text(&b, legendLeft+32, float64(legendY+4+16), 11, "start", "normal", detail)
		lines := 2
		if r.HasPrediction() {
			text(&b, legendLeft+32, float64(legendY+4+32), 11, "start", "normal",
				fmt.Sprintf("predicted p50 %s (gap %s)", FormatLatency(r.Predicted), formatGap(r)))
			lines++
		}
		if r.Kind == "read" && len(r.Served) > 1 {
			text(&b, legendLeft+32, float64(legendY+4+16*lines), 11, "start", "normal", "served as "+formatCounts(r.Served))
			lines++
		}
		legendY += legendRowGap + 16*(lines-1)
	}
	if rep.HasPredictions() {
		fmt.Fprintf(&b, `<path d="M %d %d l 6 6 l -6 6 l -6 -6 z" fill="white" stroke="#444" stroke-width="2"/>`+"\n", legendLeft+12, legendY-6)
		text(&b, legendLeft+32, float64(legendY+4), 11, "start", "normal", "model prediction of p50")
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func text(b *bytes.Buffer, x, y float64, size int, anchor, weight, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s">%s</text>`+"\n",
		x, y, size, anchor, weight, escape(s))
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// axisLatency labels a grid line given in milliseconds: 10µs, 0.5ms, 20ms, 1s.
func axisLatency(v float64) string {
	switch {
	case v < 0.1:
		return fmt.Sprintf("%gµs", math.Round(v*1000*1000)/1000)
	case v < 1000:
		return fmt.Sprintf("%gms", v)
	}
	return fmt.Sprintf("%gs", v/1000)
}
