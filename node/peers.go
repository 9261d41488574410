package node

import (
	"fmt"
	"io"

	"github.com/georaft/georaft/raft"
)

// The Node is the transport's Handler: what peers send enters the loop here.

// HandleMessages queues a batch from a peer for the loop. It blocks while the loop is busy,
// which pushes back through gRPC flow control instead of dropping consensus messages.
func (n *Node) HandleMessages(from uint64, msgs []raft.Message) {
	if n.failed.Load() != nil {
		return
	}
	select {
	case n.msgc <- inbound{msgs: msgs, at: n.clock.Now()}:
	case <-n.donec:
	}
}

// HandleSnapshot stores a snapshot streamed by the leader, then lets the core decide whether
// to install it.
func (n *Node) HandleSnapshot(from uint64, term uint64, meta raft.SnapshotMeta, size int64, r io.Reader) error {
	if err := n.admit(); err != nil {
		return err
	}
	in, err := n.snaps.Receive(meta, size)
	if err != nil {
		return fmt.Errorf("receive snapshot %d from node %d: %w", meta.Index, from, err)
	}
	if _, err := io.Copy(in, r); err != nil {
		in.Abort()
		return fmt.Errorf("receive snapshot %d from node %d: %w", meta.Index, from, err)
	}
	if err := in.Commit(); err != nil {
		return fmt.Errorf("store snapshot %d from node %d: %w", meta.Index, from, err)
	}
	n.dump.Printf("term %d: received snapshot at index %d (%d bytes) from node %d", term, meta.Index, size, from)
	msg := raft.Message{Type: raft.MsgSnap, From: from, To: n.id, Term: term, Snapshot: meta}
	select {
	case n.msgc <- inbound{msgs: []raft.Message{msg}, at: n.clock.Now()}:
		return nil
	case <-n.donec:
		return n.stoppedErr()
	}
}

// ReportUnreachable tells the core that a message to peer was lost.
func (n *Node) ReportUnreachable(peer uint64) {
	n.tryControl(func() { n.core.ReportUnreachable(peer) })
}

// ReportSnapshot tells the core how a snapshot transfer ended. Unlike an unreachable report
// it must not be lost: the follower's progress waits in snapshot state until it arrives.
func (n *Node) ReportSnapshot(peer uint64, ok bool) {
	select {
	case n.ctrlc <- func() { n.core.ReportSnapshot(peer, ok) }:
	case <-n.donec:
	}
}

// tryControl queues f for the loop unless the loop is gone. Delivery reports are advisory:
// the core probes again on its own, so a full queue may drop them.
func (n *Node) tryControl(f func()) {
	select {
	case n.ctrlc <- f:
	case <-n.donec:
	default:
	}
}
