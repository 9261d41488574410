package connlimit

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeAddrListener hands out in-memory connections whose remote address the test chooses,
// so the per-host cap can be exercised with several "hosts" on one machine.
type fakeAddrListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newFakeAddrListener() *fakeAddrListener {
	return &fakeAddrListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (f *fakeAddrListener) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeAddrListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeAddrListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// dial queues a connection from host and returns the client's end.
func (f *fakeAddrListener) dial(t *testing.T, host string) net.Conn {
	t.Helper()
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	select {
	case f.conns <- remoteConn{Conn: server, remote: &net.TCPAddr{IP: net.ParseIP(host), Port: 40000}}:
	case <-time.After(5 * time.Second):
		t.Fatal("the listener did not take the connection")
	}
	return client
}

// closedByServer reports whether the server end of c was closed, waiting up to a deadline.
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

type refusal struct {
	reason Reason
	host   string
}

func TestCapsTotalAndPerHostAndFreesSlotsOnClose(t *testing.T) {
	fake := newFakeAddrListener()
	var mu sync.Mutex
	var refusals []refusal
	lis := Wrap(fake, Limits{Total: 3, PerHost: 2}, func(r Reason, a net.Addr) {
		mu.Lock()
		refusals = append(refusals, refusal{r, a.(*net.TCPAddr).IP.String()})
		mu.Unlock()
	})
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	next := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}

	fake.dial(t, "10.0.0.1")
	a1srv := next()
	fake.dial(t, "10.0.0.1")
	next()
	// A third from the same host is over the per-host cap; Accept closes it and goes on.
	over := fake.dial(t, "10.0.0.1")
	if !closedByServer(over) {
		t.Fatal("a third connection from one host was not closed by the per-host cap of 2")
	}
	fake.dial(t, "10.0.0.2")
	next()
	// Now 3 are open: a new host is over the total cap.
	overTotal := fake.dial(t, "10.0.0.3")
	if !closedByServer(overTotal) {
		t.Fatal("a fourth connection was not closed by the total cap of 3")
	}
	if total, host := lis.Open("10.0.0.1"); total != 3 || host != 2 {
		t.Fatalf("open connections: total %d, from 10.0.0.1 %d; want 3 and 2", total, host)
	}

	// Closing one (twice, as TLS and gRPC may) frees exactly one slot.
	a1srv.Close()
	a1srv.Close()
	if total, host := lis.Open("10.0.0.1"); total != 2 || host != 1 {
		t.Fatalf("after one close: total %d, from 10.0.0.1 %d; want 2 and 1", total, host)
	}
	fake.dial(t, "10.0.0.3")
	next()

	mu.Lock()
	got := append([]refusal(nil), refusals...)
	mu.Unlock()
	want := []refusal{{ReasonPerHost, "10.0.0.1"}, {ReasonTotal, "10.0.0.3"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("refusals %v, want %v", got, want)
	}
	fake.Close()
	if _, ok := <-accepted; ok {
		t.Fatal("Accept returned a connection after the listener closed")
	}
}

// Over real TCP, a client over the cap sees its connection closed promptly rather than
// hanging in the backlog.
func TestRefusedTCPClientSeesPromptClose(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := Wrap(raw, Limits{Total: 1, PerHost: 1}, nil)
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			// Hold the connection open, as a server would.
			go io.Copy(io.Discard, c)
		}
	}()
	first, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if total, _ := lis.Open("127.0.0.1"); total == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first connection was never accepted")
		}
		time.Sleep(time.Millisecond)
	}
	second, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a connection over the cap was not closed by the server: read returned %v", err)
	}
	// The first is still served.
	first.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := first.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("the connection within the cap was disturbed: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestWrapRejectsNonPositiveLimits(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Wrap accepted a zero cap")
		}
	}()
	Wrap(newFakeAddrListener(), Limits{Total: 0, PerHost: 1}, nil)
}
