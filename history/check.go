package history

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Never is the return time given to operations whose outcome is unknown: they may take
// effect at any moment after their call.
const Never int64 = math.MaxInt64

// Verdict is the overall answer of a check.
type Verdict uint8

const (
	// Linearizable: the linearizable operations have a linearization and every stale read
	// returned something really written.
	Linearizable Verdict = iota + 1
	// Violation: some key's history has no linearization, or a stale read returned a value
	// that was never written (or written too late, or too long ago for the bound).
	Violation
	// Inconclusive: the linearizability search ran out of time without finding a
	// violation. No stale violation was found either.
	Inconclusive
	// Invalid: the history itself is malformed (unknown kind, return before call); Problems
	// says which operations.
	Invalid
)

func (v Verdict) String() string {
	switch v {
	case Linearizable:
		return "linearizable"
	case Violation:
		return "violation"
	case Inconclusive:
		return "inconclusive (timed out)"
	case Invalid:
		return "invalid history"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Options tunes a check.
type Options struct {
	// Timeout bounds the linearizability search (0: no bound). Past it the verdict is
	// Inconclusive unless a violation was already found.
	Timeout time.Duration
	// StaleBound, if positive, also requires every stale read to return a value that may
	// have been current at some instant no earlier than StaleBound before the read's call.
	// Zero checks only that the value was really written by a write called before the
	// read returned.
	StaleBound time.Duration
}

// StaleViolation is a stale read that returned something it could not have read.
type StaleViolation struct {
	Read   Op
	Reason string
}

func (v StaleViolation) String() string { return v.Read.String() + ": " + v.Reason }

// Result is what Check found.
type Result struct {
	Verdict Verdict
	// IllegalKeys are the keys whose linearizable operations have no linearization.
	IllegalKeys []string
	// Anomalies describe, for the illegal keys, reads that plainly returned a value
	// replaced before they were called (or not yet written when they returned).
	Anomalies []string
	// Culprit is, for the first illegal key, the operation whose call first makes the
	// history illegal (the shortest illegal prefix), followed by the operations on that key
	// just before it.
	Culprit []string
	// TimedOutKeys are keys whose search ran out of time (Inconclusive).
	TimedOutKeys []string
	// Stale lists stale reads that returned what was never (or no longer) written.
	Stale []StaleViolation
	// Problems lists malformed operations (Verdict Invalid).
	Problems []string
	// Checked is how many operations went to porcupine; StaleChecked how many stale reads
	// were checked against the writes.
	Checked, StaleChecked int

	ops     []porcupine.Operation
	grouped bool // ops are for the group model (the history has Range or CAS)
	timeout time.Duration
}

// OK reports whether no violation was found and the check completed.
func (r *Result) OK() bool { return r.Verdict == Linearizable }

// String summarizes the result on a few lines.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d operations checked for linearizability, %d stale reads", r.Verdict, r.Checked, r.StaleChecked)
	if len(r.IllegalKeys) > 0 {
		fmt.Fprintf(&b, "\n  not linearizable: keys %s", strings.Join(quoteAll(r.IllegalKeys), ", "))
	}
	for i, a := range r.Anomalies {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(r.Anomalies)-10)
			break
		}
		fmt.Fprintf(&b, "\n  %s", a)
	}
	if len(r.Culprit) > 0 {
		fmt.Fprintf(&b, "\n  the history turns illegal when this is called or returns:\n    %s\n  after these operations on the key (latest calls):", r.Culprit[0])
		for _, line := range r.Culprit[1:] {
			fmt.Fprintf(&b, "\n    %s", line)
		}
	}
	if len(r.TimedOutKeys) > 0 {
		fmt.Fprintf(&b, "\n  search timed out: keys %s", strings.Join(quoteAll(r.TimedOutKeys), ", "))
	}
	for _, v := range r.Stale {
		fmt.Fprintf(&b, "\n  stale read violation: %s", v)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "\n  malformed: %s", p)
	}
	return b.String()
}

// Check checks ops: writes and lease, index and log reads for linearizability (per key, with
// porcupine), stale reads for returning a value really written. timeout bounds the search.
func Check(ops []Op, timeout time.Duration) Result {
	return CheckWith(ops, Options{Timeout: timeout})
}

// CheckWith is Check with every option.
func CheckWith(ops []Op, opts Options) Result {
	res := Result{timeout: opts.Timeout}
	if problems := validate(ops); len(problems) > 0 {
		res.Verdict = Invalid
		res.Problems = problems
		return res
	}

	var linearizable bool
	if hasGroupOps(ops) {
		res.ops, res.grouped = toGroupPorcupine(ops), true
		res.Checked = len(res.ops)
		linearizable = checkGroups(ops, res.ops, opts.Timeout, &res)
	} else {
		res.ops = toPorcupine(ops)
		res.Checked = len(res.ops)
		linearizable = checkPerKey(ops, res.ops, opts.Timeout, &res)
	}

	res.Stale, res.StaleChecked = checkStaleReads(ops, int64(opts.StaleBound))

	switch {
	case !linearizable || len(res.Stale) > 0:
		res.Verdict = Violation
	case len(res.TimedOutKeys) > 0:
		res.Verdict = Inconclusive
	default:
		res.Verdict = Linearizable
	}
	return res
}

// checkPerKey runs porcupine on the whole history first (it checks keys in parallel and
// stops at the first illegal one) and, only when that fails or times out, key by key to name
// the culprits.
func checkPerKey(original []Op, ops []porcupine.Operation, timeout time.Duration, res *Result) bool {
	verdict := porcupine.CheckOperationsTimeout(registerModel, ops, timeout)
	if verdict == porcupine.Ok {
		return true
	}
	for _, part := range partitionByKey(ops) {
		key := part[0].Input.(registerInput).key
		switch porcupine.CheckOperationsTimeout(registerModel, part, timeout) {
		case porcupine.Illegal:
			res.IllegalKeys = append(res.IllegalKeys, key)
			res.Anomalies = append(res.Anomalies, anomalies(original, key)...)
			if len(res.Culprit) == 0 {
				res.Culprit = culprit(original, key, timeout)
			}
		case porcupine.Unknown:
			res.TimedOutKeys = append(res.TimedOutKeys, key)
		}
	}
	return len(res.IllegalKeys) == 0
}

// WriteVisualization writes porcupine's HTML visualization of the checked history to path:
// only the keys that are not linearizable when there are some, every key otherwise. Stale
// read violations are not part of porcupine's model; String lists them.
func (r *Result) WriteVisualization(path string) error {
	if r.Verdict == Invalid {
		return fmt.Errorf("visualize history to %s: history is malformed: %s", path, strings.Join(r.Problems, "; "))
	}
	model, ops := registerModel, r.ops
	if r.grouped {
		model = groupModel
	}
	if len(r.IllegalKeys) > 0 {
		ops = nil
		for _, op := range r.ops {
			key := ""
			if r.grouped {
				key = Group(op.Input.(groupInput).key)
			} else {
				key = op.Input.(registerInput).key
			}
			if slices.Contains(r.IllegalKeys, key) {
				ops = append(ops, op)
			}
		}
	}
	_, info := porcupine.CheckOperationsVerbose(model, ops, r.timeout)
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Errorf("visualize history to %s: %w", path, err)
	}
	return nil
}

// validate lists every operation a checker cannot interpret.
func validate(ops []Op) []string {
	var problems []string
	for i, op := range ops {
		switch op.Kind {
		case Set, Delete, Get, Range, CAS:
		default:
			problems = append(problems, fmt.Sprintf("op %d (%s): unknown kind %d", i, op, uint8(op.Kind)))
			continue
		}
		if (op.Kind == Get || op.Kind == Range) && op.Mode > ModeStale {
			problems = append(problems, fmt.Sprintf("op %d (%s): unknown read mode %d", i, op, uint8(op.Mode)))
		}
		if op.Outcome > Unknown {
			problems = append(problems, fmt.Sprintf("op %d (%s): unknown outcome %d", i, op, uint8(op.Outcome)))
		}
		if op.Outcome == OK || op.Outcome == Failed {
			if op.Return < op.Call {
				problems = append(problems, fmt.Sprintf("op %d (%s): returns at %d before its call at %d", i, op, op.Return, op.Call))
			}
		}
		if op.ClientID < 0 {
			problems = append(problems, fmt.Sprintf("op %d (%s): negative client id", i, op))
		}
	}
	return problems
}

// toPorcupine keeps what the linearizability check constrains: writes that took or may have
// taken effect, and linearizable reads that returned.
func toPorcupine(ops []Op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range ops {
		ret := op.Return
		switch {
		case op.Outcome == Failed:
			continue
		case op.Kind == Get && (op.Outcome != OK || !op.Mode.Linearizable()):
			continue
		case op.Outcome != OK:
			ret = Never
		}
		meta := op.Outcome.String()
		if op.Kind == Get {
			meta = op.Mode.String()
		}
		if op.Note != "" {
			meta += " " + op.Note
		}
		out = append(out, porcupine.Operation{
			ClientId: op.ClientID,
			Input:    registerInput{kind: op.Kind, key: op.Key, value: op.Value},
			Call:     op.Call,
			Output:   registerOutput{found: op.Found, value: op.Value},
			Return:   ret,
			Metadata: meta,
		})
	}
	return out
}

// possibleState is a state one key may have had, and the interval in which it may have been
// current: from the call of the write that produced it (or -inf for the initial absent
// state) until the earliest return of a write that certainly followed that write.
type possibleState struct {
	found      bool
	value      string
	from, till int64
	replacedBy *Op // the write whose return ends the state for certain (nil: never)
}

// checkStaleReads checks each successful stale read against the writes to its key. In any
// linearization a write w's value can be current only from w's call until some write that
// certainly follows w (called after w returned) has returned; a stale read may see any such
// value as long as it was written before the read returned. With bound > 0 the value must
// also have been possibly current no earlier than bound before the read's call.
func checkStaleReads(ops []Op, bound int64) ([]StaleViolation, int) {
	writesByKey := map[string][]*Op{}
	for i := range ops {
		op := &ops[i]
		if op.changes() && op.Outcome != Failed {
			writesByKey[op.Key] = append(writesByKey[op.Key], op)
		}
	}
	statesByKey := map[string][]possibleState{}
	var violations []StaleViolation
	checked := 0
	for i := range ops {
		read := ops[i]
		if read.Kind != Get || read.Mode.Linearizable() || read.Outcome != OK {
			continue
		}
		checked++
		states, ok := statesByKey[read.Key]
		if !ok {
			states = possibleStates(writesByKey[read.Key])
			statesByKey[read.Key] = states
		}
		if reason := explainStale(read, states, bound); reason != "" {
			violations = append(violations, StaleViolation{Read: read, Reason: reason})
		}
	}
	return violations, checked
}

func returnOf(w *Op) int64 {
	if w.Outcome == OK {
		return w.Return
	}
	return Never
}

// possibleStates computes, for the writes to one key, every state the key may have had and
// when. The "till" of a write is a suffix minimum over writes sorted by call time.
func possibleStates(writes []*Op) []possibleState {
	byCall := slices.Clone(writes)
	slices.SortStableFunc(byCall, func(a, b *Op) int { return cmpInt64(a.Call, b.Call) })
	// suffixFirst[i] is the write with the earliest return among byCall[i:].
	suffixFirst := make([]*Op, len(byCall)+1)
	for i := len(byCall) - 1; i >= 0; i-- {
		suffixFirst[i] = suffixFirst[i+1]
		if suffixFirst[i] == nil || returnOf(byCall[i]) < returnOf(suffixFirst[i]) {
			suffixFirst[i] = byCall[i]
		}
	}
	// firstToReturnAfter(t) is the write called after t that returned first, or nil.
	firstToReturnAfter := func(t int64) *Op {
		if t == Never {
			return nil
		}
		i, _ := slices.BinarySearchFunc(byCall, t+1, func(w *Op, target int64) int { return cmpInt64(w.Call, target) })
		return suffixFirst[i]
	}
	state := func(found bool, value string, from int64, replacedBy *Op) possibleState {
		till := Never
		if replacedBy != nil {
			till = returnOf(replacedBy)
		}
		return possibleState{found: found, value: value, from: from, till: till, replacedBy: replacedBy}
	}
	states := []possibleState{state(false, "", math.MinInt64, suffixFirst[0])}
	for _, w := range byCall {
		states = append(states, state(w.Kind != Delete, w.Value, w.Call, firstToReturnAfter(returnOf(w))))
	}
	return states
}

// culprit finds the shortest prefix in time of key's history that is illegal: at a cut time
// T, every operation called by T, those that had not returned by T counted as pending.
// Prefixes only add constraints as they grow, so a binary search over the calls' and
// returns' times finds the first illegal cut; the operation called or returning at it is the
// culprit.
func culprit(ops []Op, key string, timeout time.Duration) []string {
	var keyOps []Op
	var times []int64
	for _, op := range ops {
		if op.Key == key {
			keyOps = append(keyOps, op)
			times = append(times, op.Call)
			if op.Outcome == OK {
				times = append(times, op.Return)
			}
		}
	}
	if len(keyOps) == 0 {
		return nil
	}
	slices.SortStableFunc(keyOps, func(a, b Op) int { return cmpInt64(a.Call, b.Call) })
	slices.Sort(times)
	times = slices.Compact(times)
	prefix := func(cut int64) []Op {
		var out []Op
		for _, op := range keyOps {
			if op.Call > cut {
				break
			}
			if op.Outcome == OK && op.Return > cut {
				op.Outcome = Pending
			}
			out = append(out, op)
		}
		return out
	}
	illegal := func(i int) bool {
		return porcupine.CheckOperationsTimeout(registerModel, toPorcupine(prefix(times[i])), timeout) == porcupine.Illegal
	}
	if !illegal(len(times) - 1) {
		return nil
	}
	lo, hi := 0, len(times)-1 // illegal(hi) holds
	for lo < hi {
		mid := (lo + hi) / 2
		if illegal(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	cut := times[hi]
	var out []string
	var before []string
	for _, op := range keyOps {
		switch {
		case op.Call == cut || (op.Outcome == OK && op.Return == cut):
			out = append(out, op.String())
		case op.Call < cut:
			before = append(before, op.String())
		}
	}
	const context = 12
	return append(out, before[max(0, len(before)-context):]...)
}

// anomalies describes, for the linearizable reads of key, the plainest evidence against
// linearizability: a read whose value was replaced for certain before the read was called,
// or was not written before the read returned. A history can be illegal without any; the
// visualization then shows why.
func anomalies(ops []Op, key string) []string {
	var writes []*Op
	for i := range ops {
		op := &ops[i]
		if op.Key == key && op.changes() && op.Outcome != Failed {
			writes = append(writes, op)
		}
	}
	states := possibleStates(writes)
	var out []string
	for _, read := range ops {
		if read.Key != key || read.Kind != Get || !read.Mode.Linearizable() || read.Outcome != OK {
			continue
		}
		var latest *possibleState
		written := false
		for i := range states {
			st := &states[i]
			if st.found != read.Found || (st.found && st.value != read.Value) || st.from > read.Return {
				continue
			}
			written = true
			if latest == nil || st.till > latest.till {
				latest = st
			}
		}
		switch {
		case !written:
			out = append(out, fmt.Sprintf("%s: no write of that value was called before the read returned", read))
		case latest.till < read.Call:
			out = append(out, fmt.Sprintf("%s: the value was replaced for certain by %s before the read was called", read, latest.replacedBy))
		}
	}
	return out
}

// explainStale returns why read could not have returned what it did, or "" if it could.
func explainStale(read Op, states []possibleState, bound int64) string {
	earliest := int64(math.MinInt64)
	if bound > 0 && read.Call > math.MinInt64+bound {
		earliest = read.Call - bound
	}
	var candidates []possibleState
	for _, s := range states {
		if s.found == read.Found && (!s.found || s.value == read.Value) {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 { // only possible when found: the initial state is absent
		return fmt.Sprintf("no write of %s to key %s exists", strconv.Quote(read.Value), strconv.Quote(read.Key))
	}
	writtenInTime := false
	for _, s := range candidates {
		if s.from > read.Return {
			continue
		}
		writtenInTime = true
		if s.till >= earliest {
			return ""
		}
	}
	if !writtenInTime {
		return fmt.Sprintf("every write of that value to key %s was called after the read returned (at %d)",
			strconv.Quote(read.Key), read.Return)
	}
	latest := int64(math.MinInt64)
	for _, s := range candidates {
		if s.from <= read.Return {
			latest = max(latest, s.till)
		}
	}
	return fmt.Sprintf("the value was overwritten for certain by %d, more than the stale bound %v before the read's call at %d",
		latest, time.Duration(bound), read.Call)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}
