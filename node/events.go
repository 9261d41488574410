package node

import (
	"strings"
	"sync"
	"time"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// eventRingSize is how many story lines a node keeps in memory for Status (and so for the
// console): a few minutes of a troubled cluster, a day of a quiet one.
const eventRingSize = 256

// eventRing keeps the latest lines of dump.txt's story (never client traffic), numbered, for
// Status to hand out. The numbers start from the start time in microseconds, so a reader
// that asks for events after the last number it saw also sees a restart's events.
type eventRing struct {
	mu     sync.Mutex
	events []*georaftv1.NodeEvent // a circle: next is where the next one goes
	next   int
	seq    uint64
}

func newEventRing(start time.Time) *eventRing {
	return &eventRing{events: make([]*georaftv1.NodeEvent, 0, eventRingSize), seq: uint64(start.UnixMicro())}
}

func (r *eventRing) add(at time.Time, category, text string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e := &georaftv1.NodeEvent{Seq: r.seq, UnixNanos: at.UnixNano(), Category: category, Text: text}
	if len(r.events) < eventRingSize {
		r.events = append(r.events, e)
		return
	}
	r.events[r.next] = e
	r.next = (r.next + 1) % eventRingSize
}

// since returns the events numbered after seq, oldest first; all of them when seq is beyond
// the newest (the asker saw an earlier run of this node).
func (r *eventRing) since(seq uint64) []*georaftv1.NodeEvent {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq > r.seq {
		seq = 0
	}
	var out []*georaftv1.NodeEvent
	for i := range r.events {
		if e := r.events[(r.next+i)%len(r.events)]; e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// Event categories, as NodeEvent.category names them.
const (
	categoryElection    = "election"
	categoryLease       = "lease"
	categoryTransfer    = "transfer"
	categoryMembership  = "membership"
	categoryReplication = "replication"
	categorySnapshot    = "snapshot"
	categoryFailure     = "failure"
	categoryLifecycle   = "lifecycle"
	categoryOther       = "other"
)

// eventCategory sorts the core's events for the console's filters.
func eventCategory(k raft.EventKind) string {
	switch k {
	case raft.EventElectionTimeout, raft.EventPreVoteFailed, raft.EventVoteGranted, raft.EventVoteDenied,
		raft.EventBecameFollower, raft.EventBecameLeader, raft.EventSteppedDown:
		return categoryElection
	case raft.EventWaitingOldLease, raft.EventLeaseAcquired, raft.EventLeaseLost:
		return categoryLease
	case raft.EventTransferStarted, raft.EventTransferAborted:
		return categoryTransfer
	case raft.EventAppendRejected, raft.EventCommitted, raft.EventAppendAccepted:
		return categoryReplication
	case raft.EventSnapshotSent, raft.EventSnapshotInstalled:
		return categorySnapshot
	case raft.EventConfChanged, raft.EventConfChangeRefused:
		return categoryMembership
	}
	return categoryOther
}

// lineCategories sorts the node's own dump.txt lines by their format string's start.
var lineCategories = []struct{ prefix, category string }{
	{"leadership transfer", categoryTransfer},
	{"term %d: read-lease holders change", categoryMembership},
	{"FAILED", categoryFailure},
	{"start-up refused", categoryFailure},
	{"snapshot", categorySnapshot},
	{"term %d: sending snapshot", categorySnapshot},
	{"term %d: received snapshot", categorySnapshot},
	{"installed snapshot", categorySnapshot},
	{"state machine loaded from snapshot", categorySnapshot},
	{"state machine synced", categorySnapshot},
	// A client's (etcd) lease ending is part of its keys' life, not the raft lease.
	{"lease %d expired", categoryLifecycle},
	{"membership", categoryMembership},
	{"node %d starting", categoryLifecycle},
	{"clock may stop", categoryLifecycle},
	{"recovered", categoryLifecycle},
	{"shutting down", categoryLifecycle},
	{"stopped", categoryLifecycle},
}

func lineCategory(format string) string {
	for _, c := range lineCategories {
		if strings.HasPrefix(format, c.prefix) {
			return c.category
		}
	}
	return categoryOther
}
