package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/readmode"
)

// oneShot runs fn with a client and an interruptible context, and marks errors fn already
// printed.
func (a *app) oneShot(cmd *cobra.Command, op string, fn func(*cobra.Command, *client.Client) error) error {
	a.started = true
	c, err := a.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := interruptible(cmd)
	defer stop()
	cmd.SetContext(ctx)
	if err := fn(cmd, c); err != nil {
		a.printer().Error(op, err)
		return reported{err}
	}
	return nil
}

func (a *app) setCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "set KEY VALUE",
		Short: "Store a value (applied once, even when retried)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.oneShot(cmd, "set", func(cmd *cobra.Command, c *client.Client) error {
				res, err := c.Set(cmd.Context(), args[0], []byte(args[1]))
				if err != nil {
					return err
				}
				a.printer().Set(args[0], res)
				return nil
			})
		},
	}
}

func (a *app) getCommand() *cobra.Command {
	var mode string
	var maxStaleness time.Duration
	var rf rangeFlags
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Read a value, or a range with --prefix/--from-key (exit code 1 when the key does not exist)",
		Long: `Reads KEY. With --prefix, --from-key, --keys-only, --count-only, --rev, --limit,
--sort-by, --print-value-only or -o raw it reads through the etcd API: key and value lines
(values only with --print-value-only; values byte for byte, nothing added, with -o raw).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := readmode.Parse(mode)
			if err != nil {
				return &cli.UsageError{Problem: "--read: " + err.Error()}
			}
			if maxStaleness < 0 {
				return &cli.UsageError{Problem: "--max-staleness must not be negative"}
			}
			if maxStaleness > 0 && m != readmode.Stale {
				return &cli.UsageError{Problem: "--max-staleness bounds stale reads: give --read stale with it"}
			}
			if rf.etcd(a.output) {
				if maxStaleness > 0 {
					return &cli.UsageError{Problem: "--max-staleness reads one key through georaft.v1: leave out the range and output flags"}
				}
				return a.etcdGet(cmd, args[0], &rf, m)
			}
			return a.oneShot(cmd, "get", func(cmd *cobra.Command, c *client.Client) error {
				res, err := c.GetWith(cmd.Context(), args[0], m, client.GetOptions{MaxStaleness: maxStaleness})
				if err != nil {
					return err
				}
				a.printer().Get(args[0], res)
				if !res.Found {
					a.code = cli.ExitNotFound
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&mode, "read", "lease", "read mode: lease, index, log or stale")
	cmd.Flags().DurationVar(&maxStaleness, "max-staleness", 0, "with --read stale: refuse an answer older than this (a node that cannot promise it passes the read on)")
	rf.add(cmd)
	return cmd
}

func (a *app) delCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete"},
		Short:   "Delete a key (succeeds when it does not exist)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.oneShot(cmd, "delete", func(cmd *cobra.Command, c *client.Client) error {
				res, err := c.Delete(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				a.printer().Del(args[0], res)
				return nil
			})
		},
	}
}

func (a *app) statusCommand() *cobra.Command {
	var rttCSV string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "One row per node: id, region, address, role, term, leader, commit, applied, lease left, last contact",
		Long: `Asks every endpoint for its status. Unreachable nodes are shown as such. The exit code
is 0 when a leader is known and a quorum of the nodes answered, and 3 (cluster unavailable)
otherwise, with the reason on the last line. --rtt-csv FILE also writes the round-trip
times the nodes measured to each other, as a region matrix that "georaft tune --rtt FILE"
reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.oneShot(cmd, "status", func(cmd *cobra.Command, c *client.Client) error {
				nodes := c.StatusAll(cmd.Context())
				a.printer().Status(nodes, cli.KnownIDs(c))
				if rttCSV != "" && client.Summarize(nodes).Reachable > 0 {
					if err := writeMeasuredMatrix(rttCSV, nodes); err != nil {
						return err
					}
				}
				if !client.Summarize(nodes).Healthy() {
					a.code = cli.ExitUnavailable
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&rttCSV, "rtt-csv", "", "write the measured RTT matrix between regions to FILE")
	return cmd
}

func (a *app) healthCommand() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when a leader is known and a quorum of nodes answers, 3 otherwise (for scripts and probes)",
		Long: `Asks every endpoint for its status and prints one line: "healthy: leader node 2, term 5;
5 of 5 nodes answered", or "unhealthy: 2 of 5 nodes reachable; a quorum needs 3". The exit
code is 0 when healthy and 3 (cluster unavailable) otherwise; --quiet prints nothing, for
scripts: georaft health -q --config configs/local/node1.yaml && echo up`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.oneShot(cmd, "health", func(cmd *cobra.Command, c *client.Client) error {
				nodes := c.StatusAll(cmd.Context())
				if !quiet {
					a.printer().Health(nodes)
				}
				if !client.Summarize(nodes).Healthy() {
					a.code = cli.ExitUnavailable
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing; the exit code says it")
	return cmd
}

// writeMeasuredMatrix saves the region RTT matrix the nodes measured, in the CSV format of
// configs/geo/rtt-5-regions.csv.
func writeMeasuredMatrix(path string, nodes []client.NodeStatus) error {
	m, err := client.MeasuredRTTMatrix(nodes)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write measured RTT matrix: %w", err)
	}
	fmt.Fprintf(f, "# Round-trip times the georaft nodes measured to each other (ms), %s.\n",
		time.Now().UTC().Format(time.RFC3339))
	if err := m.WriteCSV(f); err != nil {
		f.Close()
		return fmt.Errorf("write measured RTT matrix %s: %w", path, err)
	}
	return f.Close()
}

func (a *app) transferCommand() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "transfer-leader --to ID",
		Short: "Hand leadership to another node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := strconv.ParseUint(to, 10, 64)
			if err != nil || target == 0 {
				return &cli.UsageError{Problem: "--to " + strconv.Quote(to) + ": want a node id (a positive integer)"}
			}
			return a.oneShot(cmd, "transfer-leader", func(cmd *cobra.Command, c *client.Client) error {
				res, err := c.TransferLeader(cmd.Context(), target)
				if err != nil {
					return err
				}
				a.printer().Transfer(res)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "id of the node to hand leadership to (required)")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func (a *app) readLeasesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "read-leases",
		Short: "Show or change which members answer linearizable reads locally",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return &cli.UsageError{Problem: "read-leases needs a subcommand", Hint: "georaft read-leases set all|none|ID|REGION..."}
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "set all|none|ID|REGION...",
		Short: "Change the read-lease holders through the log: all, none, or member ids and regions",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.oneShot(cmd, "read-leases set", func(cmd *cobra.Command, c *client.Client) error {
				res, err := c.SetReadLeaseHolders(cmd.Context(), args)
				if err != nil {
					return err
				}
				a.printer().ReadLeases(res)
				return nil
			})
		},
	})
	return cmd
}
