package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/georaft/georaft/deploy/inventory"
)

const terraformDir = "../terraform"

// The five regions the kit deploys to by default, one node each.
var defaultRegions = []string{"us-central1", "us-east1", "us-west1", "europe-west1", "asia-east1"}

// tfModule is terraform/ parsed: every top-level block of every .tf file.
type tfModule struct {
	paths  []string
	blocks []*hclsyntax.Block
}

func loadTerraform(t *testing.T) tfModule {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(terraformDir, "*.tf"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no .tf files in %s: %v", terraformDir, err)
	}
	m := tfModule{paths: paths}
	parser := hclparse.NewParser()
	for _, p := range paths {
		f, diags := parser.ParseHCLFile(p)
		if diags.HasErrors() {
			t.Fatalf("parse %s: %s", p, diags.Error())
		}
		m.blocks = append(m.blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	return m
}

// find returns the blocks of a type whose labels start with labels.
func (m tfModule) find(typ string, labels ...string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, b := range m.blocks {
		if b.Type == typ && len(b.Labels) >= len(labels) && slices.Equal(b.Labels[:len(labels)], labels) {
			out = append(out, b)
		}
	}
	return out
}

func (m tfModule) resource(t *testing.T, typ, name string) *hclsyntax.Block {
	t.Helper()
	bs := m.find("resource", typ, name)
	if len(bs) != 1 {
		t.Fatalf("want one resource %s.%s, found %d", typ, name, len(bs))
	}
	return bs[0]
}

// variableDefaults evaluates every variable's default, converted to its declared type;
// overrides stand in for what an operator passes (and for variables without a default).
func (m tfModule) variableDefaults(t *testing.T, overrides map[string]cty.Value) map[string]cty.Value {
	t.Helper()
	vars := map[string]cty.Value{}
	for _, b := range m.find("variable") {
		name := b.Labels[0]
		if v, ok := overrides[name]; ok {
			vars[name] = v
			continue
		}
		def, ok := b.Body.Attributes["default"]
		if !ok {
			continue
		}
		v, diags := def.Expr.Value(nil)
		if diags.HasErrors() {
			t.Fatalf("variable %s: default does not evaluate: %s", name, diags.Error())
		}
		if typ, ok := b.Body.Attributes["type"]; ok {
			ty, diags := typeexpr.TypeConstraint(typ.Expr)
			if diags.HasErrors() {
				t.Fatalf("variable %s: bad type: %s", name, diags.Error())
			}
			if v, err := convert.Convert(v, ty); err != nil {
				t.Fatalf("variable %s: default does not fit its type: %v", name, err)
			} else {
				vars[name] = v
			}
		} else {
			vars[name] = v
		}
	}
	return vars
}

// terraformFunctions are the Terraform functions the evaluated expressions use.
var terraformFunctions = map[string]function.Function{
	"concat":     stdlib.ConcatFunc,
	"contains":   stdlib.ContainsFunc,
	"distinct":   stdlib.DistinctFunc,
	"format":     stdlib.FormatFunc,
	"join":       stdlib.JoinFunc,
	"keys":       stdlib.KeysFunc,
	"length":     stdlib.LengthFunc,
	"lookup":     stdlib.LookupFunc,
	"lower":      stdlib.LowerFunc,
	"merge":      stdlib.MergeFunc,
	"setproduct": stdlib.SetProductFunc,
	"tonumber":   stdlib.MakeToFunc(cty.Number),
	"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
	"tostring":   stdlib.MakeToFunc(cty.String),
	"trimspace":  stdlib.TrimSpaceFunc,
	"values":     stdlib.ValuesFunc,
}

// evalContext has var.* from vars and every local that evaluates from them (locals may use
// each other, so they are evaluated in rounds until none is left or none makes progress).
func (m tfModule) evalContext(t *testing.T, vars map[string]cty.Value) *hcl.EvalContext {
	t.Helper()
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars), "local": cty.EmptyObjectVal},
		Functions: terraformFunctions,
	}
	pending := map[string]hcl.Expression{}
	for _, b := range m.find("locals") {
		for name, attr := range b.Body.Attributes {
			pending[name] = attr.Expr
		}
	}
	locals := map[string]cty.Value{}
	for progress := true; progress && len(pending) > 0; {
		progress = false
		for name, expr := range pending {
			v, diags := expr.Value(ctx)
			if diags.HasErrors() {
				continue
			}
			locals[name] = v
			delete(pending, name)
			progress = true
			ctx.Variables["local"] = cty.ObjectVal(locals)
		}
	}
	for name := range pending {
		t.Logf("local.%s does not evaluate from defaults alone; expressions using it are not checked", name)
	}
	return ctx
}

func eval(t *testing.T, ctx *hcl.EvalContext, b *hclsyntax.Block, attr string) cty.Value {
	t.Helper()
	a, ok := b.Body.Attributes[attr]
	if !ok {
		t.Fatalf("%s %s has no %s", b.Type, strings.Join(b.Labels, "."), attr)
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s %s: %s does not evaluate: %s", b.Type, strings.Join(b.Labels, "."), attr, diags.Error())
	}
	return v
}

func withEach(ctx *hcl.EvalContext, key string, value cty.Value) *hcl.EvalContext {
	child := ctx.NewChild()
	child.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(key), "value": value})}
	return child
}

func stringsOf(t *testing.T, v cty.Value) []string {
	t.Helper()
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		s, err := convert.Convert(e, cty.String)
		if err != nil {
			t.Fatalf("%#v is not a list of strings: %v", v, err)
		}
		out = append(out, s.AsString())
	}
	return out
}

// Required variables without a default, as an operator would pass them.
var requiredVars = map[string]cty.Value{
	"project_id":     cty.StringVal("georaft-test"),
	"ssh_public_key": cty.StringVal("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITest test@example"),
}

func TestTerraformVariablesAreTypedAndDescribed(t *testing.T) {
	m := loadTerraform(t)
	vars := m.find("variable")
	if len(vars) == 0 {
		t.Fatal("no variables")
	}
	validated := map[string]bool{}
	for _, b := range vars {
		name := b.Labels[0]
		if _, ok := b.Body.Attributes["type"]; !ok {
			t.Errorf("variable %s has no type", name)
		}
		desc, ok := b.Body.Attributes["description"]
		if !ok {
			t.Errorf("variable %s has no description", name)
		} else if v, diags := desc.Expr.Value(nil); diags.HasErrors() || v.AsString() == "" {
			t.Errorf("variable %s has an empty description", name)
		}
		for _, inner := range b.Body.Blocks {
			if inner.Type == "validation" {
				validated[name] = true
			}
		}
	}
	// Every variable whose value can be wrong checks it at plan time.
	for _, name := range []string{"project_id", "regions", "zones", "admin_cidrs", "client_cidrs", "peer_port", "client_port",
		"metrics_port", "labels", "data_disk_type", "data_disk_size_gb", "ssh_public_key", "ssh_user", "subnet_cidr", "cluster_id"} {
		if !validated[name] {
			t.Errorf("variable %s has no validation block", name)
		}
	}

	defaults := m.variableDefaults(t, nil)
	regions := stringsOf(t, defaults["regions"])
	if !slices.Equal(regions, defaultRegions) {
		t.Errorf("default regions = %v, want %v", regions, defaultRegions)
	}
	for _, name := range []string{"admin_cidrs", "client_cidrs"} {
		if got := stringsOf(t, defaults[name]); len(got) != 0 {
			t.Errorf("%s defaults to %v: nothing may be open unless the operator lists it", name, got)
		}
	}
}

func TestTerraformFiveNodesInFiveRegions(t *testing.T) {
	m := loadTerraform(t)
	ctx := m.evalContext(t, m.variableDefaults(t, requiredVars))

	inst := m.resource(t, "google_compute_instance", "node")
	forEach := eval(t, ctx, inst, "for_each")
	if !forEach.CanIterateElements() || forEach.LengthInt() != 5 {
		t.Fatalf("instances for_each = %#v, want 5 elements", forEach)
	}
	var regions, names []string
	zoneOf := map[string]string{}
	eachValue := map[string]cty.Value{}
	for it := forEach.ElementIterator(); it.Next(); {
		k, v := it.Element()
		region := k.AsString()
		each := withEach(ctx, region, v)
		zone := eval(t, each, inst, "zone").AsString()
		if !strings.HasPrefix(zone, region+"-") {
			t.Errorf("instance in %s is placed in zone %s", region, zone)
		}
		zoneOf[region] = zone
		eachValue[region] = v
		regions = append(regions, region)
		names = append(names, eval(t, each, inst, "name").AsString())
	}
	slices.Sort(regions)
	want := slices.Sorted(slices.Values(defaultRegions))
	if !slices.Equal(regions, want) {
		t.Errorf("instances are in %v, want one in each of %v", regions, want)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != 5 {
		t.Errorf("instance names are not distinct: %v", names)
	}

	// Everything per node follows the same for_each, and a disk sits in its instance's zone
	// (GCE attaches only zonal disks of the same zone).
	for _, r := range []struct{ typ, name string }{
		{"google_compute_disk", "data"}, {"google_compute_subnetwork", "node"}, {"google_service_account", "node"},
		{"google_compute_address", "node_internal"},
	} {
		b := m.resource(t, r.typ, r.name)
		fe := eval(t, ctx, b, "for_each")
		if !fe.RawEquals(forEach) {
			t.Errorf("%s.%s for_each = %#v, want the instances' %#v", r.typ, r.name, fe, forEach)
		}
	}
	disk := m.resource(t, "google_compute_disk", "data")
	for region, zone := range zoneOf {
		if got := eval(t, withEach(ctx, region, eachValue[region]), disk, "zone").AsString(); got != zone {
			t.Errorf("data disk of %s is in %s, its instance in %s", region, got, zone)
		}
	}

	// Hardening: shielded VM, a service account with logging and monitoring scopes only, the
	// data disk attached.
	blocks := map[string]*hclsyntax.Block{}
	for _, b := range inst.Body.Blocks {
		blocks[b.Type] = b
	}
	for _, typ := range []string{"boot_disk", "attached_disk", "network_interface", "service_account", "shielded_instance_config"} {
		if blocks[typ] == nil {
			t.Errorf("instance has no %s block", typ)
		}
	}
	if sh := blocks["shielded_instance_config"]; sh != nil {
		for _, attr := range []string{"enable_secure_boot", "enable_vtpm", "enable_integrity_monitoring"} {
			if v := eval(t, ctx, sh, attr); !v.True() {
				t.Errorf("shielded_instance_config.%s is not true", attr)
			}
		}
	}
	if sa := blocks["service_account"]; sa != nil {
		scopes := stringsOf(t, eval(t, ctx, sa, "scopes"))
		slices.Sort(scopes)
		want := []string{"https://www.googleapis.com/auth/logging.write", "https://www.googleapis.com/auth/monitoring.write"}
		if !slices.Equal(scopes, want) {
			t.Errorf("instance scopes = %v, want only %v", scopes, want)
		}
	}
	for _, attr := range []string{"labels", "metadata"} {
		if _, ok := inst.Body.Attributes[attr]; !ok {
			t.Errorf("instance has no %s", attr)
		}
	}
	// Host maintenance stops a node rather than live-migrating it (docs/tuning.md).
	if sch := blocks["scheduling"]; sch == nil {
		t.Error("instance has no scheduling block")
	} else {
		if v := eval(t, ctx, sch, "on_host_maintenance"); v.AsString() != "TERMINATE" {
			t.Errorf("on_host_maintenance = %s, want TERMINATE", v.AsString())
		}
		if v := eval(t, ctx, sch, "automatic_restart"); !v.True() {
			t.Error("automatic_restart is not true: a node stopped for maintenance would stay down")
		}
	}
	// Both metadata variants publish the host keys (guest attributes) that the inventory pins.
	if md, ok := inst.Body.Attributes["metadata"]; ok {
		cond, ok := md.Expr.(*hclsyntax.ConditionalExpr)
		if !ok {
			t.Errorf("instance metadata is %T, want the oslogin/metadata-key conditional", md.Expr)
		} else {
			for _, branch := range []hclsyntax.Expression{cond.TrueResult, cond.FalseResult} {
				v, diags := branch.Value(ctx)
				if diags.HasErrors() {
					t.Fatalf("metadata: %s", diags.Error())
				}
				if !v.Type().HasAttribute("enable-guest-attributes") || v.GetAttr("enable-guest-attributes").AsString() != "TRUE" {
					t.Errorf("metadata branch %s does not enable guest attributes", branch.Range())
				}
			}
		}
	}
	// A machine family with dedicated vCPUs by default (docs/tuning.md).
	if mt := m.variableDefaults(t, requiredVars)["machine_type"].AsString(); strings.HasPrefix(mt, "e2-") || strings.HasPrefix(mt, "f1-") || strings.HasPrefix(mt, "g1-") {
		t.Errorf("default machine_type %s has shared or dynamically scheduled vCPUs", mt)
	}
	// A reserved internal address in the node's own subnet, which the instance takes: the
	// peer addresses and the certificates that name it survive a rebuilt instance.
	internal := m.resource(t, "google_compute_address", "node_internal")
	if v := eval(t, ctx, internal, "address_type"); v.AsString() != "INTERNAL" {
		t.Errorf("node_internal address_type = %s, want INTERNAL", v.AsString())
	}
	if refs := references(internal.Body.Attributes["subnetwork"].Expr); !slices.Equal(refs, []string{"google_compute_subnetwork.node", "each.key"}) {
		t.Errorf("node_internal subnetwork refers to %v, want the node's own subnet", refs)
	}
	if ni := blocks["network_interface"]; ni == nil || ni.Body.Attributes["network_ip"] == nil {
		t.Error("the instance's network_interface sets no network_ip")
	} else if refs := references(ni.Body.Attributes["network_ip"].Expr); !slices.Equal(refs, []string{"google_compute_address.node_internal", "each.key"}) {
		t.Errorf("network_ip refers to %v, want the node's reserved internal address", refs)
	}
	net := m.resource(t, "google_compute_network", "cluster")
	if v := eval(t, ctx, net, "auto_create_subnetworks"); v.True() {
		t.Error("the VPC auto-creates subnetworks")
	}
}

// references lists what an expression refers to, as root.attribute, in source order.
func references(expr hcl.Expression) []string {
	var out []string
	for _, tr := range expr.Variables() {
		ref := tr.RootName()
		if len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				ref += "." + a.Name
			}
		}
		out = append(out, ref)
	}
	return out
}

// rootVars lists the var.NAME roots an expression refers to.
func rootVars(expr hcl.Expression) []string {
	var out []string
	for _, tr := range expr.Variables() {
		if tr.RootName() == "var" && len(tr) > 1 {
			if a, ok := tr[1].(hcl.TraverseAttr); ok {
				out = append(out, a.Name)
			}
		}
	}
	return out
}

func TestTerraformFirewallOpensNothingByDefault(t *testing.T) {
	m := loadTerraform(t)
	openWorld := []string{"0.0.0.0/0", "::/0"}

	// No literal "anywhere" in any resource: only an operator-set variable can open to it.
	for _, b := range m.find("resource") {
		hclsyntax.VisitAll(b.Body, func(n hclsyntax.Node) hcl.Diagnostics {
			if lit, ok := n.(*hclsyntax.LiteralValueExpr); ok && lit.Val.Type() == cty.String {
				for _, w := range openWorld {
					if strings.Contains(lit.Val.AsString(), w) {
						t.Errorf("%s has the literal %s at %s", strings.Join(b.Labels, "."), w, lit.SrcRange)
					}
				}
			}
			if tmpl, ok := n.(*hclsyntax.TemplateExpr); ok && tmpl.IsStringLiteral() {
				v, _ := tmpl.Value(nil)
				for _, w := range openWorld {
					if strings.Contains(v.AsString(), w) {
						t.Errorf("%s has the literal %s at %s", strings.Join(b.Labels, "."), w, tmpl.SrcRange)
					}
				}
			}
			return nil
		})
	}

	operatorSet := m.variableDefaults(t, requiredVars)
	operatorSet["admin_cidrs"] = cty.ListVal([]cty.Value{cty.StringVal("203.0.113.0/24")})
	operatorSet["client_cidrs"] = cty.ListVal([]cty.Value{cty.StringVal("198.51.100.0/24")})
	operatorSet["monitoring_cidrs"] = cty.ListVal([]cty.Value{cty.StringVal("10.42.250.0/24")})
	iapVars := m.variableDefaults(t, requiredVars)
	iapVars["ssh_mode"] = cty.StringVal("iap")
	withIAP := m.evalContext(t, iapVars)
	defaults := m.evalContext(t, m.variableDefaults(t, requiredVars))
	withLists := m.evalContext(t, operatorSet)

	rules := m.find("resource", "google_compute_firewall")
	if len(rules) == 0 {
		t.Fatal("no firewall rules")
	}
	peerRules := 0
	for _, fw := range rules {
		name := fw.Labels[1]
		attrs := fw.Body.Attributes
		ranges, hasRanges := attrs["source_ranges"]
		_, hasTags := attrs["source_tags"]
		_, hasSAs := attrs["source_service_accounts"]
		// Nodes are selected by service account: a network tag is a label anyone who may
		// edit an instance can add. A rule without a target applies to every instance.
		for _, tagAttr := range []string{"source_tags", "target_tags"} {
			if _, ok := attrs[tagAttr]; ok {
				t.Errorf("firewall %s selects by %s; select the nodes by service account", name, tagAttr)
			}
		}
		if target, ok := attrs["target_service_accounts"]; !ok || !slices.Contains(references(target.Expr), "google_service_account.node") {
			t.Errorf("firewall %s does not target the nodes' service accounts", name)
		}
		// ssh is logged.
		for _, allow := range fw.Body.Blocks {
			if allow.Type == "allow" && allow.Body.Attributes["ports"] != nil {
				if v, diags := allow.Body.Attributes["ports"].Expr.Value(nil); !diags.HasErrors() && v.IsWhollyKnown() && slices.Contains(stringsOf(t, v), "22") {
					logged := false
					for _, b := range fw.Body.Blocks {
						logged = logged || b.Type == "log_config"
					}
					if !logged {
						t.Errorf("firewall %s opens ssh without log_config", name)
					}
				}
			}
		}
		if dir, ok := attrs["direction"]; ok {
			if v, _ := dir.Expr.Value(nil); v.Type() == cty.String && v.AsString() == "EGRESS" {
				continue
			}
		}
		// GCP treats an ingress rule without any source as 0.0.0.0/0.
		if !hasRanges && !hasTags && !hasSAs {
			t.Errorf("firewall %s has no source at all: GCP would apply it to 0.0.0.0/0", name)
		}

		opensPeer := false
		for _, allow := range fw.Body.Blocks {
			if allow.Type == "allow" || allow.Type == "deny" {
				if ports, ok := allow.Body.Attributes["ports"]; ok && slices.Contains(rootVars(ports.Expr), "peer_port") {
					opensPeer = allow.Type == "allow"
				}
			}
		}
		if opensPeer {
			peerRules++
			src, ok := attrs["source_service_accounts"]
			if hasRanges || !ok || !slices.Contains(references(src.Expr), "google_service_account.node") {
				t.Errorf("firewall %s opens the peer port to other sources; it must admit the nodes' service accounts only", name)
			}
		}

		if !hasRanges {
			continue
		}
		// IAP's documented range, in a rule that exists only with ssh_mode iap.
		if refs := references(ranges.Expr); slices.Equal(refs, []string{"local.iap_source_ranges"}) {
			if got := stringsOf(t, eval(t, defaults, fw, "source_ranges")); !slices.Equal(got, []string{"35.235.240.0/20"}) {
				t.Errorf("firewall %s: IAP source ranges %v, want Google's 35.235.240.0/20", name, got)
			}
			if n := eval(t, defaults, fw, "count"); !n.RawEquals(cty.NumberIntVal(0)) {
				t.Errorf("firewall %s exists without ssh_mode iap", name)
			}
			if n := eval(t, withIAP, fw, "count"); !n.RawEquals(cty.NumberIntVal(1)) {
				t.Errorf("firewall %s does not exist with ssh_mode iap", name)
			}
			continue
		}
		vars := rootVars(ranges.Expr)
		if len(vars) == 0 {
			t.Errorf("firewall %s has fixed source_ranges; they must come from an operator variable", name)
			continue
		}
		// A rule from an operator list must not exist while the list is empty (it would
		// fall back to 0.0.0.0/0).
		count, ok := attrs["count"]
		if !ok || !slices.Equal(rootVars(count.Expr), vars) {
			t.Errorf("firewall %s takes source_ranges from %v but has no count guarding against an empty list", name, vars)
			continue
		}
		if n := eval(t, defaults, fw, "count"); !n.RawEquals(cty.NumberIntVal(0)) {
			t.Errorf("firewall %s exists with default variables (count %#v): nothing may be open by default", name, n)
		}
		if n := eval(t, withLists, fw, "count"); !n.RawEquals(cty.NumberIntVal(1)) {
			t.Errorf("firewall %s does not exist once the operator lists sources (count %#v)", name, n)
		}
		for _, w := range openWorld {
			if slices.Contains(stringsOf(t, eval(t, withLists, fw, "source_ranges")), w) {
				t.Errorf("firewall %s adds %s to the operator's list", name, w)
			}
		}
	}
	if peerRules != 1 {
		t.Errorf("%d firewall rules open the peer port, want exactly 1", peerRules)
	}
}

func TestTerraformOutputsFeedTheInventory(t *testing.T) {
	m := loadTerraform(t)
	outputs := map[string]*hclsyntax.Block{}
	for _, b := range m.find("output") {
		outputs[b.Labels[0]] = b
		if _, ok := b.Body.Attributes["description"]; !ok {
			t.Errorf("output %s has no description", b.Labels[0])
		}
	}
	for _, name := range inventory.RequiredOutputs {
		if outputs[name] == nil {
			t.Errorf("terraform/outputs.tf lacks output %q, which deploy/inventory reads", name)
		}
	}
	nodes := outputs["nodes"]
	if nodes == nil {
		t.Fatal("no nodes output")
	}
	forExpr, ok := nodes.Body.Attributes["value"].Expr.(*hclsyntax.ForExpr)
	if !ok || forExpr.KeyExpr == nil {
		t.Fatalf("output nodes must be a map built with a for expression, got %T", nodes.Body.Attributes["value"].Expr)
	}
	obj, ok := forExpr.ValExpr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("output nodes: each element must be an object, got %T", forExpr.ValExpr)
	}
	var fields []string
	for _, item := range obj.Items {
		fields = append(fields, hcl.ExprAsKeyword(item.KeyExpr))
	}
	for _, f := range inventory.RequiredNodeFields {
		if !slices.Contains(fields, f) {
			t.Errorf("output nodes elements lack %q (they have %v), which deploy/inventory reads", f, fields)
		}
	}
}

func TestTerraformPinsVersions(t *testing.T) {
	m := loadTerraform(t)
	tf := m.find("terraform")
	if len(tf) != 1 {
		t.Fatalf("want one terraform block, found %d", len(tf))
	}
	if _, ok := tf[0].Body.Attributes["required_version"]; !ok {
		t.Error("terraform block has no required_version")
	}
	var google cty.Value
	for _, b := range tf[0].Body.Blocks {
		if b.Type == "required_providers" {
			if a, ok := b.Body.Attributes["google"]; ok {
				google, _ = a.Expr.Value(nil)
			}
		}
	}
	if google == cty.NilVal || !google.Type().IsObjectType() {
		t.Fatal("required_providers does not pin google")
	}
	if src := google.GetAttr("source").AsString(); src != "hashicorp/google" {
		t.Errorf("google provider source = %s", src)
	}
	if !google.Type().HasAttribute("version") || google.GetAttr("version").AsString() == "" {
		t.Error("google provider version is not pinned")
	}
}

// terraform fmt is hclwrite.Format; the files must be as it leaves them.
func TestTerraformFormatted(t *testing.T) {
	m := loadTerraform(t)
	for _, p := range m.paths {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if formatted := hclwrite.Format(src); !bytes.Equal(formatted, src) {
			t.Errorf("%s is not formatted (run terraform fmt, or gofmt-like hclwrite.Format)", p)
		}
	}
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Log("terraform not on PATH: skipping `terraform fmt -check` (hclwrite.Format checked above)")
		return
	}
	cmd := exec.Command(bin, "fmt", "-check", "-diff", ".")
	cmd.Dir = terraformDir
	cmd.Env = terraformEnv(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("terraform fmt -check: %v\n%s", err, out)
	}
}

// terraformEnv keeps terraform offline and quiet: no update check, no user CLI config.
func terraformEnv(t *testing.T) []string {
	cfg := filepath.Join(t.TempDir(), "terraformrc")
	if err := os.WriteFile(cfg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0", "TF_CLI_CONFIG_FILE="+cfg)
}

// With a real terraform, run the variables' validation rules and the locals: a module of
// variables.tf plus the locals needs no provider, so it plans offline.
func TestTerraformVariableValidation(t *testing.T) {
	bin, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform not on PATH: variable validation rules are checked only by the HCL tests above")
	}
	dir := t.TempDir()
	vars, err := os.ReadFile(filepath.Join(terraformDir, "variables.tf"))
	if err != nil {
		t.Fatal(err)
	}
	mainSrc, err := os.ReadFile(filepath.Join(terraformDir, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	mainFile, diags := hclwrite.ParseConfig(mainSrc, "main.tf", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	probe := hclwrite.NewEmptyFile()
	for _, b := range mainFile.Body().Blocks() {
		if b.Type() == "locals" {
			probe.Body().AppendBlock(b)
		}
	}
	probe.Body().AppendUnstructuredTokens(hclwrite.TokensForIdentifier("\n"))
	extra := `
output "zones" { value = local.zones }
output "names" { value = local.names }
output "subnets" { value = { for r, id in local.node_slots : r => cidrsubnet(var.subnet_cidr, 8, id - 1) } }
`
	if err := os.WriteFile(filepath.Join(dir, "variables.tf"), vars, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "probe.tf"), append(probe.Bytes(), extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	env := terraformEnv(t)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("init", "-input=false", "-no-color"); err != nil {
		t.Fatalf("terraform init of the variables probe: %v\n%s", err, out)
	}
	base := []string{"plan", "-input=false", "-no-color", "-lock=false",
		"-var", "project_id=georaft-test", "-var", "ssh_public_key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 test@example"}

	out, err := run(base...)
	if err != nil {
		t.Fatalf("plan with defaults fails: %v\n%s", err, out)
	}
	for _, want := range []string{`us-central1  = "us-central1-b"`, `asia-east1   = "georaft-5"`, `europe-west1 = "10.42.3.0/24"`} {
		if !strings.Contains(out, want) {
			t.Errorf("plan with defaults lacks %q:\n%s", want, out)
		}
	}

	// Terraform reports every failed validation of a plan, so one plan checks many
	// variables; each variable appears once per plan.
	for _, plan := range []map[string]struct{ value, want string }{
		{
			"regions":        {`["us-east1","us-east1","asia-east1"]`, "regions must be distinct"},
			"zones":          {`{"us-east1"="europe-west1-b"}`, "each zone must lie in the region"},
			"admin_cidrs":    {`["10.0.0.0/33"]`, "admin_cidrs must be CIDR blocks"},
			"client_cidrs":   {`["office"]`, "client_cidrs must be CIDR blocks"},
			"peer_port":      {"80", "peer_port must be an integer in 1024-65535"},
			"project_id":     {"X", "project_id must be a Google Cloud project id"},
			"ssh_public_key": {"hunter2", "ssh_public_key must be one OpenSSH public key"},
			"data_disk_type": {"floppy", "data_disk_type must be one of"},
			"subnet_cidr":    {"10.0.0.0/24", "subnet_cidr must be an IPv4 CIDR"},
			"labels":         {`{"App"="x"}`, "label keys must start with a lowercase letter"},
		},
		{
			"regions":    {`["us-east1","us-west1"]`, "odd number of regions"},
			"cluster_id": {"Prod!", "cluster_id must be lowercase"},
		},
	} {
		args := slices.Clone(base)
		for name, c := range plan {
			args = append(args, "-var", name+"="+c.value)
		}
		out, err := run(args...)
		if err == nil {
			t.Errorf("terraform plan accepted %v", args[len(base):])
			continue
		}
		// terraform wraps long messages; compare with whitespace collapsed.
		flat := strings.Join(strings.Fields(out), " ")
		for name, c := range plan {
			if !strings.Contains(flat, c.want) {
				t.Errorf("%s=%s: want %q from terraform plan, got\n%s", name, c.value, c.want, out)
			}
		}
	}
}

// A fresh project has Compute Engine and IAM off: Terraform turns on what the kit uses, and
// never turns it off again (other work in the project may depend on it).
func TestTerraformEnablesItsAPIs(t *testing.T) {
	m := loadTerraform(t)
	api := m.resource(t, "google_project_service", "api")
	if v := eval(t, nil, api, "disable_on_destroy"); v.True() {
		t.Error("google_project_service.api disables the APIs on destroy")
	}
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"metadata", []string{"cloudresourcemanager.googleapis.com", "compute.googleapis.com", "iam.googleapis.com"}},
		{"iap", []string{"cloudresourcemanager.googleapis.com", "compute.googleapis.com", "iam.googleapis.com",
			"iap.googleapis.com", "oslogin.googleapis.com"}},
	} {
		vars := m.variableDefaults(t, requiredVars)
		vars["ssh_mode"] = cty.StringVal(tc.mode)
		got := stringsOf(t, eval(t, m.evalContext(t, vars), api, "for_each"))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ssh_mode %s enables %v, want %v", tc.mode, got, tc.want)
		}
	}
	// What a fresh project needs first depends on the APIs.
	for _, r := range [][2]string{{"google_compute_network", "cluster"}, {"google_service_account", "node"}} {
		b := m.resource(t, r[0], r[1])
		if dep, ok := b.Body.Attributes["depends_on"]; !ok || !slices.Contains(references(dep.Expr), "google_project_service.api") {
			t.Errorf("%s.%s does not depend on google_project_service.api", r[0], r[1])
		}
	}
}

// Data disks: never destroyed by Terraform, snapshotted daily, and replaced one region at a
// time only, by raising that region's generation; a new disk type does not touch the
// existing disks.
func TestTerraformDataDisksAreNeverReplacedTogether(t *testing.T) {
	m := loadTerraform(t)
	disk := m.resource(t, "google_compute_disk", "data")
	var lifecycle *hclsyntax.Block
	for _, b := range disk.Body.Blocks {
		if b.Type == "lifecycle" {
			lifecycle = b
		}
	}
	if lifecycle == nil {
		t.Fatal("google_compute_disk.data has no lifecycle block")
	}
	if v := eval(t, nil, lifecycle, "prevent_destroy"); !v.True() {
		t.Error("data disks lack prevent_destroy")
	}
	ignore, ok := lifecycle.Body.Attributes["ignore_changes"]
	if !ok || !slices.Contains(references(ignore.Expr), "type") {
		t.Error("data disks do not ignore changes of type: a new data_disk_type would replace all five at once")
	}
	if refs := references(disk.Body.Attributes["resource_policies"].Expr); !slices.Contains(refs, "google_compute_resource_policy.data_snapshots") {
		t.Errorf("data disks are not attached to the snapshot schedule (resource_policies refers to %v)", refs)
	}

	defaults := m.evalContext(t, m.variableDefaults(t, requiredVars))
	policy := m.resource(t, "google_compute_resource_policy", "data_snapshots")
	if fe := eval(t, defaults, policy, "for_each"); fe.LengthInt() != 5 {
		t.Errorf("snapshot policies for_each has %d elements, want one per region", fe.LengthInt())
	}
	var retention *hclsyntax.Block
	hclsyntax.VisitAll(policy.Body, func(n hclsyntax.Node) hcl.Diagnostics {
		if b, ok := n.(*hclsyntax.Block); ok && b.Type == "retention_policy" {
			retention = b
		}
		return nil
	})
	if retention == nil {
		t.Fatal("the snapshot schedule has no retention_policy")
	}
	if v := eval(t, defaults, retention, "on_source_disk_delete"); v.AsString() != "KEEP_AUTO_SNAPSHOTS" {
		t.Errorf("on_source_disk_delete = %s: snapshots must outlive their disk", v.AsString())
	}
	if v := eval(t, defaults, retention, "max_retention_days"); v.LessThan(cty.NumberIntVal(7)).True() {
		t.Errorf("snapshots are kept %s days by default; a week at least", v.AsBigFloat())
	}

	names := func(ctx *hcl.EvalContext) map[string]string {
		out := map[string]string{}
		for _, region := range defaultRegions {
			out[region] = eval(t, withEach(ctx, region, cty.NumberIntVal(1)), disk, "name").AsString()
		}
		return out
	}
	before := names(defaults)
	if before["us-west1"] != "georaft-3-data" {
		t.Errorf("us-west1's disk is named %s, want georaft-3-data", before["us-west1"])
	}
	vars := m.variableDefaults(t, requiredVars)
	vars["data_disk_generation"] = cty.MapVal(map[string]cty.Value{"us-west1": cty.NumberIntVal(2)})
	after := names(m.evalContext(t, vars))
	for region, name := range after {
		switch {
		case region == "us-west1" && name != "georaft-3-data-g2":
			t.Errorf("us-west1's generation 2 disk is named %s, want georaft-3-data-g2", name)
		case region != "us-west1" && name != before[region]:
			t.Errorf("raising us-west1's generation renamed %s's disk %s -> %s", region, before[region], name)
		}
	}
}

// Node changes (make cluster-replace-node, cluster-add-node, cluster-remove-node) change the
// kit's recorded variables; no such change may rename, and so replace, another region's
// instance, and a removed region's kept disk keeps its snapshot schedule.
func TestTerraformNodeChangesTouchOneRegion(t *testing.T) {
	m := loadTerraform(t)
	inst := m.resource(t, "google_compute_instance", "node")
	policy := m.resource(t, "google_compute_resource_policy", "data_snapshots")
	type view struct {
		names    map[string]string // region -> instance name
		policies int
		members  map[string]int64 // region -> member id
	}
	look := func(changes map[string]cty.Value) view {
		t.Helper()
		vars := m.variableDefaults(t, requiredVars)
		for k, v := range changes {
			vars[k] = v
		}
		ctx := m.evalContext(t, vars)
		v := view{names: map[string]string{}, members: map[string]int64{}}
		for it := eval(t, ctx, inst, "for_each").ElementIterator(); it.Next(); {
			k, slot := it.Element()
			v.names[k.AsString()] = eval(t, withEach(ctx, k.AsString(), slot), inst, "name").AsString()
		}
		v.policies = eval(t, ctx, policy, "for_each").LengthInt()
		if !ctx.Variables["local"].Type().HasAttribute("member_ids") {
			t.Fatal("local.member_ids does not evaluate")
		}
		for it := ctx.Variables["local"].GetAttr("member_ids").ElementIterator(); it.Next(); {
			k, id := it.Element()
			n, _ := id.AsBigFloat().Int64()
			v.members[k.AsString()] = n
		}
		return v
	}
	before := look(nil)
	if len(before.names) != 5 || before.names["europe-west1"] != "georaft-4" || before.members["europe-west1"] != 4 {
		t.Fatalf("defaults: instances %v, member ids %v", before.names, before.members)
	}
	same := func(what string, after view, except string) {
		t.Helper()
		for region, name := range before.names {
			if region != except && after.names[region] != name {
				t.Errorf("%s renamed %s's instance %s -> %q", what, region, name, after.names[region])
			}
			if region != except && after.members[region] != before.members[region] {
				t.Errorf("%s changed %s's member id %d -> %d", what, region, before.members[region], after.members[region])
			}
		}
	}
	strs := func(s ...string) cty.Value {
		var vs []cty.Value
		for _, x := range s {
			vs = append(vs, cty.StringVal(x))
		}
		return cty.ListVal(vs)
	}

	replaced := look(map[string]cty.Value{"member_ids": cty.MapVal(map[string]cty.Value{"us-west1": cty.NumberIntVal(6)}),
		"data_disk_generation": cty.MapVal(map[string]cty.Value{"us-west1": cty.NumberIntVal(2)})})
	same("a replace in us-west1", replaced, "us-west1")
	if replaced.names["us-west1"] != "georaft-3" || replaced.members["us-west1"] != 6 {
		t.Errorf("after a replace us-west1 has instance %s, member %d; want georaft-3 (same slot), member 6",
			replaced.names["us-west1"], replaced.members["us-west1"])
	}

	removed := look(map[string]cty.Value{"removed_regions": strs("us-west1")})
	same("removing us-west1", removed, "us-west1")
	if _, ok := removed.names["us-west1"]; ok || len(removed.names) != 4 || removed.policies != 5 {
		t.Errorf("after removing us-west1: instances %v, %d snapshot policies; want 4 instances and all 5 policies (the kept disk's stays)",
			removed.names, removed.policies)
	}

	added := look(map[string]cty.Value{"added_regions": strs("europe-west4"),
		"member_ids": cty.MapVal(map[string]cty.Value{"europe-west4": cty.NumberIntVal(6)})})
	same("adding europe-west4", added, "europe-west4")
	if added.names["europe-west4"] != "georaft-6" || added.members["europe-west4"] != 6 || added.policies != 6 {
		t.Errorf("after adding europe-west4: instance %q, member %d, %d policies; want georaft-6, 6, 6",
			added.names["europe-west4"], added.members["europe-west4"], added.policies)
	}
}
