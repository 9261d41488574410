package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"testing"
)

func snapshotBytes(t testing.TB, s *Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return buf.Bytes()
}

func storesEqual(t *testing.T, a, b *Store) {
	t.Helper()
	ai, at := a.Applied()
	bi, bt := b.Applied()
	if ai != bi || at != bt || a.Len() != b.Len() || a.Sessions() != b.Sessions() || a.Hash() != b.Hash() {
		t.Fatalf("stores differ: applied %d/%d vs %d/%d, len %d vs %d, sessions %d vs %d, hash %x vs %x",
			ai, at, bi, bt, a.Len(), b.Len(), a.Sessions(), b.Sessions(), a.Hash(), b.Hash())
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	l := randomLog(t, 7, 3000, 30)
	src := New(Limits{}, 16)
	for _, e := range l.entries[:2000] {
		src.Apply(e)
	}
	snap := snapshotBytes(t, src)

	dst := New(Limits{}, 16)
	var other testLog
	mustApply(t, dst, other.cmd(t, set("stale", "state"))) // Restore must replace it
	if err := dst.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	storesEqual(t, src, dst)
	wantMissing(t, dst, "stale")
	if again := snapshotBytes(t, dst); !bytes.Equal(again, snap) {
		t.Fatal("the same state gave different snapshot bytes")
	}

	// The restored store goes on exactly like the original: same results, same sessions,
	// same evictions.
	for _, e := range l.entries[2000:] {
		ra, rb := src.Apply(e), dst.Apply(e)
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatalf("entry %d after restore: %+v vs %+v", e.Index, ra, rb)
		}
	}
	storesEqual(t, src, dst)
}

func TestSnapshotOfEmptyStore(t *testing.T) {
	s := New(Limits{}, 0)
	snap := snapshotBytes(t, s)
	r := New(Limits{}, 0)
	if err := r.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	storesEqual(t, s, r)
}

func TestSnapshotWhileApplyingIsConsistent(t *testing.T) {
	// Each entry i writes its own key and overwrites a shared one, so a snapshot's content
	// tells exactly which entries it reflects.
	var l testLog
	l.noop()
	const n = 20000
	for i := 2; i <= n; i++ {
		switch {
		case i%7 == 0:
			l.cmd(t, withSession(del(fmt.Sprintf("k%d", i-1)), uint64(i%13+1), uint64(i)))
		default:
			l.cmd(t, withSession(set(fmt.Sprintf("k%d", i), fmt.Sprint(i)), uint64(i%13+1), uint64(i)))
		}
	}
	live := New(Limits{}, 8)
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for _, e := range l.entries {
			live.Apply(e)
		}
	}()

	var snaps [][]byte
	for {
		var buf bytes.Buffer
		if err := live.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, buf.Bytes())
		select {
		case <-applied:
		default:
			continue
		}
		break
	}

	checked := map[uint64]bool{}
	for _, snap := range snaps {
		restored := New(Limits{}, 8)
		if err := restored.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatal(err)
		}
		idx, _ := restored.Applied()
		if checked[idx] {
			continue
		}
		checked[idx] = true
		// Replaying the log up to the snapshot's index must give the same state.
		ref := New(Limits{}, 8)
		for _, e := range l.entries[:idx] {
			ref.Apply(e)
		}
		storesEqual(t, ref, restored)
	}
	t.Logf("%d snapshots at %d distinct indexes taken while applying %d entries", len(snaps), len(checked), n)
	// The live store must not have been disturbed by the copy-on-write either.
	ref := New(Limits{}, 8)
	for _, e := range l.entries {
		ref.Apply(e)
	}
	storesEqual(t, ref, live)
}

func TestConcurrentSnapshotsShareFrozenShards(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	for i := 0; i < 2000; i++ {
		mustApply(t, s, l.cmd(t, set(fmt.Sprintf("k%d", i), "v")))
	}
	want := snapshotBytes(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			if err := s.Snapshot(&buf); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(buf.Bytes(), want) {
				errs <- errors.New("concurrent snapshots of an idle store differ")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, sh := range s.shards {
		if p := sh.pins.Load(); p != 0 {
			t.Fatalf("shard %d still pinned %d times after every snapshot finished", i, p)
		}
	}
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		n := max(w.after, 0)
		w.after = 0
		return n, errors.New("disk full")
	}
	w.after -= len(p)
	return len(p), nil
}

func TestSnapshotReportsWriteErrorAndUnpins(t *testing.T) {
	s := New(Limits{}, 0)
	var l testLog
	for i := 0; i < 5000; i++ {
		mustApply(t, s, l.cmd(t, set(fmt.Sprintf("k%d", i), strings.Repeat("v", 100))))
	}
	err := s.Snapshot(&failingWriter{after: 100 << 10})
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "index 5000") {
		t.Fatalf("Snapshot to a failing writer = %v", err)
	}
	for i, sh := range s.shards {
		if sh.pins.Load() != 0 {
			t.Fatalf("shard %d left pinned after a failed snapshot", i)
		}
	}
}

// rawSnapshot assembles snapshot bytes field by field with a valid CRC, to reach the
// structural checks behind the CRC.
type rawSnapshot struct{ b []byte }

func newRaw(index, term, sessions, keys uint64) *rawSnapshot {
	r := &rawSnapshot{b: append([]byte("GRKV"), snapshotVersion)}
	return r.u(index).u(term).u(sessions).u(keys)
}

func (r *rawSnapshot) u(v uint64) *rawSnapshot { r.b = binary.AppendUvarint(r.b, v); return r }
func (r *rawSnapshot) raw(p ...byte) *rawSnapshot {
	r.b = append(r.b, p...)
	return r
}
func (r *rawSnapshot) kv(k, v string) *rawSnapshot {
	r.u(uint64(len(k))).raw([]byte(k)...)
	return r.u(uint64(len(v))).raw([]byte(v)...)
}
func (r *rawSnapshot) session(client, seq, used uint64, op Op, existed byte, idx uint64) *rawSnapshot {
	return r.u(client).u(seq).u(used).raw(byte(op), existed).u(idx)
}
func (r *rawSnapshot) sealed() []byte {
	return binary.LittleEndian.AppendUint32(append([]byte{}, r.b...), crc32.Checksum(r.b, castagnoli))
}

func TestRestoreRejectsMalformedSnapshots(t *testing.T) {
	good := newRaw(10, 2, 1, 2).session(5, 3, 9, OpSet, 0, 8).kv("a", "1").kv("b", "2").sealed()
	if err := New(Limits{}, 0).Restore(bytes.NewReader(good)); err != nil {
		t.Fatalf("the well-formed handmade snapshot is refused: %v", err)
	}
	flipped := append([]byte{}, good...)
	flipped[len(flipped)-6] ^= 0x01 // inside the last value
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated: input ends before the magic"},
		{"magic", []byte("PK\x03\x04xxxxxxxx"), "not a georaft kv snapshot"},
		{"version", []byte("GRKV\x09"), "unknown snapshot version 9"},
		{"bit flip", flipped, "crc mismatch"},
		{"no crc", good[:len(good)-4], "input ends before the crc"},
		{"trailing", append(append([]byte{}, good...), 0), "trailing bytes after the crc"},
		{"term without index", newRaw(0, 1, 0, 0).sealed(), "applied term 1 with applied index 0"},
		{"empty key", newRaw(3, 1, 0, 1).kv("", "x").sealed(), "key 0 is empty"},
		{"duplicate key", newRaw(3, 1, 0, 2).kv("a", "1").kv("a", "2").sealed(), `key 1 "a" listed twice`},
		{"missing key", newRaw(3, 1, 0, 3).kv("a", "1").kv("b", "2").b, "input ends before the key 2 length"},
		{"huge value", newRaw(3, 1, 0, 1).u(1).raw('a').u(1 << 40).sealed(), "claims 1099511627776 bytes"},
		{"lying value length", newRaw(3, 1, 0, 1).u(1).raw('a').u(1<<29).raw(1, 2, 3).sealed(), "input ends before the value of key 0"},
		{"client 0", newRaw(10, 2, 1, 0).session(0, 3, 9, OpSet, 0, 8).sealed(), "client id 0"},
		{"seq 0", newRaw(10, 2, 1, 0).session(5, 0, 9, OpSet, 0, 8).sealed(), "last seq 0"},
		{"get session", newRaw(10, 2, 1, 0).session(5, 1, 9, OpGet, 0, 8).sealed(), "op 3 is not a write"},
		{"existed flag", newRaw(10, 2, 1, 0).session(5, 1, 9, OpSet, 2, 8).sealed(), "existed flag 2"},
		{"future use", newRaw(10, 2, 1, 0).session(5, 1, 11, OpSet, 0, 8).sealed(), "beyond the applied index 10"},
		{"result after use", newRaw(10, 2, 1, 0).session(5, 1, 8, OpSet, 0, 9).sealed(), "result index 9 outside [1, last used 8]"},
		{"duplicate session", newRaw(10, 2, 2, 0).session(5, 1, 8, OpSet, 0, 8).session(5, 2, 9, OpSet, 0, 9).sealed(), "client 5 listed twice"},
		{"varint overflow", append([]byte("GRKV\x01"), bytes.Repeat([]byte{0xff}, 10)...), "applied index overflows 64 bits"},
	}
	for _, c := range cases {
		s := New(Limits{}, 0)
		var l testLog
		mustApply(t, s, l.cmd(t, set("keep", "me")))
		before := s.Hash()
		err := s.Restore(bytes.NewReader(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Restore = %v, want an error containing %q", c.name, err, c.want)
			continue
		}
		if !errors.Is(err, ErrMalformedSnapshot) || !strings.HasPrefix(err.Error(), "kv: restore snapshot: ") {
			t.Errorf("%s: %v is not a wrapped ErrMalformedSnapshot", c.name, err)
		}
		if idx, _ := s.Applied(); idx != 1 || s.Hash() != before {
			t.Errorf("%s: a refused snapshot changed the store", c.name)
		}
	}
}

func TestRestoreRejectsEveryTruncation(t *testing.T) {
	src := New(Limits{}, 0)
	l := randomLog(t, 3, 200, 5)
	for _, e := range l.entries {
		src.Apply(e)
	}
	snap := snapshotBytes(t, src)
	for n := 0; n < len(snap); n++ {
		if err := New(Limits{}, 0).Restore(bytes.NewReader(snap[:n])); !errors.Is(err, ErrMalformedSnapshot) {
			t.Fatalf("snapshot cut to %d of %d bytes: Restore = %v", n, len(snap), err)
		}
	}
}

type erroringReader struct{ r io.Reader }

func (e *erroringReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset")
	}
	return n, err
}

func TestRestoreReportsReaderErrors(t *testing.T) {
	snap := snapshotBytes(t, New(Limits{}, 0))
	err := New(Limits{}, 0).Restore(&erroringReader{bytes.NewReader(snap[:3])})
	if err == nil || !strings.Contains(err.Error(), "connection reset") || errors.Is(err, ErrMalformedSnapshot) {
		t.Fatalf("Restore from a failing reader = %v, want the reader's error", err)
	}
}

// TestImageIsCutWhenTaken is the node's use: freeze on the apply loop, apply more, write
// the image later; it must hold the state at the moment it was taken.
func TestImageIsCutWhenTaken(t *testing.T) {
	l := randomLog(t, 11, 4000, 20)
	live := New(Limits{}, 8)
	for _, e := range l.entries[:2500] {
		live.Apply(e)
	}
	im := live.Image()
	dropped := live.Image() // never written: must not disturb anything
	_ = dropped
	for _, e := range l.entries[2500:] {
		live.Apply(e)
	}
	if idx, _ := im.Applied(); idx != 2500 {
		t.Fatalf("image Applied = %d, want 2500", idx)
	}
	var buf bytes.Buffer
	n, err := im.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d bytes", n, err, buf.Len())
	}
	if _, err := im.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "already written") {
		t.Fatalf("second WriteTo = %v, want a refusal", err)
	}

	restored := New(Limits{}, 8)
	if err := restored.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	ref := New(Limits{}, 8)
	for _, e := range l.entries[:2500] {
		ref.Apply(e)
	}
	storesEqual(t, ref, restored)
	if restored.Len() != im.Len() {
		t.Fatalf("image Len %d, restored %d", im.Len(), restored.Len())
	}
	full := New(Limits{}, 8)
	for _, e := range l.entries {
		full.Apply(e)
	}
	storesEqual(t, full, live)
}
