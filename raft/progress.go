package raft

import "time"

// inflight is one MsgApp sent to a follower and not yet acknowledged.
type inflight struct {
	last  uint64 // index of its last entry
	bytes uint64
}

// inflights is a ring of the appends in flight to one follower, bounded in count and bytes.
// The ring is allocated on first use and reused for the rest of the leader's term.
type inflights struct {
	ring     []inflight
	start    int
	count    int
	bytes    uint64
	maxCount int
	maxBytes uint64 // 0: no byte limit
}

func (in *inflights) full() bool {
	return in.count >= in.maxCount || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) add(last, bytes uint64) {
	if in.ring == nil {
		in.ring = make([]inflight, in.maxCount)
	}
	in.ring[(in.start+in.count)%len(in.ring)] = inflight{last: last, bytes: bytes}
	in.count++
	in.bytes += bytes
}

// freeThrough releases every append whose last entry is at or below index.
func (in *inflights) freeThrough(index uint64) {
	for in.count > 0 {
		head := in.ring[in.start]
		if head.last > index {
			return
		}
		in.bytes -= head.bytes
		in.start = (in.start + 1) % len(in.ring)
		in.count--
	}
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}

// progress is the leader's view of one follower during one term.
type progress struct {
	id          uint64
	match, next uint64
	state       ProgressState

	// Probe: probeSent pauses sending until a response, or a heartbeat response to a
	// heartbeat sent after the probe, shows the probe is answered or lost.
	probeSent   bool
	probeSentAt time.Duration
	// Snapshot: the index of the snapshot in flight.
	pendingSnapshot uint64

	inflights inflights
	// lastAppendAt is when the latest MsgApp to this peer was sent.
	lastAppendAt time.Duration

	// lastContact is when this peer last sent anything in the term (the start of the term
	// until it does), for CheckQuorum.
	lastContact time.Duration
	// ackedSentAt and ackedRound are the largest SentAt and Round this peer echoed in the
	// term; hasAcked is false until it echoed one.
	ackedSentAt time.Duration
	ackedRound  uint64
	hasAcked    bool
	// followerClock is the FollowerClock of the latest append or heartbeat response from
	// this peer in the term, echoed in every MsgApp and MsgHeartbeat to it so it can date its
	// stale-read freshness on its own clock (0 until it answered). The latest rather than the
	// largest: a follower that restarted has a clock with a new origin, and after one round
	// trip it gets its own readings back instead of its previous life's; a reordered older
	// response only lowers the echo, which is safe, since the follower never moves its
	// freshness backwards.
	followerClock time.Duration
	followerBoot  uint64
	// followerClockAt is when this leader received followerClock, on its own clock.
	followerClockAt time.Duration
	// holderUntil bounds, on this leader's clock, the read lease this peer may hold from
	// grants it was sent: until then no entry commits that the peer has not acknowledged.
	holderUntil time.Duration

	// sentCommit is the commit index last sent in an append, so an idle leader tells
	// followers about a new commit index once rather than on every Ready.
	sentCommit uint64
	// sentRound is the round stamped on the last message sent to the peer, so a ReadIndex
	// broadcast skips peers an append already carried the round to.
	sentRound uint64
}

func (pr *progress) resetForTerm(next uint64, now time.Duration, maxInflight int, maxInflightBytes uint64) {
	ring := pr.inflights.ring
	if len(ring) != maxInflight {
		ring = nil
	}
	*pr = progress{
		id:          pr.id,
		next:        next,
		state:       ProgressProbe,
		lastContact: now,
		inflights:   inflights{ring: ring, maxCount: maxInflight, maxBytes: maxInflightBytes},
	}
}

func (pr *progress) becomeProbe() {
	if pr.state == ProgressSnapshot {
		// Resume after the snapshot: the follower holds at least up to it once installed.
		pr.next = max(pr.match+1, pr.pendingSnapshot+1)
	} else {
		pr.next = pr.match + 1
	}
	pr.state = ProgressProbe
	pr.pendingSnapshot = 0
	pr.probeSent = false
	pr.inflights.reset()
}

func (pr *progress) becomeReplicate() {
	pr.state = ProgressReplicate
	pr.next = pr.match + 1
	pr.probeSent = false
	pr.pendingSnapshot = 0
	pr.inflights.reset()
}

func (pr *progress) becomeSnapshot(index uint64) {
	pr.state = ProgressSnapshot
	pr.pendingSnapshot = index
	pr.probeSent = false
	pr.inflights.reset()
}

// acknowledge records that the follower holds the log up to index; it reports whether match
// moved.
func (pr *progress) acknowledge(index uint64) bool {
	if index <= pr.match {
		return false
	}
	pr.match = index
	pr.next = max(pr.next, index+1)
	pr.probeSent = false
	return true
}

func (pr *progress) public() PeerProgress {
	return PeerProgress{
		Match:    pr.match,
		Next:     pr.next,
		State:    pr.state,
		Inflight: pr.inflights.count,
		LastAck:  pr.lastContact,
	}
}
