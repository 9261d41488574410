package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make cluster-up against a live cluster (a node's data disk carries the member marker) runs
// the rolling upgrade, never site.yml, which would restart every node at once; on a blank
// cluster, or with CLUSTER_ALL_AT_ONCE=1, it runs site.yml. cluster-up, cluster-apply,
// cluster-inventory (the real generator on the recorded Terraform output), cluster-certs and
// cluster-deploy run as shipped, with stand-in terraform, ansible and ansible-playbook that
// record their calls. The steps proven elsewhere and that would need the network or a
// cross-compile here (preflight: deploy/cmd/georaft-preflight's tests; build; wait: the
// status of the real nodes) are replaced by recipes that only record that they ran.
func TestClusterUpOnALiveClusterRollsUpgrade(t *testing.T) {
	dir := t.TempDir()
	mk, makefile := clusterMakefile(t, dir)
	calls := filepath.Join(dir, "calls.log")
	stub := func(target string) string {
		return target + ":\n\t@echo '" + target + "' >> " + calls + "\n"
	}
	if err := os.WriteFile(makefile, []byte("include "+abs(t, "cluster.mk")+"\n"+
		stub("cluster-preflight")+stub("cluster-build")+stub("cluster-wait")), 0o644); err != nil {
		t.Fatal(err)
	}
	script := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho \""+name+" $*\" >> "+calls+"\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	terraform := script("terraform", "case \"$*\" in\n"+
		"  *'init -input=false'|*'apply -input=false') ;;\n"+
		"  *'output -json nodes') echo '{}' ;;\n"+
		"  *'output -json') cat "+abs(t, tfOutputJSON)+" ;;\n"+
		"  *) echo \"unexpected terraform $*\" >&2; exit 1 ;;\nesac\n")
	// The nodes' answers as ansible --one-line prints them: MARKED lists the nodes whose data
	// disk has the member marker.
	ansible := script("ansible", "case \"$*\" in\n"+
		"  *wait_for_connection*) ;;\n"+
		"  *georaft-member.yml*) for n in 1 2 3 4 5; do\n"+
		"      case \" $MARKED \" in *\" $n \"*) m=georaft-member ;; *) m=georaft-blank ;; esac\n"+
		"      echo \"georaft-$n | CHANGED | rc=0 | (stdout) $m\"; done ;;\n"+
		"  *) echo \"unexpected ansible $*\" >&2; exit 1 ;;\nesac\n")
	playbook := script("ansible-playbook", "")
	tfDir := filepath.Join(dir, "tf")
	clusterDir := filepath.Join(dir, "cluster")
	creds := filepath.Join(dir, "key.json")
	// An operator who has the cluster's PKI: cluster-certs keeps it.
	for path, content := range map[string]string{filepath.Join(tfDir, "terraform.tfvars"): "project_id = \"x\"\n", creds: "{}",
		filepath.Join(clusterDir, "pki", "ca.crt"): "the cluster's CA"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	up := func(marked string, vars ...string) (string, []string) {
		t.Helper()
		os.Remove(calls)
		args := append([]string{"--no-print-directory", "-C", "..", "-f", makefile, "cluster-up", "TERRAFORM=" + terraform,
			"ANSIBLE=" + ansible, "ANSIBLE_PLAYBOOK=" + playbook, "TF_DIR=" + tfDir, "CLUSTER_DIR=" + clusterDir, "PIN_HOST_KEYS=0"}, vars...)
		cmd := exec.Command(mk, args...)
		cmd.Env = append(os.Environ(), "GOOGLE_APPLICATION_CREDENTIALS="+creds, "MARKED="+marked)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make cluster-up (marked: %q) %v: %v\n%s", marked, vars, err, out)
		}
		data, _ := os.ReadFile(calls)
		return string(out), strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	// steps reduces the call log to what it did, in order.
	steps := func(log []string) string {
		var out []string
		for _, l := range log {
			f := strings.Fields(l)
			switch {
			case f[0] == "terraform" && strings.Contains(l, " init "):
				out = append(out, "terraform init")
			case f[0] == "terraform" && strings.Contains(l, " apply "):
				out = append(out, "terraform apply")
			case f[0] == "ansible" && strings.Contains(l, "wait_for_connection"):
				out = append(out, "wait for ssh")
			case f[0] == "ansible" && strings.Contains(l, "georaft-member.yml"):
				out = append(out, "ask for the marker")
			case f[0] == "ansible-playbook":
				out = append(out, "playbook "+f[len(f)-1])
			case len(f) == 1:
				out = append(out, f[0])
			}
		}
		return strings.Join(out, "; ")
	}
	const before = "cluster-preflight; cluster-build; terraform init; terraform apply; wait for ssh; ask for the marker; "

	for _, marked := range []string{"1 2 3 4 5", "4"} {
		out, log := up(marked)
		if got, want := steps(log), before+"playbook upgrade.yml; cluster-wait"; got != want {
			t.Errorf("cluster-up on a cluster with the marker on nodes %s ran\n  %s\nwant\n  %s", marked, got, want)
		}
		if !strings.Contains(out, "deploy: the cluster is live (marked on georaft-") || !strings.Contains(out, "the leader last") {
			t.Errorf("cluster-up on a live cluster did not say it rolls:\n%s", out)
		}
		for _, l := range log {
			if strings.HasPrefix(l, "ansible-playbook") {
				if !strings.Contains(l, "-i "+filepath.Join(clusterDir, "inventory.yml")) || !strings.Contains(l, "georaft_tls_src_dir="+filepath.Join(clusterDir, "pki")) {
					t.Errorf("the upgrade ran without the generated inventory and the cluster's PKI: %s", l)
				}
			}
		}
	}
	if _, log := up(""); steps(log) != before+"playbook site.yml; cluster-wait" {
		t.Errorf("cluster-up on a blank cluster ran %s, want site.yml", steps(log))
	}
	if _, log := up("1 2 3 4 5", "CLUSTER_ALL_AT_ONCE=1"); steps(log) != before+"playbook site.yml; cluster-wait" {
		t.Errorf("cluster-up CLUSTER_ALL_AT_ONCE=1 ran %s, want site.yml", steps(log))
	}
}
