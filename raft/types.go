package raft

import (
	"errors"
	"fmt"
	"time"

	"github.com/georaft/georaft/readmode"
)

// None is the zero node id: no vote, no known leader.
const None uint64 = 0

// MaxTerm is the largest term the core accepts. A message or a restored state with a later
// term is corrupt or forged. Without a ceiling, one forged term of 2^64-1 would leave no term
// to campaign in (the next wraps to 0), and no node could be elected again. At one election a
// millisecond, a real cluster takes 292 million years to reach MaxTerm.
const MaxTerm uint64 = 1<<63 - 1

// MaxIndex is the largest log index the core accepts in an append or a snapshot, for the same
// reason: an entry past it would leave the next one no index.
const MaxIndex uint64 = 1<<63 - 1

// Role is what a node currently is in its term.
type Role uint8

const (
	Follower Role = iota
	PreCandidate
	Candidate
	Leader
)

func (r Role) String() string {
	switch r {
	case Follower:
		return "follower"
	case PreCandidate:
		return "pre-candidate"
	case Candidate:
		return "candidate"
	case Leader:
		return "leader"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// EntryType tells the state machine how to treat an entry's Data.
type EntryType uint8

const (
	// EntryNormal carries an opaque command for the state machine.
	EntryNormal EntryType = iota
	// EntryNoop opens every leader's term. It has no Data. Committing it is what lets a new
	// leader learn which earlier entries are committed (Raft §8) and start serving reads.
	EntryNoop
	// EntryConfChange changes the membership; its Data is an encoded ConfChange. The core
	// applies it when the caller has applied it (Advance).
	EntryConfChange
)

func (t EntryType) String() string {
	switch t {
	case EntryNormal:
		return "normal"
	case EntryNoop:
		return "noop"
	case EntryConfChange:
		return "confchange"
	}
	return fmt.Sprintf("entrytype(%d)", uint8(t))
}

// Entry is one slot of the replicated log.
type Entry struct {
	Index uint64
	Term  uint64
	Type  EntryType
	Data  []byte
}

// HardState is what must be on stable storage before any message that depends on it leaves
// the node: a vote reply, an append acknowledgement, a vote request.
type HardState struct {
	Term   uint64
	Vote   uint64
	Commit uint64
	// LeaseBound is the longest lease duration this node acknowledged from a leader, lowered
	// only once no lease of that length can still run. A restarted node assumes a lease of
	// at least that long runs from its start (doc.go, "Timing that differs between nodes").
	LeaseBound time.Duration
}

// IsEmpty reports whether hs carries no state at all (a brand new node).
func (hs HardState) IsEmpty() bool { return hs == HardState{} }

// SnapshotMeta identifies a snapshot: the state machine after applying every entry up to and
// including Index, whose term was Term. The snapshot's bytes never pass through the core; the
// transport moves them and the node stores them.
type SnapshotMeta struct {
	Index uint64
	Term  uint64
	// ConfState is the membership as of Index.
	ConfState ConfState
}

// SameAs reports whether m and o are the snapshot at the same index and term.
func (m SnapshotMeta) SameAs(o SnapshotMeta) bool { return m.Index == o.Index && m.Term == o.Term }

// MessageType names the RPC a Message stands for.
type MessageType uint8

const (
	MsgPreVote MessageType = iota + 1
	MsgPreVoteResp
	MsgVote
	MsgVoteResp
	MsgApp
	MsgAppResp
	MsgHeartbeat
	MsgHeartbeatResp
	MsgSnap
	MsgSnapResp
	MsgTimeoutNow
)

var messageTypeNames = [...]string{
	MsgPreVote:       "PreVote",
	MsgPreVoteResp:   "PreVoteResp",
	MsgVote:          "Vote",
	MsgVoteResp:      "VoteResp",
	MsgApp:           "App",
	MsgAppResp:       "AppResp",
	MsgHeartbeat:     "Heartbeat",
	MsgHeartbeatResp: "HeartbeatResp",
	MsgSnap:          "Snap",
	MsgSnapResp:      "SnapResp",
	MsgTimeoutNow:    "TimeoutNow",
}

func (t MessageType) String() string {
	if int(t) < len(messageTypeNames) && messageTypeNames[t] != "" {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("msgtype(%d)", uint8(t))
}

// IsResponse reports whether t answers a request from the message's recipient.
func (t MessageType) IsResponse() bool {
	switch t {
	case MsgPreVoteResp, MsgVoteResp, MsgAppResp, MsgHeartbeatResp, MsgSnapResp:
		return true
	}
	return false
}

// Message is every RPC between peers, in both directions. Fields not used by a type are zero.
// The transport maps it one to one onto the wire protocol.
type Message struct {
	Type MessageType
	From uint64
	To   uint64
	Term uint64

	// Vote and PreVote requests: the candidate's last log position. Append and Snap
	// requests: Index and LogTerm are the entry just before Entries (prev index and term).
	// AppResp: Index is the follower's last index on success, or the rejected prev index.
	Index   uint64
	LogTerm uint64

	// Entries to append (MsgApp). Commit is the leader's commit index (MsgApp, MsgHeartbeat).
	Entries []Entry
	Commit  uint64

	// Reject is set on a refused vote, pre-vote or append. For a refused append, ConflictTerm
	// and ConflictIndex let the leader skip a whole term per round trip: ConflictTerm is the
	// follower's term at the rejected prev index (0 if its log is too short) and ConflictIndex
	// the first index the follower holds of that term (or its last index + 1 if too short).
	Reject bool
	// Transfer marks a MsgVote sent by a candidate that received MsgTimeoutNow: the old
	// leader gave up its lease, so voters do not report it. It sits next to Reject so the two
	// bools share one word: a Ready's slice of one message per peer then stays in the
	// allocation size class it had before FollowerClock was added.
	Transfer      bool
	RejectReason  string
	ConflictTerm  uint64
	ConflictIndex uint64

	// Lease bookkeeping. See the package documentation for the rule these serve.
	//
	// LeaseDuration: on MsgApp and MsgHeartbeat, the leader's lease duration, so a follower
	// knows how long the leader may serve reads after this message.
	// LeaseRemaining: on MsgVoteResp, how long the voter still believes an older leader may
	// hold a lease, on the voter's clock; on MsgTimeoutNow, how much of the old leader's own
	// inherited wait was left, so a transferee that skips the vote-reported wait still
	// honours leases older than the transferring leader's.
	LeaseDuration  time.Duration
	LeaseRemaining time.Duration

	// SentAt is the leader's clock when it sent a MsgApp or MsgHeartbeat, and Round the
	// leader's broadcast round at that moment. Responses echo both unchanged. SentAt dates
	// the lease; Round confirms ReadIndex reads, which must be confirmed by messages sent
	// after the read arrived.
	SentAt time.Duration
	Round  uint64

	// FollowerClock dates a follower's stale-read freshness on the follower's own clock.
	// On MsgAppResp and MsgHeartbeatResp (accepted or rejected) it is the follower's clock
	// when it produced the response. On MsgApp and MsgHeartbeat the leader echoes the
	// FollowerClock of the latest response it received from that follower in its current
	// term (0 before the first one). The leader sent the message after that response
	// arrived, so the state the message carries is no older than FollowerClock on the
	// follower's clock, however long the message then waited; see "Stale-read freshness" in
	// doc.go.
	FollowerClock time.Duration
	// FollowerBoot names the boot of the follower's clock that FollowerClock was read from
	// (Config.BootID), and is echoed with it: after the follower's machine restarts, its clock
	// counts from a new origin, and an echo of a reading from before could fall below its new
	// clock and date its state as fresher than it is.
	FollowerBoot uint64
	// ReadLease, on a MsgApp or MsgHeartbeat to a read-lease holder, grants it a read lease
	// until FollowerClock + ReadLease on its own clock; the leader grants it only to a holder
	// that holds every entry up to the message's Commit (doc.go, "Read leases").
	ReadLease time.Duration

	// Snapshot identifies the snapshot a MsgSnap installs. The transport carries the bytes.
	Snapshot SnapshotMeta
}

// ReadMode is the consistency a read asks for: readmode.Mode, the one type every layer
// shares. The core serves ReadLease, ReadIndex and ReadStale; ReadLog the node implements
// with Propose, so the core never sees it as a read.
type ReadMode = readmode.Mode

const (
	ReadLease = readmode.Lease
	ReadIndex = readmode.Index
	ReadLog   = readmode.Log
	ReadStale = readmode.Stale
)

// ReadState tells the caller that read ID may be answered from the local state machine as
// soon as it has applied Index.
type ReadState struct {
	ID    uint64
	Index uint64
	Mode  ReadMode
}

// DroppedRead is a pending ReadIndex read that can no longer be confirmed (the node stepped
// down or its term changed). The caller reports Err to the client, which may retry.
type DroppedRead struct {
	ID  uint64
	Err error
}

// Ready is what the core hands the caller to do. The caller must, in this order:
//  1. send Messages (they do not depend on anything unpersisted: leader appends and
//     heartbeats, whose term is already durable);
//  2. persist HardState (if non-nil), Snapshot (if non-nil) and Entries, with fsync;
//     Entries[0].Index may be at or below the last stored index, in which case the stored
//     suffix from that index on is replaced. A Snapshot is one the leader sent and the node
//     already stored: the stored log restarts after Snapshot.Index (every stored entry is
//     dropped), and the state machine is restored from it before CommittedEntries are
//     applied;
//  3. send MessagesAfterPersist (vote requests and replies, append acknowledgements, and
//     leader messages of a term this Ready makes durable, which only a vote granted before it
//     was asked for can cause);
//  4. apply CommittedEntries in order, then answer ReadStates whose Index is applied;
//  5. call Advance(rd).
//
// Steps 1 and 2 may overlap. Ready returns nothing new until Advance is called, but Step,
// Tick, Propose and Read may be called in between.
type Ready struct {
	HardState            *HardState
	Snapshot             *SnapshotMeta
	Entries              []Entry
	Messages             []Message
	MessagesAfterPersist []Message
	CommittedEntries     []Entry
	ReadStates           []ReadState
	DroppedReads         []DroppedRead
	Events               []Event
}

// IsEmpty reports whether rd holds nothing to do.
func (rd *Ready) IsEmpty() bool {
	return rd.HardState == nil && rd.Snapshot == nil && len(rd.Entries) == 0 &&
		len(rd.Messages) == 0 && len(rd.MessagesAfterPersist) == 0 &&
		len(rd.CommittedEntries) == 0 && len(rd.ReadStates) == 0 &&
		len(rd.DroppedReads) == 0 && len(rd.Events) == 0
}

// LeaseState describes the leader lease as this node sees it.
type LeaseState uint8

const (
	// LeaseNone: not the leader, or the leader's lease has lapsed.
	LeaseNone LeaseState = iota
	// LeaseWaiting: leader, but an older leader's lease may still be running, or no entry of
	// this term is committed yet.
	LeaseWaiting
	// LeaseHeld: leader, and lease reads are answered locally until LeaseExpiry.
	LeaseHeld
	// LeaseRelinquished: leader that gave its lease up to transfer leadership; it serves no
	// lease read for the rest of its term.
	LeaseRelinquished
)

func (s LeaseState) String() string {
	switch s {
	case LeaseNone:
		return "none"
	case LeaseWaiting:
		return "waiting"
	case LeaseHeld:
		return "held"
	case LeaseRelinquished:
		return "relinquished"
	}
	return fmt.Sprintf("leasestate(%d)", uint8(s))
}

// ProgressState is how the leader replicates to one follower.
type ProgressState uint8

const (
	// ProgressProbe: one append at a time until the follower's match index is found.
	ProgressProbe ProgressState = iota
	// ProgressReplicate: appends are pipelined, bounded by Config.MaxInflightMsgs and
	// Config.MaxInflightBytes.
	ProgressReplicate
	// ProgressSnapshot: a snapshot is in flight; no appends until it is acknowledged.
	ProgressSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case ProgressProbe:
		return "probe"
	case ProgressReplicate:
		return "replicate"
	case ProgressSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("progressstate(%d)", uint8(s))
}

// PeerProgress is the leader's view of one follower.
type PeerProgress struct {
	Match, Next uint64
	State       ProgressState
	Inflight    int
	// LastAck is the leader's clock when it last heard from this peer in its term.
	LastAck time.Duration
}

// Status is a read-only view of the core for operators, metrics and the node.
type Status struct {
	ID        uint64
	Term      uint64
	Vote      uint64
	Role      Role
	Leader    uint64
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	// FirstIndex is the first index still held in the log; everything below is compacted
	// into the snapshot at Snapshot.
	FirstIndex uint64
	Snapshot   SnapshotMeta

	Lease LeaseState
	// LeaseExpiry is when the lease ends on this node's clock (LeaseHeld), or when the wait
	// for the old lease ends (LeaseWaiting). LeaseRemaining is the same as a duration from
	// Now, never negative.
	LeaseExpiry    time.Duration
	LeaseRemaining time.Duration
	// KnownLeaseUntil is how long this node believes some leader may hold a lease; it is
	// what its vote replies report.
	KnownLeaseUntil time.Duration
	// LastLeaderContact is how recent this node's state is known to be, on its own clock,
	// for stale reads. A follower: the latest FollowerClock its leader echoed in a message it
	// was up to date with, which is when it sent the response the leader had seen, not when
	// the message arrived. A leader: the start of its lease (when a quorum acknowledged it).
	// Zero if never.
	LastLeaderContact time.Duration
	Now               time.Duration

	TransferTarget uint64
	// Progress is set on the leader only.
	Progress map[uint64]PeerProgress
}

// Errors returned by Propose, Read and TransferLeadership. The node turns them into gRPC
// status codes.
var (
	ErrProposalDropped = errors.New("raft: proposal dropped")
	ErrLeaseNotHeld    = errors.New("raft: leader does not hold a lease")
	ErrTooStale        = errors.New("raft: no contact with a leader within the staleness bound")
	ErrStepLocalMsg    = errors.New("raft: message not addressed to this node")
	ErrUnknownPeer     = errors.New("raft: message from a node outside the cluster")
)

// NotLeaderError is returned when an operation needs the leader. Leader is the best known
// leader id (None if unknown), for a redirect.
type NotLeaderError struct {
	Leader uint64
	Term   uint64
}

func (e *NotLeaderError) Error() string {
	if e.Leader == None {
		return fmt.Sprintf("raft: not the leader (term %d, leader unknown)", e.Term)
	}
	return fmt.Sprintf("raft: not the leader (term %d, leader is %d)", e.Term, e.Leader)
}
