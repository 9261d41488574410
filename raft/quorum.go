package raft

import (
	"cmp"
	"slices"
)

// The majority math, for one configuration or for the two of a joint one. Every decision a
// quorum makes (a commit, an election, a lease, a ReadIndex round, CheckQuorum) is "the
// largest value that a majority of voters has reached" for some per-voter value, and in a
// joint configuration it must hold in both majorities.

// majorityValue returns the largest v such that a majority of voters have a value of at least
// v; ok is false when fewer than a majority have a value at all. An empty voter set has no
// value.
func majorityValue[T cmp.Ordered](voters []uint64, value func(id uint64) (T, bool), scratch []T) (T, bool) {
	var zero T
	if len(voters) == 0 {
		return zero, false
	}
	vals := scratch[:0]
	for _, id := range voters {
		if v, ok := value(id); ok {
			vals = append(vals, v)
		}
	}
	quorum := len(voters)/2 + 1
	if len(vals) < quorum {
		return zero, false
	}
	slices.Sort(vals)
	return vals[len(vals)-quorum], true
}

// jointValue is majorityValue over the incoming voters and, while joint, the outgoing ones:
// the smaller of the two, since it must be reached in both.
func jointValue[T cmp.Ordered](c membership, value func(id uint64) (T, bool), scratch []T) (T, bool) {
	in, ok := majorityValue(c.voters, value, scratch)
	if !ok || !c.joint() {
		return in, ok
	}
	out, ok := majorityValue(c.outgoing, value, scratch)
	if !ok {
		return out, false
	}
	return min(in, out), true
}

// voteResult tallies an election: won once both majorities granted, lost once either can no
// longer grant. vote reports +1 granted, −1 refused, 0 no answer yet.
func voteResult(c membership, vote func(id uint64) int8) (won, lost bool) {
	tally := func(voters []uint64) (granted, refused bool) {
		yes, no := 0, 0
		for _, id := range voters {
			switch vote(id) {
			case 1:
				yes++
			case -1:
				no++
			}
		}
		quorum := len(voters)/2 + 1
		return yes >= quorum, no > len(voters)-quorum
	}
	won, lost = tally(c.voters)
	if c.joint() {
		w, l := tally(c.outgoing)
		won, lost = won && w, lost || l
	}
	return won, lost
}
