package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

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
	)
	cmd := &cobra.Command{
		Use:   "tune --rtt FILE | --from-cluster",
		Short: "Derive heartbeat, election timeouts and lease from an RTT matrix",
		Long: `Derives the timing section of the node configs from an RTT matrix (CSV, like
configs/geo/rtt-5-regions.csv or RTTs your cluster measured), with one line of reasoning per
figure. --from-cluster asks the running cluster (--endpoints or --config) for the RTTs its
nodes measured to each other instead. --format yaml prints the timing: section of a georaftd
config; ansible a group_vars file; --output json the figures and reasoning for programs.`,
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
			opts := tune.Options{Placement: place, LeaderRegion: leaderRegion, MaxClockDrift: drift, LeaseRounds: leaseRounds}
			var res tune.Result
			if fromCluster {
				res, err = a.tuneFromCluster(cmd, opts)
			} else {
				a.started = true
				res, err = tune.DeriveFile(rttFile, opts)
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
	fl.BoolVar(&fromCluster, "from-cluster", false, "use the RTTs the running cluster's nodes measured")
	fl.StringVar(&format, "format", "text", "output format: text, yaml or ansible")
	fl.StringVar(&leaderRegion, "leader-region", "", "region the leader is expected in (default: the one with the lowest quorum RTT)")
	fl.Float64Var(&drift, "drift", 0, "bound on clock rate error (default 0.01)")
	fl.IntVar(&leaseRounds, "lease-rounds", 0, "heartbeat rounds per lease (default 4, at least 3)")
	fl.StringVar(&placement, "placement", "", "node id to region, e.g. 1=us-central1,2=us-east1 (default: one node per region)")
	return cmd
}

// tuneFromCluster derives timing from the RTT matrix the running cluster measured.
func (a *app) tuneFromCluster(cmd *cobra.Command, opts tune.Options) (tune.Result, error) {
	var res tune.Result
	err := a.oneShot(cmd, "tune", func(cmd *cobra.Command, c *client.Client) error {
		m, err := client.MeasuredRTTMatrix(c.StatusAll(cmd.Context()))
		if err != nil {
			return err
		}
		res, err = tune.Derive(m, opts)
		return err
	})
	return res, err
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
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tune result: %w", err)
	}
	_, err = fmt.Fprintf(a.stdout, "%s\n", data)
	return err
}
