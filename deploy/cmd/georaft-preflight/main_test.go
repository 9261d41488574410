package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const fixtures = "../../testdata/gcloud"

// stand-in gcloud: records its arguments and answers from the fixtures in dir, which hold
// gcloud's own JSON output formats; anything else is an error, as a real gcloud would give.
const fakeGcloud = `#!/bin/sh
echo "$*" >> "$GCLOUD_LOG"
F="$GCLOUD_FIXTURES"
case "$*" in
"auth list --filter=status:ACTIVE --format=json") cat "$F/auth-list.json" ;;
"auth application-default print-access-token"|"auth print-access-token") echo ya29.a0AfB_byFakeTokenForTests ;;
"projects describe georaft-prod-4471 --format=json") cat "$F/projects-describe.json" ;;
"services list --enabled --project=georaft-prod-4471 --format=json") cat "$F/services-list.json" ;;
"compute regions describe "*" --project=georaft-prod-4471 --format=json")
	f="$F/regions/$4.json"; [ -f "$f" ] || { echo "ERROR: (gcloud.compute.regions.describe) Could not fetch resource:" >&2; exit 1; }; cat "$f" ;;
"compute machine-types describe n2-standard-2 --zone="*" --project=georaft-prod-4471 --format=json")
	zone=${5#--zone=}; f="$F/machine-types/$zone.json"
	[ -f "$f" ] || { printf 'ERROR: (gcloud.compute.machine-types.describe) Could not fetch resource:\n - The resource '"'"'projects/georaft-prod-4471/zones/%s/machineTypes/n2-standard-2'"'"' was not found\n' "$zone" >&2; exit 1; }
	cat "$f" ;;
"resource-manager org-policies describe constraints/"*" --project=georaft-prod-4471 --effective --format=json")
	cat "$F/org-policies/${4#constraints/}.json" ;;
*) echo "ERROR: (gcloud) unexpected arguments: $*" >&2; exit 2 ;;
esac
`

type scenario struct {
	dir      string // fixtures, a copy the case may change
	tfDir    string
	log      string
	granted  []string
	crmCalls int
}

func newScenario(t *testing.T, tfvars string) *scenario {
	t.Helper()
	s := &scenario{dir: filepath.Join(t.TempDir(), "fixtures"), tfDir: t.TempDir(), log: filepath.Join(t.TempDir(), "gcloud.log")}
	if out, err := exec.Command("cp", "-r", fixtures, s.dir).CombinedOutput(); err != nil {
		t.Fatalf("copy fixtures: %v\n%s", err, out)
	}
	vars, err := os.ReadFile("../../../terraform/variables.tf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tfDir, "variables.tf"), vars, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tfDir, "terraform.tfvars"), []byte(tfvars), 0o644); err != nil {
		t.Fatal(err)
	}
	var all struct{ Permissions []string }
	if err := json.Unmarshal([]byte(s.read(t, "test-iam-permissions-all.json")), &all); err != nil {
		t.Fatal(err)
	}
	s.granted = all.Permissions
	return s
}

func (s *scenario) read(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func (s *scenario) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs preflight against the stand-in gcloud and a stand-in testIamPermissions that
// grants s.granted (of what was asked), as Cloud Resource Manager answers.
func (s *scenario) run(t *testing.T) (string, int) {
	t.Helper()
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.crmCalls++
		if r.Method != http.MethodPost || r.URL.Path != "/v1/projects/georaft-prod-4471:testIamPermissions" ||
			r.Header.Get("Authorization") != "Bearer ya29.a0AfB_byFakeTokenForTests" {
			http.Error(w, `{"error": {"code": 400, "status": "INVALID_ARGUMENT"}}`, http.StatusBadRequest)
			return
		}
		var req struct{ Permissions []string }
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var held []string
		for _, p := range req.Permissions {
			for _, g := range s.granted {
				if p == g {
					held = append(held, p)
				}
			}
		}
		json.NewEncoder(w).Encode(map[string][]string{"permissions": held})
	}))
	defer crm.Close()
	gcloud := filepath.Join(t.TempDir(), "gcloud")
	if err := os.WriteFile(gcloud, []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GCLOUD_LOG", s.log)
	t.Setenv("GCLOUD_FIXTURES", s.dir)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	var out bytes.Buffer
	code := run([]string{"-tf-dir", s.tfDir, "-gcloud", gcloud, "-crm-endpoint", crm.URL}, &out, &out)
	return out.String(), code
}

const goodTfvars = `project_id     = "georaft-prod-4471"
ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExample you@laptop"
admin_cidrs    = ["203.0.113.10/32"]
`

// A project that is ready passes every check, and preflight only reads: every gcloud call
// it made is a describe, list or token request.
func TestPreflightPassesAReadyProject(t *testing.T) {
	s := newScenario(t, goodTfvars)
	out, code := s.run(t)
	if code != 0 {
		t.Fatalf("preflight failed on a ready project (exit %d):\n%s", code, out)
	}
	for _, want := range []string{"ok    credentials", "ok    project", "ok    apis", "ok    permissions", "ok    quotas         asia-east1",
		"ok    machine type", "gcp.resourceLocations allows every region", "ready for make cluster-up"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if s.crmCalls != 1 {
		t.Errorf("testIamPermissions called %d times, want 1", s.crmCalls)
	}
	logData, err := os.ReadFile(s.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(logData)), "\n") {
		f := strings.Fields(line)
		readOnly := len(f) >= 2 && (f[0] == "auth" || strings.Contains(line, " describe ") || strings.HasPrefix(line, "projects describe") ||
			strings.HasPrefix(line, "services list"))
		if !readOnly {
			t.Errorf("preflight ran gcloud %s, which is not a read", line)
		}
	}
	for _, region := range []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"} {
		if !strings.Contains(string(logData), "compute regions describe "+region+" --project=georaft-prod-4471 --format=json") {
			t.Errorf("preflight did not read %s's quotas", region)
		}
	}
}

// Every failure names what is wrong and the command or setting that fixes it.
func TestPreflightNamesEachProblemAndItsFix(t *testing.T) {
	s := newScenario(t, goodTfvars)
	// The operator lacks roles/iam.serviceAccountUser.
	var kept []string
	for _, p := range s.granted {
		if p != "iam.serviceAccounts.actAs" {
			kept = append(kept, p)
		}
	}
	s.granted = kept
	// asia-east1 has no N2 vCPUs left; europe-west1-b does not offer the machine type.
	s.write(t, "regions/asia-east1.json", strings.Replace(s.read(t, "regions/asia-east1.json"),
		`"limit": 24.0,
      "metric": "N2_CPUS",
      "usage": 0.0`, `"limit": 24.0,
      "metric": "N2_CPUS",
      "usage": 24.0`, 1))
	if err := os.Remove(filepath.Join(s.dir, "machine-types/europe-west1-b.json")); err != nil {
		t.Fatal(err)
	}
	// The organisation enforces OS Login, forbids external addresses, and allows US regions only.
	s.write(t, "org-policies/compute.requireOsLogin.json",
		`{"booleanPolicy": {"enforced": true}, "constraint": "constraints/compute.requireOsLogin", "etag": "BwYXp8sQ1m8="}`)
	s.write(t, "org-policies/compute.vmExternalIpAccess.json",
		`{"constraint": "constraints/compute.vmExternalIpAccess", "etag": "BwYXp8sQ1m8=", "listPolicy": {"allValues": "DENY"}}`)
	s.write(t, "org-policies/gcp.resourceLocations.json",
		`{"constraint": "constraints/gcp.resourceLocations", "etag": "BwYXp8sQ1m8=", "listPolicy": {"allowedValues": ["in:us-locations"]}}`)

	out, code := s.run(t)
	if code != 1 {
		t.Fatalf("preflight exit %d, want 1:\n%s", code, out)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"FAIL permissions ops@example.com lacks iam.serviceAccounts.actAs fix: gcloud projects add-iam-policy-binding georaft-prod-4471 --member=user:ops@example.com --role=roles/iam.serviceAccountUser",
		"FAIL quotas asia-east1: not enough N2_CPUS (limit 24, in use 24, the node needs 2)",
		"FAIL machine type n2-standard-2 is not offered in europe-west1-b",
		"FAIL org policy constraints/compute.vmExternalIpAccess forbids external addresses",
		`fix: set assign_external_ip = false and ssh_mode = "iap"`,
		"FAIL org policy constraints/compute.requireOsLogin is enforced",
		`fix: set ssh_mode = "oslogin" (or "iap")`,
		"FAIL org policy constraints/gcp.resourceLocations does not allow europe-west1, asia-east1",
		"ok quotas us-central1",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "6 check(s) failed") {
		t.Errorf("output does not count 6 failed checks:\n%s", out)
	}
}

// With ssh through IAP and no external addresses, the policies above are satisfied, and the
// IAP and OS Login permissions are asked for.
func TestPreflightIAPWithoutExternalAddresses(t *testing.T) {
	s := newScenario(t, `project_id = "georaft-prod-4471"
ssh_mode = "iap"
assign_external_ip = false
`)
	s.write(t, "org-policies/compute.requireOsLogin.json",
		`{"booleanPolicy": {"enforced": true}, "constraint": "constraints/compute.requireOsLogin"}`)
	s.write(t, "org-policies/compute.vmExternalIpAccess.json",
		`{"constraint": "constraints/compute.vmExternalIpAccess", "listPolicy": {"allValues": "DENY"}}`)
	out, code := s.run(t)
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"ok org policy compute.vmExternalIpAccess", "ok org policy compute.requireOsLogin fits ssh_mode iap",
		"lacks iap.tunnelInstances.accessViaIAP", "--role=roles/iap.tunnelResourceAccessor",
		"lacks compute.instances.osAdminLogin", "--role=roles/compute.osAdminLogin",
		"warn apis iap.googleapis.com off: Terraform enables them"} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
