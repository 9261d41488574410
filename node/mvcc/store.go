// Package mvcc is georaftd's replicated state machine: a multi-version key space with etcd's
// semantics, kept in pebble.
//
// Every committed write transaction gets the next cluster-wide revision; the ops within it
// get sub-revisions. Each version of a key is kept under its key and revision with its create
// revision, version and lease; a delete writes a tombstone. Reads name a revision (0: the
// newest) and see the newest version of each key at or below it, until a compaction removes
// the history below its revision. Leases, client sessions (georaft.v1's exactly-once writes)
// and the applied index live in the same engine and change in the same atomic batch as the
// data, so the engine always holds the state as of one log index.
//
// The Raft log is the durability point. Applies commit to pebble without an fsync: they are
// visible to readers at once, and pebble's own log recovers a consistent prefix of them after
// a crash, so a restart replays the Raft log from the recovered applied index (Apply skips
// entries at or below it). The node may compact its log only up to the index Sync returned.
// ApplyAll applies a Ready's committed entries in one batch and one commit: the state record
// in it names the last of them, so a crash keeps all of the batch or none.
//
// Apply is deterministic: it reads nothing but the entry and the engine, never the clock or
// the node's configuration. Limits are the proposer's business.
//
// The history and every key are in the engine, not in memory: memory is bounded by pebble's
// block cache and memtables and the latest-version cache (Options; latest.go: recently used
// keys' newest versions, so that reading or overwriting one needs no engine iterator), plus
// the session table and the lease table.
package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options size the engine and the session table.
type Options struct {
	// CacheBytes is pebble's block cache (default 64 MiB).
	CacheBytes int64
	// MemTableBytes is the size of one memtable (default 16 MiB); pebble keeps up to two.
	MemTableBytes uint64
	// LatestCacheBytes bounds the latest-version cache (latest.go; default 8 MiB, negative:
	// none). Reads and writes of the keys it holds need no engine iterator.
	LatestCacheBytes int64
	// MaxSessions bounds the exactly-once session table (default kv.DefaultMaxSessions). It is
	// part of the replicated state machine: every node of a cluster must use the same value.
	MaxSessions int
	Logger      *slog.Logger
	// FS is where the engine keeps its files (nil: the operating system's). Tests pass a
	// crashable in-memory one to lose what was never synced.
	FS vfs.FS
}

const (
	defaultCacheBytes    = 64 << 20
	defaultMemTableBytes = 16 << 20
	defaultMaxSessions   = 10000
)

func (o *Options) defaults() {
	if o.CacheBytes <= 0 {
		o.CacheBytes = defaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = defaultMemTableBytes
	}
	if o.LatestCacheBytes == 0 {
		o.LatestCacheBytes = defaultLatestCacheBytes
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = defaultMaxSessions
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Store is the state machine. Apply, Restore and Close are called by one goroutine; reads may
// come from any goroutine at any time.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	// mu is held for reading while the engine is in use and for writing to replace it.
	mu  sync.RWMutex
	db  *pebble.DB
	gen int
	// st is the state as of the last apply, published after its batch committed.
	st atomic.Pointer[state]

	// The apply goroutine writes these; readers take their locks.
	sessMu   sync.Mutex
	sessions map[uint64]*session
	lru      sessionList
	leaseMu  sync.RWMutex
	leases   map[int64]int64 // id → granted TTL in seconds

	watch *hub
	// results is ApplyAll's scratch (the apply goroutine's alone).
	results []Result
	// latest caches the newest version of recently used keys (latest.go).
	latest *latestCache

	compacted   atomic.Int64 // the revision up to which old versions are physically gone
	failed      atomic.Pointer[error]
	compactWake chan struct{}
	compactDone *notifier
	stopc       chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// Open opens (or creates) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("mvcc: create %s: %w", dir, err)
	}
	s := &Store{
		dir:         dir,
		opts:        opts,
		log:         opts.Logger,
		compactWake: make(chan struct{}, 1),
		compactDone: newNotifier(),
		stopc:       make(chan struct{}),
	}
	s.watch = newHub(s)
	s.latest = newLatestCache(opts.LatestCacheBytes)
	gen, err := s.currentGeneration()
	if err != nil {
		return nil, err
	}
	if err := s.removeOtherGenerations(gen); err != nil {
		return nil, err
	}
	db, err := s.openEngine(gen)
	if err != nil {
		return nil, err
	}
	if err := s.load(db, gen); err != nil {
		db.Close()
		return nil, err
	}
	if gen == 0 {
		// A new store: record its first generation only once the engine exists.
		if err := s.setCurrentGeneration(1); err != nil {
			db.Close()
			return nil, err
		}
		s.gen = 1
	}
	s.wg.Add(1)
	go s.compactor()
	return s, nil
}

const currentFile = "CURRENT"

func genName(gen int) string { return fmt.Sprintf("gen-%08d", gen) }

// currentGeneration reads which engine directory is the store's; 0 when there is none yet.
func (s *Store) currentGeneration() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, currentFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mvcc: %w", err)
	}
	var gen int
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "gen-%d", &gen); err != nil || gen <= 0 {
		return 0, fmt.Errorf("mvcc: %s holds %q, want gen-NNNNNNNN", filepath.Join(s.dir, currentFile), b)
	}
	return gen, nil
}

// setCurrentGeneration switches the store to another engine directory atomically: written
// beside, synced, renamed over, and the directory synced.
func (s *Store) setCurrentGeneration(gen int) error {
	tmp := filepath.Join(s.dir, currentFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("mvcc: %w", err)
	}
	_, err = f.WriteString(genName(gen) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, currentFile))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("mvcc: switch to %s: %w", genName(gen), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeOtherGenerations deletes engine directories other than gen: a restore that never
// finished, or the one a finished restore replaced.
func (s *Store) removeOtherGenerations(gen int) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("mvcc: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "gen-") && e.Name() != genName(gen) {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				return fmt.Errorf("mvcc: remove stale %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func (s *Store) engineOptions() *pebble.Options {
	cache := pebble.NewCache(s.opts.CacheBytes)
	o := &pebble.Options{
		Cache:        cache,
		MemTableSize: s.opts.MemTableBytes,
		Comparer:     comparer,
		Logger:       engineLogger{s.log},
		FS:           s.opts.FS,
	}
	// Bloom filters on keys (without revisions) make a missing key cost no block read.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	return o
}

func (s *Store) openEngine(gen int) (*pebble.DB, error) {
	if gen == 0 {
		gen = 1
	}
	o := s.engineOptions()
	defer o.Cache.Unref()
	path := filepath.Join(s.dir, genName(gen))
	db, err := pebble.Open(path, o)
	if err != nil {
		return nil, fmt.Errorf("mvcc: open engine %s: %w", path, err)
	}
	return db, nil
}

// load reads the state, sessions and leases of db and makes it the store's engine.
func (s *Store) load(db *pebble.DB, gen int) error {
	st := state{rev: 1}
	v, closer, err := db.Get(stateKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("mvcc: read state: %w", err)
	default:
		st, err = decodeState(v)
		closer.Close()
		if err != nil {
			return err
		}
	}
	var compacted int64
	v, closer, err = db.Get(compactedKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("mvcc: read compaction progress: %w", err)
	default:
		if len(v) == 8 {
			compacted = int64(binary.BigEndian.Uint64(v))
		}
		closer.Close()
	}
	sessions, lru, err := loadSessions(db)
	if err != nil {
		return err
	}
	leases, err := loadLeases(db)
	if err != nil {
		return err
	}
	s.sessMu.Lock()
	s.sessions, s.lru = sessions, lru
	s.sessMu.Unlock()
	s.leaseMu.Lock()
	s.leases = leases
	s.leaseMu.Unlock()
	s.db, s.gen = db, gen
	s.latest.reset(st.rev)
	s.st.Store(&st)
	s.compacted.Store(compacted)
	s.compactDone.advance(compacted)
	if compacted < st.compactRev {
		s.wakeCompactor()
	}
	return nil
}

// Close stops background work and closes the engine. Everything applied is flushed to
// pebble's log (a clean stop loses nothing the log would have to replay).
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopc)
		s.wg.Wait()
		s.watch.close()
		s.mu.Lock()
		defer s.mu.Unlock()
		err = s.failure()
		if err == nil {
			// A failed engine's log is broken: nothing more can be made durable. What it
			// lost, the Raft log replays.
			func() {
				defer s.guard(&err)
				err = s.db.LogData(nil, pebble.Sync)
			}()
		}
		var cerr error
		func() {
			defer s.guard(&cerr)
			cerr = s.db.Close()
		}()
		if err == nil {
			err = cerr
		}
	})
	return err
}

// Sync makes everything applied so far durable and returns the index and term it reached:
// the node may compact its log up to there.
func (s *Store) Sync() (index, term uint64, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	defer s.guard(&err)
	if err := s.failure(); err != nil {
		return 0, 0, err
	}
	st := s.st.Load()
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return 0, 0, fmt.Errorf("mvcc: sync engine: %w", err)
	}
	return st.applied, st.term, nil
}

// Applied returns the index and term of the last applied entry.
func (s *Store) Applied() (index, term uint64) {
	st := s.st.Load()
	return st.applied, st.term
}

// Rev returns the revision of the last write transaction.
func (s *Store) Rev() int64 { return s.st.Load().rev }

// CompactRev returns the revision below which history is compacted.
func (s *Store) CompactRev() int64 { return s.st.Load().compactRev }

// Len returns the number of live keys.
func (s *Store) Len() int64 { return s.st.Load().keys }

// Sessions returns the number of client sessions remembered.
func (s *Store) Sessions() int {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	return len(s.sessions)
}

// DiskBytes is the engine's size on disk.
func (s *Store) DiskBytes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.db.Metrics().DiskSpaceUsage()
}

// engineLogger sends pebble's log to slog; its info lines are routine and kept at debug.
type engineLogger struct{ log *slog.Logger }

func (l engineLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (l engineLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (l engineLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "component", "pebble")
	// Pebble gives up on its engine here (a failed write to its log: a full or failing disk).
	// The panic unwinds to the store's call into pebble, which turns it into an error and
	// refuses every later write: the node fail-stops instead of acknowledging on a broken
	// engine. Pebble assumes Fatalf does not return.
	panic(engineFatal{msg})
}

// engineFatal is pebble's fatal error, carried by a panic to the store's guard.
type engineFatal struct{ msg string }

// ErrEngineFailed is wrapped by every error after the engine failed.
var ErrEngineFailed = errors.New("mvcc: storage engine failed")

// guard turns pebble's fatal panic into an error in *err and marks the store failed.
func (s *Store) guard(err *error) {
	r := recover()
	if r == nil {
		return
	}
	f, ok := r.(engineFatal)
	if !ok {
		panic(r)
	}
	e := fmt.Errorf("%w: %s", ErrEngineFailed, f.msg)
	s.failed.CompareAndSwap(nil, &e)
	*err = e
}

// failure is the engine's failure, or nil.
func (s *Store) failure() error {
	if e := s.failed.Load(); e != nil {
		return *e
	}
	return nil
}
