package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Errors a request can get, matched with errors.Is. The node maps them onto etcd's codes.
var (
	ErrCompacted     = errors.New("mvcc: required revision has been compacted")
	ErrFutureRev     = errors.New("mvcc: required revision is a future revision")
	ErrLeaseNotFound = errors.New("lease not found")
	ErrLeaseExists   = errors.New("lease already exists")
	ErrKeyNotFound   = errors.New("key not found")
	ErrLeaseInvalid  = errors.New("lease ID must be positive")
)

// reader is what both the engine and an apply's batch offer.
type reader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// latest reads key's newest version at or below rev (rev 0: any) from the engine. ok is false
// when the key has no version there (mod 0) or the newest is a tombstone (rec.tombstone, and
// mod its revision).
func latest(rd reader, key []byte, rev int64) (rec record, mod int64, ok bool, err error) {
	prefix := keyPrefix(nil, key)
	it, err := rd.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: afterKey(prefix)})
	if err != nil {
		return record{}, 0, false, err
	}
	defer it.Close()
	if rev <= 0 {
		rev = 1<<63 - 1
	}
	if !it.SeekPrefixGE(seekAt(prefix, rev)) {
		return record{}, 0, false, it.Error()
	}
	_, mod = versionOf(it.Key())
	rec, err = decodeRecord(it.Value())
	if err != nil {
		return record{}, 0, false, err
	}
	if rec.tombstone {
		return rec, mod, false, nil
	}
	rec.value = bytes.Clone(rec.value)
	return rec, mod, true, nil
}

// rangeOpts say what rangeAt collects.
type rangeOpts struct {
	limit     int // 0: no limit
	keysOnly  bool
	countOnly bool
}

// rangeAt lists the live keys of [key, end) at rev, in key order, and counts all of them.
// end nil is key alone; end empty is every key from key on.
func rangeAt(src *source, key, end []byte, rev int64, o rangeOpts) ([]*mvccpb.KeyValue, int64, error) {
	if end == nil {
		rec, mod, ok, err := src.latest(key, rev)
		if err != nil || !ok {
			return nil, 0, err
		}
		if o.countOnly {
			return nil, 1, nil
		}
		return []*mvccpb.KeyValue{rec.keyValue(bytes.Clone(key), mod, !o.keysOnly)}, 1, nil
	}
	lower := keyPrefix(nil, key)
	upper := []byte{kindVersion + 1}
	if len(end) > 0 {
		if bytes.Compare(end, key) <= 0 {
			return nil, 0, nil
		}
		upper = rangeBound(end)
	}
	it, err := src.rd.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var kvs []*mvccpb.KeyValue
	var count int64
	valid := it.First()
	for valid {
		prefix, mod := versionOf(it.Key())
		prefix = bytes.Clone(prefix)
		if mod > rev {
			// Newer than asked for: find the newest version at or below rev, if any.
			if valid = it.SeekGE(seekAt(prefix, rev)); !valid {
				break
			}
			if !bytes.HasPrefix(it.Key(), prefix) || len(it.Key()) != len(prefix)+revBytes {
				continue // the key had no version at rev; this is the next key's first
			}
			_, mod = versionOf(it.Key())
		}
		rec, err := decodeRecord(it.Value())
		if err != nil {
			return nil, 0, fmt.Errorf("%w at %q", err, it.Key())
		}
		if !rec.tombstone {
			count++
			if !o.countOnly && (o.limit <= 0 || len(kvs) < o.limit) {
				uk, err := userKey(prefix)
				if err != nil {
					return nil, 0, err
				}
				rec.value = bytes.Clone(rec.value) // it aliases the iterator's buffer
				kvs = append(kvs, rec.keyValue(uk, mod, !o.keysOnly))
			}
		}
		// On to the next key: usually its first version is the next entry.
		valid = it.Next()
		if valid && bytes.HasPrefix(it.Key(), prefix) && len(it.Key()) == len(prefix)+revBytes {
			valid = it.SeekGE(afterKey(prefix))
		}
	}
	return kvs, count, it.Error()
}

// checkRev refuses a read revision the store cannot serve.
func checkRev(st *state, rev int64) error {
	switch {
	case rev <= 0:
		return nil
	case rev > st.rev:
		return ErrFutureRev
	case rev < st.compactRev:
		return ErrCompacted
	}
	return nil
}

// rangeEnd turns the API's range_end into rangeAt's: "\x00" means every key from key on.
func rangeEnd(end []byte) []byte {
	switch {
	case len(end) == 0:
		return nil
	case len(end) == 1 && end[0] == 0:
		return []byte{}
	}
	return end
}

// executeRange serves a RangeRequest at revision base (the newest) from src, as etcd does:
// filters and sorts after reading, and a limit applies after them.
func executeRange(src *source, st *state, base int64, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRev(st, r.Revision); err != nil {
		return nil, err
	}
	rev := base
	if r.Revision > 0 {
		rev = r.Revision
	}
	o := rangeOpts{keysOnly: r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE, countOnly: r.CountOnly}
	if defaultOrder(r) && !hasRevisionFilters(r) && r.Limit > 0 {
		o.limit = int(r.Limit) + 1
	}
	kvs, count, err := rangeAt(src, r.Key, rangeEnd(r.RangeEnd), rev, o)
	if err != nil {
		return nil, err
	}
	kvs = filterKVs(kvs, r)
	sortKVs(kvs, r)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: base}, Count: count}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func defaultOrder(r *pb.RangeRequest) bool {
	return r.SortOrder == pb.RangeRequest_NONE ||
		(r.SortTarget == pb.RangeRequest_KEY && r.SortOrder == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

func filterKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) []*mvccpb.KeyValue {
	if !hasRevisionFilters(r) {
		return kvs
	}
	out := kvs[:0]
	for _, kv := range kvs {
		switch {
		case r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision:
		case r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision:
		case r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision:
		case r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision:
		default:
			out = append(out, kv)
		}
	}
	return out
}

func sortKVs(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if order == pb.RangeRequest_NONE || (r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) bool
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	default:
		return
	}
	if order == pb.RangeRequest_DESCEND {
		asc := less
		less = func(a, b *mvccpb.KeyValue) bool { return asc(b, a) }
	}
	// Stable, so keys equal under the target stay in key order on every replica and read.
	sort.SliceStable(kvs, func(i, j int) bool { return less(kvs[i], kvs[j]) })
}

// Range serves a range read at the newest applied revision (or r.Revision).
func (s *Store) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st.Load()
	return executeRange(s.reading(st), st, st.rev, r)
}

// reading is what a reader of the published state st looks keys up in.
func (s *Store) reading(st *state) *source {
	return &source{rd: s.db, cache: s.latest, fillRev: st.rev}
}

// ReadTxn evaluates a transaction without writes (every op a range, at any depth) against
// the newest applied state.
func (s *Store) ReadTxn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if !IsReadOnly(r) {
		return nil, errors.New("mvcc: ReadTxn given a transaction that writes")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st.Load()
	t := &txn{src: s.reading(st), st: st, base: st.rev}
	return t.run(r)
}

// Get returns the newest value of key, for georaft.v1. The value is shared: the caller must
// not modify it.
func (s *Store) Get(key []byte) (value []byte, found bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st.Load()
	src := source{rd: s.db, cache: s.latest, fillRev: st.rev}
	rec, _, ok, err := src.latest(key, st.rev)
	if !ok {
		return nil, false, err
	}
	return rec.value, true, err
}

// IsReadOnly reports whether a transaction writes nothing in either branch at any depth.
func IsReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.GetSuccess(), r.GetFailure()} {
		for _, op := range ops {
			switch v := op.GetRequest().(type) {
			case *pb.RequestOp_RequestRange:
			case *pb.RequestOp_RequestTxn:
				if !IsReadOnly(v.RequestTxn) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}
