package compare

import (
	"fmt"
	"time"

	"github.com/georaft/georaft/client/bench"
)

// georaft read modes, as rows of the bench report.
const (
	GeoraftLease = "lease"
	GeoraftIndex = "index"
	GeoraftStale = "stale"
)

// Pair says which georaft row is compared with which etcd row.
type Pair struct {
	// Label names the comparison in the ratio table ("lease / linearizable").
	Label   string
	Georaft string
	Etcd    string
}

// Workload is one load both systems get, with the same engine settings.
type Workload struct {
	Name        string
	Concurrency int
	// GeoraftModes and EtcdModes are the read phases of each system (empty: writes only).
	GeoraftModes []string
	EtcdModes    []string
	// WriteRatio mixes writes into the read phases; WritePhase is a writes-only phase.
	WriteRatio float64
	WritePhase bool
	Pairs      []Pair
}

// Workload names, used by the targets.
const (
	WriteC1     = "write c1"
	WriteC64    = "write c64"
	LinReadC1   = "linearizable read c1"
	LinReadC64  = "linearizable read c64"
	LocalReadC1 = "local read c1"
	LocalRead64 = "local read c64"
	Mix90C64    = "mix 90/10 c64"
)

// DefaultWorkloads are the issue's: writes at concurrency 1 and 64; linearizable reads
// (etcd's default ReadIndex read against georaft's index and lease reads); local reads
// (etcd serializable against georaft stale); a 90/10 read/write mix, reads linearizable.
func DefaultWorkloads() []Workload {
	write := []Pair{{Label: "write / put", Georaft: bench.WriteRow, Etcd: bench.WriteRow}}
	lin := []Pair{
		{Label: "lease / linearizable", Georaft: GeoraftLease, Etcd: EtcdLinearizable},
		{Label: "index / linearizable", Georaft: GeoraftIndex, Etcd: EtcdLinearizable},
	}
	local := []Pair{{Label: "stale / serializable", Georaft: GeoraftStale, Etcd: EtcdSerializable}}
	return []Workload{
		{Name: WriteC1, Concurrency: 1, WritePhase: true, Pairs: write},
		{Name: WriteC64, Concurrency: 64, WritePhase: true, Pairs: write},
		{Name: LinReadC1, Concurrency: 1, GeoraftModes: []string{GeoraftLease, GeoraftIndex}, EtcdModes: []string{EtcdLinearizable}, Pairs: lin},
		{Name: LinReadC64, Concurrency: 64, GeoraftModes: []string{GeoraftLease, GeoraftIndex}, EtcdModes: []string{EtcdLinearizable}, Pairs: lin},
		{Name: LocalReadC1, Concurrency: 1, GeoraftModes: []string{GeoraftStale}, EtcdModes: []string{EtcdSerializable}, Pairs: local},
		{Name: LocalRead64, Concurrency: 64, GeoraftModes: []string{GeoraftStale}, EtcdModes: []string{EtcdSerializable}, Pairs: local},
		{Name: Mix90C64, Concurrency: 64, GeoraftModes: []string{GeoraftLease}, EtcdModes: []string{EtcdLinearizable}, WriteRatio: 0.1,
			Pairs: []Pair{
				{Label: "mix reads: lease / linearizable", Georaft: GeoraftLease, Etcd: EtcdLinearizable},
				{Label: "mix writes: write / put", Georaft: bench.WriteRow, Etcd: bench.WriteRow},
			}},
	}
}

// WorkloadByName finds one of DefaultWorkloads.
func WorkloadByName(name string) (Workload, bool) {
	for _, w := range DefaultWorkloads() {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Engine is the bench settings shared by every workload.
type Engine struct {
	Duration  time.Duration
	Warmup    time.Duration
	Keys      int
	ValueSize int
}

// Config is the bench configuration of w for one system. Both systems get the same keys,
// values, durations and concurrency; only the driver and read modes differ.
func (w Workload) Config(e Engine, driver bench.Driver, modes []string, labels map[string]string) bench.Config {
	return bench.Config{
		Driver:      driver,
		ReadModes:   modes,
		WriteRatio:  w.WriteRatio,
		WritePhase:  w.WritePhase,
		Concurrency: w.Concurrency,
		Duration:    e.Duration,
		Warmup:      e.Warmup,
		Keys:        e.Keys,
		ValueSize:   e.ValueSize,
		KeyPrefix:   "bench/",
		Labels:      labels,
	}
}

// Validate checks the workload names rows its systems will produce.
func (w Workload) Validate() error {
	rows := func(modes []string) map[string]bool {
		m := map[string]bool{}
		for _, r := range modes {
			m[r] = true
		}
		if w.WritePhase || w.WriteRatio > 0 {
			m[bench.WriteRow] = true
		}
		return m
	}
	g, e := rows(w.GeoraftModes), rows(w.EtcdModes)
	if len(g) == 0 || len(e) == 0 {
		return fmt.Errorf("workload %q: nothing to run for one of the systems", w.Name)
	}
	for _, p := range w.Pairs {
		if !g[p.Georaft] || !e[p.Etcd] {
			return fmt.Errorf("workload %q: pair %q compares rows %q and %q, which it does not produce", w.Name, p.Label, p.Georaft, p.Etcd)
		}
	}
	return nil
}
