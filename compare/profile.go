package compare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/georaft/georaft/client/bench"
)

// profiledWorkloads are re-run, unmeasured, with profilers attached: the writes at one
// client (latency) and at 64 (throughput), lease and index reads at 64, and the 90/10 mix.
var profiledWorkloads = []struct {
	workload string
	modes    []string
	file     string
}{
	{WriteC1, nil, "write-c1"},
	{WriteC64, nil, "write-c64"},
	{LinReadC64, []string{GeoraftLease}, "lease-c64"},
	{LinReadC64, []string{GeoraftIndex}, "index-c64"},
	{Mix90C64, nil, "mix-c64"},
}

// profileGeoraft re-runs the profiled workloads against georaft with `perf record` on the
// leader's process and on one follower's, and runtime/pprof on the harness (load
// generator + client library). georaftd has no /debug/pprof endpoint, so perf is the way
// into the servers. The text reports and the harness's pprof files go to
// RUN_DIR/profiles/compare-<time>/ (lab-run/, which git ignores): results/ keeps summaries.
func (r *runner) profileGeoraft(ctx context.Context, s system) ([]string, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, errors.New("perf not installed (apt-get install linux-perf): no server profile")
	}
	leader, ok := s.LeaderPID()
	if !ok {
		return nil, errors.New("georaft leader process not found")
	}
	targets := map[string]int{"leader": leader}
	for _, pid := range s.ServerPIDs() {
		if pid != leader {
			targets["follower"] = pid
			break
		}
	}
	dir := r.profileDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create profile dir: %w", err)
	}
	var written []string
	for _, p := range profiledWorkloads {
		w, ok := r.workload(p.workload)
		if !ok {
			continue
		}
		modes := w.GeoraftModes
		if p.modes != nil {
			modes = p.modes
		}
		fmt.Fprintf(r.out, "profiling georaft (leader pid %d, follower pid %d) under %s %v\n", leader, targets["follower"], p.workload, modes)
		files, err := r.profileOnce(ctx, perf, targets, s, w, modes, dir, p.file)
		written = append(written, files...)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (r *runner) workload(name string) (Workload, bool) {
	for _, w := range r.opts.Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

type perfRecording struct {
	role string
	pid  int
	data string
	cmd  *exec.Cmd
	out  strings.Builder
}

// stop makes perf write its file (it does on SIGINT) and waits for it.
func (p *perfRecording) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		return fmt.Errorf("perf record of the %s did not stop within 30s: %s", p.role, p.out.String())
	}
}

func (r *runner) profileOnce(ctx context.Context, perf string, targets map[string]int, s system, w Workload, modes []string, dir, name string) ([]string, error) {
	var recs []*perfRecording
	stopAll := func() error {
		var errs []error
		for _, rec := range recs {
			errs = append(errs, rec.stop())
		}
		return errors.Join(errs...)
	}
	roles := make([]string, 0, len(targets))
	for role := range targets {
		roles = append(roles, role)
	}
	slices.Sort(roles)
	for _, role := range roles {
		rec := &perfRecording{role: role, pid: targets[role], data: filepath.Join(r.opts.RunDir, "perf-"+name+"-"+role+".data")}
		// cpu-clock: a VM has no hardware cycle counter, and perf's default event then
		// records nothing.
		rec.cmd = exec.Command(perf, "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", fmt.Sprint(rec.pid), "-o", rec.data)
		rec.cmd.Stdout, rec.cmd.Stderr = &rec.out, &rec.out
		if err := rec.cmd.Start(); err != nil {
			return nil, errors.Join(fmt.Errorf("start perf record: %w", err), stopAll())
		}
		recs = append(recs, rec)
	}
	harness := filepath.Join(dir, "harness-"+name+".pprof")
	f, err := os.Create(harness)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create %s: %w", harness, err), stopAll())
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, errors.Join(fmt.Errorf("harness CPU profile: %w", err), stopAll())
	}
	cpu0 := map[string]time.Duration{}
	for _, rec := range recs {
		cpu0[rec.role], _ = ProcessCPU(rec.pid)
	}
	rep, runErr := bench.Run(ctx, w.Config(r.opts.Engine, s.Driver(), modes, nil))
	pprof.StopCPUProfile()
	f.Close()
	written := []string{rel(r.opts.WorkDir, harness)}
	cpu := map[string]time.Duration{}
	for _, rec := range recs {
		c, _ := ProcessCPU(rec.pid)
		cpu[rec.role] = c - cpu0[rec.role]
	}
	if err := stopAll(); err != nil {
		return written, err
	}
	if runErr != nil {
		return written, fmt.Errorf("profiled run: %w", runErr)
	}
	var ops int64
	for _, row := range rep.Rows {
		ops += row.Ops
	}
	for _, rec := range recs {
		report := filepath.Join(dir, "perf-georaft-"+rec.role+"-"+name+".txt")
		var b strings.Builder
		fmt.Fprintf(&b, "perf profile (cpu-clock, 999 Hz, call graphs) of the georaft %s (pid %d) during an unmeasured run of %s %v on loopback: %v warmup + %v.\n",
			rec.role, rec.pid, w.Name, modes, r.opts.Engine.Warmup, r.opts.Engine.Duration)
		fmt.Fprintf(&b, "The run did %d operations; this process used %v of CPU (%.0fµs per measured operation, idle included).\n",
			ops, cpu[rec.role].Round(time.Millisecond), float64(cpu[rec.role])/float64(max(ops, 1))/float64(time.Microsecond))
		for _, view := range []struct {
			title string
			args  []string
		}{
			{"self time by symbol (flat)", []string{"--no-children", "--sort", "symbol", "--percent-limit", "0.8"}},
			{"inclusive time by symbol (children included)", []string{"--children", "--sort", "symbol", "--percent-limit", "4"}},
			{"by shared object", []string{"--no-children", "--sort", "dso"}},
		} {
			args := append([]string{"report", "-i", rec.data, "--stdio", "-g", "none"}, view.args...)
			out, err := exec.CommandContext(ctx, perf, args...).CombinedOutput()
			if err != nil {
				return written, fmt.Errorf("perf report: %w: %s", err, out)
			}
			fmt.Fprintf(&b, "\n===== %s =====\n%s", view.title, stripPerfComments(string(out)))
		}
		if err := os.WriteFile(report, []byte(b.String()), 0o644); err != nil {
			return written, fmt.Errorf("write %s: %w", report, err)
		}
		written = append(written, rel(r.opts.WorkDir, report))
	}
	return written, nil
}

// stripPerfComments drops perf's "#" header lines except the column titles and the sample
// count, squeezes blank runs and trims the column padding perf adds.
func stripPerfComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") && !strings.Contains(line, "Overhead") && !strings.Contains(line, "Samples") {
			continue
		}
		line = strings.TrimRight(line, " -")
		if strings.TrimSpace(line) == "" && len(out) > 0 && out[len(out)-1] == "" {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

// profileDir is where a run's profiles go: beside its PID files and logs, not in results/.
func (r *runner) profileDir() string {
	return filepath.Join(r.opts.RunDir, "profiles", filepath.Base(r.res.Dir))
}

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil {
		return r
	}
	return path
}
