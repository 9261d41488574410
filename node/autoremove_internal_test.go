package node

import (
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

// TestAutoRemovalCandidate: off by default; learners first; a voter only above the floor;
// nobody while a change is joint, nobody heard from recently, never the leader itself.
func TestAutoRemovalCandidate(t *testing.T) {
	const after = 5 * time.Second
	now := time.Minute
	st := &raft.Status{ID: 1, Role: raft.Leader, Now: now, Progress: map[uint64]raft.PeerProgress{
		1: {LastAck: now},
		2: {LastAck: now - time.Second},
		3: {LastAck: now - 6*time.Second},
		4: {LastAck: now - 7*time.Second},
		5: {LastAck: now - 8*time.Second},
	}}
	five := raft.ConfState{Voters: []uint64{1, 2, 3, 4}, Learners: []uint64{5}}
	for _, tc := range []struct {
		name      string
		cs        raft.ConfState
		after     time.Duration
		minVoters int
		want      uint64
		blocked   bool
	}{
		{"off", five, 0, 3, 0, false},
		{"a silent learner first", five, after, 3, 5, false},
		{"then the first silent voter", raft.ConfState{Voters: []uint64{1, 2, 3, 4}}, after, 3, 3, false},
		{"not below the floor", raft.ConfState{Voters: []uint64{1, 2, 3}}, after, 3, 0, true},
		{"not while joint", raft.ConfState{Voters: []uint64{1, 2, 3, 4}, VotersOutgoing: []uint64{1, 2, 3}}, after, 1, 0, false},
		{"nobody silent long enough", raft.ConfState{Voters: []uint64{1, 2, 3, 4}}, 10 * time.Second, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, _, blocked := autoRemovalCandidate(st, tc.cs, tc.after, tc.minVoters)
			if id != tc.want || (blocked != "") != tc.blocked {
				t.Fatalf("candidate %d (blocked %q), want %d (blocked: %v)", id, blocked, tc.want, tc.blocked)
			}
		})
	}
	follower := *st
	follower.Role = raft.Follower
	if id, _, _ := autoRemovalCandidate(&follower, five, after, 1); id != 0 {
		t.Fatalf("a follower picked member %d", id)
	}
}
