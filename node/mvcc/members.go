package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// The membership table: member id → addresses, region and role, in the engine under
// 'n' id, so that it is in every snapshot and in HashAt like the rest of the state. Who votes
// is the consensus core's to decide (raft.ConfState); the table follows the same applied
// EntryConfChange entries and adds what the core does not keep: where each member is.
//
// Rows change only through the log: an EntryConfChange (adding a learner records the
// addresses its Context carries; promotion and removal change the role) or a KindMemberPublish
// command, by which a member records its own addresses. A removed member's row stays, with
// role removed, so that its id is never given out again and a node under it cannot publish.

// Member is one row of the table.
type Member = georaftv1.Member

// ErrMemberRemoved refuses a publish by a member that has been removed.
var ErrMemberRemoved = errors.New("mvcc: member was removed from the cluster")

func memberKey(id uint64) []byte {
	k := make([]byte, 1, 9)
	k[0] = kindMember
	return binary.BigEndian.AppendUint64(k, id)
}

// EncodeMemberContext is the Context of an EntryConfChange that adds m.
func EncodeMemberContext(m *Member) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return b
}

// DecodeMemberContext reads what EncodeMemberContext wrote.
func DecodeMemberContext(b []byte) (*Member, error) {
	m := &Member{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("mvcc: membership change context: %w", err)
	}
	return m, nil
}

// Members reads the table, by id.
func (s *Store) Members() ([]*Member, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return readMembers(s.db)
}

func readMembers(rd reader) ([]*Member, error) {
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: []byte{kindMember}, UpperBound: []byte{kindMember + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*Member
	for ok := it.First(); ok; ok = it.Next() {
		m := &Member{}
		if len(it.Key()) != 9 || proto.Unmarshal(it.Value(), m) != nil {
			return nil, errors.New("mvcc: malformed member record")
		}
		out = append(out, m)
	}
	return out, it.Error()
}

func (t *txn) member(id uint64) (*Member, error) {
	v, closer, err := t.b.Get(memberKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	m := &Member{}
	if err := proto.Unmarshal(v, m); err != nil {
		return nil, fmt.Errorf("mvcc: malformed member record %d: %w", id, err)
	}
	return m, nil
}

func (t *txn) putMember(m *Member) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	return t.b.Set(memberKey(m.GetId()), b, nil)
}

// confChange brings the table in line with an applied EntryConfChange. A change the core
// refuses is one no leader proposes (it checks each against the membership first), so the
// table does not second-guess the core beyond keeping its own rows consistent.
func (t *txn) confChange(data []byte) error {
	cc, err := raft.DecodeConfChange(data)
	if err != nil {
		return err
	}
	var added *Member
	if len(cc.Context) > 0 {
		if added, err = DecodeMemberContext(cc.Context); err != nil {
			return err
		}
	}
	for _, c := range cc.Changes {
		row, err := t.member(c.NodeID)
		if err != nil {
			return err
		}
		if row == nil {
			row = &Member{Id: c.NodeID, Role: georaftv1.MemberRole_MEMBER_ROLE_VOTER}
		}
		switch c.Type {
		case raft.ConfAddLearner:
			if row.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
				continue
			}
			row.Role = georaftv1.MemberRole_MEMBER_ROLE_LEARNER
			if added != nil && added.GetId() == c.NodeID {
				row.Region, row.PeerAddress, row.ClientAddress = added.GetRegion(), added.GetPeerAddress(), added.GetClientAddress()
			}
		case raft.ConfPromote:
			if row.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_LEARNER {
				continue
			}
			row.Role = georaftv1.MemberRole_MEMBER_ROLE_VOTER
		case raft.ConfRemove:
			row.Role = georaftv1.MemberRole_MEMBER_ROLE_REMOVED
			row.ReadLeaseHolder = false
		case raft.ConfReadLeaseOn, raft.ConfReadLeaseOff:
			if row.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
				continue
			}
			row.ReadLeaseHolder = c.Type == raft.ConfReadLeaseOn
		}
		if err := t.putMember(row); err != nil {
			return err
		}
	}
	return nil
}

// publish records a member's own addresses. The role is the table's (an original voter has
// no row before it publishes: it is a voter); a removed member is refused.
func (t *txn) publish(m *Member) error {
	if m.GetId() == raft.None {
		return errors.New("mvcc: publish of member 0")
	}
	row, err := t.member(m.GetId())
	if err != nil {
		return err
	}
	if row == nil {
		row = &Member{Id: m.GetId(), Role: georaftv1.MemberRole_MEMBER_ROLE_VOTER}
	}
	if row.GetRole() == georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
		return fmt.Errorf("%w: member %d", ErrMemberRemoved, m.GetId())
	}
	row.Region, row.PeerAddress, row.ClientAddress = m.GetRegion(), m.GetPeerAddress(), m.GetClientAddress()
	return t.putMember(row)
}

// NextMemberID is the smallest id above every id the table or ids names: what a leader gives
// a new member, so that no id is ever given twice (removed rows stay).
func NextMemberID(rows []*Member, ids ...uint64) uint64 {
	top := slices.Max(append(slices.Clone(ids), 0))
	for _, m := range rows {
		top = max(top, m.GetId())
	}
	return top + 1
}
