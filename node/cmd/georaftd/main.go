// Command georaftd runs one georaft node.
//
//	georaftd --config FILE [flags]     run the node
//	georaftd inspect DATA_DIR          print term, vote, commit and the log, one entry per line
//	georaftd config check FILE         print the effective config, or every error in it
//	georaftd certs --out DIR ...       generate a CA, node and client certificates
//	georaftd wal drop-damaged-tail DIR drop a torn write that start-up refused to guess about
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/buildinfo"
	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/tlsutil"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 3
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := rootCommand()
	root.SetArgs(args)
	err := root.Execute()
	var ce *codedError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		fmt.Fprintln(os.Stderr, "georaftd:", ce.err)
		return ce.code
	default:
		// cobra's own usage errors (unknown flag, wrong argument count).
		fmt.Fprintln(os.Stderr, "georaftd:", err)
		return exitUsage
	}
}

type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "georaftd",
		Short:         "Run a georaft node: Raft with leader leases, serving a key-value store",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildinfo.Read().String(),
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cmd.Flags())
			if err == nil {
				err = cfg.Validate()
			}
			if err != nil {
				return &codedError{exitConfig, err}
			}
			return serve(cfg)
		},
	}
	root.SetVersionTemplate("georaftd {{.Version}}\n")
	config.BindFlags(root.Flags())
	root.AddCommand(inspectCommand(), configCommand(), certsCommand(), walCommand())
	return root
}

func newLogger(cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// serve runs the node until SIGTERM or SIGINT, then shuts down gracefully; a second signal
// exits at once.
func serve(cfg *config.Config) error {
	logger := newLogger(cfg)
	slog.SetDefault(logger)
	srv, err := node.Start(cfg, logger)
	if err != nil {
		return &codedError{exitFailure, err}
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-signals:
		logger.Info("shutting down gracefully; send the signal again to exit at once", "signal", sig.String())
	case <-srv.Removed():
		// Exit 0: systemd's Restart=on-failure leaves a removed member down, and it would
		// refuse to start under its id anyway.
		logger.Warn("this member was removed from the cluster; exiting (its data directory never starts again under this id)")
		srv.Kill()
		return nil
	}
	go func() {
		<-signals
		logger.Warn("second signal: exiting now")
		os.Exit(exitFailure)
	}()
	// Long enough to hand over leadership across regions; a hung shutdown must not keep the
	// process alive forever.
	ctx, cancel := context.WithTimeout(context.Background(), 3*cfg.Timing.ElectionTimeoutMax+5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		return &codedError{exitFailure, fmt.Errorf("shutdown: %w", err)}
	}
	if err := srv.Node().Failed(); err != nil {
		return &codedError{exitFailure, err}
	}
	logger.Info("stopped")
	return nil
}

func inspectCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect DATA_DIR",
		Short: "Print a data directory's metadata (term, vote, commit) and log, one entry per line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := node.Inspect(args[0], cmd.OutOrStdout()); err != nil {
				return &codedError{exitFailure, err}
			}
			return nil
		},
	}
}

func configCommand() *cobra.Command {
	cfgCmd := &cobra.Command{Use: "config", Short: "Work with configuration files"}
	check := &cobra.Command{
		Use:   "check FILE",
		Short: "Print the effective configuration (file, GEORAFT_* environment, defaults), or every error in it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Check(args[0])
			if err != nil {
				return &codedError{exitConfig, err}
			}
			if err := cfg.Print(cmd.OutOrStdout()); err != nil {
				return &codedError{exitFailure, err}
			}
			return nil
		},
	}
	cfgCmd.AddCommand(check)
	return cfgCmd
}

func certsCommand() *cobra.Command {
	var (
		out      string
		nodes    []string
		clients  []string
		validity time.Duration
		renew    bool
	)
	cmd := &cobra.Command{
		Use:   "certs --out DIR --node ID=HOST[,HOST...] ... [--client NAME ...] [--renew]",
		Short: "Generate a CA, a certificate per node (mutual TLS between peers) and client certificates",
		Long: "Generate a CA (valid for 10 years), a certificate per node (mutual TLS between peers) and client certificates.\n" +
			"With --renew, keep the CA already in --out and issue the node and client certificates again under it,\n" +
			"so that nodes can take the new ones one at a time.",
		Example: "  georaftd certs --out certs --node 1=10.0.0.2,node1 --node 2=10.0.0.3,node2 --node 3=10.0.0.4,node3 --client admin\n" +
			"  georaftd certs --renew --out certs --node 1=10.0.0.2,node1 --node 2=10.0.0.3,node2 --node 3=10.0.0.4,node3 --client admin",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			specs, err := parseNodeSpecs(nodes)
			if err != nil {
				return &codedError{exitUsage, err}
			}
			issue, did := tlsutil.GenerateCluster, "wrote CA %s and certificates"
			if renew {
				issue, did = tlsutil.RenewCluster, "kept CA %s and renewed certificates"
			}
			files, err := issue(out, specs, clients, validity)
			if err != nil {
				return &codedError{exitFailure, err}
			}
			fmt.Fprintf(cmd.OutOrStdout(), did+" for %s and %s under %s\n",
				files.CA.Cert, count(len(specs), "node"), count(len(clients), "client"), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "certs", "directory to write PEM files to (must not hold a CA already, unless --renew)")
	cmd.Flags().BoolVar(&renew, "renew", false, "keep the CA in --out and reissue the node and client certificates under it")
	cmd.Flags().StringArrayVar(&nodes, "node", nil, "node as ID=HOST[,HOST...] (host names or IPs the node is reached at); repeat per node")
	cmd.Flags().StringArrayVar(&clients, "client", nil, "client certificate name; repeat per client")
	cmd.Flags().DurationVar(&validity, "validity", 365*24*time.Hour, "how long the node and client certificates are valid")
	cmd.MarkFlagRequired("node")
	return cmd
}

func parseNodeSpecs(flags []string) ([]tlsutil.NodeSpec, error) {
	specs := make([]tlsutil.NodeSpec, 0, len(flags))
	for _, f := range flags {
		idText, hosts, ok := strings.Cut(f, "=")
		if !ok || hosts == "" {
			return nil, fmt.Errorf("--node %q: want ID=HOST[,HOST...]", f)
		}
		id, err := strconv.ParseUint(idText, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("--node %q: node id must be a positive integer", f)
		}
		specs = append(specs, tlsutil.NodeSpec{ID: id, Hosts: strings.Split(hosts, ",")})
	}
	return specs, nil
}

// count says "1 node" or "3 nodes".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
