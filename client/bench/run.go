// Package bench is the georaft benchmark engine: closed- or open-loop load over a Driver,
// a phase per read mode plus writes, latencies in HDR histograms, and reports as an aligned
// table, JSON, CSV and an SVG chart. `georaft bench`, the lab and the etcd comparison call
// Run.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/schollz/progressbar/v3"
)

// Histogram range: 1µs to 100s at 3 significant digits, recorded in microseconds.
const (
	histLowest  = 1
	histHighest = 100_000_000
	histDigits  = 3
)

// rowStats accumulates one report row across phases.
type rowStats struct {
	mu      sync.Mutex
	hist    *hdrhistogram.Histogram
	errors  map[string]int64
	served  map[string]int64
	elapsed time.Duration // measured time of the phases that fed this row
}

func newRowStats() *rowStats {
	return &rowStats{hist: hdrhistogram.New(histLowest, histHighest, histDigits),
		errors: map[string]int64{}, served: map[string]int64{}}
}

func (s *rowStats) success(latency time.Duration, served string) {
	us := max(latency.Microseconds(), histLowest)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Values above the range are clamped rather than lost: they still count as operations.
	if err := s.hist.RecordValue(min(us, histHighest)); err != nil {
		s.errors["unrecorded"]++
	}
	if served != "" {
		s.served[served]++
	}
}

func (s *rowStats) failure(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors[kind]++
}

type runner struct {
	cfg      Config
	classify func(error) string
	rows     map[string]*rowStats
	order    []string
}

// Run benchmarks cfg.Driver. When ctx ends early it returns the report of what was
// measured so far together with ctx's error.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	r := &runner{cfg: cfg, classify: ClassifyError, rows: map[string]*rowStats{}}
	if c, ok := cfg.Driver.(ErrorClassifier); ok {
		r.classify = c.ClassifyError
	}
	phases := cfg.phases()
	for _, p := range phases {
		if p.mode != "" {
			r.row(p.mode)
		}
	}
	if cfg.WriteRatio > 0 || cfg.WritePhase {
		r.row(WriteRow)
	}

	started := time.Now()
	var runErr error
	if cfg.Prefill {
		runErr = r.prefill(ctx)
	}
	for _, p := range phases {
		if runErr != nil {
			break
		}
		if cfg.Warmup > 0 {
			if _, err := r.load(ctx, p, cfg.Warmup, 0, false, "warmup "+p.name); err != nil {
				runErr = err
				break
			}
		}
		elapsed, err := r.load(ctx, p, cfg.Duration, cfg.Ops, true, p.name)
		r.rows[p.name].addElapsed(elapsed)
		if p.mode != "" && p.writeRatio > 0 {
			r.rows[WriteRow].addElapsed(elapsed)
		}
		runErr = err
	}
	return r.report(started, time.Since(started)), runErr
}

func (s *rowStats) addElapsed(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.elapsed += d
}

func (r *runner) row(name string) *rowStats {
	if s, ok := r.rows[name]; ok {
		return s
	}
	s := newRowStats()
	r.rows[name] = s
	r.order = append(r.order, name)
	return s
}

func (r *runner) key(i int) string { return fmt.Sprintf("%sk%07d", r.cfg.KeyPrefix, i) }

// prefill writes every key once with the same concurrency, unmeasured. It fails only if
// no write at all succeeded: then the read phases would measure nothing but errors.
func (r *runner) prefill(ctx context.Context) error {
	var next, ok atomic.Int64
	var firstErr atomic.Value
	bar := r.bar("prefill", int64(r.cfg.Keys))
	var wg sync.WaitGroup
	for w := 0; w < min(r.cfg.Concurrency, r.cfg.Keys); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := makeValue(rand.New(rand.NewPCG(r.cfg.Seed, uint64(w))), r.cfg.ValueSize)
			for {
				i := next.Add(1) - 1
				if i >= int64(r.cfg.Keys) || ctx.Err() != nil {
					return
				}
				if err := r.cfg.Driver.Set(ctx, r.key(int(i)), value); err != nil {
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
				if bar != nil {
					_ = bar.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	finishBar(bar)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ok.Load() == 0 {
		err, _ := firstErr.Load().(error)
		return fmt.Errorf("bench: prefill: no write succeeded: %w", err)
	}
	return nil
}

// load runs one phase for dur, or for ops operations when ops > 0. It returns the time
// from the phase's start until its last operation finished.
func (r *runner) load(ctx context.Context, p phase, dur time.Duration, ops int64, record bool, label string) (time.Duration, error) {
	var (
		claimed  atomic.Int64
		finished atomic.Int64
		wg       sync.WaitGroup
		interval time.Duration
	)
	if r.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / r.cfg.Rate)
	}
	total := ops
	if ops <= 0 {
		total = dur.Milliseconds()
	}
	bar := r.bar(label, total)
	start := time.Now()
	deadline := start.Add(dur)
	stopProgress := r.track(bar, start, ops, &finished)

	worker := func(w int) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(r.cfg.Seed^uint64(w+1), uint64(time.Now().UnixNano())))
		value := makeValue(rng, r.cfg.ValueSize)
		for {
			i := claimed.Add(1) - 1
			if ops > 0 && i >= ops {
				return
			}
			var intended time.Time
			if interval > 0 {
				intended = start.Add(time.Duration(i) * interval)
				if ops <= 0 && !intended.Before(deadline) {
					return
				}
				if !sleepUntil(ctx, intended) {
					return
				}
			} else {
				intended = time.Now()
				if ops <= 0 && !intended.Before(deadline) {
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			key := r.key(rng.IntN(r.cfg.Keys))
			write := p.writeRatio >= 1 || (p.writeRatio > 0 && rng.Float64() < p.writeRatio)
			var served string
			var err error
			if write {
				err = r.cfg.Driver.Set(ctx, key, value)
			} else {
				served, err = r.cfg.Driver.Get(ctx, key, p.mode)
			}
			latency := time.Since(intended)
			finished.Add(1)
			if !record {
				continue
			}
			rowName := p.mode
			if write {
				rowName = WriteRow
			}
			row := r.rows[rowName]
			if err != nil {
				if ctx.Err() != nil {
					// The run was interrupted: the operation did not fail on its own.
					return
				}
				row.failure(r.classify(err))
				continue
			}
			row.success(latency, served)
		}
	}
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Add(1)
		go worker(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	finishBar(bar)
	return elapsed, ctx.Err()
}

// sleepUntil waits for t or for ctx to end; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func makeValue(rng *rand.Rand, size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	v := make([]byte, size)
	for i := range v {
		v[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return v
}

// bar makes a progress bar on cfg.Progress, or nil when there is none.
func (r *runner) bar(label string, total int64) *progressbar.ProgressBar {
	if r.cfg.Progress == nil {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(r.cfg.Progress),
		progressbar.OptionSetDescription(fmt.Sprintf("%-14s", label)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(false),
	)
}

// track moves bar as the phase advances (by operations, or by elapsed milliseconds) until
// the returned stop is called.
func (r *runner) track(bar *progressbar.ProgressBar, start time.Time, ops int64, finished *atomic.Int64) (stop func()) {
	if bar == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(200 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				if ops > 0 {
					_ = bar.Set64(min(finished.Load(), ops))
				} else {
					_ = bar.Set64(min(time.Since(start).Milliseconds(), bar.GetMax64()))
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func finishBar(bar *progressbar.ProgressBar) {
	if bar != nil {
		_ = bar.Finish()
	}
}
