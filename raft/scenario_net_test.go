package raft

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A scripted network for the scenario tests: the test decides which message is delivered or
// lost, and whose clock moves by how much. Nodes run on the test driver (driver_test.go) and
// carry out each Ready at once (written to disk before its MessagesAfterPersist leave),
// except when a test takes one step by step or crashes in between.

const (
	scnHeartbeat   = 10 * time.Millisecond
	scnElectionMin = 100 * time.Millisecond
	scnElectionMax = 200 * time.Millisecond
	scnLease       = 50 * time.Millisecond
	scnDrift       = 0.1
	// scnStart is every clock's reading when the scene begins: not zero, so that nothing
	// confuses "at start" with "never".
	scnStart = time.Hour
)

func scnConfig(id uint64, peers []uint64) Config {
	return Config{
		ID:                 id,
		Peers:              peers,
		HeartbeatInterval:  scnHeartbeat,
		ElectionTimeoutMin: scnElectionMin,
		ElectionTimeoutMax: scnElectionMax,
		LeaseDuration:      scnLease,
		MaxClockDrift:      scnDrift,
		Seed:               int64(id) * 7919,
	}
}

// scnNode is a node of the scene: the driver's node, its clock, and what its Readies handed
// out in this incarnation.
type scnNode struct {
	driverNode
	clock time.Duration
	readyRecord
}

type scene struct {
	t     *testing.T
	ids   []uint64
	nodes []*scnNode
	wire
	story  []string // what happened, printed when a scenario fails
	readID uint64
	// trim, keyed by (from, to), cuts the entries of appends on that link from the first
	// entry of the given term on (0: any term), as a message size limit would.
	trim map[[2]uint64]uint64
}

func newScene(t *testing.T, n int, tweak ...func(*Config)) *scene {
	t.Helper()
	s := &scene{t: t, wire: wire{cut: map[[2]uint64]bool{}}, trim: map[[2]uint64]uint64{}}
	for i := range n {
		s.ids = append(s.ids, uint64(i+1))
	}
	for _, id := range s.ids {
		cfg := scnConfig(id, s.ids)
		for _, f := range tweak {
			f(&cfg)
		}
		nd := &scnNode{driverNode: newDriverNode(cfg, nil), clock: scnStart}
		s.nodes = append(s.nodes, nd)
		s.boot(nd)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("scenario story:\n  %s", strings.Join(s.story, "\n  "))
		}
	})
	return s
}

func (s *scene) logf(format string, args ...any) {
	s.story = append(s.story, fmt.Sprintf(format, args...))
}

func (s *scene) node(id uint64) *scnNode { return s.nodes[id-1] }
func (s *scene) r(id uint64) *Raft       { return s.node(id).r }
func (s *scene) status(id uint64) Status { return s.r(id).Status() }

// boot builds the core from the node's disk at its clock (a first start or a restart).
func (s *scene) boot(nd *scnNode) {
	s.t.Helper()
	if err := nd.boot(nd.cfg, nd.clock); err != nil {
		s.t.Fatalf("start node %d: %v", nd.id, err)
	}
	nd.applied = nil
	s.flush(nd.id)
}

// crash loses node id's volatile state; messages already on the wire stay there.
func (s *scene) crash(id uint64) {
	s.logf("node %d crashes", id)
	s.node(id).crash()
}

func (s *scene) restart(id uint64) {
	d := &s.node(id).disk
	s.logf("node %d restarts: term %d vote %d commit %d, %d entries", id, d.hs.Term, d.hs.Vote, d.hs.Commit, len(d.entries))
	s.boot(s.node(id))
}

// flush drains node id's Readies through the driver, with an instant disk.
func (s *scene) flush(id uint64) {
	s.t.Helper()
	nd := s.node(id)
	for nd.r != nil && nd.r.HasReady() {
		rd, err := nd.cycle(s.post)
		if err != nil {
			s.t.Fatal(err)
		}
		s.record(nd, rd)
	}
}

// ready hands out node id's next Ready, to be carried out step by step (persist, finish).
func (s *scene) ready(id uint64) Ready {
	s.t.Helper()
	rd, err := s.node(id).take()
	if err != nil {
		s.t.Fatal(err)
	}
	return *rd
}

// flushButCrashBeforeSending persists node id's next Ready and crashes before anything that
// waited for the persist (MessagesAfterPersist) leaves; Messages, which did not wait, went.
func (s *scene) flushButCrashBeforeSending(id uint64) (unsent []Message) {
	s.t.Helper()
	if !s.node(id).r.HasReady() {
		s.t.Fatalf("node %d has no Ready to persist", id)
	}
	rd := s.ready(id)
	s.send(rd.Messages)
	s.persist(id)
	s.crash(id)
	return rd.MessagesAfterPersist
}

// persist writes node id's Ready in hand to its disk.
func (s *scene) persist(id uint64) {
	s.t.Helper()
	if err := s.node(id).persist(); err != nil {
		s.t.Fatal(err)
	}
}

// finish applies node id's persisted Ready and advances it.
func (s *scene) finish(id uint64) {
	s.t.Helper()
	nd := s.node(id)
	rd := *nd.held
	for _, e := range rd.CommittedEntries {
		if err := nd.applyEntry(e); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := nd.advance(); err != nil {
		s.t.Fatal(err)
	}
	s.record(nd, rd)
}

func (s *scene) record(nd *scnNode, rd Ready) {
	nd.add(rd)
	for _, e := range rd.Events {
		s.logf("%v n%d: %s", nd.clock-scnStart, nd.id, e)
	}
}

func (s *scene) send(msgs []Message) {
	for _, m := range msgs {
		s.post(m)
	}
}

// post puts m on the wire, with entries of its own.
func (s *scene) post(m Message) {
	m.Entries = slices.Clone(m.Entries)
	s.inflight = append(s.inflight, m)
}

// advance moves the clocks of ids (every live node if none) forward by d and ticks them.
func (s *scene) advance(d time.Duration, ids ...uint64) {
	if len(ids) == 0 {
		ids = s.ids
	}
	for _, id := range ids {
		nd := s.node(id)
		nd.clock += d
		if nd.r != nil {
			nd.r.Tick(nd.clock)
			s.flush(id)
		}
	}
}

// deliver hands every in-flight message that match accepts to its recipient, in send order,
// and reports how many arrived. What the recipients send in return is queued, not delivered.
// Messages on cut links or to crashed nodes are lost.
func (s *scene) deliver(match func(Message) bool) int {
	n := 0
	for _, m := range s.wire.take(match) {
		to := s.node(m.To)
		if s.cut[[2]uint64{m.From, m.To}] || to.r == nil {
			continue
		}
		if term, ok := s.trim[[2]uint64{m.From, m.To}]; ok && m.Type == MsgApp {
			if i := slices.IndexFunc(m.Entries, func(e Entry) bool { return term == 0 || e.Term == term }); i >= 0 {
				m.Entries = m.Entries[:i]
			}
		}
		to.r.Tick(to.clock)
		if err := to.stepMessage(m, nil); err != nil {
			s.t.Fatalf("node %d refused %s: %v", m.To, describeMessage(m), err)
		}
		s.flush(m.To)
		n++
	}
	return n
}

// trimAppends makes appends from → to arrive without their entries of term (0: none
// trimmed).
func (s *scene) trimAppends(from, to, term uint64) {
	if term == 0 {
		delete(s.trim, [2]uint64{from, to})
		return
	}
	s.trim[[2]uint64{from, to}] = term
}

// drop loses every in-flight message match accepts.
func (s *scene) drop(match func(Message) bool) int { return len(s.wire.take(match)) }

// settle delivers everything until the network is quiet (or 100 rounds pass).
func (s *scene) settle() {
	for range 100 {
		if s.deliver(anyMsg) == 0 && len(s.inflight) == 0 {
			return
		}
	}
}

// isolate cuts every link to and from id; heal restores them all.
func (s *scene) isolate(id uint64) {
	s.logf("node %d isolated", id)
	s.wire.isolate(id, s.ids)
}

func (s *scene) heal() {
	s.logf("all links heal")
	clear(s.cut)
}

// campaign makes id start an election now and runs it to the end on a quiet network.
func (s *scene) campaign(id uint64) {
	s.t.Helper()
	s.logf("node %d campaigns", id)
	if err := s.r(id).Campaign(); err != nil {
		s.t.Fatalf("Campaign(%d): %v", id, err)
	}
	s.flush(id)
	s.settle()
	if st := s.status(id); st.Role != Leader {
		s.t.Fatalf("node %d campaigned but is %v in term %d", id, st.Role, st.Term)
	}
}

// propose proposes data on leader id and returns its index.
func (s *scene) propose(id uint64, data string) uint64 {
	s.t.Helper()
	index, _, err := s.r(id).Propose([]byte(data))
	if err != nil {
		s.t.Fatalf("Propose on node %d: %v", id, err)
	}
	s.flush(id)
	return index
}

// leaseRead asks id for a lease read and reports whether the core accepted it.
func (s *scene) leaseRead(id uint64) bool {
	s.t.Helper()
	nd := s.node(id)
	nd.r.Tick(nd.clock)
	s.readID++
	err := nd.r.Read(s.readID, ReadLease)
	s.flush(id)
	return err == nil
}

// untilLease advances every clock in steps of step until id holds a lease, or fails after
// limit.
func (s *scene) untilLease(id uint64, step, limit time.Duration) {
	s.t.Helper()
	for waited := time.Duration(0); waited <= limit; waited += step {
		if st := s.status(id); st.Role == Leader && st.Lease == LeaseHeld {
			return
		}
		s.advance(step)
		s.settle()
	}
	st := s.status(id)
	s.t.Fatalf("node %d: no lease within %v: %v, lease %v", id, limit, st.Role, st.Lease)
}

// electAmong makes id campaign (again, up to five times, as a candidate may first have to
// learn a higher term) with only the messages among members that keep accepts delivered,
// until it leads. Everything else stays in flight.
func (s *scene) electAmong(id uint64, members []uint64, keep func(Message) bool) {
	s.t.Helper()
	among := func(m Message) bool {
		return slices.Contains(members, m.From) && slices.Contains(members, m.To) && keep(m)
	}
	for range 5 {
		s.logf("node %d campaigns among %v", id, members)
		if err := s.r(id).Campaign(); err != nil {
			s.t.Fatalf("Campaign(%d): %v", id, err)
		}
		s.flush(id)
		for range 20 {
			if s.deliver(among) == 0 {
				break
			}
		}
		if s.status(id).Role == Leader {
			return
		}
	}
	st := s.status(id)
	s.t.Fatalf("node %d could not win among %v: %v in term %d", id, members, st.Role, st.Term)
}

func anyMsg(Message) bool { return true }

func msgType(t MessageType) func(Message) bool { return func(m Message) bool { return m.Type == t } }

func msgTo(id uint64) func(Message) bool { return func(m Message) bool { return m.To == id } }

func msgFrom(id uint64) func(Message) bool { return func(m Message) bool { return m.From == id } }

func msgAnd(fs ...func(Message) bool) func(Message) bool {
	return func(m Message) bool {
		for _, f := range fs {
			if !f(m) {
				return false
			}
		}
		return true
	}
}

// termsOfLog renders a node's persisted log as index:term pairs.
func (nd *scnNode) termsOfLog() string {
	var b strings.Builder
	for _, e := range nd.disk.entries {
		fmt.Fprintf(&b, " %d:%d", e.Index, e.Term)
	}
	return strings.TrimSpace(b.String())
}

// entryAt returns the persisted entry at index i.
func (nd *scnNode) entryAt(i uint64) (Entry, bool) { return nd.disk.entry(i) }
