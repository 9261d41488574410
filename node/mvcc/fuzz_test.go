package mvcc

import (
	"os"
	"sync"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

func fuzzSeeds(f *testing.F) {
	for _, c := range []Command{
		{Kind: KindTxn, Txn: TxnOf(putOp("k", "v"))},
		{Kind: KindTxn, ClientID: 3, Seq: 1, Op: kv.OpSet, Txn: TxnOf(putOp("k", "v"))},
		{Kind: KindTxn, Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k"), Target: pb.Compare_VALUE, TargetUnion: &pb.Compare_Value{Value: []byte("v")}}},
			Success: []*pb.RequestOp{delOp("a", "z")}, Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: TxnOf(putOp("x", "y"))}}}}},
		{Kind: KindCompact, Compact: &pb.CompactionRequest{Revision: 2}},
		{Kind: KindLeaseGrant, LeaseGrant: &pb.LeaseGrantRequest{ID: 5, TTL: 10}},
		{Kind: KindLeaseRevoke, LeaseRevoke: &pb.LeaseRevokeRequest{ID: 5}},
	} {
		data, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	legacy, _ := (&kv.Command{Op: kv.OpSet, Key: []byte("old"), Value: []byte("v")}).Encode()
	f.Add(legacy)
}

// FuzzDecodeCommand: any bytes decode to a command that encodes again, or to an error; never a
// panic.
func FuzzDecodeCommand(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		if data[0] == commandVersion {
			if _, err := c.Encode(); err != nil {
				t.Fatalf("decoded %v but cannot encode it: %v", c.String(), err)
			}
		}
	})
}

// TestMain removes the store FuzzApply keeps across inputs.
func TestMain(m *testing.M) {
	code := m.Run()
	if fuzzStore != nil {
		fuzzStore.Close()
		os.RemoveAll(fuzzStore.dir)
	}
	os.Exit(code)
}

var (
	fuzzStoreOnce sync.Once
	fuzzStore     *Store
	fuzzIndex     uint64
	fuzzMu        sync.Mutex
)

// FuzzApply: whatever an entry holds, Apply neither panics nor fails the engine, and a
// refused entry changes nothing but the applied index.
func FuzzApply(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzMu.Lock()
		defer fuzzMu.Unlock()
		fuzzStoreOnce.Do(func() {
			dir, err := os.MkdirTemp("", "mvcc-fuzz-")
			if err == nil {
				fuzzStore, err = Open(dir, Options{CacheBytes: 4 << 20, MemTableBytes: 1 << 20})
			}
			if err != nil {
				t.Fatal(err)
			}
		})
		s := fuzzStore
		before, _, _ := s.HashAt()
		rev := s.Rev()
		fuzzIndex++
		res, err := s.Apply(raft.Entry{Index: fuzzIndex, Term: 1, Type: raft.EntryNormal, Data: data})
		if err != nil {
			t.Fatalf("the engine failed: %v", err)
		}
		// A refused write of a session still records when the session was last used.
		if cmd, derr := Decode(data); res.Err != nil && (derr != nil || cmd.ClientID == 0) {
			after, _, _ := s.HashAt()
			if after != before || s.Rev() != rev {
				t.Fatalf("a refused entry (%v) changed the state", res.Err)
			}
		}
	})
}
