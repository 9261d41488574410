package mvcc

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/raft"
)

// randomCommand is a write over a few keys, so that keys are overwritten, deleted, recreated
// and attached to leases often.
func randomCommand(r *rand.Rand, rev int64) Command {
	key := func() []byte { return []byte("k" + strconv.Itoa(r.IntN(12))) }
	put := func() *pb.RequestOp {
		p := &pb.PutRequest{Key: key(), Value: fmt.Appendf(nil, "v%d", r.IntN(1000)), PrevKv: r.IntN(2) == 0}
		switch r.IntN(8) {
		case 0:
			p.IgnoreValue = true
		case 1:
			p.Lease = 7
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
	}
	del := func() *pb.RequestOp {
		d := &pb.DeleteRangeRequest{Key: key(), PrevKv: true}
		if r.IntN(4) == 0 {
			d.RangeEnd = []byte("k5")
		}
		return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: d}}
	}
	get := func() *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key()}}}
	}
	switch r.IntN(20) {
	case 0:
		return Command{Kind: KindLeaseGrant, LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 5}}
	case 1:
		return Command{Kind: KindLeaseRevoke, LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}}
	case 2:
		return Command{Kind: KindCompact, Compact: &pb.CompactionRequest{Revision: max(1, rev-int64(r.IntN(10)))}}
	case 3:
		// A refused transaction that wrote before the op that refuses it.
		return Command{Kind: KindTxn, Txn: &pb.TxnRequest{Success: []*pb.RequestOp{put(), {}}}}
	}
	ops := []*pb.RequestOp{}
	for range 1 + r.IntN(3) {
		switch r.IntN(4) {
		case 0, 1:
			ops = append(ops, put())
		case 2:
			ops = append(ops, del())
		default:
			ops = append(ops, get())
		}
	}
	txn := &pb.TxnRequest{Success: ops, Failure: []*pb.RequestOp{put()}}
	if r.IntN(2) == 0 {
		txn.Compare = []*pb.Compare{{Key: key(), Target: pb.Compare_VERSION, Result: pb.Compare_GREATER, TargetUnion: &pb.Compare_Version{Version: 1}}}
	}
	return Command{Kind: KindTxn, Txn: txn}
}

func resultString(res Result) string {
	s := fmt.Sprintf("index %d rev %d existed %v err %v", res.Index, res.Revision, res.Existed, res.Err)
	for _, m := range []proto.Message{res.Txn, res.Compact, res.LeaseGrant, res.LeaseRevoke} {
		if !isNil(m) {
			b, _ := proto.Marshal(m)
			s += fmt.Sprintf(" %x", b)
		}
	}
	return s
}

func isNil(m proto.Message) bool {
	switch v := m.(type) {
	case *pb.TxnResponse:
		return v == nil
	case *pb.CompactionResponse:
		return v == nil
	case *pb.LeaseGrantResponse:
		return v == nil
	case *pb.LeaseRevokeResponse:
		return v == nil
	}
	return m == nil
}

// TestLatestCacheAgreesWithEngine applies the same random entries to a store without the
// latest-version cache, one with it, and one whose cache is too small to hold more than a key
// or two (so it evicts all the time), some of them a batch at a time: every result, every
// read of one key at the newest and at older revisions, and the final hash agree.
func TestLatestCacheAgreesWithEngine(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 18))
	var stores []*Store
	for _, limit := range []int64{-1, 0, 300} {
		s, err := Open(t.TempDir(), Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20, LatestCacheBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var index uint64
	for round := 0; round < 400; round++ {
		n := 1 + r.IntN(4)
		var entries []raft.Entry
		for range n {
			cmd := randomCommand(r, stores[0].Rev())
			data, err := cmd.Encode()
			if err != nil {
				t.Fatal(err)
			}
			index++
			entries = append(entries, raft.Entry{Index: index, Term: 1, Type: raft.EntryNormal, Data: data})
		}
		var want []string
		for i, s := range stores {
			var got []string
			if round%2 == 0 {
				for _, e := range entries {
					res, err := s.Apply(e)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, resultString(res))
				}
			} else if err := s.ApplyAll(entries, func(_ int, res Result) { got = append(got, resultString(res)) }); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				want = got
			} else if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("round %d, store %d: results\n%v\nwant\n%v", round, i, got, want)
			}
		}
		// Reads of every key at the newest revision and a few older ones.
		rev := stores[0].Rev()
		for k := range 12 {
			key := []byte("k" + strconv.Itoa(k))
			for _, at := range []int64{0, rev, rev - 1, rev - int64(r.IntN(8))} {
				var want string
				for i, s := range stores {
					resp, err := s.Range(&pb.RangeRequest{Key: key, Revision: at})
					got := fmt.Sprint(err)
					if err == nil {
						got = resp.String()
					}
					if v, ok, err := s.Get(key); at == 0 {
						got += fmt.Sprintf(" get %q %v %v", v, ok, err)
					}
					if i == 0 {
						want = got
					} else if got != want {
						t.Fatalf("round %d, store %d, %s at %d: %s, want %s", round, i, key, at, got, want)
					}
				}
			}
		}
	}
	var hashes []uint64
	for _, s := range stores {
		h, _, err := s.HashAt()
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	if hashes[1] != hashes[0] || hashes[2] != hashes[0] {
		t.Fatalf("hashes %v differ", hashes)
	}
}

// TestLatestCacheReadersNeverGoBack reads a key while entries overwrite it: a read never
// returns a value older than the one published before it began (a reader that missed the
// cache must not put back an older version over a newer one).
func TestLatestCacheReadersNeverGoBack(t *testing.T) {
	s, err := Open(t.TempDir(), Options{CacheBytes: 1 << 20, MemTableBytes: 1 << 20, LatestCacheBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writes = 3000
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				// The value written at revision r is r; other keys churn the small cache.
				rev := s.Rev()
				key := []byte("hot")
				if g%2 == 1 {
					key = fmt.Appendf(nil, "cold%d", rev%7)
				}
				v, ok, err := s.Get(key)
				if err != nil {
					errs <- err
					return
				}
				if !ok || key[0] != 'h' {
					continue
				}
				got, _ := strconv.ParseInt(string(v), 10, 64)
				if got < rev-1 { // the hot key is written every other revision
					errs <- fmt.Errorf("read %d after revision %d was published", got, rev)
					return
				}
			}
		}()
	}
	for i := uint64(1); i <= writes; i++ {
		rev := s.Rev() + 1
		key := "hot"
		if i%2 == 0 {
			key = fmt.Sprintf("cold%d", i%7)
		}
		data, _ := (&Command{Kind: KindTxn, Txn: TxnOf(putOp(key, strconv.FormatInt(rev, 10)))}).Encode()
		if _, err := s.Apply(raft.Entry{Index: i, Term: 1, Type: raft.EntryNormal, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
