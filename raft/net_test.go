package raft

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// testConfig is a LAN-ish configuration with round numbers, so tests can reason in
// milliseconds.
func testConfig(id uint64, peers []uint64) Config {
	return Config{
		ID:                 id,
		Peers:              peers,
		HeartbeatInterval:  10 * time.Millisecond,
		ElectionTimeoutMin: 100 * time.Millisecond,
		ElectionTimeoutMax: 200 * time.Millisecond,
		LeaseDuration:      50 * time.Millisecond,
		MaxClockDrift:      0.01,
		Seed:               1,
	}
}

// testNode is a core run by the test driver, with its own clock and a record of what its
// Readies handed out.
type testNode struct {
	driverNode
	now time.Duration
	readyRecord
	// readies keeps every Ready, for tests of the Ready contract.
	readies []Ready
}

// wire is an in-memory network: the messages sent and not yet delivered, in send order,
// and the links that lose everything.
type wire struct {
	inflight []Message
	// cut[a][b] drops every message from a to b.
	cut map[[2]uint64]bool
}

// take removes and returns the in-flight messages match accepts.
func (w *wire) take(match func(Message) bool) []Message {
	var out, rest []Message
	for _, m := range w.inflight {
		if match(m) {
			out = append(out, m)
		} else {
			rest = append(rest, m)
		}
	}
	w.inflight = rest
	return out
}

// isolate cuts every link between id and the other nodes of ids, both ways.
func (w *wire) isolate(id uint64, ids []uint64) {
	for _, p := range ids {
		if p != id {
			w.cut[[2]uint64{id, p}] = true
			w.cut[[2]uint64{p, id}] = true
		}
	}
}

// testNet delivers messages between cores in memory, in order, on command. Every node has
// its own clock; by default they move together.
type testNet struct {
	t     *testing.T
	ids   []uint64
	nodes map[uint64]*testNode
	wire
	// filter, if set, may drop (false) a message about to be delivered.
	filter func(Message) bool
}

func newTestNet(t *testing.T, n int, tweak ...func(*Config)) *testNet {
	t.Helper()
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	net := &testNet{t: t, ids: ids, nodes: map[uint64]*testNode{}, wire: wire{cut: map[[2]uint64]bool{}}}
	for _, id := range ids {
		cfg := testConfig(id, ids)
		for _, f := range tweak {
			f(&cfg)
		}
		nd := &testNode{driverNode: newDriverNode(cfg, nil)}
		if err := nd.boot(cfg, 0); err != nil {
			t.Fatalf("New(%d): %v", id, err)
		}
		net.nodes[id] = nd
	}
	return net
}

func (n *testNet) node(id uint64) *testNode { return n.nodes[id] }
func (n *testNet) raft(id uint64) *Raft     { return n.nodes[id].r }

// restart rebuilds node id from what it persisted, at its current clock.
func (n *testNet) restart(id uint64) {
	n.t.Helper()
	nd := n.nodes[id]
	nd.crash()
	if err := nd.boot(nd.cfg, nd.now); err != nil {
		n.t.Fatalf("restart %d: %v", id, err)
	}
	nd.applied = nd.applied[:0]
	// Drop whatever was in flight to or from the crashed node.
	n.take(func(m Message) bool { return m.To == id || m.From == id })
}

// advance moves every clock forward by d and ticks every core.
func (n *testNet) advance(d time.Duration) {
	for _, id := range n.ids {
		nd := n.nodes[id]
		nd.now += d
		nd.r.Tick(nd.now)
	}
}

// advanceNode moves one node's clock.
func (n *testNet) advanceNode(id uint64, d time.Duration) {
	nd := n.nodes[id]
	nd.now += d
	nd.r.Tick(nd.now)
}

// process runs one Ready cycle on node id, if it has one; it reports whether it did.
func (n *testNet) process(id uint64) bool {
	if !n.nodes[id].r.HasReady() {
		return false
	}
	n.cycle(id)
	return true
}

// cycle runs one Ready cycle on node id through the driver and returns the Ready.
func (n *testNet) cycle(id uint64) Ready {
	n.t.Helper()
	nd := n.nodes[id]
	rd, err := nd.cycle(func(m Message) { n.inflight = append(n.inflight, m) })
	if err != nil {
		n.t.Fatal(err)
	}
	nd.readies = append(nd.readies, rd)
	nd.add(rd)
	return rd
}

// compact compacts node id's log and disk at its applied index.
func (n *testNet) compact(id uint64) SnapshotMeta {
	n.t.Helper()
	meta, err := n.nodes[id].compact()
	if err != nil {
		n.t.Fatalf("compact node %d at %+v: %v", id, meta, err)
	}
	return meta
}

// processAll runs Ready cycles on every node until none has work.
func (n *testNet) processAll() {
	for again := true; again; {
		again = false
		for _, id := range n.ids {
			if n.process(id) {
				again = true
			}
		}
	}
}

// deliver steps every in-flight message (the ones sent meanwhile wait for the next call).
func (n *testNet) deliver() int {
	msgs := n.inflight
	n.inflight = nil
	delivered := 0
	for _, m := range msgs {
		if n.cut[[2]uint64{m.From, m.To}] || (n.filter != nil && !n.filter(m)) {
			continue
		}
		nd := n.nodes[m.To]
		nd.r.Tick(nd.now)
		if err := nd.stepMessage(m, nil); err != nil {
			n.t.Fatalf("node %d Step(%v from %d): %v", m.To, m.Type, m.From, err)
		}
		delivered++
	}
	return delivered
}

// stabilize processes and delivers until nothing moves.
func (n *testNet) stabilize() {
	n.t.Helper()
	for i := 0; ; i++ {
		if i > 10000 {
			n.t.Fatalf("network did not stabilize")
		}
		n.processAll()
		if len(n.inflight) == 0 {
			return
		}
		n.deliver()
	}
}

// isolate cuts node id off from everyone, both ways.
func (n *testNet) isolate(id uint64) { n.wire.isolate(id, n.ids) }

func (n *testNet) heal() { clear(n.cut) }

// elect makes id the leader through a normal election and waits until its no-op commits.
func (n *testNet) elect(id uint64) {
	n.t.Helper()
	if err := n.raft(id).Campaign(); err != nil {
		n.t.Fatalf("campaign: %v", err)
	}
	n.stabilize()
	if st := n.raft(id).Status(); st.Role != Leader {
		n.t.Fatalf("node %d is %v after campaigning, want leader", id, st.Role)
	}
	for i := 0; !n.raft(id).committedInTerm; i++ {
		if i > 100 || n.raft(id).Status().Role != Leader {
			n.t.Fatalf("node %d did not commit its no-op: %+v", id, n.raft(id).Status())
		}
		n.advance(10 * time.Millisecond)
		n.stabilize()
	}
}

func (n *testNet) leaders() []uint64 {
	var out []uint64
	for _, id := range n.ids {
		if n.raft(id).Status().Role == Leader {
			out = append(out, id)
		}
	}
	return out
}

func (n *testNet) propose(id uint64, data string) (uint64, uint64) {
	n.t.Helper()
	idx, term, err := n.raft(id).Propose([]byte(data))
	if err != nil {
		n.t.Fatalf("propose on %d: %v", id, err)
	}
	return idx, term
}

// eventsOf returns node id's events of kind k so far.
func (n *testNet) eventsOf(id uint64, k EventKind) []Event {
	var out []Event
	for _, e := range n.nodes[id].events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

func (n *testNet) dumpEvents(id uint64) string {
	var b strings.Builder
	for _, e := range n.nodes[id].events {
		fmt.Fprintf(&b, "%v %s\n", e.At, e)
	}
	return b.String()
}

func countType(msgs []Message, t MessageType) int {
	c := 0
	for _, m := range msgs {
		if m.Type == t {
			c++
		}
	}
	return c
}
