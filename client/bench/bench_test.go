package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/georaft/georaft/client"
)

// memStore is a real (if tiny) key-value store behind the Driver interface: the engine's
// only dependency. It can fail every failEvery-th operation and stall once.
type memStore struct {
	mu        sync.Mutex
	data      map[string][]byte
	sets      atomic.Int64
	gets      atomic.Int64
	failEvery int64
	calls     atomic.Int64
	// servedAs maps a requested mode to the one reported as serving it.
	servedAs map[string]string
	// stallOnce, when set, blocks the first operation that sees it for that long.
	stallOnce atomic.Int64
	delay     time.Duration
}

func newMemStore() *memStore { return &memStore{data: map[string][]byte{}} }

func (m *memStore) Name() string { return "mem" }

func (m *memStore) maybeFail() error {
	n := m.calls.Add(1)
	if d := m.stallOnce.Swap(0); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	if m.failEvery > 0 && n%m.failEvery == 0 {
		return &client.UnavailableError{Op: "test", Deadline: true}
	}
	return nil
}

func (m *memStore) Set(ctx context.Context, key string, value []byte) error {
	if err := m.maybeFail(); err != nil {
		return err
	}
	m.sets.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[key] = append([]byte(nil), value...)
	return nil
}

func (m *memStore) Get(ctx context.Context, key string, mode string) (string, error) {
	if err := m.maybeFail(); err != nil {
		return "", err
	}
	m.gets.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	_ = m.data[key]
	if s, ok := m.servedAs[mode]; ok {
		return s, nil
	}
	return mode, nil
}

func TestPhasesFollowModesAndWriteSettings(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		names []string
	}{
		{"reads then write phase", Config{ReadModes: []string{"lease", "index"}, WritePhase: true}, []string{"lease", "index", "write"}},
		{"reads only", Config{ReadModes: []string{"lease"}}, []string{"lease"}},
		{"mixed, no write phase", Config{ReadModes: []string{"lease", "stale"}, WriteRatio: 0.2}, []string{"lease", "stale"}},
		{"writes only by ratio", Config{ReadModes: []string{"lease"}, WriteRatio: 1}, []string{"write"}},
		{"no modes, ratio", Config{WriteRatio: 0.5}, []string{"write"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range tt.cfg.phases() {
				got = append(got, p.name)
			}
			if strings.Join(got, ",") != strings.Join(tt.names, ",") {
				t.Fatalf("phases = %v, want %v", got, tt.names)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	base := Config{Driver: newMemStore(), ReadModes: []string{"lease"}}.Defaults()
	bad := map[string]func(*Config){
		"no driver":       func(c *Config) { c.Driver = nil },
		"ratio above 1":   func(c *Config) { c.WriteRatio = 1.5 },
		"negative ratio":  func(c *Config) { c.WriteRatio = -0.1 },
		"duplicate mode":  func(c *Config) { c.ReadModes = []string{"lease", "lease"} },
		"write as mode":   func(c *Config) { c.ReadModes = []string{"write"} },
		"nothing to run":  func(c *Config) { c.ReadModes = nil },
		"negative rate":   func(c *Config) { c.Rate = -1 },
		"no keys":         func(c *Config) { c.Keys = 0 },
		"negative warmup": func(c *Config) { c.Warmup = -time.Second },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			cfg := base
			mutate(&cfg)
			if _, err := Run(context.Background(), cfg); err == nil {
				t.Fatal("Run accepted an invalid config")
			}
		})
	}
}

func TestRunCountsEveryOperationInItsRow(t *testing.T) {
	store := newMemStore()
	store.failEvery = 50
	store.servedAs = map[string]string{"lease": "index"}
	cfg := Config{Driver: store, ReadModes: []string{"lease", "stale"}, WritePhase: true, WriteRatio: 0.25,
		Concurrency: 4, Ops: 400, Keys: 20, ValueSize: 8, Prefill: true, Seed: 7}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var total int64
	for _, r := range rep.Rows {
		names = append(names, r.Name)
		total += r.Ops + r.Errors
	}
	if strings.Join(names, ",") != "lease,stale,write" {
		t.Fatalf("rows = %v", names)
	}
	if want := int64(3 * 400); total != want {
		t.Fatalf("rows account for %d operations, want %d (3 phases × 400)", total, want)
	}
	if store.sets.Load() < int64(cfg.Keys) {
		t.Fatalf("prefill wrote %d values, want at least %d", store.sets.Load(), cfg.Keys)
	}
	lease, _ := rep.Row("lease")
	if lease.Served["index"] != lease.Ops || lease.Served["lease"] != 0 {
		t.Fatalf("lease row served = %v, want every read counted as served by index", lease.Served)
	}
	write, _ := rep.Row("write")
	if write.Ops == 0 || write.Kind != "write" {
		t.Fatalf("write row = %+v", write)
	}
	var errs int64
	for _, r := range rep.Rows {
		errs += r.ErrorsByKind[ErrKindTimeout]
		if r.Ops > 0 && !(r.Min <= r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.P999 && r.P999 <= r.Max) {
			t.Fatalf("row %s percentiles out of order: %+v", r.Name, r)
		}
	}
	if errs == 0 {
		t.Fatal("no timeouts counted although every 50th operation failed")
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	store := newMemStore()
	store.delay = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var rep Report
	var err error
	go func() {
		defer close(done)
		rep, err = Run(ctx, Config{Driver: store, ReadModes: []string{"lease"}, Concurrency: 2,
			Duration: time.Hour, Keys: 5})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for store.gets.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was canceled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if r, ok := rep.Row("lease"); !ok || r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("partial report row = %+v, want the reads measured so far and no errors", r)
	}
}

// A stall in the store delays every operation scheduled during it. The open loop charges
// the stall to all of them, the closed loop to the one operation that hit it: the open
// loop's p90 must stand well above the closed loop's.
func TestOpenLoopChargesStallsToScheduledOperations(t *testing.T) {
	if testing.Short() {
		t.Skip("timing-based comparison; runs without -short")
	}
	run := func(rate float64) Row {
		store := newMemStore()
		store.stallOnce.Store(int64(300 * time.Millisecond))
		rep, err := Run(context.Background(), Config{Driver: store, ReadModes: []string{"lease"}, Concurrency: 1,
			Ops: 400, Keys: 10, Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := rep.Row("lease")
		return r
	}
	closed := run(0)
	open := run(500) // 400 ops at 500/s: 0.8s of schedule, 300ms of it stalled
	if !(open.P90 > 10*closed.P90) {
		t.Fatalf("open loop p90 %v, closed loop p90 %v: the stall was not charged to the scheduled operations", open.P90, closed.P90)
	}
	if open.Max < closed.Max/2 {
		t.Fatalf("open loop max %v below half the closed loop max %v", open.Max, closed.Max)
	}
}

func sampleReport(t *testing.T, predict bool) Report {
	t.Helper()
	store := newMemStore()
	cfg := Config{Driver: store, ReadModes: []string{"lease", "index", "log", "stale"}, WritePhase: true,
		Concurrency: 3, Ops: 200, Keys: 10, Labels: map[string]string{"via_region": "us-east1"}}
	if predict {
		cfg.Predict = func(row string) (time.Duration, string) {
			if row == "stale" {
				return 0, ""
			}
			return 2 * time.Millisecond, "quorum RTT <x> & \"floor\""
		}
	}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestJSONIsWellFormedAndRoundTrips(t *testing.T) {
	rep := sampleReport(t, true)
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(buf.Bytes(), &generic); err != nil {
		t.Fatalf("report JSON does not parse: %v", err)
	}
	rows, ok := generic["rows"].([]any)
	if !ok || len(rows) != 5 {
		t.Fatalf("rows = %v, want 5 rows", generic["rows"])
	}
	for _, raw := range rows {
		row := raw.(map[string]any)
		for _, field := range []string{"name", "kind", "ops", "errors", "errors_by_kind", "ops_per_sec", "latency_ms", "served", "curve"} {
			if _, ok := row[field]; !ok {
				t.Fatalf("row %v lacks %q", row["name"], field)
			}
		}
		lat := row["latency_ms"].(map[string]any)
		for _, p := range []string{"p50", "p90", "p99", "p99_9", "max", "mean"} {
			if _, ok := lat[p]; !ok {
				t.Fatalf("row %v latency lacks %q", row["name"], p)
			}
		}
		_, hasPrediction := row["predicted_p50_ms"]
		if hasPrediction != (row["name"] != "stale") {
			t.Fatalf("row %v: predicted_p50_ms present = %v", row["name"], hasPrediction)
		}
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != len(rep.Rows) {
		t.Fatalf("round trip: %d rows, want %d", len(back.Rows), len(rep.Rows))
	}
	for i := range rep.Rows {
		a, b := rep.Rows[i], back.Rows[i]
		if a.Name != b.Name || a.Ops != b.Ops || absDur(a.P50-b.P50) > time.Microsecond || a.Predicted != b.Predicted {
			t.Fatalf("round trip changed row %d: %+v → %+v", i, a, b)
		}
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestCSVIsWellFormed(t *testing.T) {
	rep := sampleReport(t, true)
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	if len(records) != 1+len(rep.Rows) {
		t.Fatalf("%d records, want a header and %d rows", len(records), len(rep.Rows))
	}
	col := map[string]int{}
	for i, h := range records[0] {
		col[h] = i
	}
	for i, r := range rep.Rows {
		rec := records[i+1]
		if len(rec) != len(CSVHeader) || rec[col["name"]] != r.Name {
			t.Fatalf("record %d = %v", i+1, rec)
		}
		if (rec[col["predicted_p50_ms"]] != "") != r.HasPrediction() {
			t.Fatalf("record %d prediction cell %q for row with prediction=%v", i+1, rec[col["predicted_p50_ms"]], r.HasPrediction())
		}
	}
}

func TestSVGIsWellFormedWithOneCurvePerRow(t *testing.T) {
	rep := sampleReport(t, true)
	var buf bytes.Buffer
	if err := rep.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&buf)
	polylines, diamonds, root := 0, 0, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			switch se.Name.Local {
			case "polyline":
				polylines++
			case "path":
				diamonds++
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	if polylines != len(rep.Rows) {
		t.Fatalf("%d curves, want one per row (%d)", polylines, len(rep.Rows))
	}
	// Four predicted rows, plus the legend's sample diamond.
	if diamonds != 5 {
		t.Fatalf("%d prediction markers, want 5", diamonds)
	}
}

func TestTableShowsEveryRowAndPredictionGap(t *testing.T) {
	rep := sampleReport(t, true)
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"mode", "p99.9", "predicted", "gap", "lease", "index", "log", "stale", "write", "via_region=us-east1", "quorum RTT"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	// Aligned: every table line has the header's column starts.
	lines := strings.Split(out, "\n")
	var header string
	for _, l := range lines {
		if strings.HasPrefix(l, "mode") {
			header = l
		}
	}
	if idx := strings.Index(header, "ops/s"); idx < 0 {
		t.Fatalf("no header line in:\n%s", out)
	}
	plain := sampleReport(t, false)
	buf.Reset()
	_ = plain.WriteTable(&buf)
	if strings.Contains(buf.String(), "predicted") {
		t.Fatalf("a report without predictions shows a prediction column:\n%s", buf.String())
	}
}

func TestFormatLatency(t *testing.T) {
	tests := map[time.Duration]string{
		0:                        "-",
		213 * time.Microsecond:   "0.213ms",
		3210 * time.Microsecond:  "3.21ms",
		38700 * time.Microsecond: "38.7ms",
		140 * time.Millisecond:   "140ms",
		12300 * time.Millisecond: "12.3s",
	}
	for d, want := range tests {
		if got := FormatLatency(d); got != want {
			t.Errorf("FormatLatency(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestClassifyError(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&client.UnavailableError{Deadline: true}, ErrKindTimeout},
		{&client.UnavailableError{Reason: "NO_LEADER"}, "unavailable:NO_LEADER"},
		{&client.InvalidArgumentError{Field: "key"}, ErrKindInvalid},
		{&client.RefusedError{}, ErrKindRefused},
		{context.Canceled, ErrKindCanceled},
		{errors.New("boom"), ErrKindOther},
	}
	for _, tt := range tests {
		if got := ClassifyError(tt.err); got != tt.want {
			t.Errorf("ClassifyError(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
