package geo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

// The file the product ships; tune, the lab and the benchmark all start from it.
const shippedMatrix = "../configs/geo/rtt-5-regions.csv"

func loadShipped(t *testing.T) Matrix {
	t.Helper()
	m, err := LoadCSV(shippedMatrix)
	if err != nil {
		t.Fatalf("LoadCSV(%s): %v", shippedMatrix, err)
	}
	return m
}

func TestShippedMatrixMatchesShared(t *testing.T) {
	// configs/geo is a copy so the product does not depend on ../shared; keep them equal
	// while the shared file exists.
	shared, err := os.ReadFile("../../shared/geo/rtt-5-regions.csv")
	if err != nil {
		t.Skipf("no shared matrix to compare with: %v", err)
	}
	ours, err := os.ReadFile(shippedMatrix)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, ours) {
		t.Errorf("%s differs from ../shared/geo/rtt-5-regions.csv; copy it again", shippedMatrix)
	}
}

func TestLoadShipped(t *testing.T) {
	m := loadShipped(t)
	want := []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}
	if got := m.Regions(); !slices.Equal(got, want) {
		t.Fatalf("Regions() = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		a, b string
		want time.Duration
	}{
		{"us-central1", "us-east1", 32 * ms},
		{"us-east1", "us-central1", 32 * ms},
		{"europe-west1", "asia-east1", 250 * ms},
		{"us-west1", "us-west1", 0},
	} {
		got, err := m.RTT(tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("RTT(%s, %s) = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
		}
	}
	if _, err := m.RTT("us-central1", "mars-north1"); !errors.Is(err, ErrUnknownRegion) ||
		!strings.Contains(err.Error(), `"mars-north1"`) {
		t.Errorf("RTT to an unknown region: err = %v, want ErrUnknownRegion naming it", err)
	}
}

func TestNearestPeers(t *testing.T) {
	m := loadShipped(t)
	for _, tc := range []struct {
		region string
		want   []RegionRTT
	}{
		{"us-central1", []RegionRTT{{"us-east1", 32 * ms}, {"us-west1", 36 * ms}, {"europe-west1", 100 * ms}, {"asia-east1", 155 * ms}}},
		{"asia-east1", []RegionRTT{{"us-west1", 118 * ms}, {"us-central1", 155 * ms}, {"us-east1", 185 * ms}, {"europe-west1", 250 * ms}}},
		{"europe-west1", []RegionRTT{{"us-east1", 90 * ms}, {"us-central1", 100 * ms}, {"us-west1", 135 * ms}, {"asia-east1", 250 * ms}}},
	} {
		got, err := m.NearestPeers(tc.region)
		if err != nil {
			t.Fatalf("NearestPeers(%s): %v", tc.region, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("NearestPeers(%s) = %v, want %v", tc.region, got, tc.want)
		}
	}
}

func TestNearestPeersTiesByName(t *testing.T) {
	m, err := ParseCSV(strings.NewReader("region,c,b,a\nc,0,10,10\nb,10,0,10\na,10,10,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.NearestPeers("c")
	if want := []RegionRTT{{"a", 10 * ms}, {"b", 10 * ms}}; !slices.Equal(got, want) {
		t.Errorf("NearestPeers(c) = %v, want %v (ties by name)", got, want)
	}
}

func TestQuorumRTT(t *testing.T) {
	m := loadShipped(t)
	for _, tc := range []struct {
		leader string
		n      int
		want   time.Duration
	}{
		// Five nodes, one per region: the leader needs two acks, the second-nearest region's.
		{"us-central1", 5, 36 * ms},
		{"us-east1", 5, 65 * ms},
		{"us-west1", 5, 65 * ms},
		{"europe-west1", 5, 100 * ms},
		{"asia-east1", 5, 155 * ms},
		// Three nodes in the leader's nearest regions: one ack, the nearest.
		{"us-central1", 3, 32 * ms},
		{"asia-east1", 3, 118 * ms},
		{"europe-west1", 4, 100 * ms}, // majority of 4 is 3: two acks
		{"us-central1", 1, 0},
	} {
		got, err := m.QuorumRTT(tc.leader, tc.n)
		if err != nil || got != tc.want {
			t.Errorf("QuorumRTT(%s, %d) = %v, %v; want %v", tc.leader, tc.n, got, err, tc.want)
		}
	}
	for _, n := range []int{0, 6, -1} {
		if _, err := m.QuorumRTT("us-central1", n); err == nil {
			t.Errorf("QuorumRTT(us-central1, %d) accepted an impossible cluster size", n)
		}
	}
}

func TestQuorumRTTAmong(t *testing.T) {
	m := loadShipped(t)
	// Two nodes share us-central1 with the leader: their diagonal RTT (0 here) answers first.
	got, err := m.QuorumRTTAmong("us-central1", []string{"us-central1", "us-central1", "asia-east1", "europe-west1"})
	if err != nil || got != 0 {
		t.Errorf("QuorumRTTAmong with two co-located voters = %v, %v; want 0", got, err)
	}
	got, err = m.QuorumRTTAmong("europe-west1", []string{"asia-east1", "asia-east1"})
	if err != nil || got != 250*ms {
		t.Errorf("QuorumRTTAmong(europe-west1, asia×2) = %v, %v; want 250ms", got, err)
	}
	if _, err := m.QuorumRTTAmong("us-central1", []string{"us-east1", "nowhere"}); !errors.Is(err, ErrUnknownRegion) {
		t.Errorf("unknown voter region: err = %v, want ErrUnknownRegion", err)
	}
}

func TestBestLeader(t *testing.T) {
	best, err := loadShipped(t).BestLeader()
	if err != nil || best != (RegionRTT{"us-central1", 36 * ms}) {
		t.Errorf("BestLeader() = %v, %v; want us-central1 at 36ms", best, err)
	}
	// A hub close to everyone beats regions that have one near neighbour each.
	m, err := ParseCSV(strings.NewReader(`region,a,b,d,c
a,0,100,100,10
b,100,0,100,12
d,100,100,0,14
c,10,12,14,0
`))
	if err != nil {
		t.Fatal(err)
	}
	best, err = m.BestLeader()
	if err != nil || best != (RegionRTT{"c", 12 * ms}) {
		t.Errorf("BestLeader() = %v, %v; want c at 12ms", best, err)
	}
	if _, err := (Matrix{}).BestLeader(); !errors.Is(err, ErrEmpty) {
		t.Errorf("BestLeader on the zero Matrix: err = %v, want ErrEmpty", err)
	}
}

func TestParseCSVAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		a, b      string
		want      time.Duration
	}{
		{"rows in another order and spaces", "# measured\nregion, x, y\ny, 20, 0\nx, 0, 20\n", "x", "y", 20 * ms},
		{"fractional milliseconds", "region,x,y\nx,0,36.4\ny,36.6,0\n", "x", "y", 36400 * time.Microsecond},
		{"asymmetry within tolerance", "region,x,y\nx,0,100\ny,108,0\n", "y", "x", 108 * ms},
		{"non-zero diagonal is intra-region rtt", "region,x,y\nx,0.5,30\ny,30,0.7\n", "x", "x", 500 * time.Microsecond},
		{"blank lines", "\nregion,x,y\n\nx,0,5\ny,5,0\n\n", "x", "y", 5 * ms},
		{"header keyword case", "Region,x,y\nx,0,5\ny,5,0\n", "x", "y", 5 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseCSV(strings.NewReader(tc.csv))
			if err != nil {
				t.Fatalf("ParseCSV: %v", err)
			}
			if got, err := m.RTT(tc.a, tc.b); err != nil || got != tc.want {
				t.Errorf("RTT(%s, %s) = %v, %v; want %v", tc.a, tc.b, got, err, tc.want)
			}
		})
	}
}

func TestParseCSVRejects(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		is        error
		mentions  []string
	}{
		{"empty", "# nothing\n", ErrEmpty, nil},
		{"header only keyword", "region\n", ErrEmpty, nil},
		{"bad header", "from,x\nx,0\n", nil, []string{`"region"`}},
		{"missing row", "region,x,y,z\nx,0,5,6\ny,5,0,7\n", ErrMissingRegion, []string{"z has a column but no row"}},
		{"missing column", "region,x,y\nx,0,5\ny,5,0\nz,6,7\n", ErrMissingRegion, []string{`row "z"`, "line 4"}},
		{"short row", "region,x,y\nx,0,5\ny,5\n", ErrNotSquare, []string{"row y has 1 values", "2 regions", "line 3"}},
		{"long row", "region,x,y\nx,0,5,9\ny,5,0\n", ErrNotSquare, []string{"row x has 3 values"}},
		{"duplicate header region", "region,x,x\nx,0,5\nx,5,0\n", ErrDuplicate, []string{`"x"`, "header"}},
		{"duplicate row", "region,x,y\nx,0,5\ny,5,0\nx,0,5\n", ErrDuplicate, []string{`"x"`, "line 4"}},
		{"non-numeric", "region,x,y\nx,0,fast\ny,5,0\n", ErrBadCell, []string{"row x column y", `"fast"`}},
		{"NaN", "region,x,y\nx,0,NaN\ny,5,0\n", ErrBadCell, []string{"row x column y"}},
		{"zero off the diagonal", "region,x,y\nx,0,0\ny,0,0\n", ErrNonPositiveRTT, []string{"row x column y is 0s"}},
		{"negative off the diagonal", "region,x,y\nx,0,5\ny,-5,0\n", ErrNonPositiveRTT, []string{"row y column x is -5ms"}},
		{"negative diagonal", "region,x,y\nx,-1,5\ny,5,0\n", ErrBadCell, []string{"row x column x", "negative"}},
		{"asymmetric", "region,x,y,z\nx,0,5,30\ny,5,0,7\nz,60,7,0\n", ErrAsymmetric, []string{"x→z is 30ms", "z→x is 60ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tc.csv))
			if err == nil {
				t.Fatal("ParseCSV accepted it")
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
}

func TestToleranceIsConfigurable(t *testing.T) {
	csv := "region,x,y\nx,0,100\ny,108,0\n"
	if _, err := ParseCSVTolerance(strings.NewReader(csv), Tolerance{}); !errors.Is(err, ErrAsymmetric) {
		t.Errorf("zero tolerance accepted 100 vs 108: %v", err)
	}
}

func TestNewRejectsBadShapes(t *testing.T) {
	if _, err := New(nil, nil, DefaultTolerance); !errors.Is(err, ErrEmpty) {
		t.Errorf("New(nil) err = %v, want ErrEmpty", err)
	}
	if _, err := New([]string{"a", "b"}, [][]time.Duration{{0, ms}}, DefaultTolerance); !errors.Is(err, ErrNotSquare) {
		t.Errorf("one row for two regions: err = %v, want ErrNotSquare", err)
	}
	if _, err := New([]string{"a", ""}, [][]time.Duration{{0, ms}, {ms, 0}}, DefaultTolerance); !errors.Is(err, ErrMissingRegion) {
		t.Errorf("empty region name: err = %v, want ErrMissingRegion", err)
	}
}

func TestLoadCSVNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(path, []byte("region,x,y\nx,0,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCSV(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "y has a column but no row") {
		t.Errorf("LoadCSV err = %v, want it to name %s and the missing row", err, path)
	}
	if _, err := LoadCSV(filepath.Join(t.TempDir(), "absent.csv")); err == nil {
		t.Error("LoadCSV of a missing file succeeded")
	}
}

func TestWriteCSVRoundTrips(t *testing.T) {
	m := loadShipped(t)
	var buf bytes.Buffer
	if err := m.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ParseCSV(&buf)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, buf.String())
	}
	for _, a := range m.Regions() {
		for _, b := range m.Regions() {
			x, _ := m.RTT(a, b)
			y, _ := back.RTT(a, b)
			if x != y {
				t.Errorf("RTT(%s, %s): %v written, %v read back", a, b, x, y)
			}
		}
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("region,x,y\nx,0,5\ny,5,0\n")
	f.Add("region,x\nx,1e400\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCSV(strings.NewReader(s))
		if err != nil {
			return
		}
		// Whatever parses must answer every query without error.
		for _, r := range m.Regions() {
			if _, err := m.NearestPeers(r); err != nil {
				t.Fatal(err)
			}
			if _, err := m.QuorumRTT(r, m.Len()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
