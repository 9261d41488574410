package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/georaft/georaft/node/config"
)

// Kind is a kind of fault.
type Kind string

// The fault kinds. Targets named by role (the leader, a follower) are resolved when the
// fault is injected, from the nodes' Status; the event log records who it was.
const (
	// KillLeader: kill -9 the leader, restart it after Hold.
	KillLeader Kind = "kill-leader"
	// KillFollowers: kill -9 Count (1 or 2) followers, restart them after Hold.
	KillFollowers Kind = "kill-followers"
	// PauseLeader: SIGSTOP the leader for Hold (longer than the lease), then SIGCONT and
	// at once send it lease reads of keys written while it was stopped.
	PauseLeader Kind = "pause-leader"
	// PauseFollower: SIGSTOP a follower, then SIGCONT and at once send it stale reads.
	PauseFollower Kind = "pause-follower"
	// Partition: split the nodes 2|3 at random, both directions cut.
	Partition Kind = "partition"
	// PartitionOneWay: cut links in one direction only: the leader's outgoing links
	// (Variant leader-out), its incoming links (leader-in), or random directed links (random).
	PartitionOneWay Kind = "partition-oneway"
	// IsolateLeader: cut every peer link to and from the leader; clients still reach it.
	IsolateLeader Kind = "isolate-leader"
	// MajorityMinority: the leader and one follower on the minority side.
	MajorityMinority Kind = "majority-minority"
	// Bridge: two pairs that cannot talk to each other, and a fifth node that talks to both.
	Bridge Kind = "bridge"
	// Latency: add LatencyMillis ± JitterMillis to every peer link of one node (Variant
	// node) or of every node (all).
	Latency Kind = "latency"
	// Bandwidth: limit the leader's peer links, both ways, to RateKBps.
	Bandwidth Kind = "bandwidth"
	// ClockSkew: restart a node (gracefully) with its clock running at ClockRate, inside the
	// drift bound; the leader is slowed (its lease then lasts longer in real time), a
	// follower sped up (its record of the lease ends sooner). The rate stays until the node
	// is skewed again.
	ClockSkew Kind = "clock-skew"
	// TransferLeader: ask the leader to hand leadership to a follower chosen by Pick, under
	// the workload's lease reads. Variant plain just transfers; slow first adds LatencyMillis
	// to every peer link, so the handover runs near the lease's edge; cut cuts the old leader
	// off from every peer just after asking, so it learns of its successor late, if at all,
	// before Hold ends.
	TransferLeader Kind = "transfer-leader"
	// ReplaceNode: a new node joins as a learner (started with cluster.join and
	// cluster.replaces), catches up under the workload, and takes the place of the leader
	// (Variant leader) or of a follower chosen by Pick (follower) in one change: its promotion
	// and the old member's removal. Variant kill-mid replaces a follower and kill -9s the
	// leader as soon as the new node is a member, restarting it after Hold. Variant add-remove
	// grows the cluster by one voter (the new node promotes itself), then removes a follower.
	// The old member applies its removal and exits; the new one stays for the rest of the
	// run, so later faults hit the new membership.
	ReplaceNode Kind = "replace-node"
)

// AllKinds is every fault kind, in the order the docs list them.
var AllKinds = []Kind{KillLeader, KillFollowers, PauseLeader, PauseFollower, Partition, PartitionOneWay,
	IsolateLeader, MajorityMinority, Bridge, Latency, Bandwidth, ClockSkew, TransferLeader, ReplaceNode}

// ParseKinds reads a comma-separated list of kinds ("" or "all" is every kind).
func ParseKinds(s string) ([]Kind, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "all" {
		return slices.Clone(AllKinds), nil
	}
	var out []Kind
	for _, part := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(part))
		if !slices.Contains(AllKinds, k) {
			return nil, fmt.Errorf("unknown fault kind %q: want one of %s", k, kindList())
		}
		out = append(out, k)
	}
	return out, nil
}

func kindList() string {
	var names []string
	for _, k := range AllKinds {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// Duration is a time.Duration written as "1.5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(raw []byte) error {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("duration: want a string like \"1.5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Fault is one entry of a schedule.
type Fault struct {
	Kind Kind `json:"kind"`
	// Hold is how long the fault lasts before it is healed.
	Hold Duration `json:"hold"`
	// Pick chooses among the candidate targets (which follower, which split) the same way
	// whenever the cluster is in the same state.
	Pick          uint64  `json:"pick"`
	Variant       string  `json:"variant,omitempty"`
	Count         int     `json:"count,omitempty"`
	LatencyMillis int64   `json:"latency_ms,omitempty"`
	JitterMillis  int64   `json:"jitter_ms,omitempty"`
	RateKBps      int64   `json:"rate_kbps,omitempty"`
	ClockRate     float64 `json:"clock_rate,omitempty"`
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s hold=%s", f.Kind, f.Hold.D())
	if f.Variant != "" {
		s += " variant=" + f.Variant
	}
	if f.Count > 0 {
		s += fmt.Sprintf(" count=%d", f.Count)
	}
	if f.LatencyMillis > 0 {
		s += fmt.Sprintf(" latency=%dms±%dms", f.LatencyMillis, f.JitterMillis)
	}
	if f.RateKBps > 0 {
		s += fmt.Sprintf(" rate=%dKB/s", f.RateKBps)
	}
	if f.ClockRate > 0 {
		s += " clock-rate=" + formatRate(f.ClockRate)
	}
	return s
}

// Schedule is what a run replays: the seed (which also seeds the clients) and the faults
// in order.
type Schedule struct {
	Seed   int64   `json:"seed"`
	Faults []Fault `json:"faults"`
}

// ReadSchedule loads a schedule written by a run.
func ReadSchedule(path string) (Schedule, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Schedule{}, fmt.Errorf("read schedule: %w", err)
	}
	var s struct {
		Schedule
		Events json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", path, err)
	}
	if len(s.Faults) == 0 {
		return Schedule{}, fmt.Errorf("schedule %s: no faults", path)
	}
	var errs []error
	for i, f := range s.Faults {
		if !slices.Contains(AllKinds, f.Kind) {
			errs = append(errs, fmt.Errorf("faults[%d].kind: unknown kind %q (want one of %s)", i, f.Kind, kindList()))
		}
		if f.Hold <= 0 {
			errs = append(errs, fmt.Errorf("faults[%d].hold: must be positive, got %s", i, f.Hold.D()))
		}
		if f.Kind == ClockSkew && (f.ClockRate <= 0 || f.ClockRate > 2) {
			errs = append(errs, fmt.Errorf("faults[%d].clock_rate: want a rate in (0, 2], got %v", i, f.ClockRate))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Schedule{}, fmt.Errorf("schedule %s: %w", path, err)
	}
	return s.Schedule, nil
}

// Generator produces the seeded fault sequence: rounds in which every kind appears once, in
// a shuffled order, each with randomized parameters scaled to the cluster's timing.
type Generator struct {
	rng    *rand.Rand
	kinds  []Kind
	timing config.TimingConfig
	round  []Kind
}

// NewGenerator starts the sequence of seed over kinds.
func NewGenerator(seed int64, kinds []Kind, timing config.TimingConfig) *Generator {
	if len(kinds) == 0 {
		kinds = AllKinds
	}
	return &Generator{rng: rand.New(rand.NewPCG(uint64(seed), 0xc4a05)), kinds: slices.Clone(kinds), timing: timing}
}

// Next is the next fault of the sequence.
func (g *Generator) Next() Fault {
	if len(g.round) == 0 {
		g.round = slices.Clone(g.kinds)
		g.rng.Shuffle(len(g.round), func(i, j int) { g.round[i], g.round[j] = g.round[j], g.round[i] })
	}
	k := g.round[0]
	g.round = g.round[1:]
	return g.fault(k)
}

func (g *Generator) fault(k Kind) Fault {
	t := g.timing
	e := t.ElectionTimeoutMax
	between := func(lo, hi time.Duration) Duration {
		if hi <= lo {
			return Duration(lo)
		}
		return Duration((lo + time.Duration(g.rng.Int64N(int64(hi-lo)))).Round(time.Millisecond))
	}
	f := Fault{Kind: k, Pick: g.rng.Uint64()}
	switch k {
	case KillLeader:
		f.Hold = between(e/2, 5*e/2)
	case KillFollowers:
		f.Count = 1 + g.rng.IntN(2)
		f.Hold = between(e/2, 3*e)
	case PauseLeader:
		// Always past the lease on the paused node's clock; sometimes short of an election
		// (the leader resumes in its own term), sometimes long past one.
		minPause := time.Duration(float64(t.LeaseDuration)/(1-t.MaxClockDrift)) + 3*t.HeartbeatInterval
		f.Hold = between(minPause, 5*e/2)
	case PauseFollower:
		f.Hold = between(e/2, 3*e)
	case Partition, MajorityMinority:
		f.Hold = between(e, 3*e)
	case PartitionOneWay:
		f.Variant = []string{"leader-out", "leader-in", "random"}[g.rng.IntN(3)]
		f.Hold = between(e, 3*e)
	case IsolateLeader:
		f.Hold = between(6*e/5, 3*e)
	case Bridge:
		f.Hold = between(3*e/2, 4*e)
	case Latency:
		f.Variant = []string{"node", "all"}[g.rng.IntN(2)]
		f.LatencyMillis = max(1, int64(between(e/50, e/4).D()/time.Millisecond))
		f.JitterMillis = f.LatencyMillis / 10
		f.Hold = between(e, 3*e)
	case Bandwidth:
		f.RateKBps = 16 + g.rng.Int64N(113)
		f.Hold = between(e, 3*e)
	case ClockSkew:
		f.Variant = []string{"leader", "follower"}[g.rng.IntN(2)]
		// |rate − 1| ≤ drift/2 keeps any two nodes' rates within the bound:
		// (1 + δ/2) / (1 − δ/2) ≤ 1 / (1 − δ).
		skew := t.MaxClockDrift / 2 * (0.5 + 0.5*g.rng.Float64())
		if f.Variant == "leader" {
			f.ClockRate = math.Round((1-skew)*1e4) / 1e4
		} else {
			f.ClockRate = math.Round((1+skew)*1e4) / 1e4
		}
		f.Hold = between(e, 2*e)
	case TransferLeader:
		f.Variant = []string{"plain", "slow", "cut"}[g.rng.IntN(3)]
		if f.Variant == "slow" {
			f.LatencyMillis = max(1, int64(between(t.LeaseDuration/10, t.LeaseDuration/2).D()/time.Millisecond))
			f.JitterMillis = f.LatencyMillis / 10
		}
		f.Hold = between(e/2, 2*e)
	case ReplaceNode:
		f.Variant = []string{"leader", "follower", "kill-mid", "add-remove"}[g.rng.IntN(4)]
		// How long the run goes on after the change before the next fault.
		f.Hold = between(e/2, 2*e)
	}
	return f
}

// pickN chooses n of ids (sorted first) deterministically from pick.
func pickN(ids []uint64, n int, pick uint64) []uint64 {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	rng := rand.New(rand.NewPCG(pick, 0x91c4))
	rng.Shuffle(len(sorted), func(i, j int) { sorted[i], sorted[j] = sorted[j], sorted[i] })
	if n > len(sorted) {
		n = len(sorted)
	}
	out := sorted[:n]
	slices.Sort(out)
	return out
}

func without(ids []uint64, drop ...uint64) []uint64 {
	var out []uint64
	for _, id := range ids {
		if !slices.Contains(drop, id) {
			out = append(out, id)
		}
	}
	return out
}
