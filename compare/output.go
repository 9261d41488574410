package compare

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
)

func fmtRatio(v float64) string {
	if v <= 0 {
		return "-"
	}
	if v >= 10 || v < 0.1 {
		return strconv.FormatFloat(v, 'g', 2, 64) + "×"
	}
	return fmt.Sprintf("%.2f×", v)
}

// roundsText says how the ratio tables were formed.
func (res *Result) roundsText() string {
	return fmt.Sprintf("Each environment ran %d interleaved rounds (every workload on both systems per round, the first system alternating); each ratio is the median of the rounds' ratios, with their min–max in brackets, and each absolute figure the median of its rounds.", res.Options.Rounds)
}

// fmtRatioSpread is a median ratio with the min–max of its rounds.
func fmtRatioSpread(v float64, sp Spread, rounds int) string {
	if rounds <= 1 || v <= 0 {
		return fmtRatio(v)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtRatio(v), strings.TrimSuffix(fmtRatio(sp.Min), "×"), fmtRatio(sp.Max))
}

func fmtCPU(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// measurementRows is every row each system measured, per workload.
func (er EnvResult) measurementRows() [][]string {
	rows := [][]string{{"round", "workload", "system", "row", "ops/s", "p50", "p99", "errors", "server CPU/op", "client CPU/op", "leader fsyncs/write", "load 1m"}}
	for _, rr := range er.Rounds {
		for _, wr := range rr.Workloads {
			rows = append(rows, wr.measurementRows(rr.Index)...)
		}
	}
	return rows
}

func (wr WorkloadResult) measurementRows(round int) [][]string {
	var rows [][]string
	{
		for _, s := range []struct {
			name string
			run  SystemRun
		}{{"georaft", wr.Georaft}, {"etcd", wr.Etcd}} {
			for _, row := range s.run.Report.Rows {
				fsyncs := "-"
				if f := s.run.FsyncsPerWrite(); row.Name == bench.WriteRow && f > 0 {
					fsyncs = fmt.Sprintf("%.2f", f)
				}
				rows = append(rows, []string{strconv.Itoa(round), wr.Workload.Name, s.name, row.Name, fmtOps(row.OpsPerSec), fmtLat(row.P50), fmtLat(row.P99),
					strconv.FormatInt(row.Errors, 10), fmtCPU(s.run.ServerCPUPerOp()), fmtCPU(s.run.ClientCPUPerOp()), fsyncs, firstField(s.run.LoadAvg)})
			}
		}
	}
	return rows
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "-"
}

func ratioTableRows(rows []RatioRow, env string) [][]string {
	out := [][]string{{"workload", "georaft / etcd", "georaft ops/s", "etcd ops/s", "throughput", "georaft p50", "etcd p50", "p50", "georaft p99", "etcd p99", "p99"}}
	for _, r := range rows {
		if r.Env != env {
			continue
		}
		out = append(out, []string{r.Workload, r.Label, fmtOps(r.Georaft.OpsPerSec), fmtOps(r.Etcd.OpsPerSec), fmtRatioSpread(r.Throughput, r.ThroughputSpread, r.Rounds),
			fmtLat(r.Georaft.P50), fmtLat(r.Etcd.P50), fmtRatioSpread(r.P50, r.P50Spread, r.Rounds), fmtLat(r.Georaft.P99), fmtLat(r.Etcd.P99), fmtRatioSpread(r.P99, r.P99Spread, r.Rounds)})
	}
	return out
}

func targetVerdict(t Target) string {
	switch {
	case t.Missing:
		return "NOT MEASURED"
	case t.Met:
		return "met"
	}
	return "MISSED"
}

// WriteReport prints the measurements, the ratio tables, the targets and the floors.
func (res *Result) WriteReport(w io.Writer) error {
	var b strings.Builder
	for _, er := range res.Envs {
		fmt.Fprintf(&b, "\n=== %s: measurements (closed loop, %v per phase after %v warmup, %d keys, %d-byte values) ===\n",
			er.Name, res.Options.Engine.Duration, res.Options.Engine.Warmup, res.Options.Engine.Keys, res.Options.Engine.ValueSize)
		b.WriteString(bench.Columns(er.measurementRows(), map[int]bool{3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true, 10: true}))
		fmt.Fprintf(&b, "\n=== %s: georaft ÷ etcd (throughput > 1 and latency < 1 favour georaft) ===\n%s\n", er.Name, res.roundsText())
		b.WriteString(bench.Columns(ratioTableRows(res.Ratios, er.Name), map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true, 10: true}))
		for _, n := range er.Notes {
			fmt.Fprintf(&b, "NOTE: %s\n", n)
		}
		fmt.Fprintf(&b, "%s\n", er.idleText())
	}
	b.WriteString("\n=== targets ===\n")
	trows := [][]string{{"", "env", "target", "goal", "measured"}}
	for _, t := range res.Targets {
		trows = append(trows, []string{targetVerdict(t), t.Env, t.Name, t.Goal, t.Measured})
	}
	b.WriteString(bench.Columns(trows, nil))
	b.WriteString("\n")
	b.WriteString(res.floorsText())
	for _, er := range res.Envs {
		if len(er.Emulation) > 0 {
			fmt.Fprintf(&b, "%s emulation:\n", er.Name)
			for _, line := range er.Emulation {
				fmt.Fprintf(&b, "  - %s\n", line)
			}
		}
		if s := linkCheckSummary(er.LinkChecks); s != "" {
			fmt.Fprintf(&b, "  - %s\n", s)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (er EnvResult) idleText() string {
	var per []string
	for _, rr := range er.Rounds {
		per = append(per, fmt.Sprintf("%.1f%%/%.1f%%", 100*rr.IdleServerCPU["georaft"].Seconds(), 100*rr.IdleServerCPU["etcd"].Seconds()))
	}
	return fmt.Sprintf("idle servers (no load, heartbeats only), median of %d rounds: georaft %.1f%% of a core, etcd %.1f%% (per round georaft/etcd: %s); CPU/op figures are net of each round's own",
		len(er.Rounds), 100*er.IdleServerCPU["georaft"].Seconds(), 100*er.IdleServerCPU["etcd"].Seconds(), strings.Join(per, ", "))
}

func (res *Result) floorsText() string {
	f := res.Floors
	return fmt.Sprintf("floors: fsync p50 %s (4 KiB write + fsync in %s); loopback gRPC empty unary call p50 %s, p99 %s (%d calls)\n"+
		"load average: %s before, %s after (%d CPUs); the run took %s\n",
		fmtLat(f.FsyncP50), f.FsyncDir, fmtLat(f.GRPCRTTP50), fmtLat(f.GRPCRTTP99), f.GRPCSamples,
		res.LoadBefore, res.LoadAfter, res.CPUs, res.Elapsed.Round(time.Second))
}

func linkCheckSummary(checks []LinkCheck) string {
	if len(checks) == 0 {
		return ""
	}
	var worst LinkCheck
	var sum time.Duration
	n := 0
	for _, c := range checks {
		if c.Error != "" || c.Measured == 0 {
			continue
		}
		n++
		over := c.Measured - c.Target
		sum += over
		if over > worst.Measured-worst.Target || n == 1 {
			worst = c
		}
	}
	if n == 0 {
		return "etcd links: no successful probe"
	}
	return fmt.Sprintf("etcd peer links probed from inside each namespace (HTTP to the advertised peer URL, fastest of 5): mean %+.2fms over the matrix, worst %d->%d %s for %s",
		float64(sum)/float64(n)/float64(time.Millisecond), worst.From, worst.To, fmtLat(worst.Measured), fmtLat(worst.Target))
}

func millis(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

type jsonSide struct {
	Row          string  `json:"row"`
	Ops          int64   `json:"ops"`
	Errors       int64   `json:"errors"`
	OpsPerSec    float64 `json:"ops_per_sec"`
	P50          float64 `json:"p50_ms"`
	P99          float64 `json:"p99_ms"`
	ServerCPUOpU float64 `json:"server_cpu_per_op_us"`
}

func sideJSON(s Side) jsonSide {
	return jsonSide{s.Row, s.Ops, s.Errors, math.Round(s.OpsPerSec*10) / 10, millis(s.P50), millis(s.P99), float64(s.CPUPerOp) / float64(time.Microsecond)}
}

type jsonRun struct {
	Report         bench.Report `json:"report"`
	ServerCPU      float64      `json:"server_cpu_ms"`
	ProxyCPU       float64      `json:"proxy_cpu_ms"`
	ClientCPU      float64      `json:"client_cpu_ms"`
	IdleServerCPU  float64      `json:"idle_server_cpu_ms_per_s"`
	ServerCPUPerOp float64      `json:"server_cpu_per_op_us_net_of_idle"`
	LeaderFsyncs   float64      `json:"leader_wal_fsyncs"`
	FsyncsPerWrite float64      `json:"leader_wal_fsyncs_per_write"`
	LeaderNote     string       `json:"leader_note,omitempty"`
	LoadAvg        string       `json:"load_avg_at_start"`
}

func runJSON(s SystemRun) jsonRun {
	return jsonRun{s.Report, millis(s.ServerCPU), millis(s.ProxyCPU), millis(s.ClientCPU), millis(s.IdleServerCPU),
		float64(s.ServerCPUPerOp()) / float64(time.Microsecond), s.LeaderFsyncs, round3(s.FsyncsPerWrite()), s.LeaderNote, s.LoadAvg}
}

// MarshalJSON writes durations in milliseconds, like the lab's results.
func (res *Result) MarshalJSON() ([]byte, error) {
	type ratio struct {
		Env        string     `json:"env"`
		Workload   string     `json:"workload"`
		Comparison string     `json:"comparison"`
		Georaft    jsonSide   `json:"georaft"`
		Etcd       jsonSide   `json:"etcd"`
		Throughput float64    `json:"throughput_ratio"`
		P50        float64    `json:"p50_ratio"`
		P99        float64    `json:"p99_ratio"`
		Rounds     int        `json:"rounds"`
		ThrSpread  [2]float64 `json:"throughput_ratio_min_max"`
		P50Spread  [2]float64 `json:"p50_ratio_min_max"`
		P99Spread  [2]float64 `json:"p99_ratio_min_max"`
	}
	type target struct {
		Env      string `json:"env"`
		Name     string `json:"target"`
		Goal     string `json:"goal"`
		Measured string `json:"measured"`
		Verdict  string `json:"verdict"`
	}
	type linkCheck struct {
		From       int     `json:"from"`
		To         int     `json:"to"`
		FromRegion string  `json:"from_region"`
		ToRegion   string  `json:"to_region"`
		Target     float64 `json:"target_ms"`
		Measured   float64 `json:"measured_ms"`
		Error      string  `json:"error,omitempty"`
	}
	type workload struct {
		Name        string  `json:"name"`
		Concurrency int     `json:"concurrency"`
		WriteRatio  float64 `json:"write_ratio"`
		Georaft     jsonRun `json:"georaft"`
		Etcd        jsonRun `json:"etcd"`
	}
	type round struct {
		Index     int                `json:"round"`
		IdleCPU   map[string]float64 `json:"idle_server_cpu_percent_of_core"`
		GRPCFloor float64            `json:"grpc_empty_unary_p50_ms"`
		Workloads []workload         `json:"workloads"`
	}
	type env struct {
		Name       string             `json:"name"`
		Emulation  []string           `json:"emulation"`
		LoadAvg    string             `json:"load_avg_at_start"`
		Notes      []string           `json:"notes"`
		LinkChecks []linkCheck        `json:"etcd_link_checks,omitempty"`
		Rounds     []round            `json:"rounds"`
		IdleCPU    map[string]float64 `json:"idle_server_cpu_percent_of_core"`
	}
	var ratios []ratio
	for _, r := range res.Ratios {
		sp := func(s Spread) [2]float64 { return [2]float64{round3(s.Min), round3(s.Max)} }
		ratios = append(ratios, ratio{r.Env, r.Workload, r.Label, sideJSON(r.Georaft), sideJSON(r.Etcd),
			round3(r.Throughput), round3(r.P50), round3(r.P99), r.Rounds, sp(r.ThroughputSpread), sp(r.P50Spread), sp(r.P99Spread)})
	}
	var targets []target
	for _, t := range res.Targets {
		targets = append(targets, target{t.Env, t.Name, t.Goal, t.Measured, targetVerdict(t)})
	}
	var envs []env
	for _, er := range res.Envs {
		e := env{Name: er.Name, Emulation: er.Emulation, LoadAvg: er.LoadAvg, Notes: append([]string{}, er.Notes...), IdleCPU: map[string]float64{}}
		for sys, d := range er.IdleServerCPU {
			e.IdleCPU[sys] = math.Round(1000*d.Seconds()) / 10
		}
		for _, c := range er.LinkChecks {
			e.LinkChecks = append(e.LinkChecks, linkCheck{c.From, c.To, c.FromRegion, c.ToRegion, millis(c.Target), millis(c.Measured), c.Error})
		}
		for _, rr := range er.Rounds {
			jr := round{Index: rr.Index, IdleCPU: map[string]float64{}, GRPCFloor: millis(rr.GRPCFloorP50)}
			for sys, d := range rr.IdleServerCPU {
				jr.IdleCPU[sys] = math.Round(1000*d.Seconds()) / 10
			}
			for _, wr := range rr.Workloads {
				jr.Workloads = append(jr.Workloads, workload{wr.Workload.Name, wr.Workload.Concurrency, wr.Workload.WriteRatio, runJSON(wr.Georaft), runJSON(wr.Etcd)})
			}
			e.Rounds = append(e.Rounds, jr)
		}
		envs = append(envs, e)
	}
	var geoModel any
	if res.Geo != nil {
		geoModel = map[string]float64{
			"client_leader_rtt_ms": millis(res.Geo.ClientLeaderRTT), "quorum_rtt_ms": millis(res.Geo.QuorumRTT),
			"fsync_ms": millis(res.Geo.Fsync), "write_model_ms": millis(res.Geo.WriteModel()),
		}
	}
	o := res.Options
	return json.Marshal(map[string]any{
		"started":     res.Started,
		"elapsed_s":   math.Round(res.Elapsed.Seconds()),
		"load_before": res.LoadBefore,
		"load_after":  res.LoadAfter,
		"cpus":        res.CPUs,
		"floors": map[string]any{
			"fsync_p50_ms": millis(res.Floors.FsyncP50), "fsync_dir": res.Floors.FsyncDir,
			"grpc_empty_unary_p50_ms": millis(res.Floors.GRPCRTTP50), "grpc_empty_unary_p99_ms": millis(res.Floors.GRPCRTTP99),
			"grpc_calls": res.Floors.GRPCSamples,
		},
		"settings": map[string]any{
			"duration_s": o.Engine.Duration.Seconds(), "warmup_s": o.Engine.Warmup.Seconds(), "keys": o.Engine.Keys,
			"value_size": o.Engine.ValueSize, "loop": "closed", "matrix": filepath.Base(o.MatrixFile), "regions": o.Regions,
			"client_region": o.ClientRegion, "leader_region": o.ClientRegion, "intra_region_rtt_ms": millis(o.IntraRegionRTT),
			"overshoot_compensation_ms": millis(o.Compensation), "durability": "fsync on, defaults of both systems",
		},
		"geo_model": geoModel,
		"ratios":    ratios,
		"targets":   targets,
		"envs":      envs,
		"profiles":  res.Profiles,
	})
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// WriteCSV writes one line per ratio row.
func (res *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	f := func(d time.Duration) string { return strconv.FormatFloat(millis(d), 'f', 3, 64) }
	r3 := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	_ = cw.Write([]string{"env", "workload", "comparison", "georaft_row", "etcd_row", "georaft_ops_per_sec", "etcd_ops_per_sec", "throughput_ratio",
		"georaft_p50_ms", "etcd_p50_ms", "p50_ratio", "georaft_p99_ms", "etcd_p99_ms", "p99_ratio", "georaft_errors", "etcd_errors",
		"georaft_server_cpu_us_per_op", "etcd_server_cpu_us_per_op", "rounds",
		"throughput_ratio_min", "throughput_ratio_max", "p50_ratio_min", "p50_ratio_max", "p99_ratio_min", "p99_ratio_max"})
	for _, r := range res.Ratios {
		_ = cw.Write([]string{r.Env, r.Workload, r.Label, r.Georaft.Row, r.Etcd.Row,
			strconv.FormatFloat(r.Georaft.OpsPerSec, 'f', 1, 64), strconv.FormatFloat(r.Etcd.OpsPerSec, 'f', 1, 64), r3(r.Throughput),
			f(r.Georaft.P50), f(r.Etcd.P50), r3(r.P50), f(r.Georaft.P99), f(r.Etcd.P99), r3(r.P99),
			strconv.FormatInt(r.Georaft.Errors, 10), strconv.FormatInt(r.Etcd.Errors, 10),
			strconv.FormatFloat(float64(r.Georaft.CPUPerOp)/float64(time.Microsecond), 'f', 1, 64),
			strconv.FormatFloat(float64(r.Etcd.CPUPerOp)/float64(time.Microsecond), 'f', 1, 64), strconv.Itoa(r.Rounds),
			r3(r.ThroughputSpread.Min), r3(r.ThroughputSpread.Max), r3(r.P50Spread.Min), r3(r.P50Spread.Max), r3(r.P99Spread.Min), r3(r.P99Spread.Max)})
	}
	cw.Flush()
	return cw.Error()
}

// WriteMarkdown writes the tables for results/compare-latest.md.
func (res *Result) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# georaft vs etcd — `make bench-compare`, %s\n\n", res.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "5 georaft nodes and 5 etcd %s members, fsync on (both systems' defaults), closed loop, %v per phase after %v warmup, %d keys, %d-byte values, one in-process load generator (client/bench) for both. Both leaders pinned in %s; the client runs there.\n\n",
		etcdVersion(), res.Options.Engine.Duration, res.Options.Engine.Warmup, res.Options.Engine.Keys, res.Options.Engine.ValueSize, res.Options.ClientRegion)
	b.WriteString(mdEscape(res.floorsText()))
	fmt.Fprintf(&b, "\nRatios are georaft ÷ etcd: throughput above 1 and latency below 1 favour georaft. %s\n", res.roundsText())
	for _, er := range res.Envs {
		fmt.Fprintf(&b, "\n## %s\n\n", er.Name)
		b.WriteString(mdTable(ratioTableRows(res.Ratios, er.Name)))
		for _, n := range er.Notes {
			fmt.Fprintf(&b, "\n**Note:** %s\n", n)
		}
		fmt.Fprintf(&b, "\nEvery row measured (CPU per operation: server processes net of idle, and the harness's load generator + client library). %s.\n\n", er.idleText())
		b.WriteString(mdTable(er.measurementRows()))
		if len(er.Emulation) > 0 {
			b.WriteString("\nEmulation:\n\n")
			for _, line := range er.Emulation {
				fmt.Fprintf(&b, "- %s\n", line)
			}
			if s := linkCheckSummary(er.LinkChecks); s != "" {
				fmt.Fprintf(&b, "- %s\n", s)
			}
		}
	}
	b.WriteString("\n## Targets\n\n")
	rows := [][]string{{"verdict", "env", "target", "goal", "measured"}}
	for _, t := range res.Targets {
		rows = append(rows, []string{targetVerdict(t), t.Env, t.Name, t.Goal, t.Measured})
	}
	b.WriteString(mdTable(rows))
	if len(res.Profiles) > 0 {
		b.WriteString("\nProfiles (kept out of results/, which holds summaries): " + strings.Join(res.Profiles, ", ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "\n", "  \n") }

func mdTable(rows [][]string) string {
	var b strings.Builder
	for i, row := range rows {
		cells := make([]string, len(row))
		for j, c := range row {
			cells[j] = strings.ReplaceAll(c, "|", "\\|")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		if i == 0 {
			b.WriteString("|" + strings.Repeat(" --- |", len(row)) + "\n")
		}
	}
	return b.String()
}

// etcdVersion is the installed etcd's version line, for the write-up.
func etcdVersion() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := ExecRunner(ctx, []string{"etcd", "--version"})
	if err != nil {
		return "(etcd version unknown)"
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "etcd Version: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "(etcd version unknown)"
}

// WriteFiles writes compare.json, compare.csv, compare.svg and compare.md into the run's
// directory and copies them to resultsDir/compare-latest.*.
func (res *Result) WriteFiles(resultsDir string) error {
	return clusterkit.WriteResults(res.Dir, resultsDir, "compare", map[string]func(io.Writer) error{
		"compare.json": clusterkit.IndentedJSON(res), "compare.csv": res.WriteCSV, "compare.svg": res.WriteSVG, "compare.md": res.WriteMarkdown})
}
