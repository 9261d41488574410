package raft

import (
	"fmt"
	"slices"
	"time"
)

// The one driver of the core in this package's tests. Every harness runs its nodes as
// driverNodes: testNet (in-order delivery, for the unit tests), scene (scripted delivery and
// crashes, for the scenario tests), the simulator (an event queue, drifting clocks, simulated
// fsyncs) and the fuzz cluster (a schedule decoded from the fuzz input). A driverNode is a
// core with what a real node keeps around it: the disk it persisted to, a state machine and
// its applied index, and the Ready cycle carried out in the contract's order (types.go,
// Ready), with every Ready checked against that contract (contract_test.go). Time and the
// network are each harness's own business.
//
// The cycle comes in steps so that a harness can put time between them (the simulator's
// fsync, a fuzz schedule holding a Ready open, a scenario crashing after the write):
//
//	rd, err := n.take()              // the Ready, checked; send rd.Messages
//	err = n.persist()                // write it; send rd.MessagesAfterPersist
//	err = n.applyEntry(e)            // each of rd.CommittedEntries; answer rd.ReadStates
//	err = n.advance()                // Advance, and what the core then reports
//
// and cycle runs all four at once. Every step returns the first contract violation it finds,
// naming the node; the harness fails in its own way (t.Fatal, the simulator's failure
// record, the fuzz trace).

// entryLog is a log as a driver keeps it: a compaction point and the entries after it.
type entryLog struct {
	snapshot SnapshotMeta
	entries  []Entry
}

func (l *entryLog) lastIndex() uint64 { return l.snapshot.Index + uint64(len(l.entries)) }

// term returns the term at index i, and false if i is compacted away (below the snapshot)
// or beyond the end.
func (l *entryLog) term(i uint64) (uint64, bool) {
	switch {
	case i == l.snapshot.Index:
		return l.snapshot.Term, true
	case i < l.snapshot.Index || i > l.lastIndex():
		return 0, false
	}
	return l.entries[i-l.snapshot.Index-1].Term, true
}

func (l *entryLog) entry(i uint64) (Entry, bool) {
	if i <= l.snapshot.Index || i > l.lastIndex() {
		return Entry{}, false
	}
	return l.entries[i-l.snapshot.Index-1], true
}

// appendEntries stores ents, replacing the suffix from ents[0].Index. It refuses a gap, an
// overwrite of compacted entries or entries out of order, which would mean the core handed
// out an impossible Ready.
func (l *entryLog) appendEntries(ents []Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].Index
	if first <= l.snapshot.Index {
		return fmt.Errorf("entries from index %d overwrite the snapshot at %d", first, l.snapshot.Index)
	}
	if first > l.lastIndex()+1 {
		return fmt.Errorf("entries from index %d leave a gap after the last index %d", first, l.lastIndex())
	}
	for i, e := range ents {
		if e.Index != first+uint64(i) {
			return fmt.Errorf("entries are not contiguous: index %d follows %d", e.Index, first+uint64(i)-1)
		}
	}
	l.entries = append(l.entries[:first-l.snapshot.Index-1], ents...)
	return nil
}

// restartAt replaces the log with a snapshot the leader sent: every stored entry goes, as
// the Ready contract says.
func (l *entryLog) restartAt(meta SnapshotMeta) {
	l.snapshot, l.entries = meta, nil
}

// compact moves the compaction point up to meta, a snapshot of this node's own applied
// state. The entries after it stay if the log holds meta's entry; otherwise the log is the
// snapshot alone.
func (l *entryLog) compact(meta SnapshotMeta) {
	if meta.Index <= l.snapshot.Index {
		return
	}
	if t, ok := l.term(meta.Index); ok && t == meta.Term {
		l.entries = slices.Clone(l.entries[meta.Index-l.snapshot.Index:])
	} else {
		l.entries = nil
	}
	l.snapshot = meta
}

func (l *entryLog) clone() entryLog {
	return entryLog{snapshot: l.snapshot, entries: slices.Clone(l.entries)}
}

// driverDisk is what survives a crash: only what a Ready said to persist, once written, and
// the snapshots the node took itself.
type driverDisk struct {
	hs HardState
	entryLog
	// image is the state machine at entryLog.snapshot (nil before the first snapshot, and in
	// harnesses that keep no state machine).
	image any
}

// stateMachine is what a harness applies committed entries to. Harnesses that only look at
// the entries (testNet, scene, the fuzz cluster) keep none.
type stateMachine interface {
	// apply runs one committed entry; an error means the entry is not one the harness's
	// clients could have written.
	apply(e Entry) error
	// image is the state after the last entry applied, for a snapshot; it must not change
	// afterwards. restore replaces the state with an image (nil: the empty state).
	image() any
	restore(image any)
}

// snapshotImage is a snapshot a node received: what a MsgSnap's bytes carry.
type snapshotImage struct {
	meta  SnapshotMeta
	image any
}

// driverNode is one node: a core, its disk, its state machine and the Ready it is carrying
// out.
type driverNode struct {
	id  uint64
	cfg Config
	r   *Raft // the core; nil while the node is down
	// incarnation counts the node's crashes.
	incarnation int
	disk        driverDisk
	sm          stateMachine // nil: only the applied index is kept

	// Volatile: lost in a crash.
	appliedIndex, appliedTerm uint64
	// view is the log as the Readies handed it out, persisted or not.
	view entryLog
	// held is the Ready taken and not yet advanced.
	held *Ready
	// incoming holds the snapshots received and not yet installed.
	incoming []snapshotImage
	contract contractState
}

func newDriverNode(cfg Config, sm stateMachine) driverNode {
	return driverNode{id: cfg.ID, cfg: cfg, sm: sm}
}

// boot builds the core from the disk at now on the node's clock: a first start, or a
// restart after crash. cfg is the configuration this start runs with.
func (n *driverNode) boot(cfg Config, now time.Duration) error {
	restored := Restored{
		HardState: n.disk.hs,
		Snapshot:  n.disk.snapshot,
		Entries:   slices.Clone(n.disk.entries),
		Applied:   n.disk.snapshot.Index,
	}
	r, err := New(cfg, restored, now)
	if err != nil {
		return fmt.Errorf("node %d does not restart from what it persisted (hard state %+v, snapshot %+v, %d entries): %w",
			n.id, n.disk.hs, n.disk.snapshot, len(n.disk.entries), err)
	}
	n.r, n.held, n.incoming = r, nil, nil
	n.view = n.disk.entryLog.clone()
	n.appliedIndex, n.appliedTerm = n.disk.snapshot.Index, n.disk.snapshot.Term
	if n.sm != nil {
		n.sm.restore(n.disk.image)
	}
	return n.checkBoot()
}

// crash loses everything volatile: the core, the Ready being carried out (a write in flight
// never completes) and the snapshots received but not installed. The disk stays.
func (n *driverNode) crash() {
	n.r, n.held, n.incoming = nil, nil, nil
	n.view = entryLog{}
	n.incarnation++
}

// take hands out the core's next Ready, checked before anything is done with it. It stays
// held until advance.
func (n *driverNode) take() (*Ready, error) {
	had := n.r.HasReady()
	rd := n.r.Ready()
	n.held = &rd
	return n.held, n.checkReady(had, n.held)
}

// persist writes the held Ready to the disk (HardState, snapshot, entries) and checks what
// the disk then holds, and that what waited for the write (MessagesAfterPersist) depends on
// nothing else. A snapshot replaces the state machine once it is durable.
func (n *driverNode) persist() error {
	rd := n.held
	if err := n.checkHardStateSuccession(rd); err != nil {
		return err
	}
	if rd.HardState != nil {
		n.disk.hs = *rd.HardState
	}
	if rd.Snapshot != nil {
		meta := *rd.Snapshot
		i := slices.IndexFunc(n.incoming, func(in snapshotImage) bool { return sameSnapshot(in.meta, meta) })
		if i < 0 {
			return fmt.Errorf("node %d: Ready asks to persist snapshot %+v, which never arrived", n.id, meta)
		}
		image := n.incoming[i].image
		n.disk.restartAt(meta)
		n.disk.image = image
		if n.sm != nil {
			n.sm.restore(image)
		}
		n.appliedIndex, n.appliedTerm = meta.Index, meta.Term
		n.incoming = slices.DeleteFunc(n.incoming, func(in snapshotImage) bool { return in.meta.Index <= meta.Index })
	}
	if err := n.disk.appendEntries(rd.Entries); err != nil {
		return fmt.Errorf("node %d: persisting Ready entries: %w", n.id, err)
	}
	return n.checkPersisted(rd)
}

// applyEntry applies one of the held Ready's CommittedEntries, in order.
func (n *driverNode) applyEntry(e Entry) error {
	if err := n.checkApply(e); err != nil {
		return err
	}
	if n.sm != nil {
		if err := n.sm.apply(e); err != nil {
			return fmt.Errorf("node %d: committed entry %d: %w", n.id, e.Index, err)
		}
	}
	n.appliedIndex, n.appliedTerm = e.Index, e.Term
	return nil
}

// advance checks the held Ready's answers to reads, calls Advance and checks what the core
// then reports.
func (n *driverNode) advance() error {
	rd := n.held
	if err := n.checkAnswers(rd); err != nil {
		return err
	}
	n.r.Advance(*rd)
	n.held = nil
	return n.checkAdvanced()
}

// cycle carries out one whole Ready at once, with send putting each message on the
// harness's network, and returns it.
func (n *driverNode) cycle(send func(Message)) (Ready, error) {
	rd, err := n.take()
	if err != nil {
		return *rd, err
	}
	for _, m := range rd.Messages {
		send(m)
	}
	if err := n.persist(); err != nil {
		return *rd, err
	}
	for _, m := range rd.MessagesAfterPersist {
		send(m)
	}
	for _, e := range rd.CommittedEntries {
		if err := n.applyEntry(e); err != nil {
			return *rd, err
		}
	}
	return *rd, n.advance()
}

// compact takes a snapshot of the state machine at the applied index and compacts the
// core's log and the disk to it, as a node does to keep its log short.
func (n *driverNode) compact() (SnapshotMeta, error) {
	meta := SnapshotMeta{Index: n.appliedIndex, Term: n.appliedTerm}
	if err := n.r.Compact(meta); err != nil {
		return meta, err
	}
	if meta.Index <= n.disk.snapshot.Index {
		return meta, nil
	}
	if held := n.r.BasicStatus().Snapshot; sameSnapshot(held, meta) {
		meta = held // as the core keeps it, with what it adds (the membership as of meta.Index)
	}
	if n.sm != nil {
		n.disk.image = n.sm.image()
	}
	n.disk.compact(meta)
	n.view.compact(meta)
	return meta, nil
}

// stepMessage steps m on the core. A MsgSnap's bytes (image, the sender's state machine
// image; nil without one) are stored first, as a node's transport does.
func (n *driverNode) stepMessage(m Message, image any) error {
	if m.Type == MsgSnap {
		n.incoming = append(n.incoming, snapshotImage{meta: m.Snapshot, image: image})
	}
	return n.r.Step(m)
}

// read asks the core for a read. A harness whose every read goes through here sets
// contract.readsAsked, and the contract then checks each answer against what was asked.
func (n *driverNode) read(id uint64, mode ReadMode) error {
	err := n.r.Read(id, mode)
	if err == nil && n.contract.readsAsked {
		n.contract.pending[id] = true
	}
	return err
}

// readyRecord keeps what a node's Readies handed out in its current incarnation, for tests
// that look at it afterwards.
type readyRecord struct {
	applied []Entry
	reads   []ReadState
	dropped []DroppedRead
	events  []Event
}

func (rec *readyRecord) add(rd Ready) {
	rec.applied = append(rec.applied, rd.CommittedEntries...)
	rec.reads = append(rec.reads, rd.ReadStates...)
	rec.dropped = append(rec.dropped, rd.DroppedReads...)
	rec.events = append(rec.events, rd.Events...)
}

func (rec *readyRecord) hasEvent(k EventKind) bool {
	return slices.ContainsFunc(rec.events, func(e Event) bool { return e.Kind == k })
}
