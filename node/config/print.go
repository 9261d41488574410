package config

import (
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Print writes c as YAML in the schema's order, every key present, with a comment on the
// keys whose meaning is not obvious. Load reads the output back to the same Config.
func (c *Config) Print(w io.Writer) error {
	return c.Write(w, "georaft node configuration (effective values)")
}

// Write is Print with heading, one comment line per line of it, on top: how tools that
// generate configuration files (the lab, the test clusters) write them.
func (c *Config) Write(w io.Writer, heading string) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := map[string]*yaml.Node{}
	for _, f := range fields {
		section, leaf, nested := strings.Cut(f.key, ".")
		target := root
		if nested {
			target = sections[section]
			if target == nil {
				target = &yaml.Node{Kind: yaml.MappingNode}
				sections[section] = target
				appendPair(root, section, target, "")
				if section == "listen" {
					appendPair(root, peersKey, c.peersNode(), "every member, this node included")
				}
			}
		} else {
			leaf = f.key
		}
		value, err := scalarNode(f.ref(c))
		if err != nil {
			return fmt.Errorf("config: print %s: %w", f.key, err)
		}
		appendPair(target, leaf, value, f.usage)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root},
		HeadComment: heading}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("config: print: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("config: print: %w", err)
	}
	return nil
}

func (c *Config) peersNode() *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	if len(c.Peers) == 0 {
		seq.Style = yaml.FlowStyle
	}
	for i := range c.Peers {
		m := &yaml.Node{Kind: yaml.MappingNode}
		for _, pf := range peerFields {
			value, _ := scalarNode(pf.ref(&c.Peers[i]))
			appendPair(m, pf.key, value, "")
		}
		seq.Content = append(seq.Content, m)
	}
	return seq
}

func appendPair(m *yaml.Node, key string, value *yaml.Node, comment string) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	if comment != "" {
		if value.Kind == yaml.ScalarNode {
			value.LineComment = comment
		} else {
			k.HeadComment = comment
		}
	}
	m.Content = append(m.Content, k, value)
}

// scalarNode encodes the field ref points to. Durations print as Go durations ("400ms"),
// which Load parses back exactly.
func scalarNode(ref any) (*yaml.Node, error) {
	var v any
	switch p := ref.(type) {
	case *string:
		v = *p
	case *bool:
		v = *p
	case *uint64:
		v = *p
	case *int:
		v = *p
	case *int64:
		v = *p
	case *float64:
		v = *p
	case *time.Duration:
		v = p.String()
	case *[]string:
		if len(*p) == 1 && (strings.EqualFold((*p)[0], HoldersAll) || strings.EqualFold((*p)[0], HoldersNone)) {
			v = (*p)[0]
			break
		}
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, item := range *p {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: item})
		}
		return n, nil
	default:
		return nil, fmt.Errorf("no printer for %T", ref)
	}
	n := &yaml.Node{}
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	return n, nil
}
