package mvcc

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// The engine's key space. Every engine key starts with one byte naming its kind:
//
//	'k' esc(key) 0x00 0x01 ^rev   a version of key written at main revision rev (record below);
//	                              ^rev makes the newest version come first
//	'r' rev sub                   the revision log: event type byte, then the key
//	'l' id                        a lease: its granted TTL in seconds (uvarint)
//	'a' id key                    key is attached to lease id
//	's' client                    a client's exactly-once session record
//	'n' id                        a member of the cluster: addresses, region, role (members.go)
//	'm' "state"                   the state record: applied index and term, revisions, counts
//	'm' "compacted"               how far the background compaction got
//
// Integers are 8 bytes big-endian, so they sort numerically. esc doubles every 0x00 of a key
// into 0x00 0xff and the key ends with 0x00 0x01, so encoded keys sort as the keys do and no
// encoded key is a prefix of another's: the versions of one key are contiguous.
const (
	kindVersion  = 'k'
	kindRevision = 'r'
	kindLease    = 'l'
	kindAttached = 'a'
	kindSession  = 's'
	kindMember   = 'n'
	kindMeta     = 'm'
)

var (
	stateKey = []byte("mstate")
	// compactedKey holds the revision up to which old versions are physically removed; only
	// the background compaction writes it.
	compactedKey = []byte("mcompacted")
)

const revBytes = 8

// keyPrefix is the encoded key every version of key starts with.
func keyPrefix(dst, key []byte) []byte {
	dst = append(dst, kindVersion)
	dst = appendEscaped(dst, key)
	return append(dst, 0x00, 0x01)
}

func appendEscaped(dst, key []byte) []byte {
	for {
		i := bytes.IndexByte(key, 0)
		if i < 0 {
			return append(dst, key...)
		}
		dst = append(dst, key[:i+1]...)
		dst = append(dst, 0xff)
		key = key[i+1:]
	}
}

// versionKey is the engine key of key's version at main revision rev.
func versionKey(key []byte, rev int64) []byte {
	dst := keyPrefix(make([]byte, 0, len(key)+4+revBytes), key)
	return binary.BigEndian.AppendUint64(dst, ^uint64(rev))
}

// seekAt is where a key's newest version at or below rev starts, given the key's prefix.
func seekAt(prefix []byte, rev int64) []byte {
	return binary.BigEndian.AppendUint64(bytes.Clone(prefix), ^uint64(rev))
}

// afterKey sorts after every version of the key whose prefix it is and before any other key.
func afterKey(prefix []byte) []byte {
	b := bytes.Clone(prefix)
	b[len(b)-1] = 0x02
	return b
}

// rangeBound is the engine key every version of every key below end sorts before.
func rangeBound(end []byte) []byte {
	return appendEscaped([]byte{kindVersion}, end)
}

// versionOf splits a version key into its prefix and revision.
func versionOf(k []byte) (prefix []byte, rev int64) {
	n := len(k) - revBytes
	return k[:n], int64(^binary.BigEndian.Uint64(k[n:]))
}

// userKey decodes the key from a version key or prefix.
func userKey(k []byte) ([]byte, error) {
	if len(k) < 3 || k[0] != kindVersion {
		return nil, errors.New("mvcc: not a version key")
	}
	out := make([]byte, 0, len(k))
	for i := 1; i < len(k); i++ {
		c := k[i]
		if c != 0 {
			out = append(out, c)
			continue
		}
		if i+1 >= len(k) {
			return nil, errors.New("mvcc: version key cut inside an escape")
		}
		switch k[i+1] {
		case 0xff:
			out = append(out, 0)
			i++
		case 0x01:
			return out, nil
		default:
			return nil, errors.New("mvcc: bad escape in version key")
		}
	}
	return nil, errors.New("mvcc: version key without its terminator")
}

func revisionKey(rev, sub int64) []byte {
	b := make([]byte, 0, 1+2*revBytes)
	b = append(b, kindRevision)
	b = binary.BigEndian.AppendUint64(b, uint64(rev))
	return binary.BigEndian.AppendUint64(b, uint64(sub))
}

func revisionOf(k []byte) (rev, sub int64) {
	return int64(binary.BigEndian.Uint64(k[1:9])), int64(binary.BigEndian.Uint64(k[9:17]))
}

func leaseKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindLease}, uint64(id))
}

func attachedPrefix(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindAttached}, uint64(id))
}

func attachedKey(id int64, key []byte) []byte {
	return append(attachedPrefix(id), key...)
}

func sessionKey(client uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindSession}, client)
}

// upperOf is the smallest key above every key that starts with prefix.
func upperOf(prefix []byte) []byte {
	b := bytes.Clone(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0xff {
			b[i]++
			return b[:i+1]
		}
	}
	return nil
}

// comparer is bytewise order, with the last 8 bytes of a version key marked as its
// revision: pebble's bloom filters then hold keys without revisions, so reading a key's
// newest version is a prefix seek that skips the files without the key.
var comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = "georaft.mvcc.v1"
	c.Split = func(k []byte) int {
		if len(k) > 3+revBytes && k[0] == kindVersion {
			return len(k) - revBytes
		}
		return len(k)
	}
	return &c
}()
