package raft

import (
	"errors"
	"testing"
)

// Proposals: only the leader takes them (others say who is), none during a transfer, and none
// beyond MaxUncommittedBytes of uncommitted data (though one proposal is always allowed when
// nothing is uncommitted).
func TestProposeErrors(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxUncommittedBytes = 100 })
	net.elect(1)
	var nle *NotLeaderError
	if _, _, err := net.raft(2).Propose([]byte("x")); !errors.As(err, &nle) || nle.Leader != 1 || nle.Term != 1 {
		t.Fatalf("propose on a follower: %v, want NotLeaderError naming leader 1 in term 1", err)
	}
	r := net.raft(1)
	if _, _, err := r.Propose(make([]byte, 150)); err != nil {
		t.Fatalf("a lone oversized proposal with nothing uncommitted: %v", err)
	}
	if _, _, err := r.Propose(make([]byte, 10)); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("propose over MaxUncommittedBytes: %v, want ErrProposalDropped", err)
	}
	net.stabilize()
	if _, _, err := r.Propose(make([]byte, 60)); err != nil {
		t.Fatalf("propose after the backlog committed: %v", err)
	}
	if _, _, err := r.Propose(make([]byte, 30)); err != nil {
		t.Fatalf("propose within the limit: %v", err)
	}
	if _, _, err := r.Propose(make([]byte, 30)); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("propose to 120 of 100 bytes: %v, want ErrProposalDropped", err)
	}
}
