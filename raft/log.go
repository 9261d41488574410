package raft

import "fmt"

// raftLog is the in-memory log: every entry after the latest snapshot, plus the markers that
// say how far it is handed out, persisted, committed and applied. The core keeps the whole
// uncompacted log in memory; the caller's storage only ever replays it at start-up.
//
// Markers, in order: applied ≤ applying ≤ committed ≤ lastIndex, and persisted ≤ handedOut ≤
// lastIndex. Slices handed to the caller (Ready.Entries, CommittedEntries, MsgApp.Entries) are
// never written to again: truncation and compaction move the survivors to a fresh array.
type raftLog struct {
	// snapshot is the compaction point: entries start at snapshot.Index+1.
	snapshot SnapshotMeta
	entries  []Entry

	committed uint64
	// applying is the last index handed out in Ready.CommittedEntries; applied the last one
	// the caller confirmed with Advance.
	applying uint64
	applied  uint64
	// handedOut is the last index handed out in Ready.Entries; persisted the last one the
	// caller confirmed with Advance.
	handedOut uint64
	persisted uint64
}

func (l *raftLog) firstIndex() uint64 { return l.snapshot.Index + 1 }

func (l *raftLog) lastIndex() uint64 { return l.snapshot.Index + uint64(len(l.entries)) }

func (l *raftLog) lastTerm() uint64 {
	if len(l.entries) == 0 {
		return l.snapshot.Term
	}
	return l.entries[len(l.entries)-1].Term
}

// term returns the term of the entry at index i; ok is false when i is compacted away or
// beyond the last index.
func (l *raftLog) term(i uint64) (term uint64, ok bool) {
	if i == l.snapshot.Index {
		return l.snapshot.Term, true
	}
	if i < l.snapshot.Index || i > l.lastIndex() {
		return 0, false
	}
	return l.entries[i-l.snapshot.Index-1].Term, true
}

func (l *raftLog) matchTerm(i, term uint64) bool {
	t, ok := l.term(i)
	return ok && t == term
}

// at returns the entry at index i, which must be held (firstIndex ≤ i ≤ lastIndex).
func (l *raftLog) at(i uint64) *Entry { return &l.entries[i-l.snapshot.Index-1] }

// slice returns entries lo..hi inclusive, with a capacity that ends at hi so a caller
// appending to it cannot overwrite the log.
func (l *raftLog) slice(lo, hi uint64) []Entry {
	if lo > hi {
		return nil
	}
	off := l.snapshot.Index + 1
	return l.entries[lo-off : hi-off+1 : hi-off+1]
}

// isUpToDate reports whether a log ending at (lastIndex, lastTerm) is at least as up to date
// as this one (Raft §5.4.1): a later last term wins, then a longer log.
func (l *raftLog) isUpToDate(lastIndex, lastTerm uint64) bool {
	ourTerm := l.lastTerm()
	return lastTerm > ourTerm || (lastTerm == ourTerm && lastIndex >= l.lastIndex())
}

// lastIndexOfTerm returns the largest index ≤ from whose entry has term t, or ok=false when
// no held entry has it.
func (l *raftLog) lastIndexOfTerm(t, from uint64) (uint64, bool) {
	if from > l.lastIndex() {
		from = l.lastIndex()
	}
	for i := from; i >= l.snapshot.Index; i-- {
		et, _ := l.term(i)
		if et == t {
			return i, true
		}
		if et < t {
			return 0, false
		}
		if i == 0 {
			break
		}
	}
	return 0, false
}

// firstIndexOfTerm returns the first index of the run of entries with term t that ends at i
// (the entry at i must have term t). It never goes below the first held index.
func (l *raftLog) firstIndexOfTerm(t, i uint64) uint64 {
	for i > l.firstIndex() {
		prev, _ := l.term(i - 1)
		if prev != t {
			break
		}
		i--
	}
	return i
}

// truncateFrom drops every entry at index ≥ i. The survivors move to a fresh array so that
// slices already handed to the caller keep their content.
func (l *raftLog) truncateFrom(i uint64) {
	keep := i - l.snapshot.Index - 1
	fresh := make([]Entry, keep, keep+uint64(len(l.entries))/2+8)
	copy(fresh, l.entries[:keep])
	l.entries = fresh
	l.handedOut = min(l.handedOut, i-1)
	l.persisted = min(l.persisted, i-1)
}

// compact drops every entry up to and including meta.Index, which must be held.
func (l *raftLog) compact(meta SnapshotMeta) {
	drop := meta.Index - l.snapshot.Index
	rest := l.entries[drop:]
	fresh := make([]Entry, len(rest), len(rest)+len(rest)/4+8)
	copy(fresh, rest)
	l.entries = fresh
	l.snapshot = meta
}

// restore replaces the whole log with a snapshot received from the leader.
func (l *raftLog) restore(meta SnapshotMeta) {
	l.entries = nil
	l.snapshot = meta
	l.committed = meta.Index
	l.applying = meta.Index
	l.applied = meta.Index
	l.handedOut = meta.Index
	l.persisted = meta.Index
}

// unstable is what the next Ready must persist.
func (l *raftLog) unstable() []Entry {
	if l.handedOut >= l.lastIndex() {
		return nil
	}
	return l.slice(l.handedOut+1, l.lastIndex())
}

// toApply is what the next Ready hands out to apply: committed and not yet handed out.
func (l *raftLog) toApply() []Entry {
	hi := min(l.committed, l.lastIndex())
	if l.applying >= hi {
		return nil
	}
	return l.slice(l.applying+1, hi)
}

// checkRestored validates what the caller read back from disk.
func checkRestored(s Restored) error {
	if s.Snapshot.Index > MaxIndex || uint64(len(s.Entries)) > MaxIndex-s.Snapshot.Index {
		return fmt.Errorf("restored log (snapshot at %d, %d entries after it) passes the largest index %d",
			s.Snapshot.Index, len(s.Entries), MaxIndex)
	}
	prev := s.Snapshot
	for i, e := range s.Entries {
		if e.Index != prev.Index+1 {
			return fmt.Errorf("restored entry %d has index %d, want %d (entries must follow the snapshot at %d contiguously)",
				i, e.Index, prev.Index+1, s.Snapshot.Index)
		}
		if e.Term < prev.Term {
			return fmt.Errorf("restored entry %d has term %d, below the term %d of the entry before it", e.Index, e.Term, prev.Term)
		}
		if e.Term == 0 {
			return fmt.Errorf("restored entry %d has term 0", e.Index)
		}
		prev = SnapshotMeta{Index: e.Index, Term: e.Term}
	}
	if s.HardState.Term > MaxTerm {
		return fmt.Errorf("restored hard state term %d is past the largest term %d", s.HardState.Term, MaxTerm)
	}
	if s.HardState.Term < prev.Term {
		return fmt.Errorf("restored hard state term %d is below the last entry's term %d (index %d)",
			s.HardState.Term, prev.Term, prev.Index)
	}
	if s.Applied < s.Snapshot.Index {
		return fmt.Errorf("restored applied index %d is below the snapshot index %d", s.Applied, s.Snapshot.Index)
	}
	if s.Applied > prev.Index {
		return fmt.Errorf("restored applied index %d is beyond the last log index %d", s.Applied, prev.Index)
	}
	return nil
}
