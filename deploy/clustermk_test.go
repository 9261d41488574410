package deploy

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/georaft/georaft/tlsutil"
)

// The cluster targets must stop before touching anything when a tool or the credentials are
// missing, and say what to do. Every case here stops at a check, so nothing reaches a network.
func TestClusterTargetsFailEarly(t *testing.T) {
	dir := t.TempDir()
	mk, makefile := clusterMakefile(t, dir)
	creds := filepath.Join(dir, "key.json")
	if err := os.WriteFile(creds, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyTF := filepath.Join(dir, "tf")
	if err := os.Mkdir(emptyTF, 0o755); err != nil {
		t.Fatal(err)
	}
	_, gcloudErr := exec.LookPath("gcloud")

	for _, tc := range []struct {
		name   string
		target string
		vars   []string
		env    []string
		want   string
		skip   bool
	}{
		{"no terraform", "cluster-up", []string{"TERRAFORM=/nonexistent/terraform"}, nil, "terraform not found", false},
		{"no ansible", "cluster-up", []string{"TERRAFORM=true", "ANSIBLE_PLAYBOOK=/nonexistent/ansible-playbook"}, nil,
			"ansible-playbook not found", false},
		{"unreadable credentials", "cluster-up", []string{"TERRAFORM=true", "ANSIBLE_PLAYBOOK=true"},
			[]string{"GOOGLE_APPLICATION_CREDENTIALS=" + filepath.Join(dir, "absent.json")}, "is not a readable file", false},
		{"no credentials at all", "cluster-down", []string{"TERRAFORM=true"}, []string{"GOOGLE_APPLICATION_CREDENTIALS="},
			"no Google Cloud credentials", gcloudErr == nil},
		{"no tfvars", "cluster-up", []string{"TERRAFORM=true", "ANSIBLE_PLAYBOOK=true", "TF_DIR=" + emptyTF},
			[]string{"GOOGLE_APPLICATION_CREDENTIALS=" + creds}, "terraform.tfvars is missing", false},
		{"no cluster yet", "cluster-status", []string{"TERRAFORM=false"}, nil, "no cluster in the Terraform state", false},
		{"bench without cluster", "cluster-bench", []string{"TERRAFORM=false", "REGION=europe-west1"}, nil,
			"no cluster in the Terraform state", false},
		{"CLUSTER_TLS neither on nor off", "cluster-up", []string{"CLUSTER_TLS=on"}, nil,
			"CLUSTER_TLS=on: want 1 (TLS, the default) or 0 (no TLS)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip {
				t.Skip("gcloud is installed here; it may hold credentials")
			}
			args := append([]string{"--no-print-directory", "-C", "..", "-f", makefile, tc.target}, tc.vars...)
			cmd := exec.Command(mk, args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("make %s succeeded:\n%s", tc.target, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("make %s: want %q in\n%s", tc.target, tc.want, out)
			}
			// Stopped at the check: no build, no terraform init, no ansible.
			for _, step := range []string{"go build", "init -input=false", "wait_for_connection"} {
				if strings.Contains(string(out), step) {
					t.Errorf("make %s ran %q before failing:\n%s", tc.target, step, out)
				}
			}
		})
	}
}

// make cluster-certs issues, from Terraform's outputs (a stand-in terraform prints the
// recorded ones), a CA and a certificate per node that names every address the node is
// reached at; a second run keeps them, cluster-renew-certs reissues them under the same CA,
// and CLUSTER_TLS=0 issues nothing.
func TestClusterCertsNameEveryNodeAddress(t *testing.T) {
	dir := t.TempDir()
	mk, makefile := clusterMakefile(t, dir)
	fakeTerraform := filepath.Join(dir, "terraform")
	script := "#!/bin/sh\ncase \"$*\" in\n  *'output -json nodes') echo '[]' ;;\n  *'output -json') cat " + abs(t, tfOutputJSON) + " ;;\n  *) echo \"unexpected terraform $*\" >&2; exit 1 ;;\nesac\n"
	if err := os.WriteFile(fakeTerraform, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in ansible answers cluster-certs' question to the nodes (is there a CA?) as the
	// real one prints it with --one-line; CA_ON_NODES says what the nodes have.
	fakeAnsible := filepath.Join(dir, "ansible")
	ansibleScript := "#!/bin/sh\nfor n in 1 2 3 4 5; do echo \"georaft-$n | CHANGED | rc=0 | (stdout) georaft-ca-${CA_ON_NODES:-absent}\"; done\n"
	if err := os.WriteFile(fakeAnsible, []byte(ansibleScript), 0o755); err != nil {
		t.Fatal(err)
	}
	clusterDir := filepath.Join(dir, "cluster")
	runMake := func(target string, vars ...string) (string, error) {
		args := append([]string{"--no-print-directory", "-C", "..", "-f", makefile, target,
			"TERRAFORM=" + fakeTerraform, "ANSIBLE=" + fakeAnsible, "PIN_HOST_KEYS=0", "CLUSTER_DIR=" + clusterDir}, vars...)
		out, err := exec.Command(mk, args...).CombinedOutput()
		return string(out), err
	}
	makeCerts := func(vars ...string) string {
		t.Helper()
		out, err := runMake("cluster-certs", vars...)
		if err != nil {
			t.Fatalf("make cluster-certs %v: %v\n%s", vars, err, out)
		}
		return out
	}
	if out, err := runMake("cluster-renew-certs"); err == nil || !strings.Contains(out, "no CA in") {
		t.Errorf("make cluster-renew-certs without a CA: %v, want a failure saying there is no CA:\n%s", err, out)
	}

	if out := makeCerts("CLUSTER_TLS=0"); !strings.Contains(out, "without TLS") {
		t.Errorf("CLUSTER_TLS=0 did not say the cluster runs without TLS:\n%s", out)
	}
	pki := filepath.Join(clusterDir, "pki")
	if _, err := os.Stat(pki); !os.IsNotExist(err) {
		t.Fatalf("CLUSTER_TLS=0 created %s (stat: %v)", pki, err)
	}

	// Nodes that already have a CA never get a second one silently.
	t.Setenv("CA_ON_NODES", "present")
	if out, err := runMake("cluster-certs"); err == nil || !strings.Contains(out, "the cluster's nodes already have one") ||
		!strings.Contains(out, "copy it from the operator who created the cluster") {
		t.Errorf("cluster-certs without a local CA on a cluster that has one: %v, want a refusal saying where the CA comes from:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(pki, "ca.crt")); !os.IsNotExist(err) {
		t.Fatalf("cluster-certs issued a CA although the nodes have one (stat: %v)", err)
	}
	t.Setenv("CA_ON_NODES", "absent")

	makeCerts()
	cluster := fixtureCluster(t)
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(caPEM)
	for _, n := range cluster.Nodes {
		cert := readCert(t, filepath.Join(pki, fmt.Sprintf("node-%d.crt", n.ID)))
		for _, name := range []string{n.InternalIP, n.ExternalIP, n.Name, tlsutil.NodeServerName(n.ID)} {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
				t.Errorf("node %d's certificate does not verify for %s: %v", n.ID, name, err)
			}
		}
	}
	admin := readCert(t, filepath.Join(pki, "client-admin.crt"))
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the admin client certificate does not verify: %v", err)
	}

	if out := makeCerts(); !strings.Contains(out, "keeping the CA") {
		t.Errorf("a second run did not keep the CA:\n%s", out)
	}
	if again, err := os.ReadFile(filepath.Join(pki, "ca.crt")); err != nil || string(again) != string(caPEM) {
		t.Errorf("a second run changed the CA (%v)", err)
	}

	// Renewal: new node certificates, for the same names, under the same CA.
	before := readCert(t, filepath.Join(pki, "node-3.crt"))
	if out, err := runMake("cluster-renew-certs"); err != nil || !strings.Contains(out, "kept CA") {
		t.Fatalf("make cluster-renew-certs: %v\n%s", err, out)
	}
	if again, err := os.ReadFile(filepath.Join(pki, "ca.crt")); err != nil || string(again) != string(caPEM) {
		t.Errorf("cluster-renew-certs changed the CA (%v)", err)
	}
	after := readCert(t, filepath.Join(pki, "node-3.crt"))
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Error("cluster-renew-certs left node 3's certificate as it was")
	}
	if _, err := after.Verify(x509.VerifyOptions{Roots: roots, DNSName: cluster.Nodes[2].InternalIP}); err != nil {
		t.Errorf("node 3's renewed certificate does not verify for its internal IP under the kept CA: %v", err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := tlsutil.ReadCertificates(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// clusterMakefile writes, under dir, a Makefile that includes cluster.mk, and finds make.
func clusterMakefile(t *testing.T, dir string) (mk, makefile string) {
	t.Helper()
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not on PATH")
	}
	makefile = filepath.Join(dir, "Makefile")
	if err := os.WriteFile(makefile, []byte("include "+abs(t, "cluster.mk")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return mk, makefile
}

// make cluster-down destroys nothing without CONFIRM=<cluster id>; with it, it snapshots every
// data disk first, destroys only once every snapshot succeeded, and keeps the CA.
func TestClusterDownConfirmsAndSnapshotsFirst(t *testing.T) {
	dir := t.TempDir()
	mk, makefile := clusterMakefile(t, dir)
	calls := filepath.Join(dir, "calls.log")
	fakeTerraform := filepath.Join(dir, "terraform")
	tfScript := "#!/bin/sh\necho \"terraform $*\" >> " + calls + "\ncase \"$*\" in\n" +
		"  *'output -raw cluster_id') printf georaft ;;\n" +
		"  *'output -json nodes') echo '{}' ;;\n" +
		"  *'output -json') cat " + abs(t, tfOutputJSON) + " ;;\n" +
		"  *'state rm'*|*destroy*) ;;\n" +
		"  *) echo \"unexpected terraform $*\" >&2; exit 1 ;;\nesac\n"
	fakeGcloud := filepath.Join(dir, "gcloud")
	// Snapshots of the disk named in FAIL_SNAPSHOT fail, as gcloud does on a quota error.
	gcScript := "#!/bin/sh\necho \"gcloud $*\" >> " + calls + "\ncase \"$*\" in\n" +
		"  *\"--source-disk=$FAIL_SNAPSHOT \"*) echo 'ERROR: (gcloud.compute.snapshots.create) Quota SNAPSHOTS exceeded' >&2; exit 1 ;;\n" +
		"  'compute snapshots create '*) echo '[]' ;;\n" +
		"  'compute disks delete '*) ;;\n" +
		"  *) echo \"unexpected gcloud $*\" >&2; exit 1 ;;\nesac\n"
	for path, script := range map[string]string{fakeTerraform: tfScript, fakeGcloud: gcScript} {
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tfDir := filepath.Join(dir, "tf")
	creds := filepath.Join(dir, "key.json")
	pki := filepath.Join(dir, "cluster", "pki")
	for path, content := range map[string]string{filepath.Join(tfDir, "terraform.tfvars"): "project_id = \"x\"\n", creds: "{}",
		filepath.Join(pki, "ca.crt"): "kept"} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	down := func(env string, vars ...string) (string, []string, error) {
		os.Remove(calls)
		args := append([]string{"--no-print-directory", "-C", "..", "-f", makefile, "cluster-down", "TERRAFORM=" + fakeTerraform,
			"GCLOUD=" + fakeGcloud, "TF_DIR=" + tfDir, "CLUSTER_DIR=" + filepath.Join(dir, "cluster")}, vars...)
		cmd := exec.Command(mk, args...)
		cmd.Env = append(os.Environ(), "GOOGLE_APPLICATION_CREDENTIALS="+creds, "FAIL_SNAPSHOT="+env)
		out, err := cmd.CombinedOutput()
		data, _ := os.ReadFile(calls)
		return string(out), strings.Split(strings.TrimSpace(string(data)), "\n"), err
	}
	destroyed := func(log []string) bool {
		for _, l := range log {
			if strings.Contains(l, "destroy") || strings.Contains(l, "state rm") || strings.Contains(l, "disks delete") {
				return true
			}
		}
		return false
	}

	for _, confirm := range []string{"CONFIRM=", "CONFIRM=prod"} {
		out, log, err := down("none", confirm)
		if err == nil || !strings.Contains(out, "Type its id to confirm: make cluster-down CONFIRM=georaft") || destroyed(log) {
			t.Errorf("cluster-down %q: %v, destroyed %v:\n%s", confirm, err, destroyed(log), out)
		}
	}
	out, log, err := down("georaft-4-data", "CONFIRM=georaft")
	if err == nil || !strings.Contains(out, "the final snapshot of georaft-4-data failed; nothing was destroyed") || destroyed(log) {
		t.Errorf("cluster-down with a failing snapshot: %v, destroyed %v:\n%s", err, destroyed(log), out)
	}

	out, log, err = down("none", "CONFIRM=georaft")
	if err != nil {
		t.Fatalf("cluster-down CONFIRM=georaft: %v\n%s", err, out)
	}
	var order []string
	for _, l := range log {
		switch {
		case strings.HasPrefix(l, "gcloud compute snapshots create"):
			order = append(order, "snapshot "+strings.Fields(l)[4])
		case strings.Contains(l, "state rm google_compute_disk.data"):
			order = append(order, "state rm")
		case strings.Contains(l, " destroy "):
			order = append(order, "destroy")
		case strings.HasPrefix(l, "gcloud compute disks delete"):
			order = append(order, "delete "+strings.Fields(l)[4])
		}
	}
	got := strings.Join(order, "; ")
	want := regexp.MustCompile(`^snapshot georaft-1-data-final-\d{8}-\d{6}; snapshot georaft-2-data-final-\S+; snapshot georaft-3-data-g2-final-\S+; ` +
		`snapshot georaft-4-data-final-\S+; snapshot georaft-5-data-final-\S+; state rm; destroy; delete georaft-1-data; delete georaft-2-data; ` +
		`delete georaft-3-data-g2; delete georaft-4-data; delete georaft-5-data$`)
	if !want.MatchString(got) {
		t.Errorf("cluster-down ran %s", got)
	}
	if _, err := os.Stat(filepath.Join(pki, "ca.crt")); err != nil {
		t.Errorf("cluster-down removed the CA: %v", err)
	}
}
