package lab

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// BenchOptions shape `make bench`.
type BenchOptions struct {
	Geo GeoOptions
	// LeaderRegion is where leadership is pinned before measuring; the first client runs
	// there. FarRegion is the second client's region.
	LeaderRegion string
	FarRegion    string
	// Concurrency is the closed-loop workers per client region. One keeps each latency
	// the physics of a single request, which is what the predictions are.
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
	Keys        int
	ValueSize   int
	// ResultsDir receives bench-<UTC time>/ and the bench-latest.* copies.
	ResultsDir string
	// Progress, if set, receives progress bars (a terminal).
	Progress   io.Writer
	PinTimeout time.Duration

	// Holders runs the read-lease part (holders.go): lease and write p50 from every region
	// with read leases held by none, all and tune's recommendation for HolderMix, each
	// measured for MatrixDuration after MatrixWarmup; the holder wait under WaitWriteRate
	// writes/s for WaitDuration per key; and the hidden cost of a paused holder.
	Holders        bool
	HolderMix      string
	MatrixDuration time.Duration
	MatrixWarmup   time.Duration
	WaitWriteRate  float64
	WaitDuration   time.Duration
}

// DefaultBenchOptions measure each mode for 5 s per client region after 1 s of warmup:
// about a minute and a half with start-up and teardown.
func DefaultBenchOptions() BenchOptions {
	geo := DefaultGeoOptions()
	geo.Fresh = true
	return BenchOptions{
		Geo:          geo,
		LeaderRegion: "us-central1",
		FarRegion:    "europe-west1",
		Concurrency:  1,
		Duration:     5 * time.Second,
		Warmup:       time.Second,
		Keys:         100,
		ValueSize:    128,
		ResultsDir:   "results",
		PinTimeout:   60 * time.Second,

		Holders:        true,
		HolderMix:      DefaultHolderMix,
		MatrixDuration: 3 * time.Second,
		MatrixWarmup:   500 * time.Millisecond,
		WaitWriteRate:  10,
		WaitDuration:   8 * time.Second,
	}
}

// BenchReadModes are measured in this order, then writes.
var BenchReadModes = []string{RowLease, RowIndex, RowLog, RowStale}

// RegionResult is the benchmark from one client region, predictions attached.
type RegionResult struct {
	ClientRegion string       `json:"client_region"`
	Report       bench.Report `json:"report"`
}

// BenchResult is everything `make bench` measured and the settings it measured under.
type BenchResult struct {
	Started        time.Time
	LeaderID       uint64
	LeaderRegion   string
	Scale          float64
	IntraRegionRTT time.Duration
	Jitter         time.Duration
	Compensation   time.Duration
	OvershootNote  string
	// FsyncProbe is the p50 of the lab's own fsync probe in the leader's data dir;
	// FsyncNode the p50 of the leader's georaft_wal_fsync_seconds (0 if not exposed).
	FsyncProbe time.Duration
	FsyncNode  time.Duration
	Regions    []RegionResult
	// Holders is the read-lease part; nil when not run.
	Holders *HolderBench
	// Dir is where the result files were written.
	Dir string
}

// Bench brings the emulated cluster up, pins the leader, measures from the leader's region
// and from a far region, prints the tables, writes the result files, and stops everything
// it started whatever happens.
func Bench(ctx context.Context, opts BenchOptions, out io.Writer) (res BenchResult, err error) {
	if opts.LeaderRegion == "" || opts.FarRegion == "" {
		return res, errors.New("bench: leader region and far region must both be set")
	}
	opts.Geo.Out = out
	g, err := GeoUp(ctx, opts.Geo)
	if err != nil {
		return res, err
	}
	defer func() {
		fmt.Fprintln(out, "stopping the emulated cluster")
		if stopErr := g.Stop(context.Background()); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()
	leader := g.Cluster.NodeIn(opts.LeaderRegion)
	if leader == nil {
		return res, fmt.Errorf("bench: no node in region %s (the configs place nodes in %v)", opts.LeaderRegion, g.Cluster.Regions())
	}
	leaderID := leader.ID
	fmt.Fprintf(out, "waiting for leader placement to put leadership on node %d (%s)\n", leaderID, opts.LeaderRegion)
	if err := g.waitPlaced(ctx, leaderID, opts.PinTimeout); err != nil {
		return res, err
	}
	res = BenchResult{
		Started:        time.Now().UTC(),
		LeaderID:       leaderID,
		LeaderRegion:   opts.LeaderRegion,
		Scale:          g.Model.Scale,
		IntraRegionRTT: g.Model.IntraRegionRTT,
		Jitter:         g.Model.Jitter,
		Compensation:   g.Model.Compensation,
		OvershootNote:  g.Model.OvershootNote(),
	}
	if res.FsyncProbe, err = ProbeFsync(leader.DataPath, 50); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "node %d leads with its lease held; fsync p50 on this disk: %s\n\n", leaderID, bench.FormatLatency(res.FsyncProbe))

	regions := []string{opts.LeaderRegion}
	if opts.FarRegion != opts.LeaderRegion {
		regions = append(regions, opts.FarRegion)
	}
	for _, region := range regions {
		rr, err := g.benchFrom(ctx, opts, region, leaderID, res.FsyncProbe)
		if rr.Report.Rows != nil {
			res.Regions = append(res.Regions, rr)
			fmt.Fprintf(out, "=== client in %s, leader node %d in %s ===\n", region, leaderID, opts.LeaderRegion)
			if werr := rr.Report.WriteTable(out); werr != nil {
				return res, werr
			}
			fmt.Fprintln(out)
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("bench from %s interrupted (%w); the rows above are what was measured", region, ctx.Err())
			}
			return res, fmt.Errorf("bench from %s: %w", region, err)
		}
	}
	if leader.MetricsAddr() != "" {
		if h, err := clusterkit.FetchHistogram(ctx, leader.MetricsAddr(), "georaft_wal_fsync_seconds"); err == nil {
			if p50, ok := h.Quantile(0.5); ok {
				res.FsyncNode = time.Duration(p50 * float64(time.Second))
			}
		} else {
			fmt.Fprintf(out, "(node-reported fsync unavailable: %v)\n", err)
		}
	}
	if err := res.WriteComparison(out); err != nil {
		return res, err
	}
	if opts.Holders {
		fmt.Fprintln(out)
		res.Holders, err = g.benchHolders(ctx, opts, leaderID, res.FsyncProbe, out)
		fmt.Fprintln(out)
		res.Holders.WriteHolderTable(out)
		if err != nil {
			return res, fmt.Errorf("bench read leases: %w", err)
		}
	}
	if err := res.WriteFiles(opts.ResultsDir); err != nil {
		return res, err
	}
	fmt.Fprintf(out, "\nresults: %s (latest copies: %s)\n", res.Dir, filepath.Join(opts.ResultsDir, "bench-latest.{json,csv,svg}"))
	return res, nil
}

// waitPlaced waits until target leads with its lease held, put there by leader placement
// (the configs' placement.preferred_regions), not by a transfer the lab asks for.
func (g *Geo) waitPlaced(ctx context.Context, target uint64, timeout time.Duration) error {
	return clusterkit.WaitFor(ctx, timeout, fmt.Sprintf("placement to make node %d the leader, with its lease held", target), func() error {
		statuses, errs := g.Cluster.Statuses(ctx, time.Second, false)
		if st := statuses[target]; st.GetRole() == georaftv1.Role_ROLE_LEADER && st.GetLeaseState() == georaftv1.LeaseState_LEASE_STATE_HELD {
			return nil
		}
		return fmt.Errorf("not yet (%d statuses, %d errors)", len(statuses), len(errs))
	})
}

// benchFrom runs the client/bench engine through region's links.
func (g *Geo) benchFrom(ctx context.Context, opts BenchOptions, region string, leaderID uint64, fsync time.Duration) (RegionResult, error) {
	cl, err := g.Cluster.Client(region, 10*time.Second)
	if err != nil {
		return RegionResult{}, err
	}
	defer cl.Close()
	preds, err := Predict(PredictionInput{Model: g.Model, NodeRegions: g.Cluster.Regions(), LeaderID: leaderID, ClientRegion: region, Fsync: fsync})
	if err != nil {
		return RegionResult{}, err
	}
	cfg := bench.Config{
		Driver:      bench.ClientDriver{Client: cl},
		ReadModes:   BenchReadModes,
		WritePhase:  true,
		Concurrency: opts.Concurrency,
		Duration:    opts.Duration,
		Warmup:      opts.Warmup,
		Keys:        opts.Keys,
		ValueSize:   opts.ValueSize,
		KeyPrefix:   "bench/" + region + "/",
		Prefill:     true,
		Progress:    opts.Progress,
		Predict: func(row string) (time.Duration, string) {
			p := preds[row]
			return p.P50, p.Basis
		},
		Labels: map[string]string{
			"client_region": region,
			"leader":        fmt.Sprintf("node %d (%s)", leaderID, g.Cluster.Node(leaderID).Region),
			"scale":         strconv.FormatFloat(g.Model.Scale, 'f', -1, 64),
			"overshoot":     fmt.Sprintf("compensation %v on one direction per link", g.Model.Compensation),
		},
	}.Defaults()
	rep, err := bench.Run(ctx, cfg)
	return RegionResult{ClientRegion: region, Report: rep}, err
}

// comparisonRow is one line of the cross-region table and CSV.
type comparisonRow struct {
	region string
	row    bench.Row
}

func (r BenchResult) comparisonRows() []comparisonRow {
	var out []comparisonRow
	for _, rr := range r.Regions {
		for _, row := range rr.Report.Rows {
			out = append(out, comparisonRow{rr.ClientRegion, row})
		}
	}
	return out
}

func ratio(measured, predicted time.Duration) string {
	if predicted <= 0 || measured <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", float64(measured)/float64(predicted))
}

func signedLatency(d time.Duration) string {
	if d < 0 {
		return "-" + bench.FormatLatency(-d)
	}
	if d == 0 {
		return "0"
	}
	return "+" + bench.FormatLatency(d)
}

// LeaseSpeedup is log p50 over lease p50 from the leader's region: what a lease buys.
func (r BenchResult) LeaseSpeedup() (float64, bool) {
	for _, rr := range r.Regions {
		if rr.ClientRegion != r.LeaderRegion {
			continue
		}
		lease, ok1 := rr.Report.Row(RowLease)
		logRow, ok2 := rr.Report.Row(RowLog)
		if ok1 && ok2 && lease.P50 > 0 && logRow.P50 > 0 {
			return float64(logRow.P50) / float64(lease.P50), true
		}
	}
	return 0, false
}

// WriteComparison prints measured p50 beside the prediction for every region and mode,
// then what a lease buys and the emulation settings the figures depend on.
func (r BenchResult) WriteComparison(w io.Writer) error {
	var b strings.Builder
	b.WriteString("=== measured p50 vs physics (RTT matrix + fsync) ===\n")
	rows := [][]string{{"client", "mode", "ops", "p50", "predicted", "gap", "ratio", "basis"}}
	for _, c := range r.comparisonRows() {
		pred, gap := "-", "-"
		if c.row.HasPrediction() {
			pred = bench.FormatLatency(c.row.Predicted)
			gap = signedLatency(c.row.Gap())
		}
		rows = append(rows, []string{c.region, c.row.Name, strconv.FormatInt(c.row.Ops, 10), bench.FormatLatency(c.row.P50), pred, gap, ratio(c.row.P50, c.row.Predicted), c.row.PredictionBasis})
	}
	b.WriteString(bench.Columns(rows, map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true}))
	if s, ok := r.LeaseSpeedup(); ok {
		verdict := "as expected (> 10x)"
		if s <= 10 {
			verdict = "BELOW the 10x expected with the default matrix"
		}
		fmt.Fprintf(&b, "\nlease reads are %.1fx faster than log reads at p50 from %s, the leader's region: %s\n", s, r.LeaderRegion, verdict)
	}
	fmt.Fprintf(&b, "emulation: RTT matrix x%s, intra-region RTT %v, jitter ±%v per direction; %s\n",
		strconv.FormatFloat(r.Scale, 'f', -1, 64), r.IntraRegionRTT, r.Jitter, r.OvershootNote)
	fmt.Fprintf(&b, "fsync p50: %s by the lab's probe in the leader's data dir", bench.FormatLatency(r.FsyncProbe))
	if r.FsyncNode > 0 {
		fmt.Fprintf(&b, ", %s from the leader's georaft_wal_fsync_seconds", bench.FormatLatency(r.FsyncNode))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// MarshalJSON writes durations as milliseconds, the unit every figure of the lab is in.
func (r BenchResult) MarshalJSON() ([]byte, error) {
	speedup, _ := r.LeaseSpeedup()
	type comparison struct {
		ClientRegion string  `json:"client_region"`
		Mode         string  `json:"mode"`
		Ops          int64   `json:"ops"`
		Errors       int64   `json:"errors"`
		P50          float64 `json:"p50_ms"`
		Predicted    float64 `json:"predicted_ms"`
		Gap          float64 `json:"gap_ms"`
		Basis        string  `json:"basis"`
	}
	var comps []comparison
	for _, c := range r.comparisonRows() {
		comps = append(comps, comparison{c.region, c.row.Name, c.row.Ops, c.row.Errors, millis(c.row.P50), millis(c.row.Predicted), millis(c.row.Gap()), c.row.PredictionBasis})
	}
	return json.Marshal(struct {
		Started        time.Time      `json:"started"`
		LeaderID       uint64         `json:"leader_id"`
		LeaderRegion   string         `json:"leader_region"`
		Scale          float64        `json:"rtt_scale"`
		IntraRegionRTT float64        `json:"intra_region_rtt_ms"`
		Jitter         float64        `json:"jitter_ms"`
		Compensation   float64        `json:"overshoot_compensation_ms"`
		OvershootNote  string         `json:"overshoot_note"`
		FsyncProbe     float64        `json:"fsync_probe_p50_ms"`
		FsyncNode      float64        `json:"fsync_node_p50_ms"`
		LeaseSpeedup   float64        `json:"lease_vs_log_speedup"`
		Comparison     []comparison   `json:"comparison"`
		Regions        []RegionResult `json:"regions"`
		Holders        *HolderBench   `json:"read_leases,omitempty"`
	}{r.Started, r.LeaderID, r.LeaderRegion, r.Scale, millis(r.IntraRegionRTT), millis(r.Jitter), millis(r.Compensation),
		r.OvershootNote, millis(r.FsyncProbe), millis(r.FsyncNode), speedup, comps, r.Regions, r.Holders})
}

// WriteCSV writes one line per client region and mode.
func (r BenchResult) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	f := func(d time.Duration) string { return strconv.FormatFloat(millis(d), 'f', 3, 64) }
	if err := cw.Write([]string{"client_region", "mode", "ops", "errors", "ops_per_sec", "p50_ms", "p90_ms", "p99_ms", "predicted_ms", "gap_ms", "ratio", "basis"}); err != nil {
		return err
	}
	for _, c := range r.comparisonRows() {
		ratioCell := ""
		if c.row.HasPrediction() && c.row.P50 > 0 {
			ratioCell = strconv.FormatFloat(float64(c.row.P50)/float64(c.row.Predicted), 'f', 3, 64)
		}
		if err := cw.Write([]string{c.region, c.row.Name, strconv.FormatInt(c.row.Ops, 10), strconv.FormatInt(c.row.Errors, 10),
			strconv.FormatFloat(c.row.OpsPerSec, 'f', 1, 64), f(c.row.P50), f(c.row.P90), f(c.row.P99), f(c.row.Predicted),
			f(c.row.Gap()), ratioCell, c.row.PredictionBasis}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteFiles writes bench.json, bench.csv, bench.svg (measured vs predicted p50) and one
// latency-curve SVG per client region into resultsDir/bench-<UTC time>/, and copies the
// first three to resultsDir/bench-latest.*.
func (r *BenchResult) WriteFiles(resultsDir string) error {
	r.Dir = filepath.Join(resultsDir, "bench-"+r.Started.Format("20060102-150405"))
	files := map[string]func(io.Writer) error{"bench.json": clusterkit.IndentedJSON(r), "bench.csv": r.WriteCSV, "bench.svg": r.WriteSVG}
	for _, rr := range r.Regions {
		files["curves-"+rr.ClientRegion+".svg"] = rr.Report.WriteSVG
	}
	return clusterkit.WriteResults(r.Dir, resultsDir, "bench", files)
}
