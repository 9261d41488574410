package lab

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
)

// relocatedLocal copies configs/local to a temp dir on free ports with temp data dirs.
func relocatedLocal(t *testing.T) (LocalOptions, string) {
	t.Helper()
	work := t.TempDir()
	configDir := filepath.Join(work, "configs")
	if err := clusterkit.RelocateConfigs(filepath.Join(repoRoot, "configs/local"), configDir, filepath.Join(work, "data"), clusterkit.FreeAddrMapper()); err != nil {
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
	c, err := opts.Open(clusterkit.Options{})
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
	c, err := opts.Open(clusterkit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	taken := c.Nodes[2].ClientAddr()
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
		if _, err := os.Stat(n.PIDPath); err == nil {
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
	if err == nil || !strings.Contains(err.Error(), "waiting for a leader") || !strings.Contains(err.Error(), "listening nowhere") {
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
	c, err := opts.Open(clusterkit.Options{})
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
		if clusterkit.ProcessAlive(pid) {
			t.Errorf("pid %d survived local-down", pid)
		}
	}
}

// relocatedGeo copies configs/geo (client links included) to a temp dir on free ports.
func relocatedGeo(t *testing.T, georaftd, georaftLab string, scale float64) GeoOptions {
	t.Helper()
	work := t.TempDir()
	configDir := filepath.Join(work, "configs")
	if err := clusterkit.RelocateConfigs(filepath.Join(repoRoot, "configs/geo"), configDir, filepath.Join(work, "data"), clusterkit.FreeAddrMapper()); err != nil {
		t.Fatal(err)
	}
	matrix, err := filepath.Abs(filepath.Join(repoRoot, DefaultGeoOptions().MatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	return GeoOptions{
		ClusterOptions: ClusterOptions{ConfigDir: configDir, Georaftd: georaftd, WorkDir: work, Out: testWriter{t}},
		MatrixFile:     matrix,
		Scale:          scale,
		IntraRegionRTT: clusterkit.DefaultIntraRegionRTT,
		Compensation:   clusterkit.DefaultCompensation,
		RunDir:         filepath.Join(work, "run"),
		LabBinary:      georaftLab,
		LeaderTimeout:  60 * time.Second,
	}
}

// The proxy process and the nodes go through the same start and stop as geo-up; with nodes
// that never elect a leader, GeoUp must fail and leave nothing running.
func TestGeoUpFailureStopsProxiesAndNodes(t *testing.T) {
	georaftLab := buildBinary(t, "lab/cmd/georaft-lab")
	opts := relocatedGeo(t, fakeGeoraftd(t, "while :; do sleep 0.05; done"), georaftLab, 0.1)
	opts.LeaderTimeout = 500 * time.Millisecond
	g, err := OpenGeo(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GeoUp(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "waiting for a leader") {
		t.Fatalf("GeoUp with silent nodes: %v", err)
	}
	if pids := geoPIDs(g); len(pids) > 0 {
		t.Errorf("left running after a failed geo-up: %v", pids)
	}
	if _, err := os.Stat(filepath.Join(opts.RunDir, "proxies.ready")); !os.IsNotExist(err) {
		t.Errorf("proxy ready file left behind: %v", err)
	}
	if _, err := clusterkit.ReadPlan(g.Proxies.PlanPath()); err != nil {
		t.Errorf("the proxy plan of the run was not kept for inspection: %v", err)
	}

	// Started by hand and stopped by GeoDown: the proxies listen while up, and not after.
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if pids := geoPIDs(g); len(pids) != 6 {
		t.Errorf("running after start: %v, want 5 nodes and the proxies", pids)
	}
	if err := clusterkit.CheckPortsFree(g.Cluster.Plan.ListenAddresses()[:1]); err == nil {
		t.Error("a proxy port is free while the proxies run")
	}
	if err := GeoDown(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if pids := geoPIDs(g); len(pids) > 0 {
		t.Errorf("left running after geo-down: %v", pids)
	}
	if err := clusterkit.CheckPortsFree(g.Cluster.Plan.ListenAddresses()); err != nil {
		t.Errorf("proxy ports still taken after geo-down: %v", err)
	}
}

func TestResetDataRemovesOnlyWhatANodeWrites(t *testing.T) {
	opts, _ := relocatedLocal(t)
	opts.Georaftd = fakeGeoraftd(t, "while :; do sleep 0.05; done")
	c, err := opts.Open(clusterkit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes[:2] {
		for _, dir := range []string{"wal", "snap"} {
			if err := os.MkdirAll(filepath.Join(n.DataPath, dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{"LOCK", "member.json", "dump.txt", "dump.txt.1", clusterkit.NodeLogFile} {
			if err := os.WriteFile(filepath.Join(n.DataPath, f), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.ResetData(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if _, err := os.Stat(n.DataPath); !os.IsNotExist(err) {
			t.Errorf("node %d data dir survived the reset: %v", n.ID, err)
		}
	}

	precious := filepath.Join(c.Nodes[0].DataPath, "precious.db")
	if err := os.MkdirAll(c.Nodes[0].DataPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(precious, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.ResetData(); err == nil || !strings.Contains(err.Error(), "precious.db") {
		t.Errorf("reset of a dir holding a foreign file: %v", err)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("a foreign file was removed: %v", err)
	}
	os.Remove(precious)

	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	if err := c.ResetData(); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("reset under running nodes: %v", err)
	}
}

// geoPIDs lists the live processes of a geo cluster: nodes and the proxy process.
func geoPIDs(g *Geo) []int {
	pids := g.Cluster.RunningPIDs()
	if pid, ok := g.Proxies.PID(); ok {
		pids = append(pids, pid)
	}
	return pids
}
