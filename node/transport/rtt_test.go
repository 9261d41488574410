package transport

import (
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// startLatencyProxy runs an in-process toxiproxy in front of upstream that delays each
// direction by oneWay, as the geo lab does between regions.
func startLatencyProxy(t *testing.T, upstream string, oneWay time.Duration) string {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, "peer", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(proxy.Stop)
	for _, direction := range []string{"upstream", "downstream"} {
		toxic := fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":"%s","attributes":{"latency":%d}}`,
			direction, direction, oneWay.Milliseconds())
		if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			t.Fatalf("add %s latency toxic: %v", direction, err)
		}
	}
	return proxy.Listen
}

func TestRTTThroughLatencyProxy(t *testing.T) {
	const oneWay = 25 * time.Millisecond
	const wantRTT = 2 * oneWay
	nodes := startNodes(t, []uint64{1, 2, 3}, func(id uint64, cfg *Config) {
		if id == 1 {
			cfg.PingInterval = 20 * time.Millisecond
			cfg.Peers[3] = startLatencyProxy(t, cfg.Peers[3], oneWay)
		}
	})
	tr := nodes[1].tr
	if tr.RTT(99) != 0 {
		t.Error("RTT of an unknown peer is not zero")
	}
	waitFor(t, "pings to both peers", func() bool {
		direct, _ := tr.Stats(2)
		proxied, _ := tr.Stats(3)
		return direct.RTTSamples >= 20 && proxied.RTTSamples >= 20
	})
	direct, proxied := tr.RTT(2), tr.RTT(3)
	t.Logf("RTT direct %v, through a %v-each-way proxy %v", direct, oneWay, proxied)
	if direct <= 0 || proxied <= 0 {
		t.Fatalf("RTT not measured: direct %v, proxied %v", direct, proxied)
	}
	if proxied < 5*direct {
		t.Errorf("proxied RTT %v is not clearly above the direct %v", proxied, direct)
	}
	if ratio := float64(proxied) / float64(wantRTT); ratio < 0.8 || ratio > 4 {
		t.Errorf("proxied RTT %v is %.2f× the configured %v", proxied, ratio, wantRTT)
	}
}
