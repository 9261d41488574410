package client

import (
	"context"
	"testing"
	"time"
)

// The lease route picks the nearest endpoint among the leader and the read-lease holders;
// the stale route the nearest of all; an endpoint that redirected a lease read is skipped.
func TestNearestTargetByMeasuredRTT(t *testing.T) {
	c, err := New(Options{Endpoints: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eps := c.endpoints
	// 1: the leader, 155ms; 2: a holder, 118ms; 3: no holder, 1ms; 4: a holder, not measured.
	eps[0].rtt, eps[1].rtt, eps[1].holder, eps[2].rtt, eps[3].holder = 155*time.Millisecond, 118*time.Millisecond, true, time.Millisecond, true
	c.leader = eps[0]
	c.rttsMeasured = time.Now()
	ctx := context.Background()
	if ep, _ := c.nearestTarget(ctx, 0, true); ep != eps[1] {
		t.Errorf("lease read goes to %s; want the nearest holder %s", ep.addr, eps[1].addr)
	}
	if ep, _ := c.nearestTarget(ctx, 0, false); ep != eps[2] {
		t.Errorf("stale read goes to %s; want the nearest node %s", ep.addr, eps[2].addr)
	}
	c.noLeaseAt(eps[1])
	if ep, _ := c.nearestTarget(ctx, 0, true); ep != eps[0] {
		t.Errorf("after the holder redirected, lease read goes to %s; want the leader", ep.addr)
	}
	if ep, _ := c.nearestTarget(ctx, 1, true); ep != eps[0] {
		t.Errorf("a retried lease read goes to %s; want the leader", ep.addr)
	}
}
