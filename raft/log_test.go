package raft

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// logOf builds entries 1..n with the given terms.
func logOf(terms ...uint64) []Entry {
	out := make([]Entry, len(terms))
	for i, t := range terms {
		out[i] = Entry{Index: uint64(i + 1), Term: t, Data: []byte{byte(t), byte(i)}}
	}
	return out
}

func termsOf(ents []Entry) []uint64 {
	out := make([]uint64, len(ents))
	for i, e := range ents {
		out[i] = e.Term
	}
	return out
}

// newFollower builds node id of a 3-node cluster holding log, in term, with commit.
func newFollower(t *testing.T, id uint64, term, commit uint64, log []Entry) *Raft {
	t.Helper()
	cfg := testConfig(id, []uint64{1, 2, 3})
	r, err := New(cfg, Restored{HardState: HardState{Term: term, Commit: commit}, Entries: log, Applied: 0}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Advance(r.Ready())
	return r
}

func stepOK(t *testing.T, r *Raft, m Message) Ready {
	t.Helper()
	if m.To == 0 {
		m.To = r.id
	}
	if err := r.Step(m); err != nil {
		t.Fatalf("Step(%+v): %v", m, err)
	}
	rd := r.Ready()
	r.Advance(rd)
	return rd
}

func appResp(rd Ready) Message {
	for _, m := range rd.MessagesAfterPersist {
		if m.Type == MsgAppResp {
			return m
		}
	}
	return Message{}
}

// AppendEntries consistency check (§5.3): a follower accepts entries only after an entry
// matching the leader's prev index and term, removes only entries that really conflict, and
// answers a rejection with the hint the leader needs to skip a whole term.
func TestFollowerAppendConsistency(t *testing.T) {
	cases := []struct {
		name      string
		log       []uint64 // follower's entry terms
		commit    uint64
		m         Message
		wantLog   []uint64
		reject    bool
		conflictT uint64
		conflictI uint64
		ackIndex  uint64
	}{
		{"append at end", []uint64{1, 1}, 0,
			Message{Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 2}}},
			[]uint64{1, 1, 2}, false, 0, 0, 3},
		{"prev term mismatch", []uint64{1, 1, 2, 2}, 0,
			Message{Index: 4, LogTerm: 3, Entries: []Entry{{Index: 5, Term: 3}}},
			[]uint64{1, 1, 2, 2}, true, 2, 3, 4},
		{"log too short", []uint64{1, 1}, 0,
			Message{Index: 5, LogTerm: 3},
			[]uint64{1, 1}, true, 0, 3, 5},
		{"conflict truncates the suffix", []uint64{1, 1, 2, 2}, 2,
			Message{Index: 2, LogTerm: 1, Entries: []Entry{{Index: 3, Term: 3}}},
			[]uint64{1, 1, 3}, false, 0, 0, 3},
		{"old duplicate keeps the longer log", []uint64{1, 1, 1, 1}, 0,
			Message{Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: 1}}},
			[]uint64{1, 1, 1, 1}, false, 0, 0, 2},
		{"below commit is acknowledged at commit", []uint64{1, 1, 1, 1}, 3,
			Message{Index: 0, LogTerm: 0, Entries: []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}}},
			[]uint64{1, 1, 1, 1}, false, 0, 0, 3},
		{"overlapping commit appends the rest", []uint64{1, 1}, 2,
			Message{Index: 1, LogTerm: 1, Entries: []Entry{{Index: 2, Term: 1}, {Index: 3, Term: 3}}},
			[]uint64{1, 1, 3}, false, 0, 0, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ents := logOf(tc.log...)
			r := newFollower(t, 2, 3, tc.commit, ents)
			m := tc.m
			m.Type, m.From, m.Term, m.Commit = MsgApp, 1, 3, tc.commit
			rd := stepOK(t, r, m)
			if got := termsOf(r.log.entries); !slices.Equal(got, tc.wantLog) {
				t.Fatalf("log terms %v, want %v", got, tc.wantLog)
			}
			resp := appResp(rd)
			if resp.Reject != tc.reject || resp.Index != tc.ackIndex {
				t.Fatalf("reply reject=%v index=%d, want reject=%v index=%d", resp.Reject, resp.Index, tc.reject, tc.ackIndex)
			}
			if tc.reject && (resp.ConflictTerm != tc.conflictT || resp.ConflictIndex != tc.conflictI) {
				t.Fatalf("hint term %d index %d, want %d %d", resp.ConflictTerm, resp.ConflictIndex, tc.conflictT, tc.conflictI)
			}
			if tc.reject {
				if !hasEvent(rd.Events, EventAppendRejected) {
					t.Errorf("no append-rejected event: %v", rd.Events)
				}
			} else if len(m.Entries) > 0 && !hasEvent(rd.Events, EventAppendAccepted) {
				t.Errorf("no append-accepted event: %v", rd.Events)
			}
		})
	}
}

func hasEvent(evs []Event, k EventKind) bool {
	for _, e := range evs {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// An entry that conflicts at or below the commit index means safety already broke: the
// follower refuses the append with an error and changes nothing.
func TestNoTruncationAtOrBelowCommit(t *testing.T) {
	r := newFollower(t, 2, 3, 3, logOf(1, 1, 1, 1))
	err := r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 3, Index: 2, LogTerm: 1,
		Entries: []Entry{{Index: 3, Term: 2}, {Index: 4, Term: 2}}})
	if err == nil || !strings.Contains(err.Error(), "safety violated") {
		t.Fatalf("Step = %v, want a safety violation error", err)
	}
	if got := termsOf(r.log.entries); !slices.Equal(got, []uint64{1, 1, 1, 1}) {
		t.Fatalf("log changed to %v", got)
	}
}

// Slices handed out in a Ready keep their content when a later append truncates the log.
func TestTruncationDoesNotTouchHandedOutEntries(t *testing.T) {
	cfg := testConfig(2, []uint64{1, 2, 3})
	r, _ := New(cfg, Restored{}, 0)
	r.Step(Message{Type: MsgApp, From: 1, To: 2, Term: 1, Entries: logOf(1, 1, 1)})
	rd := r.Ready()
	before := slices.Clone(rd.Entries)
	// The Ready is still being persisted when a new leader overwrites index 2 onwards.
	r.Step(Message{Type: MsgApp, From: 3, To: 2, Term: 2, Index: 1, LogTerm: 1,
		Entries: []Entry{{Index: 2, Term: 2, Data: []byte("new")}}})
	for i := range before {
		if rd.Entries[i].Term != before[i].Term || string(rd.Entries[i].Data) != string(before[i].Data) {
			t.Fatalf("handed-out entry %d changed from %+v to %+v", i, before[i], rd.Entries[i])
		}
	}
	r.Advance(rd)
	if st := r.log.persisted; st != 1 {
		t.Fatalf("persisted = %d after the overwritten Ready, want 1 (index 2 onwards was replaced)", st)
	}
	rd = r.Ready()
	if len(rd.Entries) != 1 || rd.Entries[0].Index != 2 || rd.Entries[0].Term != 2 {
		t.Fatalf("next Ready entries %+v, want the replacement at index 2", rd.Entries)
	}
}

// Fast backtracking: with the follower's conflict hint the leader skips a whole term per
// round trip. The follower logs are those of the Raft paper's Figure 7; the leader of term 8
// brings each one to its own log in at most three rejections.
func TestFastBacktrackingFigure7(t *testing.T) {
	leaderLog := []uint64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	followers := map[string][]uint64{
		"a": {1, 1, 1, 4, 4, 5, 5, 6, 6},
		"b": {1, 1, 1, 4},
		"c": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6},
		"d": {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7},
		"e": {1, 1, 1, 4, 4, 4, 4},
		"f": {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3},
	}
	for name, flog := range followers {
		t.Run(name, func(t *testing.T) {
			net := newTestNet(t, 3)
			restore := func(id uint64, terms []uint64) {
				net.node(id).disk = driverDisk{hs: HardState{Term: 7}, entryLog: entryLog{entries: logOf(terms...)}}
				net.restart(id)
			}
			restore(1, leaderLog)
			restore(2, leaderLog) // votes for 1
			restore(3, flog)
			rejects := 0
			net.filter = func(m Message) bool {
				if m.Type == MsgAppResp && m.From == 3 && m.Reject {
					rejects++
				}
				return true
			}
			net.elect(1)
			net.stabilize()
			want := append(slices.Clone(leaderLog), 8) // plus the leader's no-op
			if got := termsOf(net.raft(3).log.entries); !slices.Equal(got, want) {
				t.Fatalf("follower log %v, want %v", got, want)
			}
			if rejects > 3 {
				t.Fatalf("%d rejections to converge, want at most 3", rejects)
			}
		})
	}
}

// Figure 8 (§5.4.2): a leader never commits an entry of an earlier term by counting replicas;
// it commits it only by committing an entry of its own term after it.
func TestFigure8CommitRule(t *testing.T) {
	cfg := func(id uint64) Config { return testConfig(id, []uint64{1, 2, 3, 4, 5}) }
	// S1 led term 2 and wrote index 2 only to S2; S5 led term 3 and wrote its own index 2.
	// S1 is now elected for term 4 by S1, S2, S3.
	s1, _ := New(cfg(1), Restored{HardState: HardState{Term: 3}, Entries: logOf(1, 2)}, 0)
	s1.Tick(time.Second) // election timeout, and past the lease assumed at start-up
	for _, p := range []uint64{2, 3} {
		s1.Step(Message{Type: MsgPreVoteResp, From: p, To: 1, Term: 4})
	}
	s1.Advance(s1.Ready()) // its term and vote are durable: it may count
	for _, p := range []uint64{2, 3} {
		s1.Step(Message{Type: MsgVoteResp, From: p, To: 1, Term: 4})
	}
	if st := s1.Status(); st.Role != Leader || st.Term != 4 {
		t.Fatalf("S1 is %v in term %d, want leader of term 4", st.Role, st.Term)
	}
	rd := s1.Ready() // persists the no-op at index 3
	s1.Advance(rd)
	// S2 and S3 now hold index 2 (term 2): a majority with S1, but of an older term.
	s1.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 4, Index: 2})
	s1.Step(Message{Type: MsgAppResp, From: 3, To: 1, Term: 4, Index: 2})
	if c := s1.Status().Commit; c != 0 {
		t.Fatalf("committed %d by counting replicas of a term-2 entry", c)
	}
	// Once a majority holds the term-4 no-op, it and everything before it commit.
	s1.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 4, Index: 3})
	if c := s1.Status().Commit; c != 0 {
		t.Fatalf("commit %d with only S1 and S2 holding index 3", c)
	}
	s1.Step(Message{Type: MsgAppResp, From: 3, To: 1, Term: 4, Index: 3})
	if c := s1.Status().Commit; c != 3 {
		t.Fatalf("commit %d after a majority holds the term-4 entry, want 3", c)
	}
}
