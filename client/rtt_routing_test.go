package client

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
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

// probeClock is a test clock: a connection accepted by the fake node moves it by setUp, a
// Status call by rtt. What a probe measures is then exact, whatever the machine's load.
type probeClock struct{ nanos atomic.Int64 }

func (c *probeClock) now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *probeClock) advance(d time.Duration) { c.nanos.Add(int64(d)) }
func (c *probeClock) listener(l net.Listener, setUp time.Duration) net.Listener {
	return &setUpListener{Listener: l, clock: c, setUp: setUp}
}

type setUpListener struct {
	net.Listener
	clock *probeClock
	setUp time.Duration
}

func (l *setUpListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.clock.advance(l.setUp)
	}
	return conn, err
}

// statusNode answers Status as a read-lease holder whose answer takes rtt on the test clock.
type statusNode struct {
	georaftv1.UnimplementedKVServiceServer
	clock *probeClock
	rtt   time.Duration
}

func (s *statusNode) Status(context.Context, *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error) {
	s.clock.advance(s.rtt)
	return &georaftv1.StatusResponse{Id: 3, Region: "us-west1", Role: georaftv1.Role_ROLE_FOLLOWER, ReadLeaseHolders: []uint64{3}}, nil
}

// The round trip a probe records is the call's alone, not the set-up of a new connection:
// a far holder's first probe must not look farther than an already connected leader (the
// asia-east1 client of make bench sent its lease reads to the leader for that reason).
func TestProbeOfANewConnectionTimesTheCallAlone(t *testing.T) {
	clock := &probeClock{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	georaftv1.RegisterKVServiceServer(srv, &statusNode{clock: clock, rtt: 118 * time.Millisecond})
	go srv.Serve(clock.listener(l, 10*time.Second))
	defer srv.Stop()

	c, err := New(Options{Endpoints: []string{l.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.now = clock.now
	c.measureRTTs(context.Background())
	if got := c.RTTs()[l.Addr().String()]; got != 118*time.Millisecond {
		t.Fatalf("the first probe of a new connection measured %v; want the call's 118ms (connection set-up: 10s)", got)
	}
	c.mu.Lock()
	holder := c.endpoints[0].holder
	c.mu.Unlock()
	if !holder {
		t.Fatal("the probe did not record that the node holds a read lease")
	}
}
