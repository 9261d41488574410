package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/georaft/georaft/clusterkit"
	"github.com/georaft/georaft/node/config"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/readmode"
)

// Event is what happened to one fault of a run, on the harness clock.
type Event struct {
	Index int    `json:"index"`
	Fault Fault  `json:"fault"`
	Start Millis `json:"start_ms"`
	// Healed is when the fault was undone (restart, SIGCONT, links restored).
	Healed Millis `json:"healed_ms"`
	// Recovered is when the first write after the heal was acknowledged; Recovery is
	// Recovered − Healed, negative when none came before the deadline.
	Recovered Millis `json:"recovered_ms"`
	Recovery  Millis `json:"recovery_ms"`
	// Unavailable is the longest gap between acknowledged writes from just before the
	// fault until recovery.
	Unavailable Millis   `json:"unavailable_ms"`
	Leader      uint64   `json:"leader,omitempty"`
	LeaderTerm  uint64   `json:"leader_term,omitempty"`
	Targets     []uint64 `json:"targets,omitempty"`
	Detail      string   `json:"detail"`
	// Probes are the reads sent to a node the moment it resumed (pause faults).
	Probes []ProbeResult `json:"probes,omitempty"`
	// TermMovedOn says whether a majority had elected a newer leader while the node was
	// paused (pause-leader).
	TermMovedOn bool   `json:"term_moved_on,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Millis is a time on the harness clock (or a duration), written in milliseconds.
type Millis float64

func millisOf(ns int64) Millis { return Millis(float64(ns) / 1e6) }

// D is the value as a time.Duration.
func (m Millis) D() time.Duration { return time.Duration(float64(m) * 1e6) }

func (m Millis) String() string { return m.D().Round(time.Millisecond).String() }

// leaderNow is the agreed leader, waiting a little for one; ok is false if there is none.
func (h *harness) leaderNow(ctx context.Context) (uint64, uint64, bool) {
	id, term, err := h.cluster.WaitLeader(ctx, 2*h.cluster.Timing.ElectionTimeoutMax+time.Second)
	return id, term, err == nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// runFault injects f, holds it, heals it and fills ev. The returned error is a harness
// failure (a node that cannot be restarted), not an anomaly of georaft.
func (h *harness) runFault(ctx context.Context, f Fault, ev *Event) error {
	ids := h.cluster.IDs()
	leader, term, haveLeader := h.leaderNow(ctx)
	if haveLeader {
		ev.Leader, ev.LeaderTerm = leader, term
	}
	// Faults aimed at the leader fall back to a node chosen by Pick when none is agreed.
	target := leader
	if !haveLeader {
		target = pickN(ids, 1, f.Pick)[0]
	}
	followers := without(ids, target)
	var victims []uint64
	switch f.Kind {
	case KillLeader:
		victims = []uint64{target}
	case KillFollowers:
		victims = pickN(followers, max(1, f.Count), f.Pick)
	}
	// A killed node's fsync counts die with it: scrape before the fault starts the clock.
	for _, id := range victims {
		h.cluster.scrapeFsync(ctx, id)
	}
	ev.Start = millisOf(h.clock.Now())
	hold := f.Hold.D()
	var heal func() error
	var detail string
	switch f.Kind {
	case KillLeader, KillFollowers:
		for _, id := range victims {
			if err := h.cluster.Kit.Kill(id); err != nil {
				return err
			}
		}
		ev.Targets = victims
		detail = fmt.Sprintf("kill -9 node %v, restart after %s", victims, hold)
		heal = func() error {
			var errs []error
			for _, id := range victims {
				errs = append(errs, h.cluster.Start(id))
			}
			return errors.Join(errs...)
		}
	case PauseLeader, PauseFollower:
		return h.runPause(ctx, f, ev, target, followers, term)
	case Partition:
		side := pickN(ids, 2, f.Pick)
		h.onLinks(side, without(ids, side...), true, (*clusterkit.Proxy).Cut)
		ev.Targets = side
		detail = fmt.Sprintf("partition %v | %v", side, without(ids, side...))
	case MajorityMinority:
		minority := []uint64{target, pickN(followers, 1, f.Pick)[0]}
		slices.Sort(minority)
		h.onLinks(minority, without(ids, minority...), true, (*clusterkit.Proxy).Cut)
		ev.Targets = minority
		detail = fmt.Sprintf("minority %v (with the leader) | majority %v", minority, without(ids, minority...))
	case IsolateLeader:
		h.onLinks([]uint64{target}, followers, true, (*clusterkit.Proxy).Cut)
		ev.Targets = []uint64{target}
		detail = fmt.Sprintf("node %d cut off from every peer both ways; its clients still reach it", target)
	case Bridge:
		bridge := pickN(ids, 1, f.Pick)[0]
		rest := without(ids, bridge)
		left := pickN(rest, 2, f.Pick>>8)
		right := without(rest, left...)
		h.onLinks(left, right, true, (*clusterkit.Proxy).Cut)
		ev.Targets = []uint64{bridge}
		detail = fmt.Sprintf("bridge node %d: %v and %v cannot talk, both talk to %d", bridge, left, right, bridge)
	case PartitionOneWay:
		var cut []string
		switch f.Variant {
		case "leader-out":
			for _, to := range followers {
				h.cut(target, to, &cut)
			}
		case "leader-in":
			for _, from := range followers {
				h.cut(from, target, &cut)
			}
		default:
			var pairs [][2]uint64
			for _, a := range ids {
				for _, b := range ids {
					if a != b {
						pairs = append(pairs, [2]uint64{a, b})
					}
				}
			}
			for _, i := range pickN(seq(len(pairs)), 3+int(f.Pick%4), f.Pick) {
				h.cut(pairs[i][0], pairs[i][1], &cut)
			}
		}
		ev.Targets = []uint64{target}
		detail = fmt.Sprintf("one-way cuts (%s): %s", f.Variant, strings.Join(cut, ", "))
	case Latency:
		nodes := ids
		if f.Variant == "node" {
			nodes = pickN(ids, 1, f.Pick)
		}
		h.onLinks(nodes, ids, true, f.slow)
		ev.Targets = nodes
		detail = fmt.Sprintf("+%dms±%dms on every peer link of %v", f.LatencyMillis, f.JitterMillis, nodes)
	case Bandwidth:
		h.onLinks([]uint64{target}, followers, true, func(l *clusterkit.Proxy) error { return l.Throttle(f.RateKBps) })
		ev.Targets = []uint64{target}
		detail = fmt.Sprintf("peer links of node %d limited to %d KB/s", target, f.RateKBps)
	case ClockSkew:
		victim := target
		if f.Variant == "follower" {
			victim = pickN(followers, 1, f.Pick)[0]
		}
		if err := h.cluster.SetClockRate(victim, f.ClockRate); err != nil {
			return err
		}
		if err := h.cluster.Terminate(victim, 10*time.Second); err != nil {
			return err
		}
		if err := h.cluster.Start(victim); err != nil {
			return err
		}
		ev.Targets = []uint64{victim}
		detail = fmt.Sprintf("node %d restarted (SIGTERM) with clock rate %s; rates now %s", victim, formatRate(f.ClockRate), h.ratesString())
	case TransferLeader:
		to := pickN(followers, 1, f.Pick)[0]
		if f.Variant == "slow" {
			h.onLinks(ids, ids, false, f.slow)
		}
		err := h.transfer(ctx, target, to)
		if f.Variant == "cut" {
			h.onLinks([]uint64{target}, followers, true, (*clusterkit.Proxy).Cut)
		}
		ev.Targets = []uint64{target, to}
		detail = fmt.Sprintf("transfer from node %d to node %d (%s", target, to, f.Variant)
		if f.Variant == "slow" {
			detail += fmt.Sprintf(", +%dms±%dms on every peer link", f.LatencyMillis, f.JitterMillis)
		}
		detail += ")"
		if err != nil {
			detail += ": " + err.Error()
		}
	case ReplaceNode:
		victim := target
		if f.Variant != "leader" {
			victim = pickN(followers, 1, f.Pick)[0]
		}
		var killed uint64
		onJoin := func() error { return nil }
		if f.Variant == "kill-mid" {
			onJoin = func() error {
				if killed = h.currentLeader(ctx, target); killed == 0 {
					return nil
				}
				h.cluster.scrapeFsync(ctx, killed)
				return h.cluster.Kit.Kill(killed)
			}
		}
		newID, took, err := h.replace(ctx, victim, f.Variant == "add-remove", onJoin, func() error {
			if killed == 0 {
				return nil
			}
			sleepCtx(ctx, hold)
			return h.cluster.Start(killed)
		})
		if err != nil {
			return err
		}
		ev.Targets = []uint64{victim, newID}
		switch f.Variant {
		case "add-remove":
			detail = fmt.Sprintf("node %d joined and was promoted (six voters), then node %d was removed", newID, victim)
		default:
			detail = fmt.Sprintf("node %d joined as a learner and took the place of node %d (%s)", newID, victim, f.Variant)
		}
		if killed != 0 {
			detail += fmt.Sprintf("; leader %d killed -9 once node %d was a member, restarted after %s", killed, newID, hold)
		}
		detail += fmt.Sprintf(", %s in all", took.Round(time.Millisecond))
		hold = 0
	default:
		return fmt.Errorf("fault %d: unknown kind %q", ev.Index, f.Kind)
	}
	ev.Detail = detail
	h.logf("fault %d %s: %s (leader was %d, term %d)", ev.Index, f.Kind, detail, leader, term)
	sleepCtx(ctx, hold)
	err := h.cluster.Kit.Proxies.HealAll()
	if heal != nil {
		err = errors.Join(err, heal())
	}
	ev.Healed = millisOf(h.clock.Now())
	return err
}

// replaceTimeout bounds a replace: the new node must catch up and the change apply.
const replaceTimeout = 2 * time.Minute

// replace starts a new node in victim's region that joins the cluster and takes victim's
// place (or, with grow, is promoted on its own before victim is removed), and waits until
// victim is removed; the kit then forgets victim (it exits on its own once it applies its
// removal, or is killed if it cannot learn of it). onJoin runs once the new node is a member,
// while the change is under way, and afterJoin once it has run.
func (h *harness) replace(ctx context.Context, victim uint64, grow bool, onJoin, afterJoin func() error) (uint64, time.Duration, error) {
	kit := h.cluster.Kit
	old := kit.Node(victim)
	if old == nil {
		return 0, 0, fmt.Errorf("replace: no node %d", victim)
	}
	start := time.Now()
	n, err := kit.AddNode(old.Region, func(cfg *config.Config) {
		if !grow {
			cfg.Cluster.Replaces = victim
		}
	})
	if err != nil {
		return 0, 0, fmt.Errorf("replace node %d: %w", victim, err)
	}
	if err := h.cluster.Start(n.ID); err != nil {
		return 0, 0, fmt.Errorf("replace node %d: start node %d: %w", victim, n.ID, err)
	}
	if err := kit.WaitRole(ctx, n.ID, replaceTimeout, georaftv1.MemberRole_MEMBER_ROLE_LEARNER, georaftv1.MemberRole_MEMBER_ROLE_VOTER); err != nil {
		return 0, 0, fmt.Errorf("replace node %d: %w", victim, err)
	}
	if err := onJoin(); err != nil {
		return 0, 0, err
	}
	afterDone := make(chan error, 1)
	go func() { afterDone <- afterJoin() }()
	if grow {
		if err := kit.WaitRole(ctx, n.ID, replaceTimeout, georaftv1.MemberRole_MEMBER_ROLE_VOTER); err != nil {
			return 0, 0, fmt.Errorf("grow by node %d: %w", n.ID, err)
		}
		if err := kit.RemoveMember(ctx, victim, replaceTimeout); err != nil {
			return 0, 0, fmt.Errorf("remove node %d: %w", victim, err)
		}
	}
	if err := kit.WaitRole(ctx, victim, replaceTimeout, georaftv1.MemberRole_MEMBER_ROLE_REMOVED); err != nil {
		return 0, 0, fmt.Errorf("replace node %d by node %d: %w", victim, n.ID, err)
	}
	if err := <-afterDone; err != nil {
		return 0, 0, err
	}
	took := time.Since(start)
	h.cluster.scrapeFsync(ctx, victim)
	if err := kit.RemoveNode(victim); err != nil {
		return 0, 0, fmt.Errorf("replace node %d: forget it: %w", victim, err)
	}
	// Every config names today's members, so a node restarted later dials the new one
	// through its links.
	if err := kit.RewriteConfigs(); err != nil {
		return 0, 0, fmt.Errorf("replace node %d: %w", victim, err)
	}
	// The etcd connections of the workload and the watch checker name nodes, not the
	// cluster: they move to today's members.
	if h.watch != nil {
		eps, _ := h.cluster.ClientEndpoints(n.ID)
		h.watch.retarget(eps)
	}
	if h.work != nil {
		h.work.Retarget()
	}
	return n.ID, took, nil
}

// currentLeader is the leader now, or fallback's guess when none is agreed.
func (h *harness) currentLeader(ctx context.Context, fallback uint64) uint64 {
	if id, _, ok := h.leaderNow(ctx); ok {
		return id
	}
	return fallback
}

// transfer asks node from (the leader, as far as the harness knows) to hand leadership to
// node to. A refusal (from is no longer leader, or the transfer did not complete in time) is
// part of the story, not a harness failure: it goes into the event's detail.
func (h *harness) transfer(ctx context.Context, from, to uint64) error {
	kv, err := h.cluster.Kit.KV(from)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*h.cluster.Timing.ElectionTimeoutMax)
	defer cancel()
	_, err = kv.TransferLeader(ctx, &georaftv1.TransferLeaderRequest{TargetId: to})
	return err
}

// runPause stops a node for f.Hold. Before resuming it, it asks the others whether a newer
// leader was elected meanwhile; right after, it sends the node reads of keys written while
// it was stopped: lease reads to a paused leader (which must not answer from its expired
// lease), stale reads to a paused follower (which must not answer beyond the staleness
// bound).
func (h *harness) runPause(ctx context.Context, f Fault, ev *Event, leader uint64, followers []uint64, term uint64) error {
	victim, mode, role := leader, readmode.Lease, "leader"
	if f.Kind == PauseFollower {
		victim, mode, role = pickN(followers, 1, f.Pick)[0], readmode.Stale, "follower"
	}
	pausedAt := h.clock.Now()
	if err := h.cluster.Kit.Pause(victim); err != nil {
		return err
	}
	ev.Targets = []uint64{victim}
	h.logf("fault %d %s: SIGSTOP node %d (%s, term %d) for %s", ev.Index, f.Kind, victim, role, term, f.Hold.D())
	sleepCtx(ctx, f.Hold.D())
	others := h.cluster.Statuses(ctx, false, 500*time.Millisecond)
	if newLeader, newTerm, ok := clusterkit.AgreedLeader(others, len(h.cluster.IDs())); ok && newTerm > term {
		ev.TermMovedOn = true
		ev.Detail = fmt.Sprintf("node %d elected in term %d while node %d was stopped; ", newLeader, newTerm, victim)
	}
	keys := h.keysWrittenBetween(pausedAt, h.clock.Now(), 8)
	if len(keys) == 0 {
		keys = h.work.Keys()[:4]
	}
	if err := h.cluster.Kit.Resume(victim); err != nil {
		return err
	}
	ev.Healed = millisOf(h.clock.Now())
	ev.Probes = h.probe(ctx, victim, keys, mode)
	ev.Detail += fmt.Sprintf("SIGSTOP node %d (%s) for %s, SIGCONT, then %d %s reads at it: %s",
		victim, role, f.Hold.D(), len(keys), mode, summarizeProbes(ev.Probes))
	h.logf("fault %d %s: %s", ev.Index, f.Kind, ev.Detail)
	return nil
}

func summarizeProbes(probes []ProbeResult) string {
	counts := map[string]int{}
	for _, p := range probes {
		switch {
		case p.Err != "":
			counts["refused"]++
		default:
			counts["served as "+p.Served]++
		}
	}
	var parts []string
	for k, v := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func (h *harness) cut(from, to uint64, names *[]string) {
	h.must(h.cluster.link(from, to, (*clusterkit.Proxy).Cut))
	*names = append(*names, fmt.Sprintf("%d->%d", from, to))
}

// onLinks applies f to every peer link from a node of a to another node of b, and from b
// to a too when both.
func (h *harness) onLinks(a, b []uint64, both bool, f func(*clusterkit.Proxy) error) {
	for _, x := range a {
		for _, y := range b {
			if x != y {
				h.must(h.cluster.link(x, y, f))
				if both {
					h.must(h.cluster.link(y, x, f))
				}
			}
		}
	}
}

// slow adds the fault's latency and jitter to a link.
func (f Fault) slow(l *clusterkit.Proxy) error {
	return l.Slow(time.Duration(f.LatencyMillis)*time.Millisecond, time.Duration(f.JitterMillis)*time.Millisecond)
}

// must logs a link error: a link that cannot take a toxic is a harness bug worth seeing,
// but not a reason to abandon the run's history.
func (h *harness) must(err error) {
	if err != nil {
		h.logf("HARNESS ERROR: %v", err)
	}
}

func (h *harness) ratesString() string {
	rates := h.cluster.ClockRates()
	var parts []string
	for _, id := range h.cluster.IDs() {
		parts = append(parts, fmt.Sprintf("%d:%s", id, formatRate(rates[id])))
	}
	return strings.Join(parts, " ")
}

func seq(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}
