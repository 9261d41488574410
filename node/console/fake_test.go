package console

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/geo"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// fakeCluster answers the console as a cluster of georaft nodes would, from statuses a test
// sets: the views, pages and actions are tested without processes or sockets.
type fakeCluster struct {
	mu        sync.Mutex
	st        map[uint64]*georaftv1.StatusResponse
	down      map[uint64]error
	events    map[uint64][]*georaftv1.NodeEvent
	hists     map[uint64][]*georaftv1.LatencyHistogram
	transfers []uint64
	calls     map[uint64]int
}

type fakeNode struct {
	c  *fakeCluster
	id uint64
}

func (f fakeNode) Status(ctx context.Context, req *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	f.c.calls[f.id]++
	if err := f.c.down[f.id]; err != nil {
		return nil, err
	}
	st := proto.Clone(f.c.st[f.id]).(*georaftv1.StatusResponse)
	if req.GetIncludeActivity() {
		for _, e := range f.c.events[f.id] {
			if e.GetSeq() > req.GetEventsAfter() {
				st.Events = append(st.Events, e)
			}
		}
		for _, h := range f.c.hists[f.id] {
			st.Latencies = append(st.Latencies, proto.Clone(h).(*georaftv1.LatencyHistogram))
		}
	}
	return st, nil
}

// TransferLeader moves the leadership at once, as a real leader does within a round trip.
func (f fakeNode) TransferLeader(ctx context.Context, req *georaftv1.TransferLeaderRequest) (*georaftv1.TransferLeaderResponse, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.c.st[f.id].GetRole() != georaftv1.Role_ROLE_LEADER {
		return nil, status.Error(codes.FailedPrecondition, "not the leader")
	}
	f.c.transfers = append(f.c.transfers, req.GetTargetId())
	f.c.setLeaderLocked(req.GetTargetId(), f.c.st[f.id].GetTerm()+1)
	return &georaftv1.TransferLeaderResponse{LeaderId: req.GetTargetId(), Term: f.c.st[f.id].GetTerm()}, nil
}

func (c *fakeCluster) remote(m Member) (Node, error) { return fakeNode{c, m.ID}, nil }

var fiveRegions = []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// newFakeCluster is five nodes in the five regions of configs/geo, measuring the RTTs of
// its matrix, with leader node leader in term 3.
func newFakeCluster(t *testing.T, leader uint64) (*fakeCluster, []Member) {
	t.Helper()
	m, err := geo.LoadCSV(filepath.Join(repoRoot(), "configs/geo/rtt-5-regions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCluster{st: map[uint64]*georaftv1.StatusResponse{}, down: map[uint64]error{},
		events: map[uint64][]*georaftv1.NodeEvent{}, hists: map[uint64][]*georaftv1.LatencyHistogram{}, calls: map[uint64]int{}}
	var members []Member
	for i, r := range fiveRegions {
		id := uint64(i + 1)
		members = append(members, Member{ID: id, Region: r, ClientAddress: fmt.Sprintf("127.0.0.1:%d", 2810+id)})
		st := &georaftv1.StatusResponse{Id: id, Region: r, ClusterId: "test", CommitIndex: 100, AppliedIndex: 100, LastIndex: 100,
			LeaseDurationNanos: int64(350 * time.Millisecond), MaxStalenessNanos: int64(2 * time.Second), Version: "test"}
		for j, pr := range fiveRegions {
			if j == i {
				continue
			}
			rtt, err := m.RTT(r, pr)
			if err != nil {
				t.Fatal(err)
			}
			st.Peers = append(st.Peers, &georaftv1.PeerStatus{Id: uint64(j + 1), Region: pr, RttNanos: int64(rtt)})
		}
		c.st[id] = st
	}
	c.setLeaderLocked(leader, 3)
	return c, members
}

// setLeaderLocked makes id lead in term, holding its lease; the others follow.
func (c *fakeCluster) setLeaderLocked(id, term uint64) {
	for nid, st := range c.st {
		st.Term, st.LeaderId = term, id
		st.Role, st.LeaseState, st.LeaseRemainingNanos = georaftv1.Role_ROLE_FOLLOWER, georaftv1.LeaseState_LEASE_STATE_NONE, 0
		st.LastContactAgeNanos = int64(20 * time.Millisecond)
		for _, p := range st.Peers {
			p.MatchIndex, p.NextIndex, p.LastAckAgeNanos, p.Lag = 0, 0, 0, 0
		}
		if nid == id {
			st.Role, st.LeaseState, st.LeaseRemainingNanos = georaftv1.Role_ROLE_LEADER, georaftv1.LeaseState_LEASE_STATE_HELD, int64(300*time.Millisecond)
			for _, p := range st.Peers {
				p.MatchIndex, p.NextIndex, p.LastAckAgeNanos = 100, 101, int64(30*time.Millisecond)
			}
		}
	}
}

func (c *fakeCluster) update(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
}

// newTestConsole is a console of node self over the fake cluster.
func newTestConsole(t *testing.T, c *fakeCluster, members []Member, self uint64) *Console {
	t.Helper()
	con, err := New(Config{Self: self, ClusterID: "test", Local: fakeNode{c, self}, Members: members,
		Remote: c.remote, ResultsDir: filepath.Join(repoRoot(), "results"), Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(con.Close)
	return con
}

// fresh polls until every member has answered (or failed) since now.
func fresh(t *testing.T, con *Console) *View {
	t.Helper()
	since := time.Now()
	con.g.watch()
	deadline := time.Now().Add(10 * time.Second)
	for {
		con.g.mu.Lock()
		done := true
		for _, m := range con.g.members {
			if m.stAt.Before(since) && m.errAt.Before(since) {
				done = false
			}
		}
		con.g.mu.Unlock()
		if done {
			return con.g.view()
		}
		if time.Now().After(deadline) {
			t.Fatal("the console's members did not all answer within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
