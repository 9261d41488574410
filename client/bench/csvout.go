package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// csvServedModes are the served-mode columns, fixed so that files of different runs line up.
var csvServedModes = []string{"lease", "index", "log", "stale"}

// CSVHeader is the first line of WriteCSV's output.
var CSVHeader = []string{"driver", "name", "kind", "ops", "errors", "ops_per_sec",
	"min_ms", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
	"served_lease", "served_index", "served_log", "served_stale", "errors_by_kind",
	"predicted_p50_ms", "gap_p50_ms", "prediction_basis"}

// WriteCSV writes one line per row under CSVHeader. Empty prediction cells mean none.
func (rep Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, r := range rep.Rows {
		rec := []string{rep.Driver, r.Name, r.Kind, strconv.FormatInt(r.Ops, 10), strconv.FormatInt(r.Errors, 10),
			f(r.OpsPerSec), f(ms(r.Min)), f(ms(r.Mean)), f(ms(r.P50)), f(ms(r.P90)), f(ms(r.P99)), f(ms(r.P999)), f(ms(r.Max))}
		for _, m := range csvServedModes {
			rec = append(rec, strconv.FormatInt(r.Served[m], 10))
		}
		rec = append(rec, formatCounts(r.ErrorsByKind))
		if r.HasPrediction() {
			rec = append(rec, f(ms(r.Predicted)), f(ms(r.Gap())), r.PredictionBasis)
		} else {
			rec = append(rec, "", "", "")
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}
