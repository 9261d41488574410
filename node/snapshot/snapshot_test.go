package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/georaft/georaft/node/wal"
	"github.com/georaft/georaft/raft"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(filepath.Join(t.TempDir(), "snap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBody(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func saveBody(t *testing.T, s *Store, meta raft.SnapshotMeta, body []byte) {
	t.Helper()
	// Write in uneven pieces, as a serializer does.
	err := s.Save(meta, func(w io.Writer) error {
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 1+len(rest)/3)
			if _, err := w.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Save %+v: %v", meta, err)
	}
}

func readBody(t *testing.T, s *Store, meta raft.SnapshotMeta) ([]byte, error) {
	t.Helper()
	r, size, err := s.Open(meta)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if int64(len(body)) != size {
		t.Fatalf("Open said %d bytes, read %d", size, len(body))
	}
	return body, nil
}

func TestSaveOpenRoundTrip(t *testing.T) {
	s := newStore(t)
	for _, n := range []int{0, 1, 1000, 3<<20 + 17} {
		meta := raft.SnapshotMeta{Index: uint64(100 + n), Term: 3}
		body := randomBody(n, uint64(n))
		saveBody(t, s, meta, body)
		got, err := readBody(t, s, meta)
		if err != nil {
			t.Fatalf("%d-byte body: %v", n, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("%d-byte body does not round trip", n)
		}
		info, err := os.Stat(s.Path(meta))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() != int64(headerLen+n+trailerLen) {
			t.Fatalf("file is %d bytes for a %d-byte body", info.Size(), n)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(s.Dir(), "*"+tmpExt))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestCorruptionIsDetectedAndNamesTheFile(t *testing.T) {
	meta := raft.SnapshotMeta{Index: 42, Term: 2}
	body := randomBody(5000, 7)
	cases := []struct {
		name   string
		damage func(path string)
		want   string
	}{
		{"flipped body byte", func(path string) { flip(t, path, headerLen+2500) }, "crc mismatch"},
		{"flipped trailer byte", func(path string) { flip(t, path, int64(headerLen+len(body)+1)) }, "crc mismatch"},
		{"flipped term in header", func(path string) { flip(t, path, 21) }, "header holds index 42 term"},
		{"truncated body", func(path string) { truncate(t, path, headerLen+100) }, "truncated"},
		{"trailer missing", func(path string) { truncate(t, path, int64(headerLen+len(body))) }, "truncated"},
		{"shorter than a header", func(path string) { truncate(t, path, 10) }, "truncated"},
		{"bad magic", func(path string) { flip(t, path, 0) }, "not a georaft snapshot"},
		{"bytes after the trailer", func(path string) { appendTo(t, path, []byte{0}) }, "padded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			saveBody(t, s, meta, body)
			tc.damage(s.Path(meta))
			_, err := readBody(t, s, meta)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), s.Path(meta)) {
				t.Fatalf("Open of a damaged snapshot: %v, want an error naming %s and containing %q", err, s.Path(meta), tc.want)
			}
		})
	}
}

func TestOpenMissingSnapshot(t *testing.T) {
	s := newStore(t)
	if _, _, err := s.Open(raft.SnapshotMeta{Index: 1, Term: 1}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a missing snapshot: %v", err)
	}
}

func TestLatestPicksNewest(t *testing.T) {
	s := newStore(t)
	if _, ok, err := s.Latest(); ok || err != nil {
		t.Fatalf("Latest on an empty store: ok=%v err=%v", ok, err)
	}
	// Saved out of order; index 0x100 sorts after 0xff only with fixed-width names.
	for _, meta := range []raft.SnapshotMeta{{Index: 0x100, Term: 2}, {Index: 0xff, Term: 5}, {Index: 0x100, Term: 3}, {Index: 7, Term: 1}} {
		saveBody(t, s, meta, []byte(fmt.Sprint(meta)))
	}
	// A stray file and an unfinished one are not snapshots.
	os.WriteFile(filepath.Join(s.Dir(), "notes.txt"), []byte("x"), 0o644)
	os.WriteFile(s.Path(raft.SnapshotMeta{Index: 0x999, Term: 9})+".5"+tmpExt, []byte("x"), 0o644)
	meta, ok, err := s.Latest()
	if err != nil || !ok || !meta.SameAs(raft.SnapshotMeta{Index: 0x100, Term: 3}) {
		t.Fatalf("Latest = %+v, %v, %v; want index 256 term 3", meta, ok, err)
	}
}

func TestLatestDoesNotHideCorruption(t *testing.T) {
	s := newStore(t)
	saveBody(t, s, raft.SnapshotMeta{Index: 10, Term: 1}, []byte("older"))
	newest := raft.SnapshotMeta{Index: 20, Term: 1}
	saveBody(t, s, newest, []byte("newer"))
	flip(t, s.Path(newest), headerLen+1)
	meta, _, _ := s.Latest()
	if !meta.SameAs(newest) {
		t.Fatalf("Latest = %+v, want the newest %+v even though it is damaged", meta, newest)
	}
	if _, _, err := s.Open(meta); err == nil || !strings.Contains(err.Error(), "crc mismatch") {
		t.Fatalf("Open of the damaged newest: %v", err)
	}
}

func TestReceiveCommit(t *testing.T) {
	s := newStore(t)
	meta := raft.SnapshotMeta{Index: 500, Term: 4}
	body := randomBody(1<<20+3, 11)
	in, err := s.Receive(meta, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 64<<10)
		if _, err := in.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if _, ok, _ := s.Latest(); ok {
		t.Fatal("a snapshot being received is visible before Commit")
	}
	if err := in.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := readBody(t, s, meta)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("received snapshot: err %v, equal %v", err, bytes.Equal(got, body))
	}
	if err := in.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if _, err := os.Stat(s.Path(meta)); err != nil {
		t.Fatalf("Abort after Commit removed the snapshot: %v", err)
	}
}

func TestReceiveRefusesWrongLength(t *testing.T) {
	s := newStore(t)
	meta := raft.SnapshotMeta{Index: 9, Term: 1}
	in, err := s.Receive(meta, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Write(make([]byte, 11)); err == nil || !strings.Contains(err.Error(), "exceed the announced 10") {
		t.Fatalf("Write past the size: %v", err)
	}
	if _, err := in.Write(make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if err := in.Commit(); err == nil || !strings.Contains(err.Error(), "got 4 of 10 bytes") {
		t.Fatalf("Commit of a short snapshot: %v", err)
	}
	assertNoFiles(t, s)
}

func TestReceiveAbort(t *testing.T) {
	s := newStore(t)
	in, err := s.Receive(raft.SnapshotMeta{Index: 9, Term: 1}, 100)
	if err != nil {
		t.Fatal(err)
	}
	in.Write(make([]byte, 50))
	if err := in.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := in.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if err := in.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	assertNoFiles(t, s)
}

func assertNoFiles(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("files left in %s: %v", s.Dir(), entries)
	}
}

func TestSaveFailureLeavesNothing(t *testing.T) {
	fsys := wal.NewFaultFS(nil)
	s, err := NewStore(filepath.Join(t.TempDir(), "snap"), fsys)
	if err != nil {
		t.Fatal(err)
	}
	meta := raft.SnapshotMeta{Index: 3, Term: 1}
	boom := errors.New("serializer failed")
	if err := s.Save(meta, func(w io.Writer) error { w.Write([]byte("partial")); return boom }); !errors.Is(err, boom) {
		t.Fatalf("Save with a failing writer: %v", err)
	}
	assertNoFiles(t, s)

	fsys.FailSyncAfter(0, syscall.EIO)
	err = s.Save(meta, func(w io.Writer) error { _, err := w.Write([]byte("body")); return err })
	if err == nil || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "fsync") {
		t.Fatalf("Save with a failing fsync: %v", err)
	}
	assertNoFiles(t, s)

	fsys.Heal()
	fsys.FailWritesAfter(headerLen + 10)
	err = s.Save(meta, func(w io.Writer) error { _, err := w.Write(make([]byte, 1<<20)); return err })
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Save on a full disk: %v", err)
	}
	assertNoFiles(t, s)
}

func TestNewStoreRemovesUnfinishedFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snap")
	s, err := NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := raft.SnapshotMeta{Index: 1, Term: 1}
	saveBody(t, s, kept, []byte("kept"))
	in, err := s.Receive(raft.SnapshotMeta{Index: 2, Term: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("abc")) // the process stops here
	if _, err := NewStore(dir, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != filepath.Base(s.Path(kept)) {
		t.Fatalf("after restart the directory holds %v, want only %s", entries, s.Path(kept))
	}
}

func TestPrune(t *testing.T) {
	s := newStore(t)
	var metas []raft.SnapshotMeta
	for i := uint64(1); i <= 5; i++ {
		meta := raft.SnapshotMeta{Index: i * 1000, Term: i}
		metas = append(metas, meta)
		saveBody(t, s, meta, []byte("body"))
	}
	if err := s.Prune(0); err == nil {
		t.Fatal("Prune(0) succeeded: it would delete the snapshot the WAL depends on")
	}
	if err := s.Prune(2); err != nil {
		t.Fatal(err)
	}
	left, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || !left[0].SameAs(metas[3]) || !left[1].SameAs(metas[4]) {
		t.Fatalf("after Prune(2): %+v, want %+v", left, metas[3:])
	}
	if err := s.Prune(5); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.List(); len(left) != 2 {
		t.Fatalf("Prune(5) with 2 snapshots changed them: %+v", left)
	}
}

func FuzzDecodeSnapshotHeader(f *testing.F) {
	f.Add(encodeHeader(fileHeader{Version: formatVersion, Meta: raft.SnapshotMeta{Index: 100, Term: 2}, BodyLen: 12345}))
	f.Add(encodeHeader(fileHeader{Version: 2}))
	f.Add([]byte("grftsnap"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHeader(data)
		if err != nil {
			return
		}
		if got := encodeHeader(h); !bytes.Equal(got, data[:headerLen]) {
			t.Fatalf("header %+v re-encodes to %x, want %x", h, got, data[:headerLen])
		}
	})
}

func flip(t *testing.T, path string, offset int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendTo(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}
