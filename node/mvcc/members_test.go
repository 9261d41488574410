package mvcc

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

func (f *fixture) confChange(cc raft.ConfChange) Result {
	f.t.Helper()
	f.index++
	res, err := f.s.Apply(raft.Entry{Index: f.index, Term: 1, Type: raft.EntryConfChange, Data: cc.Encode()})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) members() map[uint64]*Member {
	f.t.Helper()
	rows, err := f.s.Members()
	if err != nil {
		f.t.Fatal(err)
	}
	out := make(map[uint64]*Member)
	for _, m := range rows {
		out[m.GetId()] = m
	}
	return out
}

func TestMemberTableFollowsConfChangesAndPublishes(t *testing.T) {
	f := newFixture(t)
	// An original voter has no row until it publishes its addresses.
	if res := f.apply(Command{Kind: KindMemberPublish, Member: &Member{Id: 1, Region: "eu", PeerAddress: "p1", ClientAddress: "c1"}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	add := &Member{Id: 4, Region: "us", PeerAddress: "p4", ClientAddress: "c4"}
	f.confChange(raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfAddLearner, NodeID: 4}}, Context: EncodeMemberContext(add)})
	rows := f.members()
	if got := rows[1]; got.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_VOTER || got.GetPeerAddress() != "p1" {
		t.Fatalf("member 1 = %v, want a voter at p1", got)
	}
	if got := rows[4]; got.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_LEARNER || got.GetClientAddress() != "c4" || got.GetRegion() != "us" {
		t.Fatalf("member 4 = %v, want a learner in us at c4", got)
	}
	// Replace: promote 4 and remove 1 in one change; the joint configuration's leaving entry
	// (an empty change) changes no row.
	f.confChange(raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfPromote, NodeID: 4}, {Type: raft.ConfRemove, NodeID: 1}}})
	f.confChange(raft.ConfChange{})
	rows = f.members()
	if rows[4].GetRole() != georaftv1.MemberRole_MEMBER_ROLE_VOTER || rows[1].GetRole() != georaftv1.MemberRole_MEMBER_ROLE_REMOVED {
		t.Fatalf("after the replace: %v", rows)
	}
	// A removed member cannot publish itself back, nor be added again under its id.
	res := f.apply(Command{Kind: KindMemberPublish, Member: &Member{Id: 1, PeerAddress: "p1-new"}})
	if !errors.Is(res.Err, ErrMemberRemoved) {
		t.Fatalf("publish by a removed member: err %v, want ErrMemberRemoved", res.Err)
	}
	f.confChange(raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfAddLearner, NodeID: 1}}, Context: EncodeMemberContext(&Member{Id: 1, PeerAddress: "x"})})
	if got := f.members()[1]; got.GetRole() != georaftv1.MemberRole_MEMBER_ROLE_REMOVED || got.GetPeerAddress() != "p1" {
		t.Fatalf("member 1 after a second add = %v, want it still removed", got)
	}
	if next := NextMemberID(nil, 1, 2, 3); next != 4 {
		t.Fatalf("NextMemberID of 1..3 = %d", next)
	}
	if next := NextMemberID(rowsOf(f.members()), 1, 2, 3); next != 5 {
		t.Fatalf("NextMemberID with member 4 in the table = %d, want 5", next)
	}
}

func rowsOf(m map[uint64]*Member) []*Member {
	var out []*Member
	for _, r := range m {
		out = append(out, r)
	}
	return out
}

func TestMemberTableTravelsInSnapshotsAndHash(t *testing.T) {
	f := newFixture(t)
	f.put("k", "v")
	h0, _, err := f.s.HashAt()
	if err != nil {
		t.Fatal(err)
	}
	add := &Member{Id: 7, Region: "asia", PeerAddress: "p7", ClientAddress: "c7"}
	f.confChange(raft.ConfChange{Changes: []raft.ConfChangeSingle{{Type: raft.ConfAddLearner, NodeID: 7}}, Context: EncodeMemberContext(add)})
	h1, _, err := f.s.HashAt()
	if err != nil {
		t.Fatal(err)
	}
	if h0 == h1 {
		t.Fatal("the state hash does not cover the membership table")
	}
	var buf bytes.Buffer
	if _, _, err := f.s.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	g := newFixture(t)
	if err := g.s.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	got := g.members()[7]
	want := proto.Clone(add).(*Member)
	want.Role = georaftv1.MemberRole_MEMBER_ROLE_LEARNER
	if !proto.Equal(got, want) {
		t.Fatalf("member 7 after restoring the snapshot = %v, want %v", got, want)
	}
}

func TestMemberPublishCommandRoundTrips(t *testing.T) {
	c := Command{Kind: KindMemberPublish, Member: &Member{Id: 3, Region: "r", PeerAddress: "p", ClientAddress: "c"}}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != KindMemberPublish || !proto.Equal(d.Member, c.Member) {
		t.Fatalf("decoded %v", d.String())
	}
}
