package kv

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/georaft/georaft/raft"
)

var writeCorpus = flag.Bool("write-corpus", false, "rewrite the committed seed corpus in testdata/fuzz")

func commandSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, c := range []Command{
		set("x", "5"),
		withSession(set("key", "value"), 1<<63, 1<<40),
		withSession(del("x"), 7, 2),
		get("k"),
		set("k", ""),
		{Op: OpSet, Key: []byte{0, 0xff}, Value: bytes.Repeat([]byte{0x80}, 200)},
	} {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds, nil, []byte{1}, []byte{1, 1, 0x80, 0x80}, []byte{2, 1, 0, 1, 'k', 0}, []byte{1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range commandSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		_ = c.String()
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes-for-meaning.
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("Decode accepted %x as %v, Encode refuses it: %v", data, c, err)
		}
		if len(enc) != c.EncodedSize() {
			t.Fatalf("EncodedSize %d, encoding %d bytes", c.EncodedSize(), len(enc))
		}
		again, err := Decode(enc)
		if err != nil || !commandsEqual(again, c) {
			t.Fatalf("re-decoding %v: %v, %v", c, again, err)
		}
		// Applying it must not panic either.
		s := New(Limits{}, 2)
		s.Apply(raftEntry(1, data))
	})
}

func restoreSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, n := range []int{0, 1, 60} {
		s := New(Limits{}, 4)
		l := randomLog(t, uint64(n), n, 6)
		for _, e := range l.entries {
			s.Apply(e)
		}
		seeds = append(seeds, snapshotBytes(t, s))
	}
	return append(seeds,
		newRaw(10, 2, 1, 2).session(5, 3, 9, OpSet, 0, 8).kv("a", "1").kv("b", "2").sealed(),
		newRaw(3, 1, 0, 2).kv("a", "1").kv("a", "2").sealed(),
		[]byte("GRKV"),
		[]byte("GRKV\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
	)
}

func FuzzRestore(f *testing.F) {
	for _, s := range restoreSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		restoreAndContinue(t, data)
		// Random bytes almost never carry a valid CRC; resealing lets the fuzzer reach
		// the structural checks behind it.
		if len(data) >= 4 {
			body := data[:len(data)-4]
			restoreAndContinue(t, binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli)))
		}
	})
}

func restoreAndContinue(t *testing.T, data []byte) {
	s := New(Limits{}, 4)
	if err := s.Restore(bytes.NewReader(data)); err != nil {
		return
	}
	// An accepted snapshot is a state the store can go on from and snapshot again.
	again := New(Limits{}, 4)
	if err := again.Restore(bytes.NewReader(snapshotBytes(t, s))); err != nil {
		t.Fatalf("re-restoring an accepted snapshot: %v", err)
	}
	if again.Hash() != s.Hash() || again.Len() != s.Len() {
		t.Fatal("re-snapshot changed the state")
	}
	idx, term := s.Applied()
	set := []byte{1, 1, 1, 1, 1, 'k', 1, 'v'} // SET k v, client 1 seq 1
	s.Apply(raft.Entry{Index: idx + 1, Term: term, Type: raft.EntryNormal, Data: set})
}

// TestWriteSeedCorpus regenerates testdata/fuzz from the seeds above:
// go test ./node/kv -run TestWriteSeedCorpus -write-corpus
func TestWriteSeedCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -write-corpus to regenerate testdata/fuzz")
	}
	writeSeeds(t, "FuzzDecodeCommand", commandSeeds(t))
	writeSeeds(t, "FuzzRestore", restoreSeeds(t))
}

func writeSeeds(t *testing.T, target string, seeds [][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
