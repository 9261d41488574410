// Package snapshot stores georaftd's state machine snapshots as files in DATA_DIR/snap.
//
// A snapshot file is named INDEX-TERM.snap (both 16 hex digits, so names sort by index)
// and holds
//
//	header:  magic "grftsnap" | version uint32 | index uint64 | term uint64 | body length uint64
//	body:    opaque bytes (the key-value store's serialization)
//	trailer: crc32c (Castagnoli) over header and body, uint32
//
// all little-endian. Files are written under a temporary name, fsynced, renamed into
// place and the directory fsynced, so a snapshot either exists complete or not at all;
// Open verifies the CRC before handing out the body.
package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/georaft/georaft/node/wal"
	"github.com/georaft/georaft/raft"
)

const (
	formatVersion = 1
	// headerLen is the size of the fixed header in front of the body.
	headerLen  = 8 + 4 + 8 + 8 + 8
	trailerLen = 4
	fileExt    = ".snap"
	tmpExt     = ".tmp"
	nameLen    = 16 + 1 + 16 + len(fileExt)
)

var (
	magic    = [8]byte{'g', 'r', 'f', 't', 's', 'n', 'a', 'p'}
	crcTable = crc32.MakeTable(crc32.Castagnoli)
)

// fileHeader is the fixed header of a snapshot file.
type fileHeader struct {
	Version uint32
	Meta    raft.SnapshotMeta
	BodyLen uint64
}

func encodeHeader(h fileHeader) []byte {
	b := make([]byte, headerLen)
	copy(b, magic[:])
	binary.LittleEndian.PutUint32(b[8:12], h.Version)
	binary.LittleEndian.PutUint64(b[12:20], h.Meta.Index)
	binary.LittleEndian.PutUint64(b[20:28], h.Meta.Term)
	binary.LittleEndian.PutUint64(b[28:36], h.BodyLen)
	return b
}

// decodeHeader parses the header at the start of b. It never panics.
func decodeHeader(b []byte) (fileHeader, error) {
	if len(b) < headerLen {
		return fileHeader{}, fmt.Errorf("header cut short: %d of %d bytes", len(b), headerLen)
	}
	if [8]byte(b[:8]) != magic {
		return fileHeader{}, errors.New("not a georaft snapshot (bad magic)")
	}
	h := fileHeader{
		Version: binary.LittleEndian.Uint32(b[8:12]),
		Meta: raft.SnapshotMeta{
			Index: binary.LittleEndian.Uint64(b[12:20]),
			Term:  binary.LittleEndian.Uint64(b[20:28]),
		},
		BodyLen: binary.LittleEndian.Uint64(b[28:36]),
	}
	if h.Version != formatVersion {
		return fileHeader{}, fmt.Errorf("format version %d, this build reads version %d", h.Version, formatVersion)
	}
	return h, nil
}

// Store is a directory of snapshot files. Its methods are safe for concurrent use.
type Store struct {
	dir    string
	fs     wal.FS
	logger *slog.Logger
	tmpSeq atomic.Uint64
}

// NewStore opens the snapshot directory dir (DATA_DIR/snap), creating it if needed, and
// removes temporary files left by a save or receive that never finished. fsys nil means
// the OS filesystem.
func NewStore(dir string, fsys wal.FS) (*Store, error) {
	if dir == "" {
		return nil, errors.New("snapshot: directory is empty")
	}
	if fsys == nil {
		fsys = wal.OSFS{}
	}
	s := &Store{dir: dir, fs: fsys, logger: slog.Default()}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot: create directory %s: %w", dir, err)
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read directory %s: %w", dir, err)
	}
	removed := false
	for _, de := range entries {
		if name := de.Name(); strings.HasSuffix(name, tmpExt) && strings.Contains(name, fileExt) {
			path := s.join(name)
			if err := fsys.Remove(path); err != nil {
				return nil, fmt.Errorf("snapshot: remove unfinished %s: %w", path, err)
			}
			removed = true
			s.logger.Info("snapshot: removed unfinished file", "file", path)
		}
	}
	if removed {
		if err := wal.SyncDir(fsys, dir); err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
	}
	return s, nil
}

// Dir is the directory the store keeps its files in.
func (s *Store) Dir() string { return s.dir }

// Path is the file that holds the snapshot at meta.
func (s *Store) Path(meta raft.SnapshotMeta) string {
	return s.join(fmt.Sprintf("%016x-%016x%s", meta.Index, meta.Term, fileExt))
}

func (s *Store) join(name string) string { return s.dir + string(os.PathSeparator) + name }

func (s *Store) tmpPath(meta raft.SnapshotMeta) string {
	return fmt.Sprintf("%s.%d%s", s.Path(meta), s.tmpSeq.Add(1), tmpExt)
}

func parseName(name string) (raft.SnapshotMeta, bool) {
	if len(name) != nameLen || !strings.HasSuffix(name, fileExt) || name[16] != '-' {
		return raft.SnapshotMeta{}, false
	}
	index, err1 := parseHex(name[:16])
	term, err2 := parseHex(name[17:33])
	return raft.SnapshotMeta{Index: index, Term: term}, err1 == nil && err2 == nil
}

func parseHex(s string) (uint64, error) {
	if strings.ContainsAny(s, "ABCDEF+-") {
		return 0, errors.New("not lowercase hex")
	}
	return strconv.ParseUint(s, 16, 64)
}

// List returns the snapshots in the directory, oldest (lowest index) first. It reads only
// the names; Open verifies the contents.
func (s *Store) List() ([]raft.SnapshotMeta, error) {
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapshot: read directory %s: %w", s.dir, err)
	}
	var metas []raft.SnapshotMeta
	for _, de := range entries {
		if meta, ok := parseName(de.Name()); ok {
			metas = append(metas, meta)
		}
	}
	slices.SortFunc(metas, compareMeta)
	return metas, nil
}

func compareMeta(a, b raft.SnapshotMeta) int {
	switch {
	case a.Index != b.Index:
		return cmpUint(a.Index, b.Index)
	default:
		return cmpUint(a.Term, b.Term)
	}
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

// Latest returns the newest snapshot (highest index, then term). ok is false if there is
// none. It does not verify the file: a snapshot the WAL marker depends on must not be
// silently skipped, so a damaged one surfaces as an error from Open.
func (s *Store) Latest() (meta raft.SnapshotMeta, ok bool, err error) {
	metas, err := s.List()
	if err != nil || len(metas) == 0 {
		return raft.SnapshotMeta{}, false, err
	}
	return metas[len(metas)-1], true, nil
}

// Save writes a snapshot at meta whose body write produces. The file appears under its
// name only once complete and durable.
func (s *Store) Save(meta raft.SnapshotMeta, write func(io.Writer) error) (err error) {
	final, tmp := s.Path(meta), s.tmpPath(meta)
	f, err := s.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("snapshot: create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			s.fs.Remove(tmp)
		}
	}()

	// The body length is known only once write returns: write a placeholder header, then
	// the real one, then checksum the file as it now stands.
	if _, err := f.Write(encodeHeader(fileHeader{Version: formatVersion, Meta: meta})); err != nil {
		return fmt.Errorf("snapshot: write header of %s: %w", tmp, err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	counter := &countingWriter{w: bw}
	if err := write(counter); err != nil {
		return fmt.Errorf("snapshot: write body of %s: %w", tmp, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("snapshot: write body of %s: %w", tmp, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("snapshot: seek in %s: %w", tmp, err)
	}
	if _, err := f.Write(encodeHeader(fileHeader{Version: formatVersion, Meta: meta, BodyLen: counter.n})); err != nil {
		return fmt.Errorf("snapshot: write header of %s: %w", tmp, err)
	}
	crc, err := checksum(f, headerLen+int64(counter.n))
	if err != nil {
		return fmt.Errorf("snapshot: checksum %s: %w", tmp, err)
	}
	if _, err := f.Seek(headerLen+int64(counter.n), io.SeekStart); err != nil {
		return fmt.Errorf("snapshot: seek in %s: %w", tmp, err)
	}
	if _, err := f.Write(binary.LittleEndian.AppendUint32(nil, crc)); err != nil {
		return fmt.Errorf("snapshot: write trailer of %s: %w", tmp, err)
	}
	return s.install(f, tmp, final)
}

// install makes the complete temporary file durable and gives it its final name.
func (s *Store) install(f wal.File, tmp, final string) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("snapshot: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("snapshot: close %s: %w", tmp, err)
	}
	if err := s.fs.Rename(tmp, final); err != nil {
		return fmt.Errorf("snapshot: rename %s to %s: %w", tmp, final, err)
	}
	if err := wal.SyncDir(s.fs, s.dir); err != nil {
		return fmt.Errorf("snapshot: install %s: %w", final, err)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

// checksum is the CRC32C of the first n bytes of f.
func checksum(f io.ReaderAt, n int64) (uint32, error) {
	h := crc32.New(crcTable)
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, n)); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// Open verifies the snapshot at meta (header, length, CRC) and returns a reader of its
// body and the body's size. The caller closes the reader.
func (s *Store) Open(meta raft.SnapshotMeta) (io.ReadCloser, int64, error) {
	path := s.Path(meta)
	info, err := s.fs.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: open %s: %w", path, err)
	}
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("snapshot: open %s: %w", path, err)
	}
	bodyLen, err := verify(f, info.Size(), meta)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("snapshot: %s: %w", path, err)
	}
	return &bodyReader{SectionReader: io.NewSectionReader(f, headerLen, bodyLen), file: f}, bodyLen, nil
}

// verify checks a whole snapshot file of the given size and returns its body length.
func verify(f io.ReaderAt, size int64, meta raft.SnapshotMeta) (int64, error) {
	if size < headerLen+trailerLen {
		return 0, fmt.Errorf("truncated: %d bytes, shorter than header and trailer (%d)", size, headerLen+trailerLen)
	}
	hb := make([]byte, headerLen)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return 0, fmt.Errorf("read header: %w", err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return 0, err
	}
	if !h.Meta.SameAs(meta) {
		return 0, fmt.Errorf("header holds index %d term %d, want index %d term %d", h.Meta.Index, h.Meta.Term, meta.Index, meta.Term)
	}
	if h.BodyLen > uint64(size) || int64(h.BodyLen)+headerLen+trailerLen != size {
		return 0, fmt.Errorf("truncated or padded: header announces a %d byte body (%d bytes with header and trailer), file has %d bytes",
			h.BodyLen, h.BodyLen+headerLen+trailerLen, size)
	}
	bodyLen := int64(h.BodyLen)
	tb := make([]byte, trailerLen)
	if _, err := f.ReadAt(tb, headerLen+bodyLen); err != nil {
		return 0, fmt.Errorf("read trailer: %w", err)
	}
	got, err := checksum(f, headerLen+bodyLen)
	if err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	if want := binary.LittleEndian.Uint32(tb); got != want {
		return 0, fmt.Errorf("crc mismatch: trailer says %08x, contents give %08x", want, got)
	}
	return bodyLen, nil
}

type bodyReader struct {
	*io.SectionReader
	file wal.File
}

func (r *bodyReader) Close() error { return r.file.Close() }

// Incoming is a snapshot being received in chunks. Write the body to it, then Commit or
// Abort; it is not safe for concurrent use.
type Incoming struct {
	store   *Store
	meta    raft.SnapshotMeta
	size    int64
	written int64
	file    wal.File
	buf     *bufio.Writer
	crc     hash.Hash32
	tmp     string
	final   string
	ended   bool
}

// Receive starts receiving a snapshot at meta whose body is size bytes.
func (s *Store) Receive(meta raft.SnapshotMeta, size int64) (*Incoming, error) {
	if size < 0 {
		return nil, fmt.Errorf("snapshot: receive %s: negative size %d", s.Path(meta), size)
	}
	tmp := s.tmpPath(meta)
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("snapshot: create %s: %w", tmp, err)
	}
	in := &Incoming{store: s, meta: meta, size: size, file: f, buf: bufio.NewWriterSize(f, 256<<10),
		crc: crc32.New(crcTable), tmp: tmp, final: s.Path(meta)}
	header := encodeHeader(fileHeader{Version: formatVersion, Meta: meta, BodyLen: uint64(size)})
	in.crc.Write(header)
	if _, err := in.buf.Write(header); err != nil {
		in.Abort()
		return nil, fmt.Errorf("snapshot: write header of %s: %w", tmp, err)
	}
	return in, nil
}

// Write appends a chunk of the body. Writing past the announced size is an error.
func (in *Incoming) Write(p []byte) (int, error) {
	if in.ended {
		return 0, fmt.Errorf("snapshot: write to %s after Commit or Abort", in.tmp)
	}
	if int64(len(p)) > in.size-in.written {
		return 0, fmt.Errorf("snapshot: receiving %s: %d more bytes would exceed the announced %d (have %d)",
			in.final, len(p), in.size, in.written)
	}
	n, err := in.buf.Write(p)
	in.crc.Write(p[:n])
	in.written += int64(n)
	if err != nil {
		return n, fmt.Errorf("snapshot: write %s: %w", in.tmp, err)
	}
	return n, nil
}

// Commit checks that the whole body arrived, seals the file with its CRC and installs it.
// On error the partial file is removed.
func (in *Incoming) Commit() (err error) {
	if in.ended {
		return fmt.Errorf("snapshot: commit %s after Commit or Abort", in.tmp)
	}
	defer func() {
		if err != nil {
			in.Abort()
		}
	}()
	if in.written != in.size {
		return fmt.Errorf("snapshot: receiving %s: got %d of %d bytes", in.final, in.written, in.size)
	}
	if _, err := in.buf.Write(binary.LittleEndian.AppendUint32(nil, in.crc.Sum32())); err != nil {
		return fmt.Errorf("snapshot: write trailer of %s: %w", in.tmp, err)
	}
	if err := in.buf.Flush(); err != nil {
		return fmt.Errorf("snapshot: write %s: %w", in.tmp, err)
	}
	if err := in.store.install(in.file, in.tmp, in.final); err != nil {
		return err
	}
	in.ended = true
	return nil
}

// Abort drops the partial snapshot. It is safe to call more than once, and after Commit
// (where it does nothing).
func (in *Incoming) Abort() error {
	if in.ended {
		return nil
	}
	in.ended = true
	in.file.Close()
	if err := in.store.fs.Remove(in.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("snapshot: remove %s: %w", in.tmp, err)
	}
	return nil
}

// Prune removes all but the newest keep snapshots (keep ≥ 1: the newest is what the WAL
// marker points at).
func (s *Store) Prune(keep int) error {
	if keep < 1 {
		return fmt.Errorf("snapshot: prune keeping %d snapshots: must keep at least 1", keep)
	}
	metas, err := s.List()
	if err != nil {
		return err
	}
	if len(metas) <= keep {
		return nil
	}
	for _, meta := range metas[:len(metas)-keep] {
		if err := s.fs.Remove(s.Path(meta)); err != nil {
			return fmt.Errorf("snapshot: prune %s: %w", s.Path(meta), err)
		}
	}
	if err := wal.SyncDir(s.fs, s.dir); err != nil {
		return fmt.Errorf("snapshot: prune: %w", err)
	}
	return nil
}
