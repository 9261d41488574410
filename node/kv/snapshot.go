package kv

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync/atomic"
)

// Snapshot layout, version 1 (integers are uvarints unless said otherwise):
//
//	magic        "GRKV"
//	version      byte (1)
//	applied      index, term
//	counts       sessions, keys
//	sessions     client id, last seq, last used index, op byte, existed byte, result index
//	             (ascending client id)
//	keys         key length, key, value length, value
//	             (shard by shard, ascending key within a shard)
//	crc          4 bytes little-endian: CRC-32C of every byte before it
//
// The same state always gives the same bytes, so replicas' snapshots can be compared.

var snapshotMagic = [4]byte{'G', 'R', 'K', 'V'}

const snapshotVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrMalformedSnapshot is wrapped by every Restore error about the snapshot's content (as
// opposed to the reader failing).
var ErrMalformedSnapshot = errors.New("malformed snapshot")

// Hard bounds on what Restore accepts, above any configurable limit, so a corrupt length
// cannot make it reserve absurd memory.
const (
	restoreMaxKeyBytes   = 64 << 20
	restoreMaxValueBytes = 1 << 30
)

type sessionRecord struct {
	clientID, lastSeq, lastUsed uint64
	result                      sessionResult
}

// Snapshot writes a consistent image of the store as of one applied index: Image, then
// WriteTo. Apply may go on meanwhile.
func (s *Store) Snapshot(w io.Writer) error {
	_, err := s.Image().WriteTo(w)
	return err
}

// Image is the store frozen at one applied index, to be written as a snapshot while Apply
// goes on: the node cuts it on its apply loop, so it matches the index it reports, and
// writes it elsewhere.
//
// Taking it costs O(shards + sessions) under the lock. Until the image has written a
// shard, Apply copies that shard before its first write to it. An image is written once;
// one that is dropped unwritten costs nothing more than those copies.
type Image struct {
	index, term uint64
	keys        int
	shards      [shardCount]*shard
	sessions    []sessionRecord
	written     atomic.Bool
}

// Image freezes the store's current state.
func (s *Store) Image() *Image {
	s.mu.RLock()
	im := &Image{index: s.applied, term: s.appliedTerm, keys: s.keys, shards: s.shards}
	for _, sh := range im.shards {
		sh.pins.Add(1)
	}
	im.sessions = make([]sessionRecord, 0, len(s.sessions))
	for _, sess := range s.sessions {
		im.sessions = append(im.sessions, sessionRecord{sess.clientID, sess.lastSeq, sess.lastUsed, sess.result})
	}
	s.mu.RUnlock()
	slices.SortFunc(im.sessions, func(a, b sessionRecord) int { return cmp.Compare(a.clientID, b.clientID) })
	return im
}

// Applied returns the index and term of the last entry the image reflects.
func (im *Image) Applied() (index, term uint64) { return im.index, im.term }

// Len returns the number of keys in the image.
func (im *Image) Len() int { return im.keys }

// WriteTo writes the image in the snapshot format Restore reads and returns the bytes
// written. It may be called once.
func (im *Image) WriteTo(w io.Writer) (int64, error) {
	if im.written.Swap(true) {
		return 0, fmt.Errorf("kv: snapshot image at index %d was already written", im.index)
	}
	unpinned := 0
	defer func() {
		for _, sh := range im.shards[unpinned:] {
			sh.pins.Add(-1)
		}
	}()

	sw := newSnapshotWriter(w)
	sw.write(snapshotMagic[:])
	sw.byte(snapshotVersion)
	sw.uvarint(im.index)
	sw.uvarint(im.term)
	sw.uvarint(uint64(len(im.sessions)))
	sw.uvarint(uint64(im.keys))
	for _, r := range im.sessions {
		sw.uvarint(r.clientID)
		sw.uvarint(r.lastSeq)
		sw.uvarint(r.lastUsed)
		sw.byte(byte(r.result.op))
		sw.bool(r.result.existed)
		sw.uvarint(r.result.index)
	}
	var sorted []string
	for _, sh := range im.shards {
		sorted = sorted[:0]
		for k := range sh.m {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		for _, k := range sorted {
			v := sh.m[k]
			sw.uvarint(uint64(len(k)))
			sw.writeString(k)
			sw.uvarint(uint64(len(v)))
			sw.write(v)
		}
		// Done with this shard: Apply may write it in place again.
		sh.pins.Add(-1)
		unpinned++
		if sw.err != nil {
			break
		}
	}
	if err := sw.finish(); err != nil {
		return sw.crc.n, fmt.Errorf("kv: write snapshot at index %d: %w", im.index, err)
	}
	return sw.crc.n, nil
}

// snapshotWriter buffers, checksums and remembers the first write error.
type snapshotWriter struct {
	crc *crcWriter
	bw  *bufio.Writer
	tmp [binary.MaxVarintLen64]byte
	err error
}

type crcWriter struct {
	w   io.Writer
	crc uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	c.n += int64(n)
	return n, err
}

func newSnapshotWriter(w io.Writer) *snapshotWriter {
	c := &crcWriter{w: w}
	return &snapshotWriter{crc: c, bw: bufio.NewWriterSize(c, 64<<10)}
}

func (w *snapshotWriter) write(p []byte) {
	if w.err == nil {
		_, w.err = w.bw.Write(p)
	}
}

func (w *snapshotWriter) writeString(s string) {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
}

func (w *snapshotWriter) byte(b byte) {
	if w.err == nil {
		w.err = w.bw.WriteByte(b)
	}
}

func (w *snapshotWriter) bool(b bool) {
	if b {
		w.byte(1)
	} else {
		w.byte(0)
	}
}

func (w *snapshotWriter) uvarint(v uint64) {
	w.write(binary.AppendUvarint(w.tmp[:0], v))
}

func (w *snapshotWriter) finish() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	var trailer [4]byte
	binary.LittleEndian.PutUint32(trailer[:], w.crc.crc)
	n, err := w.crc.w.Write(trailer[:])
	w.crc.n += int64(n)
	return err
}

// Restore replaces the whole state with the snapshot read from r. The snapshot is read and
// checked completely (structure, CRC, nothing after it) before anything is replaced; on
// error the store is unchanged.
func (s *Store) Restore(r io.Reader) error {
	img, err := readSnapshot(r)
	if err != nil {
		return fmt.Errorf("kv: restore snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shards = img.shards
	s.keys = img.keys
	s.sessions = make(map[uint64]*session, len(img.sessions))
	s.lru.init()
	slices.SortFunc(img.sessions, func(a, b sessionRecord) int {
		return cmp.Or(cmp.Compare(a.lastUsed, b.lastUsed), cmp.Compare(a.clientID, b.clientID))
	})
	for _, r := range img.sessions {
		sess := &session{clientID: r.clientID, lastSeq: r.lastSeq, lastUsed: r.lastUsed, result: r.result}
		s.sessions[r.clientID] = sess
		s.lru.pushBack(sess)
	}
	s.applied, s.appliedTerm = img.index, img.term
	return nil
}

type snapshotImage struct {
	index, term uint64
	sessions    []sessionRecord
	shards      [shardCount]*shard
	keys        int
}

func readSnapshot(r io.Reader) (*snapshotImage, error) {
	sr := &snapshotReader{r: r, buf: make([]byte, 64<<10)}
	var magic [4]byte
	if err := sr.readFull(magic[:], named("magic")); err != nil {
		return nil, err
	}
	if magic != snapshotMagic {
		return nil, fmt.Errorf("not a georaft kv snapshot: starts with %q, want %q: %w",
			magic[:], snapshotMagic[:], ErrMalformedSnapshot)
	}
	version, err := sr.readByte(named("version"))
	if err != nil {
		return nil, err
	}
	if version != snapshotVersion {
		return nil, fmt.Errorf("unknown snapshot version %d (this build reads version %d): %w",
			version, snapshotVersion, ErrMalformedSnapshot)
	}
	img := &snapshotImage{}
	var nSessions, nKeys uint64
	for _, f := range []struct {
		dst  *uint64
		name string
	}{{&img.index, "applied index"}, {&img.term, "applied term"}, {&nSessions, "session count"}, {&nKeys, "key count"}} {
		if *f.dst, err = sr.uvarint(named(f.name)); err != nil {
			return nil, err
		}
	}
	if img.index == 0 && img.term != 0 {
		return nil, sr.malformed(fmt.Sprintf("applied term %d with applied index 0", img.term))
	}

	img.sessions = make([]sessionRecord, 0, min(nSessions, 1<<16))
	seen := make(map[uint64]bool, min(nSessions, 1<<16))
	for i := uint64(0); i < nSessions; i++ {
		rec, err := sr.session(i, img.index)
		if err != nil {
			return nil, err
		}
		if seen[rec.clientID] {
			return nil, sr.malformed(fmt.Sprintf("session %d: client %d listed twice", i, rec.clientID))
		}
		seen[rec.clientID] = true
		img.sessions = append(img.sessions, rec)
	}

	perShard := int(min(nKeys, 1<<20) / shardCount)
	for i := range img.shards {
		img.shards[i] = &shard{m: make(map[string][]byte, perShard)}
	}
	var key []byte // reused: the map keeps its own string
	for i := uint64(0); i < nKeys; i++ {
		at := sr.offset()
		if key, err = sr.bytes(key, nth("key", i, ""), restoreMaxKeyBytes); err != nil {
			return nil, err
		}
		if len(key) == 0 {
			return nil, sr.malformedAt(at, fmt.Sprintf("key %d is empty", i))
		}
		value, err := sr.bytes(nil, nth("value of key", i, ""), restoreMaxValueBytes)
		if err != nil {
			return nil, err
		}
		if value == nil {
			value = []byte{}
		}
		m := img.shards[shardOf(key)].m
		if _, dup := m[string(key)]; dup {
			return nil, sr.malformedAt(at, fmt.Sprintf("key %d %q listed twice", i, truncateForError(key)))
		}
		m[string(key)] = value
	}
	img.keys = int(nKeys)

	want := sr.checksum()
	var trailer [4]byte
	if err := sr.readFull(trailer[:], named("crc")); err != nil {
		return nil, err
	}
	if got := binary.LittleEndian.Uint32(trailer[:]); got != want {
		return nil, fmt.Errorf("crc mismatch: stored %08x, computed %08x over %d bytes: %w",
			got, want, sr.offset()-4, ErrMalformedSnapshot)
	}
	if _, err := sr.readByte(named("end")); err == nil {
		return nil, sr.malformed("trailing bytes after the crc")
	} else if !errors.Is(err, ErrMalformedSnapshot) {
		return nil, err
	}
	return img, nil
}

func truncateForError(key []byte) []byte {
	if len(key) > displayMax {
		return key[:displayPrefix]
	}
	return key
}

func (sr *snapshotReader) session(i, applied uint64) (sessionRecord, error) {
	var rec sessionRecord
	at := sr.offset()
	var err error
	if rec.clientID, err = sr.uvarint(nth("session", i, " client id")); err != nil {
		return rec, err
	}
	if rec.lastSeq, err = sr.uvarint(nth("session", i, " last seq")); err != nil {
		return rec, err
	}
	if rec.lastUsed, err = sr.uvarint(nth("session", i, " last used index")); err != nil {
		return rec, err
	}
	op, err := sr.readByte(nth("session", i, " op"))
	if err != nil {
		return rec, err
	}
	existed, err := sr.readByte(nth("session", i, " existed"))
	if err != nil {
		return rec, err
	}
	if rec.result.index, err = sr.uvarint(nth("session", i, " result index")); err != nil {
		return rec, err
	}
	rec.result.op, rec.result.existed = Op(op), existed == 1
	bad := func(format string, args ...any) (sessionRecord, error) {
		return rec, sr.malformedAt(at, fmt.Sprintf("session %d (client %d): ", i, rec.clientID)+fmt.Sprintf(format, args...))
	}
	switch {
	case rec.clientID == 0:
		return bad("client id 0")
	case rec.lastSeq == 0:
		return bad("last seq 0")
	case rec.result.op != OpSet && rec.result.op != OpDelete:
		return bad("op %d is not a write", op)
	case existed > 1:
		return bad("existed flag %d", existed)
	case rec.result.index == 0 || rec.result.index > rec.lastUsed:
		return bad("result index %d outside [1, last used %d]", rec.result.index, rec.lastUsed)
	case rec.lastUsed > applied:
		return bad("last used index %d beyond the applied index %d", rec.lastUsed, applied)
	}
	return rec, nil
}

// label names what the reader is reading, for error messages. It is formatted only when
// an error occurs, so reading a key costs no string building.
type label struct {
	name    string
	index   uint64
	indexed bool
	suffix  string
}

func named(name string) label { return label{name: name} }

func nth(name string, i uint64, suffix string) label {
	return label{name: name, index: i, indexed: true, suffix: suffix}
}

func (l label) String() string {
	if l.indexed {
		return fmt.Sprintf("%s %d%s", l.name, l.index, l.suffix)
	}
	return l.name + l.suffix
}

// snapshotReader buffers its input and computes the CRC of exactly the bytes consumed, so
// that read-ahead past the end of the checksummed part does not count.
type snapshotReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	crcFrom  int    // buf[crcFrom:pos] is consumed but not yet in crc
	crc      uint32 // over every consumed byte before buf[crcFrom]
	base     int64  // input offset of buf[0]
	eof      bool
}

func (sr *snapshotReader) offset() int64 { return sr.base + int64(sr.pos) }

func (sr *snapshotReader) checksum() uint32 {
	sr.crc = crc32.Update(sr.crc, castagnoli, sr.buf[sr.crcFrom:sr.pos])
	sr.crcFrom = sr.pos
	return sr.crc
}

func (sr *snapshotReader) malformed(reason string) error {
	return sr.malformedAt(sr.offset(), reason)
}

func (sr *snapshotReader) malformedAt(at int64, reason string) error {
	return fmt.Errorf("%s (offset %d): %w", reason, at, ErrMalformedSnapshot)
}

// fill reads more input into the emptied buffer. It reports a truncated snapshot (naming
// what was being read) at end of input, and the reader's own error otherwise.
func (sr *snapshotReader) fill(what label) error {
	sr.checksum()
	sr.base += int64(sr.pos)
	sr.pos, sr.end, sr.crcFrom = 0, 0, 0
	if !sr.eof {
		n, err := io.ReadAtLeast(sr.r, sr.buf, 1)
		sr.end = n
		if n > 0 {
			return nil
		}
		if !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %v at offset %d: %w", what, sr.base, err)
		}
		sr.eof = true
	}
	return sr.malformed(fmt.Sprintf("truncated: input ends before the %v", what))
}

func (sr *snapshotReader) readByte(what label) (byte, error) {
	if sr.pos == sr.end {
		if err := sr.fill(what); err != nil {
			return 0, err
		}
	}
	b := sr.buf[sr.pos]
	sr.pos++
	return b, nil
}

func (sr *snapshotReader) readFull(p []byte, what label) error {
	for len(p) > 0 {
		if sr.pos == sr.end {
			if err := sr.fill(what); err != nil {
				return err
			}
		}
		n := copy(p, sr.buf[sr.pos:sr.end])
		sr.pos += n
		p = p[n:]
	}
	return nil
}

func (sr *snapshotReader) uvarint(what label) (uint64, error) {
	at := sr.offset()
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b, err := sr.readByte(what)
		if err != nil {
			return 0, err
		}
		if shift == 63 && b > 1 {
			return 0, sr.malformedAt(at, what.String()+" overflows 64 bits")
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
}

// bytes reads a length-prefixed field, appending it to dst[:0]. Memory grows with the bytes
// actually present, so a corrupt length fails at end of input instead of reserving what it
// claims.
func (sr *snapshotReader) bytes(dst []byte, what label, max uint64) ([]byte, error) {
	at := sr.offset()
	lengthOf := what
	lengthOf.suffix += " length"
	n, err := sr.uvarint(lengthOf)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, sr.malformedAt(at, fmt.Sprintf("%s claims %d bytes, more than the %d allowed", what, n, max))
	}
	out := dst[:0]
	if uint64(cap(out)) < n {
		out = make([]byte, 0, min(n, 1<<20))
	}
	for uint64(len(out)) < n {
		if sr.pos == sr.end {
			if err := sr.fill(what); err != nil {
				return nil, err
			}
		}
		take := min(n-uint64(len(out)), uint64(sr.end-sr.pos))
		out = append(out, sr.buf[sr.pos:sr.pos+int(take)]...)
		sr.pos += int(take)
	}
	return out, nil
}
