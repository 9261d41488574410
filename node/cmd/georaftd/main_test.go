package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/clusterkit"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

var georaftd string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "georaftd-bin")
	if err != nil {
		panic(err)
	}
	georaftd = filepath.Join(dir, "georaftd")
	// -buildvcs=auto: stamp the revision when there is a checkout, whatever GOFLAGS says.
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", georaftd, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building georaftd:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// procCluster runs georaftd processes from YAML files, as an operator would.
type procCluster struct {
	t       *testing.T
	dir     string
	files   []string
	clients []string
	procs   []*exec.Cmd
	conns   []georaftv1.KVServiceClient
}

// freePorts picks n loopback addresses below the kernel's ephemeral range, so no outgoing
// connection can take one before its listener binds it.
func newProcCluster(t *testing.T, n int) *procCluster {
	t.Helper()
	c := &procCluster{t: t, dir: t.TempDir()}
	addrs, err := clusterkit.FreeAddrs(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	var peers strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&peers, "  - id: %d\n    region: r%d\n    peer_address: %s\n    client_address: %s\n", i+1, i+1, addrs[2*i], addrs[2*i+1])
		c.clients = append(c.clients, addrs[2*i+1])
	}
	for i := 0; i < n; i++ {
		file := filepath.Join(c.dir, fmt.Sprintf("node%d.yaml", i+1))
		body := fmt.Sprintf("cluster_id: proc-test\nnode:\n  id: %d\n  data_dir: %s\nlisten:\n  peer: %s\n  client: %s\nlog:\n  level: warn\npeers:\n%s",
			i+1, filepath.Join(c.dir, fmt.Sprintf("data%d", i+1)), addrs[2*i], addrs[2*i+1], peers.String())
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c.files = append(c.files, file)
		conn, err := grpc.NewClient(addrs[2*i+1], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c.conns = append(c.conns, georaftv1.NewKVServiceClient(conn))
	}
	c.procs = make([]*exec.Cmd, n)
	for i := range c.procs {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.signal(i, syscall.SIGKILL)
		}
	})
	return c
}

func (c *procCluster) start(i int) {
	c.t.Helper()
	cmd := exec.Command(georaftd, "--config", c.files[i])
	cmd.Stderr = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i] = cmd
}

// signal sends sig to node i and, for SIGKILL, reaps it.
func (c *procCluster) signal(i int, sig syscall.Signal) {
	if c.procs[i] == nil {
		return
	}
	c.procs[i].Process.Signal(sig)
	if sig == syscall.SIGKILL {
		c.procs[i].Wait()
		c.procs[i] = nil
	}
}

func (c *procCluster) waitLeader(timeout time.Duration, exclude int) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for i, cl := range c.conns {
			if i == exclude || c.procs[i] == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			st, err := cl.Status(ctx, &georaftv1.StatusRequest{})
			cancel()
			if err == nil && st.Role == georaftv1.Role_ROLE_LEADER {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %v", timeout)
	return -1
}

// kill -9 of the leader loses nothing that was acknowledged, and a new leader is elected.
func TestKill9LeaderLosesNothingAcknowledged(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.waitLeader(15*time.Second, -1)
	acked := map[string]string{}
	for i := 0; i < 40; i++ {
		k, v := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.conns[leader].Set(ctx, &georaftv1.SetRequest{Key: []byte(k), Value: []byte(v)})
		cancel()
		if err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
		acked[k] = v
	}
	c.signal(leader, syscall.SIGKILL)
	next := c.waitLeader(15*time.Second, leader)
	c.start(leader)
	for k, v := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := c.conns[next].Get(ctx, &georaftv1.GetRequest{Key: []byte(k), ReadMode: georaftv1.ReadMode_READ_MODE_INDEX})
		cancel()
		if err != nil || string(got.Value) != v {
			t.Fatalf("acknowledged %s=%s after kill -9 of the leader: %+v err=%v", k, v, got, err)
		}
	}
}

// SIGTERM on the leader hands leadership over before the process exits cleanly.
func TestSIGTERMHandsOverLeadership(t *testing.T) {
	c := newProcCluster(t, 3)
	leader := c.waitLeader(15*time.Second, -1)
	c.signal(leader, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.procs[leader].Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("georaftd exited with %v after SIGTERM; stderr:\n%s", err, c.procs[leader].Stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("georaftd did not exit within 20s of SIGTERM")
	}
	c.procs[leader] = nil
	c.waitLeader(15*time.Second, leader)
	dump, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("data%d", leader+1), "dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte("leadership transfer")) {
		t.Fatalf("the old leader's dump.txt does not record the hand-over:\n%s", dump)
	}
}

// --version comes from the build information the Go toolchain put in the binary: the
// revision `go version -m` reads there when the build had a checkout, "devel" otherwise.
func TestVersionComesFromTheBuild(t *testing.T) {
	out, err := exec.Command(georaftd, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := exec.Command("go", "version", "-m", georaftd).Output()
	if err != nil {
		t.Fatal(err)
	}
	revision := ""
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			revision = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	version := strings.TrimSpace(string(out))
	if !strings.HasPrefix(version, "georaftd ") || !strings.Contains(version, runtime.Version()) {
		t.Fatalf("georaftd --version = %q, want the program, its version and %s", version, runtime.Version())
	}
	if revision != "" && !strings.Contains(version, "devel-"+revision[:12]) && !strings.Contains(version, revision) {
		t.Fatalf("georaftd --version = %q, but the binary was built from revision %s", version, revision)
	}
	if revision == "" && !strings.HasPrefix(version, "georaftd devel ") {
		t.Fatalf("georaftd --version = %q for a build without VCS information, want devel", version)
	}
}

// georaftd config check names each problem's key, and exits 3.
func TestConfigCheckNamesEveryProblem(t *testing.T) {
	dir := t.TempDir()
	good := fmt.Sprintf(`cluster_id: c
node:
  id: 1
  data_dir: %s
peers:
  - {id: 1, region: a, peer_address: "127.0.0.1:7101", client_address: "127.0.0.1:7201"}
  - {id: 2, region: b, peer_address: "127.0.0.1:7102", client_address: "127.0.0.1:7202"}
  - {id: 3, region: c, peer_address: "127.0.0.1:7103", client_address: "127.0.0.1:7203"}
`, filepath.Join(dir, "data"))
	cases := []struct {
		name, edit, want string
	}{
		{"unknown self id", strings.Replace(good, "id: 1\n", "id: 9\n", 1), "node.id"},
		{"duplicate peer id", strings.Replace(good, "{id: 3,", "{id: 2,", 1), "peers"},
		{"duplicate address", strings.Replace(good, "127.0.0.1:7103", "127.0.0.1:7102", 1), "peer_address"},
		{"lease longer than election timeout", good + "timing:\n  lease_duration: 2s\n", "timing.lease_duration"},
		{"drift out of range", good + "timing:\n  max_clock_drift: 0.9\n", "timing.max_clock_drift"},
		{"typo in a key", good + "timing:\n  lease_duraton: 1s\n", "lease_duraton"},
		{"not a duration", good + "timing:\n  heartbeat_interval: fast\n", "timing.heartbeat_interval"},
		{"unwritable data dir", strings.Replace(good, filepath.Join(dir, "data"), "/proc/georaft-cannot-write", 1), "node.data_dir"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(file, []byte(tc.edit), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(georaftd, "config", "check", file).CombinedOutput()
			exitErr, ok := err.(*exec.ExitError)
			if !ok || exitErr.ExitCode() != 3 {
				t.Fatalf("config check exited %v, want exit code 3; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("the error does not name %q:\n%s", tc.want, out)
			}
		})
	}
	// A mistyped key does not hide the rules broken elsewhere in the file: all three show.
	t.Run("typo and rule violations at once", func(t *testing.T) {
		file := filepath.Join(dir, "several.yaml")
		body := good + "timing:\n  lease_duraton: 1s\n  heartbeat_interval: 300ms\n  max_clock_drift: 0.9\n"
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(georaftd, "config", "check", file).CombinedOutput()
		for _, want := range []string{"unknown key timing.lease_duraton", "timing.heartbeat_interval (300ms) must be at most a third", "timing.max_clock_drift must be in", "(3 problems)"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("config check output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("valid config prints the effective config", func(t *testing.T) {
		file := filepath.Join(dir, "good.yaml")
		os.WriteFile(file, []byte(good), 0o644)
		out, err := exec.Command(georaftd, "config", "check", file).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "lease_duration") {
			t.Fatalf("config check of a valid file: %v\n%s", err, out)
		}
	})
}
