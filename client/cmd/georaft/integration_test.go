package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/geo"
)

// These tests run a real 3-node cluster, built from this checkout.

func TestMain(m *testing.M) { kittest.Main(m) }

func TestIntegrationOneShotsAgainstACluster(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	leader := kittest.WaitLeader(t, cl)
	cfg := "--config=" + strings.Join(cl.ConfigPaths(), ",")

	if _, stderr, code := georaft(t, "", "set", "greeting", "hello world", cfg); code != 0 {
		t.Fatalf("set: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := georaft(t, "", "get", "greeting", "--read", "index", cfg)
	if code != 0 || stdout != "hello world\n" {
		t.Fatalf("get: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, _, code := georaft(t, "", "get", "absent", cfg); code != cli.ExitNotFound {
		t.Fatalf("get of a missing key: exit %d, want %d", code, cli.ExitNotFound)
	}
	stdout, _, code = georaft(t, "", "status", cfg)
	if code != 0 || strings.Count(stdout, "leader") < 2 || !strings.Contains(stdout, fmt.Sprintf("leader: node %d", leader)) {
		t.Fatalf("status: exit %d:\n%s", code, stdout)
	}
	// Each node's version, from its build, is in the table: the same for all three, and a
	// version ("devel" outside a repository, a pseudo-version inside one), not a placeholder.
	versions := map[string]int{}
	for _, line := range strings.Split(stdout, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 10 && strings.Trim(fields[0], "0123456789") == "" && strings.Contains(fields[2], ":") {
			versions[fields[len(fields)-1]]++
		}
	}
	if !strings.Contains(stdout, "version") || len(versions) != 1 || versions["-"] != 0 {
		t.Fatalf("status lacks the nodes' versions (%v):\n%s", versions, stdout)
	}
	for v, n := range versions {
		if n != 3 || !(v == "devel" || strings.HasPrefix(v, "v")) {
			t.Fatalf("status shows version %q on %d nodes, want one build's version on 3:\n%s", v, n, stdout)
		}
	}
	stdout, _, code = georaft(t, "", "status", cfg, "-o", "json")
	var st struct {
		LeaderID uint64 `json:"leader_id"`
		Nodes    []struct {
			ID        uint64 `json:"id"`
			Reachable bool   `json:"reachable"`
			Role      string `json:"role"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || code != 0 || len(st.Nodes) != 3 || st.LeaderID != leader {
		t.Fatalf("status -o json: exit %d, %v:\n%s", code, err, stdout)
	}

	// The REPL on piped stdin, against the cluster.
	stdout, stderr, code = georaft(t, "SET a 1\nGET a\nDEL a\nGET a\nMODE stale\n", cfg)
	if code != cli.ExitNotFound || !strings.Contains(stdout, "OK\n1\nOK\n") {
		t.Fatalf("piped REPL: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// Killing a follower shows it as unreachable; the rest still answer.
	follower := leader%3 + 1
	if err := cl.Kill(follower); err != nil {
		t.Fatal(err)
	}
	stdout, _, code = georaft(t, "", "status", cfg, "--timeout", "2s")
	if code != 0 || !strings.Contains(stdout, "unreachable") || !strings.Contains(stdout, "2 of 3 nodes answered") {
		t.Fatalf("status with node %d down: exit %d:\n%s", follower, code, stdout)
	}
	if stdout, _, code := georaft(t, "", "health", cfg, "--timeout", "2s"); code != 0 || !strings.HasPrefix(stdout, "healthy: leader node") {
		t.Fatalf("health with a quorum up: exit %d: %s", code, stdout)
	}

	// Without a quorum, status and health say so and exit 3: a health check must fail.
	other := 6 - leader - follower
	if err := cl.Kill(other); err != nil {
		t.Fatal(err)
	}
	stdout, _, code = georaft(t, "", "status", cfg, "--timeout", "2s")
	if code != cli.ExitUnavailable || !strings.Contains(stdout, "UNHEALTHY: 1 of 3 nodes reachable; a quorum needs 2") {
		t.Fatalf("status with 2 of 3 nodes down: exit %d:\n%s", code, stdout)
	}
	if stdout, _, code := georaft(t, "", "health", "-q", cfg, "--timeout", "2s"); code != cli.ExitUnavailable || stdout != "" {
		t.Fatalf("health -q without a quorum: exit %d, output %q", code, stdout)
	}
	stdout, _, _ = georaft(t, "", "health", cfg, "--timeout", "2s", "-o", "json")
	var health struct {
		Healthy bool   `json:"healthy"`
		Problem string `json:"problem"`
		Quorum  int    `json:"quorum"`
	}
	if err := json.Unmarshal([]byte(stdout), &health); err != nil || health.Healthy || health.Quorum != 2 || health.Problem == "" {
		t.Fatalf("health -o json without a quorum: %v\n%s", err, stdout)
	}
}

// A bench run on a small cluster produces well-formed JSON and CSV and a chart, with
// operations counted for every mode and for writes.
func TestIntegrationBenchWritesReportsAndChart(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	dir := t.TempDir()
	jsonPath, csvPath, chartPath := filepath.Join(dir, "bench.json"), filepath.Join(dir, "bench.csv"), filepath.Join(dir, "bench.svg")
	stdout, stderr, code := georaft(t, "", "bench", "--config="+strings.Join(cl.ConfigPaths(), ","),
		"--ops", "150", "--warmup", "200ms", "--concurrency", "4", "--keys", "40", "--value-size", "32",
		"--json", jsonPath, "--csv", csvPath, "--chart", chartPath)
	if code != 0 {
		t.Fatalf("bench: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, mode := range []string{"lease", "index", "log", "stale", "write"} {
		if !strings.Contains(stdout, "\n"+mode+" ") {
			t.Fatalf("table lacks a %s row:\n%s", mode, stdout)
		}
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Rows []struct {
			Name   string           `json:"name"`
			Ops    int64            `json:"ops"`
			Errors int64            `json:"errors"`
			Served map[string]int64 `json:"served"`
			Lat    struct {
				P50 float64 `json:"p50"`
				P99 float64 `json:"p99"`
			} `json:"latency_ms"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("bench JSON: %v", err)
	}
	if len(rep.Rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		if r.Ops == 0 || r.Lat.P50 <= 0 || r.Lat.P99 < r.Lat.P50 {
			t.Fatalf("row %s: %+v", r.Name, r)
		}
		if r.Name != "write" {
			var served int64
			for _, n := range r.Served {
				served += n
			}
			if served != r.Ops {
				t.Fatalf("row %s: served counts %v do not add up to %d reads", r.Name, r.Served, r.Ops)
			}
		}
	}
	csvData, err := os.ReadFile(csvPath)
	if err != nil || strings.Count(string(csvData), "\n") != 6 {
		t.Fatalf("bench CSV (%v):\n%s", err, csvData)
	}
	f, err := os.Open(chartPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	curves := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			curves++
		}
	}
	if curves != 5 {
		t.Fatalf("chart has %d curves, want 5", curves)
	}
}

func TestIntegrationTransferLeaderCommand(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	leader := kittest.WaitLeader(t, cl)
	target := leader%3 + 1
	stdout, stderr, code := georaft(t, "", "transfer-leader", "--to", fmt.Sprint(target),
		"--endpoints", strings.Join(cl.ClientAddrs(), ","), "--timeout", "15s")
	if code != 0 {
		t.Fatalf("transfer-leader: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := kittest.WaitLeader(t, cl); got != target {
		t.Fatalf("leader %d after transfer-leader --to %d", got, target)
	}
}

// --via-region sends the bench through a region's links: stale reads go to the node of
// that region over its short link, linearizable ones to the leader over a long one.
func TestIntegrationBenchViaRegion(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	leader := kittest.WaitLeader(t, cl)
	local := cl.Node(leader%3 + 1) // a follower: the region's own node is not the leader
	const farRTT = 40 * time.Millisecond
	links := client.RegionLinks{local.Region: {}}
	for _, n := range cl.Nodes {
		p := kittest.Proxy(t, n.ClientAddr())
		if n.ID != local.ID {
			if err := p.SetRTT(farRTT); err != nil {
				t.Fatal(err)
			}
		}
		links[local.Region][n.ID] = p.Listen
	}
	linksFile := filepath.Join(t.TempDir(), "client-links.yaml")
	f, err := os.Create(linksFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := links.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	stdout, stderr, code := georaft(t, "", "bench", "--via-region", local.Region, "--links", linksFile,
		"--read-modes", "lease,stale", "--write-phase=false", "--ops", "60", "--warmup", "300ms",
		"--concurrency", "2", "--keys", "10", "-o", "json")
	if code != 0 {
		t.Fatalf("bench --via-region: exit %d\n%s%s", code, stdout, stderr)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("bench -o json: %v\n%s", err, stdout)
	}
	lease, _ := rep.Row("lease")
	stale, _ := rep.Row("stale")
	if rep.Labels["via_region"] != local.Region || lease.Ops != 60 || stale.Ops != 60 {
		t.Fatalf("report labels %v, lease ops %d, stale ops %d", rep.Labels, lease.Ops, stale.Ops)
	}
	if lease.P50 < farRTT {
		t.Fatalf("lease p50 %v under the %v link to the leader: the traffic bypassed the region's proxies", lease.P50, farRTT)
	}
	if stale.P50*2 > lease.P50 {
		t.Fatalf("stale p50 %v not well under lease p50 %v: stale reads did not go to the region's own node", stale.P50, lease.P50)
	}
}

// With TLS on, the CLI verifies the nodes with the CA from the node configs and presents the
// node's certificate from them (nodes require a client certificate), or takes --cacert,
// --cert and --key; a plaintext client is not let in.
func TestIntegrationTLS(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{TLS: true})
	cfg := "--config=" + strings.Join(cl.ConfigPaths(), ",")
	if _, stderr, code := georaft(t, "", "set", "k", "secret", cfg); code != 0 {
		t.Fatalf("set over TLS with the CA from the configs: exit %d: %s", code, stderr)
	}
	endpoints := "--endpoints=" + strings.Join(cl.ClientAddrs(), ",")
	stdout, stderr, code := georaft(t, "", "get", "k", endpoints,
		"--cacert", filepath.Join(cl.CertDir, "ca.crt"),
		"--cert", filepath.Join(cl.CertDir, "client-admin.crt"), "--key", filepath.Join(cl.CertDir, "client-admin.key"))
	if code != 0 || stdout != "secret\n" {
		t.Fatalf("get over mutual TLS: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if _, _, code := georaft(t, "", "get", "k", endpoints, "--timeout", "1s"); code != cli.ExitUnavailable {
		t.Fatalf("plaintext get against TLS nodes: exit %d, want %d", code, cli.ExitUnavailable)
	}
	if _, _, code := georaft(t, "", "get", "k", endpoints, "--cert", filepath.Join(cl.CertDir, "client-admin.crt")); code != cli.ExitUsage {
		t.Fatalf("--cert without --cacert: exit %d, want %d", code, cli.ExitUsage)
	}
}

// status --rtt-csv and tune --from-cluster turn the RTTs the nodes measured to each other
// into a region matrix and lease timing, as the deployment kit does with a real cluster.
func TestIntegrationTuneFromMeasuredRTTs(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	endpoints := strings.Join(cl.ClientAddrs(), ",")
	csv := filepath.Join(t.TempDir(), "measured.csv")
	// The transport pings every peer once a second; wait until every pair has a figure.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, stderr, code := georaft(t, "", "status", "--endpoints", endpoints, "--rtt-csv", csv)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --rtt-csv never succeeded: exit %d\n%s", code, stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	m, err := geo.LoadCSV(csv)
	if err != nil {
		t.Fatalf("the measured matrix does not parse: %v", err)
	}
	if got := m.Regions(); len(got) != 3 {
		t.Fatalf("measured matrix has regions %v, want the cluster's 3", got)
	}
	stdout, stderr, code := georaft(t, "", "tune", "--from-cluster", "--endpoints", endpoints, "--format", "yaml")
	if code != 0 || !strings.Contains(stdout, "lease_duration:") || !strings.Contains(stdout, "heartbeat_interval:") {
		t.Fatalf("tune --from-cluster: exit %d\n%s%s", code, stdout, stderr)
	}
	// With a mix it plans read leases for the nodes where they are.
	stdout, stderr, code = georaft(t, "", "tune", "--from-cluster", "--endpoints", endpoints, "--mix", "*=100r+1w", "--output", "json")
	var out struct {
		Voters []struct {
			ID     uint64 `json:"id"`
			Region string `json:"region"`
		} `json:"voters"`
		Plan struct {
			Regions    []string `json:"node_regions"`
			Candidates []any    `json:"candidates"`
		} `json:"plan"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); code != 0 || err != nil {
		t.Fatalf("tune --from-cluster --mix: exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	if len(out.Voters) != len(cl.Nodes) || len(out.Plan.Candidates) != (1<<len(out.Plan.Regions))*len(out.Plan.Regions) {
		t.Fatalf("voters %v, %d candidates over regions %v", out.Voters, len(out.Plan.Candidates), out.Plan.Regions)
	}
	for i, n := range cl.Nodes {
		if out.Voters[i].ID != n.ID || out.Voters[i].Region != n.Region {
			t.Errorf("tune placed node %d in %s; the cluster has node %d in %s", out.Voters[i].ID, out.Voters[i].Region, n.ID, n.Region)
		}
	}
}
