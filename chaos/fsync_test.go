package chaos

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
)

func TestFsyncStatsSumAndEncode(t *testing.T) {
	var s FsyncStats
	if !strings.Contains(s.String(), "no WAL fsync") {
		t.Fatalf("empty stats: %s", s.String())
	}
	// Two scrapes of cumulative buckets: 0.001, 0.1, 1 and +Inf.
	s.add(clusterkit.Histogram{Buckets: map[float64]float64{0.001: 5, 0.1: 9, 1: 10, math.Inf(1): 10}, Count: 10, Sum: 0.9})
	s.add(clusterkit.Histogram{Buckets: map[float64]float64{0.001: 1, 0.1: 1, 1: 1, math.Inf(1): 2}, Count: 2, Sum: 3})
	if got := s.Over(100 * time.Millisecond); got != 2 {
		t.Errorf("over 100ms: %v, want 2 (one ≤ 1s, one above every bound)", got)
	}
	if got := s.Over(time.Second); got != 1 {
		t.Errorf("over 1s: %v, want 1", got)
	}
	if !math.IsInf(s.Slowest(), 1) {
		t.Errorf("slowest %v, want +Inf", s.Slowest())
	}
	raw, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil || back["count"] != 12.0 || back["over_100ms"] != 2.0 || back["slowest_bucket_seconds"] != "+Inf" {
		t.Fatalf("json %s: %v", raw, err)
	}
}
