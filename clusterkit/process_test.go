package clusterkit

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func startDetached(t *testing.T, name string, binary string, args ...string) (*Process, ProcessSpec) {
	t.Helper()
	dir := t.TempDir()
	spec := ProcessSpec{Name: name, Binary: binary, Args: args, Dir: dir, Detached: true,
		PIDFile: filepath.Join(dir, name+".pid"), LogFile: filepath.Join(dir, name+".log")}
	p, err := StartProcess(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ProcessAlive(p.PID()) {
			_ = syscall.Kill(p.PID(), syscall.SIGKILL)
		}
	})
	return p, spec
}

func TestStopByPIDFileSignalsOnlyAMatchingProcess(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	p, spec := startDetached(t, "sleeper", sleep, "300")
	pid := p.PID()
	isSleep300 := func(argv []string) bool {
		return len(argv) == 2 && filepath.Base(argv[0]) == "sleep" && argv[1] == "300"
	}
	outcome, _, err := StopByPIDFile(context.Background(), spec.PIDFile, GeoraftdWithConfig("/nowhere.yaml"), time.Second)
	if err != nil || outcome != NotOurs {
		t.Fatalf("mismatched argv: outcome %v, err %v; want NotOurs", outcome, err)
	}
	if !ProcessAlive(pid) {
		t.Fatal("a process whose argv did not match was signalled")
	}
	if _, ok, _ := ReadPIDFile(spec.PIDFile); ok {
		t.Error("the stale pid file was kept")
	}
	if err := writeFileAtomic(spec.PIDFile, []byte(strconv.Itoa(pid))); err != nil {
		t.Fatal(err)
	}
	outcome, gotPID, err := StopByPIDFile(context.Background(), spec.PIDFile, isSleep300, 5*time.Second)
	if err != nil || outcome != Terminated || gotPID != pid {
		t.Fatalf("outcome %v pid %d err %v; want Terminated %d", outcome, gotPID, err, pid)
	}
	if ProcessAlive(pid) {
		t.Error("process still alive after Terminated")
	}
	outcome, _, err = StopByPIDFile(context.Background(), spec.PIDFile, isSleep300, time.Second)
	if err != nil || outcome != NoPIDFile {
		t.Errorf("second stop: %v %v; want NoPIDFile", outcome, err)
	}
}

func TestStopByPIDFileKillsAProcessIgnoringSIGTERM(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p, spec := startDetached(t, "stubborn", sh, "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
	// The trap must be in place before the signal, or SIGTERM would simply work.
	waitFor(t, 10*time.Second, "the shell to set its trap", func() error {
		// The log's first line is the kit's, naming the command; the shell's own comes after.
		if raw, _ := os.ReadFile(spec.LogFile); !strings.Contains(string(raw), "\nready\n") {
			return errors.New("no ready line yet")
		}
		return nil
	})
	isShell := func(argv []string) bool { return len(argv) > 0 && filepath.Base(argv[0]) == "sh" }
	outcome, _, err := StopByPIDFile(context.Background(), spec.PIDFile, isShell, 200*time.Millisecond)
	if err != nil || outcome != Killed {
		t.Fatalf("outcome %v err %v; want Killed", outcome, err)
	}
	if ProcessAlive(p.PID()) {
		t.Error("still alive after SIGKILL")
	}
}

// An attached process reports its exit: as asked for after Kill or Terminate, as a crash
// when it exits on its own. Pause and resume track its state.
func TestAttachedProcessReportsHowItEnded(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	var mu sync.Mutex
	exits := map[string]bool{}
	start := func(name, script string) *Process {
		t.Helper()
		p, err := StartProcess(ProcessSpec{Name: name, Binary: sh, Args: []string{"-c", script}, Dir: dir,
			PIDFile: filepath.Join(dir, name+".pid"), LogFile: filepath.Join(dir, name+".log"),
			OnExit: func(_ *os.ProcessState, expected bool) { mu.Lock(); exits[name] = expected; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Kill(5 * time.Second) })
		return p
	}
	killed := start("killed", "while :; do sleep 0.05; done")
	crashed := start("crashed", "sleep 0.2; exit 3")
	if err := killed.Pause(); err != nil || !killed.Paused() {
		t.Fatalf("pause: %v, paused %v", err, killed.Paused())
	}
	if err := killed.Resume(); err != nil || killed.Paused() {
		t.Fatalf("resume: %v, paused %v", err, killed.Paused())
	}
	if err := killed.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !crashed.WaitExit(10 * time.Second) {
		t.Fatal("the process that exits on its own did not")
	}
	waitFor(t, 5*time.Second, "both exits reported", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(exits) < 2 {
			return errors.New("not yet")
		}
		return nil
	})
	if !exits["killed"] || exits["crashed"] {
		t.Errorf("exits seen as asked for: %v; want killed true, crashed false", exits)
	}
	if state, _ := crashed.Exited(); state == nil || state.ExitCode() != 3 {
		t.Errorf("crashed exit state %v", state)
	}
	if _, err := os.Stat(filepath.Join(dir, "killed.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file of an exited process kept: %v", err)
	}
}

// A node is recognised by the config path it was started with, whatever its binary is
// called, so a run with --georaftd naming another build still stops its nodes.
func TestGeoraftdWithConfigMatchesAnyBinaryName(t *testing.T) {
	match := GeoraftdWithConfig("/run/node1.yaml")
	for _, tc := range []struct {
		argv []string
		want bool
	}{
		{[]string{"/work/bin/georaftd", "--config", "/run/node1.yaml"}, true},
		{[]string{"/tmp/georaftd-eager", "--config=/run/node1.yaml"}, true},
		{[]string{"sh", "/tmp/georaftd.sh", "--config", "/run/node1.yaml"}, true},
		{[]string{"/work/bin/georaftd", "--config", "/run/node2.yaml"}, false},
		{[]string{"sleep", "300"}, false},
		{nil, false},
	} {
		if got := match(tc.argv); got != tc.want {
			t.Errorf("argv %q: match %v, want %v", tc.argv, got, tc.want)
		}
	}
	serve := CommandWithFlag("georaft-lab", "proxy-serve", "--plan", "/run/p.json")
	if !serve([]string{"/x/georaft-lab", "proxy-serve", "--plan", "/run/p.json"}) || serve([]string{"/x/georaft-compare", "proxy-serve", "--plan", "/run/p.json"}) ||
		serve([]string{"/x/georaft-lab", "bench", "--plan", "/run/p.json"}) {
		t.Error("CommandWithFlag matches the wrong commands")
	}
}

// What a node leaves in its data dir (the WAL, snapshots, the state machine's engine, its
// log and dump) is what ResetData may remove; anything else it refuses to touch.
func TestDataDirEntriesAreWhatANodeWrites(t *testing.T) {
	for _, name := range []string{"wal", "snap", "state", "LOCK", "member.json", "dump.txt", "dump.txt.1", NodeLogFile, NodePIDFile} {
		if !dataDirEntry(name) {
			t.Errorf("%s is written by a node but ResetData would refuse it", name)
		}
	}
	for _, name := range []string{"etc", "important.db", "home"} {
		if dataDirEntry(name) {
			t.Errorf("ResetData would remove %s, which no node writes", name)
		}
	}
}
