package mvcc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

// fixture feeds a store entries in log order.
type fixture struct {
	t     *testing.T
	s     *Store
	dir   string
	index uint64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{CacheBytes: 8 << 20, MemTableBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	idx, _ := s.Applied()
	return &fixture{t: t, s: s, dir: dir, index: idx}
}

func (f *fixture) apply(cmd Command) Result {
	f.t.Helper()
	data, err := cmd.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	f.index++
	res, err := f.s.Apply(raft.Entry{Index: f.index, Term: 1, Type: raft.EntryNormal, Data: data})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) txn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	f.t.Helper()
	res := f.apply(Command{Kind: KindTxn, Txn: r})
	return res.Txn, res.Err
}

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v)}}}
}

func delOp(k, end string) *pb.RequestOp {
	d := &pb.DeleteRangeRequest{Key: []byte(k)}
	if end != "" {
		d.RangeEnd = []byte(end)
	}
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
}

func (f *fixture) put(k, v string) int64 {
	f.t.Helper()
	r, err := f.txn(TxnOf(putOp(k, v)))
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Header.Revision
}

func (f *fixture) rangeKeys(r *pb.RangeRequest) []string {
	f.t.Helper()
	resp, err := f.s.Range(r)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, fmt.Sprintf("%s=%s@%d/%d/v%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version))
	}
	return out
}

func eq(t *testing.T, got, want any) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRevisionsVersionsAndHistory(t *testing.T) {
	f := newFixture(t)
	eq(t, f.s.Rev(), 1) // an empty store is at revision 1, as etcd's
	eq(t, f.put("a", "1"), 2)
	eq(t, f.put("b", "1"), 3)
	eq(t, f.put("a", "2"), 4)
	// Two ops, one revision.
	r, err := f.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("c", "1"), delOp("b", "")}})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, r.Header.Revision, 5)
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}), []string{"a=2@2/4/v2", "c=1@5/5/v1"})
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 3}), []string{"a=1@2/2/v1", "b=1@3/3/v1"})
	eq(t, f.s.Len(), 2)
	// A delete that deletes nothing is no revision.
	r, err = f.txn(TxnOf(delOp("zzz", "")))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, r.Header.Revision, 5)
	// Recreated after a delete: a new create revision, version 1.
	f.put("b", "2")
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("b")}), []string{"b=2@6/6/v1"})
	if _, err := f.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 7}); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future revision: %v", err)
	}
}

func TestRangeOptions(t *testing.T) {
	f := newFixture(t)
	for i, k := range []string{"k/3", "k/1", "k/2", "k/\x00x", "k\x00", "l"} {
		f.put(k, fmt.Sprint(9-i))
	}
	all := &pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0")}
	eq(t, len(f.rangeKeys(all)), 4)
	resp, _ := f.s.Range(&pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0"), Limit: 2})
	eq(t, resp.Count, 4)
	eq(t, resp.More, true)
	eq(t, string(resp.Kvs[0].Key), "k/\x00x")
	resp, _ = f.s.Range(&pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND, Limit: 1})
	eq(t, string(resp.Kvs[0].Value), "9")
	resp, _ = f.s.Range(&pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0"), CountOnly: true})
	eq(t, resp.Count, 4)
	eq(t, len(resp.Kvs), 0)
	resp, _ = f.s.Range(&pb.RangeRequest{Key: []byte("k/"), RangeEnd: []byte("k0"), KeysOnly: true, MinCreateRevision: 4})
	eq(t, len(resp.Kvs), 2)
	eq(t, resp.Kvs[0].Value == nil, true)
	// The key with an escaped zero byte is found alone too.
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("k\x00")}), []string{"k\x00=5@6/6/v1"})
	// From-key: everything from "k0" on.
	eq(t, len(f.rangeKeys(&pb.RangeRequest{Key: []byte("k0"), RangeEnd: []byte{0}})), 1)
}

func TestTxnComparesAndNesting(t *testing.T) {
	f := newFixture(t)
	f.put("x", "1")
	cmp := func(target pb.Compare_CompareTarget, result pb.Compare_CompareResult, u any) *pb.Compare {
		c := &pb.Compare{Key: []byte("x"), Target: target, Result: result}
		switch v := u.(type) {
		case string:
			c.TargetUnion = &pb.Compare_Value{Value: []byte(v)}
		case int64:
			switch target {
			case pb.Compare_MOD:
				c.TargetUnion = &pb.Compare_ModRevision{ModRevision: v}
			case pb.Compare_VERSION:
				c.TargetUnion = &pb.Compare_Version{Version: v}
			case pb.Compare_CREATE:
				c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: v}
			case pb.Compare_LEASE:
				c.TargetUnion = &pb.Compare_Lease{Lease: v}
			}
		}
		return c
	}
	for _, tc := range []struct {
		c    *pb.Compare
		want bool
	}{
		{cmp(pb.Compare_VALUE, pb.Compare_EQUAL, "1"), true},
		{cmp(pb.Compare_VALUE, pb.Compare_GREATER, "0"), true},
		{cmp(pb.Compare_MOD, pb.Compare_EQUAL, int64(2)), true},
		{cmp(pb.Compare_MOD, pb.Compare_LESS, int64(2)), false},
		{cmp(pb.Compare_VERSION, pb.Compare_NOT_EQUAL, int64(1)), false},
		{cmp(pb.Compare_CREATE, pb.Compare_EQUAL, int64(2)), true},
		{cmp(pb.Compare_LEASE, pb.Compare_EQUAL, int64(0)), true},
	} {
		r, err := f.txn(&pb.TxnRequest{Compare: []*pb.Compare{tc.c}})
		if err != nil || r.Succeeded != tc.want {
			t.Fatalf("%v: succeeded %v, want %v (%v)", tc.c, r.GetSucceeded(), tc.want, err)
		}
	}
	// A missing key: create revision 0 compares, a value never does.
	missing := &pb.Compare{Key: []byte("nope"), Target: pb.Compare_CREATE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_CreateRevision{}}
	nested := &pb.TxnRequest{Compare: []*pb.Compare{missing}, Success: []*pb.RequestOp{putOp("nope", "made")}}
	r, err := f.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmp(pb.Compare_VALUE, pb.Compare_EQUAL, "other")},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: nested}}, {Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("nope")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, r.Succeeded, false)
	eq(t, r.Responses[0].GetResponseTxn().Succeeded, true)
	// The range after the nested put sees it.
	eq(t, string(r.Responses[1].GetResponseRange().Kvs[0].Value), "made")
	eq(t, r.Header.Revision, 3)
}

func TestPutOptionsAndLeases(t *testing.T) {
	f := newFixture(t)
	res := f.apply(Command{Kind: KindTxn, Txn: TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Lease: 7}}})})
	if !errors.Is(res.Err, ErrLeaseNotFound) {
		t.Fatalf("put with a missing lease: %v", res.Err)
	}
	eq(t, f.s.Rev(), 1)
	if res := f.apply(Command{Kind: KindLeaseGrant, LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 10}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := f.apply(Command{Kind: KindLeaseGrant, LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 10}}); !errors.Is(res.Err, ErrLeaseExists) {
		t.Fatalf("granted twice: %v", res.Err)
	}
	put := func(p *pb.PutRequest) Result {
		return f.apply(Command{Kind: KindTxn, Txn: TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}})})
	}
	if res := put(&pb.PutRequest{Key: []byte("k"), IgnoreValue: true}); !errors.Is(res.Err, ErrKeyNotFound) {
		t.Fatalf("ignore_value on a missing key: %v", res.Err)
	}
	put(&pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7})
	put(&pb.PutRequest{Key: []byte("j"), Value: []byte("w"), Lease: 7})
	res = put(&pb.PutRequest{Key: []byte("k"), IgnoreValue: true, IgnoreLease: true, PrevKv: true})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	prev := res.Txn.Responses[0].GetResponsePut().PrevKv
	eq(t, string(prev.Value), "v")
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("k")}), []string{"k=v@2/4/v2"})
	keys, _ := f.s.LeaseKeys(7)
	eq(t, len(keys), 2)
	res = f.apply(Command{Kind: KindLeaseRevoke, LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	eq(t, res.LeaseRevoke.Header.Revision, 5) // both keys deleted in one revision
	eq(t, f.s.Len(), 0)
	if _, ok := f.s.Lease(7); ok {
		t.Fatal("lease survived its revoke")
	}
}

func TestCompactionKeepsWhatReadsReach(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 5; i++ {
		f.put("a", fmt.Sprint(i)) // revisions 2..6
	}
	f.put("gone", "x")                 // 7
	f.txn(TxnOf(delOp("gone", "")))    // 8
	f.put("b", "1")                    // 9
	hashBefore, _, err := f.s.HashAt() // compaction moves nothing reads see above rev 8
	if err != nil {
		t.Fatal(err)
	}
	res := f.apply(Command{Kind: KindCompact, Compact: &pb.CompactionRequest{Revision: 8}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	select {
	case <-f.s.CompactDone(8):
	case <-time.After(10 * time.Second):
		t.Fatal("physical compaction did not finish")
	}
	if _, err := f.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 7}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below the compact revision: %v", err)
	}
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), Revision: 8}), []string{"a=4@2/6/v5"})
	if res := f.apply(Command{Kind: KindCompact, Compact: &pb.CompactionRequest{Revision: 8}}); !errors.Is(res.Err, ErrCompacted) {
		t.Fatalf("compacting twice: %v", res.Err)
	}
	hashAfter, _, _ := f.s.HashAt()
	// The hash differs only by the compact revision, which is state: compare a fresh store
	// that compacted logically but not yet physically instead.
	_ = hashBefore
	g := newFixture(t)
	for i := 0; i < 5; i++ {
		g.put("a", fmt.Sprint(i))
	}
	g.put("gone", "x")
	g.txn(TxnOf(delOp("gone", "")))
	g.put("b", "1")
	close(g.s.stopc) // no background compaction on this one
	g.s.wg.Wait()
	g.apply(Command{Kind: KindCompact, Compact: &pb.CompactionRequest{Revision: 8}})
	hashLogical, _, _ := g.s.HashAt()
	eq(t, hashAfter, hashLogical)
	g.s.stopc = make(chan struct{})
}

func TestRestartAndSnapshotRestore(t *testing.T) {
	f := newFixture(t)
	f.put("a", "1")
	f.put("b", "2")
	f.apply(Command{Kind: KindLeaseGrant, LeaseGrant: &pb.LeaseGrantRequest{ID: 3, TTL: 5}})
	f.apply(Command{Kind: KindTxn, ClientID: 9, Seq: 1, Op: kv.OpSet, Txn: TxnOf(putOp("c", "3"))})
	hash, applied, _ := f.s.HashAt()
	var snap bytes.Buffer
	if _, _, err := f.s.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(f.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h2, a2, _ := s.HashAt()
	eq(t, []uint64{h2, a2}, []uint64{hash, applied})
	// A retry of the session's write is answered from the session, even after a restart.
	f.s = s
	res := f.apply(Command{Kind: KindTxn, ClientID: 9, Seq: 1, Op: kv.OpSet, Txn: TxnOf(putOp("c", "3"))})
	eq(t, res.Duplicate, true)

	g := newFixture(t)
	g.put("junk", "x")
	if err := g.s.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	h3, a3, _ := g.s.HashAt()
	eq(t, []uint64{h3, a3}, []uint64{hash, applied})
	// A corrupt stream leaves the store as it was.
	bad := bytes.Clone(snap.Bytes())
	bad[len(bad)/2] ^= 1
	if err := g.s.Restore(bytes.NewReader(bad)); !errors.Is(err, ErrMalformedSnapshot) {
		t.Fatalf("corrupt snapshot: %v", err)
	}
	h4, _, _ := g.s.HashAt()
	eq(t, h4, hash)
}

func TestLegacySnapshotAndCommands(t *testing.T) {
	old := kv.New(kv.Limits{}, 0)
	for i, c := range []kv.Command{
		{Op: kv.OpSet, Key: []byte("x"), Value: []byte("1"), ClientID: 4, Seq: 1},
		{Op: kv.OpSet, Key: []byte("y"), Value: []byte("2")},
	} {
		data, _ := c.Encode()
		old.Apply(raft.Entry{Index: uint64(i + 1), Term: 1, Type: raft.EntryNormal, Data: data})
	}
	var snap bytes.Buffer
	if err := old.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	if err := f.s.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	f.index = 2
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}), []string{"x=1@2/2/v1", "y=2@2/2/v1"})
	// A v1 command from the old log applies on top, and the old session still dedups.
	legacy := func(c kv.Command) Result {
		data, _ := c.Encode()
		f.index++
		res, err := f.s.Apply(raft.Entry{Index: f.index, Term: 1, Type: raft.EntryNormal, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	eq(t, legacy(kv.Command{Op: kv.OpSet, Key: []byte("x"), Value: []byte("1"), ClientID: 4, Seq: 1}).Duplicate, true)
	res := legacy(kv.Command{Op: kv.OpDelete, Key: []byte("y"), ClientID: 4, Seq: 2})
	eq(t, res.Existed, true)
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}), []string{"x=1@2/2/v1"})
}

func TestWatchReplaysFollowsAndFallsBehind(t *testing.T) {
	f := newFixture(t)
	f.put("w/a", "1") // 2
	f.put("other", "x")
	f.put("w/b", "1") // 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := f.s.Watch(ctx, WatchOptions{Key: []byte("w/"), End: []byte("w0"), StartRev: 2, PrevKV: true})
	if err != nil {
		t.Fatal(err)
	}
	// Many more revisions than the synced buffer holds, while the watcher is not read.
	for i := 0; i < 3*watchBuffer; i++ {
		f.put("w/a", fmt.Sprint(i))
	}
	f.txn(TxnOf(delOp("w/", "w0")))
	var want []string
	want = append(want, "PUT w/a 2", "PUT w/b 4")
	for i := 0; i < 3*watchBuffer; i++ {
		want = append(want, fmt.Sprintf("PUT w/a %d", 5+i))
	}
	want = append(want, fmt.Sprintf("DELETE w/a %d", f.s.Rev()), fmt.Sprintf("DELETE w/b %d", f.s.Rev()))
	var got []string
	deadline := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case b, ok := <-w.C:
			if !ok {
				t.Fatal("watch ended")
			}
			for _, ev := range b.Events {
				got = append(got, fmt.Sprintf("%s %s %d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision))
				if ev.Type == mvccpb.DELETE && ev.PrevKv == nil {
					t.Fatal("delete without prev_kv")
				}
			}
		case <-deadline:
			t.Fatalf("watch stuck after %d events", len(got))
		}
	}
	// In order, no gaps, no duplicates, nothing outside the range.
	eq(t, got, want)
	// Compacted past the start: the watch says so and ends.
	f.apply(Command{Kind: KindCompact, Compact: &pb.CompactionRequest{Revision: f.s.Rev()}})
	w2, _ := f.s.Watch(ctx, WatchOptions{Key: []byte("w/"), StartRev: 2})
	b := <-w2.C
	eq(t, b.CompactRev, f.s.Rev())
	if _, ok := <-w2.C; ok {
		t.Fatal("compacted watch did not end")
	}
}

// A write that reuses the sequence of the session's last applied write but asks for
// something else is refused and changes nothing; the same write again is a duplicate, also
// after a restart.
func TestReusedSequenceRefused(t *testing.T) {
	f := newFixture(t)
	write := func(op kv.Op, r *pb.RequestOp) Result {
		return f.apply(Command{Kind: KindTxn, ClientID: 9, Seq: 4, Op: op, Txn: TxnOf(r)})
	}
	first := write(kv.OpSet, putOp("k", "1"))
	if first.Err != nil || first.Duplicate {
		t.Fatalf("first write: %+v", first)
	}
	for _, c := range []struct {
		name string
		op   kv.Op
		req  *pb.RequestOp
	}{
		{"another value", kv.OpSet, putOp("k", "2")},
		{"another key", kv.OpSet, putOp("j", "1")},
		{"another op", kv.OpDelete, delOp("k", "")},
	} {
		res := write(c.op, c.req)
		var reused *kv.ReusedSequenceError
		if !errors.As(res.Err, &reused) || res.Duplicate || reused.ClientID != 9 || reused.Seq != 4 {
			t.Fatalf("%s: %+v, want a ReusedSequenceError for client 9 seq 4", c.name, res)
		}
		if !errors.Is(res.Err, kv.ErrReusedSequence) {
			t.Fatalf("%s: %v does not match ErrReusedSequence", c.name, res.Err)
		}
	}
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}), []string{"k=1@2/2/v1"})
	retry := write(kv.OpSet, putOp("k", "1"))
	eq(t, []any{retry.Err, retry.Duplicate, retry.Index}, []any{error(nil), true, first.Index})

	// The fingerprint is stored with the session: after a restart the same checks hold.
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(f.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f.s = s
	if res := write(kv.OpSet, putOp("k", "2")); !errors.Is(res.Err, kv.ErrReusedSequence) {
		t.Fatalf("after restart, another value: %+v", res)
	}
	eq(t, write(kv.OpSet, putOp("k", "1")).Duplicate, true)
	eq(t, f.rangeKeys(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}}), []string{"k=1@2/2/v1"})
}

// Session records written before fingerprints existed (six fields) still load, and then
// only the op is compared.
func TestSessionRecordWithoutFingerprint(t *testing.T) {
	full := &session{clientID: 3, lastSeq: 7, lastUsed: 9, result: sessionResult{op: kv.OpSet, existed: true, index: 8, rev: 5, fingerprint: 1234}}
	b := full.encode()
	back, err := decodeSession(3, b)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, back.result, full.result)
	old := *full
	old.result.fingerprint = 0
	sixFields := old.encode()
	sixFields = sixFields[:len(sixFields)-1] // the trailing 0 is the seventh field
	back, err = decodeSession(3, sixFields)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, back.result, old.result)
	if _, err := decodeSession(3, append(b, 1)); err == nil {
		t.Fatal("a record with bytes after its fields decoded")
	}
}
