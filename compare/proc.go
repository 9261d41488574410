package compare

import (
	"fmt"
	"time"

	"github.com/prometheus/procfs"
)

// ProcessCPU is the user+system CPU time pid has used so far.
func ProcessCPU(pid int) (time.Duration, error) { return processCPU(procfs.DefaultMountPoint, pid) }

// processCPU reads pid's utime and stime under the proc file system mounted at mount.
func processCPU(mount string, pid int) (time.Duration, error) {
	fs, err := procfs.NewFS(mount)
	if err == nil {
		var p procfs.Proc
		if p, err = fs.Proc(pid); err == nil {
			var st procfs.ProcStat
			if st, err = p.Stat(); err == nil {
				// utime and stime count USER_HZ ticks: 100 a second on every Linux Go supports.
				return time.Duration(st.UTime+st.STime) * time.Second / 100, nil
			}
		}
	}
	return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
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
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "", fmt.Errorf("read load average: %w", err)
	}
	l, err := fs.LoadAvg()
	if err != nil {
		return "", fmt.Errorf("read load average: %w", err)
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l.Load1, l.Load5, l.Load15), nil
}
