package clusterkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/georaft/georaft/client"
	"github.com/georaft/georaft/geo"
	"github.com/georaft/georaft/node/config"
	"github.com/georaft/georaft/tune"
)

// DefaultRegions are the five regions of the default RTT matrix; node N of a generated
// cluster is in the Nth (cycling when there are more nodes).
var DefaultRegions = []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}

// Spec describes a cluster whose configs the kit writes. Every field has a default; a
// Spec{} is three nodes on free loopback ports, dialing each other directly.
type Spec struct {
	ClusterID string
	// Header is the comment on top of each config file, one line per element.
	Header []string
	// Size is the number of nodes (default len(Regions), or 3 when Regions is empty).
	Size int
	// Regions places node N in Regions[(N-1) % len]; default DefaultRegions.
	Regions []string
	// DataRoot holds node N's data dir DataRoot/nodeN: absolute, or relative to where the
	// nodes run. New defaults it to DIR/data.
	DataRoot string
	// Ports places listeners and links (default: free ports, a new set per Spec).
	Ports Ports
	// Proxied sends every peer link i→j through its own proxy at Ports.PeerLink(i, j), so
	// each directed link can be delayed and faulted on its own.
	Proxied bool
	// ClientRegions get a proxied client link to every node each, listed in
	// client-links.yaml: what a client in that region dials.
	ClientRegions []string
	// Timing is every node's timing section (default config.Defaults().Timing).
	Timing config.TimingConfig
	// TLS turns on mutual TLS between peers and for clients. New issues a CA, a certificate
	// per node and a client certificate "admin" into DIR/certs.
	TLS bool
	// Configure, when set, changes each node's config last: a per-node override (a key
	// of another feature, a different timing on one node).
	Configure func(*config.Config)
}

func (s *Spec) fill() {
	if s.Size == 0 {
		s.Size = len(s.Regions)
		if s.Size == 0 {
			s.Size = 3
		}
	}
	if len(s.Regions) == 0 {
		s.Regions = DefaultRegions
	}
	if s.ClusterID == "" {
		s.ClusterID = "georaft-kit"
	}
	if s.Ports == nil {
		s.Ports = &FreePorts{}
	}
	if s.Timing == (config.TimingConfig{}) {
		s.Timing = config.Defaults().Timing
	}
}

// regionOf is the region of node id under the spec.
func (s *Spec) regionOf(id uint64) string { return s.Regions[int(id-1)%len(s.Regions)] }

// Configs builds every node's config, and the client links of ClientRegions (nil without).
func (s Spec) Configs() ([]*config.Config, client.RegionLinks, error) {
	s.fill()
	members := map[uint64]string{}
	for id := uint64(1); id <= uint64(s.Size); id++ {
		members[id] = s.regionOf(id)
	}
	var out []*config.Config
	for id := uint64(1); id <= uint64(s.Size); id++ {
		c, err := s.nodeConfig(id, members)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, c)
	}
	links, err := s.clientLinks(members)
	return out, links, err
}

// nodeConfig is node id's config in a cluster of members (id → region).
func (s *Spec) nodeConfig(id uint64, members map[uint64]string) (*config.Config, error) {
	c := config.Defaults()
	c.ClusterID = s.ClusterID
	listen, err := s.Ports.Listen(id)
	if err != nil {
		return nil, err
	}
	c.Node = config.NodeConfig{ID: id, Region: members[id], DataDir: filepath.ToSlash(filepath.Join(s.DataRoot, "node"+strconv.FormatUint(id, 10)))}
	c.Listen = listen
	c.Timing = s.Timing
	for _, m := range sortedIDs(members) {
		ml, err := s.Ports.Listen(m)
		if err != nil {
			return nil, err
		}
		dial := ml.Peer
		if s.Proxied && m != id {
			if dial, err = s.Ports.PeerLink(id, m); err != nil {
				return nil, err
			}
		}
		c.Peers = append(c.Peers, config.Peer{ID: m, Region: members[m], PeerAddress: dial, ClientAddress: ml.Client})
	}
	if s.Configure != nil {
		s.Configure(&c)
	}
	return &c, nil
}

func (s *Spec) clientLinks(members map[uint64]string) (client.RegionLinks, error) {
	if len(s.ClientRegions) == 0 {
		return nil, nil
	}
	links := client.RegionLinks{}
	for r, region := range s.ClientRegions {
		links[region] = map[uint64]string{}
		for id := range members {
			addr, err := s.Ports.ClientLink(r+1, id)
			if err != nil {
				return nil, err
			}
			links[region][id] = addr
		}
	}
	return links, nil
}

func sortedIDs[V any](m map[uint64]V) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

// ClientLinksFile is the name of the client-link map in a config directory.
const ClientLinksFile = "client-links.yaml"

// NodeFileName is node id's config file in a config directory.
func NodeFileName(id uint64) string { return fmt.Sprintf("node%d.yaml", id) }

var nodeFileName = regexp.MustCompile(`^node(\d+)\.ya?ml$`)

// WriteConfigs writes each config as nodeN.yaml, through node/config's own writer, and the
// client links (if any) as client-links.yaml, into dir.
func WriteConfigs(dir string, header []string, cfgs []*config.Config, links client.RegionLinks) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create config dir %s: %w", dir, err)
	}
	for _, c := range cfgs {
		if err := writeConfig(filepath.Join(dir, NodeFileName(c.Node.ID)), header, c); err != nil {
			return err
		}
	}
	if links == nil {
		return nil
	}
	var b bytes.Buffer
	if err := links.Write(&b); err != nil {
		return fmt.Errorf("render client links: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ClientLinksFile), b.Bytes())
}

func writeConfig(path string, header []string, c *config.Config) error {
	var b bytes.Buffer
	if err := c.Write(&b, strings.Join(header, "\n")); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	return writeFileAtomic(path, b.Bytes())
}

// LoadConfigs reads every nodeN.yaml in dir through node/config's own loader, sorted by
// node id, and checks they describe one cluster: one cluster id, distinct ids and
// listeners, and every node's peers naming exactly the directory's nodes. It also returns
// client-links.yaml when the directory has one.
func LoadConfigs(dir string) ([]*config.Config, []string, client.RegionLinks, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read config dir: %w", err)
	}
	type loaded struct {
		path string
		cfg  *config.Config
	}
	var files []loaded
	for _, e := range entries {
		if e.IsDir() || !nodeFileName.MatchString(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		cfg, err := config.LoadFile(path)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("node config %s: %w", path, err)
		}
		files = append(files, loaded{path, cfg})
	}
	if len(files) == 0 {
		return nil, nil, nil, fmt.Errorf("config dir %s has no nodeN.yaml files", dir)
	}
	sort.Slice(files, func(a, b int) bool { return files[a].cfg.Node.ID < files[b].cfg.Node.ID })
	cfgs := make([]*config.Config, len(files))
	paths := make([]string, len(files))
	for i, f := range files {
		cfgs[i], paths[i] = f.cfg, f.path
	}
	if err := checkOneCluster(cfgs, paths); err != nil {
		return nil, nil, nil, fmt.Errorf("config dir %s: %w", dir, err)
	}
	var links client.RegionLinks
	linksPath := filepath.Join(dir, ClientLinksFile)
	if _, err := os.Stat(linksPath); err == nil {
		if links, err = client.LoadRegionLinks(linksPath); err != nil {
			return nil, nil, nil, err
		}
	}
	return cfgs, paths, links, nil
}

func checkOneCluster(cfgs []*config.Config, paths []string) error {
	var errs []error
	ids := map[uint64]string{}
	listeners := map[string]string{}
	for i, c := range cfgs {
		if c.ClusterID != cfgs[0].ClusterID {
			errs = append(errs, fmt.Errorf("%s: cluster_id %q differs from %s's %q", paths[i], c.ClusterID, paths[0], cfgs[0].ClusterID))
		}
		if other, dup := ids[c.Node.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: node.id %d also used by %s", paths[i], c.Node.ID, other))
		}
		ids[c.Node.ID] = paths[i]
		for _, l := range listenAddresses(c) {
			if other, dup := listeners[l.Address]; dup {
				errs = append(errs, fmt.Errorf("%s: %s %s also used by %s", paths[i], l.What, l.Address, other))
			}
			listeners[l.Address] = paths[i] + " " + l.What
		}
	}
	for i, c := range cfgs {
		if len(c.Peers) != len(cfgs) {
			errs = append(errs, fmt.Errorf("%s: peers lists %d nodes, the directory has %d", paths[i], len(c.Peers), len(cfgs)))
			continue
		}
		for _, p := range c.Peers {
			if _, ok := ids[p.ID]; !ok {
				errs = append(errs, fmt.Errorf("%s: peers names node %d, which has no config", paths[i], p.ID))
			}
		}
	}
	return errors.Join(errs...)
}

// listenAddresses names every address a node binds, for port checks.
func listenAddresses(c *config.Config) []NamedAddress {
	out := []NamedAddress{
		{What: fmt.Sprintf("node %d listen.peer", c.Node.ID), Address: c.Listen.Peer},
		{What: fmt.Sprintf("node %d listen.client", c.Node.ID), Address: c.Listen.Client},
	}
	if c.Listen.Metrics != "" {
		out = append(out, NamedAddress{What: fmt.Sprintf("node %d listen.metrics", c.Node.ID), Address: c.Listen.Metrics})
	}
	return out
}

// RelocateConfigs copies a config directory (nodeN.yaml and client-links.yaml) into dst
// with every listen, peer and client-link address replaced through addr and each node's
// data dir set to dataRoot/nodeN: tests run the committed configs on ports and
// directories of their own.
func RelocateConfigs(src, dst, dataRoot string, addr func(old string) (string, error)) error {
	cfgs, _, links, err := LoadConfigs(src)
	if err != nil {
		return err
	}
	var errs []error
	move := func(a *string) {
		if *a == "" {
			return
		}
		v, err := addr(*a)
		errs = append(errs, err)
		*a = v
	}
	for _, c := range cfgs {
		c.Node.DataDir = filepath.Join(dataRoot, "node"+strconv.FormatUint(c.Node.ID, 10))
		move(&c.Listen.Peer)
		move(&c.Listen.Client)
		move(&c.Listen.Metrics)
		for i := range c.Peers {
			move(&c.Peers[i].PeerAddress)
			move(&c.Peers[i].ClientAddress)
		}
	}
	for _, nodes := range links {
		for id, a := range nodes {
			move(&a)
			nodes[id] = a
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relocate %s: %w", src, err)
	}
	return WriteConfigs(dst, []string{"Relocated from " + src + " by the cluster kit."}, cfgs, links)
}

// FreeAddrMapper maps each distinct address to a free loopback address, the same one every
// time: RelocateConfigs' addr for tests.
func FreeAddrMapper() func(string) (string, error) {
	mapped := map[string]string{}
	return func(old string) (string, error) {
		if a, ok := mapped[old]; ok {
			return a, nil
		}
		addrs, err := FreeAddrs(1)
		if err != nil {
			return "", err
		}
		mapped[old] = addrs[0]
		return addrs[0], nil
	}
}

// GeoStaleness is how long a node of an emulated geo cluster answers stale reads without
// hearing from a leader: a few election timeouts, so stale reads ride out an election.
const GeoStaleness = 2 * time.Second

// GeoTiming asks the tune package for timing that suits the matrix with node N in
// regions[N-1] and the leader in regions[0].
func GeoTiming(m geo.Matrix, regions []string) (config.TimingConfig, error) {
	placement := map[uint64]string{}
	for i, r := range regions {
		placement[uint64(i+1)] = r
	}
	res, err := tune.Derive(m, tune.Options{Placement: placement, LeaderRegion: regions[0]})
	if err != nil {
		return config.TimingConfig{}, fmt.Errorf("derive geo timing: %w", err)
	}
	return config.TimingConfig{
		HeartbeatInterval:  res.HeartbeatInterval,
		ElectionTimeoutMin: res.ElectionTimeoutMin,
		ElectionTimeoutMax: res.ElectionTimeoutMax,
		LeaseDuration:      res.LeaseDuration,
		MaxClockDrift:      res.MaxClockDrift,
		MaxStaleness:       GeoStaleness,
		LeaseReadFallback:  true,
	}, nil
}
