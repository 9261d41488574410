// Package readmode names the consistency a read asks for, once for every layer: the
// consensus core decides by it, the node serves by it, the client and the command line ask
// with it, the history checker judges by it and the wire carries it (georaftv1.ReadMode,
// converted in proto/georaft/v1). It imports nothing, so every package may use it.
package readmode

import (
	"fmt"
	"strings"
)

// Mode is the consistency a read asks for, or the one it was served with.
type Mode uint8

const (
	// Lease: the leader answers from its own state while it holds a lease: no network
	// round trip beyond the client's. Linearizable, given the clock-drift bound.
	Lease Mode = iota
	// Index: the leader confirms its leadership with one heartbeat round to a quorum
	// (ReadIndex), then answers once it has applied its commit index as of the read.
	// Linearizable, with no timing assumption.
	Index
	// Log: the read goes through the replicated log like a write. Linearizable; the
	// baseline the others beat. The node proposes it; the core never sees it as a read.
	Log
	// Stale: any node answers from its own state, refused when it has not heard from a
	// quorum-backed leader for longer than the staleness bound. Not linearizable: a value
	// really written, at most that old.
	Stale
)

// All lists every mode, in the order of their names in docs and flags.
var All = []Mode{Lease, Index, Log, Stale}

func (m Mode) String() string {
	switch m {
	case Lease:
		return "lease"
	case Index:
		return "index"
	case Log:
		return "log"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("readmode(%d)", uint8(m))
}

// Parse accepts the names String returns, in any case and with spaces around.
func Parse(s string) (Mode, error) {
	for _, m := range All {
		if strings.EqualFold(strings.TrimSpace(s), m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown read mode %q: want lease, index, log or stale", s)
}

// Valid reports whether m is one of the modes.
func (m Mode) Valid() bool { return m <= Stale }

// Linearizable reports whether reads in mode m must be linearizable.
func (m Mode) Linearizable() bool { return m != Stale }

// MarshalText writes the mode's name (in JSON, say).
func (m Mode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("read mode %d is not a mode", uint8(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText reads a name MarshalText wrote.
func (m *Mode) UnmarshalText(text []byte) error {
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
