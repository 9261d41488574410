package raft

import (
	"strings"
	"testing"
)

// TestReadyContractCatchesViolations hands the contract checks Readies that break the
// contract one rule at a time, at the step of the cycle where each rule is checked, and a
// Ready that keeps it: a check that cannot fail would prove nothing about the four harnesses
// that run it.
func TestReadyContractCatchesViolations(t *testing.T) {
	// Node 1 restarts in term 2 having voted for 2, with entries 1..3 (terms 1, 1, 2)
	// durable and 2 committed.
	boot := func(t *testing.T) *driverNode {
		t.Helper()
		n := newDriverNode(testConfig(1, []uint64{1, 2, 3}), nil)
		n.contract.readsAsked = true
		n.disk = driverDisk{hs: HardState{Term: 2, Vote: 2, Commit: 2}, entryLog: entryLog{entries: logOf(1, 1, 2)}}
		if err := n.boot(n.cfg, 0); err != nil {
			t.Fatal(err)
		}
		// The core has a Ready out, as while a driver carries one out; the checks are given
		// crafted Readies in its place.
		n.r.Ready()
		return &n
	}
	ent := func(index, term uint64) Entry { return Entry{Index: index, Term: term, Data: []byte("x")} }
	app := func(term uint64) Message { return Message{Type: MsgApp, From: 1, To: 2, Term: term} }
	hs := func(term, vote, commit uint64) *HardState { return &HardState{Term: term, Vote: vote, Commit: commit} }

	// run carries rd out step by step and returns the first violation and the step it was
	// found at.
	run := func(n *driverNode, rd Ready) (string, error) {
		n.held = &rd
		if err := n.checkReady(true, &rd); err != nil {
			return "take", err
		}
		if err := n.persist(); err != nil {
			return "persist", err
		}
		for _, e := range rd.CommittedEntries {
			if err := n.applyEntry(e); err != nil {
				return "apply", err
			}
		}
		if err := n.checkAnswers(&rd); err != nil {
			return "answer", err
		}
		return "", nil
	}

	good := Ready{
		HardState:            hs(3, 1, 3),
		Entries:              []Entry{ent(4, 3)},
		MessagesAfterPersist: []Message{{Type: MsgVote, From: 1, To: 2, Term: 3, Index: 4, LogTerm: 3}},
		CommittedEntries:     []Entry{ent(1, 1), ent(2, 1), ent(3, 2)},
	}
	if step, err := run(boot(t), good); err != nil {
		t.Fatalf("a Ready that keeps the contract fails at %s: %v", step, err)
	}

	for _, tc := range []struct {
		name, step, want string
		setup            func(n *driverNode)
		rd               Ready
	}{
		{name: "a vote reply sent before the persist", step: "take", want: "must wait",
			rd: Ready{Messages: []Message{{Type: MsgVoteResp, From: 1, To: 3, Term: 2}}}},
		{name: "a leader message of a term not durable", step: "take", want: "durable term is 2",
			rd: Ready{HardState: hs(3, 1, 2), Messages: []Message{app(3)}}},
		{name: "a message to itself", step: "take", want: "malformed",
			rd: Ready{Messages: []Message{{Type: MsgHeartbeat, From: 1, To: 1, Term: 2}}}},
		{name: "a message of no term", step: "take", want: "malformed",
			rd: Ready{Messages: []Message{{Type: MsgHeartbeat, From: 1, To: 2}}}},
		{name: "a snapshot the node does not hold", step: "take", want: "holds",
			rd: Ready{Messages: []Message{{Type: MsgSnap, From: 1, To: 2, Term: 2, Snapshot: SnapshotMeta{Index: 2, Term: 1}}}}},
		{name: "entries that leave a gap", step: "take", want: "gap",
			rd: Ready{Entries: []Entry{ent(5, 2)}}},
		{name: "entries out of order", step: "take", want: "not contiguous",
			rd: Ready{Entries: []Entry{ent(4, 2), ent(6, 2)}}},
		{name: "a committed entry replaced", step: "take", want: "at or below its commit index",
			rd: Ready{Entries: []Entry{ent(2, 2)}}},
		{name: "an entry of a term below the one before it", step: "take", want: "below the 2 before it",
			rd: Ready{Entries: []Entry{ent(4, 1)}}},
		{name: "an entry of a term beyond the node's", step: "take", want: "beyond the node's term",
			rd: Ready{Entries: []Entry{ent(4, 3)}}},
		{name: "a commit beyond the log", step: "take", want: "beyond its last index",
			rd: Ready{HardState: hs(2, 2, 4)}},
		{name: "a snapshot below the applied index", step: "take", want: "already applied",
			setup: func(n *driverNode) { n.appliedIndex = 2 },
			rd:    Ready{Snapshot: &SnapshotMeta{Index: 2, Term: 1}}},
		{name: "HasReady said nothing was ready", step: "take", want: "HasReady was false",
			rd: Ready{Entries: []Entry{ent(4, 2)}}},
		{name: "a term that goes back", step: "persist", want: "after term 2",
			rd: Ready{HardState: hs(1, 0, 2)}},
		{name: "a commit that goes back", step: "persist", want: "after commit 2",
			rd: Ready{HardState: hs(2, 2, 1)}},
		{name: "a vote that changes", step: "persist", want: "changes its vote",
			rd: Ready{HardState: hs(2, 3, 2)}},
		{name: "a snapshot that never arrived", step: "persist", want: "never arrived",
			rd: Ready{HardState: hs(2, 2, 5), Snapshot: &SnapshotMeta{Index: 5, Term: 2}}},
		{name: "a vote request before the vote is durable", step: "persist", want: "before persisting its own vote",
			rd: Ready{MessagesAfterPersist: []Message{{Type: MsgVote, From: 1, To: 2, Term: 3}}}},
		{name: "a vote granted before it is durable", step: "persist", want: "before persisting it",
			rd: Ready{MessagesAfterPersist: []Message{{Type: MsgVoteResp, From: 1, To: 3, Term: 2}}}},
		{name: "an acknowledgement of entries not durable", step: "persist", want: "acknowledges entries up to 4",
			rd: Ready{MessagesAfterPersist: []Message{{Type: MsgAppResp, From: 1, To: 2, Term: 2, Index: 4}}}},
		{name: "a leader message that waited for nothing", step: "persist", want: "though its term was durable",
			rd: Ready{MessagesAfterPersist: []Message{app(2)}}},
		{name: "a committed entry applied twice", step: "apply", want: "gap or repeat",
			setup: func(n *driverNode) { n.appliedIndex = 1 },
			rd:    Ready{CommittedEntries: []Entry{ent(1, 1)}}},
		{name: "an entry applied beyond the commit index", step: "apply", want: "beyond the commit index",
			rd: Ready{CommittedEntries: []Entry{ent(1, 1), ent(2, 1), ent(3, 2)}}},
		{name: "a committed entry that is not durable", step: "apply", want: "not durable",
			rd: Ready{HardState: hs(2, 2, 2), CommittedEntries: []Entry{ent(1, 7)}}},
		{name: "a read nobody asked for", step: "answer", want: "not pending",
			rd: Ready{ReadStates: []ReadState{{ID: 9, Index: 1}}}},
		{name: "a read answered beyond the commit index", step: "answer", want: "beyond its commit",
			setup: func(n *driverNode) { n.contract.pending[9] = true },
			rd:    Ready{ReadStates: []ReadState{{ID: 9, Index: 3}}}},
		{name: "a read dropped without a reason", step: "answer", want: "without saying why",
			setup: func(n *driverNode) { n.contract.pending[9] = true },
			rd:    Ready{DroppedReads: []DroppedRead{{ID: 9}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := boot(t)
			if tc.setup != nil {
				tc.setup(n)
			}
			var step string
			var err error
			if tc.name == "HasReady said nothing was ready" {
				step, err = "take", n.checkReady(false, &tc.rd)
			} else {
				step, err = run(n, tc.rd)
			}
			if err == nil || step != tc.step || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("caught at %q: %v; want an error at %q saying %q", step, err, tc.step, tc.want)
			}
		})
	}

	// A vote granted in a term to a second candidate (the first one granted in an earlier
	// incarnation), and a term that goes back.
	t.Run("two votes in one term, across a restart", func(t *testing.T) {
		n := boot(t)
		n.contract.votes = map[uint64]uint64{2: 3}
		if _, err := run(n, Ready{MessagesAfterPersist: []Message{{Type: MsgVoteResp, From: 1, To: 2, Term: 2}}}); err == nil ||
			!strings.Contains(err.Error(), "voted for 3 and for 2") {
			t.Fatalf("%v, want the second vote in term 2 caught", err)
		}
	})
	t.Run("a term that goes back in Status", func(t *testing.T) {
		n := boot(t)
		st := n.r.BasicStatus()
		st.Term = 1
		if err := n.observe(st); err == nil || !strings.Contains(err.Error(), "term went back") {
			t.Fatalf("%v, want the term going back caught", err)
		}
	})
}

// TestEntryLog: the driver's log refuses what no Ready may hold, replaces a suffix, keeps
// the entries after a compaction point it holds, and restarts empty at a leader's snapshot.
func TestEntryLog(t *testing.T) {
	var l entryLog
	if err := l.appendEntries([]Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := l.appendEntries([]Entry{{Index: 5, Term: 2}}); err == nil {
		t.Fatal("a gap was accepted")
	}
	if err := l.appendEntries([]Entry{{Index: 3, Term: 3}, {Index: 4, Term: 3}}); err != nil || l.lastIndex() != 4 {
		t.Fatalf("replacing the suffix: %v, last %d", err, l.lastIndex())
	}
	l.compact(SnapshotMeta{Index: 3, Term: 3}) // held: keeps 4
	if term, ok := l.term(4); !ok || term != 3 || l.lastIndex() != 4 {
		t.Fatalf("after compacting at a held entry the log is %+v", l)
	}
	l.compact(SnapshotMeta{Index: 6, Term: 4}) // beyond: replaces everything
	if l.lastIndex() != 6 || len(l.entries) != 0 {
		t.Fatalf("after compacting beyond the log it is %+v", l)
	}
	if err := l.appendEntries([]Entry{{Index: 6, Term: 4}}); err == nil {
		t.Fatal("overwriting the snapshot was accepted")
	}
	if err := l.appendEntries([]Entry{{Index: 7, Term: 4}, {Index: 8, Term: 4}}); err != nil {
		t.Fatal(err)
	}
	l.restartAt(SnapshotMeta{Index: 7, Term: 4}) // a leader's snapshot: every entry goes
	if l.lastIndex() != 7 || len(l.entries) != 0 {
		t.Fatalf("after a leader's snapshot the log is %+v", l)
	}
}
