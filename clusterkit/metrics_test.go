package clusterkit

import (
	"strings"
	"testing"
)

func TestHistogramQuantileFromExposition(t *testing.T) {
	text := `# HELP georaft_wal_fsync_seconds fsync latency
# TYPE georaft_wal_fsync_seconds histogram
georaft_wal_fsync_seconds_bucket{le="0.0005"} 10
georaft_wal_fsync_seconds_bucket{le="0.001"} 30
georaft_wal_fsync_seconds_bucket{le="0.002"} 40
georaft_wal_fsync_seconds_bucket{le="+Inf"} 40
georaft_wal_fsync_seconds_sum 0.03
georaft_wal_fsync_seconds_count 40
# TYPE georaft_term gauge
georaft_term 3
`
	families, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	h, err := HistogramOf(families, "georaft_wal_fsync_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if h.Count != 40 || h.Sum != 0.03 || h.Buckets[0.001] != 30 {
		t.Errorf("count %v sum %v buckets %v", h.Count, h.Sum, h.Buckets)
	}
	// The 20th of 40 falls halfway through the (0.5ms, 1ms] bucket.
	if q, ok := h.Quantile(0.5); !ok || q < 0.00074 || q > 0.00076 {
		t.Errorf("p50 = %v, %v; want 0.00075", q, ok)
	}
	for _, name := range []string{"georaft_missing_seconds", "georaft_term"} {
		if _, err := HistogramOf(families, name); err == nil {
			t.Errorf("%s taken for a histogram", name)
		}
	}
	if _, ok := (Histogram{}).Quantile(0.5); ok {
		t.Error("an empty histogram gave a quantile")
	}
}
