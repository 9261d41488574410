package tune

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/georaft/georaft/costmodel"
	"github.com/georaft/georaft/geo"
)

var update = flag.Bool("update", false, "rewrite testdata/plan-3-regions.json")

func mustMix(t *testing.T, s string) Mix {
	t.Helper()
	mix, err := ParseMix(s)
	if err != nil {
		t.Fatal(err)
	}
	return mix
}

// The mixes of docs/tuning.md's worked example.
const (
	readHeavyMix  = "us-central1=900r+100w,europe-west1=500r+10w,us-east1=300r+10w,us-west1=300r+10w,asia-east1=400r+5w"
	writeHeavyMix = "us-central1=100r+1000w,*=50r+20w"
)

func planShipped(t *testing.T, opts Options) Result {
	t.Helper()
	r := deriveShipped(t, opts)
	if r.Plan == nil {
		t.Fatal("a mix but no plan")
	}
	return r
}

func candidate(t *testing.T, p *Plan, leader string, holders ...string) Candidate {
	t.Helper()
	for _, c := range p.Candidates {
		if c.Leader == leader && slices.Equal(c.Holders, holders) {
			return c
		}
	}
	t.Fatalf("no candidate with holders %v and the leader in %s", holders, leader)
	return Candidate{}
}

func client(t *testing.T, c Candidate, region string) ClientCost {
	t.Helper()
	for _, cc := range c.Clients {
		if cc.Region == region {
			return cc
		}
	}
	t.Fatalf("candidate %v/%s has no client region %s", c.Holders, c.Leader, region)
	return ClientCost{}
}

// Reads only: every region reads locally with every holder, and the leader goes where writes
// would be cheapest with all of them holding: us-west1, whose farthest holder (europe-west1,
// 135ms) is nearer than us-central1's (asia-east1, 155ms). By hand, the mean write p50 with
// equal reads everywhere (1ms fsync, 1ms inside a region):
//
//	leader us-west1:    (36+65+1+135+118)/5 = 71, + 135 + 1 = 207ms
//	leader us-central1: (1+32+36+100+155)/5 = 64.8, + 155 + 1 = 220.8ms
func TestPlanReadsOnly(t *testing.T) {
	r := planShipped(t, Options{Mix: mustMix(t, "*=1000r")})
	p := r.Plan
	if word, _ := p.HoldersSetting(); word != "all" {
		t.Errorf("holders %v, want all\n%s", p.Holders, p.HoldersReason)
	}
	for _, c := range p.Recommended.Clients {
		if c.Read != ms || c.ReadAt != c.Region {
			t.Errorf("%s reads in %v at %s, want 1ms locally", c.Region, c.Read, c.ReadAt)
		}
	}
	want := []LeaderRank{{"us-west1", 207 * ms, ms}, {"us-central1", 220800 * time.Microsecond, ms}}
	if len(p.Preferred) != 5 || p.Preferred[0] != want[0] || p.Preferred[1] != want[1] {
		t.Errorf("preferred %v, want it to start %v", p.Preferred, want)
	}
	// The timing follows the leader to us-west1: its quorum RTT is 65ms (us-east1).
	if r.LeaderRegion != "us-west1" || r.LeaderQuorumRTT != 65*ms || r.HeartbeatInterval != 70*ms {
		t.Errorf("timing for a leader in %s (quorum %v, heartbeat %v), want us-west1, 65ms, 70ms",
			r.LeaderRegion, r.LeaderQuorumRTT, r.HeartbeatInterval)
	}
	if !strings.Contains(p.PreferredReason, "no writes in the mix: weighted by reads") {
		t.Errorf("preferred reason %q does not say how it ranked without writes", p.PreferredReason)
	}
}

// docs/tuning.md's read-heavy example, 135 writes/s cluster-wide. A holder's reads wait for
// the writes it holds to apply, so only us-west1 earns a lease, barely; with reads and
// writes never overlapping, all regions do.
func TestPlanReadHeavy(t *testing.T) {
	p := planShipped(t, Options{Mix: mustMix(t, readHeavyMix)}).Plan
	if !slices.Equal(p.Holders, []string{"us-west1"}) || p.PreferredRegions()[0] != "us-central1" {
		t.Errorf("holders %v, preferred %v; want [us-west1], us-central1 first\n%s", p.Holders, p.PreferredRegions(), p.Text())
	}
	if p.WriteRate != 135 || p.Search != "exhaustive" || len(p.Candidates) != 32*5 {
		t.Errorf("write rate %v, search %s, %d candidates; want 135, exhaustive, 160", p.WriteRate, p.Search, len(p.Candidates))
	}
	// Hand-computed: with the leader in us-central1 and a holder in us-west1 the commit
	// wait is 36ms + 1ms (the holder is no farther than the quorum); a read at the holder
	// waits 37ms − ln2/135 s (5.134ms) = 31.866ms.
	rec := p.Recommended
	if rec.CommitWait != 37*ms || rec.HolderWait.Round(time.Microsecond) != 31866*time.Microsecond {
		t.Errorf("commit wait %v, holder wait %v; want 37ms, 31.866ms", rec.CommitWait, rec.HolderWait)
	}
	if c := client(t, rec, "asia-east1"); c.ReadAt != "us-west1" || c.Read.Round(time.Microsecond) != 149866*time.Microsecond {
		t.Errorf("asia-east1 reads at %s in %v, want us-west1 in 118 + 31.866ms", c.ReadAt, c.Read)
	}
	if c := client(t, rec, "europe-west1"); c.ReadAt != "us-central1" || c.Read != 100*ms || c.Write != 137*ms {
		t.Errorf("europe-west1: read %v at %s, write %v; want 100ms at the leader, 137ms", c.Read, c.ReadAt, c.Write)
	}
	none := candidate(t, p, "us-central1")
	if !(rec.OpMean < none.OpMean) {
		t.Errorf("recommended %v per op is not below none's %v", rec.OpMean, none.OpMean)
	}

	calm := planShipped(t, Options{Mix: mustMix(t, readHeavyMix), NoHolderWait: true}).Plan
	if word, _ := calm.HoldersSetting(); word != "all" || calm.PreferredRegions()[0] != "us-central1" {
		t.Errorf("without the holder wait: holders %v, preferred %v; want all, us-central1 first", calm.Holders, calm.PreferredRegions())
	}
	// All holders, leader us-central1: every read local, a write from us-central1 costs
	// the RTT to asia-east1 (1 + 155 + 1ms).
	all := candidate(t, calm, "us-central1", "us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1")
	if c := client(t, all, "us-central1"); c.Write != 157*ms || all.ReadMean != ms || all.HolderWait != 0 {
		t.Errorf("all hold: us-central1 writes in %v, reads average %v, wait %v; want 157ms, 1ms, 0", c.Write, all.ReadMean, all.HolderWait)
	}

	// The per-key wait: spread over 1000 keys, a read waits only for writes of its key, 0.135
	// per second, and every region holding pays off again; over 10 keys (13.5 writes/s a
	// key) it does not.
	spread := planShipped(t, Options{Mix: mustMix(t, readHeavyMix), Keys: 1000}).Plan
	if word, _ := spread.HoldersSetting(); word != "all" || spread.WriteRate != 0.135 {
		t.Errorf("over 1000 keys: holders %v, wait rate %v; want all, 0.135/s", spread.Holders, spread.WriteRate)
	}
	hot := planShipped(t, Options{Mix: mustMix(t, readHeavyMix), Keys: 10}).Plan
	if word, _ := hot.HoldersSetting(); word == "all" {
		t.Errorf("over 10 keys: holders all; want fewer (13.5 writes/s on each key)")
	}
}

// docs/tuning.md's write-heavy example: no holder pays for itself, and the leader stays
// where most writes come from.
func TestPlanWriteHeavy(t *testing.T) {
	p := planShipped(t, Options{Mix: mustMix(t, writeHeavyMix)}).Plan
	if len(p.Holders) != 0 || p.PreferredRegions()[0] != "us-central1" {
		t.Errorf("holders %v, preferred %v; want none, us-central1 first\n%s", p.Holders, p.PreferredRegions(), p.HoldersReason)
	}
	if word, _ := p.HoldersSetting(); word != "none" || !strings.Contains(p.HoldersReason, "more than it saves") {
		t.Errorf("setting %q, reason %q", word, p.HoldersReason)
	}
	// Today's figures with none: europe-west1 reads at the leader (100ms) and writes in
	// 100 + 36 + 1ms.
	if c := client(t, p.Recommended, "europe-west1"); c.Read != 100*ms || c.Write != 137*ms {
		t.Errorf("europe-west1: read %v, write %v; want 100ms, 137ms", c.Read, c.Write)
	}
	for i := 1; i < len(p.Preferred); i++ {
		if p.Preferred[i].WriteMean < p.Preferred[i-1].WriteMean {
			t.Errorf("preferred regions not ranked by write p50: %v", p.Preferred)
		}
	}
}

func TestPlanPinnedLeader(t *testing.T) {
	r := planShipped(t, Options{Mix: mustMix(t, writeHeavyMix), LeaderRegion: "europe-west1"})
	p := r.Plan
	if p.PreferredRegions()[0] != "europe-west1" || p.Recommended.Leader != "europe-west1" || r.LeaderRegion != "europe-west1" {
		t.Errorf("pinned europe-west1: preferred %v, recommended leader %s, timing leader %s", p.PreferredRegions(), p.Recommended.Leader, r.LeaderRegion)
	}
	if !strings.Contains(p.PreferredReason, "europe-west1 first: the leader region given") {
		t.Errorf("preferred reason %q does not say the leader was given", p.PreferredReason)
	}
	if r.HeartbeatInterval != 100*ms {
		t.Errorf("heartbeat %v, want 100ms for a leader in europe-west1", r.HeartbeatInterval)
	}
}

// Holders are chosen by region: two nodes in us-central1 hold together; a region with
// clients and no node is still a client region.
func TestPlanPlacementByRegion(t *testing.T) {
	r := planShipped(t, Options{Placement: map[uint64]string{1: "us-central1", 2: "us-central1", 3: "europe-west1"},
		Mix: mustMix(t, "asia-east1=100r,europe-west1=100r+1w,us-central1=10r")})
	p := r.Plan
	if !slices.Equal(p.Regions, []string{"us-central1", "europe-west1"}) || len(p.Candidates) != 4*2 {
		t.Fatalf("regions %v, %d candidates; want us-central1, europe-west1 and 8", p.Regions, len(p.Candidates))
	}
	// With the leader in us-central1 its neighbour completes the quorum (1ms); a holder in
	// europe-west1 makes writes wait 100ms.
	c := candidate(t, p, "us-central1", "europe-west1")
	if c.Quorum != ms || c.FarthestHolder != "europe-west1" || c.FarthestHolderRTT != 100*ms || c.CommitWait != 101*ms {
		t.Errorf("quorum %v, farthest holder %s %v, commit wait %v", c.Quorum, c.FarthestHolder, c.FarthestHolderRTT, c.CommitWait)
	}
	if cc := client(t, c, "asia-east1"); cc.ReadAt != "us-central1" || cc.Read != 155*ms {
		t.Errorf("asia-east1 (no node) reads at %s in %v, want us-central1 in 155ms", cc.ReadAt, cc.Read)
	}
}

// Greedy search beyond ExhaustiveRegions: its choice is never better than the exhaustive
// optimum (a check on both), no single region added or removed improves it, and none and
// all are always among the candidates.
func TestGreedySearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	matched := 0
	const trials = 6
	for trial := range trials {
		m := randomMatrix(t, rng, 9)
		var mixParts []string
		for _, region := range m.Regions() {
			mixParts = append(mixParts, fmt.Sprintf("%s=%dr+%dw", region, rng.IntN(1000), rng.IntN(20)))
		}
		opts := Options{Mix: mustMix(t, strings.Join(mixParts, ",")), NoHolderWait: trial%2 == 0}
		greedy, err := Derive(m, opts)
		if err != nil {
			t.Fatal(err)
		}
		exhaustiveLimit = 9
		full, err := Derive(m, opts)
		exhaustiveLimit = ExhaustiveRegions
		if err != nil {
			t.Fatal(err)
		}
		g, f := greedy.Plan, full.Plan
		if g.Search != "greedy" || f.Search != "exhaustive" || len(f.Candidates) != 512*9 {
			t.Fatalf("searches %s and %s with %d candidates", g.Search, f.Search, len(f.Candidates))
		}
		if g.Recommended.OpMean < f.Recommended.OpMean {
			t.Fatalf("trial %d: greedy found %v per op, below the exhaustive optimum %v", trial, g.Recommended.OpMean, f.Recommended.OpMean)
		}
		if g.Recommended.OpMean == f.Recommended.OpMean {
			matched++
		}
		// Local optimality, checked against the exhaustive table.
		best := bestOpMean(f, g.Holders)
		for _, region := range g.Regions {
			flipped := slices.DeleteFunc(slices.Clone(g.Holders), func(r string) bool { return r == region })
			if len(flipped) == 0 {
				flipped = nil // as the plan writes none
			}
			if len(flipped) == len(g.Holders) {
				flipped = append(flipped, region)
				slices.SortFunc(flipped, func(a, b string) int { return slices.Index(g.Regions, a) - slices.Index(g.Regions, b) })
			}
			if bestOpMean(f, flipped) < best {
				t.Fatalf("trial %d: greedy stopped at %v (%v) but %v is better (%v)", trial, g.Holders, best, flipped, bestOpMean(f, flipped))
			}
		}
		var hasNone, hasAll bool
		for _, c := range g.Candidates {
			hasNone = hasNone || len(c.Holders) == 0
			hasAll = hasAll || len(c.Holders) == 9
		}
		if !hasNone || !hasAll {
			t.Fatalf("trial %d: greedy candidates lack none (%v) or all (%v)", trial, hasNone, hasAll)
		}
	}
	t.Logf("greedy found the exhaustive optimum in %d of %d trials", matched, trials)
}

// bestOpMean is a set's per-operation mean with the leader where the plan would put it:
// the region with the lowest write mean, then read mean.
func bestOpMean(p *Plan, holders []string) time.Duration {
	var best *Candidate
	for i, c := range p.Candidates {
		if !slices.Equal(c.Holders, holders) {
			continue
		}
		if best == nil || c.WriteMean < best.WriteMean || (c.WriteMean == best.WriteMean && c.ReadMean < best.ReadMean) {
			best = &p.Candidates[i]
		}
	}
	return best.OpMean
}

func randomMatrix(t *testing.T, rng *rand.Rand, n int) geo.Matrix {
	t.Helper()
	regions := make([]string, n)
	rtt := make([][]time.Duration, n)
	for i := range regions {
		regions[i] = fmt.Sprintf("r%d", i)
		rtt[i] = make([]time.Duration, n)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			d := time.Duration(1+rng.IntN(250)) * ms
			rtt[i][j], rtt[j][i] = d, d
		}
	}
	m, err := geo.New(regions, rtt, geo.DefaultTolerance)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Mix: Mix{{"mars", Load{1, 0}}}}, `region "mars" is not in the rtt matrix`},
		{Options{Mix: Mix{{"us-east1", Load{0, 0}}}}, "no reads or writes at all"},
		{Options{Mix: Mix{{"us-east1", Load{1, 0}}}, Fsync: -ms}, "must not be negative"},
		{Options{Mix: Mix{{"us-east1", Load{1, 0}}}, LeaderRegion: "mars"}, `leader region "mars"`},
	} {
		if _, err := DeriveFile(shippedMatrix, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Derive(%+v) err = %v, want it to mention %q", tc.opts, err, tc.want)
		}
	}
}

func TestPlanFormats(t *testing.T) {
	without := deriveShipped(t, Options{})
	for _, out := range []string{without.Text(), without.YAML(), without.AnsibleVars()} {
		if strings.Contains(out, "read_lease") || strings.Contains(out, "preferred_regions") {
			t.Fatalf("without a mix the output changed:\n%s", out)
		}
	}
	for _, tc := range []struct {
		mix       string
		holders   any
		preferred []any
	}{
		{"*=1000r", "all", []any{"us-west1", "us-central1", "us-east1", "europe-west1", "asia-east1"}},
		{writeHeavyMix, "none", []any{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}},
		{readHeavyMix, []any{"us-west1"}, []any{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}},
	} {
		r := planShipped(t, Options{Mix: mustMix(t, tc.mix)})
		var cfg struct {
			Timing     map[string]any `yaml:"timing"`
			ReadLeases struct {
				Holders any `yaml:"holders"`
			} `yaml:"read_leases"`
			Placement struct {
				PreferredRegions []any `yaml:"preferred_regions"`
			} `yaml:"placement"`
		}
		if err := yaml.Unmarshal([]byte(r.YAML()), &cfg); err != nil {
			t.Fatalf("YAML() does not parse: %v\n%s", err, r.YAML())
		}
		if fmt.Sprint(cfg.ReadLeases.Holders) != fmt.Sprint(tc.holders) || !slices.Equal(cfg.Placement.PreferredRegions, tc.preferred) || len(cfg.Timing) != 5 {
			t.Errorf("mix %s: yaml holders %v, preferred %v, %d timing keys; want %v, %v, 5",
				tc.mix, cfg.ReadLeases.Holders, cfg.Placement.PreferredRegions, len(cfg.Timing), tc.holders, tc.preferred)
		}
		var vars map[string]any
		if err := yaml.Unmarshal([]byte(r.AnsibleVars()), &vars); err != nil {
			t.Fatalf("AnsibleVars() does not parse: %v", err)
		}
		if fmt.Sprint(vars["georaft_read_lease_holders"]) != fmt.Sprint(tc.holders) ||
			fmt.Sprint(vars["georaft_preferred_regions"]) != fmt.Sprint(tc.preferred) ||
			vars["georaft_expected_leader_region"] != tc.preferred[0] {
			t.Errorf("mix %s: ansible vars %v", tc.mix, vars)
		}
		text := r.Text()
		for _, want := range []string{r.Plan.HoldersReason, r.Plan.PreferredReason, "every candidate, best first", "per operation: "} {
			if !strings.Contains(text, want) {
				t.Errorf("mix %s: Text() lacks %q", tc.mix, want)
			}
		}
		if rows := strings.Count(text, "\n  ") - strings.Count(r.Plan.Text(), "\n  "); rows < 0 {
			t.Errorf("plan text not inside Text()")
		}
	}
}

// The JSON form is an interface: a 3-region plan is compared with a committed copy
// (go test ./tune -run TestPlanJSONIsStable -update rewrites it).
func TestPlanJSONIsStable(t *testing.T) {
	r, err := DeriveCSV(strings.NewReader("region,a,b,c\na,0,10,40\nb,10,0,30\nc,40,30,0\n"),
		Options{Mix: mustMix(t, "a=100r+10w,b=50r,c=200r+1w")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(r.Plan, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/plan-3-regions.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the plan's JSON changed; if on purpose, run go test ./tune -run TestPlanJSONIsStable -update and say so in docs/tuning.md\ngot:\n%s", got)
	}
	var doc map[string]any
	if err := json.Unmarshal(got, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"mix", "assumptions", "holders", "holders_reason", "preferred_regions", "config", "recommended", "candidates"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("plan JSON lacks %q", key)
		}
	}
	if n := len(doc["candidates"].([]any)); n != 8*3 {
		t.Errorf("%d candidates, want every set of 3 regions with every leader: 24", n)
	}
}

// docs/tuning.md's worked example quotes these recommendations; keep it in step.
func TestTuningDocQuotesTheWorkedExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/tuning.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"read-heavy", Options{Mix: mustMix(t, readHeavyMix)}},
		{"read-heavy, `--no-holder-wait`", Options{Mix: mustMix(t, readHeavyMix), NoHolderWait: true}},
		{"write-heavy", Options{Mix: mustMix(t, writeHeavyMix)}},
	} {
		p := planShipped(t, tc.opts).Plan
		none := bestOpMean(p, nil)
		all := bestOpMean(p, p.Regions)
		holders := "`" + p.holdersValue() + "`"
		rows = append(rows, fmt.Sprintf("| %s | %s | `%s` | %s | %s | %s |", tc.name, holders, flowList(p.PreferredRegions()),
			costmodel.Millis(p.Recommended.OpMean), costmodel.Millis(none), costmodel.Millis(all)))
		if tc.name == "read-heavy" {
			for _, c := range p.Recommended.Clients {
				rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", c.Region, formatRate(c.Reads), formatRate(c.Writes),
					costmodel.Millis(c.Read), c.ReadAt, costmodel.Millis(c.Write)))
			}
		}
	}
	for _, d := range []int{32, 16, 8, 4, 1} {
		var parts []string
		for _, e := range []struct {
			region        string
			reads, writes float64
		}{{"us-central1", 900, 100}, {"europe-west1", 500, 10}, {"us-east1", 300, 10}, {"us-west1", 300, 10}, {"asia-east1", 400, 5}} {
			parts = append(parts, fmt.Sprintf("%s=%sr+%sw", e.region, formatRate(e.reads), formatRate(e.writes/float64(d))))
		}
		p := planShipped(t, Options{Mix: mustMix(t, strings.Join(parts, ","))}).Plan
		rows = append(rows, fmt.Sprintf("| %s (÷%d) | %s | %s |", formatRate(p.WriteRate), d, p.setting(p.Holders), costmodel.Millis(p.Recommended.OpMean)))
	}
	for _, row := range rows {
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/tuning.md lacks the row\n%s", row)
		}
	}
}
