package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	georaftv1 "github.com/georaft/georaft/proto/georaft/v1"
	"github.com/georaft/georaft/raft"
)

// snapshotChunkBytes is the body carried by one InstallSnapshotRequest: big enough that
// per-message overhead vanishes, small enough to interleave with the message stream.
const snapshotChunkBytes = 1 << 20

// chunkBytes keeps a chunk and its header under MaxMessageBytes.
func (t *Transport) chunkBytes() int {
	return min(snapshotChunkBytes, t.cfg.MaxMessageBytes-4096)
}

// SendSnapshot streams the snapshot that open returns to peer to, in the background, on a
// stream of its own, and then calls ReportSnapshot(to, ok). One snapshot per peer is in
// flight at a time; a second one while the first runs is reported failed at once.
func (t *Transport) SendSnapshot(to, term uint64, meta raft.SnapshotMeta, open func() (io.ReadCloser, int64, error)) {
	p := t.peer(to)
	if p == nil {
		t.log.Error("dropping snapshot to a node that is not a peer", "to", to, "index", meta.Index)
		return
	}
	t.closeMu.Lock()
	defer t.closeMu.Unlock()
	if t.closed.Load() {
		return
	}
	if !p.snapshotBusy.CompareAndSwap(false, true) {
		t.log.Warn("snapshot to peer already in flight; refusing another", "peer", to, "index", meta.Index)
		t.reports.snapshot(to, false)
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer p.snapshotBusy.Store(false)
		sent, err := p.sendSnapshot(p.ctx, term, meta, open)
		if p.ctx.Err() != nil {
			return
		}
		if err != nil {
			t.log.Warn("sending snapshot failed", "peer", to, "term", term, "index", meta.Index, "snap_term", meta.Term, "sent_bytes", sent, "err", err)
			t.reports.snapshot(to, false)
			return
		}
		t.log.Info("snapshot sent", "peer", to, "term", term, "index", meta.Index, "snap_term", meta.Term, "bytes", sent)
		t.reports.snapshot(to, true)
	}()
}

func (p *peer) sendSnapshot(ctx context.Context, term uint64, meta raft.SnapshotMeta, open func() (io.ReadCloser, int64, error)) (sent int64, err error) {
	body, size, err := open()
	if err != nil {
		return 0, fmt.Errorf("open snapshot at index %d: %w", meta.Index, err)
	}
	defer body.Close()
	if size < 0 {
		return 0, fmt.Errorf("snapshot at index %d: negative size %d", meta.Index, size)
	}
	// Cancelling this context on any early return tells the receiver the transfer failed.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := p.client.InstallSnapshot(sctx)
	if err != nil {
		return 0, fmt.Errorf("open snapshot stream: %w", err)
	}
	first := &georaftv1.InstallSnapshotRequest{
		Header: p.header,
		Term:   term,
		Meta:   &georaftv1.SnapshotMeta{Index: meta.Index, Term: meta.Term, ConfState: EncodeConfState(meta.ConfState)},
		Size:   uint64(size),
	}
	chunk := p.t.chunkBytes()
	for {
		// A fresh buffer per chunk: gRPC may still hold the previous message after Send.
		buf := make([]byte, min(int64(chunk), max(size-sent, 0)+1))
		n, readErr := io.ReadFull(body, buf)
		if n > 0 || first != nil {
			req := first
			if req == nil {
				req = &georaftv1.InstallSnapshotRequest{}
			}
			first = nil
			req.Chunk = buf[:n]
			if sendErr := stream.Send(req); sendErr != nil {
				if errors.Is(sendErr, io.EOF) {
					// The receiver ended the stream; its status says why.
					_, sendErr = stream.CloseAndRecv()
				}
				return sent, fmt.Errorf("send snapshot chunk at offset %d: %w", sent, sendErr)
			}
			sent += int64(n)
		}
		if sent > size {
			return sent, fmt.Errorf("snapshot at index %d is longer than its declared %d bytes", meta.Index, size)
		}
		if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
			break
		}
		if readErr != nil {
			return sent, fmt.Errorf("read snapshot at offset %d: %w", sent, readErr)
		}
	}
	if sent != size {
		return sent, fmt.Errorf("snapshot at index %d ended after %d of its declared %d bytes", meta.Index, sent, size)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return sent, fmt.Errorf("finish snapshot: %w", err)
	}
	if resp.GetReceived() != uint64(size) {
		return sent, fmt.Errorf("peer stored %d of %d snapshot bytes", resp.GetReceived(), size)
	}
	return sent, nil
}

func (s *peerServer) InstallSnapshot(stream georaftv1.PeerService_InstallSnapshotServer) error {
	t := s.t
	if t.closed.Load() {
		return errClosed
	}
	ctx := stream.Context()
	certID, err := t.identify(ctx, "InstallSnapshot")
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	from, err := t.checkHeader(ctx, "InstallSnapshot", first.GetHeader(), certID)
	if err != nil {
		return err
	}
	if first.GetMeta() == nil {
		return status.Error(codes.InvalidArgument, "first snapshot chunk carries no meta")
	}
	if first.GetSize() > math.MaxInt64 {
		return status.Errorf(codes.InvalidArgument, "snapshot size %d is out of range", first.GetSize())
	}
	meta := raft.SnapshotMeta{Index: first.GetMeta().GetIndex(), Term: first.GetMeta().GetTerm(),
		ConfState: DecodeConfState(first.GetMeta().GetConfState())}
	size := int64(first.GetSize())
	r := &chunkReader{stream: stream, pending: first.GetChunk(), size: size}
	if int64(len(r.pending)) > size {
		return status.Errorf(codes.InvalidArgument, "first snapshot chunk holds %d bytes, more than the declared %d", len(r.pending), size)
	}
	r.received = int64(len(r.pending))

	if err := t.handler.HandleSnapshot(from, first.GetTerm(), meta, size, r); err != nil {
		t.log.Warn("snapshot from peer not installed", "from", from, "index", meta.Index, "snap_term", meta.Term,
			"size", size, "received", r.received, "err", err)
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Errorf(codes.Aborted, "node %d did not install snapshot at index %d: %v", t.cfg.SelfID, meta.Index, err)
	}
	if err := r.finish(); err != nil {
		return status.Errorf(codes.Internal, "node %d: snapshot at index %d: %v", t.cfg.SelfID, meta.Index, err)
	}
	return stream.SendAndClose(&georaftv1.InstallSnapshotResponse{Received: uint64(r.received)})
}

// chunkReader presents the chunks of an InstallSnapshot stream as one io.Reader of exactly
// size bytes: fewer is io.ErrUnexpectedEOF, more is an error.
type chunkReader struct {
	stream   georaftv1.PeerService_InstallSnapshotServer
	pending  []byte
	size     int64
	received int64 // bytes taken off the stream, including pending
	done     bool  // the stream ended exactly at size
	err      error
}

// finish checks, after the handler returned, that it consumed the whole snapshot and that the
// sender sent no more: a handler that read exactly size bytes need not have seen io.EOF.
func (r *chunkReader) finish() error {
	if len(r.pending) == 0 && r.received == r.size && !r.done && r.err == nil {
		if _, err := r.Read(nil); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	if !r.done {
		return fmt.Errorf("the snapshot handler returned after reading %d of %d bytes", r.received-int64(len(r.pending)), r.size)
	}
	return nil
}

func (r *chunkReader) Read(b []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		req, err := r.stream.Recv()
		switch {
		case errors.Is(err, io.EOF):
			if r.received < r.size {
				r.err = fmt.Errorf("snapshot stream ended after %d of %d bytes: %w", r.received, r.size, io.ErrUnexpectedEOF)
				continue
			}
			r.done = true
		case err != nil:
			r.err = fmt.Errorf("snapshot stream after %d of %d bytes: %w", r.received, r.size, err)
		case int64(len(req.GetChunk())) > r.size-r.received:
			r.err = fmt.Errorf("snapshot stream carries more than its declared %d bytes", r.size)
		default:
			r.pending = req.GetChunk()
			r.received += int64(len(r.pending))
		}
	}
	n := copy(b, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}
