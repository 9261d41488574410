package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/cli"
	"github.com/georaft/georaft/tune"
)

func (a *app) tuneCommand() *cobra.Command {
	var (
		rttFile      string
		format       string
		leaderRegion string
		drift        float64
		leaseRounds  int
		placement    string
		fromCluster  bool
		mixText      string
		mixFile      string
		fsync        time.Duration
		intraRegion  time.Duration
		noWait       bool
		keys         int
	)
	cmd := &cobra.Command{
		Use:   "tune --rtt FILE | --from-cluster [--mix REGION=<reads>r+<writes>w,...]",
		Short: "Derive timing, read-lease holders and leader placement from an RTT matrix",
		Long: `Derives the timing section of the node configs from an RTT matrix (CSV, like
configs/geo/rtt-5-regions.csv or RTTs your cluster measured), with one line of reasoning per
figure. --from-cluster asks the running cluster (--endpoints or --config) for the RTTs its
nodes measured to each other, and where each node is, instead.

With a client mix (--mix or --mix-file) it also predicts the read and write p50 of every
client region for every read-lease set and leader region, and recommends
read_leases.holders and placement.preferred_regions, each with its reason. A mix is
REGION=<reads>r+<writes>w entries separated by commas, in operations per second, either
term optional; REGION * stands for every region no other entry names:
  --mix us-central1=900r+100w,europe-west1=500r+10w,*=50r+5w
A mix file holds the same entries, one or more per line, # comments allowed.

--format yaml prints the timing: section of a georaftd config (and, with a mix, its
read_leases: and placement: sections); ansible a group_vars file; --output json the
figures, the reasoning and every candidate for programs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := tune.ParseFormat(format)
			if err != nil {
				return &cli.UsageError{Problem: "--format: " + err.Error()}
			}
			place, err := parsePlacement(placement)
			if err != nil {
				return &cli.UsageError{Problem: "--placement: " + err.Error(), Hint: "--placement 1=us-central1,2=us-east1,..."}
			}
			if (rttFile == "") == !fromCluster {
				return &cli.UsageError{Problem: "give exactly one of --rtt FILE and --from-cluster", Hint: "georaft tune --rtt configs/geo/rtt-5-regions.csv"}
			}
			if fsync < 0 || intraRegion < 0 {
				return &cli.UsageError{Problem: fmt.Sprintf("--fsync %v and --intra-region-rtt %v must not be negative", fsync, intraRegion)}
			}
			a.started = true // from here on, a file that cannot be read is an error, not a usage error
			mix, err := readMix(mixText, mixFile)
			if err != nil {
				return err
			}
			opts := tune.Options{Placement: place, LeaderRegion: leaderRegion, MaxClockDrift: drift, LeaseRounds: leaseRounds,
				Mix: mix, Fsync: fsync, IntraRegionRTT: intraRegion, NoHolderWait: noWait, Keys: keys}
			var res tune.Result
			if fromCluster {
				res, err = a.tuneFromCluster(cmd, opts)
			} else {
				res, err = tune.DeriveFile(rttFile, opts)
				if errors.Is(err, tune.ErrBadMix) {
					return &cli.UsageError{Problem: err.Error(), Hint: "--mix " + tune.MixSyntax}
				}
			}
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.tuneJSON(res)
			}
			return res.Write(a.stdout, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&rttFile, "rtt", "", "RTT matrix CSV")
	fl.BoolVar(&fromCluster, "from-cluster", false, "use the RTTs the running cluster's nodes measured, and where they are")
	fl.StringVar(&format, "format", "text", "output format: text, yaml or ansible")
	fl.StringVar(&leaderRegion, "leader-region", "", "region the leader is expected in (default: the most preferred with a mix, else the one with the lowest quorum RTT)")
	fl.Float64Var(&drift, "drift", 0, "bound on clock rate error (default 0.01)")
	fl.IntVar(&leaseRounds, "lease-rounds", 0, "heartbeat rounds per lease (default 4, at least 3)")
	fl.StringVar(&placement, "placement", "", "node id to region, e.g. 1=us-central1,2=us-east1 (default: one node per region, or the cluster's with --from-cluster)")
	fl.StringVar(&mixText, "mix", "", "client traffic per region: "+tune.MixSyntax)
	fl.StringVar(&mixFile, "mix-file", "", "file of --mix entries, one or more per line")
	fl.DurationVar(&fsync, "fsync", 0, "one WAL fsync, on every write's path (default 1ms; see georaft_wal_fsync_seconds)")
	fl.DurationVar(&intraRegion, "intra-region-rtt", 0, "RTT from a client to the node in its region where the matrix says 0 (default 1ms)")
	fl.IntVar(&keys, "keys", 0, "keys the mix spreads over uniformly: with the per-key wait a holder's read waits only for writes of its key (0: every write)")
	fl.BoolVar(&noWait, "no-holder-wait", false, "assume a holder's lease reads never wait for writes in flight (reads and writes at different times)")
	return cmd
}

// readMix parses --mix or loads --mix-file; syntax errors are usage errors that quote the
// entry at fault.
func readMix(text, file string) (tune.Mix, error) {
	switch {
	case text != "" && file != "":
		return nil, &cli.UsageError{Problem: "give at most one of --mix and --mix-file"}
	case text != "":
		mix, err := tune.ParseMix(text)
		if err != nil {
			return nil, &cli.UsageError{Problem: "--mix: " + err.Error(), Hint: "--mix " + tune.MixExample}
		}
		return mix, nil
	case file != "":
		mix, err := tune.LoadMixFile(file)
		if errors.Is(err, tune.ErrBadMix) {
			return nil, &cli.UsageError{Problem: "--mix-file: " + err.Error(), Hint: "one or more entries per line: " + tune.MixSyntax}
		}
		return mix, err
	}
	return nil, nil
}

// tuneFromCluster derives timing from the RTT matrix the running cluster measured, with its
// nodes where they are unless --placement says otherwise.
func (a *app) tuneFromCluster(cmd *cobra.Command, opts tune.Options) (tune.Result, error) {
	var res tune.Result
	err := a.oneShot(cmd, "tune", func(cmd *cobra.Command, c *client.Client) error {
		statuses := c.StatusAll(cmd.Context())
		m, err := client.MeasuredRTTMatrix(statuses)
		if err != nil {
			return err
		}
		if len(opts.Placement) == 0 {
			opts.Placement = clusterPlacement(statuses)
		}
		res, err = tune.Derive(m, opts)
		return err
	})
	return res, err
}

// clusterPlacement is where the nodes say they are: each node's own report, and its peers'
// for nodes that did not answer.
func clusterPlacement(statuses []client.NodeStatus) map[uint64]string {
	place := map[uint64]string{}
	for _, ns := range statuses {
		if ns.Status != nil && ns.Status.Region != "" {
			place[ns.Status.Id] = ns.Status.Region
		}
	}
	for _, ns := range statuses {
		if ns.Status == nil {
			continue
		}
		for _, p := range ns.Status.Peers {
			if _, ok := place[p.Id]; !ok && p.Region != "" {
				place[p.Id] = p.Region
			}
		}
	}
	return place
}

func parsePlacement(s string) (map[uint64]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		idText, region, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, err := strconv.ParseUint(strings.TrimSpace(idText), 10, 64)
		if !ok || err != nil || id == 0 || strings.TrimSpace(region) == "" {
			return nil, fmt.Errorf("%q: want ID=REGION with a positive id", part)
		}
		out[id] = strings.TrimSpace(region)
	}
	return out, nil
}

func (a *app) tuneJSON(r tune.Result) error {
	voters := []map[string]any{}
	for _, v := range r.Voters {
		voters = append(voters, map[string]any{"id": v.ID, "region": v.Region})
	}
	out := map[string]any{
		"ok": true, "op": "tune",
		"heartbeat_interval":   r.HeartbeatInterval.String(),
		"election_timeout_min": r.ElectionTimeoutMin.String(),
		"election_timeout_max": r.ElectionTimeoutMax.String(),
		"lease_duration":       r.LeaseDuration.String(),
		"max_clock_drift":      r.MaxClockDrift,
		"lease_rounds":         r.LeaseRounds,
		"leader_region":        r.LeaderRegion,
		"leader_quorum_rtt":    r.LeaderQuorumRTT.String(),
		"voters":               voters,
		"explain":              r.Explain(),
	}
	if r.Plan != nil {
		out["plan"] = r.Plan
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tune result: %w", err)
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", data)
	return err
}
