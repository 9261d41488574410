package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/georaft/georaft/chart"
)

// The benchmark results the console shows, as `make bench` (the lab) and `make
// bench-compare` write them. Only the fields drawn are read; the files carry much more.
const (
	benchFile   = "bench-latest.json"
	compareFile = "compare-latest.json"
)

type benchResult struct {
	Started      time.Time `json:"started"`
	LeaderRegion string    `json:"leader_region"`
	Scale        float64   `json:"rtt_scale"`
	Speedup      float64   `json:"lease_vs_log_speedup"`
	Rows         []struct {
		ClientRegion string  `json:"client_region"`
		Mode         string  `json:"mode"`
		Ops          int     `json:"ops"`
		Errors       int     `json:"errors"`
		P50          float64 `json:"p50_ms"`
		Predicted    float64 `json:"predicted_ms"`
		Basis        string  `json:"basis"`
	} `json:"comparison"`
}

type compareSide struct {
	Row       string  `json:"row"`
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
}

type compareResult struct {
	Started  time.Time `json:"started"`
	GeoModel struct {
		ClientLeader float64 `json:"client_leader_rtt_ms"`
		Quorum       float64 `json:"quorum_rtt_ms"`
		Fsync        float64 `json:"fsync_ms"`
	} `json:"geo_model"`
	Settings struct {
		LeaderRegion string `json:"leader_region"`
		ClientRegion string `json:"client_region"`
	} `json:"settings"`
	Ratios []struct {
		Env        string      `json:"env"`
		Workload   string      `json:"workload"`
		Comparison string      `json:"comparison"`
		Georaft    compareSide `json:"georaft"`
		Etcd       compareSide `json:"etcd"`
		Throughput float64     `json:"throughput_ratio"`
		P50Ratio   float64     `json:"p50_ratio"`
		P99Ratio   float64     `json:"p99_ratio"`
	} `json:"ratios"`
	Targets []struct {
		Env      string `json:"env"`
		Target   string `json:"target"`
		Goal     string `json:"goal"`
		Measured string `json:"measured"`
		Verdict  string `json:"verdict"`
	} `json:"targets"`
}

// Results is what the benchmarks section shows.
type Results struct {
	Dir string
	// Bench and Compare are nil when their file is missing; Err* say why one could not be read.
	Bench      *benchResult
	BenchChart template.HTML
	BenchErr   string
	BenchAt    string
	Compare    *compareResult
	// CompareChart draws the single-client rows of the emulated geo cluster, where physics
	// predicts the floor.
	CompareChart template.HTML
	CompareErr   string
	CompareAt    string
}

// resultsCache rereads the files only when they change.
type resultsCache struct {
	dir   string
	mu    sync.Mutex
	stamp string
	res   *Results
}

func (c *resultsCache) get() *Results {
	if c.dir == "" {
		return &Results{}
	}
	stamp := ""
	for _, f := range []string{benchFile, compareFile} {
		if fi, err := os.Stat(filepath.Join(c.dir, f)); err == nil {
			stamp += fmt.Sprintf("%s %d %d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.res != nil && stamp == c.stamp {
		return c.res
	}
	c.stamp, c.res = stamp, loadResults(c.dir)
	return c.res
}

func loadResults(dir string) *Results {
	r := &Results{Dir: dir}
	if abs, err := filepath.Abs(dir); err == nil {
		r.Dir = abs
	}
	var b benchResult
	if err := readJSON(filepath.Join(dir, benchFile), &b); err == nil {
		r.Bench, r.BenchAt = &b, fmtStarted(b.Started)
		r.BenchChart = svgHTML(benchChart(&b))
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.BenchErr = err.Error()
	}
	var c compareResult
	if err := readJSON(filepath.Join(dir, compareFile), &c); err == nil {
		r.Compare, r.CompareAt = &c, fmtStarted(c.Started)
		r.CompareChart = svgHTML(compareChart(&c))
	} else if !errors.Is(err, fs.ErrNotExist) {
		r.CompareErr = err.Error()
	}
	return r
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func fmtStarted(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// svgHTML is a chart's SVG, trusted: the chart package escapes every text it writes.
func svgHTML(c chart.Chart) template.HTML {
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		return ""
	}
	// The chart is part of a figure whose caption and table describe it.
	return template.HTML(strings.Replace(buf.String(), "<svg ", `<svg aria-hidden="true" focusable="false" `, 1))
}

func benchChart(b *benchResult) chart.Chart {
	var groups []chart.Group
	index := map[string]int{}
	for _, row := range b.Rows {
		i, ok := index[row.ClientRegion]
		if !ok {
			i = len(groups)
			index[row.ClientRegion] = i
			groups = append(groups, chart.Group{Name: "client in " + row.ClientRegion})
		}
		m := chart.Measure{Name: row.Mode, Value: row.P50, Predicted: row.Predicted,
			Color: chart.ModeColor(row.Mode, len(groups[i].Measures)),
			Title: fmt.Sprintf("%s from %s: p50 %.3f ms", row.Mode, row.ClientRegion, row.P50)}
		if row.Predicted > 0 {
			m.PredictionTitle = fmt.Sprintf("predicted %.3f ms: %s", row.Predicted, row.Basis)
		}
		groups[i].Measures = append(groups[i].Measures, m)
	}
	var notes []string
	if b.Speedup > 0 {
		notes = append(notes, fmt.Sprintf("from %s, lease reads are %.1fx faster than log reads at p50", b.LeaderRegion, b.Speedup))
	}
	return chart.MeasuredVsPredicted("make bench: p50 measured (bars) vs predicted by the RTT matrix (ticks)",
		fmt.Sprintf("leader in %s, emulation x%g, %s; log scale", b.LeaderRegion, b.Scale, fmtStarted(b.Started)), groups, notes)
}

// compareChart draws georaft beside etcd for the single-client workloads of the emulated
// geo cluster, each with the floor the RTT model sets: the client's round trip to the
// leader, plus the quorum's round trip and an fsync for anything that goes through the log.
func compareChart(c *compareResult) chart.Chart {
	m := c.GeoModel
	floor := func(row string) float64 {
		switch row {
		case "lease", "stale", "serializable":
			return m.ClientLeader
		case "index", "linearizable":
			return m.ClientLeader + m.Quorum
		case "write", "put", "log":
			return m.ClientLeader + m.Quorum + m.Fsync
		}
		return 0
	}
	var groups []chart.Group
	for _, r := range c.Ratios {
		if r.Env != "geo" || !strings.HasSuffix(r.Workload, " c1") {
			continue
		}
		g := chart.Group{Name: r.Comparison}
		for i, side := range []struct {
			system string
			s      compareSide
		}{{"georaft", r.Georaft}, {"etcd", r.Etcd}} {
			color := chart.ModeColor(side.s.Row, i)
			if side.system == "etcd" {
				color = "#9e9e9e"
			}
			meas := chart.Measure{Name: side.system, Value: side.s.P50, Predicted: floor(side.s.Row), Color: color,
				Title: fmt.Sprintf("%s %s, %s: p50 %.3f ms", side.system, side.s.Row, r.Workload, side.s.P50)}
			if meas.Predicted > 0 {
				meas.PredictionTitle = fmt.Sprintf("floor %.2f ms by the RTT model", meas.Predicted)
			}
			g.Measures = append(g.Measures, meas)
		}
		groups = append(groups, g)
	}
	return chart.MeasuredVsPredicted("make bench-compare: georaft and etcd p50, one client, 5 regions (ticks: RTT floor)",
		fmt.Sprintf("leader in %s, client in %s, %s; log scale", c.Settings.LeaderRegion, c.Settings.ClientRegion, fmtStarted(c.Started)), groups, nil)
}
