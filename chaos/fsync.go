package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
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
	clusterkit.Histogram
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
	s.Histogram.Add(h)
}

// Over is how many fsyncs took longer than the smallest bucket bound at or above d.
func (s *FsyncStats) Over(d time.Duration) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Histogram.Over(d.Seconds())
}

// Slowest is the upper bound of the highest bucket that holds an fsync (+Inf above the
// last bound).
func (s *FsyncStats) Slowest() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Histogram.Slowest()
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
