package clusterkit

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/node/config"
)

func TestLinkModelScalesAndSplits(t *testing.T) {
	m := LinkModel{Matrix: defaultMatrix(t), IntraRegionRTT: time.Millisecond}
	for _, tc := range []struct {
		scale float64
		a, b  string
		want  time.Duration
	}{
		{1, "us-central1", "us-west1", 36 * time.Millisecond},
		{0, "us-central1", "us-west1", 36 * time.Millisecond}, // 0 means unscaled
		{0.2, "us-central1", "us-west1", 7 * time.Millisecond},
		{0.1, "europe-west1", "asia-east1", 25 * time.Millisecond},
		{0.2, "us-east1", "us-east1", time.Millisecond}, // intra-region is not scaled
	} {
		m.Scale = tc.scale
		got, err := m.RTT(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("scale %v RTT(%s, %s) = %v, %v; want %v", tc.scale, tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := m.RTT("us-central1", "mars-north1"); err == nil {
		t.Error("unknown region accepted")
	}
	if d, err := (LinkModel{}).RTT("a", "b"); d != 0 || err != nil {
		t.Errorf("the zero model delays %v, %v", d, err)
	}
	for _, tc := range []struct {
		rtt, comp, up, down time.Duration
	}{
		{36 * time.Millisecond, 0, 18 * time.Millisecond, 18 * time.Millisecond},
		{36 * time.Millisecond, time.Millisecond, 17 * time.Millisecond, 18 * time.Millisecond},
		{155 * time.Millisecond, time.Millisecond, 77 * time.Millisecond, 77 * time.Millisecond},
		{time.Millisecond, time.Millisecond, time.Millisecond, 0}, // too short to compensate
		{2 * time.Millisecond, time.Millisecond, time.Millisecond, time.Millisecond},
		{0, time.Millisecond, 0, 0},
	} {
		m.Compensation = tc.comp
		up, down := m.Delays(tc.rtt)
		if up != tc.up || down != tc.down {
			t.Errorf("Delays(%v) with compensation %v = %v up, %v down; want %v, %v", tc.rtt, tc.comp, up, down, tc.up, tc.down)
		}
	}
}

func loadCommittedGeo(t *testing.T) ([]*config.Config, client.RegionLinks) {
	t.Helper()
	nodes, _, links, err := LoadConfigs(filepath.Join(repoRoot, "configs/geo"))
	if err != nil {
		t.Fatal(err)
	}
	return nodes, links
}

func TestScaledMatrixIsWhatTheLinksAimAt(t *testing.T) {
	m := LinkModel{Matrix: defaultMatrix(t), Scale: 0.02, IntraRegionRTT: 5 * time.Millisecond}
	scaled, err := m.Scaled()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range scaled.Regions() {
		for _, b := range scaled.Regions() {
			got, _ := scaled.RTT(a, b)
			link, _ := m.RTT(a, b)
			switch {
			case a == b && got != 0:
				t.Errorf("%s to itself: %v, want 0 (the intra-region RTT is the model's, not the matrix's)", a, got)
			case a != b && got != max(link, time.Millisecond):
				t.Errorf("%s to %s: %v, want the link's %v (at least 1ms)", a, b, got, link)
			}
		}
	}
	if got, _ := scaled.RTT("us-central1", "us-west1"); got != time.Millisecond {
		t.Errorf("36ms × 0.02 gave %v, want it rounded and kept at 1ms", got)
	}
}

func TestPlanLinksCoversEveryDirectedPair(t *testing.T) {
	nodes, links := loadCommittedGeo(t)
	model := LinkModel{Matrix: defaultMatrix(t), Scale: 1, IntraRegionRTT: time.Millisecond, Compensation: time.Millisecond, Jitter: 2 * time.Millisecond}
	plan, err := PlanLinks(nodes, links, model)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Link{}
	kinds := map[LinkKind]int{}
	for _, l := range plan.Links {
		byName[l.Name] = l
		kinds[l.Kind]++
	}
	if kinds[PeerLink] != 20 || kinds[ClientLink] != 25 {
		t.Fatalf("plan has %v links, want 20 peer (5×4 directed) and 25 client (5 regions × 5 nodes)", kinds)
	}
	peer := byName["peer 1->4"]
	if peer.Listen != "127.0.0.1:2140" || peer.Upstream != "127.0.0.1:2804" || peer.RTTMillis != 100 ||
		peer.UpstreamMillis != 49 || peer.DownstreamMillis != 50 || peer.JitterMillis != 2 {
		t.Errorf("peer 1->4 = %+v", peer)
	}
	back := byName["peer 4->1"]
	if back.Listen != "127.0.0.1:2410" || back.Upstream != "127.0.0.1:2801" || back.RTTMillis != 100 {
		t.Errorf("peer 4->1 = %+v", back)
	}
	local := byName["client us-central1->1"]
	if local.Listen != "127.0.0.1:2111" || local.Upstream != "127.0.0.1:2811" || local.RTTMillis != 1 {
		t.Errorf("client us-central1->1 = %+v", local)
	}
	far := byName["client asia-east1->4"]
	if far.RTTMillis != 250 || far.Upstream != "127.0.0.1:2814" {
		t.Errorf("client asia-east1->4 = %+v", far)
	}

	// The local cluster dials its peers directly: nothing to proxy.
	localNodes, _, _, err := LoadConfigs(filepath.Join(repoRoot, "configs/local"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err = PlanLinks(localNodes, nil, LinkModel{})
	if err != nil || len(plan.Links) != 0 {
		t.Errorf("local configs planned %d links, err %v; want none", len(plan.Links), err)
	}
}

func TestPlanLinksRejectsRegionsOutsideTheMatrix(t *testing.T) {
	nodes, links := loadCommittedGeo(t)
	small, err := geo.ParseCSV(strings.NewReader("region,us-central1,us-east1\nus-central1,0,32\nus-east1,32,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = PlanLinks(nodes, links, LinkModel{Matrix: small})
	if err == nil || !strings.Contains(err.Error(), "us-west1") {
		t.Errorf("plan over a matrix lacking us-west1: %v", err)
	}
}
