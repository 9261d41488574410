package wal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/georaft/georaft/raft"
)

// Recovered is what the log holds.
type Recovered struct {
	HardState raft.HardState
	// Snapshot is the latest snapshot marker: the log starts after it.
	Snapshot raft.SnapshotMeta
	// Entries follow Snapshot.Index contiguously, with every suffix replacement applied.
	Entries []raft.Entry
	// TornTail is set when the last segment ended in a damaged record with nothing valid
	// after it: Open truncated it away, Inspect only reports it.
	TornTail *TornTail
	// Segments lists the segment files in log order, as they are after recovery.
	Segments []SegmentInfo
}

// LastIndex is the index of the last entry, or the snapshot's index if no entry follows it.
func (r *Recovered) LastIndex() uint64 {
	if n := len(r.Entries); n > 0 {
		return r.Entries[n-1].Index
	}
	return r.Snapshot.Index
}

// TornTail is the damaged end of the last segment that recovery dropped.
type TornTail struct {
	File   string
	Offset int64
	Bytes  int64
	Reason string
}

func (t *TornTail) String() string {
	return fmt.Sprintf("%s at offset %d: %d bytes (%s)", t.File, t.Offset, t.Bytes, t.Reason)
}

// Inspect recovers the log in dir without changing any file: a torn tail is reported, not
// truncated, and leftover temporary files stay. It is what `georaftd inspect` reads.
func Inspect(dir string, fsys FS) (*Recovered, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	return recoverLog(dir, fsys, nil, false)
}

// scanCRCBudget bounds the bytes checksummed while looking for valid records after a
// damaged one, so a large stretch of garbage cannot stall start-up; past it recovery
// assumes the worst (something valid may follow) and refuses to truncate.
const scanCRCBudget = 256 << 20

// corruptError formats the error that refuses start-up.
func corruptError(file string, offset int, reason string) error {
	return fmt.Errorf("wal: corrupt record in %s at offset %d: %s", file, offset, reason)
}

// DamagedTailError refuses a last segment that is damaged at Offset with valid records after
// the damage (or too much unreadable data to tell), which recovery does not truncate on its
// own: a torn multi-page write looks like that, but so does a failing disk. Its message tells
// the operator the two ways out.
type DamagedTailError struct {
	Dir, File     string
	Offset, Bytes int64 // where the damage starts, and how much of the segment is from there on
	Reason        string
}

func (e *DamagedTailError) Error() string {
	return fmt.Sprintf("wal: corrupt record in %s at offset %d: %s. "+
		"If this node was killed or lost power while writing (the usual cause: a write of several pages landed in part), "+
		"nothing from that write was acknowledged, since acknowledgements wait for the fsync it never finished: "+
		"run `georaftd wal drop-damaged-tail %s --yes` to drop the damaged record and everything after it in that segment, "+
		"then start the node, which catches up from the leader. If the disk itself may be failing, do not start this "+
		"node from this directory: replace the node (docs/failure.md, \"A damaged write-ahead log\")",
		e.File, e.Offset, e.Reason, e.Dir)
}

// logReplay holds the state rebuilt while replaying records in order.
type logReplay struct {
	hardState raft.HardState
	marker    raft.SnapshotMeta
	entries   []raft.Entry
}

func (r *logReplay) lastIndex() uint64 {
	if n := len(r.entries); n > 0 {
		return r.entries[n-1].Index
	}
	return r.marker.Index
}

func (r *logReplay) applyEntry(e raft.Entry) error {
	if e.Index <= r.marker.Index {
		return fmt.Errorf("entry index %d is at or below the snapshot marker %d", e.Index, r.marker.Index)
	}
	if len(r.entries) == 0 {
		// A first entry past marker+1 is allowed here: the segments holding the entries in
		// between may have been compacted away, in which case a later marker covers them.
		// The check after replay catches a gap that stays.
		r.entries = append(r.entries, e)
		return nil
	}
	first, last := r.entries[0].Index, r.entries[len(r.entries)-1].Index
	switch {
	case e.Index > last+1:
		return fmt.Errorf("entry index %d leaves a gap after index %d", e.Index, last)
	case e.Index < first:
		r.entries = append(r.entries[:0], e)
	default:
		r.entries = append(r.entries[:e.Index-first], e)
	}
	return nil
}

func (r *logReplay) applyMarker(m raft.SnapshotMeta) error {
	if m.Index < r.marker.Index {
		return fmt.Errorf("snapshot marker %d goes back from marker %d", m.Index, r.marker.Index)
	}
	r.marker = m
	r.entries = entriesAfter(r.entries, m.Index)
	return nil
}

// entriesAfter keeps the entries above index, copied so the dropped ones can be freed.
func entriesAfter(entries []raft.Entry, index uint64) []raft.Entry {
	if len(entries) == 0 || entries[0].Index > index {
		return entries
	}
	keep := int64(entries[len(entries)-1].Index) - int64(index)
	if keep <= 0 {
		return nil
	}
	return slices.Clone(entries[len(entries)-int(keep):])
}

// recoverLog replays every segment in dir. With repair it also removes leftover temporary
// files and truncates a torn tail, so the log can be appended to.
func recoverLog(dir string, fsys FS, logger *slog.Logger, repair bool) (*Recovered, error) {
	return replayLog(dir, fsys, logger, repair, false)
}

// DropDamagedTail truncates the last segment in dir at its first damaged record, even with
// valid records after it, and returns what it dropped. It is the operator's way out of a
// DamagedTailError after a torn write; damage in any other segment is still refused.
func DropDamagedTail(dir string, fsys FS) (*TornTail, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	rec, err := replayLog(dir, fsys, nil, true, true)
	if err != nil {
		return nil, err
	}
	return rec.TornTail, nil
}

func replayLog(dir string, fsys FS, logger *slog.Logger, repair, dropDamagedTail bool) (*Recovered, error) {
	segments, err := listSegments(dir, fsys, logger, repair)
	if err != nil {
		return nil, err
	}
	out := &Recovered{}
	var state logReplay
	for i := range segments {
		seg := &segments[i]
		torn, err := replaySegment(seg, i == 0, i == len(segments)-1, &state, fsys)
		var damaged *DamagedTailError
		if errors.As(err, &damaged) {
			damaged.Dir = dir
			if dropDamagedTail {
				torn, err = &TornTail{File: damaged.File, Offset: damaged.Offset, Bytes: damaged.Bytes, Reason: damaged.Reason}, nil
				seg.Bytes = damaged.Offset
			}
		}
		if err != nil {
			return nil, err
		}
		if torn != nil {
			out.TornTail = torn
			if repair {
				if err := truncateSegment(fsys, seg.File, torn.Offset); err != nil {
					return nil, err
				}
				if logger != nil {
					logger.Warn("wal: truncated torn tail", "file", torn.File, "offset", torn.Offset,
						"bytes", torn.Bytes, "reason", torn.Reason)
				}
			}
		}
	}
	if len(state.entries) > 0 && state.entries[0].Index != state.marker.Index+1 {
		return nil, fmt.Errorf("wal: entries %d to %d are missing: the snapshot marker is at %d and the first entry left in %s is %d",
			state.marker.Index+1, state.entries[0].Index-1, state.marker.Index, dir, state.entries[0].Index)
	}
	out.HardState, out.Snapshot, out.Entries, out.Segments = state.hardState, state.marker, state.entries, segments
	return out, nil
}

// listSegments returns the segments in dir in sequence order and refuses a gap.
func listSegments(dir string, fsys FS, logger *slog.Logger, repair bool) ([]SegmentInfo, error) {
	dirEntries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: read directory %s: %w", dir, err)
	}
	var segments []SegmentInfo
	removedTmp := false
	for _, de := range dirEntries {
		name := de.Name()
		path := joinDir(dir, name)
		switch {
		case strings.HasSuffix(name, segmentExt+tmpExt):
			// A segment that was being created when the process stopped: it was never
			// renamed into the log, so nothing in it was acknowledged.
			if repair {
				if err := fsys.Remove(path); err != nil {
					return nil, fmt.Errorf("wal: remove unfinished segment %s: %w", path, err)
				}
				removedTmp = true
				if logger != nil {
					logger.Info("wal: removed unfinished segment", "file", path)
				}
			}
		case strings.HasSuffix(name, segmentExt):
			seq, first, ok := parseSegmentName(name)
			if !ok {
				return nil, fmt.Errorf("wal: unexpected file %s: not a segment name (want SEQ-FIRST.wal in 16 hex digits each)", path)
			}
			segments = append(segments, SegmentInfo{File: path, Seq: seq, FirstIndex: first})
		}
	}
	if removedTmp {
		if err := SyncDir(fsys, dir); err != nil {
			return nil, fmt.Errorf("wal: %w", err)
		}
	}
	slices.SortFunc(segments, func(a, b SegmentInfo) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for i := 1; i < len(segments); i++ {
		prev, cur := segments[i-1], segments[i]
		if cur.Seq != prev.Seq+1 {
			if cur.Seq == prev.Seq {
				return nil, fmt.Errorf("wal: two segments with sequence %d: %s and %s", cur.Seq, prev.File, cur.File)
			}
			return nil, fmt.Errorf("wal: segment gap: %s follows %s, segments %d to %d are missing",
				cur.File, prev.File, prev.Seq+1, cur.Seq-1)
		}
	}
	return segments, nil
}

// replaySegment applies seg's records to state. It returns the torn tail of the last
// segment, if any, and fills in seg's size, record count and last index.
func replaySegment(seg *SegmentInfo, first, last bool, state *logReplay, fsys FS) (*TornTail, error) {
	data, err := readWholeFile(fsys, seg.File)
	if err != nil {
		return nil, fmt.Errorf("wal: read segment %s: %w", seg.File, err)
	}
	return replaySegmentData(seg, data, first, last, state)
}

func replaySegmentData(seg *SegmentInfo, data []byte, first, last bool, state *logReplay) (*TornTail, error) {
	if err := checkSegmentHeader(seg, data, first, state); err != nil {
		return nil, err
	}
	_, off, _ := decodeRecord(data)
	seg.Records = 1
	for off < len(data) {
		rec, n, err := decodeRecord(data[off:])
		if err != nil {
			if !last {
				return nil, corruptError(seg.File, off, err.Error())
			}
			found, exhausted := validRecordAfter(data, off)
			switch {
			case found:
				return nil, &DamagedTailError{File: seg.File, Offset: int64(off), Bytes: int64(len(data) - off),
					Reason: err.Error() + "; valid records follow it"}
			case exhausted:
				return nil, &DamagedTailError{File: seg.File, Offset: int64(off), Bytes: int64(len(data) - off),
					Reason: err.Error() + "; too much unreadable data after it to tell a torn write from corruption"}
			}
			seg.Bytes = int64(off)
			return &TornTail{File: seg.File, Offset: int64(off), Bytes: int64(len(data) - off), Reason: err.Error()}, nil
		}
		if err := applyRecord(rec, state, seg); err != nil {
			return nil, corruptError(seg.File, off, err.Error())
		}
		seg.Records++
		off += n
	}
	seg.Bytes = int64(len(data))
	return nil, nil
}

func checkSegmentHeader(seg *SegmentInfo, data []byte, first bool, state *logReplay) error {
	magicAt := frameHeaderLen
	if len(data) >= magicAt+len(segmentMagic) && !bytes.Equal(data[magicAt:magicAt+len(segmentMagic)], segmentMagic[:]) {
		return fmt.Errorf("wal: %s: %w", seg.File, errNotSegment)
	}
	rec, _, err := decodeRecord(data)
	if err != nil {
		if len(data) == 0 {
			return corruptError(seg.File, 0, "segment is empty")
		}
		return corruptError(seg.File, 0, "segment header: "+err.Error())
	}
	if rec.typ != recSegmentHeader {
		return corruptError(seg.File, 0, fmt.Sprintf("first record is a %s, want a segment header", rec.typ))
	}
	h, err := decodeHeader(rec.payload)
	if err != nil {
		if errors.Is(err, errNotSegment) {
			return fmt.Errorf("wal: %s: %w", seg.File, err)
		}
		return corruptError(seg.File, 0, "segment header: "+err.Error())
	}
	if h.seq != seg.Seq || h.firstIndex != seg.FirstIndex {
		return corruptError(seg.File, 0, fmt.Sprintf("segment header says sequence %d, first index %d; the file name says %d, %d",
			h.seq, h.firstIndex, seg.Seq, seg.FirstIndex))
	}
	if first {
		// Older segments were compacted away (or this is the first): the header carries
		// the state they left.
		state.hardState, state.marker = h.hardState, h.marker
		return nil
	}
	if h.hardState != state.hardState || !h.marker.SameAs(state.marker) || h.firstIndex != state.lastIndex()+1 {
		return corruptError(seg.File, 0, fmt.Sprintf(
			"segment header records hard state %+v, marker %+v, first index %d, but the segments before it end with hard state %+v, marker %+v, last index %d",
			h.hardState, h.marker, h.firstIndex, state.hardState, state.marker, state.lastIndex()))
	}
	return nil
}

func applyRecord(rec record, state *logReplay, seg *SegmentInfo) error {
	switch rec.typ {
	case recEntry:
		e, err := decodeEntry(rec.payload, true)
		if err != nil {
			return err
		}
		if err := state.applyEntry(e); err != nil {
			return err
		}
		seg.LastIndex = max(seg.LastIndex, e.Index)
	case recHardState:
		hs, err := decodeHardState(rec.payload)
		if err != nil {
			return err
		}
		state.hardState = hs
	case recSnapshotMarker:
		m, err := decodeMarker(rec.payload)
		if err != nil {
			return err
		}
		return state.applyMarker(m)
	case recSegmentHeader:
		return errors.New("segment header in the middle of a segment")
	}
	return nil
}

// validRecordAfter reports whether any offset after a damaged record holds a frame that
// decodes. If one does, the damage is not a torn write at the end and must not be
// truncated. exhausted means the search gave up before the end.
func validRecordAfter(buf []byte, damagedAt int) (found, exhausted bool) {
	budget := int64(scanCRCBudget)
	for off := damagedAt + 1; off+frameHeaderLen <= len(buf); off++ {
		typ := recordType(buf[off+8])
		if !typ.known() || typ == recSegmentHeader {
			continue
		}
		length := int64(uint32(buf[off]) | uint32(buf[off+1])<<8 | uint32(buf[off+2])<<16 | uint32(buf[off+3])<<24)
		if length > int64(len(buf)-off-frameHeaderLen) || (typ != recEntry && length > maxSmallPayloadLen) {
			continue
		}
		if budget -= length + frameHeaderLen; budget < 0 {
			return false, true
		}
		if _, _, err := decodeRecord(buf[off:]); err == nil {
			return true, false
		}
	}
	return false, false
}

func truncateSegment(fsys FS, path string, size int64) error {
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("wal: open %s to truncate its torn tail: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("wal: truncate torn tail of %s at offset %d: %w", path, size, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wal: fsync %s after truncating its torn tail: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("wal: close %s: %w", path, err)
	}
	return nil
}
