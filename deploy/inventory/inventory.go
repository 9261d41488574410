// Package inventory turns `terraform output -json` of georaft's Terraform (terraform/) into
// an Ansible inventory for ansible/site.yml: one host per node with its raft id, region,
// zone and addresses, and the cluster-wide ports and ids as group variables.
//
// The outputs it reads are listed in RequiredOutputs and, for each node, RequiredNodeFields;
// deploy's tests check that terraform/outputs.tf provides all of them.
package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RequiredOutputs are the Terraform outputs Parse reads.
var RequiredOutputs = []string{"nodes", "cluster_id", "ssh_user", "peer_port", "client_port", "metrics_port", "data_device"}

// OptionalOutputs are read when present: a cluster applied before they existed lacks them.
// ssh_mode is metadata (keys in instance metadata), oslogin, or iap (OS Login through an IAP
// tunnel); project_id is needed for iap.
var OptionalOutputs = []string{"ssh_mode", "project_id", "data_disks"}

// The ssh modes of terraform/'s ssh_mode variable.
const (
	SSHMetadata = "metadata"
	SSHOSLogin  = "oslogin"
	SSHIAP      = "iap"
)

// RequiredNodeFields are the attributes Parse reads from each element of the nodes output.
var RequiredNodeFields = []string{"id", "name", "region", "zone", "internal_ip", "external_ip"}

// DefaultGroup is the inventory group the playbooks target.
const DefaultGroup = "georaft"

// Node is one georaft node as Terraform created it.
type Node struct {
	ID         uint64
	Name       string
	Region     string
	Zone       string
	InternalIP string
	ExternalIP string // empty when the node has no external address
	// Joined: the node joined the running cluster as a new member (cluster-replace-node,
	// cluster-add-node) instead of creating it; Replaces is the member it took the place of.
	Joined   bool
	Replaces uint64
}

// Cluster is everything the inventory needs from Terraform.
type Cluster struct {
	ClusterID   string
	SSHUser     string
	DataDevice  string // block device of the data disk inside each VM
	PeerPort    int
	ClientPort  int
	MetricsPort int
	SSHMode     string // SSHMetadata, SSHOSLogin or SSHIAP
	ProjectID   string
	Nodes       []Node // sorted by ID
	// DataDisks are the nodes' data disks, in node id order (empty before data_disks existed).
	DataDisks []Disk
}

// Disk is a node's data disk.
type Disk struct{ Name, Zone string }

// output is one entry of `terraform output -json`.
type output struct {
	Sensitive bool            `json:"sensitive"`
	Type      json.RawMessage `json:"type"`
	Value     json.RawMessage `json:"value"`
}

// Parse reads `terraform output -json` and checks every value it uses.
func Parse(r io.Reader) (Cluster, error) {
	var outputs map[string]output
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&outputs); err != nil {
		return Cluster{}, fmt.Errorf("terraform output is not the JSON of `terraform output -json`: %w", err)
	}
	if len(outputs) == 0 {
		return Cluster{}, errors.New("terraform output is empty: run `terraform apply` in terraform/ first")
	}
	var missing []string
	for _, name := range RequiredOutputs {
		if o, ok := outputs[name]; !ok || len(o.Value) == 0 {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return Cluster{}, fmt.Errorf("terraform output lacks %s (is this georaft's terraform/?)", strings.Join(missing, ", "))
	}

	var c Cluster
	var err error
	if c.ClusterID, err = stringOutput(outputs, "cluster_id"); err != nil {
		return Cluster{}, err
	}
	if c.ClusterID == "" {
		return Cluster{}, errors.New("terraform output cluster_id is empty")
	}
	if c.SSHUser, err = stringOutput(outputs, "ssh_user"); err != nil {
		return Cluster{}, err
	}
	if c.DataDevice, err = stringOutput(outputs, "data_device"); err != nil {
		return Cluster{}, err
	}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"peer_port", &c.PeerPort}, {"client_port", &c.ClientPort}, {"metrics_port", &c.MetricsPort}} {
		if *p.dst, err = portOutput(outputs, p.name); err != nil {
			return Cluster{}, err
		}
	}
	if c.Nodes, err = parseNodes(outputs["nodes"].Value); err != nil {
		return Cluster{}, err
	}
	c.SSHMode = SSHMetadata
	if _, ok := outputs["ssh_mode"]; ok {
		if c.SSHMode, err = stringOutput(outputs, "ssh_mode"); err != nil {
			return Cluster{}, err
		}
	}
	switch c.SSHMode {
	case SSHMetadata, SSHOSLogin, SSHIAP:
	default:
		return Cluster{}, fmt.Errorf("terraform output ssh_mode = %q: want %s, %s or %s", c.SSHMode, SSHMetadata, SSHOSLogin, SSHIAP)
	}
	if _, ok := outputs["project_id"]; ok {
		if c.ProjectID, err = stringOutput(outputs, "project_id"); err != nil {
			return Cluster{}, err
		}
	}
	if raw, ok := outputs["data_disks"]; ok {
		var disks map[string]Disk
		if err := json.Unmarshal(raw.Value, &disks); err != nil {
			return Cluster{}, fmt.Errorf("terraform output data_disks must map instance names to {name, zone}: %w", err)
		}
		for _, n := range c.Nodes {
			d, ok := disks[n.Name]
			if !ok || d.Name == "" || d.Zone == "" {
				return Cluster{}, fmt.Errorf("terraform output data_disks has no disk for %s", n.Name)
			}
			c.DataDisks = append(c.DataDisks, d)
		}
	}
	if c.SSHMode == SSHIAP && c.ProjectID == "" {
		return Cluster{}, errors.New("terraform output ssh_mode is iap but project_id is missing: the IAP tunnel needs the project")
	}
	return c, nil
}

func stringOutput(outputs map[string]output, name string) (string, error) {
	var s *string
	if err := json.Unmarshal(outputs[name].Value, &s); err != nil {
		return "", fmt.Errorf("terraform output %s must be a string: %w", name, err)
	}
	if s == nil {
		return "", nil
	}
	return *s, nil
}

func portOutput(outputs map[string]output, name string) (int, error) {
	var n json.Number
	if err := json.Unmarshal(outputs[name].Value, &n); err != nil {
		return 0, fmt.Errorf("terraform output %s must be a number: %w", name, err)
	}
	port, err := strconv.Atoi(n.String())
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("terraform output %s = %s is not a TCP port (1-65535)", name, n)
	}
	return port, nil
}

// parseNodes accepts the nodes output as a map keyed by name (what terraform/outputs.tf
// writes) or as a list of the same objects.
func parseNodes(raw json.RawMessage) ([]Node, error) {
	var elems []map[string]json.RawMessage
	trimmed := bytes.TrimSpace(raw)
	switch {
	case bytes.HasPrefix(trimmed, []byte("{")):
		var byName map[string]map[string]json.RawMessage
		if err := json.Unmarshal(raw, &byName); err != nil {
			return nil, fmt.Errorf("terraform output nodes must map names to node objects: %w", err)
		}
		for key, e := range byName {
			if e == nil {
				return nil, fmt.Errorf("terraform output nodes[%q] is null", key)
			}
			elems = append(elems, e)
		}
	case bytes.HasPrefix(trimmed, []byte("[")):
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, fmt.Errorf("terraform output nodes must be a list of node objects: %w", err)
		}
	default:
		return nil, fmt.Errorf("terraform output nodes must be a map or a list of node objects, got %.40s", trimmed)
	}
	if len(elems) == 0 {
		return nil, errors.New("terraform output nodes is empty: the cluster has no nodes")
	}

	nodes := make([]Node, 0, len(elems))
	for i, e := range elems {
		n, err := parseNode(e)
		if err != nil {
			return nil, fmt.Errorf("terraform output nodes: element %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b Node) int {
		if a.ID != b.ID {
			if a.ID < b.ID {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := 1; i < len(nodes); i++ {
		if nodes[i].ID == nodes[i-1].ID {
			return nil, fmt.Errorf("terraform output nodes: %s and %s both have id %d", nodes[i-1].Name, nodes[i].Name, nodes[i].ID)
		}
	}
	names := map[string]bool{}
	for _, n := range nodes {
		if names[n.Name] {
			return nil, fmt.Errorf("terraform output nodes: name %q is used twice", n.Name)
		}
		names[n.Name] = true
	}
	return nodes, nil
}

func parseNode(fields map[string]json.RawMessage) (Node, error) {
	var missing []string
	for _, f := range RequiredNodeFields {
		if _, ok := fields[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return Node{}, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	str := func(field string, required bool) (string, error) {
		var s *string
		if err := json.Unmarshal(fields[field], &s); err != nil {
			return "", fmt.Errorf("%s must be a string: %w", field, err)
		}
		if s == nil || *s == "" {
			if required {
				return "", fmt.Errorf("%s is empty", field)
			}
			return "", nil
		}
		return *s, nil
	}
	var n Node
	var err error
	if n.Name, err = str("name", true); err != nil {
		return Node{}, err
	}
	var id json.Number
	if err := json.Unmarshal(fields["id"], &id); err != nil {
		return Node{}, fmt.Errorf("node %s: id must be a number: %w", n.Name, err)
	}
	if n.ID, err = parseID(id); err != nil {
		return Node{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	for _, f := range []struct {
		field string
		dst   *string
		need  bool
	}{
		{"region", &n.Region, true}, {"zone", &n.Zone, true},
		{"internal_ip", &n.InternalIP, true}, {"external_ip", &n.ExternalIP, false},
	} {
		if *f.dst, err = str(f.field, f.need); err != nil {
			return Node{}, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	// Optional: outputs from before the replace-node flow have neither.
	if raw, ok := fields["joined"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &n.Joined); err != nil {
			return Node{}, fmt.Errorf("node %s: joined must be a bool: %w", n.Name, err)
		}
	}
	if raw, ok := fields["replaces"]; ok && string(raw) != "null" {
		var r json.Number
		if err := json.Unmarshal(raw, &r); err != nil {
			return Node{}, fmt.Errorf("node %s: replaces must be a member id: %w", n.Name, err)
		}
		if n.Replaces, err = parseID(r); err != nil {
			return Node{}, fmt.Errorf("node %s: replaces: %w", n.Name, err)
		}
		if n.Replaces == n.ID {
			return Node{}, fmt.Errorf("node %s: replaces its own id %d", n.Name, n.ID)
		}
	}
	for _, ip := range []struct{ field, value string }{{"internal_ip", n.InternalIP}, {"external_ip", n.ExternalIP}} {
		if ip.value == "" {
			continue
		}
		if _, err := netip.ParseAddr(ip.value); err != nil {
			return Node{}, fmt.Errorf("node %s: %s %q is not an IP address", n.Name, ip.field, ip.value)
		}
	}
	return n, nil
}

// parseID accepts 3 and also 3.0 or 3e0, which is how a JSON encoder may print a number.
func parseID(n json.Number) (uint64, error) {
	if u, err := strconv.ParseUint(n.String(), 10, 64); err == nil && u > 0 {
		return u, nil
	}
	f, err := n.Float64()
	if err != nil || f < 1 || f != math.Trunc(f) || f > 1<<53 {
		return 0, fmt.Errorf("id %s must be a positive integer", n)
	}
	return uint64(f), nil
}

// Options shape the generated inventory.
type Options struct {
	// Group is the inventory group of the nodes; default DefaultGroup.
	Group string
	// UseInternalIPs makes Ansible connect to internal addresses (the operator runs from a
	// machine inside the VPC, or through a VPN). Otherwise the external address is used
	// where there is one.
	UseInternalIPs bool
	// SSHPrivateKeyFile, if set, becomes ansible_ssh_private_key_file.
	SSHPrivateKeyFile string
	// SSHUser overrides Terraform's ssh_user: with OS Login the login is the operator's POSIX
	// name (gcloud compute os-login describe-profile), not a name Terraform chose.
	SSHUser string
	// KnownHostsFile, if set, pins every host's key: ssh checks it against this file (written
	// by WriteKnownHosts from the instances' guest attributes) under the instance name, and
	// refuses any other. Without it ssh trusts a key on first contact.
	KnownHostsFile string
}

// Inventory renders c as an Ansible YAML inventory, hosts in node id order.
func (c Cluster) Inventory(opts Options) ([]byte, error) {
	group := opts.Group
	if group == "" {
		group = DefaultGroup
	}
	hosts := mapping()
	for _, n := range c.Nodes {
		connect := n.ExternalIP
		if opts.UseInternalIPs || connect == "" {
			connect = n.InternalIP
		}
		if c.SSHMode == SSHIAP {
			connect = n.Name // reached through the tunnel, by name
		}
		host := mapping(
			"ansible_host", connect,
			"ansible_ssh_common_args", c.sshArgs(n, opts),
			"georaft_node_id", n.ID,
			"georaft_region", n.Region,
			"georaft_zone", n.Zone,
			"georaft_internal_ip", n.InternalIP,
			"georaft_external_ip", n.ExternalIP,
		)
		// A member that joined the running cluster: the role formats its blank disk and
		// starts it with cluster.join (and cluster.replaces), never under another id.
		if n.Joined {
			host.Content = append(host.Content, scalar("georaft_join"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
			if n.Replaces != 0 {
				host.Content = append(host.Content, scalar("georaft_replaces"), valueNode(n.Replaces))
			}
		}
		hosts.Content = append(hosts.Content, scalar(n.Name), host)
	}
	vars := mapping(
		"georaft_cluster_id", c.ClusterID,
		"georaft_peer_port", c.PeerPort,
		"georaft_client_port", c.ClientPort,
		"georaft_metrics_port", c.MetricsPort,
	)
	if c.DataDevice != "" {
		vars.Content = append(vars.Content, scalar("georaft_data_device"), scalar(c.DataDevice))
	}
	user := c.SSHUser
	if opts.SSHUser != "" {
		user = opts.SSHUser
	}
	if user != "" {
		vars.Content = append(vars.Content, scalar("ansible_user"), scalar(user))
	}
	if opts.SSHPrivateKeyFile != "" {
		vars.Content = append(vars.Content, scalar("ansible_ssh_private_key_file"), scalar(opts.SSHPrivateKeyFile))
	}
	doc := mapping("all", mapping("children", mapping(group, mapping("hosts", hosts, "vars", vars))))

	var buf bytes.Buffer
	buf.WriteString("# Generated by georaft-inventory from `terraform output -json`; regenerate, do not edit.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode inventory: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode inventory: %w", err)
	}
	return buf.Bytes(), nil
}

// sshArgs are the ssh options for one host: its pinned key, and the IAP tunnel.
func (c Cluster) sshArgs(n Node, opts Options) string {
	var args []string
	if opts.KnownHostsFile != "" {
		args = append(args, "-o UserKnownHostsFile="+ShellQuote(opts.KnownHostsFile), "-o StrictHostKeyChecking=yes",
			"-o HostKeyAlias="+n.Name)
	} else {
		args = append(args, "-o StrictHostKeyChecking=accept-new")
	}
	if c.SSHMode == SSHIAP {
		proxy := fmt.Sprintf("gcloud compute start-iap-tunnel %s %%p --listen-on-stdin --project=%s --zone=%s --verbosity=warning",
			n.Name, c.ProjectID, n.Zone)
		args = append(args, "-o "+ShellQuote("ProxyCommand="+proxy))
	}
	return strings.Join(args, " ")
}

// ShellQuote quotes s for a POSIX shell (and for the shlex splitting Ansible applies to
// ansible_ssh_common_args), leaving plain words bare.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// Generate reads `terraform output -json` from in and writes the inventory to out: the
// whole job of the CLI.
func Generate(in io.Reader, out io.Writer, opts Options) error {
	c, err := Parse(in)
	if err != nil {
		return err
	}
	inv, err := c.Inventory(opts)
	if err != nil {
		return err
	}
	if _, err := out.Write(inv); err != nil {
		return fmt.Errorf("write inventory: %w", err)
	}
	return nil
}

// mapping builds a YAML mapping node in the given key order from key, value pairs.
func mapping(pairs ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(pairs); i += 2 {
		n.Content = append(n.Content, scalar(pairs[i].(string)), valueNode(pairs[i+1]))
	}
	return n
}

func valueNode(v any) *yaml.Node {
	switch v := v.(type) {
	case *yaml.Node:
		return v
	case string:
		return scalar(v)
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v, 10)}
	}
	panic(fmt.Sprintf("inventory: no YAML encoding for %T", v)) // only reachable by a bug in this file
}

// scalar is a string node; the encoder quotes it whenever YAML would read it as something
// else (a number, a bool, null).
func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// ClientEndpoints lists every node's KVService address in node id order: the external
// address where there is one (clients outside the VPC), or always the internal one.
func (c Cluster) ClientEndpoints(internal bool) []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		host := n.ExternalIP
		if internal || host == "" {
			host = n.InternalIP
		}
		out[i] = net.JoinHostPort(host, strconv.Itoa(c.ClientPort))
	}
	return out
}

// CertsFlags lists the `georaftd certs` flags that issue every node a certificate for each
// name it is reached at: its internal IP (peers, in-region clients), its external IP where
// there is one (clients outside the VPC) and its VM name.
func (c Cluster) CertsFlags() []string {
	out := make([]string, 0, 2*len(c.Nodes))
	for _, n := range c.Nodes {
		hosts := []string{n.InternalIP}
		if n.ExternalIP != "" {
			hosts = append(hosts, n.ExternalIP)
		}
		hosts = append(hosts, n.Name)
		out = append(out, "--node", strconv.FormatUint(n.ID, 10)+"="+strings.Join(hosts, ","))
	}
	return out
}

// PrometheusTargets is a Prometheus file_sd document: every node's metrics port on its
// internal address (the port listens there only), labelled with its region and VM. The node
// id is already a label of every series (node).
func (c Cluster) PrometheusTargets() ([]byte, error) {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, len(c.Nodes))
	for i, n := range c.Nodes {
		groups[i] = group{
			Targets: []string{net.JoinHostPort(n.InternalIP, strconv.Itoa(c.MetricsPort))},
			Labels:  map[string]string{"cluster": c.ClusterID, "region": n.Region, "zone": n.Zone, "vm": n.Name},
		}
	}
	out, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// NodeIn returns the node placed in region.
func (c Cluster) NodeIn(region string) (Node, error) {
	var regions []string
	for _, n := range c.Nodes {
		if n.Region == region {
			return n, nil
		}
		regions = append(regions, n.Region)
	}
	return Node{}, fmt.Errorf("no node in region %q (the cluster has %s)", region, strings.Join(regions, ", "))
}

// WriteFileAtomic replaces path with data (mode 0644) through a synced temporary file and a
// rename, so a reader or a crash sees the old file or the new one, never a torn one.
func WriteFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
