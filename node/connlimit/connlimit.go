// Package connlimit caps the connections a listener keeps open, in total and per remote
// host, so that one client opening connections in a loop cannot exhaust the node's file
// descriptors and memory at the expense of every other client.
//
// A connection over a cap is accepted and closed at once rather than left in the kernel's
// backlog: the client sees a prompt reset instead of a hang, and Accept keeps serving the
// clients within their share.
package connlimit

import (
	"net"
	"sync"
)

// Reason says which cap refused a connection.
type Reason string

const (
	ReasonTotal   Reason = "total"
	ReasonPerHost Reason = "per_host"
)

// Limits are the caps. Both must be positive.
type Limits struct {
	Total   int
	PerHost int
}

// Listener wraps a net.Listener with the caps.
type Listener struct {
	net.Listener
	limits Limits
	// onRefuse is called, outside the lock, for every connection closed over a cap.
	onRefuse func(reason Reason, remote net.Addr)

	mu      sync.Mutex
	total   int
	perHost map[string]int
}

// Wrap caps lis. onRefuse may be nil.
func Wrap(lis net.Listener, limits Limits, onRefuse func(Reason, net.Addr)) *Listener {
	if limits.Total <= 0 || limits.PerHost <= 0 {
		panic("connlimit: limits must be positive")
	}
	return &Listener{Listener: lis, limits: limits, onRefuse: onRefuse, perHost: make(map[string]int)}
}

// Accept returns the next connection within the caps, closing any over them on the way.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := hostOf(conn.RemoteAddr())
		if reason, ok := l.admit(host); !ok {
			conn.Close()
			if l.onRefuse != nil {
				l.onRefuse(reason, conn.RemoteAddr())
			}
			continue
		}
		return &trackedConn{Conn: conn, l: l, host: host}, nil
	}
}

// Open reports the connections currently held, in total and from host.
func (l *Listener) Open(host string) (total, fromHost int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perHost[host]
}

func (l *Listener) admit(host string) (Reason, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.limits.Total {
		return ReasonTotal, false
	}
	if l.perHost[host] >= l.limits.PerHost {
		return ReasonPerHost, false
	}
	l.total++
	l.perHost[host]++
	return "", true
}

func (l *Listener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perHost[host]--; l.perHost[host] == 0 {
		delete(l.perHost, host)
	}
}

// hostOf is the remote IP without the port; the whole address when it has no port.
func hostOf(addr net.Addr) string {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	s := addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// trackedConn gives its slot back on the first Close; gRPC and TLS may both close it.
type trackedConn struct {
	net.Conn
	l    *Listener
	host string
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.host) })
	return err
}
