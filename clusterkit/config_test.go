package clusterkit

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/node/config"
)

// What the kit writes is what georaftd reads: every config loads and validates through
// node/config, dials its peers where the spec says, and carries the per-node override.
func TestSpecConfigsLoadThroughNodeConfig(t *testing.T) {
	dir := t.TempDir()
	spec := Spec{
		ClusterID: "kit-test", Header: []string{"first line", "second line"}, Size: 4, Regions: []string{"r1", "r2"},
		DataRoot: filepath.Join(dir, "data"), Proxied: true, ClientRegions: []string{"r2"},
		Configure: func(c *config.Config) {
			if c.Node.ID == 3 {
				c.Timing.MaxStaleness = 5 * time.Second
			}
		},
	}
	cfgs, links, err := spec.Configs()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteConfigs(filepath.Join(dir, "configs"), spec.Header, cfgs, links); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "configs", "node1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), "# first line\n# second line\n") {
		t.Errorf("header missing:\n%s", raw)
	}
	loaded, paths, gotLinks, err := LoadConfigs(filepath.Join(dir, "configs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 4 || len(paths) != 4 || len(gotLinks["r2"]) != 4 {
		t.Fatalf("loaded %d configs and links %v", len(loaded), gotLinks)
	}
	for i, c := range loaded {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", paths[i], err)
		}
		if want := []string{"r1", "r2"}[i%2]; c.Node.Region != want {
			t.Errorf("node %d in %s, want %s", c.Node.ID, c.Node.Region, want)
		}
		for _, p := range c.Peers {
			target := loaded[p.ID-1]
			if (p.ID == c.Node.ID) != (p.PeerAddress == target.Listen.Peer) {
				t.Errorf("node %d dials node %d at %s (its listener %s): want a proxy for every other node", c.Node.ID, p.ID, p.PeerAddress, target.Listen.Peer)
			}
		}
	}
	if loaded[2].Timing.MaxStaleness != 5*time.Second || loaded[1].Timing.MaxStaleness != config.Defaults().Timing.MaxStaleness {
		t.Errorf("per-node override: node 3 staleness %v, node 2 %v", loaded[2].Timing.MaxStaleness, loaded[1].Timing.MaxStaleness)
	}
	// Two directories that disagree are refused, naming the file.
	other := filepath.Join(dir, "configs", "node9.yaml")
	cfgs[0].Node.ID = 9
	cfgs[0].ClusterID = "another"
	if err := writeConfig(other, nil, cfgs[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LoadConfigs(filepath.Join(dir, "configs")); err == nil || !strings.Contains(err.Error(), "node9.yaml") {
		t.Errorf("mismatched config dir: %v", err)
	}
}

func TestRelocateConfigsMovesEveryAddressAndDataDir(t *testing.T) {
	dst := t.TempDir()
	data := filepath.Join(dst, "data")
	if err := RelocateConfigs(filepath.Join(repoRoot, "configs/geo"), dst, data, FreeAddrMapper()); err != nil {
		t.Fatal(err)
	}
	nodes, _, links, err := LoadConfigs(dst)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, n := range nodes {
		if n.Node.DataDir != filepath.Join(data, "node"+strconv.FormatUint(n.Node.ID, 10)) {
			t.Errorf("node %d data dir %s", n.Node.ID, n.Node.DataDir)
		}
		addrs = append(addrs, n.Listen.Peer, n.Listen.Client, n.Listen.Metrics)
		for _, p := range n.Peers {
			addrs = append(addrs, p.PeerAddress, p.ClientAddress)
		}
	}
	for _, r := range links {
		for _, a := range r {
			addrs = append(addrs, a)
		}
	}
	if len(links) != 5 {
		t.Errorf("relocated client links cover %d regions, want 5", len(links))
	}
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		if n, _ := strconv.Atoi(port); n >= 2000 && n < 3000 {
			t.Errorf("address %s kept its committed port", a)
		}
	}
	// The same committed address maps to the same new one everywhere.
	n1, _ := nodes[0].PeerByID(2)
	n3, _ := nodes[2].PeerByID(2)
	if n1.ClientAddress != n3.ClientAddress || n1.ClientAddress != nodes[1].Listen.Client {
		t.Errorf("node 2's client address relocated inconsistently: %s, %s, %s", n1.ClientAddress, n3.ClientAddress, nodes[1].Listen.Client)
	}
	// Links still lead where they did: node 1 dials node 2 through a proxy, not directly.
	if n1.PeerAddress == nodes[1].Listen.Peer {
		t.Error("relocation collapsed a proxy address onto the node's own listener")
	}
}
