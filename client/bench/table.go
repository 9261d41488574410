package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatLatency renders a latency with three significant digits in a unit a person reads
// at a glance: 0.213ms, 3.21ms, 38.7ms, 140ms, 12.3s.
func FormatLatency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d <= 0:
		return "-"
	case ms < 1:
		return fmt.Sprintf("%.3fms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 10000:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// formatGap renders measured minus predicted, signed, with the relative gap.
func formatGap(r Row) string {
	if !r.HasPrediction() || r.Ops == 0 {
		return "-"
	}
	gap := r.Gap()
	if gap == 0 {
		return "0 (+0%)"
	}
	sign := "+"
	if gap < 0 {
		sign, gap = "-", -gap
	}
	pct := 100 * float64(r.Gap()) / float64(r.Predicted)
	return fmt.Sprintf("%s%s (%+.0f%%)", sign, FormatLatency(gap), pct)
}

func formatCounts(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func formatErrors(r Row) string {
	if r.Errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", r.Errors, formatCounts(r.ErrorsByKind))
}

// Summary is the one-line description of how the report was measured.
func (rep Report) Summary() string {
	s := rep.Setup
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s loop", rep.Driver, s.Loop)
	if s.Loop == "open" {
		fmt.Fprintf(&b, " at %.0f ops/s", s.Rate)
	}
	fmt.Fprintf(&b, ", %d workers", s.Concurrency)
	if s.Ops > 0 {
		fmt.Fprintf(&b, ", %d ops per phase", s.Ops)
	} else {
		fmt.Fprintf(&b, ", %s per phase", s.Duration)
	}
	if s.Warmup > 0 {
		fmt.Fprintf(&b, " (+%s warmup)", s.Warmup)
	}
	fmt.Fprintf(&b, ", %d keys, %d B values", s.Keys, s.ValueSize)
	if s.WriteRatio > 0 {
		fmt.Fprintf(&b, ", %.0f%% writes mixed in", 100*s.WriteRatio)
	}
	return b.String()
}

// WriteTable prints the report as an aligned table with a summary line above it and the
// prediction bases below it.
func (rep Report) WriteTable(w io.Writer) error {
	predictions := rep.HasPredictions()
	header := []string{"mode", "ops", "ops/s", "p50"}
	if predictions {
		header = append(header, "predicted", "gap")
	}
	header = append(header, "p90", "p99", "p99.9", "max", "mean", "errors", "served as")
	rightAligned := map[int]bool{}
	for i := 1; i < len(header)-2; i++ {
		rightAligned[i] = true
	}
	rows := [][]string{header}
	for _, r := range rep.Rows {
		cells := []string{r.Name, fmt.Sprint(r.Ops), fmt.Sprintf("%.1f", r.OpsPerSec), FormatLatency(r.P50)}
		if predictions {
			pred := "-"
			if r.HasPrediction() {
				pred = FormatLatency(r.Predicted)
			}
			cells = append(cells, pred, formatGap(r))
		}
		served := formatCounts(r.Served)
		if served == "" {
			served = "-"
		}
		cells = append(cells, FormatLatency(r.P90), FormatLatency(r.P99), FormatLatency(r.P999),
			FormatLatency(r.Max), FormatLatency(r.Mean), formatErrors(r), served)
		rows = append(rows, cells)
	}

	var b strings.Builder
	b.WriteString(rep.Summary() + "\n")
	if len(rep.Labels) > 0 {
		keys := make([]string, 0, len(rep.Labels))
		for k := range rep.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+rep.Labels[k])
		}
		b.WriteString(strings.Join(parts, " ") + "\n")
	}
	b.WriteString("\n")
	b.WriteString(Columns(rows, rightAligned))
	if predictions {
		b.WriteString("\n")
		for _, r := range rep.Rows {
			if r.HasPrediction() && r.PredictionBasis != "" {
				fmt.Fprintf(&b, "predicted %s p50 %s: %s\n", r.Name, FormatLatency(r.Predicted), r.PredictionBasis)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Columns aligns rows of cells in columns two spaces apart, right-aligning the columns
// in right (by index), with no trailing spaces: the text tables of the bench, the lab, the
// comparison and the CLI.
func Columns(rows [][]string, right map[int]bool) string {
	widths := map[int]int{}
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			if i > 0 {
				line.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if right[i] {
				line.WriteString(pad + cell)
			} else {
				line.WriteString(cell + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}
