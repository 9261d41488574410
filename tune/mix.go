package tune

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/internal/typo"
)

// Load is the traffic of clients in one region, in operations per second.
type Load struct {
	Reads  float64 // linearizable (lease) reads per second
	Writes float64 // writes per second
}

// Ops is reads and writes together.
func (l Load) Ops() float64 { return l.Reads + l.Writes }

// AllOtherRegions as the region of a mix entry stands for every region of the matrix that
// no other entry names.
const AllOtherRegions = "*"

// RegionLoad is the traffic from one client region.
type RegionLoad struct {
	Region string
	Load
}

// Mix is the client traffic per region that read-lease and leader placement are planned
// for. Its figures are operations per second: the recommendation weighs regions by their
// share, and a holder's reads wait on writes in flight by the absolute write rate.
type Mix []RegionLoad

// MixSyntax and MixExample are for usage messages.
const (
	MixSyntax  = "REGION=<reads>r+<writes>w,... (operations per second; REGION * for every other region)"
	MixExample = "us-central1=900r+100w,europe-west1=500r+10w,*=50r+5w"
)

// ErrBadMix is wrapped by every error about a mix's text.
var ErrBadMix = errors.New("bad client mix")

// ParseMix reads a mix from its flag form: entries separated by commas, each
// REGION=<reads>r+<writes>w with either term optional ("asia-east1=50r"), the numbers
// operations per second (decimals allowed), and REGION "*" for every region no other entry
// names. Errors quote the entry at fault.
func ParseMix(s string) (Mix, error) {
	var mix Mix
	for _, entry := range strings.Split(s, ",") {
		rl, err := parseMixEntry(entry)
		if err != nil {
			return nil, err
		}
		mix = append(mix, rl)
	}
	return mix, checkMixEntries(mix)
}

// LoadMixFile reads a mix file: the flag's entries, one or more per line (separated by
// commas), blank lines and lines starting with # ignored. Errors name the file and line.
func LoadMixFile(path string) (Mix, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open client mix: %w", err)
	}
	defer f.Close()
	var mix Mix
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		for _, entry := range strings.Split(text, ",") {
			rl, err := parseMixEntry(entry)
			if err != nil {
				return nil, fmt.Errorf("client mix %s line %d: %w", path, line, err)
			}
			mix = append(mix, rl)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read client mix %s: %w", path, err)
	}
	if len(mix) == 0 {
		return nil, fmt.Errorf("client mix %s: %w: no entries (want lines like %s)", path, ErrBadMix, MixExample)
	}
	if err := checkMixEntries(mix); err != nil {
		return nil, fmt.Errorf("client mix %s: %w", path, err)
	}
	return mix, nil
}

func parseMixEntry(entry string) (RegionLoad, error) {
	entry = strings.TrimSpace(entry)
	bad := func(format string, args ...any) (RegionLoad, error) {
		return RegionLoad{}, fmt.Errorf("%w: %q: %s", ErrBadMix, entry, fmt.Sprintf(format, args...))
	}
	if entry == "" {
		return bad("empty entry (a stray comma?)")
	}
	region, terms, ok := strings.Cut(entry, "=")
	region, terms = strings.TrimSpace(region), strings.TrimSpace(terms)
	switch {
	case !ok:
		return bad("no \"=\" between region and load; want REGION=<reads>r+<writes>w")
	case region == "":
		return bad("no region before \"=\"")
	case terms == "":
		return bad("no load after \"=\"; want e.g. %s=100r+5w", region)
	}
	rl := RegionLoad{Region: region}
	seen := map[byte]bool{}
	for _, term := range strings.Split(terms, "+") {
		term = strings.TrimSpace(term)
		if term == "" {
			return bad("empty term (a stray \"+\"?)")
		}
		unit := term[len(term)-1] | 0x20 // lower case
		if unit != 'r' && unit != 'w' {
			return bad("%q has no unit: end it with r (reads per second) or w (writes per second)", term)
		}
		if seen[unit] {
			return bad("%s given twice", map[byte]string{'r': "reads", 'w': "writes"}[unit])
		}
		seen[unit] = true
		number := strings.TrimSpace(term[:len(term)-1])
		v, err := strconv.ParseFloat(number, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return bad("%q is not a number of operations per second", number)
		}
		if v < 0 {
			return bad("%q is negative", number)
		}
		if unit == 'r' {
			rl.Reads = v
		} else {
			rl.Writes = v
		}
	}
	return rl, nil
}

func checkMixEntries(mix Mix) error {
	seen := map[string]bool{}
	var total float64
	for _, rl := range mix {
		if seen[rl.Region] {
			return fmt.Errorf("%w: region %q appears twice", ErrBadMix, rl.Region)
		}
		seen[rl.Region] = true
		total += rl.Ops()
	}
	if total == 0 {
		return fmt.Errorf("%w: no reads or writes at all", ErrBadMix)
	}
	return nil
}

// String renders m in the flag's syntax.
func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, rl := range m {
		parts[i] = fmt.Sprintf("%s=%sr+%sw", rl.Region, formatRate(rl.Reads), formatRate(rl.Writes))
	}
	return strings.Join(parts, ",")
}

func formatRate(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// resolve gives one entry per region of the matrix with clients, in the matrix's order, "*"
// expanded; a region the matrix lacks is an error with a suggestion.
func (m Mix) resolve(matrix geo.Matrix) (Mix, error) {
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadMix)
	}
	if err := checkMixEntries(m); err != nil {
		return nil, err
	}
	byRegion := map[string]Load{}
	others, hasOthers := Load{}, false
	for _, rl := range m {
		if rl.Region == AllOtherRegions {
			others, hasOthers = rl.Load, true
			continue
		}
		if !matrix.Has(rl.Region) {
			hint := ""
			if near := typo.Nearest(rl.Region, matrix.Regions(), 3); near != "" {
				hint = fmt.Sprintf("did you mean %s? ", near)
			}
			return nil, fmt.Errorf("%w: region %q is not in the rtt matrix (%sit has %s)",
				ErrBadMix, rl.Region, hint, strings.Join(matrix.Regions(), ", "))
		}
		byRegion[rl.Region] = rl.Load
	}
	var out Mix
	for _, region := range matrix.Regions() {
		load, named := byRegion[region]
		if !named && hasOthers {
			load = others
		}
		if load.Ops() > 0 {
			out = append(out, RegionLoad{Region: region, Load: load})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no reads or writes at all", ErrBadMix)
	}
	return out, nil
}

// totals sums the mix's reads and writes per second.
func (m Mix) totals() Load {
	var t Load
	for _, rl := range m {
		t.Reads += rl.Reads
		t.Writes += rl.Writes
	}
	return t
}
