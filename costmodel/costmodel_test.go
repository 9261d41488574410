package costmodel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/geo"
)

const ms = time.Millisecond

func shipped(t *testing.T) MatrixRTTs {
	t.Helper()
	m, err := geo.LoadCSV("../configs/geo/rtt-5-regions.csv")
	if err != nil {
		t.Fatal(err)
	}
	return MatrixRTTs{Matrix: m, IntraRegion: ms}
}

// One node per region, ids in the matrix's order: 1 us-central1, 2 us-east1, 3 us-west1,
// 4 europe-west1, 5 asia-east1.
var fiveNodes = []Node{{1, "us-central1", false}, {2, "us-east1", false}, {3, "us-west1", false},
	{4, "europe-west1", false}, {5, "asia-east1", false}}

var fiveRegions = []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}

type want struct{ lease, index, write, stale time.Duration }

// Every figure here is computed by hand from configs/geo/rtt-5-regions.csv with a 1ms
// intra-region RTT and a 1ms fsync:
//
//	              us-central1 us-east1 us-west1 europe-west1 asia-east1
//	us-central1        0         32       36        100         155
//	us-east1          32          0       65         90         185
//	us-west1          36         65        0        135         118
//	europe-west1     100         90      135          0         250
//	asia-east1       155        185      118        250           0
func TestModelOnTheFiveRegionMatrix(t *testing.T) {
	rtts := shipped(t)
	for _, tc := range []struct {
		name    string
		leader  uint64
		holders []uint64
		rate    float64
		want    map[string]want
	}{{
		// Today's figures: quorum RTT of us-central1 is 36ms (us-west1, its 2nd-nearest peer).
		name: "no holders, leader us-central1", leader: 1,
		want: map[string]want{
			"us-central1":  {lease: 1 * ms, index: 37 * ms, write: 38 * ms, stale: 1 * ms},
			"europe-west1": {lease: 100 * ms, index: 136 * ms, write: 137 * ms, stale: 1 * ms},
			"asia-east1":   {lease: 155 * ms, index: 191 * ms, write: 192 * ms, stale: 1 * ms},
		},
	}, {
		// Every region reads locally; a write waits for asia-east1, the farthest holder.
		name: "all hold, leader us-central1", leader: 1, holders: []uint64{1, 2, 3, 4, 5},
		want: map[string]want{
			"us-central1":  {lease: 1 * ms, index: 37 * ms, write: (1 + 155 + 1) * ms, stale: 1 * ms},
			"us-east1":     {lease: 1 * ms, index: 68 * ms, write: (32 + 155 + 1) * ms, stale: 1 * ms},
			"europe-west1": {lease: 1 * ms, index: 136 * ms, write: (100 + 155 + 1) * ms, stale: 1 * ms},
			"asia-east1":   {lease: 1 * ms, index: 191 * ms, write: (155 + 155 + 1) * ms, stale: 1 * ms},
		},
	}, {
		// Holders no farther than the quorum cost writes nothing; europe-west1 reads at
		// us-east1 (90ms) rather than at the leader (100ms), asia-east1 at us-west1 (118ms).
		name: "us-east1 and us-west1 hold, leader us-central1", leader: 1, holders: []uint64{2, 3},
		want: map[string]want{
			"us-central1":  {lease: 1 * ms, write: 38 * ms},
			"us-east1":     {lease: 1 * ms, write: 69 * ms},
			"europe-west1": {lease: 90 * ms, write: 137 * ms},
			"asia-east1":   {lease: 118 * ms, write: 192 * ms},
		},
	}, {
		// asia-east1's quorum needs us-central1 (155ms) after us-west1 (118ms); a holder in
		// europe-west1 (250ms) then decides every write.
		name: "europe-west1 holds, leader asia-east1", leader: 5, holders: []uint64{4},
		want: map[string]want{
			"asia-east1":   {lease: 1 * ms, index: 156 * ms, write: (1 + 250 + 1) * ms},
			"europe-west1": {lease: 1 * ms, index: 405 * ms, write: (250 + 250 + 1) * ms},
			"us-central1":  {lease: 100 * ms, index: 310 * ms, write: (155 + 250 + 1) * ms},
		},
	}, {
		// 1000 writes/s: a holder finds an entry it cannot apply yet and waits, at the median,
		// the commit wait (156ms) less ln2/1000 s (0.693147ms): 155.306853ms. The leader's
		// region does not wait.
		name: "all hold under 1000 writes/s", leader: 1, holders: []uint64{1, 2, 3, 4, 5}, rate: 1000,
		want: map[string]want{
			"us-central1":  {lease: 1 * ms, write: 157 * ms},
			"europe-west1": {lease: 1*ms + 155306853*time.Nanosecond, write: 256 * ms},
		},
	}, {
		// 4 writes/s: 4 × 0.156s = 0.624 < ln 2, so most reads find nothing to wait for.
		name: "all hold under 4 writes/s", leader: 1, holders: []uint64{1, 2, 3, 4, 5}, rate: 4,
		want: map[string]want{"europe-west1": {lease: 1 * ms}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New(rtts, Cluster{Nodes: fiveNodes, Leader: tc.leader, Holders: tc.holders, Fsync: ms, WriteRate: tc.rate})
			if err != nil {
				t.Fatal(err)
			}
			for region, w := range tc.want {
				c, err := m.Client(region)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range []struct {
					name      string
					got, want time.Duration
					basis     string
				}{
					{"lease", c.Lease(), w.lease, c.LeaseBasis()},
					{"index", c.Index(), w.index, c.IndexBasis()},
					{"write", c.Write(), w.write, c.WriteBasis()},
					{"stale", c.Stale(), w.stale, c.StaleBasis()},
				} {
					if f.want != 0 && absDiff(f.got, f.want) > time.Microsecond {
						t.Errorf("client in %s: %s = %v (%s), want %v", region, f.name, f.got, f.basis, f.want)
					}
				}
			}
		})
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

func TestBasisNamesEveryTerm(t *testing.T) {
	m, err := New(shipped(t), Cluster{Nodes: fiveNodes, Leader: 1, Holders: []uint64{4, 5}, Fsync: 500 * time.Microsecond, WriteRate: 100})
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Client("europe-west1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ basis, want string }{
		{c.LeaseBasis(), "RTT europe-west1->holder 4 (europe-west1) 1ms + holder wait"},
		{c.WriteBasis(), "RTT europe-west1->leader us-central1 100ms + max(quorum RTT us-central1->us-west1 36ms, farthest holder us-central1->5 (asia-east1) 155ms) + fsync 0.5ms"},
		{c.IndexBasis(), "RTT europe-west1->leader us-central1 100ms + quorum RTT us-central1->us-west1 36ms"},
		{c.StaleBasis(), "RTT europe-west1->nearest node 4 (europe-west1) 1ms"},
	} {
		if !strings.Contains(tc.basis, tc.want) {
			t.Errorf("basis %q lacks %q", tc.basis, tc.want)
		}
	}
	if !c.LeaseLocal() {
		t.Error("a holder in the client's region: LeaseLocal false")
	}
}

// Two nodes in one region are the intra-region RTT apart; learners count in no quorum but
// may hold read leases.
func TestPlacementsBeyondOnePerRegion(t *testing.T) {
	nodes := []Node{{1, "us-central1", false}, {2, "us-central1", false}, {3, "europe-west1", false},
		{7, "asia-east1", true}}
	m, err := New(shipped(t), Cluster{Nodes: nodes, Leader: 1, Holders: []uint64{7}})
	if err != nil {
		t.Fatal(err)
	}
	if q, by := m.Quorum(); q != ms || by.ID != 2 {
		t.Errorf("quorum %v via node %d, want 1ms via node 2 (same region)", q, by.ID)
	}
	if d, h, ok := m.FarthestHolder(); !ok || d != 155*ms || h.ID != 7 {
		t.Errorf("farthest holder %v node %d (%v), want the learner 7 at 155ms", d, h.ID, ok)
	}
	c, _ := m.Client("asia-east1")
	if c.Lease() != ms || c.ReadServer.ID != 7 {
		t.Errorf("asia-east1 reads at node %d in %v, want the learner 7 locally", c.ReadServer.ID, c.Lease())
	}
	// A client in a region with no node goes to the nearest node for stale reads.
	only := []Node{{1, "us-central1", false}, {2, "us-east1", false}, {3, "us-west1", false}}
	m, err = New(shipped(t), Cluster{Nodes: only, Leader: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, _ = m.Client("asia-east1")
	if c.Stale() != 118*ms || c.Lease() != 155*ms || c.Nearest.ID != 3 {
		t.Errorf("asia-east1 without a node: stale %v via %d, lease %v; want 118ms via 3, 155ms", c.Stale(), c.Nearest.ID, c.Lease())
	}
}

func TestErrors(t *testing.T) {
	rtts := shipped(t)
	for _, tc := range []struct {
		c    Cluster
		want string
	}{
		{Cluster{}, "no nodes"},
		{Cluster{Nodes: fiveNodes, Leader: 9}, "leader 9 is not among the nodes"},
		{Cluster{Nodes: []Node{{1, "us-central1", true}, {2, "us-east1", false}}, Leader: 1}, "leader 1 is a learner"},
		{Cluster{Nodes: fiveNodes, Leader: 1, Holders: []uint64{8}}, "holder 8 is not among the nodes"},
		{Cluster{Nodes: []Node{{1, "us-central1", false}, {1, "us-east1", false}}, Leader: 1}, "node 1 is listed twice"},
		{Cluster{Nodes: []Node{{0, "us-central1", false}}}, "node id must not be 0"},
		{Cluster{Nodes: []Node{{1, "mars", false}, {2, "us-east1", false}}, Leader: 2}, `"mars"`},
		{Cluster{Nodes: fiveNodes, Leader: 1, Fsync: -ms}, "fsync must not be negative"},
		{Cluster{Nodes: fiveNodes, Leader: 1, WriteRate: -1}, "write rate"},
	} {
		if _, err := New(rtts, tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) err = %v, want it to mention %q", tc.c, err, tc.want)
		}
	}
	m, _ := New(rtts, Cluster{Nodes: fiveNodes, Leader: 1})
	if _, err := m.Client("mars"); err == nil || !strings.Contains(err.Error(), "mars") {
		t.Errorf("Client(mars) err = %v", err)
	}
}

// randomMatrix has n regions r0.. with RTTs between 1 and 300ms and a random diagonal.
func randomMatrix(t *testing.T, rng *rand.Rand, n int) MatrixRTTs {
	t.Helper()
	regions := make([]string, n)
	rtt := make([][]time.Duration, n)
	for i := range regions {
		regions[i] = fmt.Sprintf("r%d", i)
		rtt[i] = make([]time.Duration, n)
	}
	for i := range n {
		rtt[i][i] = time.Duration(rng.IntN(2000)) * time.Microsecond
		for j := i + 1; j < n; j++ {
			d := time.Duration(1+rng.IntN(300)) * ms
			rtt[i][j], rtt[j][i] = d, d
		}
	}
	m, err := geo.New(regions, rtt, geo.DefaultTolerance)
	if err != nil {
		t.Fatal(err)
	}
	return MatrixRTTs{Matrix: m, IntraRegion: time.Duration(rng.IntN(3)) * ms}
}

// Adding a holder never makes a read slower nor a write faster (with reads and writes that
// do not overlap); with writes in flight it never makes a write faster, a read waits at
// most the commit wait, and more writes never make a read faster.
func TestAddingAHolderProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	for trial := range 500 {
		n := 1 + rng.IntN(7)
		rtts := randomMatrix(t, rng, n)
		regions := rtts.Matrix.Regions()
		var nodes []Node
		for id := uint64(1); id <= uint64(1+rng.IntN(7)); id++ {
			nodes = append(nodes, Node{ID: id, Region: regions[rng.IntN(n)], Learner: id > 1 && rng.IntN(4) == 0})
		}
		leader := nodes[0].ID
		var holders []uint64
		for _, nd := range nodes {
			if rng.IntN(2) == 0 {
				holders = append(holders, nd.ID)
			}
		}
		added := nodes[rng.IntN(len(nodes))].ID
		fsync := time.Duration(rng.IntN(3000)) * time.Microsecond
		rate := []float64{0, 0, 1, 20, 500}[rng.IntN(5)]
		build := func(hs []uint64, rate float64) *Model {
			m, err := New(rtts, Cluster{Nodes: nodes, Leader: leader, Holders: hs, Fsync: fsync, WriteRate: rate})
			if err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
			return m
		}
		before, after := build(holders, rate), build(append(slices.Clone(holders), added), rate)
		busier := build(holders, rate*2+1)
		for _, region := range regions {
			b, _ := before.Client(region)
			a, _ := after.Client(region)
			busy, _ := busier.Client(region)
			if a.Write() < b.Write() || a.Index() != b.Index() || a.Stale() != b.Stale() {
				t.Fatalf("trial %d: adding holder %d to %v made a write from %s %v -> %v (index %v -> %v)",
					trial, added, holders, region, b.Write(), a.Write(), b.Index(), a.Index())
			}
			if rate == 0 && a.Lease() > b.Lease() {
				t.Fatalf("trial %d: adding holder %d to %v made a read from %s slower: %v -> %v",
					trial, added, holders, region, b.Lease(), a.Lease())
			}
			if b.ReadWait > before.CommitWait() || b.Lease() > b.ReadRTT+before.CommitWait() {
				t.Fatalf("trial %d: read from %s waits %v, more than the commit wait %v", trial, region, b.ReadWait, before.CommitWait())
			}
			if busy.Lease() < b.Lease() {
				t.Fatalf("trial %d: more writes made a read from %s faster: %v -> %v", trial, region, b.Lease(), busy.Lease())
			}
			if b.Lease() > b.ToLeader && b.ReadWait == 0 {
				t.Fatalf("trial %d: a read from %s costs %v, more than the leader's %v with no wait", trial, region, b.Lease(), b.ToLeader)
			}
		}
	}
}

func TestHolderWait(t *testing.T) {
	for _, tc := range []struct {
		commit time.Duration
		rate   float64
		want   time.Duration
	}{
		{156 * ms, 0, 0},
		{156 * ms, 4, 0}, // 0.624 < ln 2
		{156 * ms, 10, 156*ms - 69314718*time.Nanosecond}, // ln2/10 s = 69.314718ms
		{37 * ms, 135, 37*ms - 5134405*time.Nanosecond},   // ln2/135 s = 5.134405ms
		{100 * ms, 1e6, 100*ms - 693*time.Nanosecond},     // always something to wait for
	} {
		if got := HolderWait(tc.commit, tc.rate); absDiff(got, tc.want) > time.Microsecond {
			t.Errorf("HolderWait(%v, %v) = %v, want %v", tc.commit, tc.rate, got, tc.want)
		}
	}
}
