package deploy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// grafanaDefaulted matches what Grafana's schema marks required but fills in itself when a
// dashboard is imported: a panel plugin's options (its defaults) and a variable's current
// selection (computed from its query).
var grafanaDefaulted = regexp.MustCompile(`^(panels\[\d+\]\.options|templating\.list\[\d+\]\.current)\.[A-Za-z]+$`)

// The dashboard against Grafana's own schema, as the Grafana Foundation SDK generates it from
// Grafana's kinds: strict decoding refuses a field the schema does not have and a value of the
// wrong type anywhere (dashboard, panels, their field config and options per panel type, the
// Prometheus queries), and Validate checks the schema's constraints.
func TestGrafanaDashboardMatchesGrafanaSchema(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range grafanaSchemaErrors(data) {
		t.Errorf("grafana-dashboard.json: %s", e)
	}
}

func grafanaSchemaErrors(data []byte) []string {
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	var out []string
	add := func(err error) {
		var errs cog.BuildErrors
		if !errors.As(err, &errs) {
			out = append(out, err.Error())
			return
		}
		for _, e := range errs {
			if e.Message == "required field is missing from input" && grafanaDefaulted.MatchString(e.Path) {
				continue
			}
			out = append(out, e.Error())
		}
	}
	if err := d.UnmarshalJSONStrict(data); err != nil {
		add(err)
	}
	if err := d.Validate(); err != nil {
		add(err)
	}
	return out
}

// The schema check is not a formality: each of these breakages of the shipped dashboard is
// reported, at its place.
func TestGrafanaSchemaCheckCatchesBrokenDashboards(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(d map[string]any)
		want string
	}{
		{"a misspelt dashboard field", func(d map[string]any) { d["refesh"] = d["refresh"] }, "Dashboard: unexpected field 'refesh'"},
		{"a panel field of the wrong type", func(d map[string]any) { panel(d, 0)["gridPos"].(map[string]any)["w"] = "6" }, "panels[0].gridPos.w: json: cannot unmarshal string"},
		{"a misspelt option of a timeseries panel", func(d map[string]any) {
			panel(d, 4)["options"] = map[string]any{"legend": map[string]any{"showLegend": true, "displayMode": "list", "placement": "bottom", "calcs": []any{}},
				"tooltip": map[string]any{"mode": "single", "sort": "none"}, "legnd": true}
		}, "panels[4].options.Options: unexpected field 'legnd'"},
		{"an unknown field in a Prometheus query", func(d map[string]any) {
			panel(d, 4)["targets"].([]any)[0].(map[string]any)["exprr"] = "up"
		}, "panels[4].targets[0].Dataquery: unexpected field 'exprr'"},
		{"a field config unit of the wrong type", func(d map[string]any) {
			panel(d, 4)["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["unit"] = 5
		}, "panels[4].fieldConfig: json: cannot unmarshal number into Go struct field FieldConfig.defaults.unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			tc.edit(d)
			broken, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			errs := grafanaSchemaErrors(broken)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("reported %q; want an error at %s", errs, tc.want)
			}
		})
	}
}

func panel(d map[string]any, i int) map[string]any { return d["panels"].([]any)[i].(map[string]any) }
