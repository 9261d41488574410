package client

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvEndpoints is the environment variable holding comma-separated endpoints.
const EnvEndpoints = "GEORAFT_ENDPOINTS"

// Endpoint is an address with, when known, the node behind it.
type Endpoint struct {
	Address string `json:"address"`
	NodeID  uint64 `json:"node_id,omitempty"`
	Region  string `json:"region,omitempty"`
}

// ParseEndpoints splits a comma-separated list. An entry may name its node as ID=ADDRESS
// ("1=127.0.0.1:7201"), which lets redirects to that node use this address.
func ParseEndpoints(list string) ([]Endpoint, error) {
	var out []Endpoint
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		ep := Endpoint{Address: raw}
		if idText, addr, ok := strings.Cut(raw, "="); ok {
			id, err := strconv.ParseUint(strings.TrimSpace(idText), 10, 64)
			if err != nil || id == 0 {
				return nil, fmt.Errorf("endpoint %q: want ADDRESS or ID=ADDRESS with a non-zero node id", raw)
			}
			ep = Endpoint{Address: strings.TrimSpace(addr), NodeID: id}
		}
		if !strings.Contains(ep.Address, ":") {
			return nil, fmt.Errorf("endpoint %q: want host:port", raw)
		}
		out = append(out, ep)
	}
	return out, nil
}

// NodeConfigTLS is the tls section of a node config file.
type NodeConfigTLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// NodeConfigEndpoints is what a client takes from node config files.
type NodeConfigEndpoints struct {
	ClusterID string
	Endpoints []Endpoint
	TLS       NodeConfigTLS
	// Dir is the directory of the first file, against which relative TLS paths that do not
	// exist from the working directory may be resolved.
	Dir string
}

// nodeConfigFile is the part of the georaftd YAML schema (docs/design.md) a client needs.
// Unknown keys are ignored: the node's own loader (node/config) validates the rest.
type nodeConfigFile struct {
	ClusterID string `yaml:"cluster_id"`
	Peers     []struct {
		ID            uint64 `yaml:"id"`
		Region        string `yaml:"region"`
		ClientAddress string `yaml:"client_address"`
	} `yaml:"peers"`
	TLS NodeConfigTLS `yaml:"tls"`
}

// EndpointsFromNodeConfigs reads georaftd config files and returns every peer's
// client_address, with its node id and region. Several files of one cluster are merged;
// files that disagree on a node's address or on the cluster id are an error.
func EndpointsFromNodeConfigs(paths ...string) (NodeConfigEndpoints, error) {
	var out NodeConfigEndpoints
	byID := map[uint64]int{}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return out, fmt.Errorf("read node config: %w", err)
		}
		var f nodeConfigFile
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&f); err != nil {
			return out, fmt.Errorf("node config %s: %w", path, err)
		}
		if out.Dir == "" {
			out.Dir = filepath.Dir(path)
			out.ClusterID = f.ClusterID
			out.TLS = f.TLS
		} else if out.ClusterID == "" {
			out.ClusterID = f.ClusterID
		} else if f.ClusterID != "" && f.ClusterID != out.ClusterID {
			return out, fmt.Errorf("node config %s: cluster_id %q differs from %q in an earlier file", path, f.ClusterID, out.ClusterID)
		}
		if len(f.Peers) == 0 {
			return out, fmt.Errorf("node config %s: peers: no peers listed", path)
		}
		for i, p := range f.Peers {
			if p.ID == 0 {
				return out, fmt.Errorf("node config %s: peers[%d].id: missing or 0", path, i)
			}
			if p.ClientAddress == "" {
				return out, fmt.Errorf("node config %s: peers[%d].client_address: missing for node %d", path, i, p.ID)
			}
			if j, ok := byID[p.ID]; ok {
				if out.Endpoints[j].Address != p.ClientAddress {
					return out, fmt.Errorf("node config %s: peers[%d].client_address: node %d is %s here but %s in an earlier file",
						path, i, p.ID, p.ClientAddress, out.Endpoints[j].Address)
				}
				continue
			}
			byID[p.ID] = len(out.Endpoints)
			out.Endpoints = append(out.Endpoints, Endpoint{Address: p.ClientAddress, NodeID: p.ID, Region: p.Region})
		}
	}
	return out, nil
}

// OptionsFor fills Endpoints and NodeIDs of opts from eps.
func OptionsFor(opts Options, eps []Endpoint) Options {
	opts.Endpoints = nil
	opts.NodeIDs = map[string]uint64{}
	for _, ep := range eps {
		opts.Endpoints = append(opts.Endpoints, ep.Address)
		if ep.NodeID != 0 {
			opts.NodeIDs[ep.Address] = ep.NodeID
		}
	}
	return opts
}
