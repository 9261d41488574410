// Package enginecmp measures the two embedded engines georaft could keep its MVCC state in,
// go.etcd.io/bbolt and github.com/cockroachdb/pebble, on georaft's own apply workload. It
// holds only benchmarks: run them with `make bench-engine` (the figures that chose pebble are
// in README.md, Dependencies).
//
// The workload is what the MVCC state machine does with its engine:
//   - apply: a batch of committed log entries, each one put of a new revision of a key
//     (the version record under key+revision and the revision log record), written in one
//     atomic write together with the applied index, and visible to readers as soon as the
//     write returns, without an fsync of its own (the Raft WAL is the durability point);
//   - point and range reads of the newest revision of keys;
//   - compaction: deleting the revisions older than the newest of each key;
//   - snapshot streaming: reading a consistent image of everything while applies go on;
//   - restart: closing and reopening a loaded engine.
//
// Engines are run as the store would run them:
//   - pebble: one batch per apply, committed with NoSync. It is visible at once, and pebble's
//     own write-ahead log recovers a consistent prefix of batches after a crash, so a restart
//     replays the Raft WAL from the engine's recovered applied index.
//   - bbolt-fsync: one read-write transaction per apply. bbolt makes a transaction visible
//     only by committing it, and a commit fsyncs.
//   - bbolt-nosync: the same with NoSync. This is the bound for etcd's design (commit every
//     100 ms or 10000 writes, with an in-memory overlay so reads see uncommitted writes):
//     bbolt's NoSync itself is unsafe on a crash (its meta page may point at pages that never
//     reached the disk), so it is measured as a ceiling, not as an option.
package enginecmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	bolt "go.etcd.io/bbolt"
)

const (
	keySpace     = 200_000 // distinct keys in the loaded data set
	valueBytes   = 128
	applyBatch   = 64 // entries per apply: a busy leader's Ready under load
	rangeLen     = 100
	cacheBytes   = 64 << 20
	memtableSize = 32 << 20
)

// engine is what the MVCC store needs from its storage.
type engine interface {
	// apply writes the puts and the applied index atomically; a reader sees them on return.
	apply(puts []put, applied uint64) error
	// get returns the newest version of key, or nil.
	get(key []byte) ([]byte, error)
	// scan reads n newest versions of keys from start on.
	scan(start []byte, n int) (int, error)
	// compact deletes every version of every key but the newest, committing every 1000 deletes.
	compact() (int, error)
	// stream writes a consistent image of everything to w.
	stream(w io.Writer) error
	// settle waits until background work started by loading is done, so reads are measured
	// in the steady state.
	settle() error
	close() error
}

type put struct {
	key []byte
	rev uint64
	val []byte
}

type opener struct {
	name string
	open func(dir string) (engine, error)
}

var engines = []opener{
	{"pebble", openPebble},
	{"bbolt-fsync", func(dir string) (engine, error) { return openBolt(dir, false) }},
	{"bbolt-nosync", func(dir string) (engine, error) { return openBolt(dir, true) }},
}

// Layout shared by both engines, as the MVCC store lays it out: 'k' user key 0x00 ^revision
// → value (newest version first), 'r' revision → user key, 'm' "applied" → index.

func versionKey(key []byte, rev uint64) []byte {
	b := make([]byte, 0, 1+len(key)+1+8)
	b = append(b, 'k')
	b = append(b, key...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, ^rev)
}

func revKey(rev uint64) []byte { return binary.BigEndian.AppendUint64([]byte{'r'}, rev) }

// userKeyOf strips a version key back to its user key.
func userKeyOf(vk []byte) []byte { return vk[1 : len(vk)-9] }

var appliedKey = []byte("mapplied")

// userKey names keys in index order, so a range from key i holds keys i, i+1, ...
func userKey(i int) []byte { return fmt.Appendf(nil, "/registry/pods/default/pod-%07d", i) }

// ---- pebble ----

type pebbleEngine struct{ db *pebble.DB }

func openPebble(dir string) (engine, error) {
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{Cache: cache, MemTableSize: memtableSize, Logger: quietLogger{}, Comparer: versionComparer}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return &pebbleEngine{db}, nil
}

func (e *pebbleEngine) apply(puts []put, applied uint64) error {
	b := e.db.NewBatch()
	defer b.Close()
	for _, p := range puts {
		b.Set(versionKey(p.key, p.rev), p.val, nil)
		b.Set(revKey(p.rev), p.key, nil)
	}
	b.Set(appliedKey, binary.BigEndian.AppendUint64(nil, applied), nil)
	return b.Commit(pebble.NoSync)
}

// versionComparer orders keys bytewise and tells pebble that a version key's last 8 bytes
// are its revision, so the bloom filters answer "does this user key exist" and a read of a
// key's newest version is a prefix seek.
var versionComparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = "georaft.enginecmp.v1"
	c.Split = func(k []byte) int {
		if len(k) > 9 && k[0] == 'k' {
			return len(k) - 8
		}
		return len(k)
	}
	return &c
}()

func (e *pebbleEngine) get(key []byte) ([]byte, error) {
	it, err := e.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.SeekPrefixGE(versionKey(key, ^uint64(0))) {
		return nil, it.Error()
	}
	return bytes.Clone(it.Value()), nil
}

func (e *pebbleEngine) scan(start []byte, n int) (int, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: append([]byte{'k'}, start...), UpperBound: []byte{'l'}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	got := 0
	for ok := it.First(); ok && got < n; {
		got++
		// The first version of a key is its newest; skip the rest.
		uk := userKeyOf(it.Key())
		ok = it.SeekGE(append(append([]byte{'k'}, uk...), 1))
	}
	return got, it.Error()
}

func (e *pebbleEngine) compact() (int, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'k'}, UpperBound: []byte{'l'}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	b := e.db.NewBatch()
	deleted := 0
	var last []byte
	for ok := it.First(); ok; ok = it.Next() {
		uk := userKeyOf(it.Key())
		if bytes.Equal(uk, last) {
			b.Delete(it.Key(), nil)
			deleted++
			if b.Count() >= 1000 {
				if err := b.Commit(pebble.NoSync); err != nil {
					return deleted, err
				}
				b.Reset()
			}
			continue
		}
		last = bytes.Clone(uk)
	}
	return deleted, b.Commit(pebble.NoSync)
}

func (e *pebbleEngine) stream(w io.Writer) error {
	snap := e.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		w.Write(it.Key())
		w.Write(it.Value())
	}
	return it.Error()
}

func (e *pebbleEngine) close() error { return e.db.Close() }

func (e *pebbleEngine) settle() error {
	if err := e.db.Flush(); err != nil {
		return err
	}
	return e.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true)
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// ---- bbolt ----

type boltEngine struct{ db *bolt.DB }

var boltBucket = []byte("kv")

func openBolt(dir string, noSync bool) (engine, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "db"), 0o600, &bolt.Options{NoSync: noSync, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return &boltEngine{db}, nil
}

func (e *boltEngine) apply(puts []put, applied uint64) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltBucket)
		for _, p := range puts {
			if err := b.Put(versionKey(p.key, p.rev), p.val); err != nil {
				return err
			}
			if err := b.Put(revKey(p.rev), p.key); err != nil {
				return err
			}
		}
		return b.Put(appliedKey, binary.BigEndian.AppendUint64(nil, applied))
	})
}

func (e *boltEngine) get(key []byte) (v []byte, err error) {
	prefix := append(append([]byte{'k'}, key...), 0)
	err = e.db.View(func(tx *bolt.Tx) error {
		k, val := tx.Bucket(boltBucket).Cursor().Seek(prefix)
		if k != nil && bytes.HasPrefix(k, prefix) {
			v = bytes.Clone(val)
		}
		return nil
	})
	return v, err
}

func (e *boltEngine) scan(start []byte, n int) (got int, err error) {
	err = e.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		for k, _ := c.Seek(append([]byte{'k'}, start...)); k != nil && k[0] == 'k' && got < n; {
			got++
			uk := userKeyOf(k)
			k, _ = c.Seek(append(append([]byte{'k'}, uk...), 1))
		}
		return nil
	})
	return got, err
}

func (e *boltEngine) compact() (int, error) {
	deleted := 0
	var resume []byte = []byte{'k'}
	for {
		done := true
		err := e.db.Update(func(tx *bolt.Tx) error {
			c := tx.Bucket(boltBucket).Cursor()
			var last []byte
			n := 0
			for k, _ := c.Seek(resume); k != nil && k[0] == 'k'; k, _ = c.Next() {
				uk := userKeyOf(k)
				if bytes.Equal(uk, last) {
					if err := c.Delete(); err != nil {
						return err
					}
					deleted++
					n++
					if n >= 1000 {
						// Resume at the next key: the newest version of this one is kept.
						resume = append(append([]byte{'k'}, uk...), 1)
						done = false
						return nil
					}
					continue
				}
				last = bytes.Clone(uk)
			}
			return nil
		})
		if err != nil || done {
			return deleted, err
		}
	}
}

func (e *boltEngine) stream(w io.Writer) error {
	return e.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

func (e *boltEngine) close() error { return e.db.Close() }

func (e *boltEngine) settle() error { return nil }

// ---- workload ----

func randomValue(r *rand.Rand) []byte {
	v := make([]byte, valueBytes)
	for i := range v {
		v[i] = byte('a' + r.IntN(26))
	}
	return v
}

// load fills e with keySpace keys, versions revisions of each, and returns the next revision.
func load(tb testing.TB, e engine, versions int) uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	val := randomValue(r)
	rev := uint64(1)
	batch := make([]put, 0, 1000)
	for v := 0; v < versions; v++ {
		for i := 0; i < keySpace; i++ {
			batch = append(batch, put{key: userKey(i), rev: rev, val: val})
			rev++
			if len(batch) == cap(batch) {
				if err := e.apply(batch, rev); err != nil {
					tb.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		if err := e.apply(batch, rev); err != nil {
			tb.Fatal(err)
		}
	}
	return rev
}

func openLoaded(b *testing.B, o opener, versions int) (engine, uint64, string) {
	b.Helper()
	dir := b.TempDir()
	e, err := o.open(dir)
	if err != nil {
		b.Fatal(err)
	}
	rev := load(b, e, versions)
	if err := e.settle(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.close() })
	return e, rev, dir
}

// BenchmarkApply: one op is one apply batch of applyBatch puts plus the applied index,
// followed by a read of one of its keys that must see it.
func BenchmarkApply(b *testing.B) {
	for _, o := range engines {
		b.Run(o.name, func(b *testing.B) {
			e, rev, _ := openLoaded(b, o, 1)
			r := rand.New(rand.NewPCG(3, 4))
			val := randomValue(r)
			batch := make([]put, applyBatch)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range batch {
					batch[j] = put{key: userKey(r.IntN(keySpace)), rev: rev, val: val}
					rev++
				}
				if err := e.apply(batch, rev); err != nil {
					b.Fatal(err)
				}
				got, err := e.get(batch[applyBatch-1].key)
				if err != nil || got == nil {
					b.Fatalf("a read right after apply missed its write: %v", err)
				}
			}
			b.ReportMetric(float64(b.N*applyBatch)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

func BenchmarkPointRead(b *testing.B) {
	for _, o := range engines {
		b.Run(o.name, func(b *testing.B) {
			e, _, _ := openLoaded(b, o, 2)
			r := rand.New(rand.NewPCG(5, 6))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if v, err := e.get(userKey(r.IntN(keySpace))); err != nil || v == nil {
					b.Fatalf("key missing: %v", err)
				}
			}
		})
	}
}

func BenchmarkRangeRead(b *testing.B) {
	for _, o := range engines {
		b.Run(o.name, func(b *testing.B) {
			e, _, _ := openLoaded(b, o, 2)
			r := rand.New(rand.NewPCG(7, 8))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if n, err := e.scan(userKey(r.IntN(keySpace-2*rangeLen)), rangeLen); err != nil || n != rangeLen {
					b.Fatalf("scan got %d keys: %v", n, err)
				}
			}
		})
	}
}

// BenchmarkCompact: one op compacts keySpace keys of 3 versions each down to 1.
func BenchmarkCompact(b *testing.B) {
	for _, o := range engines {
		b.Run(o.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := b.TempDir()
				e, err := o.open(dir)
				if err != nil {
					b.Fatal(err)
				}
				load(b, e, 3)
				b.StartTimer()
				n, err := e.compact()
				if err != nil || n != 2*keySpace {
					b.Fatalf("compaction deleted %d versions, want %d: %v", n, 2*keySpace, err)
				}
				b.StopTimer()
				e.close()
			}
		})
	}
}

// BenchmarkSnapshotStream: one op streams a consistent image of keySpace keys × 2 versions.
func BenchmarkSnapshotStream(b *testing.B) {
	for _, o := range engines {
		b.Run(o.name, func(b *testing.B) {
			e, _, dir := openLoaded(b, o, 2)
			disk := dirBytes(b, dir)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cw := &countWriter{}
				if err := e.stream(cw); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(cw.n)
			}
			b.ReportMetric(float64(disk)/(1<<20), "disk-MiB")
		})
	}
}

// BenchmarkReopen: one op closes and reopens an engine holding keySpace keys × 2 versions.
func BenchmarkReopen(b *testing.B) {
	for _, o := range engines {
		b.Run(o.name, func(b *testing.B) {
			dir := b.TempDir()
			e, err := o.open(dir)
			if err != nil {
				b.Fatal(err)
			}
			load(b, e, 2)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.close(); err != nil {
					b.Fatal(err)
				}
				if e, err = o.open(dir); err != nil {
					b.Fatal(err)
				}
				if v, err := e.get(userKey(i % keySpace)); err != nil || v == nil {
					b.Fatalf("key missing after reopen: %v", err)
				}
			}
			b.StopTimer()
			e.close()
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func dirBytes(tb testing.TB, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}
