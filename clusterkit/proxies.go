package clusterkit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
)

// Toxic names. A link's base latency stays for its life (SetRTT changes it); fault toxics
// come and go.
const (
	toxicBase      = "base"
	toxicCut       = "cut"
	toxicDrop      = "drop"
	toxicSpike     = "spike"
	toxicBandwidth = "bandwidth"
)

// streams are toxiproxy's two directions of a proxied connection: upstream carries what the
// dialing side sends, downstream the answers.
var streams = [2]string{"upstream", "downstream"}

// Proxies runs links as toxiproxy proxies in this process, on toxiproxy's proxy and
// toxics without its HTTP API: nothing else changes the links while they run.
type Proxies struct {
	server *toxiproxy.ApiServer

	mu     sync.Mutex
	byName map[string]*Proxy
	order  []*Proxy
}

// Proxy is one running link and the faults on it now.
type Proxy struct {
	Link
	owner  *Proxies
	proxy  *toxiproxy.Proxy
	faults map[string]bool // toxic name → present
	base   [2]bool         // the base latency toxic of each stream is present
}

// StartProxies starts every link of the plan, each with its base latency in place before it
// accepts a connection. logs receives toxiproxy's warnings and errors (an upstream that
// refused a connection, say); nil discards them. If one link cannot start, none is left.
func StartProxies(plan ProxyPlan, logs io.Writer) (*Proxies, error) {
	if logs == nil {
		logs = io.Discard
	}
	// Some toxics log through zerolog's global logger at trace level; keep them quiet.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	logger := zerolog.New(logs).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	p := &Proxies{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), logger), byName: map[string]*Proxy{}}
	if err := p.Add(plan.Links...); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Add starts more links (a node that joins the cluster).
func (p *Proxies) Add(links ...Link) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range links {
		if _, dup := p.byName[l.Name]; dup {
			return fmt.Errorf("link %s already runs", l.Name)
		}
		px := &Proxy{Link: l, owner: p, proxy: toxiproxy.NewProxy(p.server, l.Name, l.Listen, l.Upstream), faults: map[string]bool{}}
		if err := px.setBase(l.UpstreamMillis, l.DownstreamMillis, l.JitterMillis); err != nil {
			return err
		}
		if err := p.server.Collection.Add(px.proxy, true); err != nil {
			return fmt.Errorf("link %s: listen on %s: %w", l.Name, l.Listen, err)
		}
		p.byName[l.Name] = px
		p.order = append(p.order, px)
	}
	return nil
}

// setBase puts the base latency toxics in place, or changes them; the caller holds the lock.
func (px *Proxy) setBase(upMillis, downMillis, jitterMillis int64) error {
	for i, stream := range streams {
		latency := []int64{upMillis, downMillis}[i]
		attrs := map[string]int64{"latency": latency, "jitter": jitterMillis}
		name := toxicBase + "_" + stream
		switch {
		case px.base[i]:
			raw, _ := json.Marshal(map[string]any{"attributes": attrs, "toxicity": 1.0})
			if _, err := px.proxy.Toxics.UpdateToxicJson(name, strings.NewReader(string(raw))); err != nil {
				return fmt.Errorf("link %s: change %s latency: %w", px.Name, stream, err)
			}
		case latency != 0 || jitterMillis != 0:
			// A direction without delay gets no toxic: each costs a goroutine hop per chunk.
			if err := addToxic(px.proxy, name, "latency", stream, attrs); err != nil {
				return fmt.Errorf("link %s: %w", px.Name, err)
			}
			px.base[i] = true
		}
	}
	px.UpstreamMillis, px.DownstreamMillis, px.JitterMillis = upMillis, downMillis, jitterMillis
	return nil
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

// Close stops every proxy and closes their connections.
func (p *Proxies) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, px := range p.order {
		px.proxy.Stop()
	}
	p.order, p.byName = nil, map[string]*Proxy{}
}

// Remove stops the links to and from node id (a node that left the cluster).
func (p *Proxies) Remove(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.order[:0]
	for _, px := range p.order {
		if px.ToNode == id || px.FromNode == id {
			px.proxy.Stop()
			delete(p.byName, px.Name)
			continue
		}
		kept = append(kept, px)
	}
	p.order = kept
}

// Links lists the running links, in the order they started.
func (p *Proxies) Links() []*Proxy {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Proxy(nil), p.order...)
}

// Peer is the link through which node from dials node to.
func (p *Proxies) Peer(from, to uint64) (*Proxy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, px := range p.order {
		if px.Kind == PeerLink && px.FromNode == from && px.ToNode == to {
			return px, nil
		}
	}
	return nil, fmt.Errorf("no peer link %d->%d", from, to)
}

// Client is the link through which a client in region reaches node to.
func (p *Proxies) Client(region string, to uint64) (*Proxy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, px := range p.order {
		if px.Kind == ClientLink && px.FromRegion == region && px.ToNode == to {
			return px, nil
		}
	}
	return nil, fmt.Errorf("no client link %s->%d", region, to)
}

// Cut makes the link a black hole: what the dialing side sends is dropped, and the answers
// on that connection too; connections stay open and new ones are accepted but carry
// nothing, as when a network silently loses packets. Raft traffic is one-way per link (a
// reply travels on the replier's own link), so cutting i→j alone is a one-way partition.
func (px *Proxy) Cut() error {
	return px.fault(toxicCut, "timeout", streams[:], map[string]int64{"timeout": 0})
}

// DropResponses swallows everything the far side sends back while requests still arrive:
// a caller sees its call hang as if the answer were lost.
func (px *Proxy) DropResponses() error {
	return px.fault(toxicDrop, "timeout", streams[1:], map[string]int64{"timeout": 0})
}

// Slow adds latency (and jitter) to each direction, on top of the base latency.
func (px *Proxy) Slow(latency, jitter time.Duration) error {
	return px.fault(toxicSpike, "latency", streams[:], map[string]int64{"latency": latency.Milliseconds(), "jitter": jitter.Milliseconds()})
}

// Throttle limits each direction to kbPerSecond KB/s.
func (px *Proxy) Throttle(kbPerSecond int64) error {
	return px.fault(toxicBandwidth, "bandwidth", streams[:], map[string]int64{"rate": kbPerSecond})
}

// SetRTT changes the link's base round trip at run time, split over the two directions
// (the upstream one gets the larger half); jitter stays.
func (px *Proxy) SetRTT(rtt time.Duration) error {
	px.owner.mu.Lock()
	defer px.owner.mu.Unlock()
	ms := roundMillis(rtt).Milliseconds()
	up := (ms + 1) / 2
	return px.setBase(up, ms-up, px.JitterMillis)
}

func (px *Proxy) fault(name, kind string, on []string, attrs map[string]int64) error {
	px.owner.mu.Lock()
	defer px.owner.mu.Unlock()
	for _, stream := range on {
		full := name + "_" + stream
		if px.faults[full] {
			continue
		}
		if err := addToxic(px.proxy, full, kind, stream, attrs); err != nil {
			return fmt.Errorf("link %s: %w", px.Name, err)
		}
		px.faults[full] = true
	}
	return nil
}

// Heal removes every fault from the link; its base latency stays. Removing a cut closes
// the connections it held, so the ends reconnect on clean ones.
func (px *Proxy) Heal() error {
	px.owner.mu.Lock()
	defer px.owner.mu.Unlock()
	return px.healLocked()
}

func (px *Proxy) healLocked() error {
	names := make([]string, 0, len(px.faults))
	for name := range px.faults {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if err := px.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
			errs = append(errs, fmt.Errorf("link %s: remove toxic %s: %w", px.Name, name, err))
		}
		delete(px.faults, name)
	}
	return errors.Join(errs...)
}

// Faulty reports whether the link carries a fault.
func (px *Proxy) Faulty() bool {
	px.owner.mu.Lock()
	defer px.owner.mu.Unlock()
	return len(px.faults) > 0
}

// HealAll removes every fault from every link.
func (p *Proxies) HealAll() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, px := range p.order {
		errs = append(errs, px.healLocked())
	}
	return errors.Join(errs...)
}

// ServeProxies runs the plan in planPath until ctx ends: what a proxy process does (the
// lab's links that outlive the command starting them, or links inside a network namespace).
// Once every link listens it writes its PID to readyPath, and removes the file on the way
// out.
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

// ProxyProcess is a detached process running a plan's links (`BINARY proxy-serve --plan
// FILE --ready FILE`, which calls ServeProxies), in the root network namespace or in
// Namespace. Its files are RunDir/NAME.{plan.json,pid,ready,log}.
type ProxyProcess struct {
	Name      string
	Plan      ProxyPlan
	Namespace string
	// Binary has a proxy-serve command; absolute.
	Binary string
	RunDir string
}

func (p *ProxyProcess) path(ext string) string { return filepath.Join(p.RunDir, p.Name+"."+ext) }

// PlanPath is where Start writes the plan.
func (p *ProxyProcess) PlanPath() string { return p.path("plan.json") }

// LogPath is the process's stdout and stderr.
func (p *ProxyProcess) LogPath() string { return p.path("log") }

func (p *ProxyProcess) matches() ArgvMatcher {
	return CommandWithFlag(filepath.Base(p.Binary), "proxy-serve", "--plan", p.PlanPath())
}

// Start stops a leftover of an earlier run, writes the plan, starts the process and waits
// until every link listens.
func (p *ProxyProcess) Start(ctx context.Context) error {
	if err := os.MkdirAll(p.RunDir, 0o755); err != nil {
		return fmt.Errorf("proxies %s: create run dir: %w", p.Name, err)
	}
	if err := p.Stop(ctx); err != nil {
		return fmt.Errorf("proxies %s: stop leftover of an earlier run: %w", p.Name, err)
	}
	if err := WritePlan(p.PlanPath(), p.Plan); err != nil {
		return err
	}
	ready := p.path("ready")
	if err := os.Remove(ready); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("proxies %s: remove stale ready file: %w", p.Name, err)
	}
	bin, args := p.Binary, []string{"proxy-serve", "--plan", p.PlanPath(), "--ready", ready}
	if p.Namespace != "" {
		bin, args = "ip", append([]string{"netns", "exec", p.Namespace, p.Binary}, args...)
	}
	proc, err := StartProcess(ProcessSpec{Name: "proxies " + p.Name, Binary: bin, Args: args, Dir: p.RunDir,
		PIDFile: p.path("pid"), LogFile: p.LogPath(), Detached: true})
	if err != nil {
		return err
	}
	pid := strconv.Itoa(proc.PID())
	err = WaitFor(ctx, 15*time.Second, fmt.Sprintf("proxies %s (pid %s) to report their links up", p.Name, pid), func() error {
		if raw, err := os.ReadFile(ready); err == nil && strings.TrimSpace(string(raw)) == pid {
			return nil
		}
		if !ProcessAlive(proc.PID()) {
			return Stop(errors.New("it exited before its links were up"))
		}
		return errors.New("no ready file yet")
	})
	if err != nil {
		return errors.Join(fmt.Errorf("%w\n--- tail of %s ---\n%s", err, p.LogPath(), Tail(p.LogPath(), 20)), p.Stop(context.Background()))
	}
	return nil
}

// Stop stops the process its PID file names, if it is still this plan's proxy-serve.
func (p *ProxyProcess) Stop(ctx context.Context) error {
	if _, _, err := StopByPIDFile(ctx, p.path("pid"), p.matches(), 5*time.Second); err != nil {
		return fmt.Errorf("stop proxies %s: %w", p.Name, err)
	}
	return nil
}

// PID is the running process, if any.
func (p *ProxyProcess) PID() (int, bool) { return LivePID(p.path("pid"), p.matches()) }

// ProxyServeCommand is the `proxy-serve --plan FILE --ready FILE` command a ProxyProcess
// runs, for the binaries that start one (georaft-lab, georaft-compare); startedBy says
// who starts it, for the help.
func ProxyServeCommand(startedBy string) *cobra.Command {
	var plan, ready string
	cmd := &cobra.Command{
		Use:   "proxy-serve",
		Short: "Run a proxy plan's toxiproxy links in this process until SIGTERM (started by " + startedBy + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if plan == "" || ready == "" {
				return errors.New("proxy-serve needs --plan and --ready")
			}
			return ServeProxies(cmd.Context(), plan, ready, os.Stderr)
		},
	}
	cmd.Flags().StringVar(&plan, "plan", "", "proxy plan (JSON) written by the process starting this one")
	cmd.Flags().StringVar(&ready, "ready", "", "file to write this process's PID to once every link listens")
	return cmd
}
