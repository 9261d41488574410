package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/georaft/georaft/raft"
)

type recordType uint8

const (
	recSegmentHeader  recordType = 1
	recEntry          recordType = 2
	recHardState      recordType = 3
	recSnapshotMarker recordType = 4
)

func (t recordType) String() string {
	switch t {
	case recSegmentHeader:
		return "segment header"
	case recEntry:
		return "entry"
	case recHardState:
		return "hard state"
	case recSnapshotMarker:
		return "snapshot marker"
	}
	return fmt.Sprintf("record type %d", uint8(t))
}

func (t recordType) known() bool { return t >= recSegmentHeader && t <= recSnapshotMarker }

const (
	// frameHeaderLen is length (4) + crc (4) + type (1).
	frameHeaderLen = 9
	// maxPayloadLen bounds one record. It keeps a corrupt length field from asking for an
	// absurd allocation; entries bigger than this are refused by Save.
	maxPayloadLen = 1 << 30
	// maxSmallPayloadLen bounds every record type but entries (a few varints), which also
	// keeps the search for valid records after a damaged one cheap.
	maxSmallPayloadLen = 128

	segmentFormatVersion = 1
)

var (
	crcTable     = crc32.MakeTable(crc32.Castagnoli)
	segmentMagic = [8]byte{'g', 'r', 'f', 't', 'w', 'a', 'l', 0}
)

// record is one decoded frame. payload aliases the buffer it was decoded from.
type record struct {
	typ     recordType
	payload []byte
}

// beginRecord reserves the frame header; finishRecord fills it in once the payload has
// been appended after it.
func beginRecord(dst []byte) ([]byte, int) {
	start := len(dst)
	return append(dst, make([]byte, frameHeaderLen)...), start
}

func finishRecord(dst []byte, start int, typ recordType) []byte {
	frame := dst[start:]
	binary.LittleEndian.PutUint32(frame[0:4], uint32(len(frame)-frameHeaderLen))
	frame[8] = byte(typ)
	binary.LittleEndian.PutUint32(frame[4:8], frameCRC(frame))
	return dst
}

// frameCRC covers length, type and payload: everything but the CRC itself.
func frameCRC(frame []byte) uint32 {
	crc := crc32.Update(0, crcTable, frame[0:4])
	return crc32.Update(crc, crcTable, frame[8:])
}

func appendEntryRecord(dst []byte, e *raft.Entry) []byte {
	dst, start := beginRecord(dst)
	dst = binary.AppendUvarint(dst, e.Index)
	dst = binary.AppendUvarint(dst, e.Term)
	dst = append(dst, byte(e.Type))
	dst = append(dst, e.Data...)
	return finishRecord(dst, start, recEntry)
}

func appendHardStateRecord(dst []byte, hs raft.HardState) []byte {
	dst, start := beginRecord(dst)
	dst = appendHardState(dst, hs)
	dst = appendLeaseBound(dst, hs.LeaseBound)
	return finishRecord(dst, start, recHardState)
}

func appendMarkerRecord(dst []byte, m raft.SnapshotMeta) []byte {
	dst, start := beginRecord(dst)
	dst = appendMarker(dst, m)
	if !m.ConfState.IsEmpty() {
		dst = appendConfState(dst, m.ConfState)
	}
	return finishRecord(dst, start, recSnapshotMarker)
}

// appendConfState encodes a membership: its four lists, each a count and the ids.
func appendConfState(dst []byte, cs raft.ConfState) []byte {
	for _, ids := range [][]uint64{cs.Voters, cs.VotersOutgoing, cs.Learners, cs.ReadLeaseHolders} {
		dst = binary.AppendUvarint(dst, uint64(len(ids)))
		for _, id := range ids {
			dst = binary.AppendUvarint(dst, id)
		}
	}
	return dst
}

// confState reads what appendConfState wrote.
func (r *payloadReader) confState() raft.ConfState {
	var lists [4][]uint64
	for i := range lists {
		n := r.uvarint("membership list length")
		if r.err == nil && n > uint64(len(r.buf)) {
			r.err = fmt.Errorf("membership list of %d ids in %d bytes", n, len(r.buf))
		}
		for range n {
			if r.err != nil {
				break
			}
			lists[i] = append(lists[i], r.uvarint("member id"))
		}
	}
	return raft.ConfState{Voters: lists[0], VotersOutgoing: lists[1], Learners: lists[2], ReadLeaseHolders: lists[3]}
}

// segmentHeader opens every segment and restates the durable state at its creation.
type segmentHeader struct {
	version    uint64
	seq        uint64
	firstIndex uint64
	hardState  raft.HardState
	marker     raft.SnapshotMeta
}

func appendHeaderRecord(dst []byte, h segmentHeader) []byte {
	dst, start := beginRecord(dst)
	dst = append(dst, segmentMagic[:]...)
	dst = binary.AppendUvarint(dst, h.version)
	dst = binary.AppendUvarint(dst, h.seq)
	dst = binary.AppendUvarint(dst, h.firstIndex)
	dst = appendHardState(dst, h.hardState)
	dst = appendMarker(dst, h.marker)
	// The optional tail: the lease bound (0 allowed here) and the marker's membership. A
	// header written before either existed ends before it.
	if h.hardState.LeaseBound > 0 || !h.marker.ConfState.IsEmpty() {
		dst = binary.AppendUvarint(dst, uint64(h.hardState.LeaseBound))
		dst = appendConfState(dst, h.marker.ConfState)
	}
	return finishRecord(dst, start, recSegmentHeader)
}

func appendHardState(dst []byte, hs raft.HardState) []byte {
	dst = binary.AppendUvarint(dst, hs.Term)
	dst = binary.AppendUvarint(dst, hs.Vote)
	return binary.AppendUvarint(dst, hs.Commit)
}

// appendLeaseBound ends a hard state record or a segment header with the lease bound, in
// nanoseconds. A zero bound is left out, so that a record without one reads as before: WAL
// written by a release that did not persist the bound decodes as bound 0.
func appendLeaseBound(dst []byte, bound time.Duration) []byte {
	if bound <= 0 {
		return dst
	}
	return binary.AppendUvarint(dst, uint64(bound))
}

// leaseBound reads the optional lease bound that ends a hard state record or a header.
func (r *payloadReader) leaseBound() time.Duration {
	if r.err != nil || len(r.buf) == 0 {
		return 0
	}
	v := r.uvarint("lease bound")
	if r.err == nil && (v == 0 || v > math.MaxInt64) {
		r.err = fmt.Errorf("lease bound: %d ns is not a positive duration", v)
	}
	return time.Duration(v)
}

func appendMarker(dst []byte, m raft.SnapshotMeta) []byte {
	dst = binary.AppendUvarint(dst, m.Index)
	return binary.AppendUvarint(dst, m.Term)
}

// errShortFrame marks a frame cut off by the end of the buffer.
var errShortFrame = errors.New("record cut short")

// decodeRecord decodes the frame at the start of buf and returns it with its total size.
// It checks framing, length bounds, the CRC and that the type is known; it never panics.
func decodeRecord(buf []byte) (record, int, error) {
	if len(buf) < frameHeaderLen {
		return record{}, 0, fmt.Errorf("%w: %d of %d header bytes", errShortFrame, len(buf), frameHeaderLen)
	}
	length := binary.LittleEndian.Uint32(buf[0:4])
	if length > maxPayloadLen {
		return record{}, 0, fmt.Errorf("record length %d over the %d byte limit", length, maxPayloadLen)
	}
	total := frameHeaderLen + int(length)
	if total > len(buf) {
		return record{}, 0, fmt.Errorf("%w: length %d but only %d payload bytes remain", errShortFrame, length, len(buf)-frameHeaderLen)
	}
	frame := buf[:total]
	if binary.LittleEndian.Uint32(frame[4:8]) != frameCRC(frame) {
		return record{}, 0, errors.New("crc mismatch")
	}
	typ := recordType(frame[8])
	if !typ.known() {
		return record{}, 0, fmt.Errorf("unknown record type %d", uint8(typ))
	}
	return record{typ: typ, payload: frame[frameHeaderLen:]}, total, nil
}

// payloadReader reads minimal unsigned varints; the first error sticks.
type payloadReader struct {
	buf []byte
	err error
}

func (r *payloadReader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	switch {
	case n == 0:
		r.err = fmt.Errorf("%s: payload ends inside the varint", field)
		return 0
	case n < 0:
		r.err = fmt.Errorf("%s: varint overflows 64 bits", field)
		return 0
	case n > 1 && r.buf[n-1] == 0:
		// A trailing zero byte is a longer-than-needed encoding. Refusing it keeps one
		// byte sequence per value, so a decoded record re-encodes to the same bytes.
		r.err = fmt.Errorf("%s: non-minimal varint", field)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *payloadReader) end(what string) error {
	if r.err == nil && len(r.buf) != 0 {
		r.err = fmt.Errorf("%s: %d unexpected trailing bytes", what, len(r.buf))
	}
	return r.err
}

// decodeEntry decodes an entry payload. Data aliases payload when copyData is false.
func decodeEntry(payload []byte, copyData bool) (raft.Entry, error) {
	r := payloadReader{buf: payload}
	e := raft.Entry{Index: r.uvarint("entry index"), Term: r.uvarint("entry term")}
	if r.err != nil {
		return raft.Entry{}, r.err
	}
	if len(r.buf) == 0 {
		return raft.Entry{}, errors.New("entry type: payload ends before it")
	}
	e.Type = raft.EntryType(r.buf[0])
	if data := r.buf[1:]; len(data) > 0 {
		if copyData {
			e.Data = append([]byte(nil), data...)
		} else {
			e.Data = data
		}
	}
	return e, nil
}

func decodeHardState(payload []byte) (raft.HardState, error) {
	r := payloadReader{buf: payload}
	hs := raft.HardState{Term: r.uvarint("term"), Vote: r.uvarint("vote"), Commit: r.uvarint("commit")}
	hs.LeaseBound = r.leaseBound()
	return hs, r.end("hard state")
}

func decodeMarker(payload []byte) (raft.SnapshotMeta, error) {
	r := payloadReader{buf: payload}
	m := raft.SnapshotMeta{Index: r.uvarint("marker index"), Term: r.uvarint("marker term")}
	if r.err == nil && len(r.buf) > 0 {
		if m.ConfState = r.confState(); r.err == nil && m.ConfState.IsEmpty() {
			r.err = errors.New("snapshot marker: an empty membership is written as none")
		}
	}
	return m, r.end("snapshot marker")
}

// errNotSegment means the file does not start with the segment magic: not one of ours.
var errNotSegment = errors.New("not a georaft wal segment (no segment header magic)")

func decodeHeader(payload []byte) (segmentHeader, error) {
	if len(payload) < len(segmentMagic) || [8]byte(payload[:8]) != segmentMagic {
		return segmentHeader{}, errNotSegment
	}
	r := payloadReader{buf: payload[len(segmentMagic):]}
	h := segmentHeader{version: r.uvarint("version")}
	if r.err == nil && h.version != segmentFormatVersion {
		return segmentHeader{}, fmt.Errorf("segment format version %d, this build reads version %d", h.version, segmentFormatVersion)
	}
	h.seq = r.uvarint("sequence")
	h.firstIndex = r.uvarint("first index")
	h.hardState = raft.HardState{Term: r.uvarint("term"), Vote: r.uvarint("vote"), Commit: r.uvarint("commit")}
	h.marker = raft.SnapshotMeta{Index: r.uvarint("marker index"), Term: r.uvarint("marker term")}
	if r.err == nil && len(r.buf) > 0 {
		bound := r.uvarint("lease bound")
		if r.err == nil && bound > math.MaxInt64 {
			r.err = fmt.Errorf("lease bound: %d ns is not a duration", bound)
		}
		h.hardState.LeaseBound = time.Duration(bound)
		if h.marker.ConfState = r.confState(); r.err == nil && bound == 0 && h.marker.ConfState.IsEmpty() {
			r.err = errors.New("segment header: an empty tail is written as none")
		}
	}
	return h, r.end("segment header")
}
