package kv

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/georaft/georaft/raft"
)

// benchEntries encodes n SETs of 16-byte keys over keySpace keys with 100-byte values, from
// 1000 clients with sessions, starting at log index first.
func benchEntries(b *testing.B, n, keySpace int, first uint64) []raft.Entry {
	entries := make([]raft.Entry, n)
	value := bytes.Repeat([]byte("v"), 100)
	for i := range entries {
		c := Command{Op: OpSet, Key: fmt.Appendf(nil, "key-%011d", i%keySpace), Value: value,
			ClientID: uint64(i%1000 + 1), Seq: first + uint64(i/1000)}
		data, err := c.Encode()
		if err != nil {
			b.Fatal(err)
		}
		entries[i] = raft.Entry{Index: first + uint64(i), Term: 1, Type: raft.EntryNormal, Data: data}
	}
	return entries
}

func BenchmarkApply(b *testing.B) {
	entries := benchEntries(b, b.N, 100000, 1)
	s := New(Limits{}, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(entries[0].Data)))
	b.ResetTimer()
	for i := range b.N {
		if r := s.Apply(entries[i]); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func filledStore(b *testing.B, keys int) *Store {
	s := New(Limits{}, 0)
	for _, e := range benchEntries(b, keys, keys, 1) {
		s.Apply(e)
	}
	return s
}

func BenchmarkGet(b *testing.B) {
	s := filledStore(b, 100000)
	key := []byte("key-00000012345")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, ok := s.Get(key); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	s := filledStore(b, 100000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := []byte("key-00000012345")
		for pb.Next() {
			if _, ok := s.Get(key); !ok {
				b.Fatal("missing")
			}
		}
	})
}

// BenchmarkApplyDuringSnapshot measures Apply while a snapshot image is held: the first
// write to each shard copies it.
func BenchmarkApplyDuringSnapshot(b *testing.B) {
	const keys = 100000
	s := filledStore(b, keys)
	entries := benchEntries(b, b.N, keys, keys+1)
	im := s.Image()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if r := s.Apply(entries[i]); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.StopTimer()
	if _, err := im.WriteTo(io.Discard); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkImage measures what the apply loop pays to cut a snapshot of 100k keys.
func BenchmarkImage(b *testing.B) {
	s := filledStore(b, 100000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Image()
	}
}

func BenchmarkSnapshot(b *testing.B) {
	s := filledStore(b, 100000)
	size := int64(len(snapshotBytes(b, s)))
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Snapshot(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	snap := snapshotBytes(b, filledStore(b, 100000))
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := New(Limits{}, 0).Restore(bytes.NewReader(snap)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := benchEntries(b, 1, 1, 1)[0].Data
	b.ReportAllocs()
	for range b.N {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
