package transport

import (
	"errors"
	"fmt"
	"strings"
	"time"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// fieldMask names raft.Message fields (other than Type, From and To, which travel in the
// PeerHeader and the body's kind) so the codec can say which ones a message uses.
type fieldMask uint32

const (
	fieldTerm fieldMask = 1 << iota
	fieldIndex
	fieldLogTerm
	fieldEntries
	fieldCommit
	fieldReject
	fieldRejectReason
	fieldConflictTerm
	fieldConflictIndex
	fieldLeaseDuration
	fieldLeaseRemaining
	fieldSentAt
	fieldRound
	fieldTransfer
	fieldSnapshot
	fieldFollowerClock
	fieldFollowerBoot
	fieldReadLease
	fieldCount = iota
)

// fieldNames are the raft.Message field names, by bit position in fieldMask.
var fieldNames = [fieldCount]string{
	"Term", "Index", "LogTerm", "Entries", "Commit", "Reject", "RejectReason", "ConflictTerm",
	"ConflictIndex", "LeaseDuration", "LeaseRemaining", "SentAt", "Round", "Transfer", "Snapshot",
	"FollowerClock", "FollowerBoot", "ReadLease",
}

func (f fieldMask) String() string {
	var names []string
	for i := range fieldCount {
		if f&(1<<i) != 0 {
			names = append(names, fieldNames[i])
		}
	}
	return strings.Join(names, ", ")
}

// wireFields is what the protocol carries for each message type. Encoding a message with any
// other field set is an error rather than a silent loss, so a core that starts using a new
// field fails loudly until the protocol carries it.
var wireFields = map[raft.MessageType]fieldMask{
	raft.MsgPreVote:       fieldTerm | fieldIndex | fieldLogTerm | fieldTransfer,
	raft.MsgVote:          fieldTerm | fieldIndex | fieldLogTerm | fieldTransfer,
	raft.MsgPreVoteResp:   fieldTerm | fieldReject | fieldRejectReason | fieldLeaseRemaining,
	raft.MsgVoteResp:      fieldTerm | fieldReject | fieldRejectReason | fieldLeaseRemaining,
	raft.MsgApp:           fieldTerm | fieldIndex | fieldLogTerm | fieldEntries | fieldCommit | fieldLeaseDuration | fieldSentAt | fieldRound | fieldFollowerClock | fieldFollowerBoot | fieldReadLease,
	raft.MsgAppResp:       fieldTerm | fieldIndex | fieldReject | fieldRejectReason | fieldConflictTerm | fieldConflictIndex | fieldSentAt | fieldRound | fieldFollowerClock | fieldFollowerBoot,
	raft.MsgHeartbeat:     fieldTerm | fieldCommit | fieldLeaseDuration | fieldSentAt | fieldRound | fieldFollowerClock | fieldFollowerBoot | fieldReadLease,
	raft.MsgHeartbeatResp: fieldTerm | fieldSentAt | fieldRound | fieldFollowerClock | fieldFollowerBoot,
	raft.MsgTimeoutNow:    fieldTerm | fieldLeaseRemaining,
	raft.MsgSnapResp:      fieldTerm | fieldIndex | fieldReject | fieldRejectReason,
}

// presentFields reports which fields of m are not zero.
func presentFields(m *raft.Message) fieldMask {
	var f fieldMask
	set := func(cond bool, bit fieldMask) {
		if cond {
			f |= bit
		}
	}
	set(m.Term != 0, fieldTerm)
	set(m.Index != 0, fieldIndex)
	set(m.LogTerm != 0, fieldLogTerm)
	set(len(m.Entries) != 0, fieldEntries)
	set(m.Commit != 0, fieldCommit)
	set(m.Reject, fieldReject)
	set(m.RejectReason != "", fieldRejectReason)
	set(m.ConflictTerm != 0, fieldConflictTerm)
	set(m.ConflictIndex != 0, fieldConflictIndex)
	set(m.LeaseDuration != 0, fieldLeaseDuration)
	set(m.LeaseRemaining != 0, fieldLeaseRemaining)
	set(m.SentAt != 0, fieldSentAt)
	set(m.Round != 0, fieldRound)
	set(m.Transfer, fieldTransfer)
	set(m.Snapshot.Index != 0 || m.Snapshot.Term != 0 || !m.Snapshot.ConfState.IsEmpty(), fieldSnapshot)
	set(m.FollowerClock != 0, fieldFollowerClock)
	set(m.FollowerBoot != 0, fieldFollowerBoot)
	set(m.ReadLease != 0, fieldReadLease)
	return f
}

// errSnapViaSend is returned for a MsgSnap given to EncodeMessage: its bytes go by
// SendSnapshot, on a stream of their own.
var errSnapViaSend = errors.New("MsgSnap is sent with SendSnapshot, not Send")

// EncodeMessage maps m onto the wire. From and To are not encoded: they travel once per
// batch in the PeerHeader. It fails on MsgSnap, on an unknown type, on a field the type does
// not carry and on a negative duration or follower clock.
func EncodeMessage(m raft.Message) (*georaftv1.RaftMessage, error) {
	if m.Type == raft.MsgSnap {
		return nil, errSnapViaSend
	}
	carried, ok := wireFields[m.Type]
	if !ok {
		return nil, fmt.Errorf("encode message: unknown type %v", m.Type)
	}
	if extra := presentFields(&m) &^ carried; extra != 0 {
		return nil, fmt.Errorf("encode %v message: field(s) %v not carried by the wire protocol for this type", m.Type, extra)
	}
	if m.LeaseDuration < 0 || m.LeaseRemaining < 0 {
		return nil, fmt.Errorf("encode %v message: negative lease duration %v or remaining %v", m.Type, m.LeaseDuration, m.LeaseRemaining)
	}
	if m.FollowerClock < 0 || m.ReadLease < 0 {
		return nil, fmt.Errorf("encode %v message: negative follower clock %v or read lease %v", m.Type, m.FollowerClock, m.ReadLease)
	}
	clock := func() *georaftv1.LeaderClock {
		return &georaftv1.LeaderClock{SentAtNanos: int64(m.SentAt), Round: m.Round}
	}
	var out georaftv1.RaftMessage
	switch m.Type {
	case raft.MsgPreVote, raft.MsgVote:
		out.Body = &georaftv1.RaftMessage_RequestVote{RequestVote: &georaftv1.RequestVoteRequest{
			Term:               m.Term,
			LastLogIndex:       m.Index,
			LastLogTerm:        m.LogTerm,
			PreVote:            m.Type == raft.MsgPreVote,
			LeadershipTransfer: m.Transfer,
		}}
	case raft.MsgPreVoteResp, raft.MsgVoteResp:
		out.Body = &georaftv1.RaftMessage_RequestVoteResponse{RequestVoteResponse: &georaftv1.RequestVoteResponse{
			Term:                m.Term,
			VoteGranted:         !m.Reject,
			PreVote:             m.Type == raft.MsgPreVoteResp,
			LeaseRemainingNanos: int64(m.LeaseRemaining),
			RejectReason:        m.RejectReason,
		}}
	case raft.MsgApp:
		entries, err := encodeEntries(m.Entries)
		if err != nil {
			return nil, fmt.Errorf("encode %v message: %w", m.Type, err)
		}
		out.Body = &georaftv1.RaftMessage_AppendEntries{AppendEntries: &georaftv1.AppendEntriesRequest{
			Term:               m.Term,
			PrevLogIndex:       m.Index,
			PrevLogTerm:        m.LogTerm,
			Entries:            entries,
			LeaderCommit:       m.Commit,
			LeaseDurationNanos: int64(m.LeaseDuration),
			Clock:              clock(),
			FollowerClockNanos: int64(m.FollowerClock),
			FollowerBoot:       m.FollowerBoot,
			ReadLeaseNanos:     int64(m.ReadLease),
		}}
	case raft.MsgAppResp:
		out.Body = &georaftv1.RaftMessage_AppendEntriesResponse{AppendEntriesResponse: &georaftv1.AppendEntriesResponse{
			Term:               m.Term,
			Success:            !m.Reject,
			Index:              m.Index,
			ConflictTerm:       m.ConflictTerm,
			ConflictIndex:      m.ConflictIndex,
			RejectReason:       m.RejectReason,
			Clock:              clock(),
			FollowerClockNanos: int64(m.FollowerClock),
			FollowerBoot:       m.FollowerBoot,
		}}
	case raft.MsgHeartbeat:
		out.Body = &georaftv1.RaftMessage_Heartbeat{Heartbeat: &georaftv1.HeartbeatRequest{
			Term:               m.Term,
			LeaderCommit:       m.Commit,
			LeaseDurationNanos: int64(m.LeaseDuration),
			Clock:              clock(),
			FollowerClockNanos: int64(m.FollowerClock),
			FollowerBoot:       m.FollowerBoot,
			ReadLeaseNanos:     int64(m.ReadLease),
		}}
	case raft.MsgHeartbeatResp:
		out.Body = &georaftv1.RaftMessage_HeartbeatResponse{HeartbeatResponse: &georaftv1.HeartbeatResponse{
			Term:               m.Term,
			Clock:              clock(),
			FollowerClockNanos: int64(m.FollowerClock),
			FollowerBoot:       m.FollowerBoot,
		}}
	case raft.MsgTimeoutNow:
		out.Body = &georaftv1.RaftMessage_TimeoutNow{TimeoutNow: &georaftv1.TimeoutNowRequest{
			Term:                m.Term,
			LeaseRemainingNanos: int64(m.LeaseRemaining),
		}}
	case raft.MsgSnapResp:
		out.Body = &georaftv1.RaftMessage_SnapshotResult{SnapshotResult: &georaftv1.SnapshotResult{
			Term:         m.Term,
			Success:      !m.Reject,
			Index:        m.Index,
			RejectReason: m.RejectReason,
		}}
	}
	return &out, nil
}

func encodeEntries(entries []raft.Entry) ([]*georaftv1.Entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	out := make([]*georaftv1.Entry, len(entries))
	for i, e := range entries {
		var t georaftv1.EntryType
		switch e.Type {
		case raft.EntryNormal:
			t = georaftv1.EntryType_ENTRY_TYPE_NORMAL
		case raft.EntryNoop:
			t = georaftv1.EntryType_ENTRY_TYPE_NOOP
		case raft.EntryConfChange:
			t = georaftv1.EntryType_ENTRY_TYPE_CONF_CHANGE
		default:
			return nil, fmt.Errorf("entry %d: unknown entry type %v", e.Index, e.Type)
		}
		out[i] = &georaftv1.Entry{Index: e.Index, Term: e.Term, Type: t, Data: e.Data}
	}
	return out, nil
}

// DecodeMessage maps a message from the wire back onto raft.Message, with From and To taken
// from the batch's PeerHeader. Anything malformed (no body, an unknown entry type,
// non-contiguous entries, a missing leader clock, a negative duration or follower clock) is an
// error, never a panic, so a bad peer cannot crash the node.
func DecodeMessage(from, to uint64, pb *georaftv1.RaftMessage) (raft.Message, error) {
	m := raft.Message{From: from, To: to}
	if pb == nil {
		return m, errors.New("decode message: nil message")
	}
	nonNegative := func(field string, nanos int64) (time.Duration, error) {
		if nanos < 0 {
			return 0, fmt.Errorf("decode %v message: negative %s %d", m.Type, field, nanos)
		}
		return time.Duration(nanos), nil
	}
	readClock := func(c *georaftv1.LeaderClock) error {
		if c == nil {
			return fmt.Errorf("decode %v message: missing leader clock", m.Type)
		}
		m.SentAt = time.Duration(c.GetSentAtNanos())
		m.Round = c.GetRound()
		return nil
	}
	var err error
	switch body := pb.GetBody().(type) {
	case *georaftv1.RaftMessage_RequestVote:
		b := body.RequestVote
		if b == nil {
			return m, errors.New("decode message: empty request_vote")
		}
		m.Type = raft.MsgVote
		if b.GetPreVote() {
			m.Type = raft.MsgPreVote
		}
		m.Term, m.Index, m.LogTerm, m.Transfer = b.GetTerm(), b.GetLastLogIndex(), b.GetLastLogTerm(), b.GetLeadershipTransfer()
	case *georaftv1.RaftMessage_RequestVoteResponse:
		b := body.RequestVoteResponse
		if b == nil {
			return m, errors.New("decode message: empty request_vote_response")
		}
		m.Type = raft.MsgVoteResp
		if b.GetPreVote() {
			m.Type = raft.MsgPreVoteResp
		}
		m.Term, m.Reject, m.RejectReason = b.GetTerm(), !b.GetVoteGranted(), b.GetRejectReason()
		if m.LeaseRemaining, err = nonNegative("lease_remaining_nanos", b.GetLeaseRemainingNanos()); err != nil {
			return m, err
		}
	case *georaftv1.RaftMessage_AppendEntries:
		b := body.AppendEntries
		if b == nil {
			return m, errors.New("decode message: empty append_entries")
		}
		m.Type = raft.MsgApp
		m.Term, m.Index, m.LogTerm, m.Commit = b.GetTerm(), b.GetPrevLogIndex(), b.GetPrevLogTerm(), b.GetLeaderCommit()
		if m.LeaseDuration, err = nonNegative("lease_duration_nanos", b.GetLeaseDurationNanos()); err != nil {
			return m, err
		}
		if err := readClock(b.GetClock()); err != nil {
			return m, err
		}
		if m.FollowerClock, err = nonNegative("follower_clock_nanos", b.GetFollowerClockNanos()); err != nil {
			return m, err
		}
		m.FollowerBoot = b.GetFollowerBoot()
		if m.ReadLease, err = nonNegative("read_lease_nanos", b.GetReadLeaseNanos()); err != nil {
			return m, err
		}
		if m.Entries, err = decodeEntries(m.Index, b.GetEntries()); err != nil {
			return m, fmt.Errorf("decode %v message: %w", m.Type, err)
		}
	case *georaftv1.RaftMessage_AppendEntriesResponse:
		b := body.AppendEntriesResponse
		if b == nil {
			return m, errors.New("decode message: empty append_entries_response")
		}
		m.Type = raft.MsgAppResp
		m.Term, m.Reject, m.Index = b.GetTerm(), !b.GetSuccess(), b.GetIndex()
		m.ConflictTerm, m.ConflictIndex, m.RejectReason = b.GetConflictTerm(), b.GetConflictIndex(), b.GetRejectReason()
		if err := readClock(b.GetClock()); err != nil {
			return m, err
		}
		if m.FollowerClock, err = nonNegative("follower_clock_nanos", b.GetFollowerClockNanos()); err != nil {
			return m, err
		}
		m.FollowerBoot = b.GetFollowerBoot()
	case *georaftv1.RaftMessage_Heartbeat:
		b := body.Heartbeat
		if b == nil {
			return m, errors.New("decode message: empty heartbeat")
		}
		m.Type = raft.MsgHeartbeat
		m.Term, m.Commit = b.GetTerm(), b.GetLeaderCommit()
		if m.LeaseDuration, err = nonNegative("lease_duration_nanos", b.GetLeaseDurationNanos()); err != nil {
			return m, err
		}
		if err := readClock(b.GetClock()); err != nil {
			return m, err
		}
		if m.FollowerClock, err = nonNegative("follower_clock_nanos", b.GetFollowerClockNanos()); err != nil {
			return m, err
		}
		m.FollowerBoot = b.GetFollowerBoot()
		if m.ReadLease, err = nonNegative("read_lease_nanos", b.GetReadLeaseNanos()); err != nil {
			return m, err
		}
	case *georaftv1.RaftMessage_HeartbeatResponse:
		b := body.HeartbeatResponse
		if b == nil {
			return m, errors.New("decode message: empty heartbeat_response")
		}
		m.Type = raft.MsgHeartbeatResp
		m.Term = b.GetTerm()
		if err := readClock(b.GetClock()); err != nil {
			return m, err
		}
		if m.FollowerClock, err = nonNegative("follower_clock_nanos", b.GetFollowerClockNanos()); err != nil {
			return m, err
		}
		m.FollowerBoot = b.GetFollowerBoot()
	case *georaftv1.RaftMessage_TimeoutNow:
		b := body.TimeoutNow
		if b == nil {
			return m, errors.New("decode message: empty timeout_now")
		}
		m.Type = raft.MsgTimeoutNow
		m.Term = b.GetTerm()
		if m.LeaseRemaining, err = nonNegative("lease_remaining_nanos", b.GetLeaseRemainingNanos()); err != nil {
			return m, err
		}
	case *georaftv1.RaftMessage_SnapshotResult:
		b := body.SnapshotResult
		if b == nil {
			return m, errors.New("decode message: empty snapshot_result")
		}
		m.Type = raft.MsgSnapResp
		m.Term, m.Reject, m.Index, m.RejectReason = b.GetTerm(), !b.GetSuccess(), b.GetIndex(), b.GetRejectReason()
	case nil:
		return m, errors.New("decode message: no body (empty, or a kind this version does not know)")
	default:
		return m, fmt.Errorf("decode message: unsupported body %T", body)
	}
	return m, nil
}

// decodeEntries checks that the entries follow prevIndex one by one, as every append does.
func decodeEntries(prevIndex uint64, in []*georaftv1.Entry) ([]raft.Entry, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]raft.Entry, len(in))
	for i, e := range in {
		if e == nil {
			return nil, fmt.Errorf("entry %d is empty", i)
		}
		want := prevIndex + 1 + uint64(i)
		if e.GetIndex() != want {
			return nil, fmt.Errorf("entry %d has index %d, want %d (entries must follow prev index %d)", i, e.GetIndex(), want, prevIndex)
		}
		var t raft.EntryType
		switch e.GetType() {
		case georaftv1.EntryType_ENTRY_TYPE_NORMAL:
			t = raft.EntryNormal
		case georaftv1.EntryType_ENTRY_TYPE_NOOP:
			t = raft.EntryNoop
		case georaftv1.EntryType_ENTRY_TYPE_CONF_CHANGE:
			t = raft.EntryConfChange
		default:
			return nil, fmt.Errorf("entry %d has unknown type %v", e.GetIndex(), e.GetType())
		}
		var data []byte
		if len(e.GetData()) > 0 { // empty and absent data are the same on the wire
			data = e.GetData()
		}
		out[i] = raft.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Type: t, Data: data}
	}
	return out, nil
}

// EncodeConfState maps a membership onto the wire.
func EncodeConfState(cs raft.ConfState) *georaftv1.ConfState {
	if cs.IsEmpty() {
		return nil
	}
	return &georaftv1.ConfState{Voters: cs.Voters, VotersOutgoing: cs.VotersOutgoing, Learners: cs.Learners,
		ReadLeaseHolders: cs.ReadLeaseHolders}
}

// DecodeConfState reads a membership off the wire.
func DecodeConfState(cs *georaftv1.ConfState) raft.ConfState {
	return raft.ConfState{Voters: cs.GetVoters(), VotersOutgoing: cs.GetVotersOutgoing(), Learners: cs.GetLearners(),
		ReadLeaseHolders: cs.GetReadLeaseHolders()}
}
