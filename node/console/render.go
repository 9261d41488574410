package console

import (
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

var templateFuncs = template.FuncMap{
	"f1":          func(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) },
	"healthWords": healthWords,
	"nodeLabel":   nodeLabel,
	"pct":         leasePercent,
	"ms":          func(v float64) string { return fmtSeconds(v / 1000) },
	"clock":       func(t time.Time) string { return t.UTC().Format("15:04:05.000") },
	"iso":         func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	"seriesNames": seriesNames,
	"seriesOf":    seriesNamed,
	"mapDesc":     mapDescription,
}

// healthWords says a health in words.
func healthWords(h string) string {
	switch h {
	case healthOK:
		return "healthy"
	case healthUnreachable:
		return "not answering"
	case healthFailed:
		return "stopped serving (failed)"
	case healthNoLeader:
		return "knows no leader"
	}
	return "not asked yet"
}

// nodeLabel is what a screen reader says of a node on the map.
func nodeLabel(n *NodeView) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %d in %s", n.ID, n.Region)
	if n.Place != "" {
		fmt.Fprintf(&b, " (%s)", n.Place)
	}
	fmt.Fprintf(&b, ": %s, %s", n.Role, healthWords(n.Health))
	if n.Known {
		fmt.Fprintf(&b, ", term %d, commit %d, applied %d", n.Term, n.Commit, n.Applied)
	}
	for _, l := range n.Leases {
		if l.Running {
			fmt.Fprintf(&b, ", %s %s with %s left", l.Name, l.State, fmtSeconds(l.RemainingMs/1000))
		}
	}
	if n.IsLeader {
		b.WriteString(", the leader")
	}
	if n.InQuorum {
		b.WriteString(", in the leader's quorum")
	}
	return b.String()
}

func leasePercent(l Lease) string {
	if l.TotalMs <= 0 || !l.Running {
		return "0"
	}
	return strconv.FormatFloat(math.Round(math.Min(100, 100*l.RemainingMs/l.TotalMs)*10)/10, 'f', -1, 64)
}

// seriesOrder puts reads first, by mode, then writes, then the WAL.
var seriesOrder = []string{"read lease", "read index", "read log", "read stale", "write set", "write delete", "wal fsync"}

func seriesNames(nodes []*NodeView) []string {
	var names []string
	for _, n := range nodes {
		for _, s := range n.Series {
			if !slices.Contains(names, s.Name) {
				names = append(names, s.Name)
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(seriesOrder, a), slices.Index(seriesOrder, b)
		if ia < 0 {
			ia = len(seriesOrder)
		}
		if ib < 0 {
			ib = len(seriesOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	return names
}

func seriesNamed(n *NodeView, name string) *Series {
	for i := range n.Series {
		if n.Series[i].Name == name {
			return &n.Series[i]
		}
	}
	return nil
}

// mapDescription is the map's text alternative in one paragraph; the tables below it give
// every number.
func mapDescription(v *View) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d nodes, %d healthy. ", len(v.Nodes), v.Healthy)
	if v.Leader != nil {
		fmt.Fprintf(&b, "The leader is %s, term %d. ", v.Leader.Name(), v.Leader.Term)
	} else {
		b.WriteString("No leader. ")
	}
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "Node %d in %s: %s, %s. ", n.ID, n.Region, n.Role, healthWords(n.Health))
	}
	if v.Quorum.Text != "" {
		b.WriteString(v.Quorum.Text)
	}
	return b.String()
}

// placeLabels puts each node's label below its marker, or above, right or left when that
// would cover another label or marker (the US regions sit close together), then writes
// the leader's links' round trips where they cover nothing.
func placeLabels(nodes []*NodeView, links []*LinkView, width, height float64) {
	type box struct{ x0, y0, x1, y1 float64 }
	overlaps := func(a, b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }
	var taken []box
	for _, n := range nodes {
		taken = append(taken, box{n.X - 11, n.Y - 11, n.X + 11, n.Y + 11})
	}
	order := slices.Clone(nodes)
	slices.SortStableFunc(order, func(a, b *NodeView) int {
		switch {
		case a.IsLeader != b.IsLeader && a.IsLeader:
			return -1
		case a.IsLeader != b.IsLeader:
			return 1
		}
		return int(a.ID) - int(b.ID)
	})
	for _, n := range order {
		lines := 2.0
		n.Caption = fmt.Sprintf("node %d · %s", n.ID, n.Role)
		chars := utf8.RuneCountInString(n.Caption)
		if n.IsLeader {
			chars += len(" · 000 ms")
		}
		w := 6.2 * float64(max(utf8.RuneCountInString(n.Region), chars))
		h := 12 * lines
		// Offsets from the marker (the label is drawn inside the node's translated group),
		// tried in order; the first that covers nothing wins, else the one covering least.
		type candidate struct {
			dx, dy float64
			anchor string
			b      box
		}
		var candidates []candidate
		below := func(dx, dy float64, anchor string) candidate {
			x0 := n.X + dx - w/2
			switch anchor {
			case "start":
				x0 = n.X + dx
			case "end":
				x0 = n.X + dx - w
			}
			return candidate{dx, dy, anchor, box{x0, n.Y + dy - 11, x0 + w, n.Y + dy - 11 + h}}
		}
		for _, c := range [][3]float64{{0, 24, 0}, {0, -14 - 12*(lines-1), 0}, {16, 4 - 6*(lines-1), 1}, {-16, 4 - 6*(lines-1), -1},
			{12, 22, 1}, {-12, 22, -1}, {12, -12 - 12*(lines-1), 1}, {-12, -12 - 12*(lines-1), -1}, {0, 40, 0}, {0, -30 - 12*(lines-1), 0}} {
			anchor := map[float64]string{0: "middle", 1: "start", -1: "end"}[c[2]]
			candidates = append(candidates, below(c[0], c[1], anchor))
		}
		area := func(a, b box) float64 {
			return max(0, min(a.x1, b.x1)-max(a.x0, b.x0)) * max(0, min(a.y1, b.y1)-max(a.y0, b.y0))
		}
		self := box{n.X - 11, n.Y - 11, n.X + 11, n.Y + 11}
		best, bestCover := 0, math.Inf(1)
		for i, c := range candidates {
			cover := 0.0
			if c.b.x0 < 0 || c.b.x1 > width || c.b.y0 < 0 || c.b.y1 > height {
				cover += 1e6
			}
			for _, t := range taken {
				if t != self {
					cover += area(c.b, t)
				}
			}
			if cover < bestCover {
				best, bestCover = i, cover
			}
			if cover == 0 {
				break
			}
		}
		c := candidates[best]
		n.LabelX, n.LabelY, n.LabelAnchor = c.dx, c.dy, c.anchor
		taken = append(taken, c.b)
	}
	for _, l := range links {
		if !l.Leader {
			continue
		}
		w, h := 6.0*float64(utf8.RuneCountInString(l.RTT))+4, 12.0
	spots:
		for _, s := range l.spots {
			b := box{s[0] - w/2, s[1] - h + 3, s[0] + w/2, s[1] + 3}
			if b.x0 < 0 || b.x1 > width || b.y0 < 0 || b.y1 > height {
				continue
			}
			for _, t := range taken {
				if overlaps(b, t) {
					continue spots
				}
			}
			l.ShowsLabel, l.LX, l.LY = true, s[0], s[1]+3
			taken = append(taken, b)
			break
		}
	}
}
