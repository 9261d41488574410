package lab

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// relocatedLocal copies configs/local to a temp dir on free ports with temp data dirs.
func relocatedLocal(t *testing.T) (LocalOptions, string) {
	t.Helper()
	work := t.TempDir()
	configDir := filepath.Join(work, "configs")
	if err := RelocateConfigs(filepath.Join(repoRoot, "configs/local"), configDir, filepath.Join(work, "data"), FreePortMapper()); err != nil {
		t.Fatal(err)
	}
	opts := LocalOptions{ClusterOptions: ClusterOptions{ConfigDir: configDir, WorkDir: work, Out: testWriter{t}}, LeaderTimeout: 5 * time.Second}
	return opts, work
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// fakeGeoraftd writes an executable script named georaftd: the real one's process
// handling (PID file, stderr, exit, signals) without the node.
func fakeGeoraftd(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "georaftd")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func assertNothingRunning(t *testing.T, opts LocalOptions) {
	t.Helper()
	c, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		t.Fatal(err)
	}
	if pids := c.RunningPIDs(); len(pids) > 0 {
		t.Errorf("processes left running: %v", pids)
	}
}

func TestLocalUpRefusesATakenPortBeforeStartingAnything(t *testing.T) {
	opts, _ := relocatedLocal(t)
	opts.Georaftd = fakeGeoraftd(t, "sleep 30")
	c, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		t.Fatal(err)
	}
	taken := c.Nodes[2].Listen.Client
	ln, err := net.Listen("tcp", taken)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, _, err = LocalUp(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "node 3 listen.client") {
		t.Fatalf("LocalUp with %s taken: %v", taken, err)
	}
	for _, n := range c.Nodes {
		if _, err := os.Stat(filepath.Join(n.DataPath, NodePIDFile)); err == nil {
			t.Errorf("node %d was started although a port was taken", n.ID)
		}
	}
}

func TestLocalUpShowsTheStderrOfANodeThatExits(t *testing.T) {
	opts, _ := relocatedLocal(t)
	opts.Georaftd = fakeGeoraftd(t, `case "$2" in *node4.yaml) echo "georaftd: config: timing.lease_duration: must be below election_timeout_min" >&2; exit 2;; esac
while :; do sleep 0.05; done`)
	_, _, err := LocalUp(context.Background(), opts)
	if err == nil {
		t.Fatal("LocalUp succeeded with a node that exits")
	}
	for _, want := range []string{"exited", "node4", "timing.lease_duration: must be below"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// LocalUp stops what it started when it fails.
	assertNothingRunning(t, opts)
}

func TestLocalUpTimesOutWithoutALeaderAndStopsTheNodes(t *testing.T) {
	opts, _ := relocatedLocal(t)
	opts.LeaderTimeout = 500 * time.Millisecond
	opts.Georaftd = fakeGeoraftd(t, `echo "listening nowhere" >&2
while :; do sleep 0.05; done`)
	_, _, err := LocalUp(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "no leader elected within") || !strings.Contains(err.Error(), "listening nowhere") {
		t.Fatalf("LocalUp without a node answering: %v", err)
	}
	assertNothingRunning(t, opts)
	// Down after a failed Up has nothing left to do, and says so without error.
	if err := LocalDown(context.Background(), opts); err != nil {
		t.Error(err)
	}
}

func TestLocalDownStopsNodesStartedByAnotherProcess(t *testing.T) {
	opts, _ := relocatedLocal(t)
	opts.Georaftd = fakeGeoraftd(t, "while :; do sleep 0.05; done")
	c, err := OpenCluster(opts.ClusterOptions)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	pids := c.RunningPIDs()
	if len(pids) != 5 {
		t.Fatalf("started %d nodes, want 5", len(pids))
	}
	if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second start: %v", err)
	}
	if err := LocalDown(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if processAlive(pid) {
			t.Errorf("pid %d survived local-down", pid)
		}
	}
}
