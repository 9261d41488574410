package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The cluster targets must stop before touching anything when a tool or the credentials are
// missing, and say what to do. Every case here stops at a check, so nothing reaches a network.
func TestClusterTargetsFailEarly(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make not on PATH")
	}
	dir := t.TempDir()
	makefile := filepath.Join(dir, "Makefile")
	if err := os.WriteFile(makefile, []byte("include "+abs(t, "cluster.mk")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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
