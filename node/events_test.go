package node

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

// The ring keeps the newest eventRingSize events in order and hands out those after a
// number; a number beyond its newest (an earlier run's) gets them all; numbers keep growing
// across restarts.
func TestEventRing(t *testing.T) {
	start := time.Now()
	r := newEventRing(start)
	for i := range eventRingSize + 10 {
		r.add(start, categoryLease, strconv.Itoa(i))
	}
	all := r.since(0)
	if len(all) != eventRingSize || all[0].Text != "10" || all[len(all)-1].Text != strconv.Itoa(eventRingSize+9) {
		t.Fatalf("%d events from %q to %q", len(all), all[0].Text, all[len(all)-1].Text)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq+1 {
			t.Fatalf("numbers %d then %d", all[i-1].Seq, all[i].Seq)
		}
	}
	if got := r.since(all[len(all)-3].Seq); len(got) != 2 || got[0].Text != all[len(all)-2].Text {
		t.Errorf("since the third newest: %d events", len(got))
	}
	if got := r.since(all[len(all)-1].Seq); len(got) != 0 {
		t.Errorf("since the newest: %d events", len(got))
	}
	if got := r.since(all[len(all)-1].Seq + 1000); len(got) != eventRingSize {
		t.Errorf("since a number of another run: %d events, want all", len(got))
	}
	restarted := newEventRing(start.Add(time.Second))
	restarted.add(start, categoryLifecycle, "again")
	if restarted.since(0)[0].Seq <= all[len(all)-1].Seq {
		t.Error("a restarted node numbers its events below the last run's")
	}
}

// dump.txt's story reaches the ring, sorted; client traffic does not.
func TestDumpFeedsTheRing(t *testing.T) {
	d, err := openDumpLog(t.TempDir(), 0, DumpRequestsAll)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Printf("leadership transfer to node %d requested", 3)
	d.Request("client request received: %s", "SET k")
	d.Events([]raft.Event{{Kind: raft.EventBecameLeader, Term: 4}, {Kind: raft.EventCommitted, Index: 9}, {Kind: raft.EventLeaseLost, Term: 4, Reason: "expired"}})
	var got []string
	for _, e := range d.recent.since(0) {
		got = append(got, e.Category+": "+e.Text)
	}
	want := []string{"transfer: leadership transfer to node 3 requested", "election: term 4: became leader", "lease: term 4: lease lost: expired"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ring %q, want %q", got, want)
	}
}

// Every line node/ writes to dump.txt's story has a category, so the console can filter it:
// a new line needs an entry in lineCategories.
func TestEveryStoryLineHasACategory(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Printf" {
				return true
			}
			if recv, ok := sel.X.(*ast.SelectorExpr); !ok || recv.Sel.Name != "dump" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok {
				return true
			}
			format, _ := strconv.Unquote(lit.Value)
			found++
			if lineCategory(format) == categoryOther {
				t.Errorf("%s: dump line %q has no category in lineCategories", fset.Position(lit.Pos()), format)
			}
			return true
		})
	}
	if found < 10 {
		t.Errorf("found only %d dump lines: the check looks in the wrong place", found)
	}
	// Every kind the core knows (its String says more than "event N").
	for k := raft.EventKind(1); k < 255; k++ {
		known := !strings.HasSuffix(raft.Event{Kind: k}.String(), ": event "+strconv.Itoa(int(k)))
		if known && eventCategory(k) == categoryOther {
			t.Errorf("event kind %d (%s) has no category", k, raft.Event{Kind: k})
		}
	}
}
