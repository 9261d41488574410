package node

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/georaft/georaft/node/mvcc"
	"github.com/georaft/georaft/raft"
)

// Leases are granted and revoked through the log, but when one expires is decided by the
// leader alone, on its monotonic clock: it keeps a deadline per lease, pushes it back on
// every keep-alive, and proposes a revoke once it passes. No wall clock and no other node's
// clock is involved. A node that becomes leader starts every lease's countdown afresh at its
// full TTL, so a failover can only lengthen a lease, never cut it short: the keep-alives the
// old leader saw are not known here, and expiring early would delete keys a live client
// still holds.

// maxLeaseTTL is etcd's cap on a lease's TTL, in seconds.
const maxLeaseTTL = 9_000_000_000

// lessorTick is how often the leader looks for expired leases.
const lessorTick = 100 * time.Millisecond

// revokeRetry is how long the leader waits before proposing the revoke of an expired lease
// again, when the first did not commit.
const revokeRetry = time.Second

type lessor struct {
	n  *Node
	mu sync.Mutex
	// primaryTerm is the term in which this node leads and keeps deadlines; 0 when it does not.
	primaryTerm uint64
	deadlines   map[int64]time.Duration
	revoking    map[int64]time.Duration // when the revoke of an expired lease was proposed
}

func newLessor(n *Node) *lessor {
	return &lessor{n: n, deadlines: make(map[int64]time.Duration), revoking: make(map[int64]time.Duration)}
}

// minTTL is the shortest TTL granted, in seconds: a lease must outlive an election, or a
// leader change alone would expire it (etcd's rule: 1.5 election timeouts).
func (l *lessor) minTTL() int64 {
	d := l.n.cfg.Timing.ElectionTimeoutMax * 3 / 2
	return int64((d + time.Second - 1) / time.Second)
}

func (l *lessor) run() {
	t := time.NewTicker(lessorTick)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.n.donec:
			return
		}
		for _, id := range l.tick() {
			go l.revoke(id)
		}
	}
}

// tick follows leadership and returns the leases to revoke.
func (l *lessor) tick() []int64 {
	st := l.n.statusSnapshot()
	now := l.n.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if st.Role != raft.Leader {
		l.primaryTerm = 0
		clear(l.deadlines)
		clear(l.revoking)
		return nil
	}
	leases := l.n.store.Leases()
	if l.primaryTerm != st.Term {
		// Newly leader: every lease gets its full TTL from now.
		l.primaryTerm = st.Term
		clear(l.deadlines)
		clear(l.revoking)
	}
	for id, ttl := range leases {
		if _, ok := l.deadlines[id]; !ok {
			l.deadlines[id] = now + time.Duration(ttl)*time.Second
		}
	}
	var expired []int64
	for id, deadline := range l.deadlines {
		if _, ok := leases[id]; !ok {
			delete(l.deadlines, id)
			delete(l.revoking, id)
			continue
		}
		if now < deadline {
			continue
		}
		if at, ok := l.revoking[id]; ok && now-at < revokeRetry {
			continue
		}
		l.revoking[id] = now
		expired = append(expired, id)
	}
	return expired
}

func (l *lessor) revoke(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), l.n.cfg.Limits.RequestTimeout)
	defer cancel()
	res, err := l.n.proposeCommand(ctx, &mvcc.Command{Kind: mvcc.KindLeaseRevoke, LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}})
	if err == nil && res.result.Err == nil {
		l.n.dump.Printf("lease %d expired and was revoked at index %d", id, res.index)
	}
}

// primary reports whether this node keeps the deadlines now.
func (l *lessor) primary() bool {
	st := l.n.statusSnapshot()
	l.mu.Lock()
	defer l.mu.Unlock()
	return st.Role == raft.Leader && l.primaryTerm == st.Term
}

// keepAlive pushes a lease's deadline back to its full TTL and returns the TTL; ok false when
// this node is not the leader keeping deadlines.
func (l *lessor) keepAlive(id int64) (ttl int64, found, ok bool) {
	if !l.primary() {
		return 0, false, false
	}
	ttl, found = l.n.store.Lease(id)
	if !found {
		return 0, false, true
	}
	l.mu.Lock()
	l.deadlines[id] = l.n.clock.Now() + time.Duration(ttl)*time.Second
	l.mu.Unlock()
	return ttl, true, true
}

// remaining returns the seconds left before the lease expires, as the leader sees it now.
func (l *lessor) remaining(id int64, granted int64) int64 {
	l.mu.Lock()
	deadline, ok := l.deadlines[id]
	l.mu.Unlock()
	if !ok {
		return granted
	}
	left := deadline - l.n.clock.Now()
	if left <= 0 {
		return 0
	}
	return int64((left + time.Second - 1) / time.Second)
}

// newLeaseID picks an unused positive lease ID for a grant that did not name one.
func (l *lessor) newLeaseID() int64 {
	for {
		id := rand.Int64N(1<<62) + 1
		if _, taken := l.n.store.Lease(id); !taken {
			return id
		}
	}
}
