package clusterkit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/georaft/georaft/node/config"
)

// Ports places a cluster's listeners and links. A port plan (LocalPorts, GeoPorts) gives
// the fixed, documented ports of the lab's committed configs; FreePorts gives free ones for
// tests and harnesses that run beside each other.
type Ports interface {
	// Listen is where node id listens for peers, clients and metrics.
	Listen(id uint64) (config.ListenConfig, error)
	// PeerLink is the proxy through which node from dials node to.
	PeerLink(from, to uint64) (string, error)
	// ClientLink is the proxy through which a client in the region at position region
	// (1-based, in the order of the cluster's client regions) reaches node id.
	ClientLink(region int, id uint64) (string, error)
}

// FreePorts hands out loopback ports that were free when asked for, each once per process,
// and the same one every time for the same listener or link. The ports come from below the
// kernel's ephemeral range: a port from ":0" is also what the kernel gives outgoing
// connections, and a node killed and restarted must find its port still free.
type FreePorts struct {
	mu     sync.Mutex
	byName map[string]string
}

func (p *FreePorts) addr(name string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.byName[name]; ok {
		return a, nil
	}
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	if p.byName == nil {
		p.byName = map[string]string{}
	}
	p.byName[name] = addrs[0]
	return addrs[0], nil
}

func (p *FreePorts) Listen(id uint64) (config.ListenConfig, error) {
	var l config.ListenConfig
	var errs [3]error
	l.Peer, errs[0] = p.addr(fmt.Sprintf("node %d peer", id))
	l.Client, errs[1] = p.addr(fmt.Sprintf("node %d client", id))
	l.Metrics, errs[2] = p.addr(fmt.Sprintf("node %d metrics", id))
	return l, errors.Join(errs[:]...)
}

func (p *FreePorts) PeerLink(from, to uint64) (string, error) {
	return p.addr(fmt.Sprintf("link %d->%d", from, to))
}

func (p *FreePorts) ClientLink(region int, id uint64) (string, error) {
	return p.addr(fmt.Sprintf("client link %d->%d", region, id))
}

var (
	givenMu sync.Mutex
	given   = map[string]bool{}
	portRng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
)

// FreeAddrs returns n distinct loopback addresses below the ephemeral port range that were
// free a moment ago, that this process never handed out before, and that no other process
// using FreeAddrs holds a claim on (claimPort). They are held open
// together while chosen, so they differ from each other.
func FreeAddrs(n int) ([]string, error) {
	givenMu.Lock()
	defer givenMu.Unlock()
	low := ephemeralLow()
	span := min(12000, low-1024)
	var out []string
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n+100 {
			return nil, fmt.Errorf("reserve %d loopback ports below %d: only %d free after %d tries", n, low, len(out), tries)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(low-1-portRng.IntN(span)))
		if given[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		listeners = append(listeners, l)
		given[addr] = true
		if !claimPort(addr[strings.LastIndexByte(addr, ':')+1:]) {
			continue // another process handed it out and may not have bound it yet
		}
		out = append(out, addr)
	}
	return out, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if unknown).
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(raw))
	if len(fields) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 2048 {
		return 32768
	}
	return low
}

// LocalPorts is the port plan of the local cluster: node N listens for peers on Base+100+N,
// for clients on Base+200+N and for metrics on Base+300+N. The default base 7000 gives
// 7101–7105, 7201–7205 and 7301–7305. Nodes dial each other directly: it has no links.
type LocalPorts struct {
	Host string
	Base int
}

// DefaultLocalPorts is the plan behind configs/local.
var DefaultLocalPorts = LocalPorts{Host: "127.0.0.1", Base: 7000}

func (p LocalPorts) Listen(id uint64) (config.ListenConfig, error) {
	if id < 1 || id > 99 || p.Base < 1024 || p.Base+399 > 65535 {
		return config.ListenConfig{}, fmt.Errorf("local port plan (base %d) numbers nodes 1..99 with ports up to 65535, not node %d", p.Base, id)
	}
	n := int(id)
	return config.ListenConfig{Peer: joinHostPort(p.Host, p.Base+100+n), Client: joinHostPort(p.Host, p.Base+200+n),
		Metrics: joinHostPort(p.Host, p.Base+300+n)}, nil
}

func (p LocalPorts) PeerLink(from, to uint64) (string, error) {
	return "", errors.New("the local port plan has no links: its nodes dial each other directly")
}

func (p LocalPorts) ClientLink(region int, id uint64) (string, error) {
	return "", errors.New("the local port plan has no client links")
}

// GeoPorts is the port plan of the emulated multi-region cluster. Every port reads as digits
// of Base+ijk (base 2000 shown):
//
//	2ij0  proxy of the peer link node i → node j (i ≠ j); node i dials node j here
//	2rj1  proxy of the client link region r → node j (r is the region's position, 1-based)
//	280n  node n's own peer listener (upstream of every link into n)
//	281n  node n's own client listener (upstream of every client link to n)
//	282n  node n's metrics listener (not proxied)
//
// Node ids and region positions must lie in 1..7 so the digits never collide.
type GeoPorts struct {
	Host string
	Base int
}

// DefaultGeoPorts is the plan behind configs/geo.
var DefaultGeoPorts = GeoPorts{Host: "127.0.0.1", Base: 2000}

// MaxGeoNodes is the largest node id (and region position) the geo port plan can number.
const MaxGeoNodes = 7

func (p GeoPorts) check(ids ...int) error {
	for _, id := range ids {
		if id < 1 || id > MaxGeoNodes {
			return fmt.Errorf("geo port plan numbers nodes and regions 1..%d, not %d", MaxGeoNodes, id)
		}
	}
	if p.Base < 1024 || p.Base+830 > 65535 {
		return fmt.Errorf("geo port base %d puts ports outside 1024..65535", p.Base)
	}
	return nil
}

func (p GeoPorts) Listen(id uint64) (config.ListenConfig, error) {
	n := int(id)
	if err := p.check(n); err != nil {
		return config.ListenConfig{}, err
	}
	return config.ListenConfig{Peer: joinHostPort(p.Host, p.Base+800+n), Client: joinHostPort(p.Host, p.Base+810+n),
		Metrics: joinHostPort(p.Host, p.Base+820+n)}, nil
}

func (p GeoPorts) PeerLink(from, to uint64) (string, error) {
	if err := p.check(int(from), int(to)); err != nil {
		return "", err
	}
	return joinHostPort(p.Host, p.Base+100*int(from)+10*int(to)), nil
}

func (p GeoPorts) ClientLink(region int, id uint64) (string, error) {
	if err := p.check(region, int(id)); err != nil {
		return "", err
	}
	return joinHostPort(p.Host, p.Base+100*region+10*int(id)+1), nil
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// NamedAddress is an address to bind and what binds it, for error messages.
type NamedAddress struct {
	What    string
	Address string
}

// ErrPortTaken is what CheckPortsFree's errors match.
var ErrPortTaken = errors.New("port taken")

// CheckPortsFree binds and releases every address in turn and reports each one already
// taken, naming what should have bound it.
func CheckPortsFree(addrs []NamedAddress) error {
	var errs []error
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("port %s for %s is not free (%w): %w", a.Address, a.What, ErrPortTaken, err))
			continue
		}
		ln.Close()
	}
	return errors.Join(errs...)
}
