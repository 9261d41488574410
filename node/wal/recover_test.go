package wal

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/georaft/georaft/raft"
)

// writeTenEntries leaves a single-segment log with entries 1..10, one record each, and
// returns the segment path and the offset of the last record.
func writeTenEntries(t *testing.T, dir string) (string, int64) {
	t.Helper()
	w, _ := openWAL(t, Options{Dir: dir})
	for i := uint64(1); i <= 10; i++ {
		mustSave(t, w, nil, makeEntries(i, i, 1))
	}
	mustClose(t, w)
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want one segment, have %v", files)
	}
	offsets := recordOffsets(t, files[0])
	return files[0], int64(offsets[len(offsets)-1])
}

func TestTornTailIsTruncatedAndReported(t *testing.T) {
	cases := []struct {
		name string
		// damage breaks the segment whose last record starts at last; it returns the
		// entries that must survive.
		damage      func(t *testing.T, path string, last int64) []raft.Entry
		reasonMatch string
	}{
		{"length field cut short", func(t *testing.T, path string, last int64) []raft.Entry {
			truncate(t, path, last+2)
			return makeEntries(1, 9, 1)
		}, "record cut short"},
		{"payload cut short", func(t *testing.T, path string, last int64) []raft.Entry {
			truncate(t, path, fileSize(t, path)-3)
			return makeEntries(1, 9, 1)
		}, "record cut short"},
		{"bad crc on last record", func(t *testing.T, path string, last int64) []raft.Entry {
			flipByte(t, path, fileSize(t, path)-1)
			return makeEntries(1, 9, 1)
		}, "crc mismatch"},
		{"zero-filled tail", func(t *testing.T, path string, last int64) []raft.Entry {
			appendBytes(t, path, make([]byte, 8192))
			return makeEntries(1, 10, 1)
		}, "crc mismatch"},
		{"last record zeroed", func(t *testing.T, path string, last int64) []raft.Entry {
			size := fileSize(t, path)
			truncate(t, path, last)
			appendBytes(t, path, make([]byte, size-last+4096))
			return makeEntries(1, 9, 1)
		}, "crc mismatch"},
		{"garbage after the last record", func(t *testing.T, path string, last int64) []raft.Entry {
			appendBytes(t, path, []byte("\x07\x00\x00\x00garbage that is no record"))
			return makeEntries(1, 10, 1)
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, last := writeTenEntries(t, dir)
			want := tc.damage(t, path, last)
			damagedSize := fileSize(t, path)
			tornAt := int64(recordEnd(want, path, t))

			inspected, err := Inspect(dir, nil)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			if fileSize(t, path) != damagedSize {
				t.Fatal("Inspect changed the segment")
			}
			checkTorn(t, inspected.TornTail, path, tornAt, damagedSize-tornAt, tc.reasonMatch)
			assertEntries(t, inspected.Entries, want)

			w, rec := openWAL(t, Options{Dir: dir})
			checkTorn(t, rec.TornTail, path, tornAt, damagedSize-tornAt, tc.reasonMatch)
			assertEntries(t, rec.Entries, want)
			if got := fileSize(t, path); got != tornAt {
				t.Fatalf("segment is %d bytes after Open, want truncated to %d", got, tornAt)
			}
			// The log goes on cleanly after the truncation.
			next := want[len(want)-1].Index + 1
			mustSave(t, w, nil, makeEntries(next, next, 2))
			mustClose(t, w)
			w, rec = openWAL(t, Options{Dir: dir})
			defer w.Close()
			if rec.TornTail != nil {
				t.Fatalf("torn tail again after repair: %v", rec.TornTail)
			}
			assertEntries(t, rec.Entries, append(want, makeEntries(next, next, 2)...))
		})
	}
}

// recordEnd is the offset just past the record of the last wanted entry.
func recordEnd(want []raft.Entry, path string, t *testing.T) int {
	t.Helper()
	// Records are the header and then one per entry, in order.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 0; i <= len(want); i++ {
		_, n, err := decodeRecord(data[off:])
		if err != nil {
			t.Fatalf("record %d at %d: %v", i, off, err)
		}
		off += n
	}
	return off
}

func checkTorn(t *testing.T, torn *TornTail, path string, offset, bytes int64, reason string) {
	t.Helper()
	if torn == nil {
		t.Fatal("no torn tail reported")
	}
	if torn.File != path || torn.Offset != offset || torn.Bytes != bytes || !strings.Contains(torn.Reason, reason) {
		t.Fatalf("torn tail %v, want %s at offset %d, %d bytes, reason containing %q", torn, path, offset, bytes, reason)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
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

func TestCorruptionFollowedByValidRecordsIsRefused(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeTenEntries(t, dir)
	offsets := recordOffsets(t, path)
	bad := offsets[5] // entry 5, with entries 6..10 after it
	flipByte(t, path, int64(bad)+frameHeaderLen+2)
	size := fileSize(t, path)

	_, _, err := Open(Options{Dir: dir, Logger: quietLogger()})
	want := fmt.Sprintf("wal: corrupt record in %s at offset %d: crc mismatch", path, bad)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Open: %v\nwant an error starting %q", err, want)
	}
	if fileSize(t, path) != size {
		t.Fatal("Open truncated a segment it refused")
	}
	if _, err := Inspect(dir, nil); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Inspect: %v, want %q", err, want)
	}
}

func TestCorruptLengthFieldIsNotMistakenForTornTail(t *testing.T) {
	dir := t.TempDir()
	path, _ := writeTenEntries(t, dir)
	offsets := recordOffsets(t, path)
	bad := offsets[3]
	// A huge length makes the record look cut short by the end of the file; the valid
	// records after it show it is not the end of the log.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff, 0x00, 0x00}, int64(bad)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, _, err = Open(Options{Dir: dir, Logger: quietLogger()})
	want := fmt.Sprintf("wal: corrupt record in %s at offset %d: ", path, bad)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "valid records follow") {
		t.Fatalf("Open: %v\nwant %q... valid records follow", err, want)
	}
	// The refusal names the way out, and the way out works: only what follows the damage
	// goes, and the log opens again.
	var damaged *DamagedTailError
	if !errors.As(err, &damaged) || !strings.Contains(err.Error(), "georaftd wal drop-damaged-tail "+dir+" --yes") {
		t.Fatalf("Open: %v\nwant a DamagedTailError naming `georaftd wal drop-damaged-tail %s --yes`", err, dir)
	}
	torn, err := DropDamagedTail(dir, nil)
	if err != nil || torn == nil || torn.Offset != int64(bad) || fileSize(t, path) != int64(bad) {
		t.Fatalf("DropDamagedTail: %+v, %v; want the segment cut at %d (size now %d)", torn, err, bad, fileSize(t, path))
	}
	w, rec, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Open after dropping the damaged tail: %v", err)
	}
	defer w.Close()
	if got, want := rec.LastIndex(), uint64(2); got != want {
		t.Fatalf("after dropping the damaged tail the log ends at %d, want %d (the entries before the damage)", got, want)
	}
}

func TestCorruptionInNonLastSegmentIsRefused(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir, SegmentBytes: 300})
	for i := uint64(1); i <= 40; i++ {
		mustSave(t, w, nil, makeEntries(i, i, 1))
	}
	mustClose(t, w)
	files := segmentFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("want at least 3 segments, have %d", len(files))
	}
	cases := []struct {
		name   string
		damage func(path string) int64 // returns the offset of the damaged record
		reason string
	}{
		{"flipped byte in the last record", func(path string) int64 {
			offsets := recordOffsets(t, path)
			last := int64(offsets[len(offsets)-1])
			flipByte(t, path, last+frameHeaderLen+1)
			return last
		}, "crc mismatch"},
		{"cut short", func(path string) int64 {
			offsets := recordOffsets(t, path)
			last := int64(offsets[len(offsets)-1])
			truncate(t, path, fileSize(t, path)-2)
			return last
		}, "record cut short"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			copyDir := t.TempDir()
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(copyDir+"/"+baseName(f), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			middle := copyDir + "/" + baseName(files[1])
			bad := tc.damage(middle)
			_, _, err := Open(Options{Dir: copyDir, Logger: quietLogger()})
			want := fmt.Sprintf("wal: corrupt record in %s at offset %d: %s", middle, bad, tc.reason)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("Open: %v\nwant %q", err, want)
			}
		})
	}
}

func baseName(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

func TestHeaderDamageIsRefused(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	mustSave(t, w, nil, makeEntries(1, 3, 1))
	mustClose(t, w)
	path := segmentFiles(t, dir)[0]
	// The header is written whole before the segment gets its name, so damage to it is
	// never a torn write, even in the last segment.
	flipByte(t, path, int64(frameHeaderLen+len(segmentMagic)+1))
	_, _, err := Open(Options{Dir: dir, Logger: quietLogger()})
	want := fmt.Sprintf("wal: corrupt record in %s at offset 0: segment header: crc mismatch", path)
	if err == nil || err.Error() != want {
		t.Fatalf("Open: %v\nwant %q", err, want)
	}
}

func TestRenamedSegmentIsRefused(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir, SegmentBytes: 200})
	for i := uint64(1); i <= 20; i++ {
		mustSave(t, w, nil, makeEntries(i, i, 1))
	}
	mustClose(t, w)
	files := segmentFiles(t, dir)
	// Give the last segment the name of a different first index.
	wrong := dir + "/" + segmentName(uint64(len(files)), 999)
	if err := os.Rename(files[len(files)-1], wrong); err != nil {
		t.Fatal(err)
	}
	_, _, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "the file name says") {
		t.Fatalf("Open: %v, want a header/name mismatch", err)
	}
}

func TestReplaySemantics(t *testing.T) {
	var r logReplay
	for _, e := range makeEntries(1, 5, 1) {
		if err := r.applyEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.applyEntry(raft.Entry{Index: 7, Term: 1}); err == nil {
		t.Fatal("a gap after the last entry was accepted")
	}
	if err := r.applyMarker(raft.SnapshotMeta{Index: 3, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.applyEntry(raft.Entry{Index: 3, Term: 2}); err == nil {
		t.Fatal("an entry at the marker was accepted")
	}
	if err := r.applyMarker(raft.SnapshotMeta{Index: 2, Term: 1}); err == nil {
		t.Fatal("a marker going back was accepted")
	}
	assertEntries(t, r.entries, makeEntries(4, 5, 1))
}

// TestEveryCrashPointRecovers cuts the log at every byte, as a crash during a write may,
// and with the cut-off rest zero-filled, as a crash after the file grew but before its
// data reached the disk may. Recovery must always succeed with exactly the complete
// records before the cut.
func TestEveryCrashPointRecovers(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	const saves = 12
	for i := uint64(1); i <= saves; i++ {
		mustSave(t, w, &raft.HardState{Term: 1, Commit: i - 1}, makeEntries(i, i, 1))
	}
	mustClose(t, w)
	path := segmentFiles(t, dir)[0]
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	offsets := recordOffsets(t, path)
	headerEnd := offsets[1]

	crashDir := t.TempDir()
	crashPath := crashDir + "/" + baseName(path)
	for cut := headerEnd; cut <= len(full); cut++ {
		for _, zeroFill := range []bool{false, true} {
			data := append([]byte(nil), full[:cut]...)
			if zeroFill {
				data = append(data, make([]byte, len(full)-cut)...)
			}
			if err := os.WriteFile(crashPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			rec, err := Inspect(crashDir, nil)
			if err != nil {
				t.Fatalf("cut at %d (zero-filled %v): %v", cut, zeroFill, err)
			}
			// Records alternate entry, hard state: count the complete ones before the cut.
			complete := 0
			for _, off := range offsets[1:] {
				if off < cut {
					complete++
				}
			}
			if cut < len(full) && !slices.Contains(offsets, cut) {
				complete-- // the record cut through
			}
			wantEntries := uint64((complete + 1) / 2)
			assertEntries(t, rec.Entries, makeEntries(1, wantEntries, 1))
			atBoundary := cut == len(full) || slices.Contains(offsets, cut)
			if (rec.TornTail == nil) != (atBoundary && (!zeroFill || cut == len(full))) {
				t.Fatalf("cut at %d (zero-filled %v): torn tail %v", cut, zeroFill, rec.TornTail)
			}
			if complete > 0 && complete%2 == 0 && rec.HardState.Commit != wantEntries-1 {
				t.Fatalf("cut at %d: hard state %+v after %d complete records", cut, rec.HardState, complete)
			}
		}
	}
}
