package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/georaft/georaft/node/kv"
)

// session is the exactly-once record of one georaft.v1 client: the last write it applied
// and how it went. The table is bounded: once full, the session used longest ago (by log
// index, the same on every replica) is evicted.
type session struct {
	clientID uint64
	lastSeq  uint64
	result   sessionResult
	// lastUsed is the index of the last entry of this client (the write, or a retry).
	lastUsed   uint64
	prev, next *session
}

type sessionResult struct {
	op      SessionOp
	existed bool
	index   uint64
	rev     int64
	// fingerprint identifies what the write asked for (writeFingerprint), so a retry can be
	// told from a new write that reuses the sequence. 0: unknown (a record written before
	// fingerprints existed), and then only the op is compared.
	fingerprint uint64
}

// writeFingerprint is a 64-bit FNV-1a hash of a command's kind, op and request, in the
// deterministic protobuf encoding: a retry of the same write has the same fingerprint on
// every replica. It is never 0, which means unknown.
func writeFingerprint(cmd *Command) uint64 {
	h := fnv.New64a()
	h.Write([]byte{byte(cmd.Kind), byte(cmd.Op)})
	if body, err := cmd.body(); err == nil {
		if b, err := (proto.MarshalOptions{Deterministic: true}).Marshal(body); err == nil {
			h.Write(b)
		}
	}
	if sum := h.Sum64(); sum != 0 {
		return sum
	}
	return 1
}

// Record layout: last seq, last used, op, existed, result index, result revision and the
// write's fingerprint (uvarints). Records without the fingerprint (older builds) still load.
func (s *session) encode() []byte {
	b := make([]byte, 0, 7*binary.MaxVarintLen64)
	existed := uint64(0)
	if s.result.existed {
		existed = 1
	}
	for _, v := range []uint64{s.lastSeq, s.lastUsed, uint64(s.result.op), existed, s.result.index, uint64(s.result.rev), s.result.fingerprint} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func decodeSession(client uint64, b []byte) (*session, error) {
	var v [7]uint64
	off := 0
	for i := range v {
		if i == 6 && off == len(b) {
			break // written before fingerprints: unknown
		}
		x, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return nil, fmt.Errorf("mvcc: session record of client %d cut short", client)
		}
		v[i], off = x, off+n
	}
	if off != len(b) {
		return nil, fmt.Errorf("mvcc: session record of client %d has %d bytes after its fields", client, len(b)-off)
	}
	return &session{clientID: client, lastSeq: v[0], lastUsed: v[1],
		result: sessionResult{op: SessionOp(v[2]), existed: v[3] == 1, index: v[4], rev: int64(v[5]), fingerprint: v[6]}}, nil
}

func loadSessions(db *pebble.DB) (map[uint64]*session, sessionList, error) {
	var lru sessionList
	lru.init()
	sessions := make(map[uint64]*session)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindSession}, UpperBound: []byte{kindSession + 1}})
	if err != nil {
		return nil, lru, err
	}
	defer it.Close()
	var all []*session
	for ok := it.First(); ok; ok = it.Next() {
		if len(it.Key()) != 9 {
			return nil, lru, errors.New("mvcc: malformed session key")
		}
		sess, err := decodeSession(binary.BigEndian.Uint64(it.Key()[1:]), it.Value())
		if err != nil {
			return nil, lru, err
		}
		all = append(all, sess)
	}
	if err := it.Error(); err != nil {
		return nil, lru, err
	}
	slices.SortFunc(all, func(a, b *session) int {
		if a.lastUsed != b.lastUsed {
			return cmpUint(a.lastUsed, b.lastUsed)
		}
		return cmpUint(a.clientID, b.clientID)
	})
	for _, sess := range all {
		sessions[sess.clientID] = sess
		lru.pushBack(sess)
	}
	return sessions, lru, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkSession looks cmd's session up. done is true when the command must not run: a retry
// of the last write (answered with its original result), a stale sequence, or the last
// write's sequence reused for a different write (refused: answering it as a retry would
// acknowledge a write that was never applied).
func (s *Store) checkSession(t *txn, cmd *Command, index uint64) (sess *session, res Result, done bool) {
	s.sessMu.Lock()
	sess = s.sessions[cmd.ClientID]
	s.sessMu.Unlock()
	if sess == nil || cmd.Seq > sess.lastSeq {
		return sess, Result{}, false
	}
	t.keep = true
	s.touch(t, sess, index)
	if cmd.Seq < sess.lastSeq {
		return sess, Result{Index: index, Err: &kv.StaleSequenceError{ClientID: cmd.ClientID, Seq: cmd.Seq, LastSeq: sess.lastSeq}}, true
	}
	r := sess.result
	reused := func(differs string) (*session, Result, bool) {
		return sess, Result{Index: index, Err: &kv.ReusedSequenceError{ClientID: cmd.ClientID, Seq: cmd.Seq, Differs: differs}}, true
	}
	if cmd.Op != r.op {
		return reused(fmt.Sprintf("%s, the applied write was %s", cmd.Op, r.op))
	}
	if r.fingerprint != 0 && writeFingerprint(cmd) != r.fingerprint {
		return reused(fmt.Sprintf("a %s with another key, value or request than the applied one", cmd.Op))
	}
	return sess, Result{Index: r.index, Revision: r.rev, Existed: r.existed, Duplicate: true}, true
}

// touch marks sess used at index (the newest index applied, so it moves to the back).
func (s *Store) touch(t *txn, sess *session, index uint64) {
	updated := *sess
	updated.lastUsed = index
	t.b.Set(sessionKey(sess.clientID), updated.encode(), nil)
	t.sessionWrites = append(t.sessionWrites, func() {
		s.sessMu.Lock()
		defer s.sessMu.Unlock()
		sess.lastUsed = index
		s.lru.moveToBack(sess)
	})
}

// recordSession remembers the result of a session's write, evicting the session used longest
// ago when the table is full.
func (s *Store) recordSession(t *txn, sess *session, cmd *Command, r sessionResult, index uint64) {
	s.sessMu.Lock()
	var evict *session
	if sess == nil && len(s.sessions) >= s.opts.MaxSessions {
		evict = s.lru.front()
	}
	s.sessMu.Unlock()
	if evict != nil {
		t.b.Delete(sessionKey(evict.clientID), nil)
	}
	fresh := sess == nil
	if fresh {
		sess = &session{clientID: cmd.ClientID}
	}
	updated := *sess
	updated.lastSeq, updated.result, updated.lastUsed = cmd.Seq, r, index
	t.b.Set(sessionKey(cmd.ClientID), updated.encode(), nil)
	t.sessionWrites = append(t.sessionWrites, func() {
		s.sessMu.Lock()
		defer s.sessMu.Unlock()
		if evict != nil {
			s.lru.remove(evict)
			delete(s.sessions, evict.clientID)
		}
		sess.lastSeq, sess.result, sess.lastUsed = cmd.Seq, r, index
		if fresh {
			s.sessions[sess.clientID] = sess
			s.lru.pushBack(sess)
		} else {
			s.lru.moveToBack(sess)
		}
	})
}

// sessionList is an intrusive doubly linked list of sessions ordered by lastUsed.
type sessionList struct{ root *session }

func (l *sessionList) init() {
	l.root = &session{}
	l.root.next, l.root.prev = l.root, l.root
}

func (l *sessionList) front() *session { return l.root.next }

func (l *sessionList) remove(s *session) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (l *sessionList) pushBack(s *session) {
	last := l.root.prev
	s.prev, s.next = last, l.root
	last.next, l.root.prev = s, s
}

func (l *sessionList) moveToBack(s *session) {
	if l.root.prev == s {
		return
	}
	l.remove(s)
	l.pushBack(s)
}
