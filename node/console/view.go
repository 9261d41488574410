package console

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
)

// View is the cluster as the console shows it at one moment: every member's last answer,
// the links between them, the quorum, the merged events. It is built from the gatherer's
// state on demand and rendered by the templates; nothing in it is shared afterwards.
type View struct {
	At        time.Time
	ClusterID string
	Self      *NodeView
	Nodes     []*NodeView
	Leader    *NodeView
	Links     []*LinkView
	Quorum    Quorum
	// Events, newest first.
	Events   []Event
	Map      MapView
	Healthy  int
	Problems []string
}

// MapView is the picture's frame.
type MapView struct {
	Width, Height float64
	Strip         bool
	StripY        float64
	StripLabelY   float64
	StripHeight   float64
	Schematic     bool
}

// NodeView is one member.
type NodeView struct {
	ID      uint64
	Region  string
	Place   string // where the region's data centres are, when known
	Address string
	X, Y    float64
	Self    bool
	// LabelX, LabelY and LabelAnchor place the node's label, from its marker.
	LabelX, LabelY float64
	LabelAnchor    string
	Caption        string // the label's second line

	Health     string // ok, unreachable, failed, no-leader, unknown
	HealthText string
	// Answered says how old the data shown is; Stale when the last call failed and what is
	// shown is an older answer.
	Answered string
	Stale    bool
	Known    bool // some answer was ever had

	Role      string // leader, follower, candidate, pre-candidate, or what a newer Status says
	Term      uint64
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	// Lag is the leader's view of how far behind this follower is ("" when unknown).
	Lag     string
	LastAck string
	Leases  []Lease
	// StaleAge is how old this node's data is for stale reads; StaleBound the limit.
	StaleAge   string
	StaleBound string
	FsyncP99   string
	Series     []Series
	Version    string
	Fields     []Field

	IsLeader bool
	InQuorum bool
}

// Name is how the console calls a node.
func (n *NodeView) Name() string { return fmt.Sprintf("node %d (%s)", n.ID, n.Region) }

// Lease is one lease of a node, shown as a countdown while it runs.
type Lease struct {
	Key   string // "3:lease": node and field prefix, the countdown's identity in the page
	Name  string
	State string
	// Running: the countdown moves (held, or waiting for an old lease).
	Running     bool
	RemainingMs float64
	TotalMs     float64
}

// Series is a latency histogram's recent rate and quantiles.
type Series struct {
	Name     string
	Rate     string
	P50, P99 string
	// Window: over the last latencyWindow; otherwise since the node started (idle now).
	Window bool
}

// Field is one field of the node's Status, for the details that show whatever it carries.
type Field struct{ Name, Value string }

// LinkView is the link between two members.
type LinkView struct {
	ID     string
	A, B   *NodeView
	AB, BA string // RTT as each end measured it
	RTTms  float64
	RTT    string
	Class  string // near, short, medium, long, far, down, unknown
	Path   string
	LX, LY float64
	Leader bool // one end is the leader
	Quorum bool // the leader's commits wait on the other end
	// ShowsLabel: the RTT is written on the map at LX, LY (the leader's links, where there
	// is room; the links table has every one).
	ShowsLabel bool
	spots      [][2]float64
}

// Quorum is what the leader's commits wait for.
type Quorum struct {
	Voters, Majority int
	// Followers are the fastest followers that complete a majority, fastest first.
	Followers []*NodeView
	RTT       string
	Text      string
	Lost      bool
	Known     bool
}

// linkClassDef is a latency class of links, by round-trip time.
type linkClassDef struct {
	UpTo  float64 // ms
	Class string
	Label string
}

var linkClasses = []linkClassDef{
	{10, "near", "under 10 ms"},
	{50, "short", "10–50 ms"},
	{100, "medium", "50–100 ms"},
	{200, "long", "100–200 ms"},
	{math.Inf(1), "far", "200 ms or more"},
}

func linkClass(ms float64) string {
	for _, c := range linkClasses {
		if ms < c.UpTo {
			return c.Class
		}
	}
	return "far"
}

// view builds the View from the gatherer's state.
func (g *gatherer) view() *View {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	v := &View{At: now, ClusterID: g.cfg.ClusterID}

	// Members: the leader's list when it answered (members come and go at run time), else
	// every member known.
	ids := slices.Clone(g.order)
	if lead := g.currentLeader(); lead != nil {
		ids = []uint64{lead.ID}
		for _, p := range lead.st.GetPeers() {
			ids = append(ids, p.GetId())
		}
		if !slices.Contains(ids, g.cfg.Self) {
			ids = append(ids, g.cfg.Self)
		}
		slices.Sort(ids)
	}
	var regions []nodeRegion
	for _, id := range ids {
		if m := g.members[id]; m != nil {
			regions = append(regions, nodeRegion{ID: id, Region: m.Region})
		}
	}
	place := placeNodes(regions)
	v.Map = MapView{Width: world.Width, Height: place.Height, Strip: place.Strip, StripY: place.StripY, StripLabelY: place.StripY + 12,
		StripHeight: stripHeight, Schematic: place.Schematic}
	byID := map[uint64]*NodeView{}
	for _, r := range regions {
		m := g.members[r.ID]
		nv := g.nodeView(m, now)
		nv.X, nv.Y = place.pos[m.ID][0], place.pos[m.ID][1]
		nv.Place = place.place[m.Region]
		v.Nodes = append(v.Nodes, nv)
		byID[m.ID] = nv
		if nv.Self {
			v.Self = nv
		}
		if nv.Health == healthOK {
			v.Healthy++
		}
	}
	if lead := g.currentLeader(); lead != nil {
		v.Leader = byID[lead.ID]
		if v.Leader != nil {
			v.Leader.IsLeader = true
			v.Quorum = quorumOf(lead.st, byID)
			for _, p := range lead.st.GetPeers() {
				if n := byID[p.GetId()]; n != nil {
					n.Lag = fmt.Sprintf("%d", p.GetLag())
					n.LastAck = fmtNanos(p.GetLastAckAgeNanos()) + " ago"
				}
			}
			v.Leader.Lag = "0"
		}
	}
	v.Links = g.links(v, byID)
	placeLabels(v.Nodes, v.Links, v.Map.Width, v.Map.Height)
	v.Problems = problems(v)
	for i := len(g.events) - 1; i >= 0 && len(v.Events) < 100; i-- {
		v.Events = append(v.Events, g.events[i])
	}
	return v
}

// currentLeader is the member that answered as leader in the highest term. Called with mu held.
func (g *gatherer) currentLeader() *member {
	var best *member
	for _, id := range g.order {
		m := g.members[id]
		if m.err != nil || m.st == nil || m.st.GetRole() != georaftv1.Role_ROLE_LEADER {
			continue
		}
		if best == nil || m.st.GetTerm() > best.st.GetTerm() {
			best = m
		}
	}
	return best
}

func (g *gatherer) nodeView(m *member, now time.Time) *NodeView {
	nv := &NodeView{ID: m.ID, Region: m.Region, Address: m.ClientAddress, Self: m.ID == g.cfg.Self}
	nv.Health, nv.HealthText = memberHealth(m)
	st := m.st
	nv.Known = st != nil
	nv.Stale = m.err != nil && st != nil
	switch {
	case st == nil && m.err != nil:
		nv.Answered = "never answered"
	case st == nil:
		nv.Answered = "not asked yet"
	case m.err != nil:
		nv.Answered = "last answered " + fmtDuration(now.Sub(m.stAt)) + " ago"
	default:
		nv.Answered = "answered " + fmtDuration(now.Sub(m.stAt)) + " ago"
	}
	if st == nil {
		nv.Role = "unknown"
		return nv
	}
	nv.Role = enumName(st.GetRole())
	if st.GetLearner() && st.GetRole() == georaftv1.Role_ROLE_FOLLOWER {
		// A learner follows the log but votes in no quorum (docs/membership.md).
		nv.Role = "learner"
	}
	if nv.Stale {
		nv.Role = "unknown"
	}
	nv.Term, nv.Commit, nv.Applied, nv.LastIndex = st.GetTerm(), st.GetCommitIndex(), st.GetAppliedIndex(), st.GetLastIndex()
	nv.Version = st.GetVersion()
	if !nv.Stale {
		nv.Leases = leasesOf(m.ID, st)
	}
	if age := st.GetLastContactAgeNanos(); age >= 0 {
		nv.StaleAge = fmtNanos(age)
	} else {
		nv.StaleAge = "never in contact"
	}
	if b := st.GetMaxStalenessNanos(); b > 0 {
		nv.StaleBound = fmtNanos(b)
	}
	nv.Series, nv.FsyncP99 = seriesOf(m.hist)
	nv.Fields = fieldsOf(st)
	return nv
}

// leasesOf finds every lease Status describes: each X_remaining_nanos field, with X_state and
// X_duration_nanos beside it (lease_duration_nanos for all when absent). New leases, such
// as followers' read leases, show up without a change here.
func leasesOf(id uint64, st *georaftv1.StatusResponse) []Lease {
	msg := st.ProtoReflect()
	fields := msg.Descriptor().Fields()
	var out []Lease
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		prefix, ok := strings.CutSuffix(string(f.Name()), "_remaining_nanos")
		if !ok || f.Kind() != protoreflect.Int64Kind {
			continue
		}
		l := Lease{Key: fmt.Sprintf("%d:%s", id, prefix), Name: strings.ReplaceAll(prefix, "_", " ")}
		if prefix == "lease" {
			l.Name = "leader lease"
		}
		l.RemainingMs = float64(msg.Get(f).Int()) / 1e6
		if sf := fields.ByName(protoreflect.Name(prefix + "_state")); sf != nil && sf.Kind() == protoreflect.EnumKind {
			l.State = enumValueName(sf.Enum(), msg.Get(sf).Enum())
		}
		if l.State == "unspecified" {
			continue // a node that does not describe this lease
		}
		total := fields.ByName(protoreflect.Name(prefix + "_duration_nanos"))
		if total == nil {
			total = fields.ByName("lease_duration_nanos")
		}
		if total != nil {
			l.TotalMs = float64(msg.Get(total).Int()) / 1e6
		}
		l.Running = (l.State == "held" || l.State == "waiting") && l.RemainingMs > 0
		if l.State == "" {
			l.State = "none"
		}
		out = append(out, l)
	}
	return out
}

// fieldsOf lists every scalar field Status set, for the node's details.
func fieldsOf(st *georaftv1.StatusResponse) []Field {
	var out []Field
	msg := st.ProtoReflect()
	fields := msg.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.IsList() || f.IsMap() || f.Kind() == protoreflect.MessageKind || !msg.Has(f) {
			continue
		}
		name, val := string(f.Name()), msg.Get(f)
		var s string
		switch {
		case f.Kind() == protoreflect.EnumKind:
			s = enumValueName(f.Enum(), val.Enum())
		case strings.HasSuffix(name, "_nanos"):
			name = strings.TrimSuffix(name, "_nanos")
			s = fmtNanos(val.Int())
		default:
			s = fmt.Sprint(val.Interface())
		}
		out = append(out, Field{Name: strings.ReplaceAll(name, "_", " "), Value: s})
	}
	return out
}

// enumName is "leader" for ROLE_LEADER, "pre-candidate" for ROLE_PRE_CANDIDATE.
func enumName(e interface {
	Descriptor() protoreflect.EnumDescriptor
	Number() protoreflect.EnumNumber
}) string {
	return enumValueName(e.Descriptor(), e.Number())
}

func enumValueName(d protoreflect.EnumDescriptor, n protoreflect.EnumNumber) string {
	v := d.Values().ByNumber(n)
	if v == nil {
		return fmt.Sprintf("%d", n)
	}
	// The values are prefixed with the type's name in upper snake case: LEASE_STATE_HELD.
	var prefix strings.Builder
	for i, r := range string(d.Name()) {
		if i > 0 && r >= 'A' && r <= 'Z' {
			prefix.WriteByte('_')
		}
		prefix.WriteRune(r)
	}
	name := strings.TrimPrefix(string(v.Name()), strings.ToUpper(prefix.String())+"_")
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// quorumOf finds the followers the leader's commits wait on: of the voting followers that
// acknowledged within a lease, the fastest that complete a majority with the leader.
// Learners count in no quorum.
func quorumOf(st *georaftv1.StatusResponse, byID map[uint64]*NodeView) Quorum {
	var voters []*georaftv1.PeerStatus
	for _, p := range st.GetPeers() {
		if !p.GetLearner() {
			voters = append(voters, p)
		}
	}
	q := Quorum{Voters: 1 + len(voters), Known: true}
	q.Majority = q.Voters/2 + 1
	need := q.Majority - 1
	fresh := st.GetLeaseDurationNanos()
	if fresh <= 0 {
		fresh = int64(time.Second)
	}
	var live []*georaftv1.PeerStatus
	for _, p := range voters {
		if p.GetLastAckAgeNanos() >= 0 && p.GetLastAckAgeNanos() < fresh && p.GetMatchIndex() > 0 {
			live = append(live, p)
		}
	}
	slices.SortStableFunc(live, func(a, b *georaftv1.PeerStatus) int {
		ra, rb := a.GetRttNanos(), b.GetRttNanos()
		switch {
		case ra == rb:
			return 0
		case ra == 0:
			return 1
		case rb == 0:
			return -1
		case ra < rb:
			return -1
		}
		return 1
	})
	if need == 0 {
		q.Text = "A single voter: commits wait only for the leader's own disk."
		return q
	}
	if len(live) < need {
		q.Lost = true
		q.Text = fmt.Sprintf("No quorum: %d of %d voting followers acknowledged within a lease, and a majority needs %d.",
			len(live), len(voters), need)
		return q
	}
	var names []string
	for _, p := range live[:need] {
		if n := byID[p.GetId()]; n != nil {
			n.InQuorum = true
			q.Followers = append(q.Followers, n)
			names = append(names, fmt.Sprintf("%s, %s", n.Name(), fmtNanos(p.GetRttNanos())))
		}
	}
	q.RTT = fmtNanos(live[need-1].GetRttNanos())
	q.Text = fmt.Sprintf("Commits wait for the %s fastest of %d followers to acknowledge (%s): the quorum round trip is %s.",
		countWord(need), len(st.GetPeers()), strings.Join(names, "; "), q.RTT)
	return q
}

func countWord(n int) string {
	if n >= 1 && n <= 9 {
		return []string{"", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}[n]
	}
	return fmt.Sprint(n)
}

// links are every pair of members, with the RTT each end measured to the other.
func (g *gatherer) links(v *View, byID map[uint64]*NodeView) []*LinkView {
	rtt := func(from, to uint64) (int64, bool) {
		m := g.members[from]
		if m == nil || m.st == nil || m.err != nil {
			return 0, false
		}
		for _, p := range m.st.GetPeers() {
			if p.GetId() == to && p.GetRttNanos() > 0 {
				return p.GetRttNanos(), true
			}
		}
		return 0, false
	}
	var out []*LinkView
	for i, a := range v.Nodes {
		for _, b := range v.Nodes[i+1:] {
			l := &LinkView{ID: fmt.Sprintf("link-%d-%d", a.ID, b.ID), A: a, B: b, AB: "—", BA: "—"}
			var sum, n float64
			if d, ok := rtt(a.ID, b.ID); ok {
				l.AB, sum, n = fmtNanos(d), sum+float64(d), n+1
			}
			if d, ok := rtt(b.ID, a.ID); ok {
				l.BA, sum, n = fmtNanos(d), sum+float64(d), n+1
			}
			switch {
			case a.Health == healthUnreachable || b.Health == healthUnreachable:
				l.Class, l.RTT = "down", "no answer"
			case n == 0:
				l.Class, l.RTT = "unknown", "not measured"
			default:
				l.RTTms = sum / n / 1e6
				l.RTT = fmtNanos(int64(sum / n))
				l.Class = linkClass(l.RTTms)
			}
			l.Leader = a.IsLeader || b.IsLeader
			l.Quorum = l.Leader && (a.InQuorum || b.InQuorum)
			l.Path, l.spots = linkPath([2]float64{a.X, a.Y}, [2]float64{b.X, b.Y}, !v.Map.Schematic)
			out = append(out, l)
		}
	}
	// The leader's links last, so they are drawn over the others.
	slices.SortStableFunc(out, func(x, y *LinkView) int {
		switch {
		case x.Leader == y.Leader:
			return 0
		case x.Leader:
			return 1
		}
		return -1
	})
	return out
}

func problems(v *View) []string {
	var out []string
	if v.Leader == nil {
		out = append(out, "No node answers as leader: no writes or linearizable reads are served now.")
	}
	leaders := 0
	for _, n := range v.Nodes {
		if n.Role == "leader" {
			leaders++
		}
		switch n.Health {
		case healthUnreachable, healthFailed:
			out = append(out, fmt.Sprintf("%s: %s.", n.Name(), n.HealthText))
		}
	}
	if leaders > 1 {
		out = append(out, fmt.Sprintf("%d nodes answer as leader: the one in the highest term leads; the others have not heard yet.", leaders))
	}
	if v.Quorum.Lost {
		out = append(out, v.Quorum.Text)
	}
	return out
}

// seriesOf turns a member's latency snapshots into rates and quantiles over the window,
// and its WAL fsync p99.
func seriesOf(hist []histSnapshot) ([]Series, string) {
	if len(hist) == 0 {
		return nil, "—"
	}
	newest := hist[len(hist)-1]
	oldest := hist[0]
	old := map[string]*georaftv1.LatencyHistogram{}
	for _, h := range oldest.hists {
		old[h.GetName()] = h
	}
	span := newest.at.Sub(oldest.at).Seconds()
	var out []Series
	fsync := "—"
	for _, h := range newest.hists {
		s := Series{Name: h.GetName()}
		counts := h.GetCumulativeCounts()
		total := h.GetCount()
		if o := old[h.GetName()]; o != nil && span > 0 && len(o.GetCumulativeCounts()) == len(counts) && total > o.GetCount() {
			delta := make([]uint64, len(counts))
			for i := range counts {
				delta[i] = counts[i] - o.GetCumulativeCounts()[i]
			}
			counts, total = delta, total-o.GetCount()
			s.Window = true
			s.Rate = fmtRate(float64(total) / span)
		} else if span > 0 {
			s.Rate = "0/s"
		} else {
			s.Rate = "—"
		}
		if total == 0 {
			s.P50, s.P99 = "—", "—"
		} else {
			s.P50 = fmtQuantile(quantile(0.50, h.GetUpperBoundsSeconds(), counts, total))
			s.P99 = fmtQuantile(quantile(0.99, h.GetUpperBoundsSeconds(), counts, total))
		}
		if s.Name == "wal fsync" {
			fsync = s.P99
			if !s.Window && total > 0 {
				fsync += " (since start)"
			}
		}
		out = append(out, s)
	}
	return out, fsync
}

// quantile estimates the q-quantile from cumulative bucket counts as Prometheus's
// histogram_quantile does: linearly within the bucket it falls in. Past the last bound it
// answers the last bound, and says so.
func quantile(q float64, bounds []float64, cumulative []uint64, total uint64) (seconds float64, beyond bool) {
	if total == 0 || len(bounds) == 0 {
		return 0, false
	}
	rank := q * float64(total)
	prevCount, prevBound := 0.0, 0.0
	for i, b := range bounds {
		c := float64(cumulative[i])
		if c >= rank {
			if c == prevCount {
				return b, false
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount), false
		}
		prevCount, prevBound = c, b
	}
	return bounds[len(bounds)-1], true
}

func fmtQuantile(s float64, beyond bool) string {
	if beyond {
		return "> " + fmtSeconds(s)
	}
	return fmtSeconds(s)
}

func fmtNanos(n int64) string { return fmtSeconds(float64(n) / 1e9) }

func fmtDuration(d time.Duration) string { return fmtSeconds(d.Seconds()) }

// fmtSeconds writes a duration with three significant digits in ms or s: 0.273 ms, 36.2 ms, 1.25 s.
func fmtSeconds(s float64) string {
	ms := s * 1000
	switch {
	case ms < 0:
		return "—"
	case ms == 0:
		return "0 ms"
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

func fmtRate(r float64) string {
	switch {
	case r == 0:
		return "0/s"
	case r < 10:
		return fmt.Sprintf("%.1f/s", r)
	}
	return fmt.Sprintf("%.0f/s", r)
}

// grpcMessage is an RPC error without gRPC's framing.
func grpcMessage(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := st.Message()
	if i := strings.LastIndex(msg, "connect: "); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len("connect: "):], `"`)
	}
	return msg
}
