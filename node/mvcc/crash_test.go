package mvcc

import (
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/georaft/georaft/raft"
)

// TestCrashKeepsAPrefixTheLogCompletes: applies commit without an fsync, so a crash may lose
// the newest of them. Whatever it loses, the engine holds the state as of one log index, at
// or after the last index Sync returned (the node compacts its log no further), and applying
// the log from there again ends in the same state as never crashing. Entries go in batches of
// random sizes (ApplyAll, as the node applies a Ready), and the crash keeps a random part of
// what was never synced.
func TestCrashKeepsAPrefixTheLogCompletes(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 2))
	var entries []raft.Entry
	var rev int64 = 1
	for i := range 600 {
		cmd := randomCommand(r, rev)
		data, err := cmd.Encode()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, raft.Entry{Index: uint64(i + 1), Term: 1, Type: raft.EntryNormal, Data: data})
		rev += int64(r.IntN(2)) // a rough guess, only for compaction targets
	}
	opts := func(fs vfs.FS) Options {
		return Options{CacheBytes: 1 << 20, MemTableBytes: 256 << 10, FS: fs}
	}
	// hashAfter is the hash of a store that applied entries up to n, never crashing.
	hashAfter := func(n uint64) uint64 {
		s, err := Open(t.TempDir(), opts(vfs.NewMem()))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.ApplyAll(entries[:n], func(int, Result) {}); err != nil {
			t.Fatal(err)
		}
		h, applied, err := s.HashAt()
		if err != nil || applied != n {
			t.Fatalf("reference at %d: applied %d, %v", n, applied, err)
		}
		return h
	}
	want := hashAfter(uint64(len(entries)))

	for trial := range 6 {
		dir := t.TempDir()
		fs := vfs.NewCrashableMem()
		s, err := Open(dir, opts(fs))
		if err != nil {
			t.Fatal(err)
		}
		var synced uint64
		crashAt := 100 + r.IntN(len(entries)-100)
		for i := 0; i < crashAt; {
			n := min(1+r.IntN(40), crashAt-i)
			if err := s.ApplyAll(entries[i:i+n], func(int, Result) {}); err != nil {
				t.Fatal(err)
			}
			i += n
			if r.IntN(8) == 0 {
				if synced, _, err = s.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: []int{0, 100, r.IntN(101)}[trial%3], RNG: rand.New(rand.NewPCG(uint64(trial), 7))})
		s.Close()

		s, err = Open(dir, opts(crashed))
		if err != nil {
			t.Fatalf("trial %d: reopen after the crash: %v", trial, err)
		}
		applied, _ := s.Applied()
		if applied < synced || applied > uint64(crashAt) {
			t.Fatalf("trial %d: after the crash the engine is at index %d; synced %d, applied %d before", trial, applied, synced, crashAt)
		}
		h, _, err := s.HashAt()
		if err != nil {
			t.Fatal(err)
		}
		if ref := hashAfter(applied); h != ref {
			t.Fatalf("trial %d: the engine at index %d after the crash differs from a store that applied up to it", trial, applied)
		}
		// The log replays from the start (what the node's WAL holds): Apply skips what the
		// engine has.
		if err := s.ApplyAll(entries, func(int, Result) {}); err != nil {
			t.Fatal(err)
		}
		if h, _, err := s.HashAt(); err != nil || h != want {
			t.Fatalf("trial %d: replaying the log after the crash at %d ends elsewhere (%v)", trial, applied, err)
		}
		t.Logf("trial %d: crashed after %d, synced %d, recovered %d", trial, crashAt, synced, applied)
		s.Close()
	}
}
