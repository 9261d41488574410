package raft

import (
	"reflect"
	"strings"
	"testing"
)

// Step refuses, with an error naming the problem, a message no correct peer could send, and
// such a message changes nothing: the follower keeps its term, leader and log.
func TestStepRefusesMalformedMessages(t *testing.T) {
	ent := func(index, term uint64) Entry { return Entry{Index: index, Term: term, Data: []byte("x")} }
	cases := []struct {
		name string
		m    Message
		want string
	}{
		{"unknown type", Message{Type: MsgTimeoutNow + 1, Term: 2}, "unknown type"},
		{"term 0", Message{Type: MsgHeartbeat}, "has term 0"},
		{"term past MaxTerm", Message{Type: MsgHeartbeat, Term: MaxTerm + 1}, "past the largest term"},
		{"append past MaxIndex", Message{Type: MsgApp, Term: 2, Index: MaxIndex, LogTerm: 1,
			Entries: []Entry{ent(MaxIndex+1, 2)}}, "would pass the largest index"},
		{"append wrapping the index", Message{Type: MsgApp, Term: 2, Index: 1<<64 - 1, LogTerm: 1,
			Entries: []Entry{ent(0, 2)}}, "would pass the largest index"},
		{"append with a gap", Message{Type: MsgApp, Term: 2, Index: 1, LogTerm: 1,
			Entries: []Entry{ent(2, 2), ent(4, 2)}}, "entry 1 has index 4, want 3"},
		{"entry from a later term", Message{Type: MsgApp, Term: 2, Index: 1, LogTerm: 1,
			Entries: []Entry{ent(2, 3)}}, "has term 3, outside [1, 2]"},
		{"snapshot past MaxIndex", Message{Type: MsgSnap, Term: 2,
			Snapshot: SnapshotMeta{Index: MaxIndex + 1, Term: 1}}, "is impossible in term 2"},
		{"snapshot from a later term", Message{Type: MsgSnap, Term: 2,
			Snapshot: SnapshotMeta{Index: 5, Term: 3}}, "is impossible in term 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			net := newTestNet(t, 3)
			net.elect(1)
			before := net.raft(2).Status()
			tc.m.From, tc.m.To = 1, 2
			err := net.raft(2).Step(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Step = %v, want an error mentioning %q", err, tc.want)
			}
			after := net.raft(2).Status()
			if after.Term != before.Term || after.Leader != before.Leader || after.LastIndex != before.LastIndex || !reflect.DeepEqual(after.Snapshot, before.Snapshot) {
				t.Fatalf("a refused message changed node 2: %+v, was %+v", after, before)
			}
		})
	}
}
