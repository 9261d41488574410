// Package chart draws the benchmarks' SVG charts: lines, bars and marks on linear or
// logarithmic axes, with a legend and notes. It is the one chart code of the repository
// (client/bench's latency curves, the lab's measured-vs-predicted bars, the comparison's
// ratio bars), written to need no dependency: the CLI draws charts too, and a plotting
// library with its fonts would weigh more than the CLI.
package chart

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Scale maps data values onto an axis: linearly, or by log10 when Log. Map, when set,
// transforms a value first (the latency chart's "each nine gets equal width" axis).
type Scale struct {
	Min, Max float64
	Log      bool
	Map      func(float64) float64
	// Reverse puts Min at the top of a vertical axis (rows listed downwards).
	Reverse bool
}

func (s Scale) t(v float64) float64 {
	if s.Map != nil {
		v = s.Map(v)
	}
	if s.Log {
		return math.Log10(math.Max(v, 1e-300))
	}
	return v
}

// frac is where v falls between Min (0) and Max (1), clamped.
func (s Scale) frac(v float64) float64 {
	lo, hi := s.t(s.Min), s.t(s.Max)
	if hi == lo {
		return 0
	}
	return math.Max(0, math.Min(1, (s.t(v)-lo)/(hi-lo)))
}

// Tick is a grid line and its label; Strong ones are drawn darker.
type Tick struct {
	At     float64
	Label  string
	Strong bool
}

// Axis is a scale, its grid lines and a title.
type Axis struct {
	Scale
	Title string
	Ticks []Tick
}

// Point is a data point.
type Point struct{ X, Y float64 }

// Line is a polyline through points, optionally ending in a dot.
type Line struct {
	Points []Point
	Color  string
	Width  float64
	Dashed bool
	EndDot bool
	Title  string
}

// Bar is a rectangle between two values on each axis: a vertical bar spans X0..X1 and
// rises from Y0 to Y1; a horizontal one the other way. Label is written past its Y1 end
// (X1 for Horizontal).
type Bar struct {
	X0, X1, Y0, Y1 float64
	Horizontal     bool
	Color          string
	Title          string
	Label          string
}

// Shape of a Mark.
type Shape int

const (
	// Diamond is an open diamond centred on the point.
	Diamond Shape = iota
	// HTick is a thick horizontal stroke Width data units wide, centred on the point.
	HTick
	// Guide is a dashed horizontal line from the plot's left edge to the point.
	Guide
)

// Mark is a shape at a point.
type Mark struct {
	At    Point
	Shape Shape
	Width float64 // HTick's width, in X data units
	Color string
	Title string
}

// Text is a label at a data point, moved by (DX, DY) pixels. With InMargin, X is a pixel
// position from the chart's left edge instead (labels of rows, left of the plot).
type Text struct {
	At       Point
	DX, DY   float64
	InMargin bool
	Text     string
	Size     int
	Anchor   string // start, middle (default) or end
	Bold     bool
	Color    string
}

// Entry is one legend line: a swatch (a line, or a Diamond), a bold name and detail lines.
type Entry struct {
	Color   string
	Name    string
	Detail  []string
	Diamond bool
}

// Chart is one SVG picture.
type Chart struct {
	Title, Subtitle string
	// TitleX is where the title and subtitle start (default: the plot's left edge).
	TitleX        float64
	Width, Height float64
	// Plot is the plot area: Left, Top, Right, Bottom in pixels.
	Plot  [4]float64
	X, Y  Axis
	Bars  []Bar
	Lines []Line
	Marks []Mark
	Texts []Text
	// Legend goes right of the plot (LegendRight) or in one row under the subtitle.
	Legend      []Entry
	LegendRight bool
	// Notes are lines centred under the plot.
	Notes []string
}

func (c *Chart) x(v float64) float64 {
	return c.Plot[0] + (c.Plot[2]-c.Plot[0])*c.X.frac(v)
}

func (c *Chart) y(v float64) float64 {
	f := c.Y.frac(v)
	if c.Y.Reverse {
		f = 1 - f
	}
	return c.Plot[3] - (c.Plot[3]-c.Plot[1])*f
}

type svg struct{ bytes.Buffer }

func (b *svg) text(x, y float64, size int, anchor string, bold bool, color, s string) {
	if anchor == "" {
		anchor = "middle"
	}
	if color == "" {
		color = "#222"
	}
	weight := "normal"
	if bold {
		weight = "bold"
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="%s" font-weight="%s" fill="%s">%s</text>`+"\n",
		x, y, size, anchor, weight, color, escape(s))
}

func (b *svg) line(x1, y1, x2, y2 float64, stroke string, width float64, extra string) {
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%.1f"%s/>`+"\n", x1, y1, x2, y2, stroke, width, extra)
}

// elem writes <tag attrs/>, with a tooltip when title is set.
func (b *svg) elem(tag, attrs, title string) {
	if title == "" {
		fmt.Fprintf(b, "<%s %s/>\n", tag, attrs)
		return
	}
	fmt.Fprintf(b, "<%s %s><title>%s</title></%s>\n", tag, attrs, escape(title), tag)
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// WriteSVG draws the chart as a standalone SVG document.
func (c Chart) WriteSVG(w io.Writer) error {
	var b svg
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="Helvetica, Arial, sans-serif">`+"\n",
		c.Width, c.Height, c.Width, c.Height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%.0f" height="%.0f" fill="white"/>`+"\n", c.Width, c.Height)
	left, top, right, bottom := c.Plot[0], c.Plot[1], c.Plot[2], c.Plot[3]
	titleX := c.TitleX
	if titleX == 0 {
		titleX = left
	}
	b.text(titleX, 28, 18, "start", true, "#111", c.Title)
	b.text(titleX, 48, 12, "start", false, "#444", c.Subtitle)

	for _, t := range c.Y.Ticks {
		y, stroke := c.y(t.At), "#e6e6e6"
		if t.Strong {
			stroke = "#c8c8c8"
		}
		b.line(left, y, right, y, stroke, 1, "")
		if t.Label != "" {
			b.text(left-8, y+4, 11, "end", false, "#444", t.Label)
		}
	}
	for _, t := range c.X.Ticks {
		x, stroke, width := c.x(t.At), "#e6e6e6", 1.0
		if t.Strong {
			stroke, width = "#555", 1.5
		}
		b.line(x, top, x, bottom, stroke, width, "")
		b.text(x, bottom+16, 11, "middle", false, "#444", t.Label)
	}
	fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#888"/>`+"\n", left, top, right-left, bottom-top)
	if c.X.Title != "" {
		b.text((left+right)/2, bottom+40, 13, "middle", false, "", c.X.Title)
	}
	if c.Y.Title != "" {
		mid := (top + bottom) / 2
		fmt.Fprintf(&b, `<text x="22" y="%.1f" font-size="13" text-anchor="middle" transform="rotate(-90 22 %.1f)">%s</text>`+"\n", mid, mid, escape(c.Y.Title))
	}

	for _, bar := range c.Bars {
		x0, x1, y0, y1 := c.x(bar.X0), c.x(bar.X1), c.y(bar.Y0), c.y(bar.Y1)
		b.elem("rect", fmt.Sprintf(`x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"`, math.Min(x0, x1), math.Min(y0, y1),
			math.Max(math.Abs(x1-x0), 1), math.Max(math.Abs(y1-y0), 1), bar.Color), bar.Title)
		switch {
		case bar.Label == "":
		case bar.Horizontal && x1 >= x0:
			b.text(x1+4, (y0+y1)/2+3, 9, "start", false, "#333", bar.Label)
		case bar.Horizontal:
			b.text(x1-4, (y0+y1)/2+3, 9, "end", false, "#333", bar.Label)
		default:
			b.text((x0+x1)/2, y1-4, 10, "middle", false, "#333", bar.Label)
		}
	}
	for _, l := range c.Lines {
		var pts []string
		for _, p := range l.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(p.X), c.y(p.Y)))
		}
		if len(pts) == 0 {
			continue
		}
		dash := ""
		if l.Dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		b.elem("polyline", fmt.Sprintf(`fill="none" stroke="%s" stroke-width="%.1f" stroke-linejoin="round"%s points="%s"`,
			l.Color, l.Width, dash, strings.Join(pts, " ")), l.Title)
		if l.EndDot {
			last := l.Points[len(l.Points)-1]
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", c.x(last.X), c.y(last.Y), l.Color)
		}
	}
	for _, m := range c.Marks {
		x, y := c.x(m.At.X), c.y(m.At.Y)
		switch m.Shape {
		case Diamond:
			b.elem("path", fmt.Sprintf(`d="M %.1f %.1f l 6 6 l -6 6 l -6 -6 z" fill="white" stroke="%s" stroke-width="2"`, x, y-6, m.Color), m.Title)
		case HTick:
			half := (c.x(m.At.X+m.Width/2) - c.x(m.At.X-m.Width/2)) / 2
			b.elem("line", fmt.Sprintf(`x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"`, x-half, y, x+half, y, m.Color), m.Title)
		case Guide:
			b.line(left, y, x, y, m.Color, 1.4, ` stroke-dasharray="5,4"`)
		}
	}
	for _, t := range c.Texts {
		x := t.At.X
		if !t.InMargin {
			x = c.x(x)
		}
		size := t.Size
		if size == 0 {
			size = 11
		}
		b.text(x+t.DX, c.y(t.At.Y)+t.DY, size, t.Anchor, t.Bold, t.Color, t.Text)
	}
	c.legend(&b)
	for i, n := range c.Notes {
		b.text(c.Width/2, c.Height-16-float64(len(c.Notes)-1-i)*16, 12, "middle", false, "", n)
	}
	b.WriteString("</svg>\n")
	_, err := w.Write(b.Bytes())
	return err
}

func (c *Chart) legend(b *svg) {
	x, y := c.Plot[2]+20, c.Plot[1]+8
	if !c.LegendRight {
		x, y = c.Plot[0], 66
	}
	for _, e := range c.Legend {
		if e.Diamond {
			b.elem("path", fmt.Sprintf(`d="M %.1f %.1f l 6 6 l -6 6 l -6 -6 z" fill="white" stroke="%s" stroke-width="2"`, x+12, y-6, e.Color), "")
		} else {
			b.line(x, y, x+24, y, e.Color, 6, "")
		}
		b.text(x+32, y+4, 12, "start", e.Name != "" && c.LegendRight, "#222", e.Name)
		if !c.LegendRight {
			x += 40 + 7*float64(len(e.Name))
			continue
		}
		for i, d := range e.Detail {
			b.text(x+32, y+4+16*float64(i+1), 11, "start", false, "#333", d)
		}
		y += 22 + 16*float64(len(e.Detail))
	}
}

// LogTicks are grid lines at 1, 2 and 5 of every decade from min to max, the decades
// Strong, each labelled by label ("" for none).
func LogTicks(min, max float64, label func(float64) string) []Tick {
	var out []Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < min*(1-1e-9) || v > max*(1+1e-9) {
				continue
			}
			out = append(out, Tick{At: v, Label: label(v), Strong: m == 1})
		}
	}
	return out
}

// Millis labels a value in milliseconds as a latency: 10µs, 0.5ms, 20ms, 1s.
func Millis(v float64) string {
	switch {
	case v < 0.1:
		return strconv.FormatFloat(math.Round(v*1000*1000)/1000, 'g', -1, 64) + "µs"
	case v < 1000:
		return strconv.FormatFloat(v, 'g', -1, 64) + "ms"
	}
	return strconv.FormatFloat(v/1000, 'g', -1, 64) + "s"
}
