//go:build !linux

package node

import "time"

var processStart = time.Now()

// systemClock falls back to Go's monotonic clock since the process started where
// CLOCK_BOOTTIME does not exist; leases stay correct, but a restart resets the clock.
func systemClock() time.Duration { return time.Since(processStart) + time.Second }
