package raft

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Restored is what a node read back from disk. Entries follow Snapshot.Index contiguously.
// The membership is Snapshot.ConfState with every EntryConfChange up to Applied applied
// (Config.Peers if the disk holds none).
type Restored struct {
	HardState HardState
	Snapshot  SnapshotMeta
	Entries   []Entry
	Applied   uint64 // index the state machine already reflects (the snapshot's, normally)
}

// never is the deadline of a timer that is not running.
const never = time.Duration(math.MaxInt64)

// Raft is one node's consensus core. It is not safe for concurrent use: the caller serializes
// every call.
type Raft struct {
	cfg Config
	id  uint64
	rng *rand.Rand

	// conf is the membership as of the last applied EntryConfChange. members lists everyone
	// it names, sorted; progress and votes are indexed like members, and self is this node's
	// index there (−1 while it is not a member: a node still joining, or one removed).
	conf    membership
	members []uint64
	self    int
	// confs remembers the membership at each index it changed, back to the snapshot, so a
	// snapshot at any applied index carries the membership as of that index.
	confs []confMark
	// pendingConf is the index of the last EntryConfChange this leader appended: no other is
	// proposed until it is applied (one change at a time).
	pendingConf uint64

	now time.Duration

	term uint64
	vote uint64
	role Role
	lead uint64
	log  raftLog

	electionDeadline  time.Duration
	heartbeatDeadline time.Duration

	// lastHeardLeader is when a leader of this node's term last reached it, for leader
	// stickiness. lastLeaderContact is when this node last knew itself up to date with a
	// quorum-backed leader (a follower: it held everything the leader's message said was
	// committed; a leader: the start of its lease), for stale reads.
	lastHeardLeader   time.Duration
	lastLeaderContact time.Duration
	hasLeaderContact  bool
	// freshIndex is the commit index that lastLeaderContact vouches for: a stale read must
	// see it applied.
	freshIndex uint64
	// leaderMatched is the highest index this follower knows to match its leader's log: up
	// to it, the leader's commit index can be taken as is.
	leaderMatched uint64
	// preVoteRound counts the pre-vote rounds started since the term or the leader last
	// changed. Round k asks for term+k, so that a grant held up from an earlier round does
	// not count in a later one.
	preVoteRound uint64

	// Campaign state. votes holds each peer's answer in the current round: 0 none, +1
	// granted, −1 refused.
	votes            []int8
	transferCampaign bool
	// candidacyDurable: the Ready that persisted this candidate's term and vote has been
	// carried out, so it may decide its election (doc.go, "Elections and the Ready").
	candidacyDurable bool
	lastRefusal      string // the reason the latest refused vote gave

	// Leader state, indexed like peers (the entry at self is unused).
	progress         []progress
	becameLeaderAt   time.Duration
	round            uint64
	roundUsed        bool // a message already carried round, so a new read needs a new one
	appendPending    bool // appends may need building at the next Ready
	uncommittedBytes uint64
	committedInTerm  bool

	// readLeaseUntil ends, on this node's clock, the read lease its leader granted it; until
	// then it answers linearizable reads once it has applied what it holds.
	readLeaseUntil time.Duration
	// departedUntil is, on a leader, when the last read lease of a holder removed from the
	// membership ends, and departedMatch the least its removed holders held: until then
	// nothing past it commits.
	departedUntil time.Duration
	departedMatch uint64

	// Leases (see doc.go). waitUntil is, on a candidate, the end of the longest lease its
	// voters reported, and on a leader, when lease reads may start.
	waitUntil         time.Duration
	leaseExpiry       time.Duration
	leaseRelinquished bool
	leaseHeldReported bool
	knownLeaseUntil   time.Duration

	// leaseBound is the longest lease duration this node has acknowledged from a leader. It
	// is durable (HardState.LeaseBound), so that a restart assumes a lease at least that long
	// whatever its configuration says then (doc.go, "Timing that differs between nodes"). boundHeardAt is when a leader message carrying it was last
	// acknowledged (or the start), and heardBelowBound the longest duration acknowledged
	// since then: once the bound has been silent for as long as it lasts, it may come down to
	// that.
	leaseBound      time.Duration
	boundHeardAt    time.Duration
	heardBelowBound time.Duration

	transferTarget   uint64
	transferDeadline time.Duration
	transferStarted  bool

	reads readQueue

	// Output gathered for the next Ready.
	msgs             []Message
	msgsAfterPersist []Message
	events           []Event
	readStates       []ReadState
	droppedReads     []DroppedRead
	pendingSnapshot  *SnapshotMeta
	prevHardState    HardState
	lastCommitEvent  uint64
	readyOutstanding bool

	scratchIndexes []uint64
	scratchTimes   []time.Duration
}

// New builds a core from its configuration and what the node read back from disk, at time
// now on the node's clock. A brand new node passes a zero Restored.
func New(cfg Config, state Restored, now time.Duration) (*Raft, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("raft: invalid config: %w", err)
	}
	if err := checkRestored(state); err != nil {
		return nil, fmt.Errorf("raft: invalid restored state: %w", err)
	}
	r := &Raft{
		cfg:  cfg,
		id:   cfg.ID,
		rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), cfg.ID)),
		now:  now,
		term: state.HardState.Term,
		vote: state.HardState.Vote,
		role: Follower,

		leaseBound:   state.HardState.LeaseBound,
		boundHeardAt: now,

		heartbeatDeadline: never,
		transferDeadline:  never,
	}
	r.knownLeaseUntil = now + r.startupLeaseAssumption()
	conf := newMembership(state.Snapshot.ConfState)
	if state.Snapshot.ConfState.IsEmpty() {
		conf = newMembership(ConfState{Voters: cfg.Peers, ReadLeaseHolders: cfg.ReadLeaseHolders})
	}
	r.confs = []confMark{{index: state.Snapshot.Index, conf: conf}}
	for _, e := range state.Entries {
		if e.Index > state.Applied {
			break
		}
		if e.Type == EntryConfChange {
			conf = r.confAfter(conf, e)
			r.confs = append(r.confs, confMark{index: e.Index, conf: conf})
		}
	}
	r.setMembership(conf)
	r.log.snapshot = state.Snapshot
	r.log.entries = slices.Clone(state.Entries)
	last := r.log.lastIndex()
	r.log.committed = max(min(state.HardState.Commit, last), state.Snapshot.Index, state.Applied)
	r.log.applied = state.Applied
	r.log.applying = state.Applied
	r.log.persisted = last
	r.log.handedOut = last
	r.prevHardState = r.hardState()
	r.lastCommitEvent = r.log.committed
	r.resetElectionDeadline()
	return r, nil
}

func (r *Raft) hardState() HardState {
	return HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed, LeaseBound: r.leaseBound}
}

// startupLeaseAssumption is how long after its start this node assumes some leader may still
// hold a lease: it may have acknowledged a leader just before it stopped and forgotten it.
// The persisted bound covers every lease it ever acknowledged, whatever its configuration
// says now.
func (r *Raft) startupLeaseAssumption() time.Duration {
	switch {
	case r.cfg.off.startupAssumption:
		return 0
	case r.cfg.off.persistedLeaseBound:
		return r.cfg.LeaseDuration
	}
	return max(r.leaseBound, r.cfg.LeaseDuration)
}

// memberIndex is id's index in members, or −1.
func (r *Raft) memberIndex(id uint64) int {
	i, ok := slices.BinarySearch(r.members, id)
	if !ok {
		return -1
	}
	return i
}

func (r *Raft) event(e Event) {
	e.At = r.now
	if e.Term == 0 {
		e.Term = r.term
	}
	if r.events == nil {
		r.events = make([]Event, 0, 4)
	}
	r.events = append(r.events, e)
}

// send queues m. Requests a leader makes go out at once; everything else waits for the
// HardState and entries of the same Ready to be durable.
func (r *Raft) send(m Message) {
	m.From = r.id
	if m.Term == 0 {
		m.Term = r.term
	}
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
	default:
		if !r.cfg.off.acksAfterPersist {
			if r.msgsAfterPersist == nil {
				r.msgsAfterPersist = make([]Message, 0, 2)
			}
			r.msgsAfterPersist = append(r.msgsAfterPersist, m)
			return
		}
	}
	if r.msgs == nil {
		// One allocation per Ready for the usual one message per peer.
		r.msgs = make([]Message, 0, len(r.members))
	}
	r.msgs = append(r.msgs, m)
}

// resetElectionDeadline draws a new randomized election timeout in [min, max).
func (r *Raft) resetElectionDeadline() {
	timeout := r.cfg.ElectionTimeoutMin
	if spread := r.cfg.ElectionTimeoutMax - r.cfg.ElectionTimeoutMin; spread > 0 {
		timeout += time.Duration(r.rng.Int64N(int64(spread)))
	}
	r.electionDeadline = r.now + timeout
}

// inLeaderContact reports whether this node heard from a live leader recently enough to
// refuse a disruptive election (leader stickiness).
func (r *Raft) inLeaderContact() bool {
	if r.role == Leader {
		return true
	}
	return r.lead != None && r.now-r.lastHeardLeader < r.cfg.ElectionTimeoutMin
}

// Tick advances the node's clock to now and fires every timer that is due. A now earlier
// than the latest one is ignored.
func (r *Raft) Tick(now time.Duration) {
	if now < r.now {
		return
	}
	r.now = now
	r.lowerLeaseBound()
	if r.role == Leader {
		r.tickLeader()
	} else if now >= r.electionDeadline {
		if r.role == PreCandidate {
			r.event(Event{Kind: EventPreVoteFailed, Reason: fmt.Sprintf(
				"only %d pre-votes arrived before the election timeout", r.countVotes(1))})
		}
		r.event(Event{Kind: EventElectionTimeout})
		r.campaign()
	}
	r.updateLease()
}

func (r *Raft) tickLeader() {
	if r.transferTarget != None && r.now >= r.transferDeadline {
		r.abortTransfer(fmt.Sprintf("node %d did not take over within %v", r.transferTarget, r.cfg.ElectionTimeoutMin))
	}
	if r.now >= r.checkQuorumDeadline() {
		r.stepDown(r.term, None, "lost quorum contact: no reply from a quorum within "+r.cfg.ElectionTimeoutMin.String())
		return
	}
	if r.now >= r.heartbeatDeadline {
		r.broadcastHeartbeat()
	}
	// The end of the old-lease wait may release a commit.
	r.maybeCommit()
}

// NextDeadline returns the earliest time at which Tick has work to do: an election or
// heartbeat, a CheckQuorum step-down, a transfer timeout, the end of the old-lease wait or
// of the lease. A driver may sleep until then if no message arrives.
func (r *Raft) NextDeadline() time.Duration {
	if r.role != Leader {
		return r.electionDeadline
	}
	d := min(r.heartbeatDeadline, r.checkQuorumDeadline(), r.transferDeadline)
	// A commit held back for a read-lease holder goes on when its lease ends.
	for i := range r.progress {
		if pr := &r.progress[i]; i != r.self && pr.holderUntil > r.now && pr.match < r.log.lastIndex() {
			d = min(d, pr.holderUntil)
		}
	}
	if r.departedUntil > r.now && r.departedMatch < r.log.lastIndex() {
		d = min(d, r.departedUntil)
	}
	switch {
	case r.now < r.waitUntil:
		// Commits, and then the lease, wait for it.
		d = min(d, r.waitUntil)
	case r.leaseHeld():
		d = min(d, r.leaseExpiry)
	}
	return d
}

// Step processes one message from a peer, at the time of the latest Tick.
func (r *Raft) Step(m Message) error {
	if m.To != r.id {
		return fmt.Errorf("%w: %v from node %d is for node %d, this is node %d", ErrStepLocalMsg, m.Type, m.From, m.To, r.id)
	}
	if m.From == None || m.From == r.id {
		return fmt.Errorf("%w: %v from node %d", ErrUnknownPeer, m.Type, m.From)
	}
	// A message from a node outside this node's membership is answered only as far as the
	// sender may legitimately be unknown here: a leader this node has not yet applied the
	// membership of (a node still joining knows none), or a candidate of a newer membership.
	// Responses from strangers are dropped.
	from := r.memberIndex(m.From)
	if from < 0 && m.Type.IsResponse() {
		return nil
	}
	if m.Type < MsgPreVote || m.Type > MsgTimeoutNow {
		return fmt.Errorf("raft: message from node %d has unknown type %d", m.From, m.Type)
	}
	if m.Term == 0 {
		return fmt.Errorf("raft: %v from node %d has term 0", m.Type, m.From)
	}
	if m.Term > MaxTerm {
		return fmt.Errorf("raft: %v from node %d has term %d, past the largest term %d", m.Type, m.From, m.Term, MaxTerm)
	}
	switch m.Type {
	case MsgApp:
		if err := checkAppend(m); err != nil {
			return err
		}
	case MsgSnap:
		if err := checkSnapshot(m); err != nil {
			return err
		}
	}
	defer r.updateLease()

	switch {
	case m.Term > r.term:
		if m.Type == MsgPreVote || (m.Type == MsgPreVoteResp && !m.Reject) {
			// A pre-vote never changes anyone's term.
			break
		}
		if m.Type == MsgVote && !m.Transfer && r.inLeaderContact() {
			r.event(Event{Kind: EventVoteDenied, Peer: m.From, Reason: r.stickinessReason()})
			return nil
		}
		lead := None
		switch m.Type {
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
			lead = m.From
		}
		r.becomeFollower(m.Term, lead, fmt.Sprintf("higher term %d from node %d", m.Term, m.From))
	case m.Term < r.term:
		r.replyStale(m)
		return nil
	}

	switch m.Type {
	case MsgPreVote, MsgVote:
		r.handleVoteRequest(m)
		return nil
	}

	switch r.role {
	case Leader:
		return r.stepLeader(m, from)
	case Candidate, PreCandidate:
		return r.stepCandidate(m, from)
	default:
		return r.stepFollower(m)
	}
}

// checkAppend rejects a malformed append before it can touch the log.
func checkAppend(m Message) error {
	if n := uint64(len(m.Entries)); n > 0 && m.Index > MaxIndex-n {
		return fmt.Errorf("raft: append from node %d: %d entries after index %d would pass the largest index %d",
			m.From, n, m.Index, MaxIndex)
	}
	prevTerm := m.LogTerm
	for i, e := range m.Entries {
		if e.Index != m.Index+1+uint64(i) {
			return fmt.Errorf("raft: append from node %d: entry %d has index %d, want %d", m.From, i, e.Index, m.Index+1+uint64(i))
		}
		if e.Term == 0 || e.Term < prevTerm || e.Term > m.Term {
			return fmt.Errorf("raft: append from node %d: entry %d has term %d, outside [%d, %d]", m.From, e.Index, e.Term, max(prevTerm, 1), m.Term)
		}
		prevTerm = e.Term
	}
	return nil
}

// checkSnapshot rejects a snapshot no leader could send: one that is empty, past MaxIndex, or
// ends in an entry of a term after the leader's own (which would leave this node unable to
// restart from its disk: its term would be below its last entry's).
func checkSnapshot(m Message) error {
	if m.Snapshot.Index == 0 || m.Snapshot.Index > MaxIndex || m.Snapshot.Term == 0 || m.Snapshot.Term > m.Term {
		return fmt.Errorf("raft: snapshot from node %d at index %d term %d is impossible in term %d",
			m.From, m.Snapshot.Index, m.Snapshot.Term, m.Term)
	}
	return nil
}

// replyStale answers a message from an older term so that its sender learns the newer term
// and steps down; a stale response is dropped.
func (r *Raft) replyStale(m Message) {
	switch m.Type {
	// The reply carries no SentAt or Round: those belong to the old term's leader, and echoed
	// under this node's newer term they could count, at a leader of that term that happens to
	// be the same node, as an acknowledgement it never earned (a lease or a ReadIndex round).
	case MsgApp, MsgSnap:
		resp := Message{Type: MsgAppResp, To: m.From, Reject: true, Index: m.Index,
			RejectReason: fmt.Sprintf("stale term %d < %d", m.Term, r.term)}
		if r.cfg.off.staleReplyNoEcho {
			resp.SentAt, resp.Round = m.SentAt, m.Round
		}
		r.send(resp)
	case MsgHeartbeat:
		resp := Message{Type: MsgHeartbeatResp, To: m.From}
		if r.cfg.off.staleReplyNoEcho {
			resp.SentAt, resp.Round = m.SentAt, m.Round
		}
		r.send(resp)
	case MsgPreVote:
		r.send(Message{Type: MsgPreVoteResp, To: m.From, Reject: true,
			RejectReason: fmt.Sprintf("pre-vote for term %d is behind our term %d", m.Term, r.term)})
	case MsgVote:
		reason := fmt.Sprintf("vote request for term %d is behind our term %d", m.Term, r.term)
		r.event(Event{Kind: EventVoteDenied, Peer: m.From, Reason: reason})
		r.send(Message{Type: MsgVoteResp, To: m.From, Reject: true, RejectReason: reason,
			LeaseRemaining: r.leaseRemainingReport(m.Transfer)})
	}
}

func (r *Raft) stickinessReason() string {
	if r.role == Leader {
		return fmt.Sprintf("this node is the leader of term %d", r.term)
	}
	return fmt.Sprintf("heard from leader %d within election timeout", r.lead)
}

// handleVoteRequest answers MsgPreVote and MsgVote. The requester's term is already at most
// ours (a higher-term MsgVote made us a follower of it; a pre-vote never changes terms).
func (r *Raft) handleVoteRequest(m Message) {
	pre := m.Type == MsgPreVote
	respType := MsgVoteResp
	if pre {
		respType = MsgPreVoteResp
	}
	refuse := func(reason string) {
		if pre {
			reason = "pre-vote: " + reason
		}
		r.event(Event{Kind: EventVoteDenied, Peer: m.From, Reason: reason, Term: max(r.term, m.Term)})
		resp := Message{Type: respType, To: m.From, Reject: true, RejectReason: reason}
		if !pre {
			resp.LeaseRemaining = r.leaseRemainingReport(m.Transfer)
		}
		r.send(resp)
	}
	if pre && !m.Transfer && r.inLeaderContact() {
		refuse(r.stickinessReason())
		return
	}
	canVote := r.vote == m.From || (r.vote == None && r.lead == None) || (pre && m.Term > r.term)
	if !canVote {
		if r.vote != None {
			refuse(fmt.Sprintf("already voted for %d in term %d", r.vote, r.term))
		} else {
			refuse(fmt.Sprintf("node %d is the leader of term %d", r.lead, r.term))
		}
		return
	}
	if !r.log.isUpToDate(m.Index, m.LogTerm) && !r.cfg.off.voteLogCheck {
		refuse(fmt.Sprintf("candidate log is behind: last term %d index %d < ours %d index %d",
			m.LogTerm, m.Index, r.log.lastTerm(), r.log.lastIndex()))
		return
	}
	if pre {
		// Granted pre-votes carry the term they were asked for, so the pre-candidate can
		// tell them from answers to an older round.
		r.send(Message{Type: MsgPreVoteResp, To: m.From, Term: m.Term})
		return
	}
	r.vote = m.From
	r.resetElectionDeadline()
	r.event(Event{Kind: EventVoteGranted, Peer: m.From})
	r.send(Message{Type: MsgVoteResp, To: m.From, LeaseRemaining: r.leaseRemainingReport(m.Transfer)})
}

// leaseRemainingReport is what a vote reply says about older leases: none on a transfer
// campaign (the transferring leader gave its lease up), else what this node knows.
func (r *Raft) leaseRemainingReport(transfer bool) time.Duration {
	if transfer || r.cfg.off.voteLeaseReport {
		return 0
	}
	return max(0, r.knownLeaseUntil-r.now)
}

// countVotes counts the answers with value v (+1 granted, −1 refused) in the current round.
func (r *Raft) countVotes(v int8) int {
	n := 0
	for _, x := range r.votes {
		if x == v {
			n++
		}
	}
	return n
}

// Campaign starts an election now, through a pre-vote like an election timeout would. It is
// a no-op on a leader.
func (r *Raft) Campaign() error {
	if r.role == Leader {
		return nil
	}
	r.campaign()
	r.updateLease()
	return nil
}

// campaign starts a pre-vote round. It asks for term+1 the first time; a further round in the
// same term asks for the next term up, only to tell its answers apart (see preVoteRound): a
// won pre-vote always leads to a campaign for term+1.
func (r *Raft) campaign() {
	// Only a voter of the membership it applied stands; a change it knows committed and has
	// not applied yet is applied before it decides the election (decideElection).
	if !r.isVoter() || r.holdAtMaxTerm(r.preVoteRound+1) {
		r.resetElectionDeadline()
		return
	}
	r.preVoteRound++
	r.role = PreCandidate
	r.lead = None
	r.transferCampaign = false
	r.startTally()
	r.resetElectionDeadline()
	if won, _ := r.tally(); won {
		r.becomeCandidate(false, 0)
		return
	}
	r.toVoters(func(p uint64) Message {
		return Message{Type: MsgPreVote, To: p, Term: r.preVoteTerm(), Index: r.log.lastIndex(), LogTerm: r.log.lastTerm()}
	})
}

// startTally starts a round of (pre-)votes with this node's own.
func (r *Raft) startTally() {
	clear(r.votes)
	r.votes[r.self] = 1
}

// tally counts the current round by this node's membership.
func (r *Raft) tally() (won, lost bool) {
	return voteResult(r.countBy(r.cfg.off.jointElection), func(id uint64) int8 { return r.votes[r.memberIndex(id)] })
}

// toVoters sends the message msg builds to every other voter.
func (r *Raft) toVoters(msg func(to uint64) Message) {
	for _, p := range r.members {
		if p != r.id && r.conf.isVoter(p) {
			r.send(msg(p))
		}
	}
}

// becomeCandidate starts a real election in a new term. A transfer campaign (on
// MsgTimeoutNow) waits only for what the transferring leader still had to wait for,
// inheritedWait from now; any other one starts from this node's own knowledge of leases,
// since its own vote is part of the quorum that elects it.
func (r *Raft) becomeCandidate(transfer bool, inheritedWait time.Duration) {
	r.role = Candidate
	r.readLeaseUntil = 0
	r.term++
	r.vote = r.id
	r.lead = None
	r.preVoteRound = 0
	r.transferCampaign = transfer
	r.candidacyDurable = false
	switch {
	case transfer:
		r.waitUntil = r.now + inheritedWait
	case r.cfg.off.candidateOwnRecord:
		r.waitUntil = 0
	default:
		r.waitUntil = r.knownLeaseUntil
	}
	r.startTally()
	r.resetElectionDeadline()
	r.toVoters(func(p uint64) Message {
		return Message{Type: MsgVote, To: p, Index: r.log.lastIndex(), LogTerm: r.log.lastTerm(), Transfer: transfer}
	})
	r.decideElection()
}

// decideElection counts a candidate's votes, once its candidacy is durable: the Ready that
// persisted its term and vote has been carried out. By then every membership change it knew
// committed when it became candidate has been applied (that Ready, or one before it, handed
// them all out), and a candidate learns of no commit, so it counts by a membership that
// holds them all; and a leader's own vote is on its disk before it leads. Answers that
// arrive earlier are recorded and counted then.
func (r *Raft) decideElection() {
	if !r.candidacyDurable && !r.cfg.off.electAfterPersist {
		return
	}
	if won, lost := r.tally(); won {
		r.becomeLeader()
	} else if lost {
		r.becomeFollower(r.term, None, fmt.Sprintf("lost the election of term %d: %s", r.term, r.lastRefusal))
	}
}

// preVoteTerm is the term the current pre-vote round asks for.
func (r *Raft) preVoteTerm() uint64 { return r.term + r.preVoteRound }

// holdAtMaxTerm keeps a node from campaigning for the term ahead terms past its own when
// that is past MaxTerm, since every peer refuses it, and reports whether it did. The node
// becomes (or stays) a follower and says why each time it would have campaigned.
func (r *Raft) holdAtMaxTerm(ahead uint64) bool {
	if ahead <= MaxTerm-r.term {
		return false
	}
	reason := fmt.Sprintf("term %d is too close to the largest term %d to campaign", r.term, MaxTerm)
	r.event(Event{Kind: EventPreVoteFailed, Reason: reason})
	r.becomeFollower(r.term, None, reason)
	return true
}

func (r *Raft) stepCandidate(m Message, from int) error {
	switch m.Type {
	case MsgApp, MsgHeartbeat, MsgSnap:
		// A leader won this term.
		r.becomeFollower(m.Term, m.From, fmt.Sprintf("node %d won the election of term %d", m.From, m.Term))
		return r.stepFollower(m)
	case MsgPreVoteResp:
		// Granted answers carry the term this round asked for, refusals our term; anything
		// else is from an older round and was dropped as stale or is ignored here.
		if r.role != PreCandidate || (!m.Reject && m.Term != r.preVoteTerm()) || (m.Reject && m.Term != r.term) {
			return nil
		}
		r.recordVote(from, !m.Reject)
		if won, lost := r.tally(); won {
			r.becomeCandidate(false, 0)
		} else if lost {
			r.event(Event{Kind: EventPreVoteFailed, Reason: fmt.Sprintf("%d refused, last: %s",
				r.countVotes(-1), m.RejectReason)})
			r.becomeFollower(r.term, None, "pre-vote failed")
		}
	case MsgVoteResp:
		if r.role != Candidate {
			return nil
		}
		if !m.Reject && r.votes[from] == 0 && !r.transferCampaign {
			r.waitUntil = max(r.waitUntil, r.now+m.LeaseRemaining)
		}
		r.recordVote(from, !m.Reject)
		if m.Reject {
			r.lastRefusal = m.RejectReason
		}
		r.decideElection()
	case MsgTimeoutNow:
		// Only a leader of our term sends it, and we have none.
	}
	return nil
}

func (r *Raft) recordVote(from int, granted bool) {
	if r.votes[from] != 0 {
		return
	}
	if granted {
		r.votes[from] = 1
	} else {
		r.votes[from] = -1
	}
}

// matchedInTerm is how far this node's log surely matches its leader's: the commit index, or
// its last entry of the current term if that is further. Every entry of a term comes from
// that term's one leader, which never removes its own entries, and a follower holds one only
// if it accepted it on a matching log (Raft's log matching property): so a node that restarts,
// or learns its term's leader only now, can count on what it holds of that leader's term.
func (r *Raft) matchedInTerm() uint64 {
	if i, ok := r.log.lastIndexOfTerm(r.term, r.log.lastIndex()); ok {
		return max(r.log.committed, i)
	}
	return r.log.committed
}

// becomeFollower makes this node a follower of lead (None if unknown) in term. A leader
// steps down.
func (r *Raft) becomeFollower(term, lead uint64, reason string) {
	if r.role == Leader {
		r.stepDown(term, lead, reason)
		return
	}
	changed := r.role != Follower || r.term != term || r.lead != lead
	newLeader := term > r.term || lead != r.lead
	if term > r.term {
		r.term = term
		r.vote = None
	}
	if newLeader {
		r.preVoteRound = 0
		r.leaderMatched = r.matchedInTerm()
		r.readLeaseUntil = 0
	}
	r.role = Follower
	r.lead = lead
	r.transferCampaign = false
	r.resetElectionDeadline()
	if changed {
		r.event(Event{Kind: EventBecameFollower, Peer: lead, Reason: reason})
	}
}

// stepDown turns a leader into a follower. Its lease ends at once, but it records the lease
// as known, since it may vote next; pending ReadIndex reads are dropped.
func (r *Raft) stepDown(term, lead uint64, reason string) {
	if r.transferStarted && term > r.term {
		reason = fmt.Sprintf("transferred leadership to node %d (%s)", r.transferTarget, reason)
	}
	r.event(Event{Kind: EventSteppedDown, Reason: reason})
	if r.leaseHeldReported {
		r.leaseHeldReported = false
		r.event(Event{Kind: EventLeaseLost, Reason: "stepped down"})
	}
	r.dropReads(term, lead)
	r.role = Follower
	r.preVoteRound = 0
	if term > r.term {
		r.term = term
		r.vote = None
	}
	r.leaderMatched = r.matchedInTerm()
	r.lead = lead
	r.transferTarget = None
	r.transferStarted = false
	r.transferDeadline = never
	r.heartbeatDeadline = never
	r.leaseExpiry = 0
	r.waitUntil = 0
	r.departedUntil = 0
	r.leaseRelinquished = false
	r.committedInTerm = false
	r.appendPending = false
	r.resetElectionDeadline()
	r.event(Event{Kind: EventBecameFollower, Peer: lead, Reason: reason})
}

func (r *Raft) becomeLeader() {
	r.role = Leader
	r.lead = r.id
	r.becameLeaderAt = r.now
	r.transferCampaign = false
	r.transferTarget = None
	r.transferStarted = false
	r.transferDeadline = never
	r.leaseExpiry = 0
	r.leaseRelinquished = false
	r.leaseHeldReported = false
	r.committedInTerm = false
	r.uncommittedBytes = 0
	r.round++
	r.roundUsed = false
	next := r.log.lastIndex() + 1
	for i := range r.progress {
		r.progress[i].resetForTerm(next, r.now, r.cfg.MaxInflightMsgs, r.cfg.MaxInflightBytes)
	}
	r.event(Event{Kind: EventBecameLeader})
	if r.waitUntil > r.now {
		r.event(Event{Kind: EventWaitingOldLease, Duration: r.waitUntil - r.now})
	}
	r.log.entries = append(r.log.entries, Entry{Index: next, Term: r.term, Type: EntryNoop})
	r.progress[r.self].match = r.log.persisted
	// No membership change before everything in its log at election is applied: one of them
	// may be a change this leader does not know the outcome of yet.
	r.pendingConf = next
	r.appendPending = true
	r.heartbeatDeadline = r.now + r.cfg.HeartbeatInterval
	r.maybeCommit()
}

// checkQuorumDeadline is when this leader will have gone ElectionTimeoutMin without hearing
// from a quorum: the quorum-th most recent contact (itself counting as now) plus the timeout.
func (r *Raft) checkQuorumDeadline() time.Duration {
	if r.soleVoter() {
		return never
	}
	contact, ok := jointValue(r.countBy(false), func(id uint64) (time.Duration, bool) {
		if id == r.id {
			return r.now, true // itself is the most recent
		}
		return r.progress[r.memberIndex(id)].lastContact, true
	}, r.scratchTimes)
	if !ok {
		return r.now
	}
	return contact + r.cfg.ElectionTimeoutMin
}

// soleVoter reports whether this node alone makes every quorum.
func (r *Raft) soleVoter() bool {
	return len(r.conf.voters) == 1 && r.conf.voters[0] == r.id && !r.conf.joint()
}

// Propose appends data to the leader's log and returns where it will commit if it does.
// The entry goes out with the next Ready, batched with every other proposal since the last.
func (r *Raft) Propose(data []byte) (index, term uint64, err error) {
	if r.role != Leader {
		return 0, 0, &NotLeaderError{Leader: r.lead, Term: r.term}
	}
	if r.transferTarget != None {
		return 0, 0, fmt.Errorf("%w: leadership is being transferred to node %d", ErrProposalDropped, r.transferTarget)
	}
	size := uint64(len(data))
	if limit := r.cfg.MaxUncommittedBytes; limit > 0 && r.uncommittedBytes > 0 && r.uncommittedBytes+size > limit {
		return 0, 0, fmt.Errorf("%w: %d uncommitted bytes, limit %d", ErrProposalDropped, r.uncommittedBytes, limit)
	}
	index = r.log.lastIndex() + 1
	r.log.entries = append(r.log.entries, Entry{Index: index, Term: r.term, Type: EntryNormal, Data: data})
	r.uncommittedBytes += size
	r.appendPending = true
	return index, r.term, nil
}

// Compact drops the entries up to and including meta.Index, which the caller holds in a
// snapshot. meta.Index must be applied already.
// The membership as of meta.Index goes into the snapshot: the core fills it in when
// meta.ConfState is empty (ConfStateAt gives it to a caller that stores it first).
func (r *Raft) Compact(meta SnapshotMeta) error {
	if meta.Index <= r.log.snapshot.Index {
		return nil
	}
	if meta.Index > r.log.applied {
		return fmt.Errorf("raft: compact to index %d: only %d is applied", meta.Index, r.log.applied)
	}
	t, ok := r.log.term(meta.Index)
	if !ok || t != meta.Term {
		return fmt.Errorf("raft: compact to index %d term %d: the log has term %d there", meta.Index, meta.Term, t)
	}
	conf := r.confAt(meta.Index)
	if meta.ConfState.IsEmpty() {
		meta.ConfState = conf.confState()
	} else if !meta.ConfState.Equal(conf.confState()) {
		return fmt.Errorf("raft: compact to index %d: the snapshot's membership (%v) is not the one as of that index (%v)",
			meta.Index, meta.ConfState, conf.confState())
	}
	r.log.compact(meta)
	// Forget the memberships older than the new compaction point.
	keep := 0
	for i, m := range r.confs {
		if m.index <= meta.Index {
			keep = i
		}
	}
	r.confs = slices.Clone(r.confs[keep:])
	r.confs[0].index = meta.Index
	return nil
}

// ConfStateAt is the membership as of index, which must be applied and not compacted away.
func (r *Raft) ConfStateAt(index uint64) (ConfState, error) {
	if index < r.log.snapshot.Index || index > r.log.applied {
		return ConfState{}, fmt.Errorf("raft: membership at %d: only %d to %d are known", index, r.log.snapshot.Index, r.log.applied)
	}
	return r.confAt(index).confState(), nil
}

// TermAt is the term of the entry at index, which must be held in the log or be the
// snapshot's last index. A driver that compacts to an earlier index than its snapshot's (to
// keep entries a lagging follower still needs) builds that point's SnapshotMeta with it.
func (r *Raft) TermAt(index uint64) (uint64, error) {
	t, ok := r.log.term(index)
	if !ok {
		return 0, fmt.Errorf("raft: term at %d: only %d to %d are known", index, r.log.snapshot.Index, r.log.lastIndex())
	}
	return t, nil
}

// ReportUnreachable tells the leader that the transport could not deliver to peer: stop
// pipelining to it and probe again.
func (r *Raft) ReportUnreachable(peer uint64) {
	i := r.memberIndex(peer)
	if r.role != Leader || i < 0 || i == r.self {
		return
	}
	if pr := &r.progress[i]; pr.state == ProgressReplicate {
		pr.becomeProbe()
		r.appendPending = true
	}
}

// ReportSnapshot tells the leader whether the snapshot sent to peer was delivered.
func (r *Raft) ReportSnapshot(peer uint64, ok bool) {
	i := r.memberIndex(peer)
	if r.role != Leader || i < 0 || i == r.self {
		return
	}
	pr := &r.progress[i]
	if pr.state != ProgressSnapshot {
		return
	}
	if !ok {
		pr.pendingSnapshot = 0
	}
	pr.becomeProbe()
	// Wait for the follower's answer (or the next heartbeat reply) before probing.
	pr.probeSent = true
	pr.probeSentAt = r.now
}

// TransferLeadership hands leadership to node to: the leader stops taking proposals, brings
// to up to date, gives up its lease and tells it to campaign at once. It gives up after
// ElectionTimeoutMin.
func (r *Raft) TransferLeadership(to uint64) error {
	if r.role != Leader {
		return &NotLeaderError{Leader: r.lead, Term: r.term}
	}
	if !slices.Contains(r.conf.voters, to) {
		return fmt.Errorf("%w: cannot transfer leadership to node %d, which is not a voter (%v)", ErrUnknownPeer, to, r.conf.confState())
	}
	if to == r.id {
		return fmt.Errorf("raft: node %d is already the leader", to)
	}
	if r.transferTarget == to {
		return nil
	}
	if r.transferTarget != None {
		r.abortTransfer(fmt.Sprintf("superseded by a transfer to node %d", to))
	}
	r.transferTarget = to
	r.transferStarted = false
	r.transferDeadline = r.now + r.cfg.ElectionTimeoutMin
	r.maybeStartTransfer()
	if !r.transferStarted {
		r.appendPending = true
	}
	r.updateLease()
	return nil
}

// maybeStartTransfer sends MsgTimeoutNow once the target holds the whole log.
func (r *Raft) maybeStartTransfer() {
	if r.transferTarget == None || r.transferStarted {
		return
	}
	pr := &r.progress[r.memberIndex(r.transferTarget)]
	if pr.match != r.log.lastIndex() {
		return
	}
	r.transferStarted = true
	r.leaseRelinquished = !r.cfg.off.transferRelinquish
	if r.leaseHeldReported {
		r.leaseHeldReported = false
		r.event(Event{Kind: EventLeaseLost, Reason: fmt.Sprintf("given up to transfer leadership to node %d", r.transferTarget)})
	}
	r.event(Event{Kind: EventTransferStarted, Peer: r.transferTarget})
	inherited := max(0, r.waitUntil-r.now)
	if r.cfg.off.transferInheritedWait {
		inherited = 0
	}
	// The read leases this leader granted outlive the lease it gives up, and the transferee's
	// voters report none of them: the transferee waits them out itself, on its own clock,
	// which may run fast against this one's (doc.go, "Leadership transfer").
	if !r.cfg.off.transferHolderWait {
		for i := range r.progress {
			if pr := &r.progress[i]; i != r.self && pr.holderUntil > r.now {
				inherited = max(inherited, r.cfg.scaleUpBound(pr.holderUntil-r.now))
			}
		}
		if r.departedUntil > r.now {
			inherited = max(inherited, r.cfg.scaleUpBound(r.departedUntil-r.now))
		}
	}
	r.send(Message{Type: MsgTimeoutNow, To: r.transferTarget, LeaseRemaining: inherited})
}

func (r *Raft) abortTransfer(reason string) {
	r.event(Event{Kind: EventTransferAborted, Peer: r.transferTarget, Reason: reason})
	r.transferTarget = None
	r.transferStarted = false
	r.transferDeadline = never
}

var errReadLog = errors.New("raft: log reads go through Propose, not Read")
