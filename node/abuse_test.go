package node_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Slow or abusive clients cannot stall the leader: oversized requests, connections that hog
// their streams or never read, requests without a deadline and bytes that are not HTTP/2
// cost the abuser, not the other clients.

const (
	abuseMaxValue   = 32 << 10
	abuseMaxRequest = 64 << 10
	abuseMaxStreams = 8
)

func newAbuseCluster(t *testing.T) (*testCluster, []string) {
	t.Helper()
	tune, metrics := withMetricsListeners(t, 3, func(cfg *config.Config) {
		cfg.Limits.MaxKeyBytes = 1024
		cfg.Limits.MaxValueBytes = abuseMaxValue
		cfg.Limits.MaxRequestBytes = abuseMaxRequest
		cfg.Limits.MaxConcurrentStreams = abuseMaxStreams
	})
	return newTestClusterWith(t, 3, tune, nil), metrics
}

// dialFrom opens a TCP connection to addr from the loopback address localIP (all of 127/8 is
// on the loopback interface), so one test can play several client hosts.
func dialFrom(t *testing.T, localIP, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// heldByServer sends the HTTP/2 client preface on conn and reports whether the server kept
// the connection: it answers with its SETTINGS. A connection over a cap is closed before a
// byte is read, so the write or the read fails.
func heldByServer(conn net.Conn) bool {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		return false
	}
	fr := http2.NewFramer(io.Discard, conn)
	if err := fr.WriteSettings(); err != nil {
		return false
	}
	f, err := http2.NewFramer(io.Discard, conn).ReadFrame()
	if err != nil {
		return false
	}
	_, ok := f.(*http2.SettingsFrame)
	return ok
}

// politeWriter is a well-behaved client on its own connection that keeps writing, each
// write with its own deadline, while a test abuses the node. Every write must succeed.
type politeWriter struct {
	t      *testing.T
	kv     georaftv1.KVServiceClient
	stop   chan struct{}
	done   chan struct{}
	ok     atomic.Int64
	mu     sync.Mutex
	failed []string
}

func startPoliteWriter(t *testing.T, addr string) *politeWriter {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	w := &politeWriter{t: t, kv: georaftv1.NewKVServiceClient(conn), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close()
		for k := 0; ; k++ {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := w.kv.Set(ctx, &georaftv1.SetRequest{Key: []byte(fmt.Sprintf("polite-%d", k)), Value: []byte("v")})
			cancel()
			if err != nil {
				w.mu.Lock()
				w.failed = append(w.failed, shortErr(err))
				w.mu.Unlock()
				// Back off as a real client would: failing at once in a tight loop
				// would starve the nodes that share this process.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			w.ok.Add(1)
		}
	}()
	return w
}

// waitWrites waits until the writer has made n more successful writes than when called:
// the node served it while whatever the test set up was going on.
func (w *politeWriter) waitWrites(n int64, timeout time.Duration) {
	w.t.Helper()
	target := w.ok.Load() + n
	deadline := time.Now().Add(timeout)
	for w.ok.Load() < target {
		if time.Now().After(deadline) {
			w.t.Fatalf("the polite client made only %d of %d writes within %v; failures: %v", w.ok.Load(), target, timeout, w.failures())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *politeWriter) failures() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.failed...)
}

// finish stops the writer and fails the test if any of its writes failed.
func (w *politeWriter) finish() {
	w.t.Helper()
	close(w.stop)
	<-w.done
	if f := w.failures(); len(f) > 0 {
		w.t.Fatalf("%d of the polite client's writes failed while the node was abused (%d succeeded): %v", len(f), w.ok.Load(), f)
	}
}

// A request over limits.max_request_bytes is refused with RESOURCE_EXHAUSTED before the
// service sees it (by gRPC undecoded when it is over by more than the slack); the abuser's
// connection stays usable and others are not slowed.
func TestOversizedRequestRefusedWithoutHurtingOthers(t *testing.T) {
	c, metrics := newAbuseCluster(t)
	leader := c.waitLeader(10 * time.Second)
	polite := startPoliteWriter(t, c.cfgs[leader].Listen.Client)
	polite.waitWrites(5, 10*time.Second)

	kvc := c.clients[leader]
	for _, size := range []int{abuseMaxRequest + 1, 4 * abuseMaxRequest, 8 << 20} {
		err := call(func(ctx context.Context) error {
			_, err := kvc.Set(ctx, &georaftv1.SetRequest{Key: []byte("big"), Value: make([]byte, size)})
			return err
		})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a %d byte Set: got %v, want RESOURCE_EXHAUSTED", size, err)
		}
		err = call(func(ctx context.Context) error {
			_, err := kvc.Get(ctx, &georaftv1.GetRequest{Key: make([]byte, size)})
			return err
		})
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("a Get with a %d byte key: got %v, want RESOURCE_EXHAUSTED", size, err)
		}
	}
	polite.waitWrites(5, 10*time.Second)
	polite.finish()

	// The same connection still works for a request within the limits.
	if _, err := c.set(leader, "after-oversized", strings.Repeat("v", abuseMaxValue)); err != nil {
		t.Fatalf("a maximal valid Set on the abuser's connection: %v", err)
	}
	c.checkStillHealthy(metrics)
}

// rawH2 is a hand-driven HTTP/2 connection, for clients no gRPC library would be: it opens
// streams it never finishes and never reads what the server sends.
type rawH2 struct {
	t      *testing.T
	conn   net.Conn
	fr     *http2.Framer
	hbuf   bytes.Buffer
	enc    *hpack.Encoder
	nextID uint32
}

func dialRawH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &rawH2{t: t, conn: conn, fr: http2.NewFramer(conn, conn), nextID: 1}
	h.enc = hpack.NewEncoder(&h.hbuf)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// open starts a gRPC call to method. body nil sends the headers only, leaving the request
// unfinished; otherwise body is sent as the one request message and the stream half-closed.
func (h *rawH2) open(method string, body proto.Message) uint32 {
	h.t.Helper()
	id := h.nextID
	h.nextID += 2
	h.hbuf.Reset()
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", "georaft"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hbuf.Bytes(), EndHeaders: true}); err != nil {
		h.t.Fatalf("open stream %d: %v", id, err)
	}
	if body != nil {
		msg, err := proto.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		frame := make([]byte, 5+len(msg)) // gRPC framing: no compression, big-endian length
		binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
		copy(frame[5:], msg)
		if err := h.fr.WriteData(id, true, frame); err != nil {
			h.t.Fatalf("send on stream %d: %v", id, err)
		}
	}
	return id
}

// countRefusals reads frames until the connection ends and counts RST_STREAM REFUSED_STREAM.
func (h *rawH2) countRefusals(refused *atomic.Int64) {
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.ErrCode == http2.ErrCodeRefusedStream {
			refused.Add(1)
		}
	}
}

// A connection that holds more streams than limits.max_concurrent_streams, every one an
// unfinished request, and another that asks for large values and never reads a byte of the
// answers, do not stop a polite client's writes and reads on its own connection.
func TestStreamHoggingClientsDoNotStallOthers(t *testing.T) {
	c, metrics := newAbuseCluster(t)
	leader := c.waitLeader(10 * time.Second)
	addr := c.cfgs[leader].Listen.Client
	big := strings.Repeat("B", abuseMaxValue)
	if _, err := c.set(leader, "big", big); err != nil {
		t.Fatal(err)
	}
	polite := startPoliteWriter(t, addr)
	polite.waitWrites(5, 10*time.Second)

	// Unfinished requests: the server waits for their bodies, holding a stream each. Those
	// beyond the limit are refused.
	hog := dialRawH2(t, addr)
	var refused atomic.Int64
	go hog.countRefusals(&refused)
	const hogStreams = 5 * abuseMaxStreams
	for k := 0; k < hogStreams; k++ {
		hog.open("/georaft.v1.KVService/Get", nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for refused.Load() < hogStreams-abuseMaxStreams {
		if time.Now().After(deadline) {
			t.Fatalf("the server refused %d of %d streams over a limit of %d", refused.Load(), hogStreams, abuseMaxStreams)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A reader that never reads: complete requests for the large value, whose answers fill
	// the flow-control window and then the socket.
	deaf := dialRawH2(t, addr)
	for k := 0; k < 3*abuseMaxStreams; k++ {
		deaf.open("/georaft.v1.KVService/Get", &georaftv1.GetRequest{Key: []byte("big"), ReadMode: georaftv1.ReadMode_READ_MODE_LEASE})
	}

	polite.waitWrites(20, 15*time.Second)
	for _, mode := range allModes {
		got, err := c.get(leader, "big", mode)
		if err != nil || string(got.Value) != big {
			t.Fatalf("a polite %v read of the large value while abused: found=%v err=%v", mode, got.GetFound(), err)
		}
	}
	polite.finish()
	c.checkStillHealthy(metrics)
}

// A request whose client set no deadline is bounded by the server (limits.request_timeout,
// 10s by default): with the quorum gone it fails instead of pinning a goroutine forever.
func TestRequestWithoutDeadlineIsBoundedByTheServer(t *testing.T) {
	t.Parallel() // mostly waiting (on the server's bound, on the go tool): overlap it with the other slow test
	c, _ := newAbuseCluster(t)
	leader := c.waitLeader(10 * time.Second)
	for _, i := range others(3, leader) {
		c.kill(i)
	}
	result := make(chan error, 1)
	go func() {
		_, err := c.clients[leader].Set(context.Background(), &georaftv1.SetRequest{Key: []byte("no-deadline"), Value: []byte("v")})
		result <- err
	}()
	// Three times the server's bound (10s): a generous margin on a loaded machine, and still
	// far from "forever".
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("a write without a quorum succeeded")
		}
		// The client set no deadline, so DEADLINE_EXCEEDED can only be the server's bound.
		if code := status.Code(err); code != codes.DeadlineExceeded {
			t.Logf("the unbounded write ended with %v rather than the server's deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write without a deadline is still pending after 30s: the server does not bound it")
	}
}

// Bytes that are not HTTP/2 (or HTTP/2 that breaks the protocol) get the connection closed,
// on the client and on the peer port, and the node keeps serving.
func TestGarbageConnectionsAreDisconnected(t *testing.T) {
	c, metrics := newAbuseCluster(t)
	leader := c.waitLeader(10 * time.Second)
	var invalidFrame bytes.Buffer
	invalidFrame.WriteString(http2.ClientPreface)
	// A DATA frame on stream 0, which HTTP/2 forbids, before any SETTINGS.
	invalidFrame.Write([]byte{0, 0, 4, 0x0, 0, 0, 0, 0, 0, 'j', 'u', 'n', 'k'})

	inputs := map[string][]byte{
		"an HTTP/1.1 request":       []byte("GET /metrics HTTP/1.1\r\nHost: georaft\r\n\r\n"),
		"random bytes":              bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0xff}, 200),
		"a TLS hello to plaintext":  append([]byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}, make([]byte, 64)...),
		"a preface then bad frames": invalidFrame.Bytes(),
	}
	for _, port := range []struct{ name, addr string }{
		{"client", c.cfgs[leader].Listen.Client},
		{"peer", c.cfgs[leader].Listen.Peer},
	} {
		for name, data := range inputs {
			checkDisconnected(t, fmt.Sprintf("%s on the %s port", name, port.name), port.addr, data)
		}
	}
	c.checkStillHealthy(metrics)
	if code, _, err := httpStatus(t, metrics[leader], "/readyz"); err != nil || code != http.StatusOK {
		t.Fatalf("the leader's /readyz after garbage connections: %d (err %v)", code, err)
	}
}

// checkDisconnected sends data and expects the server to close the connection (EOF or a
// reset), not to keep it open waiting for more.
func checkDisconnected(t *testing.T, what, addr string, data []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(data); err != nil {
		t.Fatalf("%s: write: %v", what, err)
	}
	// Generous: the server closes at once; only a server that keeps the connection waits
	// this long, and then the test fails.
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the server kept the connection open", what)
	}
}

// Connections beyond limits.max_client_connections_per_host from one host, and beyond
// limits.max_client_connections in all, are closed as soon as they are accepted and counted
// on /metrics; clients already connected are not disturbed, and a closed connection gives its
// slot back.
func TestClientConnectionCaps(t *testing.T) {
	const total, perHost = 8, 3
	tune, metrics := withMetricsListeners(t, 3, func(cfg *config.Config) {
		cfg.Limits.MaxClientConnections = total
		cfg.Limits.MaxClientConnectionsPerHost = perHost
	})
	c := newTestClusterWith(t, 3, tune, nil)
	leader := c.waitLeader(10 * time.Second)
	addr := c.cfgs[leader].Listen.Client
	// From 127.0.0.1: the test cluster's own client connection, and the polite writer's.
	polite := startPoliteWriter(t, addr)
	polite.waitWrites(3, 10*time.Second)

	held := func(from string, tries int) (kept []net.Conn, refused int) {
		for k := 0; k < tries; k++ {
			conn := dialFrom(t, from, addr)
			if heldByServer(conn) {
				kept = append(kept, conn)
			} else {
				refused++
			}
		}
		return kept, refused
	}
	// One host opening connections in a loop keeps perHost of them.
	hostA, refusedA := held("127.0.0.2", perHost+4)
	if len(hostA) != perHost || refusedA != 4 {
		t.Fatalf("one host kept %d connections and had %d closed; want %d kept under a per-host cap of %d", len(hostA), refusedA, perHost, perHost)
	}
	// More hosts, each within its share, fill the node to its total cap; from then on every
	// new connection is refused, whichever host it comes from.
	refusedTotal := 0
	for host := 3; refusedTotal == 0; host++ {
		if host > 3+total {
			t.Fatalf("opened %d hosts' shares without reaching the total cap of %d", host-3, total)
		}
		_, refused := held(fmt.Sprintf("127.0.0.%d", host), perHost)
		refusedTotal += refused
	}
	if _, refused := held("127.0.0.100", 1); refused != 1 {
		t.Fatal("a new host got a connection with the node at its total cap")
	}
	refusedTotal++
	polite.waitWrites(5, 10*time.Second)

	body := waitHTTPStatus(t, metrics[leader], "/metrics", http.StatusOK, 5*time.Second)
	for capName, want := range map[string]int{"per_host": 4, "total": refusedTotal} {
		line := fmt.Sprintf(`georaft_connections_refused_total{cap="%s",listener="client",node="%d"} %d`, capName, leader+1, want)
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q:\n%s", line, grepLines(body, "connections_refused"))
		}
	}

	// Closing connections gives their slots back: a new client from 127.0.0.1 gets in
	// and writes. Its first attempts may still be refused until the server has seen the
	// closes.
	for _, conn := range hostA {
		conn.Close()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	late := georaftv1.NewKVServiceClient(conn)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := late.Set(ctx, &georaftv1.SetRequest{Key: []byte("late"), Value: []byte("in")})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client could connect and write after a host closed its connections: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	polite.finish()
}

// A request whose headers arrive and whose body never does is ended by the server at
// limits.request_timeout, giving its stream back, rather than held while the connection
// lives (gRPC reads the body before the handler, and so before any deadline the handler
// could set).
func TestRequestWithoutBodyIsEndedAtTheRequestTimeout(t *testing.T) {
	const bound = time.Second
	tune, _ := withMetricsListeners(t, 3, func(cfg *config.Config) {
		cfg.Limits.MaxConcurrentStreams = 2
		cfg.Limits.RequestTimeout = bound
	})
	c := newTestClusterWith(t, 3, tune, nil)
	leader := c.waitLeader(10 * time.Second)
	hog := dialRawH2(t, c.cfgs[leader].Listen.Client)
	ended := make(chan uint32, 8)
	go func() {
		for {
			f, err := hog.fr.ReadFrame()
			if err != nil {
				close(ended)
				return
			}
			switch f := f.(type) {
			case *http2.HeadersFrame:
				if f.StreamEnded() {
					ended <- f.StreamID
				}
			case *http2.RSTStreamFrame:
				ended <- f.StreamID
			}
		}
	}()
	start := time.Now()
	first := hog.open("/georaft.v1.KVService/Set", nil)
	second := hog.open("/georaft.v1.KVService/Get", nil)
	got := map[uint32]bool{}
	for len(got) < 2 {
		select {
		case id, ok := <-ended:
			if !ok {
				t.Fatal("the server closed the connection instead of ending the streams")
			}
			got[id] = true // trailers then a reset may both end one stream
		case <-time.After(20 * bound):
			t.Fatalf("after %v, streams %d and %d without a body are still open (ended: %v)", 20*bound, first, second, got)
		}
	}
	if elapsed := time.Since(start); elapsed < bound {
		t.Fatalf("the streams ended after %v, before the %v bound: something else ended them", elapsed, bound)
	}
	// The slots are free: a full request on the same connection is answered.
	third := hog.open("/georaft.v1.KVService/Status", &georaftv1.StatusRequest{})
	for answered := false; !answered; {
		select {
		case id := <-ended:
			// A stream can end twice: trailers, then a reset because the client never
			// half-closed it.
			answered = id == third
		case <-time.After(10 * time.Second):
			t.Fatal("a complete request after the bodiless ones were ended got no answer")
		}
	}
}

// The peer port caps its connections at 16 per cluster member (with room for
// membersAddedHeadroom members added at run time), so a stranger past the
// firewall (with TLS off) cannot exhaust the node's descriptors; the members' own
// connections, opened first, keep replicating.
func TestPeerPortConnectionCap(t *testing.T) {
	tune, metrics := withMetricsListeners(t, 3, nil)
	c := newTestClusterWith(t, 3, tune, nil)
	leader := c.waitLeader(10 * time.Second)
	polite := startPoliteWriter(t, c.cfgs[leader].Listen.Client)
	polite.waitWrites(3, 10*time.Second)
	// The members' own connections come first: each follower has passed its own addresses to
	// the leader (over a connection of its own to the leader's peer port).
	c.waitMembership(leader, "every member published its addresses", 10*time.Second, func(r *georaftv1.ListMembersResponse) bool {
		return len(r.GetPublished()) == 3
	})

	budget := node.PeerConnectionBudget(3)
	kept, refused := 0, 0
	for k := 0; k < budget+10 && refused < 5; k++ {
		if heldByServer(dialFrom(t, "127.0.0.2", c.cfgs[leader].Listen.Peer)) {
			kept++
		} else {
			refused++
		}
	}
	if refused == 0 || kept > budget {
		t.Fatalf("the peer port kept %d connections from one stranger and refused %d; want at most %d kept, the rest refused", kept, refused, budget)
	}
	polite.waitWrites(5, 10*time.Second)
	body := waitHTTPStatus(t, metrics[leader], "/metrics", http.StatusOK, 5*time.Second)
	line := fmt.Sprintf(`georaft_connections_refused_total{cap="total",listener="peer",node="%d"} %d`, leader+1, refused)
	if !strings.Contains(body, line) {
		t.Errorf("/metrics lacks %q:\n%s", line, grepLines(body, "connections_refused"))
	}
	polite.finish()
}

func grepLines(body, sub string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
