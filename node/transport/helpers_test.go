package transport

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/georaft/georaft/raft"
)

// waitTimeout is generous: the machine is shared, and tests wait on conditions, not times.
const waitTimeout = 30 * time.Second

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type receivedSnapshot struct {
	from, term uint64
	meta       raft.SnapshotMeta
	size       int64
	body       []byte
}

// recorder is a Handler that keeps everything it is given. Hooks let a test slow it down.
type recorder struct {
	mu          sync.Mutex
	batchSizes  []int
	msgs        []raft.Message
	unreachable map[uint64]int
	snapReports []snapshotReport
	snaps       []receivedSnapshot

	beforeMessages func(from uint64, msgs []raft.Message)
	keepNothing    bool // benchmarks: count batches, keep no messages
	// snapshotHook, when set (before any snapshot is sent), reads a snapshot in place of
	// io.ReadAll; it is told the snapshot's meta, so that a handler that starts late still
	// gets its own snapshot's behaviour.
	snapshotHook func(from uint64, meta raft.SnapshotMeta, r io.Reader) ([]byte, error)
}

func newRecorder() *recorder { return &recorder{unreachable: map[uint64]int{}} }

func (r *recorder) HandleMessages(from uint64, msgs []raft.Message) {
	if r.beforeMessages != nil {
		r.beforeMessages(from, msgs)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keepNothing {
		return
	}
	r.batchSizes = append(r.batchSizes, len(msgs))
	r.msgs = append(r.msgs, msgs...)
}

func (r *recorder) HandleSnapshot(from, term uint64, meta raft.SnapshotMeta, size int64, body io.Reader) error {
	var data []byte
	var err error
	if r.snapshotHook != nil {
		data, err = r.snapshotHook(from, meta, body)
	} else {
		data, err = io.ReadAll(body)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps = append(r.snaps, receivedSnapshot{from, term, meta, size, data})
	return nil
}

func (r *recorder) ReportUnreachable(peer uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[peer]++
}

func (r *recorder) ReportSnapshot(peer uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapReports = append(r.snapReports, snapshotReport{peer, ok})
}

func (r *recorder) messageCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) batchCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batchSizes)
}

// batches returns the messages as they were grouped in SendRequests.
func (r *recorder) batches() [][]raft.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]raft.Message
	rest := r.msgs
	for _, n := range r.batchSizes {
		out = append(out, rest[:n:n])
		rest = rest[n:]
	}
	return out
}

func (r *recorder) unreachableCount(peer uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[peer]
}

func (r *recorder) snapshotReports() []snapshotReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]snapshotReport(nil), r.snapReports...)
}

func (r *recorder) messages() []raft.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raft.Message(nil), r.msgs...)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testNode is one transport with its own gRPC server on loopback.
type testNode struct {
	t    testing.TB
	id   uint64
	addr string
	srv  *grpc.Server
	tr   *Transport
	rec  *recorder
	logs *syncBuffer
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// startNodes starts a transport and server per id, each knowing all the others at their
// listeners' addresses; tweak may change a node's Config (its Peers included) before New.
func startNodes(t testing.TB, ids []uint64, tweak func(id uint64, cfg *Config)) map[uint64]*testNode {
	t.Helper()
	listeners := map[uint64]net.Listener{}
	peers := map[uint64]string{}
	for _, id := range ids {
		lis := listenLoopback(t)
		listeners[id] = lis
		peers[id] = lis.Addr().String()
	}
	nodes := map[uint64]*testNode{}
	for _, id := range ids {
		n := &testNode{t: t, id: id, addr: peers[id], rec: newRecorder(), logs: &syncBuffer{}}
		cfg := Config{
			ClusterID:    "test-cluster",
			SelfID:       id,
			Peers:        make(map[uint64]string, len(peers)),
			Logger:       slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			PingInterval: -1,
		}
		for pid, addr := range peers {
			cfg.Peers[pid] = addr
		}
		if tweak != nil {
			tweak(id, &cfg)
		}
		tr, err := New(cfg, n.rec)
		if err != nil {
			t.Fatalf("New for node %d: %v", id, err)
		}
		n.tr = tr
		n.serve(listeners[id])
		nodes[id] = n
		t.Cleanup(n.stop)
	}
	return nodes
}

func (n *testNode) serve(lis net.Listener) {
	n.srv = grpc.NewServer(n.tr.ServerOptions()...)
	n.tr.Register(n.srv)
	srv := n.srv
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.t.Errorf("node %d serve: %v", n.id, err)
		}
	}()
}

// restartServer stops the gRPC server, as a crash would, and serves again on the same address.
func (n *testNode) stopServer() { n.srv.Stop() }

func (n *testNode) startServerAgain() {
	n.t.Helper()
	var lis net.Listener
	waitFor(n.t, "the old port to be free", func() bool {
		var err error
		lis, err = net.Listen("tcp", n.addr)
		return err == nil
	})
	n.serve(lis)
}

func (n *testNode) stop() {
	n.srv.Stop()
	if err := n.tr.Close(); err != nil {
		n.t.Errorf("close node %d: %v", n.id, err)
	}
}

func heartbeat(from, to, commit uint64) raft.Message {
	return raft.Message{Type: raft.MsgHeartbeat, From: from, To: to, Term: 1, Commit: commit, SentAt: time.Duration(commit), Round: commit}
}

func appendMsg(from, to, index uint64, data []byte) raft.Message {
	return raft.Message{
		Type: raft.MsgApp, From: from, To: to, Term: 1, Index: index - 1, LogTerm: 1, Commit: index - 1,
		Entries: []raft.Entry{{Index: index, Term: 1, Type: raft.EntryNormal, Data: data}},
		SentAt:  time.Duration(index), Round: index, LeaseDuration: time.Second,
	}
}
