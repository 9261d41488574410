package compare

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Chart geometry: one band per ratio row, three bars in it (throughput, p50, p99), on a log
// scale centred on 1× (the two systems equal).
const (
	svgWidth     = 1040
	svgPlotLeft  = 400
	svgPlotRight = 980
	svgTop       = 96
	svgBand      = 34
	svgBarHeight = 8
	svgMinLog    = -2 // 0.01×
	svgMaxLog    = 2  // 100×
)

var svgMetrics = []struct {
	name  string
	color string
	value func(RatioRow) float64
}{
	{"throughput", "#2b6cb0", func(r RatioRow) float64 { return r.Throughput }},
	{"p50 latency", "#dd6b20", func(r RatioRow) float64 { return r.P50 }},
	{"p99 latency", "#c53030", func(r RatioRow) float64 { return r.P99 }},
}

func svgX(ratio float64) float64 {
	v := math.Log10(ratio)
	v = math.Max(svgMinLog, math.Min(svgMaxLog, v))
	return svgPlotLeft + (svgPlotRight-svgPlotLeft)*(v-svgMinLog)/(svgMaxLog-svgMinLog)
}

func svgText(b *bytes.Buffer, x, y float64, size int, anchor, weight, fill, s string) {
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s" fill="%s">%s</text>`+"\n",
		x, y, size, anchor, weight, fill, svgEscape(s))
}

func svgEscape(s string) string {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	return r.Replace(s)
}

// WriteSVG draws every ratio row as three bars from the 1× line: right of it georaft has
// more throughput or higher latency than etcd, left of it less.
func (res *Result) WriteSVG(w io.Writer) error {
	// A band per environment heading, and one per ratio row.
	bands := len(res.Envs) + len(res.Ratios)
	height := svgTop + bands*svgBand + 60
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", svgWidth, height)
	svgText(&b, 20, 30, 18, "start", "bold", "#111", "georaft ÷ etcd: throughput, p50 and p99 per workload")
	svgText(&b, 20, 50, 12, "start", "normal", "#444",
		fmt.Sprintf("5 nodes each, fsync on, closed loop, %v per phase; log scale; throughput > 1× and latency < 1× favour georaft. %s",
			res.Options.Engine.Duration, res.Started.Format("2006-01-02 15:04 UTC")))
	for i, m := range svgMetrics {
		x := float64(svgPlotLeft + i*150)
		fmt.Fprintf(&b, `<rect x="%.1f" y="62" width="14" height="10" fill="%s"/>`+"\n", x, m.color)
		svgText(&b, x+20, 71, 12, "start", "normal", "#222", m.name)
	}
	bottom := float64(svgTop + bands*svgBand)
	for _, tick := range []float64{0.01, 0.1, 0.5, 1, 2, 10, 100} {
		x := svgX(tick)
		stroke, width := "#e2e2e2", 1.0
		if tick == 1 {
			stroke, width = "#555", 1.5
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"/>`+"\n", x, svgTop-8, x, bottom, stroke, width)
		svgText(&b, x, bottom+16, 11, "middle", "normal", "#444", strconv.FormatFloat(tick, 'f', -1, 64)+"×")
	}
	y := float64(svgTop)
	for _, er := range res.Envs {
		svgText(&b, 20, y+20, 14, "start", "bold", "#111", er.Name)
		y += svgBand
		for _, r := range res.Ratios {
			if r.Env != er.Name {
				continue
			}
			svgText(&b, 20, y+13, 11, "start", "normal", "#222", r.Workload)
			svgText(&b, 20, y+26, 10, "start", "normal", "#666", r.Label)
			for i, m := range svgMetrics {
				v := m.value(r)
				by := y + 3 + float64(i)*(svgBarHeight+1)
				if v <= 0 {
					svgText(&b, svgX(1)+4, by+svgBarHeight, 9, "start", "normal", "#999", "not measured")
					continue
				}
				x0, x1 := svgX(1), svgX(v)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
					math.Min(x0, x1), by, math.Max(math.Abs(x1-x0), 1), svgBarHeight, m.color, svgEscape(r.Workload), m.name, fmtRatio(v))
				anchor, tx := "start", math.Max(x0, x1)+4
				if x1 < x0 {
					anchor, tx = "end", x1-4
				}
				svgText(&b, tx, by+svgBarHeight-1, 9, anchor, "normal", "#333", fmtRatio(v))
			}
			y += svgBand
		}
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}
