package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/clusterkit/kittest"
	"github.com/georaft/georaft/readmode"
)

func TestMain(m *testing.M) { kittest.Main(m) }

// These tests run real georaftd processes, built from this checkout.

func newClient(t *testing.T, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestIntegrationReadsAndWritesInEveryMode(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	c := newClient(t, client.Options{Endpoints: cl.ClientAddrs(), RequestTimeout: 10 * time.Second})
	ctx := context.Background()

	w, err := c.Set(ctx, "greeting", []byte("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Index == 0 || w.Session.ClientID != c.ClientID() || w.Session.Sequence != 1 {
		t.Fatalf("set result %+v: want a log index and the client's first session sequence", w)
	}
	for _, mode := range readmode.All {
		r, err := c.Get(ctx, "greeting", mode)
		if err != nil {
			t.Fatalf("get in %s mode: %v", mode, err)
		}
		if mode == readmode.Stale && !r.Found {
			// A stale read may come from a follower that has not applied the write yet.
			continue
		}
		if !r.Found || string(r.Value) != "hello world" {
			t.Fatalf("get in %s mode = %+v", mode, r)
		}
		if r.Requested != mode || (mode != readmode.Lease && r.Served != mode) {
			t.Fatalf("get in %s mode: requested %s, served %s", mode, r.Requested, r.Served)
		}
		if mode == readmode.Lease && r.Served != readmode.Lease && r.Served != readmode.Index {
			t.Fatalf("lease read served as %s", r.Served)
		}
	}
	missing, err := c.Get(ctx, "no such key", readmode.Lease)
	if err != nil || missing.Found {
		t.Fatalf("get of a missing key = %+v, %v: want found=false and no error", missing, err)
	}
	d, err := c.Delete(ctx, "greeting")
	if err != nil || !d.Existed {
		t.Fatalf("delete = %+v, %v: want existed", d, err)
	}
	d, err = c.Delete(ctx, "greeting")
	if err != nil || d.Existed {
		t.Fatalf("second delete = %+v, %v: want success with existed=false", d, err)
	}
	if _, err := c.Set(ctx, "", []byte("x")); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("set with an empty key: err = %v, want invalid argument", err)
	}
}

// After a leadership transfer, a client whose first try lands on the old leader is
// redirected to the new one in one hop. Through proxies, the redirect maps the leader id
// to the proxy of that node, not to the address the node advertises.
func TestIntegrationRedirectAfterLeaderChange(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	old := kittest.WaitLeader(t, cl)
	target := old%3 + 1
	adminOpts, err := cl.ClientOptions("")
	if err != nil {
		t.Fatal(err)
	}
	adminOpts.RequestTimeout = 15 * time.Second
	admin := newClient(t, adminOpts)
	ctx := context.Background()
	if _, err := admin.Set(ctx, "k", []byte("before")); err != nil {
		t.Fatal(err)
	}
	res, err := admin.TransferLeader(ctx, target)
	if err != nil {
		t.Fatalf("transfer leadership %d → %d: %v", old, target, err)
	}
	if res.LeaderID != 0 && res.LeaderID != target {
		t.Fatalf("transfer answered leader %d, want %d", res.LeaderID, target)
	}
	if got := kittest.WaitLeader(t, cl); got != target {
		t.Fatalf("leader after transfer = %d, want %d", got, target)
	}

	// Direct endpoints, the old leader first: one redirect.
	direct := []string{cl.Node(old).ClientAddr()}
	for _, n := range cl.Nodes {
		if n.ID != old {
			direct = append(direct, n.ClientAddr())
		}
	}
	c := newClient(t, client.Options{Endpoints: direct, RequestTimeout: 15 * time.Second})
	w, err := c.Set(ctx, "k", []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if w.NodeID != target || w.Attempts != 2 {
		t.Fatalf("write after the transfer answered by node %d in %d attempts; want node %d after one redirect", w.NodeID, w.Attempts, target)
	}
	if id, _ := c.Leader(); id != target {
		t.Fatalf("cached leader %d, want %d", id, target)
	}

	// Through proxies, ids unknown in advance: the client learns which proxy reaches which
	// node and keeps its traffic on the proxies.
	proxies := map[uint64]*clusterkit.Proxy{}
	var proxied []string
	for _, id := range []uint64{old, target, 6 - old - target} {
		p := kittest.Proxy(t, cl.Node(id).ClientAddr())
		proxies[id] = p
		proxied = append(proxied, p.Listen)
	}
	pc := newClient(t, client.Options{Endpoints: proxied, RequestTimeout: 15 * time.Second})
	g, err := pc.Get(ctx, "k", readmode.Lease)
	if err != nil {
		t.Fatal(err)
	}
	if string(g.Value) != "after" || g.NodeID != target {
		t.Fatalf("read through proxies = %+v", g)
	}
	if g.Endpoint != proxies[target].Listen {
		t.Fatalf("redirect went to %s, want the proxy of node %d (%s), not its advertised address", g.Endpoint, target, proxies[target].Listen)
	}
}

// A write whose response is lost is retried with the same write session and applied once:
// a write made by someone else in between is not overwritten by the retry.
func TestIntegrationRetriedWriteAppliesOnce(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	leader := kittest.WaitLeader(t, cl)
	proxy := kittest.Proxy(t, cl.Node(leader).ClientAddr())
	ctx := context.Background()

	c := newClient(t, client.Options{Endpoints: []string{proxy.Listen}, NodeIDs: map[string]uint64{proxy.Listen: leader},
		RequestTimeout: 60 * time.Second, AttemptTimeout: time.Second})
	other := newClient(t, client.Options{Endpoints: cl.ClientAddrs(), RequestTimeout: 15 * time.Second})
	// Bring the proxied connection up before responses start to vanish.
	if _, err := c.Get(ctx, "k", readmode.Lease); err != nil {
		t.Fatal(err)
	}

	if err := proxy.DropResponses(); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res client.WriteResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := c.Set(ctx, "k", []byte("first"))
		done <- outcome{res, err}
	}()
	// The write reaches the leader and is applied; its answer never comes back.
	kittest.WaitFor(t, 20*time.Second, "the first write to be applied", func() error {
		r, err := other.Get(ctx, "k", readmode.Index)
		if err == nil && string(r.Value) != "first" {
			err = fmt.Errorf("k = %q", r.Value)
		}
		return err
	})
	second, err := other.Set(ctx, "k", []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	if err := proxy.Heal(); err != nil {
		t.Fatal(err)
	}

	var got outcome
	select {
	case got = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the retried write never returned")
	}
	if got.err != nil {
		t.Fatalf("retried write: %v", got.err)
	}
	if got.res.Attempts < 2 {
		t.Fatalf("write succeeded in %d attempt(s): the response was supposed to be lost", got.res.Attempts)
	}
	if got.res.Index >= second.Index {
		t.Fatalf("retried write reports index %d, after the other write's %d: it was applied again", got.res.Index, second.Index)
	}
	r, err := other.Get(ctx, "k", readmode.Index)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Value) != "second" {
		t.Fatalf("k = %q after the retry, want %q: the retried write was applied twice", r.Value, "second")
	}
}

// With one node of three up there is no leader: a call fails with "cluster unavailable"
// once its deadline has passed, not long before or after.
func TestIntegrationDeadlineWithoutLeader(t *testing.T) {
	cl := kittest.New(t, clusterkit.Spec{}, clusterkit.Options{})
	if err := cl.StartNode(1); err != nil {
		t.Fatal(err)
	}
	kittest.WaitFor(t, time.Minute, "node 1 to answer Status", func() error {
		_, err := cl.Status(context.Background(), 1, time.Second)
		return err
	})
	const timeout = 1500 * time.Millisecond
	c := newClient(t, client.Options{Endpoints: cl.ClientAddrs(), RequestTimeout: timeout})
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"set", func() error { _, err := c.Set(context.Background(), "k", []byte("v")); return err }},
		{"lease get", func() error { _, err := c.Get(context.Background(), "k", readmode.Lease); return err }},
	} {
		start := time.Now()
		err := op.call()
		elapsed := time.Since(start)
		var unavailable *client.UnavailableError
		if !errors.As(err, &unavailable) || !unavailable.Deadline || !errors.Is(err, client.ErrUnavailable) {
			t.Fatalf("%s: err = %v, want cluster unavailable at the deadline", op.name, err)
		}
		if ratio := float64(elapsed) / float64(timeout); ratio < 0.95 || ratio > 2 {
			t.Fatalf("%s: failed after %v, %.2f× the deadline", op.name, elapsed, ratio)
		}
		if !strings.Contains(err.Error(), "1 of 3 nodes reachable; a quorum needs 2") {
			t.Fatalf("%s: %v: want the cause, in an operator's words", op.name, err)
		}
	}
}

// Concurrent writers through one client each get their own write session, so none of
// their writes is dropped as a stale sequence.
func TestIntegrationConcurrentWritesAllApply(t *testing.T) {
	cl := kittest.Start(t, clusterkit.Spec{})
	c := newClient(t, client.Options{Endpoints: cl.ClientAddrs(), RequestTimeout: 15 * time.Second})
	ctx := context.Background()
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := c.Set(ctx, fmt.Sprintf("w%d/%d", w, i), []byte("v")); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write failed: %v", err)
	}
	for w := 0; w < writers; w++ {
		for i := 0; i < each; i++ {
			r, err := c.Get(ctx, fmt.Sprintf("w%d/%d", w, i), readmode.Index)
			if err != nil || !r.Found {
				t.Fatalf("key w%d/%d: %+v, %v: a concurrent write was lost", w, i, r, err)
			}
		}
	}
}

// Benchmarks of one client against a local 3-node cluster: the library's own cost on top
// of the node (go test -bench . -run XXX ./client/).
func benchmarkCluster(b *testing.B) *client.Client {
	cl := kittest.Start(b, clusterkit.Spec{})
	c, err := client.New(client.Options{Endpoints: cl.ClientAddrs(), RequestTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Set(context.Background(), "bench", []byte("value")); err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkGet(b *testing.B) {
	c := benchmarkCluster(b)
	for _, mode := range readmode.All {
		b.Run(mode.String(), func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(context.Background(), "bench", mode); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func BenchmarkSet(b *testing.B) {
	c := benchmarkCluster(b)
	value := []byte("value")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Set(context.Background(), "bench", value); err != nil {
				b.Fatal(err)
			}
		}
	})
}
