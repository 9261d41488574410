package lab

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

func TestMain(m *testing.M) { kittest.Main(m) }

// buildBinary builds a main package of the repo once per test run.
func buildBinary(t *testing.T, pkg string) string { return kittest.Build(t, pkg) }

// labBinaries builds georaftd and georaft-lab.
func labBinaries(t *testing.T) (georaftd, georaftLab string) {
	t.Helper()
	return buildBinary(t, "node/cmd/georaftd"), buildBinary(t, "lab/cmd/georaft-lab")
}

func TestLocalClusterEndToEnd(t *testing.T) {
	georaftd, _ := labBinaries(t)
	opts, _ := relocatedLocal(t)
	opts.Georaftd = georaftd
	opts.LeaderTimeout = 60 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, info, err := LocalUp(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = LocalDown(context.Background(), opts) })
	pids := c.RunningPIDs()
	if len(pids) != 5 {
		t.Fatalf("%d nodes running after local-up, want 5", len(pids))
	}
	t.Logf("leader: node %d, term %d", info.ID, info.Term)

	copts, err := c.ClientOptions("")
	if err != nil {
		t.Fatal(err)
	}
	copts.RequestTimeout = 20 * time.Second
	cl, err := client.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Set(ctx, "lab/e2e", []byte("written through the lab")); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []readmode.Mode{readmode.Lease, readmode.Index, readmode.Log} {
		got, err := cl.Get(ctx, "lab/e2e", mode)
		if err != nil {
			t.Fatalf("%v read: %v", mode, err)
		}
		if !got.Found || string(got.Value) != "written through the lab" {
			t.Errorf("%v read: %+v", mode, got)
		}
	}

	if err := LocalDown(ctx, opts); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if clusterkit.ProcessAlive(pid) {
			t.Errorf("pid %d still running after local-down", pid)
		}
	}
	if left := c.RunningPIDs(); len(left) > 0 {
		t.Errorf("local-down left %v", left)
	}
}

// Under a scaled-down matrix, a client in the leader's region must see lease reads cost
// about the client-to-leader RTT and index and log reads a quorum round trip on top.
func TestGeoEmulationOrdersReadModes(t *testing.T) {
	georaftd, georaftLab := labBinaries(t)
	opts := relocatedGeo(t, georaftd, georaftLab, 0.2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	g, err := GeoUp(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = GeoDown(context.Background(), opts) })
	pids := geoPIDs(g)
	if len(pids) != 6 {
		t.Fatalf("%d processes running after geo-up, want 5 nodes and the proxies", len(pids))
	}
	const leaderID = 1
	if _, err := g.Cluster.PinLeader(ctx, leaderID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	leaderRegion := g.Cluster.Node(leaderID).Region
	clientRTT, err := g.Model.RTT(leaderRegion, leaderRegion)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := grpc.NewClient(g.Cluster.Links[leaderRegion][leaderID], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	kv := georaftv1.NewKVServiceClient(conn)
	key := []byte("lab/geo-ordering")
	if _, err := kv.Set(ctx, &georaftv1.SetRequest{Key: key, Value: []byte("v"), Session: &georaftv1.WriteSession{ClientId: 7, Sequence: 1}}); err != nil {
		t.Fatal(err)
	}
	// Modes interleave so that a burst of load on the shared machine hits all of them alike.
	// A Status call on the same connection measures what the path costs beyond its RTT
	// (gRPC, the proxy, scheduling) when no consensus work is done.
	modes := []georaftv1.ReadMode{georaftv1.ReadMode_READ_MODE_LEASE, georaftv1.ReadMode_READ_MODE_INDEX, georaftv1.ReadMode_READ_MODE_LOG}
	times := map[georaftv1.ReadMode][]time.Duration{}
	var statusTimes []time.Duration
	servedAsAsked := 0
	const rounds = 60
	for range rounds {
		start := time.Now()
		if _, err := kv.Status(ctx, &georaftv1.StatusRequest{}); err != nil {
			t.Fatalf("status: %v", err)
		}
		statusTimes = append(statusTimes, time.Since(start))
		for _, mode := range modes {
			start := time.Now()
			resp, err := kv.Get(ctx, &georaftv1.GetRequest{Key: key, ReadMode: mode})
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("%v read: %v", mode, err)
			}
			if !resp.GetFound() {
				t.Fatalf("%v read did not find the key", mode)
			}
			if mode == georaftv1.ReadMode_READ_MODE_LEASE && resp.GetServedMode() == mode {
				servedAsAsked++
			}
			times[mode] = append(times[mode], elapsed)
		}
	}
	median := func(s []time.Duration) time.Duration {
		s = slices.Clone(s)
		slices.Sort(s)
		return s[len(s)/2]
	}
	lease, index, logRead := median(times[modes[0]]), median(times[modes[1]]), median(times[modes[2]])
	overhead := max(median(statusTimes)-clientRTT, 0)
	t.Logf("p50 from %s (client RTT %v, matrix x%v): lease %v, index %v, log %v, status %v; %d/%d lease reads served by the lease",
		leaderRegion, clientRTT, opts.Scale, lease, index, logRead, median(statusTimes), servedAsAsked, rounds)
	if servedAsAsked < rounds*9/10 {
		t.Errorf("only %d of %d lease reads were served by the lease", servedAsAsked, rounds)
	}
	// Orderings with a clear margin only: index and log reads both wait for a quorum round
	// (they differ by one fsync, too little to order on a loaded machine), a lease read for
	// none. The physics bounds them from below; load only adds.
	quorum, err := g.Model.Matrix.QuorumRTT(leaderRegion, len(g.Cluster.Nodes))
	if err != nil {
		t.Fatal(err)
	}
	if g.Model.Scale > 0 {
		quorum = time.Duration(float64(quorum) * g.Model.Scale)
	}
	if !(lease < index && lease < logRead) {
		t.Errorf("want lease below index and log at p50, got lease %v, index %v, log %v", lease, index, logRead)
	}
	if index < quorum/2 || logRead < quorum/2 {
		t.Errorf("index %v and log %v at p50 beat half the quorum RTT %v: they cannot have waited for a quorum", index, logRead, quorum)
	}
	if limit := 3*clientRTT + 2*time.Millisecond + overhead; lease > limit {
		t.Errorf("lease p50 %v exceeds 3× the client-to-leader RTT %v + 2ms + the path's measured overhead %v", lease, clientRTT, overhead)
	}

	if err := GeoDown(ctx, opts); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if clusterkit.ProcessAlive(pid) {
			t.Errorf("pid %d still running after geo-down", pid)
		}
	}
}
