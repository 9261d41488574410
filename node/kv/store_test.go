package kv

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/georaft/georaft/raft"
)

// testLog builds a log of entries the way a leader would.
type testLog struct {
	entries []raft.Entry
	term    uint64
}

func (l *testLog) next() uint64 { return uint64(len(l.entries)) + 1 }

func (l *testLog) noop() raft.Entry {
	l.term++
	e := raft.Entry{Index: l.next(), Term: l.term, Type: raft.EntryNoop}
	l.entries = append(l.entries, e)
	return e
}

func (l *testLog) cmd(t testing.TB, c Command) raft.Entry {
	t.Helper()
	if l.term == 0 {
		l.term = 1
	}
	data, err := c.Encode()
	if err != nil {
		t.Fatalf("encode %v: %v", c, err)
	}
	e := raft.Entry{Index: l.next(), Term: l.term, Type: raft.EntryNormal, Data: data}
	l.entries = append(l.entries, e)
	return e
}

func raftEntry(index uint64, data []byte) raft.Entry {
	return raft.Entry{Index: index, Term: 1, Type: raft.EntryNormal, Data: data}
}

func set(k, v string) Command { return Command{Op: OpSet, Key: []byte(k), Value: []byte(v)} }
func del(k string) Command    { return Command{Op: OpDelete, Key: []byte(k)} }
func get(k string) Command    { return Command{Op: OpGet, Key: []byte(k)} }

func withSession(c Command, client, seq uint64) Command {
	c.ClientID, c.Seq = client, seq
	return c
}

func mustApply(t testing.TB, s *Store, e raft.Entry) Result {
	t.Helper()
	r := s.Apply(e)
	if r.Err != nil {
		t.Fatalf("apply entry %d: %v", e.Index, r.Err)
	}
	return r
}

func wantValue(t *testing.T, s *Store, key, want string) {
	t.Helper()
	v, ok := s.Get([]byte(key))
	if !ok || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q, true", key, v, ok, want)
	}
}

func wantMissing(t *testing.T, s *Store, key string) {
	t.Helper()
	if v, ok := s.Get([]byte(key)); ok {
		t.Fatalf("Get(%q) = %q, true; want missing", key, v)
	}
}

func TestApplySequence(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	if r := mustApply(t, s, l.noop()); r.Op != OpNone || r.Index != 1 || s.Len() != 0 {
		t.Fatalf("noop: %+v, Len %d", r, s.Len())
	}
	if r := mustApply(t, s, l.cmd(t, set("x", "5"))); r.Op != OpSet || r.Existed || r.Index != 2 {
		t.Fatalf("first SET: %+v", r)
	}
	wantValue(t, s, "x", "5")
	if r := mustApply(t, s, l.cmd(t, set("x", "6"))); !r.Existed {
		t.Fatalf("overwriting SET: %+v, want Existed", r)
	}
	if r := mustApply(t, s, l.cmd(t, get("x"))); !r.Found || string(r.Value) != "6" || r.Index != 4 {
		t.Fatalf("log GET: %+v", r)
	}
	if r := mustApply(t, s, l.cmd(t, get("nope"))); r.Found {
		t.Fatalf("log GET of a missing key: %+v", r)
	}
	mustApply(t, s, l.cmd(t, set("y", "")))
	wantValue(t, s, "y", "")
	if r := mustApply(t, s, l.cmd(t, del("x"))); r.Op != OpDelete || !r.Existed {
		t.Fatalf("DEL: %+v", r)
	}
	wantMissing(t, s, "x")
	if r := mustApply(t, s, l.cmd(t, del("x"))); r.Existed {
		t.Fatalf("DEL of a missing key: %+v", r)
	}
	mustApply(t, s, l.noop())
	if idx, term := s.Applied(); idx != 9 || term != 2 {
		t.Fatalf("Applied = %d, %d; want 9, 2", idx, term)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func TestApplyRefusesEntriesOutOfOrder(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	l.noop()
	l.cmd(t, set("a", "1"))
	l.noop()
	l.cmd(t, set("a", "2"))
	mustApply(t, s, l.entries[0])
	mustApply(t, s, l.entries[1])
	before := s.Hash()

	for _, e := range []raft.Entry{
		l.entries[3], // skips index 3
		l.entries[1], // already applied
		{Index: 3, Term: 0, Type: raft.EntryNoop}, // term going back
	} {
		r := s.Apply(e)
		var oe *OrderError
		if !errors.As(r.Err, &oe) {
			t.Fatalf("Apply(index %d term %d) = %+v, want an OrderError", e.Index, e.Term, r)
		}
		if !strings.Contains(oe.Error(), "entry") || oe.AppliedIndex != 2 {
			t.Fatalf("unclear order error: %v", oe)
		}
	}
	if idx, _ := s.Applied(); idx != 2 || s.Hash() != before {
		t.Fatalf("a refused entry changed the store: applied %d", idx)
	}
	mustApply(t, s, l.entries[2])
	mustApply(t, s, l.entries[3])
	wantValue(t, s, "a", "2")
}

func TestApplyUndecodableEntryOnlyMovesIndex(t *testing.T) {
	s := New(Limits{}, 0)
	before := s.Hash()
	r := s.Apply(raft.Entry{Index: 1, Term: 1, Type: raft.EntryNormal, Data: []byte{9, 9}})
	if !errors.Is(r.Err, ErrMalformedCommand) || !strings.Contains(r.Err.Error(), "entry 1") {
		t.Fatalf("Apply(garbage) = %+v, want a decode error naming the entry", r)
	}
	if idx, _ := s.Applied(); idx != 1 || s.Hash() != before {
		t.Fatalf("garbage entry: applied %d, hash changed %v", idx, s.Hash() != before)
	}
	r = s.Apply(raft.Entry{Index: 2, Term: 1, Type: raft.EntryType(7)})
	if r.Err == nil || !strings.Contains(r.Err.Error(), "unknown type") {
		t.Fatalf("Apply(unknown type) = %+v", r)
	}
}

func TestRetriedWriteAppliesOnce(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	first := mustApply(t, s, l.cmd(t, withSession(set("counter", "1"), 77, 1)))
	// The client timed out and retried; the retry reached the log too, after another
	// client's write to the same key.
	mustApply(t, s, l.cmd(t, set("counter", "other")))
	retry := mustApply(t, s, l.cmd(t, withSession(set("counter", "1"), 77, 1)))
	if !retry.Duplicate || retry.Index != first.Index || retry.Op != OpSet {
		t.Fatalf("retry: %+v, want a duplicate answered with index %d", retry, first.Index)
	}
	wantValue(t, s, "counter", "other")

	d1 := mustApply(t, s, l.cmd(t, withSession(del("counter"), 77, 2)))
	d2 := mustApply(t, s, l.cmd(t, withSession(del("counter"), 77, 2)))
	if !d1.Existed || d1.Duplicate || !d2.Duplicate || !d2.Existed || d2.Index != d1.Index {
		t.Fatalf("DEL then its retry: %+v, %+v; the retry must repeat Existed=true", d1, d2)
	}

	// A gap in sequence numbers is a client that gave up on some writes: apply.
	if r := mustApply(t, s, l.cmd(t, withSession(set("counter", "5"), 77, 5))); r.Duplicate {
		t.Fatalf("seq 5 after 2: %+v", r)
	}
	wantValue(t, s, "counter", "5")
}

func TestStaleSequenceChangesNothing(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	mustApply(t, s, l.cmd(t, withSession(set("k", "1"), 9, 1)))
	mustApply(t, s, l.cmd(t, withSession(set("k", "2"), 9, 2)))
	r := s.Apply(l.cmd(t, withSession(set("k", "late"), 9, 1)))
	var se *StaleSequenceError
	if !errors.Is(r.Err, ErrStaleSequence) || !errors.As(r.Err, &se) || se.Seq != 1 || se.LastSeq != 2 {
		t.Fatalf("stale write: %+v", r)
	}
	if !strings.Contains(r.Err.Error(), "stale sequence") {
		t.Fatalf("unclear: %v", r.Err)
	}
	wantValue(t, s, "k", "2")

	r = s.Apply(l.cmd(t, withSession(del("k"), 9, 2)))
	if !errors.Is(r.Err, ErrReusedSequence) || !strings.Contains(r.Err.Error(), "reused sequence 2") {
		t.Fatalf("seq reused for another op: %+v", r)
	}
	wantValue(t, s, "k", "2")
}

func TestWritesWithoutSessionAlwaysApply(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	for i := 0; i < 3; i++ {
		if r := mustApply(t, s, l.cmd(t, set("k", fmt.Sprint(i)))); r.Duplicate {
			t.Fatalf("write %d without session marked duplicate", i)
		}
		wantValue(t, s, "k", fmt.Sprint(i))
	}
	if s.Sessions() != 0 {
		t.Fatalf("Sessions = %d, want 0", s.Sessions())
	}
}

func TestSessionEvictionTakesOldestLastUse(t *testing.T) {
	s := New(Limits{}, 3)
	var l testLog
	mustApply(t, s, l.cmd(t, withSession(set("a", "1"), 1, 1)))
	mustApply(t, s, l.cmd(t, withSession(set("b", "1"), 2, 1)))
	mustApply(t, s, l.cmd(t, withSession(set("c", "1"), 3, 1)))
	// Client 1 retries: its session is used again, so client 2 is now the oldest.
	if r := mustApply(t, s, l.cmd(t, withSession(set("a", "1"), 1, 1))); !r.Duplicate {
		t.Fatal("retry not detected")
	}
	mustApply(t, s, l.cmd(t, withSession(set("d", "1"), 4, 1)))
	if s.Sessions() != 3 {
		t.Fatalf("Sessions = %d, want 3", s.Sessions())
	}
	// Client 2 was evicted: its retry is applied again (the bounded table's known cost).
	if r := mustApply(t, s, l.cmd(t, withSession(set("b", "2"), 2, 1))); r.Duplicate {
		t.Fatal("client 2 should have been evicted")
	}
	// That evicted client 3 (oldest now); client 1 and 4 remain.
	for _, c := range []struct {
		client uint64
		key    string
		dup    bool
	}{{1, "a", true}, {4, "d", true}, {3, "c", false}} {
		r := mustApply(t, s, l.cmd(t, withSession(set(c.key, "1"), c.client, 1)))
		if r.Duplicate != c.dup {
			t.Fatalf("client %d: duplicate %v, want %v", c.client, r.Duplicate, c.dup)
		}
	}
}

// randomLog is a log of many clients' writes with retries, duplicates and stale copies.
func randomLog(t testing.TB, seed uint64, n, clients int) *testLog {
	rng := rand.New(rand.NewPCG(seed, 1))
	var l testLog
	l.noop()
	seqs := make([]uint64, clients+1)
	for len(l.entries) < n {
		client := uint64(rng.IntN(clients + 1)) // 0: no session
		key := fmt.Sprintf("key-%d", rng.IntN(50))
		var c Command
		switch rng.IntN(10) {
		case 0:
			l.noop()
			continue
		case 1, 2:
			c = del(key)
		case 3:
			c = get(key)
		default:
			c = set(key, fmt.Sprintf("v%d", rng.Uint32()))
		}
		if client != 0 && c.Op != OpGet {
			switch rng.IntN(6) {
			case 0: // retry of the last write
				if seqs[client] > 0 {
					c.Seq = seqs[client]
				}
			case 1: // stale
				if seqs[client] > 1 {
					c.Seq = seqs[client] - 1
				}
			}
			if c.Seq == 0 {
				seqs[client]++
				c.Seq = seqs[client]
			}
			c.ClientID = client
		}
		l.cmd(t, c)
	}
	return &l
}

func TestReplicasFedTheSameLogAgree(t *testing.T) {
	l := randomLog(t, 42, 5000, 40)
	a, b := New(Limits{}, 8), New(Limits{}, 8)
	for _, e := range l.entries {
		ra, rb := a.Apply(e), b.Apply(e)
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatalf("entry %d: results differ: %+v vs %+v", e.Index, ra, rb)
		}
	}
	if a.Hash() != b.Hash() || a.Len() != b.Len() || a.Sessions() != 8 {
		t.Fatalf("replicas differ: hash %x vs %x, len %d vs %d, sessions %d", a.Hash(), b.Hash(), a.Len(), b.Len(), a.Sessions())
	}
	// The hash must see the session table: a store with a different bound evicted other
	// sessions from the same log.
	c := New(Limits{}, 9)
	for _, e := range l.entries {
		c.Apply(e)
	}
	if c.Hash() == a.Hash() {
		t.Fatal("stores with different session tables hash equal")
	}
}

func TestHashSeesKeysAndValues(t *testing.T) {
	build := func(cmds ...Command) uint64 {
		s := New(Limits{}, 0)
		var l testLog
		for _, c := range cmds {
			mustApply(t, s, l.cmd(t, c))
		}
		return s.Hash()
	}
	base := build(set("a", "1"), set("b", "2"))
	if build(set("b", "2"), set("a", "1")) != base {
		t.Fatal("hash depends on write order")
	}
	for name, h := range map[string]uint64{
		"value":   build(set("a", "1"), set("b", "3")),
		"key":     build(set("a", "1"), set("c", "2")),
		"swap":    build(set("a", "2"), set("b", "1")),
		"merged":  build(set("ab", "12")),
		"missing": build(set("a", "1")),
	} {
		if h == base {
			t.Errorf("changing the %s left the hash unchanged", name)
		}
	}
}

func TestGetIsSafeDuringApply(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	const n = 3000
	for i := 1; i <= n; i++ {
		l.cmd(t, set(fmt.Sprintf("k%d", i%10), fmt.Sprint(i)))
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]int{}
			for !done.Load() {
				for k := 0; k < 10; k++ {
					key := fmt.Sprintf("k%d", k)
					v, ok := s.Get([]byte(key))
					if !ok {
						continue
					}
					var got int
					fmt.Sscan(string(v), &got)
					// A key's value only grows along the log; a reader must never see it
					// go back.
					if got < last[key] || got%10 != k {
						bad.Store(fmt.Sprintf("%s went from %d to %d", key, last[key], got))
					}
					last[key] = got
				}
			}
		}()
	}
	for _, e := range l.entries {
		mustApply(t, s, e)
	}
	done.Store(true)
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
}
