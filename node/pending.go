package node

import (
	"bytes"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/raft"
)

// The per-key refinement of a lease read's wait (docs/reads.md, "The per-key wait").
//
// A lease read must see applied every entry its view names (raft.ReadView.LeaseIndex): on a
// read-lease holder that is every entry it holds, since the leader may already have committed
// and acknowledged any of them while this node does not know it yet. Waiting for all of them
// makes a holder's reads as slow as a commit whenever writes are frequent. But a read of keys
// K needs only the held entries that can change K's answer:
//
//   - Every write acknowledged before the read began is among the held entries or already
//     applied (raft/doc.go, "Read leases": the write's commit waited for this holder). If
//     such a write changes K, it touches K, and the read waits for it and everything before.
//   - An entry that touches no key of K leaves K's answer as it was: its keys, values,
//     versions and create and mod revisions. Applying entries in order, the state of K after
//     the newest held entry touching K (or now, if none does) is the state of K at the view's
//     LeaseIndex, unless held entries are replaced by a new leader, in which case none of them
//     had been acknowledged and the argument is the unrefined one's.
//
// What the read reports as its revision (etcd header.revision, georaft.v1 applied_index) is
// that of the state it read: a revision the cluster has committed, at which the answer is
// exact (a read at that revision returns the same; a watch from the next one misses nothing of
// K). Data never goes backwards: a later read of K anywhere waits for every write of K that
// committed before it began. The header revision of a later refined read of other keys may be
// lower than one reported earlier (its holder has not applied unrelated writes yet); docs/
// reads.md says so, and a client that needs revisions monotonic across keys asks for index
// reads or turns read_leases.per_key_wait off.
//
// An entry whose keys cannot be known from the entry alone touches every key: a lease revoke
// (its keys are whatever is attached when it applies), a compaction (it changes what reads at
// old revisions return), an entry that does not decode, and a gap in what this node noted.

// keySpan is [start, end) in etcd's range terms, normalised: end nil means start alone,
// end empty means every key from start on.
type keySpan struct {
	start, end []byte
}

func spanOf(key, rangeEnd []byte) keySpan {
	switch {
	case len(rangeEnd) == 0:
		return keySpan{start: key}
	case len(rangeEnd) == 1 && rangeEnd[0] == 0:
		return keySpan{start: key, end: []byte{}}
	}
	return keySpan{start: key, end: rangeEnd}
}

// overlaps reports whether two spans share a key.
func (a keySpan) overlaps(b keySpan) bool {
	aEnd, aOpen := a.limit()
	bEnd, bOpen := b.limit()
	// a.start < bEnd and b.start < aEnd, an open end being +infinity.
	return (bOpen || bytes.Compare(a.start, bEnd) < 0) && (aOpen || bytes.Compare(b.start, aEnd) < 0)
}

// limit is the exclusive end and whether there is none.
func (s keySpan) limit() ([]byte, bool) {
	switch {
	case s.end == nil:
		return append(bytes.Clone(s.start), 0), false
	case len(s.end) == 0:
		return nil, true
	}
	return s.end, false
}

// readKeys is what a read reads: its spans, or every key (nil).
type readKeys []keySpan

// allKeys is a read that waits for every held entry (the unrefined rule).
var allKeys readKeys

func keysOfGet(key []byte) readKeys { return readKeys{{start: key}} }

// keysOfRange is what a RangeRequest reads. A read at a past revision is left unrefined: the
// answer hangs on the revision, which every write moves.
func keysOfRange(r *pb.RangeRequest) readKeys {
	if r.Revision != 0 {
		return allKeys
	}
	return readKeys{spanOf(r.Key, r.RangeEnd)}
}

// keysOfReadTxn is what a read-only transaction reads: its compares' keys and every range of
// both branches, nested transactions included.
func keysOfReadTxn(t *pb.TxnRequest) readKeys {
	var out readKeys
	var walk func(t *pb.TxnRequest) bool
	walk = func(t *pb.TxnRequest) bool {
		for _, c := range t.Compare {
			out = append(out, spanOf(c.Key, c.RangeEnd))
		}
		for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
			for _, op := range ops {
				switch {
				case op.GetRequestRange() != nil:
					r := op.GetRequestRange()
					if r.Revision != 0 {
						return false
					}
					out = append(out, spanOf(r.Key, r.RangeEnd))
				case op.GetRequestTxn() != nil:
					if !walk(op.GetRequestTxn()) {
						return false
					}
				}
			}
		}
		return true
	}
	if !walk(t) || len(out) == 0 {
		return allKeys
	}
	return out
}

// touched is what one held entry may change: spans, or every key.
type touched struct {
	index uint64
	all   bool
	spans []keySpan
}

// touchedBy decodes what an entry may change. Both branches of a transaction count: which
// one runs depends on the state when it applies.
func touchedBy(e *raft.Entry) touched {
	t := touched{index: e.Index}
	switch e.Type {
	case raft.EntryNoop, raft.EntryConfChange:
		return t
	case raft.EntryNormal:
	default:
		t.all = true
		return t
	}
	cmd, err := mvcc.Decode(e.Data)
	if err != nil {
		t.all = true
		return t
	}
	switch cmd.Kind {
	case mvcc.KindTxn:
		t.all = !writesOf(cmd.Txn, &t.spans)
	case mvcc.KindLeaseGrant:
		// Creates a lease; no key changes.
	default:
		// A revoke deletes whatever keys are attached when it applies; a compaction changes
		// what reads at old revisions see.
		t.all = true
	}
	return t
}

// writesOf adds the spans a transaction's writes touch, in both branches; false if it
// cannot tell.
func writesOf(txn *pb.TxnRequest, out *[]keySpan) bool {
	if txn == nil {
		return false
	}
	for _, ops := range [][]*pb.RequestOp{txn.Success, txn.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestPut:
				*out = append(*out, keySpan{start: r.RequestPut.Key})
			case *pb.RequestOp_RequestDeleteRange:
				*out = append(*out, spanOf(r.RequestDeleteRange.Key, r.RequestDeleteRange.RangeEnd))
			case *pb.RequestOp_RequestTxn:
				if !writesOf(r.RequestTxn, out) {
					return false
				}
			case *pb.RequestOp_RequestRange:
			default:
				return false
			}
		}
	}
	return true
}

func (t *touched) affects(keys readKeys) bool {
	if t.all {
		return true
	}
	for _, s := range t.spans {
		for _, k := range keys {
			if s.overlaps(k) {
				return true
			}
		}
	}
	return false
}

// pendingKeys holds, for the entries this node holds but has not applied, what each may
// change. The loop notes entries as they enter the log (before any acknowledgement of them
// leaves) and drops them as they are applied; readers ask it from any goroutine.
type pendingKeys struct {
	mu      sync.Mutex
	entries []touched // by index, ascending, all above applied
	applied uint64
	last    uint64 // the highest index noted (or applied)
}

func newPendingKeys() *pendingKeys { return &pendingKeys{} }

// note records entries appended to the log. Entries at or above the first one replace what
// was noted there (a new leader overwrote a suffix); a gap below the first one (after a
// snapshot, or on start) counts as touching every key until it is applied.
func (p *pendingKeys) note(entries []raft.Entry) {
	if len(entries) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	first := entries[0].Index
	for len(p.entries) > 0 && p.entries[len(p.entries)-1].index >= first {
		p.entries = p.entries[:len(p.entries)-1]
	}
	if first > p.last+1 && first-1 > p.applied {
		p.entries = append(p.entries, touched{index: first - 1, all: true})
	}
	for i := range entries {
		if entries[i].Index <= p.applied {
			continue
		}
		p.entries = append(p.entries, touchedBy(&entries[i]))
	}
	p.last = entries[len(entries)-1].Index
}

// appliedTo drops what the state machine has applied, up to index.
func (p *pendingKeys) appliedTo(index uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if index <= p.applied {
		return
	}
	p.applied = index
	p.last = max(p.last, index)
	n := 0
	for n < len(p.entries) && p.entries[n].index <= index {
		n++
	}
	p.entries = p.entries[n:]
}

// waitIndex is the index a read of keys must see applied, given the view's index: the newest
// held entry at or below it that may change keys, or 0 if none does. An index this node has
// not noted counts as touching everything.
func (p *pendingKeys) waitIndex(keys readKeys, viewIndex uint64) uint64 {
	if keys == nil {
		return viewIndex
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if viewIndex > p.last {
		return viewIndex
	}
	for i := len(p.entries) - 1; i >= 0; i-- {
		t := &p.entries[i]
		if t.index > viewIndex {
			continue
		}
		if t.affects(keys) {
			return t.index
		}
	}
	return 0
}
