package node_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/georaft/georaft/node"
	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/node/snapshot"
	"github.com/georaft/georaft/node/wal"
	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// A data directory written by the release before the MVCC store (a node/kv snapshot file and
// a WAL of georaft.v1 commands after it) starts with its data: the snapshot is imported into
// the engine and the log replayed on top, sessions included.
func TestDataDirOfThePreviousReleaseStarts(t *testing.T) {
	cfgs := clusterConfigs(t, 1, nil)
	dir := cfgs[0].Node.DataDir

	// The old state machine at index 10: a=1 and b=2, and client 7's write at seq 1.
	old := kv.New(kv.Limits{}, 0)
	olds := []kv.Command{
		{Op: kv.OpSet, Key: []byte("a"), Value: []byte("1")},
		{Op: kv.OpSet, Key: []byte("b"), Value: []byte("2"), ClientID: 7, Seq: 1},
	}
	for i := uint64(1); i <= 10; i++ {
		e := raft.Entry{Index: i, Term: 1, Type: raft.EntryNoop}
		if int(i) <= len(olds) {
			e.Type, e.Data = raft.EntryNormal, mustEncode(t, olds[i-1])
		}
		old.Apply(e)
	}
	meta := raft.SnapshotMeta{Index: 10, Term: 1}
	snaps, err := snapshot.NewStore(filepath.Join(dir, "snap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := snaps.Save(meta, func(w io.Writer) error { return old.Snapshot(w) }); err != nil {
		t.Fatal(err)
	}
	w, _, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal")})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SaveSnapshot(meta); err != nil {
		t.Fatal(err)
	}
	var entries []raft.Entry
	for i, c := range []kv.Command{
		{Op: kv.OpSet, Key: []byte("c"), Value: []byte("3"), ClientID: 7, Seq: 2},
		{Op: kv.OpDelete, Key: []byte("a")},
		{Op: kv.OpSet, Key: []byte("d"), Value: []byte("4")},
	} {
		entries = append(entries, raft.Entry{Index: 11 + uint64(i), Term: 1, Type: raft.EntryNormal, Data: mustEncode(t, c)})
	}
	if err := w.Save(&raft.HardState{Term: 1, Vote: 1, Commit: 13}, entries); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	c := &testCluster{t: t, cfgs: cfgs, servers: make([]*node.Server, 1)}
	c.start(0)
	t.Cleanup(c.close)
	cc, err := grpc.NewClient(cfgs[0].Listen.Client, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c.conns = []*grpc.ClientConn{cc}
	conn := georaftv1.NewKVServiceClient(cc)
	c.clients = []georaftv1.KVServiceClient{conn}
	c.waitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for key, want := range map[string]string{"a": "", "b": "2", "c": "3", "d": "4"} {
		resp, err := conn.Get(ctx, &georaftv1.GetRequest{Key: []byte(key), ReadMode: georaftv1.ReadMode_READ_MODE_INDEX})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(resp.Value); got != want || resp.Found != (want != "") {
			t.Fatalf("%s after the upgrade: found=%v %q, want %q", key, resp.Found, got, want)
		}
	}
	// Client 7's last write (seq 2, at index 11) is still remembered: a retry is not applied again.
	resp, err := conn.Set(ctx, &georaftv1.SetRequest{Key: []byte("c"), Value: []byte("3"), Session: &georaftv1.WriteSession{ClientId: 7, Sequence: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Index != 11 {
		t.Fatalf("a retry of the session's write was applied again at %d, want the original index 11", resp.Index)
	}
}

func mustEncode(t *testing.T, c kv.Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
