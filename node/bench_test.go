package node_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/georaft/georaft/node"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// BenchmarkClusterSet3Nodes measures end-to-end Set throughput on a 3-node loopback cluster
// with fsync on: gRPC in, replication, WAL, apply, answer. b.SetParallelism sets the number of
// concurrent clients per GOMAXPROCS; run with -cpu to vary it.
//
//	go test ./node -run XXX -bench ClusterSet -benchtime 5s
func BenchmarkClusterSet3Nodes(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := newTestCluster(b, 3, nil)
			leader := c.waitLeader(10 * time.Second)
			value := make([]byte, 128)
			var seq atomic.Uint64
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Sprintf("k%d", seq.Add(1)%1024)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := c.clients[leader].Set(ctx, &georaftv1.SetRequest{Key: []byte(key), Value: value})
					cancel()
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sets/s")
		})
	}
}

// BenchmarkClusterGet measures one client's Get latency on a 5-node loopback cluster, per
// read mode: a lease read stays on the leader; an index read adds one heartbeat round to a
// quorum (the leader's loop, the transport both ways, the followers' loops).
//
//	go test ./node -run XXX -bench ClusterGet -benchtime 2000x
func BenchmarkClusterGet(b *testing.B) {
	c := newTestCluster(b, 5, nil)
	leader := c.waitLeader(10 * time.Second)
	c.waitLease(leader, 10*time.Second)
	c.mustSet("k", "v")
	for _, mode := range []georaftv1.ReadMode{georaftv1.ReadMode_READ_MODE_LEASE, georaftv1.ReadMode_READ_MODE_INDEX} {
		b.Run(mode.String(), func(b *testing.B) {
			for range b.N {
				if _, err := c.get(leader, "k", mode); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClusterIndexReads64 runs 64 clients of index reads against a 5-node loopback
// cluster and reports how many heartbeats the leader sent per read: what ReadIndex batching
// saves (each heartbeat is a message, an answer, and the wake-ups of both ends).
//
//	go test ./node -run XXX -bench ClusterIndexReads64 -benchtime 20000x
func BenchmarkClusterIndexReads64(b *testing.B) {
	var heartbeats atomic.Int64
	undo := node.SetTestingWrapOutbox(func(_ *node.Node, o node.Outbox) node.Outbox {
		return &heartbeatCounter{Outbox: o, n: &heartbeats}
	})
	defer undo()
	c := newTestCluster(b, 5, nil)
	leader := c.waitLeader(10 * time.Second)
	c.waitLease(leader, 10*time.Second)
	c.mustSet("k", "v")
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	heartbeats.Store(0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.get(leader, "k", georaftv1.ReadMode_READ_MODE_INDEX); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(heartbeats.Load())/float64(b.N), "heartbeats/read")
}

// heartbeatCounter counts the heartbeats a node sends.
type heartbeatCounter struct {
	node.Outbox
	n *atomic.Int64
}

func (h *heartbeatCounter) Send(msgs []raft.Message) {
	for i := range msgs {
		if msgs[i].Type == raft.MsgHeartbeat {
			h.n.Add(1)
		}
	}
	h.Outbox.Send(msgs)
}

// BenchmarkClusterSet5NodesCPU runs 64 clients of Sets against a 5-node loopback cluster (the
// compare's shape, in one process) and reports the process's CPU per write, every node and
// the clients included: on 2 cores, CPU per write is what write throughput follows.
//
//	go test ./node -run XXX -bench ClusterSet5NodesCPU -benchtime 20000x
func BenchmarkClusterSet5NodesCPU(b *testing.B) {
	c := newTestCluster(b, 5, nil)
	leader := c.waitLeader(10 * time.Second)
	value := make([]byte, 128)
	var seq atomic.Uint64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("k%d", seq.Add(1)%1000)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.clients[leader].Set(ctx, &georaftv1.SetRequest{Key: []byte(key), Value: value})
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(processCPU()-start)/float64(b.N)/1e3, "cpu-µs/op")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
