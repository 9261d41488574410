package wal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/georaft/georaft/raft"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openWAL(t *testing.T, opts Options) (*WAL, *Recovered) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	w, rec, err := Open(opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Dir, err)
	}
	return w, rec
}

func makeEntries(first, last, term uint64) []raft.Entry {
	var out []raft.Entry
	for i := first; i <= last; i++ {
		out = append(out, raft.Entry{Index: i, Term: term, Data: fmt.Appendf(nil, "value-%d-term-%d", i, term)})
	}
	return out
}

func mustSave(t *testing.T, w *WAL, hs *raft.HardState, entries []raft.Entry) {
	t.Helper()
	if err := w.Save(hs, entries); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func mustClose(t *testing.T, w *WAL) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func assertEntries(t *testing.T, got, want []raft.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("recovered %d entries (%s), want %d (%s)", len(got), span(got), len(want), span(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("entry %d: got {%d %d %v %q}, want {%d %d %v %q}", i, g.Index, g.Term, g.Type, g.Data, w.Index, w.Term, w.Type, w.Data)
		}
	}
}

func span(es []raft.Entry) string {
	if len(es) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", es[0].Index, es[len(es)-1].Index)
}

// segmentFiles lists the segment paths in dir in name order.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	return paths
}

// recordOffsets walks the frames of a segment file and returns where each record starts.
func recordOffsets(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	for off := 0; off < len(data); {
		_, n, err := decodeRecord(data[off:])
		if err != nil {
			t.Fatalf("%s at %d: %v", path, off, err)
		}
		offsets = append(offsets, off)
		off += n
	}
	return offsets
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func flipByte(t *testing.T, path string, offset int64) {
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
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, offset); err != nil {
		t.Fatal(err)
	}
}
