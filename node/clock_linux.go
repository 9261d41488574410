package node

import (
	"crypto/sha256"
	"encoding/binary"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// clockCountsSuspend: CLOCK_BOOTTIME keeps counting while the machine is suspended, which a
// leader's lease and a stale read's bound rely on.
const clockCountsSuspend = true

// systemClock reads CLOCK_BOOTTIME: monotonic, system-wide, counting through suspend.
func systemClock() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// CLOCK_BOOTTIME exists on every kernel Go supports; this is unreachable in practice.
		panic("georaftd: cannot read CLOCK_BOOTTIME: " + err.Error())
	}
	return time.Duration(ts.Nano())
}

// bootIDPath holds the kernel's identity of this boot, which is the origin of
// CLOCK_BOOTTIME: it changes exactly when that clock restarts from zero.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// clockBootID names the origin of systemClock (raft.Config.BootID).
func clockBootID() uint64 {
	b, err := os.ReadFile(bootIDPath)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		// Without the kernel's boot identity, a random one per process is still correct:
		// it only costs the stale-read freshness echoed from before a process restart.
		return randomBootID()
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
	return binary.LittleEndian.Uint64(sum[:8]) | 1
}
