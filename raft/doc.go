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
// Every safety mechanism below can be turned off, one at a time, by a test-only knob
// (Config.off); the simulator is shown to break a safety property within a bounded number of
// seeds for each one alone (knobs_test.go, docs/lease-knobs.md). A mechanism that no test
// misses would be one nobody had shown necessary, and this package has none.
//
// # The lease rule
//
// A leader sends each append and heartbeat with SentAt, its clock at sending, and its lease
// duration D. When a quorum (itself included) has answered messages sent at or after s, it
// holds a lease until
//
//	s + D × (1 − δ)
//
// on its own clock, δ being MaxClockDrift. The lease runs from when the answered message was
// sent, never from when the answer arrived: an answer that took long to come back would
// otherwise stretch the lease past what its sender knows of it.
//
// A follower that receives a message from the leader of its term at r (its own clock)
// records that some leader may serve reads until r + max(D, its own lease duration). It
// reports the time left on that record in every vote reply. A candidate's wait starts from
// its own record, since its own vote is part of the quorum that elects it, and grows with
// every granted vote: a vote received at v reporting R left makes it wait until v + R.
//
// A new leader commits nothing until that wait is over (deferred commit): it takes and
// replicates proposals, but its commit index does not move, so no write, ReadIndex read or
// log read completes through it. And it serves no lease read until it has committed an
// entry of its own term (the no-op that opens the term): only then does its commit index
// cover every acknowledged write. Since that commit comes after the wait, so do its lease
// reads. A normal failover waits for nothing, since the election timeout is longer than the
// lease; the wait only bites after an election forced early (a restart, which assumes a
// lease, a forced campaign, or a leader cut off right after renewing).
//
// Why this is safe. Any two quorums share a node. The quorum that gave the old leader its
// lease from s and the quorum that elected the new leader share some voter X. X received the
// old leader's message at r, after s, and voted after that: from then on X is in a higher
// term and acknowledges nothing of the old leader, so the old leader cannot extend its lease
// past what X recorded. X's record, reported in its vote (or X's own, if X is the new
// leader), makes the new leader wait, and nothing commits before the wait ends. So no
// leader acknowledges a write while an older leader may still answer a lease read without
// it, and at every real instant at most one leader serves lease reads.
//
// Why one drift margin is enough. The old lease is D(1 − δ) on the old leader's clock. What
// stands between it and the new leader's first commit is D measured in pieces on other
// clocks: part on X's clock (from r until X votes, at v), the rest on the candidate's (the R
// that X reported, from when the candidate received it). Every piece is measured on some
// node's clock, so the whole lasts in real time at least D divided by the fastest rate among
// those clocks, which is at least D(1 − δ) divided by the old leader's rate: the bound on
// drift holds between any two nodes. Latency only adds to the wait (r comes after s, and the
// candidate receives R after X measured it). So reported leases are waited out as reported,
// with no second margin; and a leader that steps down need record nothing of its own lease,
// since it stops serving lease reads at that moment.
//
// A leader whose lease lapses (no quorum acknowledgement recent enough) stops answering
// lease reads at once. It stays leader until CheckQuorum deposes it after an election timeout
// without a quorum, which is longer than the lease.
//
// # Restarts, and timing that differs between nodes
//
// A node that starts may have acknowledged a leader just before it stopped and forgotten it:
// it assumes that some lease runs from its start for the longest lease duration it has ever
// acknowledged (HardState.LeaseBound), or its own if that is longer. The bound is raised
// before the acknowledgement that promises it leaves (acknowledgements wait for the Ready
// that persists it), so it is on disk whenever a lease of that length might rely on this node.
//
// The bound is what makes a rolling change of timing safe. Nodes run with different lease
// durations while it rolls out, and a node restarted on a shorter lease must still assume
// the longer one it acknowledged before: assuming its new configuration instead would let a
// quorum of it and a node that lost the old leader elect a leader that commits inside the
// old leader's lease (TestRollingLeaseShorteningCannotOverlapLeases). Followers record
// max(the leader's D, their own), so a longer lease is honoured wherever it was granted.
//
// The bound comes down again on its own, so that a shortened lease does not slow every
// later restart: once no message carrying it has been acknowledged for as long as it lasts,
// every lease of that length this node promised to honour has run out, and it drops to the
// longest duration acknowledged since.
//
// # Leadership transfer
//
// Before sending MsgTimeoutNow the leader gives up its lease for the rest of its term, so the
// transferee need not wait for it: its voters do not report the transferring leader's lease.
// But the transferring leader may itself still have been waiting out an older lease; what was
// left of that wait travels in MsgTimeoutNow, and the transferee waits it out before it
// commits. The read leases it granted (see below) end no later than the lease it gave up, but
// nothing reports them to the transferee either, and a holder the transferee cannot reach
// would answer reads without its writes: so MsgTimeoutNow also carries the longest of them
// still running, scaled up by 1/(1−δ) since the transferee waits it out on its own clock,
// which may run fast against the leader's. Every other election waits for what its voters
// report.
//
// # Read leases
//
// The leader grants read leases to the members its membership names as holders
// (ConfState.ReadLeaseHolders, changed through the log like the rest of the membership), so
// that each answers linearizable reads from its own state, in its own region, as the leader
// does with its lease (after Moraru, Kaminsky and Andersen, "Paxos Quorum Leases", SoCC 2014).
// Three rules make it safe.
//
// A holder's lease ends before the leader's. A grant rides on an append or heartbeat while the
// leader holds its lease: "until t + L on your clock", t being the holder's own clock reading
// that the leader echoes (FollowerClock), which the holder took before the leader received it
// at a. The holder's clock may run fast by up to 1/(1−δ) against the leader's, so the lease
// ends, on the leader's clock, by a + L/(1−δ); the leader picks L so that this is no later than
// its own lease's end. Every later leader waits out this leader's lease before it commits
// (the lease rule), so it waits out every read lease this leader granted too, and no holder of
// an older leader can read past a newer leader's writes. Dating the lease by the echo, not by
// receipt, keeps a grant that waited in the network from lasting longer than the leader meant.
//
// Writes wait for holders. The leader commits an entry only once every holder whose lease may
// still run (a + L/(1−δ) not passed) has acknowledged it; a holder that stops answering holds
// commits up until its lease has surely ended, then commits go on without it. A holder that
// fell behind gets no new lease until it has acknowledged every committed entry in the
// leader's term; what it acknowledged it keeps (it is durable, and no leader truncates its own
// term's entries), so it holds them all when the grant arrives, and its reads wait for them
// (below). Whether the holder knows them to be committed does not matter, which is why it
// takes a grant without comparing the message's commit index with its own.
//
// A holder reads only after applying what it holds. When a write is acknowledged, every holder
// with a lease already has it in its log, but may not yet know it is committed; a later read
// there must not return the older value. So a holder's lease read waits until it has applied
// every entry it holds (the leader sends holders each new commit index at once), and reads the
// latest applied state; an entry that never commits keeps the read waiting no longer than the
// lease.
//
// Why the three together are linearizable. A lease read at a holder returns a state that
// includes every write acknowledged before the read began: the write's commit waited for the
// holder (its lease was running, or the holder's current lease came from a grant sent after
// the commit, which made it catch up first), and the read waited to apply it. It includes no
// write that was not committed, since it waits for what it holds to be applied. And it is
// never served once a newer leader may commit (nesting).
//
// # Per-key lease reads (the node's refinement of the read rule)
//
// The core names, in the read view, one index a lease read must see applied (LeaseIndex: the
// commit index at the leader, everything held at a read-lease holder). The node may let a read
// of keys K wait for less (node/pending.go, read_leases.per_key_wait): only until it has applied
// the newest held entry at or below LeaseIndex that may change K. The node notes what each
// entry may change when it appends it, before its acknowledgement leaves: a put's key, a delete's
// range, every write of both branches of a transaction (which branch runs depends on the state
// it applies to); an entry whose keys the entry alone does not tell (a lease revoke, a
// compaction, one that does not decode, a gap in what was noted) may change every key, and a
// no-op, a membership change or a lease grant changes none.
//
// Why the read still sees every write it must. Let W be a write acknowledged before the read
// began, or seen by a read that ended before it began. W committed before the read began; by
// the read-lease rules above, W is applied here or held at or below LeaseIndex. If W changes
// K's answer, W writes a key of K or counts as writing every key, so the read waits for W and
// for everything before it. Applying entries in order, an entry that writes no key of K leaves
// K as it was (value, existence, versions, create and mod revisions, lease), so K's state after
// the newest held entry touching K is its state at LeaseIndex, were the held entries to commit
// as held. A new leader may replace some of them, but none of those was acknowledged (an
// acknowledged entry is committed and never replaced), and the argument needs only
// acknowledged writes.
//
// What it gives up. The answer reports the revision of the state it was read from (the
// applied state, committed, at which K's answer is exact); the revision at LeaseIndex is not
// known before applying, since a transaction moves the revision only when it changes
// something. So a per-key read's revision may be lower than that of a write acknowledged
// before it began, or of an earlier read at another node, even of the same key (that node
// may have applied fewer unrelated writes): K's data and mod revisions never go backwards,
// nor do one node's revisions, but revisions across nodes may. etcd promises more: a linearizable Range's header revision is
// the store's revision after the read index is applied, at least every acknowledged write's,
// and clientv3's ordering wrapper treats a lower one as an ordering violation. The etcd API
// therefore waits for LeaseIndex whole unless the client asks for the per-key wait
// (node.PerKeyWaitMetadata); georaft.v1's applied_index keeps the per-key meaning
// (docs/reads.md).
//
// # Membership changes
//
// The membership (ConfState) names the voters and the learners. Learners receive the log and
// snapshots but do not vote and count towards no quorum; a new node joins as one, and is
// promoted only once it has acknowledged some of the leader's log and is within
// Config.MaxLearnerLag entries of its end, so that it can help quorums the moment it counts in
// them. A change of voters goes through a joint
// configuration (Raft §6): the entry that enters it names the new voters and keeps the old
// ones as outgoing; while joint, every decision (a commit, an election, a lease, a ReadIndex
// round, CheckQuorum) needs a majority of both, counted by the one majority function in
// quorum.go. As soon as the entering entry is applied, the leader appends an empty change that
// leaves the joint configuration. Replacing a node is one change: promote the new learner and
// remove the old voter together.
//
// A change takes effect on each node when that node applies it, as in etcd, so nodes decide
// by different memberships at once: some still by the old voters, some by the joint
// configuration. Every decision counts both halves while joint (a commit, an election, a
// lease): a side holding a majority of the old voters and a side holding a majority of the
// new ones would otherwise each elect a leader, or one elect while the other's lease runs.
// A candidate counts its votes by a membership that holds every change it knows committed
// (see "Elections and the Ready" below). And a change that no leader may propose on the membership it
// applies to, such as a second change of voters while joint, changes nothing on every node
// alike (membership.apply refuses it from the log alone); that is what keeps two changes
// appended back to back safe. A leader also refuses to append a change while its last one is
// unapplied, and a new leader before it has applied everything its log held at its election
// (ErrConfChangePending), but only so that a proposal fails at once instead of being dropped
// at apply: nothing unsafe follows without it (docs/lease-knobs.md). Any two decisions of
// successive memberships then share a voter, which is all the commit rule and the election
// rule need.
// The membership travels in snapshots (SnapshotMeta.ConfState); a node that starts rebuilds it
// from its snapshot and the changes it had applied, and every node's log starts from
// Config.Peers, the voters the cluster was created with.
//
// Leases across changes. A leader's lease is backed by a majority of every half of its
// current membership. Take an old lease backed by a majority of membership A, and a later
// election under membership C. If C is A, or a joint configuration containing A, or one that
// A's joint configuration leads to directly, their majorities share a voter and the lease rule
// holds as above. Further apart, C can only elect anyone once the entries that led from A to C
// are committed, and committing the last of them took acknowledgements from a majority of C
// of a message sent after the old lease's renewal: each of those voters recorded a lease
// running at least as long, and C's election includes one of them. Learners record and
// report leases like followers, since they receive the leader's messages, so a promoted
// learner carries what it heard. A new node assumes a lease from its start like any starting
// node and has voted for nobody, so a new voter inherits no stale promise: it needs no rule
// of its own beyond the start-up assumption and the follower's record.
//
// Removed nodes. A node that applies its own removal answers no more lease reads: a leader
// steps down, a read-lease holder drops its lease. But a removed holder may learn of its
// removal late, or never (it is not sent the entry after it), and until its lease ends it
// may still answer reads, while it acknowledges nothing more (a leader drops the responses
// of nodes outside its membership). So a leader that applies a membership without a holder
// keeps that holder's lease, and the least it held, as a bound on its commits until the lease
// has surely ended; a transfer carries it to the transferee like the leases of the holders
// that stay.
//
// # The commit rule
//
// A leader commits an index once a quorum holds it and the entry there is of its own term
// (Raft §5.4.2, Figure 8): entries of older terms commit only under an entry of the leader's
// term, since a leader of a later term could still overwrite an older-term entry that is on a
// quorum. Votes and acknowledgements leave only after what they promise is durable (the
// Ready contract), and a vote goes only to a candidate whose log is at least as up to date.
// An acknowledgement waits for the persist of the entries it covers; if a newer leader's
// append removes those entries before that persist (the contract lets messages be stepped
// between Ready and Advance), the acknowledgement is withdrawn: sent after a persist that no
// longer holds them, it would let the older leader count a copy that never reached a disk.
//
// The leader counts itself for every entry a Ready has handed out to persist, durable or not
// yet, and for none it has not. That is safe because of the Ready contract: the core hands out
// no new Ready before the caller has made the previous one's entries durable (Advance), and a
// commit reaches nobody, nor answers any read, except through a Ready. A commit counted now
// comes out in the next Ready at the earliest, by which time every entry the leader counted
// itself for is on its disk. Counting the entries no Ready has handed out yet would not be:
// they are persisted by the very Ready that reveals the commit, and its messages (to
// learners, which count in no quorum, so a lone voter commits on its own copy) leave before
// that persist; a crash would forget an entry a learner had already applied. With two voters
// or more it makes no difference, since no follower can acknowledge an entry not yet sent.
// A driver that persisted asynchronously and pulled Readies meanwhile would need the leader
// to count only its persisted entries.
//
// # Elections and the Ready
//
// A candidate decides its election only once the Ready that persisted its term and vote has
// been carried out (Advance); answers that arrive earlier (the contract lets messages be
// stepped between Ready and Advance) are recorded and counted then. Two things follow.
//
// A leader's own vote is on its disk before it leads. Its vote requests leave after that
// persist anyway, so this delays only a lone voter, which needs no answer, and answers
// stepped before that Advance (while the Ready's entries are still being applied).
//
// A candidate counts by a membership that holds every change it knew committed. That Ready,
// or one before it, handed out every entry the candidate knew committed when it became
// candidate (a Ready hands out all committed entries), so by its Advance they are all applied;
// and a candidate learns of no commit, since the messages that carry a commit index make it a
// follower. Counting by an older membership could elect a second leader: a lone voter that is
// replaced, restarts (rebuilding the membership in which it is the only voter from its
// snapshot) and campaigns before it has applied its replacement would lead alongside the new
// voter; a transferee stepping the answers to its MsgVote before the Advance that applies a
// change it learned committed just before MsgTimeoutNow would count by the membership before
// it. This one rule covers both paths, pre-vote and transfer, and every change: what a node
// knows committed is applied before it decides an election.
//
// # Clock drift and clock origins
//
// MaxClockDrift (δ) bounds the rates of the nodes' clocks relative to each other: over any
// real interval, no node's clock advances more than 1/(1−δ) times as far as another's. The
// bound is about rates, not offsets; clocks are never compared across nodes. A real clock
// error beyond δ, such as a VM paused longer than a lease while its monotonic clock stopped,
// is outside the model, which is why the lease is kept well under the election timeout.
//
// Config.BootID names the origin of the clock passed to Tick, and must change whenever that
// clock may restart from another origin. A node's readings come back to it only through a
// leader's echo (FollowerClock), and an echo of another boot dates nothing.
//
// A leader's own readings come back in the SentAt and Round that answers to its appends and
// heartbeats echo, and only answers of its term count. A node answers a message of an older
// term, so that its sender learns the newer one, but echoes nothing in that answer: the
// sender may by then lead the newer term itself, after a restart on a clock of another
// origin, where the old reading can look recent (a rebooted machine's monotonic clock
// restarts near zero, and its round numbers start again). Counted, it would date an
// acknowledgement the voter never gave in this term, later than anything the leader sent
// since it was cut off, and stretch the lease past every voter's record. Within one clock
// origin such an echo would be harmless (it predates the term, and the lease runs from the
// quorum's latest acknowledgements, which an entry of the term needed before any lease
// read), but across origins nothing orders it; so the answer carries none, and a leader
// ignores an answer without one, or with one no message of its own can have carried (dated
// after its clock, or of a later round).
//
// # Read modes
//
//   - ReadLease: answered by the leader alone while it holds a lease. Linearizable under
//     the drift bound.
//   - ReadIndex: the leader records its commit index, confirms with one heartbeat round to a
//     quorum that it is still leader, and answers once applied ≥ that index. The round must
//     be one sent after the read arrived (an earlier round's answers say nothing about leading
//     when the read began), and a new leader records no index before it has committed an
//     entry of its term. Linearizable with no timing assumption.
//   - ReadLog: the read is proposed as a log entry and answered when applied. Linearizable;
//     the costliest, and the baseline.
//   - ReadStale: any node answers from its own state at once, unless its state is not known
//     to be current as of MaxStaleness ago (see below). The value was really written and is
//     at most that old, give or take drift; it is not linearizable.
//
// # Stale-read freshness
//
// A stale read compares MaxStaleness with the age of the node's state on its own clock. A
// leader dates its state by the start of its lease, once it has committed an entry of its
// term. A follower dates it by its own clock, echoed by the leader: every append and
// heartbeat response carries the follower's clock when it produced it (FollowerClock, with
// FollowerBoot), and the leader puts the latest reading it got from that follower in its term
// into each MsgApp and MsgHeartbeat to it, but only while it holds its lease. The leader sent
// that message after it received the response stamped t, and while no other leader could
// have committed anything (its lease), so its state in the message is current as of t on the
// follower's own clock. A follower that has committed everything the message says the
// leader had committed, up to an entry of the leader's term (which covers every earlier
// leader's commits), is therefore fresh as of t: no clock is read across nodes, and a message
// that waited (a backlog in a paused process's socket, a partition that heals) carries its
// true age instead of looking new. Freshness never moves backwards; the first round of a term
// (echo 0) gives none, nor does an echo from another boot or above the follower's clock.
// Receipt time still dates what must be dated late to be safe: leader stickiness and the
// lease a follower records.
//
// The bound a follower keeps is thus MaxStaleness on its own clock since it sent a response
// the leader had seen, plus the time to apply what it holds; the steady-state cost is about
// a round trip and a heartbeat interval of the budget.
package raft
