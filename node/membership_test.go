package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

func (c *testCluster) members(i int) georaftv1.MembershipServiceClient {
	return georaftv1.NewMembershipServiceClient(c.conns[i])
}

// listMembers asks node i for the membership, linearizably.
func (c *testCluster) listMembers(i int) (*georaftv1.ListMembersResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.members(i).ListMembers(ctx, &georaftv1.ListMembersRequest{Linearizable: true})
}

func roleOf(resp *georaftv1.ListMembersResponse, id uint64) georaftv1.MemberRole {
	for _, ms := range resp.GetMembers() {
		if ms.GetMember().GetId() == id {
			return ms.GetMember().GetRole()
		}
	}
	return georaftv1.MemberRole_MEMBER_ROLE_UNSPECIFIED
}

// waitMembership waits until node i's linearizable list satisfies ok.
func (c *testCluster) waitMembership(i int, what string, timeout time.Duration, ok func(*georaftv1.ListMembersResponse) bool) *georaftv1.ListMembersResponse {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.listMembers(i)
		if err == nil && ok(resp) {
			return resp
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprint(resp.GetMembers())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
	return nil
}

// removeMember removes member id through node i, again while another change is still being
// applied (a promotion leaves its joint configuration in a second change).
func (c *testCluster) removeMember(i int, id uint64) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.members(i).RemoveMember(ctx, &georaftv1.RemoveMemberRequest{Id: id})
		cancel()
		if err == nil {
			return
		}
		if errorReason(err) != node.ReasonMembershipBusy || time.Now().After(deadline) {
			c.t.Fatalf("remove member %d through node %d: %v", id, i+1, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// joinerConfig is a node that joins the cluster through member via with an empty data
// directory: no id, no peers list, its own addresses.
func (c *testCluster) joinerConfig(via int, region string, tune func(*config.Config)) *config.Config {
	c.t.Helper()
	addrs, err := clusterkit.FreeAddrs(2)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.ClusterID = c.cfgs[0].ClusterID
	cfg.Timing = c.cfgs[0].Timing
	cfg.Node = config.NodeConfig{Region: region, DataDir: filepath.Join(c.t.TempDir(), "joiner")}
	cfg.Listen = config.ListenConfig{Peer: addrs[0], Client: addrs[1]}
	cfg.Cluster.Join = c.cfgs[via].Listen.Client
	cfg.Log.Level = "warn"
	if tune != nil {
		tune(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		c.t.Fatalf("joiner config: %v", err)
	}
	return &cfg
}

// addNode starts cfg as node index len(c.cfgs) and returns that index.
func (c *testCluster) addNode(cfg *config.Config) int {
	c.t.Helper()
	i := len(c.cfgs)
	c.cfgs = append(c.cfgs, cfg)
	c.servers = append(c.servers, nil)
	conn, err := grpc.NewClient(cfg.Listen.Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns = append(c.conns, conn)
	c.clients = append(c.clients, georaftv1.NewKVServiceClient(conn))
	c.start(i)
	return i
}

// A second georaftd on a data directory in use refuses to start, names the process that holds
// it, and writes nothing there.
func TestDataDirectoryLockRefusesASecondProcess(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.waitLeader(10 * time.Second)
	dump := filepath.Join(c.cfgs[0].Node.DataDir, node.DumpFileName)
	before, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	second := *c.cfgs[0]
	addrs, err := clusterkit.FreeAddrs(2)
	if err != nil {
		t.Fatal(err)
	}
	second.Listen.Peer, second.Listen.Client = addrs[0], addrs[1]
	_, err = node.Start(&second, testLogger())
	if err == nil {
		t.Fatal("a second node started on a data directory in use")
	}
	if want := fmt.Sprintf("in use by process %d", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Fatalf("refusal %q does not name the holder (%q)", err, want)
	}
	c.servers[0].Node() // the first keeps running
	if _, err := c.set(0, "k", "v"); err != nil {
		t.Fatalf("the first node stopped serving: %v", err)
	}
	after, _ := os.ReadFile(dump)
	if strings.Contains(string(after[len(before):]), "starting") {
		t.Fatal("the refused process wrote into dump.txt")
	}
	// Once the first stops, the directory is free again.
	c.kill(0)
	c.start(0)
}

// A node joins with --join and an empty data directory: it is added as a learner under the
// next unused id, catches up from the leader, asks for its promotion and becomes a voter.
// Then a second joiner takes the leader's place in one change (cluster.replaces): the old
// leader is removed, steps down, stops, and never starts again under its id.
func TestJoinCatchUpPromoteThenReplaceTheLeader(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) { cfg.Storage.SnapshotEntries = 50 })
	leader := c.waitLeader(10 * time.Second)
	for k := range 120 {
		c.mustSet(fmt.Sprintf("before-%03d", k), "v")
	}
	follower := (leader + 1) % 3
	j := c.addNode(c.joinerConfig(follower, "region-4", nil))
	resp := c.waitMembership(leader, "node 4 promoted to voter", 30*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, 4) == georaftv1.MemberRole_MEMBER_ROLE_VOTER
	})
	if !slices.Equal(resp.GetInitialVoters(), []uint64{1, 2, 3}) {
		t.Fatalf("initial voters %v", resp.GetInitialVoters())
	}
	c.mustSet("after-join", "v4")
	st := c.mustStatus(leader)
	c.waitApplied(j, st.CommitIndex, 10*time.Second)
	got, err := c.get(j, "before-007", georaftv1.ReadMode_READ_MODE_STALE)
	if err != nil || !got.Found {
		t.Fatalf("the joined node lacks a key written before it joined: %v %v", got, err)
	}
	if s := c.mustStatus(j); s.Id != 4 || s.Learner {
		t.Fatalf("joined node status: id %d learner %v", s.Id, s.Learner)
	}

	// Replace the leader.
	oldID := uint64(leader + 1)
	k := c.addNode(c.joinerConfig(j, "region-5", func(cfg *config.Config) { cfg.Cluster.Replaces = oldID }))
	c.waitMembership(k, "node 5 in the old leader's place", 30*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, 5) == georaftv1.MemberRole_MEMBER_ROLE_VOTER && roleOf(r, oldID) == georaftv1.MemberRole_MEMBER_ROLE_REMOVED
	})
	deadline := time.Now().Add(10 * time.Second)
	for c.servers[leader].Node().Failed() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the removed leader did not stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.servers[leader].Node().Failed(); !strings.Contains(err.Error(), "removed from the cluster") {
		t.Fatalf("the removed leader stopped with %v", err)
	}
	c.servers[leader].Kill()
	c.servers[leader] = nil
	c.mustSet("after-replace", "v5")
	if _, err := node.Start(c.cfgs[leader], testLogger()); err == nil || !strings.Contains(err.Error(), "was removed") {
		t.Fatalf("the removed member restarted under its id: %v", err)
	}
	// A joined member restarts from its member.json alone (it has no peers list) and the
	// log's membership; then every survivor holds the same state.
	c.kill(j)
	c.start(j)
	c.mustSet("after-restart", "v6")
	newLeader := c.waitLeader(10 * time.Second)
	commit := c.mustStatus(newLeader).CommitIndex
	survivors := []int{follower, (leader + 2) % 3, j, k}
	var hashes []uint64
	for _, i := range survivors {
		c.waitApplied(i, commit, 10*time.Second)
	}
	for _, i := range survivors {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.clients[i].Status(ctx, &georaftv1.StatusRequest{IncludeStateHash: true})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if st.AppliedIndex == commit {
			hashes = append(hashes, st.StateHash)
		}
	}
	if len(hashes) > 1 && slices.Min(hashes) != slices.Max(hashes) {
		t.Fatalf("survivors at index %d disagree on the state: %v", commit, hashes)
	}
}

// An empty data directory under an id the cluster knows is a lost disk: the node refuses to
// start, and says how to replace it, whether cluster.initial_state is new or existing.
func TestLostDiskUnderAKnownIDIsRefused(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	c.waitMembership(leader, "every member published", 10*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return len(r.GetPublished()) == 3
	})
	lost := (leader + 1) % 3
	c.kill(lost)
	if err := os.RemoveAll(c.cfgs[lost].Node.DataDir); err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{config.InitialStateNew, config.InitialStateExisting} {
		c.cfgs[lost].Cluster.InitialState = state
		_, err := node.Start(c.cfgs[lost], testLogger())
		if err == nil {
			t.Fatalf("initial_state %s: a node with an empty data directory started under known id %d", state, lost+1)
		}
		if want := fmt.Sprintf("--replaces %d", lost+1); !strings.Contains(err.Error(), want) {
			t.Fatalf("initial_state %s: the refusal %q does not say how to replace it (%q)", state, err, want)
		}
	}
}

// A leader asked to remove itself first hands leadership to the voter placement picks: the
// one in the most preferred region, here a member added at run time in place of region-3's
// (its region comes from the membership table, not from any peers list), over a voter as
// caught up with a lower id.
func TestLeaderRemovingItselfHandsOffToThePreferredRegion(t *testing.T) {
	place := func(cfg *config.Config) {
		cfg.Placement.PreferredRegions = []string{"region-1", "region-3"}
		cfg.Placement.HealthyFor = time.Hour // nothing but the removal moves leadership
		// A voter is healthy when it answered within half the minimum election timeout:
		// long enough here that a loaded machine does not make one look unhealthy.
		cfg.Timing.ElectionTimeoutMin, cfg.Timing.ElectionTimeoutMax = 4*time.Second, 8*time.Second
	}
	c := newTestCluster(t, 3, place)
	c.makeLeader(0, 30*time.Second)
	j := c.addNode(c.joinerConfig(1, "region-3", place))
	c.waitMembership(0, "node 4 promoted to voter", 30*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, 4) == georaftv1.MemberRole_MEMBER_ROLE_VOTER
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.removeMember(0, 3)
	c.kill(2)
	c.mustSet("k", "v") // every voter caught up

	_, err := c.members(0).RemoveMember(ctx, &georaftv1.RemoveMemberRequest{Id: 1})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "handed to node 4") {
		t.Fatalf("the leader asked to remove itself: %v; want leadership handed to node 4 (region-3, preferred) and a retry", err)
	}
	if st := c.mustStatus(j); st.LeaderId != 4 {
		t.Fatalf("after the hand-off node 4 sees leader %d", st.LeaderId)
	}
	c.removeMember(j, 1)
	c.waitMembership(j, "node 1 removed", 10*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return roleOf(r, 1) == georaftv1.MemberRole_MEMBER_ROLE_REMOVED
	})
}

// A member add sent again (its answer lost, or it timed out after it took effect) answers
// with the member it added instead of adding a second one; an add that names a current
// member's peer address but asks for another member is refused, naming that member. etcd's
// MemberAdd refuses any add at a current member's peer URL, as etcd does.
func TestMemberAddIsIdempotentForTheSameMember(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.waitLeader(10 * time.Second)
	follower := (leader + 1) % 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs, err := clusterkit.FreeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	peer := addrs[0]
	req := &georaftv1.AddMemberRequest{PeerAddress: peer, Region: "region-4"}
	first, err := c.members(leader).AddMember(ctx, req)
	if err != nil || first.GetIndex() == 0 {
		t.Fatalf("add: %v, %v", first, err)
	}
	id := first.GetMember().GetId()
	for _, again := range []struct {
		via int
		req *georaftv1.AddMemberRequest
	}{
		{leader, req},
		{follower, req}, // passed on to the leader
		{leader, &georaftv1.AddMemberRequest{PeerAddress: peer}},
		{leader, &georaftv1.AddMemberRequest{PeerAddress: peer, Id: id, Region: "region-4", ClientAddress: "127.0.0.1:1"}},
	} {
		resp, err := c.members(again.via).AddMember(ctx, again.req)
		if err != nil || resp.GetIndex() != 0 || resp.GetMember().GetId() != id ||
			resp.GetMember().GetRole() != georaftv1.MemberRole_MEMBER_ROLE_LEARNER {
			t.Fatalf("the same add again (%v) at node %d: %v, %v; want learner %d as it is, no change", again.req, again.via+1, resp, err, id)
		}
	}
	for _, conflict := range []*georaftv1.AddMemberRequest{
		{PeerAddress: peer, Region: "region-5"},
		{PeerAddress: peer, Id: id + 10},
		// A running member's address: an empty node must never take a member's id.
		{PeerAddress: c.cfgs[follower].Listen.Peer},
	} {
		_, err := c.members(leader).AddMember(ctx, conflict)
		if status.Code(err) != codes.AlreadyExists || errorReason(err) != node.ReasonPeerAddressInUse ||
			!strings.Contains(err.Error(), "member ") || !strings.Contains(err.Error(), "remove member") {
			t.Fatalf("an add that conflicts with a member at its peer address (%v): %v; want ALREADY_EXISTS %s naming the member",
				conflict, err, node.ReasonPeerAddressInUse)
		}
	}
	cli := etcdClient(t, c.cfgs[follower].Listen.Client)
	for _, u := range []string{"http://" + peer, "http://" + c.cfgs[leader].Listen.Peer} {
		if _, err := cli.MemberAddAsLearner(ctx, []string{u}); !errors.Is(err, rpctypes.ErrPeerURLExist) {
			t.Fatalf("etcd member add at a member's peer URL %s: %v; want etcd's %v", u, err, rpctypes.ErrPeerURLExist)
		}
	}
	resp := c.waitMembership(leader, "the membership", 5*time.Second, func(*georaftv1.ListMembersResponse) bool { return true })
	var learners []uint64
	for _, ms := range resp.GetMembers() {
		if ms.GetMember().GetRole() == georaftv1.MemberRole_MEMBER_ROLE_LEARNER {
			learners = append(learners, ms.GetMember().GetId())
		}
	}
	if !slices.Equal(learners, []uint64{id}) {
		t.Fatalf("learners %v after the repeated adds; want only %d", learners, id)
	}
}

// A removed follower stops and never starts again under its id, whether it was running when
// it was removed (it often never learns from its log that the removal committed: the leader
// stops sending to it once it applies the change) or down (nothing of the log can reach it:
// it learns when it starts again, by asking the members, who say removed only once they
// applied it).
func TestRemovedFollowerStops(t *testing.T) {
	for _, down := range []bool{false, true} {
		name := "running"
		if down {
			name = "down while removed"
		}
		t.Run(name, func(t *testing.T) {
			c := newTestCluster(t, 3, nil)
			leader := c.waitLeader(10 * time.Second)
			c.waitMembership(leader, "every member published its addresses", 10*time.Second, func(r *georaftv1.ListMembersResponse) bool {
				return len(r.GetPublished()) == 3
			})
			f := (leader + 1) % 3
			c.mustSet("k", "v")
			if down {
				c.kill(f)
			}
			c.removeMember(leader, uint64(f+1))
			if down {
				c.start(f)
			}
			deadline := time.Now().Add(30 * time.Second)
			for c.servers[f].Node().Failed() == nil {
				if time.Now().After(deadline) {
					t.Fatalf("removed node %d still runs", f+1)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := c.servers[f].Node().Failed(); !strings.Contains(err.Error(), "removed from the cluster") {
				t.Fatalf("the removed follower stopped with %v", err)
			}
			c.servers[f].Kill()
			c.servers[f] = nil
			if _, err := node.Start(c.cfgs[f], testLogger()); err == nil || !strings.Contains(err.Error(), "was removed") {
				t.Fatalf("the removed follower restarted under its id: %v", err)
			}
			c.mustSet("after", "v") // the two left go on
		})
	}
}
