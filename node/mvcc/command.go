package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/node/kv"
)

// Kind is what a command does.
type Kind uint8

const (
	// KindTxn is a transaction; a Put, DeleteRange or Range is a transaction of one op.
	KindTxn Kind = 1 + iota
	// KindCompact compacts the history up to a revision.
	KindCompact
	// KindLeaseGrant creates a lease with the ID and TTL the leader chose.
	KindLeaseGrant
	// KindLeaseRevoke revokes a lease and deletes its keys (asked by a client, or decided by
	// the leader when the lease expired).
	KindLeaseRevoke
	// KindMemberPublish records a member's own addresses in the membership table.
	KindMemberPublish
)

func (k Kind) String() string {
	switch k {
	case KindTxn:
		return "txn"
	case KindCompact:
		return "compact"
	case KindLeaseGrant:
		return "lease-grant"
	case KindLeaseRevoke:
		return "lease-revoke"
	case KindMemberPublish:
		return "member-publish"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// SessionOp is the georaft.v1 operation a session write stands for, remembered so a retry
// under the same sequence number gets its original answer.
type SessionOp = kv.Op

// Command is one log entry's payload.
//
// ClientID and Seq are georaft.v1's exactly-once session (ClientID 0: none, the command
// applies every time it appears). Op says which georaft.v1 write it was.
type Command struct {
	Kind     Kind
	ClientID uint64
	Seq      uint64
	Op       SessionOp

	Txn         *pb.TxnRequest
	Compact     *pb.CompactionRequest
	LeaseGrant  *pb.LeaseGrantRequest
	LeaseRevoke *pb.LeaseRevokeRequest
	Member      *Member
}

// commandVersion is the first byte of every command this package writes. Version 1 is
// node/kv's format (georaft.v1's SET, DEL and GET), still read from older logs.
const commandVersion = 2

// ErrMalformedCommand is wrapped by every Decode error.
var ErrMalformedCommand = errors.New("malformed command")

// Layout, version 2:
//
//	version  byte (2)
//	kind     byte
//	client   uvarint (0: no session)
//	seq      uvarint, op byte (only when client != 0)
//	body     the request, protobuf-encoded: TxnRequest, CompactionRequest,
//	         LeaseGrantRequest, LeaseRevokeRequest or georaft.v1.Member by kind

// Encode returns c's binary form.
func (c *Command) Encode() ([]byte, error) {
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	if c.ClientID != 0 && c.Seq == 0 {
		return nil, fmt.Errorf("mvcc: session of client %d has seq 0 (sequences start at 1)", c.ClientID)
	}
	b := make([]byte, 0, 4+2*binary.MaxVarintLen64)
	b = append(b, commandVersion, byte(c.Kind))
	b = binary.AppendUvarint(b, c.ClientID)
	if c.ClientID != 0 {
		b = binary.AppendUvarint(b, c.Seq)
		b = append(b, byte(c.Op))
	}
	opts := proto.MarshalOptions{Deterministic: true}
	return opts.MarshalAppend(b, body)
}

func (c *Command) body() (proto.Message, error) {
	var m proto.Message
	switch c.Kind {
	case KindTxn:
		m = c.Txn
	case KindCompact:
		m = c.Compact
	case KindLeaseGrant:
		m = c.LeaseGrant
	case KindLeaseRevoke:
		m = c.LeaseRevoke
	case KindMemberPublish:
		m = c.Member
	default:
		return nil, fmt.Errorf("mvcc: unknown command kind %d", c.Kind)
	}
	if m == nil || !m.ProtoReflect().IsValid() {
		return nil, fmt.Errorf("mvcc: %s command without its request", c.Kind)
	}
	return m, nil
}

// Decode parses an entry's payload: this package's version 2, or node/kv's version 1,
// translated (SET is a put, DEL a delete of one key, GET a range of one key).
func Decode(data []byte) (Command, error) {
	if len(data) == 0 {
		return Command{}, fmt.Errorf("mvcc: empty command: %w", ErrMalformedCommand)
	}
	switch data[0] {
	case 1:
		return decodeLegacy(data)
	case commandVersion:
	default:
		return Command{}, fmt.Errorf("mvcc: command version %d (this build reads 1 and 2): %w", data[0], ErrMalformedCommand)
	}
	bad := func(what string) (Command, error) {
		return Command{}, fmt.Errorf("mvcc: decode command (%d bytes): %s: %w", len(data), what, ErrMalformedCommand)
	}
	if len(data) < 2 {
		return bad("cut before the kind")
	}
	c := Command{Kind: Kind(data[1])}
	off := 2
	v, n := binary.Uvarint(data[off:])
	if n <= 0 {
		return bad("bad client id")
	}
	c.ClientID, off = v, off+n
	if c.ClientID != 0 {
		if v, n = binary.Uvarint(data[off:]); n <= 0 || v == 0 {
			return bad("bad session sequence")
		}
		c.Seq, off = v, off+n
		if off >= len(data) {
			return bad("cut before the session op")
		}
		c.Op, off = SessionOp(data[off]), off+1
	}
	var m proto.Message
	switch c.Kind {
	case KindTxn:
		c.Txn = &pb.TxnRequest{}
		m = c.Txn
	case KindCompact:
		c.Compact = &pb.CompactionRequest{}
		m = c.Compact
	case KindLeaseGrant:
		c.LeaseGrant = &pb.LeaseGrantRequest{}
		m = c.LeaseGrant
	case KindLeaseRevoke:
		c.LeaseRevoke = &pb.LeaseRevokeRequest{}
		m = c.LeaseRevoke
	case KindMemberPublish:
		c.Member = &Member{}
		m = c.Member
	default:
		return bad(fmt.Sprintf("unknown kind %d", c.Kind))
	}
	if err := proto.Unmarshal(data[off:], m); err != nil {
		return bad(err.Error())
	}
	return c, nil
}

func decodeLegacy(data []byte) (Command, error) {
	old, err := kv.Decode(data)
	if err != nil {
		return Command{}, fmt.Errorf("%w: %w", ErrMalformedCommand, err)
	}
	c := Command{Kind: KindTxn, ClientID: old.ClientID, Seq: old.Seq, Op: old.Op}
	switch old.Op {
	case kv.OpSet:
		c.Txn = TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: old.Key, Value: old.Value, PrevKv: true}}})
	case kv.OpDelete:
		c.Txn = TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: old.Key}}})
	case kv.OpGet:
		c.Txn = TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: old.Key}}})
		c.ClientID, c.Seq, c.Op = 0, 0, kv.OpNone
	}
	return c, nil
}

// TxnOf is the transaction that does op unconditionally.
func TxnOf(op *pb.RequestOp) *pb.TxnRequest {
	return &pb.TxnRequest{Success: []*pb.RequestOp{op}}
}

// String renders c for the event log.
func (c *Command) String() string {
	s := c.Kind.String()
	switch c.Kind {
	case KindTxn:
		s += " " + describeTxn(c.Txn)
	case KindCompact:
		s += fmt.Sprintf(" rev=%d", c.Compact.GetRevision())
	case KindLeaseGrant:
		s += fmt.Sprintf(" id=%d ttl=%d", c.LeaseGrant.GetID(), c.LeaseGrant.GetTTL())
	case KindLeaseRevoke:
		s += fmt.Sprintf(" id=%d", c.LeaseRevoke.GetID())
	case KindMemberPublish:
		s += fmt.Sprintf(" id=%d peer=%s client=%s", c.Member.GetId(), c.Member.GetPeerAddress(), c.Member.GetClientAddress())
	}
	if c.ClientID != 0 {
		s += fmt.Sprintf(" client=%d seq=%d", c.ClientID, c.Seq)
	}
	return s
}

func describeTxn(t *pb.TxnRequest) string {
	if len(t.GetCompare()) == 0 && len(t.GetFailure()) == 0 && len(t.GetSuccess()) == 1 {
		return describeOp(t.GetSuccess()[0])
	}
	return fmt.Sprintf("{%d compares, %d then, %d else}", len(t.GetCompare()), len(t.GetSuccess()), len(t.GetFailure()))
}

func describeOp(op *pb.RequestOp) string {
	switch r := op.GetRequest().(type) {
	case *pb.RequestOp_RequestPut:
		return fmt.Sprintf("put %q (%d bytes)", clip(r.RequestPut.GetKey()), len(r.RequestPut.GetValue()))
	case *pb.RequestOp_RequestDeleteRange:
		return fmt.Sprintf("delete %q..%q", clip(r.RequestDeleteRange.GetKey()), clip(r.RequestDeleteRange.GetRangeEnd()))
	case *pb.RequestOp_RequestRange:
		return fmt.Sprintf("range %q..%q", clip(r.RequestRange.GetKey()), clip(r.RequestRange.GetRangeEnd()))
	case *pb.RequestOp_RequestTxn:
		return describeTxn(r.RequestTxn)
	}
	return "empty op"
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
