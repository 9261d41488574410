package kv

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/georaft/georaft/raft"
)

// DefaultMaxSessions is the session table size New uses when given 0 or less.
//
// The bound is part of the replicated state machine: replicas with different bounds evict
// different sessions and may then disagree on whether a retried write is a duplicate. Every
// node of a cluster must pass the same value.
const DefaultMaxSessions = 10000

// Result is the outcome of applying one entry.
type Result struct {
	Op Op
	// Index is the log index the write or read took effect at. For a Duplicate it is the
	// index of the original write.
	Index uint64
	// Found: OpGet found the key. Existed: OpSet or OpDelete found the key already there.
	Found   bool
	Existed bool
	// Value is what OpGet read. It is the store's own copy: never modify it.
	Value []byte
	// Duplicate: the write was applied before at Index; this retry changed nothing.
	Duplicate bool
	// Err is set when the entry changed nothing but the applied index: an undecodable
	// command, a stale sequence, or an entry out of order (which does not even move the
	// index).
	Err error
}

// ErrStaleSequence is matched (errors.Is) by *StaleSequenceError.
var ErrStaleSequence = errors.New("stale sequence")

// StaleSequenceError refuses a write whose session already applied a later sequence: the
// client gave up waiting on Seq and moved on, so this copy must not apply.
type StaleSequenceError struct {
	ClientID, Seq, LastSeq uint64
}

func (e *StaleSequenceError) Error() string {
	return fmt.Sprintf("kv: stale sequence: client %d sent seq %d, but seq %d is already applied", e.ClientID, e.Seq, e.LastSeq)
}

func (e *StaleSequenceError) Is(target error) bool { return target == ErrStaleSequence }

// ErrReusedSequence is matched (errors.Is) by *ReusedSequenceError.
var ErrReusedSequence = errors.New("reused sequence")

// ReusedSequenceError refuses a write that carries the (client id, sequence) of a write
// already applied but asks for something else. Answering it as a retry would acknowledge a
// write that never happened, so it is refused and changes nothing.
type ReusedSequenceError struct {
	ClientID, Seq uint64
	// Differs says what differs from the applied write, for instance "SET instead of DEL".
	Differs string
}

func (e *ReusedSequenceError) Error() string {
	return fmt.Sprintf("client %d reused sequence %d for a different write (%s); each new write needs the next sequence",
		e.ClientID, e.Seq, e.Differs)
}

func (e *ReusedSequenceError) Is(target error) bool { return target == ErrReusedSequence }

// OrderError is an entry handed to Apply out of index order, or with a term below the last
// applied one. The node guarantees order, so this is a bug in the caller; Apply refuses the
// entry without touching the state.
type OrderError struct {
	Index, Term               uint64 // the entry
	AppliedIndex, AppliedTerm uint64 // the store
}

func (e *OrderError) Error() string {
	if e.Index == e.AppliedIndex+1 {
		return fmt.Sprintf("kv: entry %d has term %d, below the applied term %d", e.Index, e.Term, e.AppliedTerm)
	}
	return fmt.Sprintf("kv: entry %d applied out of order: applied index is %d, want entry %d",
		e.Index, e.AppliedIndex, e.AppliedIndex+1)
}

// Store is the replicated key-value state machine. Apply is called by one goroutine, in log
// order; Get, Len, Applied, Hash and Snapshot may be called from any goroutine at any time.
//
// Stored keys and values are private copies that are never modified in place, so Get hands
// out the stored slice itself without copying: callers must not modify it.
type Store struct {
	mu sync.RWMutex
	// The map is split into shards so that a snapshot can freeze all of them at once and
	// Apply copies only the shards it writes while the snapshot still reads them.
	shards      [shardCount]*shard
	keys        int
	sessions    map[uint64]*session
	lru         sessionList // oldest lastUsed first
	applied     uint64
	appliedTerm uint64

	limits      Limits
	maxSessions int
}

const shardCount = 256

type shard struct {
	m map[string][]byte
	// pins counts snapshots still to read m. While it is above zero m is immutable, and a
	// writer replaces the shard with a copy instead.
	pins atomic.Int32
}

// shardOf picks a key's shard with FNV-1a, a fixed function so that snapshots list keys in
// the same order on every replica.
func shardOf(key []byte) int {
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	return int(h % shardCount)
}

// session is the exactly-once record of one client: the last write it applied and how it
// went.
type session struct {
	clientID uint64
	lastSeq  uint64
	result   sessionResult
	// lastUsed is the index of the last entry of this client (the write, or a retry of it).
	// Sessions are evicted by it, oldest first: every replica applies the same log, so every
	// replica evicts the same sessions.
	lastUsed   uint64
	prev, next *session
}

// sessionResult is what a retry of the last write is told.
type sessionResult struct {
	op      Op
	existed bool
	index   uint64
}

// New returns an empty store. limits is kept for the node's checks (Limits); maxSessions
// bounds the session table (DefaultMaxSessions if ≤ 0; see its note on replicas).
func New(limits Limits, maxSessions int) *Store {
	if maxSessions <= 0 {
		maxSessions = DefaultMaxSessions
	}
	s := &Store{limits: limits, maxSessions: maxSessions}
	s.reset()
	return s
}

func (s *Store) reset() {
	for i := range s.shards {
		s.shards[i] = &shard{m: make(map[string][]byte)}
	}
	s.keys = 0
	s.sessions = make(map[uint64]*session)
	s.lru.init()
	s.applied, s.appliedTerm = 0, 0
}

// Limits returns the limits the store was created with.
func (s *Store) Limits() Limits { return s.limits }

// Apply applies e, which must be the entry right after the last applied one. No-op entries
// only move the applied index. A normal entry that does not decode still moves it (every
// replica refuses the same bytes the same way) and reports the error in Result.Err.
func (s *Store) Apply(e raft.Entry) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Index != s.applied+1 || e.Term < s.appliedTerm {
		return Result{Index: e.Index, Err: &OrderError{
			Index: e.Index, Term: e.Term, AppliedIndex: s.applied, AppliedTerm: s.appliedTerm,
		}}
	}
	s.applied, s.appliedTerm = e.Index, e.Term
	switch e.Type {
	case raft.EntryNoop:
		return Result{Index: e.Index}
	case raft.EntryNormal:
	default:
		return Result{Index: e.Index, Err: fmt.Errorf("kv: entry %d has unknown type %v", e.Index, e.Type)}
	}
	cmd, err := Decode(e.Data)
	if err != nil {
		return Result{Index: e.Index, Err: fmt.Errorf("entry %d: %w", e.Index, err)}
	}
	return s.applyCommand(&cmd, e.Index)
}

func (s *Store) applyCommand(cmd *Command, index uint64) Result {
	if cmd.Op == OpGet {
		// Reads change nothing, so they need no session: a retried read is just read again.
		v, ok := s.shards[shardOf(cmd.Key)].m[string(cmd.Key)]
		return Result{Op: OpGet, Index: index, Found: ok, Value: v}
	}

	var sess *session
	if cmd.ClientID != 0 {
		sess = s.sessions[cmd.ClientID]
		if sess != nil && cmd.Seq <= sess.lastSeq {
			s.touch(sess, index)
			if cmd.Seq < sess.lastSeq {
				return Result{Op: cmd.Op, Index: index, Err: &StaleSequenceError{
					ClientID: cmd.ClientID, Seq: cmd.Seq, LastSeq: sess.lastSeq,
				}}
			}
			if cmd.Op != sess.result.op {
				return Result{Op: cmd.Op, Index: index, Err: &ReusedSequenceError{ClientID: cmd.ClientID, Seq: cmd.Seq,
					Differs: fmt.Sprintf("%s, the applied write was %s", cmd.Op, sess.result.op)}}
			}
			r := sess.result
			return Result{Op: r.op, Index: r.index, Existed: r.existed, Duplicate: true}
		}
	}

	var existed bool
	switch cmd.Op {
	case OpSet:
		existed = s.set(cmd.Key, cmd.Value)
	case OpDelete:
		existed = s.delete(cmd.Key)
	}

	if cmd.ClientID != 0 {
		if sess == nil {
			for len(s.sessions) >= s.maxSessions {
				oldest := s.lru.front()
				s.lru.remove(oldest)
				delete(s.sessions, oldest.clientID)
			}
			sess = &session{clientID: cmd.ClientID}
			s.sessions[cmd.ClientID] = sess
			s.lru.pushBack(sess)
		}
		sess.lastSeq = cmd.Seq
		sess.result = sessionResult{op: cmd.Op, existed: existed, index: index}
		s.touch(sess, index)
	}
	return Result{Op: cmd.Op, Index: index, Existed: existed}
}

// touch marks sess used at index, the newest index applied, so it moves to the back.
func (s *Store) touch(sess *session, index uint64) {
	sess.lastUsed = index
	s.lru.moveToBack(sess)
}

func (s *Store) writableShard(key []byte) *shard {
	i := shardOf(key)
	sh := s.shards[i]
	if sh.pins.Load() > 0 {
		sh = &shard{m: maps.Clone(sh.m)}
		s.shards[i] = sh
	}
	return sh
}

func (s *Store) set(key, value []byte) (existed bool) {
	sh := s.writableShard(key)
	k := string(key)
	_, existed = sh.m[k]
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	sh.m[k] = v
	if !existed {
		s.keys++
	}
	return existed
}

func (s *Store) delete(key []byte) (existed bool) {
	if _, ok := s.shards[shardOf(key)].m[string(key)]; !ok {
		return false
	}
	delete(s.writableShard(key).m, string(key))
	s.keys--
	return true
}

// Get returns the value of key as of the last applied entry. The slice is the store's own:
// never modify it.
func (s *Store) Get(key []byte) (value []byte, found bool) {
	i := shardOf(key)
	s.mu.RLock()
	value, found = s.shards[i].m[string(key)]
	s.mu.RUnlock()
	return value, found
}

// Applied returns the index and term of the last applied entry.
func (s *Store) Applied() (index, term uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied, s.appliedTerm
}

// Len returns the number of keys.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys
}

// Sessions returns the number of client sessions remembered.
func (s *Store) Sessions() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.sessions)
}

// Hash digests the keys, values and sessions, independent of map order and of the process,
// so replicas (and a store restored from a snapshot) can be compared. The applied index is
// not part of it: compare Applied separately. It reads the whole store.
func (s *Store) Hash() uint64 {
	h, _ := s.HashAt()
	return h
}

// HashAt returns Hash together with the applied index it describes, taken atomically, so
// replicas can be compared at the same point of the log.
func (s *Store) HashAt() (hash, applied uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hashLocked(), s.applied
}

func (s *Store) hashLocked() uint64 {
	var sum uint64
	for _, sh := range s.shards {
		for k, v := range sh.m {
			h := newHash64(tagKeyValue)
			h.addString(k)
			h.addBytes(v)
			sum += h.sum()
		}
	}
	for _, sess := range s.sessions {
		h := newHash64(tagSession)
		h.addUint(sess.clientID)
		h.addUint(sess.lastSeq)
		h.addUint(sess.lastUsed)
		h.addUint(uint64(sess.result.op))
		h.addBool(sess.result.existed)
		h.addUint(sess.result.index)
		sum += h.sum()
	}
	return sum
}

// hash64 is FNV-1a over length-prefixed fields with a final mix, so that summing the
// digests of many items stays sensitive to every item.
type hash64 uint64

const (
	tagKeyValue = 1
	tagSession  = 2
)

func newHash64(tag byte) hash64 {
	h := hash64(14695981039346656037)
	h.addByte(tag)
	return h
}

func (h *hash64) addByte(c byte) {
	*h ^= hash64(c)
	*h *= 1099511628211
}

func (h *hash64) addUint(v uint64) {
	for i := 0; i < 8; i++ {
		h.addByte(byte(v >> (8 * i)))
	}
}

func (h *hash64) addBool(b bool) {
	if b {
		h.addByte(1)
	} else {
		h.addByte(0)
	}
}

func (h *hash64) addString(b string) {
	h.addUint(uint64(len(b)))
	for i := 0; i < len(b); i++ {
		h.addByte(b[i])
	}
}

func (h *hash64) addBytes(b []byte) {
	h.addUint(uint64(len(b)))
	for _, c := range b {
		h.addByte(c)
	}
}

// sum finishes with the splitmix64 mixer: FNV's low bits mix poorly, and sums of digests
// need every bit.
func (h hash64) sum() uint64 {
	z := uint64(h)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// sessionList is an intrusive doubly linked list of sessions ordered by lastUsed. Every
// touch uses the newest applied index, so moving a session to the back keeps the order,
// and eviction takes the front in O(1).
type sessionList struct{ root session }

func (l *sessionList) init() { l.root.next, l.root.prev = &l.root, &l.root }

func (l *sessionList) front() *session { return l.root.next }

func (l *sessionList) remove(s *session) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (l *sessionList) pushBack(s *session) {
	last := l.root.prev
	s.prev, s.next = last, &l.root
	last.next, l.root.prev = s, s
}

func (l *sessionList) moveToBack(s *session) {
	if l.root.prev == s {
		return
	}
	l.remove(s)
	l.pushBack(s)
}
