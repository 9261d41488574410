package transport

import (
	"strings"
	"testing"

	"github.com/georaft/georaft/raft"
)

// A member added at run time is dialled and its calls admitted; a member dropped gets
// nothing more and its calls are refused.
func TestSetPeersAddsAndDropsPeersAtRunTime(t *testing.T) {
	// Node 3 exists from the start but nodes 1 and 2 do not know it yet.
	nodes := startNodes(t, []uint64{1, 2, 3}, func(id uint64, cfg *Config) {
		if id != 3 {
			delete(cfg.Peers, 3)
		}
	})
	n1, n3 := nodes[1], nodes[3]
	n1.tr.Send(nil)
	n3.tr.Send(appendBatch(3, 1, 1))
	waitFor(t, "node 1 to refuse node 3, not yet its peer", func() bool {
		return strings.Contains(n1.logs.String(), "sender 3 is not a peer")
	})
	if err := n1.tr.SetPeers(map[uint64]string{1: n1.addr, 2: nodes[2].addr, 3: n3.addr}); err != nil {
		t.Fatal(err)
	}
	n1.tr.Send(appendBatch(1, 3, 1))
	waitFor(t, "node 3 to receive from node 1 once node 1 dials it", func() bool { return n3.rec.messageCount() > 0 })
	n3.tr.Send(appendBatch(3, 1, 2))
	waitFor(t, "node 1 to admit node 3", func() bool { return n1.rec.messageCount() > 0 })

	if err := n1.tr.SetPeers(map[uint64]string{2: nodes[2].addr}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n1.tr.Stats(3); ok {
		t.Fatal("node 3 is still a peer of node 1 after it was dropped")
	}
	before := n1.rec.messageCount()
	n1.tr.Send(appendBatch(1, 3, 2))
	if !strings.Contains(n1.logs.String(), "not a peer") {
		t.Fatal("a message to a dropped peer was not refused")
	}
	down := n3.rec.unreachableCount(1)
	n3.tr.Send(appendBatch(3, 1, 3))
	waitFor(t, "node 1 to refuse node 3's stream again", func() bool { return n3.rec.unreachableCount(1) > down })
	if got := n1.rec.messageCount(); got != before {
		t.Fatalf("node 1 received %d messages from a dropped peer", got-before)
	}
}

func appendBatch(from, to, index uint64) []raft.Message {
	return []raft.Message{appendMsg(from, to, index, []byte("x"))}
}
