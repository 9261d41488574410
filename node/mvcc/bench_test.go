package mvcc

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

// The engine's share of a write and of a read, as the node drives it: georaft.v1's Set is a
// one-put transaction with prev_kv under a client session, over 1000 keys of 128 bytes (the
// compare's workload); a lease read is Get of one of them.
//
//	go test ./node/mvcc -run XXX -bench . -benchmem

const benchKeys = 1000

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchSetEntry(b *testing.B, index uint64, client uint64, seq uint64, key int) raft.Entry {
	value := make([]byte, 128)
	cmd := Command{Kind: KindTxn, ClientID: client, Seq: seq, Op: kv.OpSet,
		Txn: TxnOf(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
			Key: fmt.Appendf(nil, "key-%06d", key), Value: value, PrevKv: true}}})}
	data, err := cmd.Encode()
	if err != nil {
		b.Fatal(err)
	}
	return raft.Entry{Index: index, Term: 1, Type: raft.EntryNormal, Data: data}
}

// cpuTime is the process's CPU time so far (every goroutine, pebble's included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the process's CPU time per op since start: wall time per op says little on
// a loaded machine.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// fill writes every key once, so the benchmarks overwrite and read existing keys.
func fill(b *testing.B, s *Store) uint64 {
	b.Helper()
	var index uint64
	for k := range benchKeys {
		index++
		if _, err := s.Apply(benchSetEntry(b, index, 0, 0, k)); err != nil {
			b.Fatal(err)
		}
	}
	return index
}

// BenchmarkApplySet applies one Set per call, as a lightly loaded node does.
func BenchmarkApplySet(b *testing.B) {
	s := benchStore(b)
	index := fill(b, s)
	entries := make([]raft.Entry, b.N)
	for i := range entries {
		entries[i] = benchSetEntry(b, index+uint64(i)+1, uint64(i%64+1), uint64(i/64+1), i%benchKeys)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := range entries {
		if _, err := s.Apply(entries[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplySetBatch applies Sets 32 at a time, as a node under 64 clients gets them
// from one Ready.
func BenchmarkApplySetBatch(b *testing.B) {
	s := benchStore(b)
	index := fill(b, s)
	const per = 32
	entries := make([]raft.Entry, b.N)
	for i := range entries {
		entries[i] = benchSetEntry(b, index+uint64(i)+1, uint64(i%64+1), uint64(i/64+1), i%benchKeys)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < len(entries); i += per {
		if err := s.ApplyAll(entries[i:min(i+per, len(entries))], func(int, Result) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet reads one existing key at the newest revision (a lease read's engine work).
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	fill(b, s)
	keys := make([][]byte, benchKeys)
	for k := range keys {
		keys[k] = fmt.Appendf(nil, "key-%06d", k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		if _, ok, err := s.Get(keys[i%benchKeys]); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkRange reads one existing key through the etcd API's Range.
func BenchmarkRange(b *testing.B) {
	s := benchStore(b)
	fill(b, s)
	reqs := make([]*pb.RangeRequest, benchKeys)
	for k := range reqs {
		reqs[k] = &pb.RangeRequest{Key: fmt.Appendf(nil, "key-%06d", k)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b, cpuTime())
	for i := 0; i < b.N; i++ {
		if r, err := s.Range(reqs[i%benchKeys]); err != nil || len(r.Kvs) != 1 {
			b.Fatal(err)
		}
	}
}
