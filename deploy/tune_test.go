package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/georaft/georaft/tune"
)

// What an operator feeding `georaft tune --rtt FILE` a broken measurement sees: an error that
// names the file and the bad cell, never timing. (tune's own tests cover the derivation.)
func TestTuneRejectsBrokenMatrixFiles(t *testing.T) {
	dir := t.TempDir()
	header := "region,us-central1,us-east1,us-west1\n"
	for _, tc := range []struct {
		name, csv string
		opts      tune.Options
		want      []string
	}{
		{"missing region row", header + "us-central1,0,32,36\nus-east1,32,0,65\n", tune.Options{},
			[]string{"us-west1 has a column but no row"}},
		{"placement in a missing region", header + "us-central1,0,32,36\nus-east1,32,0,65\nus-west1,36,65,0\n",
			tune.Options{Placement: map[uint64]string{1: "us-central1", 2: "us-east1", 3: "asia-east1"}},
			[]string{`node 3 is in region "asia-east1", which the rtt matrix lacks`}},
		{"asymmetric", header + "us-central1,0,32,36\nus-east1,32,0,65\nus-west1,36,150,0\n", tune.Options{},
			[]string{"asymmetric", "us-east1→us-west1 is 65ms but us-west1→us-east1 is 150ms"}},
		{"zero rtt", header + "us-central1,0,0,36\nus-east1,0,0,65\nus-west1,36,65,0\n", tune.Options{},
			[]string{"row us-central1 column us-east1 is 0s"}},
		{"negative rtt", header + "us-central1,0,32,-36\nus-east1,32,0,65\nus-west1,-36,65,0\n", tune.Options{},
			[]string{"row us-central1 column us-west1 is -36ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".csv")
			if err := os.WriteFile(path, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := tune.DeriveFile(path, tc.opts)
			if err == nil {
				t.Fatalf("tune accepted it and derived %+v", r)
			}
			if tc.opts.Placement == nil && !strings.Contains(err.Error(), path) {
				t.Errorf("err = %q, want it to name %s", err, path)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to mention %q", err, s)
				}
			}
		})
	}

	// The shipped matrix gives the documented five-region timing.
	r, err := tune.DeriveFile(shippedMatrix, tune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{r.HeartbeatInterval.String(), r.LeaseDuration.String(), r.ElectionTimeoutMin.String(), r.ElectionTimeoutMax.String()}
	if strings.Join(got, " ") != "40ms 350ms 500ms 900ms" {
		t.Errorf("five-region timing = %v, want 40ms 350ms 500ms 900ms (docs/deploy.md, docs/tuning.md)", got)
	}
}
