package raft

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Stale-read freshness on a follower is dated by its own clock, echoed by the leader
// (Message.FollowerClock), not by when a leader's message arrived (chaos finding F1b).

func respOfType(t *testing.T, rd Ready, typ MessageType) Message {
	t.Helper()
	for _, m := range rd.MessagesAfterPersist {
		if m.Type == typ {
			return m
		}
	}
	t.Fatalf("no %v in %+v", typ, rd.MessagesAfterPersist)
	return Message{}
}

// A follower paused longer than MaxStaleness finds a backlog of the leader's messages when
// it resumes. The first one it handles holds everything the leader had committed when it was
// sent, so under receipt dating it would make the follower fresh at once, with state as old
// as the pause. Dated by the echo, the follower stays too stale until its leader has seen a
// response from after the pause; then it is fresh again.
func TestBacklogAfterPauseCarriesItsAge(t *testing.T) {
	const bound, pause = 300 * ms, 500 * ms
	net := newTestNet(t, 3, func(c *Config) {
		c.MaxStaleness = bound
		// Longer than the pause, so that resuming does not start with an election.
		c.ElectionTimeoutMin, c.ElectionTimeoutMax = 2*time.Second, 3*time.Second
	})
	net.elect(1)
	for range 5 {
		net.advance(10 * ms)
		net.stabilize()
	}
	f := net.raft(2)
	if err := f.Read(1, ReadStale); err != nil {
		t.Fatalf("before the pause: %v", err)
	}
	pausedAt := net.node(2).now

	// Node 2 is stopped: its clock runs on, but it handles nothing; what the leader sends it
	// waits in its socket. The cluster keeps writing.
	var backlog []Message
	for elapsed := time.Duration(0); elapsed < pause; elapsed += 10 * ms {
		net.advanceNode(1, 10*ms)
		net.advanceNode(3, 10*ms)
		if elapsed%(50*ms) == 0 {
			net.propose(1, "x")
		}
		net.processAll()
		backlog = append(backlog, net.take(func(m Message) bool { return m.To == 2 })...)
		net.deliver()
	}
	if len(backlog) < 2 {
		t.Fatalf("setup: backlog of %d messages", len(backlog))
	}

	// It resumes and handles its backlog over several turns, oldest first.
	net.advanceNode(2, net.node(1).now-net.node(2).now)
	resumedAt := net.node(2).now
	for i, m := range backlog {
		if err := f.Step(m); err != nil {
			t.Fatalf("backlog message %d (%v): %v", i, m.Type, err)
		}
		net.cycle(2)
		if i == 0 && f.Status().Commit < m.Commit {
			t.Fatalf("setup: the first backlog message commits %d, the follower only %d; it should hold the leader's commit",
				m.Commit, f.Status().Commit)
		}
		if err := f.Read(uint64(10+i), ReadStale); !errors.Is(err, ErrTooStale) {
			t.Fatalf("after backlog message %d of %d (%v sent during the pause), %v after the pause began: stale read %v, want ErrTooStale",
				i+1, len(backlog), m.Type, resumedAt-pausedAt, err)
		}
		if st := f.Status(); st.LastLeaderContact > pausedAt {
			t.Fatalf("backlog message %d dated the state at %v, after the pause began at %v", i+1, st.LastLeaderContact, pausedAt)
		}
	}

	// Its answers (in flight since each cycle) reach the leader, whose next messages echo a
	// reading from after the pause.
	net.stabilize()
	net.advance(10 * ms)
	net.stabilize()
	if err := f.Read(100, ReadStale); err != nil {
		t.Fatalf("after a round trip since resuming: %v", err)
	}
	if st := f.Status(); st.LastLeaderContact < resumedAt {
		t.Fatalf("fresh as of %v, want a reading from after resuming at %v", st.LastLeaderContact, resumedAt)
	}
}

// In steady state a follower's freshness lags its clock by about a heartbeat round, so it
// keeps answering stale reads under a bound a few heartbeats long, with or without writes.
func TestSteadyStateFollowerStaysFresh(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxStaleness = 100 * ms })
	net.elect(1)
	interval := net.node(1).cfg.HeartbeatInterval
	for i := range 60 {
		if i%3 == 0 {
			net.propose(1, "x")
		}
		net.advance(10 * ms)
		net.stabilize()
		for _, id := range []uint64{2, 3} {
			if err := net.raft(id).Read(uint64(i), ReadStale); err != nil {
				t.Fatalf("round %d, follower %d: %v", i, id, err)
			}
			st := net.raft(id).Status()
			if age := st.Now - st.LastLeaderContact; age < 0 || age > 2*interval {
				t.Fatalf("round %d, follower %d: state dated %v at %v, want within two heartbeats (%v)",
					i, id, st.LastLeaderContact, st.Now, 2*interval)
			}
		}
	}
}

// Every append and heartbeat response carries the follower's clock, accepted or rejected.
func TestResponsesCarryFollowerClock(t *testing.T) {
	r := newFollower(t, 2, 1, 0, logOf(1, 1))
	r.Tick(700 * ms)
	rd := stepOK(t, r, Message{Type: MsgApp, From: 1, Term: 1, Index: 2, LogTerm: 1, Commit: 2})
	if resp := respOfType(t, rd, MsgAppResp); resp.Reject || resp.FollowerClock != 700*ms {
		t.Fatalf("accepted append: response %+v, want FollowerClock 700ms", resp)
	}
	r.Tick(750 * ms)
	rd = stepOK(t, r, Message{Type: MsgApp, From: 1, Term: 1, Index: 9, LogTerm: 1, Commit: 2})
	if resp := respOfType(t, rd, MsgAppResp); !resp.Reject || resp.FollowerClock != 750*ms {
		t.Fatalf("rejected append: response %+v, want a rejection with FollowerClock 750ms", resp)
	}
	r.Tick(800 * ms)
	rd = stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 1, Commit: 2})
	if resp := respOfType(t, rd, MsgHeartbeatResp); resp.FollowerClock != 800*ms {
		t.Fatalf("heartbeat: response %+v, want FollowerClock 800ms", resp)
	}
}

// The leader echoes, to each follower, the clock of the latest response it got from that
// follower: per follower, and the latest rather than the largest, so that a follower whose
// clock restarted from a new origin gets its own readings back.
func TestLeaderEchoesLatestFollowerClockPerFollower(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	net.advanceNode(3, 3*ms) // the followers' clocks differ, as they do between machines
	net.advance(10 * ms)
	net.stabilize()
	answered := map[uint64]time.Duration{2: net.node(2).now, 3: net.node(3).now}
	net.advance(10 * ms)
	net.processAll()
	hbs := net.take(func(m Message) bool { return m.From == 1 && m.Type == MsgHeartbeat })
	if len(hbs) != 2 {
		t.Fatalf("heartbeats %+v, want one per follower", hbs)
	}
	var toTwo Message
	for _, m := range hbs {
		if m.FollowerClock != answered[m.To] {
			t.Fatalf("heartbeat to %d echoes %v, want its last response's clock %v", m.To, m.FollowerClock, answered[m.To])
		}
		if m.To == 2 {
			toTwo = m
		}
	}
	if answered[2] == answered[3] {
		t.Fatalf("setup: both followers answered at %v", answered[2])
	}

	// A later response with a smaller clock (the follower restarted) replaces the echo.
	earlier := answered[2] / 2
	l := net.raft(1)
	if err := l.Step(Message{Type: MsgHeartbeatResp, From: 2, To: 1, Term: toTwo.Term, SentAt: toTwo.SentAt,
		Round: toTwo.Round, FollowerClock: earlier}); err != nil {
		t.Fatal(err)
	}
	net.propose(1, "x")
	net.processAll()
	apps := net.take(func(m Message) bool { return m.From == 1 && m.Type == MsgApp })
	for _, m := range apps {
		want := answered[m.To]
		if m.To == 2 {
			want = earlier
		}
		if m.FollowerClock != want {
			t.Fatalf("append to %d echoes %v, want %v", m.To, m.FollowerClock, want)
		}
	}
	if len(apps) != 2 {
		t.Fatalf("appends %+v, want one per follower", apps)
	}
}

// The first message of a term to a follower echoes nothing (0): it gives no freshness even
// when the follower holds the leader's commit. An echo then dates the state, freshness never
// moves backwards, and an echo above the follower's clock (not a reading of this process) is
// ignored.
func TestFollowerFreshnessFromEcho(t *testing.T) {
	r := newFollower(t, 2, 2, 0, logOf(1, 2))
	r.Tick(time.Second)
	stepOK(t, r, Message{Type: MsgApp, From: 1, Term: 2, Index: 2, LogTerm: 2, Commit: 2})
	if st := r.Status(); st.Commit != 2 {
		t.Fatalf("setup: follower commit %d, want the leader's 2", st.Commit)
	}
	if err := r.Read(1, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("after a message echoing no clock: %v, want ErrTooStale", err)
	}

	if bound := r.cfg.MaxStaleness; bound <= 20*ms {
		t.Fatalf("setup: MaxStaleness %v, want above 20ms", bound)
	}
	r.Tick(1020 * ms)
	stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 2, Commit: 2, FollowerClock: time.Second})
	if err := r.Read(2, ReadStale); err != nil {
		t.Fatalf("after an echo of 1s: %v", err)
	}
	if got := r.Status().LastLeaderContact; got != time.Second {
		t.Fatalf("fresh as of %v, want the echoed 1s (not the receipt at 1.02s)", got)
	}

	stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 2, Commit: 2, FollowerClock: 990 * ms})
	if got := r.Status().LastLeaderContact; got != time.Second {
		t.Fatalf("an older echo moved freshness to %v, want it kept at 1s", got)
	}
	stepOK(t, r, Message{Type: MsgHeartbeat, From: 1, Term: 2, Commit: 2, FollowerClock: 5 * time.Second})
	if got := r.Status().LastLeaderContact; got != time.Second {
		t.Fatalf("an echo above the clock (1.02s) moved freshness to %v, want it kept at 1s", got)
	}

	// The bound is measured from the echoed reading: 1s + MaxStaleness, not 1.02s + it.
	bound := r.cfg.MaxStaleness
	r.Tick(time.Second + bound)
	if err := r.Read(3, ReadStale); err != nil {
		t.Fatalf("at exactly the bound from the echo: %v", err)
	}
	r.Tick(time.Second + bound + 1)
	if err := r.Read(4, ReadStale); !errors.Is(err, ErrTooStale) {
		t.Fatalf("just past the bound from the echo: %v, want ErrTooStale", err)
	}
}

// A new leader starts its term with nothing to echo: its first appends carry FollowerClock 0
// to every follower, even those that answered it as a follower or answered the previous
// leader, and later ones the followers' own readings.
func TestFirstRoundOfTermEchoesNothing(t *testing.T) {
	net := newTestNet(t, 3)
	net.elect(1)
	for range 3 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if err := net.raft(1).TransferLeadership(2); err != nil {
		t.Fatal(err)
	}
	first := map[uint64]Message{}
	for i := 0; len(first) < 2; i++ {
		if i > 100 {
			t.Fatalf("node 2 sent no append or heartbeat in a new term: %+v", net.raft(2).Status())
		}
		net.processAll()
		for _, m := range net.inflight {
			if _, seen := first[m.To]; !seen && m.From == 2 && m.Term > 1 && (m.Type == MsgApp || m.Type == MsgHeartbeat) {
				first[m.To] = m
			}
		}
		net.deliver()
	}
	for to, m := range first {
		if m.FollowerClock != 0 {
			t.Fatalf("first %v of term %d to node %d echoes %v, want 0", m.Type, m.Term, to, m.FollowerClock)
		}
	}
	net.stabilize()
	net.advance(10 * ms)
	net.processAll()
	hbs := net.take(func(m Message) bool { return m.From == 2 && m.Type == MsgHeartbeat })
	if len(hbs) != 2 {
		t.Fatalf("heartbeats of the new leader %+v, want one per follower", hbs)
	}
	for _, m := range hbs {
		if m.FollowerClock <= 0 || m.FollowerClock > net.node(m.To).now {
			t.Fatalf("later heartbeat to %d echoes %v, want a reading of its clock (now %v)", m.To, m.FollowerClock, net.node(m.To).now)
		}
	}
}

// A follower's clock restarts with its process. After a restart the leader still echoes its
// previous life's readings until it hears from the new one; the follower takes none of them
// (they are above its clock) and is fresh again after one round trip of its own.
func TestRestartedFollowerIgnoresItsPreviousClock(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.MaxStaleness = 100 * ms })
	net.elect(1)
	for range 30 {
		net.advance(10 * ms)
		net.stabilize()
	}
	before := net.node(2).now
	net.node(2).now = 20 * ms // a new process: its clock counts from its own start
	net.restart(2)
	f := net.raft(2)

	net.advance(10 * ms)
	net.processAll()
	toTwo := net.take(func(m Message) bool { return m.To == 2 })
	if len(toTwo) == 0 {
		t.Fatal("setup: the leader sent node 2 nothing")
	}
	for i, m := range toTwo {
		if m.FollowerClock <= net.node(2).now || m.FollowerClock > before {
			t.Fatalf("setup: message %d echoes %v; want a reading of the previous life (≤ %v) above the new clock %v",
				i, m.FollowerClock, before, net.node(2).now)
		}
		if err := f.Step(m); err != nil {
			t.Fatal(err)
		}
		net.cycle(2)
		if i == 0 && f.Status().Commit < m.Commit {
			t.Fatalf("setup: restarted follower commit %d, below the leader's %d", f.Status().Commit, m.Commit)
		}
		if err := f.Read(uint64(i+1), ReadStale); !errors.Is(err, ErrTooStale) {
			t.Fatalf("echo %v of the previous life at %v: stale read %v, want ErrTooStale", m.FollowerClock, net.node(2).now, err)
		}
	}

	restartedAt := net.node(2).now
	for range 2 {
		net.stabilize()
		net.advance(10 * ms)
	}
	net.stabilize()
	if err := f.Read(100, ReadStale); err != nil {
		t.Fatalf("two heartbeats after the restart: %v", err)
	}
	if st := f.Status(); st.LastLeaderContact < restartedAt || st.LastLeaderContact > st.Now {
		t.Fatalf("fresh as of %v, want a reading of the new life in [%v, %v]", st.LastLeaderContact, restartedAt, st.Now)
	}
}

// A follower whose machine restarted has a clock of a new origin (a new BootID), which may
// already read more than its previous life's last readings. The leader still echoes those
// until it hears from the new life; each one is below the new clock and would date the
// follower's state as recent, so the follower takes none of them: they are of another boot.
func TestEchoesOfAnotherBootGiveNoFreshness(t *testing.T) {
	for _, sameBootOff := range []bool{false, true} {
		net := newTestNet(t, 3, func(c *Config) {
			c.MaxStaleness = 100 * ms
			c.BootID = 1
			c.off.freshnessSameBoot = sameBootOff
		})
		net.elect(1)
		for range 30 {
			net.advance(10 * ms)
			net.stabilize()
		}
		// The machine restarts; its new clock happens to read a little more than the old one.
		nd := net.node(2)
		nd.cfg.BootID = 2
		nd.now += 20 * ms
		net.restart(2)
		f := net.raft(2)
		net.advanceNode(1, 10*ms)
		net.processAll()
		toTwo := net.take(func(m Message) bool { return m.To == 2 && m.Type == MsgHeartbeat })
		if len(toTwo) == 0 || toTwo[0].FollowerBoot != 1 || toTwo[0].FollowerClock >= nd.now {
			t.Fatalf("setup: heartbeats to node 2 %+v; want echoes of boot 1 below its new clock %v", toTwo, nd.now)
		}
		if err := f.Step(toTwo[0]); err != nil {
			t.Fatal(err)
		}
		net.cycle(2)
		err := f.Read(1, ReadStale)
		switch {
		case !sameBootOff && !errors.Is(err, ErrTooStale):
			t.Fatalf("an echo of the previous boot made the follower fresh: stale read %v, want ErrTooStale", err)
		case sameBootOff && err != nil:
			t.Fatalf("with the boot check off the old echo should pass (else this test shows nothing): %v", err)
		}
	}
}

// A leader that holds no lease does not know that no other leader has committed since it
// last heard from a quorum, so the clock readings it echoes date nothing: it echoes none.
func TestLeaderWithoutLeaseEchoesNoFollowerClock(t *testing.T) {
	net := newTestNet(t, 5)
	net.elect(1)
	net.untilLeaseHeld(1)
	hb := func() Message {
		net.raft(1).broadcastHeartbeat()
		rd := net.cycle(1)
		net.inflight = nil
		for _, m := range rd.Messages {
			if m.Type == MsgHeartbeat && m.To == 2 {
				return m
			}
		}
		t.Fatal("no heartbeat to node 2")
		return Message{}
	}
	if m := hb(); m.FollowerClock == 0 || m.FollowerBoot != net.raft(2).cfg.BootID {
		t.Fatalf("a leader holding its lease echoes %v (boot %d), want node 2's last reading", m.FollowerClock, m.FollowerBoot)
	}
	// Only node 2 still answers: no quorum, so the lease runs out while node 1 still leads.
	for _, p := range []uint64{3, 4, 5} {
		net.cut[[2]uint64{1, p}], net.cut[[2]uint64{p, 1}] = true, true
	}
	for net.raft(1).Status().Lease == LeaseHeld {
		net.advance(5 * ms)
		net.stabilize()
	}
	if st := net.raft(1).Status(); st.Role != Leader {
		t.Fatalf("setup: node 1 stepped down already: %+v", st)
	}
	if m := hb(); m.FollowerClock != 0 {
		t.Fatalf("a leader without a lease echoes %v: node 2 would count itself fresh", m.FollowerClock)
	}
}

// A follower that restarts, or learns its leader only after the leader's entries reached
// it, counts every entry of its leader's term it holds as matching the leader's log (log
// matching): an idle leader's heartbeat then tells it the commit index, with no append to
// come.
func TestRestartedFollowerLearnsCommitFromHeartbeat(t *testing.T) {
	net := newTestNet(t, 3, func(c *Config) { c.LazyCommitBroadcast = true })
	net.elect(1)
	idx, _ := net.propose(1, "x")
	// Node 2 gets and persists the entry; the leader commits it with node 3, and node 2
	// restarts before it hears of the commit.
	net.processAll()
	net.deliver()
	net.processAll()
	net.deliver()
	net.processAll()
	if c := net.raft(1).Status().Commit; c < idx {
		t.Fatalf("setup: leader commit %d, want %d", c, idx)
	}
	net.inflight = slices.DeleteFunc(net.inflight, func(m Message) bool { return m.To == 2 })
	net.restart(2)
	if c := net.raft(2).Status().Commit; c >= idx {
		t.Fatalf("setup: node 2 restarted with commit %d, want below %d", c, idx)
	}
	for range 3 {
		net.advance(10 * ms)
		net.stabilize()
	}
	if c := net.raft(2).Status().Commit; c < idx {
		t.Fatalf("restarted follower holds entry %d of the leader's term but its commit is %d after three idle heartbeats", idx, c)
	}
}
