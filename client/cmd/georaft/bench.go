package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/readmode"
)

type benchFlags struct {
	readModes   string
	writeRatio  float64
	writePhase  bool
	concurrency int
	duration    time.Duration
	ops         int64
	keys        int
	valueSize   int
	warmup      time.Duration
	rate        float64
	prefill     bool
	seed        uint64
	keyPrefix   string
	jsonFile    string
	csvFile     string
	chartFile   string
	viaRegion   string
	linksFile   string
}

const benchLong = `Benchmarks the cluster: one phase per read mode (--read-modes), then a phase of writes
(--write-phase), each --duration long (or --ops operations) after --warmup. --write-ratio
mixes writes into the read phases. The table has one row per read mode and one for writes:
ops/s, p50, p90, p99, p99.9, max, mean, errors by kind, and the mode that served each read
(lease reads served as index reads by a leader waiting out an older lease are counted apart).

Closed loop by default (--concurrency workers, each sending its next operation when the last
returns). --rate R switches to an open loop: operations are scheduled R per second on a fixed
timetable and latency counts from the scheduled time, so stalls are not hidden.

--via-region R sends the traffic through the geo lab's emulated links from region R (the
addresses in --links), as a client in R would see the cluster.

Latencies are recorded in HDR histograms (1µs to 100s, 3 significant digits).`

func (a *app) benchCommand() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark reads per mode and writes; table, JSON, CSV and an SVG chart",
		Long:  benchLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runBench(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.readModes, "read-modes", "lease,index,log,stale", "read phases, in order (empty: writes only)")
	fl.Float64Var(&f.writeRatio, "write-ratio", 0, "fraction of writes mixed into the read phases, in [0, 1] (1: writes only)")
	fl.BoolVar(&f.writePhase, "write-phase", true, "run a phase of writes only after the read phases")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 16, "workers (closed loop: operations in flight)")
	fl.DurationVarP(&f.duration, "duration", "d", 10*time.Second, "length of each measured phase")
	fl.Int64Var(&f.ops, "ops", 0, "operations per phase instead of --duration")
	fl.IntVar(&f.keys, "keys", 1000, "number of distinct keys")
	fl.IntVar(&f.valueSize, "value-size", 128, "bytes per value")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "unmeasured load before each phase")
	fl.Float64Var(&f.rate, "rate", 0, "open loop: operations per second (0: closed loop)")
	fl.BoolVar(&f.prefill, "prefill", true, "write every key once before the read phases")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the key and operation choice (0: random)")
	fl.StringVar(&f.keyPrefix, "key-prefix", "bench/", "prefix of the keys the bench uses")
	fl.StringVar(&f.jsonFile, "json", "", "write the report as JSON to this file")
	fl.StringVar(&f.csvFile, "csv", "", "write the report as CSV to this file")
	fl.StringVar(&f.chartFile, "chart", "", "write an SVG chart of the latency distributions to this file")
	fl.StringVar(&f.viaRegion, "via-region", "", "reach the nodes through the geo lab's links from this region")
	fl.StringVar(&f.linksFile, "links", client.DefaultLinksFile, "links file of the geo lab (region → node id → address)")
	return cmd
}

func (a *app) runBench(cmd *cobra.Command, f benchFlags) error {
	var modes []string
	for _, m := range strings.Split(f.readModes, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		mode, err := readmode.Parse(m)
		if err != nil {
			return &cli.UsageError{Problem: "--read-modes: " + err.Error()}
		}
		modes = append(modes, mode.String())
	}
	if len(modes) == 0 && !f.writePhase && f.writeRatio == 0 {
		return &cli.UsageError{Problem: "nothing to run: no --read-modes, --write-phase=false and no --write-ratio",
			Hint: "georaft bench --read-modes lease,index (and/or --write-phase, --write-ratio 0.1)"}
	}
	if f.ops > 0 && cmd.Flags().Changed("duration") {
		return &cli.UsageError{Problem: "--ops and --duration exclude each other"}
	}
	if f.ops > 0 {
		f.duration = 0
	}
	if f.writeRatio < 0 || f.writeRatio > 1 {
		return &cli.UsageError{Problem: fmt.Sprintf("--write-ratio %v: want a fraction in [0, 1]", f.writeRatio)}
	}
	for name, v := range map[string]int{"--concurrency": f.concurrency, "--keys": f.keys} {
		if v <= 0 {
			return &cli.UsageError{Problem: fmt.Sprintf("%s %d: want at least 1", name, v)}
		}
	}
	if f.valueSize < 0 || f.rate < 0 || f.warmup < 0 || (f.ops <= 0 && f.duration <= 0) {
		return &cli.UsageError{Problem: "--value-size, --rate and --warmup must not be negative, --duration or --ops positive"}
	}
	a.started = true

	labels := map[string]string{}
	var opts client.Options
	if f.viaRegion != "" {
		links, err := client.LoadRegionLinks(f.linksFile)
		if err != nil {
			return err
		}
		eps, err := links.Endpoints(f.viaRegion)
		if err != nil {
			return fmt.Errorf("--via-region: %w", err)
		}
		if opts, err = a.clientOptions(eps, nil); err != nil {
			return err
		}
		opts.Region = f.viaRegion
		labels["via_region"] = f.viaRegion
	} else {
		eps, tlsCfg, err := a.endpointList()
		if err != nil {
			return err
		}
		if opts, err = a.clientOptions(eps, tlsCfg); err != nil {
			return err
		}
	}
	labels["endpoints"] = strings.Join(opts.Endpoints, ",")
	c, err := client.New(opts)
	if err != nil {
		return err
	}
	defer c.Close()

	cfg := bench.Config{
		Driver: bench.ClientDriver{Client: c}, ReadModes: modes, WriteRatio: f.writeRatio, WritePhase: f.writePhase,
		Concurrency: f.concurrency, Duration: f.duration, Ops: f.ops, Warmup: f.warmup, Rate: f.rate,
		Keys: f.keys, ValueSize: f.valueSize, KeyPrefix: f.keyPrefix, Prefill: f.prefill, Seed: f.seed,
		Labels: labels,
	}
	if isTerminal(a.stdout) && a.output != "json" {
		cfg.Progress = a.stdout
	}
	ctx, stop := interruptible(cmd)
	defer stop()
	rep, runErr := bench.Run(ctx, cfg)
	if runErr != nil && len(rep.Rows) == 0 {
		return runErr
	}
	if runErr != nil {
		fmt.Fprintf(a.stderr, "bench stopped early (%v): partial results\n", runErr)
	}

	var writeErr error
	if a.output == "json" {
		writeErr = rep.WriteJSON(a.stdout)
	} else {
		writeErr = rep.WriteTable(a.stdout)
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer) error
	}{{f.jsonFile, rep.WriteJSON}, {f.csvFile, rep.WriteCSV}, {f.chartFile, rep.WriteSVG}} {
		if out.path == "" {
			continue
		}
		if err := writeFile(out.path, out.write); err != nil {
			writeErr = errors.Join(writeErr, err)
		} else if a.output != "json" {
			fmt.Fprintf(a.stderr, "wrote %s\n", out.path)
		}
	}
	if runErr != nil {
		return runErr
	}
	return writeErr
}

// writeFile writes through a temporary file and renames it, so that a reader never sees
// half a report.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(dirOf(path), ".georaft-bench-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		if i == 0 {
			return "/"
		}
		return path[:i]
	}
	return "."
}
