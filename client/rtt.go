package client

import (
	"fmt"
	"slices"
	"time"

	"github.com/georaft/georaft/geo"
)

// MeasuredRTTMatrix turns what each node measured to its peers (Status peers[].rtt_nanos,
// from the transport's pings) into a region RTT matrix, for tuning leases from real figures
// instead of published ones. Both directions of a pair are averaged, and so are several
// node pairs between the same two regions. A pair nobody measured (a node down, or pings
// not yet answered) is an error naming it.
func MeasuredRTTMatrix(statuses []NodeStatus) (geo.Matrix, error) {
	regionOf := map[uint64]string{}
	for _, ns := range statuses {
		if ns.Status == nil {
			continue
		}
		regionOf[ns.Status.Id] = ns.Status.Region
		for _, p := range ns.Status.Peers {
			if _, ok := regionOf[p.Id]; !ok {
				regionOf[p.Id] = p.Region
			}
		}
	}
	var regions []string
	for _, r := range regionOf {
		if r == "" {
			return geo.Matrix{}, fmt.Errorf("a node reports no region; set node.region in its config")
		}
		if !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	slices.Sort(regions)
	if len(regions) < 2 {
		return geo.Matrix{}, fmt.Errorf("need nodes in at least two regions to measure a matrix, got %v", regions)
	}
	idx := map[string]int{}
	for i, r := range regions {
		idx[r] = i
	}
	n := len(regions)
	sum := make([][]time.Duration, n)
	count := make([][]int, n)
	for i := range sum {
		sum[i], count[i] = make([]time.Duration, n), make([]int, n)
	}
	for _, ns := range statuses {
		if ns.Status == nil {
			continue
		}
		a := idx[ns.Status.Region]
		for _, p := range ns.Status.Peers {
			if p.RttNanos <= 0 {
				continue
			}
			b := idx[regionOf[p.Id]]
			rtt := time.Duration(p.RttNanos)
			sum[a][b] += rtt
			sum[b][a] += rtt
			count[a][b]++
			count[b][a]++
		}
	}
	rtt := make([][]time.Duration, n)
	for i := range rtt {
		rtt[i] = make([]time.Duration, n)
		for j := range rtt[i] {
			switch {
			case count[i][j] > 0:
				rtt[i][j] = sum[i][j] / time.Duration(count[i][j])
			case i == j:
				// One node in the region: nothing to measure inside it.
			default:
				return geo.Matrix{}, fmt.Errorf("no RTT measured between %s and %s: is a node there down, or has it not pinged its peers yet?",
					regions[i], regions[j])
			}
		}
	}
	return geo.New(regions, rtt, geo.DefaultTolerance)
}
