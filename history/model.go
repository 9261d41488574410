package history

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// registerInput is what porcupine sees as an operation's input. The key is kept only to
// partition the history; each partition is one register.
type registerInput struct {
	kind  Kind
	key   string
	value string // Set
}

// registerOutput is a Get's answer. Writes have the zero output; unknown writes never have
// their output compared.
type registerOutput struct {
	found bool
	value string
}

// registerState is one key's value in the sequential specification.
type registerState struct {
	found bool
	value string
}

func (s registerState) String() string {
	if !s.found {
		return "absent"
	}
	return strconv.Quote(s.value)
}

// registerModel is the sequential specification of a key-value store restricted to one key:
// Set stores, Delete removes, Get returns what is stored. Partitioning by key makes the check
// scale with the number of keys rather than with their product.
var registerModel = porcupine.Model{
	Partition: partitionByKey,
	Init:      func() any { return registerState{} },
	Step: func(state, input, output any) (bool, any) {
		s := state.(registerState)
		in := input.(registerInput)
		switch in.kind {
		case Set:
			return true, registerState{found: true, value: in.value}
		case Delete:
			return true, registerState{}
		case Get:
			out := output.(registerOutput)
			if out.found != s.found {
				return false, s
			}
			return !out.found || out.value == s.value, s
		}
		return false, s
	},
	Equal: func(a, b any) bool { return a.(registerState) == b.(registerState) },
	Hash: func(state any) uint64 {
		s := state.(registerState)
		if !s.found {
			return 0
		}
		h := fnv.New64a()
		h.Write([]byte(s.value))
		return h.Sum64() | 1
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		switch in.kind {
		case Set:
			return fmt.Sprintf("set(%s, %s)", in.key, strconv.Quote(in.value))
		case Delete:
			return fmt.Sprintf("del(%s)", in.key)
		case Get:
			out := output.(registerOutput)
			if !out.found {
				return fmt.Sprintf("get(%s) -> absent", in.key)
			}
			return fmt.Sprintf("get(%s) -> %s", in.key, strconv.Quote(out.value))
		}
		return fmt.Sprintf("%s(%s)", in.kind, in.key)
	},
	DescribeState: func(state any) string { return state.(registerState).String() },
	DescribeOperationMetadata: func(info any) string {
		if info == nil {
			return ""
		}
		return info.(string)
	},
}

// partitionByKey splits a history into one sub-history per key, in key order so that the
// result does not depend on map iteration.
func partitionByKey(ops []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range ops {
		k := op.Input.(registerInput).key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, byKey[k])
	}
	return parts
}
