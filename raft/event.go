package raft

import (
	"fmt"
	"time"
)

// EventKind names something the core did that an operator may want to read about later.
// The node writes events to dump.txt; the core never writes anything itself.
type EventKind uint8

const (
	EventElectionTimeout   EventKind = iota + 1 // no leader heard within the timeout: campaign
	EventPreVoteFailed                          // a pre-vote round found no majority
	EventVoteGranted                            // this node granted its vote to Peer
	EventVoteDenied                             // this node refused Peer, Reason says why
	EventBecameFollower                         // Peer is the leader (or None), Reason says why
	EventBecameLeader                           // elected for Term
	EventWaitingOldLease                        // leader waits Duration before commits and lease reads
	EventLeaseAcquired                          // lease held for Duration from At (local clock)
	EventLeaseLost                              // lease lapsed or given up, Reason says why
	EventSteppedDown                            // a leader became follower, Reason says why
	EventCommitted                              // commit index advanced to Index
	EventAppendAccepted                         // an append from Peer ending at Index was stored
	EventAppendRejected                         // an append from Peer was refused, Reason says why
	EventSnapshotSent                           // a snapshot at Index goes to Peer
	EventSnapshotInstalled                      // a snapshot at Index replaced the log
	EventTransferStarted                        // leadership transfer to Peer began
	EventTransferAborted                        // leadership transfer to Peer gave up
	EventConfChanged                            // the membership changed at Index; Reason is the new one
	EventConfChangeRefused                      // a membership change at Index was not applied, Reason says why
)

// Event is one line of the human-readable story of a node. Fields not used by a kind are
// zero.
type Event struct {
	Kind     EventKind
	At       time.Duration // the node's clock
	Term     uint64
	Peer     uint64
	Index    uint64
	Duration time.Duration
	Reason   string
}

// String renders the event for dump.txt, without the timestamp the node adds.
func (e Event) String() string {
	switch e.Kind {
	case EventElectionTimeout:
		return fmt.Sprintf("term %d: election timeout, no leader heard; starting election", e.Term)
	case EventPreVoteFailed:
		return fmt.Sprintf("term %d: pre-vote found no majority; staying follower (%s)", e.Term, e.Reason)
	case EventVoteGranted:
		return fmt.Sprintf("term %d: vote granted to node %d", e.Term, e.Peer)
	case EventVoteDenied:
		return fmt.Sprintf("term %d: vote denied to node %d: %s", e.Term, e.Peer, e.Reason)
	case EventBecameFollower:
		if e.Peer == None {
			return fmt.Sprintf("term %d: follower, leader unknown (%s)", e.Term, e.Reason)
		}
		return fmt.Sprintf("term %d: follower of node %d (%s)", e.Term, e.Peer, e.Reason)
	case EventBecameLeader:
		return fmt.Sprintf("term %d: became leader", e.Term)
	case EventWaitingOldLease:
		return fmt.Sprintf("term %d: waiting %d ms for the old leader's lease to run out before committing or serving lease reads",
			e.Term, e.Duration.Milliseconds())
	case EventLeaseAcquired:
		return fmt.Sprintf("term %d: lease acquired, valid for %d ms", e.Term, e.Duration.Milliseconds())
	case EventLeaseLost:
		return fmt.Sprintf("term %d: lease lost: %s", e.Term, e.Reason)
	case EventSteppedDown:
		return fmt.Sprintf("term %d: stepped down: %s", e.Term, e.Reason)
	case EventCommitted:
		return fmt.Sprintf("term %d: committed up to index %d", e.Term, e.Index)
	case EventAppendAccepted:
		return fmt.Sprintf("term %d: append from node %d accepted, log now ends at %d", e.Term, e.Peer, e.Index)
	case EventAppendRejected:
		return fmt.Sprintf("term %d: append from node %d rejected: %s", e.Term, e.Peer, e.Reason)
	case EventSnapshotSent:
		return fmt.Sprintf("term %d: sending snapshot at index %d to node %d", e.Term, e.Index, e.Peer)
	case EventSnapshotInstalled:
		return fmt.Sprintf("term %d: installed snapshot at index %d from node %d", e.Term, e.Index, e.Peer)
	case EventTransferStarted:
		return fmt.Sprintf("term %d: leadership transfer to node %d started; lease given up", e.Term, e.Peer)
	case EventTransferAborted:
		return fmt.Sprintf("term %d: leadership transfer to node %d aborted: %s", e.Term, e.Peer, e.Reason)
	case EventConfChanged:
		return fmt.Sprintf("term %d: membership changed at index %d: %s", e.Term, e.Index, e.Reason)
	case EventConfChangeRefused:
		return fmt.Sprintf("term %d: membership change at index %d not applied: %s", e.Term, e.Index, e.Reason)
	}
	return fmt.Sprintf("term %d: event %d", e.Term, e.Kind)
}
