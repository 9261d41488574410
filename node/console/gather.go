package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// Node is what the console asks of a georaft node: the client API's status and leadership
// transfer. Its own node answers in process; every other member over its client port.
type Node interface {
	Status(context.Context, *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error)
	TransferLeader(context.Context, *georaftv1.TransferLeaderRequest) (*georaftv1.TransferLeaderResponse, error)
}

// Member is a cluster member as the node's configuration names it.
type Member struct {
	ID            uint64
	Region        string
	ClientAddress string
}

// remote is a member reached over gRPC.
type remote struct{ c georaftv1.KVServiceClient }

func (r remote) Status(ctx context.Context, req *georaftv1.StatusRequest) (*georaftv1.StatusResponse, error) {
	return r.c.Status(ctx, req)
}

func (r remote) TransferLeader(ctx context.Context, req *georaftv1.TransferLeaderRequest) (*georaftv1.TransferLeaderResponse, error) {
	return r.c.TransferLeader(ctx, req)
}

const (
	// activityEvery: one poll in this many also fetches events and latencies.
	activityEvery = 4
	// latencyWindow is what rates and quantiles are computed over.
	latencyWindow = 10 * time.Second
	// keptEvents bounds the merged event feed.
	keptEvents = 300
	// idleAfter stops polling this long after the last page or stream went away.
	idleAfter = 30 * time.Second
)

// member is what the gatherer knows of one member.
type member struct {
	Member
	node  Node
	conn  *grpc.ClientConn
	busy  bool
	st    *georaftv1.StatusResponse // the latest answer
	stAt  time.Time
	err   error // the latest call's error; st is then older
	errAt time.Time
	// seen: the member answered or failed at least once.
	seen bool
	// hist are latency snapshots within the window, oldest first.
	hist        []histSnapshot
	eventsAfter uint64
	health      string
}

type histSnapshot struct {
	at    time.Time
	hists []*georaftv1.LatencyHistogram
}

// Event is one entry of the merged feed.
type Event struct {
	At       time.Time
	Node     uint64
	Region   string
	Category string
	Text     string
	// Observed: the console saw it (a member stopped answering), the member did not say it.
	Observed bool
}

// gatherer polls every member's Status while someone watches, and keeps what the view is
// built from. Its own goroutine runs only then; nothing here runs on a node's loop.
type gatherer struct {
	cfg     Config
	log     *slog.Logger
	timeout time.Duration

	mu       sync.Mutex
	members  map[uint64]*member
	order    []uint64
	events   []Event
	tick     uint64
	interest time.Time
	running  bool
	watchers int
	subs     map[chan struct{}]struct{}
	closed   bool
	done     chan struct{}
	// ctx ends the calls in flight when the console closes.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGatherer(cfg Config) *gatherer {
	g := &gatherer{cfg: cfg, log: cfg.Logger, timeout: 2 * time.Second, members: map[uint64]*member{},
		subs: map[chan struct{}]struct{}{}, done: make(chan struct{})}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	for _, m := range cfg.Members {
		g.addMember(m)
	}
	return g
}

// addMember knows of m from now on. Called with mu held (or before any goroutine runs).
func (g *gatherer) addMember(m Member) *member {
	if mm, ok := g.members[m.ID]; ok {
		return mm
	}
	mm := &member{Member: m}
	if m.ID == g.cfg.Self {
		mm.node = g.cfg.Local
	}
	g.members[m.ID] = mm
	g.order = append(g.order, m.ID)
	slices.Sort(g.order)
	return mm
}

// nodeFor is the member's Node, dialled on first use.
func (g *gatherer) nodeFor(m *member) (Node, error) {
	if m.node != nil {
		return m.node, nil
	}
	if g.cfg.Remote != nil {
		node, err := g.cfg.Remote(m.Member)
		if err == nil {
			m.node = node
		}
		return node, err
	}
	if m.ClientAddress == "" {
		return nil, fmt.Errorf("node %d has no client address", m.ID)
	}
	var opts []grpc.DialOption
	if g.cfg.DialOptions != nil {
		opts = g.cfg.DialOptions(m.ID)
	}
	conn, err := grpc.NewClient(m.ClientAddress, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial node %d at %s: %w", m.ID, m.ClientAddress, err)
	}
	m.conn, m.node = conn, remote{georaftv1.NewKVServiceClient(conn)}
	return m.node, nil
}

// watch notes interest: the poller runs until idleAfter has passed without any.
func (g *gatherer) watch() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.interest = time.Now()
	if !g.running && !g.closed {
		g.running = true
		g.wg.Add(1)
		go g.run()
	}
}

// subscribe returns a channel that receives after every poll round, until unsubscribe.
func (g *gatherer) subscribe() chan struct{} {
	g.watch()
	ch := make(chan struct{}, 1)
	g.mu.Lock()
	g.subs[ch] = struct{}{}
	g.mu.Unlock()
	return ch
}

func (g *gatherer) unsubscribe(ch chan struct{}) {
	g.mu.Lock()
	delete(g.subs, ch)
	g.interest = time.Now()
	g.mu.Unlock()
}

func (g *gatherer) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	close(g.done)
	g.cancel()
	g.mu.Unlock()
	g.wg.Wait()
	for _, m := range g.members {
		if m.conn != nil {
			m.conn.Close()
		}
	}
}

func (g *gatherer) run() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.Poll)
	defer t.Stop()
	for {
		g.pollOnce()
		select {
		case <-g.done:
			return
		case <-t.C:
		}
		g.mu.Lock()
		if len(g.subs) == 0 && time.Since(g.interest) > idleAfter {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
}

// pollOnce asks every member that is not still answering the previous call, then tells the
// subscribers. Answers land as they come; a round does not wait for a slow member.
func (g *gatherer) pollOnce() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.tick++
	activity := g.tick%activityEvery == 1
	for _, id := range g.order {
		m := g.members[id]
		if m.busy {
			continue
		}
		node, err := g.nodeFor(m)
		if err != nil {
			g.noteAnswer(m, nil, err, false)
			continue
		}
		m.busy = true
		req := &georaftv1.StatusRequest{IncludeActivity: activity || !m.seen, EventsAfter: m.eventsAfter}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			ctx, cancel := context.WithTimeout(g.ctx, g.timeout)
			st, err := node.Status(ctx, req)
			cancel()
			g.mu.Lock()
			m.busy = false
			g.noteAnswer(m, st, err, req.IncludeActivity)
			g.mu.Unlock()
		}()
	}
	for ch := range g.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// refresh polls once and waits (a bounded time) for the answers: the first page of a
// console nobody was watching shows the cluster, not an empty map.
func (g *gatherer) refresh(ctx context.Context) {
	g.watch()
	g.mu.Lock()
	fresh := true
	for _, m := range g.members {
		if !m.seen {
			fresh = false
		}
	}
	g.mu.Unlock()
	if fresh {
		return
	}
	g.pollOnce()
	deadline := time.NewTimer(g.timeout)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		busy := false
		for _, m := range g.members {
			busy = busy || m.busy
		}
		g.mu.Unlock()
		if !busy {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// noteAnswer records a status call's outcome. Called with mu held.
func (g *gatherer) noteAnswer(m *member, st *georaftv1.StatusResponse, err error, activity bool) {
	now := time.Now()
	m.seen = true
	if err != nil {
		m.err, m.errAt = err, now
	} else {
		m.st, m.stAt, m.err = st, now, nil
		if st.GetRegion() != "" {
			m.Region = st.GetRegion()
		}
		if activity {
			g.noteActivity(m, st, now)
		}
		g.learnMembers(st)
	}
	health, why := memberHealth(m)
	if health != m.health {
		prev := m.health
		m.health = health
		if text := healthEventText(m, prev, health, why); text != "" {
			g.addEvents(Event{At: now, Node: m.ID, Region: m.Region, Category: "health", Text: text, Observed: true})
		}
	}
}

func (g *gatherer) noteActivity(m *member, st *georaftv1.StatusResponse, now time.Time) {
	// The node sent only what came after eventsAfter (or, restarted, all it has).
	var evs []Event
	for _, e := range st.GetEvents() {
		evs = append(evs, Event{At: time.Unix(0, e.GetUnixNanos()), Node: m.ID, Region: m.Region,
			Category: e.GetCategory(), Text: e.GetText()})
	}
	if n := len(st.GetEvents()); n > 0 {
		m.eventsAfter = st.GetEvents()[n-1].GetSeq()
	}
	g.addEvents(evs...)
	// A counter that went down is a restarted node: its old snapshots mean nothing now.
	if len(m.hist) > 0 && restarted(m.hist[len(m.hist)-1].hists, st.GetLatencies()) {
		m.hist = nil
	}
	m.hist = append(m.hist, histSnapshot{at: now, hists: st.GetLatencies()})
	for len(m.hist) > 2 && now.Sub(m.hist[1].at) >= latencyWindow {
		m.hist = m.hist[1:]
	}
}

func restarted(old, cur []*georaftv1.LatencyHistogram) bool {
	counts := map[string]uint64{}
	for _, h := range cur {
		counts[h.GetName()] = h.GetCount()
	}
	for _, h := range old {
		if c, ok := counts[h.GetName()]; ok && c < h.GetCount() {
			return true
		}
	}
	return false
}

// addEvents merges events into the feed, oldest first, keeping the newest keptEvents.
func (g *gatherer) addEvents(evs ...Event) {
	if len(evs) == 0 {
		return
	}
	g.events = append(g.events, evs...)
	slices.SortStableFunc(g.events, func(a, b Event) int { return a.At.Compare(b.At) })
	if len(g.events) > keptEvents {
		g.events = slices.Delete(g.events, 0, len(g.events)-keptEvents)
	}
}

// learnMembers adds members a node names that the configuration did not (added at run time).
func (g *gatherer) learnMembers(st *georaftv1.StatusResponse) {
	for _, p := range st.GetPeers() {
		if _, ok := g.members[p.GetId()]; !ok && p.GetId() != 0 {
			g.addMember(Member{ID: p.GetId(), Region: p.GetRegion(), ClientAddress: p.GetAddress()})
		}
	}
}

// Health of a member, as the console judges it.
const (
	healthOK          = "ok"
	healthUnreachable = "unreachable"
	healthFailed      = "failed"
	healthNoLeader    = "no-leader"
	healthUnknown     = "unknown"
)

func memberHealth(m *member) (string, string) {
	switch {
	case !m.seen:
		return healthUnknown, "not asked yet"
	case m.err != nil:
		return healthUnreachable, describeErr(m.err)
	case m.st.GetFailure() != "":
		return healthFailed, m.st.GetFailure()
	case m.st.GetLeaderId() == 0:
		return healthNoLeader, fmt.Sprintf("knows no leader in term %d", m.st.GetTerm())
	}
	return healthOK, ""
}

// healthEventText is the console's own event for a change of health it saw: a member that
// stops answering or fails cannot say so itself. Leaderless spells are in the members' own
// events (elections), so they get none here.
func healthEventText(m *member, prev, cur, why string) string {
	name := fmt.Sprintf("node %d (%s)", m.ID, m.Region)
	switch {
	case cur == healthUnreachable:
		return fmt.Sprintf("%s does not answer: %s", name, why)
	case cur == healthFailed:
		return fmt.Sprintf("%s has stopped serving: %s", name, why)
	case prev == healthUnreachable:
		return name + " answers again"
	case prev == healthFailed:
		return name + " serves again"
	}
	return ""
}

func describeErr(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within the deadline (paused, overloaded or cut off?)"
	}
	return grpcMessage(err)
}
