package chaos

import (
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/georaft/georaft/history"
)

// The watch checker reports each way a watch can break its guarantees, fed a recorded
// history: a missing revision, one delivered twice, two delivered out of order, an event
// no client caused, and a watch that saw nothing; and it reports nothing on a watch that
// kept them.
func TestWatchCheckerFlagsBrokenStreams(t *testing.T) {
	ops := []history.Op{
		{ClientID: 1, Kind: history.Set, Key: "a", Value: "1", Outcome: history.OK},
		{ClientID: 2, Kind: history.Set, Key: "b", Value: "2", Outcome: history.OK},
		{ClientID: 1, Kind: history.Delete, Key: "a", Outcome: history.OK},
		{ClientID: 2, Kind: history.CAS, Key: "b", Expect: "2", ExpectFound: true, Value: "3", Swapped: true, Outcome: history.OK},
		{ClientID: finalClientID, Kind: history.Get, Key: "a", Found: false, Outcome: history.OK},
		{ClientID: finalClientID, Kind: history.Get, Key: "b", Found: true, Value: "3", Outcome: history.OK},
	}
	const finalRev = 5
	rev2 := watchEvent{rev: 2, typ: mvccpb.PUT, key: "a", value: "1"}
	rev3 := watchEvent{rev: 3, typ: mvccpb.PUT, key: "b", value: "2"}
	rev4 := watchEvent{rev: 4, typ: mvccpb.DELETE, key: "a"}
	rev5 := watchEvent{rev: 5, typ: mvccpb.PUT, key: "b", value: "3"}
	check := func(events ...watchEvent) []string {
		wc := &watchChecker{events: events}
		var out []string
		for _, a := range wc.check(ops, finalRev) {
			if a.Kind != AnomalyWatch {
				t.Errorf("anomaly of kind %s, want %s: %s", a.Kind, AnomalyWatch, a.Detail)
			}
			out = append(out, a.Detail)
		}
		return out
	}
	if got := check(rev2, rev3, rev4, rev5); len(got) != 0 {
		t.Fatalf("a watch that kept every guarantee was reported: %q", got)
	}
	for _, tc := range []struct {
		name   string
		events []watchEvent
		want   []string // each must be reported
	}{
		{"gap", []watchEvent{rev2, rev4, rev5}, []string{"no event at revisions 3 to 3: a gap"}},
		{"duplicate", []watchEvent{rev2, rev3, rev3, rev4, rev5}, []string{"event at revision 3 after revision 3: out of order or repeated"}},
		{"reordering", []watchEvent{rev2, rev4, rev3, rev5}, []string{
			"no event at revisions 3 to 3: a gap", "event at revision 3 after revision 4: out of order or repeated"}},
		{"an event no client caused", []watchEvent{rev2, {rev: 3, typ: mvccpb.PUT, key: "b", value: "forged"}, rev4, rev5},
			[]string{`PUT b = "forged" at revision 3: no client wrote that value`}},
		{"a watch that stopped early", []watchEvent{rev2, rev3}, []string{
			"the watch ended at revision 3, the cluster is at revision 5",
			`key a: the watch ends with "1", the final read found it absent`,
			`key b: the watch ends with "2", the final read found "3"`}},
		{"a watch that saw nothing", nil, []string{"the watch ended at revision 1, the cluster is at revision 5",
			`key b: the watch ends with it absent, the final read found "3"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := check(tc.events...)
			for _, want := range tc.want {
				if !slices.Contains(got, want) {
					t.Errorf("reported %q; want %q among them", got, want)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("reported %d anomalies, want %d: %s", len(got), len(tc.want), strings.Join(got, "; "))
			}
		})
	}
}
