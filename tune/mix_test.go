package tune

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georaft/georaft/geo"
)

func TestParseMix(t *testing.T) {
	mix, err := ParseMix(" us-central1=900r+100w, europe-west1 = 500R + 10.5W ,asia-east1=50r,us-east1=3w,*=1e2r+0w")
	if err != nil {
		t.Fatal(err)
	}
	want := Mix{{"us-central1", Load{900, 100}}, {"europe-west1", Load{500, 10.5}}, {"asia-east1", Load{50, 0}},
		{"us-east1", Load{0, 3}}, {"*", Load{100, 0}}}
	if len(mix) != len(want) {
		t.Fatalf("ParseMix = %v, want %v", mix, want)
	}
	for i := range want {
		if mix[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, mix[i], want[i])
		}
	}
	if got := mix.String(); got != "us-central1=900r+100w,europe-west1=500r+10.5w,asia-east1=50r+0w,us-east1=0r+3w,*=100r+0w" {
		t.Errorf("String() = %q", got)
	}
	again, err := ParseMix(mix.String())
	if err != nil || again.String() != mix.String() {
		t.Errorf("String() does not parse back: %v, %v", again, err)
	}
}

// Every error quotes the entry at fault and says what is wrong with it.
func TestParseMixErrors(t *testing.T) {
	for _, tc := range []struct {
		in       string
		mentions []string
	}{
		{"", []string{`""`, "empty entry"}},
		{"us-central1=900r,", []string{"empty entry", "stray comma"}},
		{"us-central1 900r", []string{`"us-central1 900r"`, `no "="`}},
		{"=900r", []string{`"=900r"`, "no region"}},
		{"us-central1=", []string{`"us-central1="`, "no load", "us-central1=100r+5w"}},
		{"us-central1=900", []string{`"900" has no unit`, "r (reads per second) or w (writes per second)"}},
		{"us-central1=900x", []string{`"900x" has no unit`}},
		{"us-central1=lotsr", []string{`"lots" is not a number`}},
		{"us-central1=NaNr", []string{`"NaN" is not a number`}},
		{"us-central1=Infw", []string{`"Inf" is not a number`}},
		{"us-central1=-5w", []string{`"-5" is negative`}},
		{"us-central1=5r+6r", []string{"reads given twice"}},
		{"us-central1=5r++6w", []string{"empty term"}},
		{"us-central1=5r,us-central1=6w", []string{`region "us-central1" appears twice`}},
		{"us-central1=0r+0w", []string{"no reads or writes at all"}},
	} {
		_, err := ParseMix(tc.in)
		if err == nil {
			t.Errorf("ParseMix(%q) accepted it", tc.in)
			continue
		}
		if !errors.Is(err, ErrBadMix) {
			t.Errorf("ParseMix(%q) err = %v, want it to wrap ErrBadMix", tc.in, err)
		}
		for _, s := range tc.mentions {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("ParseMix(%q) err = %q, want it to mention %q", tc.in, err, s)
			}
		}
	}
}

func TestLoadMixFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.mix", "# reads and writes per second, from last week's metrics\n\nus-central1=900r+100w\neurope-west1=500r+10w, asia-east1=5w\n")
	mix, err := LoadMixFile(good)
	if err != nil || mix.String() != "us-central1=900r+100w,europe-west1=500r+10w,asia-east1=0r+5w" {
		t.Fatalf("LoadMixFile = %v, %v", mix, err)
	}
	bad := write("bad.mix", "us-central1=900r\n# fine\nus-east1=12q\n")
	if _, err := LoadMixFile(bad); err == nil || !strings.Contains(err.Error(), bad+" line 3") || !strings.Contains(err.Error(), `"12q"`) {
		t.Errorf("bad line: err = %v, want the file, line 3 and the term", err)
	}
	dup := write("dup.mix", "us-east1=1r\nus-east1=2r\n")
	if _, err := LoadMixFile(dup); err == nil || !strings.Contains(err.Error(), "appears twice") || !strings.Contains(err.Error(), dup) {
		t.Errorf("duplicate region: err = %v", err)
	}
	empty := write("empty.mix", "# nothing yet\n")
	if _, err := LoadMixFile(empty); !errors.Is(err, ErrBadMix) || !strings.Contains(err.Error(), "no entries") {
		t.Errorf("empty file: err = %v", err)
	}
	if _, err := LoadMixFile(filepath.Join(dir, "none.mix")); err == nil || errors.Is(err, ErrBadMix) || !strings.Contains(err.Error(), "none.mix") {
		t.Errorf("missing file: err = %v, want an open error naming it", err)
	}
}

func TestMixResolvesAgainstTheMatrix(t *testing.T) {
	m, err := geo.LoadCSV(shippedMatrix)
	if err != nil {
		t.Fatal(err)
	}
	mix, _ := ParseMix("asia-east1=10w,*=100r+1w,us-east1=0r")
	got, err := mix.resolve(m)
	if err != nil {
		t.Fatal(err)
	}
	// Matrix order; "*" fills the regions not named; a region with no traffic drops out.
	if got.String() != "us-central1=100r+1w,us-west1=100r+1w,europe-west1=100r+1w,asia-east1=0r+10w" {
		t.Errorf("resolved = %s", got)
	}
	mix, _ = ParseMix("us-centrl1=5r")
	if _, err := mix.resolve(m); !errors.Is(err, ErrBadMix) || !strings.Contains(err.Error(), "did you mean us-central1?") {
		t.Errorf("misspelt region: err = %v", err)
	}
	mix, _ = ParseMix("mars=5r")
	if _, err := mix.resolve(m); err == nil || strings.Contains(err.Error(), "did you mean") || !strings.Contains(err.Error(), "asia-east1") {
		t.Errorf("unknown region: err = %v, want the matrix's regions and no suggestion", err)
	}
}
