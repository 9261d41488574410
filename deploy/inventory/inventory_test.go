package inventory

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/georaft/georaft/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

const fixture = "../testdata/terraform-output.json"

func TestGoldenInventory(t *testing.T) {
	for _, tc := range []struct {
		golden  string
		opts    Options
		sshMode string
	}{
		{"../testdata/inventory.golden.yml", Options{}, ""},
		{"../testdata/inventory-internal.golden.yml", Options{UseInternalIPs: true, Group: "prod", SSHPrivateKeyFile: "~/.ssh/georaft"}, ""},
		// OS Login through IAP: the operator's POSIX name, hosts by instance name through the
		// tunnel, host keys pinned.
		{"../testdata/inventory-iap.golden.yml", Options{SSHUser: "sa_109876543210987654321",
			KnownHostsFile: "/home/op/georaft/build/cluster/known_hosts"}, SSHIAP},
	} {
		f, err := os.Open(fixture)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Parse(f)
		f.Close()
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if tc.sshMode != "" {
			c.SSHMode = tc.sshMode
		}
		inv, err := c.Inventory(tc.opts)
		if err != nil {
			t.Fatalf("Inventory: %v", err)
		}
		got := bytes.NewBuffer(inv)
		if *update {
			if err := os.WriteFile(tc.golden, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(tc.golden)
		if err != nil {
			t.Fatalf("read golden (run with -update to create it): %v", err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("inventory differs from %s (rerun with -update if intended):\n%s", tc.golden, got.String())
		}
	}
}

func TestParseFixture(t *testing.T) {
	f, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 5 || c.PeerPort != 7100 || c.ClientPort != 7200 || c.MetricsPort != 7300 || c.ClusterID != "georaft" || c.SSHUser != "georaft-admin" {
		t.Fatalf("Parse = %+v", c)
	}
	regions := map[string]bool{}
	for i, n := range c.Nodes {
		if n.ID != uint64(i+1) {
			t.Errorf("node %d has id %d: not sorted by id", i, n.ID)
		}
		regions[n.Region] = true
	}
	if len(regions) != 5 {
		t.Errorf("fixture nodes span %d regions, want 5", len(regions))
	}
}

// The inventory must mean to Ansible what it means to us: hosts, groups and variables.
func TestAnsibleReadsTheInventory(t *testing.T) {
	bin := testenv.Tool(t, "ansible-inventory", "apt-get install ansible-core")
	f, err := os.Open(fixture)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	path := filepath.Join(t.TempDir(), "inventory.yml")
	var inv bytes.Buffer
	if err := Generate(f, &inv, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, inv.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-i", path, "--list")
	cmd.Env = append(os.Environ(), "ANSIBLE_INVENTORY_UNPARSED_FAILED=true", "ANSIBLE_LOCAL_TEMP="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ansible-inventory --list: %v\n%s", err, out)
	}
	var parsed struct {
		Meta struct {
			Hostvars map[string]map[string]any `json:"hostvars"`
		} `json:"_meta"`
		Georaft struct {
			Hosts []string `json:"hosts"`
		} `json:"georaft"`
	}
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatalf("ansible-inventory output: %v\n%s", err, out)
	}
	if got := strings.Join(parsed.Georaft.Hosts, ","); got != "georaft-1,georaft-2,georaft-3,georaft-4,georaft-5" {
		t.Errorf("group georaft hosts = %s", got)
	}
	h := parsed.Meta.Hostvars["georaft-4"]
	if h["georaft_node_id"] != float64(4) || h["georaft_region"] != "europe-west1" || h["georaft_internal_ip"] != "10.42.3.2" ||
		h["ansible_host"] != "34.76.200.13" || h["georaft_peer_port"] != float64(7100) || h["ansible_user"] != "georaft-admin" ||
		h["georaft_data_device"] != "/dev/disk/by-id/google-georaft-data" {
		t.Errorf("hostvars of georaft-4 = %v", h)
	}
}

func TestParseRejects(t *testing.T) {
	node := func(id, name, internal, external string) string {
		return `{"id":` + id + `,"name":"` + name + `","region":"r","zone":"r-b","internal_ip":"` + internal + `","external_ip":` + external + `}`
	}
	wrap := func(nodes string) string {
		return `{
 "cluster_id":{"sensitive":false,"type":"string","value":"c"},
 "ssh_user":{"sensitive":false,"type":"string","value":"u"},
 "peer_port":{"sensitive":false,"type":"number","value":7100},
 "client_port":{"sensitive":false,"type":"number","value":7200},
 "metrics_port":{"sensitive":false,"type":"number","value":7300},
 "data_device":{"sensitive":false,"type":"string","value":"/dev/sdb"},
 "nodes":{"sensitive":false,"type":"dynamic","value":` + nodes + `}}`
	}
	good := node("1", "a", "10.0.0.1", "null")
	for _, tc := range []struct {
		name, json string
		mentions   []string
	}{
		{"not json", "terraform: command not found", []string{"not the JSON"}},
		{"empty", "{}", []string{"empty", "terraform apply"}},
		{"missing outputs", `{"nodes":{"sensitive":false,"type":"string","value":[]}}`, []string{"lacks cluster_id, ssh_user, peer_port"}},
		{"bad port", strings.Replace(wrap("["+good+"]"), "7100", "70000", 1), []string{"peer_port = 70000"}},
		{"port not a number", strings.Replace(wrap("["+good+"]"), "7200", `"x"`, 1), []string{"client_port must be a number"}},
		{"no nodes", wrap("[]"), []string{"nodes is empty"}},
		{"nodes a string", wrap(`"x"`), []string{"map or a list"}},
		{"missing field", wrap(`[{"id":1,"name":"a"}]`), []string{"missing region, zone, internal_ip, external_ip"}},
		{"zero id", wrap("[" + node("0", "a", "10.0.0.1", "null") + "]"), []string{"node a: id 0 must be a positive integer"}},
		{"fractional id", wrap("[" + node("1.5", "a", "10.0.0.1", "null") + "]"), []string{"id 1.5"}},
		{"bad internal ip", wrap("[" + node("1", "a", "10.0.0.300", "null") + "]"), []string{`node a: internal_ip "10.0.0.300" is not an IP`}},
		{"bad external ip", wrap("[" + node("1", "a", "10.0.0.1", `"x"`) + "]"), []string{`external_ip "x"`}},
		{"empty internal ip", wrap("[" + node("1", "a", "", "null") + "]"), []string{"internal_ip is empty"}},
		{"duplicate id", wrap("[" + good + "," + node("1", "b", "10.0.0.2", "null") + "]"), []string{"a and b both have id 1"}},
		{"duplicate name", wrap("[" + good + "," + node("2", "a", "10.0.0.2", "null") + "]"), []string{`name "a" is used twice`}},
		{"null node in map", wrap(`{"a":null}`), []string{`nodes["a"] is null`}},
		{"replaces itself", wrap(`[` + strings.Replace(good, `"id":1`, `"id":1,"joined":true,"replaces":1`, 1) + `]`), []string{"node a: replaces its own id 1"}},
		{"joined not a bool", wrap(`[` + strings.Replace(good, `"id":1`, `"id":1,"joined":"yes"`, 1) + `]`), []string{"node a: joined must be a bool"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.json))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			for _, s := range tc.mentions {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to mention %q", err, s)
				}
			}
		})
	}
}

func TestListFormAndMissingExternalIP(t *testing.T) {
	in := `{
 "cluster_id":{"sensitive":false,"type":"string","value":"c"},
 "ssh_user":{"sensitive":false,"type":"string","value":null},
 "peer_port":{"sensitive":false,"type":"number","value":7100},
 "client_port":{"sensitive":false,"type":"number","value":7200},
 "metrics_port":{"sensitive":false,"type":"number","value":7300},
 "data_device":{"sensitive":false,"type":"string","value":""},
 "nodes":{"sensitive":false,"type":"dynamic","value":[
   {"id":2,"name":"n2","region":"r2","zone":"r2-b","internal_ip":"10.0.1.2","external_ip":null},
   {"id":1,"name":"n1","region":"r1","zone":"r1-b","internal_ip":"10.0.0.2","external_ip":"203.0.113.1"}]}}`
	c, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Inventory(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := string(inv)
	if strings.Index(s, "n1:") > strings.Index(s, "n2:") {
		t.Errorf("hosts not in id order:\n%s", s)
	}
	if !strings.Contains(s, "ansible_host: 10.0.1.2") || !strings.Contains(s, "ansible_host: 203.0.113.1") {
		t.Errorf("a node without an external IP must be reached on its internal one:\n%s", s)
	}
	if strings.Contains(s, "ansible_user") || strings.Contains(s, "georaft_data_device") {
		t.Errorf("no ssh_user or data device, yet ansible_user or georaft_data_device is set:\n%s", s)
	}
	// A node without an external IP gets a certificate for the names it has.
	flags := strings.Join(c.CertsFlags(), " ")
	if want := "--node 1=10.0.0.2,203.0.113.1,n1 --node 2=10.0.1.2,n2"; flags != want {
		t.Errorf("CertsFlags = %q, want %q", flags, want)
	}
}

// A node that joined the running cluster (make cluster-replace-node, cluster-add-node) is a
// host the role starts with cluster.join and cluster.replaces; the others are not.
func TestJoinedNodes(t *testing.T) {
	in := `{
 "cluster_id":{"sensitive":false,"type":"string","value":"c"},
 "ssh_user":{"sensitive":false,"type":"string","value":"u"},
 "peer_port":{"sensitive":false,"type":"number","value":7100},
 "client_port":{"sensitive":false,"type":"number","value":7200},
 "metrics_port":{"sensitive":false,"type":"number","value":7300},
 "data_device":{"sensitive":false,"type":"string","value":"/dev/sdb"},
 "nodes":{"sensitive":false,"type":"dynamic","value":{
   "n1":{"id":1,"name":"n1","region":"r1","zone":"r1-b","internal_ip":"10.0.0.2","external_ip":null,"joined":false,"replaces":null},
   "n2":{"id":6,"name":"n2","region":"r2","zone":"r2-b","internal_ip":"10.0.1.2","external_ip":null,"joined":true,"replaces":2},
   "n3":{"id":7,"name":"n3","region":"r3","zone":"r3-b","internal_ip":"10.0.2.2","external_ip":null,"joined":true,"replaces":null}}}}`
	c, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := c.Inventory(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		All struct {
			Children map[string]struct {
				Hosts map[string]map[string]any `yaml:"hosts"`
			} `yaml:"children"`
		} `yaml:"all"`
	}
	if err := yaml.Unmarshal(inv, &doc); err != nil {
		t.Fatal(err)
	}
	hosts := doc.All.Children[DefaultGroup].Hosts
	for name, want := range map[string][2]any{"n1": {nil, nil}, "n2": {true, 2}, "n3": {true, nil}} {
		if got := hosts[name]["georaft_join"]; got != want[0] {
			t.Errorf("%s: georaft_join = %v, want %v", name, got, want[0])
		}
		if got := hosts[name]["georaft_replaces"]; got != want[1] {
			t.Errorf("%s: georaft_replaces = %v, want %v", name, got, want[1])
		}
	}
}
