package mvcc

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

// Result is the outcome of applying one entry.
type Result struct {
	// Index is the entry's index; for a Duplicate, the index of the original write.
	Index uint64
	// Revision is the store's revision after the entry (for a Duplicate, after the original).
	Revision int64
	// Skipped: the entry was at or below the applied index the store already reflects.
	Skipped bool

	Txn         *pb.TxnResponse
	Compact     *pb.CompactionResponse
	LeaseGrant  *pb.LeaseGrantResponse
	LeaseRevoke *pb.LeaseRevokeResponse

	// Existed is what georaft.v1 reports: a SET or DEL found the key already there.
	Existed bool
	// Duplicate: the session already applied this write; this retry changed nothing.
	Duplicate bool
	// Err is set when the entry changed nothing but the applied index: a request etcd would
	// refuse (ErrCompacted, ErrLeaseNotFound, ...), a stale session sequence, an undecodable
	// command, or an entry out of order (which does not even move the index).
	Err error
}

// OrderError is an entry handed to Apply out of index order, or with a term below the last
// applied one: a bug in the caller. Apply refuses it without touching the state.
type OrderError = kv.OrderError

// Apply applies e, the entry after the last applied one (or one at or below it, which is
// skipped: a snapshot or a restart may leave the store ahead of the log it is fed).
//
// The error is the engine's: the node must stop, since what it applied may be lost.
func (s *Store) Apply(e raft.Entry) (res Result, err error) {
	err = s.ApplyAll([]raft.Entry{e}, func(_ int, r Result) { res = r })
	return res, err
}

// ApplyAll applies entries in order, as Apply would one by one, in one engine batch: one
// commit for all of them (a Ready's committed entries), however many there are. Once the
// batch is committed and the new state published, it reports each entry's result to done,
// in order. An entry refused or skipped changes nothing, whatever else the batch holds.
//
// The error is the engine's: the node must stop, since what it applied may be lost. done is
// not called then.
func (s *Store) ApplyAll(entries []raft.Entry, done func(i int, res Result)) (err error) {
	defer s.guard(&err)
	if err := s.failure(); err != nil {
		return err
	}
	cur := s.st.Load()
	next := *cur
	b := s.db.NewIndexedBatch()
	defer func() { b.Close() }()
	src := &source{rd: b, cache: s.latest, fillRev: cur.rev}
	results := slices.Grow(s.results[:0], len(entries))[:len(entries)]
	defer func() { clear(results); s.results = results[:0] }()
	t := &txn{}
	type announce struct {
		rev    int64
		events []*mvccpb.Event
	}
	var events []announce
	for i := range entries {
		e := &entries[i]
		if e.Index <= next.applied {
			results[i] = Result{Index: e.Index, Revision: next.rev, Skipped: true}
			continue
		}
		if e.Index != next.applied+1 || e.Term < next.term {
			results[i] = Result{Index: e.Index, Err: &OrderError{Index: e.Index, Term: e.Term, AppliedIndex: next.applied, AppliedTerm: next.term}}
			continue
		}
		*t = txn{s: s, src: src, b: b, before: next, next: &next, base: next.rev}
		t.st = &t.before
		before := &t.before
		next.applied, next.term = e.Index, e.Term
		mark := b.Len()
		count := b.Count()
		src.undo = src.undo[:0]
		res := Result{Index: e.Index}
		refused := false
		switch e.Type {
		case raft.EntryNoop:
		case raft.EntryNormal:
			cmd, err := Decode(e.Data)
			if err != nil {
				res.Err = fmt.Errorf("entry %d: %w", e.Index, err)
				break
			}
			res = t.command(&cmd, e.Index)
			refused = res.Err != nil && !t.keep
		case raft.EntryConfChange:
			// Only the table changes; a change the table cannot read changes nothing but the
			// applied index, like a command that cannot be decoded.
			if err := t.confChange(e.Data); err != nil {
				res.Err = fmt.Errorf("entry %d: %w", e.Index, err)
				refused = true
			}
		default:
			res.Err = fmt.Errorf("mvcc: entry %d has unknown type %v", e.Index, e.Type)
		}
		if refused {
			// A refused entry changes nothing but the applied index.
			if b.Count() != count {
				if b, err = s.truncateBatch(b, mark, count); err != nil {
					return err
				}
				src.rd = b
			}
			src.rollback()
			next = *before
			next.applied, next.term = e.Index, e.Term
			t.sub = 0
		} else {
			// The in-memory tables follow at once: a later entry of the batch may retry
			// this session's write or use this lease.
			for _, w := range t.sessionWrites {
				w()
			}
			for _, f := range t.after {
				f()
			}
			if len(t.events) > 0 {
				events = append(events, announce{rev: before.rev + 1, events: t.events})
			}
		}
		if t.sub > 0 {
			next.rev = before.rev + 1
		}
		if res.Revision == 0 {
			res.Revision = next.rev
		}
		results[i] = res
	}
	if next != *cur {
		if err := b.Set(stateKey, next.encode(), nil); err != nil {
			return err
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("mvcc: commit entries %d-%d: %w", cur.applied+1, next.applied, err)
		}
		// The cache first: a reader of the new state must not find an older version there.
		s.latest.update(src.writes, next.rev)
		s.st.Store(&next)
	}
	for _, a := range events {
		s.watch.notify(a.rev, a.events)
	}
	if next.compactRev > cur.compactRev {
		s.wakeCompactor()
	}
	for i := range results {
		done(i, results[i])
	}
	return nil
}

// truncateBatch returns an indexed batch holding what b held when it was n bytes long with
// count records, and closes b: the rare undo of a refused entry that wrote before it was
// refused.
func (s *Store) truncateBatch(b *pebble.Batch, n int, count uint32) (*pebble.Batch, error) {
	fresh := s.db.NewIndexedBatch()
	if n > batchrepr.HeaderLen {
		part := s.db.NewBatch()
		defer part.Close()
		repr := bytes.Clone(b.Repr()[:n])
		batchrepr.SetCount(repr, count)
		if err := part.SetRepr(repr); err != nil {
			return nil, fmt.Errorf("mvcc: undo a refused entry: %w", err)
		}
		if err := fresh.Apply(part, nil); err != nil {
			return nil, fmt.Errorf("mvcc: undo a refused entry: %w", err)
		}
	}
	b.Close()
	return fresh, nil
}

// txn is one entry's work: reads see its own writes through the indexed batch.
type txn struct {
	s    *Store
	src  *source
	b    *pebble.Batch // nil for a read-only transaction
	st   *state        // before the entry
	next *state
	// before holds what st points to, for an apply's transaction.
	before state
	base   int64 // the revision before the entry
	sub    int64 // sub-revisions used; > 0 once the entry wrote something

	events        []*mvccpb.Event
	sessionWrites []func()
	// keep: a refused command whose session bookkeeping must still be written.
	keep  bool
	after []func() // in-memory changes, made once the batch is committed
}

func (t *txn) writeRev() int64 { return t.base + 1 }

// readRev is what a read inside the transaction sees: its own writes once it made some.
func (t *txn) readRev() int64 {
	if t.sub > 0 {
		return t.base + 1
	}
	return t.base
}

func (t *txn) command(cmd *Command, index uint64) Result {
	var sess *session
	if cmd.ClientID != 0 {
		var dup Result
		var done bool
		sess, dup, done = t.s.checkSession(t, cmd, index)
		if done {
			return dup
		}
	}
	res := Result{Index: index}
	var err error
	switch cmd.Kind {
	case KindTxn:
		res.Txn, err = t.run(cmd.Txn)
		if err == nil {
			res.Existed = existed(res.Txn)
		}
	case KindCompact:
		res.Compact, err = t.compact(cmd.Compact)
	case KindLeaseGrant:
		res.LeaseGrant, err = t.leaseGrant(cmd.LeaseGrant)
	case KindLeaseRevoke:
		res.LeaseRevoke, err = t.leaseRevoke(cmd.LeaseRevoke)
	case KindMemberPublish:
		err = t.publish(cmd.Member)
	}
	if err != nil {
		res.Err = err
		return res
	}
	if cmd.ClientID != 0 {
		rev := t.base
		if t.sub > 0 {
			rev++
		}
		t.s.recordSession(t, sess, cmd, sessionResult{op: cmd.Op, existed: res.Existed, index: index, rev: rev, fingerprint: writeFingerprint(cmd)}, index)
	}
	return res
}

// existed is georaft.v1's answer for a one-op put or delete: was the key there before?
func existed(r *pb.TxnResponse) bool {
	if len(r.Responses) != 1 {
		return false
	}
	switch v := r.Responses[0].Response.(type) {
	case *pb.ResponseOp_ResponsePut:
		return v.ResponsePut.PrevKv != nil
	case *pb.ResponseOp_ResponseDeleteRange:
		return v.ResponseDeleteRange.Deleted > 0
	}
	return false
}

// run executes a transaction: every compare at every depth is evaluated first, against the
// state before any op, then the chosen ops are checked, then done.
func (t *txn) run(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	path, err := t.comparePath(r)
	if err != nil {
		return nil, err
	}
	if err := t.check(r, path); err != nil {
		return nil, err
	}
	resp, _, err := t.exec(r, path)
	if err != nil {
		return nil, err
	}
	resp.Header = &pb.ResponseHeader{Revision: t.readRev()}
	return resp, nil
}

// comparePath lists the outcome of each transaction on the chosen path, depth first.
func (t *txn) comparePath(r *pb.TxnRequest) ([]bool, error) {
	ok := true
	for _, c := range r.Compare {
		match, err := t.compare(c)
		if err != nil {
			return nil, err
		}
		if !match {
			ok = false
			break
		}
	}
	path := []bool{ok}
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	for _, op := range ops {
		if nested := op.GetRequestTxn(); nested != nil {
			sub, err := t.comparePath(nested)
			if err != nil {
				return nil, err
			}
			path = append(path, sub...)
		}
	}
	return path, nil
}

func (t *txn) compare(c *pb.Compare) (bool, error) {
	kvs, _, err := rangeAt(t.src, c.Key, rangeEnd(c.RangeEnd), t.readRev(), rangeOpts{})
	if err != nil {
		return false, err
	}
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for _, kv := range kvs {
		if !compareKV(c, kv) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// check refuses, before anything is written, what the chosen path cannot do: a range at a
// compacted or future revision, a put to a missing lease, a put that keeps the value or
// lease of a key that does not exist.
func (t *txn) check(r *pb.TxnRequest, path []bool) error {
	_, err := t.checkAt(r, path)
	return err
}

func (t *txn) checkAt(r *pb.TxnRequest, path []bool) (int, error) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	used := 1
	for _, op := range ops {
		switch v := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			if err := checkRev(t.st, v.RequestRange.GetRevision()); err != nil {
				return 0, err
			}
		case *pb.RequestOp_RequestPut:
			p := v.RequestPut
			if p.Lease != 0 && !t.s.leaseExists(p.Lease) {
				return 0, ErrLeaseNotFound
			}
			if p.IgnoreValue || p.IgnoreLease {
				_, _, ok, err := t.src.latest(p.Key, t.readRev())
				if err != nil {
					return 0, err
				}
				if !ok {
					return 0, ErrKeyNotFound
				}
			}
		case *pb.RequestOp_RequestTxn:
			n, err := t.checkAt(v.RequestTxn, path[used:])
			if err != nil {
				return 0, err
			}
			used += n
		}
	}
	return used, nil
}

// exec does the ops of the chosen path and returns how many path entries it used.
func (t *txn) exec(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int, error) {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	resp := &pb.TxnResponse{Succeeded: path[0], Responses: make([]*pb.ResponseOp, 0, len(ops))}
	used := 1
	for _, op := range ops {
		var out *pb.ResponseOp
		switch v := op.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := executeRange(t.src, t.st, t.readRev(), v.RequestRange)
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}}
		case *pb.RequestOp_RequestPut:
			pr, err := t.put(v.RequestPut)
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: pr}}
		case *pb.RequestOp_RequestDeleteRange:
			dr, err := t.deleteRange(v.RequestDeleteRange)
			if err != nil {
				return nil, 0, err
			}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}}
		case *pb.RequestOp_RequestTxn:
			nested, n, err := t.exec(v.RequestTxn, path[used:])
			if err != nil {
				return nil, 0, err
			}
			used += n
			nested.Header = &pb.ResponseHeader{Revision: t.readRev()}
			out = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: nested}}
		default:
			// An op without a request: etcd's validation refuses it, so none is proposed.
			return nil, 0, fmt.Errorf("mvcc: transaction op without a request")
		}
		resp.Responses = append(resp.Responses, out)
	}
	return resp, used, nil
}

func (t *txn) put(p *pb.PutRequest) (*pb.PutResponse, error) {
	if t.b == nil {
		return nil, fmt.Errorf("mvcc: put in a read-only transaction")
	}
	prev, prevMod, existed, err := t.src.latest(p.Key, 0)
	if err != nil {
		return nil, err
	}
	rev := t.writeRev()
	rec := record{create: rev, version: 1, lease: p.Lease, value: p.Value}
	if existed {
		rec.create, rec.version = prev.create, prev.version+1
	}
	if p.IgnoreValue {
		rec.value = prev.value
	}
	if p.IgnoreLease {
		rec.lease = prev.lease
	}
	enc := rec.encode()
	if err := t.b.Set(versionKey(p.Key, rev), enc, nil); err != nil {
		return nil, err
	}
	// The cached value shares the encoded record's bytes, which nothing modifies.
	cached := rec
	cached.value = enc[len(enc)-len(rec.value):]
	t.src.wrote(p.Key, cached, rev)
	if err := t.logEvent(mvccpb.PUT, p.Key); err != nil {
		return nil, err
	}
	if existed && prev.lease != 0 && prev.lease != rec.lease {
		if err := t.b.Delete(attachedKey(prev.lease, p.Key), nil); err != nil {
			return nil, err
		}
	}
	if rec.lease != 0 {
		if err := t.b.Set(attachedKey(rec.lease, p.Key), nil, nil); err != nil {
			return nil, err
		}
	}
	if !existed {
		t.next.keys++
	}
	// The key and values are shared by the event, the response and the cache: the command
	// is this apply's own, and none of them is modified.
	ev := &mvccpb.Event{Type: mvccpb.PUT, Kv: cached.keyValue(p.Key, rev, true)}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: rev}}
	if existed {
		ev.PrevKv = prev.keyValue(p.Key, prevMod, true)
		if p.PrevKv {
			resp.PrevKv = ev.PrevKv
		}
	}
	t.events = append(t.events, ev)
	return resp, nil
}

func (t *txn) logEvent(typ mvccpb.Event_EventType, key []byte) error {
	v := append([]byte{byte(typ)}, key...)
	err := t.b.Set(revisionKey(t.writeRev(), t.sub), v, nil)
	t.sub++
	return err
}

func (t *txn) deleteRange(d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if t.b == nil {
		return nil, fmt.Errorf("mvcc: delete in a read-only transaction")
	}
	kvs, _, err := rangeAt(t.src, d.Key, rangeEnd(d.RangeEnd), t.readRev(), rangeOpts{})
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	for _, kv := range kvs {
		if err := t.deleteKey(kv); err != nil {
			return nil, err
		}
	}
	resp.Deleted = int64(len(kvs))
	if d.PrevKv {
		resp.PrevKvs = kvs
	}
	resp.Header.Revision = t.readRev()
	return resp, nil
}

// deleteKey writes a tombstone over the live version kv.
func (t *txn) deleteKey(kv *mvccpb.KeyValue) error {
	rev := t.writeRev()
	if err := t.b.Set(versionKey(kv.Key, rev), []byte{recordTombstone}, nil); err != nil {
		return err
	}
	t.src.wrote(kv.Key, record{tombstone: true}, rev)
	if err := t.logEvent(mvccpb.DELETE, kv.Key); err != nil {
		return err
	}
	if kv.Lease != 0 {
		if err := t.b.Delete(attachedKey(kv.Lease, kv.Key), nil); err != nil {
			return err
		}
	}
	t.next.keys--
	t.events = append(t.events, &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: rev}, PrevKv: kv})
	return nil
}

func (t *txn) compact(c *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	switch {
	case c.Revision <= t.st.compactRev:
		return nil, ErrCompacted
	case c.Revision > t.st.rev:
		return nil, ErrFutureRev
	}
	t.next.compactRev = c.Revision
	return &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: t.base}}, nil
}
