package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Sentinels for errors.Is. The concrete errors below carry the details.
var (
	// ErrUnavailable: no node could serve the call before the deadline (no leader, every
	// endpoint unreachable, leases not held, ...). A write that failed this way may or may
	// not have been applied; retrying it with a new call is safe only for idempotent writes.
	ErrUnavailable = errors.New("cluster unavailable")
	// ErrInvalidArgument: a node refused the request itself (a key too long, an empty key).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrRefused: a node refused the call for a reason retrying will not fix (wrong cluster,
	// permission, unknown transfer target).
	ErrRefused = errors.New("refused")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
)

// UnavailableError says why a call gave up. It matches ErrUnavailable, and also
// context.DeadlineExceeded when the deadline is what ended the retries.
type UnavailableError struct {
	// Op is the operation that gave up ("set", "get", ...).
	Op string
	// Reason is the last ErrorInfo reason a node gave (e.g. NO_LEADER), or a short
	// description of the last failure when no node answered ("connection failed").
	Reason string
	// Cause says why, for an operator: "2 of 5 nodes reachable; a quorum needs 3",
	// "election under way (term 7): ...", "no node reachable: every endpoint refused the
	// connection". Empty when the client could not tell.
	Cause string
	// Attempts counts the RPCs sent.
	Attempts int
	// Elapsed is the time spent in the call.
	Elapsed time.Duration
	// Deadline is set when the overall deadline ended the call.
	Deadline bool
	// Last is the last error seen.
	Last error
}

func (e *UnavailableError) Error() string {
	why := "gave up"
	if e.Deadline {
		why = "deadline exceeded"
	}
	msg := e.Op + ": cluster unavailable"
	if e.Cause != "" {
		msg += ": " + e.Cause
	}
	msg += fmt.Sprintf(" (%s after %d attempt(s) in %s", why, e.Attempts, e.Elapsed.Round(time.Millisecond))
	if e.Reason != "" {
		msg += "; last reason " + e.Reason
	}
	msg += ")"
	if e.Last != nil {
		msg += ": last error: " + DescribeRPCError(e.Last)
	}
	return msg
}

// DescribeRPCError renders a gRPC error without the nesting gRPC adds ("rpc error: code =
// Unavailable desc = connection error: desc = ..."): the code, then the innermost message.
func DescribeRPCError(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := st.Message()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		msg = msg[i+len("desc = "):]
	}
	msg = strings.Trim(msg, `"`)
	if msg == "" {
		return st.Code().String()
	}
	return st.Code().String() + ": " + msg
}

func (e *UnavailableError) Is(target error) bool {
	return target == ErrUnavailable || (e.Deadline && target == context.DeadlineExceeded)
}

func (e *UnavailableError) Unwrap() error { return e.Last }

// InvalidArgumentError is a request the node refused as malformed; Field names the request
// field at fault (key, value) when the node said so.
type InvalidArgumentError struct {
	Op          string
	Field       string
	Description string
	Message     string
}

func (e *InvalidArgumentError) Error() string {
	msg := e.Op + ": invalid argument"
	if e.Field != "" {
		msg += " " + e.Field
	}
	switch {
	case e.Description != "":
		msg += ": " + e.Description
	case e.Message != "":
		msg += ": " + e.Message
	}
	return msg
}

func (e *InvalidArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

// RefusedError is any other definitive refusal, with the gRPC code the node answered.
type RefusedError struct {
	Op      string
	Code    codes.Code
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: refused (%s): %s", e.Op, e.Code, e.Message)
}

func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// failure is how the retry loop should treat one failed attempt.
type failure int

const (
	// failRetry: back off, then try another endpoint.
	failRetry failure = iota
	// failRedirect: the node named (or did not know) the leader.
	failRedirect
	// failFinal: return the error to the caller as it is.
	failFinal
)

// attemptError is one failed RPC, classified.
type attemptError struct {
	kind      failure
	reason    string               // ErrorInfo reason or a short description
	notLeader *georaftv1.NotLeader // set for failRedirect
	final     error                // set for failFinal
	cause     error
}

// classify turns an RPC error into what the retry loop does next. attemptCtx is the
// context of the attempt; callerCtx the caller's (overall) context.
func classify(op string, err error, callerCtx context.Context) attemptError {
	st, ok := status.FromError(err)
	if !ok {
		if callerCtx.Err() != nil {
			return attemptError{kind: failFinal, final: callerCtx.Err(), cause: err}
		}
		return attemptError{kind: failRetry, reason: "transport error", cause: err}
	}
	switch st.Code() {
	case codes.FailedPrecondition:
		for _, d := range st.Details() {
			if nl, ok := d.(*georaftv1.NotLeader); ok {
				return attemptError{kind: failRedirect, notLeader: nl, reason: "not leader", cause: err}
			}
		}
		return attemptError{kind: failFinal, final: &RefusedError{Op: op, Code: st.Code(), Message: st.Message()}, cause: err}
	case codes.Unavailable:
		reason := "connection failed"
		if info := errorInfo(st); info != nil {
			reason = info.GetReason()
		}
		return attemptError{kind: failRetry, reason: reason, cause: err}
	case codes.DeadlineExceeded, codes.Canceled:
		if callerCtx.Err() != nil {
			return attemptError{kind: failFinal, final: callerCtx.Err(), cause: err}
		}
		// Only this attempt's own timeout fired: the node is slow or the link hangs.
		return attemptError{kind: failRetry, reason: "attempt timed out", cause: err}
	case codes.InvalidArgument:
		iae := &InvalidArgumentError{Op: op, Message: st.Message()}
		for _, d := range st.Details() {
			if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
				iae.Field = br.GetFieldViolations()[0].GetField()
				iae.Description = br.GetFieldViolations()[0].GetDescription()
			}
		}
		return attemptError{kind: failFinal, final: iae, cause: err}
	case codes.Aborted:
		// A node that lost leadership while the write was in flight: the outcome is decided
		// by the log, and the write session makes a retry safe.
		return attemptError{kind: failRetry, reason: "aborted", cause: err}
	default:
		return attemptError{kind: failFinal, final: &RefusedError{Op: op, Code: st.Code(), Message: st.Message()}, cause: err}
	}
}

func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}
