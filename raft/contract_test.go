package raft

import (
	"fmt"
	"strings"
)

// The Ready contract (types.go, Ready), checked on every Ready of every harness: what a node
// can see from outside the core about one node, its Readies and its disk. Checks that need
// the whole cluster (one leader per term, log matching, leader completeness, lease
// exclusivity) live with the harnesses that can make them (sim_invariants_test.go and the
// fuzz cluster).
//
// Handed out (take):
//   - after HasReady said false, Ready hands out nothing; nothing new comes before Advance;
//   - every message is well formed (from this node, to another, with a term), and a MsgSnap
//     names the snapshot on this node's disk;
//   - Messages are leader messages whose term is already durable; anything else (votes,
//     acknowledgements) waits for the persist;
//   - a Snapshot lies beyond the applied index;
//   - Entries are contiguous and fit the log handed out so far, never replace an entry at or
//     below the commit index, have no term 0, no term below the entry before them and none
//     beyond the node's term;
//   - HardState.Commit never passes the log.
//
// Persisted (persist):
//   - term and commit never go back on disk, and a vote once cast in a term never changes;
//   - the durable commit index never passes the durable log;
//   - what waited for the persist is now durable: a vote request or grant its vote (and a
//     node grants its vote in a term to one candidate, ever), an acknowledgement its entries
//     and term, any message its term; a leader message waits only when this Ready makes its
//     term durable.
//
// Applied and answered (applyEntry, advance):
//   - CommittedEntries follow the applied index without a gap, lie within the commit index
//     and are durable;
//   - a read is answered within the commit index, and a dropped read says why; where the
//     harness says which reads it asked, each is answered or dropped once, and only those;
//   - after Advance the core reports what was applied (or the snapshot it installed since).
//
// Observed (observe, after every Ready and wherever a harness looks at Status): within one
// incarnation term and commit never go back and a vote never changes; Status is coherent;
// and a restarted node comes back with the term and vote it persisted.

// contractState is what the checks remember about one node.
type contractState struct {
	// commit is the highest commit index handed out in this incarnation (from the restored
	// one on).
	commit uint64
	// term, vote and statusCommit are what Status said last in this incarnation.
	term, vote, statusCommit uint64
	// readsAsked: every read goes through driverNode.read, so pending holds exactly the
	// reads asked and not yet answered, and each answer is checked against it. (A harness
	// that calls Read itself may reuse a read id once it is answered.)
	readsAsked bool
	pending    map[uint64]bool
	// votes is every vote this node granted, term → candidate, across incarnations.
	votes map[uint64]uint64
}

// entryID identifies an entry's content: two entries at one index are the same entry iff
// their entryIDs are equal.
type entryID struct {
	term uint64
	typ  EntryType
	data string
}

func idOf(e Entry) entryID { return entryID{term: e.Term, typ: e.Type, data: string(e.Data)} }

func (id entryID) String() string {
	if id.typ == EntryNoop {
		return fmt.Sprintf("term %d no-op", id.term)
	}
	return fmt.Sprintf("term %d %q", id.term, id.data)
}

// sameSnapshot reports whether a and b name the snapshot at one index and term.
func sameSnapshot(a, b SnapshotMeta) bool { return a.Index == b.Index && a.Term == b.Term }

func isLeaderMessage(t MessageType) bool {
	switch t {
	case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
		return true
	}
	return false
}

// checkBoot starts the checks of a new incarnation.
func (n *driverNode) checkBoot() error {
	c := &n.contract
	st := n.r.BasicStatus()
	if st.Term != n.disk.hs.Term || st.Vote != n.disk.hs.Vote {
		return fmt.Errorf("node %d restarted in term %d vote %d, but persisted term %d vote %d",
			n.id, st.Term, st.Vote, n.disk.hs.Term, n.disk.hs.Vote)
	}
	c.commit = st.Commit
	c.term, c.vote, c.statusCommit = st.Term, st.Vote, st.Commit
	c.pending = nil
	if c.readsAsked {
		c.pending = map[uint64]bool{}
	}
	return n.observe(st)
}

// checkReady checks a Ready as it is handed out (had: what HasReady said before), and
// records its log in the node's view.
func (n *driverNode) checkReady(had bool, rd *Ready) error {
	if !had && !rd.IsEmpty() {
		return fmt.Errorf("node %d: HasReady was false but Ready returned %s", n.id, describeReady(*rd))
	}
	if n.r.HasReady() {
		return fmt.Errorf("node %d: HasReady is true right after Ready, before Advance", n.id)
	}
	if again := n.r.Ready(); !again.IsEmpty() {
		return fmt.Errorf("node %d: a second Ready before Advance returned %s", n.id, describeReady(again))
	}
	for _, m := range rd.Messages {
		if err := n.checkMessage(m); err != nil {
			return err
		}
		if !isLeaderMessage(m.Type) {
			return fmt.Errorf("node %d: %s in Ready.Messages, where only leader messages may go: it must wait until the persist makes it durable",
				n.id, describeMessage(m))
		}
		if m.Term > n.disk.hs.Term {
			return fmt.Errorf("node %d sends %s before the persist, but its durable term is %d", n.id, describeMessage(m), n.disk.hs.Term)
		}
	}
	if rd.Snapshot != nil {
		if meta := *rd.Snapshot; meta.Index <= n.appliedIndex {
			return fmt.Errorf("node %d: Ready installs snapshot %d/%d with %d already applied", n.id, meta.Index, meta.Term, n.appliedIndex)
		}
		n.view.restartAt(*rd.Snapshot)
	}
	if err := n.checkEntries(rd); err != nil {
		return err
	}
	if hs := rd.HardState; hs != nil {
		if hs.Commit > n.view.lastIndex() {
			return fmt.Errorf("node %d: HardState commits index %d beyond its last index %d", n.id, hs.Commit, n.view.lastIndex())
		}
		n.contract.commit = max(n.contract.commit, hs.Commit)
	}
	return nil
}

// checkEntries checks a Ready's Entries against the log handed out before them, and adds
// them to it.
func (n *driverNode) checkEntries(rd *Ready) error {
	if len(rd.Entries) == 0 {
		return nil
	}
	term := n.disk.hs.Term
	if rd.HardState != nil {
		term = rd.HardState.Term
	}
	for _, e := range rd.Entries {
		if e.Index > n.contract.commit {
			break
		}
		if old, ok := n.view.entry(e.Index); ok && idOf(old) != idOf(e) {
			return fmt.Errorf("node %d: Ready replaces entry %d (%s) at or below its commit index %d with %s",
				n.id, e.Index, idOf(old), n.contract.commit, idOf(e))
		}
	}
	prevTerm, hasPrev := n.view.term(rd.Entries[0].Index - 1)
	for _, e := range rd.Entries {
		switch {
		case e.Term == 0:
			return fmt.Errorf("node %d: entry %d has term 0", n.id, e.Index)
		case hasPrev && e.Term < prevTerm:
			return fmt.Errorf("node %d: entry %d has term %d, below the %d before it", n.id, e.Index, e.Term, prevTerm)
		case e.Term > term:
			return fmt.Errorf("node %d: entry %d has term %d, beyond the node's term %d", n.id, e.Index, e.Term, term)
		}
		prevTerm, hasPrev = e.Term, true
	}
	if err := n.view.appendEntries(rd.Entries); err != nil {
		return fmt.Errorf("node %d: Ready entries: %w", n.id, err)
	}
	return nil
}

// checkMessage checks that m is a message this node can send. Whether its recipient exists
// is for the harness's network to say: members come and go.
func (n *driverNode) checkMessage(m Message) error {
	if m.From != n.id || m.To == None || m.To == n.id || m.Term == 0 {
		return fmt.Errorf("node %d sends a malformed message %s", n.id, describeMessage(m))
	}
	if m.Type == MsgSnap && !sameSnapshot(m.Snapshot, n.disk.snapshot) {
		return fmt.Errorf("node %d sends snapshot %+v but holds %+v", n.id, m.Snapshot, n.disk.snapshot)
	}
	return nil
}

// checkHardStateSuccession checks a Ready's HardState against the one on disk, before it
// replaces it.
func (n *driverNode) checkHardStateSuccession(rd *Ready) error {
	if rd.HardState == nil {
		return nil
	}
	prev, next := n.disk.hs, *rd.HardState
	switch {
	case next.Term < prev.Term:
		return fmt.Errorf("node %d persists term %d after term %d", n.id, next.Term, prev.Term)
	case next.Commit < prev.Commit:
		return fmt.Errorf("node %d persists commit %d after commit %d", n.id, next.Commit, prev.Commit)
	case next.Term == prev.Term && prev.Vote != None && next.Vote != prev.Vote:
		return fmt.Errorf("node %d changes its vote in term %d from %d to %d", n.id, next.Term, prev.Vote, next.Vote)
	}
	return nil
}

// checkPersisted checks the disk once a Ready is written, and that each message that waited
// for the write depends on nothing else.
func (n *driverNode) checkPersisted(rd *Ready) error {
	hs := n.disk.hs
	if hs.Commit > n.disk.lastIndex() {
		return fmt.Errorf("node %d persisted commit %d beyond its persisted last index %d", n.id, hs.Commit, n.disk.lastIndex())
	}
	for _, m := range rd.MessagesAfterPersist {
		if err := n.checkMessage(m); err != nil {
			return err
		}
		switch m.Type {
		case MsgVote:
			if hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != n.id) {
				return fmt.Errorf("node %d asks for votes in term %d before persisting its own vote (disk: term %d vote %d)",
					n.id, m.Term, hs.Term, hs.Vote)
			}
		case MsgVoteResp:
			if m.Reject {
				break
			}
			if hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != m.To) {
				return fmt.Errorf("node %d grants its term-%d vote to %d before persisting it (disk: term %d vote %d)",
					n.id, m.Term, m.To, hs.Term, hs.Vote)
			}
			if n.contract.votes == nil {
				n.contract.votes = map[uint64]uint64{}
			}
			if prev, ok := n.contract.votes[m.Term]; ok && prev != m.To {
				return fmt.Errorf("node %d voted for %d and for %d in term %d", n.id, prev, m.To, m.Term)
			}
			n.contract.votes[m.Term] = m.To
		case MsgAppResp:
			if !m.Reject && (hs.Term < m.Term || n.disk.lastIndex() < m.Index) {
				return fmt.Errorf("node %d acknowledges entries up to %d in term %d before persisting them (disk: term %d, last index %d)",
					n.id, m.Index, m.Term, hs.Term, n.disk.lastIndex())
			}
		case MsgApp, MsgHeartbeat, MsgSnap, MsgTimeoutNow:
			// Only when this very Ready makes the leader's term durable: a vote granted before
			// it was asked for elected the node that fast.
			if rd.HardState == nil || rd.HardState.Term != m.Term {
				return fmt.Errorf("node %d: leader message %s waited for the persist, though its term was durable", n.id, describeMessage(m))
			}
		}
		// A pre-vote asks for a term the node has not adopted, and a pre-vote grant answers one.
		if m.Type != MsgPreVote && !(m.Type == MsgPreVoteResp && !m.Reject) && m.Term > hs.Term {
			return fmt.Errorf("node %d: %s carries a term beyond the durable %d", n.id, describeMessage(m), hs.Term)
		}
	}
	return nil
}

// checkApply checks one committed entry before it is applied.
func (n *driverNode) checkApply(e Entry) error {
	if e.Index != n.appliedIndex+1 {
		return fmt.Errorf("node %d: committed entry %d handed out after applying %d (gap or repeat)", n.id, e.Index, n.appliedIndex)
	}
	if e.Index > n.contract.commit {
		return fmt.Errorf("node %d: entry %d handed out to apply beyond the commit index %d", n.id, e.Index, n.contract.commit)
	}
	if d, ok := n.disk.entry(e.Index); !ok || d.Term != e.Term {
		return fmt.Errorf("node %d: committed entry %d (term %d) handed out but not durable (disk: %+v, held %v)", n.id, e.Index, e.Term, d, ok)
	}
	return nil
}

// checkAnswers checks a Ready's answers to reads.
func (n *driverNode) checkAnswers(rd *Ready) error {
	c := &n.contract
	answer := func(id uint64, verb string) error {
		if c.readsAsked {
			if !c.pending[id] {
				return fmt.Errorf("node %d %s read %d, which is not pending", n.id, verb, id)
			}
			delete(c.pending, id)
		}
		return nil
	}
	for _, rs := range rd.ReadStates {
		if err := answer(rs.ID, "answered"); err != nil {
			return err
		}
		if rs.Index > c.commit {
			return fmt.Errorf("node %d answered read %d at index %d beyond its commit %d", n.id, rs.ID, rs.Index, c.commit)
		}
	}
	for _, d := range rd.DroppedReads {
		if err := answer(d.ID, "dropped"); err != nil {
			return err
		}
		if d.Err == nil {
			return fmt.Errorf("node %d dropped read %d without saying why", n.id, d.ID)
		}
	}
	return nil
}

// checkAdvanced checks what the core reports after Advance. The core may be ahead of what
// was applied only by a snapshot it accepted while the Ready was out: it counts a snapshot
// as applied when it accepts it, before handing it out to install.
func (n *driverNode) checkAdvanced() error {
	st := n.r.BasicStatus()
	if st.Applied != n.appliedIndex && !(st.Applied > n.appliedIndex && st.Applied == st.Snapshot.Index) {
		return fmt.Errorf("node %d: Status.Applied %d after Advance, but %d was applied", n.id, st.Applied, n.appliedIndex)
	}
	return n.observe(st)
}

// observe checks what the core's Status says against what it said before in this
// incarnation: term and commit never go back, a vote in a term never changes; and that it
// is coherent.
func (n *driverNode) observe(st Status) error {
	c := &n.contract
	switch {
	case st.Term < c.term:
		return fmt.Errorf("node %d: term went back from %d to %d", n.id, c.term, st.Term)
	case st.Term == c.term && c.vote != None && st.Vote != c.vote:
		return fmt.Errorf("node %d: vote in term %d changed from %d to %d", n.id, st.Term, c.vote, st.Vote)
	case st.Commit < c.statusCommit:
		return fmt.Errorf("node %d: commit went back from %d to %d", n.id, c.statusCommit, st.Commit)
	case st.Applied > st.Commit || st.Commit > st.LastIndex || st.FirstIndex != st.Snapshot.Index+1 || st.FirstIndex > st.LastIndex+1:
		return fmt.Errorf("node %d: incoherent status applied %d commit %d first %d last %d snapshot %d",
			n.id, st.Applied, st.Commit, st.FirstIndex, st.LastIndex, st.Snapshot.Index)
	case (st.Role == Leader) != (st.Leader == n.id):
		return fmt.Errorf("node %d: role %v but leader %d", n.id, st.Role, st.Leader)
	}
	c.term, c.vote, c.statusCommit = st.Term, st.Vote, st.Commit
	return nil
}

func describeReady(rd Ready) string {
	var parts []string
	if rd.HardState != nil {
		parts = append(parts, fmt.Sprintf("hs%+v", *rd.HardState))
	}
	if rd.Snapshot != nil {
		parts = append(parts, fmt.Sprintf("snap%d/%d", rd.Snapshot.Index, rd.Snapshot.Term))
	}
	if n := len(rd.Entries); n > 0 {
		parts = append(parts, fmt.Sprintf("ents[%d..%d]", rd.Entries[0].Index, rd.Entries[n-1].Index))
	}
	if n := len(rd.CommittedEntries); n > 0 {
		parts = append(parts, fmt.Sprintf("apply[%d..%d]", rd.CommittedEntries[0].Index, rd.CommittedEntries[n-1].Index))
	}
	parts = append(parts, fmt.Sprintf("msgs %d+%d reads %d dropped %d", len(rd.Messages), len(rd.MessagesAfterPersist),
		len(rd.ReadStates), len(rd.DroppedReads)))
	return strings.Join(parts, " ")
}

func describeMessage(m Message) string {
	s := fmt.Sprintf("%v %d→%d t%d", m.Type, m.From, m.To, m.Term)
	switch m.Type {
	case MsgApp:
		s += fmt.Sprintf(" prev=%d/%d n=%d commit=%d sent=%v round=%d", m.Index, m.LogTerm, len(m.Entries), m.Commit, m.SentAt, m.Round)
	case MsgAppResp:
		s += fmt.Sprintf(" index=%d reject=%v hint=%d/%d sent=%v round=%d", m.Index, m.Reject, m.ConflictTerm, m.ConflictIndex, m.SentAt, m.Round)
	case MsgHeartbeat:
		s += fmt.Sprintf(" commit=%d sent=%v round=%d", m.Commit, m.SentAt, m.Round)
	case MsgHeartbeatResp:
		s += fmt.Sprintf(" sent=%v round=%d", m.SentAt, m.Round)
	case MsgVote, MsgPreVote:
		s += fmt.Sprintf(" last=%d/%d transfer=%v", m.Index, m.LogTerm, m.Transfer)
	case MsgVoteResp, MsgPreVoteResp:
		s += fmt.Sprintf(" reject=%v lease-left=%v", m.Reject, m.LeaseRemaining)
	case MsgSnap:
		s += fmt.Sprintf(" snap=%d/%d", m.Snapshot.Index, m.Snapshot.Term)
	case MsgTimeoutNow:
		s += fmt.Sprintf(" lease-left=%v", m.LeaseRemaining)
	}
	if m.RejectReason != "" {
		s += " (" + m.RejectReason + ")"
	}
	return s
}
