package raft

import (
	"strings"
	"testing"
	"time"
)

// PreVote (thesis §9.6): on an election timeout a follower first asks for pre-votes for
// term+1 without changing its term; only a pre-vote majority makes it a candidate.
func TestElectionGoesThroughPreVote(t *testing.T) {
	net := newTestNet(t, 3)
	r := net.raft(1)
	net.advanceNode(1, r.NextDeadline()-net.node(1).now)
	if st := r.Status(); st.Role != PreCandidate || st.Term != 0 {
		t.Fatalf("after the election timeout: %v in term %d, want pre-candidate in term 0", st.Role, st.Term)
	}
	net.processAll()
	pre := net.take(func(m Message) bool { return m.Type == MsgPreVote })
	if len(pre) != 2 || pre[0].Term != 1 {
		t.Fatalf("pre-votes %+v: want 2 for term 1", pre)
	}
	if rd := net.node(1).readies[len(net.node(1).readies)-1]; rd.HardState != nil {
		t.Fatalf("a pre-vote changed the hard state: %+v", *rd.HardState)
	}
	for _, m := range pre {
		if err := net.raft(m.To).Step(m); err != nil {
			t.Fatal(err)
		}
	}
	net.stabilize()
	if st := r.Status(); st.Role != Leader || st.Term != 1 {
		t.Fatalf("%v in term %d, want leader of term 1", st.Role, st.Term)
	}
	for _, id := range []uint64{2, 3} {
		if st := net.raft(id).Status(); st.Term != 1 || st.Leader != 1 || st.Vote != 1 {
			t.Errorf("node %d: term %d leader %d vote %d, want 1/1/1", id, st.Term, st.Leader, st.Vote)
		}
	}
	if len(net.eventsOf(1, EventElectionTimeout)) != 1 || len(net.eventsOf(1, EventBecameLeader)) != 1 {
		t.Errorf("events:\n%s", net.dumpEvents(1))
	}
}

// A node cut off from the others keeps failing pre-votes but never raises its term, so when
// the partition heals it cannot depose the healthy leader.
func TestPartitionedNodeDoesNotBumpTerm(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.isolate(3)
	for i := 0; i < 50; i++ {
		net.advance(10 * time.Millisecond)
		net.stabilize()
	}
	st3 := net.raft(3).Status()
	if st3.Term != 1 {
		t.Fatalf("isolated node reached term %d, want 1", st3.Term)
	}
	if st3.Role != PreCandidate {
		t.Fatalf("isolated node is %v, want pre-candidate", st3.Role)
	}
	if len(net.eventsOf(3, EventPreVoteFailed)) == 0 {
		t.Errorf("no pre-vote failure reported:\n%s", net.dumpEvents(3))
	}
	net.heal()
	for i := 0; i < 30; i++ {
		net.advance(10 * time.Millisecond)
		net.stabilize()
	}
	if st := net.raft(1).Status(); st.Role != Leader || st.Term != 1 {
		t.Fatalf("after healing node 1 is %v in term %d, want leader of term 1", st.Role, st.Term)
	}
	if st := net.raft(3).Status(); st.Role != Follower || st.Leader != 1 {
		t.Fatalf("after healing node 3 is %v of %d, want follower of 1", st.Role, st.Leader)
	}
}

// Vote rules (§5.2, §5.4.1): a vote goes only to a candidate whose log is at least as up to
// date, at most once per term; a follower that heard from its leader within the minimum
// election timeout refuses (leader stickiness) unless the campaign is a leadership transfer.
func TestVoteGrantingRules(t *testing.T) {
	// The voter (node 1) holds entries of terms 1,1,2 and is in term 2.
	voterLog := []Entry{{Index: 1, Term: 1}, {Index: 2, Term: 1}, {Index: 3, Term: 2}}
	cases := []struct {
		name        string
		vote        uint64 // the voter's vote in term 2
		leaderHeard bool   // the voter heard from leader 3 just now
		m           Message
		granted     bool
		reason      string
	}{
		{"longer log same term", None, false, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 2, Index: 4}, true, ""},
		{"equal log", None, false, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 2, Index: 3}, true, ""},
		{"higher last term shorter log", None, false, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 3, Index: 1}, true, ""},
		{"shorter log", None, false, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 2, Index: 2}, false,
			"candidate log is behind: last term 2 index 2 < ours 2 index 3"},
		{"lower last term", None, false, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 1, Index: 9}, false,
			"candidate log is behind: last term 1 index 9 < ours 2 index 3"},
		{"already voted this term", 3, false, Message{Type: MsgVote, From: 2, Term: 2, LogTerm: 2, Index: 3}, false,
			"already voted for 3 in term 2"},
		{"repeat vote for same candidate", 2, false, Message{Type: MsgVote, From: 2, Term: 2, LogTerm: 2, Index: 3}, true, ""},
		{"heard from leader", None, true, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 2, Index: 3}, false,
			"heard from leader 3 within election timeout"},
		{"heard from leader but transfer", None, true, Message{Type: MsgVote, From: 2, Term: 3, LogTerm: 2, Index: 3, Transfer: true}, true, ""},
		{"pre-vote heard from leader", None, true, Message{Type: MsgPreVote, From: 2, Term: 3, LogTerm: 2, Index: 3}, false,
			"pre-vote: heard from leader 3 within election timeout"},
		{"pre-vote up to date", None, false, Message{Type: MsgPreVote, From: 2, Term: 3, LogTerm: 2, Index: 3}, true, ""},
		{"pre-vote behind", None, false, Message{Type: MsgPreVote, From: 2, Term: 3, LogTerm: 1, Index: 3}, false,
			"pre-vote: candidate log is behind"},
		{"stale term", None, false, Message{Type: MsgVote, From: 2, Term: 1, LogTerm: 2, Index: 9}, false,
			"vote request for term 1 is behind our term 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(1, []uint64{1, 2, 3})
			r, err := New(cfg, Restored{HardState: HardState{Term: 2, Vote: tc.vote}, Entries: voterLog}, 0)
			if err != nil {
				t.Fatal(err)
			}
			r.Tick(time.Second)
			if tc.leaderHeard {
				if err := r.Step(Message{Type: MsgHeartbeat, From: 3, To: 1, Term: 2, SentAt: 1}); err != nil {
					t.Fatal(err)
				}
			}
			rd := r.Ready()
			r.Advance(rd)
			tc.m.To = 1
			if err := r.Step(tc.m); err != nil {
				t.Fatal(err)
			}
			rd = r.Ready()
			var resp *Message
			for i := range rd.MessagesAfterPersist {
				if m := &rd.MessagesAfterPersist[i]; m.Type == MsgVoteResp || m.Type == MsgPreVoteResp {
					resp = m
				}
			}
			if len(rd.Messages) != 0 {
				t.Fatalf("vote replies must wait for persistence, got Messages %+v", rd.Messages)
			}
			switch {
			case tc.name == "heard from leader":
				// A real vote in a higher term is ignored outright: no reply, no term change.
				if resp != nil || r.Status().Term != 2 {
					t.Fatalf("reply %+v, term %d: want no reply and term 2", resp, r.Status().Term)
				}
			case resp == nil:
				t.Fatalf("no vote reply; messages %+v", rd.MessagesAfterPersist)
			case resp.Reject == tc.granted:
				t.Fatalf("granted=%v (reason %q), want %v", !resp.Reject, resp.RejectReason, tc.granted)
			case !tc.granted && !strings.Contains(resp.RejectReason, tc.reason):
				t.Fatalf("reason %q, want it to mention %q", resp.RejectReason, tc.reason)
			}
			if tc.granted && tc.m.Type == MsgVote && tc.vote != tc.m.From {
				if rd.HardState == nil || rd.HardState.Vote != 2 || rd.HardState.Term != tc.m.Term {
					t.Fatalf("granted vote without its HardState in the same Ready: %+v", rd.HardState)
				}
			}
			if tc.m.Type == MsgPreVote && r.Status().Term != 2 {
				t.Fatalf("a pre-vote moved the voter to term %d", r.Status().Term)
			}
			if !tc.granted {
				found := false
				for _, e := range rd.Events {
					found = found || (e.Kind == EventVoteDenied && strings.Contains(e.Reason, tc.reason))
				}
				if !found {
					t.Errorf("no vote-denied event with %q in %v", tc.reason, rd.Events)
				}
			}
		})
	}
}

// A candidate counts each voter once, and replies from an earlier election (an older term)
// are not counted in the current one.
func TestStaleVoteRepliesIgnored(t *testing.T) {
	cfg := testConfig(1, []uint64{1, 2, 3, 4, 5})
	r, err := New(cfg, Restored{HardState: HardState{Term: 5}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Tick(time.Second) // election timeout: pre-vote for term 6
	for _, p := range []uint64{2, 3} {
		if err := r.Step(Message{Type: MsgPreVoteResp, From: p, To: 1, Term: 6}); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Status(); st.Role != Candidate || st.Term != 6 {
		t.Fatalf("%v in term %d, want candidate of term 6", st.Role, st.Term)
	}
	r.Advance(r.Ready()) // its term and vote are durable: it may count
	// A grant from term 5's election, and the same grant twice, must not elect it.
	for _, m := range []Message{
		{Type: MsgVoteResp, From: 2, To: 1, Term: 5},
		{Type: MsgVoteResp, From: 3, To: 1, Term: 5},
		{Type: MsgVoteResp, From: 2, To: 1, Term: 6},
		{Type: MsgVoteResp, From: 2, To: 1, Term: 6},
	} {
		if err := r.Step(m); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Status(); st.Role != Candidate {
		t.Fatalf("elected by stale or repeated votes: %v", st.Role)
	}
	if err := r.Step(Message{Type: MsgVoteResp, From: 4, To: 1, Term: 6}); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.Role != Leader {
		t.Fatalf("with 3 of 5 votes: %v, want leader", st.Role)
	}
}

// A pre-vote majority of refusals sends the pre-candidate back to follower, still in its
// term, and says so.
func TestPreVoteRefusedByMajority(t *testing.T) {
	cfg := testConfig(1, []uint64{1, 2, 3})
	r, _ := New(cfg, Restored{HardState: HardState{Term: 4}}, 0)
	r.Tick(time.Second)
	for _, p := range []uint64{2, 3} {
		r.Step(Message{Type: MsgPreVoteResp, From: p, To: 1, Term: 4, Reject: true, RejectReason: "heard from leader 2 within election timeout"})
	}
	if st := r.Status(); st.Role != Follower || st.Term != 4 {
		t.Fatalf("%v in term %d, want follower in term 4", st.Role, st.Term)
	}
	rd := r.Ready()
	found := false
	for _, e := range rd.Events {
		found = found || (e.Kind == EventPreVoteFailed && strings.Contains(e.String(), "heard from leader 2"))
	}
	if !found {
		t.Fatalf("no pre-vote failure event: %v", rd.Events)
	}
}

// CheckQuorum: a leader that has not heard from a quorum within the minimum election timeout
// steps down, exactly at that deadline, and its lease ends at once.
func TestCheckQuorumStepDown(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.isolate(1)
	lastHeard := net.node(1).now
	// Until the deadline it stays leader.
	for net.node(1).now < lastHeard+90*time.Millisecond {
		net.advance(10 * time.Millisecond)
		net.stabilize()
	}
	if st := net.raft(1).Status(); st.Role != Leader {
		t.Fatalf("stepped down after %v, before the %v timeout", net.node(1).now-lastHeard, 100*time.Millisecond)
	}
	d := net.raft(1).NextDeadline()
	if d > lastHeard+100*time.Millisecond {
		t.Fatalf("NextDeadline %v is after the CheckQuorum deadline %v", d, lastHeard+100*time.Millisecond)
	}
	net.advanceNode(1, lastHeard+100*time.Millisecond-net.node(1).now)
	st := net.raft(1).Status()
	if st.Role != Follower || st.Lease != LeaseNone || st.Term != 1 {
		t.Fatalf("at the deadline: %v lease %v term %d, want follower, no lease, term 1", st.Role, st.Lease, st.Term)
	}
	net.processAll()
	ev := net.eventsOf(1, EventSteppedDown)
	if len(ev) != 1 || !strings.Contains(ev[0].Reason, "lost quorum contact") {
		t.Fatalf("step-down events %v", ev)
	}
}

// A leader in contact with a quorum stays leader indefinitely, even with one follower gone.
func TestCheckQuorumKeepsLeaderWithQuorum(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.isolate(3)
	for i := 0; i < 100; i++ {
		net.advanceNode(1, 10*time.Millisecond)
		net.advanceNode(2, 10*time.Millisecond)
		net.stabilize()
	}
	if st := net.raft(1).Status(); st.Role != Leader || st.Term != 1 {
		t.Fatalf("node 1 is %v in term %d, want leader of term 1", st.Role, st.Term)
	}
}

// A message from a higher term turns a leader into a follower of that term, and the
// step-down names the term and the node.
func TestHigherTermDeposesLeader(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	r := net.raft(1)
	if err := r.Step(Message{Type: MsgAppResp, From: 2, To: 1, Term: 7, Index: 1}); err != nil {
		t.Fatal(err)
	}
	net.processAll()
	st := r.Status()
	if st.Role != Follower || st.Term != 7 || st.Vote != None {
		t.Fatalf("%v term %d vote %d, want follower of term 7 with no vote", st.Role, st.Term, st.Vote)
	}
	ev := net.eventsOf(1, EventSteppedDown)
	if len(ev) != 1 || ev[0].Reason != "higher term 7 from node 2" {
		t.Fatalf("step-down events %v", ev)
	}
}

// An append or heartbeat from a stale leader gets a reply carrying the newer term, so the
// stale leader learns it and steps down.
func TestStaleLeaderIsToldTheNewTerm(t *testing.T) {
	for _, typ := range []MessageType{MsgApp, MsgHeartbeat} {
		cfg := testConfig(2, []uint64{1, 2, 3})
		r, _ := New(cfg, Restored{HardState: HardState{Term: 5}}, 0)
		if err := r.Step(Message{Type: typ, From: 1, To: 2, Term: 3, SentAt: 42, Round: 7}); err != nil {
			t.Fatal(err)
		}
		rd := r.Ready()
		want := MsgAppResp
		if typ == MsgHeartbeat {
			want = MsgHeartbeatResp
		}
		if len(rd.MessagesAfterPersist) != 1 || rd.MessagesAfterPersist[0].Type != want || rd.MessagesAfterPersist[0].Term != 5 {
			t.Fatalf("%v from a stale leader: replies %+v, want one %v in term 5", typ, rd.MessagesAfterPersist, want)
		}
		if st := r.Status(); st.Term != 5 || st.Leader != None {
			t.Fatalf("stale %v changed the follower: %+v", typ, st)
		}
	}
}

// The election timeout is drawn in [min, max), differs between nodes, and is the same for
// the same seed.
func TestElectionTimeoutRandomized(t *testing.T) {
	deadlines := func(seed int64) []time.Duration {
		var out []time.Duration
		for id := uint64(1); id <= 5; id++ {
			cfg := testConfig(id, []uint64{1, 2, 3, 4, 5})
			cfg.Seed = seed
			r, _ := New(cfg, Restored{}, 0)
			out = append(out, r.NextDeadline())
		}
		return out
	}
	a, b, c := deadlines(1), deadlines(1), deadlines(2)
	distinct := map[time.Duration]bool{}
	for i, d := range a {
		if d < 100*time.Millisecond || d >= 200*time.Millisecond {
			t.Fatalf("deadline %v outside [100ms, 200ms)", d)
		}
		if d != b[i] {
			t.Fatalf("same seed, different deadlines: %v vs %v", a, b)
		}
		distinct[d] = true
	}
	if len(distinct) < 4 {
		t.Fatalf("deadlines hardly differ between nodes: %v", a)
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same == len(a) {
		t.Fatalf("another seed gave the same deadlines %v", a)
	}
}

// Pre-vote rounds are told apart by the term they ask for: a grant held up from an earlier
// round does not count in a later one (it would let a stale majority start a disruptive
// election), while the node still campaigns for term+1 when a round wins.
func TestPreVoteGrantFromEarlierRoundIgnored(t *testing.T) {
	cfg := testConfig(1, []uint64{1, 2, 3})
	r, _ := New(cfg, Restored{HardState: HardState{Term: 4}}, 0)
	r.Tick(time.Second) // round one asks for term 5
	rd := r.Ready()
	r.Advance(rd)
	first := rd.MessagesAfterPersist[0]
	if first.Type != MsgPreVote || first.Term != 5 {
		t.Fatalf("first round %+v, want a pre-vote for term 5", first)
	}
	r.Tick(2 * time.Second) // round one timed out: round two asks for term 6
	rd = r.Ready()
	r.Advance(rd)
	if second := rd.MessagesAfterPersist[0]; second.Term != 6 {
		t.Fatalf("second round asks for term %d, want 6", second.Term)
	}
	// Node 2's grant of round one arrives now.
	r.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 5})
	if st := r.Status(); st.Role != PreCandidate || st.Term != 4 {
		t.Fatalf("after a stale grant: %v in term %d, want still pre-candidate in term 4", st.Role, st.Term)
	}
	// Its grant of round two wins the pre-vote; the election is for term 5.
	r.Step(Message{Type: MsgPreVoteResp, From: 2, To: 1, Term: 6})
	if st := r.Status(); st.Role != Candidate || st.Term != 5 {
		t.Fatalf("after a current grant: %v in term %d, want candidate of term 5", st.Role, st.Term)
	}
}

// A node never campaigns for a term past MaxTerm (messages past it are refused,
// TestStepRefusesMalformedMessages): it becomes or stays a follower and says why. Found by
// FuzzCoreMessages, where a forged MsgTimeoutNow in term 2^64-1 made a node ask for votes in
// term 0.
func TestNoCampaignPastMaxTerm(t *testing.T) {
	noVoteRequestPast := func(t *testing.T, net *testNet, id uint64) {
		t.Helper()
		for _, rd := range net.node(id).readies {
			for _, m := range rd.Messages {
				if (m.Type == MsgVote || m.Type == MsgPreVote) && m.Term > MaxTerm {
					t.Errorf("node %d sent %v for term %d, past MaxTerm", id, m.Type, m.Term)
				}
			}
		}
	}
	timeOut := func(net *testNet, id uint64) {
		net.advanceNode(id, net.raft(id).NextDeadline()-net.node(id).now)
		net.cycle(id)
	}
	held := func(t *testing.T, net *testNet, id uint64, wantHolds int) {
		t.Helper()
		n := 0
		for _, e := range net.eventsOf(id, EventPreVoteFailed) {
			if strings.Contains(e.Reason, "too close to the largest term") {
				n++
			}
		}
		if n < wantHolds {
			t.Errorf("node %d: %d campaigns held at the term ceiling, want at least %d:\n%s", id, n, wantHolds, net.dumpEvents(id))
		}
	}

	t.Run("in MaxTerm, neither a transfer nor a timeout", func(t *testing.T) {
		net := newTestNet(t, 3)
		net.elect(1)
		// A leader in MaxTerm is taken at its word.
		if err := net.raft(2).Step(Message{Type: MsgHeartbeat, From: 3, To: 2, Term: MaxTerm}); err != nil {
			t.Fatal(err)
		}
		if err := net.raft(2).Step(Message{Type: MsgTimeoutNow, From: 3, To: 2, Term: MaxTerm}); err != nil {
			t.Fatal(err)
		}
		timeOut(net, 2)
		noVoteRequestPast(t, net, 2)
		if st := net.raft(2).Status(); st.Role != Follower || st.Term != MaxTerm {
			t.Fatalf("node 2 is %v in term %d, want a follower in term %d", st.Role, st.Term, MaxTerm)
		}
		held(t, net, 2, 2)
	})

	t.Run("one below MaxTerm, a second pre-vote round", func(t *testing.T) {
		net := newTestNet(t, 3)
		net.elect(1)
		if err := net.raft(2).Step(Message{Type: MsgHeartbeat, From: 3, To: 2, Term: MaxTerm - 1}); err != nil {
			t.Fatal(err)
		}
		// Nobody answers: the first round asks for MaxTerm, a second one would ask for more.
		timeOut(net, 2)
		timeOut(net, 2)
		noVoteRequestPast(t, net, 2)
		if st := net.raft(2).Status(); st.Role != Follower || st.Term != MaxTerm-1 {
			t.Fatalf("node 2 is %v in term %d, want a follower in term %d", st.Role, st.Term, MaxTerm-1)
		}
		held(t, net, 2, 1)
	})

	t.Run("a candidate in MaxTerm", func(t *testing.T) {
		net := newTestNet(t, 3)
		net.elect(1)
		if err := net.raft(2).Step(Message{Type: MsgTimeoutNow, From: 3, To: 2, Term: MaxTerm - 1}); err != nil {
			t.Fatal(err)
		}
		net.cycle(2)
		if st := net.raft(2).Status(); st.Role != Candidate || st.Term != MaxTerm {
			t.Fatalf("after the transfer node 2 is %v in term %d, want a candidate in term %d", st.Role, st.Term, MaxTerm)
		}
		timeOut(net, 2)
		noVoteRequestPast(t, net, 2)
		if st := net.raft(2).Status(); st.Role != Follower || st.Term != MaxTerm {
			t.Fatalf("after its election timeout node 2 is %v in term %d, want a follower in term %d", st.Role, st.Term, MaxTerm)
		}
		held(t, net, 2, 1)
	})
}
