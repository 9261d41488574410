package mvcc

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/raft"
)

var loadKeys = flag.Int("mvcc.load", 0, "TestLoadKeys: how many keys to load (0 skips it); make bench-10m loads 10 million")

// TestLoadKeys loads many keys through Apply, as the log would, then reads some back, and
// reports the process's resident memory and the engine's disk use: memory must stay bounded
// by the engine's cache and memtables, not grow with the data. Run by make bench-10m; not
// part of make test.
func TestLoadKeys(t *testing.T) {
	if *loadKeys == 0 {
		t.Skip("run with -mvcc.load N (make bench-10m)")
	}
	dir := t.TempDir()
	if d := os.Getenv("MVCC_LOAD_DIR"); d != "" {
		dir = d
	}
	opts := Options{} // the defaults georaftd runs with
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const perEntry = 100
	value := []byte(strings.Repeat("v", 100))
	start := time.Now()
	var index uint64
	for k := 0; k < *loadKeys; k += perEntry {
		txn := &pb.TxnRequest{}
		for j := k; j < k+perEntry && j < *loadKeys; j++ {
			txn.Success = append(txn.Success, &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{
				Key: fmt.Appendf(nil, "/registry/pods/ns-%04d/pod-%08d", j%1000, j), Value: value}}})
		}
		data, err := (&Command{Kind: KindTxn, Txn: txn}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		index++
		res, err := s.Apply(raft.Entry{Index: index, Term: 1, Type: raft.EntryNormal, Data: data})
		if err != nil || res.Err != nil {
			t.Fatal(err, res.Err)
		}
		if index%10000 == 0 {
			t.Logf("%d keys in %v, rss %d MiB, disk %d MiB", k+perEntry, time.Since(start).Round(time.Second), rssMiB(), s.DiskBytes()>>20)
		}
	}
	loaded := time.Since(start)
	if _, _, err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	readStart := time.Now()
	const reads = 100000
	for i := 0; i < reads; i++ {
		j := r.IntN(*loadKeys)
		if _, ok, err := s.Get(fmt.Appendf(nil, "/registry/pods/ns-%04d/pod-%08d", j%1000, j)); err != nil || !ok {
			t.Fatalf("key %d missing: %v", j, err)
		}
	}
	readTime := time.Since(readStart)
	resp, err := s.Range(&pb.RangeRequest{Key: []byte("/registry/pods/ns-0001/"), RangeEnd: []byte("/registry/pods/ns-0001/\xff"), CountOnly: true})
	if err != nil || resp.Count != int64(*loadKeys/1000) {
		t.Fatalf("count of one namespace: %v %v", resp.GetCount(), err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("RESULT keys=%d load=%v (%.0f keys/s) reads=%d in %v (%.1f µs each) rss=%d MiB peak_rss=%d MiB go_heap=%d MiB disk=%d MiB live_keys=%d",
		*loadKeys, loaded.Round(time.Second), float64(*loadKeys)/loaded.Seconds(), reads, readTime.Round(time.Millisecond),
		float64(readTime.Microseconds())/reads, rssMiB(), peakRSSMiB(), ms.HeapInuse>>20, s.DiskBytes()>>20, s.Len())
}

func procStatusMiB(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field+":") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field+":")), "%d", &kb)
			return kb >> 10
		}
	}
	return -1
}

func rssMiB() int64     { return procStatusMiB("VmRSS") }
func peakRSSMiB() int64 { return procStatusMiB("VmHWM") }
