//go:build !linux

package node

import "time"

// clockCountsSuspend: Go's monotonic clock stops while the machine sleeps on some systems,
// and a leader whose clock stopped would go on serving reads on a lease that has run out in
// real time. Without a clock known to count through suspend, the node serves no lease reads
// (they fall back to ReadIndex) and no bounded-staleness reads.
const clockCountsSuspend = false

var processStart = time.Now()

// systemClock falls back to Go's monotonic clock since the process started where
// CLOCK_BOOTTIME does not exist; it restarts with the process.
func systemClock() time.Duration { return time.Since(processStart) + time.Second }

// bootID is drawn once per process, since the clock restarts with the process.
var bootID = randomBootID()

func clockBootID() uint64 { return bootID }
