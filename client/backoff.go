package client

import (
	"math/rand/v2"
	"time"
)

// Backoff computes exponential backoff with full jitter: the wait before retry n (n ≥ 0) is
// uniform in [0, min(Max, Base·2ⁿ)). Full jitter spreads the retries of many clients that
// failed together (a leader change) instead of having them return in synchronized waves.
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Ceiling is the upper bound of the wait before retry n.
func (b Backoff) Ceiling(n int) time.Duration {
	if b.Base <= 0 {
		return 0
	}
	ceiling := b.Base
	for i := 0; i < n && ceiling < b.Max; i++ {
		ceiling *= 2
	}
	if b.Max > 0 && ceiling > b.Max {
		ceiling = b.Max
	}
	return ceiling
}

// Delay draws the wait before retry n from rng (the package's global source when nil).
func (b Backoff) Delay(n int, rng *rand.Rand) time.Duration {
	ceiling := b.Ceiling(n)
	if ceiling <= 0 {
		return 0
	}
	if rng == nil {
		return rand.N(ceiling)
	}
	return time.Duration(rng.Int64N(int64(ceiling)))
}
