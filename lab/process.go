package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessSpec is a process to run detached from the lab: in its own session, so a Ctrl-C in
// the terminal does not reach it, with its output in files and its PID in a file.
type ProcessSpec struct {
	// Name says what it is in messages ("node 3", "proxies").
	Name       string
	Binary     string
	Args       []string
	Dir        string
	PIDFile    string
	StdoutFile string
	StderrFile string
}

// StartDetached starts the process and writes its PID file. The process is not waited for;
// processAlive reaps it once it exits if it is this process's child.
func StartDetached(spec ProcessSpec) (int, error) {
	for _, f := range []string{spec.PIDFile, spec.StdoutFile, spec.StderrFile} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return 0, fmt.Errorf("start %s: create %s: %w", spec.Name, filepath.Dir(f), err)
		}
	}
	stdout, err := os.OpenFile(spec.StdoutFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(spec.StderrFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	defer stderr.Close()
	cmd := exec.Command(spec.Binary, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Binary, err)
	}
	pid := cmd.Process.Pid
	if err := writeFileAtomic(spec.PIDFile, []byte(strconv.Itoa(pid)+"\n")); err != nil {
		// Without a PID file nothing could stop it later: stop it now.
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		return 0, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	_ = cmd.Process.Release()
	return pid, nil
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
// process's exited child it reaps it, so a cluster started and stopped by one process (a
// test) leaves no zombie behind.
func ProcessAlive(pid int) bool {
	var ws syscall.WaitStatus
	if got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); err == nil && got == pid {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may hold spaces.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 || end+2 >= len(stat) {
		return true
	}
	state := stat[end+2]
	return state != 'Z' && state != 'X'
}

// ProcessArgs returns the argv of a running process from /proc/PID/cmdline.
func ProcessArgs(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, fmt.Errorf("read cmdline of pid %d: %w", pid, err)
	}
	raw = bytes.TrimRight(raw, "\x00")
	if len(raw) == 0 {
		return nil, nil
	}
	return strings.Split(string(raw), "\x00"), nil
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
	argv, err := ProcessArgs(pid)
	if err != nil || !matches(argv) {
		return 0, false
	}
	return pid, true
}

// GeoraftdWithConfig matches a node started with `--config PATH` (or --config=PATH) for
// that PATH, whatever the binary is called (--georaftd may name any build). The config path
// is one this run wrote, so no unrelated process carries it. A georaftd that is a script
// shows its interpreter first (`sh georaftd --config PATH`).
func GeoraftdWithConfig(configPath string) ArgvMatcher {
	return func(argv []string) bool {
		for i := 0; i < len(argv) && i < 2; i++ {
			if flagValue(argv[i+1:], "--config") == configPath {
				return true
			}
		}
		return false
	}
}

// LabProxyServe matches `georaft-lab proxy-serve --plan PATH` for that PATH.
func LabProxyServe(planPath string) ArgvMatcher {
	return func(argv []string) bool {
		if len(argv) < 2 || filepath.Base(argv[0]) != "georaft-lab" {
			return false
		}
		hasCommand := false
		for _, a := range argv[1:] {
			if a == "proxy-serve" {
				hasCommand = true
			}
		}
		return hasCommand && flagValue(argv[1:], "--plan") == planPath
	}
}

func flagValue(args []string, name string) string {
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
	if !matches(argv) {
		return NotOurs, pid, removePID()
	}
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

// tailFile returns the last lines of a file (at most maxBytes), for error messages.
func tailFile(path string, maxLines int) string {
	const maxBytes = 8 << 10
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
