package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// A version record, the value under a version key:
//
//	flags    byte: 0 a live version, 1 a tombstone (nothing follows)
//	create   uvarint: the key's create revision
//	version  uvarint: how many times the key was written since it was created
//	lease    uvarint: the lease the key is attached to, 0 for none
//	value    the rest
//
// The mod revision is the revision in the version key.
const (
	recordLive      = 0
	recordTombstone = 1
)

type record struct {
	tombstone bool
	create    int64
	version   int64
	lease     int64
	value     []byte
}

func (r *record) encode() []byte {
	if r.tombstone {
		return []byte{recordTombstone}
	}
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(r.value))
	b = append(b, recordLive)
	b = binary.AppendUvarint(b, uint64(r.create))
	b = binary.AppendUvarint(b, uint64(r.version))
	b = binary.AppendUvarint(b, uint64(r.lease))
	return append(b, r.value...)
}

var errBadRecord = errors.New("mvcc: malformed version record")

// decodeRecord parses a version record; value aliases b.
func decodeRecord(b []byte) (record, error) {
	if len(b) == 0 {
		return record{}, errBadRecord
	}
	switch b[0] {
	case recordTombstone:
		return record{tombstone: true}, nil
	case recordLive:
	default:
		return record{}, fmt.Errorf("%w: flags %d", errBadRecord, b[0])
	}
	var r record
	off := 1
	for _, dst := range []*int64{&r.create, &r.version, &r.lease} {
		v, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return record{}, errBadRecord
		}
		*dst = int64(v)
		off += n
	}
	r.value = b[off:]
	return r, nil
}

// keyValue builds the API's view of a live version. The value is shared with r: r's must not
// change afterwards (a value from the cache or the write's own never does; one that aliases
// an iterator's buffer is copied first).
func (r *record) keyValue(key []byte, mod int64, withValue bool) *mvccpb.KeyValue {
	kv := &mvccpb.KeyValue{Key: key, CreateRevision: r.create, ModRevision: mod, Version: r.version, Lease: r.lease}
	if withValue {
		kv.Value = r.value
	}
	return kv
}

// state is the record under stateKey, written with every change, and published to readers.
type state struct {
	applied, term uint64
	// rev is the revision of the last write transaction; compactRev the revision reads
	// below which fail.
	rev, compactRev int64
	// keys counts live keys.
	keys int64
}

const stateVersion = 1

func (s *state) encode() []byte {
	b := []byte{stateVersion}
	for _, v := range []uint64{s.applied, s.term, uint64(s.rev), uint64(s.compactRev), uint64(s.keys)} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func decodeState(b []byte) (state, error) {
	if len(b) == 0 || b[0] != stateVersion {
		return state{}, fmt.Errorf("mvcc: state record has unknown version (want %d)", stateVersion)
	}
	var vals [5]uint64
	off := 1
	for i := range vals {
		v, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return state{}, errors.New("mvcc: state record cut short")
		}
		vals[i] = v
		off += n
	}
	return state{applied: vals[0], term: vals[1], rev: int64(vals[2]), compactRev: int64(vals[3]), keys: int64(vals[4])}, nil
}
