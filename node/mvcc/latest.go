package mvcc

import (
	"sync"
)

// The latest-version cache: each cached key's newest version (or its tombstone, or that it
// never existed), in memory, so that a read of one key at the newest revision, and a write's
// look at what it overwrites, need no engine iterator. An iterator costs more than the rest
// of such a read or write together (pebble allocates, seeks every memtable and level, and
// zeroes it again on close).
//
// It is a cache, not the index: the engine stays the truth, and memory stays bounded (by
// Options.LatestCacheBytes, default 8 MiB) however many keys there are. A key missing from
// it is read from the engine and cached; when it is full, arbitrary keys are dropped.
//
// Why a hit is right: an entry's mod is its newest version's revision, and nothing newer is
// ever committed to the engine without the entry being replaced first (Apply updates the
// cache after its batch commits and before it publishes the new state). So a read at
// revision rev may take a cached entry whose mod ≤ rev; an entry newer than rev (an apply
// raced ahead of the reader) sends the read to the engine at rev. A reader that missed may
// cache what it read only if no apply has changed the cache since the revision it read at
// (rev), and only if the key is still absent: otherwise it could put back an older version
// over a newer one.

// latestEntry is a key's newest version as of the cache's revision; rec.tombstone with mod 0:
// the key has no version at all. rec.value is never modified once cached.
type latestEntry struct {
	rec record
	mod int64
}

// latestOverhead approximates a cached key's memory besides its key and value bytes: the map
// slot, the entry, the record header around the value and the allocators' rounding (measured:
// 500,000 keys of 35 bytes with 100-byte values through a full cache).
const latestOverhead = 160

// defaultLatestCacheBytes holds some 30,000 keys of 100-byte values; with the garbage
// collector's headroom, the process's heap grows by about twice it.
const defaultLatestCacheBytes = 8 << 20

type latestCache struct {
	mu      sync.RWMutex
	entries map[string]*latestEntry
	// rev is the revision the cache reflects: the last write transaction it took in.
	rev   int64
	bytes int64
	limit int64
}

func newLatestCache(limit int64) *latestCache {
	return &latestCache{entries: make(map[string]*latestEntry), limit: limit}
}

func entrySize(key string, e *latestEntry) int64 {
	return int64(len(key)+len(e.rec.value)) + latestOverhead
}

// reset empties the cache for an engine at revision rev (opened or restored).
func (c *latestCache) reset(rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = make(map[string]*latestEntry)
	c.rev, c.bytes = rev, 0
}

func (c *latestCache) get(key []byte) *latestEntry {
	c.mu.RLock()
	e := c.entries[string(key)]
	c.mu.RUnlock()
	return e
}

// fill caches what a read at revision rev found in the engine, unless the cache moved past
// rev meanwhile or already holds the key.
func (c *latestCache) fill(key []byte, e *latestEntry, rev int64) {
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rev != rev {
		return
	}
	if _, ok := c.entries[string(key)]; ok {
		return
	}
	k := string(key)
	c.entries[k] = e
	c.bytes += entrySize(k, e)
	c.shrink()
}

// update takes in an apply's writes, committed to the engine, and the revision they reached.
func (c *latestCache) update(writes map[string]*latestEntry, rev int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev = rev
	if c.limit <= 0 {
		return
	}
	for k, e := range writes {
		if old, ok := c.entries[k]; ok {
			c.bytes -= entrySize(k, old)
		}
		c.entries[k] = e
		c.bytes += entrySize(k, e)
	}
	c.shrink()
}

// shrink drops arbitrary entries (Go's map order) until the cache is within its limit.
func (c *latestCache) shrink() {
	if c.bytes <= c.limit {
		return
	}
	target := c.limit - c.limit/8
	for k, e := range c.entries {
		delete(c.entries, k)
		c.bytes -= entrySize(k, e)
		if c.bytes <= target {
			return
		}
	}
}

// source is what a lookup of one key reads: the writes of the apply in progress, the cache,
// then the engine (or the apply's batch over it).
type source struct {
	rd    reader
	cache *latestCache
	// writes are the newest versions the apply in progress wrote (nil for a reader).
	writes map[string]*latestEntry
	undo   []undoWrite
	// fillRev: a miss read at this revision, the newest the reader or apply sees committed,
	// may be cached.
	fillRev int64
}

// latest reads key's newest version at or below rev (rev 0: any). ok is false when the key
// has no version there or the newest is a tombstone. The value must not be modified.
func (src *source) latest(key []byte, rev int64) (rec record, mod int64, ok bool, err error) {
	if rev <= 0 {
		rev = 1<<63 - 1
	}
	if e, written := src.writes[string(key)]; written {
		if e.mod <= rev {
			return e.rec, e.mod, !e.rec.tombstone, nil
		}
		return latest(src.rd, key, rev)
	}
	if src.cache != nil {
		if e := src.cache.get(key); e != nil {
			if e.mod <= rev {
				return e.rec, e.mod, !e.rec.tombstone, nil
			}
			return latest(src.rd, key, rev)
		}
	}
	rec, mod, ok, err = latest(src.rd, key, rev)
	if err == nil && src.cache != nil && rev >= src.fillRev {
		e := &latestEntry{rec: rec, mod: mod}
		if !ok && !rec.tombstone {
			e.rec.tombstone = true // no version at all: mod 0
		}
		src.cache.fill(key, e, src.fillRev)
	}
	return rec, mod, ok, err
}

// wrote notes a version the apply in progress wrote.
func (src *source) wrote(key []byte, rec record, mod int64) {
	if src.writes == nil {
		src.writes = make(map[string]*latestEntry)
	}
	k := string(key)
	prev, had := src.writes[k]
	src.undo = append(src.undo, undoWrite{key: k, prev: prev, had: had})
	src.writes[k] = &latestEntry{rec: rec, mod: mod}
}

// undoWrite is what wrote replaced, to take a refused entry's writes back.
type undoWrite struct {
	key  string
	prev *latestEntry
	had  bool
}

// rollback takes back the writes noted since undo was last emptied, newest first.
func (src *source) rollback() {
	for i := len(src.undo) - 1; i >= 0; i-- {
		u := src.undo[i]
		if u.had {
			src.writes[u.key] = u.prev
		} else {
			delete(src.writes, u.key)
		}
	}
	src.undo = src.undo[:0]
}
