package node

import (
	"fmt"
	"io"
	"time"

	"github.com/georaft/georaft/raft"
)

// installSnapshot replaces the state machine with a snapshot the core accepted from the
// leader. The transport stored the file before the core saw the message.
func (n *Node) installSnapshot(meta raft.SnapshotMeta) error {
	if err := n.restoreSnapshot(meta); err != nil {
		return fmt.Errorf("install snapshot %d from the leader: %w", meta.Index, err)
	}
	if err := n.wal.SaveSnapshot(meta); err != nil {
		return fmt.Errorf("record snapshot %d in the WAL: %w", meta.Index, err)
	}
	n.lastSnapshot = meta
	n.lastSync = max(n.lastSync, meta.Index)
	n.pending.appliedTo(meta.Index)
	n.dump.Printf("installed snapshot at index %d (term %d); the state machine now reflects it", meta.Index, meta.Term)
	// Older snapshot files, received or taken, are dead weight now: a leader that compacts
	// while the transfer runs sends a newer one, and each would stay on disk.
	if err := n.snaps.Prune(n.cfg.Storage.SnapshotsKept); err != nil {
		n.log.Warn("snapshot pruning failed", "err", err)
	}
	return nil
}

// maybeSnapshot compacts the log once enough entries were applied since the last time. The
// state machine's engine is the snapshot: it is synced in the background (applies go on),
// and the log is compacted up to the index the sync made durable, never further, since a
// crash loses what the engine had not synced and the log must replay it.
func (n *Node) maybeSnapshot() {
	threshold := uint64(n.cfg.Storage.SnapshotEntries)
	if threshold == 0 || n.snapshotting {
		return
	}
	if index, _ := n.store.Applied(); index < max(n.lastSnapshot.Index, n.lastSync)+threshold {
		return
	}
	n.snapshotting = true
	go func() {
		index, term, err := n.store.Sync()
		meta := raft.SnapshotMeta{Index: index, Term: term}
		select {
		case n.ctrlc <- func() { n.finishSnapshot(meta, err) }:
		case <-n.donec:
		}
	}()
}

// openSnapshot streams the state machine to a follower that needs a snapshot at meta: its
// image as of now, which is at or past meta (the follower's state machine skips the entries
// its image already holds). The image goes to a file first, for the transfer's declared size,
// and is reused while it lasts.
func (n *Node) openSnapshot(meta raft.SnapshotMeta) (io.ReadCloser, int64, error) {
	if r, size, err := n.snaps.Open(meta); err == nil {
		return r, size, nil
	}
	err := n.snaps.Save(meta, func(w io.Writer) error {
		_, _, err := n.store.WriteSnapshot(w)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return n.snaps.Open(meta)
}

// finishSnapshot compacts the log behind a snapshot that is safely on disk, as far as
// compactionPoint allows.
func (n *Node) finishSnapshot(synced raft.SnapshotMeta, err error) {
	n.snapshotting = false
	if err != nil {
		// A failed snapshot costs disk space, not safety: the log still holds everything.
		n.log.Error("snapshot failed; the log is kept", "index", synced.Index, "err", err)
		n.dump.Printf("snapshot at index %d failed: %v", synced.Index, err)
		return
	}
	n.lastSync = max(n.lastSync, synced.Index)
	point, heldFor := compactionPoint(n.core.Status(), synced.Index, n.cfg.Storage.SnapshotEntries,
		n.cfg.Timing.ElectionTimeoutMax)
	if point <= n.lastSnapshot.Index {
		if heldFor == 0 {
			return
		}
		n.dump.Printf("state machine synced at index %d; the log is kept from %d for node %d, which still needs it",
			synced.Index, n.lastSnapshot.Index+1, heldFor)
		return
	}
	meta := synced
	if point < synced.Index {
		// The engine holds more than the compaction point; the WAL's marker says where replay
		// starts, and the engine skips the entries it already holds.
		term, err := n.core.TermAt(point)
		if err != nil {
			n.log.Warn("snapshot skipped: the compaction point's term is not known", "index", point, "err", err)
			return
		}
		meta = raft.SnapshotMeta{Index: point, Term: term}
	}
	// The membership as of the snapshot goes with it: a restart rebuilds the membership from
	// it and the changes after it, not from the voters the cluster was created with.
	cs, err := n.core.ConfStateAt(meta.Index)
	if err != nil {
		n.log.Warn("snapshot skipped: its membership is not known", "index", meta.Index, "err", err)
		return
	}
	meta.ConfState = cs
	if err := n.wal.SaveSnapshot(meta); err != nil {
		n.failStop(fmt.Errorf("record snapshot %d in the WAL: %w", meta.Index, err))
		return
	}
	if err := n.core.Compact(meta); err != nil {
		n.log.Warn("core refused compaction", "index", meta.Index, "err", err)
		return
	}
	if err := n.wal.Compact(meta.Index); err != nil {
		n.log.Warn("WAL compaction failed", "index", meta.Index, "err", err)
	}
	if err := n.snaps.Prune(n.cfg.Storage.SnapshotsKept); err != nil {
		n.log.Warn("snapshot pruning failed", "err", err)
	}
	n.lastSnapshot = meta
	n.m.snapshots.Inc()
	if point < synced.Index {
		n.dump.Printf("snapshot at index %d (term %d) taken; log compacted up to it, entries after it kept for node %d (state machine synced at %d)",
			meta.Index, meta.Term, heldFor, synced.Index)
		return
	}
	n.dump.Printf("snapshot at index %d (term %d) taken; log compacted up to it", meta.Index, meta.Term)
}

// compactionPoint is how far a node may compact its log once its state machine is durable
// at synced. A follower compacts to synced. A leader keeps the entries that a live follower
// (heard from within one election timeout) still needs to catch up from the log: one behind
// synced, and one receiving a snapshot, which after installing it needs every entry after
// the leader's current compaction point. Compacting past a snapshot in flight would make
// its receiver need another snapshot as soon as it installs this one, over and over while
// writes go on: replacing a node holding 1 GiB took four minutes that way, and left a
// dozen 1 GiB snapshot files on the new node. The leader keeps at most one more snapshot
// period (storage.snapshot_entries) of entries, so a follower that never catches up bounds
// the log's memory at twice its usual size. heldFor names the follower that set the point.
func compactionPoint(st raft.Status, synced, period uint64, live time.Duration) (point, heldFor uint64) {
	point = synced
	if st.Role != raft.Leader {
		return point, 0
	}
	floor := st.Snapshot.Index
	if synced > period {
		floor = max(floor, synced-period)
	}
	for id, p := range st.Progress {
		if id == st.ID || st.Now-p.LastAck > live {
			continue
		}
		need := p.Match
		if p.State == raft.ProgressSnapshot {
			need = max(need, st.Snapshot.Index)
		}
		if need < point {
			point, heldFor = need, id
		}
	}
	if point < floor {
		point = floor
	}
	return point, heldFor
}
