package lab

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/costmodel"
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

// PredictionInput is what the model needs: where the nodes are, who leads, who holds read
// leases, where the client is and what an fsync costs.
type PredictionInput struct {
	Model            clusterkit.LinkModel
	NodeRegions      map[uint64]string
	LeaderID         uint64
	ReadLeaseHolders []uint64
	ClientRegion     string
	Fsync            time.Duration
}

// Predict gives each row's physical floor from costmodel, the model georaft tune
// recommends with (its package doc has the rules and assumptions):
//
//	lease ≈ RTT(client, nearest of the leader and the read-lease holders)
//	index ≈ RTT(client, leader) + quorum RTT (leader to the voter that completes a majority)
//	log   ≈ RTT(client, leader) + max(quorum RTT, RTT to the farthest holder) + one fsync
//	write ≈ log
//	stale ≈ RTT(client, nearest node)
//
// RTTs are the emulation's targets (scaled, intra-region RTT within a region). The bench
// measures reads and writes in separate phases, so no lease read waits on a write in flight.
func Predict(in PredictionInput) (map[string]Prediction, error) {
	model, err := costmodel.New(in.Model, costmodel.Cluster{Nodes: costNodes(in.NodeRegions), Leader: in.LeaderID, Holders: in.ReadLeaseHolders, Fsync: in.Fsync})
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	c, err := model.Client(in.ClientRegion)
	if err != nil {
		return nil, fmt.Errorf("predict: %w", err)
	}
	write := Prediction{c.Write(), c.WriteBasis()}
	return map[string]Prediction{
		RowLease: {c.Lease(), c.LeaseBasis()},
		RowIndex: {c.Index(), c.IndexBasis()},
		RowLog:   write,
		RowWrite: write,
		RowStale: {c.Stale(), c.StaleBasis()},
	}, nil
}

// costNodes lists the nodes of regions (id → region) in id order.
func costNodes(regions map[uint64]string) []costmodel.Node {
	var nodes []costmodel.Node
	for _, id := range slices.Sorted(maps.Keys(regions)) {
		nodes = append(nodes, costmodel.Node{ID: id, Region: regions[id]})
	}
	return nodes
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
