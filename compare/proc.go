package compare

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// ProcessCPU is the user+system CPU time pid has used so far.
func ProcessCPU(pid int) (time.Duration, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return parseStatCPU(stat)
}

// parseStatCPU reads utime and stime, the 14th and 15th fields of /proc/PID/stat. The
// command name (field 2) is in parentheses and may hold spaces, so counting starts after
// the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("parse /proc stat: no command name")
	}
	fields := strings.Fields(string(stat[end+1:]))
	// fields[0] is the state (field 3), so utime (field 14) is fields[11].
	if len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(fields))
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc stat utime/stime: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuOf sums the CPU time of pids; processes that vanished count as zero.
func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if d, err := ProcessCPU(pid); err == nil {
			total += d
		}
	}
	return total
}

// LoadAvg is /proc/loadavg's first three figures.
func LoadAvg() (string, error) {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "", fmt.Errorf("read load average: %w", err)
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "", fmt.Errorf("read load average: unexpected %q", raw)
	}
	return strings.Join(f[:3], " "), nil
}
