package mvcc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"

	"github.com/georaft/georaft/node/kv"
)

// Snapshot stream, version 1:
//
//	magic     "GRMV"
//	version   byte (1)
//	records   uvarint key length (never 0), key, uvarint value length, value;
//	          every engine key in order, as of one applied index
//	end       uvarint 0
//	crc       4 bytes little-endian: CRC-32C of every byte before it
//
// It is the engine's content, read from a pebble snapshot, so it carries the state record
// (applied index and term) consistent with the data.

var snapshotMagic = [4]byte{'G', 'R', 'M', 'V'}

const snapshotVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrMalformedSnapshot is wrapped by every Restore error about the stream's content.
var ErrMalformedSnapshot = errors.New("malformed snapshot")

// WriteSnapshot writes a consistent image of the store to w and returns the applied index and
// term it reflects. Apply goes on meanwhile.
func (s *Store) WriteSnapshot(w io.Writer) (index, term uint64, err error) {
	s.mu.RLock()
	snap := s.db.NewSnapshot()
	s.mu.RUnlock()
	defer snap.Close()
	v, closer, err := snap.Get(stateKey)
	if err != nil && !errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, err
	}
	st := state{rev: 1}
	if err == nil {
		st, err = decodeState(v)
		closer.Close()
		if err != nil {
			return 0, 0, err
		}
	}
	it, err := snap.NewIter(nil)
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 256<<10)
	bw.Write(snapshotMagic[:])
	bw.WriteByte(snapshotVersion)
	var tmp [binary.MaxVarintLen64]byte
	for ok := it.First(); ok; ok = it.Next() {
		k, val := it.Key(), it.Value()
		bw.Write(binary.AppendUvarint(tmp[:0], uint64(len(k))))
		bw.Write(k)
		bw.Write(binary.AppendUvarint(tmp[:0], uint64(len(val))))
		if _, err := bw.Write(val); err != nil {
			return 0, 0, fmt.Errorf("mvcc: write snapshot: %w", err)
		}
	}
	if err := it.Error(); err != nil {
		return 0, 0, err
	}
	bw.WriteByte(0)
	if err := bw.Flush(); err != nil {
		return 0, 0, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return 0, 0, fmt.Errorf("mvcc: write snapshot: %w", err)
	}
	return st.applied, st.term, nil
}

// Restore replaces the whole state with a snapshot read from r: this package's stream, or a
// node/kv snapshot written by an earlier georaft (its keys become revision 2, version 1). The
// new engine is built beside the current one and swapped in only once complete and durable;
// on error the store is unchanged. Called by the apply goroutine.
func (s *Store) Restore(r io.Reader) error {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(4)
	if err != nil {
		return fmt.Errorf("mvcc: restore: read magic: %w: %w", err, ErrMalformedSnapshot)
	}
	gen := s.gen + 1
	path := filepath.Join(s.dir, genName(gen))
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("mvcc: restore: %w", err)
	}
	o := s.engineOptions()
	db, err := pebble.Open(path, o)
	o.Cache.Unref()
	if err != nil {
		return fmt.Errorf("mvcc: restore: open %s: %w", path, err)
	}
	abandon := func(err error) error {
		db.Close()
		os.RemoveAll(path)
		return fmt.Errorf("mvcc: restore: %w", err)
	}
	switch {
	case bytes.Equal(magic, snapshotMagic[:]):
		err = loadStream(db, br)
	case bytes.Equal(magic, []byte("GRKV")):
		err = importLegacy(db, br)
	default:
		err = fmt.Errorf("stream starts with %q, not a georaft snapshot: %w", magic, ErrMalformedSnapshot)
	}
	if err != nil {
		return abandon(err)
	}
	// Durable before it becomes the store's: flushed to tables, and the tables synced.
	if err := db.Flush(); err != nil {
		return abandon(err)
	}
	if err := s.setCurrentGeneration(gen); err != nil {
		return abandon(err)
	}
	s.mu.Lock()
	old, oldGen, oldRev := s.db, s.gen, s.st.Load().rev
	if err := s.load(db, gen); err != nil {
		s.mu.Unlock()
		// The switch is made; a restart would open the new engine and fail the same way.
		return fmt.Errorf("mvcc: restore: load restored engine: %w", err)
	}
	s.mu.Unlock()
	old.Close()
	os.RemoveAll(filepath.Join(s.dir, genName(oldGen)))
	// Watchers follow the new history from where they were.
	s.watch.resync(oldRev)
	return nil
}

func loadStream(db *pebble.DB, r *bufio.Reader) error {
	tr := &crcReader{r: r}
	var magic [5]byte
	if _, err := io.ReadFull(tr, magic[:]); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if magic[4] != snapshotVersion {
		return fmt.Errorf("snapshot version %d, this build reads %d: %w", magic[4], snapshotVersion, ErrMalformedSnapshot)
	}
	b := db.NewBatch()
	defer func() { b.Close() }()
	var prev []byte
	sawState := false
	for n := 0; ; n++ {
		klen, err := binary.ReadUvarint(tr)
		if err != nil {
			return fmt.Errorf("record %d: %w: %w", n, err, ErrMalformedSnapshot)
		}
		if klen == 0 {
			break
		}
		if klen > 1<<26 {
			return fmt.Errorf("record %d: key of %d bytes: %w", n, klen, ErrMalformedSnapshot)
		}
		key := make([]byte, klen)
		if _, err := io.ReadFull(tr, key); err != nil {
			return fmt.Errorf("record %d: %w: %w", n, err, ErrMalformedSnapshot)
		}
		vlen, err := binary.ReadUvarint(tr)
		if err != nil || vlen > 1<<31 {
			return fmt.Errorf("record %d: bad value length: %w", n, ErrMalformedSnapshot)
		}
		val := make([]byte, vlen)
		if _, err := io.ReadFull(tr, val); err != nil {
			return fmt.Errorf("record %d: %w: %w", n, err, ErrMalformedSnapshot)
		}
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("record %d: keys out of order: %w", n, ErrMalformedSnapshot)
		}
		prev = key
		if bytes.Equal(key, stateKey) {
			if _, err := decodeState(val); err != nil {
				return fmt.Errorf("%w: %w", err, ErrMalformedSnapshot)
			}
			sawState = true
		}
		if err := b.Set(key, val, nil); err != nil {
			return err
		}
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	sum := tr.crc
	var trailer [4]byte
	if _, err := io.ReadFull(r, trailer[:]); err != nil {
		return fmt.Errorf("read checksum: %w: %w", err, ErrMalformedSnapshot)
	}
	if got := binary.LittleEndian.Uint32(trailer[:]); got != sum {
		return fmt.Errorf("checksum %08x, computed %08x: %w", got, sum, ErrMalformedSnapshot)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return fmt.Errorf("bytes after the checksum: %w", ErrMalformedSnapshot)
	}
	if !sawState {
		return fmt.Errorf("no state record: %w", ErrMalformedSnapshot)
	}
	return b.Commit(pebble.NoSync)
}

// importLegacy loads a node/kv snapshot: every key becomes a version written by one
// transaction at revision 2 (the first a new store writes), and the sessions carry over.
func importLegacy(db *pebble.DB, r io.Reader) error {
	old, err := kv.ReadSnapshot(r)
	if err != nil {
		return err
	}
	st := state{applied: old.Index, term: old.Term, rev: 1}
	b := db.NewBatch()
	defer func() { b.Close() }()
	const rev = 2
	var sub int64
	err = old.ForEach(func(key, value []byte) error {
		rec := record{create: rev, version: 1, value: value}
		if err := b.Set(versionKey(key, rev), rec.encode(), nil); err != nil {
			return err
		}
		if err := b.Set(revisionKey(rev, sub), append([]byte{byte(0)}, key...), nil); err != nil {
			return err
		}
		sub++
		st.keys++
		if b.Len() > 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = db.NewBatch()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if sub > 0 {
		st.rev = rev
	}
	for _, o := range old.Sessions {
		sess := &session{clientID: o.ClientID, lastSeq: o.LastSeq, lastUsed: o.LastUsed,
			result: sessionResult{op: o.Op, existed: o.Existed, index: o.ResultIndex, rev: st.rev}}
		if err := b.Set(sessionKey(o.ClientID), sess.encode(), nil); err != nil {
			return err
		}
	}
	if err := b.Set(stateKey, st.encode(), nil); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// Compact is a CompactionRequest's revision, waiting helper for physical=true: the channel
// closes once the background compaction has removed everything below rev.
func (s *Store) CompactDone(rev int64) <-chan struct{} { return s.compactDone.wait(rev) }

// crcReader checksums exactly the bytes taken from it.
type crcReader struct {
	r   *bufio.Reader
	crc uint32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc = crc32.Update(c.crc, castagnoli, []byte{b})
	}
	return b, err
}
