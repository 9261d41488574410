package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ResolveHolders turns a read-lease holder setting (["all"], ["none"], or member ids and
// region names) into member ids, sorted, against the members given as id → region. A
// region stands for every member in it. It is the one reading of read_leases.holders, for
// the node config and for `georaft read-leases set`.
func ResolveHolders(words []string, members map[uint64]string) ([]uint64, error) {
	words = normalizeWords(words)
	if len(words) == 0 {
		return nil, fmt.Errorf("no holders given: want %s, %s, or member ids and region names", HoldersAll, HoldersNone)
	}
	if len(words) == 1 {
		switch strings.ToLower(words[0]) {
		case HoldersNone:
			return nil, nil
		case HoldersAll:
			ids := make([]uint64, 0, len(members))
			for id := range members {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return ids, nil
		}
	}
	var ids []uint64
	for _, w := range words {
		lw := strings.ToLower(w)
		if lw == HoldersAll || lw == HoldersNone {
			return nil, fmt.Errorf("%q must stand alone, not in a list with other holders", w)
		}
		if id, err := strconv.ParseUint(w, 10, 64); err == nil {
			if _, ok := members[id]; !ok {
				return nil, fmt.Errorf("%q is not a member id (members: %s)", w, describeMembers(members))
			}
			ids = append(ids, id)
			continue
		}
		found := false
		for id, region := range members {
			if region == w {
				ids = append(ids, id)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%q is neither a member id nor a region of a member (members: %s)", w, describeMembers(members))
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// normalizeWords splits comma-separated entries (from an environment variable, a flag or a
// command line) and drops blanks.
func normalizeWords(words []string) []string {
	var out []string
	for _, w := range words {
		for _, part := range strings.Split(w, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func describeMembers(members map[uint64]string) string {
	ids := make([]uint64, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, members[id])
	}
	return strings.Join(parts, ", ")
}

// members is the peers list as id → region.
func (c *Config) members() map[uint64]string {
	m := make(map[uint64]string, len(c.Peers))
	for _, p := range c.Peers {
		m[p.ID] = p.Region
	}
	return m
}

// ReadLeaseHolderIDs is read_leases.holders as member ids (none if it does not resolve:
// Validate reports that).
func (c *Config) ReadLeaseHolderIDs() []uint64 {
	ids, err := ResolveHolders(c.ReadLeases.Holders, c.members())
	if err != nil {
		return nil
	}
	return ids
}

func (c *Config) checkReadLeases(ps *problems) {
	if len(c.Peers) == 0 {
		return
	}
	if _, err := ResolveHolders(c.ReadLeases.Holders, c.members()); err != nil {
		ps.add("read_leases.holders", "read_leases.holders: %v", err)
	}
}

func (c *Config) checkPlacement(ps *problems) {
	regions := map[string]bool{}
	for _, p := range c.Peers {
		regions[p.Region] = true
	}
	seen := map[string]bool{}
	for _, r := range c.Placement.PreferredRegions {
		switch {
		case seen[r]:
			ps.add("placement.preferred_regions", "placement.preferred_regions names %q twice", r)
		case len(c.Peers) > 0 && !regions[r]:
			ps.add("placement.preferred_regions", "placement.preferred_regions: %q is not the region of any member (regions: %s)",
				r, strings.Join(sortedKeys(regions), ", "))
		}
		seen[r] = true
	}
	if c.Placement.HealthyFor < 0 {
		ps.add("placement.healthy_for", "placement.healthy_for must not be negative, got %v", c.Placement.HealthyFor)
	}
	if c.Placement.StopHandoffTimeout < 0 {
		ps.add("placement.stop_handoff_timeout", "placement.stop_handoff_timeout must not be negative, got %v", c.Placement.StopHandoffTimeout)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
