package main

import (
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/georaft/georaft/lab"
)

func benchCmd() *cobra.Command {
	opts := lab.DefaultBenchOptions()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Start the emulated cluster, pin the leader, benchmark every read mode and writes from two regions, stop",
		Long: `bench starts the emulated five-region cluster, moves leadership to the node in
--leader-region and waits for its lease, then benchmarks lease, index, log and stale reads
and writes from a client in the leader's region and from one in --far-region. Each measured
p50 is printed beside what the RTT matrix predicts. Results go to RESULTS/bench-<time>/ and
RESULTS/bench-latest.{json,csv,svg}. Everything it started is stopped at the end, on error
and on Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if term.IsTerminal(int(os.Stderr.Fd())) {
				opts.Progress = os.Stderr
			}
			_, err := lab.Bench(cmd.Context(), opts, cmd.OutOrStdout())
			return err
		},
	}
	fs := cmd.Flags()
	geoFlags(fs, &opts.Geo)
	fs.StringVar(&opts.LeaderRegion, "leader-region", opts.LeaderRegion, "region whose node leads during the run (the configs' placement.preferred_regions must put it first); the first client runs there")
	fs.StringVar(&opts.FarRegion, "far-region", opts.FarRegion, "region of the second client")
	fs.IntVar(&opts.Concurrency, "concurrency", opts.Concurrency, "closed-loop workers per client region")
	fs.DurationVar(&opts.Duration, "duration", opts.Duration, "measured time per mode and region")
	fs.DurationVar(&opts.Warmup, "warmup", opts.Warmup, "unrecorded warmup before each measured phase")
	fs.IntVar(&opts.Keys, "keys", opts.Keys, "key space")
	fs.StringVar(&opts.ResultsDir, "results", opts.ResultsDir, "directory for result files")
	fs.BoolVar(&opts.Holders, "holders", opts.Holders, "measure every client region with read leases held by none, all and tune's recommendation, the holder wait and a paused holder's cost")
	fs.StringVar(&opts.HolderMix, "holder-mix", opts.HolderMix, "client mix (georaft tune --mix) whose recommended read-lease holders make the third column")
	fs.DurationVar(&opts.MatrixDuration, "holder-duration", opts.MatrixDuration, "measured time per mode, region and holder setting")
	fs.Float64Var(&opts.WaitWriteRate, "wait-write-rate", opts.WaitWriteRate, "writes per second while the holder wait is measured")
	return cmd
}
