package node

import (
	"bytes"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/raft"
)

// The per-key refinement of a lease read's wait. The rule and why it is safe: raft/doc.go,
// "Per-key lease reads"; the operator's view, and what it means for the revision an answer
// reports: docs/reads.md, "The per-key wait".
//
// A lease read must see applied every entry its view names (raft.ReadView.LeaseIndex). A read
// of keys K needs only the newest of them that may change K: pendingKeys notes, for every
// entry this node appends (before its acknowledgement leaves) and until it is applied, what
// the entry may change, and waitIndex finds that newest entry. The etcd API uses it only when
// the client asks (PerKeyWaitMetadata), since it gives up etcd's promise that a linearizable
// read's header revision is at least every acknowledged write's.
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
