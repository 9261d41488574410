package raft

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/georaft/georaft/history"
)

// kvOp is a client command as it travels through the log: Set and Delete change a key; a
// Get proposed as a log read changes nothing but returns the value at its log position.
type kvOp struct {
	kind  history.Kind
	key   string
	value string // Set: the value; Get (log read): a unique tag so every entry differs
}

func (op kvOp) encode() []byte {
	var kind byte
	switch op.kind {
	case history.Set:
		kind = 'S'
	case history.Delete:
		kind = 'D'
	case history.Get:
		kind = 'G'
	}
	b := make([]byte, 0, 2+len(op.key)+len(op.value))
	b = append(b, kind)
	b = append(b, op.key...)
	b = append(b, 0)
	return append(b, op.value...)
}

func decodeOp(data []byte) (kvOp, error) {
	if len(data) < 2 {
		return kvOp{}, fmt.Errorf("command of %d bytes is too short", len(data))
	}
	var op kvOp
	switch data[0] {
	case 'S':
		op.kind = history.Set
	case 'D':
		op.kind = history.Delete
	case 'G':
		op.kind = history.Get
	default:
		return kvOp{}, fmt.Errorf("unknown command kind %q", data[0])
	}
	key, value, ok := strings.Cut(string(data[1:]), "\x00")
	if !ok {
		return kvOp{}, fmt.Errorf("command %q has no key terminator", data)
	}
	op.key, op.value = key, value
	return op, nil
}

type applyResult struct {
	found bool
	value string
}

func (op kvOp) applyTo(sm map[string]string) applyResult {
	switch op.kind {
	case history.Set:
		sm[op.key] = op.value
	case history.Delete:
		delete(sm, op.key)
	case history.Get:
		v, ok := sm[op.key]
		return applyResult{found: ok, value: v}
	}
	return applyResult{}
}

// simClient issues one operation at a time against the cluster, like a client library:
// it starts at the leader it believes in, follows NotLeader hints, retries what was
// certainly not proposed, and gives up at its timeout.
type simClient struct {
	s      *simulation
	id     int
	home   int    // index of the node in the client's region: latencies are that node's
	leader uint64 // last leader hint
	seq    int
	probe  bool // the liveness probe: writes until one succeeds
	busy   bool
}

// clientReq is one operation in flight.
type clientReq struct {
	id     uint64
	c      *simClient
	op     kvOp
	mode   ReadMode // Get: the mode asked for
	call   *history.Call
	done   bool
	node   uint64 // where the current attempt went
	readID uint64 // the current attempt's read id

	// outstanding is set while an attempt awaits its answer: a write with an attempt
	// outstanding at its timeout may have been proposed, so its outcome is unknown.
	outstanding bool
	asked       ReadMode // the mode of the core Read call (after a lease fallback)
	servedMode  ReadMode
	fellBack    bool
	attempts    int
	tooStale    int
}

type replyKind uint8

const (
	replyOK        replyKind = iota
	replyNotLeader           // not proposed: try the hinted leader
	replyRetry               // not proposed or read not served: try again elsewhere
	replyFailed              // definitely did not take effect
)

func (s *simulation) historyMode(m ReadMode) history.Mode {
	switch m {
	case ReadLease:
		return history.ModeLease
	case ReadIndex:
		return history.ModeIndex
	case ReadLog:
		return history.ModeLog
	}
	return history.ModeStale
}

// clientLatency is the one-way delay between a client and a node: the client sits next to
// its home node.
func (s *simulation) clientLatency(c *simClient, node int) time.Duration {
	return s.p.oneWay[c.home][node] + s.p.clientHop + s.randDuration(0, s.p.jitter)
}

// next schedules the client's next operation after a think time.
func (c *simClient) next() {
	s := c.s
	c.busy = false
	if s.now >= s.clientsStop && !c.probe {
		return
	}
	s.after(s.randDuration(0, s.p.think), "client", 0, c.issue)
}

func (c *simClient) issue() {
	s := c.s
	if (s.now >= s.clientsStop && !c.probe) || s.failure != nil {
		return
	}
	c.busy = true
	c.seq++
	s.nextReqID++
	req := &clientReq{id: s.nextReqID, c: c}
	req.op.key = fmt.Sprintf("k%d", s.rng.IntN(s.p.keys))
	x := s.rng.Float64()
	if s.now < s.writesPausedUntil && !c.probe {
		x = 1 // reads only: nothing is appended to the log
	}
	switch {
	case c.probe || x < s.p.mix.set:
		req.op.kind = history.Set
		req.op.value = fmt.Sprintf("c%d.%d", c.id, c.seq)
	case x < s.p.mix.set+s.p.mix.del:
		req.op.kind = history.Delete
	default:
		req.op.kind = history.Get
		req.mode = s.p.mix.readMode(s.rng.Float64())
		if req.mode == ReadLog && s.now < s.writesPausedUntil {
			req.mode = ReadLease // a log read appends to the log too
		}
		if req.mode == ReadLog {
			req.op.value = fmt.Sprintf("read c%d.%d", c.id, c.seq)
		}
	}
	in := history.Op{ClientID: c.id, Kind: req.op.kind, Key: req.op.key, Value: req.op.value}
	if req.op.kind == history.Get {
		in.Value = ""
		in.Mode = s.historyMode(req.mode)
	}
	req.call = s.rec.Begin(in)
	s.stats.ops++
	timeout := s.p.clientTimeout
	if c.probe {
		timeout = 3 * s.p.electionMax
	}
	s.after(timeout, "client", 0, func() { c.timeout(req) })
	c.sendAttempt(req, c.pickNode(req))
}

// pickNode chooses where an attempt goes: the hinted leader mostly, any node sometimes (a
// client's view of the leader is only a hint), any node for stale reads.
func (c *simClient) pickNode(req *clientReq) uint64 {
	s := c.s
	if req.op.kind == history.Get && req.mode == ReadStale {
		return uint64(1 + s.rng.IntN(len(s.nodes)))
	}
	if req.op.kind == history.Get && req.mode == ReadLease && s.p.readLocal > 0 && s.rng.Float64() < s.p.readLocal {
		// A read-lease holder in the client's region answers it there; any other node
		// redirects it to the leader.
		return s.nodes[c.home].id
	}
	if c.leader != None && s.rng.Float64() >= s.p.mix.randomNode {
		return c.leader
	}
	return uint64(1 + s.rng.IntN(len(s.nodes)))
}

func (c *simClient) sendAttempt(req *clientReq, node uint64) {
	s := c.s
	if req.done {
		return
	}
	req.attempts++
	req.node = node
	req.outstanding = true
	n := s.node(node)
	s.after(s.clientLatency(c, n.idx), "client", node, func() { s.handleClient(n, req) })
}

// handleClient is the node's request handler. As georaftd does, it answers a lease or stale
// read from the node's published read view when the view allows it at this moment on the
// node's clock, without stepping the core; otherwise it proposes a write or log read, or asks
// the core for a read in the requested mode (falling back from lease to index).
func (s *simulation) handleClient(n *simNode, req *clientReq) {
	if n.r == nil {
		s.reply(n, req, replyRetry, "node down", false, "")
		return
	}
	if s.readFromView(n, req) {
		return
	}
	n.tickNow()
	if req.op.kind != history.Get || req.mode == ReadLog {
		s.propose(n, req)
	} else {
		s.read(n, req)
	}
	n.settle()
}

func (s *simulation) propose(n *simNode, req *clientReq) {
	index, term, err := n.r.Propose(req.op.encode())
	var notLeader *NotLeaderError
	switch {
	case errors.As(err, &notLeader):
		s.replyNotLeader(n, req, notLeader)
	case errors.Is(err, ErrProposalDropped):
		s.reply(n, req, replyRetry, err.Error(), false, "")
	case err != nil:
		s.fail("invariant", "node %d: Propose returned an undocumented error: %v", n.id, err)
	default:
		if old := n.proposals[index]; old != nil {
			// Our earlier entry at this index was truncated away, so it cannot commit
			// here; its client times out with an unknown outcome.
			s.logf("node %d: proposal at %d/%d replaces unanswered %d/%d", n.id, index, term, index, old.term)
		}
		n.proposals[index] = &pendingProposal{term: term, req: req}
	}
}

// readFromView answers req from n's published view if its mode and the view allow it now.
func (s *simulation) readFromView(n *simNode, req *clientReq) bool {
	if req.op.kind != history.Get {
		return false
	}
	var index uint64
	var ok bool
	switch req.mode {
	case ReadLease:
		index, ok = n.published.Lease(n.localNow())
		if ok {
			s.inv.checkLeaseReadServed(n)
		}
	case ReadStale:
		index, ok = n.published.Stale(n.localNow())
	}
	if !ok {
		return false
	}
	s.nextReqID++
	req.readID, req.asked = s.nextReqID, req.mode
	n.reads[req.readID] = req
	n.waitingReads = append(n.waitingReads, ReadState{ID: req.readID, Index: index, Mode: req.mode})
	n.answerReads()
	return true
}

func (s *simulation) read(n *simNode, req *clientReq) {
	s.nextReqID++
	req.readID = s.nextReqID
	req.asked = req.mode
	err := n.read(req.readID, req.mode)
	if req.mode == ReadLease && errors.Is(err, ErrLeaseNotHeld) {
		req.asked, req.fellBack = ReadIndex, true
		err = n.read(req.readID, ReadIndex)
	}
	var notLeader *NotLeaderError
	switch {
	case err == nil:
		if req.asked == ReadLease {
			s.inv.checkLeaseReadAccepted(n)
		}
		n.reads[req.readID] = req
	case errors.As(err, &notLeader):
		s.replyNotLeader(n, req, notLeader)
	case errors.Is(err, ErrTooStale):
		req.tooStale++
		s.stats.staleRefused++
		if req.tooStale >= 3 {
			s.reply(n, req, replyFailed, err.Error(), false, "")
		} else {
			s.reply(n, req, replyRetry, err.Error(), false, "")
		}
	default:
		s.fail("invariant", "node %d: Read(%v) returned an undocumented error: %v", n.id, req.asked, err)
	}
}

func (s *simulation) replyNotLeader(n *simNode, req *clientReq, err *NotLeaderError) {
	req.c.leader = err.Leader
	s.reply(n, req, replyNotLeader, err.Error(), false, "")
}

// reply sends the node's answer back to the client.
func (s *simulation) reply(n *simNode, req *clientReq, kind replyKind, errText string, found bool, value string) {
	c := req.c
	node := n.id
	s.after(s.clientLatency(c, n.idx), "client", node, func() { c.onReply(req, node, kind, errText, found, value) })
}

func (c *simClient) onReply(req *clientReq, node uint64, kind replyKind, errText string, found bool, value string) {
	s := c.s
	if req.done || node != req.node {
		return // after the timeout, or an answer to an earlier attempt
	}
	req.outstanding = false
	switch kind {
	case replyOK:
		req.done = true
		c.leader = node
		if req.op.kind == history.Get {
			mode := req.mode
			if req.mode != ReadLog {
				mode = req.servedMode
			}
			req.call.Read(found, value, s.historyMode(mode))
			req.call.Annotate(fmt.Sprintf("node %d", node))
			s.countRead(req, mode)
		} else {
			req.call.Wrote()
			req.call.Annotate(fmt.Sprintf("node %d", node))
		}
		if c.probe {
			s.probeSucceeded(node)
			return
		}
		c.next()
	case replyFailed:
		req.done = true
		req.call.Fail(errors.New(errText))
		s.stats.failedOps++
		c.next()
	case replyNotLeader, replyRetry:
		target := c.leader
		if kind == replyRetry || target == None || target == node {
			target = uint64(1 + s.rng.IntN(len(s.nodes)))
		}
		backoff := s.randDuration(0, s.p.heartbeat)
		s.after(backoff, "client", 0, func() { c.sendAttempt(req, target) })
	}
}

func (s *simulation) countRead(req *clientReq, served ReadMode) {
	switch served {
	case ReadLease:
		s.stats.leaseReads++
	case ReadIndex:
		if req.fellBack {
			s.stats.leaseFallbacks++
		} else {
			s.stats.indexReads++
		}
	case ReadLog:
		s.stats.logReads++
	case ReadStale:
		s.stats.staleReads++
	}
}

// timeout gives up on req. A write with an attempt still unanswered may have been proposed
// and may yet commit: its outcome is unknown. One whose every attempt was refused was never
// proposed.
func (c *simClient) timeout(req *clientReq) {
	s := c.s
	if req.done {
		return
	}
	req.done = true
	if req.op.kind == history.Get || req.outstanding {
		req.call.Unknown(errors.New("timed out"))
		s.stats.unknown++
	} else {
		req.call.Fail(errors.New("timed out, every attempt refused"))
		s.stats.failedOps++
	}
	c.leader = None
	if c.probe {
		c.issue()
		return
	}
	c.next()
}
