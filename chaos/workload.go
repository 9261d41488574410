package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/client/etcdv3"
	"github.com/georaft/georaft/history"
	"github.com/georaft/georaft/readmode"
)

// WorkloadOptions shape the clients.
type WorkloadOptions struct {
	// Clients is the number of concurrent clients, each with its own client identity.
	Clients int
	// Keys is the size of the key space; each write gets a value no other write uses.
	Keys int
	// ThinkTime is the pause between one client's operations (uniform in [0, 2×ThinkTime]),
	// so the clients load the cluster without starving it on a small machine.
	ThinkTime time.Duration
	// RequestTimeout bounds one operation, retries included.
	RequestTimeout time.Duration
	// Seed picks operations and keys.
	Seed int64
}

func (o WorkloadOptions) withDefaults() WorkloadOptions {
	if o.Clients <= 0 {
		o.Clients = 6
	}
	if o.Keys <= 0 {
		o.Keys = 40
	}
	if o.ThinkTime < 0 {
		o.ThinkTime = 0
	} else if o.ThinkTime == 0 {
		o.ThinkTime = 10 * time.Millisecond
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 3 * time.Second
	}
	return o
}

// Clock is the harness's monotonic clock: nanoseconds since the run started. Histories,
// fault times and windows all use it.
type Clock struct{ start time.Time }

// NewClock starts a clock at zero now.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now is the time on the clock.
func (c *Clock) Now() int64 { return int64(time.Since(c.start)) }

// Served is one successful operation, as the failover measurement needs it: when it
// returned, which node served it and in which mode.
type Served struct {
	Kind   history.Kind
	Mode   readmode.Mode // for reads: the mode that served it
	Asked  readmode.Mode // for reads: the mode asked for
	Node   uint64
	Term   uint64
	Call   int64
	Return int64
}

// Workload runs the clients and records every operation.
type Workload struct {
	opts    WorkloadOptions
	cluster *Cluster
	clock   *Clock
	rec     *history.Recorder
	keys    []string

	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	served []Served
	counts map[string]int // "set ok", "get lease->index", ...
	// retargeted holds, per client, the etcd endpoints to move to at its next operation
	// (Retarget): the georaft client learns new members itself, an etcd connection does not.
	retargeted map[int][]string

	lastWriteAck atomic.Int64
}

// StartWorkload starts opts.Clients clients against the cluster's client links.
func StartWorkload(cluster *Cluster, clock *Clock, rec *history.Recorder, opts WorkloadOptions) (*Workload, error) {
	opts = opts.withDefaults()
	w := &Workload{opts: opts, cluster: cluster, clock: clock, rec: rec, stop: make(chan struct{}), counts: map[string]int{}}
	for i := range opts.Keys {
		w.keys = append(w.keys, groupKey(i))
	}
	w.lastWriteAck.Store(-1)
	ids := cluster.IDs()
	var clients []*client.Client
	var conns []*etcdv3.Conn
	for i := range opts.Clients {
		home := ids[i%len(ids)]
		endpoints, nodeIDs := cluster.ClientEndpoints(home)
		// The client's home node takes its lease and stale reads (ReadEndpoint), so that
		// they spread over the nodes: stale reads everywhere, lease reads at every
		// read-lease holder (the others send them to the leader).
		cl, err := client.New(client.Options{
			Endpoints: endpoints, NodeIDs: nodeIDs, ReadEndpoint: endpoints[0],
			RequestTimeout: opts.RequestTimeout,
			AttemptTimeout: opts.RequestTimeout / 3,
			// Retry often enough that the first write after a heal shows when the cluster
			// could serve again, not how long a client happened to back off.
			BackoffMax: min(100*time.Millisecond, cluster.Timing.ElectionTimeoutMin/5),
			ClientID:   uint64(1000 + i),
		})
		if err != nil {
			for _, c := range clients {
				c.Close()
			}
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		clients = append(clients, cl)
		conn, err := etcdv3.Dial(endpoints, nil)
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		conns = append(conns, conn)
	}
	for i, cl := range clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cl.Close()
			w.runClient(i, cl, conns[i], rand.New(rand.NewPCG(uint64(opts.Seed), uint64(i))))
		}()
	}
	return w, nil
}

// Retarget moves every client's etcd connection to the members as they are now, each
// starting at the node its position in the member list gives it (as at the start). The
// harness calls it after a membership change, from the goroutine that changed the cluster.
func (w *Workload) Retarget() {
	ids := w.cluster.IDs()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.retargeted = map[int][]string{}
	for i := range w.opts.Clients {
		w.retargeted[i], _ = w.cluster.ClientEndpoints(ids[i%len(ids)])
	}
}

func (w *Workload) takeRetarget(client int) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	eps := w.retargeted[client]
	delete(w.retargeted, client)
	return eps
}

// Stop asks every client to finish its operation in flight and waits for them.
func (w *Workload) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// Keys is the key space.
func (w *Workload) Keys() []string { return append([]string(nil), w.keys...) }

// Counts is how many operations ended how, by "kind outcome" (e.g. "get lease->index ok").
func (w *Workload) Counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.counts))
	for k, v := range w.counts {
		out[k] = v
	}
	return out
}

// Served returns every successful operation so far.
func (w *Workload) Served() []Served {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Served(nil), w.served...)
}

// LastWriteAck is when the latest acknowledged write returned, or -1.
func (w *Workload) LastWriteAck() int64 { return w.lastWriteAck.Load() }

// WaitWriteAfter waits until some write is acknowledged after t, and returns when.
func (w *Workload) WaitWriteAfter(ctx context.Context, t int64, timeout time.Duration) (ack int64, ok bool) {
	ok = poll(ctx, timeout, 5*time.Millisecond, func() bool { ack = w.lastWriteAck.Load(); return ack > t })
	return ack, ok
}

// WaitServedAfter waits until an operation matching ok returned after t.
func (w *Workload) WaitServedAfter(ctx context.Context, t int64, timeout time.Duration, ok func(Served) bool) bool {
	seen := 0
	return poll(ctx, timeout, 5*time.Millisecond, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		found := slices.ContainsFunc(w.served[seen:], func(s Served) bool { return s.Return > t && ok(s) })
		seen = len(w.served)
		return found
	})
}

// poll calls done every interval until it reports true (poll then does too), ctx ends or
// timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, done func() bool) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(interval) {
		if done() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
	}
}

func (w *Workload) count(key string) {
	w.mu.Lock()
	w.counts[key]++
	w.mu.Unlock()
}

func (w *Workload) note(s Served) {
	w.mu.Lock()
	w.served = append(w.served, s)
	w.mu.Unlock()
	if s.isWrite() {
		for {
			cur := w.lastWriteAck.Load()
			if s.Return <= cur || w.lastWriteAck.CompareAndSwap(cur, s.Return) {
				break
			}
		}
	}
}

// operation mix: writes are a third, reads spread over the four modes with lease reads the
// most common, since the lease is what the harness is after; through the etcd API, range
// reads of a key group and compare-and-swap transactions.
func pickOp(rng *rand.Rand) (history.Kind, readmode.Mode) {
	switch r := rng.IntN(100); {
	case r < 24:
		return history.Set, 0
	case r < 29:
		return history.Delete, 0
	case r < 36:
		return history.CAS, 0
	case r < 59:
		return history.Get, readmode.Lease
	case r < 68:
		return history.Get, readmode.Index
	case r < 76:
		return history.Get, readmode.Log
	case r < 85:
		return history.Get, readmode.Stale
	case r < 93:
		return history.Range, readmode.Lease
	default:
		return history.Range, readmode.Index
	}
}

func (w *Workload) runClient(id int, cl *client.Client, conn *etcdv3.Conn, rng *rand.Rand) {
	defer func() { conn.Close() }()
	clientID := id + 1
	seq := 0
	last := map[string]seen{}
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		if eps := w.takeRetarget(id); eps != nil {
			if next, err := etcdv3.Dial(eps, nil); err == nil {
				conn.Close()
				conn = next
			}
		}
		kind, mode := pickOp(rng)
		key := w.keys[rng.IntN(len(w.keys))]
		// Operations are not cancelled by Stop: each finishes (or times out) so that its
		// outcome is known as well as it can be.
		ctx, cancel := context.WithTimeout(context.Background(), w.opts.RequestTimeout)
		switch kind {
		case history.Set:
			seq++
			value := fmt.Sprintf("c%d-%d", clientID, seq)
			call := w.rec.Begin(history.Op{ClientID: clientID, Kind: history.Set, Key: key, Value: value})
			res, err := cl.Set(ctx, key, []byte(value))
			w.finishWrite(call, history.Set, res, err)
			if err == nil {
				last[key] = seen{true, value}
			}
		case history.Delete:
			call := w.rec.Begin(history.Op{ClientID: clientID, Kind: history.Delete, Key: key})
			res, err := cl.Delete(ctx, key)
			w.finishWrite(call, history.Delete, res, err)
		case history.Get:
			call := w.rec.Begin(history.Op{ClientID: clientID, Kind: history.Get, Key: key, Mode: mode})
			start := w.clock.Now()
			res, err := cl.Get(ctx, key, mode)
			if err != nil {
				// A failed read constrains nothing either way.
				call.Unknown(err)
				w.count("get " + mode.String() + " error")
				break
			}
			served := res.Served
			call.Read(res.Found, string(res.Value), served)
			last[key] = seen{res.Found, string(res.Value)}
			call.Annotate(fmt.Sprintf("n%d t%d", res.NodeID, res.Term))
			label := "get " + mode.String()
			if served != mode {
				label += "->" + served.String()
			}
			w.count(label + " ok")
			w.note(Served{Kind: history.Get, Mode: served, Asked: mode, Node: res.NodeID, Term: res.Term, Call: start, Return: w.clock.Now()})
		case history.Range:
			w.rangeGroup(ctx, clientID, conn, history.Group(key), mode, last)
		case history.CAS:
			seq++
			expect := last[key]
			if rng.IntN(4) == 0 {
				expect = seen{} // sometimes from absent, which mostly fails
			}
			w.cas(ctx, clientID, conn, key, fmt.Sprintf("c%d-%d", clientID, seq), expect)
		}
		cancel()
		if w.opts.ThinkTime > 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Duration(rng.Int64N(int64(2*w.opts.ThinkTime) + 1))):
			}
		}
	}
}

// finishWrite records a write's outcome. Only a request the node refused as malformed is
// known not to have been applied; any other failure (deadline, connection cut, leader lost
// mid-flight) may have been applied, now or later, and is recorded as unknown.
func (w *Workload) finishWrite(call *history.Call, op history.Kind, res client.WriteResult, err error) {
	kind := op.String()
	if err != nil {
		if errors.Is(err, client.ErrInvalidArgument) {
			call.Fail(err)
			w.count(kind + " failed")
			return
		}
		call.Unknown(err)
		w.count(kind + " unknown")
		return
	}
	call.Wrote()
	call.Annotate(fmt.Sprintf("n%d t%d i%d", res.NodeID, res.Term, res.Index))
	w.count(kind + " ok")
	now := w.clock.Now()
	w.note(Served{Kind: op, Node: res.NodeID, Term: res.Term, Return: now})
}
