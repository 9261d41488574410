package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestMain clears GEORAFT_* from the environment so that the machine's own settings cannot
// leak into the tests; tests that need a variable set it with t.Setenv.
func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, envPrefix) {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

// threeNodes is a valid file for node 1 of three, with the data directory under dir.
func threeNodes(dir string) string {
	return `cluster_id: georaft-test
node:
  id: 1
  data_dir: ` + filepath.Join(dir, "data1") + `
peers:
  - id: 1
    region: us-central1
    peer_address: 127.0.0.1:7101
    client_address: 127.0.0.1:7201
  - id: 2
    region: europe-west1
    peer_address: 127.0.0.1:7102
    client_address: 127.0.0.1:7202
  - id: 3
    region: asia-east1
    peer_address: 127.0.0.1:7103
    client_address: 127.0.0.1:7203
`
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "georaft.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoadFile(t *testing.T, path string, overrides ...string) *Config {
	t.Helper()
	c, err := LoadFile(path, overrides...)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", path, err)
	}
	return c
}

// problemsOf returns the problems of an *Error, failing the test on any other error.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return ce.Problems
}

func TestDefaultsFillWhatTheFileLeavesOut(t *testing.T) {
	dir := t.TempDir()
	c := mustLoadFile(t, writeFile(t, threeNodes(dir)))
	want := TimingConfig{
		HeartbeatInterval:  100 * time.Millisecond,
		ElectionTimeoutMin: 500 * time.Millisecond,
		ElectionTimeoutMax: time.Second,
		LeaseDuration:      400 * time.Millisecond,
		MaxClockDrift:      0.01,
		MaxStaleness:       2 * time.Second,
		LeaseReadFallback:  true,
	}
	if c.Timing != want {
		t.Errorf("timing = %+v, want %+v", c.Timing, want)
	}
	if c.Limits.MaxKeyBytes != 4096 || c.Limits.MaxValueBytes != 1<<20 || c.Storage.SnapshotsKept != 2 || c.Log.Level != "info" {
		t.Errorf("defaults not applied: %+v %+v %+v", c.Limits, c.Storage, c.Log)
	}
	// Derived from this node's peers[] entry.
	if c.Node.Region != "us-central1" || c.Listen.Peer != "127.0.0.1:7101" || c.Listen.Client != "127.0.0.1:7201" {
		t.Errorf("derived defaults: region %q, listen %+v", c.Node.Region, c.Listen)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the default configuration of a valid file is refused: %v", err)
	}

	noDir := strings.Replace(threeNodes(dir), "  data_dir: "+filepath.Join(dir, "data1")+"\n", "", 1)
	if c := mustLoadFile(t, writeFile(t, noDir)); c.Node.DataDir != "data/node1" {
		t.Errorf("data_dir default = %q, want data/node1", c.Node.DataDir)
	}
}

// TestPrecedence checks, key by key, that each source overrides the one below it:
// defaults < file < environment < flags.
func TestPrecedence(t *testing.T) {
	cases := []struct {
		key, flag             string
		fileLine              string // under its section
		env, flagArg          string
		wantDefault, wantFile any
		wantEnv, wantFlag     any
		get                   func(c *Config) any
	}{
		{"timing.lease_duration", "lease-duration", "timing:\n  lease_duration: 300ms\n", "200ms", "100ms",
			400 * time.Millisecond, 300 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond,
			func(c *Config) any { return c.Timing.LeaseDuration }},
		{"timing.max_clock_drift", "max-clock-drift", "timing:\n  max_clock_drift: 0.02\n", "0.03", "0.04",
			0.01, 0.02, 0.03, 0.04, func(c *Config) any { return c.Timing.MaxClockDrift }},
		{"node.id", "node-id", "node:\n  id: 2\n", "3", "4",
			uint64(0), uint64(2), uint64(3), uint64(4), func(c *Config) any { return c.Node.ID }},
		{"log.level", "log-level", "log:\n  level: warn\n", "error", "debug",
			"info", "warn", "error", "debug", func(c *Config) any { return c.Log.Level }},
		{"listen.metrics", "listen-metrics", "listen:\n  metrics: 127.0.0.1:1\n", "127.0.0.1:2", "127.0.0.1:3",
			"", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", func(c *Config) any { return c.Listen.Metrics }},
		{"cluster_id", "cluster-id", "cluster_id: from-file\n", "from-env", "from-flag",
			"georaft", "from-file", "from-env", "from-flag", func(c *Config) any { return c.ClusterID }},
		{"timing.lease_read_fallback", "lease-read-fallback", "timing:\n  lease_read_fallback: false\n", "true", "false",
			true, false, true, false, func(c *Config) any { return c.Timing.LeaseReadFallback }},
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			load := func(file string, env string, flagArg string) any {
				t.Helper()
				fs := pflag.NewFlagSet("georaftd", pflag.ContinueOnError)
				BindFlags(fs)
				var args []string
				if file != "" {
					args = append(args, "--config", writeFile(t, file))
				}
				if flagArg != "" {
					args = append(args, "--"+c.flag+"="+flagArg)
				}
				if err := fs.Parse(args); err != nil {
					t.Fatal(err)
				}
				if env != "" {
					t.Setenv(envName(c.key), env)
				} else {
					os.Unsetenv(envName(c.key))
				}
				cfg, err := Load(fs)
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return c.get(cfg)
			}
			for _, step := range []struct {
				name, file, env, flag string
				want                  any
			}{
				{"default", "", "", "", c.wantDefault},
				{"file over default", c.fileLine, "", "", c.wantFile},
				{"env over file", c.fileLine, c.env, "", c.wantEnv},
				{"flag over env", c.fileLine, c.env, c.flagArg, c.wantFlag},
				{"flag over file", c.fileLine, "", c.flagArg, c.wantFlag},
			} {
				if got := load(step.file, step.env, step.flag); got != step.want {
					t.Errorf("%s: %s = %v (%T), want %v (%T)", step.name, c.key, got, got, step.want, step.want)
				}
			}
		})
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	path := writeFile(t, "cluster_id: from-env-file\n")
	t.Setenv(configEnv, path)
	c, err := Load(nil)
	if err != nil || c.ClusterID != "from-env-file" {
		t.Fatalf("Load with %s: %v, %+v", configEnv, err, c)
	}
	// --config wins over the variable.
	fs := pflag.NewFlagSet("georaftd", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--config", writeFile(t, "cluster_id: from-flag-file\n")}); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(fs); err != nil || c.ClusterID != "from-flag-file" {
		t.Fatalf("Load with --config: %v, %+v", err, c)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("LoadFile(missing) = %v, want an error naming the file", err)
	}
}

func TestOverridesActLikeFlags(t *testing.T) {
	path := writeFile(t, threeNodes(t.TempDir())+"timing:\n  lease_duration: 300ms\n")
	t.Setenv("GEORAFT_TIMING_LEASE_DURATION", "200ms")
	c := mustLoadFile(t, path, "timing.lease_duration=150ms", "node.id=2", "peers=7=r@h:1/h:2")
	if c.Timing.LeaseDuration != 150*time.Millisecond || c.Node.ID != 2 || len(c.Peers) != 1 || c.Peers[0].ID != 7 {
		t.Fatalf("overrides not applied: lease %v, id %d, peers %+v", c.Timing.LeaseDuration, c.Node.ID, c.Peers)
	}
	_, err := LoadFile(path, "timing.lease_duraton=1s", "novalue")
	ps := problemsOf(t, err)
	if len(ps) != 2 || !strings.Contains(ps[0].Message, "timing.lease_duraton=1s") {
		t.Fatalf("bad overrides: %v", err)
	}
}

func TestUnknownKeysAreNamed(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"typo", "timing:\n  lease_duraton: 1s\n",
			[]string{"line 2: unknown key timing.lease_duraton; did you mean timing.lease_duration?"}},
		{"wrong section", "node:\n  lease_duration: 1s\n", []string{"unknown key node.lease_duration; did you mean timing.lease_duration?"}},
		{"top level", "peer:\n  - id: 1\n", []string{"unknown key peer; did you mean peers?"}},
		{"unrelated", "flux_capacitor: 1.21\n", []string{"line 1: unknown key flux_capacitor"}},
		{"peer entry", "peers:\n  - id: 1\n    adress: x:1\n", []string{"line 3: unknown key peers[0].adress"}},
		{"case matters", "Node:\n  id: 1\n", []string{"unknown key Node; did you mean node?"}},
		{"every one", "timing:\n  lease_duraton: 1s\n  hartbeat_interval: 1s\nlog:\n  lvl: info\n",
			[]string{"timing.lease_duraton", "timing.hartbeat_interval", "log.lvl"}},
	}
	for _, c := range cases {
		_, err := LoadFile(writeFile(t, c.yaml))
		ps := problemsOf(t, err)
		if len(ps) != len(c.want) {
			t.Errorf("%s: %d problems, want %d: %v", c.name, len(ps), len(c.want), err)
			continue
		}
		for i, want := range c.want {
			if !strings.Contains(ps[i].Message, want) {
				t.Errorf("%s: problem %q does not contain %q", c.name, ps[i].Message, want)
			}
		}
	}
}

func TestFileShapeErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"syntax", "node:\n  id: [1\n", "georaft.yaml: yaml: line"},
		{"top level list", "- a\n- b\n", "the top level must be a mapping"},
		{"top level scalar", "hello\n", `the top level must be a mapping of keys (cluster_id, node, listen, peers, ...), not the value "hello"`},
		{"section scalar", "timing: 5\n", `line 1: timing must be a mapping of keys, not the value "5"`},
		{"leaf mapping", "node:\n  id:\n    x: 1\n", "line 3: node.id must be a single value, not a mapping"},
		{"leaf list", "cluster_id: [a, b]\n", "cluster_id must be a single value, not a list"},
		{"peers mapping", "peers:\n  id: 1\n", "peers must be a list of peers"},
		{"peer scalar", "peers:\n  - 1\n", `peers[0] must be a mapping with id, region, peer_address and client_address, not the value "1"`},
		{"duplicate", "node:\n  id: 1\n  id: 2\n", "line 3: key node.id appears twice (first at line 2)"},
		{"merge", "base: &b\n  id: 1\nnode:\n  <<: *b\n", "merge keys (<<) are not supported"},
		{"two documents", "node:\n  id: 1\n---\nnode:\n  id: 2\n", "more than one YAML document"},
	}
	for _, c := range cases {
		_, err := LoadFile(writeFile(t, c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: LoadFile = %v\nwant an error containing %q", c.name, err, c.want)
		}
	}
	// Shape problems do not hide wrong values elsewhere, nor repeat themselves.
	_, err := LoadFile(writeFile(t, "timing:\n  lease_duraton: 1s\n  heartbeat_interval: fast\nnode:\n  id:\n    x: 1\nlog: 5\n"))
	ps := problemsOf(t, err)
	want := []string{"unknown key timing.lease_duraton", "node.id must be a single value", "log must be a mapping",
		`timing.heartbeat_interval: "fast" is not a duration`}
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d: %v", len(ps), len(want), err)
	}
	for i := range want {
		if !strings.Contains(ps[i].Message, want[i]) {
			t.Errorf("problem %q does not contain %q", ps[i].Message, want[i])
		}
	}

	// Anchors and aliases are plain YAML and work.
	c := mustLoadFile(t, writeFile(t, "timing:\n  lease_duration: &d 300ms\n  max_staleness: *d\n"))
	if c.Timing.MaxStaleness != 300*time.Millisecond {
		t.Errorf("alias: max_staleness = %v", c.Timing.MaxStaleness)
	}
	// An empty file, or one of comments only, is all defaults.
	for _, content := range []string{"", "# nothing yet\n", "---\n"} {
		if c := mustLoadFile(t, writeFile(t, content)); c.Timing.LeaseDuration != 400*time.Millisecond {
			t.Errorf("file %q: %+v", content, c.Timing)
		}
	}
}

func TestWrongTypesNameKeyAndValue(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"duration word", "timing:\n  lease_duration: fast\n", `timing.lease_duration: "fast" is not a duration (like 400ms, 2s or 1m30s) (/`},
		{"duration number", "timing:\n  lease_duration: 400\n", "timing.lease_duration: 400 is not a duration: give a unit, like 400ms or 400s"},
		{"negative id", "node:\n  id: -1\n", "node.id: -1 is not a non-negative integer"},
		{"id word", "node:\n  id: one\n", `node.id: "one" is not a non-negative integer`},
		{"fractional", "limits:\n  max_key_bytes: 1.5\n", "limits.max_key_bytes: 1.5 is not an integer"},
		{"huge", "limits:\n  max_key_bytes: 1e30\n", "limits.max_key_bytes: 1e+30 is out of range"},
		{"drift", "timing:\n  max_clock_drift: lots\n", `timing.max_clock_drift: "lots" is not a number`},
		{"drift nan", "timing:\n  max_clock_drift: .nan\n", "timing.max_clock_drift: NaN is not a finite number"},
		{"bool", "tls:\n  enabled: maybe\n", `tls.enabled: "maybe" is not a boolean`},
		{"string", "cluster_id: 42\n", "cluster_id: 42 is not a string; quote it"},
		{"peer id", "peers:\n  - id: x\n    region: r\n", `peers[0].id: "x" is not a non-negative integer (/`},
	}
	for _, c := range cases {
		_, err := LoadFile(writeFile(t, c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: LoadFile = %v\nwant an error containing %q", c.name, err, c.want)
		}
		if err != nil && strings.Contains(c.want, "(/") && !strings.HasSuffix(err.Error(), "georaft.yaml line 2)") {
			t.Errorf("%s: %v does not give the file and line", c.name, err)
		}
	}

	// Every wrong value at once, each with where it came from.
	t.Setenv("GEORAFT_TIMING_HEARTBEAT_INTERVAL", "often")
	fs := pflag.NewFlagSet("georaftd", pflag.ContinueOnError)
	BindFlags(fs)
	if err := fs.Parse([]string{"--config", writeFile(t, "node:\n  id: x\ntiming:\n  lease_duration: fast\n")}); err != nil {
		t.Fatal(err)
	}
	_, err := Load(fs)
	ps := problemsOf(t, err)
	want := []string{
		`node.id: "x" is not a non-negative integer`,
		`timing.heartbeat_interval: "often" is not a duration (like 400ms, 2s or 1m30s) (from GEORAFT_TIMING_HEARTBEAT_INTERVAL)`,
		`timing.lease_duration: "fast" is not a duration`,
	}
	if len(ps) != len(want) {
		t.Fatalf("%d problems, want %d: %v", len(ps), len(want), err)
	}
	for i := range want {
		if !strings.Contains(ps[i].Message, want[i]) {
			t.Errorf("problem %q does not contain %q", ps[i].Message, want[i])
		}
	}
}

func TestParsePeers(t *testing.T) {
	got, err := ParsePeers(" 1=us-central1@10.0.0.1:7101/10.0.0.1:7201 , 2=europe-west1@[::1]:7102/[::1]:7202")
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{
		{ID: 1, Region: "us-central1", PeerAddress: "10.0.0.1:7101", ClientAddress: "10.0.0.1:7201"},
		{ID: 2, Region: "europe-west1", PeerAddress: "[::1]:7102", ClientAddress: "[::1]:7202"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParsePeers = %+v, want %+v", got, want)
	}
	if again, err := ParsePeers(FormatPeers(want)); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("FormatPeers does not round-trip: %q → %+v, %v", FormatPeers(want), again, err)
	}
	for _, c := range []struct{ in, want string }{
		{"1=r@a:1/b:2,", `entry 2 "": empty`},
		{"r@a:1/b:2", `entry 1 "r@a:1/b:2": no '='`},
		{"x=r@a:1/b:2", `id "x" is not a non-negative integer`},
		{"1=r-a:1/b:2", "no '@'"},
		{"1=r@a:1", "no '/' between the peer and client addresses"},
	} {
		if _, err := ParsePeers(c.in); err == nil || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), "want ID=REGION@PEER_ADDRESS/CLIENT_ADDRESS") {
			t.Errorf("ParsePeers(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestPeersFromEnvironmentReplaceTheFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("GEORAFT_PEERS", "1=us-central1@127.0.0.1:8101/127.0.0.1:8201,4=us-east1@127.0.0.1:8104/127.0.0.1:8204")
	c := mustLoadFile(t, writeFile(t, threeNodes(dir)))
	if len(c.Peers) != 2 || c.Peers[1].ID != 4 || c.Listen.Peer != "127.0.0.1:8101" {
		t.Fatalf("GEORAFT_PEERS not used: %+v, listen %+v", c.Peers, c.Listen)
	}
	t.Setenv("GEORAFT_PEERS", "1=us-central1")
	_, err := LoadFile(writeFile(t, threeNodes(dir)))
	if err == nil || !strings.Contains(err.Error(), "peers: entry 1") || !strings.Contains(err.Error(), "(from GEORAFT_PEERS)") {
		t.Fatalf("bad GEORAFT_PEERS: %v", err)
	}
}

func TestBindFlagsRegistersTheCommonKeys(t *testing.T) {
	fs := pflag.NewFlagSet("georaftd", pflag.ContinueOnError)
	BindFlags(fs)
	for _, name := range []string{"config", "node-id", "region", "data-dir", "listen-peer", "listen-client",
		"listen-metrics", "cluster-id", "log-level", "log-format", "lease-duration", "heartbeat-interval",
		"election-timeout-min", "election-timeout-max", "max-clock-drift", "max-staleness"} {
		if fs.Lookup(name) == nil {
			t.Errorf("flag --%s is not registered", name)
		}
	}
	if f := fs.Lookup("lease-duration"); f.DefValue != "400ms" || !strings.Contains(f.Usage, "GEORAFT_TIMING_LEASE_DURATION") {
		t.Errorf("--lease-duration: default %q, usage %q", f.DefValue, f.Usage)
	}
	if err := fs.Parse([]string{"--lease-duration=fast"}); err == nil {
		t.Error("a malformed duration flag was accepted")
	}
}
