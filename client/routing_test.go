package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
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
