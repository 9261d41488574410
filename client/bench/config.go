package bench

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// WriteRow names the report row of writes; the other rows are named after read modes.
const WriteRow = "write"

// Config describes a benchmark run.
//
// The run has one phase per read mode, in order, then an optional write-only phase. In a
// read phase each operation is a write with probability WriteRatio and otherwise a read in
// that phase's mode. Reads are reported in a row per mode; writes from every phase in one
// "write" row. So WriteRatio 0 with WritePhase off is reads only; WriteRatio 0 with
// WritePhase on measures each mode and writes apart, which is what the rows are for.
type Config struct {
	Driver Driver

	// ReadModes are the read phases, in order. Empty runs only the write phase.
	ReadModes []string
	// WriteRatio in [0, 1] is the fraction of writes mixed into the read phases.
	WriteRatio float64
	// WritePhase adds a phase of writes only after the read phases.
	WritePhase bool

	// Concurrency is the number of workers (closed loop: operations in flight; open loop:
	// the most operations in flight before sends fall behind the timetable).
	Concurrency int
	// Each measured phase lasts Duration, or performs Ops operations when Ops > 0.
	Duration time.Duration
	Ops      int64
	// Warmup runs before each measured phase, unrecorded, so connections are up and the
	// lease is held.
	Warmup time.Duration
	// Rate > 0 selects the open loop: operations are scheduled at Rate per second on a fixed
	// timetable and latency counts from the scheduled time, so a stall is charged to every
	// operation it delayed (no coordinated omission). 0 is the closed loop.
	Rate float64

	// Keys is the key space, read and written uniformly; ValueSize the bytes per value.
	Keys      int
	ValueSize int
	KeyPrefix string
	// Prefill writes every key once before the read phases, so reads find values.
	Prefill bool
	// Seed makes the key and operation choice reproducible; 0 picks one.
	Seed uint64

	// Progress, when set, receives a progress bar per phase (set it only on a terminal).
	Progress io.Writer
	// Predict, when set, gives a model's predicted p50 for a row (zero: no prediction)
	// and a short basis ("quorum RTT 36ms + 0.2ms floor"), printed next to the measured p50.
	Predict func(row string) (p50 time.Duration, basis string)
	// Labels are carried into the report as they are (via region, endpoints, cluster).
	Labels map[string]string
}

// Defaults fills unset fields with the values `georaft bench` uses.
func (c Config) Defaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Duration <= 0 && c.Ops <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Keys <= 0 {
		c.Keys = 1000
	}
	if c.ValueSize <= 0 {
		c.ValueSize = 128
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "bench/"
	}
	return c
}

func (c Config) validate() error {
	if c.Driver == nil {
		return errors.New("bench: no driver")
	}
	if c.WriteRatio < 0 || c.WriteRatio > 1 {
		return fmt.Errorf("bench: write ratio %v: want a fraction in [0, 1]", c.WriteRatio)
	}
	if len(c.ReadModes) == 0 && !c.WritePhase && c.WriteRatio == 0 {
		return errors.New("bench: nothing to run: no read modes and no writes")
	}
	seen := map[string]bool{}
	for _, m := range c.ReadModes {
		if m == "" || m == WriteRow {
			return fmt.Errorf("bench: read mode %q is not a read mode", m)
		}
		if seen[m] {
			return fmt.Errorf("bench: read mode %q listed twice", m)
		}
		seen[m] = true
	}
	if c.Concurrency <= 0 {
		return fmt.Errorf("bench: concurrency %d: want at least 1", c.Concurrency)
	}
	if c.Duration <= 0 && c.Ops <= 0 {
		return errors.New("bench: want a duration or a number of operations per phase")
	}
	if c.Keys <= 0 {
		return fmt.Errorf("bench: keys %d: want at least 1", c.Keys)
	}
	if c.ValueSize < 0 {
		return fmt.Errorf("bench: value size %d: want 0 or more bytes", c.ValueSize)
	}
	if c.Rate < 0 {
		return fmt.Errorf("bench: rate %v: want 0 (closed loop) or operations per second", c.Rate)
	}
	if c.Warmup < 0 {
		return fmt.Errorf("bench: warmup %v: want 0 or more", c.Warmup)
	}
	return nil
}

// phase is one stretch of load: reads in mode (none for the write phase) mixed with writes
// at writeRatio.
type phase struct {
	name       string
	mode       string
	writeRatio float64
}

func (c Config) phases() []phase {
	var out []phase
	if c.WriteRatio < 1 {
		for _, m := range c.ReadModes {
			out = append(out, phase{name: m, mode: m, writeRatio: c.WriteRatio})
		}
	}
	if c.WritePhase || c.WriteRatio == 1 || (len(c.ReadModes) == 0 && c.WriteRatio > 0) {
		out = append(out, phase{name: WriteRow, writeRatio: 1})
	}
	return out
}
