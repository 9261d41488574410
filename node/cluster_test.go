package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// testCluster runs georaft nodes in this process, on real gRPC over 127.0.0.1.
type testCluster struct {
	t       testing.TB
	cfgs    []*config.Config
	servers []*node.Server // nil while a node is down
	conns   []*grpc.ClientConn
	clients []georaftv1.KVServiceClient
}

// clusterConfigs builds n node configs on free ports with local-area timing.
func clusterConfigs(t testing.TB, n int, tune func(*config.Config)) []*config.Config {
	t.Helper()
	addrs, err := clusterkit.FreeAddrs(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	peers := make([]config.Peer, n)
	for i := range peers {
		peers[i] = config.Peer{
			ID:            uint64(i + 1),
			Region:        fmt.Sprintf("region-%d", i+1),
			PeerAddress:   addrs[2*i],
			ClientAddress: addrs[2*i+1],
		}
	}
	cfgs := make([]*config.Config, n)
	for i := range cfgs {
		c := config.Defaults()
		c.ClusterID = "test-cluster"
		c.Node = config.NodeConfig{ID: peers[i].ID, Region: peers[i].Region, DataDir: filepath.Join(base, fmt.Sprintf("node%d", i+1))}
		c.Listen = config.ListenConfig{Peer: peers[i].PeerAddress, Client: peers[i].ClientAddress}
		c.Peers = append([]config.Peer(nil), peers...)
		c.Log.Level = "warn"
		if tune != nil {
			tune(&c)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("test config for node %d is invalid: %v", i+1, err)
		}
		cfgs[i] = &c
	}
	return cfgs
}

func newTestCluster(t testing.TB, n int, tune func(*config.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, cfgs: clusterConfigs(t, n, tune)}
	c.servers = make([]*node.Server, n)
	c.conns = make([]*grpc.ClientConn, n)
	c.clients = make([]georaftv1.KVServiceClient, n)
	for i := range c.cfgs {
		c.start(i)
		conn, err := grpc.NewClient(c.cfgs[i].Listen.Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c.conns[i] = conn
		c.clients[i] = georaftv1.NewKVServiceClient(conn)
	}
	t.Cleanup(c.close)
	return c
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	srv, err := node.Start(c.cfgs[i], testLogger())
	if err != nil {
		c.t.Fatalf("start node %d: %v", i+1, err)
	}
	c.servers[i] = srv
}

// kill stops node i at once, without handing over leadership.
func (c *testCluster) kill(i int) {
	c.t.Helper()
	if c.servers[i] == nil {
		return
	}
	if err := c.servers[i].Kill(); err != nil {
		c.t.Errorf("kill node %d: %v", i+1, err)
	}
	c.servers[i] = nil
}

func (c *testCluster) close() {
	for i := range c.servers {
		c.kill(i)
	}
	for _, conn := range c.conns {
		if conn != nil {
			conn.Close()
		}
	}
}

// waitLeader waits until every running node agrees on one leader, and returns its index.
func (c *testCluster) waitLeader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		leader, agreed := uint64(0), true
		for i, cl := range c.clients {
			if c.servers[i] == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cl.Status(ctx, &georaftv1.StatusRequest{})
			cancel()
			if err != nil {
				agreed, last = false, err.Error()
				break
			}
			if st.LeaderId == 0 || (leader != 0 && st.LeaderId != leader) {
				agreed, last = false, fmt.Sprintf("node %d sees leader %d", st.Id, st.LeaderId)
				break
			}
			leader = st.LeaderId
		}
		if agreed && leader != 0 && c.servers[leader-1] != nil {
			return int(leader - 1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader within %v (last: %s)", timeout, last)
	return -1
}

// waitLease waits until the leader holds its lease, so lease reads are served as such.
func (c *testCluster) waitLease(leader int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := c.clients[leader].Status(context.Background(), &georaftv1.StatusRequest{})
		if err == nil && st.LeaseState == georaftv1.LeaseState_LEASE_STATE_HELD {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("node %d did not acquire its lease within %v", leader+1, timeout)
}

func (c *testCluster) set(i int, key, value string) (*georaftv1.SetResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.clients[i].Set(ctx, &georaftv1.SetRequest{Key: []byte(key), Value: []byte(value)})
}

func (c *testCluster) get(i int, key string, mode georaftv1.ReadMode) (*georaftv1.GetResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.clients[i].Get(ctx, &georaftv1.GetRequest{Key: []byte(key), ReadMode: mode})
}

// mustSetAnywhere writes through whichever node leads, following redirects.
func (c *testCluster) mustSet(key, value string) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		leader := c.waitLeader(10 * time.Second)
		if _, err := c.set(leader, key, value); err == nil {
			return
		} else if code := status.Code(err); code != codes.Unavailable && code != codes.FailedPrecondition {
			c.t.Fatalf("set %s: %v", key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("set %s did not succeed within the deadline", key)
}

// waitApplied waits until node i has applied at least index.
func (c *testCluster) waitApplied(i int, index uint64, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var applied uint64
	for time.Now().Before(deadline) {
		st, err := c.clients[i].Status(context.Background(), &georaftv1.StatusRequest{})
		if err == nil {
			applied = st.AppliedIndex
			if applied >= index {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("node %d applied %d, want at least %d within %v", i+1, applied, index, timeout)
}
