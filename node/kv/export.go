package kv

import (
	"io"
	"slices"
)

// SnapshotState is a snapshot in this package's format, read back for a newer state machine
// that imports a data directory written before it (node/mvcc).
type SnapshotState struct {
	// Index and Term are the last entry the snapshot reflects.
	Index, Term uint64
	// Sessions are the exactly-once records, oldest use first.
	Sessions []SessionState
	img      *snapshotImage
}

// SessionState is one client's exactly-once record.
type SessionState struct {
	ClientID, LastSeq, LastUsed uint64
	// Op, Existed and ResultIndex are what a retry of the last write is told.
	Op          Op
	Existed     bool
	ResultIndex uint64
}

// ReadSnapshot reads and checks a whole snapshot (as Store.Restore does) without a Store.
func ReadSnapshot(r io.Reader) (*SnapshotState, error) {
	img, err := readSnapshot(r)
	if err != nil {
		return nil, err
	}
	st := &SnapshotState{Index: img.index, Term: img.term, img: img}
	for _, s := range img.sessions {
		st.Sessions = append(st.Sessions, SessionState{
			ClientID: s.clientID, LastSeq: s.lastSeq, LastUsed: s.lastUsed,
			Op: s.result.op, Existed: s.result.existed, ResultIndex: s.result.index,
		})
	}
	slices.SortFunc(st.Sessions, func(a, b SessionState) int {
		if a.LastUsed != b.LastUsed {
			return compareUint(a.LastUsed, b.LastUsed)
		}
		return compareUint(a.ClientID, b.ClientID)
	})
	return st, nil
}

// Keys returns the number of keys.
func (s *SnapshotState) Keys() int { return s.img.keys }

// ForEach calls fn for every key in ascending order.
func (s *SnapshotState) ForEach(fn func(key, value []byte) error) error {
	keys := make([]string, 0, s.img.keys)
	for _, sh := range s.img.shards {
		for k := range sh.m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), s.img.shards[shardOf([]byte(k))].m[k]); err != nil {
			return err
		}
	}
	return nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
