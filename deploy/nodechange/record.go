// Package nodechange carries out the deploy kit's node changes on a running cluster:
// replace the node of a region (a new, blank disk joins as a new member and takes the old
// member's place), add a node in a region, and remove a region's node. deploy/cluster.mk's
// cluster-replace-node, cluster-add-node and cluster-remove-node run it through
// deploy/cmd/georaft-nodechange; docs/deploy.md is the operator's guide.
//
// Every change is a sequence of steps recorded in a journal as each finishes, so a change
// that fails midway is finished by running the same target again, and no other change starts
// until it is.
package nodechange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/georaft/georaft/deploy/inventory"
)

// Record is the kit's record of node changes, which Terraform reads as variables from
// terraform/membership.auto.tfvars.json (terraform/variables.tf describes each).
type Record struct {
	DataDiskGeneration map[string]int    `json:"data_disk_generation"`
	MemberIDs          map[string]uint64 `json:"member_ids"`
	ReplacedMemberIDs  map[string]uint64 `json:"replaced_member_ids"`
	RetiredMemberIDs   []uint64          `json:"retired_member_ids"`
	AddedRegions       []string          `json:"added_regions"`
	RemovedRegions     []string          `json:"removed_regions"`
}

// RecordVariables are the Terraform variables the record holds; terraform.tfvars must not
// set them too (an auto.tfvars file silently overrides it).
var RecordVariables = []string{"data_disk_generation", "member_ids", "replaced_member_ids", "retired_member_ids",
	"added_regions", "removed_regions"}

// LoadRecord reads the record; a missing file is the empty record of a cluster no node
// change has touched.
func LoadRecord(path string) (Record, error) {
	var r Record
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r.normalized(), nil
	}
	if err != nil {
		return r, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%s: %w (the kit writes this file; restore it from where you keep terraform.tfvars)", path, err)
	}
	return r.normalized(), nil
}

func (r Record) normalized() Record {
	if r.DataDiskGeneration == nil {
		r.DataDiskGeneration = map[string]int{}
	}
	if r.MemberIDs == nil {
		r.MemberIDs = map[string]uint64{}
	}
	if r.ReplacedMemberIDs == nil {
		r.ReplacedMemberIDs = map[string]uint64{}
	}
	// Terraform reads null as null, not as the variable's default: write empty lists.
	if r.RetiredMemberIDs == nil {
		r.RetiredMemberIDs = []uint64{}
	}
	if r.AddedRegions == nil {
		r.AddedRegions = []string{}
	}
	if r.RemovedRegions == nil {
		r.RemovedRegions = []string{}
	}
	return r
}

// Save writes the record atomically.
func (r Record) Save(path string) error {
	data, err := json.MarshalIndent(r.normalized(), "", "  ")
	if err != nil {
		return err
	}
	return inventory.WriteFileAtomic(path, append(data, '\n'))
}

// generation is the region's current data disk generation.
func (r Record) generation(region string) int {
	if g := r.DataDiskGeneration[region]; g > 0 {
		return g
	}
	return 1
}

func (r *Record) retire(id uint64) {
	if !slices.Contains(r.RetiredMemberIDs, id) {
		r.RetiredMemberIDs = append(r.RetiredMemberIDs, id)
	}
}

// CheckTfvars refuses a terraform.tfvars that sets a variable the record holds.
func CheckTfvars(path, recordPath string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, v := range RecordVariables {
		if regexp.MustCompile(`(?m)^\s*` + v + `\s*=`).Match(data) {
			return fmt.Errorf("%s sets %s, which the kit keeps in %s (a node change would silently override it): "+
				"remove it from %s, and put its value into %s if a change of yours set it", path, v, recordPath,
				filepath.Base(path), filepath.Base(recordPath))
		}
	}
	return nil
}

var placementLine = regexp.MustCompile(`^  (\d+): (\S+)\s*$`)

// TimingPlacement reads georaft_timing_placement (member id: region) from a timing group_vars
// file written by `georaft tune --format ansible`.
func TimingPlacement(data []byte) (map[uint64]string, error) {
	out := map[uint64]string{}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "georaft_timing_placement:"):
			in = true
		case in && placementLine.MatchString(line):
			m := placementLine.FindStringSubmatch(line)
			var id uint64
			fmt.Sscan(m[1], &id)
			out[id] = strings.Trim(m[2], `"`)
		case in:
			in = false
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no georaft_timing_placement in it (derive timing with make cluster-tune)")
	}
	return out, nil
}

// RenamePlacement gives member oldID's place in region to newID in a timing group_vars file:
// the timing holds for the regions, which a replace does not change. Already renamed is no
// change.
func RenamePlacement(data []byte, oldID, newID uint64, region string) ([]byte, bool, error) {
	placement, err := TimingPlacement(data)
	if err != nil {
		return nil, false, err
	}
	if placement[newID] == region && placement[oldID] == "" {
		return data, false, nil
	}
	if placement[oldID] != region {
		return nil, false, fmt.Errorf("its placement %s has no member %d in %s", FormatPlacement(placement), oldID, region)
	}
	if r, ok := placement[newID]; ok {
		return nil, false, fmt.Errorf("its placement %s already has member %d (in %s)", FormatPlacement(placement), newID, r)
	}
	lines := strings.Split(string(data), "\n")
	in := false
	oldToken := regexp.MustCompile(fmt.Sprintf(`\b%d=%s\b`, oldID, regexp.QuoteMeta(region)))
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, "# Timing derived"):
			lines[i] = oldToken.ReplaceAllString(line, fmt.Sprintf("%d=%s", newID, region))
		case strings.HasPrefix(line, "georaft_timing_placement:"):
			in = true
		case in && placementLine.MatchString(line):
			if m := placementLine.FindStringSubmatch(line); m[1] == fmt.Sprint(oldID) {
				lines[i] = fmt.Sprintf("  %d: %s", newID, m[2])
			}
		case in:
			in = false
		}
	}
	return []byte(strings.Join(lines, "\n")), true, nil
}

// FormatPlacement is "1=us-central1,2=us-east1,...", in id order, as georaft tune --placement
// takes it.
func FormatPlacement(p map[uint64]string) string {
	ids := make([]uint64, 0, len(p))
	for id := range p {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, p[id])
	}
	return strings.Join(parts, ",")
}
