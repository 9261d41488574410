package raft

import (
	"fmt"
	"testing"
	"time"
)

// benchCluster is the smallest driver around five cores: messages are delivered in memory at
// once, persistence is instant, applied entries are only counted.
type benchCluster struct {
	nodes   []*Raft
	queue   []Message
	next    []Message
	applied []uint64
}

func newBenchCluster(b *testing.B, n int) *benchCluster {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	c := &benchCluster{applied: make([]uint64, n)}
	for _, id := range ids {
		r, err := New(testConfig(id, ids), Restored{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		c.nodes = append(c.nodes, r)
	}
	c.nodes[0].Campaign()
	c.pump()
	if c.nodes[0].Status().Role != Leader {
		b.Fatalf("node 1 did not win the election")
	}
	// Past the lease every node assumes at start, the leader commits its no-op.
	for _, r := range c.nodes {
		r.Tick(time.Second)
	}
	c.pump()
	if !c.nodes[0].committedInTerm {
		b.Fatalf("node 1 did not commit its no-op")
	}
	return c
}

// pump runs Ready cycles and deliveries until the cluster is quiet.
func (c *benchCluster) pump() {
	for {
		for i, r := range c.nodes {
			if !r.HasReady() {
				continue
			}
			rd := r.Ready()
			c.queue = append(c.queue, rd.Messages...)
			c.queue = append(c.queue, rd.MessagesAfterPersist...)
			if n := len(rd.CommittedEntries); n > 0 {
				c.applied[i] = rd.CommittedEntries[n-1].Index
			}
			r.Advance(rd)
		}
		if len(c.queue) == 0 {
			return
		}
		c.queue, c.next = c.next[:0], c.queue
		for _, m := range c.next {
			if err := c.nodes[m.To-1].Step(m); err != nil {
				panic(err)
			}
		}
	}
}

// BenchmarkCoreProposals5Nodes measures proposals committed and applied on all five nodes per
// second, through the cores alone, for several batch sizes (proposals per Ready cycle).
func BenchmarkCoreProposals5Nodes(b *testing.B) {
	payload := make([]byte, 128)
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			c := newBenchCluster(b, 5)
			leader := c.nodes[0]
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				for i := 0; i < n; i++ {
					if _, _, err := leader.Propose(payload); err != nil {
						b.Fatal(err)
					}
				}
				done += n
				c.pump()
				// Keep the in-memory logs short, as a node taking snapshots would.
				if leader.log.applied-leader.log.snapshot.Index > 4096 {
					for _, r := range c.nodes {
						t, _ := r.log.term(r.log.applied)
						if err := r.Compact(SnapshotMeta{Index: r.log.applied, Term: t}); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			last := leader.log.lastIndex()
			for i, a := range c.applied {
				if a != last {
					b.Fatalf("node %d applied %d of %d", i+1, a, last)
				}
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "proposals/s")
		})
	}
}
