package lab

import (
	"fmt"
	"io"

	"github.com/georaft/georaft/chart"
)

// WriteSVG draws each client region's p50 per mode as bars on a log scale, with the
// prediction as a black tick across each bar, so the gap is visible at a glance.
func (r BenchResult) WriteSVG(w io.Writer) error {
	var groups []chart.Group
	for _, rr := range r.Regions {
		g := chart.Group{Name: "client in " + rr.ClientRegion}
		for i, row := range rr.Report.Rows {
			m := chart.Measure{Name: row.Name, Value: millis(row.P50), Color: chart.ModeColor(row.Name, i),
				Title: fmt.Sprintf("%s from %s: p50 %.3f ms", row.Name, rr.ClientRegion, millis(row.P50))}
			if row.HasPrediction() {
				m.Predicted = millis(row.Predicted)
				m.PredictionTitle = fmt.Sprintf("predicted %.3f ms: %s", millis(row.Predicted), row.PredictionBasis)
			}
			g.Measures = append(g.Measures, m)
		}
		groups = append(groups, g)
	}
	var notes []string
	if s, ok := r.LeaseSpeedup(); ok {
		notes = []string{fmt.Sprintf("from %s, lease reads are %.1fx faster than log reads at p50", r.LeaderRegion, s)}
	}
	return chart.MeasuredVsPredicted(
		"georaft p50 latency: measured (bars) vs predicted by the RTT matrix (black ticks)",
		fmt.Sprintf("leader in %s; emulation x%g, intra-region RTT %v, overshoot compensation %v; log scale",
			r.LeaderRegion, r.Scale, r.IntraRegionRTT, r.Compensation),
		groups, notes).WriteSVG(w)
}
