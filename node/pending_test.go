package node

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/raft"
)

func entryOf(t *testing.T, index uint64, cmd mvcc.Command) raft.Entry {
	t.Helper()
	data, err := cmd.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raft.Entry{Index: index, Term: 1, Type: raft.EntryNormal, Data: data}
}

func putOp(key string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte("v")}}}
}

func deleteOp(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: []byte(end)}}}
}

func rangeReq(key, end string) *pb.RangeRequest {
	return &pb.RangeRequest{Key: []byte(key), RangeEnd: []byte(end)}
}

// The pending-key index: a lease read waits for the newest held entry that may change what it
// reads, and only for that one.
func TestPendingKeysWaitForTheNewestEntryTouchingTheKeys(t *testing.T) {
	txn := func(ops ...*pb.RequestOp) mvcc.Command {
		return mvcc.Command{Kind: mvcc.KindTxn, Txn: &pb.TxnRequest{Success: ops}}
	}
	p := newPendingKeys()
	p.appliedTo(10)
	p.note([]raft.Entry{
		entryOf(t, 11, txn(putOp("a"))),
		entryOf(t, 12, txn(deleteOp("m", "p"))), // [m, p)
		{Index: 13, Term: 1, Type: raft.EntryNoop},
		// A transaction counts with both branches: which runs depends on the state.
		entryOf(t, 14, mvcc.Command{Kind: mvcc.KindTxn, Txn: &pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("c")}},
			Success: []*pb.RequestOp{putOp("s")},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("f")}}}}},
		}}),
		entryOf(t, 15, mvcc.Command{Kind: mvcc.KindLeaseGrant, LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 10}}),
		entryOf(t, 16, txn(putOp("a"))),
	})
	cases := []struct {
		name string
		keys readKeys
		view uint64
		want uint64
	}{
		{"key written twice: the newer write", keysOfGet([]byte("a")), 16, 16},
		{"a view that ends earlier: the write it names", keysOfGet([]byte("a")), 15, 11},
		{"untouched key: nothing to wait for", keysOfGet([]byte("b")), 16, 0},
		{"key in a deleted range", keysOfGet([]byte("n")), 16, 12},
		{"range end is exclusive", keysOfGet([]byte("p")), 16, 0},
		{"a range over a deleted range", keysOfRange(rangeReq("k", "n")), 16, 12},
		{"a prefix read from a key on", keysOfRange(rangeReq("q", "\x00")), 16, 14},
		{"the failure branch of a transaction, nested", keysOfGet([]byte("f")), 16, 14},
		{"a compared key is not written", keysOfGet([]byte("c")), 16, 0},
		{"a read at a past revision waits for everything", keysOfRange(&pb.RangeRequest{Key: []byte("b"), Revision: 3}), 16, 16},
		{"every key (unrefined)", allKeys, 16, 16},
		{"a read-only transaction: its compares and ranges", keysOfReadTxn(&pb.TxnRequest{
			Compare: []*pb.Compare{{Key: []byte("z")}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: rangeReq("s", "")}}},
		}), 16, 14},
		{"a view beyond what was noted", keysOfGet([]byte("b")), 17, 17},
	}
	for _, tc := range cases {
		if got := p.waitIndex(tc.keys, tc.view); got != tc.want {
			t.Errorf("%s: wait for %d; want %d", tc.name, got, tc.want)
		}
	}

	// A lease revoke deletes whatever is attached when it applies, a compaction changes old
	// revisions, an undecodable entry is unknown: each touches every key.
	for i, e := range []raft.Entry{
		entryOf(t, 17, mvcc.Command{Kind: mvcc.KindLeaseRevoke, LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}}),
		entryOf(t, 17, mvcc.Command{Kind: mvcc.KindCompact, Compact: &pb.CompactionRequest{Revision: 2}}),
		{Index: 17, Term: 1, Type: raft.EntryNormal, Data: []byte{0xff, 1, 2}},
	} {
		p.note([]raft.Entry{e}) // replaces what was noted at 17
		if got := p.waitIndex(keysOfGet([]byte("b")), 17); got != 17 {
			t.Errorf("entry kind %d at 17: a read of an untouched key waits for %d; want 17", i, got)
		}
	}

	// A new leader's entries replace the suffix from their first index.
	p.note([]raft.Entry{entryOf(t, 16, txn(putOp("x")))})
	if got := p.waitIndex(keysOfGet([]byte("a")), 16); got != 11 {
		t.Errorf("after 16 was replaced: a read of a waits for %d; want 11", got)
	}
	if got := p.waitIndex(keysOfGet([]byte("b")), 17); got != 17 {
		t.Errorf("after 16 was replaced, a view naming 17 (no longer held) waits for %d; want 17", got)
	}
	// Applied entries are forgotten.
	p.appliedTo(14)
	if got := p.waitIndex(keysOfGet([]byte("a")), 16); got != 0 {
		t.Errorf("after applying 14, a read of a waits for %d; want 0", got)
	}
	// A gap (entries after a snapshot) counts as touching everything until applied.
	p.note([]raft.Entry{entryOf(t, 30, txn(putOp("y")))})
	if got := p.waitIndex(keysOfGet([]byte("b")), 30); got != 29 {
		t.Errorf("after a gap to 30, a read of b waits for %d; want 29", got)
	}
	p.appliedTo(29)
	if got := p.waitIndex(keysOfGet([]byte("b")), 30); got != 0 {
		t.Errorf("after the gap was applied, a read of b waits for %d; want 0", got)
	}
}
