package raft

import (
	"fmt"
	"slices"
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

// testDisk is what a node persisted: only what a Ready told it to.
type testDisk struct {
	hs       HardState
	snapshot SnapshotMeta
	entries  []Entry
}

func (d *testDisk) save(rd Ready) {
	if rd.HardState != nil {
		d.hs = *rd.HardState
	}
	if rd.Snapshot != nil {
		d.snapshot = *rd.Snapshot
		d.entries = nil
	}
	for _, e := range rd.Entries {
		if e.Index <= d.snapshot.Index {
			continue
		}
		keep := e.Index - d.snapshot.Index - 1
		if keep < uint64(len(d.entries)) {
			d.entries = d.entries[:keep:keep]
		}
		d.entries = append(d.entries, e)
	}
}

// testNode is a core with the smallest driver that follows the Ready contract.
type testNode struct {
	r       *Raft
	cfg     Config
	now     time.Duration
	disk    testDisk
	applied []Entry
	reads   []ReadState
	dropped []DroppedRead
	events  []Event
	// readies keeps every Ready, for tests of the Ready contract.
	readies []Ready
}

// testNet delivers messages between cores in memory, in order, on command. Every node has
// its own clock; by default they move together.
type testNet struct {
	t     *testing.T
	ids   []uint64
	nodes map[uint64]*testNode
	// inflight holds sent and not yet delivered messages, in send order.
	inflight []Message
	// cut[a][b] drops every message from a to b.
	cut map[[2]uint64]bool
	// filter, if set, may drop (false) a message about to be delivered.
	filter func(Message) bool
}

func newTestNet(t *testing.T, n int, tweak ...func(*Config)) *testNet {
	t.Helper()
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	net := &testNet{t: t, ids: ids, nodes: map[uint64]*testNode{}, cut: map[[2]uint64]bool{}}
	for _, id := range ids {
		cfg := testConfig(id, ids)
		for _, f := range tweak {
			f(&cfg)
		}
		r, err := New(cfg, Restored{}, 0)
		if err != nil {
			t.Fatalf("New(%d): %v", id, err)
		}
		net.nodes[id] = &testNode{r: r, cfg: cfg}
	}
	return net
}

func (n *testNet) node(id uint64) *testNode { return n.nodes[id] }
func (n *testNet) raft(id uint64) *Raft     { return n.nodes[id].r }

// restart rebuilds node id from what it persisted, at its current clock.
func (n *testNet) restart(id uint64) {
	n.t.Helper()
	nd := n.nodes[id]
	applied := nd.disk.snapshot.Index
	r, err := New(nd.cfg, Restored{HardState: nd.disk.hs, Snapshot: nd.disk.snapshot,
		Entries: slices.Clone(nd.disk.entries), Applied: applied}, nd.now)
	if err != nil {
		n.t.Fatalf("restart %d: %v", id, err)
	}
	nd.r = r
	nd.applied = nd.applied[:0]
	// Drop whatever was in flight to or from the crashed node.
	n.inflight = slices.DeleteFunc(n.inflight, func(m Message) bool { return m.To == id || m.From == id })
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
	nd := n.nodes[id]
	rd := nd.r.Ready()
	nd.readies = append(nd.readies, rd)
	n.inflight = append(n.inflight, rd.Messages...)
	nd.disk.save(rd)
	n.checkReadyContract(id, rd)
	n.inflight = append(n.inflight, rd.MessagesAfterPersist...)
	nd.applied = append(nd.applied, rd.CommittedEntries...)
	nd.reads = append(nd.reads, rd.ReadStates...)
	nd.dropped = append(nd.dropped, rd.DroppedReads...)
	nd.events = append(nd.events, rd.Events...)
	nd.r.Advance(rd)
	return rd
}

// checkReadyContract checks, once the Ready is persisted, what the Ready contract promises:
// committed entries are durable, the commit index does not run past the durable log, and
// messages sent before persisting never depend on it.
func (n *testNet) checkReadyContract(id uint64, rd Ready) {
	n.t.Helper()
	d := &n.nodes[id].disk
	last := d.snapshot.Index + uint64(len(d.entries))
	if d.hs.Commit > last {
		n.t.Fatalf("node %d: persisted commit %d beyond the persisted log (last %d)", id, d.hs.Commit, last)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index <= d.snapshot.Index || e.Index > last || d.entries[e.Index-d.snapshot.Index-1].Term != e.Term {
			n.t.Fatalf("node %d: committed entry %d (term %d) handed out but not persisted", id, e.Index, e.Term)
		}
	}
	for _, m := range rd.Messages {
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
		default:
			n.t.Fatalf("node %d: %v in Ready.Messages, must wait for persistence", id, m.Type)
		}
	}
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
		if err := nd.r.Step(m); err != nil {
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

// take removes and returns the in-flight messages matching keep.
func (n *testNet) take(keep func(Message) bool) []Message {
	var out, rest []Message
	for _, m := range n.inflight {
		if keep(m) {
			out = append(out, m)
		} else {
			rest = append(rest, m)
		}
	}
	n.inflight = rest
	return out
}

// isolate cuts node id off from everyone, both ways.
func (n *testNet) isolate(id uint64) {
	for _, p := range n.ids {
		if p != id {
			n.cut[[2]uint64{id, p}] = true
			n.cut[[2]uint64{p, id}] = true
		}
	}
}

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
