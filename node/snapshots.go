package node

import (
	"fmt"
	"io"

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
	n.pending.appliedTo(meta.Index)
	n.dump.Printf("installed snapshot at index %d (term %d); the state machine now reflects it", meta.Index, meta.Term)
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
	if index, _ := n.store.Applied(); index < n.lastSnapshot.Index+threshold {
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

// finishSnapshot compacts the log behind a snapshot that is safely on disk.
func (n *Node) finishSnapshot(meta raft.SnapshotMeta, err error) {
	n.snapshotting = false
	if err != nil {
		// A failed snapshot costs disk space, not safety: the log still holds everything.
		n.log.Error("snapshot failed; the log is kept", "index", meta.Index, "err", err)
		n.dump.Printf("snapshot at index %d failed: %v", meta.Index, err)
		return
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
	n.dump.Printf("snapshot at index %d (term %d) taken; log compacted up to it", meta.Index, meta.Term)
}
