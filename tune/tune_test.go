package tune

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/raft"
)

const ms = time.Millisecond

const shippedMatrix = "../configs/geo/rtt-5-regions.csv"

func deriveShipped(t *testing.T, opts Options) Result {
	t.Helper()
	r, err := DeriveFile(shippedMatrix, opts)
	if err != nil {
		t.Fatalf("DeriveFile(%s): %v", shippedMatrix, err)
	}
	return r
}

// The documented five-region defaults (package doc, docs/tuning.md, ansible group_vars).
func TestFiveRegionDefaults(t *testing.T) {
	r := deriveShipped(t, Options{})
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"heartbeat_interval", r.HeartbeatInterval, 40 * ms},
		{"lease_duration", r.LeaseDuration, 350 * ms},
		{"election_timeout_min", r.ElectionTimeoutMin, 500 * ms},
		{"election_timeout_max", r.ElectionTimeoutMax, 900 * ms},
		{"leader quorum rtt", r.LeaderQuorumRTT, 36 * ms},
		{"slowest quorum rtt", r.SlowestQuorumRTT, 155 * ms},
		{"max rtt", r.MaxRTT, 250 * ms},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r.MaxClockDrift != DefaultMaxClockDrift || r.LeaderRegion != "us-central1" || r.SlowestLeaderRegion != "asia-east1" {
		t.Errorf("drift %v, leader %s, slowest %s; want %v, us-central1, asia-east1",
			r.MaxClockDrift, r.LeaderRegion, r.SlowestLeaderRegion, DefaultMaxClockDrift)
	}
	if r.FarthestPair != [2]string{"europe-west1", "asia-east1"} {
		t.Errorf("farthest pair = %v", r.FarthestPair)
	}
}

// checkInvariants is what the figures promise, whatever the matrix.
func checkInvariants(t *testing.T, r Result) {
	t.Helper()
	keep := 1 - r.MaxClockDrift
	k := time.Duration(r.LeaseRounds)
	cfg := raft.Config{
		ID: r.Voters[0].ID, HeartbeatInterval: r.HeartbeatInterval,
		ElectionTimeoutMin: r.ElectionTimeoutMin, ElectionTimeoutMax: r.ElectionTimeoutMax,
		LeaseDuration: r.LeaseDuration, MaxClockDrift: r.MaxClockDrift,
	}
	for _, v := range r.Voters {
		cfg.Peers = append(cfg.Peers, v.ID)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("raft.Config.Validate rejects the tuned timing %+v: %v", r, err)
	}
	// A nanosecond of slack absorbs float rounding in these products.
	if float64(k*r.HeartbeatInterval+r.SlowestQuorumRTT) > float64(r.LeaseDuration)*keep+1 {
		t.Errorf("lease %v does not cover %d rounds of %v plus the slowest quorum %v after drift",
			r.LeaseDuration, k, r.HeartbeatInterval, r.SlowestQuorumRTT)
	}
	if float64(r.ElectionTimeoutMin)*keep+1 < float64(r.LeaseDuration+r.MaxRTT/2) {
		t.Errorf("election min %v: a vote could still report a lease of %v (one-way %v)",
			r.ElectionTimeoutMin, r.LeaseDuration, r.MaxRTT/2)
	}
	if r.ElectionTimeoutMin < r.MaxRTT+k*r.HeartbeatInterval {
		t.Errorf("election min %v below worst rtt %v + %d heartbeats", r.ElectionTimeoutMin, r.MaxRTT, k)
	}
	if spread := r.ElectionTimeoutMax - r.ElectionTimeoutMin; spread < 2*r.SlowestQuorumRTT || spread < r.ElectionTimeoutMin/2 {
		t.Errorf("election spread %v shorter than 2×%v or half of %v", spread, r.SlowestQuorumRTT, r.ElectionTimeoutMin)
	}
	if r.HeartbeatInterval < r.LeaderQuorumRTT {
		t.Errorf("heartbeat %v faster than the leader's quorum rtt %v", r.HeartbeatInterval, r.LeaderQuorumRTT)
	}
	if got := len(r.Explain()); got != 5 {
		t.Errorf("Explain() has %d lines, want one per figure (5)", got)
	}
}

func TestInvariantsOnShippedAndRandomMatrices(t *testing.T) {
	checkInvariants(t, deriveShipped(t, Options{}))
	for _, leader := range []string{"us-east1", "europe-west1", "asia-east1"} {
		checkInvariants(t, deriveShipped(t, Options{LeaderRegion: leader}))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n := 1 + rng.IntN(7)
		regions := make([]string, n)
		rtt := make([][]time.Duration, n)
		for i := range regions {
			regions[i] = fmt.Sprintf("r%d", i)
			rtt[i] = make([]time.Duration, n)
		}
		scale := []time.Duration{time.Microsecond, ms, 10 * ms, 100 * ms}[rng.IntN(4)]
		for i := range n {
			rtt[i][i] = time.Duration(rng.IntN(3)) * scale / 4
			for j := i + 1; j < n; j++ {
				d := time.Duration(1+rng.IntN(400)) * scale
				rtt[i][j], rtt[j][i] = d, d
			}
		}
		m, err := geo.New(regions, rtt, geo.DefaultTolerance)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		opts := Options{MaxClockDrift: []float64{0, 0.001, 0.1, 0.3}[rng.IntN(4)], LeaseRounds: 3 + rng.IntN(4)}
		r, err := Derive(m, opts)
		if err != nil {
			t.Fatalf("trial %d: Derive: %v", trial, err)
		}
		checkInvariants(t, r)
		if t.Failed() {
			t.Fatalf("trial %d failed on\n%s", trial, r.Text())
		}
	}
}

func TestLeaderPreferenceChangesHeartbeatOnly(t *testing.T) {
	base := deriveShipped(t, Options{})
	eu := deriveShipped(t, Options{LeaderRegion: "europe-west1"})
	if eu.LeaderQuorumRTT != 100*ms || eu.HeartbeatInterval != 100*ms {
		t.Errorf("leader in europe-west1: quorum %v heartbeat %v, want 100ms each", eu.LeaderQuorumRTT, eu.HeartbeatInterval)
	}
	if eu.HeartbeatInterval <= base.HeartbeatInterval || eu.LeaseDuration <= base.LeaseDuration {
		t.Errorf("a farther leader should get slower heartbeats and a longer lease: base %v/%v, eu %v/%v",
			base.HeartbeatInterval, base.LeaseDuration, eu.HeartbeatInterval, eu.LeaseDuration)
	}
}

func TestDriftAndRoundsWidenTheLease(t *testing.T) {
	base := deriveShipped(t, Options{})
	drifty := deriveShipped(t, Options{MaxClockDrift: 0.3})
	rounds := deriveShipped(t, Options{LeaseRounds: 8})
	if drifty.LeaseDuration <= base.LeaseDuration || rounds.LeaseDuration <= base.LeaseDuration {
		t.Errorf("lease: base %v, drift 0.3 %v, 8 rounds %v; both should be longer",
			base.LeaseDuration, drifty.LeaseDuration, rounds.LeaseDuration)
	}
}

func TestPlacement(t *testing.T) {
	// Three nodes in the US: no transatlantic or transpacific path matters any more.
	r := deriveShipped(t, Options{Placement: map[uint64]string{1: "us-central1", 2: "us-east1", 3: "us-west1"}})
	checkInvariants(t, r)
	if r.MaxRTT != 65*ms || r.LeaderRegion != "us-central1" || r.LeaderQuorumRTT != 32*ms {
		t.Errorf("US-only: max rtt %v, leader %s at %v; want 65ms, us-central1 at 32ms", r.MaxRTT, r.LeaderRegion, r.LeaderQuorumRTT)
	}
	full := deriveShipped(t, Options{})
	if r.ElectionTimeoutMin >= full.ElectionTimeoutMin {
		t.Errorf("US-only election min %v should be below the five-region %v", r.ElectionTimeoutMin, full.ElectionTimeoutMin)
	}
	// Two nodes share asia-east1: a leader there gets a quorum from its neighbour (RTT 0).
	r = deriveShipped(t, Options{Placement: map[uint64]string{1: "asia-east1", 2: "asia-east1", 3: "europe-west1"}})
	if r.LeaderRegion != "asia-east1" || r.LeaderQuorumRTT != 0 || r.HeartbeatInterval != minHeartbeat {
		t.Errorf("co-located leader: %s at %v, heartbeat %v", r.LeaderRegion, r.LeaderQuorumRTT, r.HeartbeatInterval)
	}
	if r.Voters[0] != (Voter{1, "asia-east1"}) || r.Voters[2] != (Voter{3, "europe-west1"}) {
		t.Errorf("voters not sorted by id: %v", r.Voters)
	}
}

func TestMeasuredMatrix(t *testing.T) {
	// What a running cluster reports: fractional, slightly different in each direction.
	measured := `# measured by georaft status
region,us-central1,us-east1,us-west1,europe-west1,asia-east1
us-central1,0.21,33.4,37.9,101.2,156.8
us-east1,33.1,0.3,66.0,91.7,186.1
us-west1,38.2,65.5,0.2,136.4,119.3
europe-west1,101.9,91.1,135.8,0.25,251.6
asia-east1,157.0,185.7,119.0,250.9,0.19
`
	r, err := DeriveCSV(strings.NewReader(measured), Options{})
	if err != nil {
		t.Fatalf("DeriveCSV(measured): %v", err)
	}
	checkInvariants(t, r)
	if r.LeaderRegion != "us-central1" || r.LeaderQuorumRTT != 37900*time.Microsecond {
		t.Errorf("leader %s at %v, want us-central1 at 37.9ms", r.LeaderRegion, r.LeaderQuorumRTT)
	}
}

func TestErrors(t *testing.T) {
	valid := "region,a,b,c\na,0,10,20\nb,10,0,30\nc,20,30,0\n"
	for _, tc := range []struct {
		name     string
		csv      string
		opts     Options
		is       error
		mentions []string
	}{
		{"matrix missing a row", "region,a,b,c\na,0,10,20\nb,10,0,30\n", Options{}, geo.ErrMissingRegion,
			[]string{"c has a column but no row"}},
		{"placement region not in matrix", valid, Options{Placement: map[uint64]string{1: "a", 2: "b", 3: "mars"}}, ErrMissingRegion,
			[]string{`node 3`, `"mars"`, "a, b, c"}},
		{"leader region not in matrix", valid, Options{LeaderRegion: "mars"}, ErrMissingRegion, []string{`leader region "mars"`}},
		{"leader region without a node", valid, Options{Placement: map[uint64]string{1: "a", 2: "b"}, LeaderRegion: "c"}, ErrMissingRegion,
			[]string{`"c" hosts no node`}},
		{"asymmetric", "region,a,b,c\na,0,10,20\nb,10,0,30\nc,20,90,0\n", Options{}, geo.ErrAsymmetric,
			[]string{"b→c is 30ms", "c→b is 90ms"}},
		{"zero rtt", "region,a,b\na,0,0\nb,0,0\n", Options{}, geo.ErrNonPositiveRTT, []string{"row a column b is 0s"}},
		{"negative rtt", "region,a,b\na,0,-4\nb,-4,0\n", Options{}, geo.ErrNonPositiveRTT, []string{"row a column b is -4ms"}},
		{"not a number", "region,a,b\na,0,x\nb,3,0\n", Options{}, geo.ErrBadCell, []string{"row a column b", `"x"`}},
		{"drift too large", valid, Options{MaxClockDrift: 0.5}, nil, []string{"max clock drift must be in [0, 0.5), got 0.5"}},
		{"negative drift", valid, Options{MaxClockDrift: -0.1}, nil, []string{"got -0.1"}},
		{"too few rounds", valid, Options{LeaseRounds: 2}, nil, []string{"lease rounds must be at least 3", "got 2"}},
		{"node id 0", valid, Options{Placement: map[uint64]string{0: "a"}}, nil, []string{"node id must not be 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DeriveCSV(strings.NewReader(tc.csv), tc.opts)
			if err == nil {
				t.Fatal("Derive accepted it")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tc.is)
			}
			for _, s := range tc.mentions {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to mention %q", err, s)
				}
			}
		})
	}
	if _, err := Derive(geo.Matrix{}, Options{}); !errors.Is(err, geo.ErrEmpty) {
		t.Errorf("Derive(zero Matrix) err = %v, want geo.ErrEmpty", err)
	}
	if _, err := DeriveFile("does-not-exist.csv", Options{}); err == nil || !strings.Contains(err.Error(), "does-not-exist.csv") {
		t.Errorf("DeriveFile on a missing file: err = %v, want it to name the file", err)
	}
}

func TestYAMLIsATimingSection(t *testing.T) {
	r := deriveShipped(t, Options{})
	var doc struct {
		Timing map[string]string `yaml:"timing"`
	}
	if err := yaml.Unmarshal([]byte(r.YAML()), &doc); err != nil {
		t.Fatalf("YAML() does not parse: %v\n%s", err, r.YAML())
	}
	want := map[string]time.Duration{
		"heartbeat_interval": r.HeartbeatInterval, "election_timeout_min": r.ElectionTimeoutMin,
		"election_timeout_max": r.ElectionTimeoutMax, "lease_duration": r.LeaseDuration,
	}
	for key, d := range want {
		got, err := time.ParseDuration(doc.Timing[key])
		if err != nil || got != d {
			t.Errorf("timing.%s = %q (%v), want %v", key, doc.Timing[key], err, d)
		}
	}
	if doc.Timing["max_clock_drift"] != "0.01" {
		t.Errorf("timing.max_clock_drift = %q", doc.Timing["max_clock_drift"])
	}
	for _, line := range r.Explain() {
		if !strings.Contains(r.YAML(), line) {
			t.Errorf("YAML() lacks the reasoning %q", line)
		}
	}
}

func TestAnsibleVars(t *testing.T) {
	r := deriveShipped(t, Options{})
	var vars map[string]any
	if err := yaml.Unmarshal([]byte(r.AnsibleVars()), &vars); err != nil {
		t.Fatalf("AnsibleVars() does not parse: %v", err)
	}
	for key, want := range map[string]any{
		"georaft_heartbeat_interval": "40ms", "georaft_lease_duration": "350ms",
		"georaft_election_timeout_min": "500ms", "georaft_election_timeout_max": "900ms",
		"georaft_max_clock_drift": 0.01, "georaft_expected_leader_region": "us-central1",
	} {
		if vars[key] != want {
			t.Errorf("%s = %#v, want %#v", key, vars[key], want)
		}
	}
	placement, ok := vars["georaft_timing_placement"].(map[any]any)
	if !ok || len(placement) != 5 {
		t.Fatalf("georaft_timing_placement = %#v, want the five voters", vars["georaft_timing_placement"])
	}
	for _, v := range r.Voters {
		if got := placement[int(v.ID)]; got != v.Region {
			t.Errorf("georaft_timing_placement[%d] = %v, want %s", v.ID, got, v.Region)
		}
	}
	if got := yamlScalar("we: ird"); got != `"we: ird"` {
		t.Errorf("yamlScalar quotes %q as %s", "we: ird", got)
	}
}

func TestTextAndFormats(t *testing.T) {
	r := deriveShipped(t, Options{})
	text := r.Text()
	for _, s := range append(r.Explain(), "lease_duration         350ms", "leader expected in us-central1") {
		if !strings.Contains(text, s) {
			t.Errorf("Text() lacks %q", s)
		}
	}
	for _, f := range Formats {
		parsed, err := ParseFormat(string(f))
		if err != nil || parsed != f {
			t.Errorf("ParseFormat(%s) = %v, %v", f, parsed, err)
		}
		var buf bytes.Buffer
		if err := r.Write(&buf, f); err != nil || buf.Len() == 0 {
			t.Errorf("Write(%s): %v, %d bytes", f, err, buf.Len())
		}
	}
	if _, err := ParseFormat("json"); err == nil || !strings.Contains(err.Error(), `"json"`) {
		t.Errorf("ParseFormat(json) err = %v", err)
	}
	if err := r.Write(&bytes.Buffer{}, "xml"); err == nil {
		t.Error("Write accepted format xml")
	}
}

// docs/tuning.md quotes the five-region figures; keep it in step with the code.
func TestTuningDocQuotesTheDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/tuning.md")
	if err != nil {
		t.Fatalf("read docs/tuning.md: %v", err)
	}
	r := deriveShipped(t, Options{})
	for _, f := range r.figures() {
		row := fmt.Sprintf("| `%s` | %s |", f.key, f.value)
		if !bytes.Contains(doc, []byte(row)) {
			t.Errorf("docs/tuning.md lacks the row %q", row)
		}
	}
}
