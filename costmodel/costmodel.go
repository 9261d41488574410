// Package costmodel predicts the median latency of georaft's reads and writes from where the
// nodes are, which one leads, which hold read leases and where the client is. It is the one
// model behind `georaft tune`'s read-lease and leader-placement recommendations and the
// "predicted" column of `make bench`.
//
// # The model
//
// Write RTT(a, b) for the round trip between regions a and b, as the caller's RTTs source
// gives it; RTT(R, R) is the round trip inside region R, between a client and the node there
// or between two nodes there. For a client in region R, with the leader in region L:
//
//	lease read  = RTT(R, S) [+ holder wait if S is a holder], S the serving node nearest R:
//	              the leader or a read-lease holder. With a holder or the leader in R this is
//	              the round trip inside R: the read is local.
//	index read  = RTT(R, L) + Q         Q: the leader's quorum RTT, its RTT to the voter that
//	                                    completes a majority (the quorum-th nearest voter,
//	                                    the leader counting as the nearest, at 0)
//	write       = RTT(R, L) + max(Q, H) + fsync
//	                                    H: the leader's RTT to its farthest read-lease holder
//	                                    (0 with none): a write commits only once every
//	                                    holder has it (raft/doc.go, "Read leases")
//	log read    = write                 a log read is an entry, and commits like one
//	stale read  = RTT(R, nearest node)
//
// With no holders this is the model `make bench` has always printed.
//
// # Assumptions, said out loud
//
//   - One fsync is on a write's path: the follower's (or holder's) before it acknowledges;
//     the leader's overlaps its sending. The caller supplies its cost.
//   - RTTs are whatever the RTTs source says. For a plain matrix whose diagonal is 0,
//     MatrixRTTs substitutes an intra-region RTT (DefaultIntraRegionRTT: two zones of one
//     cloud region). For the emulation, the source is clusterkit.LinkModel, whose targets are
//     the scaled matrix; the links take toxiproxy's timer overshoot off one direction of each
//     link (its Compensation), so predictions add no overshoot.
//   - Medians of an unloaded cluster: no queueing, no batching delay, processing time zero.
//   - A client sends lease reads to the serving node nearest to it by RTT, as the client
//     routes them; writes and index reads to the leader.
//   - Holder wait. A holder answers a lease read only once it has applied every entry it
//     holds (raft/read.go, ReadView), and it applies an entry only when it learns the entry
//     committed: C = max(Q, H) + fsync after receiving it. With writes arriving at the leader
//     as a Poisson stream of rate λ, the last entry a read finds at the holder arrived an
//     exponentially distributed time A ago, and the read waits max(0, C − A); its median is
//     max(0, C − ln 2/λ). So reads at holders are local only while λ·C < ln 2: with holders
//     across oceans (C ≈ 156ms), below about 4 writes per second cluster-wide. Cluster.
//     WriteRate is λ; 0 means reads and writes do not overlap (make bench measures them in
//     separate phases), which is the model without the wait.
//   - The per-key wait. With read_leases.per_key_wait (on by default) a read waits only for
//     held entries that touch the keys it reads (docs/reads.md), so λ is the rate of writes
//     to those keys: the cluster's write rate over K for reads and writes spread uniformly
//     over K keys (tune's --keys). make bench measures both rules under concurrent writes
//     and checks this formula against them.
package costmodel

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/georaft/georaft/geo"
)

// Defaults for the assumptions a caller without measurements makes.
const (
	// DefaultIntraRegionRTT is the round trip between a client and the node in its region,
	// or two nodes of one region, where the matrix says 0: zones of one cloud region are
	// about a millisecond apart (the emulation uses the same figure).
	DefaultIntraRegionRTT = time.Millisecond
	// DefaultFsync is a WAL fsync on a network-attached SSD (Google's pd-balanced, the kit's
	// default data disk); measure yours with georaft_wal_fsync_seconds.
	DefaultFsync = time.Millisecond
)

// RTTs gives the round trip between two regions. geo.Matrix (through MatrixRTTs) and
// clusterkit.LinkModel provide it.
type RTTs interface {
	RTT(a, b string) (time.Duration, error)
}

// MatrixRTTs reads RTTs from a matrix, with IntraRegion standing in for a zero diagonal.
type MatrixRTTs struct {
	Matrix geo.Matrix
	// IntraRegion replaces a zero diagonal: the matrix says "same region", not "no delay".
	IntraRegion time.Duration
}

// RTT implements RTTs.
func (m MatrixRTTs) RTT(a, b string) (time.Duration, error) {
	d, err := m.Matrix.RTT(a, b)
	if err != nil {
		return 0, err
	}
	if d == 0 && a == b {
		return m.IntraRegion, nil
	}
	return d, nil
}

// Node is one member of the cluster.
type Node struct {
	ID     uint64
	Region string
	// Learner members receive the log and may hold read leases but count in no quorum.
	Learner bool
}

// Cluster is what the model needs to know about a cluster.
type Cluster struct {
	Nodes  []Node
	Leader uint64
	// Holders are the members holding read leases. The leader among them changes nothing:
	// it answers lease reads anyway.
	Holders []uint64
	// Fsync is one WAL fsync, on every write's path.
	Fsync time.Duration
	// WriteRate is the writes per second, reaching the leader while reads are served, that a
	// holder's lease read waits for: every write with the per-key wait off, the writes to the
	// keys it reads with it; 0 when reads and writes do not overlap.
	WriteRate float64
}

// Model is a cluster's costs, computed once, to be asked for any client region.
type Model struct {
	rtts      RTTs
	nodes     []Node // by id
	leader    Node
	servers   []Node // the leader, then the holders by id: who answers lease reads
	quorum    time.Duration
	quorumBy  Node
	holderRTT time.Duration
	farthest  Node // the holder farthest from the leader; zero with none
	fsync     time.Duration
	wait      time.Duration // median holder wait
	rate      float64
}

// New validates c and computes what every client region shares: the leader's quorum RTT,
// its farthest holder and the holder wait.
func New(rtts RTTs, c Cluster) (*Model, error) {
	m, err := build(rtts, c)
	if err != nil {
		return nil, fmt.Errorf("costmodel: %w", err)
	}
	return m, nil
}

func build(rtts RTTs, c Cluster) (*Model, error) {
	if rtts == nil {
		return nil, errors.New("no RTTs")
	}
	if len(c.Nodes) == 0 {
		return nil, errors.New("the cluster has no nodes")
	}
	if c.Fsync < 0 {
		return nil, fmt.Errorf("fsync must not be negative, got %v", c.Fsync)
	}
	if c.WriteRate < 0 || math.IsNaN(c.WriteRate) || math.IsInf(c.WriteRate, 0) {
		return nil, fmt.Errorf("write rate must be a finite number ≥ 0, got %v", c.WriteRate)
	}
	m := &Model{rtts: rtts, nodes: slices.Clone(c.Nodes), fsync: c.Fsync, rate: c.WriteRate}
	slices.SortFunc(m.nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	for i, n := range m.nodes {
		if n.ID == 0 {
			return nil, errors.New("node id must not be 0")
		}
		if i > 0 && m.nodes[i-1].ID == n.ID {
			return nil, fmt.Errorf("node %d is listed twice", n.ID)
		}
	}
	leader, ok := m.node(c.Leader)
	switch {
	case !ok:
		return nil, fmt.Errorf("leader %d is not among the nodes", c.Leader)
	case leader.Learner:
		return nil, fmt.Errorf("leader %d is a learner", c.Leader)
	}
	m.leader = leader
	m.servers = []Node{leader}
	holders := slices.Clone(c.Holders)
	slices.Sort(holders)
	for i, id := range holders {
		h, ok := m.node(id)
		if !ok {
			return nil, fmt.Errorf("read-lease holder %d is not among the nodes", id)
		}
		if id == leader.ID || (i > 0 && holders[i-1] == id) {
			continue
		}
		d, err := rtts.RTT(leader.Region, h.Region)
		if err != nil {
			return nil, fmt.Errorf("leader to holder %d: %w", id, err)
		}
		if d > m.holderRTT || m.farthest.ID == 0 {
			m.holderRTT, m.farthest = d, h
		}
		m.servers = append(m.servers, h)
	}
	if err := m.measureQuorum(); err != nil {
		return nil, err
	}
	if m.farthest.ID != 0 {
		m.wait = HolderWait(m.CommitWait(), m.rate)
	}
	return m, nil
}

func (m Model) node(id uint64) (Node, bool) {
	i, ok := slices.BinarySearchFunc(m.nodes, id, func(n Node, id uint64) int { return cmp.Compare(n.ID, id) })
	if !ok {
		return Node{}, false
	}
	return m.nodes[i], true
}

// measureQuorum finds the voter whose acknowledgement completes the leader's majority.
func (m *Model) measureQuorum() error {
	type voterRTT struct {
		n   Node
		rtt time.Duration
	}
	var voters []voterRTT
	for _, n := range m.nodes {
		if n.Learner {
			continue
		}
		var d time.Duration // the leader's own acknowledgement costs nothing
		if n.ID != m.leader.ID {
			var err error
			if d, err = m.rtts.RTT(m.leader.Region, n.Region); err != nil {
				return fmt.Errorf("leader to node %d: %w", n.ID, err)
			}
		}
		voters = append(voters, voterRTT{n, d})
	}
	// Nearest first; among equals the leader, then by id (voters come sorted by id).
	isLeader := func(v voterRTT) int {
		if v.n.ID == m.leader.ID {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(voters, func(a, b voterRTT) int {
		if c := cmp.Compare(a.rtt, b.rtt); c != 0 {
			return c
		}
		return isLeader(a) - isLeader(b)
	})
	q := voters[len(voters)/2] // the quorum-th nearest: index n/2 of n voters, 0-based
	m.quorum, m.quorumBy = q.rtt, q.n
	return nil
}

// HolderWait is the median time a lease read at a holder waits for the entries it holds to
// be applied, with writes at rate per second, each applied commitWait after the holder
// receives it: max(0, commitWait − ln 2/rate) (see the package doc).
func HolderWait(commitWait time.Duration, rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	idle := time.Duration(math.Ln2 / rate * float64(time.Second))
	return max(0, commitWait-idle)
}

// Leader is the leading node.
func (m Model) Leader() Node { return m.leader }

// Quorum is the leader's quorum RTT and the voter that completes its majority.
func (m Model) Quorum() (time.Duration, Node) { return m.quorum, m.quorumBy }

// FarthestHolder is the leader's RTT to its farthest read-lease holder, and that holder
// (ok false when no member other than the leader holds a read lease).
func (m Model) FarthestHolder() (time.Duration, Node, bool) {
	return m.holderRTT, m.farthest, m.farthest.ID != 0
}

// CommitWait is how long after the leader sends an entry it is committed: the slower of
// its quorum and its farthest holder, plus the fsync before their acknowledgement.
func (m Model) CommitWait() time.Duration { return max(m.quorum, m.holderRTT) + m.fsync }

// HolderWait is the median wait of a lease read at a holder (see the package doc); 0 with
// no holder but the leader.
func (m Model) HolderWait() time.Duration { return m.wait }

// Costs are the predicted medians for a client in one region.
type Costs struct {
	m      *Model
	Client string
	// ReadServer answers this client's lease reads: the leader or a holder, the nearest by
	// RTT (ties to the leader, then the lower id); ReadRTT is the client's RTT to it and
	// ReadWait the holder wait it adds (0 at the leader).
	ReadServer Node
	ReadRTT    time.Duration
	ReadWait   time.Duration
	// ToLeader is the client's RTT to the leader.
	ToLeader time.Duration
	// Nearest is the node nearest the client (stale reads), NearestRTT its RTT.
	Nearest    Node
	NearestRTT time.Duration
}

// Client computes the costs for a client in region.
func (m *Model) Client(region string) (Costs, error) {
	c := Costs{m: m, Client: region}
	for i, n := range m.servers {
		d, err := m.rtts.RTT(region, n.Region)
		if err != nil {
			return Costs{}, fmt.Errorf("costmodel: client in %s to node %d: %w", region, n.ID, err)
		}
		if i == 0 {
			c.ToLeader = d
		}
		if i == 0 || d < c.ReadRTT {
			c.ReadServer, c.ReadRTT = n, d
		}
	}
	if c.ReadServer.ID != m.leader.ID {
		c.ReadWait = m.wait
	}
	for i, n := range m.nodes {
		d, err := m.rtts.RTT(region, n.Region)
		if err != nil {
			return Costs{}, fmt.Errorf("costmodel: client in %s to node %d: %w", region, n.ID, err)
		}
		if i == 0 || d < c.NearestRTT {
			c.Nearest, c.NearestRTT = n, d
		}
	}
	return c, nil
}

// Lease is the median linearizable lease read.
func (c Costs) Lease() time.Duration { return c.ReadRTT + c.ReadWait }

// Index is the median ReadIndex read: to the leader, and one heartbeat round to a quorum.
func (c Costs) Index() time.Duration { return c.ToLeader + c.m.quorum }

// Write is the median write (and log read): to the leader, and its commit.
func (c Costs) Write() time.Duration { return c.ToLeader + c.m.CommitWait() }

// Stale is the median stale read, at the nearest node.
func (c Costs) Stale() time.Duration { return c.NearestRTT }

// LeaseLocal reports whether lease reads are answered in the client's own region.
func (c Costs) LeaseLocal() bool { return c.ReadServer.Region == c.Client }

// The basis strings name every term of a prediction, in the words make bench prints.

func (c Costs) leaderPart() string {
	return fmt.Sprintf("RTT %s->leader %s %s", c.Client, c.m.leader.Region, Millis(c.ToLeader))
}

// LeaseBasis explains Lease.
func (c Costs) LeaseBasis() string {
	if c.ReadServer.ID == c.m.leader.ID {
		return c.leaderPart()
	}
	s := fmt.Sprintf("RTT %s->holder %d (%s) %s", c.Client, c.ReadServer.ID, c.ReadServer.Region, Millis(c.ReadRTT))
	if c.ReadWait > 0 {
		s += fmt.Sprintf(" + holder wait %s (applies what it holds: commit wait %s, %g writes/s)",
			Millis(c.ReadWait), Millis(c.m.CommitWait()), c.m.rate)
	}
	return s
}

// IndexBasis explains Index.
func (c Costs) IndexBasis() string { return c.leaderPart() + " + " + c.quorumPart() }

func (c Costs) quorumPart() string {
	return fmt.Sprintf("quorum RTT %s->%s %s", c.m.leader.Region, c.m.quorumBy.Region, Millis(c.m.quorum))
}

// WriteBasis explains Write.
func (c Costs) WriteBasis() string {
	commit := c.quorumPart()
	if c.m.farthest.ID != 0 {
		commit = fmt.Sprintf("max(%s, farthest holder %s->%d (%s) %s)", commit,
			c.m.leader.Region, c.m.farthest.ID, c.m.farthest.Region, Millis(c.m.holderRTT))
	}
	return fmt.Sprintf("%s + %s + fsync %s", c.leaderPart(), commit, Millis(c.m.fsync))
}

// StaleBasis explains Stale.
func (c Costs) StaleBasis() string {
	return fmt.Sprintf("RTT %s->nearest node %d (%s) %s", c.Client, c.Nearest.ID, c.Nearest.Region, Millis(c.NearestRTT))
}

// Millis renders d in milliseconds to the microsecond: "36ms", "0.383ms".
func Millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Round(time.Microsecond))/float64(time.Millisecond), 'f', -1, 64) + "ms"
}
