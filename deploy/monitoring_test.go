package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/georaft/georaft/internal/testenv"
)

const monitoringDir = "monitoring"

func promtool(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "promtool", "apt-get install prometheus")
}

// The scrape config, with the file_sd document georaft-inventory writes from the recorded
// Terraform output, passes promtool check config; the alert rules pass promtool check rules
// and their unit tests (georaft-alerts_test.yml).
func TestMonitoringPassesPromtool(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	for _, f := range []string{"prometheus.yml", "georaft-alerts.yml", "georaft-alerts_test.yml"} {
		data, err := os.ReadFile(filepath.Join(monitoringDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	targets, err := fixtureCluster(t).PrometheusTargets()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "georaft-targets.json"), targets, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "georaft-alerts.yml"},
		{"test", "rules", "georaft-alerts_test.yml"},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// The file_sd document names every node's metrics port on its internal address.
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(targets, &groups); err != nil {
		t.Fatal(err)
	}
	cluster := fixtureCluster(t)
	if len(groups) != len(cluster.Nodes) {
		t.Fatalf("%d target groups, want one per node", len(groups))
	}
	for i, n := range cluster.Nodes {
		if want := n.InternalIP + ":7300"; !slices.Equal(groups[i].Targets, []string{want}) || groups[i].Labels["region"] != n.Region {
			t.Errorf("target group %d = %+v, want %s in %s", i, groups[i], want, n.Region)
		}
	}

	// A broken file_sd document is caught: promtool really reads it.
	if err := os.WriteFile(filepath.Join(dir, "georaft-targets.json"), []byte(`[{"targets": "not a list"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "config", "prometheus.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a broken file_sd document:\n%s", out)
	}
}

// exportedMetrics are the series georaftd registers (node/metrics.go), with the suffixes
// Prometheus adds to histograms.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../node/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`Name: "(georaft_[a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		for _, suffix := range []string{"", "_bucket", "_count", "_sum"} {
			out[m[1]+suffix] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("no metric names found in node/metrics.go")
	}
	return out
}

var georaftSeries = regexp.MustCompile(`\bgeoraft_[a-z_]+\b`)

// checkSeries fails for a georaft_* series name in expr that georaftd does not export.
func checkSeries(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	for _, name := range georaftSeries.FindAllString(expr, -1) {
		if !exported[name] && !strings.HasPrefix(name, "georaft_node") { // georaft-node is a job, not a series
			t.Errorf("%s uses %s, which node/metrics.go does not export", where, name)
		}
	}
}

// The alerts the kit promises exist, and every series they read is one georaftd exports.
func TestAlertRulesCoverTheClusterAndUseRealSeries(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(monitoringDir, "georaft-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	exported := exportedMetrics(t)
	alerts := map[string]bool{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			checkSeries(t, "alert "+r.Alert, r.Expr, exported)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s lacks a severity, a summary or a description", r.Alert)
			}
		}
	}
	for _, want := range []string{"GeoraftNoLeader", "GeoraftLeaderChurn", "GeoraftLeaseReadFallbacks", "GeoraftWALFsyncSlow",
		"GeoraftDataDiskFilling", "GeoraftCertificateExpiresSoon"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// The Grafana dashboard has the structure Grafana imports: a title, uid and schemaVersion,
// a Prometheus datasource variable, panels with unique ids, a type, a title, a grid position
// inside the 24-column grid that overlaps no other panel, and queries on exported series.
func TestGrafanaDashboardStructure(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				Type string `json:"type"`
				UID  string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if dash.Title == "" || !regexp.MustCompile(`^[a-zA-Z0-9_-]{1,40}$`).MatchString(dash.UID) || dash.SchemaVersion < 30 {
		t.Errorf("dashboard title %q, uid %q, schemaVersion %d: want a title, a uid Grafana accepts, schemaVersion >= 30",
			dash.Title, dash.UID, dash.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Error("the dashboard has no datasource variable, so it cannot be imported against any Prometheus")
	}
	if len(dash.Panels) < 8 {
		t.Fatalf("%d panels", len(dash.Panels))
	}
	exported := exportedMetrics(t)
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range dash.Panels {
		if ids[p.ID] || p.ID <= 0 {
			t.Errorf("panel %q: id %d is not unique and positive", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Title == "" || !slices.Contains([]string{"timeseries", "stat", "gauge", "table"}, p.Type) {
			t.Errorf("panel %d: title %q, type %q", p.ID, p.Title, p.Type)
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
					x, y = g.X+g.W, g.Y+g.H
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q: a target without expr or refId", p.Title)
			}
			checkSeries(t, "panel "+p.Title, tg.Expr, exported)
		}
	}
}
