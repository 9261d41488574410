package nodechange

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const timing = `---
# Timing derived by georaft tune for 3 nodes (1=us-central1, 2=us-east1, 3=us-west1),
# leader expected in us-central1.
georaft_lease_duration: 350ms
georaft_timing_placement:
  1: us-central1
  2: us-east1
  3: us-west1
georaft_preferred_regions: []
`

func TestRenamePlacement(t *testing.T) {
	out, changed, err := RenamePlacement([]byte(timing), 3, 6, "us-west1")
	if err != nil || !changed {
		t.Fatalf("rename 3 -> 6: changed %v, %v", changed, err)
	}
	p, err := TimingPlacement(out)
	if err != nil || FormatPlacement(p) != "1=us-central1,2=us-east1,6=us-west1" {
		t.Fatalf("placement after the rename: %v, %v", p, err)
	}
	if !strings.Contains(string(out), "(1=us-central1, 2=us-east1, 6=us-west1)") || !strings.Contains(string(out), "georaft_lease_duration: 350ms\n") {
		t.Errorf("rename touched more than the ids:\n%s", out)
	}
	// Again: no change (a rerun of the replace).
	if again, changed, err := RenamePlacement(out, 3, 6, "us-west1"); err != nil || changed || string(again) != string(out) {
		t.Errorf("second rename: changed %v, %v", changed, err)
	}
	for _, tc := range []struct {
		old, new uint64
		region   string
		want     string
	}{
		{4, 7, "us-west1", "has no member 4 in us-west1"},
		{3, 6, "europe-west1", "has no member 3 in europe-west1"},
		{3, 2, "us-west1", "already has member 2 (in us-east1)"},
	} {
		if _, _, err := RenamePlacement([]byte(timing), tc.old, tc.new, tc.region); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rename %d -> %d in %s: %v, want %q", tc.old, tc.new, tc.region, err, tc.want)
		}
	}
	if _, err := TimingPlacement([]byte("georaft_lease_duration: 1s\n")); err == nil {
		t.Error("timing without a placement was read as one")
	}
}

func TestRecordRoundTripAndTfvars(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "membership.auto.tfvars.json")
	r, err := LoadRecord(path)
	if err != nil || r.generation("us-west1") != 1 {
		t.Fatalf("missing record: %+v, %v", r, err)
	}
	r.MemberIDs["us-west1"] = 6
	r.retire(3)
	r.retire(3)
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	// Terraform reads null as null: every list is written, empty or not.
	for _, want := range []string{`"retired_member_ids": [`, `"added_regions": []`, `"removed_regions": []`, `"us-west1": 6`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("saved record lacks %s:\n%s", want, data)
		}
	}
	back, err := LoadRecord(path)
	if err != nil || back.MemberIDs["us-west1"] != 6 || len(back.RetiredMemberIDs) != 1 {
		t.Errorf("reloaded record %+v, %v", back, err)
	}
	if err := os.WriteFile(path, []byte(`{"member_id": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRecord(path); err == nil || !strings.Contains(err.Error(), "member_id") {
		t.Errorf("a record with an unknown key: %v", err)
	}

	tfvars := filepath.Join(dir, "terraform.tfvars")
	os.WriteFile(tfvars, []byte("project_id = \"x\"\n# member_ids = {}\n"), 0o644)
	if err := CheckTfvars(tfvars, path); err != nil {
		t.Errorf("a comment refused: %v", err)
	}
	os.WriteFile(tfvars, []byte("project_id = \"x\"\n  removed_regions = []\n"), 0o644)
	if err := CheckTfvars(tfvars, path); err == nil || !strings.Contains(err.Error(), "sets removed_regions") {
		t.Errorf("tfvars setting removed_regions: %v", err)
	}
}
