// Package raft is georaft's consensus core: Raft with PreVote, CheckQuorum, pipelined and
// batched replication, leadership transfer and leader leases, as a pure state machine.
//
// The core has no goroutines, sockets, files or clock. The caller passes time in with
// Tick(now), where now is the node's monotonic clock, and messages in with Step; it takes
// out a Ready holding what to persist, what to send, what to apply and which reads may be
// answered, and calls Advance when done. Every Step uses the time of the latest Tick, so the
// caller ticks with a clock reading taken after the message arrived. The same code runs in
// georaftd and in the deterministic simulator in this package's tests.
//
// # The lease rule
//
// A leader sends each append and heartbeat with SentAt, its clock at sending. When a quorum
// (itself included) has answered messages sent at or after s, it holds a lease until
//
//	s + LeaseDuration × (1 − MaxClockDrift)
//
// on its own clock. A follower that receives a message from the leader of its term at r (its
// own clock) records that some leader may serve reads until r + LeaseDuration (or the
// leader's LeaseDuration carried in the message, if longer). It reports
// the time left on that record in every vote reply. A node that just started assumes the
// worst: some leader may hold a lease until start + LeaseDuration. A leader that steps down
// records its own lease the same way, since it may vote next.
//
// A new leader serves no lease read until two things hold: it has committed an entry of its
// own term (the no-op that opens the term), so its commit index covers every acknowledged
// write; and the longest remaining lease reported by its voters, received at v with R left,
// has run out on its own clock: v + R / (1 − MaxClockDrift). Its own record counts too, since
// its own vote is part of the quorum that elected it.
//
// Until that wait is over the new leader also commits nothing (deferred commit): it takes and
// replicates proposals, but its commit index does not move, so no write, ReadIndex read or
// log read completes through it. Otherwise the old leader, still inside its lease, could
// answer a lease read from a state without a write that the new leader had already
// acknowledged. A normal failover waits for nothing, since the election timeout is longer
// than the lease; the wait only bites after an election forced early (a restart, which
// assumes a lease, or a leader cut off right after renewing).
//
// Why this is safe. Any two quorums share a node. The quorum that gave the old leader its
// lease from s and the quorum that elected the new leader share some voter X. X received the
// old leader's message at r, after s, and voted after that: from then on X is in a higher
// term and acknowledges nothing of the old leader, so the old leader cannot extend its lease
// past what X reported. The drift bound turns the three clocks' durations into one order in
// real time: the old lease ends (s + D(1−δ) on the old leader's clock) no later than X's
// record ends (r + D on X's clock), which ends no later than the new leader's wait ends. So
// at every real instant at most one leader serves lease reads; and since no later leader
// acknowledges a write before its wait ends, every write acknowledged before a lease read
// began was committed through the leader serving it, whose commit index covers it.
//
// A leader whose lease lapses (no quorum acknowledgement recent enough) stops answering
// lease reads at once. It stays leader until CheckQuorum deposes it after an election timeout
// without a quorum, which is longer than the lease.
//
// Leadership transfer: before sending MsgTimeoutNow the leader gives up its lease for the
// rest of its term. The transferee campaigns with Transfer set, its voters do not report
// the transferring leader's lease, and it waits only for what was left of the old leader's
// own inherited wait, carried in the MsgTimeoutNow. Every other election waits.
//
// # Clock drift
//
// MaxClockDrift (δ) bounds the rates of the nodes' clocks relative to each other: over any
// real interval, no node's clock advances more than 1/(1−δ) times as far as another's. The
// bound is about rates, not offsets; clocks are never compared across nodes. A real clock
// error beyond δ, such as a VM paused longer than a lease while its monotonic clock stopped,
// is outside the model, which is why the lease is kept well under the election timeout.
//
// # Read modes
//
//   - ReadLease: answered by the leader alone while it holds a lease. Linearizable under
//     the drift bound.
//   - ReadIndex: the leader records its commit index, confirms with one heartbeat round to a
//     quorum that it is still leader, and answers once applied ≥ that index. Linearizable
//     with no timing assumption.
//   - ReadLog: the read is proposed as a log entry and answered when applied. Linearizable;
//     the costliest, and the baseline.
//   - ReadStale: any node answers from its own state at once, unless it has not heard from a
//     quorum-backed leader within MaxStaleness. The value was really written and is at most
//     that old, give or take drift; it is not linearizable.
//
// # Stale-read freshness
//
// A stale read compares MaxStaleness with the age of the node's state on its own clock. A
// leader dates its state by the start of its lease, once it has committed an entry of its
// term. A follower dates it by its own clock, echoed by the leader: every append and
// heartbeat response carries the follower's clock when it produced it (FollowerClock), and
// the leader puts the FollowerClock of the latest response it got from that follower in its
// term into each MsgApp and MsgHeartbeat to it. The leader sent that message after it
// received the response stamped t, so the leader's state in the message is no older than t
// on the follower's own clock. A follower that holds everything the message says was
// committed, at an entry of the leader's term, is therefore fresh as of t: no clock is read
// across nodes, and a message that waited (a backlog in a paused process's socket, a
// partition that heals) carries its true age instead of looking new. Freshness never moves
// backwards; the first round of a term (echo 0) gives none, nor does an echo above the
// follower's clock (a reading from before a restart). Receipt time still dates what must be
// dated late to be safe: leader stickiness and the lease a follower reports in vote replies.
//
// The bound a follower keeps is thus MaxStaleness on its own clock since it sent a response
// the leader had seen, plus the time to apply what it holds; the steady-state cost is about
// a round trip and a heartbeat interval of the budget.
package raft
