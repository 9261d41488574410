package chart

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func TestScalesPlaceValues(t *testing.T) {
	c := Chart{Plot: [4]float64{100, 50, 300, 250},
		X: Axis{Scale: Scale{Min: 1, Max: 100, Log: true}},
		Y: Axis{Scale: Scale{Min: 0, Max: 4, Reverse: true}}}
	for _, tc := range []struct{ got, want float64 }{
		{c.x(1), 100}, {c.x(10), 200}, {c.x(100), 300}, {c.x(1000), 300}, // clamped
		{c.y(0), 50}, {c.y(4), 250}, {c.y(1), 100}, // reversed: rows go down
	} {
		if math.Abs(tc.got-tc.want) > 1e-9 {
			t.Errorf("got %v, want %v", tc.got, tc.want)
		}
	}
	c.X.Scale = Scale{Min: 0, Max: 4, Map: func(v float64) float64 { return v * v }}
	if got := c.x(1); math.Abs(got-(100+200.0/16)) > 1e-9 {
		t.Errorf("mapped x(1) = %v", got)
	}
}

func TestLogTicksAndLabels(t *testing.T) {
	ticks := LogTicks(0.1, 50, Millis)
	var labels []string
	strong := 0
	for _, tk := range ticks {
		labels = append(labels, tk.Label)
		if tk.Strong {
			strong++
		}
	}
	if got := strings.Join(labels, " "); got != "0.1ms 0.2ms 0.5ms 1ms 2ms 5ms 10ms 20ms 50ms" || strong != 3 {
		t.Errorf("ticks %s (%d strong)", got, strong)
	}
	if Millis(0.05) != "50µs" || Millis(2500) != "2.5s" {
		t.Errorf("Millis: %s, %s", Millis(0.05), Millis(2500))
	}
}

// Every element the chart has makes it into well-formed SVG, tooltips and escaping included.
func TestWriteSVGIsWellFormed(t *testing.T) {
	c := Chart{Title: "a < b & c", Width: 400, Height: 300, Plot: [4]float64{50, 60, 300, 250},
		X:      Axis{Scale: Scale{Min: 0, Max: 10}, Ticks: []Tick{{At: 5, Label: "5", Strong: true}}, Title: "x"},
		Y:      Axis{Scale: Scale{Min: 1, Max: 1000, Log: true}, Ticks: LogTicks(1, 1000, Millis), Title: "y"},
		Bars:   []Bar{{X0: 1, X1: 2, Y0: 1, Y1: 30, Color: "red", Title: "bar <1>", Label: "30"}, {X0: 3, X1: 1, Y0: 4, Y1: 5, Horizontal: true, Color: "blue", Label: "l"}},
		Lines:  []Line{{Points: []Point{{1, 2}, {9, 500}}, Color: "green", Width: 2, EndDot: true, Title: "line"}},
		Marks:  []Mark{{At: Point{5, 10}, Shape: Diamond, Color: "k", Title: "d"}, {At: Point{5, 10}, Shape: HTick, Width: 1}, {At: Point{5, 10}, Shape: Guide}},
		Texts:  []Text{{At: Point{1, 1}, Text: "t"}, {At: Point{10, 1}, InMargin: true, Text: "m"}},
		Legend: []Entry{{Color: "red", Name: "r", Detail: []string{"d1"}}, {Diamond: true, Name: "p"}}, LegendRight: true,
		Notes: []string{"note"},
	}
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	dec := xml.NewDecoder(&buf)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, buf.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
	for el, want := range map[string]int{"svg": 1, "polyline": 1, "circle": 1, "path": 2, "title": 3} {
		if counts[el] != want {
			t.Errorf("%d <%s>, want %d (all: %v)", counts[el], el, want, counts)
		}
	}
}
