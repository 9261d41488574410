// Command georaft-chaos runs the fault-injection harness on real georaftd processes.
//
//	georaft-chaos run --duration 10m [--seed N]      soak with a seeded, rotating fault schedule
//	georaft-chaos run --schedule FILE                replay a failed run's schedule
//	georaft-chaos failover --repeat 5                kill -9 the leader under load, measure
//	georaft-chaos check --history FILE               re-check a saved history
//
// Exit codes: 0 nothing found, 1 anomalies or lost writes, 2 usage, 3 the harness could not
// run (no cluster, no binary).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/chaos"
	"github.com/georaft/georaft/history"
)

const (
	exitOK      = 0
	exitAnomaly = 1
	exitUsage   = 2
	exitHarness = 3
)

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCommand(ctx, stdout)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(stderr, "georaft-chaos:", ee.err)
		}
		return ee.code
	default:
		fmt.Fprintln(stderr, "georaft-chaos:", err)
		return exitUsage
	}
}

func rootCommand(ctx context.Context, stdout io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "georaft-chaos",
		Short:         "Fault injection on real georaftd processes, checked with porcupine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCommand(ctx, stdout), failoverCommand(ctx, stdout), checkCommand(stdout))
	return root
}

// setupFlags are the flags run and failover share: the setup options themselves, and the
// few that are said otherwise on the command line.
type setupFlags struct {
	chaos.SetupOptions
	quiet   bool
	holders string
}

func (f *setupFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Georaftd, "georaftd", "", "georaftd built with -tags georaft_testhooks (default: build one)")
	fl.StringVar(&f.WorkDir, "work-dir", "", "directory for configs, data and node logs (default: a temporary one)")
	fl.BoolVar(&f.Keep, "keep", false, "keep the work dir even when nothing was found")
	fl.BoolVar(&f.Geo, "geo", false, "emulate the RTT matrix (scaled) instead of LAN links")
	fl.Float64Var(&f.GeoScale, "geo-scale", 0.2, "scale of the RTT matrix with --geo")
	fl.StringVar(&f.MatrixPath, "matrix", "", "RTT matrix CSV for --geo (default "+chaos.DefaultMatrixPath+")")
	fl.IntVar(&f.Workload.Clients, "clients", 6, "concurrent clients, each with its own identity")
	fl.IntVar(&f.Workload.Keys, "keys", 40, "size of the key space")
	fl.DurationVar(&f.Workload.ThinkTime, "think", 10*time.Millisecond, "mean pause between one client's operations")
	fl.BoolVar(&f.quiet, "quiet", false, "print only the summary, not the progress")
	fl.StringVar(&f.holders, "read-leases", "all", "read_leases.holders of every node: all, none, or member ids and regions (comma-separated)")
}

func (f *setupFlags) options(cmd *cobra.Command) chaos.SetupOptions {
	opts := f.SetupOptions
	opts.Log = cmd.OutOrStdout()
	if f.quiet {
		opts.Log = io.Discard
	}
	if opts.Workload.ThinkTime == 0 {
		opts.Workload.ThinkTime = -1 // no pause at all
	}
	opts.ReadLeaseHolders = strings.Split(f.holders, ",")
	return opts
}

func runCommand(ctx context.Context, stdout io.Writer) *cobra.Command {
	var (
		setup        setupFlags
		duration     time.Duration
		seed         int64
		schedulePath string
		kinds        string
		gap          time.Duration
		checkTimeout time.Duration
		staleBound   time.Duration
		artifacts    string
		jsonPath     string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Inject a seeded rotating fault schedule under load, then check the history",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := chaos.Options{SetupOptions: setup.options(cmd), Duration: duration, Seed: seed, Gap: gap,
				CheckTimeout: checkTimeout, StaleBound: staleBound, ArtifactsDir: artifacts}
			if !cmd.Flags().Changed("seed") {
				opts.Seed = time.Now().UnixNano() % 1_000_000
			}
			k, err := chaos.ParseKinds(kinds)
			if err != nil {
				return &exitError{exitUsage, fmt.Errorf("--kinds: %w", err)}
			}
			opts.Kinds = k
			if schedulePath != "" {
				s, err := chaos.ReadSchedule(schedulePath)
				if err != nil {
					return &exitError{exitUsage, err}
				}
				opts.Schedule = &s
				fmt.Fprintf(stdout, "replaying %d faults of %s (seed %d)\n", len(s.Faults), schedulePath, s.Seed)
			} else {
				fmt.Fprintf(stdout, "seed %d, faults for %s\n", opts.Seed, duration)
			}
			rep, err := chaos.Run(ctx, opts)
			if err != nil {
				return &exitError{exitHarness, err}
			}
			fmt.Fprintln(stdout)
			rep.WriteSummary(stdout)
			if jsonPath != "" {
				if err := writeJSON(jsonPath, rep); err != nil {
					return &exitError{exitHarness, err}
				}
			}
			if !rep.OK() {
				return &exitError{exitAnomaly, nil}
			}
			return nil
		},
	}
	setup.register(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&duration, "duration", time.Minute, "how long to keep injecting faults")
	fl.Int64Var(&seed, "seed", 0, "seed of the fault schedule and the clients (default: from the time, printed)")
	fl.StringVar(&schedulePath, "schedule", "", "replay the schedule.json a failed run left (its seed and faults)")
	fl.StringVar(&kinds, "kinds", "all", "comma-separated fault kinds to rotate through")
	fl.DurationVar(&gap, "gap", 500*time.Millisecond, "quiet time after each fault's recovery")
	fl.DurationVar(&checkTimeout, "check-timeout", 3*time.Minute, "bound on porcupine's search")
	fl.DurationVar(&staleBound, "stale-bound", 0, "how old a stale read's value may be (0: max_staleness/(1-drift) + election timeout max/2; negative: only check it was written)")
	fl.StringVar(&artifacts, "artifacts", "results/tmp/chaos", "where a failed run leaves its history, visualization and schedule")
	fl.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	return cmd
}

func failoverCommand(ctx context.Context, stdout io.Writer) *cobra.Command {
	var (
		setup   setupFlags
		repeats int
		seed    int64
	)
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Kill -9 the leader under steady load and measure write and lease-read unavailability",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := chaos.MeasureFailover(ctx, chaos.FailoverOptions{SetupOptions: setup.options(cmd), Repeats: repeats, Seed: seed})
			if err != nil {
				return &exitError{exitHarness, err}
			}
			fmt.Fprintln(stdout)
			rep.WriteSummary(stdout)
			if len(rep.Anomalies) > 0 {
				return &exitError{exitAnomaly, nil}
			}
			return nil
		},
	}
	setup.register(cmd)
	cmd.Flags().IntVar(&repeats, "repeat", 5, "how many times to kill the leader")
	cmd.Flags().Int64Var(&seed, "seed", 1, "seed of the clients' choices")
	return cmd
}

func checkCommand(stdout io.Writer) *cobra.Command {
	var (
		path       string
		staleBound time.Duration
		timeout    time.Duration
		html       string
	)
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a saved history (history.json) again with porcupine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return &exitError{exitUsage, errors.New("--history is required")}
			}
			f, err := os.Open(path)
			if err != nil {
				return &exitError{exitUsage, fmt.Errorf("open history: %w", err)}
			}
			defer f.Close()
			ops, err := history.ReadJSON(f)
			if err != nil {
				return &exitError{exitUsage, fmt.Errorf("%s: %w", path, err)}
			}
			res := history.CheckWith(ops, history.Options{Timeout: timeout, StaleBound: staleBound})
			fmt.Fprintln(stdout, res.String())
			if html != "" {
				if err := res.WriteVisualization(html); err != nil {
					return &exitError{exitHarness, err}
				}
				fmt.Fprintf(stdout, "visualization: %s\n", html)
			}
			if !res.OK() {
				return &exitError{exitAnomaly, nil}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "history", "", "history.json written by a run")
	cmd.Flags().DurationVar(&staleBound, "stale-bound", 0, "how old a stale read's value may be (0: only check it was written)")
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "bound on porcupine's search")
	cmd.Flags().StringVar(&html, "html", "", "write porcupine's visualization here")
	return cmd
}

func writeJSON(path string, rep *chaos.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	defer f.Close()
	if err := rep.WriteJSON(f); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
