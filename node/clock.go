package node

import "time"

// monoClock reads the process's monotonic clock as a duration since the node started. Leases
// are computed on it, never on wall time, which can jump.
type monoClock struct {
	start time.Time
	rate  float64 // 1 in production; a test build may skew it (clock_testhooks.go)
}

func newMonoClock() *monoClock {
	return &monoClock{start: time.Now(), rate: clockRateFromTestHook()}
}

// Now returns the time elapsed on this node's clock.
func (c *monoClock) Now() time.Duration {
	elapsed := time.Since(c.start)
	if c.rate == 1 {
		return elapsed
	}
	return time.Duration(float64(elapsed) * c.rate)
}

// Until converts a deadline on this clock into a real duration to wait.
func (c *monoClock) Until(deadline time.Duration) time.Duration {
	d := deadline - c.Now()
	if c.rate != 1 {
		d = time.Duration(float64(d) / c.rate)
	}
	return d
}
