package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/georaft/georaft/clusterkit"
)

// fsyncMetric is georaftd's histogram of WAL write+fsync times.
const fsyncMetric = "georaft_wal_fsync_seconds"

// FsyncStats sums the nodes' WAL fsync histograms over every process the run started. A
// leader whose fsync stalls stops sending heartbeats, so stalls explain timing anomalies
// that come from the machine rather than from georaft.
type FsyncStats struct {
	mu sync.Mutex
	// Buckets maps an upper bound in seconds to the cumulative count at or under it.
	Buckets map[float64]float64
	Count   float64
	Sum     float64
	// Scrapes and Failed count the scrapes tried and those that got no answer.
	Scrapes int
	Failed  int
}

// MarshalJSON writes the summary figures (JSON maps cannot have float keys).
func (s *FsyncStats) MarshalJSON() ([]byte, error) {
	slowest := s.Slowest()
	var slowestJSON any = slowest
	if math.IsInf(slowest, 1) {
		slowestJSON = "+Inf"
	}
	s.mu.Lock()
	count, sum, scrapes, failed := s.Count, s.Sum, s.Scrapes, s.Failed
	s.mu.Unlock()
	return json.Marshal(map[string]any{
		"count": count, "sum_seconds": sum, "over_100ms": s.Over(100 * time.Millisecond),
		"over_500ms": s.Over(500 * time.Millisecond), "slowest_bucket_seconds": slowestJSON,
		"scrapes": scrapes, "failed_scrapes": failed,
	})
}

func (s *FsyncStats) add(h clusterkit.Histogram) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Buckets == nil {
		s.Buckets = map[float64]float64{}
	}
	for b, c := range h.Buckets {
		s.Buckets[b] += c
	}
	s.Count += h.Count
	s.Sum += h.Sum
}

// sortedBounds lists the bucket bounds in increasing order; the caller holds s.mu.
func (s *FsyncStats) sortedBounds() []float64 {
	bounds := make([]float64, 0, len(s.Buckets))
	for b := range s.Buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	return bounds
}

// Over is how many fsyncs took longer than the smallest bucket bound at or above d.
func (s *FsyncStats) Over(d time.Duration) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	bounds := s.sortedBounds()
	for _, b := range bounds {
		if b >= d.Seconds() {
			return s.Count - s.Buckets[b]
		}
	}
	return 0
}

// Slowest is the upper bound of the highest bucket that holds an fsync (+Inf above the
// last bound).
func (s *FsyncStats) Slowest() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	bounds := s.sortedBounds()
	prev := 0.0
	slowest := 0.0
	for _, b := range bounds {
		if s.Buckets[b] > prev {
			slowest = b
		}
		prev = s.Buckets[b]
	}
	if s.Count > prev && len(bounds) > 0 {
		return math.Inf(1)
	}
	return slowest
}

func (s *FsyncStats) String() string {
	if s.Count == 0 {
		return "no WAL fsync measured"
	}
	slowest := "over 5s"
	if v := s.Slowest(); !math.IsInf(v, 1) {
		slowest = "≤ " + time.Duration(v*float64(time.Second)).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%.0f WAL fsyncs, mean %s, %.0f over 100ms, %.0f over 500ms, slowest %s (%d of %d scrapes failed)",
		s.Count, time.Duration(s.Sum/s.Count*float64(time.Second)).Round(10*time.Microsecond),
		s.Over(100*time.Millisecond), s.Over(500*time.Millisecond), slowest, s.Failed, s.Scrapes)
}

// scrapeFsync adds node id's fsync histogram, before the harness stops it (its counts die
// with the process) or at the end of a run.
func (c *Cluster) scrapeFsync(ctx context.Context, id uint64) {
	n := c.Kit.Node(id)
	if n == nil || n.MetricsAddr() == "" || !n.Serving() {
		return
	}
	h, err := clusterkit.FetchHistogram(ctx, n.MetricsAddr(), fsyncMetric)
	c.Fsync.mu.Lock()
	c.Fsync.Scrapes++
	if err != nil {
		c.Fsync.Failed++
	}
	c.Fsync.mu.Unlock()
	if err == nil {
		c.Fsync.add(h)
	}
}
