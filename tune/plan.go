package tune

import (
	"cmp"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/georaft/georaft/costmodel"
	"github.com/georaft/georaft/geo"
)

// ExhaustiveRegions is the most regions hosting nodes for which every read-lease set is
// tried (2^n sets); beyond it a greedy search adds and removes one region at a time.
const ExhaustiveRegions = 7

// exhaustiveLimit is ExhaustiveRegions, changed by tests only.
var exhaustiveLimit = ExhaustiveRegions

// maxPlanRegions bounds the regions a set is a bitmask of.
const maxPlanRegions = 64

// Plan is the read-lease and leader-placement recommendation for a client mix, with every
// candidate it weighed (docs/tuning.md, "Read leases and leader placement").
type Plan struct {
	// Mix is the resolved client traffic: one entry per client region, in matrix order.
	Mix Mix
	// Assumptions of the cost model (package costmodel).
	Fsync          time.Duration
	IntraRegionRTT time.Duration
	// WriteRate is the writes per second a holder's lease reads wait on: the mix's (over
	// Options.Keys with the per-key wait), or 0 with Options.NoHolderWait.
	WriteRate float64
	// Regions host nodes: the regions a read-lease set is drawn from and the leader
	// candidates, in matrix order.
	Regions []string
	// Search is "exhaustive" (every subset of Regions) or "greedy".
	Search string
	// Candidates are every read-lease set tried with every leader region, best first.
	Candidates []Candidate
	// Holders is the recommended read-lease set (regions, matrix order) and Leader where it
	// is evaluated: the first of Preferred.
	Holders       []string
	HoldersReason string
	// Preferred ranks the leader regions by the mix-weighted write p50 each gives as leader,
	// with the recommended holders (a pinned leader region comes first whatever its rank).
	Preferred       []LeaderRank
	PreferredReason string
	// Recommended is the candidate of Holders with the leader in Preferred[0].
	Recommended Candidate
}

// LeaderRank is one region as leader, with the recommended holders.
type LeaderRank struct {
	Region    string
	WriteMean time.Duration
	ReadMean  time.Duration
}

// Candidate is one read-lease set with the leader in one region.
type Candidate struct {
	Holders []string
	Leader  string
	// Clients are the predicted medians per client region, in the mix's order.
	Clients []ClientCost
	// The mix-weighted means: of reads (by reads per second), of writes (by writes per
	// second; by reads per second in a mix without writes, so that leaders still rank by
	// where the clients are), and of all operations together, which the recommendation
	// minimizes.
	ReadMean, WriteMean, OpMean time.Duration
	// Quorum is the leader's quorum RTT; FarthestHolder the holder region farthest from the
	// leader ("" with none) and FarthestHolderRTT the leader's RTT to it. CommitWait is how
	// long a write takes to commit once at the leader (the larger RTT, plus fsync), and
	// HolderWait the median wait of a read at a holder for writes in flight.
	Quorum            time.Duration
	FarthestHolder    string
	FarthestHolderRTT time.Duration
	CommitWait        time.Duration
	HolderWait        time.Duration
}

// ClientCost is what clients in one region are predicted to see.
type ClientCost struct {
	Region string
	Load
	Read  time.Duration // lease read p50
	Write time.Duration // write p50
	// ReadAt is the region whose node answers the lease reads: the client's own when local.
	ReadAt string
}

// setting renders holders as the node config's read_leases.holders: all, none or a list.
func (p *Plan) setting(holders []string) string {
	switch {
	case len(holders) == 0:
		return "none"
	case len(holders) == len(p.Regions):
		return "all"
	}
	return strings.Join(holders, ", ")
}

// HoldersSetting is the recommended read_leases.holders: "all", "none" or the regions.
func (p *Plan) HoldersSetting() (word string, regions []string) {
	switch len(p.Holders) {
	case 0:
		return "none", nil
	case len(p.Regions):
		return "all", nil
	}
	return "", slices.Clone(p.Holders)
}

// PreferredRegions is the recommended placement.preferred_regions.
func (p *Plan) PreferredRegions() []string {
	out := make([]string, len(p.Preferred))
	for i, lr := range p.Preferred {
		out[i] = lr.Region
	}
	return out
}

// planner evaluates candidates for one matrix, placement and mix.
type planner struct {
	rtts    costmodel.MatrixRTTs
	voters  []Voter
	mix     Mix
	total   Load
	fsync   time.Duration
	regions []string // hosting nodes, matrix order
	pinned  string   // a leader region the operator fixed, or ""
	overlap float64  // writes per second a holder's reads wait on (0: they do not wait)
	byMask  map[uint64][]Candidate
}

func newPlan(m geo.Matrix, voters []Voter, opts Options) (*Plan, error) {
	fsync, intra, pinned := opts.Fsync, opts.IntraRegionRTT, opts.LeaderRegion
	resolved, err := opts.Mix.resolve(m)
	if err != nil {
		return nil, fmt.Errorf("tune: %w", err)
	}
	if fsync < 0 || intra < 0 {
		return nil, fmt.Errorf("tune: fsync (%v) and intra-region rtt (%v) must not be negative", fsync, intra)
	}
	if fsync == 0 {
		fsync = costmodel.DefaultFsync
	}
	if intra == 0 {
		intra = costmodel.DefaultIntraRegionRTT
	}
	pl := &planner{rtts: costmodel.MatrixRTTs{Matrix: m, IntraRegion: intra}, voters: voters, mix: resolved,
		total: resolved.totals(), fsync: fsync, pinned: pinned, byMask: map[uint64][]Candidate{}}
	pl.overlap = pl.total.Writes
	if opts.Keys > 1 {
		pl.overlap /= float64(opts.Keys)
	}
	if opts.NoHolderWait {
		pl.overlap = 0
	}
	hosts := map[string]bool{}
	for _, v := range voters {
		hosts[v.Region] = true
	}
	for _, r := range m.Regions() {
		if hosts[r] {
			pl.regions = append(pl.regions, r)
		}
	}
	if len(pl.regions) > maxPlanRegions {
		return nil, fmt.Errorf("tune: nodes in %d regions; the read-lease search handles at most %d", len(pl.regions), maxPlanRegions)
	}
	p := &Plan{Mix: resolved, Fsync: fsync, IntraRegionRTT: intra, WriteRate: pl.overlap, Regions: pl.regions}
	best, err := pl.search(p)
	if err != nil {
		return nil, err
	}
	for _, cands := range pl.byMask {
		p.Candidates = append(p.Candidates, cands...)
	}
	slices.SortFunc(p.Candidates, func(a, b Candidate) int {
		return cmp.Or(cmp.Compare(a.OpMean, b.OpMean), cmp.Compare(len(a.Holders), len(b.Holders)),
			slices.Compare(pl.indexes(a.Holders), pl.indexes(b.Holders)), cmp.Compare(pl.index(a.Leader), pl.index(b.Leader)))
	})
	p.Holders = pl.holders(best)
	ranked := pl.rankLeaders(pl.byMask[best])
	for _, c := range ranked {
		p.Preferred = append(p.Preferred, LeaderRank{Region: c.Leader, WriteMean: c.WriteMean, ReadMean: c.ReadMean})
	}
	p.Recommended = ranked[0]
	p.HoldersReason = pl.holdersReason(p)
	p.PreferredReason = pl.preferredReason(p)
	return p, nil
}

// allMask is the set of every region hosting a node.
func (pl *planner) allMask() uint64 {
	if len(pl.regions) == maxPlanRegions {
		return ^uint64(0)
	}
	return uint64(1)<<len(pl.regions) - 1
}

func (pl *planner) index(region string) int { return slices.Index(pl.regions, region) }

func (pl *planner) indexes(regions []string) []int {
	out := make([]int, len(regions))
	for i, r := range regions {
		out[i] = pl.index(r)
	}
	return out
}

func (pl *planner) mask(holders []string) uint64 {
	var m uint64
	for _, r := range holders {
		m |= 1 << pl.index(r)
	}
	return m
}

func (pl *planner) holders(mask uint64) []string {
	var out []string
	for i, r := range pl.regions {
		if mask&(1<<i) != 0 {
			out = append(out, r)
		}
	}
	return out
}

// evaluate computes (once) every leader region's candidate for the set mask.
func (pl *planner) evaluate(mask uint64) ([]Candidate, error) {
	if cands, ok := pl.byMask[mask]; ok {
		return cands, nil
	}
	holderRegions := pl.holders(mask)
	var nodes []costmodel.Node
	var holderIDs []uint64
	for _, v := range pl.voters {
		nodes = append(nodes, costmodel.Node{ID: v.ID, Region: v.Region})
		if slices.Contains(holderRegions, v.Region) {
			holderIDs = append(holderIDs, v.ID)
		}
	}
	var cands []Candidate
	for _, leaderRegion := range pl.regions {
		c, err := pl.candidate(nodes, holderIDs, holderRegions, leaderRegion)
		if err != nil {
			return nil, err
		}
		cands = append(cands, c)
	}
	pl.byMask[mask] = cands
	return cands, nil
}

func (pl *planner) candidate(nodes []costmodel.Node, holderIDs []uint64, holderRegions []string, leaderRegion string) (Candidate, error) {
	var leader uint64
	for _, v := range pl.voters { // the lowest id in the region: voters are sorted by id
		if v.Region == leaderRegion {
			leader = v.ID
			break
		}
	}
	model, err := costmodel.New(pl.rtts, costmodel.Cluster{Nodes: nodes, Leader: leader, Holders: holderIDs,
		Fsync: pl.fsync, WriteRate: pl.overlap})
	if err != nil {
		return Candidate{}, fmt.Errorf("tune: %w", err)
	}
	c := Candidate{Holders: holderRegions, Leader: leaderRegion, CommitWait: model.CommitWait(), HolderWait: model.HolderWait()}
	c.Quorum, _ = model.Quorum()
	if d, h, ok := model.FarthestHolder(); ok {
		c.FarthestHolder, c.FarthestHolderRTT = h.Region, d
	}
	var readSum, writeSum, writeRank float64
	for _, rl := range pl.mix {
		costs, err := model.Client(rl.Region)
		if err != nil {
			return Candidate{}, fmt.Errorf("tune: %w", err)
		}
		cc := ClientCost{Region: rl.Region, Load: rl.Load, Read: costs.Lease(), Write: costs.Write(), ReadAt: costs.ReadServer.Region}
		c.Clients = append(c.Clients, cc)
		readSum += rl.Reads * float64(cc.Read)
		writeSum += rl.Writes * float64(cc.Write)
		writeRank += rl.Reads * float64(cc.Write)
	}
	c.ReadMean = weightedMean(readSum, pl.total.Reads)
	c.WriteMean = weightedMean(writeSum, pl.total.Writes)
	if pl.total.Writes == 0 { // rank leaders by where the clients are
		c.WriteMean = weightedMean(writeRank, pl.total.Reads)
	}
	c.OpMean = weightedMean(readSum+writeSum, pl.total.Ops())
	return c, nil
}

func weightedMean(sum, weight float64) time.Duration {
	if weight == 0 {
		return 0
	}
	return time.Duration(sum / weight).Round(time.Microsecond)
}

// rankLeaders orders a set's candidates by the mix-weighted write p50 of their leader
// region, then read p50, then matrix order; a pinned region goes first.
func (pl *planner) rankLeaders(cands []Candidate) []Candidate {
	ranked := slices.Clone(cands)
	slices.SortStableFunc(ranked, func(a, b Candidate) int {
		return cmp.Or(cmp.Compare(a.WriteMean, b.WriteMean), cmp.Compare(a.ReadMean, b.ReadMean))
	})
	if pl.pinned != "" {
		i := slices.IndexFunc(ranked, func(c Candidate) bool { return c.Leader == pl.pinned })
		pinned := ranked[i]
		ranked = append([]Candidate{pinned}, slices.Delete(ranked, i, i+1)...)
	}
	return ranked
}

// score is how a set compares with others: its per-operation mean with the leader where it
// would be, then with the leader failed over to the next preferred region (so, of two sets
// equal while the leader stays, the one that keeps more reads local after a failover wins),
// then fewer holders.
type score struct {
	op, failover time.Duration
	holders      int
}

func (pl *planner) score(mask uint64) (score, error) {
	cands, err := pl.evaluate(mask)
	if err != nil {
		return score{}, err
	}
	ranked := pl.rankLeaders(cands)
	s := score{op: ranked[0].OpMean, failover: ranked[0].OpMean, holders: bits.OnesCount64(mask)}
	if len(ranked) > 1 {
		s.failover = ranked[1].OpMean
	}
	return s, nil
}

func (s score) less(o score) bool {
	return cmp.Or(cmp.Compare(s.op, o.op), cmp.Compare(s.failover, o.failover), cmp.Compare(s.holders, o.holders)) < 0
}

// search finds the best set: every subset for up to ExhaustiveRegions regions, beyond that
// the better of a greedy walk up from none and one down from all, each taking the best
// single change while it helps.
func (pl *planner) search(p *Plan) (uint64, error) {
	n, all := len(pl.regions), pl.allMask()
	var (
		best      uint64
		bestScore score
		found     bool
	)
	consider := func(mask uint64) (score, error) {
		s, err := pl.score(mask)
		if err != nil {
			return score{}, err
		}
		if !found || s.less(bestScore) || (s == bestScore && mask < best) {
			best, bestScore, found = mask, s, true
		}
		return s, nil
	}
	if n <= exhaustiveLimit {
		p.Search = "exhaustive"
		for mask := uint64(0); mask <= all; mask++ {
			if _, err := consider(mask); err != nil {
				return 0, err
			}
		}
		return best, nil
	}
	p.Search = "greedy"
	for _, start := range []uint64{0, all} {
		cur := start
		curScore, err := consider(cur)
		if err != nil {
			return 0, err
		}
		for {
			next, nextScore := cur, curScore
			for i := range n {
				bit := uint64(1) << i
				if (start == 0) == (cur&bit != 0) { // walking up adds, walking down removes
					continue
				}
				s, err := consider(cur ^ bit)
				if err != nil {
					return 0, err
				}
				if s.less(nextScore) {
					next, nextScore = cur^bit, s
				}
			}
			if next == cur {
				break
			}
			cur, curScore = next, nextScore
		}
	}
	return best, nil
}

// holdersReason says in one line why the recommended set beats none and all.
func (pl *planner) holdersReason(p *Plan) string {
	rec := p.Recommended
	var local, reads float64
	for _, c := range rec.Clients {
		reads += c.Reads
		if c.ReadAt == c.Region {
			local += c.Reads
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "read_leases.holders %s: the lowest mix-weighted latency, %s per operation with the leader in %s",
		p.setting(p.Holders), costmodel.Millis(rec.OpMean), rec.Leader)
	var alts []string
	for _, alt := range []uint64{0, pl.allMask()} {
		if h := pl.holders(alt); !slices.Equal(h, p.Holders) {
			alt := pl.rankLeaders(pl.byMask[alt])[0]
			alts = append(alts, fmt.Sprintf("%s %s", p.setting(h), costmodel.Millis(alt.OpMean)))
		}
	}
	if len(alts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(alts, ", "))
	}
	if reads > 0 {
		fmt.Fprintf(&b, "; %.0f%% of reads answered in their own region", 100*local/reads)
	}
	switch {
	case len(p.Holders) == 0 && p.WriteRate > 0:
		fmt.Fprintf(&b, "; every holder would cost writes, or its own reads waiting on %s writes/s in flight, more than it saves",
			formatRate(p.WriteRate))
	case len(p.Holders) == 0:
		b.WriteString("; every holder would cost writes more than it saves")
	case rec.FarthestHolderRTT > rec.Quorum:
		fmt.Fprintf(&b, "; writes wait %s for the farthest holder (%s), %s more than the quorum",
			costmodel.Millis(rec.FarthestHolderRTT), rec.FarthestHolder, costmodel.Millis(rec.FarthestHolderRTT-rec.Quorum))
	default:
		fmt.Fprintf(&b, "; writes wait for no holder beyond the quorum (%s)", costmodel.Millis(rec.Quorum))
	}
	if i := slices.Index(pl.regions, rec.Leader); slices.Contains(p.Holders, rec.Leader) && len(pl.regions) > 1 {
		with, without := pl.byMask[pl.mask(p.Holders)], pl.byMask[pl.mask(p.Holders)&^(1<<i)]
		if without != nil {
			next := pl.rankLeaders(with)[1]
			alt := pl.rankLeaders(without)[1]
			fmt.Fprintf(&b, "; the leader's region holds one for after a failover: with the leader in %s, %s per operation (without: %s)",
				next.Leader, costmodel.Millis(next.OpMean), costmodel.Millis(alt.OpMean))
		}
	}
	if len(p.Holders) > 0 && rec.HolderWait > 0 {
		fmt.Fprintf(&b, "; a holder's reads wait %s for writes in flight at %s writes/s",
			costmodel.Millis(rec.HolderWait), formatRate(p.WriteRate))
	}
	return b.String()
}

func (pl *planner) preferredReason(p *Plan) string {
	parts := make([]string, len(p.Preferred))
	for i, lr := range p.Preferred {
		parts[i] = fmt.Sprintf("%s %s", lr.Region, costmodel.Millis(lr.WriteMean))
	}
	s := fmt.Sprintf("placement.preferred_regions: ranked by the mix-weighted write p50 with the leader there and holders %s: %s",
		p.setting(p.Holders), strings.Join(parts, ", "))
	if pl.total.Writes == 0 {
		s += " (no writes in the mix: weighted by reads)"
	}
	if pl.pinned != "" {
		s += fmt.Sprintf(" (%s first: the leader region given)", pl.pinned)
	}
	return s
}
