package mvcc

import (
	"bytes"
	"context"
	"errors"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// A watch delivers every event on its keys from its start revision on, in revision order,
// without gaps or duplicates. Each watcher catches up from the engine's revision log until it
// reaches the newest revision, then joins the synced set that Apply hands events to directly.
// A synced watcher that falls behind (its buffer is full) leaves the set and catches up from
// the engine again, so a slow client costs disk reads, never unbounded memory, and never
// holds Apply up.

// WatchOptions say what a watch sees.
type WatchOptions struct {
	Key []byte
	// End is etcd's range_end: nil (or empty) for Key alone, "\x00" for every key from Key on.
	End []byte
	// StartRev is the first revision delivered; 0 means the one after the newest.
	StartRev int64
	PrevKV   bool
	NoPut    bool
	NoDelete bool
}

// WatchBatch is what a watcher delivers.
type WatchBatch struct {
	// Events are in revision order, all at revisions ≤ Revision.
	Events []*mvccpb.Event
	// Revision is the revision up to which the watcher has delivered everything.
	Revision int64
	// Progress: no events, a progress marker asked for with RequestProgress.
	Progress bool
	// CompactRev is set (and the watch ends) when the start revision is already compacted.
	CompactRev int64
}

// Watcher is one watch. Its batches arrive on C until the watch ends (Cancel, a compacted
// start revision, or the store closing), when C is closed.
type Watcher struct {
	C <-chan WatchBatch

	out    chan WatchBatch
	s      *Store
	key    []byte
	end    []byte // for rangeAt semantics: nil one key, empty from key on
	opts   WatchOptions
	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the hub, under its lock.
	in         chan hubItem
	syncedFrom int64
	resumeAt   int64
}

type hubItem struct {
	rev      int64
	events   []*mvccpb.Event
	progress bool
}

// watchBuffer is how many revisions a synced watcher may have pending before it falls back to
// catching up from the engine.
const watchBuffer = 128

// maxCatchUpEvents bounds one batch read from the revision log.
const maxCatchUpEvents = 1000

type hub struct {
	s        *Store
	mu       sync.Mutex
	synced   map[*Watcher]struct{}
	closed   bool
	watchers sync.WaitGroup
}

func newHub(s *Store) *hub { return &hub{s: s, synced: make(map[*Watcher]struct{})} }

// Watch starts a watch. It ends when ctx does, when Cancel is called or when the store closes.
func (s *Store) Watch(ctx context.Context, o WatchOptions) (*Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan WatchBatch, 16)
	w := &Watcher{C: out, out: out, s: s, key: bytes.Clone(o.Key), end: rangeEnd(o.End), opts: o, ctx: ctx, cancel: cancel}
	if len(o.End) > 0 && !(len(o.End) == 1 && o.End[0] == 0) {
		w.end = bytes.Clone(o.End)
	}
	h := s.watch
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		cancel()
		return nil, errors.New("mvcc: store closed")
	}
	h.watchers.Add(1)
	h.mu.Unlock()
	next := o.StartRev
	if next <= 0 {
		next = s.Rev() + 1
	}
	go func() {
		defer h.watchers.Done()
		defer close(out)
		defer h.leave(w)
		w.run(next)
	}()
	return w, nil
}

// Cancel ends the watch.
func (w *Watcher) Cancel() { w.cancel() }

// Synced reports whether the watcher has delivered everything up to the newest revision and
// follows Apply.
func (w *Watcher) Synced() bool {
	h := w.s.watch
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.synced[w]
	return ok
}

// RequestProgress asks for a progress batch once the watcher is synced; it reports whether
// it was (a watcher still catching up is not: ask again later).
func (w *Watcher) RequestProgress() bool {
	h := w.s.watch
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.synced[w]; !ok {
		return false
	}
	select {
	case w.in <- hubItem{rev: w.s.Rev(), progress: true}:
		return true
	default:
		return false
	}
}

func (w *Watcher) matches(key []byte) bool {
	if w.end == nil {
		return bytes.Equal(key, w.key)
	}
	if bytes.Compare(key, w.key) < 0 {
		return false
	}
	return len(w.end) == 0 || bytes.Compare(key, w.end) < 0
}

// filter keeps the events this watcher wants, without prev_kv unless asked for.
func (w *Watcher) filter(events []*mvccpb.Event) []*mvccpb.Event {
	var out []*mvccpb.Event
	for _, ev := range events {
		if !w.matches(ev.Kv.Key) {
			continue
		}
		if (ev.Type == mvccpb.PUT && w.opts.NoPut) || (ev.Type == mvccpb.DELETE && w.opts.NoDelete) {
			continue
		}
		if !w.opts.PrevKV && ev.PrevKv != nil {
			ev = &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		}
		out = append(out, ev)
	}
	return out
}

func (w *Watcher) send(b WatchBatch) bool {
	select {
	case w.out <- b:
		return true
	case <-w.ctx.Done():
		return false
	case <-w.s.stopc:
		return false
	}
}

// run alternates between catching up from the engine and following Apply.
func (w *Watcher) run(next int64) {
	for {
		var ok bool
		if next, ok = w.catchUp(next); !ok {
			return
		}
		in, ok := w.s.watch.join(w, next)
		if !ok {
			continue // Apply moved on meanwhile: catch up again
		}
		if in == nil {
			return
		}
		if next, ok = w.follow(in, next); !ok {
			return
		}
	}
}

// catchUp delivers the history from next to the newest revision and returns where it ended.
func (w *Watcher) catchUp(next int64) (int64, bool) {
	for {
		st := w.s.st.Load()
		if next > st.rev {
			return next, true
		}
		if next < st.compactRev {
			w.send(WatchBatch{CompactRev: st.compactRev, Revision: st.rev})
			return 0, false
		}
		events, last, err := w.s.history(w, next, st.rev)
		if err != nil {
			if errors.Is(err, ErrCompacted) {
				continue // compacted meanwhile: the check above answers
			}
			w.s.log.Error("watch: reading the revision log failed; ending the watch", "err", err)
			return 0, false
		}
		if len(events) > 0 || last == st.rev {
			if !w.send(WatchBatch{Events: events, Revision: last}) {
				return 0, false
			}
		}
		next = last + 1
	}
}

// follow delivers what Apply hands over until the watcher falls behind.
func (w *Watcher) follow(in chan hubItem, next int64) (int64, bool) {
	for {
		select {
		case it, open := <-in:
			if !open {
				h := w.s.watch
				h.mu.Lock()
				resume, closed := w.resumeAt, h.closed
				h.mu.Unlock()
				if closed {
					return 0, false
				}
				return max(resume, next), true
			}
			b := WatchBatch{Events: it.events, Revision: it.rev, Progress: it.progress}
			if !w.send(b) {
				return 0, false
			}
			next = max(next, it.rev+1)
		case <-w.ctx.Done():
			return 0, false
		}
	}
}

// join makes w synced if it has delivered everything up to the newest revision. It returns
// the channel Apply will feed, ok false if w must catch up first, or a nil channel when the
// store is closing.
func (h *hub) join(w *Watcher, next int64) (chan hubItem, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, true
	}
	if next <= h.s.st.Load().rev {
		return nil, false
	}
	w.in = make(chan hubItem, watchBuffer)
	w.syncedFrom = next
	h.synced[w] = struct{}{}
	return w.in, true
}

func (h *hub) leave(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.synced[w]; ok {
		delete(h.synced, w)
		close(w.in)
	}
}

// notify hands one revision's events to the synced watchers. Called by Apply in revision
// order, after the revision is published.
func (h *hub) notify(rev int64, events []*mvccpb.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.synced {
		if rev < w.syncedFrom {
			continue // it read this revision from the engine already
		}
		mine := w.filter(events)
		if len(mine) == 0 {
			continue
		}
		select {
		case w.in <- hubItem{rev: rev, events: mine}:
		default:
			// Behind: drop to catching up from this revision.
			delete(h.synced, w)
			w.resumeAt = rev
			close(w.in)
		}
	}
}

// resync sends every synced watcher back to catching up from after oldRev: a restored
// snapshot brought revisions Apply never announced.
func (h *hub) resync(oldRev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.synced {
		delete(h.synced, w)
		w.resumeAt = oldRev + 1
		close(w.in)
	}
}

func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	for w := range h.synced {
		delete(h.synced, w)
		close(w.in)
	}
	h.mu.Unlock()
	h.watchers.Wait()
}

// history reads the events for w from the revision log, from revision from to at most to,
// up to maxCatchUpEvents of them (whole revisions). It returns them and the last revision
// it covered.
func (s *Store) history(w *Watcher, from, to int64) ([]*mvccpb.Event, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if from < s.st.Load().compactRev {
		return nil, 0, ErrCompacted
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: revisionKey(from, 0), UpperBound: revisionKey(to+1, 0)})
	if err != nil {
		return nil, 0, err
	}
	defer it.Close()
	var events []*mvccpb.Event
	last := to
	for ok := it.First(); ok; ok = it.Next() {
		rev, _ := revisionOf(it.Key())
		if len(events) >= maxCatchUpEvents && rev > events[len(events)-1].Kv.ModRevision {
			last = rev - 1
			break
		}
		v := it.Value()
		if len(v) < 1 {
			return nil, 0, errors.New("mvcc: malformed revision log record")
		}
		typ, key := mvccpb.Event_EventType(v[0]), v[1:]
		if !w.matches(key) || (typ == mvccpb.PUT && w.opts.NoPut) || (typ == mvccpb.DELETE && w.opts.NoDelete) {
			continue
		}
		ev := &mvccpb.Event{Type: typ}
		if typ == mvccpb.PUT {
			rec, mod, ok, err := latest(s.db, key, rev)
			if err != nil {
				return nil, 0, err
			}
			if !ok || mod != rev {
				return nil, 0, ErrCompacted
			}
			ev.Kv = rec.keyValue(bytes.Clone(key), rev, true)
		} else {
			ev.Kv = &mvccpb.KeyValue{Key: bytes.Clone(key), ModRevision: rev}
		}
		if w.opts.PrevKV {
			if rec, mod, ok, err := latest(s.db, key, rev-1); err != nil {
				return nil, 0, err
			} else if ok {
				ev.PrevKv = rec.keyValue(bytes.Clone(key), mod, true)
			}
		}
		events = append(events, ev)
	}
	return events, last, it.Error()
}
