package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/georaft/georaft/clusterkit"
)

// Row names of the benchmark, as client/bench names them.
const (
	RowLease = "lease"
	RowIndex = "index"
	RowLog   = "log"
	RowStale = "stale"
	RowWrite = "write"
)

// Prediction is what the RTT matrix says a row's p50 should be, with its reasoning.
type Prediction struct {
	P50   time.Duration
	Basis string
}

// PredictionInput is what the model needs: where the nodes are, who leads, where the
// client is and what an fsync costs.
type PredictionInput struct {
	Model        clusterkit.LinkModel
	NodeRegions  map[uint64]string
	LeaderID     uint64
	ClientRegion string
	Fsync        time.Duration
}

// Predict gives each row's physical floor:
//
//	lease ≈ RTT(client, leader)
//	index ≈ RTT(client, leader) + quorum RTT (leader to the peer that completes a majority)
//	log   ≈ index + one fsync (the follower's, before it acknowledges; the leader's overlaps)
//	write ≈ log
//	stale ≈ RTT(client, nearest node)
//
// RTTs are the emulation's targets (scaled, intra-region RTT within a region).
func Predict(in PredictionInput) (map[string]Prediction, error) {
	leaderRegion, ok := in.NodeRegions[in.LeaderID]
	if !ok {
		return nil, fmt.Errorf("predict: leader %d is not among the nodes", in.LeaderID)
	}
	toLeader, err := in.Model.RTT(in.ClientRegion, leaderRegion)
	if err != nil {
		return nil, fmt.Errorf("predict: client to leader: %w", err)
	}
	quorum, quorumPeer, err := quorumRTT(in.Model, in.NodeRegions, in.LeaderID)
	if err != nil {
		return nil, err
	}
	nearest, nearestID := time.Duration(-1), uint64(0)
	for _, id := range sortedIDs(in.NodeRegions) {
		d, err := in.Model.RTT(in.ClientRegion, in.NodeRegions[id])
		if err != nil {
			return nil, fmt.Errorf("predict: client to node %d: %w", id, err)
		}
		if nearest < 0 || d < nearest {
			nearest, nearestID = d, id
		}
	}
	clientPart := fmt.Sprintf("RTT %s->leader %s %s", in.ClientRegion, leaderRegion, fmtMillis(toLeader))
	quorumPart := fmt.Sprintf("quorum RTT %s->%s %s", leaderRegion, in.NodeRegions[quorumPeer], fmtMillis(quorum))
	fsyncPart := fmt.Sprintf("fsync %s", fmtMillis(in.Fsync))
	logPrediction := Prediction{toLeader + quorum + in.Fsync, clientPart + " + " + quorumPart + " + " + fsyncPart}
	return map[string]Prediction{
		RowLease: {toLeader, clientPart},
		RowIndex: {toLeader + quorum, clientPart + " + " + quorumPart},
		RowLog:   logPrediction,
		RowWrite: logPrediction,
		RowStale: {nearest, fmt.Sprintf("RTT %s->nearest node %d (%s) %s", in.ClientRegion, nearestID, in.NodeRegions[nearestID], fmtMillis(nearest))},
	}, nil
}

// quorumRTT is the round trip after which a leader has heard from a majority (itself
// included): its RTT to the peer that completes the majority, the (n/2)th nearest.
func quorumRTT(model clusterkit.LinkModel, regions map[uint64]string, leader uint64) (time.Duration, uint64, error) {
	type peerRTT struct {
		id  uint64
		rtt time.Duration
	}
	var peers []peerRTT
	for _, id := range sortedIDs(regions) {
		if id == leader {
			continue
		}
		d, err := model.RTT(regions[leader], regions[id])
		if err != nil {
			return 0, 0, fmt.Errorf("predict: leader to node %d: %w", id, err)
		}
		peers = append(peers, peerRTT{id, d})
	}
	acks := len(regions) / 2
	if acks == 0 {
		return 0, leader, nil
	}
	sort.SliceStable(peers, func(a, b int) bool { return peers[a].rtt < peers[b].rtt })
	p := peers[acks-1]
	return p.rtt, p.id, nil
}

func sortedIDs(m map[uint64]string) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// fmtMillis renders d in milliseconds to the microsecond: "36ms", "0.383ms".
func fmtMillis(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Round(time.Microsecond))/float64(time.Millisecond), 'f', -1, 64) + "ms"
}

// ProbeFsync measures the p50 of writing 4 KiB and fsyncing it in dir, the cost a WAL
// append pays on this disk.
func ProbeFsync(dir string, samples int) (time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	times := make([]time.Duration, 0, samples)
	for range samples {
		if _, err := f.Write(block); err != nil {
			return 0, fmt.Errorf("fsync probe %s: %w", f.Name(), err)
		}
		start := time.Now()
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("fsync probe %s: %w", f.Name(), err)
		}
		times = append(times, time.Since(start))
	}
	if len(times) == 0 {
		return 0, fmt.Errorf("fsync probe in %s: no samples asked for", filepath.Clean(dir))
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
