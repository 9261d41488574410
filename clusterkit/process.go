package clusterkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// ProcessSpec is a process the kit starts: a node, a proxy process, an etcd member.
type ProcessSpec struct {
	// Name says what it is in messages ("node 3", "proxies").
	Name   string
	Binary string
	Args   []string
	Dir    string
	// Env is the whole environment; nil inherits this process's.
	Env []string
	// LogFile receives stdout and stderr, appended, after a line marking the start.
	LogFile string
	// PIDFile, when set, holds the PID while the process runs.
	PIDFile string
	// Detached processes outlive this one: they run in their own session, are not waited
	// for, and are stopped later by their PID file (StopByPIDFile), possibly by another
	// process. Attached ones die with this process (PR_SET_PDEATHSIG) and report their exit.
	Detached bool
	// Matches recognises the process in /proc by its argv, so a reused PID is never
	// signalled. Nil matches any argv.
	Matches ArgvMatcher
	// OnExit is called (attached processes only) once the process has exited; expected is
	// false when it exited without being asked to.
	OnExit func(state *os.ProcessState, expected bool)
}

// Process is a running process the kit started, or found through a PID file.
type Process struct {
	spec ProcessSpec
	pid  int

	mu sync.Mutex
	// done is closed when an attached process has exited; nil for a detached one.
	done       chan struct{}
	state      *os.ProcessState
	expectExit bool
	paused     bool
}

// spawner forks every attached process from one OS thread that lives as long as this
// process. PR_SET_PDEATHSIG fires when the thread that forked a child exits, not the
// process; forking from a locked thread that never exits means the children die with this
// process and only then, even when a test binary is killed by its timeout.
var spawner struct {
	once sync.Once
	reqs chan spawnRequest
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func spawn(cmd *exec.Cmd) error {
	spawner.once.Do(func() {
		spawner.reqs = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread must outlive every child
			for req := range spawner.reqs {
				req.done <- req.cmd.Start()
			}
		}()
	})
	done := make(chan error, 1)
	spawner.reqs <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

// StartProcess starts spec's process. An attached process is waited for in the background;
// a detached one is released once its PID file is written.
func StartProcess(spec ProcessSpec) (*Process, error) {
	for _, f := range []string{spec.LogFile, spec.PIDFile} {
		if f == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	logOut := io.Discard
	var logFile *os.File
	if spec.LogFile != "" {
		f, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start %s: open log: %w", spec.Name, err)
		}
		logFile, logOut = f, f
		fmt.Fprintf(f, "=== %s: %s %s ===\n", time.Now().UTC().Format(time.RFC3339Nano), spec.Name, strings.Join(spec.Args, " "))
	}
	cmd := exec.Command(spec.Binary, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	cmd.Stdout, cmd.Stderr = logOut, logOut
	var err error
	if spec.Detached {
		// Own session: a Ctrl-C in the terminal that started it does not reach it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		err = cmd.Start()
	} else {
		// Own process group: a Ctrl-C reaches the harness, which stops the process itself.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		err = spawn(cmd)
	}
	if err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Binary, err)
	}
	p := &Process{spec: spec, pid: cmd.Process.Pid}
	if !spec.Detached {
		p.done = make(chan struct{})
		go p.wait(cmd, logFile)
	} else if logFile != nil {
		logFile.Close() // the child holds its own descriptor
	}
	if spec.PIDFile != "" {
		if err := writeFileAtomic(spec.PIDFile, []byte(strconv.Itoa(p.pid)+"\n")); err != nil {
			// Without a PID file nothing could stop it later: stop it now.
			_ = p.Kill(10 * time.Second)
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	if spec.Detached {
		_ = cmd.Process.Release()
	}
	return p, nil
}

func (p *Process) wait(cmd *exec.Cmd, logFile *os.File) {
	_ = cmd.Wait()
	if logFile != nil {
		logFile.Close()
	}
	p.mu.Lock()
	expected := p.expectExit
	p.state, p.paused = cmd.ProcessState, false
	p.mu.Unlock()
	if p.spec.PIDFile != "" {
		_ = os.Remove(p.spec.PIDFile)
	}
	close(p.done)
	if p.spec.OnExit != nil {
		p.spec.OnExit(cmd.ProcessState, expected)
	}
}

// FindProcess returns the live process a PID file names, if its argv still matches: a
// detached process started earlier, perhaps by another program.
func FindProcess(pidFile string, matches ArgvMatcher) (*Process, bool) {
	pid, ok := LivePID(pidFile, matches)
	if !ok {
		return nil, false
	}
	return &Process{spec: ProcessSpec{PIDFile: pidFile, Matches: matches, Detached: true}, pid: pid}, true
}

// PID is the process id.
func (p *Process) PID() int { return p.pid }

// Running reports whether the process is still there (a paused process is).
func (p *Process) Running() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	if !ProcessAlive(p.pid) {
		return false
	}
	if p.spec.Matches == nil {
		return true
	}
	argv, err := ProcessArgs(p.pid)
	return err == nil && p.spec.Matches(argv)
}

// Paused reports whether the kit stopped it with SIGSTOP and has not resumed it.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Exited returns how an attached process ended, and whether it was asked to; nil while it
// runs (and always for a detached one).
func (p *Process) Exited() (*os.ProcessState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.expectExit
}

// Signal sends sig. SIGKILL and SIGTERM mark the exit that follows as asked for;
// SIGSTOP and SIGCONT pause and resume.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.Running() {
		return fmt.Errorf("signal %s with %v: not running", p.name(), sig)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.expectExit = true
	}
	if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d) with %v: %w", p.name(), p.pid, sig, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return nil
}

func (p *Process) name() string {
	if p.spec.Name != "" {
		return p.spec.Name
	}
	return fmt.Sprintf("pid %d", p.pid)
}

// Pause stops the process with SIGSTOP; Resume continues it.
func (p *Process) Pause() error  { return p.Signal(syscall.SIGSTOP) }
func (p *Process) Resume() error { return p.Signal(syscall.SIGCONT) }

// WaitExit waits until the process is gone, at most timeout.
func (p *Process) WaitExit(timeout time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(timeout):
			return false
		}
	}
	return waitExit(context.Background(), p.pid, timeout)
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill(timeout time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.WaitExit(timeout) {
		return fmt.Errorf("%s (pid %d) still present %s after SIGKILL", p.name(), p.pid, timeout)
	}
	p.exited()
	return nil
}

// exited removes a detached process's PID file once the kit has stopped it (an attached
// one's goes when it is waited for).
func (p *Process) exited() {
	if p.done == nil && p.spec.PIDFile != "" {
		_ = os.Remove(p.spec.PIDFile)
	}
}

// Terminate asks the process to stop (SIGCONT first, since a paused process cannot act on
// SIGTERM, then SIGTERM) and kills it if it has not exited after grace.
func (p *Process) Terminate(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGCONT); err != nil {
		return err
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if p.WaitExit(grace) {
		p.exited()
		return nil
	}
	return p.Kill(10 * time.Second)
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// ReadPIDFile returns the PID in path; ok is false if the file does not exist.
func ReadPIDFile(path string) (pid int, ok bool, err error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read pid file: %w", err)
	}
	pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return 0, false, fmt.Errorf("pid file %s: want a process id, got %q", path, strings.TrimSpace(string(raw)))
	}
	return pid, true, nil
}

// ProcessAlive reports whether pid is a running (not zombie) process. If pid is this
// process's exited child it reaps it, so a detached process started and stopped by one
// program (a test) leaves no zombie behind.
func ProcessAlive(pid int) bool {
	var ws syscall.WaitStatus
	if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && got == pid {
		return false
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	return err == nil && st.State != "Z" && st.State != "X"
}

// ProcessArgs returns the argv of a running process.
func ProcessArgs(pid int) ([]string, error) {
	p, err := procfs.NewProc(pid)
	if err == nil {
		var argv []string
		if argv, err = p.CmdLine(); err == nil {
			return argv, nil
		}
	}
	return nil, fmt.Errorf("read cmdline of pid %d: %w", pid, err)
}

// ArgvMatcher tells whether a process's argv is the one a PID file was written for.
type ArgvMatcher func(argv []string) bool

// LivePID returns the PID in pidFile if that process runs and is still the one the file was
// written for (a PID may have been reused by an unrelated process since).
func LivePID(pidFile string, matches ArgvMatcher) (int, bool) {
	pid, ok, err := ReadPIDFile(pidFile)
	if err != nil || !ok || !ProcessAlive(pid) {
		return 0, false
	}
	if matches == nil {
		return pid, true
	}
	argv, err := ProcessArgs(pid)
	if err != nil || !matches(argv) {
		return 0, false
	}
	return pid, true
}

// GeoraftdWithConfig matches a node started with `--config PATH` (or --config=PATH) for
// that PATH, whatever the binary is called. The config path is one the kit wrote or read,
// so no unrelated process carries it. A georaftd that is a script shows its interpreter
// first (`sh georaftd --config PATH`).
func GeoraftdWithConfig(configPath string) ArgvMatcher {
	return func(argv []string) bool {
		for i := 0; i < len(argv) && i < 2; i++ {
			if FlagValue(argv[i+1:], "--config") == configPath {
				return true
			}
		}
		return false
	}
}

// CommandWithFlag matches `BINARY ... SUBCOMMAND ... FLAG VALUE` for a binary of that base
// name: a proxy-serve process of a given plan, an etcd member of a given data dir. An empty
// subcommand is not looked for.
func CommandWithFlag(binary, subcommand, flag, value string) ArgvMatcher {
	return func(argv []string) bool {
		if len(argv) < 2 || filepath.Base(argv[0]) != binary {
			return false
		}
		if subcommand != "" && !slices.Contains(argv[1:], subcommand) {
			return false
		}
		return FlagValue(argv[1:], flag) == value
	}
}

// FlagValue is the value of flag name in args (`--name VALUE` or `--name=VALUE`), or "".
func FlagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// StopOutcome says what StopByPIDFile found and did.
type StopOutcome int

const (
	// NoPIDFile: nothing was started, or it was already stopped.
	NoPIDFile StopOutcome = iota
	// WasNotRunning: the PID file named a process that is gone; the file was removed.
	WasNotRunning
	// NotOurs: the PID now belongs to another program; it was not signalled, and the stale
	// PID file was removed.
	NotOurs
	// Terminated: it exited on SIGTERM.
	Terminated
	// Killed: it outlived the grace period and was sent SIGKILL.
	Killed
)

func (o StopOutcome) String() string {
	return [...]string{"no pid file", "was not running", "pid reused by another program, not signalled", "stopped", "killed after grace period"}[o]
}

// StopByPIDFile stops the process named by pidFile if, and only if, its argv still matches:
// SIGTERM, then SIGKILL once grace has passed. It returns once the process is gone.
func StopByPIDFile(ctx context.Context, pidFile string, matches ArgvMatcher, grace time.Duration) (StopOutcome, int, error) {
	pid, ok, err := ReadPIDFile(pidFile)
	if err != nil || !ok {
		return NoPIDFile, 0, err
	}
	removePID := func() error {
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove pid file: %w", err)
		}
		return nil
	}
	if !ProcessAlive(pid) {
		return WasNotRunning, pid, removePID()
	}
	argv, err := ProcessArgs(pid)
	if err != nil {
		if !ProcessAlive(pid) {
			return WasNotRunning, pid, removePID()
		}
		return NoPIDFile, pid, err
	}
	if matches != nil && !matches(argv) {
		return NotOurs, pid, removePID()
	}
	// A paused process cannot act on SIGTERM.
	_ = syscall.Kill(pid, syscall.SIGCONT)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return NoPIDFile, pid, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	if waitExit(ctx, pid, grace) {
		return Terminated, pid, removePID()
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return NoPIDFile, pid, fmt.Errorf("kill pid %d: %w", pid, err)
	}
	// SIGKILL cannot be ignored; the wait is for the kernel to tear the process down. The
	// caller's context may already be done (Ctrl-C), which must not leave it running.
	if waitExit(context.Background(), pid, 10*time.Second) {
		return Killed, pid, removePID()
	}
	return Killed, pid, fmt.Errorf("pid %d still present 10s after SIGKILL", pid)
}

// waitExit polls until pid is gone or the timeout passes; a done ctx shortens the wait to
// nothing so the caller escalates at once.
func waitExit(ctx context.Context, pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !ProcessAlive(pid) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Tail returns the last lines of a file (looking at its last 16 KiB), for error messages.
func Tail(path string, maxLines int) string {
	const maxBytes = 16 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot stat %s: %v)", path, err)
	}
	start := max(info.Size()-maxBytes, 0)
	buf := make([]byte, info.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	text := strings.Join(lines, "\n")
	if strings.TrimSpace(text) == "" {
		return "(" + path + " is empty)"
	}
	return text
}
