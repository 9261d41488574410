package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ConfState is a cluster's membership: who votes and who only follows the log. While a
// change of voters is under way it is joint: decisions need a majority of Voters and a
// majority of VotersOutgoing (doc.go, "Membership changes").
type ConfState struct {
	Voters         []uint64
	VotersOutgoing []uint64 // non-empty only while joint
	Learners       []uint64
	// ReadLeaseHolders are the members the leader grants read leases to: each answers
	// linearizable reads from its own state while its lease lasts (doc.go, "Read leases").
	ReadLeaseHolders []uint64
}

// IsEmpty reports whether cs names nobody (a node that has not learned its cluster's
// membership yet).
func (cs ConfState) IsEmpty() bool {
	return len(cs.Voters) == 0 && len(cs.VotersOutgoing) == 0 && len(cs.Learners) == 0 && len(cs.ReadLeaseHolders) == 0
}

// Equal reports whether cs and o name the same members in the same roles.
func (cs ConfState) Equal(o ConfState) bool {
	return slices.Equal(cs.Voters, o.Voters) && slices.Equal(cs.VotersOutgoing, o.VotersOutgoing) &&
		slices.Equal(cs.Learners, o.Learners) && slices.Equal(cs.ReadLeaseHolders, o.ReadLeaseHolders)
}

func (cs ConfState) String() string {
	s := fmt.Sprintf("voters %v", cs.Voters)
	if len(cs.VotersOutgoing) > 0 {
		s += fmt.Sprintf(" (joint with %v)", cs.VotersOutgoing)
	}
	if len(cs.Learners) > 0 {
		s += fmt.Sprintf(", learners %v", cs.Learners)
	}
	if len(cs.ReadLeaseHolders) > 0 {
		s += fmt.Sprintf(", read leases %v", cs.ReadLeaseHolders)
	}
	return s
}

// ConfChangeType is one change to the membership.
type ConfChangeType uint8

const (
	// ConfAddLearner adds a node that receives the log and snapshots but does not vote.
	ConfAddLearner ConfChangeType = iota + 1
	// ConfPromote makes a learner a voter. Only a learner within Config.MaxLearnerLag
	// entries of the leader's log may be promoted.
	ConfPromote
	// ConfRemove removes a voter or a learner.
	ConfRemove
	// ConfReadLeaseOn makes a member a read-lease holder; ConfReadLeaseOff stops granting it
	// read leases. Neither changes who votes.
	ConfReadLeaseOn
	ConfReadLeaseOff
)

func (t ConfChangeType) String() string {
	switch t {
	case ConfAddLearner:
		return "add-learner"
	case ConfPromote:
		return "promote"
	case ConfRemove:
		return "remove"
	case ConfReadLeaseOn:
		return "read-lease-on"
	case ConfReadLeaseOff:
		return "read-lease-off"
	}
	return fmt.Sprintf("confchange(%d)", uint8(t))
}

// ConfChangeSingle is one change of a ConfChange.
type ConfChangeSingle struct {
	Type   ConfChangeType
	NodeID uint64
}

// ConfChange is the payload of an EntryConfChange: changes applied together, and an opaque
// Context for the caller (georaftd puts the new member's addresses there). A change of voters
// enters a joint configuration, which the leader leaves on its own with an empty ConfChange
// once the joint one is applied.
type ConfChange struct {
	Changes []ConfChangeSingle
	Context []byte
}

// confChangeVersion is the first byte of an encoded ConfChange.
const confChangeVersion = 1

// Encode lays cc out as an entry's Data.
func (cc ConfChange) Encode() []byte {
	b := []byte{confChangeVersion}
	b = binary.AppendUvarint(b, uint64(len(cc.Changes)))
	for _, c := range cc.Changes {
		b = append(b, byte(c.Type))
		b = binary.AppendUvarint(b, c.NodeID)
	}
	return append(b, cc.Context...)
}

// DecodeConfChange reads an EntryConfChange's Data.
func DecodeConfChange(data []byte) (ConfChange, error) {
	if len(data) == 0 || data[0] != confChangeVersion {
		return ConfChange{}, errors.New("raft: conf change: unknown version")
	}
	rest := data[1:]
	n, k := binary.Uvarint(rest)
	if k <= 0 || n > uint64(len(rest)) {
		return ConfChange{}, errors.New("raft: conf change: bad change count")
	}
	rest = rest[k:]
	cc := ConfChange{Changes: make([]ConfChangeSingle, 0, n)}
	for range n {
		if len(rest) == 0 {
			return ConfChange{}, errors.New("raft: conf change: cut short")
		}
		t := ConfChangeType(rest[0])
		id, k := binary.Uvarint(rest[1:])
		if k <= 0 {
			return ConfChange{}, errors.New("raft: conf change: bad node id")
		}
		if t < ConfAddLearner || t > ConfReadLeaseOff || id == None {
			return ConfChange{}, fmt.Errorf("raft: conf change: %v of node %d", t, id)
		}
		cc.Changes = append(cc.Changes, ConfChangeSingle{Type: t, NodeID: id})
		rest = rest[1+k:]
	}
	if len(rest) > 0 {
		cc.Context = slices.Clone(rest)
	}
	return cc, nil
}

func (cc ConfChange) String() string {
	if len(cc.Changes) == 0 {
		return "leave joint configuration"
	}
	parts := make([]string, len(cc.Changes))
	for i, c := range cc.Changes {
		parts[i] = fmt.Sprintf("%v %d", c.Type, c.NodeID)
	}
	return strings.Join(parts, ", ")
}

// membership is a ConfState as the core uses it: sorted, and asked who votes.
type membership struct {
	voters   []uint64
	outgoing []uint64
	learners []uint64
	holders  []uint64 // read-lease holders
}

func newMembership(cs ConfState) membership {
	sorted := func(ids []uint64) []uint64 {
		out := slices.Clone(ids)
		slices.Sort(out)
		return slices.Compact(out)
	}
	return membership{voters: sorted(cs.Voters), outgoing: sorted(cs.VotersOutgoing), learners: sorted(cs.Learners),
		holders: sorted(cs.ReadLeaseHolders)}
}

func (m membership) confState() ConfState {
	return ConfState{Voters: slices.Clone(m.voters), VotersOutgoing: slices.Clone(m.outgoing), Learners: slices.Clone(m.learners),
		ReadLeaseHolders: slices.Clone(m.holders)}
}

func (m membership) isHolder(id uint64) bool { return slices.Contains(m.holders, id) }

func (m membership) joint() bool { return len(m.outgoing) > 0 }

// isVoter reports whether id votes in either half of the configuration.
func (m membership) isVoter(id uint64) bool {
	return slices.Contains(m.voters, id) || slices.Contains(m.outgoing, id)
}

func (m membership) isLearner(id uint64) bool { return slices.Contains(m.learners, id) }

// members is every node the configuration names, sorted.
func (m membership) members() []uint64 {
	out := slices.Concat(m.voters, m.outgoing, m.learners)
	slices.Sort(out)
	return slices.Compact(out)
}

// apply returns the membership after cc. A change of voters enters a joint configuration (the
// current voters go out, the changed ones come in); an empty cc leaves it. It refuses what
// no leader may propose, so that every node decides the same from the same log.
func (m membership) apply(cc ConfChange) (membership, error) {
	if len(cc.Changes) == 0 {
		if !m.joint() {
			return m, errors.New("not in a joint configuration: nothing to leave")
		}
		return membership{voters: m.voters, learners: m.learners, holders: m.holders}, nil
	}
	if m.joint() {
		return m, errors.New("a change is already under way (joint configuration)")
	}
	voters, learners, holders := slices.Clone(m.voters), slices.Clone(m.learners), slices.Clone(m.holders)
	votersChanged := false
	for _, c := range cc.Changes {
		id := c.NodeID
		switch c.Type {
		case ConfAddLearner:
			if slices.Contains(voters, id) || slices.Contains(learners, id) {
				return m, fmt.Errorf("node %d is already a member", id)
			}
			learners = append(learners, id)
		case ConfPromote:
			i := slices.Index(learners, id)
			if i < 0 {
				return m, fmt.Errorf("node %d is not a learner", id)
			}
			learners = slices.Delete(learners, i, i+1)
			voters = append(voters, id)
			votersChanged = true
		case ConfRemove:
			switch {
			case slices.Contains(voters, id):
				voters = slices.DeleteFunc(voters, func(v uint64) bool { return v == id })
				votersChanged = true
			case slices.Contains(learners, id):
				learners = slices.DeleteFunc(learners, func(v uint64) bool { return v == id })
			default:
				return m, fmt.Errorf("node %d is not a member", id)
			}
			holders = slices.DeleteFunc(holders, func(v uint64) bool { return v == id })
		case ConfReadLeaseOn:
			if !slices.Contains(voters, id) && !slices.Contains(learners, id) {
				return m, fmt.Errorf("node %d is not a member", id)
			}
			if !slices.Contains(holders, id) {
				holders = append(holders, id)
			}
		case ConfReadLeaseOff:
			holders = slices.DeleteFunc(holders, func(v uint64) bool { return v == id })
		default:
			return m, fmt.Errorf("unknown change %v", c.Type)
		}
	}
	if len(voters) == 0 {
		return m, errors.New("no voter would be left")
	}
	next := newMembership(ConfState{Voters: voters, Learners: learners, ReadLeaseHolders: holders})
	if votersChanged {
		next.outgoing = m.voters
	}
	return next, nil
}
