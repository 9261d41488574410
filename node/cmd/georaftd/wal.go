package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/node/wal"
)

// walCommand holds the write-ahead log repairs an operator may need, each one refused unless
// asked for explicitly.
func walCommand() *cobra.Command {
	walCmd := &cobra.Command{Use: "wal", Short: "Repair a node's write-ahead log (the node must be stopped)"}
	var yes bool
	drop := &cobra.Command{
		Use:   "drop-damaged-tail DIR",
		Short: "Drop a damaged record and everything after it in the last WAL segment (after a torn write)",
		Long: "When georaftd refuses to start because the last WAL segment is damaged with valid records after the\n" +
			"damage, and the node was killed or lost power while writing, nothing from that write was acknowledged:\n" +
			"this drops it, so the node can start and catch up from the leader. DIR is the node's data directory or\n" +
			"its wal directory. If the disk itself may be failing, replace the node instead (docs/failure.md).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if st, err := os.Stat(filepath.Join(dir, "wal")); err == nil && st.IsDir() {
				dir = filepath.Join(dir, "wal")
			}
			if !yes {
				_, err := wal.Inspect(dir, nil)
				var damaged *wal.DamagedTailError
				if !errors.As(err, &damaged) {
					if err != nil {
						return &codedError{exitFailure, fmt.Errorf("%s: %w; not a damaged last segment, so nothing to drop", dir, err)}
					}
					return &codedError{exitFailure, fmt.Errorf("%s: the log has no damaged tail, nothing to drop", dir)}
				}
				return &codedError{exitUsage, fmt.Errorf("would drop %d bytes of %s from offset %d (%s); run again with --yes to do it",
					damaged.Bytes, damaged.File, damaged.Offset, damaged.Reason)}
			}
			torn, err := wal.DropDamagedTail(dir, nil)
			if err != nil {
				return &codedError{exitFailure, err}
			}
			if torn == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: the log has no damaged tail; nothing dropped\n", dir)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dropped %d bytes of %s from offset %d (%s); the node can start now\n",
				torn.Bytes, torn.File, torn.Offset, torn.Reason)
			return nil
		},
	}
	drop.Flags().BoolVar(&yes, "yes", false, "really drop it (without it, say what would be dropped)")
	walCmd.AddCommand(drop)
	return walCmd
}
