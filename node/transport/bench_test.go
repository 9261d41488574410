package transport

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

// BenchmarkSendThroughput measures 1 KiB appends per second from one transport to another
// over loopback gRPC, sent in groups of 64 as a leader's Ready would hand them over.
//
//	go test ./node/transport -run '^$' -bench SendThroughput -benchtime 200000x
func BenchmarkSendThroughput(b *testing.B) {
	const group = 64
	const queueLen = 8192
	nodes := startNodes(b, []uint64{1, 2}, func(_ uint64, cfg *Config) { cfg.QueueLen = queueLen })
	sender, receiver := nodes[1], nodes[2]
	var received atomic.Int64
	receiver.rec.beforeMessages = func(_ uint64, msgs []raft.Message) { received.Add(int64(len(msgs))) }
	// The recorder would keep every message; count only.
	receiver.rec.keepNothing = true

	payload := bytes.Repeat([]byte("p"), 1024)
	msgs := make([]raft.Message, 0, group)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; {
		// Stay below the queue bound, as the core's inflight limit would: a drop would
		// make the count wrong.
		for {
			if s, _ := sender.tr.Stats(2); s.Queued <= queueLen-group {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		msgs = msgs[:0]
		for j := 0; j < group && i < b.N; j++ {
			i++
			msgs = append(msgs, appendMsg(1, 2, uint64(i), payload))
		}
		sender.tr.Send(msgs)
	}
	waitFor(b, "every message", func() bool { return received.Load() == int64(b.N) })
	elapsed := time.Since(start)
	b.StopTimer()
	if s, _ := sender.tr.Stats(2); s.DroppedMessages != 0 {
		b.Fatalf("%d messages dropped", s.DroppedMessages)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if s, _ := sender.tr.Stats(2); s.SentBatches > 0 {
		b.ReportMetric(float64(s.SentMessages)/float64(s.SentBatches), "msgs/batch")
	}
}

// BenchmarkRoundTrip measures one heartbeat and its answer between two transports over
// loopback gRPC, one at a time: the hops a ReadIndex round adds to a read (queue, sender,
// gRPC's writer and reader, the handler) in each direction, without the cores. Compare
// with the empty unary call of `make bench-compare`'s floor.
//
//	go test ./node/transport -run '^$' -bench RoundTrip -benchtime 20000x
func BenchmarkRoundTrip(b *testing.B) {
	nodes := startNodes(b, []uint64{1, 2}, nil)
	a, peer := nodes[1], nodes[2]
	answers := make(chan struct{}, 1)
	peer.rec.keepNothing = true
	peer.rec.beforeMessages = func(from uint64, msgs []raft.Message) {
		peer.tr.Send([]raft.Message{{Type: raft.MsgHeartbeatResp, From: 2, To: from, Term: msgs[0].Term}})
	}
	a.rec.keepNothing = true
	a.rec.beforeMessages = func(uint64, []raft.Message) { answers <- struct{}{} }
	waitFor(b, "both streams", func() bool {
		s1, _ := a.tr.Stats(2)
		s2, _ := peer.tr.Stats(1)
		return s1.Connected && s2.Connected
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a.tr.Send([]raft.Message{{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: uint64(i + 1)}})
		<-answers
	}
}
