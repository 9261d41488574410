package mvcc

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Compaction is logical at once and physical later. Applying a compaction moves the compact
// revision: reads below it fail from then on, on every replica at the same log index. The
// versions no read can reach any more (those superseded at or below it, and tombstones at or
// below it) are removed in the background, a chunk at a time, so a compaction of millions of
// keys never holds Apply up. Removing them changes nothing a read, a watch or the hash can
// see, so replicas that are at different points of it still agree.

// compactChunk is how many keys one background batch covers.
const compactChunk = 1000

func (s *Store) wakeCompactor() {
	select {
	case s.compactWake <- struct{}{}:
	default:
	}
}

func (s *Store) compactor() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stopc:
			return
		case <-s.compactWake:
		}
		for {
			st := s.st.Load()
			if s.compacted.Load() >= st.compactRev {
				break
			}
			done, err := s.compactTo(st.compactRev)
			if err != nil {
				s.log.Error("compaction failed; retried at the next compaction or restart", "revision", st.compactRev, "err", err)
				break
			}
			if !done {
				break // stopping, or the engine was replaced
			}
		}
	}
}

// compactTo removes what no read at or above rev can see. It reports false when it stopped
// early (the store is closing or a snapshot replaced the engine).
func (s *Store) compactTo(rev int64) (done bool, err error) {
	defer s.guard(&err)
	s.mu.RLock()
	gen := s.gen
	s.mu.RUnlock()
	resume := []byte{kindVersion}
	for resume != nil {
		select {
		case <-s.stopc:
			return false, nil
		default:
		}
		var err error
		var stale bool
		func() {
			s.mu.RLock()
			defer s.mu.RUnlock()
			if s.gen != gen {
				stale = true
				return
			}
			resume, err = s.compactChunkFrom(resume, rev)
		}()
		if stale || err != nil {
			return false, err
		}
	}
	// The revision log below rev is unreachable too: a watch cannot start below it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.gen != gen {
		return false, nil
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(revisionKey(0, 0), revisionKey(rev, 0), nil); err != nil {
		return false, err
	}
	// The physical progress is recorded beside the state; a restart resumes from it.
	if err := b.Set(compactedKey, binary.BigEndian.AppendUint64(nil, uint64(rev)), nil); err != nil {
		return false, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return false, err
	}
	s.compacted.Store(rev)
	s.compactDone.advance(rev)
	return true, nil
}

// compactChunkFrom compacts up to compactChunk keys from the version key resume on and
// returns where the next chunk starts (nil: done).
func (s *Store) compactChunkFrom(resume []byte, rev int64) ([]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: resume, UpperBound: []byte{kindVersion + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	keys := 0
	var prefix []byte
	kept := false // a version at or below rev of the current key has been kept
	valid := it.First()
	for ; valid; valid = it.Next() {
		p, mod := versionOf(it.Key())
		if !bytes.Equal(p, prefix) {
			if keys == compactChunk {
				break
			}
			keys++
			prefix, kept = bytes.Clone(p), false
		}
		if mod > rev {
			continue
		}
		if !kept {
			kept = true
			// The newest version at or below rev stays, unless it is a tombstone.
			if v := it.Value(); len(v) == 0 || v[0] != recordTombstone {
				continue
			}
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return nil, err
		}
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, err
	}
	if !valid {
		return nil, nil
	}
	return bytes.Clone(it.Key()), nil
}

// notifier wakes those waiting for the physical compaction to reach a revision.
type notifier struct {
	mu   sync.Mutex
	at   int64
	wake chan struct{}
}

func newNotifier() *notifier { return &notifier{wake: make(chan struct{})} }

func (n *notifier) advance(rev int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if rev > n.at {
		n.at = rev
		close(n.wake)
		n.wake = make(chan struct{})
	}
}

// wait returns a channel closed once the compaction reached rev (already closed if it has).
func (n *notifier) wait(rev int64) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.at >= rev {
		c := make(chan struct{})
		close(c)
		return c
	}
	return n.wake
}
