// Command georaft-compare is `make bench-compare`: a 5-node georaft cluster and a 5-member
// etcd cluster measured side by side by the same load generator, on loopback and behind
// the 5-region emulation. See docs/compare.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/compare"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           compare.BinaryName,
		Short:         "Measure georaft and etcd side by side (make bench-compare)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(runCmd(), cleanCmd(), clusterkit.ProxyServeCommand("run, possibly inside a network namespace"), probeHTTPCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", compare.BinaryName, err)
		os.Exit(1)
	}
}

func runCmd() *cobra.Command {
	opts := compare.DefaultOptions()
	var envs, regions string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Start both clusters, pin both leaders, run every workload on both, print and write the ratios, stop everything",
		Long: `run measures a 5-node georaft cluster and a 5-member etcd cluster with the same load
generator (client/bench), fsync on in both, first on loopback and then behind the 5-region
RTT matrix (per-pair toxiproxy links for georaft; a network namespace per etcd member with
iptables DNAT to per-pair proxies). Both leaders are pinned in --client-region, where the
client runs. It prints every measurement, the georaft ÷ etcd ratio table and the targets,
writes RESULTS/compare-<time>/ and RESULTS/compare-latest.{json,csv,svg,md}, and stops
everything it started on success, error and Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			if term.IsTerminal(int(os.Stderr.Fd())) {
				opts.Progress = os.Stderr
			}
			opts.Envs = splitList(envs)
			opts.Regions = splitList(regions)
			_, err := compare.Run(cmd.Context(), opts)
			if errors.Is(err, context.Canceled) {
				return errors.New("interrupted; everything started was stopped")
			}
			return err
		},
	}
	fs := cmd.Flags()
	envs = strings.Join(opts.Envs, ",")
	regions = strings.Join(opts.Regions, ",")
	fs.StringVar(&envs, "envs", envs, "environments to run, in order: loopback, geo")
	fs.StringVar(&regions, "regions", regions, "region of node/member N, comma-separated (5)")
	fs.StringVar(&opts.ClientRegion, "client-region", opts.ClientRegion, "where the client runs and both leaders are pinned")
	fs.StringVar(&opts.Georaftd, "georaftd", opts.Georaftd, "georaftd binary")
	fs.StringVar(&opts.Etcd, "etcd", opts.Etcd, "etcd binary (default: etcd on PATH)")
	fs.StringVar(&opts.MatrixFile, "rtt", opts.MatrixFile, "RTT matrix CSV")
	fs.StringVar(&opts.DataRoot, "data-root", opts.DataRoot, "data dirs (and the fsync probe) go here")
	fs.StringVar(&opts.RunDir, "run-dir", opts.RunDir, "configs, PID files, logs, proxy plans")
	fs.StringVar(&opts.ResultsDir, "results", opts.ResultsDir, "directory for result files")
	fs.DurationVar(&opts.Engine.Duration, "duration", opts.Engine.Duration, "measured time per phase")
	fs.DurationVar(&opts.Engine.Warmup, "warmup", opts.Engine.Warmup, "unrecorded warmup before each phase")
	fs.IntVar(&opts.Engine.Keys, "keys", opts.Engine.Keys, "key space")
	fs.IntVar(&opts.Engine.ValueSize, "value-size", opts.Engine.ValueSize, "bytes per value")
	fs.DurationVar(&opts.IntraRegionRTT, "intra-region-rtt", opts.IntraRegionRTT, "RTT from the client to the node in its own region")
	fs.DurationVar(&opts.Compensation, "overshoot-compensation", opts.Compensation, "taken off one direction of every link (the lab's setting; 0 keeps the two systems' links exactly alike)")
	fs.IntVar(&opts.Rounds, "rounds", opts.Rounds, "interleaved rounds per environment (ratios are the median over them, with their spread)")
	fs.Var(workloadList{&opts.Workloads}, "workloads", "workloads to run, comma-separated names (default: all; e.g. \"write c1,linearizable read c1\")")
	fs.BoolVar(&opts.Profile, "profile", opts.Profile, "capture perf profiles of the georaft leader in extra loopback runs")
	fs.DurationVar(&opts.LeaderTimeout, "leader-timeout", opts.LeaderTimeout, "deadline for a leader to be elected and pinned")
	return cmd
}

// workloadList is --workloads: a subset of the default workloads, by name.
type workloadList struct{ ws *[]compare.Workload }

func (l workloadList) String() string {
	if l.ws == nil {
		return ""
	}
	var names []string
	for _, w := range *l.ws {
		names = append(names, w.Name)
	}
	return strings.Join(names, ",")
}

func (l workloadList) Set(s string) error {
	var out []compare.Workload
	for _, name := range splitList(s) {
		w, ok := compare.WorkloadByName(name)
		if !ok {
			var known []string
			for _, w := range compare.DefaultWorkloads() {
				known = append(known, w.Name)
			}
			return fmt.Errorf("unknown workload %q (known: %s)", name, strings.Join(known, ", "))
		}
		out = append(out, w)
	}
	*l.ws = out
	return nil
}

func (workloadList) Type() string { return "names" }

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func cleanCmd() *cobra.Command {
	opts := compare.DefaultOptions()
	return &cobra.Command{
		Use:   "clean",
		Short: "Stop what a killed run left behind (by its PID files) and remove the namespaces and bridge",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			return compare.Clean(cmd.Context(), opts)
		},
	}
}

func probeHTTPCmd() *cobra.Command {
	var url string
	count := 5
	cmd := &cobra.Command{
		Use:   "probe-http",
		Short: "Print the fastest round trip in ms of COUNT HTTP GETs to URL on one connection (link checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			d, err := compare.ProbeHTTP(ctx, url, count)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64))
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "URL to GET")
	cmd.Flags().IntVar(&count, "count", count, "requests")
	return cmd
}
