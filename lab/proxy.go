package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxies holds a plan's links running in this process, on toxiproxy's proxy and latency
// toxic, without its HTTP API: nothing else changes the links while they run.
type Proxies struct {
	server  *toxiproxy.ApiServer
	proxies []*toxiproxy.Proxy
}

// StartProxies starts every link of the plan. logs receives toxiproxy's warnings and errors
// (an upstream that refused a connection, say); nil discards them. If one link cannot start,
// the ones started are stopped.
func StartProxies(plan ProxyPlan, logs io.Writer) (*Proxies, error) {
	if logs == nil {
		logs = io.Discard
	}
	logger := zerolog.New(logs).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	p := &Proxies{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), logger)}
	for _, l := range plan.Links {
		proxy := toxiproxy.NewProxy(p.server, l.Name, l.Listen, l.Upstream)
		// Toxics go in before the proxy accepts anything, so no connection ever skips them.
		for _, t := range []struct {
			stream  string
			latency int64
		}{{"upstream", l.UpstreamMillis}, {"downstream", l.DownstreamMillis}} {
			if t.latency == 0 && l.JitterMillis == 0 {
				continue
			}
			toxic, err := json.Marshal(map[string]any{
				"name": "latency_" + t.stream, "type": "latency", "stream": t.stream, "toxicity": 1.0,
				"attributes": map[string]int64{"latency": t.latency, "jitter": l.JitterMillis},
			})
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("link %s: encode toxic: %w", l.Name, err)
			}
			if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(string(toxic))); err != nil {
				p.Close()
				return nil, fmt.Errorf("link %s: add %s latency toxic: %w", l.Name, t.stream, err)
			}
		}
		if err := p.server.Collection.Add(proxy, true); err != nil {
			p.Close()
			return nil, fmt.Errorf("link %s: listen on %s: %w", l.Name, l.Listen, err)
		}
		p.proxies = append(p.proxies, proxy)
	}
	return p, nil
}

// Close stops every proxy and closes their connections.
func (p *Proxies) Close() {
	for _, proxy := range p.proxies {
		proxy.Stop()
	}
	p.proxies = nil
}

// ServeProxies is proxy-serve: it runs the plan in planPath until ctx ends. Once every link
// listens it writes its PID to readyPath, which is how geo-up knows the links are up; it
// removes the file again on the way out.
func ServeProxies(ctx context.Context, planPath, readyPath string, logs io.Writer) error {
	plan, err := ReadPlan(planPath)
	if err != nil {
		return err
	}
	proxies, err := StartProxies(plan, logs)
	if err != nil {
		return err
	}
	defer proxies.Close()
	if err := writeFileAtomic(readyPath, []byte(strconv.Itoa(os.Getpid())+"\n")); err != nil {
		return fmt.Errorf("signal readiness: %w", err)
	}
	defer func() {
		if err := os.Remove(readyPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(logs, "remove %s: %v\n", readyPath, err)
		}
	}()
	fmt.Fprintf(logs, "proxy-serve: %d links up from %s\n", len(plan.Links), planPath)
	<-ctx.Done()
	return nil
}
