package tune

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/georaft/georaft/costmodel"
)

// Text is the plan for a person: the recommendation and why, the predicted medians per
// client region with it, then every candidate, best first.
func (p *Plan) Text() string {
	var b strings.Builder
	t := p.Mix.totals()
	fmt.Fprintf(&b, "read leases and leader placement for clients in %d regions (%s reads/s, %s writes/s); nodes in %d regions; %s\n",
		len(p.Mix), formatRate(t.Reads), formatRate(t.Writes), len(p.Regions), p.searchNote())
	wait := fmt.Sprintf("writes arrive at random, %s per second, and a holder's lease reads wait for those it holds to apply", formatRate(p.WriteRate))
	if p.WriteRate == 0 {
		wait = "a holder's lease reads never wait for writes in flight"
	}
	fmt.Fprintf(&b, "assumed: a client is %s from the node in its region, and two nodes of one region as far apart (where the matrix says 0); an fsync costs %s; %s\n\n",
		costmodel.Millis(p.IntraRegionRTT), costmodel.Millis(p.Fsync), wait)
	fmt.Fprintf(&b, "  %-28s %s\n", "read_leases.holders", p.holdersValue())
	fmt.Fprintf(&b, "  %-28s %s\n", "placement.preferred_regions", flowList(p.PreferredRegions()))
	fmt.Fprintf(&b, "\nwhy:\n  - %s\n  - %s\n", p.HoldersReason, p.PreferredReason)

	rec := p.Recommended
	fmt.Fprintf(&b, "\npredicted p50 with holders %s and the leader in %s:\n", p.setting(rec.Holders), rec.Leader)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  client region\treads/s\twrites/s\tread\tread at\twrite\t")
	for _, c := range rec.Clients {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", c.Region, formatRate(c.Reads), formatRate(c.Writes),
			costmodel.Millis(c.Read), c.ReadAt, costmodel.Millis(c.Write))
	}
	fmt.Fprintf(tw, "  mix-weighted\t\t\t%s\t\t%s\t\n", costmodel.Millis(rec.ReadMean), costmodel.Millis(rec.WriteMean))
	tw.Flush()
	fmt.Fprintf(&b, "  per operation: %s\n", costmodel.Millis(rec.OpMean))

	fmt.Fprintf(&b, "\nevery candidate, best first (read/write p50 in ms per client region; means weighted by the mix):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	header := []string{"  holders", "leader"}
	for _, c := range p.Mix {
		header = append(header, c.Region)
	}
	header = append(header, "read", "write", "per op")
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, c := range p.Candidates {
		row := []string{"  " + p.setting(c.Holders), c.Leader}
		for _, cc := range c.Clients {
			row = append(row, tableMillis(cc.Read)+"/"+tableMillis(cc.Write))
		}
		row = append(row, tableMillis(c.ReadMean), tableMillis(c.WriteMean), tableMillis(c.OpMean))
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	return b.String()
}

func (p *Plan) searchNote() string {
	sets := len(p.Candidates) / max(1, len(p.Regions))
	if p.Search == "greedy" {
		return fmt.Sprintf("a greedy search (more than %d regions) tried %d read-lease sets with every leader region", ExhaustiveRegions, sets)
	}
	return fmt.Sprintf("every read-lease set (%d) tried with every leader region", sets)
}

// tableMillis is a latency in the candidates table: milliseconds to a tenth.
func tableMillis(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}

// holdersValue is read_leases.holders as a YAML value: all, none or a flow list of regions.
func (p *Plan) holdersValue() string {
	word, regions := p.HoldersSetting()
	if word != "" {
		return word
	}
	return flowList(regions)
}

func flowList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = yamlScalar(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// yamlSections are the read_leases and placement sections of a georaftd config.
func (p *Plan) yamlSections() string {
	return fmt.Sprintf("# %s\nread_leases:\n  holders: %s\n# %s\nplacement:\n  preferred_regions: %s\n",
		p.HoldersReason, p.holdersValue(), p.PreferredReason, flowList(p.PreferredRegions()))
}

// ansibleVars are the role's variables for the same two settings.
func (p *Plan) ansibleVars() string {
	return fmt.Sprintf("# %s\ngeoraft_read_lease_holders: %s\n# %s\ngeoraft_preferred_regions: %s\n",
		p.HoldersReason, p.holdersValue(), p.PreferredReason, flowList(p.PreferredRegions()))
}

// The JSON form: field names and order are an interface (docs/tuning.md); latencies are
// milliseconds to the microsecond.

type jsonMix struct {
	Region string  `json:"region"`
	Reads  float64 `json:"reads_per_s"`
	Writes float64 `json:"writes_per_s"`
}

type jsonClient struct {
	Region string  `json:"region"`
	Reads  float64 `json:"reads_per_s"`
	Writes float64 `json:"writes_per_s"`
	Read   float64 `json:"read_p50_ms"`
	ReadAt string  `json:"read_at"`
	Write  float64 `json:"write_p50_ms"`
}

type jsonCandidate struct {
	Holders           []string     `json:"holders"`
	Leader            string       `json:"leader"`
	ReadMean          float64      `json:"read_mean_ms"`
	WriteMean         float64      `json:"write_mean_ms"`
	OpMean            float64      `json:"op_mean_ms"`
	Quorum            float64      `json:"quorum_rtt_ms"`
	FarthestHolder    string       `json:"farthest_holder"`
	FarthestHolderRTT float64      `json:"farthest_holder_rtt_ms"`
	CommitWait        float64      `json:"commit_wait_ms"`
	HolderWait        float64      `json:"holder_wait_ms"`
	Clients           []jsonClient `json:"clients"`
}

type jsonLeaderRank struct {
	Region    string  `json:"region"`
	WriteMean float64 `json:"write_mean_ms"`
	ReadMean  float64 `json:"read_mean_ms"`
}

type jsonPlan struct {
	Mix         []jsonMix `json:"mix"`
	Assumptions struct {
		Fsync          float64 `json:"fsync_ms"`
		IntraRegionRTT float64 `json:"intra_region_rtt_ms"`
		WriteRate      float64 `json:"holder_wait_write_rate_per_s"`
	} `json:"assumptions"`
	Regions         []string         `json:"node_regions"`
	Search          string           `json:"search"`
	Holders         []string         `json:"holders"`
	HoldersReason   string           `json:"holders_reason"`
	Preferred       []jsonLeaderRank `json:"preferred_regions"`
	PreferredReason string           `json:"preferred_reason"`
	// Config is what goes in a georaftd config, exactly as it would be written there.
	Config struct {
		ReadLeases struct {
			Holders any `json:"holders"` // "all", "none" or a list of regions
		} `json:"read_leases"`
		Placement struct {
			PreferredRegions []string `json:"preferred_regions"`
		} `json:"placement"`
	} `json:"config"`
	Recommended jsonCandidate   `json:"recommended"`
	Candidates  []jsonCandidate `json:"candidates"`
}

func jsonMillis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c Candidate) jsonForm() jsonCandidate {
	jc := jsonCandidate{Holders: nonNil(c.Holders), Leader: c.Leader, ReadMean: jsonMillis(c.ReadMean),
		WriteMean: jsonMillis(c.WriteMean), OpMean: jsonMillis(c.OpMean), Quorum: jsonMillis(c.Quorum),
		FarthestHolder: c.FarthestHolder, FarthestHolderRTT: jsonMillis(c.FarthestHolderRTT),
		CommitWait: jsonMillis(c.CommitWait), HolderWait: jsonMillis(c.HolderWait), Clients: []jsonClient{}}
	for _, cc := range c.Clients {
		jc.Clients = append(jc.Clients, jsonClient{Region: cc.Region, Reads: cc.Reads, Writes: cc.Writes,
			Read: jsonMillis(cc.Read), ReadAt: cc.ReadAt, Write: jsonMillis(cc.Write)})
	}
	return jc
}

// MarshalJSON gives the plan's stable JSON form (docs/tuning.md).
func (p *Plan) MarshalJSON() ([]byte, error) {
	var j jsonPlan
	for _, rl := range p.Mix {
		j.Mix = append(j.Mix, jsonMix{rl.Region, rl.Reads, rl.Writes})
	}
	j.Assumptions.Fsync = jsonMillis(p.Fsync)
	j.Assumptions.IntraRegionRTT = jsonMillis(p.IntraRegionRTT)
	j.Assumptions.WriteRate = p.WriteRate
	j.Regions, j.Search = nonNil(p.Regions), p.Search
	j.Holders, j.HoldersReason = nonNil(p.Holders), p.HoldersReason
	for _, lr := range p.Preferred {
		j.Preferred = append(j.Preferred, jsonLeaderRank{lr.Region, jsonMillis(lr.WriteMean), jsonMillis(lr.ReadMean)})
	}
	j.PreferredReason = p.PreferredReason
	if word, regions := p.HoldersSetting(); word != "" {
		j.Config.ReadLeases.Holders = word
	} else {
		j.Config.ReadLeases.Holders = regions
	}
	j.Config.Placement.PreferredRegions = p.PreferredRegions()
	j.Recommended = p.Recommended.jsonForm()
	for _, c := range p.Candidates {
		j.Candidates = append(j.Candidates, c.jsonForm())
	}
	return json.Marshal(j)
}
