package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/readmode"
)

// With every member holding a read lease, the client sends lease reads to the node it
// measured nearest (not to the leader), writes to the leader; without holders, lease reads go
// to the leader.
func TestIntegrationLeaseReadsGoToTheNearestHolder(t *testing.T) {
	for _, holders := range []string{config.HoldersAll, config.HoldersNone} {
		t.Run("holders "+holders, func(t *testing.T) {
			cl := kittest.Start(t, clusterkit.Spec{Configure: func(c *config.Config) {
				c.ReadLeases.Holders = []string{holders}
			}})
			c := newClient(t, client.Options{Endpoints: cl.ClientAddrs(), RequestTimeout: 10 * time.Second})
			ctx := context.Background()
			w, err := c.Set(ctx, "k", []byte("v"))
			if err != nil {
				t.Fatal(err)
			}
			leader := w.NodeID
			deadline := time.Now().Add(20 * time.Second)
			for {
				r, err := c.Get(ctx, "k", readmode.Lease)
				if err != nil {
					t.Fatal(err)
				}
				rtts := c.RTTs()
				nearest, best := "", time.Duration(0)
				for addr, d := range rtts {
					if best == 0 || d < best {
						nearest, best = addr, d
					}
				}
				want := leader
				if holders == config.HoldersAll {
					for i, addr := range cl.ClientAddrs() {
						if addr == nearest {
							want = cl.IDs()[i]
						}
					}
				}
				if r.NodeID == want && r.Served == readmode.Lease && string(r.Value) == "v" {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("lease read answered by node %d (%s); want node %d (measured RTTs %v, leader %d)", r.NodeID, r.Served, want, rtts, leader)
				}
				time.Sleep(50 * time.Millisecond) // a holder's first read lease is on its way
			}
		})
	}
}

// Over emulated links with different round trips, a lease read goes to the holder nearest the
// client, even when it is not in the client's region and the leader is farther.
func TestIntegrationLeaseReadsGoToTheNearerOfHolderAndLeader(t *testing.T) {
	regions := []string{"r1", "r2", "r3"}
	ms := time.Millisecond
	matrix, err := geo.New(regions, [][]time.Duration{{0, 20 * ms, 60 * ms}, {20 * ms, 0, 30 * ms}, {60 * ms, 30 * ms, 0}}, geo.DefaultTolerance)
	if err != nil {
		t.Fatal(err)
	}
	model := clusterkit.LinkModel{Matrix: matrix, Scale: 1, IntraRegionRTT: ms}
	cl := kittest.Launch(t, clusterkit.Spec{Regions: regions, Proxied: true, ClientRegions: []string{"r3"},
		Configure: func(c *config.Config) {
			c.ReadLeases.Holders = []string{"r2"}
			c.Placement.PreferredRegions = []string{"r1"}
			c.Placement.HealthyFor = 0
		}}, clusterkit.Options{Model: model})
	ctx := context.Background()
	if _, err := cl.PinLeader(ctx, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	copts, err := cl.ClientOptions("r3")
	if err != nil {
		t.Fatal(err)
	}
	// A client in r3 whose own node holds no read lease: the holder in r2 (30ms) is nearer
	// than the leader in r1 (60ms).
	copts.RequestTimeout = 10 * time.Second
	c := newClient(t, copts)
	if _, err := c.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.Get(ctx, "k", readmode.Lease)
		if err != nil {
			t.Fatal(err)
		}
		if r.NodeID == 2 && r.Served == readmode.Lease {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease read from r3 answered by node %d; want the r2 holder, node 2 (measured RTTs %v)", r.NodeID, c.RTTs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
