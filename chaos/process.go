package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/georaft/georaft/lab"
)

// ClockRateEnv is the variable a georaftd built with -tags georaft_testhooks reads its clock
// rate from (node/clock_testhooks.go).
const ClockRateEnv = "GEORAFT_TEST_CLOCK_RATE"

// spawner starts every node process from one OS thread that lives as long as the harness.
// Pdeathsig is delivered when the thread that forked the child exits, not the process; forking
// from a locked thread that never exits means the nodes die with the harness and only then,
// even when a test binary is killed by its timeout.
type spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

var nodeSpawner spawner

func (s *spawner) start(cmd *exec.Cmd) error {
	s.once.Do(func() {
		s.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for req := range s.reqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	s.reqs <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// nodeProcess is one georaftd member under the harness's control.
type nodeProcess struct {
	cfg     lab.NodeConfig
	binary  string
	workDir string
	logPath string

	mu        sync.Mutex
	cmd       *exec.Cmd
	pid       int
	done      chan struct{} // closed when the running process has exited
	exitState *os.ProcessState
	// expectExit is set before the harness kills or stops the process, so an exit without
	// it is a crash.
	expectExit bool
	paused     bool
	clockRate  float64
	starts     int
	// onCrash is called (outside mu) when the process exits without the harness asking.
	onCrash func(id uint64, state string, stderrTail string)
}

func (p *nodeProcess) pidFile() string { return filepath.Join(p.cfg.DataPath, lab.NodePIDFile) }

// start launches the node with its clock rate; it fails if the node is already running.
func (p *nodeProcess) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("start node %d: already running as pid %d", p.cfg.ID, p.pid)
	}
	if err := os.MkdirAll(p.cfg.DataPath, 0o755); err != nil {
		return fmt.Errorf("start node %d: create data dir: %w", p.cfg.ID, err)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start node %d: open log: %w", p.cfg.ID, err)
	}
	p.starts++
	fmt.Fprintf(logFile, "=== chaos: start %d of node %d, %s=%s ===\n", p.starts, p.cfg.ID, ClockRateEnv, formatRate(p.clockRate))
	cmd := exec.Command(p.binary, "--config", p.cfg.Path)
	cmd.Dir = p.workDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = nodeEnv(p.clockRate)
	// Own process group: a Ctrl-C at the terminal reaches the harness, which then stops the
	// nodes itself, rather than the nodes dying in an order the harness did not choose.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := nodeSpawner.start(cmd); err != nil {
		logFile.Close()
		return fmt.Errorf("start node %d (%s): %w", p.cfg.ID, p.binary, err)
	}
	done := make(chan struct{})
	p.cmd, p.pid, p.done, p.expectExit, p.paused, p.exitState = cmd, cmd.Process.Pid, done, false, false, nil
	go p.wait(cmd, logFile, done)
	// The PID file lets lab.Cluster.RunningPIDs check that nothing outlives the harness.
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		p.expectExit = true
		_ = cmd.Process.Kill()
		return fmt.Errorf("start node %d: write pid file: %w", p.cfg.ID, err)
	}
	return nil
}

func (p *nodeProcess) wait(cmd *exec.Cmd, logFile *os.File, done chan struct{}) {
	_ = cmd.Wait()
	logFile.Close()
	p.mu.Lock()
	crashed := !p.expectExit
	p.exitState = cmd.ProcessState
	if p.cmd == cmd {
		p.cmd, p.pid, p.paused = nil, 0, false
	}
	onCrash := p.onCrash
	p.mu.Unlock()
	_ = os.Remove(p.pidFile())
	close(done)
	if crashed && onCrash != nil {
		onCrash(p.cfg.ID, cmd.ProcessState.String(), tailOfFile(p.logPath, 15))
	}
}

// nodeEnv is the harness's environment without GEORAFT_ variables (which would override the
// node's config file), plus the clock rate.
func nodeEnv(rate float64) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GEORAFT_") {
			env = append(env, kv)
		}
	}
	if rate != 1 && rate != 0 {
		env = append(env, ClockRateEnv+"="+formatRate(rate))
	}
	return env
}

func formatRate(rate float64) string {
	if rate == 0 {
		rate = 1
	}
	return strconv.FormatFloat(rate, 'f', -1, 64)
}

// running reports whether the process is up (paused counts as up).
func (p *nodeProcess) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// serving reports whether the process is up and not paused.
func (p *nodeProcess) serving() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !p.paused
}

// signal sends sig to the running process; expectExit marks the exit that follows as chosen.
func (p *nodeProcess) signal(sig syscall.Signal, expectExit bool) (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, fmt.Errorf("signal node %d with %v: not running", p.cfg.ID, sig)
	}
	if expectExit {
		p.expectExit = true
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return nil, fmt.Errorf("signal node %d (pid %d) with %v: %w", p.cfg.ID, p.pid, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return p.done, nil
}

// kill sends SIGKILL and waits until the process is gone.
func (p *nodeProcess) kill() error {
	done, err := p.signal(syscall.SIGKILL, true)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("node %d still present 10s after SIGKILL", p.cfg.ID)
	}
}

// terminate sends SIGTERM (a graceful stop, which hands leadership over) and escalates to
// SIGKILL after grace.
func (p *nodeProcess) terminate(grace time.Duration) error {
	// A paused process cannot act on SIGTERM.
	if _, err := p.signal(syscall.SIGCONT, false); err != nil {
		return err
	}
	done, err := p.signal(syscall.SIGTERM, true)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(grace):
	}
	return p.kill()
}

func (p *nodeProcess) pause() error {
	_, err := p.signal(syscall.SIGSTOP, false)
	return err
}

func (p *nodeProcess) resume() error {
	_, err := p.signal(syscall.SIGCONT, false)
	return err
}

// tailOfFile returns the last lines of path (at most 16 KiB), for crash reports.
func tailOfFile(path string, lines int) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(raw) > 16<<10 {
		raw = raw[len(raw)-16<<10:]
	}
	parts := bytes.Split(bytes.TrimRight(raw, "\n"), []byte("\n"))
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return string(bytes.Join(parts, []byte("\n")))
}
