package console

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// SplitTLS serves TLS and plain connections on one listener: a connection whose first byte
// opens a TLS handshake is wrapped in tls.Server with cfg (net/http then sees a *tls.Conn,
// and sets Request.TLS), any other is passed on as it is. So the metrics listener keeps
// answering Prometheus's plain scrapes of /metrics while the console there is served over
// HTTPS with the node's certificate. A connection that sends nothing for a while is closed
// without holding up the others.
func SplitTLS(lis net.Listener, cfg *tls.Config) net.Listener {
	s := &splitListener{Listener: lis, cfg: cfg, conns: make(chan net.Conn), done: make(chan struct{})}
	go s.acceptLoop()
	return s
}

// firstByteTimeout bounds the wait for a new connection's first byte.
const firstByteTimeout = 10 * time.Second

type splitListener struct {
	net.Listener
	cfg       *tls.Config
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	err       error
}

func (s *splitListener) acceptLoop() {
	for {
		conn, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.Close()
			return
		}
		go s.classify(conn)
	}
}

func (s *splitListener) classify(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(firstByteTimeout))
	br := bufio.NewReaderSize(conn, 1)
	first, err := br.Peek(1)
	conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return
	}
	var c net.Conn = &peekedConn{Conn: conn, r: br}
	// 0x16 is a TLS handshake record; an HTTP request starts with a method's letter.
	if first[0] == 0x16 {
		c = tls.Server(c, s.cfg)
	}
	select {
	case s.conns <- c:
	case <-s.done:
		conn.Close()
	}
}

func (s *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return nil, s.err
		}
		return nil, net.ErrClosed
	}
}

func (s *splitListener) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.Listener.Close()
	})
	return err
}

// peekedConn reads the byte that was peeked before the rest.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
