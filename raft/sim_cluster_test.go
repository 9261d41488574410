package raft

import (
	"container/heap"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/georaft/georaft/history"
)

// simEvent is one thing that happens at a true virtual time. Events at the same time run in
// the order they were scheduled (seq), so a run depends on nothing but its seed.
type simEvent struct {
	at   time.Duration
	seq  uint64
	kind string // for the trace: "deliver", "tick", "persist", "client", "fault", ...
	node uint64
	msg  *Message // deliveries only, for the trace
	fn   func()
}

type eventHeap []*simEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*simEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// nodeClock is a node's monotonic clock: local = offset + rate × true time. Rates differ
// between nodes within the drift bound; offsets differ arbitrarily, since the core never
// compares clocks across nodes.
type nodeClock struct {
	offset time.Duration
	rate   float64
}

func (c nodeClock) local(t time.Duration) time.Duration {
	return c.offset + time.Duration(float64(t)*c.rate)
}

// trueAt is the earliest true time at which the clock reads at least local.
func (c nodeClock) trueAt(local time.Duration) time.Duration {
	if local <= c.offset {
		return 0
	}
	t := time.Duration(math.Ceil(float64(local-c.offset) / c.rate))
	for c.local(t) < local {
		t++
	}
	for t > 0 && c.local(t-1) >= local {
		t--
	}
	return t
}

// kvMachine is the simulator's state machine: the key-value map the clients' commands
// change, and what the latest command returned.
type kvMachine struct {
	kv   map[string]string
	last applyResult
}

func (m *kvMachine) apply(e Entry) error {
	m.last = applyResult{}
	if e.Type != EntryNormal {
		return nil
	}
	op, err := decodeOp(e.Data)
	if err != nil {
		return fmt.Errorf("it holds data no client wrote: %w", err)
	}
	m.last = op.applyTo(m.kv)
	return nil
}

// image copies the map: an image is never modified once taken, so disks and messages share
// it.
func (m *kvMachine) image() any { return cloneKV(m.kv) }

func (m *kvMachine) restore(image any) {
	if image == nil {
		m.kv = map[string]string{}
		return
	}
	m.kv = cloneKV(image.(map[string]string))
}

// simNode is one server: the driver's node (its core, disk and state machine), its clock,
// and what georaftd keeps around the core: client requests in flight and the read view it
// publishes.
type simNode struct {
	driverNode
	s     *simulation
	idx   int
	clock nodeClock
	kv    *kvMachine
	// clockEpoch counts restarts of the node's clock from a new origin.
	clockEpoch int

	// Volatile: lost in a crash.
	proposals    map[uint64]*pendingProposal // by log index
	reads        map[uint64]*clientReq       // by read id
	waitingReads []ReadState                 // until applied reaches their index
	published    ReadView                    // what lease and stale reads are answered from

	tickToken     uint64
	tickAt        time.Duration
	tickScheduled bool
	pastDeadlines int // consecutive ticks after which NextDeadline was already due

	// crashAfterPersist arms the persist-then-send window: the next persist completes and
	// the node dies before sending MessagesAfterPersist.
	crashAfterPersist bool
	downSince         time.Duration
	// slowDisk is added to every fsync while the slow-disk fault lasts.
	slowDisk time.Duration
	// nextTiming, if set, is the timing the next restart runs with.
	nextTiming *nodeTiming
	// nextClock, if set, is where the clock of the next restart starts, a new origin.
	nextClock *time.Duration
	// outside: the node does not run, and nothing restarts it: a spare not yet added to the
	// cluster, or a removed node that was shut down for good. joined: a spare that was
	// started to join.
	outside, joined bool
}

type pendingProposal struct {
	term uint64
	req  *clientReq
}

// simulation is one seeded run.
type simulation struct {
	p       simParams
	rng     *rand.Rand
	now     time.Duration
	seq     uint64
	queue   eventHeap
	nodes   []*simNode
	blocked [][]int // blocked[from][to] > 0: the link drops everything (one count per fault)
	clients []*simClient
	rec     *history.Recorder
	inv     *invariants
	stats   simStats
	trace   traceRing
	verbose io.Writer
	failure *simFailure

	nextReqID   uint64
	clientsStop time.Duration // no new client operation starts after this
	healed      bool
	probe       *simClient
	probeDone   bool
	finished    bool
	// leaseHuntArmed: the next lease renewal observed on a leader triggers the lease attack,
	// prepared by attack (nil: no lagging nodes).
	leaseHuntArmed bool
	attack         *leaseAttack
	// attackUntil: no other fault starts while a lease attack is under way.
	attackUntil time.Duration
	// churnUntil ends a stretch of leader churn (leaderChurn); churnHeals ends the latest
	// leader's isolation in it.
	churnUntil time.Duration
	churnHeals []func()
	// writesPausedUntil: clients only read until then (a lease attack's quiet phase).
	writesPausedUntil time.Duration
	// extraDelay[from][to] is added to every message on that link (the slow-link fault).
	extraDelay [][]time.Duration
	// linkLoss[from][to] is added to the loss rate on that link (a holder attack).
	linkLoss [][]float64
	// holding[from][to]: the link keeps what is sent on it in held (a stalled queue) until
	// released (a boot-echo attack).
	holding           [][]bool
	held              []heldMessage
	bootEcho          *bootEcho
	soleVoter         *soleVoter
	firstLeaseOverlap string
}

// simFailure is why a run failed.
type simFailure struct {
	kind          string // one of failureKinds
	msg           string
	params        string
	trace         []string
	visualization *history.Result
}

func (s *simulation) schedule(at time.Duration, kind string, node uint64, fn func()) *simEvent {
	if at < s.now {
		at = s.now
	}
	s.seq++
	e := &simEvent{at: at, seq: s.seq, kind: kind, node: node, fn: fn}
	heap.Push(&s.queue, e)
	return e
}

func (s *simulation) after(d time.Duration, kind string, node uint64, fn func()) *simEvent {
	return s.schedule(s.now+d, kind, node, fn)
}

// fail records the first failure; the run stops after the current event.
func (s *simulation) fail(kind, format string, args ...any) {
	if s.failure != nil {
		return
	}
	s.failure = &simFailure{kind: kind, msg: fmt.Sprintf(format, args...)}
	s.logf("FAILURE %s: %s", kind, s.failure.msg)
}

// logf writes a line to the trace (and, when replaying verbosely, to the output).
func (s *simulation) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.trace.addLine(s.now, 0, line)
	if s.verbose != nil {
		fmt.Fprintf(s.verbose, "%12v        %s\n", s.now, line)
	}
}

func (s *simulation) node(id uint64) *simNode {
	if id == None || id > uint64(len(s.nodes)) {
		return nil
	}
	return s.nodes[id-1]
}

func (s *simulation) randDuration(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

func (n *simNode) localNow() time.Duration { return n.clock.local(n.s.now) }

func (n *simNode) setTiming(t nodeTiming) {
	n.cfg.HeartbeatInterval = t.heartbeat
	n.cfg.LeaseDuration = t.lease
	n.cfg.ElectionTimeoutMin = t.electionMin
	n.cfg.ElectionTimeoutMax = t.electionMax
}

// settle runs after every call into the core: check the invariants, drain Readies, and
// schedule the next tick.
func (n *simNode) settle() {
	if n.r == nil || n.s.failure != nil {
		return
	}
	n.s.inv.observe(n)
	n.pullReadies()
	if n.r != nil {
		n.publish()
		n.scheduleTick()
	}
}

// publish refreshes the read view that lease and stale reads are answered from without
// stepping the core, as georaftd publishes it after every turn of its loop.
func (n *simNode) publish() { n.published = n.r.ReadView() }

// pullReadies carries Readies out through the driver: send Messages; persist (after a
// simulated fsync); send MessagesAfterPersist; apply; answer reads; Advance. A Ready with
// nothing to persist completes at once and the next one is pulled.
func (n *simNode) pullReadies() {
	s := n.s
	for spins := 0; n.r != nil && n.held == nil && n.r.HasReady(); spins++ {
		if spins > 1000 {
			s.fail("driver", "node %d: HasReady stays true through 1000 consecutive empty-persist Readies", n.id)
			return
		}
		rd, err := n.take()
		s.traceReady(n, rd)
		if err != nil {
			s.fail("invariant", "%v", err)
			return
		}
		s.inv.onReady(n, rd)
		if s.failure != nil {
			return
		}
		// As georaftd does: the view is published before any message of the Ready leaves,
		// so a lease given up for a transfer is withdrawn before TimeoutNow can arrive.
		n.publish()
		for _, m := range rd.Messages {
			s.send(n, m)
		}
		if rd.HardState == nil && rd.Snapshot == nil && len(rd.Entries) == 0 {
			n.finishReady(rd, false)
			continue
		}
		incarnation := n.incarnation
		fsync := s.randDuration(s.p.fsyncMin, s.p.fsyncMax) + n.slowDisk
		s.after(fsync, "persist", n.id, func() {
			if n.incarnation != incarnation || n.r == nil {
				return // crashed meanwhile: the write never completed
			}
			if n.finishReady(rd, true) {
				n.settle()
			}
		})
		return
	}
}

// finishReady completes the Ready in hand once its write (if it had anything to write,
// fsynced) is done. It reports false if the node crashed in the persist-then-send window, or
// if applying its committed entries takes time (simParams.applyMax): the Ready then
// completes later, on its own, while the core keeps stepping messages, as the contract
// allows between sending MessagesAfterPersist and Advance.
func (n *simNode) finishReady(rd *Ready, wrote bool) bool {
	s := n.s
	if err := n.persist(); err != nil {
		s.fail("invariant", "%v", err)
		return false
	}
	if wrote {
		if rd.Snapshot != nil {
			n.answerReads() // the state machine is the snapshot's now
		}
		if n.crashAfterPersist {
			n.crashAfterPersist = false
			s.crash(n, "crash after persisting, before sending MessagesAfterPersist")
			return false
		}
	}
	for _, m := range rd.MessagesAfterPersist {
		s.inv.noteAck(n, m)
		s.send(n, m)
	}
	if s.p.applyMax > 0 && len(rd.CommittedEntries) > 0 {
		incarnation := n.incarnation
		s.after(s.randDuration(0, s.p.applyMax), "apply", n.id, func() {
			if n.incarnation == incarnation && n.r != nil && n.completeReady(rd) {
				n.settle()
			}
		})
		return false
	}
	return n.completeReady(rd)
}

// completeReady applies the held Ready's committed entries, answers its reads and advances.
func (n *simNode) completeReady(rd *Ready) bool {
	s := n.s
	for _, e := range rd.CommittedEntries {
		n.apply(e)
		if s.failure != nil {
			return false
		}
	}
	n.waitingReads = append(n.waitingReads, rd.ReadStates...)
	n.publish()
	n.answerReads()
	for _, d := range rd.DroppedReads {
		if req := n.reads[d.ID]; req != nil {
			delete(n.reads, d.ID)
			s.reply(n, req, replyRetry, fmt.Sprintf("read dropped: %v", d.Err), false, "")
		}
	}
	if err := n.advance(); err != nil {
		s.fail("invariant", "%v", err)
		return false
	}
	n.maybeCompact()
	return true
}

// apply runs one committed entry through the driver and answers the client whose proposal
// it is (or whose proposal lost that index).
func (n *simNode) apply(e Entry) {
	s := n.s
	if err := n.applyEntry(e); err != nil {
		s.fail("invariant", "%v", err)
		return
	}
	s.inv.onApply(n, e)
	if p := n.proposals[e.Index]; p != nil {
		delete(n.proposals, e.Index)
		if p.term == e.Term {
			s.reply(n, p.req, replyOK, "", n.kv.last.found, n.kv.last.value)
		} else {
			// Another entry was committed at our index: ours never will be.
			s.reply(n, p.req, replyFailed, fmt.Sprintf("entry %d/%d lost to %d/%d", e.Index, p.term, e.Index, e.Term), false, "")
		}
	}
	n.answerReads()
}

// answerReads answers every read whose index the state machine has reached.
func (n *simNode) answerReads() {
	keep := n.waitingReads[:0]
	for _, rs := range n.waitingReads {
		if rs.Index > n.appliedIndex {
			keep = append(keep, rs)
			continue
		}
		req := n.reads[rs.ID]
		if req == nil {
			continue
		}
		delete(n.reads, rs.ID)
		n.s.inv.onReadServed(n, rs, req)
		req.servedMode = rs.Mode
		value, found := n.kv.kv[req.op.key]
		n.s.reply(n, req, replyOK, "", found, value)
	}
	n.waitingReads = keep
}

// maybeCompact takes a snapshot of the state machine and compacts the log once enough
// entries are applied, so that lagging and restarted followers need MsgSnap.
func (n *simNode) maybeCompact() {
	every := n.s.p.snapshotEvery
	if every == 0 || n.r == nil || n.appliedIndex < n.disk.snapshot.Index+every || n.appliedIndex > n.disk.lastIndex() {
		return
	}
	if meta, err := n.compact(); err != nil {
		n.s.fail("invariant", "node %d: Compact(%+v) after applying it: %v", n.id, meta, err)
		return
	}
	n.s.stats.compactions++
}

// scheduleTick makes sure a tick fires at the core's next deadline, converted to true time.
func (n *simNode) scheduleTick() {
	deadline := n.r.NextDeadline()
	if deadline >= never/2 {
		n.tickToken++
		n.tickScheduled = false
		return
	}
	at := n.clock.trueAt(deadline)
	if at <= n.s.now {
		// The deadline is already due although the core was just ticked: a timer the core
		// forgot to move. Tolerate a few, then call it a busy loop.
		n.pastDeadlines++
		if n.pastDeadlines > 1000 {
			n.s.fail("driver", "node %d: NextDeadline %v stays at or before now %v after Tick (busy loop)", n.id, deadline, n.localNow())
			return
		}
		at = n.s.now + time.Microsecond
	} else {
		n.pastDeadlines = 0
	}
	if n.tickScheduled && n.tickAt == at {
		return
	}
	n.tickToken++
	token := n.tickToken
	n.tickAt, n.tickScheduled = at, true
	n.s.schedule(at, "tick", n.id, func() {
		if token != n.tickToken || n.r == nil {
			return
		}
		n.tickScheduled = false
		n.r.Tick(n.localNow())
		n.settle()
	})
}

// tickNow brings the core's clock to the present before a Step, Propose or Read.
func (n *simNode) tickNow() { n.r.Tick(n.localNow()) }

// crash loses everything volatile: the core, unpersisted Ready content, in-flight disk
// writes, the state machine, pending client requests.
func (s *simulation) crash(n *simNode, why string) {
	if n.r == nil {
		return
	}
	s.logf("node %d crashes (%s)", n.id, why)
	s.inv.onCrash(n)
	n.driverNode.crash()
	n.tickToken++
	n.tickScheduled = false
	n.crashAfterPersist = false
	n.proposals = nil
	n.reads = nil
	n.waitingReads = nil
	n.published = ReadView{}
	n.downSince = s.now
	s.stats.crashes++
}

// start builds the core from what is on disk, at the node's local time: a first start or a
// restart after a crash.
func (s *simulation) start(n *simNode) {
	if n.r != nil || n.outside {
		return
	}
	if n.nextClock != nil {
		n.clock.offset = *n.nextClock - time.Duration(float64(s.now)*n.clock.rate)
		n.nextClock = nil
		n.clockEpoch++
	} else if coin := mix64(uint64(s.p.seed), n.id, uint64(n.incarnation)+1<<32); n.incarnation > 0 && coin&1 == 1 {
		// Half the restarts get a clock with a new origin, as a driver whose clock is per
		// process (or a rebooted machine) would: nothing the core persisted holds a time,
		// but echoes of the old clock may still be in flight. The new clock counts from the
		// new process's start, or a little below where the old one would be now, or on from
		// where the old one stood at the crash (as if it had stopped while the node was
		// down): in the last two, readings from before the crash look recent.
		var origin time.Duration
		switch coin >> 1 % 4 {
		case 0, 1:
			origin = time.Millisecond
		case 2:
			origin = n.localNow() - time.Duration(mix64(coin, 0x0b)%uint64(2*s.maxLease()))
		default:
			origin = n.clock.local(n.downSince) + time.Duration(mix64(coin, 0x0c)%uint64(s.p.heartbeat))
		}
		n.clock.offset = max(time.Millisecond, origin) - time.Duration(float64(s.now)*n.clock.rate)
		n.clockEpoch++
	}
	switch {
	case n.nextTiming != nil:
		s.logf("node %d restarts with new timing: %v", n.id, *n.nextTiming)
		n.setTiming(*n.nextTiming)
		n.nextTiming = nil
	case n.incarnation > 0 && s.p.retime > 0 && s.rng.Float64() < s.p.retime:
		t := s.p.profiles[s.rng.IntN(len(s.p.profiles))]
		s.logf("node %d restarts with new timing: %v", n.id, t)
		n.setTiming(t)
	}
	cfg := n.cfg
	cfg.Seed = int64(mix64(uint64(s.p.seed), n.id, uint64(n.incarnation)))
	cfg.BootID = mix64(uint64(s.p.seed), n.id, uint64(n.clockEpoch), 0xb007)
	if err := n.boot(cfg, n.localNow()); err != nil {
		s.fail("invariant", "%v", err)
		return
	}
	n.proposals = map[uint64]*pendingProposal{}
	n.reads = map[uint64]*clientReq{}
	n.pastDeadlines = 0
	if n.incarnation > 0 {
		s.logf("node %d restarts at local %v: term %d vote %d commit %d, log (%d..%d]", n.id, n.localNow(),
			n.disk.hs.Term, n.disk.hs.Vote, n.disk.hs.Commit, n.disk.snapshot.Index, n.disk.lastIndex())
	}
	s.inv.onStart(n)
	n.settle()
}

// send puts m on the wire from n, subject to partitions, loss, duplication and reordering.
func (s *simulation) send(from *simNode, m Message) {
	s.stats.messages++
	to := s.node(m.To)
	if to == nil {
		s.fail("invariant", "node %d sends %v to %d, which is not in the cluster", from.id, m.Type, m.To)
		return
	}
	var snap any // the snapshot's bytes: the sender's state machine image at it
	if m.Type == MsgSnap {
		snap = from.disk.image
		s.stats.snapshotsSent++
	}
	if s.holding[from.idx][to.idx] {
		s.held = append(s.held, heldMessage{from: from, to: to, m: m, snap: snap, sentAt: s.now})
		s.held[len(s.held)-1].m.Entries = cloneEntries(m.Entries)
		return
	}
	if s.blocked[from.idx][to.idx] > 0 || s.rng.Float64() < s.p.loss+s.linkLoss[from.idx][to.idx] {
		s.drop(from, to, m)
		return
	}
	copies := 1
	if s.rng.Float64() < s.p.dup {
		copies = 2
	}
	for range copies {
		delay := s.p.oneWay[from.idx][to.idx] + s.extraDelay[from.idx][to.idx] + s.randDuration(0, s.p.jitter)
		if s.rng.Float64() < s.p.reorder {
			delay += s.randDuration(0, s.p.reorderMax)
		}
		if s.p.late > 0 && s.rng.Float64() < s.p.late {
			delay += s.randDuration(0, s.p.lateMax)
		}
		msg := m
		msg.Entries = cloneEntries(m.Entries)
		e := s.after(delay, "deliver", to.id, func() { s.deliver(from, to, msg, snap) })
		e.msg = &msg
	}
}

// drop loses m; the sender's transport may notice and say so.
func (s *simulation) drop(from, to *simNode, m Message) {
	s.stats.dropped++
	if m.Type == MsgSnap {
		s.after(s.p.oneWay[from.idx][to.idx]*2, "report", from.id, func() {
			if from.r != nil {
				from.tickNow()
				from.r.ReportSnapshot(to.id, false)
				from.settle()
			}
		})
		return
	}
	if s.blocked[from.idx][to.idx] > 0 && s.rng.IntN(4) == 0 {
		s.after(s.p.oneWay[from.idx][to.idx]*2, "report", from.id, func() {
			if from.r != nil {
				from.tickNow()
				from.r.ReportUnreachable(to.id)
				from.settle()
			}
		})
	}
}

func (s *simulation) deliver(from, to *simNode, m Message, snap any) {
	if to.r == nil && s.p.holdForRestart && !s.healed && s.blocked[from.idx][to.idx] == 0 {
		// A network that keeps what it could not deliver: the message reaches the node's
		// next incarnation, carrying readings of clocks from before its restart.
		e := s.after(s.p.heartbeat, "deliver", to.id, func() { s.deliver(from, to, m, snap) })
		e.msg = &m
		return
	}
	if s.blocked[from.idx][to.idx] > 0 || to.r == nil {
		s.drop(from, to, m)
		return
	}
	s.arrive(from, to, m, snap)
}

// arrive steps m at to, which is up.
func (s *simulation) arrive(from, to *simNode, m Message, snap any) {
	if m.Type == MsgSnap {
		s.after(s.p.oneWay[to.idx][from.idx], "report", from.id, func() {
			if from.r != nil {
				from.tickNow()
				from.r.ReportSnapshot(to.id, true)
				from.settle()
			}
		})
	}
	to.tickNow()
	if err := to.stepMessage(m, snap); err != nil {
		s.fail("invariant", "node %d refused %s from node %d: %v", to.id, describeMessage(m), from.id, err)
		return
	}
	to.settle()
}

func cloneEntries(ents []Entry) []Entry {
	if len(ents) == 0 {
		return nil
	}
	return slices.Clone(ents)
}

func cloneKV(kv map[string]string) map[string]string {
	out := make(map[string]string, len(kv))
	for k, v := range kv {
		out[k] = v
	}
	return out
}

// mix64 derives independent 64-bit values from a few inputs (splitmix64 finalizer).
func mix64(vals ...uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, v := range vals {
		h ^= v + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
		h ^= h >> 30
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 27
		h *= 0x94d049bb133111eb
		h ^= h >> 31
	}
	return h
}
