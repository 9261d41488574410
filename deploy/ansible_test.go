package deploy

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/georaft/georaft/deploy/inventory"
	"github.com/georaft/georaft/internal/testenv"
	"github.com/georaft/georaft/tune"
)

var update = flag.Bool("update", false, "rewrite generated files (ansible/group_vars/georaft/timing.yml)")

const (
	ansibleDir     = "../ansible"
	timingVarsFile = "../ansible/group_vars/georaft/timing.yml"
	shippedMatrix  = "../configs/geo/rtt-5-regions.csv"
	tfOutputJSON   = "testdata/terraform-output.json"
)

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The role's timing comes from `georaft tune`: the checked-in group_vars must be exactly what
// tune derives from the shipped matrix.
func TestTimingGroupVarsComeFromTune(t *testing.T) {
	r, err := tune.DeriveFile(shippedMatrix, tune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(r.AnsibleVars())
	if *update {
		if err := os.WriteFile(timingVarsFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(timingVarsFile)
	if err != nil {
		t.Fatalf("read %s (create it with go test ./deploy -run TestTimingGroupVars -update): %v", timingVarsFile, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not tune's output for %s; regenerate with `go test ./deploy -run TestTimingGroupVars -update` "+
			"or `georaft tune --rtt %s --format ansible`", timingVarsFile, shippedMatrix, shippedMatrix)
	}
	// Every variable tune writes is one the role knows (has a default for).
	defaults := readYAMLMap(t, filepath.Join(ansibleDir, "roles/georaft/defaults/main.yml"))
	for key := range readYAMLMap(t, timingVarsFile) {
		if _, ok := defaults[key]; !ok && key != "georaft_expected_leader_region" && key != "georaft_timing_placement" {
			t.Errorf("tune writes %s, which roles/georaft/defaults/main.yml does not define", key)
		}
	}
}

func readYAMLMap(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func ansiblePlaybook(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "ansible-playbook", "apt-get install ansible-core")
}

// ansibleEnv keeps Ansible's temp files in the test's directory and its output plain.
func ansibleEnv(t *testing.T, dir string) []string {
	return append(os.Environ(),
		"ANSIBLE_CONFIG="+abs(t, filepath.Join(ansibleDir, "ansible.cfg")),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "ansible-local"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(dir, "ansible-remote"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_DEPRECATION_WARNINGS=0",
	)
}

// fixtureCluster is the recorded terraform output, parsed.
func fixtureCluster(t *testing.T) inventory.Cluster {
	t.Helper()
	f, err := os.Open(tfOutputJSON)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cluster, err := inventory.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return cluster
}

// fixtureInventory writes the inventory generated from the recorded terraform output.
func fixtureInventory(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open(tfOutputJSON)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if err := inventory.Generate(f, &buf, inventory.Options{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "inventory.yml")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAnsible(t *testing.T, ctx context.Context, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, ansiblePlaybook(t), args...)
	cmd.Dir = abs(t, ansibleDir)
	cmd.Env = ansibleEnv(t, dir)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestAnsibleSyntax(t *testing.T) {
	ansiblePlaybook(t)
	playbooks, err := filepath.Glob(filepath.Join(ansibleDir, "*.yml"))
	if err != nil || len(playbooks) == 0 {
		t.Fatalf("no playbooks in %s: %v", ansibleDir, err)
	}
	dir := t.TempDir()
	inv := fixtureInventory(t, dir)
	for _, pb := range playbooks {
		out, err := runAnsible(t, context.Background(), dir, "--syntax-check", "-i", inv, filepath.Base(pb))
		if err != nil {
			t.Errorf("ansible-playbook --syntax-check %s: %v\n%s", pb, err, out)
		}
	}
}

// renderedNodeConfig is the part of a node config the checks below read.
type renderedNodeConfig struct {
	ClusterID string `yaml:"cluster_id"`
	Node      struct {
		ID      uint64 `yaml:"id"`
		Region  string `yaml:"region"`
		DataDir string `yaml:"data_dir"`
	} `yaml:"node"`
	Listen struct {
		Peer, Client, Metrics string
	} `yaml:"listen"`
	Peers []struct {
		ID            uint64 `yaml:"id"`
		Region        string `yaml:"region"`
		PeerAddress   string `yaml:"peer_address"`
		ClientAddress string `yaml:"client_address"`
	} `yaml:"peers"`
	Timing     map[string]any `yaml:"timing"`
	TLS        renderedTLS    `yaml:"tls"`
	ReadLeases struct {
		Holders []string `yaml:"holders"`
	} `yaml:"read_leases"`
	Placement struct {
		PreferredRegions []string `yaml:"preferred_regions"`
	} `yaml:"placement"`
}

type renderedTLS struct {
	Enabled  bool   `yaml:"enabled"`
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Render the role's templates for the inventory generated from the recorded Terraform
// output, with the real group_vars, and check what every node would get.
func TestAnsibleRendersClusterConfig(t *testing.T) {
	ansiblePlaybook(t)
	dir := t.TempDir()
	// group_vars next to the inventory are loaded like those next to the playbooks.
	if err := os.Symlink(abs(t, filepath.Join(ansibleDir, "group_vars")), filepath.Join(dir, "group_vars")); err != nil {
		t.Fatal(err)
	}
	inv := fixtureInventory(t, dir)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	templates := abs(t, filepath.Join(ansibleDir, "roles/georaft/templates"))
	// The role entry tagged never loads the role's defaults without running its tasks.
	probe := `- hosts: georaft
  gather_facts: false
  roles:
    - role: georaft
      tags: [never]
  tasks:
    - ansible.builtin.template:
        src: "` + templates + `/{{ item }}.j2"
        dest: "{{ out }}/{{ inventory_hostname }}.{{ item }}"
        mode: "0644"
      loop: [georaft.yml, georaft.service, georaftctl.sh]
`
	probePath := filepath.Join(dir, "probe.yml")
	if err := os.WriteFile(probePath, []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	// The read-lease and placement lines of `georaft tune --format ansible --mix ...`, as an
	// operator adds them to group_vars.
	mix, err := tune.ParseMix("us-central1=900r+100w,europe-west1=500r+10w,us-east1=300r+10w,us-west1=300r+10w,asia-east1=400r+5w")
	if err != nil {
		t.Fatal(err)
	}
	planned, err := tune.DeriveFile(shippedMatrix, tune.Options{Mix: mix})
	if err != nil {
		t.Fatal(err)
	}
	var tuned bytes.Buffer
	if err := planned.Write(&tuned, tune.FormatAnsible); err != nil {
		t.Fatal(err)
	}
	var planVars []string
	for _, line := range strings.Split(tuned.String(), "\n") {
		if strings.HasPrefix(line, "georaft_read_lease_holders:") || strings.HasPrefix(line, "georaft_preferred_regions:") {
			planVars = append(planVars, line)
		}
	}
	if len(planVars) != 2 {
		t.Fatalf("tune's ansible output lacks the read-lease and placement variables:\n%s", tuned.String())
	}
	planPath := filepath.Join(dir, "plan.yml")
	if err := os.WriteFile(planPath, []byte(strings.Join(planVars, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// One host is enough: its config lists every peer, and each module run costs a python
	// start on a small machine.
	const probed = "georaft-2"
	if log, err := runAnsible(t, ctx, dir, "-i", inv, probePath, "--limit", probed, "-e", "out="+out, "-e", "@"+planPath, "-e", "ansible_connection=local",
		"-e", "ansible_python_interpreter={{ ansible_playbook_python }}"); err != nil {
		t.Fatalf("render probe: %v\n%s", err, log)
	}

	timing, err := tune.DeriveFile(shippedMatrix, tune.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cluster := fixtureCluster(t)
	checked := 0
	for _, n := range cluster.Nodes {
		if n.Name != probed {
			continue
		}
		checked++
		data, err := os.ReadFile(filepath.Join(out, n.Name+".georaft.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg renderedNodeConfig
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: rendered config is not YAML: %v\n%s", n.Name, err, data)
		}
		if cfg.ClusterID != cluster.ClusterID || cfg.Node.ID != n.ID || cfg.Node.Region != n.Region {
			t.Errorf("%s: cluster %q node %d region %q; want %q, %d, %q", n.Name, cfg.ClusterID, cfg.Node.ID, cfg.Node.Region,
				cluster.ClusterID, n.ID, n.Region)
		}
		if want := n.InternalIP + ":" + strconv.Itoa(cluster.PeerPort); cfg.Listen.Peer != want {
			t.Errorf("%s: listen.peer = %s, want the internal address %s", n.Name, cfg.Listen.Peer, want)
		}
		if len(cfg.Peers) != len(cluster.Nodes) {
			t.Fatalf("%s: %d peers, want %d", n.Name, len(cfg.Peers), len(cluster.Nodes))
		}
		for i, p := range cfg.Peers {
			want := cluster.Nodes[i]
			if p.ID != want.ID || p.Region != want.Region ||
				p.PeerAddress != want.InternalIP+":"+strconv.Itoa(cluster.PeerPort) ||
				p.ClientAddress != want.ExternalIP+":"+strconv.Itoa(cluster.ClientPort) {
				t.Errorf("%s: peer %d = %+v, want node %d in %s at %s (peers) and %s (clients)", n.Name, i, p,
					want.ID, want.Region, want.InternalIP, want.ExternalIP)
			}
		}
		for key, value := range map[string]string{
			"heartbeat_interval":   timing.HeartbeatInterval.String(),
			"election_timeout_min": timing.ElectionTimeoutMin.String(),
			"election_timeout_max": timing.ElectionTimeoutMax.String(),
			"lease_duration":       timing.LeaseDuration.String(),
		} {
			if cfg.Timing[key] != value {
				t.Errorf("%s: timing.%s = %v, want tune's %s", n.Name, key, cfg.Timing[key], value)
			}
		}
		if strings.Join(cfg.ReadLeases.Holders, ",") != strings.Join(planned.Plan.Holders, ",") ||
			strings.Join(cfg.Placement.PreferredRegions, ",") != strings.Join(planned.Plan.PreferredRegions(), ",") {
			t.Errorf("%s: read_leases.holders %v, placement.preferred_regions %v; want tune's %v and %v", n.Name,
				cfg.ReadLeases.Holders, cfg.Placement.PreferredRegions, planned.Plan.Holders, planned.Plan.PreferredRegions())
		}
		if cfg.Timing["max_clock_drift"] != timing.MaxClockDrift {
			t.Errorf("%s: timing.max_clock_drift = %v, want %v", n.Name, cfg.Timing["max_clock_drift"], timing.MaxClockDrift)
		}
		if want := (renderedTLS{Enabled: true, CAFile: "/etc/georaft/tls/ca.crt", CertFile: "/etc/georaft/tls/node.crt",
			KeyFile: "/etc/georaft/tls/node.key"}); cfg.TLS != want {
			t.Errorf("%s: tls = %+v, want TLS on by default: %+v", n.Name, cfg.TLS, want)
		}

		unit, err := os.ReadFile(filepath.Join(out, n.Name+".georaft.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{
			"Restart=on-failure", "User=georaft", "Group=georaft", "NoNewPrivileges=yes", "ProtectSystem=strict",
			"ReadWritePaths=/var/lib/georaft", "ProtectHome=yes", "PrivateTmp=yes", "LimitNOFILE=65536",
			"ExecStart=/opt/georaft/current/georaftd --config /etc/georaft/georaft.yml",
			"AssertPathExists=/var/lib/georaft/georaft-member.yml", "After=time-sync.target chrony-wait.service",
		} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(unit) {
				t.Errorf("%s: systemd unit lacks %q", n.Name, line)
			}
		}
		if out, err := exec.Command("sh", "-n", filepath.Join(out, n.Name+".georaftctl.sh")).CombinedOutput(); err != nil {
			t.Errorf("%s: georaftctl is not valid sh: %v\n%s", n.Name, err, out)
		}
	}
	if checked != 1 {
		t.Fatalf("the fixture has no node %s", probed)
	}
	verifyUnit(t, filepath.Join(out, probed+".georaft.service"))
}

// verifyUnit runs systemd-analyze verify on a rendered unit where systemd is installed. The
// unit names /opt/georaft/current/georaftd, which does not exist here, so that one complaint is
// expected and anything else fails the test.
func verifyUnit(t *testing.T, rendered string) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not on PATH: systemd unit not verified")
		return
	}
	unit := filepath.Join(t.TempDir(), "georaft.service")
	data, err := os.ReadFile(rendered)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unit, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin, "verify", "--man=no", unit).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "",
			strings.Contains(line, "/opt/georaft/current/georaftd"),  // not installed on this machine
			strings.Contains(line, "Unit georaft.service not found"), // follows from the above on some versions
			strings.Contains(line, "Failed to prepare filename"):     // idem
			continue
		}
		if strings.Contains(line, "georaft.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
