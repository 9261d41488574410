package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

func TestOrderedDeliveryAcrossManyBatches(t *testing.T) {
	const rounds, flood = 300, 20000
	nodes := startNodes(t, []uint64{1, 2}, func(_ uint64, cfg *Config) { cfg.QueueLen = flood })
	sender, receiver := nodes[1], nodes[2]

	// Rounds of 1..50 messages, each waited for, force a batch boundary per round; a flood
	// at the end lets batches grow as large as they will.
	next := uint64(1)
	send := func(n int) {
		msgs := make([]raft.Message, 0, n)
		for range n {
			msgs = append(msgs, heartbeat(1, 2, next))
			next++
		}
		sender.tr.Send(msgs)
	}
	for round := range rounds {
		send(round%50 + 1)
		want := int(next - 1)
		waitFor(t, "a round's messages", func() bool { return receiver.rec.messageCount() == want })
	}
	for range flood / 100 {
		send(100)
	}
	total := int(next - 1)
	waitFor(t, "all messages", func() bool { return receiver.rec.messageCount() == total })

	for i, m := range receiver.rec.messages() {
		if m.Commit != uint64(i+1) {
			t.Fatalf("message %d carries commit %d: order broken", i, m.Commit)
		}
		if m.From != 1 || m.To != 2 || m.Type != raft.MsgHeartbeat || m.Round != m.Commit {
			t.Fatalf("message %d arrived as %+v", i, m)
		}
	}
	batches := receiver.rec.batchCount()
	if batches < rounds {
		t.Fatalf("%d rounds arrived in %d batches: rounds were merged", rounds, batches)
	}
	stats, _ := sender.tr.Stats(2)
	if stats.SentMessages != uint64(total) || stats.SentBatches != uint64(batches) || stats.DroppedMessages != 0 {
		t.Fatalf("sender stats %+v, want %d messages in %d batches and no drops", stats, total, batches)
	}
	t.Logf("%d messages in %d batches", total, batches)
}

func TestBurstWhilePeerIsSlowCoalesces(t *testing.T) {
	const burst = 3000
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	nodes := startNodes(t, []uint64{1, 2}, func(_ uint64, cfg *Config) { cfg.QueueLen = 2 * burst })
	sender, receiver := nodes[1], nodes[2]
	first := true
	receiver.rec.beforeMessages = func(uint64, []raft.Message) {
		if first { // only the stream's goroutine calls this, so no lock is needed
			first = false
			entered <- struct{}{}
			<-release
		}
	}
	releaseOnce := sync.OnceFunc(func() { close(release) })
	defer releaseOnce() // a failing test must not leave the stream goroutine stuck
	payload := bytes.Repeat([]byte("v"), 1024)
	sender.tr.Send([]raft.Message{appendMsg(1, 2, 1, payload)})
	select {
	case <-entered:
	case <-time.After(waitTimeout):
		t.Fatal("first message never arrived")
	}

	// The receiver's handler is stuck. Send one message at a time and let each leave the
	// queue, until the stream stops taking them: HTTP/2 flow control has filled up.
	queueDrains := func() bool {
		deadline := time.Now().Add(100 * time.Millisecond)
		for time.Now().Before(deadline) {
			if s, _ := sender.tr.Stats(2); s.Queued == 0 {
				return true
			}
			time.Sleep(20 * time.Microsecond)
		}
		return false
	}
	index := uint64(2)
	for ; ; index++ {
		if index > 100000 {
			t.Fatal("the stream never stalled behind a stuck receiver")
		}
		sender.tr.Send([]raft.Message{appendMsg(1, 2, index, payload)})
		if !queueDrains() {
			break
		}
	}
	stalledAt := index
	// Now the burst: every Send is still one call of one message.
	for range burst {
		index++
		sender.tr.Send([]raft.Message{appendMsg(1, 2, index, payload)})
	}
	releaseOnce()
	total := int(index)
	waitFor(t, "all messages", func() bool { return receiver.rec.messageCount() == total })

	var beforeStall, burstBatches int
	want := uint64(1)
	for _, b := range receiver.rec.batches() {
		for _, m := range b {
			if m.Entries[0].Index != want {
				t.Fatalf("entry %d arrived where %d was due: order broken", m.Entries[0].Index, want)
			}
			want++
		}
		if b[len(b)-1].Entries[0].Index <= stalledAt {
			beforeStall++
		} else {
			burstBatches++
		}
	}
	t.Logf("before the stall: %d Sends in %d requests; then a burst of %d Sends in %d requests",
		stalledAt, beforeStall, burst, burstBatches)
	if beforeStall*4 < int(stalledAt) {
		t.Errorf("%d Sends while the stream kept up became only %d requests: the test did not see a fast peer", stalledAt, beforeStall)
	}
	if burstBatches > 5 {
		t.Fatalf("%d Sends while the peer was slow became %d SendRequests; want at most 5", burst, burstBatches)
	}
}

func TestReconnectAfterPeerServerRestarts(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	sender, receiver := nodes[1], nodes[2]

	sender.tr.Send([]raft.Message{heartbeat(1, 2, 1)})
	waitFor(t, "first message", func() bool { return receiver.rec.messageCount() == 1 })

	receiver.stopServer()
	waitFor(t, "the sender to see the stream down", func() bool {
		s, _ := sender.tr.Stats(2)
		return !s.Connected
	})
	// While the peer is down, sends are dropped and reported, never blocking.
	for i := uint64(2); i < 50; i++ {
		sender.tr.Send([]raft.Message{heartbeat(1, 2, i)})
	}
	waitFor(t, "an unreachable report", func() bool { return sender.rec.unreachableCount(2) > 0 })

	receiver.startServerAgain()
	// Keep sending, as a leader's heartbeats would, until one gets through the new stream.
	commit := uint64(1000)
	waitFor(t, "a message after the restart", func() bool {
		commit++
		sender.tr.Send([]raft.Message{heartbeat(1, 2, commit)})
		time.Sleep(5 * time.Millisecond)
		msgs := receiver.rec.messages()
		return msgs[len(msgs)-1].Commit >= 1000
	})
	// Whatever got through arrived in order.
	var last uint64
	for _, m := range receiver.rec.messages() {
		if m.Commit <= last {
			t.Fatalf("commit %d after %d: order broken across the reconnect", m.Commit, last)
		}
		last = m.Commit
	}
	if !strings.Contains(sender.logs.String(), "send stream to peer broke") {
		t.Errorf("the broken stream was not logged:\n%s", sender.logs.String())
	}
}

func TestQueueOverflowDropsAndReportsUnreachable(t *testing.T) {
	const queueLen = 8
	release := make(chan struct{})
	nodes := startNodes(t, []uint64{1, 2}, func(_ uint64, cfg *Config) { cfg.QueueLen = queueLen })
	sender, receiver := nodes[1], nodes[2]
	receiver.rec.beforeMessages = func(uint64, []raft.Message) { <-release }
	defer close(release)

	// Big messages against a receiver that never returns: flow control stalls the stream,
	// then the queue fills.
	payload := bytes.Repeat([]byte("x"), 256<<10)
	index := uint64(1)
	waitFor(t, "the queue to fill", func() bool {
		sender.tr.Send([]raft.Message{appendMsg(1, 2, index, payload)})
		index++
		s, _ := sender.tr.Stats(2)
		return s.Queued == queueLen
	})
	before, _ := sender.tr.Stats(2)
	if !before.Connected {
		t.Fatal("stream is down: the test meant to overflow a live stream")
	}
	reportsBefore := sender.rec.unreachableCount(2)

	burst := make([]raft.Message, 50)
	for i := range burst {
		burst[i] = appendMsg(1, 2, index, payload)
		index++
	}
	start := time.Now()
	sender.tr.Send(burst)
	if took := time.Since(start); took > time.Second {
		t.Errorf("Send to a full queue took %v: it must not block", took)
	}
	after, _ := sender.tr.Stats(2)
	if dropped := after.DroppedMessages - before.DroppedMessages; dropped != uint64(len(burst)) {
		t.Fatalf("dropped %d of a %d-message burst to a full queue", dropped, len(burst))
	}
	waitFor(t, "an unreachable report", func() bool { return sender.rec.unreachableCount(2) > reportsBefore })
}

func TestSnapshotStreamsBesideMessages(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	sender, receiver := nodes[1], nodes[2]

	body := make([]byte, 5<<20+12345) // several chunks and a partial one
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	halfRead := make(chan struct{})
	resume := make(chan struct{})
	receiver.rec.snapshotHook = func(_ uint64, _ raft.SnapshotMeta, r io.Reader) ([]byte, error) {
		head := make([]byte, 1<<20)
		if _, err := io.ReadFull(r, head); err != nil {
			return nil, err
		}
		close(halfRead)
		<-resume
		rest, err := io.ReadAll(r)
		return append(head, rest...), err
	}
	meta := raft.SnapshotMeta{Index: 900, Term: 4}
	sender.tr.SendSnapshot(2, 5, meta, func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
	})
	select {
	case <-halfRead:
	case <-time.After(waitTimeout):
		t.Fatal("snapshot never started arriving")
	}
	// The snapshot is stuck mid-way in the receiver; messages must still flow.
	sender.tr.Send([]raft.Message{heartbeat(1, 2, 7)})
	waitFor(t, "a message while the snapshot is in flight", func() bool { return receiver.rec.messageCount() == 1 })
	close(resume)

	waitFor(t, "the snapshot report", func() bool { return len(sender.rec.snapshotReports()) == 1 })
	if r := sender.rec.snapshotReports()[0]; r != (snapshotReport{peer: 2, ok: true}) {
		t.Fatalf("snapshot report %+v, want success for peer 2", r)
	}
	receiver.rec.mu.Lock()
	got := receiver.rec.snaps
	receiver.rec.mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("receiver stored %d snapshots, want 1", len(got))
	}
	s := got[0]
	if s.from != 1 || s.term != 5 || !s.meta.SameAs(meta) || s.size != int64(len(body)) || !bytes.Equal(s.body, body) {
		t.Fatalf("received snapshot from %d term %d meta %+v size %d (%d bytes, equal=%v)",
			s.from, s.term, s.meta, s.size, len(s.body), bytes.Equal(s.body, body))
	}
}

func TestSnapshotFailuresAreReported(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	sender, receiver := nodes[1], nodes[2]
	body := bytes.Repeat([]byte("s"), 3<<20)

	cases := []struct {
		name    string
		hook    func(uint64, io.Reader) ([]byte, error)
		open    func() (io.ReadCloser, int64, error)
		wantErr string // in the receiver's log, when the receiver sees the failure
	}{
		{
			name: "receiver refuses",
			hook: func(uint64, io.Reader) ([]byte, error) { return nil, errors.New("disk full") },
			open: func() (io.ReadCloser, int64, error) {
				return io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
			},
			wantErr: "disk full",
		},
		{
			name: "source shorter than declared",
			open: func() (io.ReadCloser, int64, error) {
				return io.NopCloser(bytes.NewReader(body)), int64(len(body)) + 10, nil
			},
		},
		{
			name: "source longer than declared",
			open: func() (io.ReadCloser, int64, error) {
				return io.NopCloser(bytes.NewReader(body)), int64(len(body)) - 10, nil
			},
		},
		{
			name: "source fails to open",
			open: func() (io.ReadCloser, int64, error) { return nil, 0, errors.New("no such snapshot") },
		},
		{
			name: "handler stops reading early",
			hook: func(_ uint64, r io.Reader) ([]byte, error) {
				buf := make([]byte, 100)
				_, err := io.ReadFull(r, buf)
				return buf, err
			},
			open: func() (io.ReadCloser, int64, error) {
				return io.NopCloser(bytes.NewReader(body)), int64(len(body)), nil
			},
		},
	}
	// The sender may report a failure of its own before the receiver's handler for that
	// snapshot has started, so each snapshot (index i+1) picks its case's hook itself.
	receiver.rec.snapshotHook = func(from uint64, meta raft.SnapshotMeta, r io.Reader) ([]byte, error) {
		if i := int(meta.Index) - 1; i >= 0 && i < len(cases) && cases[i].hook != nil {
			return cases[i].hook(from, r)
		}
		return io.ReadAll(r)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sender.tr.SendSnapshot(2, 1, raft.SnapshotMeta{Index: uint64(i + 1), Term: 1}, tc.open)
			waitFor(t, "the snapshot report", func() bool { return len(sender.rec.snapshotReports()) == i+1 })
			if r := sender.rec.snapshotReports()[i]; r.ok {
				t.Fatalf("snapshot reported as stored")
			}
			if tc.wantErr != "" && !strings.Contains(sender.logs.String(), tc.wantErr) {
				t.Errorf("sender log does not say %q:\n%s", tc.wantErr, sender.logs.String())
			}
		})
	}
	// Only the handler that chose to stop early kept something; the transport still failed it.
	receiver.rec.mu.Lock()
	defer receiver.rec.mu.Unlock()
	if len(receiver.rec.snaps) != 1 || len(receiver.rec.snaps[0].body) != 100 {
		t.Fatalf("receiver stored %d snapshots, want only the early-stopping handler's", len(receiver.rec.snaps))
	}
}

func TestMsgSnapThroughSendIsReportedFailed(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	nodes[1].tr.Send([]raft.Message{{Type: raft.MsgSnap, From: 1, To: 2, Term: 1, Snapshot: raft.SnapshotMeta{Index: 5, Term: 1}}})
	waitFor(t, "the snapshot report", func() bool { return len(nodes[1].rec.snapshotReports()) == 1 })
	if r := nodes[1].rec.snapshotReports()[0]; r.ok || r.peer != 2 {
		t.Fatalf("report %+v, want failure for peer 2", r)
	}
}

// rawClient dials a node's PeerService directly, to send what a transport never would.
func rawClient(t *testing.T, addr string, opts ...grpc.DialOption) georaftv1.PeerServiceClient {
	t.Helper()
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return georaftv1.NewPeerServiceClient(conn)
}

// callAll calls every PeerService method with header h and returns their errors by name.
func callAll(t *testing.T, c georaftv1.PeerServiceClient, h *georaftv1.PeerHeader) map[string]error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	errs := map[string]error{}

	_, errs["Ping"] = c.Ping(ctx, &georaftv1.PingRequest{Header: h})

	send, err := c.Send(ctx)
	if err == nil {
		msg, _ := EncodeMessage(heartbeat(h.GetFrom(), h.GetTo(), 1))
		if err = send.Send(&georaftv1.SendRequest{Header: h, Messages: []*georaftv1.RaftMessage{msg}}); err == nil || errors.Is(err, io.EOF) {
			_, err = send.CloseAndRecv()
		}
	}
	errs["Send"] = err

	snap, err := c.InstallSnapshot(ctx)
	if err == nil {
		req := &georaftv1.InstallSnapshotRequest{Header: h, Term: 1, Meta: &georaftv1.SnapshotMeta{Index: 1, Term: 1}, Size: 3, Chunk: []byte("abc")}
		if err = snap.Send(req); err == nil || errors.Is(err, io.EOF) {
			_, err = snap.CloseAndRecv()
		}
	}
	errs["InstallSnapshot"] = err
	return errs
}

func TestRefusesWrongClusterUnknownSenderWrongReceiver(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	target := nodes[2]
	c := rawClient(t, target.addr)

	ok := callAll(t, c, &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 1, To: 2})
	for method, err := range ok {
		if err != nil {
			t.Fatalf("%s with a correct header: %v", method, err)
		}
	}
	cases := []struct {
		name   string
		header *georaftv1.PeerHeader
		inLog  string
	}{
		{"wrong cluster", &georaftv1.PeerHeader{ClusterId: "other-cluster", From: 1, To: 2}, `their_cluster_id=other-cluster`},
		{"unknown sender", &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 9, To: 2}, `their_from=9`},
		{"self as sender", &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 2, To: 2}, `sender 2 is not a peer`},
		{"wrong receiver", &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 1, To: 3}, `their_to=3`},
		{"no header", nil, `missing peer header`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := target.rec.messageCount()
			for method, err := range callAll(t, c, tc.header) {
				if status.Code(err) != codes.PermissionDenied {
					t.Errorf("%s: got %v, want PermissionDenied", method, err)
				}
			}
			if target.rec.messageCount() != before {
				t.Error("a refused batch reached the handler")
			}
			waitFor(t, "the refusal in the log", func() bool { return strings.Contains(target.logs.String(), tc.inLog) })
		})
	}
	logs := target.logs.String()
	if !strings.Contains(logs, "refused peer RPC") || !strings.Contains(logs, "cluster_id=test-cluster") || !strings.Contains(logs, "node_id=2") {
		t.Errorf("refusals are not logged with this node's cluster and node id:\n%s", logs)
	}
}

func TestTransportsOfDifferentClustersDoNotTalk(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, func(id uint64, cfg *Config) {
		if id == 1 {
			cfg.ClusterID = "intruder"
		}
	})
	commit := uint64(0)
	waitFor(t, "the refusal to surface at the sender", func() bool {
		commit++
		nodes[1].tr.Send([]raft.Message{heartbeat(1, 2, commit)})
		return strings.Contains(nodes[1].logs.String(), "peer refused our messages")
	})
	if n := nodes[2].rec.messageCount(); n != 0 {
		t.Fatalf("node 2 accepted %d messages from another cluster", n)
	}
	if !strings.Contains(nodes[2].logs.String(), `their_cluster_id=intruder`) {
		t.Errorf("node 2 did not log the foreign cluster id:\n%s", nodes[2].logs.String())
	}
}

func TestNewValidatesConfig(t *testing.T) {
	h := newRecorder()
	good := Config{ClusterID: "c", SelfID: 1, Peers: map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.1:2"}}
	cases := []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"no cluster", func(c *Config) { c.ClusterID = "" }, "cluster id"},
		{"no self", func(c *Config) { c.SelfID = 0 }, "self id"},
		{"peer zero", func(c *Config) { c.Peers = map[uint64]string{0: "x:1"} }, "peer id"},
		{"peer without address", func(c *Config) { c.Peers = map[uint64]string{2: ""} }, "peer 2 has no address"},
		{"tiny messages", func(c *Config) { c.MaxMessageBytes = 100 }, "max message bytes"},
		{"negative queue", func(c *Config) { c.QueueLen = -1 }, "queue length"},
	}
	for _, tc := range cases {
		cfg := good
		cfg.Peers = map[uint64]string{1: "127.0.0.1:1", 2: "127.0.0.1:2"}
		tc.tweak(&cfg)
		tr, err := New(cfg, h)
		if err == nil {
			tr.Close()
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not mention %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(good, nil); err == nil {
		t.Error("nil handler accepted")
	}
	tr, err := New(good, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Stats(1); ok {
		t.Error("self is treated as a peer")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr.Send([]raft.Message{heartbeat(1, 2, 1)}) // after Close: a no-op, not a panic
}

func TestMalformedMessageInBatchIsDroppedAndLogged(t *testing.T) {
	nodes := startNodes(t, []uint64{1, 2}, nil)
	target := nodes[2]
	c := rawClient(t, target.addr)
	good1, _ := EncodeMessage(heartbeat(1, 2, 1))
	good2, _ := EncodeMessage(heartbeat(1, 2, 2))
	malformed := &georaftv1.RaftMessage{Body: &georaftv1.RaftMessage_AppendEntries{AppendEntries: &georaftv1.AppendEntriesRequest{
		Term: 1, PrevLogIndex: 3, Clock: &georaftv1.LeaderClock{},
		Entries: []*georaftv1.Entry{{Index: 9, Term: 1, Type: georaftv1.EntryType_ENTRY_TYPE_NORMAL}},
	}}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := c.Send(ctx)
	if err != nil {
		t.Fatal(err)
	}
	header := &georaftv1.PeerHeader{ClusterId: "test-cluster", From: 1, To: 2}
	if err := stream.Send(&georaftv1.SendRequest{Header: header, Messages: []*georaftv1.RaftMessage{good1, malformed, {}, good2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("a batch with malformed messages ended the stream: %v", err)
	}
	got := target.rec.messages()
	if len(got) != 2 || got[0].Commit != 1 || got[1].Commit != 2 {
		t.Fatalf("handler got %+v, want the two well-formed heartbeats", got)
	}
	if !strings.Contains(target.logs.String(), "dropping malformed message") {
		t.Fatalf("malformed message not logged:\n%s", target.logs.String())
	}
}
