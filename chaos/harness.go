package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

// SetupOptions are what a run and a failover measurement share.
type SetupOptions struct {
	// Georaftd is a georaftd built with -tags georaft_testhooks; empty builds one.
	Georaftd string
	// WorkDir holds the cluster's configs, data and logs; empty makes a temporary one,
	// removed after a run without anomalies unless Keep is set.
	WorkDir string
	Keep    bool
	// Geo emulates the RTT matrix in MatrixPath scaled by GeoScale (timing derived by the
	// tune package) instead of LAN links.
	Geo        bool
	MatrixPath string
	GeoScale   float64
	// ReadLeaseHolders is read_leases.holders of every node (all, none, or ids and regions):
	// the holders answer lease reads themselves and are among the fault targets.
	ReadLeaseHolders []string
	// Workload shapes the clients; its Seed is set from the run's seed.
	Workload WorkloadOptions
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// DefaultMatrixPath is the RTT matrix the geo mode emulates, relative to the repository.
const DefaultMatrixPath = "configs/geo/rtt-5-regions.csv"

// harness is a running cluster with its clients and everything recorded about them.
type harness struct {
	opts    SetupOptions
	clock   *Clock
	log     io.Writer
	workDir string
	tempDir bool
	cluster *Cluster
	rec     *history.Recorder
	work    *Workload
	// watch follows every key for the run (run.go); a replace retargets it.
	watch *watchChecker

	probeMu sync.Mutex
	probeID int
}

func setup(ctx context.Context, opts SetupOptions, seed int64) (*harness, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	h := &harness{opts: opts, clock: NewClock(), log: opts.Log}
	h.workDir = opts.WorkDir
	if h.workDir == "" {
		dir, err := os.MkdirTemp("", "georaft-chaos-")
		if err != nil {
			return nil, fmt.Errorf("create work dir: %w", err)
		}
		h.workDir, h.tempDir = dir, true
	} else if err := os.MkdirAll(h.workDir, 0o755); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	abs, err := filepath.Abs(h.workDir)
	if err != nil {
		return nil, fmt.Errorf("work dir %s: %w", h.workDir, err)
	}
	h.workDir = abs
	binary := opts.Georaftd
	if binary != "" {
		// lab resolves a relative binary against the cluster's work dir, not ours.
		if binary, err = filepath.Abs(binary); err != nil {
			return nil, fmt.Errorf("georaftd binary %s: %w", opts.Georaftd, err)
		}
	} else {
		h.logf("building georaftd with -tags georaft_testhooks")
		if binary, err = BuildGeoraftd(ctx, h.workDir); err != nil {
			return nil, err
		}
	}
	copts := ClusterOptions{Georaftd: binary, Dir: h.workDir, Log: h.log, ReadLeaseHolders: opts.ReadLeaseHolders}
	if opts.Geo {
		if copts.Model, copts.Timing, err = geoModel(ctx, opts); err != nil {
			return nil, err
		}
	}
	if h.cluster, err = StartCluster(ctx, copts); err != nil {
		return nil, err
	}
	h.logf("timing: heartbeat %s, election timeout %s-%s, lease %s, max drift %v, max staleness %s",
		h.cluster.Timing.HeartbeatInterval, h.cluster.Timing.ElectionTimeoutMin, h.cluster.Timing.ElectionTimeoutMax,
		h.cluster.Timing.LeaseDuration, h.cluster.Timing.MaxClockDrift, h.cluster.Timing.MaxStaleness)
	h.rec = history.NewRecorder(h.clock.Now)
	wopts := opts.Workload
	wopts.Seed = seed
	if h.work, err = StartWorkload(h.cluster, h.clock, h.rec, wopts); err != nil {
		h.close()
		return nil, err
	}
	if _, ok := h.work.WaitWriteAfter(ctx, -1, 30*time.Second); !ok {
		h.close()
		return nil, fmt.Errorf("no write succeeded within 30s of starting the clients")
	}
	h.logf("%d clients running on %d keys", h.work.opts.Clients, h.work.opts.Keys)
	return h, nil
}

// geoModel scales the RTT matrix and derives the timing for it.
func geoModel(ctx context.Context, opts SetupOptions) (clusterkit.LinkModel, config.TimingConfig, error) {
	path := opts.MatrixPath
	if path == "" {
		root, err := clusterkit.ModuleRoot(ctx)
		if err != nil {
			return clusterkit.LinkModel{}, config.TimingConfig{}, err
		}
		path = filepath.Join(root, DefaultMatrixPath)
	}
	m, err := geo.LoadCSV(path)
	if err != nil {
		return clusterkit.LinkModel{}, config.TimingConfig{}, err
	}
	if m.Len() != 5 {
		return clusterkit.LinkModel{}, config.TimingConfig{}, fmt.Errorf("matrix %s has %d regions, the chaos cluster needs 5", path, m.Len())
	}
	scale := opts.GeoScale
	if scale <= 0 {
		scale = 0.2
	}
	model := clusterkit.LinkModel{Matrix: m, Scale: scale, IntraRegionRTT: time.Millisecond, Jitter: DefaultLANJitter}
	scaled, err := model.Scaled()
	if err != nil {
		return clusterkit.LinkModel{}, config.TimingConfig{}, fmt.Errorf("scaled matrix: %w", err)
	}
	timing, err := clusterkit.GeoTiming(scaled, m.Regions())
	return model, timing, err
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "[%8.3fs] %s\n", time.Duration(h.clock.Now()).Seconds(), fmt.Sprintf(format, args...))
}

// close stops the clients, the nodes and the links.
func (h *harness) close() {
	if h.work != nil {
		h.work.Stop()
	}
	if h.cluster != nil {
		h.cluster.Kit.Close()
	}
}

// removeWorkDir deletes a temporary work dir.
func (h *harness) removeWorkDir() {
	if h.tempDir && !h.opts.Keep {
		_ = os.RemoveAll(h.workDir)
	}
}

// ProbeResult is one read sent straight to one node right after it resumed.
type ProbeResult struct {
	Key    string `json:"key"`
	Asked  string `json:"asked"`
	Served string `json:"served,omitempty"`
	Term   uint64 `json:"term,omitempty"`
	Err    string `json:"error,omitempty"`
}

// probe sends a read of each key to node id at once, in parallel, over the kit's direct
// connection (no link delay between the resume and the read), and records each in the
// history (probes are ordinary operations to the checker).
func (h *harness) probe(ctx context.Context, id uint64, keys []string, mode readmode.Mode) []ProbeResult {
	kv, err := h.cluster.Kit.KV(id)
	if err != nil {
		h.logf("HARNESS ERROR: probe of node %d: %v", id, err)
		return nil
	}
	out := make([]ProbeResult, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		h.probeMu.Lock()
		h.probeID++
		clientID := probeClientBase + h.probeID
		h.probeMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := ProbeResult{Key: key, Asked: mode.String()}
			callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			call := h.rec.Begin(history.Op{ClientID: clientID, Kind: history.Get, Key: key, Mode: mode})
			resp, err := kv.Get(callCtx, &georaftv1.GetRequest{Key: []byte(key), ReadMode: georaftv1.ReadModeOf(mode)})
			if err != nil {
				call.Unknown(err)
				res.Err = err.Error()
				out[i] = res
				return
			}
			served, err := resp.GetServedMode().Mode()
			if err != nil {
				served = mode
			}
			call.Read(resp.GetFound(), string(resp.GetValue()), served)
			call.Annotate(fmt.Sprintf("probe of n%d after resume, t%d", id, resp.GetHeader().GetTerm()))
			res.Served, res.Term = served.String(), resp.GetHeader().GetTerm()
			out[i] = res
		}()
	}
	wg.Wait()
	return out
}

// Client ids in the history: workload clients count from 1, probes from probeClientBase,
// and the final reads after the full restart use finalClientID.
const (
	probeClientBase = 10_000
	finalClientID   = 9_999
)

// keysWrittenBetween lists distinct keys of writes acknowledged in [from, to], latest first.
func (h *harness) keysWrittenBetween(from, to int64, limit int) []string {
	ops := h.rec.Ops()
	seen := map[string]bool{}
	var out []string
	for i := len(ops) - 1; i >= 0 && len(out) < limit; i-- {
		op := ops[i]
		if !isWrite(op) || op.Outcome != history.OK || op.Return < from || op.Return > to || seen[op.Key] {
			continue
		}
		seen[op.Key] = true
		out = append(out, op.Key)
	}
	return out
}
