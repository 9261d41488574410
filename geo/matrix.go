// Package geo holds the round-trip times between regions that georaft's timing, latency
// emulation and benchmark predictions are built on.
//
// A Matrix is read from CSV in milliseconds:
//
//	# comment lines start with #
//	region,us-central1,us-east1
//	us-central1,0,32
//	us-east1,32,0
//
// The same format serves the approximate public figures shipped in configs/geo and RTTs a
// running cluster measured (each node's transport pings its peers), so measured values can
// replace guesses without another parser. A Matrix is always valid: every constructor checks
// that it is square, has one row and one column per region, positive RTTs off the diagonal
// and no asymmetry beyond a tolerance. The diagonal is the RTT between two nodes in the same
// region; zero is fine there.
package geo

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Validation failures wrap one of these, so callers can tell them apart with errors.Is.
var (
	ErrEmpty          = errors.New("rtt matrix has no regions")
	ErrDuplicate      = errors.New("duplicate region")
	ErrMissingRegion  = errors.New("missing region")
	ErrNotSquare      = errors.New("rtt matrix is not square")
	ErrBadCell        = errors.New("bad rtt value")
	ErrNonPositiveRTT = errors.New("rtt must be positive between different regions")
	ErrAsymmetric     = errors.New("asymmetric rtt")
	ErrUnknownRegion  = errors.New("unknown region")
)

// Tolerance bounds how far RTT(a, b) and RTT(b, a) may differ. Both directions of a measured
// matrix are round trips over the same path taken by different nodes, so they differ only by
// noise; a larger gap means a typo or a mixed-up row. Two values are accepted when they differ
// by at most max(Abs, Rel × the larger one).
type Tolerance struct {
	Abs time.Duration
	Rel float64
}

// DefaultTolerance accepts the jitter of RTTs measured by the nodes (a few milliseconds, or
// 10% on long paths) and rejects anything that looks like a wrong cell.
var DefaultTolerance = Tolerance{Abs: 2 * time.Millisecond, Rel: 0.10}

func (t Tolerance) allows(a, b time.Duration) bool {
	diff, larger := a-b, max(a, b)
	if diff < 0 {
		diff = -diff
	}
	return diff <= max(t.Abs, time.Duration(t.Rel*float64(larger)))
}

// Matrix is a validated table of round-trip times between regions. The zero Matrix has no
// regions; every query on it reports an unknown region.
type Matrix struct {
	regions []string
	index   map[string]int
	rtt     [][]time.Duration
}

// RegionRTT is one region and the RTT to it from some origin.
type RegionRTT struct {
	Region string
	RTT    time.Duration
}

// New builds a Matrix from regions and a row per region (rtt[i][j] is the RTT from
// regions[i] to regions[j]), checking it with tol.
func New(regions []string, rtt [][]time.Duration, tol Tolerance) (Matrix, error) {
	if len(regions) == 0 {
		return Matrix{}, ErrEmpty
	}
	m := Matrix{regions: slices.Clone(regions), index: make(map[string]int, len(regions))}
	for i, r := range regions {
		if strings.TrimSpace(r) == "" {
			return Matrix{}, fmt.Errorf("%w: region %d has an empty name", ErrMissingRegion, i+1)
		}
		if _, dup := m.index[r]; dup {
			return Matrix{}, fmt.Errorf("%w %q", ErrDuplicate, r)
		}
		m.index[r] = i
	}
	if len(rtt) != len(regions) {
		return Matrix{}, fmt.Errorf("%w: %d regions but %d rows", ErrNotSquare, len(regions), len(rtt))
	}
	m.rtt = make([][]time.Duration, len(rtt))
	for i, row := range rtt {
		if len(row) != len(regions) {
			return Matrix{}, fmt.Errorf("%w: row %s has %d values, want one per region (%d)",
				ErrNotSquare, regions[i], len(row), len(regions))
		}
		m.rtt[i] = slices.Clone(row)
	}
	if err := m.check(tol); err != nil {
		return Matrix{}, err
	}
	return m, nil
}

// check reports the first bad cell in row order, then the first asymmetric pair.
func (m Matrix) check(tol Tolerance) error {
	for i, row := range m.rtt {
		for j, d := range row {
			switch {
			case i == j && d < 0:
				return fmt.Errorf("%w: row %s column %s: intra-region rtt must not be negative, got %v",
					ErrBadCell, m.regions[i], m.regions[j], d)
			case i != j && d <= 0:
				return fmt.Errorf("%w: row %s column %s is %v", ErrNonPositiveRTT, m.regions[i], m.regions[j], d)
			}
		}
	}
	for i := range m.rtt {
		for j := i + 1; j < len(m.rtt); j++ {
			ab, ba := m.rtt[i][j], m.rtt[j][i]
			if !tol.allows(ab, ba) {
				return fmt.Errorf("%w: %s→%s is %v but %s→%s is %v (tolerance: %v or %.0f%%)",
					ErrAsymmetric, m.regions[i], m.regions[j], ab, m.regions[j], m.regions[i], ba,
					tol.Abs, tol.Rel*100)
			}
		}
	}
	return nil
}

// Len is the number of regions.
func (m Matrix) Len() int { return len(m.regions) }

// Regions lists the regions in the order of the matrix's rows.
func (m Matrix) Regions() []string { return slices.Clone(m.regions) }

// Has reports whether region is in the matrix.
func (m Matrix) Has(region string) bool {
	_, ok := m.index[region]
	return ok
}

func (m Matrix) lookup(region string) (int, error) {
	i, ok := m.index[region]
	if !ok {
		return 0, fmt.Errorf("%w %q (the matrix has %s)", ErrUnknownRegion, region, strings.Join(m.regions, ", "))
	}
	return i, nil
}

// RTT is the round-trip time from region a to region b; RTT(a, a) is the intra-region RTT.
func (m Matrix) RTT(a, b string) (time.Duration, error) {
	i, err := m.lookup(a)
	if err != nil {
		return 0, err
	}
	j, err := m.lookup(b)
	if err != nil {
		return 0, err
	}
	return m.rtt[i][j], nil
}

// NearestPeers lists every other region by RTT from region, nearest first; ties go by name
// so the order is the same on every run.
func (m Matrix) NearestPeers(region string) ([]RegionRTT, error) {
	i, err := m.lookup(region)
	if err != nil {
		return nil, err
	}
	peers := make([]RegionRTT, 0, len(m.regions)-1)
	for j, r := range m.regions {
		if j != i {
			peers = append(peers, RegionRTT{Region: r, RTT: m.rtt[i][j]})
		}
	}
	sortByRTT(peers)
	return peers, nil
}

func sortByRTT(rs []RegionRTT) {
	slices.SortFunc(rs, func(a, b RegionRTT) int {
		return cmp.Or(cmp.Compare(a.RTT, b.RTT), strings.Compare(a.Region, b.Region))
	})
}

// QuorumRTT is how long a leader in leaderRegion waits for a majority of an n-node cluster
// that has one node per region, its peers in the n−1 regions nearest to it: the leader
// counts itself, so the ack that completes the majority comes from the (n/2)-th nearest
// peer. For five nodes in five regions that is the second-nearest other region.
func (m Matrix) QuorumRTT(leaderRegion string, n int) (time.Duration, error) {
	peers, err := m.NearestPeers(leaderRegion)
	if err != nil {
		return 0, err
	}
	if n < 1 || n > len(peers)+1 {
		return 0, fmt.Errorf("quorum rtt from %s: %d nodes at one per region needs between 1 and %d regions",
			leaderRegion, n, len(peers)+1)
	}
	others := make([]string, n-1)
	for k := range others {
		others[k] = peers[k].Region
	}
	return m.QuorumRTTAmong(leaderRegion, others)
}

// QuorumRTTAmong is QuorumRTT for any placement: others are the regions of the leader's
// fellow voters, one entry per node, repeats allowed (two nodes in one region are the
// diagonal's RTT apart).
func (m Matrix) QuorumRTTAmong(leaderRegion string, others []string) (time.Duration, error) {
	i, err := m.lookup(leaderRegion)
	if err != nil {
		return 0, err
	}
	rtts := make([]time.Duration, len(others))
	for k, r := range others {
		j, err := m.lookup(r)
		if err != nil {
			return 0, fmt.Errorf("voter %d: %w", k+1, err)
		}
		rtts[k] = m.rtt[i][j]
	}
	acks := (len(others) + 1) / 2 // a majority of n is n/2+1 and the leader is one of them
	if acks == 0 {
		return 0, nil
	}
	slices.Sort(rtts)
	return rtts[acks-1], nil
}

// BestLeader is the region whose leader reaches a majority fastest with one node per region
// (the lowest QuorumRTT); ties go to the region listed first.
func (m Matrix) BestLeader() (RegionRTT, error) {
	if len(m.regions) == 0 {
		return RegionRTT{}, ErrEmpty
	}
	best := RegionRTT{RTT: -1}
	for _, r := range m.regions {
		q, err := m.QuorumRTT(r, len(m.regions))
		if err != nil {
			return RegionRTT{}, err
		}
		if best.RTT < 0 || q < best.RTT {
			best = RegionRTT{Region: r, RTT: q}
		}
	}
	return best, nil
}
