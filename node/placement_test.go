package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Leader placement: the leader moves to the most preferred region with a healthy, caught-up
// voter; when that node fails, leadership goes elsewhere (to the next preferred region once
// its node has been healthy for placement.healthy_for), and when it comes back, leadership
// returns to it no sooner than healthy_for after it answers again, and within a bound:
// healthy_for + an election timeout + a few placement rounds.
func TestLeaderPlacementFollowsPreferredRegions(t *testing.T) {
	const healthyFor = time.Second
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Placement.PreferredRegions = []string{"region-2", "region-3"}
		cfg.Placement.HealthyFor = healthyFor
	})
	waitLeaderIs := func(want int, timeout time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if c.servers[want] != nil {
				if st, err := c.status(want); err == nil && st.Role == georaftv1.Role_ROLE_LEADER {
					return time.Now()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("node %d did not become leader within %v", want+1, timeout)
		return time.Time{}
	}
	// Generous: the bound is about liveness on a loaded machine; the log line says how long it took.
	bound := healthyFor + 2*c.cfgs[0].Timing.ElectionTimeoutMax + 25*time.Second
	c.waitLeader(20 * time.Second)
	waitLeaderIs(1, bound) // region-2, wherever the first election put the leader
	c.mustSet("k", "v")

	c.kill(1)
	waitLeaderIs(2, bound) // region-3: the next preferred

	c.start(1)
	restarted := time.Now()
	back := waitLeaderIs(1, bound)
	if back.Sub(restarted) < healthyFor {
		t.Fatalf("leadership came back %v after node 2 restarted, before it had been healthy for %v", back.Sub(restarted), healthyFor)
	}
	t.Logf("leadership back in the preferred region %v after its node restarted (bound %v)", back.Sub(restarted).Round(time.Millisecond), bound)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := c.clients[1].Get(ctx, &georaftv1.GetRequest{Key: []byte("k")}); err != nil || string(got.Value) != "v" {
		t.Fatalf("read after the moves: %v, %v", got, err)
	}
}

// A leader asked to stop hands leadership to the best caught-up voter (its preferred region
// first) before it exits: writes are unavailable for about one transfer, not an election
// timeout as when the leader dies. Both are measured side by side.
func TestStoppingLeaderHandsOffQuickly(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *config.Config) {
		cfg.Placement.PreferredRegions = []string{"region-1", "region-3"}
	})
	// unavailable is how long after stopping node i (a leader) a write first succeeds at
	// another node.
	unavailable := func(i int, stop func()) time.Duration {
		t.Helper()
		start := time.Now()
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		defer func() { <-stopped }()
		for time.Since(start) < 30*time.Second {
			for j := range c.servers {
				if j == i || c.servers[j] == nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				_, err := c.clients[j].Set(ctx, &georaftv1.SetRequest{Key: []byte("k"), Value: []byte("v")})
				cancel()
				if err == nil {
					return time.Since(start)
				}
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("no write succeeded within 30s of stopping node %d", i+1)
		return 0
	}
	c.waitLeader(20 * time.Second)
	c.makeLeader(0, 20*time.Second)
	c.mustSet("k", "v0")
	srv := c.servers[0]
	c.servers[0] = nil
	graceful := unavailable(0, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	if st, err := c.status(2); err != nil || st.LeaderId != 3 {
		t.Fatalf("after the hand-off the leader is %v (%v); want node 3, the preferred region among the rest", st.GetLeaderId(), err)
	}
	c.start(0)
	c.makeLeader(0, 20*time.Second)
	c.mustSet("k", "v1")
	srv = c.servers[0]
	c.servers[0] = nil
	killed := unavailable(0, func() { _ = srv.Kill() })
	t.Logf("writes unavailable after stopping the leader: %v with the hand-off, %v when it dies (election timeout %v-%v)",
		graceful.Round(time.Millisecond), killed.Round(time.Millisecond), c.cfgs[0].Timing.ElectionTimeoutMin, c.cfgs[0].Timing.ElectionTimeoutMax)
	if graceful >= killed {
		t.Fatalf("a graceful stop left writes unavailable for %v, no less than a crash (%v)", graceful, killed)
	}
}
