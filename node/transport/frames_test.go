package transport

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/georaft/georaft/raft"
)

// writeSyscalls is this process's count of write system calls so far (Linux).
func writeSyscalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io to count write syscalls: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			return n
		}
	}
	t.Skip("/proc/self/io has no syscw line")
	return 0
}

// One message and its answer, one at a time, cost one write each: no HTTP/2 PING of
// gRPC's adaptive flow-control window rides along with them (with it, 3.9 writes per round
// trip were measured, and as many extra wake-ups at the other end). Counts, not times: the
// machine's load changes how long the round trips take, not how many writes they need.
func TestARoundTripCostsOneWritePerMessage(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	a, b := nodes[1], nodes[2]
	answers := make(chan struct{}, 1)
	b.rec.keepNothing = true
	b.rec.beforeMessages = func(from uint64, msgs []raft.Message) {
		b.tr.Send([]raft.Message{{Type: raft.MsgHeartbeatResp, From: 2, To: from, Term: msgs[0].Term}})
	}
	a.rec.keepNothing = true
	a.rec.beforeMessages = func(uint64, []raft.Message) { answers <- struct{}{} }
	waitFor(t, "both send streams", func() bool {
		s1, _ := a.tr.Stats(2)
		s2, _ := b.tr.Stats(1)
		return s1.Connected && s2.Connected
	})
	const rounds = 2000
	before := writeSyscalls(t)
	for i := range rounds {
		a.tr.Send([]raft.Message{{Type: raft.MsgHeartbeat, From: 1, To: 2, Term: uint64(i + 1)}})
		<-answers
	}
	// 2 per round trip; the slack is for a keepalive ping or two on a slow run.
	if per := float64(writeSyscalls(t)-before) / rounds; per > 2.1 {
		t.Errorf("%.2f write syscalls per round trip of one message each way, want 2", per)
	}
}
