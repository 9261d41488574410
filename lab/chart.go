package lab

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartWidth   = 960.0
	chartHeight  = 480.0
	chartLeft    = 70.0
	chartRight   = 940.0
	chartTop     = 60.0
	chartBottom  = 400.0
	barGap       = 6.0
	groupPadding = 30.0
)

var modeColors = map[string]string{
	RowLease: "#2a9d8f",
	RowIndex: "#e9c46a",
	RowLog:   "#f4a261",
	RowStale: "#8ab17d",
	RowWrite: "#e76f51",
}

// WriteSVG draws each client region's p50 per mode as bars on a log scale, with the
// prediction as a black tick across each bar, so the gap is visible at a glance.
func (r BenchResult) WriteSVG(w io.Writer) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	bars := 0
	for _, rr := range r.Regions {
		for _, row := range rr.Report.Rows {
			bars++
			for _, d := range []float64{millis(row.P50), millis(row.Predicted)} {
				if d > 0 {
					lo, hi = math.Min(lo, d), math.Max(hi, d)
				}
			}
		}
	}
	if bars == 0 || math.IsInf(lo, 1) {
		lo, hi = 0.1, 1000
	}
	// Room below the lowest value so a tick on it stays visible, and above the highest for
	// its label.
	minLog := math.Floor(math.Log10(lo * 0.7))
	maxLog := math.Log10(hi * 1.5)
	y := func(ms float64) float64 {
		v := math.Log10(math.Max(ms, math.Pow(10, minLog)))
		return chartBottom - (chartBottom-chartTop)*(v-minLog)/(maxLog-minLog)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif">`+"\n",
		chartWidth, chartHeight, chartWidth, chartHeight)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	svgText(&b, chartWidth/2, 24, 15, "middle", "bold", "georaft p50 latency: measured (bars) vs predicted by the RTT matrix (black ticks)")
	svgText(&b, chartWidth/2, 44, 11, "middle", "normal", fmt.Sprintf("leader in %s; emulation x%g, intra-region RTT %v, overshoot compensation %v; log scale",
		r.LeaderRegion, r.Scale, r.IntraRegionRTT, r.Compensation))
	for e := minLog; e <= math.Ceil(maxLog); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if math.Log10(v) > maxLog {
				break
			}
			yy := y(v)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", chartLeft, yy, chartRight, yy, stroke)
			svgText(&b, chartLeft-6, yy+4, 11, "end", "normal", strconv.FormatFloat(v, 'g', -1, 64)+" ms")
		}
	}
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", chartLeft, chartBottom, chartRight, chartBottom)
	if bars > 0 {
		groups := float64(len(r.Regions))
		groupWidth := (chartRight - chartLeft - groupPadding*(groups+1)) / groups
		for gi, rr := range r.Regions {
			gx := chartLeft + groupPadding + float64(gi)*(groupWidth+groupPadding)
			n := float64(len(rr.Report.Rows))
			barWidth := (groupWidth - barGap*(n-1)) / math.Max(n, 1)
			for bi, row := range rr.Report.Rows {
				x := gx + float64(bi)*(barWidth+barGap)
				color := modeColors[row.Name]
				if color == "" {
					color = "#999"
				}
				if row.P50 > 0 {
					top := y(millis(row.P50))
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s from %s: p50 %.3f ms</title></rect>`+"\n",
						x, top, barWidth, chartBottom-top, color, html.EscapeString(row.Name), html.EscapeString(rr.ClientRegion), millis(row.P50))
					svgText(&b, x+barWidth/2, top-4, 10, "middle", "normal", shortMillis(millis(row.P50)))
				}
				if row.HasPrediction() {
					py := y(millis(row.Predicted))
					fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-width="3"><title>predicted %.3f ms: %s</title></line>`+"\n",
						x-2, py, x+barWidth+2, py, millis(row.Predicted), html.EscapeString(row.PredictionBasis))
				}
				svgText(&b, x+barWidth/2, chartBottom+16, 11, "middle", "normal", row.Name)
			}
			svgText(&b, gx+groupWidth/2, chartBottom+38, 13, "middle", "bold", "client in "+rr.ClientRegion)
		}
	}
	if s, ok := r.LeaseSpeedup(); ok {
		svgText(&b, chartWidth/2, chartHeight-16, 12, "middle", "normal",
			fmt.Sprintf("from %s, lease reads are %.1fx faster than log reads at p50", r.LeaderRegion, s))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
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

func svgText(b *strings.Builder, x, y float64, size int, anchor, weight, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s">%s</text>`+"\n",
		x, y, size, anchor, weight, html.EscapeString(s))
}
