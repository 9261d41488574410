package deploy

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The role's timing check (roles/georaft/tasks/timing-check.yml), run by ansible-playbook
// on the inventory generated from the recorded Terraform output with the shipped group_vars:
// it lets the shipped placement through, and refuses, with a message that says what to do,
// timing tuned for other regions (a region changed, node ids swapped, no tuned timing at
// all) and a chrony slew rate that timing.max_clock_drift does not cover.
func TestTimingCheckRefusals(t *testing.T) {
	ansiblePlaybook(t)
	dir := t.TempDir()
	shipped := fixtureInventory(t, dir)
	data, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	// inventory writes a variant of the generated inventory, with or without the shipped
	// group_vars (timing.yml) beside it.
	inventory := func(name string, groupVars bool, edit func(string) string) string {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if groupVars {
			if err := os.Symlink(abs(t, filepath.Join(ansibleDir, "group_vars")), filepath.Join(d, "group_vars")); err != nil {
				t.Fatal(err)
			}
		}
		inv := edit(string(data))
		path := filepath.Join(d, "inventory.yml")
		if err := os.WriteFile(path, []byte(inv), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	same := func(s string) string { return s }
	region := func(node, from, to string) func(string) string {
		re := regexp.MustCompile(`(georaft_node_id: ` + node + `\n\s+georaft_region: )` + from + `\n`)
		return func(s string) string {
			if !re.MatchString(s) {
				t.Fatalf("the generated inventory has no node %s in %s", node, from)
			}
			return re.ReplaceAllString(s, "${1}"+to+"\n")
		}
	}
	swapped := func(s string) string {
		return region("2", "us-east1", "us-central1")(region("1", "us-central1", "us-east1")(s))
	}
	probe := `- hosts: georaft
  gather_facts: false
  roles:
    - role: georaft
      tags: [never]
  tasks:
    - ansible.builtin.import_tasks: "` + abs(t, filepath.Join(ansibleDir, "roles/georaft/tasks/timing-check.yml")) + `"
`
	probePath := filepath.Join(dir, "probe.yml")
	if err := os.WriteFile(probePath, []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(inv string, extra ...string) (string, error) {
		t.Helper()
		args := []string{"-i", inv, probePath, "-e", "ansible_connection=local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"}
		for _, e := range extra {
			args = append(args, "-e", e)
		}
		return runAnsible(t, ctx, dir, args...)
	}
	// Ansible folds the message over lines in its output; compare it with spaces.
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }

	for _, tc := range []struct {
		name  string
		inv   string
		extra []string
		want  []string // in the refusal; none: the check passes
	}{
		{"the shipped placement and chrony settings", inventory("shipped", true, same), nil, nil},
		{"a slew rate at the limit", inventory("at-limit", true, same), []string{"georaft_chrony_maxslewrate_ppm=4900"}, nil},
		{"a node in another region", inventory("moved", true, region("5", "asia-east1", "asia-south1")), nil, []string{
			"The timing in ansible/group_vars/georaft/timing.yml was derived for 1=us-central1, 2=us-east1, 3=us-west1, 4=europe-west1, 5=asia-east1, " +
				"but the inventory has 1=us-central1, 2=us-east1, 3=us-west1, 4=europe-west1, 5=asia-south1.",
			"make cluster-tune RTT=<matrix with these regions>"}},
		{"node ids swapped between regions", inventory("swapped", true, swapped), nil, []string{
			"but the inventory has 1=us-east1, 2=us-central1, 3=us-west1"}},
		{"no tuned timing", inventory("untuned", false, same), nil, []string{
			"No tuned timing: georaft_timing_placement is not set", "Derive it with make cluster-tune"}},
		{"a slew rate over what max_clock_drift covers", inventory("slew", true, same), []string{"georaft_chrony_maxslewrate_ppm=4901"}, []string{
			"chrony may slew each clock by 4901ppm on top of 100ppm of oscillator error, so two clocks can differ in rate by 10002ppm, " +
				"more than timing.max_clock_drift 0.01 (10000ppm) allows.", "Lower georaft_chrony_maxslewrate_ppm"}},
		{"a drift bound below the shipped slew rate", inventory("drift", true, same), []string{"georaft_max_clock_drift=0.001"}, []string{
			"so two clocks can differ in rate by 1200ppm, more than timing.max_clock_drift 0.001 (1000ppm) allows."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.inv, tc.extra...)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("the timing check refused: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("the timing check let it through:\n%s", out)
			}
			for _, want := range tc.want {
				if !strings.Contains(flat(out), want) {
					t.Errorf("the refusal does not say %q:\n%s", want, out)
				}
			}
		})
	}
}
