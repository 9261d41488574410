package config

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/georaft/georaft/tune"
)

func TestResolveHolders(t *testing.T) {
	members := map[uint64]string{1: "us-central1", 2: "europe-west1", 3: "asia-east1", 4: "europe-west1"}
	for _, tc := range []struct {
		words []string
		want  []uint64
		err   string
	}{
		{words: []string{"none"}, want: nil},
		{words: []string{"ALL"}, want: []uint64{1, 2, 3, 4}},
		{words: []string{"europe-west1"}, want: []uint64{2, 4}},
		{words: []string{"3", "us-central1"}, want: []uint64{1, 3}},
		{words: []string{"3,europe-west1, 3"}, want: []uint64{2, 3, 4}},
		{words: nil, err: "no holders given"},
		{words: []string{"all", "3"}, err: `"all" must stand alone`},
		{words: []string{"9"}, err: `"9" is not a member id`},
		{words: []string{"europe-west2"}, err: `"europe-west2" is neither a member id nor a region`},
	} {
		got, err := ResolveHolders(tc.words, members)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v; want one containing %q", tc.words, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.words, got, err, tc.want)
		}
	}
}

func TestReadLeasesAndPlacementKeys(t *testing.T) {
	dir := t.TempDir()
	c := mustLoadFile(t, writeFile(t, threeNodes(dir)+"read_leases:\n  holders: [europe-west1, 3]\nplacement:\n  preferred_regions: [us-central1, europe-west1]\n"))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.RaftConfig().ReadLeaseHolders; !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("holders [europe-west1, 3] resolve to %v; want [2 3]", got)
	}
	if !slices.Equal(c.Placement.PreferredRegions, []string{"us-central1", "europe-west1"}) {
		t.Errorf("preferred regions %v", c.Placement.PreferredRegions)
	}
	if got := mustLoadFile(t, writeFile(t, threeNodes(dir)+"read_leases:\n  holders: all\n")).RaftConfig().ReadLeaseHolders; !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("holders all: %v", got)
	}
	if got := mustLoadFile(t, writeFile(t, threeNodes(dir))).RaftConfig().ReadLeaseHolders; len(got) != 0 {
		t.Errorf("holders by default: %v; want none", got)
	}

	_, err := Check(writeFile(t, threeNodes(dir)+"read_leases:\n  holders: [mars-north1]\nplacement:\n  preferred_regions: [us-central1, moon]\n  healthy_for: -1s\n"))
	for _, want := range []string{
		`read_leases.holders: "mars-north1" is neither a member id nor a region of a member`,
		`placement.preferred_regions: "moon" is not the region of any member`,
		"placement.healthy_for must not be negative",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config check: %v\nwant it to say %q", err, want)
		}
	}
	if _, err := Check(writeFile(t, threeNodes(dir)+"placement:\n  preferred_regions: [asia-east1, asia-east1]\n")); err == nil || !strings.Contains(err.Error(), `names "asia-east1" twice`) {
		t.Errorf("a region preferred twice: %v", err)
	}
	if _, err := Check(writeFile(t, threeNodes(dir)+"read_leases:\n  holders: {a: b}\n")); err == nil || !strings.Contains(err.Error(), "read_leases.holders must be a list") {
		t.Errorf("a mapping for holders: %v", err)
	}
}

// What `georaft tune --format yaml --mix ...` writes is a valid part of a node config: the
// timing, read_leases and placement sections pass `georaftd config check` as they are.
func TestTuneOutputPassesConfigCheck(t *testing.T) {
	matrix := filepath.Join("..", "..", "configs", "geo", "rtt-5-regions.csv")
	for _, mix := range []string{
		"*=1000r+1w",                       // holders all
		"us-central1=100r+1000w,*=50r+20w", // holders none
		"us-central1=900r+100w,europe-west1=500r+10w,us-east1=300r+10w,us-west1=300r+10w,asia-east1=400r+5w", // a list
	} {
		m, err := tune.ParseMix(mix)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tune.DeriveFile(matrix, tune.Options{Mix: m})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := res.Write(&out, tune.FormatYAML); err != nil {
			t.Fatal(err)
		}
		var peers strings.Builder
		for i, v := range res.Voters {
			fmt.Fprintf(&peers, "  - id: %d\n    region: %s\n    peer_address: 127.0.0.1:%d\n    client_address: 127.0.0.1:%d\n", v.ID, v.Region, 7101+i, 7201+i)
		}
		file := "cluster_id: tuned\nnode:\n  id: 1\n  data_dir: " + filepath.Join(t.TempDir(), "data") + "\npeers:\n" + peers.String() + out.String()
		c, err := Check(writeFile(t, file))
		if err != nil {
			t.Fatalf("mix %s: tune's output fails config check: %v\n%s", mix, err, out.String())
		}
		if !slices.Equal(c.Placement.PreferredRegions, res.Plan.PreferredRegions()) {
			t.Errorf("mix %s: preferred regions %v; tune said %v", mix, c.Placement.PreferredRegions, res.Plan.PreferredRegions())
		}
		want := map[string]bool{}
		for _, r := range res.Plan.Holders {
			want[r] = true
		}
		var got []string
		for _, id := range c.ReadLeaseHolderIDs() {
			p, _ := c.PeerByID(id)
			got = append(got, p.Region)
		}
		if len(got) != len(want) {
			t.Errorf("mix %s: holders resolve to regions %v; tune recommended %v", mix, got, res.Plan.Holders)
		}
		for _, r := range got {
			if !want[r] {
				t.Errorf("mix %s: region %s holds a read lease; tune recommended %v", mix, r, res.Plan.Holders)
			}
		}
	}
}
