package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/georaft/georaft/lab"
)

// Toxic names. The base latency of a link stays for the whole run; fault toxics come and go.
const (
	toxicBase      = "base"
	toxicCut       = "cut"
	toxicLatency   = "spike"
	toxicBandwidth = "bandwidth"
)

// streams are toxiproxy's two directions of a proxied connection: upstream carries what the
// dialing side sends, downstream the answers.
var streams = []string{"upstream", "downstream"}

// Net is every link of the cluster as a toxiproxy proxy running in this process, with the
// faults on each link under the harness's control.
type Net struct {
	server *toxiproxy.ApiServer

	mu    sync.Mutex
	peer  map[[2]uint64]*link // by (from, to)
	cli   map[uint64]*link    // client link to node id
	links []*link
}

type link struct {
	lab.Link
	proxy *toxiproxy.Proxy
	// faults are the fault toxics on the link now, by name.
	faults map[string]bool
}

// StartNet starts a proxy per link of plan, each with its base latency toxics in place
// before it accepts a connection. logs receives toxiproxy's warnings (nil discards them).
func StartNet(plan lab.ProxyPlan, logs io.Writer) (*Net, error) {
	if logs == nil {
		logs = io.Discard
	}
	// Some toxics log through zerolog's global logger at trace level; keep them quiet.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	logger := zerolog.New(logs).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	n := &Net{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), logger),
		peer:   map[[2]uint64]*link{},
		cli:    map[uint64]*link{},
	}
	for _, l := range plan.Links {
		lk := &link{Link: l, proxy: toxiproxy.NewProxy(n.server, l.Name, l.Listen, l.Upstream), faults: map[string]bool{}}
		for i, stream := range streams {
			latency := []int64{l.UpstreamMillis, l.DownstreamMillis}[i]
			if latency == 0 && l.JitterMillis == 0 {
				continue
			}
			err := addToxic(lk.proxy, toxicBase+"_"+stream, "latency", stream,
				map[string]int64{"latency": latency, "jitter": l.JitterMillis})
			if err != nil {
				n.Close()
				return nil, fmt.Errorf("link %s: %w", l.Name, err)
			}
		}
		if err := n.server.Collection.Add(lk.proxy, true); err != nil {
			n.Close()
			return nil, fmt.Errorf("link %s: listen on %s: %w", l.Name, l.Listen, err)
		}
		n.links = append(n.links, lk)
		switch l.Kind {
		case "peer":
			n.peer[[2]uint64{l.FromNode, l.ToNode}] = lk
		case "client":
			n.cli[l.ToNode] = lk
		}
	}
	return n, nil
}

func addToxic(p *toxiproxy.Proxy, name, kind, stream string, attrs map[string]int64) error {
	raw, err := json.Marshal(map[string]any{"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		return fmt.Errorf("encode %s toxic %s: %w", kind, name, err)
	}
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(string(raw))); err != nil {
		return fmt.Errorf("add %s toxic %s: %w", kind, name, err)
	}
	return nil
}

// Close stops every proxy and closes its connections.
func (n *Net) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.links {
		l.proxy.Stop()
	}
	n.links = nil
}

// ClientAddress is where a client reaches node id through its link.
func (n *Net) ClientAddress(id uint64) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, ok := n.cli[id]
	if !ok {
		return "", false
	}
	return l.Listen, true
}

func (n *Net) peerLink(from, to uint64) (*link, error) {
	l, ok := n.peer[[2]uint64{from, to}]
	if !ok {
		return nil, fmt.Errorf("no peer link %d->%d", from, to)
	}
	return l, nil
}

// Cut makes link from→to a black hole: node from's messages to node to are dropped (and the
// answers on that connection too), connections stay open and new ones are accepted but carry
// nothing, as when a network silently loses packets. Raft traffic is one-way per link (a
// reply travels on the replier's own link), so cutting from→to alone is a one-way partition.
func (n *Net) Cut(from, to uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.peerLink(from, to)
	if err != nil {
		return err
	}
	return l.addFault(toxicCut, "timeout", map[string]int64{"timeout": 0})
}

// Slow adds latency (and jitter) in both directions of link from→to.
func (n *Net) Slow(from, to uint64, latencyMillis, jitterMillis int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.peerLink(from, to)
	if err != nil {
		return err
	}
	return l.addFault(toxicLatency, "latency", map[string]int64{"latency": latencyMillis, "jitter": jitterMillis})
}

// Throttle limits link from→to to rate KB/s in each direction.
func (n *Net) Throttle(from, to uint64, kbPerSecond int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	l, err := n.peerLink(from, to)
	if err != nil {
		return err
	}
	return l.addFault(toxicBandwidth, "bandwidth", map[string]int64{"rate": kbPerSecond})
}

func (l *link) addFault(name, kind string, attrs map[string]int64) error {
	for _, stream := range streams {
		full := name + "_" + stream
		if l.faults[full] {
			continue
		}
		if err := addToxic(l.proxy, full, kind, stream, attrs); err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		l.faults[full] = true
	}
	return nil
}

// HealAll removes every fault toxic from every link; the base latency stays. Removing a cut
// closes the connections it held, so the nodes redial on clean connections.
func (n *Net) HealAll() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, l := range n.links {
		names := make([]string, 0, len(l.faults))
		for name := range l.faults {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := l.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
				errs = append(errs, fmt.Errorf("link %s: remove toxic %s: %w", l.Name, name, err))
			}
			delete(l.faults, name)
		}
	}
	return errors.Join(errs...)
}

// Faulty lists the links that carry a fault toxic, for the log.
func (n *Net) Faulty() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, l := range n.links {
		if len(l.faults) > 0 {
			out = append(out, l.Name)
		}
	}
	return out
}
