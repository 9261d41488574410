package node

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/georaft/georaft/node/mvcc"
)

// Watches are served by the member the client reached, from its own state machine: every
// member applies the same log, so a watch sees the same events in the same order anywhere,
// and one resumed from a revision after a reconnect (to this member or another) continues
// without a gap. A member that has not applied the start revision yet waits for it.

// invalidWatchID is etcd's watch ID for answers that are about no single watch.
const invalidWatchID = -1

// watchProgressInterval is how often a watch created with progress_notify hears the revision
// it has reached when no event came (etcd's default).
var watchProgressInterval = 10 * time.Minute

// progressRetry is how soon a progress request is tried again while a watch still catches up.
const progressRetry = 100 * time.Millisecond

type watchStream struct {
	s      *etcdServer
	ctx    context.Context
	sendc  chan *pb.WatchResponse
	mu     sync.Mutex
	nextID int64
	// watches by ID, with the settings the responses need.
	watches map[int64]*streamWatch
	// progressWanted: a RequestProgress not answered yet. progressGot counts the markers of
	// the current round.
	progressWanted bool
	progressRound  map[int64]bool
	progressRev    int64 // the lowest revision a marker of the round carried
}

type streamWatch struct {
	id       int64
	w        *mvcc.Watcher
	progress bool // progress_notify
	// sawEvent: an event was sent since the last periodic progress notification.
	sawEvent bool
}

func (s *etcdServer) Watch(stream pb.Watch_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ws := &watchStream{s: s, ctx: ctx, sendc: make(chan *pb.WatchResponse, 64), watches: make(map[int64]*streamWatch)}
	defer ws.closeAll()
	errc := make(chan error, 2)
	go func() { errc <- ws.sendLoop(stream) }()
	go ws.progressLoop()
	go func() { errc <- ws.recvLoop(stream) }()
	select {
	case err := <-errc:
		return err
	case <-s.n.drainc:
		return status.Error(codes.Unavailable, "etcdserver: this member is shutting down; watch again on another member from the next revision")
	}
}

func (ws *watchStream) recvLoop(stream pb.Watch_WatchServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ws.ctx.Err() != nil {
				return rpctypes.ErrGRPCWatchCanceled
			}
			return err
		}
		switch r := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			ws.create(r.CreateRequest)
		case *pb.WatchRequest_CancelRequest:
			ws.cancel(r.CancelRequest.GetWatchId())
		case *pb.WatchRequest_ProgressRequest:
			ws.mu.Lock()
			ws.progressWanted = true
			ws.mu.Unlock()
			ws.tryProgress()
		}
	}
}

func (ws *watchStream) send(r *pb.WatchResponse) bool {
	select {
	case ws.sendc <- r:
		return true
	case <-ws.ctx.Done():
		return false
	}
}

func (ws *watchStream) sendLoop(stream pb.Watch_WatchServer) error {
	for {
		select {
		case r := <-ws.sendc:
			if err := stream.Send(r); err != nil {
				return err
			}
		case <-ws.ctx.Done():
			return nil
		}
	}
}

func (ws *watchStream) header(rev int64) *pb.ResponseHeader {
	return ws.s.n.etcdHeader(&pb.ResponseHeader{Revision: rev})
}

func (ws *watchStream) create(c *pb.WatchCreateRequest) {
	if c == nil {
		return
	}
	store := ws.s.n.store
	key := c.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key, as etcd reads an empty one
	}
	if c.StartRevision < 0 {
		ws.send(&pb.WatchResponse{Header: ws.header(store.Rev()), WatchId: invalidWatchID, Created: true, Canceled: true, CancelReason: rpctypes.ErrCompacted.Error()})
		return
	}
	ws.mu.Lock()
	id := c.WatchId
	if id == 0 {
		for ws.watches[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	} else if ws.watches[id] != nil || id < 0 {
		ws.mu.Unlock()
		ws.send(&pb.WatchResponse{Header: ws.header(store.Rev()), WatchId: invalidWatchID, Created: true, Canceled: true, CancelReason: "mvcc: duplicate watch ID provided on the WatchStream"})
		return
	}
	o := mvcc.WatchOptions{Key: key, End: c.RangeEnd, StartRev: c.StartRevision, PrevKV: c.PrevKv}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			o.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			o.NoDelete = true
		}
	}
	w, err := store.Watch(ws.ctx, o)
	if err != nil {
		ws.mu.Unlock()
		ws.send(&pb.WatchResponse{Header: ws.header(store.Rev()), WatchId: invalidWatchID, Created: true, Canceled: true, CancelReason: err.Error()})
		return
	}
	sw := &streamWatch{id: id, w: w, progress: c.ProgressNotify}
	ws.watches[id] = sw
	ws.mu.Unlock()
	ws.s.n.m.watchers.Inc()
	// Created goes out before the watch's first event: both go through sendc, in this order.
	ws.send(&pb.WatchResponse{Header: ws.header(store.Rev()), WatchId: id, Created: true})
	go ws.forward(sw)
}

// forward passes one watch's batches on to the stream.
func (ws *watchStream) forward(sw *streamWatch) {
	defer ws.s.n.m.watchers.Dec()
	for b := range sw.w.C {
		switch {
		case b.CompactRev != 0:
			ws.send(&pb.WatchResponse{Header: ws.header(b.Revision), WatchId: sw.id, CompactRevision: b.CompactRev, Canceled: true,
				CancelReason: rpctypes.ErrCompacted.Error()})
			ws.mu.Lock()
			delete(ws.watches, sw.id)
			ws.mu.Unlock()
			return
		case b.Progress:
			ws.progressMarker(sw, b.Revision)
		case len(b.Events) > 0:
			ws.mu.Lock()
			sw.sawEvent = true
			ws.mu.Unlock()
			if !ws.send(&pb.WatchResponse{Header: ws.header(b.Revision), WatchId: sw.id, Events: b.Events}) {
				return
			}
		}
	}
}

func (ws *watchStream) cancel(id int64) {
	ws.mu.Lock()
	sw := ws.watches[id]
	delete(ws.watches, id)
	ws.mu.Unlock()
	if sw == nil {
		return
	}
	sw.w.Cancel()
	ws.send(&pb.WatchResponse{Header: ws.header(ws.s.n.store.Rev()), WatchId: id, Canceled: true})
	ws.mu.Lock()
	if ws.progressRound != nil {
		delete(ws.progressRound, id)
		if len(ws.progressRound) > 0 {
			ws.finishRoundLocked()
			return
		}
		ws.progressRound, ws.progressRev = nil, 0
	}
	ws.mu.Unlock()
}

func (ws *watchStream) closeAll() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for id, sw := range ws.watches {
		sw.w.Cancel()
		delete(ws.watches, id)
	}
}

// tryProgress starts a progress round if one is wanted and none runs: every watch, if synced,
// gets a marker in line with its events; once all markers came back, every event up to the
// revision was sent, and the stream hears that revision.
func (ws *watchStream) tryProgress() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.progressWanted || ws.progressRound != nil {
		return
	}
	if len(ws.watches) == 0 {
		ws.progressWanted = false
		return
	}
	for _, sw := range ws.watches {
		if !sw.w.Synced() {
			return // still catching up: retried by progressLoop
		}
	}
	round := make(map[int64]bool, len(ws.watches))
	for id, sw := range ws.watches {
		if !sw.w.RequestProgress() {
			return // fell behind meanwhile: retried by progressLoop
		}
		round[id] = false
	}
	ws.progressWanted = false
	ws.progressRound = round
}

// progressMarker collects one watch's marker; for a progress_notify tick on a single watch
// (no round running) it answers that watch alone.
func (ws *watchStream) progressMarker(sw *streamWatch, rev int64) {
	ws.mu.Lock()
	if ws.progressRound == nil {
		ws.mu.Unlock()
		ws.send(&pb.WatchResponse{Header: ws.header(rev), WatchId: sw.id})
		return
	}
	ws.progressRound[sw.id] = true
	if ws.progressRev == 0 || rev < ws.progressRev {
		ws.progressRev = rev
	}
	ws.finishRoundLocked()
}

// finishRoundLocked answers the progress round once every watch's marker came back; called
// with mu held, it releases it.
func (ws *watchStream) finishRoundLocked() {
	for _, got := range ws.progressRound {
		if !got {
			ws.mu.Unlock()
			return
		}
	}
	rev := ws.progressRev
	ws.progressRound, ws.progressRev = nil, 0
	ws.mu.Unlock()
	ws.send(&pb.WatchResponse{Header: ws.header(rev), WatchId: invalidWatchID})
}

// progressLoop retries pending progress requests and sends progress_notify ticks.
func (ws *watchStream) progressLoop() {
	retry := time.NewTicker(progressRetry)
	defer retry.Stop()
	notify := time.NewTicker(watchProgressInterval)
	defer notify.Stop()
	for {
		select {
		case <-ws.ctx.Done():
			return
		case <-retry.C:
			ws.tryProgress()
		case <-notify.C:
			ws.mu.Lock()
			for _, sw := range ws.watches {
				if sw.progress && !sw.sawEvent && ws.progressRound == nil {
					sw.w.RequestProgress()
				}
				sw.sawEvent = false
			}
			ws.mu.Unlock()
		}
	}
}
