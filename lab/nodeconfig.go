package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// NodeConfig is the part of a georaftd config file the lab needs: where the node listens,
// where it keeps its data and whom it dials.
type NodeConfig struct {
	// Path is the config file, absolute.
	Path      string
	ClusterID string
	ID        uint64
	Region    string
	// DataDir is as written in the file; DataPath resolves it against the cluster's work dir.
	DataDir  string
	DataPath string
	Listen   Listen
	Peers    []PeerConfig
}

// PeerConfig is one entry of a config's peers list.
type PeerConfig struct {
	ID            uint64
	Region        string
	PeerAddress   string
	ClientAddress string
}

type nodeFile struct {
	ClusterID string `yaml:"cluster_id"`
	Node      struct {
		ID      uint64 `yaml:"id"`
		Region  string `yaml:"region"`
		DataDir string `yaml:"data_dir"`
	} `yaml:"node"`
	Listen struct {
		Peer    string `yaml:"peer"`
		Client  string `yaml:"client"`
		Metrics string `yaml:"metrics"`
	} `yaml:"listen"`
	Peers []struct {
		ID            uint64 `yaml:"id"`
		Region        string `yaml:"region"`
		PeerAddress   string `yaml:"peer_address"`
		ClientAddress string `yaml:"client_address"`
	} `yaml:"peers"`
}

// LoadNodeConfig reads one georaftd config. workDir is the directory georaftd runs in, which
// relative data dirs are resolved against.
func LoadNodeConfig(path, workDir string) (NodeConfig, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return NodeConfig{}, fmt.Errorf("node config %s: %w", path, err)
	}
	raw, err := os.ReadFile(abs)
	if err != nil {
		return NodeConfig{}, fmt.Errorf("read node config: %w", err)
	}
	var f nodeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return NodeConfig{}, fmt.Errorf("parse node config %s: %w", abs, err)
	}
	bad := func(key, why string) error { return fmt.Errorf("node config %s: %s: %s", abs, key, why) }
	if f.Node.ID == 0 {
		return NodeConfig{}, bad("node.id", "missing or 0")
	}
	if f.Node.DataDir == "" {
		return NodeConfig{}, bad("node.data_dir", "missing")
	}
	for key, addr := range map[string]string{"listen.peer": f.Listen.Peer, "listen.client": f.Listen.Client} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return NodeConfig{}, bad(key, fmt.Sprintf("want host:port, got %q", addr))
		}
	}
	if f.Listen.Metrics != "" {
		if _, _, err := net.SplitHostPort(f.Listen.Metrics); err != nil {
			return NodeConfig{}, bad("listen.metrics", fmt.Sprintf("want host:port or empty, got %q", f.Listen.Metrics))
		}
	}
	cfg := NodeConfig{
		Path:      abs,
		ClusterID: f.ClusterID,
		ID:        f.Node.ID,
		Region:    f.Node.Region,
		DataDir:   f.Node.DataDir,
		DataPath:  f.Node.DataDir,
		Listen:    Listen{Peer: f.Listen.Peer, Client: f.Listen.Client, Metrics: f.Listen.Metrics},
	}
	if !filepath.IsAbs(cfg.DataPath) {
		cfg.DataPath = filepath.Join(workDir, cfg.DataPath)
	}
	for i, p := range f.Peers {
		if p.ID == 0 {
			return NodeConfig{}, bad(fmt.Sprintf("peers[%d].id", i), "missing or 0")
		}
		if _, _, err := net.SplitHostPort(p.PeerAddress); err != nil {
			return NodeConfig{}, bad(fmt.Sprintf("peers[%d].peer_address", i), fmt.Sprintf("want host:port, got %q", p.PeerAddress))
		}
		cfg.Peers = append(cfg.Peers, PeerConfig{ID: p.ID, Region: p.Region, PeerAddress: p.PeerAddress, ClientAddress: p.ClientAddress})
	}
	return cfg, nil
}

// Peer returns the entry for id in the config's peers list.
func (c NodeConfig) Peer(id uint64) (PeerConfig, bool) {
	for _, p := range c.Peers {
		if p.ID == id {
			return p, true
		}
	}
	return PeerConfig{}, false
}

var nodeFileName = regexp.MustCompile(`^node(\d+)\.ya?ml$`)

// LoadClusterConfigs reads every nodeN.yaml in dir, sorted by node id, and checks they
// describe one cluster: one cluster id, distinct ids and listeners, and every node's peers
// list naming exactly the cluster's nodes.
func LoadClusterConfigs(dir, workDir string) ([]NodeConfig, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read config dir: %w", err)
	}
	var nodes []NodeConfig
	for _, e := range entries {
		if e.IsDir() || !nodeFileName.MatchString(e.Name()) {
			continue
		}
		cfg, err := LoadNodeConfig(filepath.Join(dir, e.Name()), workDir)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, cfg)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("config dir %s has no nodeN.yaml files", dir)
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].ID < nodes[b].ID })
	if err := checkCluster(nodes); err != nil {
		return nil, fmt.Errorf("config dir %s: %w", dir, err)
	}
	return nodes, nil
}

func checkCluster(nodes []NodeConfig) error {
	var errs []error
	ids := map[uint64]string{}
	listeners := map[string]string{}
	for _, n := range nodes {
		if n.ClusterID != nodes[0].ClusterID {
			errs = append(errs, fmt.Errorf("%s: cluster_id %q differs from %s's %q", n.Path, n.ClusterID, nodes[0].Path, nodes[0].ClusterID))
		}
		if other, dup := ids[n.ID]; dup {
			errs = append(errs, fmt.Errorf("%s: node.id %d also used by %s", n.Path, n.ID, other))
		}
		ids[n.ID] = n.Path
		for key, addr := range map[string]string{"listen.peer": n.Listen.Peer, "listen.client": n.Listen.Client, "listen.metrics": n.Listen.Metrics} {
			if addr == "" {
				continue
			}
			if other, dup := listeners[addr]; dup {
				errs = append(errs, fmt.Errorf("%s: %s %s also used by %s", n.Path, key, addr, other))
			}
			listeners[addr] = n.Path + " " + key
		}
	}
	for _, n := range nodes {
		if len(n.Peers) != len(nodes) {
			errs = append(errs, fmt.Errorf("%s: peers lists %d nodes, the directory has %d", n.Path, len(n.Peers), len(nodes)))
			continue
		}
		for _, p := range n.Peers {
			if _, ok := ids[p.ID]; !ok {
				errs = append(errs, fmt.Errorf("%s: peers names node %d, which has no config", n.Path, p.ID))
			}
		}
	}
	return errors.Join(errs...)
}

// ListenAddresses returns every address a node binds, with what it is, for port checks.
func (c NodeConfig) ListenAddresses() []NamedAddress {
	out := []NamedAddress{
		{What: fmt.Sprintf("node %d listen.peer", c.ID), Address: c.Listen.Peer},
		{What: fmt.Sprintf("node %d listen.client", c.ID), Address: c.Listen.Client},
	}
	if c.Listen.Metrics != "" {
		out = append(out, NamedAddress{What: fmt.Sprintf("node %d listen.metrics", c.ID), Address: c.Listen.Metrics})
	}
	return out
}

// NamedAddress is an address to bind and what binds it, for error messages.
type NamedAddress struct {
	What    string
	Address string
}

// CheckPortsFree binds and releases every address in turn and reports each one already
// taken, naming what should have bound it.
func CheckPortsFree(addrs []NamedAddress) error {
	var errs []error
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("port %s for %s is not free: %w", a.Address, a.What, err))
			continue
		}
		ln.Close()
	}
	return errors.Join(errs...)
}

// RelocateConfigs copies every nodeN.yaml (and client-links.yaml) of srcDir into dstDir
// with each listen and peer address replaced through addr, and each node's data_dir
// replaced by dataRoot/nodeN. It keeps the files otherwise as they are, comments included,
// so tests run the committed configs on ports and directories of their own.
func RelocateConfigs(srcDir, dstDir, dataRoot string, addr func(old string) (string, error)) error {
	entries, err := os.ReadDir(srcDir)
	if err != nil {
		return fmt.Errorf("read config dir: %w", err)
	}
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		m := nodeFileName.FindStringSubmatch(name)
		if e.IsDir() || (m == nil && name != ClientLinksFile) {
			continue
		}
		src := filepath.Join(srcDir, name)
		raw, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("parse %s: %w", src, err)
		}
		dataDir := ""
		if m != nil {
			dataDir = filepath.Join(dataRoot, "node"+m[1])
		}
		if err := relocateNode(&doc, "", dataDir, addr); err != nil {
			return fmt.Errorf("relocate %s: %w", src, err)
		}
		out, err := yaml.Marshal(&doc)
		if err != nil {
			return fmt.Errorf("render %s: %w", src, err)
		}
		dst := filepath.Join(dstDir, name)
		if err := os.WriteFile(dst, out, 0o644); err != nil {
			return fmt.Errorf("write relocated config: %w", err)
		}
	}
	return nil
}

var addressKeys = map[string]bool{"peer": true, "client": true, "metrics": true, "peer_address": true, "client_address": true}

// relocateNode walks a YAML tree; key is the mapping key n is the value of. Client-link maps
// have node ids as keys, so any host:port scalar whose key is numeric is an address too.
func relocateNode(n *yaml.Node, key, dataDir string, addr func(string) (string, error)) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if err := relocateNode(c, key, dataDir, addr); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := relocateNode(n.Content[i+1], n.Content[i].Value, dataDir, addr); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		_, numericKey := strconv.ParseUint(key, 10, 64)
		switch {
		case key == "data_dir" && dataDir != "":
			n.Value = dataDir
		case (addressKeys[key] || numericKey == nil) && n.Value != "":
			v, err := addr(n.Value)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			n.Value = v
		}
	}
	return nil
}

// FreePortMapper returns an address mapper for RelocateConfigs that gives each distinct
// address a loopback port that was free when first asked for, the same one every time.
func FreePortMapper() func(string) (string, error) {
	mapped := map[string]string{}
	given := map[string]bool{}
	return func(old string) (string, error) {
		if _, _, err := net.SplitHostPort(old); err != nil {
			return "", fmt.Errorf("want host:port, got %q", old)
		}
		if addr, ok := mapped[old]; ok {
			return addr, nil
		}
		// The kernel may hand a just-released port out again: ask until it is a new one.
		for range 100 {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "", fmt.Errorf("find a free port: %w", err)
			}
			addr := ln.Addr().String()
			ln.Close()
			if !given[addr] {
				given[addr] = true
				mapped[old] = addr
				return addr, nil
			}
		}
		return "", fmt.Errorf("find a free port for %s: the kernel kept offering ports already given", old)
	}
}
