package node

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every answer that names a reason.
const ErrorDomain = "georaft.io"

// Reasons carried in the ErrorInfo of UNAVAILABLE answers, which clients retry, and of a few
// FAILED_PRECONDITION and ALREADY_EXISTS ones, which they do not.
const (
	ReasonNoLeader         = "NO_LEADER"
	ReasonLeaseNotHeld     = "LEASE_NOT_HELD"
	ReasonTooStale         = "TOO_STALE"
	ReasonProposalDropped  = "PROPOSAL_DROPPED"
	ReasonProposalLost     = "PROPOSAL_LOST"
	ReasonLeadershipLost   = "LEADERSHIP_LOST"
	ReasonShuttingDown     = "SHUTTING_DOWN"
	ReasonDiskFailed       = "DISK_FAILED"
	ReasonTransferTimedOut = "TRANSFER_TIMED_OUT"
	// ReasonStaleSequence rides on FAILED_PRECONDITION: the write's session sequence is older
	// than one already applied, so it was neither applied nor is its result remembered.
	ReasonStaleSequence = "STALE_SEQUENCE"
	// ReasonReusedSequence rides on FAILED_PRECONDITION: the write carries the sequence of the
	// session's last applied write but asks for something else (another op, key or value). It
	// was not applied; the client must take the next sequence.
	ReasonReusedSequence = "REUSED_SEQUENCE"
	// ReasonPeerAddressInUse rides on ALREADY_EXISTS: a member add names the peer address of
	// a current member, which it cannot be taken as asking for again (another id, region or
	// client address, or that member has started).
	ReasonPeerAddressInUse = "PEER_ADDRESS_IN_USE"
)

// unavailable builds an UNAVAILABLE status naming its reason.
func unavailable(reason, format string, args ...any) error {
	return withReason(codes.Unavailable, reason, fmt.Sprintf(format, args...))
}

// failedPrecondition builds a FAILED_PRECONDITION status naming its reason: the request
// cannot succeed as sent, and retrying it unchanged will not help.
func failedPrecondition(reason, msg string) error {
	return withReason(codes.FailedPrecondition, reason, msg)
}

// withReason builds a status of code whose ErrorInfo names reason in ErrorDomain.
func withReason(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if withDetail, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = withDetail
	}
	return st.Err()
}

// reasonOf is the ErrorInfo reason of a status, or "".
func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.Reason
		}
	}
	return ""
}

// invalidArgument builds an INVALID_ARGUMENT status naming the offending field.
func invalidArgument(field, format string, args ...any) error {
	desc := fmt.Sprintf(format, args...)
	st := status.New(codes.InvalidArgument, desc)
	if withDetail, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}},
	}); err == nil {
		st = withDetail
	}
	return st.Err()
}

// notLeader builds the FAILED_PRECONDITION answer that tells a client where the leader is.
func notLeader(leader uint64, leaderAddress string, term uint64) error {
	msg := "not the leader; leader unknown"
	if leader != raft.None {
		msg = fmt.Sprintf("not the leader; leader is node %d at %s", leader, leaderAddress)
	}
	st := status.New(codes.FailedPrecondition, msg)
	if withDetail, err := st.WithDetails(&georaftv1.NotLeader{
		LeaderId: leader, LeaderAddress: leaderAddress, Term: term,
	}); err == nil {
		st = withDetail
	}
	return st.Err()
}

// errFailed is returned once the node has failed stop after a disk error.
type errFailed struct{ cause error }

func (e *errFailed) Error() string {
	if errors.Is(e.cause, errMemberRemoved) {
		return "node stopped: " + e.cause.Error()
	}
	return "node stopped after a storage failure: " + e.cause.Error()
}
func (e *errFailed) Unwrap() error { return e.cause }

var (
	errShuttingDown   = errors.New("node is shutting down")
	errProposalLost   = errors.New("the proposal was overwritten by a new leader before it committed")
	errLeadershipGone = errors.New("leadership changed before the read could be confirmed")
	// errClockStopsInSuspend refuses reads whose bound is measured on this node's clock, on a
	// platform where that clock may stop while the machine sleeps (clock_other.go).
	errClockStopsInSuspend = status.Error(codes.FailedPrecondition,
		"this node's clock may stop while the machine sleeps (not Linux: no CLOCK_BOOTTIME), so it cannot bound how stale its data is: bounded-staleness and serializable reads are refused here; read in index or lease mode (lease reads are answered through ReadIndex on this platform)")
)

// toStatus turns an internal error into the gRPC status a client can act on.
func (n *Node) toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var nl *raft.NotLeaderError
	var failed *errFailed
	switch {
	case errors.As(err, &nl):
		if nl.Leader == raft.None {
			return unavailable(ReasonNoLeader, "no leader is known in term %d; an election is under way", nl.Term)
		}
		return notLeader(nl.Leader, n.clientAddressOf(nl.Leader), nl.Term)
	case errors.As(err, &failed):
		return unavailable(ReasonDiskFailed, "%v", err)
	case errors.Is(err, raft.ErrLeaseNotHeld):
		return unavailable(ReasonLeaseNotHeld, "the leader does not hold a lease right now; retry, or read in index mode")
	case errors.Is(err, raft.ErrTooStale):
		return unavailable(ReasonTooStale, "stale read refused: %v", err)
	case errors.Is(err, raft.ErrProposalDropped):
		return unavailable(ReasonProposalDropped, "the leader is not accepting writes right now (leadership transfer or backlog); retry")
	case errors.Is(err, errProposalLost):
		return unavailable(ReasonProposalLost, "%v; retry", err)
	case errors.Is(err, errLeadershipGone):
		return unavailable(ReasonLeadershipLost, "%v; retry", err)
	case errors.Is(err, errShuttingDown):
		return unavailable(ReasonShuttingDown, "%v", err)
	}
	return status.Error(codes.Internal, err.Error())
}
