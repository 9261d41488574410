package history

import (
	"testing"
	"time"
)

// Range reads and compare-and-swap are checked against every write of the group they cover.
func TestGroupModelRangeAndCAS(t *testing.T) {
	op := func(c int, k Kind, key, value string, call, ret int64) Op {
		return Op{ClientID: c, Kind: k, Key: key, Value: value, Call: call, Return: ret, Outcome: OK}
	}
	rangeOp := func(c int, values map[string]string, call, ret int64) Op {
		return Op{ClientID: c, Kind: Range, Key: "g/", Values: values, Call: call, Return: ret, Outcome: OK, Mode: ModeLease}
	}
	cas := func(c int, key, expect string, found bool, value string, swapped bool, call, ret int64) Op {
		return Op{ClientID: c, Kind: CAS, Key: key, Expect: expect, ExpectFound: found, Value: value, Swapped: swapped, Call: call, Return: ret, Outcome: OK}
	}
	for _, tc := range []struct {
		name string
		ops  []Op
		ok   bool
	}{
		{"a range sees both writes that finished before it", []Op{
			op(1, Set, "g/a", "1", 0, 10), op(2, Set, "g/b", "2", 0, 10),
			rangeOp(3, map[string]string{"g/a": "1", "g/b": "2"}, 20, 30)}, true},
		{"a range that misses a finished write", []Op{
			op(1, Set, "g/a", "1", 0, 10), op(2, Set, "g/b", "2", 0, 10),
			rangeOp(3, map[string]string{"g/a": "1"}, 20, 30)}, false},
		{"a range may see a concurrent write or not", []Op{
			op(1, Set, "g/a", "1", 0, 10), op(2, Set, "g/b", "2", 15, 40),
			rangeOp(3, map[string]string{"g/a": "1"}, 20, 30), rangeOp(4, map[string]string{"g/a": "1", "g/b": "2"}, 20, 30)}, true},
		{"two ranges that see a pair of writes in opposite orders", []Op{
			op(1, Set, "g/a", "1", 0, 100), op(2, Set, "g/b", "2", 0, 100),
			rangeOp(3, map[string]string{"g/a": "1"}, 10, 20), rangeOp(4, map[string]string{"g/b": "2"}, 10, 20)}, false},
		{"only one of two racing CAS from absent succeeds", []Op{
			cas(1, "g/x", "", false, "1", true, 0, 10), cas(2, "g/x", "", false, "2", false, 0, 10),
			op(3, Get, "g/x", "1", 20, 30)}, true},
		{"two racing CAS from absent both succeed", []Op{
			cas(1, "g/x", "", false, "1", true, 0, 10), cas(2, "g/x", "", false, "2", true, 0, 10)}, false},
		{"a CAS that failed although its condition held", []Op{
			op(1, Set, "g/x", "1", 0, 10), cas(2, "g/x", "1", true, "2", false, 20, 30)}, false},
		{"a CAS with an unknown outcome may have applied", []Op{
			{ClientID: 1, Kind: CAS, Key: "g/x", Value: "1", Call: 0, Outcome: Unknown},
			op(2, Get, "g/x", "1", 20, 30)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.ops {
				if tc.ops[i].Kind == Get {
					tc.ops[i].Found = true
				}
			}
			res := Check(tc.ops, 5*time.Second)
			if res.OK() != tc.ok {
				t.Fatalf("verdict %v, want ok=%v\n%s", res.Verdict, tc.ok, res.String())
			}
			if !tc.ok && (len(res.IllegalKeys) != 1 || res.IllegalKeys[0] != "g/") {
				t.Fatalf("illegal groups %v, want [g/]", res.IllegalKeys)
			}
		})
	}
}
