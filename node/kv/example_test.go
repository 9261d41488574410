package kv_test

import (
	"fmt"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/raft"
)

func Example() {
	store := kv.New(kv.Limits{MaxKeyBytes: 4096, MaxValueBytes: 1 << 20}, 0)
	write := kv.Command{Op: kv.OpSet, Key: []byte("x"), Value: []byte("5"), ClientID: 42, Seq: 1}
	data, _ := write.Encode()
	fmt.Println(write)

	// The same write reaches the log twice (the client retried): it applies once.
	for index := uint64(1); index <= 2; index++ {
		r := store.Apply(raft.Entry{Index: index, Term: 1, Type: raft.EntryNormal, Data: data})
		fmt.Printf("entry %d: applied at %d, duplicate %v\n", index, r.Index, r.Duplicate)
	}
	v, ok := store.Get([]byte("x"))
	fmt.Printf("x = %s (%v)\n", v, ok)
	// Output:
	// SET x 5 client=42 seq=1
	// entry 1: applied at 1, duplicate false
	// entry 2: applied at 1, duplicate true
	// x = 5 (true)
}
