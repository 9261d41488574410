// Package kittest runs clusterkit clusters inside Go tests: georaftd built once per test
// binary, clusters that stop when the test ends and print their nodes' logs when it
// failed, single proxies in front of an address, and conditions waited on with deadlines.
//
// A package that uses it removes the binaries it built with
//
//	func TestMain(m *testing.M) { kittest.Main(m) }
package kittest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/node/config"
)

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Main runs the tests and removes the binaries Build made.
func Main(m *testing.M) {
	code := m.Run()
	buildMu.Lock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	buildMu.Unlock()
	os.Exit(code)
}

// RepoRoot is the checkout this package is in.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles the repository's main package pkg ("node/cmd/georaftd") with tags, once
// per test binary.
func Build(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	key := pkg + " " + strings.Join(tags, ",")
	buildMu.Lock()
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "georaft-kittest-bin-")
		if err != nil {
			buildMu.Unlock()
			t.Fatal(err)
		}
		buildDir = dir
	}
	b, ok := built[key]
	if !ok {
		b = &buildResult{}
		built[key] = b
	}
	dir := filepath.Join(buildDir, fmt.Sprint(len(built)))
	buildMu.Unlock()
	b.once.Do(func() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.err = err
			return
		}
		b.path, b.err = clusterkit.Build(context.Background(), RepoRoot(), dir, "./"+pkg, tags...)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// Georaftd is georaftd built from this checkout. GEORAFT_TEST_GEORAFTD names a prebuilt
// one to test instead (built with the same tags).
func Georaftd(t testing.TB, tags ...string) string {
	t.Helper()
	if path := os.Getenv("GEORAFT_TEST_GEORAFTD"); path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	return Build(t, "node/cmd/georaftd", tags...)
}

// Log sends lines written to it to the test's log.
type Log struct {
	T   testing.TB
	mu  sync.Mutex
	buf []byte
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		l.T.Log(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

// Timing is the timing of test clusters whose Spec sets none: the defaults with elections
// a little slower, since the test machine is small and shared.
var Timing = func() config.TimingConfig {
	t := config.Defaults().Timing
	t.ElectionTimeoutMin, t.ElectionTimeoutMax = 600*time.Millisecond, 1200*time.Millisecond
	return t
}()

// New makes a cluster of spec in a temporary directory with georaftd from this checkout
// (unless opts names one), starts none of its nodes, and closes it when the test ends,
// printing the end of every node's log if the test failed.
func New(t testing.TB, spec clusterkit.Spec, opts clusterkit.Options) *clusterkit.Cluster {
	t.Helper()
	spec, opts = defaults(t, spec, opts)
	c, err := clusterkit.New(t.TempDir(), spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, c)
	return c
}

func defaults(t testing.TB, spec clusterkit.Spec, opts clusterkit.Options) (clusterkit.Spec, clusterkit.Options) {
	if opts.Georaftd == "" {
		opts.Georaftd = Georaftd(t)
	}
	if spec.Timing == (config.TimingConfig{}) {
		spec.Timing = Timing
	}
	if opts.Log == nil && testing.Verbose() {
		opts.Log = &Log{T: t}
	}
	return spec, opts
}

func cleanup(t testing.TB, c *clusterkit.Cluster) {
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("--- end of node %d's log (%s) ---\n%s", n.ID, n.LogPath, n.Tail(40))
			}
		}
	})
}

// Start launches a cluster of spec (clusterkit.Launch: on fresh ports again if a node
// could not bind one) and waits, a minute at most, until every node names one leader that
// holds its lease.
func Start(t testing.TB, spec clusterkit.Spec) *clusterkit.Cluster {
	t.Helper()
	return Launch(t, spec, clusterkit.Options{})
}

// Launch is Start with options: the links' delays (an emulated geo cluster), another
// georaftd, a log.
func Launch(t testing.TB, spec clusterkit.Spec, opts clusterkit.Options) *clusterkit.Cluster {
	t.Helper()
	spec, opts = defaults(t, spec, opts)
	c, _, err := clusterkit.Launch(context.Background(), t.TempDir(), spec, opts, clusterkit.Want{All: true, Lease: true}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, c)
	return c
}

// WaitLeader waits (a minute at most) until every running node names one leader that holds
// its lease, and returns its id.
func WaitLeader(t testing.TB, c *clusterkit.Cluster) uint64 {
	t.Helper()
	l, err := c.WaitLeader(context.Background(), time.Minute, clusterkit.Want{All: true, Lease: true})
	if err != nil {
		t.Fatal(err)
	}
	return l.ID
}

// Client is a client of c from region ("" for each node's own listener), with the request
// timeout given, closed when the test ends.
func Client(t testing.TB, c *clusterkit.Cluster, region string, timeout time.Duration) *client.Client {
	t.Helper()
	cl, err := c.Client(region, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// Proxy starts a link in this process from a free loopback port to upstream, stopped when
// the test ends: a route a test can delay, cut or make drop answers.
func Proxy(t testing.TB, upstream string) *clusterkit.Proxy {
	t.Helper()
	addrs, err := clusterkit.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	link := clusterkit.Link{Name: "test proxy to " + upstream, Kind: clusterkit.ClientLink, Listen: addrs[0], Upstream: upstream}
	p, err := clusterkit.StartProxies(clusterkit.ProxyPlan{Links: []clusterkit.Link{link}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p.Links()[0]
}

// WaitFor fails the test unless cond returns nil within timeout (see clusterkit.WaitFor).
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := clusterkit.WaitFor(context.Background(), timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}
