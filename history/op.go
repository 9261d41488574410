// Package history records the operations clients performed on a georaft key-value store and
// checks them: writes and linearizable reads (lease, index, log) against a per-key register
// model with porcupine, and stale reads against what was really written.
//
// Times are int64 nanoseconds on one clock shared by every client of a history: true virtual
// time in the simulator, a monotonic clock in a process that runs all the clients. An
// operation whose outcome is unknown (a write that timed out) may or may not have taken
// effect, at any time after its call; the checker models it as returning at +infinity.
package history

import (
	"fmt"
	"strconv"

	"github.com/georaft/georaft/readmode"
)

// Kind is what an operation does to its key.
type Kind uint8

const (
	// Set writes Value to Key.
	Set Kind = iota + 1
	// Delete removes Key.
	Delete
	// Get reads Key with the consistency in Op.Mode.
	Get
	// Range reads every key that starts with Key (a group prefix, see Group): Op.Values.
	Range
	// CAS writes Value to Key if Key holds Expect (ExpectFound false: if Key is absent), in
	// one transaction; Op.Swapped says whether it did.
	CAS
)

func (k Kind) String() string {
	switch k {
	case Set:
		return "set"
	case Delete:
		return "del"
	case Get:
		return "get"
	case Range:
		return "range"
	case CAS:
		return "cas"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Mode is the consistency a Get asked for or was served with: readmode.Mode, which
// imports nothing, so every layer can use the history.
type Mode = readmode.Mode

// The mode names the simulator's tests in raft/ use; other code says readmode.Lease.
const (
	ModeLease = readmode.Lease
	ModeIndex = readmode.Index
	ModeLog   = readmode.Log
	ModeStale = readmode.Stale
)

// Outcome is what the client learned about an operation.
type Outcome uint8

const (
	// Pending: no answer yet. A history checked with pending operations treats them as
	// Unknown (the client may have crashed mid-call).
	Pending Outcome = iota
	// OK: the operation took effect, and for a Get, Found and Value are what it read.
	OK
	// Failed: the operation definitely did not take effect (refused before being proposed).
	// It is left out of the check; a read that observes a failed write's value is a
	// violation.
	Failed
	// Unknown: the operation may or may not have taken effect (timeout, connection lost
	// after sending). A write is modelled as possibly applied at any time after its call; a
	// read with an unknown outcome constrains nothing and is left out.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Op is one client operation: its input, when it was called and returned, and its output.
type Op struct {
	ClientID int
	Kind     Kind
	Key      string
	// Value is the value written (Set) or read (Get with Found).
	Value string
	// Found reports whether a Get found the key.
	Found bool
	// Mode is the consistency that served a Get or Range (after any fallback, e.g. a lease
	// read the leader served as an index read).
	Mode Mode
	// Values is what a Range read: key to value.
	Values map[string]string `json:",omitempty"`
	// Expect and ExpectFound are a CAS's condition; Swapped whether it held and the value was
	// written.
	Expect      string `json:",omitempty"`
	ExpectFound bool   `json:",omitempty"`
	Swapped     bool   `json:",omitempty"`

	// Call and Return are the invocation and response times. Return is ignored for an
	// operation whose Outcome is Unknown or Pending.
	Call, Return int64
	Outcome      Outcome
	// Err is the error the client saw, for Failed and Unknown operations.
	Err string
	// Note is free text shown in the visualization, e.g. which node served the operation.
	Note string
}

// String renders the operation as one line, e.g. `c3 get(x) lease -> "v7" [10, 25]`.
func (op Op) String() string {
	var s string
	switch op.Kind {
	case Set:
		s = fmt.Sprintf("c%d set(%s, %s)", op.ClientID, op.Key, strconv.Quote(op.Value))
	case Delete:
		s = fmt.Sprintf("c%d del(%s)", op.ClientID, op.Key)
	case Get:
		s = fmt.Sprintf("c%d get(%s) %s", op.ClientID, op.Key, op.Mode)
		if op.Outcome == OK {
			if op.Found {
				s += " -> " + strconv.Quote(op.Value)
			} else {
				s += " -> not found"
			}
		}
	case Range:
		s = fmt.Sprintf("c%d range(%s*) %s", op.ClientID, op.Key, op.Mode)
		if op.Outcome == OK {
			s += " -> " + describeValues(op.Values)
		}
	case CAS:
		expect := "absent"
		if op.ExpectFound {
			expect = strconv.Quote(op.Expect)
		}
		s = fmt.Sprintf("c%d cas(%s, %s -> %s)", op.ClientID, op.Key, expect, strconv.Quote(op.Value))
		if op.Outcome == OK {
			s += fmt.Sprintf(" swapped=%v", op.Swapped)
		}
	default:
		s = fmt.Sprintf("c%d %s(%s)", op.ClientID, op.Kind, op.Key)
	}
	switch op.Outcome {
	case OK:
		s += fmt.Sprintf(" [%d, %d]", op.Call, op.Return)
	default:
		s += fmt.Sprintf(" [%d, %s]", op.Call, op.Outcome)
		if op.Err != "" {
			s += " (" + op.Err + ")"
		}
	}
	if op.Note != "" {
		s += " " + op.Note
	}
	return s
}

// changes reports whether op wrote its key (or may have): a Set or Delete, or a CAS that
// swapped or whose outcome is unknown.
func (op Op) changes() bool {
	switch op.Kind {
	case Set, Delete:
		return true
	case CAS:
		return op.Outcome != OK || op.Swapped
	}
	return false
}
