// Package etcdv3 is the georaft command line's client of the etcd v3 API that every georaft
// node serves: the etcdserverpb gRPC stubs of go.etcd.io/etcd/api/v3, with failover between
// endpoints. It is small on purpose: no clientv3 (and its logging stack) in the georaft
// binary.
package etcdv3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Conn reaches a cluster through any of its endpoints.
type Conn struct {
	endpoints []string
	creds     credentials.TransportCredentials
	mu        sync.Mutex
	conns     map[string]*grpc.ClientConn
	cur       int
}

// Dial prepares connections to endpoints (host:port); nothing is dialled until a call.
func Dial(endpoints []string, tlsCfg *tls.Config) (*Conn, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("etcdv3: no endpoints")
	}
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	return &Conn{endpoints: endpoints, creds: creds, conns: make(map[string]*grpc.ClientConn)}, nil
}

// Close closes every connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ep, cc := range c.conns {
		cc.Close()
		delete(c.conns, ep)
	}
	return nil
}

func (c *Conn) conn(i int) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ep := c.endpoints[i%len(c.endpoints)]
	if cc, ok := c.conns[ep]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(c.creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return nil, err
	}
	c.conns[ep] = cc
	return cc, nil
}

// retryable says whether a call that failed with err may go to another endpoint. A read may
// always (idempotent). A write only when it certainly was not applied: the endpoint could
// not be dialled, or the cluster had no leader to take it. A connection that broke with the
// request on it may have delivered it, and a second copy could apply twice: the chaos
// checker caught a compare-and-swap retried that way reporting "not swapped" after its first
// copy had swapped.
func retryable(err error, idempotent bool) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	if msg == "etcdserver: no leader" {
		return true
	}
	if strings.HasPrefix(msg, "etcdserver:") {
		return idempotent
	}
	if idempotent {
		return true
	}
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "while dialing") ||
		strings.Contains(msg, "no such host")
}

// Call runs f, a read or anything else safe to send twice, against the current endpoint,
// moving on to the next ones while it fails for want of an endpoint and ctx allows.
func (c *Conn) Call(ctx context.Context, f func(context.Context, *grpc.ClientConn) error) error {
	return c.call(ctx, true, f)
}

// CallOnce is Call for a write: it moves on to another endpoint only when the request
// certainly did not reach the cluster.
func (c *Conn) CallOnce(ctx context.Context, f func(context.Context, *grpc.ClientConn) error) error {
	return c.call(ctx, false, f)
}

func (c *Conn) call(ctx context.Context, idempotent bool, f func(context.Context, *grpc.ClientConn) error) error {
	c.mu.Lock()
	start := c.cur
	c.mu.Unlock()
	var last error
	for i := 0; ; i++ {
		cc, err := c.conn(start + i)
		if err != nil {
			return err
		}
		// A dead endpoint should not eat a read's whole deadline: bound each try. A write has
		// one try (unless it never left), so it gets all of it.
		try, cancel := ctx, context.CancelFunc(func() {})
		if idempotent {
			try, cancel = context.WithTimeout(ctx, perTry(ctx, len(c.endpoints)))
		}
		err = f(try, cc)
		cancel()
		if err == nil || !retryable(err, idempotent) || ctx.Err() != nil {
			if err == nil && i > 0 {
				c.mu.Lock()
				c.cur = (start + i) % len(c.endpoints)
				c.mu.Unlock()
			}
			if err != nil && ctx.Err() != nil && last != nil {
				return fmt.Errorf("%w (before that: %v)", err, last)
			}
			return err
		}
		last = err
		if i%len(c.endpoints) == len(c.endpoints)-1 {
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("no endpoint answered: %w", last)
			}
		}
	}
}

func perTry(ctx context.Context, n int) time.Duration {
	d := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl)/time.Duration(min(n, 3)), 200*time.Millisecond)
	}
	return d
}

// Endpoint returns the endpoint calls go to now.
func (c *Conn) Endpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[c.cur%len(c.endpoints)]
}

// Next moves calls on to the next endpoint (after a stream on the current one broke).
func (c *Conn) Next() {
	c.mu.Lock()
	c.cur = (c.cur + 1) % len(c.endpoints)
	c.mu.Unlock()
}

// Current returns the connection calls go to now (for streams, which do not fail over).
func (c *Conn) Current() (*grpc.ClientConn, error) {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	return c.conn(cur)
}

// Range reads.
func (c *Conn) Range(ctx context.Context, r *pb.RangeRequest, opts ...grpc.CallOption) (resp *pb.RangeResponse, err error) {
	err = c.Call(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewKVClient(cc).Range(ctx, r, opts...)
		return err
	})
	return resp, err
}

// Put writes.
func (c *Conn) Put(ctx context.Context, r *pb.PutRequest) (resp *pb.PutResponse, err error) {
	err = c.CallOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewKVClient(cc).Put(ctx, r)
		return err
	})
	return resp, err
}

// DeleteRange deletes.
func (c *Conn) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (resp *pb.DeleteRangeResponse, err error) {
	err = c.CallOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewKVClient(cc).DeleteRange(ctx, r)
		return err
	})
	return resp, err
}

// Txn runs a transaction.
func (c *Conn) Txn(ctx context.Context, r *pb.TxnRequest) (resp *pb.TxnResponse, err error) {
	err = c.CallOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewKVClient(cc).Txn(ctx, r)
		return err
	})
	return resp, err
}

// Compact compacts the history.
func (c *Conn) Compact(ctx context.Context, r *pb.CompactionRequest) (resp *pb.CompactionResponse, err error) {
	err = c.CallOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewKVClient(cc).Compact(ctx, r)
		return err
	})
	return resp, err
}

// LeaseGrant grants a lease.
func (c *Conn) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (resp *pb.LeaseGrantResponse, err error) {
	err = c.CallOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewLeaseClient(cc).LeaseGrant(ctx, r)
		return err
	})
	return resp, err
}

// LeaseRevoke revokes a lease.
func (c *Conn) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (resp *pb.LeaseRevokeResponse, err error) {
	err = c.CallOnce(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewLeaseClient(cc).LeaseRevoke(ctx, r)
		return err
	})
	return resp, err
}

// LeaseTimeToLive asks how long a lease has left.
func (c *Conn) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (resp *pb.LeaseTimeToLiveResponse, err error) {
	err = c.Call(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err = pb.NewLeaseClient(cc).LeaseTimeToLive(ctx, r)
		return err
	})
	return resp, err
}

// KeepAliveOnce renews a lease once and returns its TTL (0: the lease does not exist).
func (c *Conn) KeepAliveOnce(ctx context.Context, id int64) (resp *pb.LeaseKeepAliveResponse, err error) {
	err = c.Call(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		s, err := pb.NewLeaseClient(cc).LeaseKeepAlive(ctx)
		if err != nil {
			return err
		}
		defer s.CloseSend()
		if err := s.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			return err
		}
		resp, err = s.Recv()
		return err
	})
	return resp, err
}
