package node

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The node's clock is the machine's boot-time clock, not a count from the process start: it
// reads at least the system's uptime (/proc/uptime, which counts from boot including
// suspend), so a restarted node's readings stay comparable with those it sent before.
func TestClockCountsFromBootNotFromProcessStart(t *testing.T) {
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Skipf("no /proc/uptime: %v", err)
	}
	fields := strings.Fields(string(data))
	secs, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		t.Fatalf("parse /proc/uptime %q: %v", data, err)
	}
	uptime := time.Duration(secs * float64(time.Second))
	c := newMonoClock()
	now := c.Now()
	// /proc/uptime has 10 ms resolution and was read just before.
	if now < uptime-20*time.Millisecond || now > uptime+time.Second {
		t.Fatalf("clock reads %v, want the system uptime %v", now, uptime)
	}
	if later := c.Now(); later < now {
		t.Fatalf("clock went back from %v to %v", now, later)
	}
}
