package testcluster

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is an in-process toxiproxy between a client and one node's client address.
type Proxy struct {
	Addr  string
	proxy *toxiproxy.Proxy
}

var proxySeq atomic.Int64

// NewProxy starts a proxy on a free loopback port in front of upstream; it stops when the
// test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.New(io.Discard))
	name := fmt.Sprintf("client-test-%d", proxySeq.Add(1))
	p := toxiproxy.NewProxy(server, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy to %s: %v", upstream, err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{Addr: p.Listen, proxy: p}
}

// DropResponses makes the proxy swallow everything the node sends back, while requests
// still reach the node: the client sees its call hang as if the response were lost.
func (p *Proxy) DropResponses(t testing.TB) {
	t.Helper()
	toxic := `{"name":"drop-responses","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
		t.Fatalf("add toxic: %v", err)
	}
}

// Heal removes the toxics.
func (p *Proxy) Heal(t testing.TB) {
	t.Helper()
	if err := p.proxy.Toxics.RemoveToxic(context.Background(), "drop-responses"); err != nil {
		t.Fatalf("remove toxic: %v", err)
	}
}

// Delay adds latency each way (half of rtt per direction) to the proxy.
func (p *Proxy) Delay(t testing.TB, rtt time.Duration) {
	t.Helper()
	half := rtt.Milliseconds() / 2
	for _, stream := range []string{"upstream", "downstream"} {
		toxic := fmt.Sprintf(`{"name":"delay-%s","type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d}}`, stream, stream, half)
		if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			t.Fatalf("add latency toxic: %v", err)
		}
	}
}
