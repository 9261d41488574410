// Command georaft-preflight checks a Google Cloud project before make cluster-up creates
// anything in it, and says how to fix each problem:
//
//	go run ./deploy/cmd/georaft-preflight -tf-dir terraform
//
// It reads the cluster's settings from terraform/variables.tf (defaults) and
// terraform/terraform.tfvars, then asks gcloud, read-only: the active account and the
// application default credentials Terraform uses; the project; the APIs (Terraform enables
// them, but quotas and machine types can only be read with Compute Engine on); the
// permissions the operator holds (testIamPermissions); the quotas of every region (CPUs of
// the machine family, in-use and static addresses, disk space); the machine type in every
// zone; and the organisation policies that commonly break such kits
// (compute.vmExternalIpAccess, compute.requireOsLogin, gcp.resourceLocations). It exits 1
// when any check fails.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("georaft-preflight", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tfDir := fs.String("tf-dir", "terraform", "the kit's terraform/ directory (variables.tf and terraform.tfvars)")
	gcloud := fs.String("gcloud", "gcloud", "the gcloud command")
	crm := fs.String("crm-endpoint", "https://cloudresourcemanager.googleapis.com", "Cloud Resource Manager API endpoint (testIamPermissions)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	settings, err := loadSettings(*tfDir)
	if err != nil {
		fmt.Fprintln(stderr, "preflight:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := &preflight{s: settings, gcloud: *gcloud, crm: *crm, out: stdout}
	p.run(ctx)
	if p.failed > 0 {
		fmt.Fprintf(stdout, "\npreflight: %d check(s) failed; fix them before make cluster-up.\n", p.failed)
		return 1
	}
	fmt.Fprintln(stdout, "\npreflight: ready for make cluster-up.")
	return 0
}

// settings are the cluster's Terraform variables that decide what the project must allow.
type settings struct {
	Project          string
	Regions          []string
	Zones            map[string]string // region -> zone
	MachineType      string
	SSHMode          string
	ExternalIP       bool
	DataDiskType     string
	DataDiskGB       int
	BootDiskGB       int
	NamePrefix       string
	DefaultZoneLabel string
}

// loadSettings evaluates variables.tf's defaults and terraform.tfvars' values (literals).
func loadSettings(dir string) (settings, error) {
	vals := map[string]cty.Value{}
	parser := hclparse.NewParser()
	vf, diags := parser.ParseHCLFile(filepath.Join(dir, "variables.tf"))
	if diags.HasErrors() {
		return settings{}, diags
	}
	for _, b := range vf.Body.(*hclsyntax.Body).Blocks {
		if b.Type != "variable" || len(b.Labels) != 1 {
			continue
		}
		if def, ok := b.Body.Attributes["default"]; ok {
			v, d := def.Expr.Value(nil)
			if d.HasErrors() {
				return settings{}, d
			}
			vals[b.Labels[0]] = v
		}
	}
	tfvars := filepath.Join(dir, "terraform.tfvars")
	f, diags := parser.ParseHCLFile(tfvars)
	if diags.HasErrors() {
		return settings{}, fmt.Errorf("%s: %s", tfvars, diags.Error())
	}
	attrs, diags := f.Body.JustAttributes()
	if diags.HasErrors() {
		return settings{}, diags
	}
	for name, a := range attrs {
		v, d := a.Expr.Value(&hcl.EvalContext{})
		if d.HasErrors() {
			return settings{}, fmt.Errorf("%s: %s: only literal values can be checked: %s", tfvars, name, d.Error())
		}
		vals[name] = v
	}
	str := func(name string) string {
		if v, ok := vals[name]; ok && !v.IsNull() {
			if s, err := convert.Convert(v, cty.String); err == nil {
				return s.AsString()
			}
		}
		return ""
	}
	num := func(name string) int {
		if v, ok := vals[name]; ok && !v.IsNull() {
			if n, err := convert.Convert(v, cty.Number); err == nil {
				i, _ := n.AsBigFloat().Int64()
				return int(i)
			}
		}
		return 0
	}
	s := settings{Project: str("project_id"), MachineType: str("machine_type"), SSHMode: str("ssh_mode"),
		DataDiskType: str("data_disk_type"), DataDiskGB: num("data_disk_size_gb"), BootDiskGB: num("boot_disk_size_gb"),
		NamePrefix: str("name_prefix"), DefaultZoneLabel: str("default_zone_suffix"), ExternalIP: true, Zones: map[string]string{}}
	if v, ok := vals["assign_external_ip"]; ok && v.Type() == cty.Bool {
		s.ExternalIP = v.True()
	}
	if v, ok := vals["regions"]; ok && v.CanIterateElements() {
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			s.Regions = append(s.Regions, e.AsString())
		}
	}
	zones := map[string]string{}
	if v, ok := vals["zones"]; ok && v.CanIterateElements() {
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			zones[k.AsString()] = e.AsString()
		}
	}
	for _, r := range s.Regions {
		if z, ok := zones[r]; ok {
			s.Zones[r] = z
		} else {
			s.Zones[r] = r + "-" + s.DefaultZoneLabel
		}
	}
	if s.Project == "" {
		return s, fmt.Errorf("%s sets no project_id", tfvars)
	}
	if s.BootDiskGB == 0 {
		s.BootDiskGB = 20
	}
	return s, nil
}

type preflight struct {
	s       settings
	gcloud  string
	crm     string
	out     io.Writer
	failed  int
	account string
}

func (p *preflight) ok(check, format string, args ...any) {
	fmt.Fprintf(p.out, "  ok    %-14s %s\n", check, fmt.Sprintf(format, args...))
}

func (p *preflight) warn(check, format string, args ...any) {
	fmt.Fprintf(p.out, "  warn  %-14s %s\n", check, fmt.Sprintf(format, args...))
}

// fail reports a failed check and its fix.
func (p *preflight) fail(check, problem, fix string) {
	p.failed++
	fmt.Fprintf(p.out, "  FAIL  %-14s %s\n        fix: %s\n", check, problem, fix)
}

// gc runs gcloud and returns its stdout; the error carries its stderr.
func (p *preflight) gc(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, p.gcloud, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return out, errors.New(msg)
	}
	return out, nil
}

func (p *preflight) gcJSON(ctx context.Context, v any, args ...string) error {
	out, err := p.gc(ctx, append(args, "--format=json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("gcloud %s: unexpected output: %v", strings.Join(args, " "), err)
	}
	return nil
}

func (p *preflight) run(ctx context.Context) {
	s := p.s
	fmt.Fprintf(p.out, "preflight: project %s, %d regions (%s), %s, ssh %s\n", s.Project, len(s.Regions),
		strings.Join(s.Regions, ", "), s.MachineType, s.SSHMode)
	if !p.credentials(ctx) {
		return
	}
	if !p.project(ctx) {
		return
	}
	computeOn := p.apis(ctx)
	p.permissions(ctx)
	if computeOn {
		p.regions(ctx)
		p.machineTypes(ctx)
	}
	p.orgPolicies(ctx)
}

func (p *preflight) credentials(ctx context.Context) bool {
	var accounts []struct{ Account, Status string }
	if err := p.gcJSON(ctx, &accounts, "auth", "list", "--filter=status:ACTIVE"); err != nil || len(accounts) == 0 {
		p.fail("credentials", fmt.Sprintf("gcloud has no active account (%v)", err), "gcloud auth login")
		return false
	}
	p.account = accounts[0].Account
	if _, err := p.gc(ctx, "auth", "application-default", "print-access-token"); err != nil && os.Getenv("GOOGLE_APPLICATION_CREDENTIALS") == "" {
		p.fail("credentials", "no application default credentials, which Terraform uses: "+firstLine(err.Error()),
			"gcloud auth application-default login (or set GOOGLE_APPLICATION_CREDENTIALS to a key file)")
		return false
	}
	p.ok("credentials", "gcloud account %s; application default credentials for Terraform", p.account)
	return true
}

func (p *preflight) project(ctx context.Context) bool {
	var proj struct {
		ProjectID      string `json:"projectId"`
		ProjectNumber  string `json:"projectNumber"`
		LifecycleState string `json:"lifecycleState"`
	}
	if err := p.gcJSON(ctx, &proj, "projects", "describe", p.s.Project); err != nil {
		p.fail("project", fmt.Sprintf("%s cannot be read: %s", p.s.Project, firstLine(err.Error())),
			fmt.Sprintf("check project_id in terraform.tfvars, and that %s has a role on it (gcloud projects list)", p.account))
		return false
	}
	if proj.LifecycleState != "ACTIVE" {
		p.fail("project", fmt.Sprintf("%s is %s", p.s.Project, proj.LifecycleState),
			"use an active project (gcloud projects undelete, or another project_id)")
		return false
	}
	p.ok("project", "%s (number %s) is active", proj.ProjectID, proj.ProjectNumber)
	return true
}

// requiredAPIs are what Terraform turns on (google_project_service) and what preflight
// needs for its own checks.
func (p *preflight) requiredAPIs() []string {
	apis := []string{"compute.googleapis.com", "iam.googleapis.com", "cloudresourcemanager.googleapis.com"}
	if p.s.SSHMode != "metadata" {
		apis = append(apis, "oslogin.googleapis.com")
	}
	if p.s.SSHMode == "iap" {
		apis = append(apis, "iap.googleapis.com")
	}
	return apis
}

// apis reports which APIs are off, and whether Compute Engine is on (the quota and machine
// type checks need it).
func (p *preflight) apis(ctx context.Context) bool {
	var services []struct {
		Config struct{ Name string } `json:"config"`
		State  string                `json:"state"`
	}
	if err := p.gcJSON(ctx, &services, "services", "list", "--enabled", "--project="+p.s.Project); err != nil {
		p.fail("apis", "the enabled APIs cannot be listed: "+firstLine(err.Error()),
			"grant roles/serviceusage.serviceUsageViewer (or serviceUsageAdmin, which Terraform needs to enable them)")
		return false
	}
	enabled := map[string]bool{}
	for _, svc := range services {
		enabled[svc.Config.Name] = svc.State == "ENABLED"
	}
	var off []string
	for _, api := range p.requiredAPIs() {
		if !enabled[api] {
			off = append(off, api)
		}
	}
	if len(off) == 0 {
		p.ok("apis", "%s enabled", strings.Join(p.requiredAPIs(), ", "))
		return true
	}
	p.warn("apis", "%s off: Terraform enables them (google_project_service), which needs serviceusage.services.enable", strings.Join(off, ", "))
	if !enabled["compute.googleapis.com"] {
		p.warn("quotas", "not checked: Compute Engine is off. To check quotas and machine types first: gcloud services enable compute.googleapis.com --project=%s, then run make cluster-preflight again", p.s.Project)
		return false
	}
	return true
}

// permission is one the operator needs, and the predefined role that grants it.
type permission struct{ name, role string }

func (p *preflight) requiredPermissions() []permission {
	perms := []permission{
		{"compute.instances.create", "roles/compute.admin"},
		{"compute.disks.create", "roles/compute.admin"},
		{"compute.networks.create", "roles/compute.admin"},
		{"compute.subnetworks.create", "roles/compute.admin"},
		{"compute.firewalls.create", "roles/compute.admin"},
		{"compute.addresses.create", "roles/compute.admin"},
		{"compute.resourcePolicies.create", "roles/compute.admin"},
		{"compute.snapshots.create", "roles/compute.admin"},
		{"compute.instances.getGuestAttributes", "roles/compute.admin"},
		{"iam.serviceAccounts.create", "roles/iam.serviceAccountAdmin"},
		{"iam.serviceAccounts.actAs", "roles/iam.serviceAccountUser"},
		{"resourcemanager.projects.setIamPolicy", "roles/resourcemanager.projectIamAdmin"},
		{"serviceusage.services.enable", "roles/serviceusage.serviceUsageAdmin"},
	}
	if p.s.SSHMode != "metadata" {
		perms = append(perms, permission{"compute.instances.osAdminLogin", "roles/compute.osAdminLogin"})
	}
	if p.s.SSHMode == "iap" {
		perms = append(perms, permission{"iap.tunnelInstances.accessViaIAP", "roles/iap.tunnelResourceAccessor"})
	}
	return perms
}

// permissions asks Cloud Resource Manager which of the needed permissions the operator holds
// on the project (projects.testIamPermissions), with gcloud's access token.
func (p *preflight) permissions(ctx context.Context) {
	token, err := p.gc(ctx, "auth", "print-access-token")
	if err != nil {
		p.fail("permissions", "no access token: "+firstLine(err.Error()), "gcloud auth login")
		return
	}
	perms := p.requiredPermissions()
	names := make([]string, len(perms))
	for i, perm := range perms {
		names[i] = perm.name
	}
	body, _ := json.Marshal(map[string][]string{"permissions": names})
	url := strings.TrimRight(p.crm, "/") + "/v1/projects/" + p.s.Project + ":testIamPermissions"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		p.fail("permissions", err.Error(), "report this as a bug")
		return
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.fail("permissions", "testIamPermissions: "+err.Error(), "check your network access to "+p.crm)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		p.fail("permissions", fmt.Sprintf("testIamPermissions answered %s: %s", resp.Status, firstLine(string(data))),
			"enable cloudresourcemanager.googleapis.com and check the project id")
		return
	}
	var granted struct{ Permissions []string }
	if err := json.Unmarshal(data, &granted); err != nil {
		p.fail("permissions", "testIamPermissions: unexpected answer: "+err.Error(), "report this as a bug")
		return
	}
	missingRoles := map[string][]string{}
	var roles []string
	for _, perm := range perms {
		if !slices.Contains(granted.Permissions, perm.name) {
			if _, seen := missingRoles[perm.role]; !seen {
				roles = append(roles, perm.role)
			}
			missingRoles[perm.role] = append(missingRoles[perm.role], perm.name)
		}
	}
	if len(roles) == 0 {
		p.ok("permissions", "%s holds all %d permissions the kit uses", p.account, len(perms))
		return
	}
	member := "user:" + p.account
	if strings.HasSuffix(p.account, ".iam.gserviceaccount.com") {
		member = "serviceAccount:" + p.account
	}
	for _, role := range roles {
		p.fail("permissions", fmt.Sprintf("%s lacks %s", p.account, strings.Join(missingRoles[role], ", ")),
			fmt.Sprintf("gcloud projects add-iam-policy-binding %s --member=%s --role=%s", p.s.Project, member, role))
	}
}

type quota struct {
	Metric string  `json:"metric"`
	Limit  float64 `json:"limit"`
	Usage  float64 `json:"usage"`
}

// regions checks every region is up and has room for its node: vCPUs (total and of the
// machine family), addresses and disk space.
func (p *preflight) regions(ctx context.Context) {
	cpus := p.guestCPUs(ctx)
	family := strings.ToUpper(strings.SplitN(p.s.MachineType, "-", 2)[0]) + "_CPUS"
	diskMetric := "SSD_TOTAL_GB"      // pd-balanced, pd-ssd, pd-extreme
	diskGB := float64(p.s.BootDiskGB) // the boot disk is pd-balanced
	dataMetric := diskMetric
	if p.s.DataDiskType == "pd-standard" {
		dataMetric = "DISKS_TOTAL_GB"
	}
	for _, region := range p.s.Regions {
		var r struct {
			Name   string
			Status string
			Quotas []quota
		}
		if err := p.gcJSON(ctx, &r, "compute", "regions", "describe", region, "--project="+p.s.Project); err != nil {
			p.fail("quotas", fmt.Sprintf("%s: %s", region, firstLine(err.Error())), "check the region name in regions")
			continue
		}
		if r.Status != "UP" {
			p.fail("quotas", fmt.Sprintf("%s is %s", region, r.Status), "choose another region")
			continue
		}
		need := map[string]float64{dataMetric: float64(p.s.DataDiskGB)}
		need[diskMetric] += diskGB
		if cpus > 0 {
			need["CPUS"] = float64(cpus)
			need[family] = float64(cpus)
		}
		if p.s.ExternalIP {
			need["IN_USE_ADDRESSES"] = 1
			need["STATIC_ADDRESSES"] = 1
		}
		var short []string
		for _, q := range r.Quotas {
			if n, ok := need[q.Metric]; ok && q.Usage+n > q.Limit {
				short = append(short, fmt.Sprintf("%s (limit %g, in use %g, the node needs %g)", q.Metric, q.Limit, q.Usage, n))
			}
		}
		if len(short) > 0 {
			p.fail("quotas", region+": not enough "+strings.Join(short, ", "),
				fmt.Sprintf("request more in the console (IAM & Admin > Quotas, filter %s) or free some; gcloud compute regions describe %s shows them", region, region))
			continue
		}
		p.ok("quotas", "%s has room for %d vCPUs, the addresses and %gGB of disk", region, cpus, float64(p.s.DataDiskGB)+diskGB)
	}
}

// guestCPUs is the vCPU count of the machine type (from the first zone that has it).
func (p *preflight) guestCPUs(ctx context.Context) int {
	for _, r := range p.s.Regions {
		var mt struct {
			GuestCpus int `json:"guestCpus"`
		}
		if err := p.gcJSON(ctx, &mt, "compute", "machine-types", "describe", p.s.MachineType, "--zone="+p.s.Zones[r], "--project="+p.s.Project); err == nil {
			return mt.GuestCpus
		}
	}
	return 0
}

func (p *preflight) machineTypes(ctx context.Context) {
	var missing []string
	for _, r := range p.s.Regions {
		zone := p.s.Zones[r]
		var mt struct {
			Name      string `json:"name"`
			GuestCpus int    `json:"guestCpus"`
		}
		if err := p.gcJSON(ctx, &mt, "compute", "machine-types", "describe", p.s.MachineType, "--zone="+zone, "--project="+p.s.Project); err != nil {
			missing = append(missing, zone)
		}
	}
	if len(missing) > 0 {
		p.fail("machine type", fmt.Sprintf("%s is not offered in %s", p.s.MachineType, strings.Join(missing, ", ")),
			fmt.Sprintf("pick another zone for those regions in zones (gcloud compute machine-types list --filter=name=%s), or another machine_type", p.s.MachineType))
		return
	}
	p.ok("machine type", "%s is offered in every zone (%d)", p.s.MachineType, len(p.s.Regions))
}

// orgPolicy is the effective policy of a constraint, as gcloud prints it.
type orgPolicy struct {
	BooleanPolicy *struct {
		Enforced bool `json:"enforced"`
	} `json:"booleanPolicy"`
	ListPolicy *struct {
		AllValues     string   `json:"allValues"`
		AllowedValues []string `json:"allowedValues"`
		DeniedValues  []string `json:"deniedValues"`
	} `json:"listPolicy"`
}

func (p *preflight) policy(ctx context.Context, constraint string) (orgPolicy, error) {
	var pol orgPolicy
	err := p.gcJSON(ctx, &pol, "resource-manager", "org-policies", "describe", constraint, "--project="+p.s.Project, "--effective")
	return pol, err
}

func (p *preflight) orgPolicies(ctx context.Context) {
	if pol, err := p.policy(ctx, "constraints/compute.vmExternalIpAccess"); err != nil {
		p.warn("org policy", "compute.vmExternalIpAccess not readable (%s); assuming it allows external addresses", firstLine(err.Error()))
	} else if lp := pol.ListPolicy; p.s.ExternalIP && lp != nil && (lp.AllValues == "DENY" || len(lp.AllowedValues) > 0) {
		p.fail("org policy", "constraints/compute.vmExternalIpAccess forbids external addresses on these VMs (assign_external_ip is true)",
			"set assign_external_ip = false and ssh_mode = \"iap\" in terraform.tfvars (clients then reach the nodes from inside the VPC or over a VPN)")
	} else {
		p.ok("org policy", "compute.vmExternalIpAccess allows what the kit creates")
	}

	if pol, err := p.policy(ctx, "constraints/compute.requireOsLogin"); err != nil {
		p.warn("org policy", "compute.requireOsLogin not readable (%s)", firstLine(err.Error()))
	} else if pol.BooleanPolicy != nil && pol.BooleanPolicy.Enforced && p.s.SSHMode == "metadata" {
		p.fail("org policy", "constraints/compute.requireOsLogin is enforced: ssh keys in instance metadata will be ignored",
			"set ssh_mode = \"oslogin\" (or \"iap\") in terraform.tfvars and grant yourself roles/compute.osAdminLogin")
	} else {
		p.ok("org policy", "compute.requireOsLogin fits ssh_mode %s", p.s.SSHMode)
	}

	pol, err := p.policy(ctx, "constraints/gcp.resourceLocations")
	if err != nil {
		p.warn("org policy", "gcp.resourceLocations not readable (%s)", firstLine(err.Error()))
		return
	}
	var denied, unsure []string
	for _, r := range p.s.Regions {
		switch locationAllowed(pol, r) {
		case denyLocation:
			denied = append(denied, r)
		case unknownLocation:
			unsure = append(unsure, r)
		}
	}
	if len(denied) > 0 {
		p.fail("org policy", "constraints/gcp.resourceLocations does not allow "+strings.Join(denied, ", "),
			"choose regions the policy allows (gcloud resource-manager org-policies describe constraints/gcp.resourceLocations --project="+p.s.Project+" --effective), or ask your organisation's admins to allow them")
		return
	}
	if len(unsure) > 0 {
		p.warn("org policy", "gcp.resourceLocations uses value groups preflight cannot expand; check %s by hand", strings.Join(unsure, ", "))
		return
	}
	p.ok("org policy", "gcp.resourceLocations allows every region")
}

type locationVerdict int

const (
	allowLocation locationVerdict = iota
	denyLocation
	unknownLocation
)

// locationGroups are the value groups of gcp.resourceLocations whose members are plain
// region name prefixes.
var locationGroups = map[string]string{
	"in:us-locations": "us-", "in:eu-locations": "europe-", "in:europe-locations": "europe-", "in:asia-locations": "asia-",
	"in:northamerica-locations": "northamerica-", "in:southamerica-locations": "southamerica-", "in:australia-locations": "australia-",
}

// matches tells whether one policy value names region: the region, its zones, its own
// group (in:REGION-locations), or a group listed above. ok is false for a group it cannot
// expand.
func matches(value, region string) (match, ok bool) {
	switch {
	case value == region, value == "in:"+region+"-locations", strings.HasPrefix(value, "zones/"+region+"-"),
		value == "regions/"+region:
		return true, true
	case strings.HasPrefix(value, "in:"):
		prefix, known := locationGroups[value]
		if known {
			return strings.HasPrefix(region, prefix), true
		}
		if strings.HasSuffix(value, "-locations") && strings.Count(value, "-") >= 2 {
			return false, true // another region's own group
		}
		return false, false
	}
	return false, true
}

func locationAllowed(pol orgPolicy, region string) locationVerdict {
	lp := pol.ListPolicy
	if lp == nil {
		return allowLocation
	}
	if lp.AllValues == "DENY" {
		return denyLocation
	}
	for _, v := range lp.DeniedValues {
		if m, _ := matches(v, region); m {
			return denyLocation
		}
	}
	if len(lp.AllowedValues) == 0 {
		return allowLocation
	}
	sure := true
	for _, v := range lp.AllowedValues {
		m, ok := matches(v, region)
		if m {
			return allowLocation
		}
		sure = sure && ok
	}
	if !sure {
		return unknownLocation
	}
	return denyLocation
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
