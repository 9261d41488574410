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
	n.dump.Printf("installed snapshot at index %d (term %d); the state machine now reflects it", meta.Index, meta.Term)
	return nil
}

// maybeSnapshot starts a background snapshot once enough entries were applied since the last
// one. The image is cut on the loop, so it matches the applied index exactly; writing it
// happens outside the loop.
func (n *Node) maybeSnapshot() {
	threshold := uint64(n.cfg.Storage.SnapshotEntries)
	if threshold == 0 || n.snapshotting {
		return
	}
	index, _ := n.kv.Applied()
	if index < n.lastSnapshot.Index+threshold {
		return
	}
	image := n.kv.Image()
	index, term := image.Applied()
	meta := raft.SnapshotMeta{Index: index, Term: term}
	n.snapshotting = true
	go func() {
		wrote := false
		err := n.snaps.Save(meta, func(w io.Writer) error {
			wrote = true
			_, err := image.WriteTo(w)
			return err
		})
		if !wrote {
			// Release the image's hold on the store's shards.
			image.WriteTo(io.Discard)
		}
		select {
		case n.ctrlc <- func() { n.finishSnapshot(meta, err) }:
		case <-n.donec:
		}
	}()
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
