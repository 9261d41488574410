package lab

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/node/config"
)

// repoRoot is where the committed configs live, seen from this package's directory.
const repoRoot = ".."

func defaultMatrix(t *testing.T) geo.Matrix {
	t.Helper()
	m, err := geo.LoadCSV(filepath.Join(repoRoot, DefaultGeoOptions().MatrixFile))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGeoPortPlanNeverCollides(t *testing.T) {
	p := DefaultGeoPorts
	seen := map[string]string{}
	claim := func(addr, what string) {
		if other, dup := seen[addr]; dup {
			t.Errorf("%s and %s both use %s", other, what, addr)
		}
		seen[addr] = what
	}
	for i := 1; i <= MaxGeoNodes; i++ {
		claim(p.NodePeer(i), fmt.Sprintf("node %d peer", i))
		claim(p.NodeClient(i), fmt.Sprintf("node %d client", i))
		claim(p.NodeMetrics(i), fmt.Sprintf("node %d metrics", i))
		for j := 1; j <= MaxGeoNodes; j++ {
			claim(p.ClientLink(i, j), fmt.Sprintf("client link %d->%d", i, j))
			if i != j {
				claim(p.PeerLink(i, j), fmt.Sprintf("peer link %d->%d", i, j))
			}
		}
	}
	for _, tc := range []struct{ got, want string }{
		{p.PeerLink(1, 2), "127.0.0.1:2120"},
		{p.PeerLink(5, 4), "127.0.0.1:2540"},
		{p.ClientLink(4, 1), "127.0.0.1:2411"},
		{p.NodePeer(3), "127.0.0.1:2803"},
		{p.NodeClient(3), "127.0.0.1:2813"},
		{p.NodeMetrics(3), "127.0.0.1:2823"},
		{DefaultLocalPorts.Peer(1), "127.0.0.1:7101"},
		{DefaultLocalPorts.Client(5), "127.0.0.1:7205"},
		{DefaultLocalPorts.Metrics(3), "127.0.0.1:7303"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	if err := (GeoPorts{Host: "127.0.0.1", Base: 65000}).validate(5, 5); err == nil {
		t.Error("a base that pushes ports past 65535 was accepted")
	}
	if err := p.validate(MaxGeoNodes+1, 5); err == nil {
		t.Error("more nodes than the plan can number were accepted")
	}
}

func geoSpecForMatrix(t *testing.T, ports GeoPorts, dataRoot string) ClusterSpec {
	t.Helper()
	timing, err := DeriveGeoTiming(defaultMatrix(t), DefaultGeoRegions)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := GeoSpec(ports, DefaultGeoRegions, dataRoot, timing)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// The committed configs are the generator's output: regenerate with `make gen-configs`.
func TestCommittedConfigsMatchGenerator(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		spec ClusterSpec
	}{
		{"configs/local", LocalSpec(DefaultLocalPorts, "data/local")},
		{"configs/geo", geoSpecForMatrix(t, DefaultGeoPorts, "data/geo")},
	} {
		for name, want := range tc.spec.Render() {
			path := filepath.Join(repoRoot, tc.dir, name)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%v (run `make gen-configs`)", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator's output (run `make gen-configs`):\n--- committed\n%s\n--- generated\n%s", path, got, want)
			}
		}
	}
}

func TestCommittedConfigsDescribeOneCluster(t *testing.T) {
	local, err := LoadClusterConfigs(filepath.Join(repoRoot, "configs/local"), "/work")
	if err != nil {
		t.Fatal(err)
	}
	if len(local) != 5 || local[0].ClusterID != "georaft-local" || local[2].DataPath != "/work/data/local/node3" {
		t.Errorf("local cluster: %d nodes, first %+v", len(local), local[0])
	}
	geoNodes, err := LoadClusterConfigs(filepath.Join(repoRoot, "configs/geo"), "/work")
	if err != nil {
		t.Fatal(err)
	}
	var regions []string
	for _, n := range geoNodes {
		regions = append(regions, n.Region)
	}
	if !slices.Equal(regions, DefaultGeoRegions) {
		t.Errorf("geo regions %v, want %v in node order", regions, DefaultGeoRegions)
	}
	links, err := client.LoadRegionLinks(filepath.Join(repoRoot, "configs/geo", ClientLinksFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := links["europe-west1"][1]; got != "127.0.0.1:2411" {
		t.Errorf("client link europe-west1 -> node 1 = %q, want 127.0.0.1:2411", got)
	}
}

func TestGeoSpecRejectsBadRegions(t *testing.T) {
	for _, regions := range [][]string{
		{"a", "b", "a"},
		{"a", ""},
		{"a", "b", "c", "d", "e", "f", "g", "h"},
	} {
		if _, err := GeoSpec(DefaultGeoPorts, regions, "data", LocalTiming); err == nil {
			t.Errorf("regions %q accepted", regions)
		}
	}
}

func TestLoadNodeConfigNamesBadKeys(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{"node: {id: 0}\n", "node.id"},
		{"node: {id: 1}\n", "node.data_dir"},
		{"node: {id: 1, data_dir: d}\nlisten: {peer: nope, client: 127.0.0.1:1}\n", "listen.peer"},
		{"node: {id: 1, data_dir: d}\nlisten: {peer: 127.0.0.1:1, client: 127.0.0.1:2}\npeers: [{id: 2, peer_address: x}]\n", "peers[0].peer_address"},
		{"node: [\n", "parse node config"},
	} {
		path := filepath.Join(dir, "node1.yaml")
		if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadNodeConfig(path, dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("config %q: error %v, want one naming %s and the file", tc.body, err, tc.want)
		}
	}
}

func TestLinkModelScalesAndSplits(t *testing.T) {
	m := LinkModel{Matrix: defaultMatrix(t), IntraRegionRTT: time.Millisecond}
	for _, tc := range []struct {
		scale float64
		a, b  string
		want  time.Duration
	}{
		{1, "us-central1", "us-west1", 36 * time.Millisecond},
		{0, "us-central1", "us-west1", 36 * time.Millisecond}, // 0 means unscaled
		{0.2, "us-central1", "us-west1", 7 * time.Millisecond},
		{0.1, "europe-west1", "asia-east1", 25 * time.Millisecond},
		{0.2, "us-east1", "us-east1", time.Millisecond}, // intra-region is not scaled
	} {
		m.Scale = tc.scale
		got, err := m.RTT(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("scale %v RTT(%s, %s) = %v, %v; want %v", tc.scale, tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := m.RTT("us-central1", "mars-north1"); err == nil {
		t.Error("unknown region accepted")
	}
	for _, tc := range []struct {
		rtt, comp, up, down time.Duration
	}{
		{36 * time.Millisecond, 0, 18 * time.Millisecond, 18 * time.Millisecond},
		{36 * time.Millisecond, time.Millisecond, 17 * time.Millisecond, 18 * time.Millisecond},
		{155 * time.Millisecond, time.Millisecond, 77 * time.Millisecond, 77 * time.Millisecond},
		{time.Millisecond, time.Millisecond, time.Millisecond, 0}, // too short to compensate
		{2 * time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond},
		{0, time.Millisecond, 0, 0},
	} {
		m.Compensation = tc.comp
		up, down := m.Delays(tc.rtt)
		if up != tc.up || down != tc.down {
			t.Errorf("Delays(%v) with compensation %v = %v up, %v down; want %v, %v", tc.rtt, tc.comp, up, down, tc.up, tc.down)
		}
	}
}

func loadCommittedGeo(t *testing.T) ([]NodeConfig, client.RegionLinks) {
	t.Helper()
	nodes, err := LoadClusterConfigs(filepath.Join(repoRoot, "configs/geo"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	links, err := client.LoadRegionLinks(filepath.Join(repoRoot, "configs/geo", ClientLinksFile))
	if err != nil {
		t.Fatal(err)
	}
	return nodes, links
}

func TestPlanLinksCoversEveryDirectedPair(t *testing.T) {
	nodes, links := loadCommittedGeo(t)
	model := LinkModel{Matrix: defaultMatrix(t), Scale: 1, IntraRegionRTT: time.Millisecond, Compensation: time.Millisecond, Jitter: 2 * time.Millisecond}
	plan, err := PlanLinks(nodes, links, model)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Link{}
	kinds := map[string]int{}
	for _, l := range plan.Links {
		byName[l.Name] = l
		kinds[l.Kind]++
	}
	if kinds["peer"] != 20 || kinds["client"] != 25 {
		t.Fatalf("plan has %v links, want 20 peer (5×4 directed) and 25 client (5 regions × 5 nodes)", kinds)
	}
	peer := byName["peer 1->4"]
	if peer.Listen != "127.0.0.1:2140" || peer.Upstream != "127.0.0.1:2804" || peer.RTTMillis != 100 ||
		peer.UpstreamMillis != 49 || peer.DownstreamMillis != 50 || peer.JitterMillis != 2 {
		t.Errorf("peer 1->4 = %+v", peer)
	}
	back := byName["peer 4->1"]
	if back.Listen != "127.0.0.1:2410" || back.Upstream != "127.0.0.1:2801" || back.RTTMillis != 100 {
		t.Errorf("peer 4->1 = %+v", back)
	}
	local := byName["client us-central1->1"]
	if local.Listen != "127.0.0.1:2111" || local.Upstream != "127.0.0.1:2811" || local.RTTMillis != 1 {
		t.Errorf("client us-central1->1 = %+v", local)
	}
	far := byName["client asia-east1->4"]
	if far.RTTMillis != 250 || far.Upstream != "127.0.0.1:2814" {
		t.Errorf("client asia-east1->4 = %+v", far)
	}

	// The local cluster dials its peers directly: nothing to proxy.
	localNodes, err := LoadClusterConfigs(filepath.Join(repoRoot, "configs/local"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := range localNodes {
		localNodes[i].Region = "us-central1"
	}
	plan, err = PlanLinks(localNodes, client.RegionLinks{}, model)
	if err != nil || len(plan.Links) != 0 {
		t.Errorf("local configs planned %d links, err %v; want none", len(plan.Links), err)
	}
}

func TestPlanLinksRejectsRegionsOutsideTheMatrix(t *testing.T) {
	nodes, links := loadCommittedGeo(t)
	small, err := geo.ParseCSV(strings.NewReader("region,us-central1,us-east1\nus-central1,0,32\nus-east1,32,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = PlanLinks(nodes, links, LinkModel{Matrix: small})
	if err == nil || !strings.Contains(err.Error(), "us-west1") {
		t.Errorf("plan over a matrix lacking us-west1: %v", err)
	}
}

func TestPredictFollowsTheMatrix(t *testing.T) {
	regions := map[uint64]string{}
	for i, r := range DefaultGeoRegions {
		regions[uint64(i+1)] = r
	}
	model := LinkModel{Matrix: defaultMatrix(t), IntraRegionRTT: time.Millisecond}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	for _, tc := range []struct {
		client string
		scale  float64
		want   map[string]time.Duration
	}{
		{"us-central1", 1, map[string]time.Duration{RowLease: ms(1), RowIndex: ms(37), RowLog: ms(37.5), RowWrite: ms(37.5), RowStale: ms(1)}},
		{"europe-west1", 1, map[string]time.Duration{RowLease: ms(100), RowIndex: ms(136), RowLog: ms(136.5), RowStale: ms(1)}},
		{"us-central1", 0.2, map[string]time.Duration{RowLease: ms(1), RowIndex: ms(8), RowLog: ms(8.5)}},
	} {
		model.Scale = tc.scale
		got, err := Predict(PredictionInput{Model: model, NodeRegions: regions, LeaderID: 1, ClientRegion: tc.client, Fsync: ms(0.5)})
		if err != nil {
			t.Fatal(err)
		}
		for row, want := range tc.want {
			if got[row].P50 != want {
				t.Errorf("client %s scale %v: %s predicted %v (%s), want %v", tc.client, tc.scale, row, got[row].P50, got[row].Basis, want)
			}
		}
	}
	model.Scale = 1
	got, err := Predict(PredictionInput{Model: model, NodeRegions: regions, LeaderID: 5, ClientRegion: "asia-east1"})
	if err != nil {
		t.Fatal(err)
	}
	// asia-east1's nearest peers are us-west1 (118) and us-central1 (155): a majority needs both.
	if got[RowIndex].P50 != ms(1+155) || !strings.Contains(got[RowIndex].Basis, "us-central1") {
		t.Errorf("leader in asia-east1: index %v (%s), want 156ms via us-central1", got[RowIndex].P50, got[RowIndex].Basis)
	}
	if _, err := Predict(PredictionInput{Model: model, NodeRegions: regions, LeaderID: 9, ClientRegion: "us-east1"}); err == nil {
		t.Error("a leader outside the cluster was accepted")
	}
}

func TestParseHistogramQuantile(t *testing.T) {
	text := `# HELP georaft_wal_fsync_seconds fsync latency
# TYPE georaft_wal_fsync_seconds histogram
georaft_wal_fsync_seconds_bucket{le="0.0005"} 10
georaft_wal_fsync_seconds_bucket{le="0.001"} 30
georaft_wal_fsync_seconds_bucket{le="0.002"} 40
georaft_wal_fsync_seconds_bucket{le="+Inf"} 40
georaft_wal_fsync_seconds_sum 0.03
georaft_wal_fsync_seconds_count 40
georaft_term 3
`
	h, err := ParseHistogram(strings.NewReader(text), "georaft_wal_fsync_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if h.Count != 40 || h.Sum != 0.03 {
		t.Errorf("count %v sum %v", h.Count, h.Sum)
	}
	// The 20th of 40 falls halfway through the (0.5ms, 1ms] bucket.
	if q, ok := h.Quantile(0.5); !ok || q < 0.00074 || q > 0.00076 {
		t.Errorf("p50 = %v, %v; want 0.00075", q, ok)
	}
	if _, err := ParseHistogram(strings.NewReader(text), "georaft_missing_seconds"); err == nil {
		t.Error("a missing metric was reported found")
	}
	if _, ok := (Histogram{}).Quantile(0.5); ok {
		t.Error("an empty histogram gave a quantile")
	}
}

func TestRelocateConfigsMovesEveryAddressAndDataDir(t *testing.T) {
	dst := t.TempDir()
	data := filepath.Join(dst, "data")
	if err := RelocateConfigs(filepath.Join(repoRoot, "configs/geo"), dst, data, FreePortMapper()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dst, "node2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "RTT of the two regions") {
		t.Error("relocation dropped the comments")
	}
	nodes, err := LoadClusterConfigs(dst, dst)
	if err != nil {
		t.Fatal(err)
	}
	links, err := client.LoadRegionLinks(filepath.Join(dst, ClientLinksFile))
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range nodes {
		if n.DataPath != filepath.Join(data, "node"+strconv.FormatUint(n.ID, 10)) {
			t.Errorf("node %d data dir %s", n.ID, n.DataPath)
		}
		addrs = append(addrs, n.Listen.Peer, n.Listen.Client, n.Listen.Metrics)
		for _, p := range n.Peers {
			addrs = append(addrs, p.PeerAddress, p.ClientAddress)
		}
	}
	for _, r := range links {
		for _, a := range r {
			addrs = append(addrs, a)
		}
	}
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		if n, _ := strconv.Atoi(port); n >= 2000 && n < 3000 {
			t.Errorf("address %s kept its committed port", a)
		}
	}
	// The same committed address maps to the same new one everywhere.
	n1, _ := nodes[0].Peer(2)
	n3, _ := nodes[2].Peer(2)
	if n1.ClientAddress != n3.ClientAddress || n1.ClientAddress != nodes[1].Listen.Client {
		t.Errorf("node 2's client address relocated inconsistently: %s, %s, %s", n1.ClientAddress, n3.ClientAddress, nodes[1].Listen.Client)
	}
	// Links still lead where they did: node 1 dials node 2 through a proxy, not directly.
	if n1.PeerAddress == nodes[1].Listen.Peer {
		t.Error("relocation collapsed a proxy address onto the node's own listener")
	}
}

func TestCheckPortsFreeNamesTheTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	free := FreePortMapper()
	other, err := free("x:1")
	if err != nil {
		t.Fatal(err)
	}
	err = CheckPortsFree([]NamedAddress{{"node 2 listen.client", ln.Addr().String()}, {"node 3 listen.peer", other}})
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "node 2 listen.client") {
		t.Errorf("error %v, want one naming %s and node 2", err, ln.Addr())
	}
	if strings.Contains(err.Error(), "node 3") {
		t.Errorf("a free port was reported taken: %v", err)
	}
}

func TestStopByPIDFileSignalsOnlyAMatchingProcess(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	spec := ProcessSpec{Name: "sleeper", Binary: sleep, Args: []string{"300"}, Dir: dir,
		PIDFile: filepath.Join(dir, "s.pid"), StdoutFile: filepath.Join(dir, "s.out"), StderrFile: filepath.Join(dir, "s.err")}
	pid, err := StartDetached(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ProcessAlive(pid) {
			_ = syscallKill(pid)
		}
	})
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
	dir := t.TempDir()
	spec := ProcessSpec{Name: "stubborn", Binary: sh, Args: []string{"-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}, Dir: dir,
		PIDFile: filepath.Join(dir, "s.pid"), StdoutFile: filepath.Join(dir, "s.out"), StderrFile: filepath.Join(dir, "s.err")}
	pid, err := StartDetached(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if ProcessAlive(pid) {
			_ = syscallKill(pid)
		}
	})
	// The trap must be in place before the signal, or SIGTERM would simply work.
	waitFor(t, 10*time.Second, "the shell to set its trap", func() bool {
		raw, _ := os.ReadFile(spec.StdoutFile)
		return strings.Contains(string(raw), "ready")
	})
	isShell := func(argv []string) bool { return len(argv) > 0 && filepath.Base(argv[0]) == "sh" }
	outcome, _, err := StopByPIDFile(context.Background(), spec.PIDFile, isShell, 200*time.Millisecond)
	if err != nil || outcome != Killed {
		t.Fatalf("outcome %v err %v; want Killed", outcome, err)
	}
	if ProcessAlive(pid) {
		t.Error("still alive after SIGKILL")
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoServer answers every byte it reads; it stops with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func medianRoundTrip(t *testing.T, addr string, n int) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 32)
	var times []time.Duration
	for range n {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2]
}

func TestProxiesDelayEachDirection(t *testing.T) {
	upstream := echoServer(t)
	free := FreePortMapper()
	short, _ := free("short:1")
	long, _ := free("long:1")
	plan := ProxyPlan{Links: []Link{
		{Name: "short", Listen: short, Upstream: upstream, UpstreamMillis: 2, DownstreamMillis: 1},
		{Name: "long", Listen: long, Upstream: upstream, UpstreamMillis: 12, DownstreamMillis: 10},
	}}
	proxies, err := StartProxies(plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proxies.Close()
	direct := medianRoundTrip(t, upstream, 15)
	viaShort := medianRoundTrip(t, short, 15)
	viaLong := medianRoundTrip(t, long, 15)
	t.Logf("p50 round trip: direct %v, 3ms link %v, 22ms link %v", direct, viaShort, viaLong)
	// A toxic sleeps at least its latency; more load only adds.
	if viaShort < 3*time.Millisecond || viaLong < 22*time.Millisecond {
		t.Errorf("a link returned faster than its toxics allow: %v (≥3ms), %v (≥22ms)", viaShort, viaLong)
	}
	if !(direct < viaShort && viaShort < viaLong) {
		t.Errorf("want direct < short link < long link, got %v, %v, %v", direct, viaShort, viaLong)
	}
	// A second plan on the same listener cannot start, and says which link.
	if _, err := StartProxies(ProxyPlan{Links: []Link{{Name: "dup", Listen: short, Upstream: upstream}}}, nil); err == nil || !strings.Contains(err.Error(), "dup") {
		t.Errorf("second proxy on a taken port: %v", err)
	}
	proxies.Close()
	if _, err := net.DialTimeout("tcp", short, time.Second); err == nil {
		t.Error("a closed proxy still accepts connections")
	}
}

func TestServeProxiesSignalsReadinessAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	upstream := echoServer(t)
	listen, _ := FreePortMapper()("a:1")
	planPath, readyPath := filepath.Join(dir, "plan.json"), filepath.Join(dir, "ready")
	if err := WritePlan(planPath, ProxyPlan{Links: []Link{{Name: "l", Listen: listen, Upstream: upstream, UpstreamMillis: 1}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeProxies(ctx, planPath, readyPath, io.Discard) }()
	waitFor(t, 10*time.Second, "the ready file", func() bool {
		raw, err := os.ReadFile(readyPath)
		return err == nil && strings.TrimSpace(string(raw)) == strconv.Itoa(os.Getpid())
	})
	if d := medianRoundTrip(t, listen, 3); d < time.Millisecond {
		t.Errorf("served link answered in %v, under its 1ms toxic", d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(readyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file left behind: %v", err)
	}
	if err := os.WriteFile(planPath, []byte(`{"links":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ServeProxies(context.Background(), planPath, readyPath, io.Discard); err == nil || !strings.Contains(err.Error(), planPath) {
		t.Errorf("empty plan: %v, want an error naming the file", err)
	}
}

func syntheticResult() BenchResult {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	row := func(name string, p50, pred float64) bench.Row {
		return bench.Row{Name: name, Ops: 100, P50: ms(p50), P90: ms(p50 * 1.2), P99: ms(p50 * 2), Predicted: ms(pred), PredictionBasis: "basis of " + name,
			Curve: []bench.CurvePoint{{Percentile: 50, Latency: ms(p50)}, {Percentile: 100, Latency: ms(p50 * 2)}}}
	}
	rep := func(rows ...bench.Row) bench.Report { return bench.Report{Driver: "georaft", Rows: rows} }
	return BenchResult{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), LeaderID: 1, LeaderRegion: "us-central1",
		Scale: 1, IntraRegionRTT: time.Millisecond, Compensation: time.Millisecond, OvershootNote: LinkModel{Compensation: time.Millisecond}.OvershootNote(),
		FsyncProbe: ms(0.4),
		Regions: []RegionResult{
			{"us-central1", rep(row(RowLease, 1.6, 1), row(RowIndex, 38, 37), row(RowLog, 40, 37.4), row(RowStale, 1.5, 1), row(RowWrite, 40.5, 37.4))},
			{"europe-west1", rep(row(RowLease, 101, 100), row(RowLog, 139, 136.4))},
		},
	}
}

func TestBenchResultReportsGapRatioAndSpeedup(t *testing.T) {
	res := syntheticResult()
	if s, ok := res.LeaseSpeedup(); !ok || s != 25 {
		t.Errorf("speedup %v %v, want 25 (40ms / 1.6ms)", s, ok)
	}
	var out strings.Builder
	if err := res.WriteComparison(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"25.0x faster than log reads", "+0.600ms", "1.60x", "europe-west1", "basis of index", "compensation", "fsync p50: 0.400ms"} {
		if !strings.Contains(text, want) {
			t.Errorf("comparison lacks %q:\n%s", want, text)
		}
	}
	res.Regions[0].Report.Rows[0].P50 = res.Regions[0].Report.Rows[2].P50 / 5
	out.Reset()
	_ = res.WriteComparison(&out)
	if !strings.Contains(out.String(), "BELOW") {
		t.Errorf("a 5x speedup was not flagged:\n%s", out.String())
	}
}

func TestBenchResultFiles(t *testing.T) {
	res := syntheticResult()
	dir := t.TempDir()
	if err := res.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if res.Dir != filepath.Join(dir, "bench-20260102-030405") {
		t.Errorf("result dir %s", res.Dir)
	}
	for _, name := range []string{"bench.json", "bench.csv", "bench.svg", "curves-us-central1.svg", "curves-europe-west1.svg"} {
		if _, err := os.Stat(filepath.Join(res.Dir, name)); err != nil {
			t.Error(err)
		}
	}
	for _, ext := range []string{"json", "csv", "svg"} {
		latest, err := os.ReadFile(filepath.Join(dir, "bench-latest."+ext))
		if err != nil {
			t.Fatal(err)
		}
		dated, _ := os.ReadFile(filepath.Join(res.Dir, "bench."+ext))
		if !bytes.Equal(latest, dated) {
			t.Errorf("bench-latest.%s differs from the dated copy", ext)
		}
	}
	records, err := csv.NewReader(bytes.NewReader(mustRead(t, filepath.Join(dir, "bench-latest.csv")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 1+7 || records[1][0] != "us-central1" || records[1][1] != RowLease || records[1][10] != "1.600" {
		t.Errorf("csv: %v", records[:2])
	}
	if !bytes.Contains(mustRead(t, filepath.Join(dir, "bench-latest.json")), []byte(`"lease_vs_log_speedup": 25`)) {
		t.Error("json lacks the lease speedup")
	}
	dec := xml.NewDecoder(bytes.NewReader(mustRead(t, filepath.Join(dir, "bench-latest.svg"))))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("svg is not well-formed: %v", err)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The node's own loader accepts every committed config: the lab writes what georaftd reads.
func TestCommittedConfigsPassNodeValidation(t *testing.T) {
	for _, dir := range []string{"configs/local", "configs/geo"} {
		paths, err := filepath.Glob(filepath.Join(repoRoot, dir, "node*.yaml"))
		if err != nil || len(paths) != 5 {
			t.Fatalf("%s: %d node configs, %v", dir, len(paths), err)
		}
		for _, path := range paths {
			cfg, err := config.LoadFile(path)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			if len(cfg.Peers) != 5 {
				t.Errorf("%s: %d peers after loading, want 5", path, len(cfg.Peers))
			}
		}
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
}
