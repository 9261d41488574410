package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/georaft/georaft/raft"
)

// DefaultSegmentBytes is the segment size used when Options.SegmentBytes is zero.
const DefaultSegmentBytes = 64 << 20

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("wal: closed")

// Options configure Open.
type Options struct {
	// Dir holds the segment files: DATA_DIR/wal. It is created if missing.
	Dir string
	// SegmentBytes is the size at which the current segment is closed and a new one
	// started. Zero means DefaultSegmentBytes.
	SegmentBytes int64
	// FS is the filesystem; nil means OSFS.
	FS FS
	// Logger receives recovery and compaction notices; nil means slog.Default().
	Logger *slog.Logger
}

// WAL is an open write-ahead log. Its methods are safe for concurrent use.
type WAL struct {
	dir          string
	fs           FS
	logger       *slog.Logger
	segmentBytes int64

	mu      sync.Mutex
	idle    *sync.Cond // signalled when a flush ends
	queue   []*saveRequest
	writing bool  // a flusher owns the files
	closed  bool  // no new requests
	poison  error // first write or fsync failure; every later call returns it
	// queuedLast and queuedMarker are the log's shape once everything queued is written;
	// new requests are checked against them.
	queuedLast   uint64
	queuedMarker raft.SnapshotMeta

	// ioMu guards the files and the durable state below. The flusher holds it while it
	// writes; Compact and Close take it too.
	ioMu      sync.Mutex
	segments  []SegmentInfo // in order; the last one is open in file
	file      File
	hardState raft.HardState
	marker    raft.SnapshotMeta
	lastIndex uint64
	writeBuf  []byte
}

// saveRequest is one caller's records, waiting to be written.
type saveRequest struct {
	records   []byte
	count     int // records in records
	hardState *raft.HardState
	marker    *raft.SnapshotMeta
	maxEntry  uint64 // highest entry index in records, 0 if none
	lastAfter uint64 // the log's last index once records are applied
	done      bool
	err       error
}

// Open recovers the log in opts.Dir (creating the directory and a first segment if there
// is none), truncates a torn tail, and returns the WAL ready to append after what it
// recovered.
func Open(opts Options) (*WAL, *Recovered, error) {
	if opts.Dir == "" {
		return nil, nil, errors.New("wal: Options.Dir is empty")
	}
	if opts.SegmentBytes < 0 {
		return nil, nil, fmt.Errorf("wal: Options.SegmentBytes is %d, want a positive size or 0 for the default", opts.SegmentBytes)
	}
	w := &WAL{dir: opts.Dir, fs: opts.FS, logger: opts.Logger, segmentBytes: opts.SegmentBytes}
	if w.fs == nil {
		w.fs = OSFS{}
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	if w.segmentBytes == 0 {
		w.segmentBytes = DefaultSegmentBytes
	}
	w.idle = sync.NewCond(&w.mu)
	if err := w.fs.MkdirAll(w.dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("wal: create directory %s: %w", w.dir, err)
	}
	rec, err := recoverLog(w.dir, w.fs, w.logger, true)
	if err != nil {
		return nil, nil, err
	}
	w.hardState, w.marker, w.lastIndex = rec.HardState, rec.Snapshot, rec.LastIndex()
	w.queuedLast, w.queuedMarker = w.lastIndex, w.marker
	w.segments = rec.Segments
	if len(w.segments) == 0 {
		if err := w.createSegment(1); err != nil {
			return nil, nil, err
		}
	} else {
		tail := w.segments[len(w.segments)-1].File
		f, err := w.fs.OpenFile(tail, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("wal: open segment %s for appending: %w", tail, err)
		}
		w.file = f
	}
	rec.Segments = append([]SegmentInfo(nil), w.segments...)
	return w, rec, nil
}

// Save appends entries and then hs (either may be empty) and returns once they are
// durable. An entry at or below the last index replaces the log from its index on; apart
// from that, entries must follow the log without a gap. Concurrent callers share one
// write and one fsync.
func (w *WAL) Save(hs *raft.HardState, entries []raft.Entry) error {
	p, err := w.Submit(hs, entries)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Pending is a submitted save; Wait makes it durable.
type Pending struct {
	w   *WAL
	req *saveRequest
}

// Submit queues hs and entries behind everything submitted before and returns at once,
// without waiting for the disk. Callers that allocate entry indexes under their own lock
// submit under that lock, so the log order is theirs, and Wait outside it, so their
// fsyncs coalesce. Every Pending must be waited for: a flush happens when someone waits
// (or on Close).
func (w *WAL) Submit(hs *raft.HardState, entries []raft.Entry) (*Pending, error) {
	// One allocation for every record of the save, not a regrowth every few entries.
	size := 0
	for i := range entries {
		size += frameHeaderLen + 2*binary.MaxVarintLen64 + 1 + len(entries[i].Data)
	}
	if hs != nil {
		size += frameHeaderLen + maxSmallPayloadLen
	}
	req := &saveRequest{records: make([]byte, 0, size)}
	for i := range entries {
		if i > 0 && entries[i].Index != entries[i-1].Index+1 {
			return nil, fmt.Errorf("wal: entries not contiguous: index %d follows %d", entries[i].Index, entries[i-1].Index)
		}
		if len(entries[i].Data) > maxEntryDataLen {
			return nil, fmt.Errorf("wal: entry %d holds %d bytes, over the %d byte record limit", entries[i].Index, len(entries[i].Data), maxEntryDataLen)
		}
		req.records = appendEntryRecord(req.records, &entries[i])
	}
	req.count = len(entries)
	if hs != nil {
		copied := *hs
		req.hardState = &copied
		req.records = appendHardStateRecord(req.records, copied)
		req.count++
	}
	if len(entries) > 0 {
		req.maxEntry = entries[len(entries)-1].Index
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.refuseLocked(); err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		first := entries[0].Index
		if first <= w.queuedMarker.Index {
			return nil, fmt.Errorf("wal: entry index %d is at or below the snapshot marker %d", first, w.queuedMarker.Index)
		}
		if first > w.queuedLast+1 {
			return nil, fmt.Errorf("wal: entry index %d leaves a gap after the last index %d", first, w.queuedLast)
		}
		w.queuedLast = req.maxEntry
	}
	req.lastAfter = w.queuedLast
	if len(req.records) == 0 {
		req.done = true
	} else {
		w.queue = append(w.queue, req)
	}
	return &Pending{w: w, req: req}, nil
}

// maxEntryDataLen leaves room in a record for the index, term and type.
const maxEntryDataLen = maxPayloadLen - 2*binary.MaxVarintLen64 - 1

// Wait returns once the save is durable, or with the error that kept it from being so.
func (p *Pending) Wait() error {
	w := p.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for !p.req.done {
		if !w.writing {
			w.flushLocked()
			continue
		}
		w.idle.Wait()
	}
	return p.req.err
}

// SaveSnapshot records that a snapshot at meta is durable elsewhere, so the log may start
// after it: entries at or below meta.Index are dropped on recovery and may be compacted.
// Durable on return.
func (w *WAL) SaveSnapshot(meta raft.SnapshotMeta) error {
	req := &saveRequest{marker: &meta, records: appendMarkerRecord(nil, meta), count: 1}
	w.mu.Lock()
	if err := w.refuseLocked(); err != nil {
		w.mu.Unlock()
		return err
	}
	if meta.Index < w.queuedMarker.Index {
		w.mu.Unlock()
		return fmt.Errorf("wal: snapshot marker %d is below the current marker %d", meta.Index, w.queuedMarker.Index)
	}
	w.queuedMarker = meta
	w.queuedLast = max(w.queuedLast, meta.Index)
	req.lastAfter = w.queuedLast
	w.queue = append(w.queue, req)
	w.mu.Unlock()
	return (&Pending{w: w, req: req}).Wait()
}

func (w *WAL) refuseLocked() error {
	if w.poison != nil {
		return w.poison
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

// flushLocked writes everything queued with one write and one fsync. It is called with mu
// held and no flush in progress; it releases mu while it does the I/O.
func (w *WAL) flushLocked() {
	w.writing = true
	batch := w.queue
	w.queue = nil
	poison := w.poison
	w.mu.Unlock()

	err := poison
	if err == nil {
		err = w.writeBatch(batch)
	}

	w.mu.Lock()
	if err != nil && w.poison == nil {
		w.poison = err
		w.logger.Error("wal: write failed; refusing every later call", "dir", w.dir, "err", err)
	}
	for _, req := range batch {
		req.done, req.err = true, err
	}
	w.writing = false
	w.idle.Broadcast()
}

func (w *WAL) writeBatch(batch []*saveRequest) error {
	w.ioMu.Lock()
	defer w.ioMu.Unlock()

	size := 0
	for _, req := range batch {
		size += len(req.records)
	}
	tail := &w.segments[len(w.segments)-1]
	if tail.Bytes >= w.segmentBytes || (tail.Records > 1 && tail.Bytes+int64(size) > w.segmentBytes) {
		if err := w.createSegment(tail.Seq + 1); err != nil {
			return err
		}
		tail = &w.segments[len(w.segments)-1]
	}

	data := batch[0].records
	if len(batch) > 1 {
		w.writeBuf = w.writeBuf[:0]
		for _, req := range batch {
			w.writeBuf = append(w.writeBuf, req.records...)
		}
		data = w.writeBuf
	}
	n, err := w.file.Write(data)
	tail.Bytes += int64(n)
	if err != nil {
		return writeError("writing", tail.File, err)
	}
	if err := w.file.Sync(); err != nil {
		return writeError("syncing", tail.File, err)
	}

	for _, req := range batch {
		if req.hardState != nil {
			w.hardState = *req.hardState
		}
		if req.marker != nil {
			w.marker = *req.marker
		}
		tail.LastIndex = max(tail.LastIndex, req.maxEntry)
		tail.Records += req.count
	}
	w.lastIndex = batch[len(batch)-1].lastAfter
	return nil
}

// writeError names the file and calls a full disk what it is.
func writeError(doing, file string, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("wal: disk full %s %s: %w", doing, file, err)
	}
	return fmt.Errorf("wal: %s %s: %w", doing, file, err)
}

// createSegment starts segment seq, restating the durable state in its header, and makes
// it the one appended to. The file appears in the log only complete: it is written under
// a temporary name, fsynced, renamed, and the directory fsynced.
func (w *WAL) createSegment(seq uint64) error {
	first := w.lastIndex + 1
	name := joinDir(w.dir, segmentName(seq, first))
	tmp := name + tmpExt
	header := appendHeaderRecord(nil, segmentHeader{
		version: segmentFormatVersion, seq: seq, firstIndex: first,
		hardState: w.hardState, marker: w.marker,
	})
	f, err := w.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return writeError("creating", tmp, err)
	}
	if _, err := f.Write(header); err != nil {
		f.Close()
		return writeError("writing", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return writeError("syncing", tmp, err)
	}
	if err := f.Close(); err != nil {
		return writeError("closing", tmp, err)
	}
	if err := w.fs.Rename(tmp, name); err != nil {
		return writeError("renaming", tmp, err)
	}
	if err := SyncDir(w.fs, w.dir); err != nil {
		return fmt.Errorf("wal: new segment %s: %w", name, err)
	}
	f, err = w.fs.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return writeError("opening", name, err)
	}
	if w.file != nil {
		if err := w.file.Close(); err != nil {
			f.Close()
			return writeError("closing", w.segments[len(w.segments)-1].File, err)
		}
	}
	w.file = f
	w.segments = append(w.segments, SegmentInfo{File: name, Seq: seq, FirstIndex: first, Bytes: int64(len(header)), Records: 1})
	return nil
}

// Compact removes the oldest segments whose entries are all at or below index, which must
// not pass the snapshot marker. The last segment always stays. Segments go oldest first,
// each removal made durable before the next, so a crash never leaves a gap. Recovery
// stays correct because every segment's header restates the hard state and marker.
func (w *WAL) Compact(index uint64) error {
	w.mu.Lock()
	err := w.refuseLocked()
	w.mu.Unlock()
	if err != nil {
		return err
	}

	w.ioMu.Lock()
	defer w.ioMu.Unlock()
	if index > w.marker.Index {
		return fmt.Errorf("wal: compact to index %d past the snapshot marker %d: entries above the marker are not in any snapshot", index, w.marker.Index)
	}
	removed := 0
	for len(w.segments) > 1 && w.segments[0].LastIndex <= index {
		seg := w.segments[0]
		if err := w.fs.Remove(seg.File); err != nil {
			return fmt.Errorf("wal: compact: remove segment %s: %w", seg.File, err)
		}
		w.segments = w.segments[1:]
		removed++
		if err := SyncDir(w.fs, w.dir); err != nil {
			err = fmt.Errorf("wal: compact after removing %s: %w", seg.File, err)
			w.mu.Lock()
			if w.poison == nil {
				w.poison = err
			}
			w.mu.Unlock()
			return err
		}
	}
	if removed > 0 {
		w.logger.Info("wal: compacted", "dir", w.dir, "index", index, "segments_removed", removed,
			"first_segment", w.segments[0].File)
	}
	return nil
}

// Segments lists the current segment files in order.
func (w *WAL) Segments() []SegmentInfo {
	w.ioMu.Lock()
	defer w.ioMu.Unlock()
	return append([]SegmentInfo(nil), w.segments...)
}

// Close flushes anything still queued, then closes the current segment. After a failure
// it still releases the file and returns the failure.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	for w.writing {
		w.idle.Wait()
	}
	if len(w.queue) > 0 {
		w.flushLocked()
	}
	poison := w.poison
	w.mu.Unlock()

	w.ioMu.Lock()
	defer w.ioMu.Unlock()
	var err error
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil {
			err = fmt.Errorf("wal: close %s: %w", w.segments[len(w.segments)-1].File, cerr)
		}
		w.file = nil
	}
	if poison != nil {
		return poison
	}
	return err
}
