package lab

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
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

func geoSpecForMatrix(t *testing.T, ports clusterkit.GeoPorts, dataRoot string) clusterkit.Spec {
	t.Helper()
	timing, err := clusterkit.GeoTiming(defaultMatrix(t), clusterkit.DefaultRegions)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := GeoSpec(ports, clusterkit.DefaultRegions, dataRoot, timing)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// The committed configs are the generator's output: regenerate with `make gen-configs`.
func TestCommittedConfigsMatchGenerator(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		spec clusterkit.Spec
	}{
		{"configs/local", LocalSpec(clusterkit.DefaultLocalPorts, "data/local")},
		{"configs/geo", geoSpecForMatrix(t, clusterkit.DefaultGeoPorts, "data/geo")},
	} {
		out := t.TempDir()
		if err := WriteSpec(out, tc.spec); err != nil {
			t.Fatal(err)
		}
		generated, err := filepath.Glob(filepath.Join(out, "*.yaml"))
		if err != nil || len(generated) == 0 {
			t.Fatalf("generator wrote %v, %v", generated, err)
		}
		for _, path := range generated {
			want := mustRead(t, path)
			committed := filepath.Join(repoRoot, tc.dir, filepath.Base(path))
			got, err := os.ReadFile(committed)
			if err != nil {
				t.Errorf("%v (run `make gen-configs`)", err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the generator's output (run `make gen-configs`):\n--- committed\n%s\n--- generated\n%s", committed, got, want)
			}
		}
	}
}

func TestCommittedConfigsDescribeOneCluster(t *testing.T) {
	abs := func(dir string) string {
		p, err := filepath.Abs(filepath.Join(repoRoot, dir))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	local, err := clusterkit.Open(abs("configs/local"), clusterkit.Options{WorkDir: "/work"})
	if err != nil {
		t.Fatal(err)
	}
	if len(local.Nodes) != 5 || local.Nodes[0].Config.ClusterID != "georaft-local" || local.Nodes[2].DataPath != "/work/data/local/node3" {
		t.Errorf("local cluster: %d nodes, node 3's data in %s", len(local.Nodes), local.Nodes[2].DataPath)
	}
	g, err := clusterkit.Open(abs("configs/geo"), clusterkit.Options{WorkDir: "/work"})
	if err != nil {
		t.Fatal(err)
	}
	var regions []string
	for _, n := range g.Nodes {
		regions = append(regions, n.Region)
	}
	if !slices.Equal(regions, clusterkit.DefaultRegions) {
		t.Errorf("geo regions %v, want %v in node order", regions, clusterkit.DefaultRegions)
	}
	if got := g.Links["europe-west1"][1]; got != "127.0.0.1:2411" {
		t.Errorf("client link europe-west1 -> node 1 = %q, want 127.0.0.1:2411", got)
	}
}

func TestGeoSpecRejectsBadRegions(t *testing.T) {
	for _, regions := range [][]string{
		{"a", "b", "a"},
		{"a", ""},
		{"a", "b", "c", "d", "e", "f", "g", "h"},
	} {
		if _, err := GeoSpec(clusterkit.DefaultGeoPorts, regions, "data", config.Defaults().Timing); err == nil {
			t.Errorf("regions %q accepted", regions)
		}
	}
}

func TestPredictFollowsTheMatrix(t *testing.T) {
	regions := map[uint64]string{}
	for i, r := range clusterkit.DefaultRegions {
		regions[uint64(i+1)] = r
	}
	model := clusterkit.LinkModel{Matrix: defaultMatrix(t), IntraRegionRTT: time.Millisecond}
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
	// A read-lease holder in europe-west1 answers there; every write waits for it (100ms
	// from us-central1, more than the 36ms quorum).
	got, err = Predict(PredictionInput{Model: model, NodeRegions: regions, LeaderID: 1, ReadLeaseHolders: []uint64{4},
		ClientRegion: "europe-west1", Fsync: ms(0.5)})
	if err != nil {
		t.Fatal(err)
	}
	if got[RowLease].P50 != ms(1) || !strings.Contains(got[RowLease].Basis, "holder 4 (europe-west1)") ||
		got[RowWrite].P50 != ms(100+100+0.5) || !strings.Contains(got[RowWrite].Basis, "farthest holder") ||
		got[RowIndex].P50 != ms(136) {
		t.Errorf("holder in europe-west1: lease %v (%s), write %v (%s), index %v; want 1ms, 200.5ms, 136ms",
			got[RowLease].P50, got[RowLease].Basis, got[RowWrite].P50, got[RowWrite].Basis, got[RowIndex].P50)
	}
	if _, err := Predict(PredictionInput{Model: model, NodeRegions: regions, LeaderID: 9, ClientRegion: "us-east1"}); err == nil {
		t.Error("a leader outside the cluster was accepted")
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
		Scale: 1, IntraRegionRTT: time.Millisecond, Compensation: time.Millisecond, OvershootNote: clusterkit.LinkModel{Compensation: time.Millisecond}.OvershootNote(),
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
