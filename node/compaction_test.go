package node

import (
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

// TestCompactionPointKeepsWhatLiveFollowersNeed: a leader compacts no further than a live
// follower's match, or than its own compaction point while a snapshot is in flight, but
// never keeps more than one more snapshot period; a silent follower and a follower's own
// log hold nothing back.
func TestCompactionPointKeepsWhatLiveFollowersNeed(t *testing.T) {
	const (
		period = 1000
		live   = time.Second
		now    = 10 * time.Second
	)
	leader := func(snapshot uint64, peers map[uint64]raft.PeerProgress) raft.Status {
		peers[1] = raft.PeerProgress{Match: 99999, State: raft.ProgressReplicate, LastAck: now}
		return raft.Status{ID: 1, Role: raft.Leader, Now: now, Snapshot: raft.SnapshotMeta{Index: snapshot}, Progress: peers}
	}
	for _, tc := range []struct {
		name          string
		st            raft.Status
		synced        uint64
		point, holder uint64
	}{
		{"followers caught up", leader(4000, map[uint64]raft.PeerProgress{
			2: {Match: 5200, State: raft.ProgressReplicate, LastAck: now},
			3: {Match: 5300, State: raft.ProgressReplicate, LastAck: now},
		}), 5000, 5000, 0},
		{"a follower behind", leader(4000, map[uint64]raft.PeerProgress{
			2: {Match: 5200, State: raft.ProgressReplicate, LastAck: now},
			3: {Match: 4700, State: raft.ProgressProbe, LastAck: now - live/2},
		}), 5000, 4700, 3},
		{"a snapshot in flight", leader(4000, map[uint64]raft.PeerProgress{
			2: {Match: 5200, State: raft.ProgressReplicate, LastAck: now},
			4: {Match: 0, State: raft.ProgressSnapshot, LastAck: now},
		}), 4500, 4000, 4},
		{"at most one more period", leader(4000, map[uint64]raft.PeerProgress{
			4: {Match: 0, State: raft.ProgressSnapshot, LastAck: now},
		}), 5500, 4500, 4},
		{"a silent follower holds nothing", leader(4000, map[uint64]raft.PeerProgress{
			2: {Match: 5200, State: raft.ProgressReplicate, LastAck: now},
			3: {Match: 100, State: raft.ProgressProbe, LastAck: now - 2*live},
		}), 5000, 5000, 0},
		{"a follower compacts to its sync", raft.Status{ID: 2, Role: raft.Follower, Now: now,
			Snapshot: raft.SnapshotMeta{Index: 4000}}, 5000, 5000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			point, holder := compactionPoint(tc.st, tc.synced, period, live)
			if point != tc.point || holder != tc.holder {
				t.Fatalf("compactionPoint = %d (held for node %d), want %d (held for node %d)", point, holder, tc.point, tc.holder)
			}
		})
	}
}
