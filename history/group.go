package history

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Histories with Range or CAS operations are checked against a model of groups of keys: a
// key's group is its prefix up to and including the first '/' (the whole key when it has
// none), and a Range reads one whole group. Each group is one porcupine partition, so a range
// read is checked against the writes of every key it covers, and the check still scales with
// the number of groups rather than their product.

// Group is the group of key.
func Group(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return key[:i+1]
	}
	return key
}

type groupInput struct {
	kind        Kind
	key         string
	value       string // Set, CAS
	expect      string // CAS
	expectFound bool
}

type groupOutput struct {
	found   bool   // Get
	value   string // Get
	swapped bool   // CAS
	unknown bool   // CAS with an unknown outcome: either way
	values  string // Range: canonical form
}

// groupState is a group's keys and values in canonical form: "key\x00value\x01", sorted.
type groupState string

func (g groupState) entries() map[string]string {
	m := map[string]string{}
	for _, e := range strings.Split(string(g), "\x01") {
		if k, v, ok := strings.Cut(e, "\x00"); ok {
			m[k] = v
		}
	}
	return m
}

func canonical(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(1)
	}
	return b.String()
}

func describeValues(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

var groupModel = porcupine.Model{
	Partition: partitionByGroup,
	Init:      func() any { return groupState("") },
	Step: func(state, input, output any) (bool, any) {
		s := state.(groupState)
		in := input.(groupInput)
		out := output.(groupOutput)
		m := s.entries()
		cur, found := m[in.key]
		switch in.kind {
		case Set:
			m[in.key] = in.value
			return true, groupState(canonical(m))
		case Delete:
			delete(m, in.key)
			return true, groupState(canonical(m))
		case Get:
			if out.found != found {
				return false, s
			}
			return !found || out.value == cur, s
		case CAS:
			holds := found == in.expectFound && (!found || cur == in.expect)
			if !out.unknown && out.swapped != holds {
				return false, s
			}
			if holds {
				m[in.key] = in.value
				return true, groupState(canonical(m))
			}
			return true, s
		case Range:
			return out.values == string(s), s
		}
		return false, s
	},
	Equal: func(a, b any) bool { return a.(groupState) == b.(groupState) },
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(groupState)))
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string {
		in := input.(groupInput)
		out := output.(groupOutput)
		switch in.kind {
		case Set:
			return fmt.Sprintf("set(%s, %s)", in.key, strconv.Quote(in.value))
		case Delete:
			return fmt.Sprintf("del(%s)", in.key)
		case Get:
			if !out.found {
				return fmt.Sprintf("get(%s) -> absent", in.key)
			}
			return fmt.Sprintf("get(%s) -> %s", in.key, strconv.Quote(out.value))
		case CAS:
			expect := "absent"
			if in.expectFound {
				expect = strconv.Quote(in.expect)
			}
			return fmt.Sprintf("cas(%s, %s -> %s) swapped=%v", in.key, expect, strconv.Quote(in.value), out.swapped)
		case Range:
			return fmt.Sprintf("range(%s*) -> %s", in.key, describeValues(groupState(out.values).entries()))
		}
		return in.kind.String()
	},
	DescribeState: func(state any) string { return describeValues(state.(groupState).entries()) },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}

func partitionByGroup(ops []porcupine.Operation) [][]porcupine.Operation {
	byGroup := map[string][]porcupine.Operation{}
	for _, op := range ops {
		g := Group(op.Input.(groupInput).key)
		byGroup[g] = append(byGroup[g], op)
	}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	parts := make([][]porcupine.Operation, 0, len(groups))
	for _, g := range groups {
		parts = append(parts, byGroup[g])
	}
	return parts
}

// hasGroupOps reports whether a history needs the group model.
func hasGroupOps(ops []Op) bool {
	return slices.ContainsFunc(ops, func(op Op) bool { return op.Kind == Range || op.Kind == CAS })
}

// toGroupPorcupine is toPorcupine for the group model.
func toGroupPorcupine(ops []Op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range ops {
		ret := op.Return
		read := op.Kind == Get || op.Kind == Range
		switch {
		case op.Outcome == Failed:
			continue
		case read && (op.Outcome != OK || !op.Mode.Linearizable()):
			continue
		case op.Outcome != OK:
			ret = Never
		}
		meta := op.Outcome.String()
		if read {
			meta = op.Mode.String()
		}
		if op.Note != "" {
			meta += " " + op.Note
		}
		in := groupInput{kind: op.Kind, key: op.Key, value: op.Value, expect: op.Expect, expectFound: op.ExpectFound}
		o := groupOutput{found: op.Found, value: op.Value, swapped: op.Swapped, unknown: op.Outcome != OK}
		if op.Kind == Range {
			o.values = canonical(op.Values)
		}
		out = append(out, porcupine.Operation{ClientId: op.ClientID, Input: in, Call: op.Call, Output: o, Return: ret, Metadata: meta})
	}
	return out
}

// checkGroups checks a history with Range or CAS operations, group by group.
func checkGroups(original []Op, ops []porcupine.Operation, timeout time.Duration, res *Result) bool {
	if porcupine.CheckOperationsTimeout(groupModel, ops, timeout) == porcupine.Ok {
		return true
	}
	for _, part := range partitionByGroup(ops) {
		g := Group(part[0].Input.(groupInput).key)
		switch porcupine.CheckOperationsTimeout(groupModel, part, timeout) {
		case porcupine.Illegal:
			res.IllegalKeys = append(res.IllegalKeys, g)
			// The plainest evidence, key by key: reads of values certainly replaced.
			keys := map[string]bool{}
			for _, op := range original {
				if Group(op.Key) == g && op.Kind != Range && !keys[op.Key] {
					keys[op.Key] = true
					res.Anomalies = append(res.Anomalies, anomalies(original, op.Key)...)
				}
			}
		case porcupine.Unknown:
			res.TimedOutKeys = append(res.TimedOutKeys, g)
		}
	}
	return len(res.IllegalKeys) == 0
}
