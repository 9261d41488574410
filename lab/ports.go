package lab

import (
	"fmt"
	"net"
	"strconv"
)

// LocalPorts is the port plan of the local cluster: node N listens for peers on Base+100+N,
// for clients on Base+200+N and for metrics on Base+300+N. The default base 7000 gives
// 7101–7105, 7201–7205 and 7301–7305.
type LocalPorts struct {
	Host string
	Base int
}

// DefaultLocalPorts is the plan behind configs/local.
var DefaultLocalPorts = LocalPorts{Host: "127.0.0.1", Base: 7000}

func (p LocalPorts) Peer(node int) string    { return joinHostPort(p.Host, p.Base+100+node) }
func (p LocalPorts) Client(node int) string  { return joinHostPort(p.Host, p.Base+200+node) }
func (p LocalPorts) Metrics(node int) string { return joinHostPort(p.Host, p.Base+300+node) }

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

func (p GeoPorts) PeerLink(from, to int) string {
	return joinHostPort(p.Host, p.Base+100*from+10*to)
}

func (p GeoPorts) ClientLink(region, node int) string {
	return joinHostPort(p.Host, p.Base+100*region+10*node+1)
}

func (p GeoPorts) NodePeer(node int) string    { return joinHostPort(p.Host, p.Base+800+node) }
func (p GeoPorts) NodeClient(node int) string  { return joinHostPort(p.Host, p.Base+810+node) }
func (p GeoPorts) NodeMetrics(node int) string { return joinHostPort(p.Host, p.Base+820+node) }

// Span is the highest port offset the plan uses above Base, for callers that must check a
// whole range is below 65536.
func (p GeoPorts) Span() int { return 830 }

func (p GeoPorts) validate(nodes, regions int) error {
	if nodes < 1 || nodes > MaxGeoNodes {
		return fmt.Errorf("geo port plan numbers 1..%d nodes, got %d", MaxGeoNodes, nodes)
	}
	if regions < 1 || regions > MaxGeoNodes {
		return fmt.Errorf("geo port plan numbers 1..%d client regions, got %d", MaxGeoNodes, regions)
	}
	if p.Base < 1024 || p.Base+p.Span() > 65535 {
		return fmt.Errorf("geo port base %d puts ports outside 1024..65535", p.Base)
	}
	return nil
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
