package client

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"

	"go.yaml.in/yaml/v3"
)

// DefaultLinksFile is where the geo lab writes its client links.
const DefaultLinksFile = "configs/geo/client-links.yaml"

// RegionLinks says, for a client placed in a region, through which address it reaches
// each node: the geo lab's latency-emulating proxy for that (region, node) pair. The file
// the lab writes, and `georaft bench --via-region R --links FILE` reads, looks like:
//
//	# connecting to node N from region R goes through this address
//	regions:
//	  us-central1: {1: "127.0.0.1:27101", 2: "127.0.0.1:27102"}
//	  us-east1: {1: "127.0.0.1:27201", 2: "127.0.0.1:27202"}
type RegionLinks map[string]map[uint64]string

type linksFile struct {
	Regions RegionLinks `yaml:"regions"`
}

// LoadRegionLinks reads and checks a links file.
func LoadRegionLinks(path string) (RegionLinks, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read links file: %w", err)
	}
	links, err := ParseRegionLinks(data)
	if err != nil {
		return nil, fmt.Errorf("links file %s: %w", path, err)
	}
	return links, nil
}

// ParseRegionLinks decodes a links document and checks that every region lists at least
// one node, with non-zero ids and non-empty addresses.
func ParseRegionLinks(data []byte) (RegionLinks, error) {
	var f linksFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("regions: empty document")
		}
		return nil, err
	}
	if len(f.Regions) == 0 {
		return nil, fmt.Errorf("regions: no region listed")
	}
	for region, nodes := range f.Regions {
		if len(nodes) == 0 {
			return nil, fmt.Errorf("regions.%s: no node listed", region)
		}
		for id, addr := range nodes {
			if id == 0 {
				return nil, fmt.Errorf("regions.%s: node id 0 is not a node", region)
			}
			if addr == "" {
				return nil, fmt.Errorf("regions.%s.%d: empty address", region, id)
			}
		}
	}
	return f.Regions, nil
}

// Regions lists the regions in the file, sorted.
func (l RegionLinks) Regions() []string {
	var out []string
	for r := range l {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Endpoints returns the addresses through which a client in region reaches each node,
// sorted by node id, with the node ids filled in.
func (l RegionLinks) Endpoints(region string) ([]Endpoint, error) {
	nodes, ok := l[region]
	if !ok {
		return nil, fmt.Errorf("region %q is not in the links file (known: %v)", region, l.Regions())
	}
	var out []Endpoint
	for id, addr := range nodes {
		out = append(out, Endpoint{Address: addr, NodeID: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

// Write renders the links file, with its explanatory comment, regions and ids in order.
func (l RegionLinks) Write(w io.Writer) error {
	var buf bytes.Buffer
	buf.WriteString("# connecting to node N from region R goes through this address\nregions:\n")
	for _, region := range l.Regions() {
		ids := make([]uint64, 0, len(l[region]))
		for id := range l[region] {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		fmt.Fprintf(&buf, "  %s: {", yamlKey(region))
		for i, id := range ids {
			if i > 0 {
				buf.WriteString(", ")
			}
			fmt.Fprintf(&buf, "%d: %q", id, l[region][id])
		}
		buf.WriteString("}\n")
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// yamlKey quotes a region name only when YAML would otherwise misread it.
func yamlKey(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return string(bytes.TrimSpace(out))
}
