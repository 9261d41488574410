// Command georaft-lab runs georaft clusters on one machine: the local five-node cluster,
// the emulated five-region cluster behind toxiproxy links, and the benchmark behind
// `make bench`. See docs/lab.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "georaft-lab",
		Short:         "Run georaft clusters on this machine: local, emulated geo, benchmark",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(genLocalCmd(), genGeoCmd(), localUpCmd(), localDownCmd(), geoUpCmd(), geoDownCmd(), clusterkit.ProxyServeCommand("geo-up"), benchCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "georaft-lab: %v\n", err)
		os.Exit(1)
	}
}

func genLocalCmd() *cobra.Command {
	out := "configs/local"
	dataRoot := "data/local"
	base := clusterkit.DefaultLocalPorts.Base
	cmd := &cobra.Command{
		Use:   "gen-local-configs",
		Short: "Write the local cluster's node configs from the port plan",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ports := clusterkit.DefaultLocalPorts
			ports.Base = base
			if err := lab.WriteSpec(out, lab.LocalSpec(ports, dataRoot)); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", out, "directory to write node1.yaml..node5.yaml into")
	cmd.Flags().StringVar(&dataRoot, "data-root", dataRoot, "data dirs are DATA_ROOT/nodeN (relative to where georaftd runs)")
	cmd.Flags().IntVar(&base, "base-port", base, "port plan base: node N uses BASE+100+N (peer), BASE+200+N (client), BASE+300+N (metrics)")
	return cmd
}

func genGeoCmd() *cobra.Command {
	out := "configs/geo"
	dataRoot := "data/geo"
	regions := strings.Join(clusterkit.DefaultRegions, ",")
	base := clusterkit.DefaultGeoPorts.Base
	matrixFile := lab.DefaultGeoOptions().MatrixFile
	cmd := &cobra.Command{
		Use:   "gen-geo-configs",
		Short: "Write the emulated cluster's node configs and client-links.yaml from the port plan",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ports := clusterkit.DefaultGeoPorts
			ports.Base = base
			matrix, err := geo.LoadCSV(matrixFile)
			if err != nil {
				return err
			}
			regionList := strings.Split(regions, ",")
			timing, err := clusterkit.GeoTiming(matrix, regionList)
			if err != nil {
				return err
			}
			spec, err := lab.GeoSpec(ports, regionList, dataRoot, timing)
			if err != nil {
				return err
			}
			if err := lab.WriteSpec(out, spec); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", out, "directory to write node configs and client-links.yaml into")
	cmd.Flags().StringVar(&dataRoot, "data-root", dataRoot, "data dirs are DATA_ROOT/nodeN (relative to where georaftd runs)")
	cmd.Flags().StringVar(&regions, "regions", regions, "comma-separated regions; node N goes in the Nth")
	cmd.Flags().IntVar(&base, "base-port", base, "port plan base (see clusterkit/ports.go): links BASE+100i+10j, nodes BASE+800+N")
	cmd.Flags().StringVar(&matrixFile, "rtt", matrixFile, "RTT matrix CSV the timing is derived from")
	return cmd
}

func clusterFlags(fs *pflag.FlagSet, o *lab.ClusterOptions, timeout *time.Duration) {
	fs.StringVar(&o.ConfigDir, "configs", o.ConfigDir, "directory of nodeN.yaml configs")
	fs.StringVar(&o.Georaftd, "georaftd", o.Georaftd, "georaftd binary")
	fs.DurationVar(timeout, "timeout", *timeout, "how long to wait for a leader")
}

func localUpCmd() *cobra.Command {
	opts := lab.DefaultLocalOptions()
	cmd := &cobra.Command{
		Use:   "local-up",
		Short: "Start the local five-node cluster in the background and wait for a leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			_, _, err := lab.LocalUp(cmd.Context(), opts)
			return err
		},
	}
	clusterFlags(cmd.Flags(), &opts.ClusterOptions, &opts.LeaderTimeout)
	return cmd
}

func localDownCmd() *cobra.Command {
	opts := lab.DefaultLocalOptions()
	cmd := &cobra.Command{
		Use:   "local-down",
		Short: "Stop the local cluster's nodes (those its PID files name, and only those)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			// Stopping must finish even if interrupted: a half-stopped cluster is worse.
			return lab.LocalDown(context.WithoutCancel(cmd.Context()), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ConfigDir, "configs", opts.ConfigDir, "directory of nodeN.yaml configs")
	return cmd
}

func geoFlags(fs *pflag.FlagSet, o *lab.GeoOptions) {
	clusterFlags(fs, &o.ClusterOptions, &o.LeaderTimeout)
	fs.StringVar(&o.MatrixFile, "rtt", o.MatrixFile, "RTT matrix CSV (milliseconds)")
	fs.Float64Var(&o.Scale, "scale", o.Scale, "multiply every RTT of the matrix by this (0.1 for quick runs)")
	fs.DurationVar(&o.Jitter, "jitter", o.Jitter, "add uniform ±jitter to each direction of every link (whole ms)")
	fs.DurationVar(&o.IntraRegionRTT, "intra-region-rtt", o.IntraRegionRTT, "RTT within a region where the matrix says 0 (client to the node in its region)")
	fs.DurationVar(&o.Compensation, "overshoot-compensation", o.Compensation, "taken off one direction of each link to cancel toxiproxy's timer overshoot (0 disables)")
	fs.StringVar(&o.RunDir, "run-dir", o.RunDir, "where the proxy plan, PID file and logs go")
	fs.BoolVar(&o.Fresh, "fresh", o.Fresh, "empty the nodes' data dirs first, so the cluster starts from an empty log")
}

func geoUpCmd() *cobra.Command {
	opts := lab.DefaultGeoOptions()
	cmd := &cobra.Command{
		Use:   "geo-up",
		Short: "Start the toxiproxy links and the five nodes of the emulated cluster, wait for a leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			_, err := lab.GeoUp(cmd.Context(), opts)
			return err
		},
	}
	geoFlags(cmd.Flags(), &opts)
	return cmd
}

func geoDownCmd() *cobra.Command {
	opts := lab.DefaultGeoOptions()
	cmd := &cobra.Command{
		Use:   "geo-down",
		Short: "Stop the emulated cluster's nodes and proxy process (by their PID files)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			return lab.GeoDown(context.WithoutCancel(cmd.Context()), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ConfigDir, "configs", opts.ConfigDir, "directory of nodeN.yaml configs")
	cmd.Flags().StringVar(&opts.RunDir, "run-dir", opts.RunDir, "run dir given to geo-up")
	return cmd
}
