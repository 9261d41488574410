package node

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// monoClock is the node's clock for leases and timers: the machine's boot-time clock, which
// never jumps, keeps counting while the machine or VM is suspended, and does not restart with
// the process. Wall time, which can jump, is never used for any of it.
//
// Counting through a suspend matters for leases: a leader whose VM is frozen for longer than
// its lease finds the lease expired when it wakes, instead of serving reads on it. Not
// restarting with the process keeps clock readings the node sent before a crash (echoed back
// by the leader) comparable with its own after the restart.
type monoClock struct {
	start time.Duration // the system clock when the node started
	rate  float64       // 1 in production; a test build may skew it (clock_testhooks.go)
	// bootID names the clock's origin (raft.Config.BootID).
	bootID uint64
	// countsSuspend is false where the clock may stop while the machine sleeps
	// (clock_other.go): such a node cannot know how much real time passed, so it serves no
	// read on its own clock (Node.readBarrier).
	countsSuspend bool
}

func newMonoClock() *monoClock {
	return &monoClock{start: systemClock(), rate: clockRateFromTestHook(), bootID: clockBootID(),
		countsSuspend: clockCountsSuspend && !testingClockStopsInSuspend}
}

// testingClockStopsInSuspend makes nodes started from now on behave as on a platform whose
// clock stops during suspend, so the rule can be tested on Linux.
var testingClockStopsInSuspend bool

// Now reads the clock.
func (c *monoClock) Now() time.Duration {
	now := systemClock()
	if c.rate == 1 {
		return now
	}
	// A skewed clock runs at rate from the node's start, so it does not jump at start-up.
	return c.start + time.Duration(float64(now-c.start)*c.rate)
}

// Until converts a deadline on this clock into a real duration to wait.
func (c *monoClock) Until(deadline time.Duration) time.Duration {
	d := deadline - c.Now()
	if c.rate != 1 {
		d = time.Duration(float64(d) / c.rate)
	}
	return d
}

// randomBootID draws a boot identity when the system offers none. Never 0, which a message
// from a node that sets none carries.
func randomBootID() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("georaftd: no randomness for a boot id: " + err.Error())
	}
	return binary.LittleEndian.Uint64(b[:]) | 1
}
