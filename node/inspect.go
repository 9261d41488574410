package node

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"

	"github.com/georaft/georaft/node/kv"
	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/node/snapshot"
	"github.com/georaft/georaft/node/wal"
	"github.com/georaft/georaft/raft"
)

// Inspect prints what a data directory holds, for an operator: the metadata (term, vote,
// commit), the snapshots, and the log one entry per line (`42 term=3 SET x 5`). It only
// reads: a torn tail is reported, not truncated.
func Inspect(dataDir string, out io.Writer) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	rec, err := wal.Inspect(filepath.Join(dataDir, "wal"), wal.OSFS{})
	if err != nil {
		return err
	}
	hs := rec.HardState
	fmt.Fprintf(w, "data dir: %s\n", dataDir)
	fmt.Fprintf(w, "term:     %d\n", hs.Term)
	fmt.Fprintf(w, "vote:     %s\n", nodeName(hs.Vote))
	fmt.Fprintf(w, "commit:   %d (as this node last recorded it: the cluster may have committed more)\n", hs.Commit)
	if rec.Snapshot.Index > 0 {
		fmt.Fprintf(w, "log starts after snapshot at index %d (term %d)\n", rec.Snapshot.Index, rec.Snapshot.Term)
	}
	if snaps, err := snapshot.NewStore(filepath.Join(dataDir, "snap"), nil); err == nil {
		if meta, ok, err := snaps.Latest(); err == nil && ok {
			fmt.Fprintf(w, "latest snapshot file: index %d, term %d\n", meta.Index, meta.Term)
		}
	}
	if rec.TornTail != nil {
		fmt.Fprintf(w, "torn tail (would be truncated at start-up): %v\n", rec.TornTail)
	}
	fmt.Fprintf(w, "entries:  %d\n", len(rec.Entries))
	for i, e := range rec.Entries {
		// The commit index on disk is written lazily, with the next batch: entries after it
		// may well be committed, and acknowledged, elsewhere. Mark where this node's
		// knowledge ends, not that they are uncommitted.
		if e.Index > hs.Commit && (i == 0 || rec.Entries[i-1].Index <= hs.Commit) {
			fmt.Fprintf(w, "-- after the commit index this node recorded (%d); these may be committed by now --\n", hs.Commit)
		}
		fmt.Fprintf(w, "%d term=%d %s\n", e.Index, e.Term, describeEntry(e))
	}
	return nil
}

func nodeName(id uint64) string {
	if id == raft.None {
		return "none"
	}
	return fmt.Sprintf("node %d", id)
}

// describeEntry renders an entry's command the way an operator thinks of it.
func describeEntry(e raft.Entry) string {
	if e.Type == raft.EntryNoop {
		return "NOOP"
	}
	cmd, err := mvcc.Decode(e.Data)
	if err != nil {
		return fmt.Sprintf("<undecodable %d bytes: %v>", len(e.Data), err)
	}
	if v1, ok := asV1(&cmd); ok {
		return v1.String()
	}
	return cmd.String()
}

// asV1 renders a one-key put, delete or read as georaft.v1's SET, DEL or GET.
func asV1(c *mvcc.Command) (kv.Command, bool) {
	t := c.Txn
	if c.Kind != mvcc.KindTxn || len(t.GetCompare()) > 0 || len(t.GetFailure()) > 0 || len(t.GetSuccess()) != 1 {
		return kv.Command{}, false
	}
	v := kv.Command{ClientID: c.ClientID, Seq: c.Seq}
	op := t.GetSuccess()[0]
	switch {
	case op.GetRequestPut() != nil:
		p := op.GetRequestPut()
		if p.Lease != 0 || p.IgnoreLease || p.IgnoreValue {
			return kv.Command{}, false
		}
		v.Op, v.Key, v.Value = kv.OpSet, p.Key, p.Value
	case op.GetRequestDeleteRange() != nil && len(op.GetRequestDeleteRange().RangeEnd) == 0:
		v.Op, v.Key = kv.OpDelete, op.GetRequestDeleteRange().Key
	case op.GetRequestRange() != nil && len(op.GetRequestRange().RangeEnd) == 0:
		v.Op, v.Key = kv.OpGet, op.GetRequestRange().Key
	default:
		return kv.Command{}, false
	}
	return v, true
}
