package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/georaft/georaft/raft"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w, rec := openWAL(t, Options{Dir: dir})
	if !rec.HardState.IsEmpty() || len(rec.Entries) != 0 || !rec.Snapshot.SameAs(raft.SnapshotMeta{}) || rec.TornTail != nil {
		t.Fatalf("fresh WAL recovered %+v, want nothing", rec)
	}
	entries := makeEntries(1, 20, 1)
	entries[3].Type = raft.EntryNoop
	entries[3].Data = nil
	entries[7].Data = make([]byte, 70000) // several varint bytes of length, larger than a page
	hs := raft.HardState{Term: 1, Vote: 3, Commit: 12}
	mustSave(t, w, &hs, entries)
	mustClose(t, w)

	w, rec = openWAL(t, Options{Dir: dir})
	defer w.Close()
	if rec.HardState != hs {
		t.Fatalf("hard state %+v, want %+v", rec.HardState, hs)
	}
	assertEntries(t, rec.Entries, entries)
	if rec.TornTail != nil {
		t.Fatalf("unexpected torn tail %v", rec.TornTail)
	}
}

func TestRestartRecoversHardStateEntriesAndMarker(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	mustSave(t, w, &raft.HardState{Term: 1, Vote: 1}, makeEntries(1, 10, 1))
	mustSave(t, w, &raft.HardState{Term: 2, Vote: 2, Commit: 8}, nil)
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 6, Term: 1}); err != nil {
		t.Fatal(err)
	}
	mustSave(t, w, nil, makeEntries(11, 12, 2))
	mustClose(t, w)

	w, rec := openWAL(t, Options{Dir: dir})
	if want := (raft.HardState{Term: 2, Vote: 2, Commit: 8}); rec.HardState != want {
		t.Fatalf("hard state %+v, want %+v", rec.HardState, want)
	}
	if want := (raft.SnapshotMeta{Index: 6, Term: 1}); !rec.Snapshot.SameAs(want) {
		t.Fatalf("marker %+v, want %+v", rec.Snapshot, want)
	}
	assertEntries(t, rec.Entries, append(makeEntries(7, 10, 1), makeEntries(11, 12, 2)...))

	// The reopened log appends where it left off, and the next restart sees both.
	mustSave(t, w, &raft.HardState{Term: 2, Vote: 2, Commit: 13}, makeEntries(13, 13, 2))
	mustClose(t, w)
	w, rec = openWAL(t, Options{Dir: dir})
	defer w.Close()
	assertEntries(t, rec.Entries, append(makeEntries(7, 10, 1), makeEntries(11, 13, 2)...))
	if rec.HardState.Commit != 13 {
		t.Fatalf("commit %d, want 13", rec.HardState.Commit)
	}
}

func TestMarkerPastLastIndexEmptiesLog(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	mustSave(t, w, nil, makeEntries(1, 5, 1))
	// A follower installs a snapshot from the leader that is ahead of its log.
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 50, Term: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Save(nil, makeEntries(6, 6, 3)); err == nil {
		t.Fatal("Save at index 6 after a marker at 50 succeeded, want an error")
	}
	mustSave(t, w, nil, makeEntries(51, 52, 3))
	mustClose(t, w)
	w, rec := openWAL(t, Options{Dir: dir})
	defer w.Close()
	assertEntries(t, rec.Entries, makeEntries(51, 52, 3))
	if rec.Snapshot.Index != 50 {
		t.Fatalf("marker %+v, want index 50", rec.Snapshot)
	}
}

func TestSuffixReplacementAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	mustSave(t, w, nil, makeEntries(1, 10, 1))
	mustSave(t, w, nil, makeEntries(6, 8, 2)) // a new leader overwrote 6..10
	mustClose(t, w)

	w, rec := openWAL(t, Options{Dir: dir})
	want := append(makeEntries(1, 5, 1), makeEntries(6, 8, 2)...)
	assertEntries(t, rec.Entries, want)

	// Replace again after the restart, reaching back before what the previous
	// replacement wrote.
	mustSave(t, w, nil, makeEntries(3, 4, 3))
	mustClose(t, w)
	w, rec = openWAL(t, Options{Dir: dir})
	defer w.Close()
	assertEntries(t, rec.Entries, append(makeEntries(1, 2, 1), makeEntries(3, 4, 3)...))
}

func TestSaveRefusesBadInputWithoutPoisoning(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	defer w.Close()
	mustSave(t, w, nil, makeEntries(1, 5, 1))
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 3, Term: 1}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		entries []raft.Entry
		want    string
	}{
		{"gap after last", makeEntries(7, 8, 1), "gap after the last index 5"},
		{"at marker", makeEntries(3, 4, 1), "at or below the snapshot marker 3"},
		{"not contiguous", []raft.Entry{{Index: 6, Term: 1}, {Index: 8, Term: 1}}, "index 8 follows 6"},
	}
	for _, tc := range cases {
		err := w.Save(nil, tc.entries)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Save error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 2, Term: 1}); err == nil {
		t.Error("SaveSnapshot below the current marker succeeded")
	}
	// Refused input changed nothing: the log still takes the next entry.
	mustSave(t, w, nil, makeEntries(6, 6, 1))
}

func TestSegmentRolloverAndCompaction(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 600}
	w, _ := openWAL(t, opts)
	// The only hard state record is written first, so it is in a segment compaction
	// removes: recovery must still find it in the headers of later segments.
	hs := raft.HardState{Term: 4, Vote: 2, Commit: 150}
	mustSave(t, w, &hs, nil)
	for i := uint64(1); i <= 200; i++ {
		mustSave(t, w, nil, makeEntries(i, i, 4))
	}
	segs := w.Segments()
	if len(segs) < 5 {
		t.Fatalf("%d segments after 200 entries with 600-byte segments, want rollover to many", len(segs))
	}
	files := segmentFiles(t, dir)
	for i, seg := range segs {
		if seg.Seq != uint64(i+1) || files[i] != seg.File {
			t.Fatalf("segment %d is %+v (file %s), want sequence %d in name order", i, seg, files[i], i+1)
		}
		if i > 0 && seg.FirstIndex != segs[i-1].LastIndex+1 {
			t.Fatalf("segment %s starts at %d, previous ends at %d", seg.File, seg.FirstIndex, segs[i-1].LastIndex)
		}
		if i < len(segs)-1 && seg.Bytes > 600+200 {
			t.Fatalf("segment %s has %d bytes, want rolled near 600", seg.File, seg.Bytes)
		}
		if n := len(recordOffsets(t, seg.File)); n != seg.Records || fileSize(t, seg.File) != seg.Bytes {
			t.Fatalf("segment %+v: file has %d records, %d bytes", seg, n, fileSize(t, seg.File))
		}
	}

	if err := w.Compact(150); err == nil || !strings.Contains(err.Error(), "past the snapshot marker") {
		t.Fatalf("Compact past the marker: %v, want refusal", err)
	}
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 150, Term: 4}); err != nil {
		t.Fatal(err)
	}
	if err := w.Compact(150); err != nil {
		t.Fatal(err)
	}
	after := w.Segments()
	if len(after) >= len(segs) {
		t.Fatalf("compaction kept %d of %d segments", len(after), len(segs))
	}
	if after[0].FirstIndex > 151 {
		t.Fatalf("first kept segment %s starts at %d: entries 151.. were compacted", after[0].File, after[0].FirstIndex)
	}
	for _, seg := range segs {
		_, err := os.Stat(seg.File)
		kept := seg.Seq >= after[0].Seq
		if kept != (err == nil) {
			t.Fatalf("segment %s: kept=%v, stat error %v", seg.File, kept, err)
		}
		if !kept && seg.LastIndex > 150 {
			t.Fatalf("compaction removed %s holding entries up to %d", seg.File, seg.LastIndex)
		}
	}
	mustClose(t, w)

	w, rec := openWAL(t, opts)
	defer w.Close()
	if rec.HardState != hs {
		t.Fatalf("hard state after compaction %+v, want %+v", rec.HardState, hs)
	}
	if !rec.Snapshot.SameAs(raft.SnapshotMeta{Index: 150, Term: 4}) {
		t.Fatalf("marker %+v", rec.Snapshot)
	}
	assertEntries(t, rec.Entries, makeEntries(151, 200, 4))
	mustSave(t, w, nil, makeEntries(201, 201, 4))
}

func TestCompactionKeepsReplacedEntriesRecoverable(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, SegmentBytes: 400}
	w, _ := openWAL(t, opts)
	for i := uint64(1); i <= 60; i++ {
		mustSave(t, w, nil, makeEntries(i, i, 1))
	}
	// A new term overwrites from 40 on, in a later segment than the originals.
	mustSave(t, w, nil, makeEntries(40, 70, 2))
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 45, Term: 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Compact(45); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	w, rec := openWAL(t, opts)
	defer w.Close()
	assertEntries(t, rec.Entries, makeEntries(46, 70, 2))
}

func TestSegmentGapIsRefused(t *testing.T) {
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
	if err := os.Remove(files[1]); err != nil {
		t.Fatal(err)
	}
	_, _, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "segment gap") || !strings.Contains(err.Error(), files[2]) {
		t.Fatalf("Open with %s missing: %v, want a segment gap error naming %s", files[1], err, files[2])
	}
	if _, err := Inspect(dir, nil); err == nil {
		t.Fatal("Inspect accepted a segment gap")
	}
}

func TestForeignSegmentIsRefused(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	mustSave(t, w, nil, makeEntries(1, 3, 1))
	mustClose(t, w)
	foreign := filepath.Join(dir, segmentName(2, 4))
	if err := os.WriteFile(foreign, []byte("this is not a wal segment, just some text file"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "not a georaft wal segment") || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("Open with a foreign segment: %v", err)
	}
	if fileSize(t, foreign) == 0 {
		t.Fatal("Open truncated the foreign file")
	}
}

func TestUnexpectedSegmentNameIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1-1.wal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := Open(Options{Dir: dir, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "not a segment name") {
		t.Fatalf("Open: %v, want an error about the segment name", err)
	}
}

func TestUnfinishedSegmentIsRemoved(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	mustSave(t, w, nil, makeEntries(1, 3, 1))
	mustClose(t, w)
	tmp := filepath.Join(dir, segmentName(2, 4)+tmpExt)
	if err := os.WriteFile(tmp, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("Inspect removed %s: %v", tmp, err)
	}
	w, rec := openWAL(t, Options{Dir: dir})
	defer w.Close()
	assertEntries(t, rec.Entries, makeEntries(1, 3, 1))
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open left %s: %v", tmp, err)
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir})
	// Submitted but never waited for: Close must still write it.
	if _, err := w.Submit(&raft.HardState{Term: 1}, makeEntries(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	if err := w.Save(nil, makeEntries(3, 3, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: %v, want ErrClosed", err)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	rec, err := Inspect(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertEntries(t, rec.Entries, makeEntries(1, 2, 1))
	if rec.HardState.Term != 1 {
		t.Fatalf("hard state %+v", rec.HardState)
	}
}

// The membership a snapshot marker carries, and the lease bound, survive a restart, also once
// the marker is only restated by the header of a later segment.
func TestMarkerMembershipAndLeaseBoundSurvive(t *testing.T) {
	dir := t.TempDir()
	w, _ := openWAL(t, Options{Dir: dir, SegmentBytes: 300})
	conf := raft.ConfState{Voters: []uint64{1, 2, 4}, Learners: []uint64{5}, ReadLeaseHolders: []uint64{4}}
	hs := raft.HardState{Term: 2, Vote: 1, Commit: 3, LeaseBound: 400 * time.Millisecond}
	mustSave(t, w, &hs, makeEntries(1, 5, 2))
	if err := w.SaveSnapshot(raft.SnapshotMeta{Index: 3, Term: 2, ConfState: conf}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(6); i <= 40; i++ { // enough to roll segments past the marker record
		mustSave(t, w, nil, makeEntries(i, i, 2))
	}
	if err := w.Compact(3); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	w, rec := openWAL(t, Options{Dir: dir})
	defer mustClose(t, w)
	if !rec.Snapshot.ConfState.Equal(conf) || rec.HardState.LeaseBound != hs.LeaseBound {
		t.Fatalf("recovered marker %+v and hard state %+v; want membership %v and lease bound %v",
			rec.Snapshot, rec.HardState, conf, hs.LeaseBound)
	}
}
