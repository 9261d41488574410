package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// configFlag names the configuration file on the command line.
const configFlag = "config"

// BindFlags registers georaftd's flags on fs: --config FILE and one flag for each commonly
// overridden key (--node-id, --region, --data-dir, --listen-peer, --listen-client,
// --listen-metrics, --cluster-id, --log-level, --log-format, and the timing keys
// --heartbeat-interval, --election-timeout-min, --election-timeout-max, --lease-duration,
// --max-clock-drift, --max-staleness, --lease-read-fallback, and --dump-requests). A flag counts only when
// given: its help shows the default, but an unset flag never hides the file or the
// environment.
func BindFlags(fs *pflag.FlagSet) {
	fs.String(configFlag, "", "YAML configuration file (default $"+configEnv+")")
	d := Defaults()
	for _, f := range fields {
		if f.flag == "" {
			continue
		}
		usage := fmt.Sprintf("%s; key %s, env %s", f.usage, f.key, envName(f.key))
		switch p := f.ref(&d).(type) {
		case *string:
			fs.String(f.flag, *p, usage)
		case *uint64:
			fs.Uint64(f.flag, *p, usage)
		case *int:
			fs.Int(f.flag, *p, usage)
		case *int64:
			fs.Int64(f.flag, *p, usage)
		case *float64:
			fs.Float64(f.flag, *p, usage)
		case *bool:
			fs.Bool(f.flag, *p, usage)
		case *time.Duration:
			fs.Duration(f.flag, *p, usage)
		case *[]string:
			fs.String(f.flag, strings.Join(*p, ","), usage+" (comma-separated)")
		default:
			panic(fmt.Sprintf("config: key %s has no flag type for %T", f.key, p))
		}
	}
}

// Load builds the configuration from defaults, the file named by --config (or
// $GEORAFT_CONFIG; no file if neither is set), GEORAFT_* environment variables and the
// flags set on fs (parsed already; nil for none), each overriding the ones before it.
//
// Environment variables are GEORAFT_ and the key in upper case with dots as underscores:
// GEORAFT_TIMING_LEASE_DURATION=300ms, GEORAFT_NODE_ID=3. The peer list comes from the file,
// or from GEORAFT_PEERS in the compact form ParsePeers reads.
//
// Load reports every unknown key and every value of the wrong type at once, as an *Error.
// It does not Validate.
func Load(fs *pflag.FlagSet) (*Config, error) {
	path := os.Getenv(configEnv)
	if fs != nil {
		if f := fs.Lookup(configFlag); f != nil && f.Changed {
			path = f.Value.String()
		}
	}
	return loadPath(path, fs, nil)
}

// LoadFile is Load without flags: defaults, the file at path, GEORAFT_* environment, then
// overrides, each "key=value" with a full key (timing.lease_duration=300ms,
// peers=1=r@h:1/h:2), which take the place flags have in Load.
func LoadFile(path string, overrides ...string) (*Config, error) {
	if path == "" {
		return nil, errors.New("config: LoadFile needs a file path")
	}
	return loadPath(path, nil, overrides)
}

func loadPath(path string, fs *pflag.FlagSet, overrides []string) (*Config, error) {
	cfg, ps, err := decodePath(path, fs, overrides)
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		return nil, ps.err()
	}
	return cfg, nil
}

// Check is what `georaftd config check` runs: it loads the file at path as LoadFile does
// and validates what it could decode, and reports every problem of both at once, so a
// mistyped key does not hide a broken rule elsewhere in the file. A value that could not
// be decoded keeps its default, and Validate's problems with that key are left out. The
// Config is returned when there is no problem.
func Check(path string) (*Config, error) {
	cfg, ps, err := decodePath(path, nil, nil)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, ps.err()
	}
	var loadErr *Error
	if verr := cfg.Validate(); errors.As(verr, &loadErr) {
		for _, p := range loadErr.Problems {
			if !slices.ContainsFunc(ps, func(q Problem) bool { return q.Key != "" && q.Key == p.Key }) {
				ps = append(ps, p)
			}
		}
	}
	if len(ps) > 0 {
		return nil, ps.err()
	}
	return cfg, nil
}

func decodePath(path string, fs *pflag.FlagSet, overrides []string) (*Config, problems, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, nil, fmt.Errorf("config: read file: %w", err)
		}
	}
	return decodeBytes(path, data, fs, overrides)
}

// loadBytes does the work of Load with the file's content given (name "" for no file).
func loadBytes(name string, data []byte, fs *pflag.FlagSet, overrides []string) (*Config, error) {
	cfg, ps, err := decodeBytes(name, data, fs, overrides)
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		return nil, ps.err()
	}
	return cfg, nil
}

// decodeBytes decodes every key it can and returns the problems with the others; the
// Config is nil only when the file cannot be read as YAML at all.
func decodeBytes(name string, data []byte, fs *pflag.FlagSet, overrides []string) (*Config, problems, error) {
	var ps problems
	v := viper.New()
	v.SetConfigType("yaml")
	var lines map[string]int
	if name != "" {
		var readable bool
		lines, readable = checkFile(name, data, &ps)
		if !readable {
			return nil, ps, nil
		}
		// Go on after unknown keys and misshapen sections, to report wrong values too.
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			if len(ps) > 0 {
				return nil, ps, nil // duplicate or merge keys, already explained
			}
			return nil, nil, fmt.Errorf("config: %s: %w", name, err)
		}
	}
	shapeProblem := func(key string) bool {
		return slices.ContainsFunc(ps, func(p Problem) bool {
			return p.Key == key || strings.HasPrefix(p.Key, key+".") || strings.HasPrefix(p.Key, key+"[") ||
				strings.HasPrefix(key, p.Key+".") && isSection(p.Key)
		})
	}
	for _, f := range fields {
		if err := v.BindEnv(f.key, envName(f.key)); err != nil {
			return nil, nil, fmt.Errorf("config: bind %s: %w", envName(f.key), err)
		}
		if f.flag == "" || fs == nil {
			continue
		}
		if fl := fs.Lookup(f.flag); fl != nil {
			if err := v.BindPFlag(f.key, fl); err != nil {
				return nil, nil, fmt.Errorf("config: bind --%s: %w", f.flag, err)
			}
		}
	}
	if err := v.BindEnv(peersKey, envName(peersKey)); err != nil {
		return nil, nil, fmt.Errorf("config: bind %s: %w", envName(peersKey), err)
	}
	overridden := map[string]bool{}
	for _, o := range overrides {
		key, value, ok := strings.Cut(o, "=")
		if !ok || !isOverridable(key) {
			ps.add(key, "override %q: want KEY=VALUE with KEY one of %s", o, strings.Join(overridableKeys(), ", "))
			continue
		}
		v.Set(key, value)
		overridden[key] = true
	}

	src := sources{file: name, lines: lines, flags: fs, overridden: overridden}
	cfg := Defaults()
	for _, f := range fields {
		raw := v.Get(f.key)
		if raw == nil || shapeProblem(f.key) {
			continue
		}
		if err := decodeValue(f.ref(&cfg), raw); err != nil {
			ps.add(f.key, "%s: %v%s", f.key, err, src.of(f.key, f.flag))
		}
	}
	if raw := v.Get(peersKey); raw != nil && !shapeProblem(peersKey) {
		cfg.Peers = decodePeers(raw, &src, &ps)
	}
	cfg.fillDerived()
	return &cfg, ps, nil
}

func isOverridable(key string) bool {
	return slices.Contains(overridableKeys(), key)
}

func overridableKeys() []string {
	keys := []string{peersKey}
	for _, f := range fields {
		keys = append(keys, f.key)
	}
	return keys
}

// fillDerived sets the defaults that depend on other keys.
func (c *Config) fillDerived() {
	self, ok := c.PeerByID(c.Node.ID)
	if c.Node.Region == "" && ok {
		c.Node.Region = self.Region
	}
	if c.Listen.Peer == "" && ok {
		c.Listen.Peer = self.PeerAddress
	}
	if c.Listen.Client == "" && ok {
		c.Listen.Client = self.ClientAddress
	}
	if c.Node.DataDir == "" && c.Node.ID != 0 {
		c.Node.DataDir = fmt.Sprintf("data/node%d", c.Node.ID)
	}
}

// sources tells which layer a key's value came from, for error messages. It follows
// viper's precedence: override, flag, environment, file.
type sources struct {
	file       string
	lines      map[string]int
	flags      *pflag.FlagSet
	overridden map[string]bool
}

func (s *sources) of(key, flag string) string {
	if s.overridden[key] {
		return " (from override " + key + ")"
	}
	if flag != "" && s.flags != nil {
		if f := s.flags.Lookup(flag); f != nil && f.Changed {
			return " (from flag --" + flag + ")"
		}
	}
	if v, ok := os.LookupEnv(envName(key)); ok && v != "" {
		return " (from " + envName(key) + ")"
	}
	if line, ok := s.lines[key]; ok {
		return fmt.Sprintf(" (%s line %d)", s.file, line)
	}
	return ""
}

// checkFile parses the YAML and checks its shape against the schema: known keys only,
// sections are mappings, leaves single values, peers a list of mappings. It returns the
// line of every key, for later messages, and whether the file can be read at all.
func checkFile(name string, data []byte, ps *problems) (lines map[string]int, readable bool) {
	lines = map[string]int{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			ps.add("", "%s: %v", name, err)
			return lines, false
		}
		return lines, true
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		ps.add("", "%s: holds more than one YAML document (a second --- at line %d); write one", name, next.Line)
		return lines, false
	}
	if len(doc.Content) == 0 {
		return lines, true
	}
	root := resolveAlias(doc.Content[0])
	if isNull(root) {
		return lines, true
	}
	if root.Kind != yaml.MappingNode {
		ps.add("", "%s line %d: the top level must be a mapping of keys (cluster_id, node, listen, peers, ...), not %s",
			name, root.Line, kindName(root))
		return lines, false
	}
	w := fileWalker{name: name, lines: lines, ps: ps}
	w.mapping(root, "", func(key string, value *yaml.Node) {
		switch {
		case key == peersKey:
			w.peers(value)
		case isSection(key):
			if isNull(value) {
				return
			}
			if value.Kind != yaml.MappingNode {
				w.wrongShape(key, value, "a mapping of keys")
				return
			}
			known := schemaSections[key]
			w.mapping(value, key+".", func(leaf string, v *yaml.Node) {
				full := key + "." + leaf
				if !slices.Contains(known, leaf) {
					w.unknown(full, v)
					return
				}
				if isListKey(full) {
					w.list(full, v)
					return
				}
				w.scalar(full, v)
			})
		case isTopLevelScalar(key):
			w.scalar(key, value)
		default:
			w.unknown(key, value)
		}
	})
	return lines, true
}

func isTopLevelScalar(key string) bool {
	section, ok := schemaSections[key]
	return ok && section == nil && key != peersKey
}

type fileWalker struct {
	name  string
	lines map[string]int
	ps    *problems
}

// mapping calls visit for each key of n, refusing non-scalar keys, merge keys and
// repeated keys.
func (w *fileWalker) mapping(n *yaml.Node, prefix string, visit func(key string, value *yaml.Node)) {
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, value := n.Content[i], resolveAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.ps.add(prefix, "%s line %d: a key under %q must be a name, not %s", w.name, k.Line, strings.TrimSuffix(prefix, "."), kindName(k))
			continue
		}
		full := prefix + k.Value
		if k.Value == "<<" {
			w.ps.add(full, "%s line %d: YAML merge keys (<<) are not supported; write the keys out", w.name, k.Line)
			continue
		}
		if first, dup := firstLine[k.Value]; dup {
			w.ps.add(full, "%s line %d: key %s appears twice (first at line %d)", w.name, k.Line, full, first)
			continue
		}
		firstLine[k.Value] = k.Line
		w.lines[full] = k.Line
		visit(k.Value, value)
	}
}

func (w *fileWalker) unknown(key string, value *yaml.Node) {
	msg := fmt.Sprintf("%s line %d: unknown key %s", w.name, w.lines[key], key)
	if s := suggest(key); s != "" {
		msg += "; did you mean " + s + "?"
	}
	w.ps.add(key, "%s", msg)
}

func (w *fileWalker) scalar(key string, value *yaml.Node) {
	if value.Kind != yaml.ScalarNode {
		w.wrongShape(key, value, "a single value")
	}
}

// list accepts a sequence of single values, or one value (all, none, or one item).
func (w *fileWalker) list(key string, value *yaml.Node) {
	switch value.Kind {
	case yaml.ScalarNode:
	case yaml.SequenceNode:
		for _, item := range value.Content {
			if item = resolveAlias(item); item.Kind != yaml.ScalarNode {
				w.wrongShape(key, item, "a list of names or numbers")
				return
			}
		}
	default:
		w.wrongShape(key, value, "a list (like [a, b]) or a single value")
	}
}

func (w *fileWalker) wrongShape(key string, value *yaml.Node, want string) {
	w.ps.add(key, "%s line %d: %s must be %s, not %s", w.name, value.Line, key, want, kindName(value))
}

func (w *fileWalker) peers(value *yaml.Node) {
	if isNull(value) {
		return
	}
	if value.Kind != yaml.SequenceNode {
		w.wrongShape(peersKey, value, "a list of peers (- id: ...)")
		return
	}
	for i, item := range value.Content {
		item = resolveAlias(item)
		prefix := fmt.Sprintf("%s[%d]", peersKey, i)
		if item.Kind != yaml.MappingNode {
			w.wrongShape(prefix, item, "a mapping with id, region, peer_address and client_address")
			continue
		}
		w.lines[prefix] = item.Line
		w.mapping(item, prefix+".", func(key string, v *yaml.Node) {
			full := prefix + "." + key
			if !isPeerKey(key) {
				msg := fmt.Sprintf("%s line %d: unknown key %s", w.name, w.lines[full], full)
				if s := suggest(peersKey + "[]." + key); s != "" {
					msg += "; did you mean " + strings.TrimPrefix(s, peersKey+"[].") + "?"
				}
				w.ps.add(full, "%s", msg)
				return
			}
			w.scalar(full, v)
		})
	}
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// decodePeers reads the peer list from the file (a list of mappings) or from GEORAFT_PEERS
// or an override (a compact string).
func decodePeers(raw any, src *sources, ps *problems) []Peer {
	switch r := raw.(type) {
	case string:
		peers, err := ParsePeers(r)
		if err != nil {
			ps.add(peersKey, "%s: %v%s", peersKey, err, src.of(peersKey, ""))
			return nil
		}
		return peers
	case []any:
		if len(r) == 0 {
			return nil
		}
		peers := make([]Peer, len(r))
		for i, item := range r {
			m, ok := item.(map[string]any)
			if !ok {
				ps.add(fmt.Sprintf("%s[%d]", peersKey, i), "%s[%d] must be a mapping with id, region, peer_address and client_address", peersKey, i)
				continue
			}
			for _, pf := range peerFields {
				value, ok := m[pf.key]
				if !ok || value == nil {
					continue
				}
				key := fmt.Sprintf("%s[%d].%s", peersKey, i, pf.key)
				if err := decodeValue(pf.ref(&peers[i]), value); err != nil {
					where := ""
					if line, ok := src.lines[key]; ok {
						where = fmt.Sprintf(" (%s line %d)", src.file, line)
					}
					ps.add(key, "%s: %v%s", key, err, where)
				}
			}
		}
		return peers
	}
	ps.add(peersKey, "%s must be a list of peers, not %v", peersKey, raw)
	return nil
}
