// Package node is georaftd: it drives the consensus core, makes its state durable, talks to
// peers over the transport and serves the key-value API.
//
// One goroutine, the loop, owns the core. Everything else talks to it through channels:
// messages from peers, proposals, reads and control requests. Each turn of the loop ticks the
// core with a fresh monotonic reading, feeds it what arrived, and handles one Ready: send the
// leader's messages, write the WAL with one fsync for everything that accumulated meanwhile
// (group commit), send what had to wait for the disk, apply, and advance.
//
// Lease and stale reads do not enter the loop. After every turn the loop publishes the core's
// raft.ReadView as it is (the leader's lease or a holder's read lease, its end on the node's
// clock and the index a read must see applied; the stale-read window); a read checks the
// clock against it, waits for the state machine to reach that index, and answers. The view
// is published before any message of the turn leaves, so a lease given up for a leadership
// transfer is withdrawn before the transferee can learn of it, and a holder's view covers
// every entry before its acknowledgement of it leaves.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/node/snapshot"
	"github.com/georaft/georaft/node/transport"
	"github.com/georaft/georaft/node/wal"
	"github.com/georaft/georaft/raft"
)

// maxClientSessions bounds the exactly-once session table. A client whose session was evicted
// (after this many other clients wrote since) loses only duplicate suppression for a retry in
// flight at that moment.
const maxClientSessions = 100_000

// Node is one georaft member.
type Node struct {
	cfg   *config.Config
	id    uint64
	log   *slog.Logger
	clock *monoClock
	m     *metrics
	dump  *dumpLog

	core   *raft.Raft // owned by the loop goroutine
	wal    *wal.WAL
	snaps  *snapshot.Store
	store  *mvcc.Store
	tr     *transport.Transport
	out    outbox // where the loop's messages leave: tr, or a test's wrapper around it
	fwd    *forwarder
	lessor *lessor

	msgc  chan inbound
	propc chan *proposal
	readc chan *readRequest
	ctrlc chan func()
	stopc chan struct{}
	donec chan struct{}
	// drainc closes when the node starts to stop: long-lived client streams (etcd watches,
	// lease keep-alives) end then, so their clients move to another member at once instead
	// of holding the graceful stop up.
	drainc    chan struct{}
	drainOnce sync.Once

	// Loop-only state.
	waiters      map[uint64]*proposal // by log index
	pendingReads map[uint64]*readRequest
	nextReadID   uint64
	lastSnapshot raft.SnapshotMeta
	// lastSync is the index the state machine was last made durable at; the log may be
	// compacted less far (finishSnapshot), and the next sync counts from here.
	lastSync     uint64
	snapshotting bool
	// autoRemoving is set while an automatic removal runs (autoremove.go);
	// autoRemoveBlocked is the last reason one was held back, logged once.
	autoRemoving      atomic.Bool
	autoRemoveBlocked string
	lastLeader        uint64
	lastRole          raft.Role
	// The hard state last made durable, and the newest the core handed out (which may differ
	// only in its commit index).
	syncedHardState raft.HardState
	latestHardState raft.HardState

	// Shared with request goroutines.
	view    atomic.Pointer[raft.ReadView]
	pending *pendingKeys // entries held but not applied, by the keys they touch
	// maxStaleness is timing.max_staleness as the core takes it: the view's StaleUntil is
	// the last contact that dates the state plus this.
	maxStaleness time.Duration
	applyWake    atomic.Pointer[chan struct{}]
	failed       atomic.Pointer[errFailed]
	stopping     atomic.Bool
	statusMu     sync.Mutex
	lastStatus   raft.Status // the core's BasicStatus as of the last turn: no per-peer progress
	stopOnce     sync.Once

	// Membership (members.go, join.go, datadir.go).
	lock          *dataDirLock
	ident         identity
	initialVoters []uint64
	joinHints     map[uint64]config.Peer
	memberView    atomic.Pointer[memberView]
	removed       atomic.Bool
	removedc      chan struct{} // closed with removed
	membersDirty  bool          // loop-only: an applied entry or snapshot may have changed the view
	startupNotes  []string
}

// inbound is a batch of peer messages and when the transport handed it over. The core is
// ticked to that time, not to when the loop gets to it: after a stall (a slow fsync) the
// replies that arrived meanwhile count before timers such as CheckQuorum fire. A later time
// than the true arrival is the safe side of every lease rule.
type inbound struct {
	msgs []raft.Message
	at   time.Duration
}

type proposal struct {
	data  []byte
	term  uint64
	index uint64
	done  chan proposalResult
}

type proposalResult struct {
	index  uint64
	result mvcc.Result
	err    error
}

// writeIndex is where the write took effect: for a retry of an already applied write, the
// original entry, not the retry's.
func (r proposalResult) writeIndex() uint64 {
	if r.result.Index != 0 {
		return r.result.Index
	}
	return r.index
}

type readRequest struct {
	id     uint64
	mode   raft.ReadMode
	served raft.ReadMode
	done   chan readResult
}

type readResult struct {
	index  uint64
	served raft.ReadMode
	err    error
}

// open recovers a node from its data directory (or creates it, or joins the cluster with
// it) without starting it. clientTLS dials other members' client ports (nil: plaintext).
func open(cfg *config.Config, logger *slog.Logger, fsys wal.FS, clientTLS *tls.Config) (*Node, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Node.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", cfg.Node.DataDir, err)
	}
	// Before anything is written there: a second process must not touch dump.txt either.
	lock, err := lockDataDir(cfg.Node.DataDir)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		id:           cfg.Node.ID,
		log:          logger,
		clock:        newMonoClock(),
		msgc:         make(chan inbound, 1024),
		propc:        make(chan *proposal, 4096),
		readc:        make(chan *readRequest, 4096),
		ctrlc:        make(chan func(), 256),
		stopc:        make(chan struct{}),
		donec:        make(chan struct{}),
		drainc:       make(chan struct{}),
		waiters:      make(map[uint64]*proposal),
		pendingReads: make(map[uint64]*readRequest),
		maxStaleness: cfg.Timing.StalenessBound(),
		lock:         lock,
		removedc:     make(chan struct{}),
	}
	wake := make(chan struct{})
	n.applyWake.Store(&wake)
	n.view.Store(&raft.ReadView{})
	n.pending = newPendingKeys()

	requests, err := ParseRequestDump(cfg.Log.DumpRequests)
	if err != nil {
		lock.release()
		return nil, err
	}
	if n.dump, err = openDumpLog(cfg.Node.DataDir, 0, requests); err != nil {
		lock.release()
		return nil, err
	}
	refuse := func(err error) (*Node, error) {
		n.dump.Printf("start-up refused: %v", err)
		n.dump.Close()
		lock.release()
		return nil, err
	}
	if err := n.establishIdentity(clientTLS); err != nil {
		return refuse(err)
	}
	self := cfg.Node.ID
	n.id = self
	n.log = logger.With("node", self)
	n.m = newMetrics(self)
	n.dump.Printf("node %d starting in region %s, cluster %s", self, cfg.Node.Region, cfg.ClusterID)
	if !n.clock.countsSuspend {
		n.log.Warn("this platform's clock may stop while the machine sleeps: lease reads are answered through ReadIndex and bounded-staleness reads are refused")
		n.dump.Printf("clock may stop during suspend: lease reads go through ReadIndex, stale reads are refused")
	}
	for _, note := range n.startupNotes {
		n.dump.Printf("membership: %s", note)
	}
	if err := n.recover(fsys); err != nil {
		return refuse(err)
	}
	return n, nil
}

// recover reads the snapshot and WAL back and builds the core from them.
func (n *Node) recover(fsys wal.FS) error {
	cfg := n.cfg
	var err error
	n.snaps, err = snapshot.NewStore(filepath.Join(cfg.Node.DataDir, "snap"), fsys)
	if err != nil {
		return err
	}
	w, rec, err := wal.Open(wal.Options{
		Dir:          filepath.Join(cfg.Node.DataDir, "wal"),
		SegmentBytes: cfg.Storage.SegmentBytes,
		FS:           fsys,
		Logger:       n.log,
	})
	if err != nil {
		return err
	}
	n.wal = w
	if rec.TornTail != nil {
		n.dump.Printf("recovered from a torn WAL tail: %v", rec.TornTail)
		n.log.Warn("truncated a torn WAL tail", "tail", rec.TornTail)
	}
	latestCache := cfg.Storage.LatestCacheBytes
	if latestCache == 0 {
		latestCache = -1 // mvcc's "none"; its zero means the default
	}
	n.store, err = mvcc.Open(filepath.Join(cfg.Node.DataDir, "state"), mvcc.Options{
		CacheBytes:       cfg.Storage.BlockCacheBytes,
		LatestCacheBytes: latestCache,
		MaxSessions:      maxClientSessions,
		Logger:           n.log.With("component", "mvcc"),
	})
	if err != nil {
		w.Close()
		return err
	}
	if rec.Snapshot.Index > 0 {
		// The engine is durable up to where the log was compacted, except in a data directory
		// written before the engine existed, or after a crash while a snapshot was installed:
		// then the snapshot file brings it there.
		if applied, _ := n.store.Applied(); applied < rec.Snapshot.Index {
			if err := n.restoreSnapshot(rec.Snapshot); err != nil {
				w.Close()
				n.store.Close()
				return fmt.Errorf("the WAL starts after snapshot %d (term %d), but it cannot be loaded: %w",
					rec.Snapshot.Index, rec.Snapshot.Term, err)
			}
			n.dump.Printf("state machine loaded from snapshot file %d", rec.Snapshot.Index)
		}
		n.lastSnapshot = rec.Snapshot
	}
	rcfg := cfg.RaftConfig()
	rcfg.BootID = n.clock.bootID
	// The log starts from the voters the cluster was created with, as member.json recorded
	// them, whatever peers[] says now.
	rcfg.ID, rcfg.Peers = n.id, n.initialVoters
	core, err := raft.New(rcfg, raft.Restored{
		HardState: rec.HardState,
		Snapshot:  rec.Snapshot,
		Entries:   rec.Entries,
		Applied:   rec.Snapshot.Index,
	}, n.clock.Now())
	if err != nil {
		w.Close()
		return fmt.Errorf("restore consensus state: %w", err)
	}
	n.core = core
	// The entries the log holds beyond the state machine, for the per-key read wait.
	applied, _ := n.store.Applied()
	n.pending.appliedTo(applied)
	n.pending.note(rec.Entries)
	n.syncedHardState, n.latestHardState = rec.HardState, rec.HardState
	n.dump.Printf("recovered term %d, vote %d, commit %d, %d log entries after snapshot %d",
		rec.HardState.Term, rec.HardState.Vote, rec.HardState.Commit, len(rec.Entries), rec.Snapshot.Index)
	return nil
}

func (n *Node) restoreSnapshot(meta raft.SnapshotMeta) error {
	r, _, err := n.snaps.Open(meta)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := n.store.Restore(r); err != nil {
		return fmt.Errorf("load snapshot %d: %w", meta.Index, err)
	}
	return nil
}

// outbox is what the loop needs to send to its peers.
type outbox interface {
	Send(msgs []raft.Message)
	SendSnapshot(to, term uint64, meta raft.SnapshotMeta, open func() (io.ReadCloser, int64, error))
}

// testingWrapOutbox, set only by tests, wraps each node's outbox, to look at what leaves and
// when.
var testingWrapOutbox func(*Node, outbox) outbox

// attachTransport connects the node to its peers. It is separate from open because the
// transport needs the node as its handler.
func (n *Node) attachTransport(tr *transport.Transport) {
	n.tr, n.out = tr, tr
	if testingWrapOutbox != nil {
		n.out = testingWrapOutbox(n, tr)
	}
}

// start runs the loop.
func (n *Node) start() {
	n.publish()
	n.refreshMembers()
	n.lessor = newLessor(n)
	go n.run()
	go n.maintainMembership()
	go n.refreshMetrics()
	go n.lessor.run()
	go n.runPlacement()
}

// run is the loop: the only goroutine that touches the core.
func (n *Node) run() {
	defer close(n.donec)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if n.failed.Load() != nil {
			return
		}
		// Checked every turn: under steady load the loop never reaches the select below.
		select {
		case <-n.stopc:
			return
		default:
		}
		// Inputs first, each at its own arrival time; only then the timers that are due now.
		n.drainInputs()
		n.core.Tick(n.clock.Now())
		if n.core.HasReady() {
			rd := n.core.Ready()
			if err := n.handleReady(&rd); err != nil {
				n.failStop(err)
				return
			}
			n.core.Advance(rd)
			// The core applies membership changes on Advance: the view and the transport
			// follow before the next Ready sends anything to a new member.
			if n.membersDirty {
				n.membersDirty = false
				n.refreshMembers()
				if n.removed.Load() {
					n.failStop(errMemberRemoved)
					return
				}
			}
			continue
		}
		n.publish()

		wait := n.clock.Until(n.core.NextDeadline())
		if wait < 0 {
			wait = 0
		}
		timer.Reset(wait)
		select {
		case <-n.stopc:
			return
		case in := <-n.msgc:
			n.stepAll(in)
		case p := <-n.propc:
			n.propose(p)
		case r := <-n.readc:
			n.read(r)
		case f := <-n.ctrlc:
			f()
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// drainInputs takes everything already queued, so one Ready (and one fsync) covers it all.
func (n *Node) drainInputs() {
	const budget = 4096
	for i := 0; i < budget; i++ {
		select {
		case in := <-n.msgc:
			n.stepAll(in)
		case p := <-n.propc:
			n.propose(p)
		case r := <-n.readc:
			n.read(r)
		case f := <-n.ctrlc:
			f()
		default:
			return
		}
	}
}

// stepAll steps a batch at its arrival time (the core ignores a time before its latest).
func (n *Node) stepAll(in inbound) {
	n.core.Tick(in.at)
	msgs := in.msgs
	for i := range msgs {
		if err := n.core.Step(msgs[i]); err != nil {
			n.log.Debug("message refused by the core", "type", msgs[i].Type, "from", msgs[i].From, "err", err)
		}
	}
}

func (n *Node) propose(p *proposal) {
	index, term, err := n.core.Propose(p.data)
	if err != nil {
		p.done <- proposalResult{err: err}
		return
	}
	p.index, p.term = index, term
	n.waiters[index] = p
}

func (n *Node) read(r *readRequest) {
	// A lease is judged at the current time, never at an older one.
	n.core.Tick(n.clock.Now())
	n.nextReadID++
	r.id = n.nextReadID
	r.served = r.mode
	err := n.core.Read(r.id, r.mode)
	if errors.Is(err, raft.ErrLeaseNotHeld) && n.cfg.Timing.LeaseReadFallback {
		n.m.readFallbacks.Inc()
		r.served = raft.ReadIndex
		err = n.core.Read(r.id, raft.ReadIndex)
	}
	if err != nil {
		r.done <- readResult{err: err}
		return
	}
	n.pendingReads[r.id] = r
}

// handleReady carries out one Ready in the order its contract demands.
func (n *Node) handleReady(rd *raft.Ready) error {
	// Publish first: a lease given up in this turn must be withdrawn before any message of
	// the turn (a TimeoutNow) can reach the transferee, and a holder's view must name the
	// entries it is about to acknowledge (their keys noted first) before the
	// acknowledgements leave. Readers wait for the view's indexes to be applied, so a view
	// ahead of the state machine is safe.
	n.pending.note(rd.Entries)
	if !testingPublishAfterSend {
		n.publish()
	}
	n.send(rd.Messages)

	if rd.Snapshot != nil {
		if err := n.installSnapshot(*rd.Snapshot); err != nil {
			return err
		}
		n.membersDirty = true
	}
	// Committed entries are durable on a quorum already, so they are applied (and their
	// writers answered) before this node's own fsync rather than after it: under load that
	// takes one fsync off every write's latency. Nothing that depends on this node's disk
	// leaves before the fsync below.
	if err := n.apply(rd.CommittedEntries); err != nil {
		return err
	}
	n.publish()
	n.answerReads(rd)

	if err := n.persist(rd.HardState, rd.Entries); err != nil {
		return err
	}
	n.send(rd.MessagesAfterPersist)

	n.dump.Events(rd.Events)
	n.noteRoleChange()
	n.maybeSnapshot()
	return nil
}

// persist writes entries and hard state to the WAL with one fsync, when something needs it.
// A hard state that only moves the commit index, or lowers the lease bound, is not worth an
// fsync of its own: Raft does not need the commit index to be durable (a restarted node
// learns it again), and an older, higher bound only makes a restart assume a longer lease.
// Such a change rides along with the next write that must sync, or with a clean shutdown. A
// raised bound must be durable before the acknowledgement that promises it leaves.
func (n *Node) persist(hs *raft.HardState, entries []raft.Entry) error {
	if hs != nil {
		n.latestHardState = *hs
	}
	mustSync := hs != nil && (hs.Term != n.syncedHardState.Term || hs.Vote != n.syncedHardState.Vote ||
		hs.LeaseBound > n.syncedHardState.LeaseBound)
	if len(entries) == 0 && !mustSync {
		return nil
	}
	var save *raft.HardState
	if n.latestHardState != n.syncedHardState {
		latest := n.latestHardState
		save = &latest
	}
	start := time.Now()
	if err := n.wal.Save(save, entries); err != nil {
		return fmt.Errorf("write ahead log: %w", err)
	}
	n.m.fsync.Observe(time.Since(start).Seconds())
	if len(entries) > 0 {
		n.m.walBatch.Observe(float64(len(entries)))
	}
	n.syncedHardState = n.latestHardState
	return nil
}

// flushHardState makes the latest commit index durable before a clean stop, so a restart
// resumes from it instead of learning it again.
func (n *Node) flushHardState() error {
	if n.latestHardState == n.syncedHardState || n.Failed() != nil {
		return nil
	}
	latest := n.latestHardState
	if err := n.wal.Save(&latest, nil); err != nil {
		return fmt.Errorf("write ahead log: %w", err)
	}
	n.syncedHardState = latest
	return nil
}

// answerReads hands confirmed reads their index (the reader waits for it to be applied) and
// fails the reads the core gave up on.
func (n *Node) answerReads(rd *raft.Ready) {
	for _, rs := range rd.ReadStates {
		if r, ok := n.pendingReads[rs.ID]; ok {
			delete(n.pendingReads, rs.ID)
			r.done <- readResult{index: rs.Index, served: r.served}
		}
	}
	for _, dr := range rd.DroppedReads {
		if r, ok := n.pendingReads[dr.ID]; ok {
			delete(n.pendingReads, dr.ID)
			r.done <- readResult{err: dr.Err}
		}
	}
}

// send hands messages to the transport; snapshots go through their own stream.
func (n *Node) send(msgs []raft.Message) {
	if len(msgs) == 0 || n.out == nil {
		return
	}
	if !slices.ContainsFunc(msgs, func(m raft.Message) bool { return m.Type == raft.MsgSnap }) {
		n.out.Send(msgs)
		return
	}
	regular := msgs[:0:0]
	for _, m := range msgs {
		if m.Type == raft.MsgSnap {
			n.sendSnapshot(m)
			continue
		}
		regular = append(regular, m)
	}
	if len(regular) > 0 {
		n.out.Send(regular)
	}
}

func (n *Node) sendSnapshot(m raft.Message) {
	meta := m.Snapshot
	n.dump.Printf("term %d: sending snapshot at index %d to node %d", m.Term, meta.Index, m.To)
	n.out.SendSnapshot(m.To, m.Term, meta, func() (io.ReadCloser, int64, error) {
		return n.openSnapshot(meta)
	})
}

// apply runs committed entries through the state machine and answers their writers. An error
// is the engine's: the node must stop.
func (n *Node) apply(entries []raft.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	// One engine batch for them all; writers are answered once it is committed.
	err := n.store.ApplyAll(entries, func(i int, res mvcc.Result) {
		e := &entries[i]
		if isMembershipEntry(e) {
			n.membersDirty = true
		}
		p, ok := n.waiters[e.Index]
		if !ok {
			return
		}
		delete(n.waiters, e.Index)
		if p.term != e.Term {
			p.done <- proposalResult{err: errProposalLost}
			return
		}
		p.done <- proposalResult{index: e.Index, result: res}
	})
	if err != nil {
		return fmt.Errorf("state machine: %w", err)
	}
	last := entries[len(entries)-1].Index
	n.pending.appliedTo(last)
	n.dump.Request("applied entries up to index %d", last)
	// Wake every reader waiting for the state machine to catch up.
	fresh := make(chan struct{})
	old := n.applyWake.Swap(&fresh)
	close(*old)
	return nil
}

// publish refreshes what request goroutines read without entering the loop: the core's read
// view as it is (raft.ReadView), and its status.
func (n *Node) publish() {
	v := n.core.ReadView()
	n.view.Store(&v)
	st := n.core.BasicStatus()
	n.statusMu.Lock()
	n.lastStatus = st
	n.statusMu.Unlock()
}

// metricsInterval is how often the gauges that mirror the core's state are refreshed: often
// enough for dashboards, rare enough to stay off the loop's hot path.
const metricsInterval = 500 * time.Millisecond

// refreshMetrics keeps the gauges current until the loop ends.
func (n *Node) refreshMetrics() {
	t := time.NewTicker(metricsInterval)
	defer t.Stop()
	for {
		// The full status (with the leader's per-peer progress, for replication lag) is read
		// on the loop here, twice a second, rather than published on every turn.
		ctx, cancel := context.WithTimeout(context.Background(), metricsInterval)
		st, err := n.Status(ctx)
		cancel()
		if err != nil {
			st = n.statusSnapshot()
		}
		n.m.observeStatus(&st)
		n.observeMemberHealth(&st)
		n.maybeAutoRemove(&st)
		if n.tr != nil {
			for _, id := range n.members().ids() {
				if id != n.id {
					n.m.observePeerRTT(id, n.tr.RTT(id))
				}
			}
		}
		select {
		case <-t.C:
		case <-n.donec:
			return
		}
	}
}

// noteRoleChange fails proposals' hopes early and logs leadership changes.
func (n *Node) noteRoleChange() {
	st := n.statusSnapshot()
	if st.Role == n.lastRole && st.Leader == n.lastLeader {
		return
	}
	n.log.Info("role changed", "role", st.Role, "term", st.Term, "leader", st.Leader)
	n.lastRole, n.lastLeader = st.Role, st.Leader
}

func (n *Node) statusSnapshot() raft.Status {
	n.statusMu.Lock()
	defer n.statusMu.Unlock()
	return n.lastStatus
}

// failStop stops the node after a storage failure: it must never acknowledge anything again,
// because what it acknowledged might not be on disk.
func (n *Node) failStop(err error) {
	f := &errFailed{cause: err}
	if !n.failed.CompareAndSwap(nil, f) {
		return
	}
	if errors.Is(err, errMemberRemoved) {
		n.log.Warn("removed from the cluster: the node stops serving")
	} else {
		n.log.Error("storage failure: the node stops serving and acknowledging", "err", err)
		n.dump.Printf("FAILED: %v; the node stops serving and acknowledging", err)
	}
	n.dump.Flush()
	n.view.Store(&raft.ReadView{})
	for idx, p := range n.waiters {
		delete(n.waiters, idx)
		p.done <- proposalResult{err: f}
	}
	for id, r := range n.pendingReads {
		delete(n.pendingReads, id)
		r.done <- readResult{err: f}
	}
	if n.tr != nil {
		n.tr.Close()
	}
}

// Failed reports the storage error that stopped the node, if any.
func (n *Node) Failed() error {
	if f := n.failed.Load(); f != nil {
		return f
	}
	return nil
}

// do runs f on the loop and waits for it.
func (n *Node) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case n.ctrlc <- func() { f(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stoppedErr()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.donec:
		return n.stoppedErr()
	}
}

func (n *Node) stoppedErr() error {
	if err := n.Failed(); err != nil {
		return err
	}
	return errShuttingDown
}

// clientAddressOf is where clients reach a node, for redirects.
func (n *Node) clientAddressOf(id uint64) string {
	if p, ok := n.peerInfo(id); ok {
		return p.ClientAddress
	}
	return ""
}

// drain ends the long-lived client streams.
func (n *Node) drain() { n.drainOnce.Do(func() { close(n.drainc) }) }

// testingPublishAfterSend turns off the publish before a Ready's messages leave, so that a
// test can show it catches a lease still published when TimeoutNow leaves.
var testingPublishAfterSend bool
