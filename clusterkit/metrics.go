package clusterkit

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Histogram is a Prometheus histogram as a node exposes it on /metrics, summed over its
// label sets.
type Histogram struct {
	// Buckets maps each upper bound to the cumulative count at or under it.
	Buckets map[float64]float64
	Sum     float64
	Count   float64
}

// Quantile interpolates linearly within the bucket holding q, as Prometheus's
// histogram_quantile does.
func (h Histogram) Quantile(q float64) (float64, bool) {
	if h.Count == 0 || len(h.Buckets) == 0 {
		return 0, false
	}
	rank := q * h.Count
	prevBound, prevCount := 0.0, 0.0
	for _, b := range slices.Sorted(maps.Keys(h.Buckets)) {
		c := h.Buckets[b]
		if c >= rank {
			if math.IsInf(b, 1) {
				return prevBound, true
			}
			if c == prevCount {
				return b, true
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount), true
		}
		prevBound, prevCount = b, c
	}
	return prevBound, true
}

// Add sums o into h: the same histogram from another process, or another scrape.
func (h *Histogram) Add(o Histogram) {
	if h.Buckets == nil {
		h.Buckets = map[float64]float64{}
	}
	for b, c := range o.Buckets {
		h.Buckets[b] += c
	}
	h.Sum += o.Sum
	h.Count += o.Count
}

// Over is how many observations exceeded the smallest bucket bound at or above v.
func (h Histogram) Over(v float64) float64 {
	for _, b := range slices.Sorted(maps.Keys(h.Buckets)) {
		if b >= v {
			return h.Count - h.Buckets[b]
		}
	}
	return 0
}

// Slowest is the upper bound of the highest bucket that holds an observation (+Inf when one
// lies above the last bound).
func (h Histogram) Slowest() float64 {
	bounds := slices.Sorted(maps.Keys(h.Buckets))
	prev, slowest := 0.0, 0.0
	for _, b := range bounds {
		if h.Buckets[b] > prev {
			slowest = b
		}
		prev = h.Buckets[b]
	}
	if h.Count > prev && len(bounds) > 0 {
		return math.Inf(1)
	}
	return slowest
}

// ParseMetrics reads Prometheus text exposition with Prometheus's own parser.
func ParseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return families, nil
}

// HistogramOf sums the histogram family name over its label sets.
func HistogramOf(families map[string]*dto.MetricFamily, name string) (Histogram, error) {
	f, ok := families[name]
	if !ok || f.GetType() != dto.MetricType_HISTOGRAM {
		return Histogram{}, fmt.Errorf("histogram %s not exposed", name)
	}
	h := Histogram{Buckets: map[float64]float64{}}
	for _, m := range f.GetMetric() {
		hist := m.GetHistogram()
		for _, b := range hist.GetBucket() {
			h.Buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
		h.Sum += hist.GetSampleSum()
		h.Count += float64(hist.GetSampleCount())
	}
	return h, nil
}

// FetchMetrics scrapes a node's /metrics.
func FetchMetrics(ctx context.Context, metricsAddr string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsAddr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsAddr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", metricsAddr, resp.Status)
	}
	families, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsAddr, err)
	}
	return families, nil
}

// FetchHistogram scrapes one histogram from a node's /metrics.
func FetchHistogram(ctx context.Context, metricsAddr, name string) (Histogram, error) {
	families, err := FetchMetrics(ctx, metricsAddr)
	if err != nil {
		return Histogram{}, err
	}
	h, err := HistogramOf(families, name)
	if err != nil {
		return Histogram{}, fmt.Errorf("scrape %s: %w", metricsAddr, err)
	}
	return h, nil
}
