package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/bench"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/costmodel"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
	"github.com/georaft/georaft/tune"
)

// The read-lease part of `make bench`: lease-read and write p50 from every client region,
// measured beside costmodel's prediction, with read leases held by none, by all, and by the
// set `georaft tune` recommends; what a holder that stops answering costs writes, before and
// after its lease runs out; and how long a holder's reads wait under concurrent writes, for a
// key the writes touch and for one they do not (the per-key wait), against the model.

// HolderColumn is one read-lease setting: its name in the table and the holders as
// `georaft read-leases set` takes them.
type HolderColumn struct {
	Name  string
	Words []string
	// IDs are the holders once set.
	IDs []uint64 `json:"ids"`
}

// MatrixCell is one client region under one setting.
type MatrixCell struct {
	Column       string `json:"holders"`
	ClientRegion string `json:"client_region"`
	Lease        Millis `json:"lease_p50_ms"`
	LeasePred    Millis `json:"lease_predicted_ms"`
	LeaseBasis   string `json:"lease_basis"`
	Write        Millis `json:"write_p50_ms"`
	WritePred    Millis `json:"write_predicted_ms"`
	WriteBasis   string `json:"write_basis"`
	// LocalRTT is the client's round trip to the node of its own region: its stale-read p50.
	LocalRTT Millis `json:"local_node_rtt_ms"`
	// LeaseServedBy is the node that answered a lease read after the measurement.
	LeaseServedBy uint64 `json:"lease_served_by"`
}

// HiddenCosts is what a read-lease holder that stops answering costs writes.
type HiddenCosts struct {
	Holder       uint64 `json:"holder"`
	HolderRegion string `json:"holder_region"`
	// Baseline: write p50 from the leader's region with every holder answering.
	Baseline Millis `json:"write_p50_before_ms"`
	// FirstWrite: the first write sent right after the holder paused, which waits until the
	// holder's read lease has surely run out.
	FirstWrite Millis `json:"first_write_after_pause_ms"`
	// After: write p50 once the lease has run out (writes go on without the holder).
	After         Millis `json:"write_p50_after_lease_ms"`
	LeaseDuration Millis `json:"lease_duration_ms"`
}

// WaitCheck is a holder's lease reads under concurrent writes.
type WaitCheck struct {
	Holder       uint64  `json:"holder"`
	HolderRegion string  `json:"holder_region"`
	WriteRate    float64 `json:"write_rate_per_s"`
	// CommitWait is the model's C for the setting; Touched the read p50 of the key every
	// write writes (what every read pays without the per-key wait), Untouched of a key no
	// write touches (what the per-key wait leaves), both less the holder's RTT.
	CommitWait    Millis `json:"commit_wait_ms"`
	Touched       Millis `json:"touched_key_wait_ms"`
	TouchedPred   Millis `json:"touched_key_predicted_ms"`
	Untouched     Millis `json:"untouched_key_wait_ms"`
	UntouchedPred Millis `json:"untouched_key_predicted_ms"`
	Reads         int    `json:"reads"`
}

// Millis is a duration the result files give in milliseconds; it prints as a latency.
type Millis time.Duration

func (m Millis) MarshalJSON() ([]byte, error) { return json.Marshal(millis(time.Duration(m))) }
func (m Millis) String() string               { return bench.FormatLatency(time.Duration(m)) }

// HolderBench is everything the read-lease part measured.
type HolderBench struct {
	Columns []HolderColumn `json:"columns"`
	Cells   []MatrixCell   `json:"cells"`
	Hidden  *HiddenCosts   `json:"hidden_costs,omitempty"`
	Wait    *WaitCheck     `json:"wait,omitempty"`
	// Mix is the client mix the recommended column was derived for.
	Mix string `json:"mix"`
}

// waitReadRate is how many lease reads per second the holder-wait check sends, at random.
const waitReadRate = 50

// DefaultHolderMix is the read-heavy mix of docs/tuning.md's worked example, over the
// bench's keys.
const DefaultHolderMix = "us-central1=900r+100w,europe-west1=500r+10w,us-east1=300r+10w,us-west1=300r+10w,asia-east1=400r+5w"

// holderColumns are none, all and what `georaft tune --mix MIX` recommends (its default
// assumptions: one hot key, reads and writes at the same time).
func (g *Geo) holderColumns(mix string, fsync time.Duration) ([]HolderColumn, error) {
	m, err := tune.ParseMix(mix)
	if err != nil {
		return nil, err
	}
	matrix, err := g.Model.Scaled()
	if err != nil {
		return nil, err
	}
	res, err := tune.Derive(matrix, tune.Options{Mix: m, Placement: g.Cluster.Regions(), Fsync: fsync, IntraRegionRTT: g.Model.IntraRegionRTT})
	if err != nil {
		return nil, err
	}
	rec := res.Plan.Holders
	if len(rec) == 0 {
		rec = []string{"none"}
	}
	return []HolderColumn{
		{Name: "none", Words: []string{"none"}},
		{Name: "all", Words: []string{"all"}},
		{Name: "tune: " + strings.Join(rec, ","), Words: rec},
	}, nil
}

// setHolders changes the read-lease holders and waits until each holder holds its lease.
func (g *Geo) setHolders(ctx context.Context, cl *client.Client, words []string) ([]uint64, error) {
	res, err := cl.SetReadLeaseHolders(ctx, words)
	if err != nil {
		return nil, err
	}
	err = clusterkit.WaitFor(ctx, 30*time.Second, fmt.Sprintf("read-lease holders %v to hold their leases", res.Holders), func() error {
		statuses, _ := g.Cluster.Statuses(ctx, 2*time.Second, false)
		for _, id := range res.Holders {
			st := statuses[id]
			if st.GetRole() == georaftv1.Role_ROLE_LEADER {
				continue
			}
			if st.GetReadLeaseState() != georaftv1.LeaseState_LEASE_STATE_HELD || !slices.Equal(st.GetReadLeaseHolders(), res.Holders) {
				return fmt.Errorf("node %d: read lease %v, holders %v", id, st.GetReadLeaseState(), st.GetReadLeaseHolders())
			}
		}
		return nil
	})
	return res.Holders, err
}

// benchHolders runs the read-lease part of the bench.
func (g *Geo) benchHolders(ctx context.Context, opts BenchOptions, leaderID uint64, fsync time.Duration, out io.Writer) (*HolderBench, error) {
	hb := &HolderBench{Mix: opts.HolderMix}
	cols, err := g.holderColumns(opts.HolderMix, fsync)
	if err != nil {
		return hb, err
	}
	leaderRegion := g.Cluster.Node(leaderID).Region
	admin, err := g.Cluster.Client(leaderRegion, 10*time.Second)
	if err != nil {
		return hb, err
	}
	defer admin.Close()
	for _, col := range cols {
		ids, err := g.setHolders(ctx, admin, col.Words)
		if err != nil {
			return hb, fmt.Errorf("read leases %s: %w", col.Name, err)
		}
		col.IDs = ids
		hb.Columns = append(hb.Columns, col)
		fmt.Fprintf(out, "read leases held by %s (nodes %v)\n", col.Name, ids)
		for _, n := range g.Cluster.Nodes {
			region := n.Region
			cell, err := g.benchCell(ctx, opts, col, region, leaderID, fsync)
			if err != nil {
				return hb, fmt.Errorf("read leases %s, client in %s: %w", col.Name, region, err)
			}
			hb.Cells = append(hb.Cells, cell)
			fmt.Fprintf(out, "  %-13s lease %s (predicted %s, answered by node %d)  write %s (predicted %s)\n", region,
				cell.Lease, cell.LeasePred, cell.LeaseServedBy, cell.Write, cell.WritePred)
		}
	}
	if _, err := g.setHolders(ctx, admin, []string{"all"}); err != nil {
		return hb, err
	}
	if hb.Wait, err = g.waitCheck(ctx, opts, admin, leaderID, fsync); err != nil {
		return hb, fmt.Errorf("holder wait: %w", err)
	}
	if hb.Hidden, err = g.hiddenCosts(ctx, admin, leaderID); err != nil {
		return hb, fmt.Errorf("hidden costs: %w", err)
	}
	return hb, nil
}

// benchCell measures lease reads and writes from region under col.
func (g *Geo) benchCell(ctx context.Context, opts BenchOptions, col HolderColumn, region string, leaderID uint64, fsync time.Duration) (cell MatrixCell, err error) {
	var servedBy uint64
	defer func() { cell.LeaseServedBy = servedBy }()
	cl, err := g.Cluster.Client(region, 10*time.Second)
	if err != nil {
		return MatrixCell{}, err
	}
	defer cl.Close()
	preds, err := Predict(PredictionInput{Model: g.Model, NodeRegions: g.Cluster.Regions(), LeaderID: leaderID,
		ReadLeaseHolders: col.IDs, ClientRegion: region, Fsync: fsync})
	if err != nil {
		return MatrixCell{}, err
	}
	rep, err := bench.Run(ctx, bench.Config{
		Driver: bench.ClientDriver{Client: cl}, ReadModes: []string{RowLease, RowStale}, WritePhase: true,
		Concurrency: 1, Duration: opts.MatrixDuration, Warmup: opts.MatrixWarmup,
		// Few keys: the prefill is a write each, up to two RTTs of the farthest region.
		Keys: min(opts.Keys, 10), ValueSize: opts.ValueSize, KeyPrefix: "matrix/" + region + "/", Prefill: true,
	}.Defaults())
	if err != nil {
		return MatrixCell{}, err
	}
	lease, _ := rep.Row(RowLease)
	write, _ := rep.Row(RowWrite)
	stale, _ := rep.Row(RowStale)
	if r, err := cl.Get(ctx, "matrix/"+region+"/probe", readmode.Lease); err == nil {
		servedBy = r.NodeID
	}
	cell = MatrixCell{Column: col.Name, ClientRegion: region, Lease: Millis(lease.P50), LeasePred: Millis(preds[RowLease].P50),
		LeaseBasis: preds[RowLease].Basis, Write: Millis(write.P50), WritePred: Millis(preds[RowWrite].P50), WriteBasis: preds[RowWrite].Basis}
	// A stale read at the client's own node is one round trip to it with nothing to wait
	// for: the measured RTT the goal compares lease reads with.
	cell.LocalRTT = Millis(stale.P50)
	return cell, nil
}

// waitCheck measures a far holder's lease reads while writes arrive at random at rate per
// second: of the key every write writes, and of a key none touches.
func (g *Geo) waitCheck(ctx context.Context, opts BenchOptions, admin *client.Client, leaderID uint64, fsync time.Duration) (*WaitCheck, error) {
	holder := g.farthestFrom(leaderID)
	region := g.Cluster.Node(holder).Region
	model, err := costmodel.New(g.Model, costmodel.Cluster{Nodes: costNodes(g.Cluster.Regions()), Leader: leaderID, Holders: g.Cluster.IDs(), Fsync: fsync})
	if err != nil {
		return nil, err
	}
	rtt, err := g.Model.RTT(region, region)
	if err != nil {
		return nil, err
	}
	wc := &WaitCheck{Holder: holder, HolderRegion: region, WriteRate: opts.WaitWriteRate, CommitWait: Millis(model.CommitWait())}
	wc.TouchedPred = Millis(costmodel.HolderWait(model.CommitWait(), wc.WriteRate))
	cl, err := g.Cluster.Client(region, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	for _, k := range []string{"wait/touched", "wait/untouched"} {
		if _, err := admin.Set(ctx, k, []byte("0")); err != nil {
			return nil, err
		}
	}
	measure := func(key string) (Millis, int, error) {
		phase, cancel := context.WithTimeout(ctx, opts.WaitDuration)
		defer cancel()
		var wg sync.WaitGroup
		var writeErrs atomic.Int64
		wg.Add(1)
		go func() { // Poisson writes of wait/touched at the leader's region
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-phase.Done():
					return
				case <-time.After(time.Duration(rand.ExpFloat64() / wc.WriteRate * float64(time.Second))):
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := admin.Set(context.WithoutCancel(phase), "wait/touched", []byte(fmt.Sprint(i))); err != nil {
						writeErrs.Add(1)
					}
				}()
			}
		}()
		// Reads arrive at random too (open loop, waitReadRate per second), so their median
		// samples the wait at a random moment, as the model's does; a closed loop of
		// back-to-back reads would mostly sample the quiet gaps between writes.
		var mu sync.Mutex
		var times []time.Duration
		var readErr error
		for phase.Err() == nil {
			select {
			case <-phase.Done():
			case <-time.After(time.Duration(rand.ExpFloat64() / waitReadRate * float64(time.Second))):
			}
			if phase.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				r, err := cl.Get(context.WithoutCancel(phase), key, readmode.Lease)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					readErr = err
				case r.NodeID == holder && r.Served == readmode.Lease:
					times = append(times, time.Since(start))
				}
			}()
		}
		wg.Wait()
		if readErr != nil {
			return 0, 0, readErr
		}
		if failed := writeErrs.Load(); failed > 0 {
			return 0, 0, fmt.Errorf("%d concurrent writes failed", failed)
		}
		if len(times) == 0 {
			return 0, 0, fmt.Errorf("no lease read of %s was answered by holder %d", key, holder)
		}
		slices.Sort(times)
		return Millis(max(0, times[len(times)/2]-rtt)), len(times), nil
	}
	var n1, n2 int
	if wc.Touched, n1, err = measure("wait/touched"); err != nil {
		return nil, err
	}
	if wc.Untouched, n2, err = measure("wait/untouched"); err != nil {
		return nil, err
	}
	wc.Reads = n1 + n2
	return wc, nil
}

// hiddenCosts pauses the read-lease holder farthest from the leader and times writes from
// the leader's region: the first waits for its lease to run out, later ones go on without it.
func (g *Geo) hiddenCosts(ctx context.Context, admin *client.Client, leaderID uint64) (*HiddenCosts, error) {
	holder := g.farthestFrom(leaderID)
	n := g.Cluster.Node(holder)
	hc := &HiddenCosts{Holder: holder, HolderRegion: n.Region, LeaseDuration: Millis(n.Config.Timing.LeaseDuration)}
	write := func() (Millis, error) {
		start := time.Now()
		_, err := admin.Set(ctx, "hidden/k", []byte("v"))
		return Millis(time.Since(start)), err
	}
	p50 := func(k int) (Millis, error) {
		var ts []Millis
		for range k {
			d, err := write()
			if err != nil {
				return 0, err
			}
			ts = append(ts, d)
		}
		slices.Sort(ts)
		return ts[len(ts)/2], nil
	}
	var err error
	if hc.Baseline, err = p50(15); err != nil {
		return nil, err
	}
	if err := g.Cluster.Pause(holder); err != nil {
		return nil, err
	}
	defer g.Cluster.Resume(holder)
	if hc.FirstWrite, err = write(); err != nil {
		return nil, err
	}
	time.Sleep(time.Duration(hc.LeaseDuration)) // whatever lease it had has surely run out by now
	if hc.After, err = p50(15); err != nil {
		return nil, err
	}
	if err := g.Cluster.Resume(holder); err != nil {
		return nil, err
	}
	return hc, nil
}

// farthestFrom is the node with the largest RTT from id's region.
func (g *Geo) farthestFrom(id uint64) uint64 {
	from := g.Cluster.Node(id).Region
	best, bestRTT := uint64(0), time.Duration(-1)
	for _, n := range g.Cluster.Nodes {
		if d, err := g.Model.RTT(from, n.Region); err == nil && d > bestRTT && n.ID != id {
			best, bestRTT = n.ID, d
		}
	}
	return best
}

// WriteHolderTable prints the read-lease table: per client region, lease and write p50
// measured and predicted under each setting, then the goals, the hidden costs and the wait.
func (hb *HolderBench) WriteHolderTable(w io.Writer) {
	if hb == nil || len(hb.Cells) == 0 {
		return
	}
	fmt.Fprintf(w, "=== lease reads and writes in every region, by read-lease holders (mix for tune: %s) ===\n", hb.Mix)
	rows := [][]string{{"holders", "client", "lease p50", "predicted", "local RTT", "write p50", "predicted", "write/pred"}}
	for _, c := range hb.Cells {
		rows = append(rows, []string{c.Column, c.ClientRegion, c.Lease.String(), c.LeasePred.String(),
			c.LocalRTT.String(), c.Write.String(), c.WritePred.String(), ratio(time.Duration(c.Write), time.Duration(c.WritePred))})
	}
	io.WriteString(w, bench.Columns(rows, map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true}))
	for _, c := range hb.Cells {
		if c.Column != "all" {
			continue
		}
		gap := c.Write - c.WritePred
		readOK := c.LocalRTT > 0 && c.Lease <= c.LocalRTT+Millis(time.Millisecond)
		writeOK := c.WritePred > 0 && max(gap, -gap) <= c.WritePred*15/100
		fmt.Fprintf(w, "goal, holders all, %s: lease read %s vs RTT to its own node %s (a stale read there; within 1ms: %s); write %s vs model %s (within 15%%: %s)\n",
			c.ClientRegion, c.Lease, c.LocalRTT, yesNo(readOK),
			c.Write, c.WritePred, yesNo(writeOK))
	}
	if h := hb.Hidden; h != nil {
		fmt.Fprintf(w, "hidden cost, holder node %d (%s) paused: write p50 %s before; the first write after the pause %s (it waits for the holder's lease, %v, to run out); write p50 %s after\n",
			h.Holder, h.HolderRegion, h.Baseline, h.FirstWrite, time.Duration(h.LeaseDuration), h.After)
	}
	if wc := hb.Wait; wc != nil {
		fmt.Fprintf(w, "holder wait at node %d (%s), %.0f writes/s of one key, commit wait C %s, reads at random (%d): a read of that key waits %s at p50 (model max(0, C − ln2/λ) = %s, what every read waits without the per-key wait); a read of an untouched key waits %s (model with the per-key wait: %s)\n",
			wc.Holder, wc.HolderRegion, wc.WriteRate, wc.CommitWait, wc.Reads, wc.Touched,
			wc.TouchedPred, wc.Untouched, wc.UntouchedPred)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}
