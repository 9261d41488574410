package tune

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format is an output format of a Result.
type Format string

const (
	// FormatText is for a person: the figures, then one line of reasoning each.
	FormatText Format = "text"
	// FormatYAML is the `timing:` section of a georaftd config file.
	FormatYAML Format = "yaml"
	// FormatAnsible is a group_vars file for ansible/roles/georaft.
	FormatAnsible Format = "ansible"
)

// Formats lists the formats Write accepts.
var Formats = []Format{FormatText, FormatYAML, FormatAnsible}

// ParseFormat checks a format name given by a user.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown output format %q (want text, yaml or ansible)", s)
}

// Write renders r in format f.
func (r Result) Write(w io.Writer, f Format) error {
	var out string
	switch f {
	case FormatText:
		out = r.Text()
	case FormatYAML:
		out = r.YAML()
	case FormatAnsible:
		out = r.AnsibleVars()
	default:
		return fmt.Errorf("unknown output format %q (want text, yaml or ansible)", f)
	}
	if _, err := io.WriteString(w, out); err != nil {
		return fmt.Errorf("write tuned timing: %w", err)
	}
	return nil
}

// figure is one derived setting, in the order configs list them.
type figure struct{ key, value string }

func (r Result) figures() []figure {
	return []figure{
		{"heartbeat_interval", r.HeartbeatInterval.String()},
		{"election_timeout_min", r.ElectionTimeoutMin.String()},
		{"election_timeout_max", r.ElectionTimeoutMax.String()},
		{"lease_duration", r.LeaseDuration.String()},
		{"max_clock_drift", strconv.FormatFloat(r.MaxClockDrift, 'g', -1, 64)},
	}
}

// explanationFor finds the reasoning line of a key (each starts with the key's name).
func (r Result) explanationFor(key string) string {
	for _, line := range r.explain {
		if strings.HasPrefix(line, key+" ") {
			return line
		}
	}
	return ""
}

func (r Result) placementLine() string {
	parts := make([]string, len(r.Voters))
	for i, v := range r.Voters {
		parts[i] = fmt.Sprintf("%d=%s", v.ID, v.Region)
	}
	return fmt.Sprintf("%d nodes (%s)", len(r.Voters), strings.Join(parts, ", "))
}

// WorstFailover bounds how long writes stop after the leader dies, with the leader placed
// anywhere: the longest election timeout, then the slowest candidate's pre-vote and vote
// rounds, then committing its no-op (three quorum RTTs).
func (r Result) WorstFailover() time.Duration {
	return r.ElectionTimeoutMax + 3*r.SlowestQuorumRTT
}

// Text is the human-readable report.
func (r Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "georaft timing for %s\n", r.placementLine())
	fmt.Fprintf(&b, "leader expected in %s (quorum RTT %v); slowest leader %s (%v); farthest voters %s↔%s (%v)\n\n",
		r.LeaderRegion, r.LeaderQuorumRTT, r.SlowestLeaderRegion, r.SlowestQuorumRTT,
		r.FarthestPair[0], r.FarthestPair[1], r.MaxRTT)
	for _, f := range r.figures() {
		fmt.Fprintf(&b, "  %-22s %s\n", f.key, f.value)
	}
	b.WriteString("\nwhy:\n")
	for _, line := range r.explain {
		fmt.Fprintf(&b, "  - %s\n", line)
	}
	fmt.Fprintf(&b, "\nexpect: writes commit %v after reaching a leader in %s; lease reads there cost no round trip; "+
		"writes stop for at most ~%v after a leader crash (election_timeout_max + 3 quorum RTTs of the slowest candidate)\n",
		r.LeaderQuorumRTT, r.LeaderRegion, r.WorstFailover())
	if r.Plan != nil {
		b.WriteString("\n")
		b.WriteString(r.Plan.Text())
	}
	return b.String()
}

func (r Result) header(b *strings.Builder) {
	fmt.Fprintf(b, "# Timing derived by georaft tune for %s,\n", r.placementLine())
	fmt.Fprintf(b, "# leader expected in %s. Regenerate from measured RTTs rather than editing by hand.\n", r.LeaderRegion)
}

// YAML is the timing section of a georaftd config, each key under its reasoning.
func (r Result) YAML() string {
	var b strings.Builder
	r.header(&b)
	b.WriteString("timing:\n")
	for _, f := range r.figures() {
		fmt.Fprintf(&b, "  # %s\n  %s: %s\n", r.explanationFor(f.key), f.key, f.value)
	}
	if r.Plan != nil {
		b.WriteString(r.Plan.yamlSections())
	}
	return b.String()
}

// AnsibleVars is a group_vars file: the role's templates read georaft_<key> for each figure.
func (r Result) AnsibleVars() string {
	var b strings.Builder
	b.WriteString("---\n")
	r.header(&b)
	for _, f := range r.figures() {
		fmt.Fprintf(&b, "# %s\ngeoraft_%s: %s\n", r.explanationFor(f.key), f.key, f.value)
	}
	fmt.Fprintf(&b, "# Where tune expects the leader; informational, the cluster elects whom it elects.\n")
	fmt.Fprintf(&b, "georaft_expected_leader_region: %s\n", yamlScalar(r.LeaderRegion))
	b.WriteString("# The placement (node id: region) this timing was derived for; the role refuses to deploy\n" +
		"# an inventory whose node ids and regions differ (re-derive with make cluster-tune).\n")
	b.WriteString("georaft_timing_placement:\n")
	for _, v := range r.Voters {
		fmt.Fprintf(&b, "  %d: %s\n", v.ID, yamlScalar(v.Region))
	}
	if r.Plan != nil {
		b.WriteString(r.Plan.ansibleVars())
	}
	return b.String()
}

// yamlScalar leaves plain region names bare and quotes anything YAML could misread; a
// double-quoted Go string is a valid YAML double-quoted scalar.
func yamlScalar(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return strconv.Quote(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
