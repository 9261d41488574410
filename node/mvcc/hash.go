package mvcc

import (
	"encoding/binary"
	"hash/fnv"

	"github.com/cockroachdb/pebble/v2"
)

// HashAt digests the state every replica must agree on at one applied index, and returns
// that index: every version a read can reach (those at or above the compact revision, and
// the newest live one below it of each key), the revision and compact revision, the leases,
// the lease attachments and the sessions. How far the background compaction got is not part
// of it. It reads the whole store.
func (s *Store) HashAt() (hash, applied uint64, err error) {
	s.mu.RLock()
	snap := s.db.NewSnapshot()
	s.mu.RUnlock()
	defer snap.Close()
	st := state{rev: 1}
	if v, closer, err := snap.Get(stateKey); err == nil {
		st, err = decodeState(v)
		closer.Close()
		if err != nil {
			return 0, 0, err
		}
	} else if err != pebble.ErrNotFound {
		return 0, 0, err
	}
	it, err := snap.NewIter(nil)
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	var sum uint64
	var prefix []byte
	keptBelow := false
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		switch k[0] {
		case kindVersion:
			p, mod := versionOf(k)
			if string(p) != string(prefix) {
				prefix, keptBelow = append(prefix[:0], p...), false
			}
			if mod <= st.compactRev {
				if keptBelow {
					continue
				}
				keptBelow = true
				if v := it.Value(); len(v) > 0 && v[0] == recordTombstone {
					continue
				}
			}
		case kindRevision:
			if rev, _ := revisionOf(k); rev < st.compactRev {
				continue
			}
		case kindMeta:
			continue
		}
		sum += digest(k, it.Value())
	}
	if err := it.Error(); err != nil {
		return 0, 0, err
	}
	var meta [16]byte
	binary.BigEndian.PutUint64(meta[:8], uint64(st.rev))
	binary.BigEndian.PutUint64(meta[8:], uint64(st.compactRev))
	sum += digest([]byte("state"), meta[:])
	return sum, st.applied, nil
}

// digest hashes one record; the store's hash is the sum over records, so it does not depend
// on the order they are visited in.
func digest(k, v []byte) uint64 {
	h := fnv.New64a()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(k)))
	h.Write(n[:])
	h.Write(k)
	h.Write(v)
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
