package chaos

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/georaft/georaft/client/etcdv3"
	"github.com/georaft/georaft/history"
)

// AnomalyWatch: the etcd watch broke one of its guarantees (order, no gaps, no duplicates,
// every change seen, events that match the writes).
const AnomalyWatch = "watch"

// The watch checker follows every key with one etcd watch from revision 1 for the whole run,
// through the faults: when its stream breaks, or stays silent (a paused or cut-off node
// answers no progress request), it resumes on the next endpoint from the revision after the
// last event it got. Every write of the workload changes exactly one key in its own revision,
// so the events must come at revisions 2, 3, 4, ... with nothing missing or repeated, up to
// the cluster's final revision, and each must be a write the history holds.

type watchEvent struct {
	rev   int64
	typ   mvccpb.Event_EventType
	key   string
	value string
}

type watchChecker struct {
	conn *etcdv3.Conn
	logf func(string, ...any)

	mu         sync.Mutex
	events     []watchEvent
	reconnects int
	fatal      string
	// retargeted holds the members' endpoints after a membership change, taken up at the
	// next resume: a run that replaces every original node must still follow the cluster.
	retargeted []string

	cancel context.CancelFunc
	done   chan struct{}
}

// watchSilence is how long a stream may stay without any answer (events or progress) before
// the checker gives up on its node and resumes elsewhere.
const watchSilence = 3 * time.Second

func startWatchChecker(endpoints []string, logf func(string, ...any)) (*watchChecker, error) {
	conn, err := etcdv3.Dial(endpoints, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	wc := &watchChecker{conn: conn, logf: logf, cancel: cancel, done: make(chan struct{})}
	go wc.run(ctx)
	return wc, nil
}

func (wc *watchChecker) next() int64 {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if len(wc.events) == 0 {
		return 1
	}
	return wc.events[len(wc.events)-1].rev + 1
}

func (wc *watchChecker) run(ctx context.Context) {
	defer close(wc.done)
	defer func() { wc.conn.Close() }()
	for ctx.Err() == nil {
		err := wc.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		wc.mu.Lock()
		wc.reconnects++
		fatal := wc.fatal
		wc.mu.Unlock()
		if fatal != "" {
			return
		}
		wc.logf("watch checker: stream on %s ended (%v); resuming from revision %d on the next node", wc.conn.Endpoint(), err, wc.next())
		if !wc.takeRetarget() {
			wc.conn.Next()
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// follow runs one stream until it fails or falls silent.
func (wc *watchChecker) follow(ctx context.Context) error {
	cc, err := wc.conn.Current()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := pb.NewWatchClient(cc).Watch(sctx)
	if err != nil {
		return err
	}
	start := wc.next()
	if err := stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte{0}, RangeEnd: []byte{0}, StartRevision: start}}}); err != nil {
		return err
	}
	var heard sync.Mutex
	last := time.Now()
	go func() {
		t := time.NewTicker(watchSilence / 4)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			heard.Lock()
			silent := time.Since(last)
			heard.Unlock()
			if silent > watchSilence {
				cancel()
				return
			}
			_ = stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
		}
	}()
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		heard.Lock()
		last = time.Now()
		heard.Unlock()
		if resp.CompactRevision != 0 || (resp.Canceled && !resp.Created) {
			wc.mu.Lock()
			wc.fatal = fmt.Sprintf("the watch from revision %d was canceled (compact revision %d): %s", start, resp.CompactRevision, resp.CancelReason)
			wc.mu.Unlock()
			return fmt.Errorf("%s", wc.fatal)
		}
		wc.mu.Lock()
		for _, ev := range resp.Events {
			wc.events = append(wc.events, watchEvent{rev: ev.Kv.ModRevision, typ: ev.Type, key: string(ev.Kv.Key), value: string(ev.Kv.Value)})
		}
		wc.mu.Unlock()
	}
}

// retarget has the checker resume on endpoints from now on (the members after a change).
// The current stream goes on while it lasts: a removed node's stream ends by itself.
func (wc *watchChecker) retarget(endpoints []string) {
	wc.mu.Lock()
	wc.retargeted = endpoints
	wc.mu.Unlock()
}

// takeRetarget switches to the endpoints retarget gave, if any, and reports whether it did.
func (wc *watchChecker) takeRetarget() bool {
	wc.mu.Lock()
	eps := wc.retargeted
	wc.retargeted = nil
	wc.mu.Unlock()
	if eps == nil {
		return false
	}
	conn, err := etcdv3.Dial(eps, nil)
	if err != nil {
		wc.logf("watch checker: cannot follow the new members %v: %v", eps, err)
		return false
	}
	wc.conn.Close()
	wc.conn = conn
	return true
}

// waitFor waits until the watch delivered revision rev.
func (wc *watchChecker) waitFor(rev int64, timeout time.Duration) bool {
	return poll(context.Background(), timeout, 20*time.Millisecond, func() bool { return wc.next() > rev })
}

func (wc *watchChecker) stop() {
	wc.cancel()
	<-wc.done
}

// check holds the events against the guarantees and the history: ops are every operation,
// finalRev the cluster's revision after the final reads.
func (wc *watchChecker) check(ops []history.Op, finalRev int64) []Anomaly {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	var out []Anomaly
	add := func(format string, args ...any) {
		if len(out) < 20 {
			out = append(out, Anomaly{AnomalyWatch, fmt.Sprintf(format, args...)})
		}
	}
	if wc.fatal != "" {
		add("%s", wc.fatal)
	}
	written := map[string]bool{} // key and value of every write that may have happened
	deleted := map[string]bool{}
	for _, op := range ops {
		if !isWrite(op) || op.Outcome == history.Failed {
			continue
		}
		if op.Kind == history.Delete {
			deleted[op.Key] = true
		} else {
			written[op.Key+"\x00"+op.Value] = true
		}
	}
	want := int64(2) // the first write of a new store makes revision 2
	state := map[string]string{}
	for _, ev := range wc.events {
		switch {
		case ev.rev < want:
			add("event at revision %d after revision %d: out of order or repeated", ev.rev, want-1)
			continue
		case ev.rev > want:
			add("no event at revisions %d to %d: a gap", want, ev.rev-1)
		}
		want = ev.rev + 1
		if ev.typ == mvccpb.PUT {
			if !written[ev.key+"\x00"+ev.value] {
				add("PUT %s = %s at revision %d: no client wrote that value", ev.key, strconv.Quote(ev.value), ev.rev)
			}
			state[ev.key] = ev.value
		} else {
			if !deleted[ev.key] {
				add("DELETE %s at revision %d: no client deleted it", ev.key, ev.rev)
			}
			delete(state, ev.key)
		}
	}
	if want-1 != finalRev {
		add("the watch ended at revision %d, the cluster is at revision %d", want-1, finalRev)
	}
	// The watch's picture of the end state must be what the final reads found.
	for _, op := range ops {
		if op.ClientID != finalClientID || op.Kind != history.Get || op.Outcome != history.OK {
			continue
		}
		v, ok := state[op.Key]
		if ok != op.Found || (ok && v != op.Value) {
			add("key %s: the watch ends with %s, the final read found %s", op.Key, describeFound(ok, v), describeFound(op.Found, op.Value))
		}
	}
	return out
}

func describeFound(found bool, v string) string {
	if !found {
		return "it absent"
	}
	return strconv.Quote(v)
}

// currentRevision asks the cluster (linearizably) for its revision.
func currentRevision(ctx context.Context, endpoints []string) (int64, error) {
	conn, err := etcdv3.Dial(endpoints, nil)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := conn.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, CountOnly: true})
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}
