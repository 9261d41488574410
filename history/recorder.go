package history

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Recorder collects operations from many goroutines. Each operation is begun before the
// request leaves the client and finished when its answer (or its failure) arrives, so its
// interval covers the moment it took effect.
type Recorder struct {
	now func() int64

	mu  sync.Mutex
	ops []Op
}

// NewRecorder records with the clock now (nanoseconds, one clock for every client). A nil
// now uses the process's monotonic clock, counted from the recorder's creation.
func NewRecorder(now func() int64) *Recorder {
	if now == nil {
		start := time.Now()
		now = func() int64 { return int64(time.Since(start)) }
	}
	return &Recorder{now: now}
}

// Call is one operation in progress. Exactly one of its finishing methods should be called;
// later ones are ignored, so a timeout racing with a late answer keeps the first verdict.
type Call struct {
	r *Recorder
	i int
}

// Begin records the call of op now and returns its handle. op's Kind, Key, Value (for Set),
// Mode (for Get) and ClientID describe the request; its output fields are ignored.
func (r *Recorder) Begin(op Op) *Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Call = r.now()
	op.Return = 0
	op.Outcome = Pending
	op.Found = false
	if op.Kind == Get {
		op.Value = ""
	}
	r.ops = append(r.ops, op)
	return &Call{r: r, i: len(r.ops) - 1}
}

func (c *Call) finish(update func(op *Op)) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	op := &c.r.ops[c.i]
	if op.Outcome != Pending {
		return
	}
	op.Return = c.r.now()
	update(op)
}

// Wrote records that a Set or Delete took effect.
func (c *Call) Wrote() { c.finish(func(op *Op) { op.Outcome = OK }) }

// Read records a Get's answer, and the mode that really served it (a lease read may have
// been served as an index read).
func (c *Call) Read(found bool, value string, servedBy Mode) {
	c.finish(func(op *Op) {
		op.Outcome = OK
		op.Found = found
		op.Value = ""
		if found {
			op.Value = value
		}
		op.Mode = servedBy
	})
}

// Ranged records a Range's answer and the mode that served it.
func (c *Call) Ranged(values map[string]string, servedBy Mode) {
	c.finish(func(op *Op) {
		op.Outcome = OK
		op.Values = values
		op.Mode = servedBy
	})
}

// Swapped records a CAS's answer: whether its condition held and it wrote.
func (c *Call) Swapped(swapped bool) {
	c.finish(func(op *Op) {
		op.Outcome = OK
		op.Swapped = swapped
	})
}

// Fail records that the operation definitely did not take effect, e.g. refused before it
// was proposed. Use Unknown when in doubt: a write wrongly marked failed whose value is
// later read makes the history illegal.
func (c *Call) Fail(err error) {
	c.finish(func(op *Op) {
		op.Outcome = Failed
		op.Err = errString(err)
	})
}

// Unknown records that the operation may or may not have taken effect.
func (c *Call) Unknown(err error) {
	c.finish(func(op *Op) {
		op.Outcome = Unknown
		op.Err = errString(err)
	})
}

// Annotate appends a note (which node served it, a redirect) shown in the visualization.
func (c *Call) Annotate(note string) {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	op := &c.r.ops[c.i]
	if op.Note != "" {
		op.Note += "; "
	}
	op.Note += note
}

// Ops returns a copy of every operation recorded so far; those still pending are returned
// with Outcome Pending, which the checker treats as Unknown.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Len is how many operations have begun.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WriteJSON writes ops as one JSON document, to keep a history next to a failing run's logs.
func WriteJSON(w io.Writer, ops []Op) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(ops); err != nil {
		return fmt.Errorf("write history as json: %w", err)
	}
	return nil
}

// ReadJSON reads a history written by WriteJSON.
func ReadJSON(r io.Reader) ([]Op, error) {
	var ops []Op
	if err := json.NewDecoder(r).Decode(&ops); err != nil {
		return nil, fmt.Errorf("read history json: %w", err)
	}
	return ops, nil
}
