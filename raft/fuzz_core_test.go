package raft

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzCoreMessages drives a small cluster of cores with a schedule decoded from the fuzz
// input: ticks, deliveries (in any order, dropped or duplicated), Ready cycles (whole, or
// held open while more input arrives), proposals, reads, elections, transfers, crashes with
// restarts from what was persisted, compactions and, when the input's first byte says so,
// forged messages with arbitrary fields. Its nodes run on the test driver (driver_test.go).
// The cores must never panic, and must keep what a driver can check from outside:
//
//   - the Ready contract, on every Ready, and a coherent Status whose term and commit never go
//     back within one incarnation, as the driver's contract checker sees them
//     (contract_test.go): Messages are leader messages whose term is already durable;
//     everything else waits for the disk, and what it claims (a vote, an acknowledged index)
//     is durable once the Ready is persisted; a node grants its vote to one candidate per
//     term, ever; HardState.Commit never passes the durable log; Entries never leave a gap;
//     CommittedEntries follow the applied index without a gap and are durable; each read is
//     answered once; nothing new between Ready and Advance; a node restarts from what it
//     persisted;
//   - without forged messages, across nodes: one leader per term, and every node applies
//     the same entry at each index.
func FuzzCoreMessages(f *testing.F) {
	for _, seed := range coreFuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		newFuzzCluster(t, data).run()
	})
}

// fuzzInput hands out the fuzz bytes; past the end every read is 0.
type fuzzInput struct {
	data []byte
	pos  int
}

func (in *fuzzInput) done() bool { return in.pos >= len(in.data) }

func (in *fuzzInput) byte() byte {
	if in.done() {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

// pick returns a number in [0, n).
func (in *fuzzInput) pick(n int) int { return int(in.byte()) % n }

// Operations, one byte each followed by their arguments.
const (
	fzTick = iota
	fzTickAll
	fzDeliver
	fzDeliverAll
	fzDrop
	fzDuplicate
	fzCycle
	fzHoldReady
	fzAdvanceHeld
	fzPropose
	fzRead
	fzCampaign
	fzTransfer
	fzRestart
	fzCompact
	fzReport
	fzForge
	fzCut
	fzOpCount
)

// fuzzMaxOps bounds one run, so an input of any length stays fast.
const fuzzMaxOps = 3000

type fuzzNode struct {
	driverNode
	now        time.Duration
	nextReadID uint64
}

type fuzzCluster struct {
	t      *testing.T
	in     *fuzzInput
	cfg    Config // per-node fields filled in boot
	ids    []uint64
	nodes  []*fuzzNode
	net    []Message
	forged bool // a forged message was stepped: cross-node checks are off
	allow  bool // the input allows forged messages

	// leaders is the leader of each term seen so far.
	leaders map[uint64]uint64
	// applied is the entry applied at each index by any node.
	applied map[uint64]Entry
	ops     int
	trace   []string
}

func newFuzzCluster(t *testing.T, data []byte) *fuzzCluster {
	in := &fuzzInput{data: data}
	head := in.byte()
	size := 1 + int(head&0x7f)%5 // the top bit allows forged messages; it must not change the size
	knobs := in.byte()
	c := &fuzzCluster{
		t:       t,
		in:      in,
		allow:   head&0x80 != 0,
		leaders: map[uint64]uint64{},
		applied: map[uint64]Entry{},
	}
	for i := 1; i <= size; i++ {
		c.ids = append(c.ids, uint64(i))
	}
	c.cfg = Config{
		Peers:              c.ids,
		HeartbeatInterval:  10 * time.Millisecond,
		ElectionTimeoutMin: 100 * time.Millisecond,
		ElectionTimeoutMax: 200 * time.Millisecond,
		LeaseDuration:      50 * time.Millisecond,
		MaxClockDrift:      0.05,
		// Small messages and windows, so batching, pipelining and flow control all happen.
		MaxSizePerMsg:       uint64(1 + knobs%48),
		MaxInflightMsgs:     1 + int(knobs>>4)%4,
		MaxInflightBytes:    uint64(knobs>>6) * 32,
		MaxUncommittedBytes: uint64(in.byte()%4) * 64,
		Seed:                int64(in.byte()),
	}
	for _, id := range c.ids {
		cfg := c.cfg
		cfg.ID = id
		n := &fuzzNode{driverNode: newDriverNode(cfg, nil)}
		n.contract.readsAsked = true
		c.nodes = append(c.nodes, n)
		c.boot(n)
	}
	return c
}

func (c *fuzzCluster) fail(format string, args ...any) {
	c.t.Helper()
	tail := c.trace
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	c.t.Fatalf("after op %d (forged=%v): %s\nlast operations:\n  %s", c.ops, c.forged, fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func (c *fuzzCluster) note(format string, args ...any) {
	c.trace = append(c.trace, fmt.Sprintf(format, args...))
}

// boot (re)starts node n from its disk, as a node does after a crash: a Ready it held is
// lost.
func (c *fuzzCluster) boot(n *fuzzNode) {
	if n.r != nil {
		n.crash()
	}
	if err := n.boot(n.cfg, n.now); err != nil {
		c.fail("%v", err)
	}
}

func (c *fuzzCluster) run() {
	for !c.in.done() && c.ops < fuzzMaxOps {
		c.ops++
		c.step()
		c.checkNodes()
	}
	// Drain: whatever the schedule left half done still has to respect the contract.
	for _, n := range c.nodes {
		if n.held != nil {
			c.advanceHeld(n)
		}
		c.cycle(n)
	}
	c.checkNodes()
}

func (c *fuzzCluster) node() *fuzzNode { return c.nodes[c.in.pick(len(c.nodes))] }

func (c *fuzzCluster) step() {
	in := c.in
	switch op := in.pick(fzOpCount); op {
	case fzTick:
		n := c.node()
		d := time.Duration(1+int(in.byte())) * time.Millisecond
		c.tick(n, d)
	case fzTickAll:
		d := time.Duration(1+int(in.byte())) * time.Millisecond
		for _, n := range c.nodes {
			c.tick(n, d)
		}
	case fzDeliver:
		if len(c.net) > 0 {
			c.deliver(in.pick(len(c.net)))
		}
	case fzDeliverAll:
		for k := len(c.net); k > 0 && len(c.net) > 0; k-- {
			c.deliver(0)
		}
	case fzDrop:
		if len(c.net) > 0 {
			c.lose(in.pick(len(c.net)))
		}
	case fzDuplicate:
		if len(c.net) > 0 && len(c.net) < 512 {
			m := c.net[in.pick(len(c.net))]
			c.note("duplicate %s", describeFuzzMsg(m))
			c.net = append(c.net, m)
		}
	case fzCycle:
		n := c.node()
		if n.held != nil {
			c.advanceHeld(n)
		} else {
			c.cycle(n)
		}
	case fzHoldReady:
		if n := c.node(); n.held == nil {
			c.takeReady(n)
		}
	case fzAdvanceHeld:
		if n := c.node(); n.held != nil {
			c.advanceHeld(n)
		}
	case fzPropose:
		n := c.node()
		data := make([]byte, in.pick(24))
		for i := range data {
			data[i] = in.byte()
		}
		index, term, err := n.r.Propose(data)
		c.note("node %d propose %d bytes -> %d/%d %v", n.id, len(data), index, term, err)
		if err == nil {
			st := n.r.Status()
			if st.Role != Leader || term != st.Term || index != st.LastIndex {
				c.fail("node %d accepted a proposal at %d/%d as %v in term %d with last index %d", n.id, index, term, st.Role, st.Term, st.LastIndex)
			}
		}
	case fzRead:
		n := c.node()
		mode := ReadMode(in.pick(6)) // 4 and 5 are not modes
		n.nextReadID++
		id := n.nextReadID
		err := n.read(id, mode)
		c.note("node %d read %d %v -> %v", n.id, id, mode, err)
		if err == nil && (mode == ReadLog || mode > ReadStale) {
			c.fail("node %d accepted a read in mode %v", n.id, mode)
		}
	case fzCampaign:
		n := c.node()
		c.note("node %d campaign", n.id)
		n.r.Campaign()
	case fzTransfer:
		n := c.node()
		to := uint64(in.pick(len(c.ids) + 2)) // 0 and len+1 are not members
		err := n.r.TransferLeadership(to)
		c.note("node %d transfer to %d -> %v", n.id, to, err)
	case fzRestart:
		n := c.node()
		c.note("node %d crash and restart (held ready lost: %v)", n.id, n.held != nil)
		c.boot(n)
	case fzCompact:
		c.compact(c.node())
	case fzReport:
		n := c.node()
		peer := uint64(in.pick(len(c.ids) + 2))
		if b := in.byte(); b&1 == 0 {
			n.r.ReportUnreachable(peer)
		} else {
			n.r.ReportSnapshot(peer, b&2 != 0)
		}
	case fzForge:
		if c.allow {
			c.forge(c.node())
		}
	case fzCut:
		// Everything in flight to or from one node is lost, as in a partition.
		n := c.node()
		c.note("cut node %d off", n.id)
		for k := 0; k < len(c.net); {
			if m := c.net[k]; m.To == n.id || m.From == n.id {
				c.lose(k)
				continue
			}
			k++
		}
	}
}

func (c *fuzzCluster) tick(n *fuzzNode, d time.Duration) {
	n.now += d
	n.r.Tick(n.now)
}

// deliver steps message k of the network on its recipient.
func (c *fuzzCluster) deliver(k int) {
	m := c.net[k]
	c.net = slices.Delete(c.net, k, k+1)
	n := c.nodes[m.To-1]
	err := n.stepMessage(m, nil)
	c.note("deliver %s -> %v", describeFuzzMsg(m), err)
	if err != nil && !c.forged {
		c.fail("node %d refused a genuine message %s: %v", n.id, describeFuzzMsg(m), err)
	}
	c.reportSnapshot(m, true)
}

// lose drops message k of the network.
func (c *fuzzCluster) lose(k int) {
	m := c.net[k]
	c.net = slices.Delete(c.net, k, k+1)
	c.note("drop %s", describeFuzzMsg(m))
	c.reportSnapshot(m, false)
}

// reportSnapshot tells a snapshot's sender how its transfer ended, as the node's transport
// does once the stream is over.
func (c *fuzzCluster) reportSnapshot(m Message, ok bool) {
	if m.Type == MsgSnap {
		c.nodes[m.From-1].r.ReportSnapshot(m.To, ok)
	}
}

// forge steps a message with fields decoded from the input: any type, sender, term,
// indexes and entries, aimed at node n.
func (c *fuzzCluster) forge(n *fuzzNode) {
	in := c.in
	st := n.r.Status()
	near := func(base uint64) uint64 {
		switch b := in.byte(); {
		case b == 255:
			return math.MaxUint64
		case b == 254:
			return 1 << 40
		case b == 253:
			return MaxTerm
		default:
			v := int64(base) + int64(b%16) - 8
			return uint64(max(v, 0))
		}
	}
	m := Message{
		Type:           MessageType(in.pick(int(MsgTimeoutNow) + 2)),
		From:           uint64(in.pick(len(c.ids) + 2)),
		To:             n.id,
		Term:           near(st.Term),
		Index:          near(st.LastIndex),
		LogTerm:        near(st.Term),
		Commit:         near(st.Commit),
		Reject:         in.byte()&1 == 1,
		ConflictTerm:   near(st.Term),
		ConflictIndex:  near(st.LastIndex),
		LeaseDuration:  time.Duration(int8(in.byte())) * time.Millisecond,
		LeaseRemaining: time.Duration(int8(in.byte())) * time.Millisecond,
		SentAt:         n.now + time.Duration(int8(in.byte()))*time.Millisecond,
		Round:          near(0),
		Transfer:       in.byte()&1 == 1,
		Snapshot:       SnapshotMeta{Index: near(st.Commit), Term: near(st.Term)},
	}
	if in.byte()&3 == 0 {
		m.To = uint64(in.pick(len(c.ids) + 2))
	}
	for i := in.pick(4); i > 0; i-- {
		e := Entry{Index: m.Index + uint64(len(m.Entries)) + 1, Term: near(m.Term), Type: EntryType(in.pick(3))}
		if in.byte()&7 == 0 {
			e.Index = near(m.Index)
		}
		e.Data = []byte{in.byte()}
		m.Entries = append(m.Entries, e)
	}
	c.forged = true
	err := n.stepMessage(m, nil)
	c.note("forged %s -> %v", describeFuzzMsg(m), err)
}

// compact compacts node n's log at its applied index, as the node does after a snapshot.
func (c *fuzzCluster) compact(n *fuzzNode) {
	if n.appliedIndex <= n.disk.snapshot.Index {
		return
	}
	meta, err := n.compact()
	c.note("node %d compact to %d/%d -> %v", n.id, meta.Index, meta.Term, err)
	if err != nil && !c.forged {
		c.fail("node %d refused to compact at its applied entry %d/%d: %v", n.id, meta.Index, meta.Term, err)
	}
}

// cycle runs one whole Ready cycle on n, if it has one.
func (c *fuzzCluster) cycle(n *fuzzNode) {
	if n.r.HasReady() {
		c.takeReady(n)
		c.advanceHeld(n)
	}
}

// takeReady takes a Ready, sends its Messages (the contract allows that before persisting)
// and holds the rest until advanceHeld.
func (c *fuzzCluster) takeReady(n *fuzzNode) {
	rd, err := n.take()
	c.note("node %d ready: %s", n.id, describeReady(*rd))
	if err != nil {
		c.fail("%v", err)
	}
	c.send(n, rd.Messages)
}

// advanceHeld persists the held Ready, sends what had to wait for it, applies and advances.
func (c *fuzzCluster) advanceHeld(n *fuzzNode) {
	rd := *n.held
	if err := n.persist(); err != nil {
		c.fail("%v", err)
	}
	c.send(n, rd.MessagesAfterPersist)
	for _, e := range rd.CommittedEntries {
		if err := n.applyEntry(e); err != nil {
			c.fail("%v", err)
		}
		if !c.forged {
			if prev, ok := c.applied[e.Index]; ok && (prev.Term != e.Term || prev.Type != e.Type || string(prev.Data) != string(e.Data)) {
				c.fail("node %d applies %d/%d %v %x, another node applied %d/%d %v %x at the same index",
					n.id, e.Index, e.Term, e.Type, e.Data, prev.Index, prev.Term, prev.Type, prev.Data)
			}
			c.applied[e.Index] = e
		}
	}
	if err := n.advance(); err != nil {
		c.fail("%v", err)
	}
}

// send puts what n sends on the network, which knows only the cluster's nodes.
func (c *fuzzCluster) send(n *fuzzNode, msgs []Message) {
	for _, m := range msgs {
		if m.To > uint64(len(c.ids)) {
			if c.forged {
				continue // an answer to a forged sender that is no member: the network drops it
			}
			c.fail("node %d sends %s to a node outside the cluster", n.id, describeFuzzMsg(m))
		}
		c.net = append(c.net, m)
	}
}

// checkNodes checks every node's Status against what was observed before, and across nodes
// that no two lead one term.
func (c *fuzzCluster) checkNodes() {
	for _, n := range c.nodes {
		st := n.r.BasicStatus()
		if err := n.observe(st); err != nil {
			c.fail("%v", err)
		}
		if st.Role == Leader && !c.forged {
			if prev, ok := c.leaders[st.Term]; ok && prev != n.id {
				c.fail("nodes %d and %d both lead term %d", prev, n.id, st.Term)
			}
			c.leaders[st.Term] = n.id
		}
	}
}

// A snapshot claiming a term above its message's is malformed (a leader of term T holds no
// entry of a later term), as an append with such an entry is. Found by FuzzCoreMessages: the
// core installs it, hands it out to persist, and the node then refuses to restart from its
// own disk ("restored hard state term 1 is below the last entry's term 2").
func TestForgedSnapshotAboveItsTerm(t *testing.T) {
	n := newDriverNode(testConfig(1, []uint64{1, 2, 3}), nil)
	if err := n.boot(n.cfg, 0); err != nil {
		t.Fatal(err)
	}
	n.r.Tick(time.Millisecond)
	stepErr := n.stepMessage(Message{Type: MsgSnap, From: 2, To: 1, Term: 1, Snapshot: SnapshotMeta{Index: 1, Term: 2}}, nil)
	if n.r.HasReady() {
		if _, err := n.cycle(func(Message) {}); err != nil {
			t.Fatalf("the core accepted the snapshot (Step error: %v) and broke the Ready contract: %v", stepErr, err)
		}
	}
	n.crash()
	if err := n.boot(n.cfg, 0); err != nil {
		t.Fatalf("the core accepted the snapshot (Step error: %v) and cannot restart from what it persisted: %v", stepErr, err)
	}
}

func describeFuzzMsg(m Message) string {
	s := fmt.Sprintf("%v %d->%d t%d i%d lt%d c%d", m.Type, m.From, m.To, m.Term, m.Index, m.LogTerm, m.Commit)
	if len(m.Entries) > 0 {
		s += fmt.Sprintf(" ents[%d..%d]", m.Entries[0].Index, m.Entries[len(m.Entries)-1].Index)
	}
	if m.Reject {
		s += " reject"
	}
	if m.Type == MsgSnap {
		s += fmt.Sprintf(" snap%d/%d", m.Snapshot.Index, m.Snapshot.Term)
	}
	return s
}

// fuzzScript writes fuzz inputs operation by operation, for the seed corpus.
type fuzzScript struct{ b []byte }

func newFuzzScript(size int, forged bool, knobs, uncommitted, seed byte) *fuzzScript {
	head := byte(size - 1)
	if forged {
		head |= 0x80
	}
	return &fuzzScript{b: []byte{head, knobs, uncommitted, seed}}
}

func (s *fuzzScript) op(op int, args ...byte) *fuzzScript {
	s.b = append(s.b, byte(op))
	s.b = append(s.b, args...)
	return s
}

// settle lets messages flow: rounds of a Ready cycle on every node and every delivery.
func (s *fuzzScript) settle(size, rounds int) *fuzzScript {
	for ; rounds > 0; rounds-- {
		for i := 0; i < size; i++ {
			s.op(fzCycle, byte(i))
		}
		s.op(fzDeliverAll)
		s.op(fzTickAll, 4)
	}
	return s
}

// elect lets node 1's election timeout fire, and the election run.
func (s *fuzzScript) elect(size int) *fuzzScript {
	s.op(fzTick, 0, 220)
	return s.settle(size, 8)
}

func coreFuzzSeeds() [][]byte {
	var seeds [][]byte
	// Elect, write from every node, read in every mode, on 1, 3 and 5 nodes.
	for _, size := range []int{1, 3, 5} {
		s := newFuzzScript(size, false, 0x3f, 0, 7).elect(size)
		for i := 0; i < size; i++ {
			s.op(fzPropose, byte(i), 5, 'h', 'e', 'l', 'l', 'o')
			for mode := byte(0); mode < 6; mode++ {
				s.op(fzRead, byte(i), mode)
			}
		}
		seeds = append(seeds, s.settle(size, 6).b)
	}
	// A lossy, duplicating, reordering network with crashes and compaction.
	s := newFuzzScript(3, false, 0x91, 2, 42).elect(3)
	for k := byte(0); k < 6; k++ {
		s.op(fzPropose, k%3, 9, k, k, k, k, k, k, k, k, k)
		s.op(fzHoldReady, k%3)
		s.op(fzDuplicate, k).op(fzDeliver, 3*k).op(fzDrop, k)
		s.op(fzTick, k%3, 30).op(fzAdvanceHeld, k%3)
		s.settle(3, 2)
	}
	s.op(fzCompact, 0).op(fzCompact, 1).op(fzCompact, 2)
	s.op(fzRestart, 1).settle(3, 4)
	s.op(fzTransfer, 0, 2).op(fzTransfer, 1, 3).op(fzTransfer, 2, 1).settle(3, 6)
	s.op(fzRestart, 0).op(fzRestart, 2).op(fzTickAll, 250).settle(3, 8)
	seeds = append(seeds, s.b)
	// A follower cut off while the others commit and compact is caught up with a snapshot.
	s = newFuzzScript(3, false, 0x3f, 0, 3).elect(3)
	for k := byte(0); k < 8; k++ {
		s.op(fzPropose, 0, 1, k)
		for i := 0; i < 3; i++ {
			s.op(fzCycle, byte(i))
		}
		s.op(fzCut, 2).op(fzDeliverAll).op(fzCut, 2)
		for i := 0; i < 2; i++ {
			s.op(fzCycle, byte(i))
		}
		s.op(fzCut, 2).op(fzDeliverAll).op(fzTick, 0, 4).op(fzTick, 1, 4)
	}
	s.op(fzCycle, 0).op(fzCycle, 1).op(fzCompact, 0).op(fzCompact, 1).settle(3, 10)
	seeds = append(seeds, s.b)
	// Forged messages of every type against a running cluster.
	s = newFuzzScript(3, true, 0x3f, 1, 9).elect(3)
	for typ := byte(0); typ < byte(MsgTimeoutNow)+2; typ++ {
		s.op(fzForge, typ%3, typ, typ%5, 8, 8, 8, 8, 0, 8, 8, 0, 0, 0, 0, 0, 0, 8, 8, 1, 2, 8, 0, 3)
		s.settle(3, 1)
	}
	seeds = append(seeds, s.settle(3, 4).b)
	// Forged messages at the ends of the number line, from a real peer: first past MaxTerm,
	// then in MaxTerm itself, each with indexes of 2^64-1 and one entry (whose index wraps).
	s = newFuzzScript(3, true, 0x3f, 1, 11).elect(3)
	for typ := byte(0); typ < byte(MsgTimeoutNow)+2; typ++ {
		node, from := typ%3, (typ+1)%3+1
		for _, term := range []byte{255, 253} {
			s.op(fzForge, node, typ, from, term, 255, 8, 8, 0, 255, 255, 8, 8, 0, 0, 0, 255, 8, 1, 1, 8, 1, 7, 'x')
			s.settle(3, 1)
		}
	}
	seeds = append(seeds, s.op(fzTickAll, 250).settle(3, 4).b)
	return seeds
}
