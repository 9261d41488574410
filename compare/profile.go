package compare

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/georaft/georaft/client/bench"
)

// profiledWorkloads are re-run, unmeasured, with profilers attached: the throughput
// targets are stated on them.
var profiledWorkloads = []struct {
	workload string
	modes    []string
	file     string
}{
	{WriteC64, nil, "write-c64"},
	{LinReadC64, []string{GeoraftLease}, "lease-c64"},
}

// profileGeoraft re-runs the profiled workloads against georaft with `perf record` on the
// leader's process and runtime/pprof on the harness (load generator + client library).
// georaftd has no /debug/pprof endpoint, so perf is the way into the server. The text
// reports and the harness's pprof files go to <results dir>/profiles/.
func (r *runner) profileGeoraft(ctx context.Context, s system) ([]string, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, errors.New("perf not installed (apt-get install linux-perf): no server profile")
	}
	pid, ok := s.LeaderPID()
	if !ok {
		return nil, errors.New("georaft leader process not found")
	}
	dir := filepath.Join(r.res.Dir, "profiles")
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
		fmt.Fprintf(r.out, "profiling georaft leader (pid %d) under %s %v\n", pid, p.workload, modes)
		data := filepath.Join(r.opts.RunDir, "perf-"+p.file+".data")
		files, err := r.profileOnce(ctx, perf, pid, s, w, modes, data, dir, p.file)
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

func (r *runner) profileOnce(ctx context.Context, perf string, pid int, s system, w Workload, modes []string, data, dir, name string) ([]string, error) {
	rec := exec.Command(perf, "record", "-F", "499", "-g", "-p", fmt.Sprint(pid), "-o", data)
	var recOut strings.Builder
	rec.Stdout, rec.Stderr = &recOut, &recOut
	if err := rec.Start(); err != nil {
		return nil, fmt.Errorf("start perf record: %w", err)
	}
	harness := filepath.Join(dir, "harness-"+name+".pprof")
	f, err := os.Create(harness)
	if err != nil {
		_ = rec.Process.Kill()
		_ = rec.Wait()
		return nil, fmt.Errorf("create %s: %w", harness, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		_ = rec.Process.Kill()
		_ = rec.Wait()
		return nil, fmt.Errorf("harness CPU profile: %w", err)
	}
	cfg := w.Config(r.opts.Engine, s.Driver(), modes, nil)
	_, runErr := bench.Run(ctx, cfg)
	pprof.StopCPUProfile()
	f.Close()
	// perf writes its file on SIGINT.
	_ = rec.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- rec.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = rec.Process.Kill()
		<-done
		return []string{rel(r.res.Dir, harness)}, fmt.Errorf("perf record did not stop within 30s: %s", recOut.String())
	}
	if runErr != nil {
		return []string{rel(r.res.Dir, harness)}, fmt.Errorf("profiled run: %w", runErr)
	}
	report := filepath.Join(dir, "perf-georaft-leader-"+name+".txt")
	var b strings.Builder
	fmt.Fprintf(&b, "perf profile of the georaft leader (pid %d) during an unmeasured run of %s %v, loopback, %v\n", pid, w.Name, modes, r.opts.Engine.Warmup+r.opts.Engine.Duration)
	for _, view := range []struct {
		title string
		args  []string
	}{
		{"self time by symbol (flat)", []string{"--no-children", "--sort", "symbol", "--percent-limit", "0.8"}},
		{"inclusive time by symbol (children included)", []string{"--children", "--sort", "symbol", "--percent-limit", "4"}},
		{"by shared object", []string{"--no-children", "--sort", "dso"}},
	} {
		args := append([]string{"report", "-i", data, "--stdio", "-g", "none"}, view.args...)
		out, err := exec.CommandContext(ctx, perf, args...).CombinedOutput()
		if err != nil {
			return []string{rel(r.res.Dir, harness)}, fmt.Errorf("perf report: %w: %s", err, out)
		}
		fmt.Fprintf(&b, "\n===== %s =====\n%s", view.title, stripPerfComments(string(out)))
	}
	if err := os.WriteFile(report, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", report, err)
	}
	return []string{rel(r.res.Dir, report), rel(r.res.Dir, harness)}, nil
}

// stripPerfComments drops perf's "#" header lines except the column titles and blank runs.
func stripPerfComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") && !strings.Contains(line, "Overhead") && !strings.Contains(line, "Samples") {
			continue
		}
		if strings.TrimSpace(line) == "" && len(out) > 0 && out[len(out)-1] == "" {
			continue
		}
		out = append(out, strings.TrimRight(line, " "))
	}
	return strings.Join(out, "\n") + "\n"
}

func rel(base, path string) string {
	if r, err := filepath.Rel(base, path); err == nil {
		return r
	}
	return path
}
