package clusterkit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/geo"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

func TestMain(m *testing.M) { kittest.Main(m) }

// The operations the harnesses build on, on real georaftd processes: SIGSTOP of the leader
// (another takes over), kill -9 by the kit (not a crash) and from outside (a crash), a
// member added with its links and a config the node reads, a restart into the grown
// membership, and the member removed again.
func TestClusterLifecycle(t *testing.T) {
	ctx := context.Background()
	c := kittest.New(t, clusterkit.Spec{Size: 3, Proxied: true, ClientRegions: []string{"us-central1"}}, clusterkit.Options{})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	first := kittest.WaitLeader(t, c)

	if err := c.Pause(first); err != nil {
		t.Fatal(err)
	}
	if c.Node(first).Serving() || !c.Node(first).Running() {
		t.Fatalf("paused node: serving %v, running %v", c.Node(first).Serving(), c.Node(first).Running())
	}
	next, err := c.WaitLeader(ctx, time.Minute, clusterkit.Want{})
	if err != nil {
		t.Fatal(err)
	}
	if next.ID == first {
		t.Fatalf("node %d still leads while paused", first)
	}
	if err := c.Resume(first); err != nil {
		t.Fatal(err)
	}

	follower := first
	if err := c.Kill(follower); err != nil {
		t.Fatal(err)
	}
	if len(c.Crashes()) != 0 {
		t.Fatalf("a kill by the kit was taken for a crash: %v", c.Crashes())
	}
	if err := c.StartNode(follower); err != nil {
		t.Fatal(err)
	}
	pid, _ := c.Node(follower).PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	kittest.WaitFor(t, 10*time.Second, "the crash to be noticed", func() error {
		if len(c.Crashes()) == 0 {
			return errors.New("no crash reported")
		}
		return nil
	})
	if !strings.Contains(c.Crashes()[0], fmt.Sprintf("node %d", follower)) {
		t.Errorf("crash report %q", c.Crashes()[0])
	}

	// Grow: node 4 gets links both ways with every member and a client link.
	n4, err := c.AddNode("europe-west1")
	if err != nil {
		t.Fatal(err)
	}
	if n4.ID != 4 || n4.Config.Node.Region != "europe-west1" || len(n4.Config.Peers) != 4 {
		t.Fatalf("added node %d in %s with %d peers", n4.ID, n4.Config.Node.Region, len(n4.Config.Peers))
	}
	for _, id := range []uint64{1, 2, 3} {
		in, err1 := c.Proxies.Peer(id, 4)
		out, err2 := c.Proxies.Peer(4, id)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if n4.DialAddr(id) != in.Listen || out.Upstream != c.Node(id).Config.Listen.Peer {
			t.Errorf("links between node %d and node 4: in %+v, out %+v", id, in.Link, out.Link)
		}
	}
	if _, err := c.Proxies.Client("us-central1", 4); err != nil {
		t.Error(err)
	}
	// Started, node 4 joins as a learner, catches up, is promoted, and serves through its
	// client link.
	if err := c.StartNode(4); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitRole(ctx, 4, time.Minute, georaftv1.MemberRole_MEMBER_ROLE_VOTER); err != nil {
		t.Fatal(err)
	}
	leader := kittest.WaitLeader(t, c)
	if st, err := c.Status(ctx, leader, time.Second); err != nil || len(st.GetPeers()) != 3 {
		t.Fatalf("leader status: %d peers known, %v; want the 3 others", len(st.GetPeers()), err)
	}
	cl := kittest.Client(t, c, "us-central1", 20*time.Second)
	if _, err := cl.Set(ctx, "grown", []byte("4")); err != nil {
		t.Fatal(err)
	}
	if r, err := cl.Get(ctx, "grown", readmode.Index); err != nil || string(r.Value) != "4" {
		t.Fatalf("read back: %+v, %v", r, err)
	}

	if err := c.RemoveMember(ctx, 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveNode(4); err != nil {
		t.Fatal(err)
	}
	if c.Node(4) != nil || len(c.IDs()) != 3 {
		t.Fatalf("node 4 still a member: %v", c.IDs())
	}
	if _, err := c.Proxies.Peer(1, 4); err == nil {
		t.Error("a link to the removed node still runs")
	}
}

// An emulated geo cluster delays each directed link by its regions' round trip, and a
// link's delay can change while the cluster runs. Only lower bounds are asserted: a
// toxic sleeps at least its latency, and load only adds to it.
func TestGeoClusterDelaysEachLink(t *testing.T) {
	m, err := geo.LoadCSV("../configs/geo/rtt-5-regions.csv")
	if err != nil {
		t.Fatal(err)
	}
	c := kittest.Launch(t, clusterkit.Spec{Regions: []string{"us-central1", "us-east1", "europe-west1"}, Proxied: true,
		ClientRegions: []string{"us-central1", "europe-west1"}},
		clusterkit.Options{Model: clusterkit.LinkModel{Matrix: m, Scale: 1, IntraRegionRTT: time.Millisecond}})
	ctx := context.Background()
	if _, err := c.PinLeader(ctx, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	medianRead := func(region string) time.Duration {
		t.Helper()
		cl := kittest.Client(t, c, region, 20*time.Second)
		var times []time.Duration
		for range 5 {
			start := time.Now()
			if _, err := cl.Get(ctx, "k", readmode.Lease); err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		return times[2]
	}
	europe, err := m.RTT("europe-west1", "us-central1")
	if err != nil {
		t.Fatal(err)
	}
	if d := medianRead("europe-west1"); d < europe {
		t.Errorf("a lease read from europe-west1 at the us-central1 leader took %v, under the %v round trip", d, europe)
	}
	link, err := c.Proxies.Client("us-central1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := link.SetRTT(80 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := medianRead("us-central1"); d < 80*time.Millisecond {
		t.Errorf("after SetRTT(80ms) a lease read over the link took %v", d)
	}
}
